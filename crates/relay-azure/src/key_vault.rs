//! Key Vault references the platform has not resolved, read by the relay
//! itself at start-up.
//!
//! App Service resolves `@Microsoft.KeyVault(…)` app settings with the app's
//! identity when it starts the app, and passes the reference text instead
//! when it cannot ([`crate::settings`]). On a new deployment that is usually
//! a role assignment that has not taken effect yet: Azure documents up to
//! 10 minutes for Key Vault data-plane roles, and the platform tries a
//! failed reference again only at a restart, a configuration change or
//! after 24 hours (learn.microsoft.com/azure/app-service/app-service-key-vault-references,
//! "Rotation"). So before refusing to start, `relay-azure` reads each such
//! secret from Key Vault itself, with the same identity the module gives the
//! references (`AZURE_CLIENT_ID`, a user-assigned identity, through
//! `IDENTITY_ENDPOINT`), and keeps trying for [`Patience::START_UP`] while
//! Key Vault refuses (401/403), does not find it yet (404), throttles or
//! cannot be reached. The call: `GET {secret URL}?api-version=7.4` with a
//! bearer token for `https://vault.azure.net`, answering `{"value": …}`
//! (learn.microsoft.com/rest/api/keyvault/secrets/get-secret).
//!
//! The token goes only to `https://<vault>.vault.azure.net/secrets/…`
//! (Azure's public cloud); a reference anywhere else is not read. Neither a
//! value nor a reference (it names the vault) is ever logged or put in an
//! error: only the setting's name and Key Vault's HTTP status.

use std::fmt;
use std::time::{Duration, Instant};

use relay_core::config::RawConfig;
use reqwest::Url;
use serde::Deserialize;

use crate::identity::TokenSource;
use crate::settings::{
    KEY_VAULT_REFERENCE_PREFIX, UnresolvedKeyVaultReference, check_key_vault_references,
    managed_identity,
};

/// The resource a managed-identity token for Key Vault is requested for.
pub const KEY_VAULT_RESOURCE: &str = "https://vault.azure.net";

/// Key Vault's REST API version for Get Secret.
const API_VERSION: &str = "7.4";

/// Host names of Key Vaults in Azure's public cloud.
const VAULT_DNS_SUFFIX: &str = ".vault.azure.net";

/// One Key Vault request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long, and how often, start-up tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// Give up when the next attempt would start after this long.
    pub total: Duration,
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Patience {
    /// Two minutes, pausing 2 s doubling to 15 s. The Functions host
    /// restarts a handler that exits, and each start tries again, so a
    /// slower role assignment delays the relay rather than stopping it.
    pub const START_UP: Self = Self {
        total: Duration::from_secs(120),
        first_pause: Duration::from_secs(2),
        max_pause: Duration::from_secs(15),
    };
}

/// Settings the relay could not read from Key Vault either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{unresolved}. relay-azure could not read them with the managed identity either ({why})")]
pub struct KeyVaultReadError {
    pub unresolved: UnresolvedKeyVaultReference,
    /// Why, without a value or a reference: a missing identity, a reference
    /// that is not a secret of a vault.azure.net vault, Key Vault's last
    /// HTTP status, and for how long it was tried.
    pub why: String,
}

/// Replaces every setting that still holds a Key Vault reference with the
/// secret it names, read with the Function App's managed identity; returns
/// the names it replaced (none when the platform resolved everything).
pub async fn resolve_key_vault_references(
    raw: &mut RawConfig,
    patience: Patience,
) -> Result<Vec<String>, KeyVaultReadError> {
    resolve_with(raw, patience, is_public_vault_secret).await
}

/// A reference's secret URL, if it has the shape of one:
/// `SecretUri=https://<vault>/secrets/<name>[/<version>]`, or
/// `VaultName=<vault>;SecretName=<name>[;SecretVersion=<version>]` (public
/// cloud). Whether the token may go there is [`is_public_vault_secret`]'s.
fn parse_reference(value: &str) -> Option<Url> {
    let inner = value
        .trim()
        .strip_prefix(KEY_VAULT_REFERENCE_PREFIX)?
        .strip_suffix(')')?;
    let mut secret_uri = None;
    let (mut vault, mut name, mut version) = (None, None, None);
    for part in inner.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=')?;
        match key.trim().to_ascii_lowercase().as_str() {
            "secreturi" => secret_uri = Some(val.trim()),
            "vaultname" => vault = Some(val.trim()),
            "secretname" => name = Some(val.trim()),
            "secretversion" => version = Some(val.trim()),
            _ => return None,
        }
    }
    let url = match (secret_uri, vault, name) {
        (Some(uri), None, None) => Url::parse(uri).ok()?,
        (None, Some(vault), Some(name)) => {
            let ok = |s: &str| {
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if !ok(vault) || !ok(name) || !version.is_none_or(ok) {
                return None;
            }
            let version = version.map(|v| format!("/{v}")).unwrap_or_default();
            Url::parse(&format!(
                "https://{vault}{VAULT_DNS_SUFFIX}/secrets/{name}{version}"
            ))
            .ok()?
        }
        _ => return None,
    };
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let shaped = matches!(segments.as_slice(), ["secrets", _] | ["secrets", _, _]);
    (shaped && matches!(url.scheme(), "http" | "https")).then_some(url)
}

/// Only https to a vault of Azure's public cloud gets the token.
fn is_public_vault_secret(url: &Url) -> bool {
    url.scheme() == "https"
        && url.port().is_none()
        && url
            .host_str()
            .is_some_and(|h| h.ends_with(VAULT_DNS_SUFFIX) && h.len() > VAULT_DNS_SUFFIX.len())
}

#[derive(Deserialize)]
struct SecretAnswer {
    value: String,
}

/// Why one read failed: no value, no URL.
#[derive(Debug)]
struct ReadFailure(String);

impl fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

async fn read_secret(
    http: &reqwest::Client,
    tokens: &TokenSource,
    url: &Url,
) -> Result<String, ReadFailure> {
    let token = tokens
        .token(http)
        .await
        .map_err(|e| ReadFailure(e.to_string()))?;
    let mut url = url.clone();
    url.set_query(Some(&format!("api-version={API_VERSION}")));
    let response = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| ReadFailure(format!("Key Vault unreachable: {}", e.without_url())))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ReadFailure(format!(
            "Key Vault answered HTTP {}",
            status.as_u16()
        )));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ReadFailure(format!("reading Key Vault's answer: {}", e.without_url())))?;
    serde_json::from_slice::<SecretAnswer>(&bytes)
        .map(|a| a.value)
        .map_err(|_| ReadFailure("Key Vault's answer holds no secret value".into()))
}

async fn resolve_with(
    raw: &mut RawConfig,
    patience: Patience,
    may_get_token: fn(&Url) -> bool,
) -> Result<Vec<String>, KeyVaultReadError> {
    let Err(unresolved) = check_key_vault_references(raw) else {
        return Ok(Vec::new());
    };
    let give_up = |unresolved: UnresolvedKeyVaultReference, why: String| KeyVaultReadError {
        unresolved,
        why,
    };
    let mut pending = Vec::new();
    for name in &unresolved.variables {
        match raw.get(name).and_then(|v| parse_reference(v)) {
            Some(url) if may_get_token(&url) => pending.push((name.clone(), url)),
            _ => {
                return Err(give_up(
                    UnresolvedKeyVaultReference {
                        variables: vec![name.clone()],
                    },
                    "the reference is not SecretUri=https://<vault>.vault.azure.net/secrets/<name>[/<version>] \
                     nor VaultName=…;SecretName=…"
                        .into(),
                ));
            }
        }
    }
    let identity = managed_identity(raw, "a Key Vault reference the platform did not resolve")
        .map_err(|e| give_up(unresolved.clone(), e.to_string()))?;
    let tokens = TokenSource::for_resource(identity, KEY_VAULT_RESOURCE, "Key Vault");
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| give_up(unresolved.clone(), format!("HTTP client: {e}")))?;

    let names = unresolved.variables.join(", ");
    tracing::warn!(
        settings = %names,
        "Key Vault references the platform did not resolve (a role assignment not in effect yet?): reading them with the managed identity"
    );
    let start = Instant::now();
    let mut pause = patience.first_pause;
    let mut resolved = Vec::new();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let mut still = Vec::new();
        let mut why = String::new();
        for (name, url) in pending {
            match read_secret(&http, &tokens, &url).await {
                Ok(value) => {
                    raw.insert(name.clone(), value);
                    resolved.push(name);
                }
                Err(failure) => {
                    why = failure.to_string();
                    still.push((name, url));
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            tracing::info!(
                settings = %resolved.join(", "),
                attempts = attempt,
                "read the Key Vault secrets with the managed identity"
            );
            return Ok(resolved);
        }
        let left: Vec<String> = pending.iter().map(|(n, _)| n.clone()).collect();
        if start.elapsed() + pause > patience.total {
            return Err(give_up(
                UnresolvedKeyVaultReference { variables: left },
                format!(
                    "{why}; tried {attempt} times in {} s",
                    start.elapsed().as_secs()
                ),
            ));
        }
        tracing::warn!(
            settings = %left.join(", "),
            attempt,
            problem = %why,
            retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            "Key Vault secrets not readable yet"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(patience.max_pause);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: fail loudly
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    use super::*;

    #[test]
    fn references_parse_to_secret_urls() {
        let url = |v: &str| parse_reference(v).map(|u| u.to_string());
        assert_eq!(
            url(
                "@Microsoft.KeyVault(SecretUri=https://kv-relay-1.vault.azure.net/secrets/duo-skey/0123abcd)"
            ),
            Some("https://kv-relay-1.vault.azure.net/secrets/duo-skey/0123abcd".into())
        );
        assert_eq!(
            url(" @Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/duo-skey/)"),
            Some("https://kv.vault.azure.net/secrets/duo-skey/".into())
        );
        assert_eq!(
            url("@Microsoft.KeyVault(VaultName=kv;SecretName=duo-skey;SecretVersion=abc)"),
            Some("https://kv.vault.azure.net/secrets/duo-skey/abc".into())
        );
        assert_eq!(
            url("@Microsoft.KeyVault(VaultName=kv; SecretName=a0)"),
            Some("https://kv.vault.azure.net/secrets/a0".into())
        );
        for bad in [
            "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/keys/k/)",
            "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/a/b/c)",
            "@Microsoft.KeyVault(SecretUri=ftp://kv.vault.azure.net/secrets/a)",
            "@Microsoft.KeyVault(VaultName=k/v;SecretName=a)",
            "@Microsoft.KeyVault(VaultName=kv)",
            "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/a;VaultName=kv;SecretName=a)",
            "@Microsoft.KeyVault(Other=x)",
            "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/a",
            "plain value",
        ] {
            assert_eq!(url(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_goes_only_to_public_cloud_vaults_over_https() {
        let ok = |s: &str| is_public_vault_secret(&Url::parse(s).unwrap());
        assert!(ok("https://kv.vault.azure.net/secrets/a"));
        for bad in [
            "http://kv.vault.azure.net/secrets/a",
            "https://kv.vault.azure.net:8443/secrets/a",
            "https://vault.azure.net/secrets/a",
            "https://kv.vault.azure.net.evil.example/secrets/a",
            "https://evil.example/kv.vault.azure.net/secrets/a",
            "https://127.0.0.1/secrets/a",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    /// The token endpoint and a vault: the vault refuses `refusals` times
    /// (as while a role assignment propagates), then answers the secret.
    #[derive(Default)]
    struct StandIn {
        refusals: u32,
        vault_gets: Vec<(String, String)>,
        token_queries: Vec<BTreeMap<String, String>>,
    }

    type Shared = Arc<Mutex<StandIn>>;

    const VALUE: &str = "duo-secret-key-from-the-vault-0123456789ab";

    async fn token(
        State(s): State<Shared>,
        Query(q): Query<BTreeMap<String, String>>,
        headers: HeaderMap,
    ) -> (StatusCode, String) {
        s.lock().unwrap().token_queries.push(q);
        if headers
            .get("x-identity-header")
            .is_none_or(|v| v != "id-header")
        {
            return (StatusCode::BAD_REQUEST, "no header".into());
        }
        (
            StatusCode::OK,
            r#"{"access_token":"kv-token","expires_on":"4102444800"}"#.into(),
        )
    }

    async fn secret(
        State(s): State<Shared>,
        Query(q): Query<BTreeMap<String, String>>,
        headers: HeaderMap,
    ) -> (StatusCode, String) {
        let mut s = s.lock().unwrap();
        let auth = headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        s.vault_gets
            .push((auth, q.get("api-version").cloned().unwrap_or_default()));
        if s.refusals > 0 {
            s.refusals -= 1;
            return (
                StatusCode::FORBIDDEN,
                r#"{"error":{"code":"Forbidden","innererror":{"code":"ForbiddenByRbac"}}}"#.into(),
            );
        }
        (
            StatusCode::OK,
            format!(r#"{{"value":"{VALUE}","id":"x","attributes":{{"enabled":true}}}}"#),
        )
    }

    async fn stand_in(refusals: u32) -> (String, Shared) {
        let shared = Arc::new(Mutex::new(StandIn {
            refusals,
            ..StandIn::default()
        }));
        let app = Router::new()
            .route("/msi/token", get(token))
            .route("/secrets/duo-skey/v1", get(secret))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), shared)
    }

    fn settings(base: &str) -> RawConfig {
        [
            ("DUO_API_HOST", "api-1234abcd.duosecurity.com".to_owned()),
            (
                "DUO_SKEY",
                format!("@Microsoft.KeyVault(SecretUri={base}/secrets/duo-skey/v1)"),
            ),
            ("IDENTITY_ENDPOINT", format!("{base}/msi/token")),
            ("IDENTITY_HEADER", "id-header".to_owned()),
            ("AZURE_CLIENT_ID", "client-id-of-the-identity".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    const QUICK: Patience = Patience {
        total: Duration::from_millis(400),
        first_pause: Duration::from_millis(10),
        max_pause: Duration::from_millis(40),
    };

    fn any_url(_: &Url) -> bool {
        true
    }

    #[tokio::test]
    async fn reads_a_secret_the_platform_left_unresolved_once_the_role_takes_effect() {
        let (base, seen) = stand_in(2).await;
        let mut raw = settings(&base);
        let resolved = resolve_with(&mut raw, QUICK, any_url).await.unwrap();
        assert_eq!(resolved, ["DUO_SKEY"]);
        assert_eq!(raw["DUO_SKEY"], VALUE);
        assert_eq!(raw["DUO_API_HOST"], "api-1234abcd.duosecurity.com");
        assert!(check_key_vault_references(&raw).is_ok());
        let seen = seen.lock().unwrap();
        // Refused twice (403), read the third time, with the token.
        assert_eq!(seen.vault_gets.len(), 3);
        assert!(
            seen.vault_gets
                .iter()
                .all(|(auth, v)| auth == "Bearer kv-token" && v == API_VERSION)
        );
        let query = &seen.token_queries[0];
        assert_eq!(query["resource"], KEY_VAULT_RESOURCE);
        assert_eq!(query["client_id"], "client-id-of-the-identity");
    }

    #[tokio::test]
    async fn gives_up_after_its_patience_naming_the_setting_and_the_status_only() {
        let (base, seen) = stand_in(u32::MAX).await;
        let mut raw = settings(&base);
        let started = Instant::now();
        let err = resolve_with(&mut raw, QUICK, any_url).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.unresolved.variables, ["DUO_SKEY"]);
        let text = err.to_string();
        assert!(
            text.contains("DUO_SKEY: the Key Vault reference did not resolve"),
            "{text}"
        );
        assert!(text.contains("Key Vault answered HTTP 403"), "{text}");
        assert!(
            !text.contains("127.0.0.1") && !text.contains("SecretUri"),
            "{text}"
        );
        // Tried more than once, and the setting still holds the reference.
        assert!(seen.lock().unwrap().vault_gets.len() >= 2);
        assert!(raw["DUO_SKEY"].starts_with(KEY_VAULT_REFERENCE_PREFIX));
    }

    #[tokio::test]
    async fn without_a_managed_identity_it_refuses_at_once() {
        let mut raw = settings("https://kv.vault.azure.net");
        raw.remove("IDENTITY_ENDPOINT");
        let err = resolve_key_vault_references(&mut raw, Patience::START_UP)
            .await
            .unwrap_err();
        assert_eq!(err.unresolved.variables, ["DUO_SKEY"]);
        assert!(err.why.contains("IDENTITY_ENDPOINT"), "{}", err.why);
    }

    #[tokio::test]
    async fn a_reference_to_another_host_gets_no_token() {
        // Only the public-cloud check stands between an app setting and
        // where the token goes.
        let (base, seen) = stand_in(0).await;
        let mut raw = settings(&base);
        let err = resolve_key_vault_references(&mut raw, QUICK)
            .await
            .unwrap_err();
        assert!(err.why.contains("reference is not"), "{}", err.why);
        let seen = seen.lock().unwrap();
        assert!(seen.token_queries.is_empty() && seen.vault_gets.is_empty());
    }

    #[tokio::test]
    async fn nothing_to_do_when_the_platform_resolved_everything() {
        let mut raw = settings("https://kv.vault.azure.net");
        raw.insert("DUO_SKEY".into(), "s".repeat(40));
        let before = raw.clone();
        let resolved = resolve_key_vault_references(&mut raw, Patience::START_UP)
            .await
            .unwrap();
        assert!(resolved.is_empty());
        assert_eq!(raw, before);
    }
}
