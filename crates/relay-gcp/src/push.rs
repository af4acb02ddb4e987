//! The queue worker on Cloud Run: `POST /pubsub/push`, where the Pub/Sub
//! push subscription delivers each queued event.
//!
//! The route is on the service's public URL (the IdPs must reach the same
//! service), so it authenticates every request before reading it: Pub/Sub
//! sends `Authorization: Bearer <OIDC token>` signed by Google for the
//! subscription's push service account, and the worker checks
//!
//! - the RS256 signature against Google's published keys
//!   (`https://www.googleapis.com/oauth2/v3/certs`, cached as long as its
//!   `Cache-Control` says, refetched at most once a minute for an unknown
//!   key id);
//! - `iss` = `https://accounts.google.com` (or `accounts.google.com`);
//! - `aud` = `RELAY_PUSH_AUDIENCE` (the subscription's `oidcToken.audience`);
//! - `exp` not passed (a minute of clock skew allowed);
//! - `email` = `RELAY_PUSH_SERVICE_ACCOUNT` with `email_verified`, and `iat`
//!   not in the future (a minute of skew).
//!
//! The JOSE work — header, algorithm, base64url, the RS256 signature (on
//! aws-lc-rs, `RSA_PKCS1_2048_8192_SHA256`), `exp`/`iss`/`aud` with all
//! three required — is the `jsonwebtoken` crate's; this module fetches and
//! caches the keys and checks the claims that are Google's own
//! ([`check_claims`]). Only a token whose signature verified is read.
//!
//! Anything else gets 401 with an empty body and nothing is parsed, queued
//! or sent to Duo (503 when Google's keys cannot be fetched: Pub/Sub then
//! retries). There is no switch to turn the check off; the emulator, which
//! sends no token, is tested through a proxy that adds one.
//!
//! An authenticated push body, `{"message": {"data": <base64>, "messageId",
//! …}, "subscription", "deliveryAttempt"}`, goes to `Relay::process` with
//! `deliveryAttempt` as the attempt (Pub/Sub sets it when the subscription
//! has a dead-letter policy; without one the worker counts deliveries per
//! message id itself). Done → 204 (ack); Retry → 503 (nack: Pub/Sub
//! redelivers after the subscription's retry-policy backoff, and holds back
//! the later messages of the same ordering key); DeadLetter → the dead
//! letter, with its reason, is published to `RELAY_PUBSUB_DEAD_LETTER_TOPIC`,
//! then 204 (or 503 when that publish failed, so the message comes back).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use relay_core::apply::Directory;
use relay_core::config::{ConfigError, RawConfig, optional};
use relay_core::pipeline::Relay;
use relay_core::queue::{DeadLetter, QueuePolicy, Settlement, dead_letter_to};
use relay_core::store::IdempotencyStore;
use serde_json::Value;

use relay_server::platform::{PushRefusal, push_answer, push_refused};

use crate::pubsub::PubSub;

/// The worker's route.
pub const PUSH_ROUTE: &str = "/pubsub/push";

/// Google's OIDC signing keys (JWKS).
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

const ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 60;

/// Keys are cached this long when the answer says nothing (capped at a day).
const DEFAULT_KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// An unknown key id refetches the keys at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(60);

/// Deliveries counted per message id when Pub/Sub sends no
/// `deliveryAttempt`, at most this many at once.
const MAX_COUNTED: usize = 10_000;

/// Why a push request was refused. Never holds the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    MissingToken,
    Malformed,
    Algorithm,
    UnknownKey,
    Signature,
    Expired,
    Issuer,
    Audience,
    ServiceAccount,
    EmailNotVerified,
    /// Google's keys could not be fetched (answered 503, not 401).
    KeysUnavailable,
}

impl AuthFailure {
    /// The refusal a `jsonwebtoken` error stands for.
    fn of_jwt(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::InvalidAlgorithmName => Self::Algorithm,
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => Self::Expired,
            ErrorKind::InvalidIssuer => Self::Issuer,
            ErrorKind::InvalidAudience => Self::Audience,
            ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_) => Self::Malformed,
            // A bad signature, or a published key that cannot verify one.
            _ => Self::Signature,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingToken => "no bearer token",
            Self::Malformed => "malformed token",
            Self::Algorithm => "token not signed with RS256",
            Self::UnknownKey => "token signed with an unknown key",
            Self::Signature => "bad token signature",
            Self::Expired => "token expired or not yet valid",
            Self::Issuer => "token not issued by Google",
            Self::Audience => "token for another audience",
            Self::ServiceAccount => "token of another service account",
            Self::EmailNotVerified => "token email not verified",
            Self::KeysUnavailable => "Google's signing keys are unavailable",
        }
    }
}

#[derive(Debug, Default)]
struct KeySet {
    keys: HashMap<String, DecodingKey>,
    fresh_until: Option<Instant>,
    fetched_at: Option<Instant>,
}

/// Google's signing keys, fetched on demand and cached.
pub struct Jwks {
    url: String,
    http: reqwest::Client,
    set: tokio::sync::Mutex<KeySet>,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    pub fn new(url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            url: url.to_owned(),
            http,
            set: tokio::sync::Mutex::new(KeySet::default()),
        }
    }

    async fn fetch(&self) -> Result<(HashMap<String, DecodingKey>, Duration), String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("fetching {}: {}", self.url, e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("fetching {}: HTTP {}", self.url, status.as_u16()));
        }
        let max_age = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(',')
                    .filter_map(|d| d.trim().strip_prefix("max-age="))
                    .find_map(|n| n.trim().parse::<u64>().ok())
            })
            .map_or(DEFAULT_KEYS_MAX_AGE, Duration::from_secs)
            .min(Duration::from_secs(86_400));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("fetching {}: {}", self.url, e.without_url()))?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|_| format!("{}: the answer is not a JWKS", self.url))?;
        let mut keys = HashMap::new();
        for key in body["keys"].as_array().into_iter().flatten() {
            if key["kty"] != "RSA" {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) =
                (key["kid"].as_str(), key["n"].as_str(), key["e"].as_str())
            else {
                continue;
            };
            if let Ok(decoding) = DecodingKey::from_rsa_components(n, e) {
                keys.insert(kid.to_owned(), decoding);
            }
        }
        Ok((keys, max_age))
    }

    /// The key `kid`, fetching the set when it is stale or (at most once a
    /// minute) when the id is unknown. A failed fetch keeps using the keys
    /// already known.
    async fn key(&self, kid: &str) -> Result<DecodingKey, AuthFailure> {
        let mut set = self.set.lock().await;
        let now = Instant::now();
        let fresh = set.fresh_until.is_some_and(|t| now < t);
        if fresh && let Some(key) = set.keys.get(kid) {
            return Ok(key.clone());
        }
        let may_fetch = !fresh || set.fetched_at.is_none_or(|t| now - t >= MIN_REFETCH);
        if may_fetch {
            set.fetched_at = Some(now);
            match self.fetch().await {
                Ok((keys, max_age)) => {
                    set.keys = keys;
                    set.fresh_until = Some(now + max_age);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch Google's OIDC signing keys");
                    if set.keys.is_empty() {
                        return Err(AuthFailure::KeysUnavailable);
                    }
                }
            }
        }
        set.keys.get(kid).cloned().ok_or(AuthFailure::UnknownKey)
    }
}

/// What a push token must say.
#[derive(Debug)]
pub struct PushAuth {
    pub audience: String,
    pub service_account: String,
    jwks: Jwks,
    /// RS256 only; `exp`, `iss` and `aud` required and checked.
    validation: Validation,
}

impl PushAuth {
    pub fn new(audience: &str, service_account: &str, jwks_url: &str) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&ISSUERS);
        validation.set_audience(&[audience]);
        validation.leeway = LEEWAY_SECS;
        Self {
            audience: audience.to_owned(),
            service_account: service_account.to_owned(),
            jwks: Jwks::new(jwks_url),
            validation,
        }
    }

    /// From `RELAY_PUSH_AUDIENCE`, `RELAY_PUSH_SERVICE_ACCOUNT` (both
    /// required in queue mode) and `RELAY_PUSH_JWKS_URL` (default Google's).
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let audience = optional(raw, "RELAY_PUSH_AUDIENCE").ok_or_else(|| {
            ConfigError::new(
                "RELAY_PUSH_AUDIENCE",
                "is not set: RELAY_MODE=queue accepts pushes only with an OIDC token for this audience (the push subscription's oidc_token.audience)",
            )
        })?;
        let account = optional(raw, "RELAY_PUSH_SERVICE_ACCOUNT").ok_or_else(|| {
            ConfigError::new(
                "RELAY_PUSH_SERVICE_ACCOUNT",
                "is not set: RELAY_MODE=queue accepts pushes only with an OIDC token of this service account (the push subscription's oidc_token.service_account_email)",
            )
        })?;
        if !account.contains('@') || account.contains(char::is_whitespace) {
            return Err(ConfigError::new(
                "RELAY_PUSH_SERVICE_ACCOUNT",
                "must be a service account email like relay-push@project.iam.gserviceaccount.com",
            ));
        }
        let jwks = optional(raw, "RELAY_PUSH_JWKS_URL").unwrap_or(GOOGLE_JWKS_URL);
        if reqwest::Url::parse(jwks).is_err() || !jwks.starts_with("http") {
            return Err(ConfigError::new(
                "RELAY_PUSH_JWKS_URL",
                "must be an http(s) URL",
            ));
        }
        Ok(Self::new(audience, account, jwks))
    }

    /// Checks the request's bearer token (see the module docs).
    pub async fn verify(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthFailure::MissingToken)?;
        // The header is read unverified only to pick the key; `decode`
        // checks the algorithm against `validation` again.
        let head = jsonwebtoken::decode_header(token).map_err(|e| AuthFailure::of_jwt(e.kind()))?;
        if head.alg != Algorithm::RS256 {
            return Err(AuthFailure::Algorithm);
        }
        let kid = head.kid.ok_or(AuthFailure::Malformed)?;
        let key = self.jwks.key(&kid).await?;
        // Signature first, then exp/iss/aud; only then are the claims read.
        let claims = jsonwebtoken::decode::<Value>(token, &key, &self.validation)
            .map_err(|e| AuthFailure::of_jwt(e.kind()))?
            .claims;
        check_claims(&claims, &self.service_account, unix_now())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The claims of a token whose signature, `exp`, `iss` and `aud`
/// `jsonwebtoken` has checked: Google's own, at time `now` (epoch seconds).
pub fn check_claims(claims: &Value, service_account: &str, now: i64) -> Result<(), AuthFailure> {
    let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(i64::MAX);
    if claims["iat"]
        .as_i64()
        .is_some_and(|iat| iat > now.saturating_add(leeway))
    {
        return Err(AuthFailure::Expired);
    }
    if !claims["email"]
        .as_str()
        .is_some_and(|email| email.eq_ignore_ascii_case(service_account))
    {
        return Err(AuthFailure::ServiceAccount);
    }
    let verified = match &claims["email_verified"] {
        Value::Bool(b) => *b,
        Value::String(s) => s == "true",
        _ => false,
    };
    if !verified {
        return Err(AuthFailure::EmailNotVerified);
    }
    Ok(())
}

/// One push request's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    pub message_id: String,
    /// `message.data` decoded: the queued event's JSON.
    pub text: String,
    pub delivery_attempt: Option<u32>,
}

/// Reads a push body; the error says why it is not one.
pub fn parse_push(body: &[u8]) -> Result<PushMessage, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("push body is not JSON: {e}"))?;
    let message = doc.get("message").ok_or("push body has no message")?;
    let message_id = message["messageId"]
        .as_str()
        .or_else(|| message["message_id"].as_str())
        .ok_or("push message has no messageId")?
        .to_owned();
    let data = message["data"].as_str().unwrap_or("");
    let bytes = BASE64
        .decode(data)
        .map_err(|_| "push message data is not base64".to_owned())?;
    let text = String::from_utf8(bytes).map_err(|_| "push message data is not UTF-8".to_owned())?;
    Ok(PushMessage {
        message_id,
        text,
        delivery_attempt: doc["deliveryAttempt"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1),
    })
}

/// What the worker route needs.
#[derive(Debug)]
pub struct PushWorker<D, S> {
    pub relay: Arc<Relay<D, S>>,
    pub pubsub: Arc<PubSub>,
    pub auth: PushAuth,
    pub policy: QueuePolicy,
    /// Deliveries per message id, when Pub/Sub sends no `deliveryAttempt`.
    counted: Mutex<HashMap<String, u32>>,
}

impl<D, S> PushWorker<D, S> {
    pub fn new(
        relay: Arc<Relay<D, S>>,
        pubsub: Arc<PubSub>,
        auth: PushAuth,
        policy: QueuePolicy,
    ) -> Self {
        Self {
            relay,
            pubsub,
            auth,
            policy,
            counted: Mutex::new(HashMap::new()),
        }
    }

    fn counted(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `deliveryAttempt`, else this instance's own count (a lower bound:
    /// other instances and restarts do not add to it).
    fn attempt(&self, message: &PushMessage) -> u32 {
        if let Some(n) = message.delivery_attempt {
            return n;
        }
        let mut counted = self.counted();
        if counted.len() >= MAX_COUNTED {
            counted.clear();
        }
        let n = counted.entry(message.message_id.clone()).or_insert(0);
        *n += 1;
        *n
    }

    fn forget(&self, message_id: &str) {
        self.counted().remove(message_id);
    }
}

/// `POST /pubsub/push`.
pub async fn push<D, S>(
    State(worker): State<Arc<PushWorker<D, S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    if let Err(failure) = worker.auth.verify(&headers).await {
        tracing::warn!(
            verify_failure = failure.reason(),
            "pubsub push refused: {}",
            failure.reason()
        );
        return push_refused(if failure == AuthFailure::KeysUnavailable {
            PushRefusal::KeysUnavailable
        } else {
            PushRefusal::Unauthorized
        });
    }
    let message = match parse_push(&body) {
        Ok(message) => message,
        Err(reason) => {
            // Authenticated, yet not a push body: keep it as a dead letter
            // rather than have Pub/Sub redeliver it forever.
            let letter = DeadLetter::new(&String::from_utf8_lossy(&body), &reason, 1);
            letter.log("-");
            return push_answer(dead_letter_to(worker.pubsub.as_ref(), &letter, "-").await);
        }
    };
    let attempt = worker.attempt(&message);
    let settlement = worker
        .relay
        .settle(
            &message.text,
            attempt,
            &worker.policy,
            worker.pubsub.as_ref(),
            &message.message_id,
        )
        .await;
    if settlement == Settlement::Settled {
        worker.forget(&message.message_id);
    }
    push_answer(settlement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const AUD: &str = "idp-duo-relay:relay:pubsub-push";
    const SA: &str = "relay-push@proj.iam.gserviceaccount.com";

    fn claims() -> Value {
        json!({
            "iss": "https://accounts.google.com",
            "aud": AUD,
            "email": SA,
            "email_verified": true,
            "iat": 1_000,
            "exp": 4_600,
            "sub": "1234567890",
        })
    }

    /// Google's own claims; the signature, `exp`, `iss` and `aud` are
    /// pinned through signed tokens in tests/pubsub_queue.rs
    /// (`push_tokens_are_verified_without_an_emulator`).
    #[test]
    fn claims_are_all_checked() {
        assert_eq!(check_claims(&claims(), SA, 2_000), Ok(()));
        let cases: [(&str, Value, AuthFailure); 5] = [
            ("iat", json!(9_000), AuthFailure::Expired),
            (
                "email",
                json!("someone@proj.iam.gserviceaccount.com"),
                AuthFailure::ServiceAccount,
            ),
            ("email", Value::Null, AuthFailure::ServiceAccount),
            (
                "email_verified",
                json!(false),
                AuthFailure::EmailNotVerified,
            ),
            (
                "email_verified",
                json!("yes"),
                AuthFailure::EmailNotVerified,
            ),
        ];
        for (field, value, failure) in cases {
            let mut c = claims();
            c[field] = value;
            assert_eq!(check_claims(&c, SA, 2_000), Err(failure), "{field}");
        }
        // A minute of skew on iat.
        let mut c = claims();
        c["iat"] = json!(2_060);
        assert_eq!(check_claims(&c, SA, 2_000), Ok(()));
        c["iat"] = json!(2_061);
        assert_eq!(check_claims(&c, SA, 2_000), Err(AuthFailure::Expired));
        let mut c = claims();
        c["email"] = json!(SA.to_uppercase());
        c["email_verified"] = json!("true");
        assert_eq!(check_claims(&c, SA, 2_000), Ok(()));
    }

    #[test]
    fn push_bodies() {
        let body = json!({
            "message": { "data": BASE64.encode("{\"v\":1}"), "messageId": "17", "attributes": {} },
            "subscription": "projects/p/subscriptions/s",
            "deliveryAttempt": 3,
        });
        let m = parse_push(body.to_string().as_bytes()).unwrap();
        assert_eq!(m.message_id, "17");
        assert_eq!(m.text, "{\"v\":1}");
        assert_eq!(m.delivery_attempt, Some(3));
        // The emulator's shape: no deliveryAttempt, snake_case twins.
        let body = json!({ "message": { "data": "", "message_id": "5" }, "subscription": "s" });
        let m = parse_push(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            (m.message_id.as_str(), m.text.as_str(), m.delivery_attempt),
            ("5", "", None)
        );
        assert!(parse_push(b"nope").unwrap_err().contains("not JSON"));
        assert!(parse_push(b"{}").unwrap_err().contains("no message"));
        let bad = json!({ "message": { "data": "%%%", "messageId": "1" } });
        assert!(
            parse_push(bad.to_string().as_bytes())
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn settings_are_required_and_named() {
        let raw = |pairs: &[(&str, &str)]| -> RawConfig {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let err = PushAuth::from_config(&raw(&[])).unwrap_err();
        assert_eq!(err.variable, "RELAY_PUSH_AUDIENCE");
        let err = PushAuth::from_config(&raw(&[("RELAY_PUSH_AUDIENCE", AUD)])).unwrap_err();
        assert_eq!(err.variable, "RELAY_PUSH_SERVICE_ACCOUNT");
        let err = PushAuth::from_config(&raw(&[
            ("RELAY_PUSH_AUDIENCE", AUD),
            ("RELAY_PUSH_SERVICE_ACCOUNT", "not-an-email"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "RELAY_PUSH_SERVICE_ACCOUNT");
        let ok = PushAuth::from_config(&raw(&[
            ("RELAY_PUSH_AUDIENCE", AUD),
            ("RELAY_PUSH_SERVICE_ACCOUNT", SA),
        ]))
        .unwrap();
        assert_eq!(ok.jwks.url, GOOGLE_JWKS_URL);
    }
}
