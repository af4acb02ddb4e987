//! The sources: one folder per IdP, holding what the relay knows of it —
//! the parser of each of its inbound channels (Okta's event hook, Auth0's
//! Event Streams and Log Streams) and the client of its API (lookups and
//! reconcile reads) — and the registry everything else derives from: the
//! routes (relay-server's router, the Lambda entry's forced secret re-read),
//! the parser of a delivery, the inbound auth rules of each IdP, and the
//! CLI's `--source`.
//!
//! Adding a source: a folder (or a file in its IdP's folder) with its parser
//! and a [`SourceSpec`], its line in `event::Source` (name and IdP), one
//! line in [`SOURCES`] (and, for a new IdP, its [`IdpSpec`] in [`IDPS`] and
//! its line in `event::IdpKind`), and fixtures under `tests/fixtures/`.

use crate::config::{ConfigError, RawConfig};
use crate::event::{IdpKind, Parsed, Source};
use crate::idp::{IdpError, IdpGroup, IdpLookup, IdpUser};
use crate::parse_util::ParseError;
use crate::verified::Verified;

pub mod auth0;
pub mod entra;
pub mod okta;

pub use auth0::api::Auth0Api;
pub use entra::api::EntraApi;
pub use okta::api::OktaApi;

/// Every source, in the order of [`Source::ALL`] (checked when it compiles).
pub static SOURCES: &[SourceSpec] = &[
    okta::hook::SOURCE,
    auth0::events::SOURCE,
    auth0::logs::SOURCE,
    entra::notifications::SOURCE,
];

/// Every IdP, in the order of [`IdpKind::ALL`] (checked when it compiles).
pub static IDPS: &[IdpSpec] = &[okta::IDP, auth0::IDP, entra::IDP];

/// One inbound channel: its route, its parser, how to recognize a recorded
/// delivery of it. Its inbound auth is its IdP's ([`IdpSpec`]).
#[derive(Debug)]
pub struct SourceSpec {
    pub source: Source,
    /// The path a delivery is `POST`ed to, e.g. `/okta`.
    pub path: &'static str,
    /// Whether a `GET` on [`SourceSpec::path`] answers the one-time
    /// verification challenge (`x-okta-verification-challenge`).
    pub verification_get: bool,
    /// The query parameter of a `POST` on [`SourceSpec::path`] that makes
    /// it a subscription validation handshake instead of a delivery
    /// (Microsoft Graph's `validationToken`): its URL-decoded value is
    /// echoed as `text/plain` before any content type, secret or body is
    /// looked at (the handshake carries no secret).
    pub validation_query: Option<&'static str>,
    /// Content types accepted besides JSON (`application/json`, `…+json`),
    /// lower case, without parameters.
    pub extra_content_types: &'static [&'static str],
    /// A verified delivery → its events.
    pub parse: fn(&Verified) -> Result<Parsed, ParseError>,
    /// Whether a recorded delivery looks like one of this source's (the
    /// CLI's `replay` without `--source`); asked in registry order, so the
    /// most general shape comes last.
    pub recognizes: fn(&str) -> bool,
}

/// What the channels of one IdP share on the way in: the shared secret.
#[derive(Debug)]
pub struct IdpSpec {
    pub kind: IdpKind,
    /// The variable holding the shared secret (rotation entries allowed),
    /// e.g. `OKTA_AUTH_SECRET`.
    pub secret_variable: &'static str,
    /// Where a delivery carries it.
    pub secret_in: SecretIn,
    /// The user attributes attribute mapping may read (`crate::mapping`).
    pub attributes: &'static crate::attributes::AttributeSpec,
}

/// Where an IdP puts the shared secret in a delivery.
#[derive(Debug)]
pub enum SecretIn {
    /// A header, checked before the body is read: `Authorization` unless
    /// `header_variable` names the variable that names another;
    /// `accepts_bearer`: `Bearer <secret>` matches too.
    Header {
        header_variable: Option<&'static str>,
        accepts_bearer: bool,
    },
    /// The body (Microsoft Graph puts `clientState` in every notification
    /// of a batch, and nothing in a header): `read` returns every copy the
    /// delivery carries, or `None` when it cannot find them; each copy must
    /// match, else the whole delivery is refused. `field` names it in logs.
    Body {
        field: &'static str,
        read: fn(&[u8]) -> Option<Vec<String>>,
    },
}

// The registry is indexed by the enums: checked here, when it compiles.
const _: () = {
    assert!(SOURCES.len() == Source::ALL.len());
    let mut i = 0;
    while i < SOURCES.len() {
        assert!(SOURCES[i].source as usize == i && Source::ALL[i] as usize == i);
        i += 1;
    }
    assert!(IDPS.len() == IdpKind::ALL.len());
    let mut i = 0;
    while i < IDPS.len() {
        assert!(IDPS[i].kind as usize == i && IdpKind::ALL[i] as usize == i);
        i += 1;
    }
};

/// The registration of `source`.
pub fn spec(source: Source) -> &'static SourceSpec {
    &SOURCES[source as usize]
}

/// The inbound rules of `idp`.
pub fn idp(idp: IdpKind) -> &'static IdpSpec {
    &IDPS[idp as usize]
}

/// Parses a verified delivery with the parser of its source.
pub fn parse(delivery: &Verified) -> Result<Parsed, ParseError> {
    (spec(delivery.source()).parse)(delivery)
}

/// The source a recorded delivery looks like (the first in registry order
/// that recognizes it).
pub fn recognize(body: &str) -> Option<Source> {
    SOURCES
        .iter()
        .find(|spec| (spec.recognizes)(body))
        .map(|spec| spec.source)
}

/// `okta, auth0 or auth0-logs`: the names, for messages.
pub fn names() -> String {
    let names: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
    match names.split_last() {
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The IdP APIs the relay may ask for values an event does not carry (Okta
/// profile updates and group renames, Auth0 role names). Each is optional:
/// without it those events are skipped with a log line saying what to set.
#[derive(Debug, Clone, Default)]
pub struct IdpLookups {
    pub okta: Option<OktaApi>,
    pub auth0: Option<Auth0Api>,
    pub entra: Option<EntraApi>,
}

impl IdpLookups {
    /// From `OKTA_ORG_URL` + `OKTA_API_TOKEN`, `AUTH0_DOMAIN` +
    /// `AUTH0_CLIENT_ID` + `AUTH0_CLIENT_SECRET`, and `ENTRA_TENANT_ID` +
    /// `ENTRA_CLIENT_ID` + `ENTRA_CLIENT_SECRET` (or
    /// `ENTRA_CLIENT_CERTIFICATE`).
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            okta: OktaApi::from_config(raw)?,
            auth0: Auth0Api::from_config(raw)?,
            entra: EntraApi::from_config(raw)?,
        })
    }

    /// Whether the API of `idp` is configured.
    pub fn configured(&self, idp: IdpKind) -> bool {
        match idp {
            IdpKind::Okta => self.okta.is_some(),
            IdpKind::Auth0 => self.auth0.is_some(),
            IdpKind::Entra => self.entra.is_some(),
        }
    }

    /// Whether no IdP API is configured (events are planned as sent).
    pub fn is_empty(&self) -> bool {
        self.okta.is_none() && self.auth0.is_none() && self.entra.is_none()
    }

    pub(crate) async fn user(&self, source: Source, id: &str) -> Option<Result<IdpUser, IdpError>> {
        match source.idp() {
            IdpKind::Okta => Some(self.okta.as_ref()?.user(id).await),
            IdpKind::Auth0 => Some(self.auth0.as_ref()?.user(id).await),
            IdpKind::Entra => Some(self.entra.as_ref()?.user(id).await),
        }
    }

    pub(crate) async fn group(
        &self,
        source: Source,
        id: &str,
    ) -> Option<Result<IdpGroup, IdpError>> {
        match source.idp() {
            IdpKind::Okta => Some(self.okta.as_ref()?.group(id).await),
            IdpKind::Auth0 => Some(self.auth0.as_ref()?.group(id).await),
            IdpKind::Entra => Some(self.entra.as_ref()?.group(id).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_and_idp_is_registered_once_with_its_own_path() {
        for source in Source::ALL {
            assert_eq!(spec(*source).source, *source);
            assert!(spec(*source).path.starts_with('/'));
            assert_eq!(Source::from_name(source.as_str()), Some(*source));
        }
        for kind in IdpKind::ALL {
            assert_eq!(idp(*kind).kind, *kind);
            assert_eq!(IdpKind::parse(kind.as_str()), Some(*kind));
        }
        let mut paths: Vec<&str> = SOURCES.iter().map(|s| s.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), SOURCES.len());
        assert_eq!(names(), "okta, auth0, auth0-logs or entra");
    }

    #[test]
    fn recorded_deliveries_are_recognized_by_their_shape() {
        let okta = r#"{"eventType":"com.okta.event_hook","data":{"events":[]}}"#;
        assert_eq!(recognize(okta), Some(Source::Okta));
        let events = r#"{"id":"evt_1","specversion":"1.0","type":"user.created"}"#;
        assert_eq!(recognize(events), Some(Source::Auth0Events));
        let logs = "{\"log_id\":\"1\"}\n{\"log_id\":\"2\"}";
        assert_eq!(recognize(logs), Some(Source::Auth0Logs));
    }
}
