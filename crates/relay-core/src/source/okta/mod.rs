//! Okta: the event hook (`hook`, `POST /okta` and its verification `GET`)
//! and the Users/Groups API (`api`).

use super::IdpSpec;
use crate::event::IdpKind;

pub mod api;
pub mod hook;

/// Okta's shared secret: `OKTA_AUTH_SECRET` in the header named by
/// `OKTA_AUTH_HEADER` (default `Authorization`), compared whole.
pub const IDP: IdpSpec = IdpSpec {
    kind: IdpKind::Okta,
    secret_variable: "OKTA_AUTH_SECRET",
    header_variable: Some("OKTA_AUTH_HEADER"),
    accepts_bearer: false,
};
