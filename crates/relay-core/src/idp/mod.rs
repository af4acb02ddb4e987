//! Current values from the IdP's own API, for events that do not carry them
//! (Okta `user.account.update_profile` and `group.profile.update`, Auth0 role
//! assignments that name only role ids), and full listings for a later
//! reconcile.
//!
//! Owns: what every IdP API client shares — the HTTP plumbing (timeouts,
//! body cap, rate-limit waits, paging links), the answer types [`IdpUser`] /
//! [`IdpGroup`], [`IdpError`] and the [`IdpLookup`] trait. The clients
//! themselves live with their source: `source::okta::api::OktaApi` (Okta
//! Users/Groups API) and `source::auth0::api::Auth0Api` (Auth0 Management
//! API). Knows nothing about Duo, the planner or any cloud. Both clients are
//! optional: `from_config` answers `None` when their variables are unset.

use std::fmt::Write as _;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::{HeaderMap, LINK, RETRY_AFTER};

use crate::config::ConfigError;
use crate::event::{IdpKind, UserProfile, UserState};

/// A user as the IdP holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpUser {
    /// Okta `00u…` / Auth0 `auth0|…`.
    pub idp_id: String,
    pub profile: UserProfile,
    pub state: UserState,
}

/// A group (Okta group, Auth0 role) as the IdP holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpGroup {
    /// Okta `00g…` / Auth0 `rol_…`.
    pub idp_id: String,
    pub name: String,
}

/// Why an IdP call failed. `Display` names variables and statuses, never a
/// token, a client secret, an `Authorization` value or a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdpError {
    /// 404/410, or an id that cannot name anything (empty, `.`, `..`).
    #[error("not found in the IdP")]
    NotFound,
    /// Still 429 after the allowed waits, or the reset is further away than
    /// the policy lets a call wait. `reset_after` is the time left until the
    /// IdP's announced reset, when it announced one.
    #[error("rate limited by the IdP{}", reset_suffix(.reset_after))]
    RateLimited { reset_after: Option<Duration> },
    /// 401/403: the credential is wrong, expired, or lacks a permission.
    /// `variable` is the one to check; `hint` says what to fix.
    #[error("the IdP refused the relay's credentials (HTTP {status}): {hint}")]
    Unauthorized {
        status: u16,
        variable: &'static str,
        hint: &'static str,
    },
    /// Any other non-success status (3xx: redirects are not followed, so a
    /// token never travels to another host).
    #[error("the IdP answered HTTP {status}")]
    Http { status: u16 },
    /// Connect, TLS, timeout or a broken body; never includes the URL.
    #[error("could not reach the IdP: {0}")]
    Transport(String),
    /// The answer was not the expected shape.
    #[error("unexpected answer from the IdP: {0}")]
    Decode(String),
}

impl IdpError {
    /// Worth retrying later (a queue redelivery, the dead-letter replay):
    /// rate limits, transport trouble, 408 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Transport(_) => true,
            Self::Http { status } => *status == 408 || *status >= 500,
            Self::NotFound | Self::Unauthorized { .. } | Self::Decode(_) => false,
        }
    }
}

fn reset_suffix(reset_after: &Option<Duration>) -> String {
    match reset_after {
        Some(d) => format!(" (reset in {} ms)", d.as_millis()),
        None => String::new(),
    }
}

/// Looks up one user or group by the IdP's id. The planner uses this to fill
/// in what an event did not carry.
pub trait IdpLookup: Send + Sync {
    fn user(&self, idp_id: &str) -> impl Future<Output = Result<IdpUser, IdpError>> + Send;
    fn group(&self, idp_id: &str) -> impl Future<Output = Result<IdpGroup, IdpError>> + Send;
}

/// The access token of a client-credentials grant (Auth0's Management
/// API, Microsoft Graph), cached until `margin` before it expires (or half
/// its life when it lives less than twice the margin). The lock is held
/// across a fetch, so concurrent callers wait for one fetch. No `Debug` of
/// the token: it prints `[redacted]`.
pub(crate) struct TokenCache {
    slot: tokio::sync::Mutex<Option<(crate::Secret, std::time::Instant)>>,
    margin: Duration,
    /// Assumed when the answer has no `expires_in`.
    default_lifetime: Duration,
}

impl TokenCache {
    pub(crate) fn new(margin: Duration, default_lifetime: Duration) -> Self {
        Self {
            slot: tokio::sync::Mutex::new(None),
            margin,
            default_lifetime,
        }
    }

    /// The cached token, or a new one from `fetch`, which answers the
    /// token endpoint's body once its status was checked.
    pub(crate) async fn get<F>(
        &self,
        idp: &'static str,
        fetch: F,
    ) -> Result<crate::Secret, IdpError>
    where
        F: Future<Output = Result<Vec<u8>, IdpError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((token, fresh_until)) = slot.as_ref()
            && std::time::Instant::now() < *fresh_until
        {
            return Ok(token.clone());
        }
        let asked = std::time::Instant::now();
        let body = fetch.await?;
        // Never serde's message here: it could quote the token.
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            IdpError::Decode("token answer is not {access_token, expires_in}".into())
        })?;
        if answer.access_token.is_empty()
            || reqwest::header::HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
                .is_err()
        {
            return Err(IdpError::Decode(
                "token answer holds no usable access_token".into(),
            ));
        }
        let lifetime = answer
            .expires_in
            .map_or(self.default_lifetime, Duration::from_secs);
        tracing::debug!(
            idp,
            expires_in_s = lifetime.as_secs(),
            "fetched an API token"
        );
        let token = crate::Secret::new(answer.access_token);
        *slot = Some((token.clone(), asked + self.fresh_for(lifetime)));
        Ok(token)
    }

    /// Forgets `rejected` unless another caller already replaced it.
    pub(crate) async fn forget(&self, rejected: &crate::Secret) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(token, _)| token == rejected) {
            *slot = None;
        }
    }

    /// How long a token of this lifetime is reused.
    pub(crate) fn fresh_for(&self, lifetime: Duration) -> Duration {
        lifetime - self.margin.min(lifetime / 2)
    }
}

/// Deliberately no `Debug`: it holds the token.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<u64>,
}

/// One page of a listing as the IdP sent it: the raw JSON body and the
/// absolute `Link: rel="next"` target, if any. The System Log / tenant log
/// reader of `crate::catch_up` decodes it (the records go to the hook
/// parsers unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPage {
    pub body: Vec<u8>,
    pub next: Option<String>,
}

/// How long one call may take. The defaults suit the apply stage; a caller
/// that answers a webhook in the request may want shorter waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPolicy {
    /// Per HTTP request, from connect to the last body byte.
    pub timeout: Duration,
    /// How many 429s are answered by waiting for the reset and retrying.
    pub rate_limit_retries: u32,
    /// The longest wait for one reset. A reset further away is not waited
    /// for: the call fails at once with [`IdpError::RateLimited`] (which is
    /// transient), because retrying before the reset would only spend
    /// another request of the same bucket.
    pub max_rate_limit_wait: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            rate_limit_retries: 3,
            max_rate_limit_wait: Duration::from_secs(10),
        }
    }
}

/// Larger answers are refused: a page of 200 Okta users is well under 1 MiB.
const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// A 429 without a usable reset header is retried after this long.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// A reset already in the past (clock skew, second granularity) still waits
/// this long, so retries cannot spin.
const MIN_RATE_LIMIT_WAIT: Duration = Duration::from_millis(100);
/// A listing that pages on past this is looping, not large.
pub(crate) const MAX_PAGES: usize = 10_000;

/// An answer with its body read (capped).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// The HTTP plumbing both clients share: timeouts, body cap, rate limits.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    pub(crate) policy: CallPolicy,
    /// `okta` / `auth0`, for log fields.
    idp: &'static str,
    /// Epoch-seconds header announcing the rate-limit reset (`None`: only
    /// `Retry-After`).
    reset_header: Option<&'static str>,
    /// 503 with a `Retry-After` is waited out like a 429 (Microsoft Graph
    /// throttles with both).
    retry_unavailable: bool,
    /// HTTP requests sent (every attempt, 429s included), shared by clones:
    /// what a reconcile reports as its IdP calls.
    requests: Arc<AtomicU64>,
}

impl Http {
    pub(crate) fn new(
        idp: &'static str,
        reset_header: &'static str,
        variable: &'static str,
    ) -> Result<Self, ConfigError> {
        let policy = CallPolicy::default();
        let client = reqwest::Client::builder()
            .user_agent(concat!("idp-duo-relay/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                ConfigError::new(variable, format!("cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            client,
            policy,
            idp,
            reset_header: Some(reset_header),
            retry_unavailable: false,
            requests: Arc::new(AtomicU64::new(0)),
        })
    }

    /// An API that announces waits only with `Retry-After` (seconds) and
    /// throttles with 503 as well as 429 (Microsoft Graph:
    /// learn.microsoft.com/graph/throttling).
    pub(crate) fn with_retry_after_only(mut self) -> Self {
        self.reset_header = None;
        self.retry_unavailable = true;
        self
    }

    /// Requests sent so far by this client and its clones.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends the request `build` makes, waiting out 429s per the policy.
    /// Any other status is the caller's to classify.
    pub(crate) async fn send(
        &self,
        endpoint: &'static str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Answer, IdpError> {
        let mut retries = 0;
        loop {
            let answer = self.send_once(endpoint, build(&self.client)).await?;
            let throttled = answer.status == 429
                || (self.retry_unavailable
                    && answer.status == 503
                    && answer.headers.contains_key(RETRY_AFTER));
            if !throttled {
                return Ok(answer);
            }
            let reset_after =
                rate_limit_reset(&answer.headers, self.reset_header, SystemTime::now());
            let wait = reset_after
                .unwrap_or(DEFAULT_RATE_LIMIT_WAIT)
                .max(MIN_RATE_LIMIT_WAIT);
            if retries >= self.policy.rate_limit_retries || wait > self.policy.max_rate_limit_wait {
                tracing::warn!(
                    idp = self.idp,
                    endpoint,
                    retries,
                    wait_ms = wait.as_millis() as u64,
                    "IdP rate limit; giving up"
                );
                return Err(IdpError::RateLimited { reset_after });
            }
            retries += 1;
            tracing::warn!(
                idp = self.idp,
                endpoint,
                retry = retries,
                wait_ms = wait.as_millis() as u64,
                "IdP rate limit; waiting for the reset"
            );
            tokio::time::sleep(wait).await;
        }
    }

    async fn send_once(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<Answer, IdpError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = request
            .timeout(self.policy.timeout)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        tracing::debug!(idp = self.idp, endpoint, status, "IdP call");
        let headers = std::mem::take(response.headers_mut());
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

fn too_large() -> IdpError {
    IdpError::Decode(format!("answer larger than {MAX_BODY_BYTES} bytes"))
}

fn transport_error(e: reqwest::Error) -> IdpError {
    // Without the URL: it names users. Headers never appear in reqwest errors.
    let e = e.without_url();
    let mut message = if e.is_timeout() {
        format!("timed out: {e}")
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    IdpError::Transport(message)
}

/// The status classes both IdPs share once 2xx, 401/403 and 429 are handled.
pub(crate) fn status_error(status: u16) -> IdpError {
    match status {
        404 | 410 => IdpError::NotFound,
        status => IdpError::Http { status },
    }
}

/// A user object as the IdP sent it, decoded into `T` and kept whole (the
/// attributes attribute mapping reads, `crate::mapping`). Derefs to `T`.
pub(crate) struct WithRaw<T> {
    pub(crate) fields: T,
    pub(crate) raw: serde_json::Value,
}

impl<T> std::ops::Deref for WithRaw<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.fields
    }
}

impl<'de, T: serde::de::DeserializeOwned> serde::Deserialize<'de> for WithRaw<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json::Value::deserialize(d)?;
        let fields = T::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(Self { fields, raw })
    }
}

/// Decodes a JSON answer. The message names what was read and where it broke,
/// not serde's text, which can quote values from the body.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, IdpError> {
    serde_json::from_slice(body).map_err(|e| {
        IdpError::Decode(format!(
            "{what}: {:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

/// Time left until the announced reset: the `reset_header` (epoch seconds),
/// else `Retry-After` (seconds). `None` when neither is usable.
fn rate_limit_reset(
    headers: &HeaderMap,
    reset_header: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    if let Some(epoch) = reset_header.and_then(number) {
        let reset = UNIX_EPOCH + Duration::from_secs(epoch);
        return Some(reset.duration_since(now).unwrap_or(Duration::ZERO));
    }
    number(RETRY_AFTER.as_str()).map(Duration::from_secs)
}

/// The `rel="next"` target among the `Link` headers (one header per link, as
/// Okta sends them, or comma-joined).
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_in_link_value)
}

fn next_in_link_value(value: &str) -> Option<String> {
    let mut rest = value;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        let after = &rest[end + 1..];
        // This link's parameters run up to the next `<`.
        let params_end = after.find('<').unwrap_or(after.len());
        if after[..params_end].split(';').any(is_rel_next) {
            return Some(target.trim().to_owned());
        }
        rest = &after[params_end..];
    }
}

fn is_rel_next(param: &str) -> bool {
    let Some((name, value)) = param.split_once('=') else {
        return false;
    };
    let value = value.trim().trim_end_matches(',').trim().trim_matches('"');
    name.trim().eq_ignore_ascii_case("rel")
        && value
            .split_ascii_whitespace()
            .any(|rel| rel.eq_ignore_ascii_case("next"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters: safe as a
/// path segment (`auth0|abc` → `auth0%7Cabc`, `/` cannot add a segment) and
/// as a form value.
pub(crate) fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An id as one path segment. An empty id would turn `GET /users/{id}` into
/// the listing, and `.`/`..` would be resolved away, so those name nothing.
pub(crate) fn path_segment(idp_id: &str) -> Result<String, IdpError> {
    match idp_id {
        "" | "." | ".." => Err(IdpError::NotFound),
        id => Ok(encode_component(id)),
    }
}

/// `application/x-www-form-urlencoded` body.
pub(crate) fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Validates a base URL variable: `https://host[:port]` (a bare host means
/// https), or `http` to a loopback address for tests and local stand-ins.
/// No path, query, fragment or credentials.
pub(crate) fn base_url(
    variable: &'static str,
    value: &str,
    example: &str,
) -> Result<Url, ConfigError> {
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("https://{value}")
    };
    let bad = |problem: &str| ConfigError::new(variable, format!("{problem}, like {example}"));
    let url = Url::parse(&with_scheme).map_err(|_| bad("must be a URL"))?;
    let host = url.host_str().ok_or_else(|| bad("must name a host"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) => {}
        "http" => return Err(bad("must use https (http only for 127.0.0.1 or localhost)")),
        _ => return Err(bad("must be an https URL")),
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must have no path or query"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials"));
    }
    Ok(url)
}

/// `localhost` or a loopback address (`127.0.0.1`, `[::1]`): the only
/// hosts plain http may reach (tests and local stand-ins).
pub(crate) fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `https://host[:port]`, no trailing slash.
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Trims a profile value; blank is absent.
pub(crate) fn present(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `first last`, or whichever half exists.
pub(crate) fn joined_name(first: Option<&str>, last: Option<&str>) -> Option<String> {
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(one), None) | (None, Some(one)) => Some(one.to_owned()),
        (None, None) => None,
    }
}

/// What a reconcile (`crate::reconcile`) needs from an IdP. Each source's API client implements
/// it in the source's folder (`source::okta::api`, `source::auth0::api`,
/// `source::entra::api`); tests may implement it in memory.
pub trait IdpReader: Send + Sync {
    fn kind(&self) -> IdpKind;

    /// Every user, including deactivated/blocked ones (as `Disabled`): a
    /// user missing here is read as deleted in the IdP.
    fn list_users(&self) -> impl Future<Output = Result<Vec<IdpUser>, IdpError>> + Send;

    /// Every group (Okta group, Auth0 role) the relay may sync, before
    /// `GROUP_FILTER`.
    fn list_groups(&self) -> impl Future<Output = Result<Vec<IdpGroup>, IdpError>> + Send;

    /// The IdP ids of one group's members.
    fn list_member_ids(
        &self,
        group_id: &str,
    ) -> impl Future<Output = Result<Vec<String>, IdpError>> + Send;

    /// One user by id; `None` when the IdP says 404.
    fn user(&self, idp_id: &str) -> impl Future<Output = Result<Option<IdpUser>, IdpError>> + Send;

    /// The users whose login is `login` (Okta logins are unique; Auth0
    /// emails need not be).
    fn users_by_login(
        &self,
        login: &str,
    ) -> impl Future<Output = Result<Vec<IdpUser>, IdpError>> + Send;

    /// The groups one user belongs to, before `GROUP_FILTER`.
    fn user_groups(
        &self,
        idp_id: &str,
    ) -> impl Future<Output = Result<Vec<IdpGroup>, IdpError>> + Send;

    /// HTTP requests sent so far (for the report; 0 when not counted).
    fn calls(&self) -> u64;
}

/// A lookup's answer with "not found" as `None` (an [`IdpReader`]'s
/// `user`).
///
pub fn none_if_not_found(result: Result<IdpUser, IdpError>) -> Result<Option<IdpUser>, IdpError> {
    match result {
        Ok(user) => Ok(Some(user)),
        Err(IdpError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn next_link_in_separate_or_joined_headers() {
        let separate = headers(&[
            (
                "link",
                r#"<https://a.okta.com/api/v1/users?limit=200>; rel="self""#,
            ),
            (
                "link",
                r#"<https://a.okta.com/api/v1/users?after=00u2&limit=200>; rel="next""#,
            ),
        ]);
        assert_eq!(
            next_link(&separate).as_deref(),
            Some("https://a.okta.com/api/v1/users?after=00u2&limit=200")
        );
        let joined = headers(&[(
            "link",
            r#"<https://x/p?a=1>; rel="self", <https://x/p?after=b,c>; rel=next"#,
        )]);
        assert_eq!(next_link(&joined).as_deref(), Some("https://x/p?after=b,c"));
        let last = headers(&[("link", r#"<https://x/p>; rel="self""#)]);
        assert_eq!(next_link(&last), None);
        assert_eq!(next_link(&headers(&[("link", "garbage")])), None);
        let multi = headers(&[("link", r#"<https://x/n>; title="x"; rel="prefetch next""#)]);
        assert_eq!(next_link(&multi).as_deref(), Some("https://x/n"));
    }

    #[test]
    fn components_are_strictly_encoded() {
        assert_eq!(encode_component("auth0|abc"), "auth0%7Cabc");
        assert_eq!(encode_component("a/b c+d%é"), "a%2Fb%20c%2Bd%25%C3%A9");
        assert_eq!(encode_component("00u1-x_y.z~"), "00u1-x_y.z~");
        assert_eq!(path_segment(""), Err(IdpError::NotFound));
        assert_eq!(path_segment(".."), Err(IdpError::NotFound));
        assert_eq!(
            form_body(&[("grant_type", "client_credentials"), ("s", "a&b=c")]),
            "grant_type=client_credentials&s=a%26b%3Dc"
        );
    }

    #[test]
    fn rate_limit_reset_reads_epoch_seconds_then_retry_after() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_000_500);
        let h = headers(&[("x-rate-limit-reset", "1000002")]);
        assert_eq!(
            rate_limit_reset(&h, Some("x-rate-limit-reset"), now),
            Some(Duration::from_millis(1_500))
        );
        // Already past: no wait left (the caller still waits a minimum).
        let h = headers(&[("x-rate-limit-reset", "999999")]);
        assert_eq!(
            rate_limit_reset(&h, Some("x-rate-limit-reset"), now),
            Some(Duration::ZERO)
        );
        let h = headers(&[("x-ratelimit-reset", "soon"), ("retry-after", "3")]);
        assert_eq!(
            rate_limit_reset(&h, Some("x-ratelimit-reset"), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_reset(&HeaderMap::new(), Some("x-ratelimit-reset"), now),
            None
        );
    }

    #[test]
    fn base_url_accepts_https_and_loopback_http_only() {
        let ok = |v: &str| base_url("V", v, "https://acme.okta.com").map(|u| origin(&u));
        assert_eq!(
            ok("https://acme.okta.com/").unwrap(),
            "https://acme.okta.com"
        );
        assert_eq!(
            ok("acme.us.auth0.com").unwrap(),
            "https://acme.us.auth0.com"
        );
        assert_eq!(
            ok("http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(ok("http://localhost:1").unwrap(), "http://localhost:1");
        assert_eq!(ok("http://[::1]:1").unwrap(), "http://[::1]:1");
        for bad in [
            "http://acme.okta.com",
            "ftp://acme.okta.com",
            "https://acme.okta.com/api",
            "https://acme.okta.com?x=1",
            "https://u:p@acme.okta.com",
            "https://",
        ] {
            let err = ok(bad).unwrap_err();
            assert_eq!(err.variable, "V", "{bad}");
        }
    }

    #[test]
    fn transient_errors() {
        assert!(IdpError::RateLimited { reset_after: None }.is_transient());
        assert!(IdpError::Transport("x".into()).is_transient());
        assert!(IdpError::Http { status: 503 }.is_transient());
        assert!(!IdpError::Http { status: 400 }.is_transient());
        assert!(!IdpError::NotFound.is_transient());
        assert!(!IdpError::Decode("x".into()).is_transient());
    }

    #[test]
    fn names_join() {
        assert_eq!(
            joined_name(Some("Ada"), Some("Lovelace")).as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            joined_name(None, Some("Lovelace")).as_deref(),
            Some("Lovelace")
        );
        assert_eq!(joined_name(None, None), None);
        assert_eq!(present(Some("  ".into())), None);
    }
}
