//! The secret configuration from AWS Secrets Manager: ONE secret (id or ARN
//! in `RELAY_SECRET_ID`) whose `SecretString` is a JSON object of strings,
//! keyed by the contract's variable names (`DUO_SKEY`, `OKTA_AUTH_SECRET`,
//! …). Its keys are laid over the plain environment, so non-secret settings
//! (`DUO_API_HOST`, `GROUP_FILTER`, …) stay in the Lambda configuration.
//!
//! Every error names the secret (its id is not secret) and the key at fault,
//! never a value; [`SecretValues`] prints only its key names.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use relay_core::config::RawConfig;
use sha2::{Digest, Sha256};

/// The variables of the contract that are secret: they belong in the secret,
/// and one set in the plain environment is reported (by name) at start-up.
pub const SECRET_VARIABLES: &[&str] = &[
    "DUO_SKEY",
    "OKTA_AUTH_SECRET",
    "AUTH0_AUTH_SECRET",
    "WEBHOOK_SIGNING_SECRETS",
    "OKTA_API_TOKEN",
    "AUTH0_CLIENT_SECRET",
    "ENTRA_CLIENT_STATE",
    "ENTRA_CLIENT_SECRET",
    "ENTRA_CLIENT_CERTIFICATE",
];

/// Keys the secret must hold, every one (the Duo secret key). Terraform's
/// `terraform/modules/aws/required-secret-keys.json` is generated from this
/// and [`HOOK_SECRET_KEYS`] (`tests/required_env.rs`).
pub const REQUIRED_SECRET_KEYS: &[&str] = &["DUO_SKEY"];
/// Keys of which the secret must hold at least one: the shared secret of
/// each IdP (either will do).
pub const HOOK_SECRET_KEYS: &[&str] = &[
    "OKTA_AUTH_SECRET",
    "AUTH0_AUTH_SECRET",
    "ENTRA_CLIENT_STATE",
];

/// Why the secret could not be used. `Display` names the secret and the key,
/// never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "RELAY_SECRET_ID: cannot read secret {secret_id} from Secrets Manager \
         (check the id, the region and the function's secretsmanager:GetSecretValue permission): {detail}"
    )]
    Unreadable { secret_id: String, detail: String },
    #[error(
        "RELAY_SECRET_ID: secret {secret_id} has no SecretString (binary secrets are not supported); store a JSON object"
    )]
    NotAString { secret_id: String },
    #[error(
        "RELAY_SECRET_ID: secret {secret_id} is not a JSON object (its value is not shown); store {{\"DUO_SKEY\": \"…\", \"OKTA_AUTH_SECRET\": \"…\", …}}"
    )]
    NotJsonObject { secret_id: String },
    #[error("RELAY_SECRET_ID: key {key} of secret {secret_id} is not a string")]
    NotAStringValue { secret_id: String, key: String },
    #[error("RELAY_SECRET_ID: secret {secret_id} lacks the key {key}")]
    MissingKey { secret_id: String, key: String },
}

/// The parsed secret: variable name → value. `Debug` shows key names only.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValues {
    values: BTreeMap<String, String>,
    digest: [u8; 32],
}

impl fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretValues")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("values", &"[redacted]")
            .finish()
    }
}

impl SecretValues {
    /// Parses a `SecretString`: a JSON object whose values are strings, with
    /// `DUO_SKEY` and `OKTA_AUTH_SECRET` or `AUTH0_AUTH_SECRET`.
    pub fn parse(secret_id: &str, text: &str) -> Result<Self, SecretError> {
        // serde_json's messages may quote the input; none of them is kept.
        let object = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(object)) => object,
            _ => {
                return Err(SecretError::NotJsonObject {
                    secret_id: secret_id.to_owned(),
                });
            }
        };
        let mut values = BTreeMap::new();
        for (key, value) in object {
            let serde_json::Value::String(value) = value else {
                return Err(SecretError::NotAStringValue {
                    secret_id: secret_id.to_owned(),
                    key,
                });
            };
            values.insert(key, value);
        }
        let present = |key: &str| values.get(key).is_some_and(|v| !v.trim().is_empty());
        if let Some(missing) = REQUIRED_SECRET_KEYS.iter().find(|k| !present(k)) {
            return Err(SecretError::MissingKey {
                secret_id: secret_id.to_owned(),
                key: (*missing).to_owned(),
            });
        }
        if !HOOK_SECRET_KEYS.iter().any(|k| present(k)) {
            return Err(SecretError::MissingKey {
                secret_id: secret_id.to_owned(),
                key: HOOK_SECRET_KEYS.join(" or "),
            });
        }
        Ok(Self {
            values,
            digest: Sha256::digest(text.as_bytes()).into(),
        })
    }

    /// The environment with this secret's keys laid over it.
    pub fn merged_over(&self, env: &RawConfig) -> RawConfig {
        let mut merged = env.clone();
        merged.extend(self.values.iter().map(|(k, v)| (k.clone(), v.clone())));
        merged
    }

    /// The key names, for logs.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// Whether two fetches hold the same content (compared by digest, so the
    /// previous content need not be kept).
    pub fn same_content(&self, digest: &[u8; 32]) -> bool {
        &self.digest == digest
    }

    pub(crate) fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// Where the secret lives: a Secrets Manager client and the secret's id.
#[derive(Debug, Clone)]
pub struct SecretSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretSource {
    /// A source on `sdk`. A read after the TTL happens inside a request, so
    /// it is bounded like the store's calls (2 s in all); a read that fails
    /// keeps the previous configuration.
    pub fn new(sdk: &aws_config::SdkConfig, secret_id: impl Into<String>) -> Self {
        let timeouts = aws_sdk_secretsmanager::config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(Duration::from_secs(1))
            .operation_timeout(Duration::from_secs(2))
            .build();
        let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .timeout_config(timeouts)
            .build();
        Self {
            client: aws_sdk_secretsmanager::Client::from_conf(config),
            secret_id: secret_id.into(),
        }
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// Reads the current version of the secret and parses it.
    pub async fn fetch(&self) -> Result<SecretValues, SecretError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretError::Unreadable {
                secret_id: self.secret_id.clone(),
                // The service's errors name the secret and the failure, not
                // its content (there is none in an error).
                detail: crate::describe(&e),
            })?;
        let text = output
            .secret_string()
            .ok_or_else(|| SecretError::NotAString {
                secret_id: self.secret_id.clone(),
            })?;
        SecretValues::parse(&self.secret_id, text)
    }
}

/// The names of secret variables set in the plain environment (reported at
/// start-up: a value there is visible to anyone who can read the function's
/// configuration).
pub fn secrets_in_plain_env(env: &RawConfig) -> Vec<&'static str> {
    SECRET_VARIABLES
        .iter()
        .copied()
        .filter(|k| env.get(*k).is_some_and(|v| !v.trim().is_empty()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_what_is_wrong_and_never_the_value() {
        let id = "arn:aws:secretsmanager:us-east-1:123456789012:secret:relay";
        let err = SecretValues::parse(id, "not json hunter2-secret-value").unwrap_err();
        assert!(matches!(err, SecretError::NotJsonObject { .. }));
        assert!(!err.to_string().contains("hunter2"));
        assert!(err.to_string().contains(id));

        let err = SecretValues::parse(id, r#"["hunter2-secret-value"]"#).unwrap_err();
        assert!(matches!(err, SecretError::NotJsonObject { .. }));

        let err =
            SecretValues::parse(id, r#"{"OKTA_AUTH_SECRET":"hunter2-secret-value"}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("RELAY_SECRET_ID: secret {id} lacks the key DUO_SKEY")
        );

        let err = SecretValues::parse(id, r#"{"DUO_SKEY":"hunter2-secret-value"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("OKTA_AUTH_SECRET or AUTH0_AUTH_SECRET")
        );
        assert!(!err.to_string().contains("hunter2"));

        let err = SecretValues::parse(
            id,
            r#"{"DUO_SKEY":"hunter2-secret-value","OKTA_AUTH_SECRET":17}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("key OKTA_AUTH_SECRET"));
        assert!(!err.to_string().contains("17"));
    }

    #[test]
    fn values_merge_over_the_environment_and_debug_shows_keys_only() {
        let secret = SecretValues::parse(
            "relay",
            r#"{"DUO_SKEY":"hunter2-secret-value","OKTA_AUTH_SECRET":"okta-hook-secret-value","DUO_IKEY":"DIX"}"#,
        )
        .unwrap();
        let env = RawConfig::from([
            (
                "DUO_API_HOST".to_owned(),
                "api-x.duosecurity.com".to_owned(),
            ),
            ("DUO_IKEY".to_owned(), "from-env".to_owned()),
        ]);
        let merged = secret.merged_over(&env);
        assert_eq!(merged["DUO_API_HOST"], "api-x.duosecurity.com");
        assert_eq!(merged["DUO_IKEY"], "DIX");
        assert_eq!(merged["DUO_SKEY"], "hunter2-secret-value");
        let debug = format!("{secret:?}");
        assert!(debug.contains("DUO_SKEY"));
        assert!(!debug.contains("hunter2") && !debug.contains("okta-hook"));
        assert!(secret.same_content(&secret.digest()));
        assert_eq!(
            secrets_in_plain_env(&merged),
            ["DUO_SKEY", "OKTA_AUTH_SECRET"]
        );
    }
}
