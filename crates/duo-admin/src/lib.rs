//! A client for the Duo Admin API.
//!
//! What this crate owns: signing requests exactly as Duo verifies them
//! (signature v5 with HMAC-SHA512 by default, v2 with HMAC-SHA1 or SHA-512 on
//! request), typed calls for the users, groups and authenticators the relay
//! manages, one error type with Duo's codes, one retry policy, and paging.
//!
//! What it must not know about: identity providers, webhooks, clouds. It is
//! the bottom of the stack; `relay-core` builds on it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), duo_admin::DuoError> {
//! use duo_admin::{DuoClient, DuoConfig, Secret};
//! let client = DuoClient::new(DuoConfig::new(
//!     "api-1234abcd.duosecurity.com",
//!     "DIXXXXXXXXXXXXXXXXXX",
//!     Secret::new("secret key from the Admin API application"),
//! ))?;
//! if let Some(user) = client.find_user_by_username("jane.doe@example.com").await? {
//!     println!("{} is {}", user.username, user.status.as_str());
//! }
//! # Ok(()) }
//! ```

mod api;
mod client;
pub mod date;
mod error;
mod model;
pub mod pace;
mod retry;
mod secret;
pub mod sign;

pub use api::{GROUPS_PAGE_LIMIT, Pager, USERS_PAGE_LIMIT};
pub use client::{
    CallStats, DateHeader, DuoClient, DuoConfig, DuoResponse, PageMetadata, TaskCalls, count_calls,
    count_task_calls, parse_envelope, redact_userinfo,
};
pub use error::{DuoError, DuoFailure, TransportKind};
pub use model::{
    BypassCode, BypassCodeId, DuoGroupId, DuoPhoneId, DuoTokenId, DuoUserId, Group, GroupFields,
    HardwareToken, Phone, U2fRegistrationId, U2fToken, User, UserFields, UserStatus,
    WebAuthnCredential, WebAuthnKey,
};
pub use pace::{PaceConfig, Pacer};
pub use reqwest::Method;
pub use retry::{Idempotency, RetryPolicy};
pub use secret::Secret;
pub use sign::{SigVersion, V2Digest};
