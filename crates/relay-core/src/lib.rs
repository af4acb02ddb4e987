//! The relay's domain, free of HTTP frameworks and cloud SDKs.
//!
//! Data flows one way: a request → a verified request → [`event::IdpEvent`]s →
//! Duo operations → outcomes. Each stage is a plain type that a test can build
//! without the stages around it. Entry crates (server, Lambda, Azure, Cloud
//! Run) only adapt their platform's request and response and decide where
//! secrets and state live.

pub mod apply;
pub mod attributes;
pub mod catch_up;
pub mod config;
pub mod effect;
pub mod event;
pub mod exclude;
pub mod group_index;
pub mod identity;
pub mod limits;
pub mod log_line;
pub mod mapping;
pub mod operation;
pub mod order;
pub mod parse_util;
pub mod phone;
pub mod pipeline;
pub mod plan;
pub mod queue;
pub mod reconcile;
pub mod report;
pub mod scope;
pub mod source;
pub mod state;
pub mod store;
pub mod target;
pub mod time;
pub mod verified;
pub mod verify;

pub use duo_admin::Secret;
pub mod idp;
pub mod idp_sync;
