//! What the Function App's environment must hold, checked before anything
//! starts: the custom-handler port, Key Vault references the platform failed
//! to resolve, and where the idempotency table lives.
//!
//! Secrets arrive as app settings. A setting whose value is a Key Vault
//! reference (`@Microsoft.KeyVault(SecretUri=…)`) is resolved by App Service
//! with the app's managed identity and handed to this process as a plain
//! environment variable, so the relay only reads the environment. When the
//! platform cannot resolve a reference it passes the reference text itself
//! ("If a reference isn't resolved properly, the reference value is used
//! instead" — learn.microsoft.com/azure/app-service/app-service-key-vault-references,
//! "Troubleshooting Key Vault references"). A secret like
//! `@Microsoft.KeyVault(…)` would otherwise be taken as a 40-character Duo
//! key or hook secret and fail much later, so start-up refuses it here.

use std::fmt;

use relay_core::config::{ConfigError, RawConfig, optional};
use reqwest::Url;

use crate::shared_key::AccountKey;

/// The prefix of a Key Vault reference app setting.
pub const KEY_VAULT_REFERENCE_PREFIX: &str = "@Microsoft.KeyVault(";

/// The port when `FUNCTIONS_CUSTOMHANDLER_PORT` is unset (a local run
/// outside the Functions host), as Microsoft's custom-handler samples do.
pub const DEFAULT_PORT: u16 = 8080;

/// The idempotency table when `RELAY_TABLE_NAME` is unset.
pub const DEFAULT_TABLE_NAME: &str = "relayidempotency";

/// The Azure Storage resource a managed-identity token is requested for.
pub const STORAGE_RESOURCE: &str = "https://storage.azure.com/";

/// Settings whose value is still an unresolved Key Vault reference. The
/// error names every such variable and never quotes a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{}: the Key Vault reference did not resolve (the platform passed the reference text, not the secret). \
     Check that the Function App's managed identity may read the secret (role \"Key Vault Secrets User\" \
     or a Get secret access policy), that the secret exists and that the reference is well formed; \
     the app settings page shows each reference's status",
    variables.join(", ")
)]
pub struct UnresolvedKeyVaultReference {
    pub variables: Vec<String>,
}

/// Refuses start-up when any setting still holds `@Microsoft.KeyVault(…)`.
pub fn check_key_vault_references(raw: &RawConfig) -> Result<(), UnresolvedKeyVaultReference> {
    let variables: Vec<String> = raw
        .iter()
        .filter(|(_, value)| value.trim_start().starts_with(KEY_VAULT_REFERENCE_PREFIX))
        .map(|(name, _)| name.clone())
        .collect();
    if variables.is_empty() {
        Ok(())
    } else {
        Err(UnresolvedKeyVaultReference { variables })
    }
}

/// Where the handler listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub port: u16,
    /// `true` when `FUNCTIONS_CUSTOMHANDLER_PORT` was unset and the default
    /// was taken (a local run; `main` says so in the log).
    pub defaulted: bool,
}

/// `FUNCTIONS_CUSTOMHANDLER_PORT`: set by the Functions host for its custom
/// handler (it is not the public port; the host calls the handler on
/// 127.0.0.1). Required when the process runs under the host — recognised by
/// `FUNCTIONS_WORKER_RUNTIME`, which every Function App has — and 8080
/// otherwise.
pub fn listen(raw: &RawConfig) -> Result<Listen, ConfigError> {
    const VAR: &str = "FUNCTIONS_CUSTOMHANDLER_PORT";
    match optional(raw, VAR) {
        Some(value) => value
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .map(|port| Listen {
                port,
                defaulted: false,
            })
            .ok_or_else(|| ConfigError::new(VAR, "must be a port number (1-65535)")),
        None if optional(raw, "FUNCTIONS_WORKER_RUNTIME").is_some() => Err(ConfigError::new(
            VAR,
            "is not set, yet FUNCTIONS_WORKER_RUNTIME is: the Functions host sets it for its custom handler; \
             check host.json's customHandler section",
        )),
        None => Ok(Listen {
            port: DEFAULT_PORT,
            defaulted: true,
        }),
    }
}

/// How requests to the Table service are authorized.
#[derive(Clone)]
pub enum Credential {
    /// SharedKey with the storage account key of a connection string.
    SharedKey { account: String, key: AccountKey },
    /// A Microsoft Entra ID token from the Function App's managed identity.
    ManagedIdentity(ManagedIdentity),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedKey { account, .. } => f
                .debug_struct("SharedKey")
                .field("account", account)
                .field("key", &"[redacted]")
                .finish(),
            Self::ManagedIdentity(mi) => mi.fmt(f),
        }
    }
}

/// The App Service / Functions managed-identity token endpoint
/// (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`; learn.microsoft.com/azure/app-service/overview-managed-identity,
/// "REST endpoint reference").
#[derive(Clone)]
pub struct ManagedIdentity {
    pub endpoint: Url,
    /// `IDENTITY_HEADER`: sent as `X-IDENTITY-HEADER`; rotated by the
    /// platform and never printed.
    pub header: String,
    /// `AZURE_CLIENT_ID`: the client id of a user-assigned identity; the
    /// system-assigned identity when unset.
    pub client_id: Option<String>,
}

impl fmt::Debug for ManagedIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentity")
            .field("endpoint", &self.endpoint.as_str())
            .field("header", &"[redacted]")
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// Where the idempotency table is and how to reach it.
#[derive(Debug, Clone)]
pub struct TableSettings {
    /// The Table service endpoint, e.g. `https://acct.table.core.windows.net`
    /// or Azurite's `http://127.0.0.1:10002/devstoreaccount1` (no trailing `/`).
    pub endpoint: Url,
    pub credential: Credential,
    pub table: String,
}

impl TableSettings {
    /// From the environment:
    /// - `AZURE_STORAGE_TABLE_ENDPOINT` set → managed identity
    ///   (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, optional `AZURE_CLIENT_ID`);
    /// - otherwise `AzureWebJobsStorage`, the Function App's own storage
    ///   connection string (account key; SharedKey).
    ///
    /// `RELAY_TABLE_NAME` names the table (default `relayidempotency`).
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let table = table_name(raw)?;
        if let Some(endpoint) = optional(raw, "AZURE_STORAGE_TABLE_ENDPOINT") {
            let endpoint = parse_endpoint(endpoint).ok_or_else(|| {
                ConfigError::new(
                    "AZURE_STORAGE_TABLE_ENDPOINT",
                    "must be an http(s) URL like https://<account>.table.core.windows.net",
                )
            })?;
            return Ok(Self {
                endpoint,
                credential: Credential::ManagedIdentity(managed_identity(
                    raw,
                    "AZURE_STORAGE_TABLE_ENDPOINT",
                )?),
                table,
            });
        }
        let connection = optional(raw, "AzureWebJobsStorage").ok_or_else(|| {
            ConfigError::new(
                "AzureWebJobsStorage",
                "is not set: the idempotency table needs the Function App's storage connection string \
                 (DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…) or AZURE_STORAGE_TABLE_ENDPOINT \
                 for managed-identity access",
            )
        })?;
        let (endpoint, account, key) = parse_connection_string(connection)
            .map_err(|problem| ConfigError::new("AzureWebJobsStorage", problem))?;
        Ok(Self {
            endpoint,
            credential: Credential::SharedKey { account, key },
            table,
        })
    }
}

/// `RELAY_TABLE_NAME`: 3-63 letters and digits, not starting with a digit
/// (the Table service's rule).
fn table_name(raw: &RawConfig) -> Result<String, ConfigError> {
    let name = optional(raw, "RELAY_TABLE_NAME").unwrap_or(DEFAULT_TABLE_NAME);
    let valid = (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ConfigError::new(
            "RELAY_TABLE_NAME",
            "must be 3-63 letters and digits, starting with a letter",
        ))
    }
}

/// The managed identity's token endpoint, as App Service sets it for an
/// app with an identity (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`, optional
/// `AZURE_CLIENT_ID` for a user-assigned identity). `selected_by` names the
/// variable that chose identity access, for the error.
pub(crate) fn managed_identity(
    raw: &RawConfig,
    selected_by: &str,
) -> Result<ManagedIdentity, ConfigError> {
    let identity_endpoint = optional(raw, "IDENTITY_ENDPOINT").ok_or_else(|| {
        ConfigError::new(
            "IDENTITY_ENDPOINT",
            format!(
                "is not set: {selected_by} selects managed-identity access, which needs the Function App's identity enabled"
            ),
        )
    })?;
    let identity_endpoint = Url::parse(identity_endpoint)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| ConfigError::new("IDENTITY_ENDPOINT", "is not an http(s) URL"))?;
    let header = optional(raw, "IDENTITY_HEADER").ok_or_else(|| {
        ConfigError::new(
            "IDENTITY_HEADER",
            format!(
                "is not set: {selected_by} selects managed-identity access, which needs the Function App's identity enabled"
            ),
        )
    })?;
    Ok(ManagedIdentity {
        endpoint: identity_endpoint,
        header: header.to_owned(),
        client_id: optional(raw, "AZURE_CLIENT_ID").map(str::to_owned),
    })
}

/// The queue when `RELAY_QUEUE_NAME` is unset (the Terraform module's name).
pub const DEFAULT_QUEUE_NAME: &str = "relay-events";

/// What the Functions host appends to a queue's name for its poison queue.
pub const POISON_SUFFIX: &str = "-poison";

/// Where the event queue (queue mode) is and how to reach it; its poison
/// queue is `<queue>-poison`, as the Functions host names it.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// The Queue service endpoint, e.g. `https://acct.queue.core.windows.net`
    /// or Azurite's `http://127.0.0.1:10001/devstoreaccount1` (no trailing `/`).
    pub endpoint: Url,
    pub credential: Credential,
    pub queue: String,
}

impl QueueSettings {
    /// From the environment, like [`TableSettings::from_config`]:
    /// - `AZURE_STORAGE_QUEUE_ENDPOINT` set → managed identity (role
    ///   *Storage Queue Data Contributor* on the queue and its poison queue);
    /// - otherwise the `AzureWebJobsStorage` connection string (its
    ///   `QueueEndpoint`, or the account's public queue endpoint).
    ///
    /// `RELAY_QUEUE_NAME` names the queue (default `relay-events`); the
    /// queue-trigger function reads the same setting (`%RELAY_QUEUE_NAME%`).
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let queue = queue_name(raw)?;
        if let Some(endpoint) = optional(raw, "AZURE_STORAGE_QUEUE_ENDPOINT") {
            let endpoint = parse_endpoint(endpoint).ok_or_else(|| {
                ConfigError::new(
                    "AZURE_STORAGE_QUEUE_ENDPOINT",
                    "must be an http(s) URL like https://<account>.queue.core.windows.net",
                )
            })?;
            return Ok(Self {
                endpoint,
                credential: Credential::ManagedIdentity(managed_identity(
                    raw,
                    "AZURE_STORAGE_QUEUE_ENDPOINT",
                )?),
                queue,
            });
        }
        let connection = optional(raw, "AzureWebJobsStorage").ok_or_else(|| {
            ConfigError::new(
                "AzureWebJobsStorage",
                "is not set: the event queue (RELAY_MODE=queue) needs the Function App's storage connection string \
                 or AZURE_STORAGE_QUEUE_ENDPOINT for managed-identity access",
            )
        })?;
        let (endpoint, account, key) =
            parse_connection_string_for(connection, StorageService::Queue)
                .map_err(|problem| ConfigError::new("AzureWebJobsStorage", problem))?;
        Ok(Self {
            endpoint,
            credential: Credential::SharedKey { account, key },
            queue,
        })
    }

    /// `<queue>-poison`.
    pub fn poison_queue(&self) -> String {
        format!("{}{POISON_SUFFIX}", self.queue)
    }
}

/// `RELAY_QUEUE_NAME`: the Queue service's rule (3-63 lowercase letters,
/// digits and single hyphens, starting and ending with a letter or digit),
/// and short enough that `<name>-poison` is one too.
fn queue_name(raw: &RawConfig) -> Result<String, ConfigError> {
    let name = optional(raw, "RELAY_QUEUE_NAME").unwrap_or(DEFAULT_QUEUE_NAME);
    let valid = (3..=63 - POISON_SUFFIX.len()).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if valid {
        Ok(name.to_owned())
    } else {
        Err(ConfigError::new(
            "RELAY_QUEUE_NAME",
            "must be 3-56 lowercase letters, digits and single hyphens, starting and ending with a letter or digit",
        ))
    }
}

fn parse_endpoint(value: &str) -> Option<Url> {
    let url = Url::parse(value.trim().trim_end_matches('/')).ok()?;
    (matches!(url.scheme(), "http" | "https") && url.host_str().is_some() && url.query().is_none())
        .then_some(url)
}

/// Azurite's well-known development account (public, documented by
/// Microsoft for the emulator and in Azurite's `src/common/utils/constants.ts`;
/// never a real secret).
const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A storage service a connection string can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageService {
    Table,
    Queue,
}

impl StorageService {
    /// The connection-string key of an explicit endpoint (`TableEndpoint`).
    fn endpoint_key(self) -> &'static str {
        match self {
            Self::Table => "tableendpoint",
            Self::Queue => "queueendpoint",
        }
    }

    fn endpoint_name(self) -> &'static str {
        match self {
            Self::Table => "TableEndpoint",
            Self::Queue => "QueueEndpoint",
        }
    }

    /// The host label of the public endpoint (`<account>.table.<suffix>`).
    fn subdomain(self) -> &'static str {
        match self {
            Self::Table => "table",
            Self::Queue => "queue",
        }
    }

    /// Azurite's default endpoint (`UseDevelopmentStorage=true`).
    fn development_endpoint(self) -> &'static str {
        match self {
            Self::Table => "http://127.0.0.1:10002/devstoreaccount1",
            Self::Queue => "http://127.0.0.1:10001/devstoreaccount1",
        }
    }
}

/// Parses a storage connection string into (table endpoint, account, key).
/// Understands `DefaultEndpointsProtocol`, `AccountName`, `AccountKey`,
/// `EndpointSuffix`, `TableEndpoint` (how Azurite and custom domains are
/// addressed) and `UseDevelopmentStorage=true`. Problems never quote the
/// value: the string holds the account key.
pub fn parse_connection_string(value: &str) -> Result<(Url, String, AccountKey), String> {
    parse_connection_string_for(value, StorageService::Table)
}

/// [`parse_connection_string`] for any service: its endpoint comes from
/// `TableEndpoint` / `QueueEndpoint`, else from the account and suffix.
pub fn parse_connection_string_for(
    value: &str,
    service: StorageService,
) -> Result<(Url, String, AccountKey), String> {
    let mut protocol = None;
    let mut account = None;
    let mut key = None;
    let mut suffix = None;
    let mut explicit_endpoint = None;
    let mut development = false;
    let mut sas = false;
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        // Values (the base64 key) may contain '='; split at the first.
        let Some((name, v)) = part.split_once('=') else {
            return Err(
                "is not a storage connection string (expected Name=value pairs separated by ';')"
                    .into(),
            );
        };
        let v = v.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "defaultendpointsprotocol" => protocol = Some(v),
            "accountname" => account = Some(v),
            "accountkey" => key = Some(v),
            "endpointsuffix" => suffix = Some(v),
            "usedevelopmentstorage" => development = v.eq_ignore_ascii_case("true"),
            "sharedaccesssignature" => sas = true,
            other if other == service.endpoint_key() => explicit_endpoint = Some(v),
            // Other services' endpoints: not ours.
            _ => {}
        }
    }
    let bad_endpoint = || format!("{} is not an http(s) URL", service.endpoint_name());
    if development {
        let endpoint = parse_endpoint(explicit_endpoint.unwrap_or(service.development_endpoint()));
        let key = AccountKey::from_base64(DEV_KEY);
        return match (endpoint, key) {
            (Some(endpoint), Some(key)) => Ok((endpoint, DEV_ACCOUNT.to_owned(), key)),
            _ => Err(bad_endpoint()),
        };
    }
    let account = account
        .filter(|a| !a.is_empty())
        .ok_or("has no AccountName")?;
    let key = match key {
        Some(k) => AccountKey::from_base64(k).ok_or("AccountKey is not valid base64")?,
        None if sas => {
            return Err(
                "holds a SAS token, not an AccountKey: SharedKey needs the account key \
                        (or use the managed identity with AZURE_STORAGE_TABLE_ENDPOINT / AZURE_STORAGE_QUEUE_ENDPOINT)"
                    .into(),
            );
        }
        None => return Err("has no AccountKey".into()),
    };
    let endpoint = match explicit_endpoint {
        Some(e) => parse_endpoint(e).ok_or_else(bad_endpoint)?,
        None => {
            let protocol = protocol.unwrap_or("https");
            if !matches!(protocol, "http" | "https") {
                return Err("DefaultEndpointsProtocol must be http or https".into());
            }
            let suffix = suffix.unwrap_or("core.windows.net");
            parse_endpoint(&format!(
                "{protocol}://{account}.{}.{suffix}",
                service.subdomain()
            ))
            .ok_or("AccountName and EndpointSuffix do not make a valid host name")?
        }
    };
    Ok((endpoint, account.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    use relay_core::config::from_pairs as raw;

    const KEY: &str = "c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdHM=";

    #[test]
    fn key_vault_references_are_named_never_quoted() {
        let cfg = raw(&[
            (
                "DUO_SKEY",
                "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/duo/)",
            ),
            ("OKTA_AUTH_SECRET", "resolved-value-0123456789"),
            (
                "AUTH0_AUTH_SECRET",
                " @Microsoft.KeyVault(VaultName=v;SecretName=a0)",
            ),
        ]);
        let err = check_key_vault_references(&cfg).unwrap_err();
        assert_eq!(err.variables, ["AUTH0_AUTH_SECRET", "DUO_SKEY"]);
        let text = err.to_string();
        assert!(
            text.starts_with(
                "AUTH0_AUTH_SECRET, DUO_SKEY: the Key Vault reference did not resolve"
            )
        );
        assert!(text.contains("managed identity"));
        assert!(!text.contains("vault.azure.net") && !text.contains("SecretName"));
        assert!(check_key_vault_references(&raw(&[("A", "b")])).is_ok());
    }

    #[test]
    fn port_rules() {
        assert_eq!(
            listen(&raw(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "41234")])).unwrap(),
            Listen {
                port: 41234,
                defaulted: false
            }
        );
        assert_eq!(
            listen(&raw(&[])).unwrap(),
            Listen {
                port: 8080,
                defaulted: true
            }
        );
        let err = listen(&raw(&[("FUNCTIONS_CUSTOMHANDLER_PORT", "http")])).unwrap_err();
        assert_eq!(err.variable, "FUNCTIONS_CUSTOMHANDLER_PORT");
        let err = listen(&raw(&[("FUNCTIONS_WORKER_RUNTIME", "custom")])).unwrap_err();
        assert_eq!(err.variable, "FUNCTIONS_CUSTOMHANDLER_PORT");
    }

    #[test]
    fn connection_strings() {
        let (endpoint, account, _) = parse_connection_string(&format!(
            "DefaultEndpointsProtocol=https;AccountName=relaysa;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(endpoint.as_str(), "https://relaysa.table.core.windows.net/");
        assert_eq!(account, "relaysa");
        let (endpoint, account, _) = parse_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:41000/devstoreaccount1/;"
        ))
        .unwrap();
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:41000/devstoreaccount1");
        assert_eq!(account, "devstoreaccount1");
        let (endpoint, account, _) = parse_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(endpoint.as_str(), "http://127.0.0.1:10002/devstoreaccount1");
        assert_eq!(account, DEV_ACCOUNT);
        let (endpoint, _, _) = parse_connection_string(&format!(
            "AccountName=gov;AccountKey={KEY};EndpointSuffix=core.usgovcloudapi.net"
        ))
        .unwrap();
        assert_eq!(
            endpoint.host_str(),
            Some("gov.table.core.usgovcloudapi.net")
        );
    }

    #[test]
    fn bad_connection_strings_name_the_variable_not_the_value() {
        for (value, expected) in [
            ("AccountName=a;AccountKey=%%%secret%%%", "not valid base64"),
            ("AccountKey=c2VjcmV0", "no AccountName"),
            ("AccountName=a", "no AccountKey"),
            (
                "AccountName=a;SharedAccessSignature=sv=2020&sig=secretsig",
                "SAS",
            ),
            ("just-a-secret-string", "not a storage connection string"),
        ] {
            let err =
                TableSettings::from_config(&raw(&[("AzureWebJobsStorage", value)])).unwrap_err();
            assert_eq!(err.variable, "AzureWebJobsStorage");
            assert!(err.problem.contains(expected), "{value}: {err}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let err = TableSettings::from_config(&raw(&[])).unwrap_err();
        assert_eq!(err.variable, "AzureWebJobsStorage");
        assert!(err.problem.contains("is not set"));
    }

    #[test]
    fn table_names_and_managed_identity() {
        let conn = format!("AccountName=a;AccountKey={KEY}");
        let ok = TableSettings::from_config(&raw(&[("AzureWebJobsStorage", &conn)])).unwrap();
        assert_eq!(ok.table, DEFAULT_TABLE_NAME);
        assert!(!format!("{ok:?}").contains(KEY));
        for bad in ["ab", "1abc", "has-dash", &"x".repeat(64)] {
            let err = TableSettings::from_config(&raw(&[
                ("AzureWebJobsStorage", &conn),
                ("RELAY_TABLE_NAME", bad),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, "RELAY_TABLE_NAME");
        }
        let err = TableSettings::from_config(&raw(&[(
            "AZURE_STORAGE_TABLE_ENDPOINT",
            "https://a.table.core.windows.net",
        )]))
        .unwrap_err();
        assert_eq!(err.variable, "IDENTITY_ENDPOINT");
        let mi = TableSettings::from_config(&raw(&[
            (
                "AZURE_STORAGE_TABLE_ENDPOINT",
                "https://a.table.core.windows.net/",
            ),
            ("IDENTITY_ENDPOINT", "http://localhost:8081/msi/token"),
            ("IDENTITY_HEADER", "header-secret-value"),
        ]))
        .unwrap();
        assert!(matches!(mi.credential, Credential::ManagedIdentity(_)));
        assert!(!format!("{mi:?}").contains("header-secret-value"));
    }
}
