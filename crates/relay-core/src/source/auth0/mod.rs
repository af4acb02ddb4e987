//! Auth0: Event Streams (`events`, `POST /auth0`), Log Streams (`logs`,
//! `POST /auth0/logs`) and the Management API (`api`).

use super::IdpSpec;
use crate::event::IdpKind;

pub mod api;
pub mod events;
pub mod logs;

/// Auth0's shared secret, both streams: `AUTH0_AUTH_SECRET` in
/// `Authorization`, verbatim (Log Streams) or as `Bearer <secret>` (Event
/// Streams).
pub const IDP: IdpSpec = IdpSpec {
    kind: IdpKind::Auth0,
    secret_variable: "AUTH0_AUTH_SECRET",
    header_variable: None,
    accepts_bearer: true,
};
