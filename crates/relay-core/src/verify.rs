//! Inbound verification: did this request really come from the IdP?
//!
//! A pure function of (headers, body, configured secrets, now), free of any
//! HTTP framework. Success yields a [`Verified`], the only thing the parsers
//! accept, so an unverified body cannot reach the business logic.
//!
//! Two layers:
//! - a static shared secret per IdP (Okta event hooks and Auth0 streams have
//!   nothing stronger: REFERENCE §1.6, §2a, §2b), compared in constant time;
//! - optionally, a Standard Webhooks `v1` signature (REFERENCE §4) over the
//!   exact body bytes, required on every delivery when
//!   `WEBHOOK_SIGNING_SECRETS` is set (for a signing proxy or queue in front).
//!
//! Configuration rules (each value may hold rotation entries):
//! - `OKTA_AUTH_SECRET`, `AUTH0_AUTH_SECRET`, `WEBHOOK_SIGNING_SECRETS` are
//!   split on `,` and each entry trimmed; at most [`MAX_ROTATION_ENTRIES`]
//!   entries, none empty. A shared secret therefore cannot contain a comma.
//! - Shared secrets are at least [`MIN_SECRET_CHARS`] characters of printable
//!   ASCII (what a header can carry), the whole value counted, so Okta's
//!   `Basic …` convention works as is.
//! - Signing keys are `whsec_<base64>` or bare base64 and decode to at least
//!   24 bytes (the spec's lower bound).
//!
//! Request rules:
//! - An auth header sent more than once is refused ([`VerifyFailure::DuplicateHeader`]):
//!   picking one of several values is how smuggling bugs start.
//! - A value that is not visible ASCII is simply a mismatch.
//! - Auth0: the `Authorization` value matches when it equals a secret (Log
//!   Streams send `httpAuthorization` verbatim) or is `Bearer <secret>`
//!   (Event Streams); the scheme is case-insensitive and, as RFC 9110's
//!   `1*SP` allows, any run of spaces may follow it (`bearer   x` is `x`).
//! - Okta's one-time GET needs the shared secret but not a Standard Webhooks
//!   signature: it carries no body and no event, and a signing proxy may not
//!   sign GETs.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::config::{self, ConfigError, RawConfig};
use crate::event::Source;
use crate::source;
use crate::verified::Verified;

/// Most comma-separated entries a secret variable may hold (current, next,
/// and one spare while a rotation overlaps).
pub const MAX_ROTATION_ENTRIES: usize = 3;
/// Shortest shared secret accepted, in characters (16 in messages too).
pub const MIN_SECRET_CHARS: usize = 16;
/// Shortest Standard Webhooks key accepted, in decoded bytes (spec: 24–64;
/// 24 in messages too).
const MIN_SIGNING_KEY_BYTES: usize = 24;
/// Standard Webhooks timestamp tolerance, both directions (reference libs).
const TOLERANCE_SECS: i64 = 5 * 60;
/// Longest Okta challenge echoed back.
const MAX_CHALLENGE_BYTES: usize = 512;
/// Longest `webhook-id` accepted; it ends up in logs and the idempotency key.
const MAX_WEBHOOK_ID_BYTES: usize = 256;
/// Most `webhook-signature` entries examined, to bound the work per request.
const MAX_SIGNATURE_ENTRIES: usize = 16;

const OKTA_CHALLENGE: HeaderName = HeaderName::from_static("x-okta-verification-challenge");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// Why a request was refused. Carries header *names* and reasons, never a
/// received or expected value. All answer 401 except
/// [`VerifyFailure::MissingChallenge`] (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// No shared secret is configured for this source: refuse everything.
    #[error("no shared secret is configured for {idp}")]
    NotConfigured { idp: Source },
    #[error("missing {header} header")]
    MissingHeader { header: String },
    #[error("{header} header sent more than once")]
    DuplicateHeader { header: String },
    #[error("{header} header does not match a configured secret")]
    SecretMismatch { header: String },
    /// A source whose secret travels in the body (Entra's `clientState`):
    /// the body is not a delivery, or an item of it carries none.
    #[error("{field} missing from the delivery or from one of its items")]
    MissingBodySecret { field: String },
    /// An item's copy of the secret does not match (the delivery is
    /// refused as a whole).
    #[error("a {field} in the delivery does not match a configured secret")]
    BodySecretMismatch { field: String },
    #[error("missing, empty or malformed x-okta-verification-challenge header")]
    MissingChallenge,
    #[error("missing webhook-id, webhook-timestamp or webhook-signature header")]
    SignatureHeadersMissing,
    #[error("malformed Standard Webhooks headers")]
    SignatureMalformed,
    #[error("no webhook-signature entry matches a configured signing secret")]
    SignatureMismatch,
    #[error("webhook-timestamp is more than 5 minutes in the past")]
    TimestampTooOld,
    #[error("webhook-timestamp is more than 5 minutes in the future")]
    TimestampTooNew,
}

impl VerifyFailure {
    /// Stable snake_case value for the `verify_failure` log field.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotConfigured { .. } => "not_configured",
            Self::MissingHeader { .. } => "missing_header",
            Self::DuplicateHeader { .. } => "duplicate_header",
            Self::SecretMismatch { .. } | Self::BodySecretMismatch { .. } => "secret_mismatch",
            Self::MissingBodySecret { .. } => "missing_body_secret",
            Self::MissingChallenge => "missing_challenge",
            Self::SignatureHeadersMissing => "signature_headers_missing",
            Self::SignatureMalformed => "signature_malformed",
            Self::SignatureMismatch => "signature_mismatch",
            Self::TimestampTooOld => "timestamp_too_old",
            Self::TimestampTooNew => "timestamp_too_new",
        }
    }

    /// 400 rather than 401: the caller authenticated but sent no usable challenge.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, Self::MissingChallenge)
    }
}

/// SHA-256 digests of the accepted values of one shared secret. Comparing
/// digests keeps the comparison constant-time in content *and* length.
#[derive(Clone)]
struct SharedSecrets(Vec<[u8; 32]>);

impl SharedSecrets {
    fn from_config(raw: &RawConfig, variable: &'static str) -> Result<Option<Self>, ConfigError> {
        let Some(value) = config::optional(raw, variable) else {
            return Ok(None);
        };
        let entries = rotation_entries(value, variable)?;
        let mut digests = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let problem = if entry.chars().count() < MIN_SECRET_CHARS {
                "is shorter than 16 characters; use a generated secret"
            } else if !entry.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                "holds characters an HTTP header cannot carry; use printable ASCII"
            } else {
                digests.push(sha256(entry.as_bytes()));
                continue;
            };
            return Err(entry_error(variable, i, entries.len(), problem));
        }
        Ok(Some(Self(digests)))
    }

    /// Whether `received` equals any configured value. Every value is checked.
    fn matches(&self, received: &str) -> Choice {
        let digest = sha256(received.as_bytes());
        self.0.iter().fold(Choice::from(0), |acc, expected| {
            acc | expected[..].ct_eq(&digest[..])
        })
    }
}

impl fmt::Debug for SharedSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted; {} value(s)]", self.0.len())
    }
}

/// Standard Webhooks `v1` keys: the decoded bytes of each `whsec_…` entry.
#[derive(Clone)]
struct SigningKeys(Vec<Vec<u8>>);

impl SigningKeys {
    const VARIABLE: &'static str = "WEBHOOK_SIGNING_SECRETS";

    fn from_config(raw: &RawConfig) -> Result<Option<Self>, ConfigError> {
        let Some(value) = config::optional(raw, Self::VARIABLE) else {
            return Ok(None);
        };
        let entries = rotation_entries(value, Self::VARIABLE)?;
        let mut keys = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            // The reference libraries accept the key with or without `whsec_`.
            let encoded = entry.strip_prefix("whsec_").unwrap_or(entry);
            let problem = match BASE64.decode(encoded) {
                Err(_) => "is not valid base64 (expected whsec_<base64>)",
                Ok(key) if key.len() < MIN_SIGNING_KEY_BYTES => {
                    "decodes to fewer than 24 bytes; use a generated secret"
                }
                Ok(key) => {
                    keys.push(key);
                    continue;
                }
            };
            return Err(entry_error(Self::VARIABLE, i, entries.len(), problem));
        }
        Ok(Some(Self(keys)))
    }

    /// Checks the Standard Webhooks headers that need no body: present once
    /// each, well formed, the timestamp within tolerance, at least one
    /// `v1` entry. The signatures themselves are checked by
    /// [`SigningKeys::verify_body`] once the body is read.
    fn check_headers(
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<SignatureHeaders, VerifyFailure> {
        let header = |name: &HeaderName| match single_header(headers, name) {
            Ok(Some(value)) => value
                .to_str()
                .map_err(|_| VerifyFailure::SignatureMalformed),
            Ok(None) => Err(VerifyFailure::SignatureHeadersMissing),
            Err(()) => Err(VerifyFailure::SignatureMalformed),
        };
        let (id, timestamp, signatures) = (
            header(&WEBHOOK_ID)?,
            header(&WEBHOOK_TIMESTAMP)?,
            header(&WEBHOOK_SIGNATURE)?,
        );
        // The spec forbids `.` in ids: it separates the signed fields.
        if id.is_empty()
            || id.len() > MAX_WEBHOOK_ID_BYTES
            || !id.bytes().all(|b| b.is_ascii_graphic() && b != b'.')
        {
            return Err(VerifyFailure::SignatureMalformed);
        }
        let sent_at = parse_unix_seconds(timestamp).ok_or(VerifyFailure::SignatureMalformed)?;
        let now = unix_seconds(now);
        if sent_at < now.saturating_sub(TOLERANCE_SECS) {
            return Err(VerifyFailure::TimestampTooOld);
        }
        if sent_at > now.saturating_add(TOLERANCE_SECS) {
            return Err(VerifyFailure::TimestampTooNew);
        }

        // `v1,<base64>` entries only; other versions (`v1a`) and undecodable
        // entries are skipped so that a valid entry later in the list counts.
        let received: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter(|entry| !entry.is_empty())
            .take(MAX_SIGNATURE_ENTRIES)
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|sig| BASE64.decode(sig).ok())
            .collect();
        if received.is_empty() {
            return Err(VerifyFailure::SignatureMalformed);
        }
        Ok(SignatureHeaders {
            id: id.to_owned(),
            timestamp: timestamp.to_owned(),
            received,
        })
    }

    /// Checks the signatures against the exact body bytes; returns the
    /// verified `webhook-id`.
    fn verify_body(&self, sent: SignatureHeaders, body: &[u8]) -> Result<String, VerifyFailure> {
        let mut matched = Choice::from(0);
        for key in &self.0 {
            let Some(expected) = hmac_sha256(
                key,
                &[
                    sent.id.as_bytes(),
                    b".",
                    sent.timestamp.as_bytes(),
                    b".",
                    body,
                ],
            ) else {
                continue;
            };
            for sig in &sent.received {
                matched |= expected[..].ct_eq(sig);
            }
        }
        if bool::from(matched) {
            Ok(sent.id)
        } else {
            Err(VerifyFailure::SignatureMismatch)
        }
    }
}

/// The Standard Webhooks headers of a request, checked as far as they can
/// be without its body.
#[derive(Clone)]
struct SignatureHeaders {
    id: String,
    timestamp: String,
    received: Vec<Vec<u8>>,
}

impl fmt::Debug for SignatureHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{} signature(s)]", self.received.len())
    }
}

/// A request whose headers passed: the source's shared secret matched and,
/// when signing is required, the signature headers are present, well
/// formed and in time. Its body has not been read yet: the server checks
/// this first so an unauthenticated client never gets its body read
/// ([`InboundAuth::authenticate_headers`]), then hands the body to
/// [`InboundAuth::verify_body`] for the [`Verified`] the parsers take.
#[derive(Debug)]
pub struct Authenticated {
    source: Source,
    signature: Option<SignatureHeaders>,
}

impl Authenticated {
    pub fn source(&self) -> Source {
        self.source
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[redacted; {} key(s)]", self.0.len())
    }
}

/// What inbound requests must prove, built once from configuration.
/// `Debug` prints header names and counts, never a secret.
#[derive(Debug, Clone)]
pub struct InboundAuth {
    /// Per IdP, in the order of `crate::source::IDPS`.
    idps: Vec<IdpAuth>,
    signing: Option<SigningKeys>,
}

/// One IdP's shared secret and where it is sent.
#[derive(Debug, Clone)]
struct IdpAuth {
    place: Place,
    secrets: Option<SharedSecrets>,
}

/// Where one IdP's secret is read from (`source::SecretIn`, resolved).
#[derive(Debug, Clone)]
enum Place {
    Header {
        header: HeaderName,
        /// `Bearer <secret>` matches too.
        bearer: bool,
    },
    Body {
        field: &'static str,
        read: fn(&[u8]) -> Option<Vec<String>>,
    },
}

impl InboundAuth {
    /// Reads `OKTA_AUTH_HEADER`, `OKTA_AUTH_SECRET`, `AUTH0_AUTH_SECRET` and
    /// `WEBHOOK_SIGNING_SECRETS` (rules in the module docs).
    pub fn from_config(raw: &RawConfig) -> Result<InboundAuth, ConfigError> {
        let mut idps = Vec::with_capacity(source::IDPS.len());
        for idp in source::IDPS {
            let place = match idp.secret_in {
                source::SecretIn::Header {
                    header_variable,
                    accepts_bearer,
                } => {
                    let header =
                        match header_variable.and_then(|v| Some((v, config::optional(raw, v)?))) {
                            None => AUTHORIZATION,
                            Some((variable, name)) => HeaderName::from_bytes(name.as_bytes())
                                .map_err(|_| {
                                    ConfigError::new(variable, "is not a valid HTTP header name")
                                })?,
                        };
                    Place::Header {
                        header,
                        bearer: accepts_bearer,
                    }
                }
                source::SecretIn::Body { field, read } => Place::Body { field, read },
            };
            idps.push(IdpAuth {
                place,
                secrets: SharedSecrets::from_config(raw, idp.secret_variable)?,
            });
        }
        if idps.iter().all(|idp| idp.secrets.is_none()) {
            let others: Vec<&str> = source::IDPS[1..]
                .iter()
                .map(|i| i.secret_variable)
                .collect();
            return Err(ConfigError::new(
                source::IDPS[0].secret_variable,
                format!(
                    "is not set, nor is {}; set at least one",
                    others.join(", nor is ")
                ),
            ));
        }
        let signing = SigningKeys::from_config(raw)?;
        Ok(Self { idps, signing })
    }

    /// Whether `source` has a shared secret (otherwise it is refused).
    pub fn is_configured(&self, source: Source) -> bool {
        self.secrets_for(source).is_some()
    }

    /// Whether every delivery must also carry a Standard Webhooks signature.
    pub fn requires_signature(&self) -> bool {
        self.signing.is_some()
    }

    /// Verifies a POST delivery: the source's shared secret, then the
    /// Standard Webhooks signature when configured.
    pub fn verify(
        &self,
        source: Source,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<Verified, VerifyFailure> {
        let authenticated = self.authenticate_headers(source, headers, now)?;
        self.verify_body(authenticated, body)
    }

    /// The part of [`InboundAuth::verify`] that needs no body: the shared
    /// secret and, when signing is required, the signature headers.
    pub fn authenticate_headers(
        &self,
        source: Source,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Authenticated, VerifyFailure> {
        self.authenticate(source, headers)?;
        let signature = match &self.signing {
            Some(_) => Some(SigningKeys::check_headers(headers, now)?),
            None => None,
        };
        Ok(Authenticated { source, signature })
    }

    /// The rest of [`InboundAuth::verify`]: the signature over the body,
    /// when signing is required.
    pub fn verify_body(
        &self,
        authenticated: Authenticated,
        body: Bytes,
    ) -> Result<Verified, VerifyFailure> {
        let Authenticated { source, signature } = authenticated;
        self.authenticate_body(source, &body)?;
        let webhook_id = match (&self.signing, signature) {
            (Some(keys), Some(sent)) => Some(keys.verify_body(sent, &body)?),
            // Headers authenticated by another configuration: refuse.
            (Some(_), None) => return Err(VerifyFailure::SignatureHeadersMissing),
            (None, _) => None,
        };
        Ok(Verified::new(source, body, webhook_id))
    }

    /// The one-time verification GET of a source that has one (Okta's
    /// event hook): authenticates it like a delivery of `source` (shared
    /// secret only, see the module docs) and returns the challenge to echo
    /// as `{"verification": …}`.
    pub fn verify_challenge(
        &self,
        source: Source,
        headers: &HeaderMap,
    ) -> Result<String, VerifyFailure> {
        self.authenticate(source, headers)?;
        let challenge = single_header(headers, &OKTA_CHALLENGE).ok().flatten();
        challenge
            .and_then(|value| value.to_str().ok())
            .filter(|c| !c.is_empty() && c.len() <= MAX_CHALLENGE_BYTES)
            .filter(|c| c.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_owned)
            .ok_or(VerifyFailure::MissingChallenge)
    }

    fn idp(&self, source: Source) -> Option<&IdpAuth> {
        self.idps.get(source.idp() as usize)
    }

    fn secrets_for(&self, source: Source) -> Option<&SharedSecrets> {
        self.idp(source)?.secrets.as_ref()
    }

    /// The header part of a source's secret check. A source whose secret
    /// is in the body passes here (when it has a secret) and is checked by
    /// [`Self::authenticate_body`] once the body is read.
    fn authenticate(&self, source: Source, headers: &HeaderMap) -> Result<(), VerifyFailure> {
        let not_configured = VerifyFailure::NotConfigured { idp: source };
        let idp = self.idp(source).ok_or(not_configured.clone())?;
        let secrets = idp.secrets.as_ref().ok_or(not_configured)?;
        let (name, bearer) = match &idp.place {
            Place::Header { header, bearer } => (header, *bearer),
            Place::Body { .. } => return Ok(()),
        };
        let header = name.to_string();
        let value = match single_header(headers, name) {
            Ok(Some(value)) => value,
            Ok(None) => return Err(VerifyFailure::MissingHeader { header }),
            Err(()) => return Err(VerifyFailure::DuplicateHeader { header }),
        };
        let matched = match value.to_str() {
            // Leading/trailing blanks are not part of a field value (RFC 9110).
            Ok(value) => {
                let value = value.trim_matches([' ', '\t']);
                if bearer {
                    let bearer =
                        bearer_token(value).map_or(Choice::from(0), |token| secrets.matches(token));
                    secrets.matches(value) | bearer
                } else {
                    secrets.matches(value)
                }
            }
            Err(_) => Choice::from(0),
        };
        if bool::from(matched) {
            Ok(())
        } else {
            Err(VerifyFailure::SecretMismatch { header })
        }
    }

    /// The body part of a source's secret check (Entra's `clientState`):
    /// every copy the body carries must match; none, or one that does not,
    /// refuses the whole delivery. Every copy is compared (constant time
    /// each), so the answer's timing does not say which one failed.
    fn authenticate_body(&self, source: Source, body: &[u8]) -> Result<(), VerifyFailure> {
        let not_configured = VerifyFailure::NotConfigured { idp: source };
        let idp = self.idp(source).ok_or(not_configured.clone())?;
        let Place::Body { field, read } = idp.place else {
            return Ok(());
        };
        let secrets = idp.secrets.as_ref().ok_or(not_configured)?;
        let missing = VerifyFailure::MissingBodySecret {
            field: field.to_owned(),
        };
        let copies = read(body).ok_or(missing.clone())?;
        if copies.is_empty() {
            return Err(missing);
        }
        let all = copies
            .iter()
            .fold(Choice::from(1), |acc, copy| acc & secrets.matches(copy));
        if bool::from(all) {
            Ok(())
        } else {
            Err(VerifyFailure::BodySecretMismatch {
                field: field.to_owned(),
            })
        }
    }
}

/// `Bearer <token>`: scheme case-insensitive, one or more spaces, token trimmed.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches([' ', '\t']))
}

/// The one value of `name`: `Ok(None)` when absent, `Err` when sent twice or more.
fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        (_, Some(_)) => Err(()),
    }
}

/// Comma-separated rotation entries, trimmed; none empty, at most the maximum.
fn rotation_entries<'a>(
    value: &'a str,
    variable: &'static str,
) -> Result<Vec<&'a str>, ConfigError> {
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.iter().any(|entry| entry.is_empty()) {
        return Err(ConfigError::new(
            variable,
            "has an empty comma-separated entry",
        ));
    }
    if entries.len() > MAX_ROTATION_ENTRIES {
        return Err(ConfigError::new(
            variable,
            format!("holds more than {MAX_ROTATION_ENTRIES} comma-separated entries"),
        ));
    }
    Ok(entries)
}

/// A problem with entry `index` of `count`; entries are numbered only when
/// there are several, and never quoted.
fn entry_error(variable: &'static str, index: usize, count: usize, problem: &str) -> ConfigError {
    match count {
        1 => ConfigError::new(variable, problem),
        _ => ConfigError::new(variable, format!("entry {} {problem}", index + 1)),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// HMAC-SHA256 over the concatenation of `parts`. `None` cannot happen
/// (HMAC takes keys of any length) but is a mismatch rather than a panic.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

/// Unix seconds as sent: ASCII digits only (no sign, no fraction).
fn parse_unix_seconds(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn unix_seconds(now: SystemTime) -> i64 {
    match now.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use VerifyFailure::*;

    const OKTA: &str = "okta-secret-0123456789abcdef";
    const OKTA_NEXT: &str = "okta-secret-next-fedcba98765";
    const AUTH0: &str = "auth0-token-0123456789abcdef";

    // Standard Webhooks spec test vector (standard-webhooks/standard-webhooks,
    // spec/standard-webhooks.md; REFERENCE §4).
    const WH_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const WH_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const WH_TS: u64 = 1_649_367_553;
    const WH_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const WH_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    // A well-formed 24-byte key that signs nothing here.
    const WH_OTHER: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";

    type Outcome = Result<(), VerifyFailure>;

    fn try_config(pairs: &[(&str, &str)]) -> Result<InboundAuth, ConfigError> {
        let raw = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        InboundAuth::from_config(&raw.collect())
    }

    fn inbound(pairs: &[(&str, &str)]) -> InboundAuth {
        try_config(pairs).unwrap_or_else(|err| panic!("config refused: {err}"))
    }

    fn both() -> InboundAuth {
        inbound(&[("OKTA_AUTH_SECRET", OKTA), ("AUTH0_AUTH_SECRET", AUTH0)])
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("test header name");
            map.append(
                name,
                HeaderValue::from_str(value).expect("test header value"),
            );
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn post(auth: &InboundAuth, source: Source, pairs: &[(&str, &str)]) -> Outcome {
        let body = Bytes::from_static(b"{}");
        auth.verify(source, &headers(pairs), body, at(WH_TS))
            .map(drop)
    }

    fn missing(header: &str) -> Outcome {
        Err(MissingHeader {
            header: header.into(),
        })
    }

    fn mismatch(header: &str) -> Outcome {
        Err(SecretMismatch {
            header: header.into(),
        })
    }

    #[test]
    fn okta_accepts_only_the_exact_secret() {
        let auth = both();
        let map = headers(&[("Authorization", OKTA)]);
        let verified = auth.verify(Source::Okta, &map, Bytes::from_static(b"{}"), at(0));
        let verified = verified.expect("right secret");
        assert_eq!(
            (verified.source(), verified.body().as_ref()),
            (Source::Okta, &b"{}"[..])
        );
        assert_eq!(verified.webhook_id(), None);
        assert_eq!(
            post(
                &auth,
                Source::Okta,
                &[("authorization", &format!(" {OKTA} "))]
            ),
            Ok(())
        );
        let bearer = format!("Bearer {OKTA}");
        for wrong in [
            "okta-secret-0123456789abcdeX",
            "okta-secret",
            "",
            AUTH0,
            &bearer,
        ] {
            let outcome = post(&auth, Source::Okta, &[("Authorization", wrong)]);
            assert_eq!(outcome, mismatch("authorization"), "{wrong}");
        }
        assert_eq!(post(&auth, Source::Okta, &[]), missing("authorization"));
    }

    #[test]
    fn entra_checks_every_client_state_in_the_body() {
        const STATE: &str = "entra-state-0123456789abcdef";
        const NEXT: &str = "entra-state-next-0123456789ab";
        let auth = inbound(&[("ENTRA_CLIENT_STATE", &format!("{STATE},{NEXT}"))]);
        let body = |states: &[&str]| {
            let items: Vec<serde_json::Value> = states
                .iter()
                .map(|s| serde_json::json!({"clientState": s, "changeType": "updated"}))
                .collect();
            Bytes::from(serde_json::json!({ "value": items }).to_string())
        };
        let verify = |b: Bytes| {
            auth.verify(Source::Entra, &HeaderMap::new(), b, at(0))
                .map(drop)
        };
        assert_eq!(verify(body(&[STATE, NEXT, STATE])), Ok(()));
        let field = || "clientState".to_owned();
        assert_eq!(
            verify(body(&[STATE, "entra-state-0123456789abcdeX"])),
            Err(BodySecretMismatch { field: field() })
        );
        assert_eq!(verify(body(&[])), Err(MissingBodySecret { field: field() }));
        assert_eq!(
            verify(Bytes::from_static(
                br#"{"value":[{"clientState":"entra-state-0123456789abcdef"},{}]}"#
            )),
            Err(MissingBodySecret { field: field() })
        );
        assert_eq!(
            verify(Bytes::from_static(b"junk")),
            Err(MissingBodySecret { field: field() })
        );
        // The header part passes without any header: the secret is in the body.
        assert!(
            auth.authenticate_headers(Source::Entra, &HeaderMap::new(), at(0))
                .is_ok()
        );
        // Another IdP's secret configured, Entra's not: refused.
        assert_eq!(
            both()
                .verify(Source::Entra, &HeaderMap::new(), body(&[STATE]), at(0))
                .map(drop),
            Err(NotConfigured { idp: Source::Entra })
        );
        assert!(!format!("{auth:?}").contains(STATE));
    }

    #[test]
    fn okta_uses_the_configured_header_name() {
        let auth = inbound(&[
            ("OKTA_AUTH_HEADER", "X-Okta-Secret"),
            ("OKTA_AUTH_SECRET", OKTA),
        ]);
        assert_eq!(
            post(&auth, Source::Okta, &[("x-okta-secret", OKTA)]),
            Ok(())
        );
        let outcome = post(&auth, Source::Okta, &[("Authorization", OKTA)]);
        assert_eq!(outcome, missing("x-okta-secret"));
    }

    #[test]
    fn okta_rotation_accepts_every_listed_secret() {
        let auth = inbound(&[("OKTA_AUTH_SECRET", &format!("{OKTA} , {OKTA_NEXT}"))]);
        assert_eq!(
            post(&auth, Source::Okta, &[("Authorization", OKTA)]),
            Ok(())
        );
        assert_eq!(
            post(&auth, Source::Okta, &[("Authorization", OKTA_NEXT)]),
            Ok(())
        );
        let joined = format!("{OKTA},{OKTA_NEXT}");
        let outcome = post(&auth, Source::Okta, &[("Authorization", &joined)]);
        assert_eq!(outcome, mismatch("authorization"));
    }

    #[test]
    fn duplicate_or_non_ascii_auth_headers_are_refused() {
        let auth = both();
        let twice = post(
            &auth,
            Source::Okta,
            &[("Authorization", OKTA), ("Authorization", OKTA)],
        );
        assert_eq!(
            twice,
            Err(DuplicateHeader {
                header: "authorization".into()
            })
        );
        let mut map = HeaderMap::new();
        let obs_text = HeaderValue::from_bytes(b"okta-secret-\xff123456789abcdef");
        map.insert(AUTHORIZATION, obs_text.expect("obs-text is a valid value"));
        let outcome = auth
            .verify(Source::Okta, &map, Bytes::new(), at(0))
            .map(drop);
        assert_eq!(outcome, mismatch("authorization"));
    }

    #[test]
    fn okta_challenge_is_returned_only_to_an_authenticated_get() {
        const CHALLENGE: &str = "x-okta-verification-challenge";
        let auth = both();
        let ok = headers(&[
            ("Authorization", OKTA),
            ("X-Okta-Verification-Challenge", "mRWp-9Uw7d0"),
        ]);
        assert_eq!(
            auth.verify_challenge(Source::Okta, &ok).as_deref(),
            Ok("mRWp-9Uw7d0")
        );
        let anonymous = auth
            .verify_challenge(Source::Okta, &headers(&[(CHALLENGE, "abc")]))
            .map(drop);
        assert_eq!(anonymous, missing("authorization"));
        let wrong = headers(&[("Authorization", AUTH0), (CHALLENGE, "abc")]);
        assert_eq!(
            auth.verify_challenge(Source::Okta, &wrong).map(drop),
            mismatch("authorization")
        );
        let too_long = "a".repeat(MAX_CHALLENGE_BYTES + 1);
        let bad: [&[&str]; 5] = [&[], &[""], &["has space"], &[&too_long], &["a", "b"]];
        for values in bad {
            let mut pairs = vec![("Authorization", OKTA)];
            pairs.extend(values.iter().map(|v| (CHALLENGE, *v)));
            let err = auth
                .verify_challenge(Source::Okta, &headers(&pairs))
                .expect_err("bad challenge");
            assert_eq!(err, MissingChallenge, "{values:?}");
            assert!(err.is_bad_request());
        }
    }

    #[test]
    fn auth0_accepts_bearer_and_raw_tokens_on_both_routes() {
        let auth = both();
        let good = [
            format!("Bearer {AUTH0}"),
            AUTH0.into(),
            format!("bearer   {AUTH0}"),
            format!("BEARER {AUTH0} "),
        ];
        let bad = [
            format!("Basic {AUTH0}"),
            format!("Bearer{AUTH0}"),
            format!("Bearer {OKTA}"),
            "Bearer ".into(),
        ];
        for source in [Source::Auth0Events, Source::Auth0Logs] {
            for value in &good {
                assert_eq!(
                    post(&auth, source, &[("Authorization", value)]),
                    Ok(()),
                    "{value}"
                );
            }
            for value in &bad {
                let outcome = post(&auth, source, &[("Authorization", value)]);
                assert_eq!(outcome, mismatch("authorization"), "{value}");
            }
        }
        // A Log Streams `httpAuthorization` configured with its scheme matches verbatim.
        let verbatim = format!("Bearer {AUTH0}");
        let auth = inbound(&[("AUTH0_AUTH_SECRET", &verbatim)]);
        assert_eq!(
            post(&auth, Source::Auth0Logs, &[("Authorization", &verbatim)]),
            Ok(())
        );
    }

    #[test]
    fn a_source_without_a_secret_is_refused() {
        let okta_only = inbound(&[("OKTA_AUTH_SECRET", OKTA)]);
        assert!(
            okta_only.is_configured(Source::Okta) && !okta_only.is_configured(Source::Auth0Logs)
        );
        for source in [Source::Auth0Events, Source::Auth0Logs] {
            let outcome = post(&okta_only, source, &[("Authorization", OKTA)]);
            assert_eq!(outcome, Err(NotConfigured { idp: source }));
        }
        let auth0_only = inbound(&[("AUTH0_AUTH_SECRET", AUTH0)]);
        let outcome = post(&auth0_only, Source::Okta, &[("Authorization", AUTH0)]);
        assert_eq!(outcome, Err(NotConfigured { idp: Source::Okta }));
        let get = headers(&[
            ("Authorization", AUTH0),
            ("x-okta-verification-challenge", "c"),
        ]);
        let outcome = auth0_only.verify_challenge(Source::Okta, &get);
        assert_eq!(outcome, Err(NotConfigured { idp: Source::Okta }));
    }

    #[test]
    fn config_errors_name_the_variable_and_never_the_value() {
        let err = try_config(&[("OKTA_AUTH_HEADER", "X-Okta-Secret")]).expect_err("no secret");
        let shown = err.to_string();
        assert!(
            shown.contains("OKTA_AUTH_SECRET") && shown.contains("AUTH0_AUTH_SECRET"),
            "{shown}"
        );
        let four = format!("{OKTA},{OKTA_NEXT},{AUTH0},{OKTA}x");
        let (two, empty) = (format!("{AUTH0},tiny-secret"), format!("{AUTH0},,"));
        let cases = [
            (
                "OKTA_AUTH_SECRET",
                "short-secret",
                "is shorter than 16 characters; use a generated secret",
                "short-secret",
            ),
            (
                "AUTH0_AUTH_SECRET",
                &two,
                "entry 2 is shorter than 16",
                "tiny-secret",
            ),
            ("AUTH0_AUTH_SECRET", &empty, "empty", AUTH0),
            ("OKTA_AUTH_SECRET", &four, "more than 3", OKTA),
            (
                "OKTA_AUTH_SECRET",
                "ünïcödé-secret-value-1234",
                "printable ASCII",
                "ünïcödé",
            ),
            (
                "WEBHOOK_SIGNING_SECRETS",
                "whsec_not*base64*secret",
                "not valid base64",
                "not*base64",
            ),
            (
                "WEBHOOK_SIGNING_SECRETS",
                "whsec_c2hvcnQta2V5",
                "fewer than 24 bytes",
                "c2hvcnQta2V5",
            ),
            (
                "OKTA_AUTH_HEADER",
                "bad header",
                "not a valid HTTP header name",
                "bad header",
            ),
        ];
        for (variable, value, problem, secret) in cases {
            // Later pairs win: `variable` may replace the baseline Okta secret.
            let err =
                try_config(&[("OKTA_AUTH_SECRET", OKTA), (variable, value)]).expect_err(problem);
            let shown = format!("{err} {err:?}");
            assert_eq!(err.variable, variable, "{shown}");
            assert!(
                shown.contains(problem) && !shown.contains(secret),
                "{shown}"
            );
        }
    }

    #[test]
    fn debug_and_failures_show_no_secret() {
        let auth = inbound(&[
            ("OKTA_AUTH_SECRET", &format!("{OKTA},{OKTA_NEXT}")),
            ("AUTH0_AUTH_SECRET", AUTH0),
            ("WEBHOOK_SIGNING_SECRETS", WH_SECRET),
        ]);
        let shown = format!("{auth:?}");
        assert!(shown.contains("redacted"), "{shown}");
        for secret in [OKTA, OKTA_NEXT, AUTH0, WH_SECRET, "C2FVsBQIhrscChlQIMV"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let received = "received-value-0123456789";
        let err =
            post(&auth, Source::Auth0Events, &[("Authorization", received)]).expect_err("wrong");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains(received) && !shown.contains(AUTH0),
            "{shown}"
        );
    }

    #[test]
    fn failure_reasons_are_stable_and_distinct() {
        let header = || "h".to_owned();
        let all = [
            NotConfigured { idp: Source::Okta },
            MissingHeader { header: header() },
            DuplicateHeader { header: header() },
            SecretMismatch { header: header() },
            MissingChallenge,
            SignatureHeadersMissing,
            SignatureMalformed,
            SignatureMismatch,
            TimestampTooOld,
            TimestampTooNew,
        ];
        let reasons: std::collections::BTreeSet<_> =
            all.iter().map(VerifyFailure::reason).collect();
        assert_eq!(reasons.len(), all.len());
        assert!(
            reasons
                .iter()
                .all(|r| r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        );
        assert_eq!(
            all.iter()
                .filter(|f| f.is_bad_request())
                .collect::<Vec<_>>(),
            [&MissingChallenge]
        );
    }

    fn signed(keys: &str) -> InboundAuth {
        inbound(&[
            ("AUTH0_AUTH_SECRET", AUTH0),
            ("WEBHOOK_SIGNING_SECRETS", keys),
        ])
    }

    /// An authenticated Auth0 delivery with Standard Webhooks headers [id, ts, sig].
    fn deliver(
        auth: &InboundAuth,
        [id, ts, sig]: [&str; 3],
        body: &str,
        now: u64,
    ) -> Result<Verified, VerifyFailure> {
        let bearer = format!("Bearer {AUTH0}");
        let map = headers(&[
            ("Authorization", &bearer),
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ]);
        auth.verify(
            Source::Auth0Events,
            &map,
            Bytes::copy_from_slice(body.as_bytes()),
            at(now),
        )
    }

    /// Issue 13 item 4: the server checks the headers before it reads the
    /// body. Everything that needs no body fails in the first step; only
    /// the signature over the body waits for the second.
    #[test]
    fn headers_are_checked_before_the_body() {
        let ts = &WH_TS.to_string();
        let auth = signed(WH_SECRET);
        let bearer = format!("Bearer {AUTH0}");
        let first = |pairs: &[(&str, &str)]| {
            auth.authenticate_headers(Source::Auth0Events, &headers(pairs), at(WH_TS))
                .map(|a| a.source())
        };
        assert_eq!(
            first(&[("Authorization", "Bearer wrong-token-wrong-token")]),
            Err(SecretMismatch {
                header: "authorization".into()
            })
        );
        assert_eq!(
            first(&[("Authorization", &bearer)]),
            Err(SignatureHeadersMissing)
        );
        let old = (WH_TS - 301).to_string();
        assert_eq!(
            first(&[
                ("Authorization", &bearer),
                ("webhook-id", WH_ID),
                ("webhook-timestamp", &old),
                ("webhook-signature", WH_SIG),
            ]),
            Err(TimestampTooOld)
        );
        let sent = [
            ("Authorization", bearer.as_str()),
            ("webhook-id", WH_ID),
            ("webhook-timestamp", ts),
            ("webhook-signature", WH_SIG),
        ];
        let step = || {
            auth.authenticate_headers(Source::Auth0Events, &headers(&sent), at(WH_TS))
                .expect("headers pass")
        };
        let verified = auth
            .verify_body(step(), Bytes::from_static(WH_BODY.as_bytes()))
            .expect("the spec vector");
        assert_eq!(verified.webhook_id(), Some(WH_ID));
        assert_eq!(
            auth.verify_body(step(), Bytes::from_static(b"{}"))
                .map(drop),
            Err(SignatureMismatch)
        );
        // Headers that passed a relay without signing do not pass one with.
        let plain = both()
            .authenticate_headers(Source::Auth0Events, &headers(&sent), at(WH_TS))
            .expect("no signature needed");
        assert_eq!(
            auth.verify_body(plain, Bytes::from_static(WH_BODY.as_bytes()))
                .map(drop),
            Err(SignatureHeadersMissing)
        );
    }

    #[test]
    fn standard_webhooks_spec_vector_verifies() {
        let ts = &WH_TS.to_string();
        let wrong_first =
            &format!("v1,Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE= v1a,ignored {WH_SIG}");
        let rotated = &format!("{WH_OTHER},{WH_SECRET}");
        let cases = [
            (WH_SECRET, WH_SIG, WH_TS),
            (WH_SECRET, wrong_first, WH_TS),
            (rotated, WH_SIG, WH_TS),
            (WH_SECRET.trim_start_matches("whsec_"), WH_SIG, WH_TS),
            (WH_SECRET, WH_SIG, WH_TS - 300),
            (WH_SECRET, WH_SIG, WH_TS + 300),
        ];
        for (keys, sig, now) in cases {
            let verified =
                deliver(&signed(keys), [WH_ID, ts, sig], WH_BODY, now).expect("spec vector");
            assert_eq!(verified.webhook_id(), Some(WH_ID));
            assert_eq!(verified.body().as_ref(), WH_BODY.as_bytes());
        }
    }

    #[test]
    fn standard_webhooks_refuses_tampering_and_stale_deliveries() {
        let auth = signed(WH_SECRET);
        let (ts, later) = (&WH_TS.to_string(), &(WH_TS + 1).to_string());
        let tampered_body = &WH_BODY.replace("test@", "evil@");
        let cases = [
            (
                [WH_ID, ts, WH_SIG],
                tampered_body.as_str(),
                WH_TS,
                SignatureMismatch,
            ),
            (
                ["msg_27UH4WbU6Z5A5EzD8u03UvzRbpK", ts, WH_SIG],
                WH_BODY,
                WH_TS,
                SignatureMismatch,
            ),
            ([WH_ID, later, WH_SIG], WH_BODY, WH_TS, SignatureMismatch),
            ([WH_ID, ts, WH_SIG], WH_BODY, WH_TS + 301, TimestampTooOld),
            ([WH_ID, ts, WH_SIG], WH_BODY, WH_TS - 301, TimestampTooNew),
            (
                [WH_ID, ts, &WH_SIG.replace("v1,", "v1a,")],
                WH_BODY,
                WH_TS,
                SignatureMalformed,
            ),
            ([WH_ID, ts, "v1,***"], WH_BODY, WH_TS, SignatureMalformed),
            (
                [WH_ID, "+1649367553", WH_SIG],
                WH_BODY,
                WH_TS,
                SignatureMalformed,
            ),
            (["msg.1", ts, WH_SIG], WH_BODY, WH_TS, SignatureMalformed),
            (["", ts, WH_SIG], WH_BODY, WH_TS, SignatureMalformed),
        ];
        for (sent, body, now, failure) in cases {
            assert_eq!(
                deliver(&auth, sent, body, now).map(drop),
                Err(failure),
                "{sent:?}"
            );
        }
        let other = deliver(&signed(WH_OTHER), [WH_ID, ts, WH_SIG], WH_BODY, WH_TS);
        assert_eq!(other.map(drop), Err(SignatureMismatch));
        // The signature is required on every source, and never replaces the shared secret.
        let unsigned = post(&auth, Source::Auth0Logs, &[("Authorization", AUTH0)]);
        assert_eq!(unsigned, Err(SignatureHeadersMissing));
        let anonymous = headers(&[
            ("webhook-id", WH_ID),
            ("webhook-timestamp", ts),
            ("webhook-signature", WH_SIG),
        ]);
        let outcome = auth.verify(
            Source::Auth0Events,
            &anonymous,
            Bytes::from_static(WH_BODY.as_bytes()),
            at(WH_TS),
        );
        assert_eq!(outcome.map(drop), missing("authorization"));
    }

    fn header_strategy() -> impl Strategy<Value = (String, Vec<u8>)> {
        let names = [
            "authorization",
            "x-okta-secret",
            "x-okta-verification-challenge",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        ];
        // Random bytes, sometimes behind a `Bearer ` scheme or a secret's prefix.
        let prefixes = ["", "Bearer ", "bearer  ", &OKTA[..15], &AUTH0[..15]];
        let values = (
            prop::sample::select(prefixes.to_vec()),
            prop::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(prefix, tail)| [prefix.as_bytes(), &tail].concat());
        (
            prop::sample::select(names.to_vec()).prop_map(str::to_owned),
            values,
        )
    }

    proptest! {
        #[test]
        fn arbitrary_requests_never_panic_and_never_verify(
            pairs in prop::collection::vec(header_strategy(), 0..8),
            body in prop::collection::vec(any::<u8>(), 0..256),
            now in any::<u32>(),
        ) {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(&value)) {
                    map.append(name, value);
                }
            }
            let header_only = [("OKTA_AUTH_HEADER", "X-Okta-Secret"), ("OKTA_AUTH_SECRET", OKTA), ("AUTH0_AUTH_SECRET", AUTH0)];
            let with_signing = [&header_only[..], &[("WEBHOOK_SIGNING_SECRETS", WH_SECRET)]].concat();
            for auth in [inbound(&header_only), inbound(&with_signing)] {
                for source in [Source::Okta, Source::Auth0Events, Source::Auth0Logs] {
                    let result = auth.verify(source, &map, Bytes::from(body.clone()), at(u64::from(now)));
                    prop_assert!(result.is_err());
                }
                prop_assert!(auth.verify_challenge(Source::Okta, &map).is_err());
            }
        }

        #[test]
        fn signed_deliveries_verify_for_any_body(body in prop::collection::vec(any::<u8>(), 0..256), id in "[A-Za-z0-9_-]{1,40}") {
            let auth = signed(&format!("{WH_OTHER},{WH_SECRET}"));
            let key = BASE64.decode(WH_SECRET.trim_start_matches("whsec_")).expect("vector key");
            let ts = WH_TS.to_string();
            let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", &body]).expect("hmac");
            let map = headers(&[
                ("Authorization", AUTH0),
                ("webhook-id", &id),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &format!("v1,{}", BASE64.encode(mac))),
            ]);
            let verified = auth.verify(Source::Auth0Logs, &map, Bytes::from(body.clone()), at(WH_TS));
            prop_assert_eq!(verified.map(|v| v.webhook_id().map(str::to_owned)), Ok(Some(id)));
        }
    }
}
