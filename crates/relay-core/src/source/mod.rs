//! The sources: one folder per IdP, holding what the relay knows of it —
//! the parser of each of its inbound channels (Okta's event hook, Auth0's
//! Event Streams and Log Streams) and the client of its API (lookups and
//! reconcile reads).

pub mod auth0;
pub mod okta;

pub use auth0::api::Auth0Api;
pub use okta::api::OktaApi;
