//! Okta: the event hook (`hook`, `POST /okta` and its verification `GET`)
//! and the Users/Groups API (`api`).

use super::{IdpSpec, SecretIn};
use crate::event::IdpKind;

pub mod api;
pub mod hook;

/// Okta's shared secret: `OKTA_AUTH_SECRET` in the header named by
/// `OKTA_AUTH_HEADER` (default `Authorization`), compared whole.
pub const IDP: IdpSpec = IdpSpec {
    kind: IdpKind::Okta,
    secret_variable: "OKTA_AUTH_SECRET",
    secret_in: SecretIn::Header {
        header_variable: Some("OKTA_AUTH_HEADER"),
        accepts_bearer: false,
    },
    attributes: &ATTRIBUTES,
};

/// Okta's user attributes for mapping, at their place in the Users API's
/// user object (`GET /api/v1/users/{id}`: `id`, `status`, `profile.*`).
/// Hook events carry only the login (the target's `alternateId`), so any
/// other attribute is read through the API (`OKTA_ORG_URL`,
/// `OKTA_API_TOKEN`).
pub static ATTRIBUTES: crate::attributes::AttributeSpec = crate::attributes::AttributeSpec {
    named: &[
        ("login", "profile.login"),
        ("email", "profile.email"),
        ("id", "id"),
    ],
    path_prefixes: &["profile."],
    login: "login",
    api_variables: "OKTA_ORG_URL and OKTA_API_TOKEN",
};
