//! Auth0: Event Streams (`events`, `POST /auth0`), Log Streams (`logs`,
//! `POST /auth0/logs`) and the Management API (`api`).

use super::{IdpSpec, SecretIn};
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
    secret_in: SecretIn::Header {
        header_variable: None,
        accepts_bearer: true,
    },
    attributes: &ATTRIBUTES,
};

/// Auth0's user attributes for mapping, at their place in the Management
/// API's user object (`GET /api/v2/users/{id}`), which Event Streams'
/// `user.created` / `user.updated` carry whole as `data.object`.
pub static ATTRIBUTES: crate::attributes::AttributeSpec = crate::attributes::AttributeSpec {
    named: &[
        ("email", "email"),
        ("username", "username"),
        ("user_id", "user_id"),
        ("name", "name"),
        ("nickname", "nickname"),
        ("given_name", "given_name"),
        ("family_name", "family_name"),
        ("phone_number", "phone_number"),
    ],
    path_prefixes: &["app_metadata.", "user_metadata."],
    login: "email",
    api_variables: "AUTH0_DOMAIN, AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET",
};
