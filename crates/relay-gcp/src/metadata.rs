//! The metadata server every Cloud Run instance can reach: OAuth access
//! tokens of the service's identity and the project id. No key file, no
//! client library: two documented GETs with `Metadata-Flavor: Google`.
//!
//! The host is `metadata.google.internal`, or `GCE_METADATA_HOST` (host or
//! host:port) — the variable Google's own client libraries (Go
//! `cloud.google.com/go/compute/metadata`, Python `google-auth`) honour, so
//! tests and local runs can point it at a stand-in.

use std::fmt;
use std::time::{Duration, Instant};

use relay_core::store::StoreError;

/// The documented metadata server host.
pub const DEFAULT_HOST: &str = "metadata.google.internal";

/// A token is refreshed this long before the metadata server says it
/// expires, so a request never goes out with one that dies in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// An OAuth access token. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the `Authorization: Bearer` header only.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

#[derive(Debug)]
struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// A metadata server client with a token cache (one fetch per token
/// lifetime, shared by concurrent requests).
#[derive(Debug)]
pub struct MetadataServer {
    base: String,
    http: reqwest::Client,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

impl MetadataServer {
    /// `host` is a host or host:port (`metadata.google.internal`,
    /// `127.0.0.1:8099`).
    pub fn new(host: &str, http: reqwest::Client) -> Self {
        Self {
            base: format!("http://{host}/computeMetadata/v1"),
            http,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// The project the service runs in (`project/project-id`).
    pub async fn project_id(&self) -> Result<String, StoreError> {
        let body = self.get("project/project-id").await?;
        let id = String::from_utf8_lossy(&body).trim().to_owned();
        if id.is_empty() {
            return Err(backend("metadata server: empty project id"));
        }
        Ok(id)
    }

    /// The default service account's access token, from the cache while it
    /// has more than a minute left.
    pub async fn access_token(&self) -> Result<AccessToken, StoreError> {
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref()
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let body = self.get("instance/service-accounts/default/token").await?;
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| backend("metadata server: token answer is not JSON"))?;
        let token = json["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| backend("metadata server: token answer has no access_token"))?;
        let lifetime = Duration::from_secs(json["expires_in"].as_u64().unwrap_or(0));
        let token = AccessToken::new(token);
        *cache = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(token)
    }

    /// Forgets the cached token (Firestore refused it: revoked or expired
    /// early), so the next call fetches a fresh one.
    pub async fn forget_token(&self) {
        *self.cache.lock().await = None;
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, StoreError> {
        let response = self
            .http
            .get(format!("{}/{path}", self.base))
            .header("Metadata-Flavor", "Google")
            .send()
            .await
            .map_err(|e| backend(format!("metadata server {path}: {}", transport(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(backend(format!(
                "metadata server {path}: HTTP {}",
                status.as_u16()
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| backend(format!("metadata server {path}: {}", transport(&e))))?;
        Ok(body.to_vec())
    }
}

pub(crate) fn backend(message: impl Into<String>) -> StoreError {
    StoreError::Backend(message.into())
}

/// Sends `request` and reads the whole answer: its status and its JSON body
/// (`Null` when there is none or it is not JSON). A transport failure
/// comes back described by [`transport`].
pub(crate) async fn send_for_json(
    request: reqwest::RequestBuilder,
) -> Result<(reqwest::StatusCode, serde_json::Value), &'static str> {
    let response = request.send().await.map_err(|e| transport(&e))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| transport(&e))?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    ))
}

/// A transport error, described without the URL (it carries nothing
/// secret here, but the kind is what an on-call engineer needs).
pub(crate) fn transport(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "answer cut short"
    } else {
        "request failed"
    }
}
