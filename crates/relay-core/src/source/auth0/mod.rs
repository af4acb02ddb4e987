//! Auth0: Event Streams (`events`, `POST /auth0`), Log Streams (`logs`,
//! `POST /auth0/logs`) and the Management API (`api`).

pub mod api;
pub mod events;
pub mod logs;
