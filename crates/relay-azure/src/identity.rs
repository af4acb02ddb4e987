//! Microsoft Entra ID tokens for Azure Storage (and, at start-up, Key Vault)
//! from the Function App's managed identity:
//! `GET $IDENTITY_ENDPOINT?resource=https://storage.azure.com/&api-version=2019-08-01`
//! with `X-IDENTITY-HEADER: $IDENTITY_HEADER` answers
//! `{"access_token": …, "expires_on": "<epoch seconds>", …}`
//! (learn.microsoft.com/azure/app-service/overview-managed-identity, "REST
//! endpoint reference"). Tokens live about an hour; one is cached and
//! refreshed five minutes before it expires.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relay_core::store::StoreError;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::settings::{ManagedIdentity, STORAGE_RESOURCE};

/// Refresh this long before `expires_on`.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A cached token source for one resource.
pub(crate) struct TokenSource {
    identity: ManagedIdentity,
    /// The resource the tokens are for, and its name in error messages.
    resource: &'static str,
    label: &'static str,
    cached: Mutex<Option<(String, u64)>>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// A string of epoch seconds in api-version 2019-08-01 (a number in
    /// some other implementations; both are accepted).
    expires_on: serde_json::Value,
}

impl TokenSource {
    /// Tokens for Azure Storage.
    pub(crate) fn new(identity: ManagedIdentity) -> Self {
        Self::for_resource(identity, STORAGE_RESOURCE, "Azure Storage")
    }

    pub(crate) fn for_resource(
        identity: ManagedIdentity,
        resource: &'static str,
        label: &'static str,
    ) -> Self {
        Self {
            identity,
            resource,
            label,
            cached: Mutex::new(None),
        }
    }

    /// A bearer token valid for at least the refresh margin.
    pub(crate) async fn token(&self, http: &reqwest::Client) -> Result<String, StoreError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut cached = self.cached.lock().await;
        if let Some((token, expires_on)) = cached.as_ref()
            && *expires_on > now + REFRESH_MARGIN.as_secs()
        {
            return Ok(token.clone());
        }
        let mut url = self.identity.endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("resource", self.resource);
            query.append_pair("api-version", "2019-08-01");
            if let Some(client_id) = &self.identity.client_id {
                query.append_pair("client_id", client_id);
            }
        }
        let label = self.label;
        let failed = |what: String| {
            StoreError::Backend(format!(
                "managed identity token for {label} (IDENTITY_ENDPOINT): {what}"
            ))
        };
        let response = http
            .get(url)
            .header("X-IDENTITY-HEADER", &self.identity.header)
            .send()
            .await
            .map_err(|e| failed(format!("unreachable: {}", e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            // The body may say why (no identity, wrong client id); it holds
            // no token, but keep the log line short.
            let body = response.text().await.unwrap_or_default();
            let body: String = body.chars().take(200).collect();
            return Err(failed(format!("HTTP {}: {body}", status.as_u16())));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| failed(format!("reading the answer: {}", e.without_url())))?;
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|_| failed("the answer is not a token response".into()))?;
        let expires_on = match &answer.expires_on {
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
            serde_json::Value::Number(n) => n.as_u64(),
            _ => None,
        }
        // Unknown expiry: use it for ten minutes.
        .unwrap_or(now + 600);
        *cached = Some((answer.access_token.clone(), expires_on));
        Ok(answer.access_token)
    }
}
