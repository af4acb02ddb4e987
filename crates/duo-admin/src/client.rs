//! The HTTP client: builds, signs and sends one request, reads Duo's envelope,
//! and applies the retry policy.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HeaderValue};
use serde::Deserialize;
use serde_json::Value;

use crate::date;
use crate::error::{DuoError, DuoFailure, TransportKind};
use crate::pace::Pacer;
use crate::retry::{Idempotency, RetryPolicy};
use crate::secret::Secret;
use crate::sign::{self, SigVersion, SignInput};

/// Answers larger than this are refused rather than buffered: Duo's largest
/// pages are a few hundred KiB.
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// Which header carries the request date. Line 1 of the canonical string is
/// the same either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DateHeader {
    /// `Date:`, as `duo_client_python` and `duo_api_golang` send it.
    #[default]
    Date,
    /// `X-Duo-Date:`, as `duo_hmac_python` sends it; with v5 it is also part
    /// of the hashed `X-Duo-*` headers.
    XDuoDate,
}

/// Everything the client needs. `Debug` shows no secret (and the base URL
/// without any `user:password@`).
#[derive(Clone)]
pub struct DuoConfig {
    /// The API host that is signed, e.g. `api-1234abcd.duosecurity.com`.
    pub api_host: String,
    /// The Admin API integration key (`DI…`).
    pub ikey: String,
    /// The Admin API secret key.
    pub skey: Secret,
    /// Where requests go, when not `https://{api_host}`: a proxy, or the
    /// simulator at `http://127.0.0.1:9000`. Signing still uses `api_host`.
    pub base_url: Option<String>,
    pub sig_version: SigVersion,
    pub date_header: DateHeader,
    pub retry: RetryPolicy,
    /// Timeout of one attempt (connect + answer).
    pub timeout: Duration,
    /// The process's Duo pace ([`Pacer`]), shared by every clone of this
    /// config and every client built from it; `None` sends at once.
    pub pace: Option<Arc<Pacer>>,
}

impl std::fmt::Debug for DuoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoConfig")
            .field("api_host", &self.api_host)
            .field("ikey", &self.ikey)
            .field("skey", &self.skey)
            .field("base_url", &self.base_url.as_deref().map(redact_userinfo))
            .field("sig_version", &self.sig_version)
            .field("date_header", &self.date_header)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("pace", &self.pace)
            .finish()
    }
}

/// `raw` with any `user:password@` of its authority replaced by
/// `[redacted]@`, whether or not `raw` parses as a URL: what an error
/// message, a log line or `Debug` may show of a configured URL.
pub fn redact_userinfo(raw: &str) -> std::borrow::Cow<'_, str> {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let rest = raw.get(start..).unwrap_or_default();
    let authority = rest.find(['/', '?', '#']).map_or(rest, |end| &rest[..end]);
    match authority.rfind('@') {
        Some(at) => {
            std::borrow::Cow::Owned(format!("{}[redacted]@{}", &raw[..start], &rest[at + 1..]))
        }
        None => std::borrow::Cow::Borrowed(raw),
    }
}

impl DuoConfig {
    pub fn new(api_host: impl Into<String>, ikey: impl Into<String>, skey: Secret) -> Self {
        Self {
            api_host: api_host.into(),
            ikey: ikey.into(),
            skey,
            base_url: None,
            sig_version: SigVersion::default(),
            date_header: DateHeader::default(),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            pace: None,
        }
    }

    /// The base URL requests are sent to, validated: `http(s)://host[:port]`
    /// with no path, query or credentials.
    fn resolved_base_url(&self) -> Result<String, DuoError> {
        let raw = match &self.base_url {
            Some(url) => url.trim().trim_end_matches('/').to_owned(),
            None => format!("https://{}", self.api_host.trim()),
        };
        // Error messages show the URL without credentials.
        let shown = redact_userinfo(&raw);
        let url = reqwest::Url::parse(&raw)
            .map_err(|e| DuoError::Config(format!("base URL {shown:?} is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(DuoError::Config(format!(
                "base URL {shown:?} must use http or https"
            )));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DuoError::Config(format!("base URL {shown:?} has no host")));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DuoError::Config(format!(
                "base URL {shown:?} must not carry credentials"
            )));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(DuoError::Config(format!(
                "base URL {shown:?} must be scheme://host[:port] only (the signed path is Duo's)"
            )));
        }
        Ok(raw)
    }

    fn validate(&self) -> Result<(), DuoError> {
        if self.api_host.trim().is_empty() || self.api_host.contains(['/', ' ']) {
            return Err(DuoError::Config(format!(
                "API host {:?} must be a bare host name like api-1234abcd.duosecurity.com",
                self.api_host
            )));
        }
        if self.ikey.trim().is_empty() {
            return Err(DuoError::Config("integration key is empty".into()));
        }
        if self.skey.is_empty() {
            return Err(DuoError::Config("secret key is empty".into()));
        }
        if self.retry.max_attempts == 0 {
            return Err(DuoError::Config(
                "retry.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Counters of what the client sent and got back, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// Of those, answered 429.
    pub rate_limited: u64,
    /// Of those, answered 5xx.
    pub server_errors: u64,
    /// Attempts that got no answer.
    pub transport_errors: u64,
    /// Attempts that were retries.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    rate_limited: AtomicU64,
    server_errors: AtomicU64,
    transport_errors: AtomicU64,
    retries: AtomicU64,
}

tokio::task_local! {
    static TASK_CALLS: std::cell::Cell<TaskCalls>;
}

/// What one task's Duo requests met (see [`count_task_calls`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCalls {
    /// HTTP requests sent (every attempt counts).
    pub requests: u64,
    /// Of those, answered 429 (rate limited).
    pub rate_limited: u64,
}

/// Runs `fut` and counts the Duo requests it sent (every attempt counts),
/// whichever client sent them. The count is per task, so concurrent work on
/// other tasks does not leak into it: this is how the relay reports "Duo
/// calls" per event.
pub async fn count_calls<F: std::future::Future>(fut: F) -> (F::Output, u64) {
    let (out, calls) = count_task_calls(fut).await;
    (out, calls.requests)
}

/// Like [`count_calls`], and also counts the 429 answers among them.
pub async fn count_task_calls<F: std::future::Future>(fut: F) -> (F::Output, TaskCalls) {
    TASK_CALLS
        .scope(std::cell::Cell::new(TaskCalls::default()), async move {
            let out = fut.await;
            (out, TASK_CALLS.with(std::cell::Cell::get))
        })
        .await
}

/// `metadata` of a list answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageMetadata {
    pub next_offset: Option<u64>,
    pub total_objects: Option<u64>,
}

/// A successful answer: Duo's `response` value and paging metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct DuoResponse {
    pub response: Value,
    pub metadata: PageMetadata,
}

/// A Duo Admin API client. Cheap to clone; clones share the connection pool
/// and counters.
#[derive(Clone)]
pub struct DuoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    config: DuoConfig,
    counters: Counters,
    rng: Mutex<fastrand::Rng>,
}

impl std::fmt::Debug for DuoClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuoClient")
            .field("base_url", &self.inner.base_url)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DuoClient {
    /// Builds a client; fails on an unusable configuration.
    pub fn new(config: DuoConfig) -> Result<Self, DuoError> {
        config.validate()?;
        let base_url = config.resolved_base_url()?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("idp-duo-relay/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| DuoError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base_url,
                config,
                counters: Counters::default(),
                rng: Mutex::new(fastrand::Rng::new()),
            }),
        })
    }

    pub fn config(&self) -> &DuoConfig {
        &self.inner.config
    }

    /// Where requests go (the base URL override or `https://{api_host}`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn stats(&self) -> CallStats {
        let c = &self.inner.counters;
        CallStats {
            requests: c.requests.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            server_errors: c.server_errors.load(Ordering::Relaxed),
            transport_errors: c.transport_errors.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }

    /// Sends one Admin API call with the retry policy and returns Duo's
    /// `response`. `path` is the full API path (`/admin/v1/users`); `params`
    /// go in the query (GET/DELETE) or the body (POST/PUT/PATCH).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        params: &[(String, String)],
        idempotency: Idempotency,
    ) -> Result<DuoResponse, DuoError> {
        let prepared = self.prepare(&method, path, params)?;
        let policy = &self.inner.config.retry;
        let pacer = self.inner.config.pace.as_deref();
        let mut slept = Duration::ZERO;
        let mut attempt: u32 = 1;
        loop {
            if let Some(pacer) = pacer {
                // Wait for the process's pace, within the same budget as
                // retries: a webhook answered in the request cannot wait
                // longer, and what cannot go now is retried later.
                match pacer.reserve_within(policy.budget.saturating_sub(slept)) {
                    Ok(wait) => {
                        if !wait.is_zero() {
                            tokio::time::sleep(wait).await;
                            slept += wait;
                        }
                    }
                    Err(wait) => return Err(paced_out(wait, attempt - 1)),
                }
            }
            let started = Instant::now();
            let result = self.send_once(&method, &prepared).await;
            let retryable = match &result {
                Ok(_) => false,
                Err(DuoError::RateLimited { .. }) => true,
                Err(DuoError::Server(_) | DuoError::Transport { .. }) => {
                    idempotency == Idempotency::Safe
                }
                Err(_) => false,
            };
            tracing::debug!(
                method = %method,
                path,
                attempt,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                outcome = match &result { Ok(_) => "ok".to_owned(), Err(e) => e.to_string() },
                "duo call"
            );
            let error = match result {
                Ok(response) => return Ok(response),
                Err(error) => error,
            };
            if !retryable || attempt >= policy.max_attempts {
                return Err(with_attempts(error, attempt));
            }
            let delay = match (pacer, &error) {
                // The shared pace slows down for everyone; the retry waits
                // for its next token at the reduced rate (above), not for a
                // backoff of its own.
                (Some(pacer), DuoError::RateLimited { .. }) => {
                    pacer.throttled();
                    Duration::ZERO
                }
                _ => {
                    let mut rng = self.inner.rng.lock().unwrap_or_else(|p| p.into_inner());
                    policy.backoff_with_jitter(attempt, &mut rng)
                }
            };
            if slept + delay > policy.budget {
                return Err(with_attempts(error, attempt));
            }
            tokio::time::sleep(delay).await;
            slept += delay;
            attempt += 1;
            self.inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The process's Duo pace, when one is set.
    pub fn pacer(&self) -> Option<&Arc<Pacer>> {
        self.inner.config.pace.as_ref()
    }

    /// Builds the wire form of a request once; only the date (and so the
    /// signature) changes between attempts.
    fn prepare(
        &self,
        method: &Method,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Prepared, DuoError> {
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(DuoError::InvalidRequest(format!(
                "path {path:?} must start with '/' and carry no query"
            )));
        }
        let version = self.inner.config.sig_version;
        let mut url = format!("{}{}", self.inner.base_url, path);
        let prepared = if sign::is_body_method(method.as_str()) {
            match version {
                SigVersion::V5 => {
                    let body = sign::json_body(params).ok_or_else(|| {
                        DuoError::InvalidRequest(
                            "a parameter is repeated; JSON bodies (signature v5) cannot carry repeated keys"
                                .into(),
                        )
                    })?;
                    Prepared {
                        url,
                        signed_params: Vec::new(),
                        body: Some((body, "application/json")),
                        path: path.to_owned(),
                    }
                }
                SigVersion::V2(_) => Prepared {
                    url,
                    body: Some((
                        sign::canonical_params(params).into_bytes(),
                        "application/x-www-form-urlencoded",
                    )),
                    signed_params: params.to_vec(),
                    path: path.to_owned(),
                },
            }
        } else {
            let query = sign::canonical_params(params);
            if !query.is_empty() {
                url.push('?');
                url.push_str(&query);
            }
            Prepared {
                url,
                signed_params: params.to_vec(),
                body: None,
                path: path.to_owned(),
            }
        };
        Ok(prepared)
    }

    async fn send_once(
        &self,
        method: &Method,
        prepared: &Prepared,
    ) -> Result<DuoResponse, DuoError> {
        let config = &self.inner.config;
        let date = date::rfc2822(SystemTime::now());
        let x_duo_headers = match config.date_header {
            DateHeader::XDuoDate => vec![("x-duo-date".to_owned(), date.clone())],
            DateHeader::Date => Vec::new(),
        };
        let body: &[u8] = prepared.body.as_ref().map_or(&[], |(b, _)| b.as_slice());
        let authorization = sign::authorization(
            config.sig_version,
            &config.ikey,
            &config.skey,
            &SignInput {
                date: &date,
                method: method.as_str(),
                host: &config.api_host,
                path: &prepared.path,
                params: &prepared.signed_params,
                body,
                x_duo_headers: &x_duo_headers,
            },
        )
        .map_err(|e| DuoError::InvalidRequest(e.to_string()))?;
        let mut auth_value = HeaderValue::from_str(&authorization).map_err(|_| {
            DuoError::InvalidRequest("integration key is not a valid header value".into())
        })?;
        auth_value.set_sensitive(true);

        let mut request = self
            .inner
            .http
            .request(method.clone(), &prepared.url)
            .timeout(config.timeout)
            .header(AUTHORIZATION, auth_value);
        request = match config.date_header {
            DateHeader::Date => request.header(DATE, &date),
            DateHeader::XDuoDate => request.header("x-duo-date", &date),
        };
        if let Some((bytes, content_type)) = &prepared.body {
            request = request
                .header(CONTENT_TYPE, *content_type)
                .body(bytes.clone());
        }

        let counters = &self.inner.counters;
        let sent = request.send().await;
        // A request the HTTP client could not even build (e.g. a URL over
        // the ~64 KiB a URI may hold: "Parsed Url is not a valid Uri") was
        // never sent, and sending it again cannot succeed: permanent.
        if let Err(e) = &sent
            && e.is_builder()
        {
            return Err(DuoError::InvalidRequest(error_text(e)));
        }
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let _ = TASK_CALLS.try_with(|c| {
            let mut n = c.get();
            n.requests += 1;
            c.set(n);
        });
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                return Err(transport_error(&e));
            }
        };
        let status = response.status().as_u16();
        if status == 429 {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            let _ = TASK_CALLS.try_with(|c| {
                let mut n = c.get();
                n.rate_limited += 1;
                c.set(n);
            });
        } else if status >= 500 {
            counters.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(DuoError::Decode {
                            status,
                            reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
                        });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    counters.transport_errors.fetch_add(1, Ordering::Relaxed);
                    return Err(transport_error(&e));
                }
            }
        }
        parse_envelope(status, &bytes)
    }
}

#[derive(Debug)]
struct Prepared {
    url: String,
    path: String,
    /// Parameters on canonical line 5.
    signed_params: Vec<(String, String)>,
    body: Option<(Vec<u8>, &'static str)>,
}

/// A call not sent because the pace had no token free within the retry
/// budget: as transient as the 429 Duo would have answered.
fn paced_out(wait: Duration, attempts: u32) -> DuoError {
    DuoError::RateLimited {
        failure: DuoFailure {
            status: 429,
            code: None,
            message: format!(
                "not sent: the Duo pace (DUO_RATE_PER_MINUTE) has no call free for {} ms, past the retry budget",
                wait.as_millis()
            ),
            detail: None,
        },
        attempts,
    }
}

fn with_attempts(error: DuoError, attempts: u32) -> DuoError {
    match error {
        DuoError::RateLimited { failure, .. } => DuoError::RateLimited { failure, attempts },
        other => other,
    }
}

fn transport_error(e: &reqwest::Error) -> DuoError {
    let kind = if e.is_timeout() {
        TransportKind::Timeout
    } else if e.is_connect() {
        TransportKind::Connect
    } else {
        TransportKind::Other
    };
    DuoError::Transport {
        kind,
        message: error_text(e),
    }
}

/// A reqwest error's text with its causes, without the URL: it carries
/// query parameters (user names, emails).
fn error_text(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    if let Some(url) = e.url() {
        message = message.replace(url.as_str(), "<duo>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

#[derive(Deserialize)]
struct RawEnvelope {
    stat: Option<String>,
    response: Option<Value>,
    metadata: Option<Value>,
    code: Option<Value>,
    message: Option<String>,
    message_detail: Option<Value>,
}

/// Reads Duo's envelope from an answer. Pure, so every malformed shape is
/// unit-tested: non-JSON, truncated, `stat: FAIL` with a 200, missing
/// `response`.
pub fn parse_envelope(status: u16, body: &[u8]) -> Result<DuoResponse, DuoError> {
    let success = (200..300).contains(&status);
    let raw: RawEnvelope = match serde_json::from_slice(body) {
        Ok(raw) => raw,
        Err(e) if success => {
            return Err(DuoError::Decode {
                status,
                reason: format!("not Duo's JSON envelope: {e}"),
            });
        }
        Err(_) => {
            return Err(DuoError::from_failure(DuoFailure {
                status,
                code: None,
                message: format!("non-JSON answer of {} bytes", body.len()),
                detail: None,
            }));
        }
    };
    let stat = raw.stat.as_deref().map(str::to_ascii_uppercase);
    match (stat.as_deref(), success) {
        (Some("OK"), true) => {
            let response = raw.response.ok_or_else(|| DuoError::Decode {
                status,
                reason: "stat OK without a response".into(),
            })?;
            Ok(DuoResponse {
                response,
                metadata: parse_metadata(raw.metadata.as_ref()),
            })
        }
        (Some("FAIL"), _) | (_, false) => Err(DuoError::from_failure(DuoFailure {
            status,
            code: raw
                .code
                .as_ref()
                .and_then(value_as_u64)
                .and_then(|c| u32::try_from(c).ok()),
            message: raw.message.unwrap_or_default(),
            detail: raw.message_detail.map(|d| match d {
                Value::String(s) => s,
                other => other.to_string(),
            }),
        })),
        (other, true) => Err(DuoError::Decode {
            status,
            reason: format!("unexpected stat {other:?}"),
        }),
    }
}

fn parse_metadata(metadata: Option<&Value>) -> PageMetadata {
    let Some(Value::Object(map)) = metadata else {
        return PageMetadata::default();
    };
    PageMetadata {
        next_offset: map.get("next_offset").and_then(value_as_u64),
        total_objects: map.get("total_objects").and_then(value_as_u64),
    }
}

/// Duo sends numbers, but some endpoints have sent numeric strings.
fn value_as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_envelope_with_paging() {
        let r = parse_envelope(
            200,
            br#"{"stat":"OK","response":[1,2],"metadata":{"next_offset":2,"total_objects":"5"}}"#,
        )
        .unwrap();
        assert_eq!(r.response, serde_json::json!([1, 2]));
        assert_eq!(r.metadata.next_offset, Some(2));
        assert_eq!(r.metadata.total_objects, Some(5));
    }

    #[test]
    fn fail_with_200_is_an_error() {
        let e = parse_envelope(
            200,
            br#"{"stat":"FAIL","code":40401,"message":"Resource not found"}"#,
        )
        .unwrap_err();
        assert!(e.is_not_found(), "{e:?}");
    }

    #[test]
    fn non_json_and_truncated_answers() {
        assert!(matches!(
            parse_envelope(200, b"<html>oops</html>"),
            Err(DuoError::Decode { status: 200, .. })
        ));
        assert!(matches!(
            parse_envelope(200, br#"{"stat":"OK","respon"#),
            Err(DuoError::Decode { .. })
        ));
        assert!(matches!(
            parse_envelope(200, b""),
            Err(DuoError::Decode { .. })
        ));
        // A proxy's HTML 502 is a server error, so it is retried.
        assert!(matches!(
            parse_envelope(502, b"<html>bad gateway</html>"),
            Err(DuoError::Server(DuoFailure {
                status: 502,
                code: None,
                ..
            }))
        ));
        assert!(matches!(
            parse_envelope(200, br#"{"stat":"OK"}"#),
            Err(DuoError::Decode { .. })
        ));
        assert!(matches!(
            parse_envelope(200, br#"{"stat":"MAYBE","response":1}"#),
            Err(DuoError::Decode { .. })
        ));
        assert!(matches!(
            parse_envelope(200, b"[1,2]"),
            Err(DuoError::Decode { .. })
        ));
        assert!(matches!(
            parse_envelope(200, &[0xff, 0xfe, 0x00]),
            Err(DuoError::Decode { .. })
        ));
    }

    #[test]
    fn failure_fields_are_kept() {
        let e = parse_envelope(
            400,
            br#"{"stat":"FAIL","code":"40002","message":"Invalid request parameters","message_detail":"username"}"#,
        )
        .unwrap_err();
        let f = e.failure().unwrap();
        assert_eq!(f.code, Some(40002));
        assert_eq!(f.detail.as_deref(), Some("username"));
        assert!(matches!(e, DuoError::InvalidParameter(_)));
    }

    #[test]
    fn ok_stat_with_error_status_is_an_error() {
        assert!(matches!(
            parse_envelope(503, br#"{"stat":"OK","response":1}"#),
            Err(DuoError::Server(_))
        ));
    }

    #[test]
    fn base_url_validation() {
        let mut c = DuoConfig::new("api-x.duosecurity.com", "DIX", Secret::new("s"));
        assert_eq!(
            c.resolved_base_url().unwrap(),
            "https://api-x.duosecurity.com"
        );
        c.base_url = Some("http://127.0.0.1:9000/".into());
        assert_eq!(c.resolved_base_url().unwrap(), "http://127.0.0.1:9000");
        for bad in ["ftp://x", "http://x/admin", "not a url", "http://u:p@x"] {
            c.base_url = Some(bad.into());
            assert!(
                matches!(c.resolved_base_url(), Err(DuoError::Config(_))),
                "{bad}"
            );
        }
        // Issue 13 item 7: credentials in the URL are refused and never
        // shown — not in the error, not in Debug — parseable or not.
        for bad in [
            "http://admin:hunter2-pw@127.0.0.1:9000",
            "http://:hunter2-pw@127.0.0.1:9000",
            "https://admin:hunter2-pw@proxy.example:notaport",
            "https://admin:hunter2-pw@proxy.example/path?q=1",
            "ftp://admin:hunter2-pw@x",
            "admin:hunter2-pw@proxy.example",
        ] {
            c.base_url = Some(bad.into());
            let shown = format!("{:?} {c:?}", c.resolved_base_url());
            assert!(shown.contains("Config"), "{bad}: {shown}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("admin:"),
                "{bad}: {shown}"
            );
            assert!(shown.contains("[redacted]@"), "{bad}: {shown}");
        }
        assert_eq!(
            redact_userinfo("http://127.0.0.1:9000/a@b"),
            "http://127.0.0.1:9000/a@b"
        );
        let mut c = DuoConfig::new("https://api-x.duosecurity.com", "DIX", Secret::new("s"));
        assert!(c.validate().is_err());
        c.api_host = "api-x.duosecurity.com".into();
        c.skey = Secret::new("");
        assert!(c.validate().is_err());
    }
}
