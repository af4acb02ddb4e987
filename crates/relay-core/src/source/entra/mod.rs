//! Microsoft Entra ID: Microsoft Graph change notifications on `users` and
//! `groups` (`notifications`, `POST /entra`, with Graph's validation
//! handshake), the Graph client (`api`: users, groups, members, with a
//! client-credentials token). The planner that turns a notification — a
//! hint that an object changed — into "make Duo match what Graph says now"
//! is `crate::idp_sync::entra`: it plans through reconcile, which sits
//! above the sources (`scripts/check-module-cycles.py`).
//!
//! Graph puts no secret in a header: each notification of a batch carries
//! the subscription's `clientState`, which must equal `ENTRA_CLIENT_STATE`
//! (compared in constant time, every item; one wrong item refuses the
//! batch with 401 before any Graph or Duo call).

use super::{IdpSpec, SecretIn};
use crate::event::IdpKind;

pub mod api;
pub mod credential;
pub mod delta;
pub mod notifications;
pub mod subscription;

/// Entra's shared secret: the subscription's `clientState` (Graph allows
/// at most 128 characters; the relay asks for at least 16, like every
/// shared secret), in the body of every notification.
pub const IDP: IdpSpec = IdpSpec {
    kind: IdpKind::Entra,
    secret_variable: "ENTRA_CLIENT_STATE",
    secret_in: SecretIn::Body {
        field: "clientState",
        read: notifications::client_states,
    },
    attributes: &ATTRIBUTES,
};

/// Entra's user attributes for mapping, as Graph's user object names them
/// (`GET /v1.0/users/{id}`; the relay's `$select` asks for each of them,
/// learn.microsoft.com/graph/api/resources/user). Notifications carry
/// none: every value comes from Graph.
pub static ATTRIBUTES: crate::attributes::AttributeSpec = crate::attributes::AttributeSpec {
    named: &[
        ("userPrincipalName", "userPrincipalName"),
        ("mail", "mail"),
        ("id", "id"),
        ("displayName", "displayName"),
        ("givenName", "givenName"),
        ("surname", "surname"),
        ("employeeId", "employeeId"),
        ("mailNickname", "mailNickname"),
        ("onPremisesSamAccountName", "onPremisesSamAccountName"),
        ("onPremisesUserPrincipalName", "onPremisesUserPrincipalName"),
    ],
    path_prefixes: &["onPremisesExtensionAttributes."],
    login: "userPrincipalName",
    api_variables: "ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE) (or ENTRA_CLIENT_CERTIFICATE)",
};
