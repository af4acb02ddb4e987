//! The AWS Terraform module sets every variable `bootstrap` requires and puts
//! every key the secret must hold into the secret. The lists live once, in
//! code (`relay_aws::REQUIRED_ENV`, `REQUIRED_SECRET_KEYS`,
//! `HOOK_SECRET_KEYS`); this test keeps the generated
//! `terraform/modules/aws/required-env.json` and `required-secret-keys.json`
//! equal to them (the Terraform tests read those files), and checks that the
//! lists are right: each listed variable or key, removed, stops start-up
//! naming it, and with all of them start-up succeeds.
//! Regenerate with `UPDATE_REQUIRED_ENV=1 cargo test -p relay-aws --test required_env`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use relay_aws::{HOOK_SECRET_KEYS, REQUIRED_ENV, REQUIRED_SECRET_KEYS, SecretValues, Settings};
use relay_core::config::{ConfigError, RawConfig};
use relay_core::pipeline::{duo_relay, sync_retry};
use relay_core::store::MemoryStore;

const UPDATE: &str = "UPDATE_REQUIRED_ENV";

fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/modules/aws")
}

fn pretty(value: &serde_json::Value) -> String {
    let mut json = serde_json::to_string_pretty(value).unwrap();
    json.push('\n');
    json
}

/// Writes `expected` when regenerating, then compares it with the file.
fn check_generated(file: &str, expected: &str) {
    let path = module_dir().join(file);
    if std::env::var_os(UPDATE).is_some() {
        std::fs::write(&path, expected).expect("write the generated file");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        expected,
        "{} is out of date: run {UPDATE}=1 cargo test -p relay-aws --test required_env",
        path.display()
    );
}

#[test]
fn terraform_knows_the_required_variables() {
    check_generated(
        "required-env.json",
        &pretty(&serde_json::json!(REQUIRED_ENV)),
    );
}

#[test]
fn terraform_knows_the_required_secret_keys() {
    check_generated(
        "required-secret-keys.json",
        &pretty(&serde_json::json!({
            "all_of": REQUIRED_SECRET_KEYS,
            "one_of": HOOK_SECRET_KEYS,
        })),
    );
}

/// A plausible value for each variable or key the lists name.
fn sample(name: &str) -> String {
    match name {
        "DUO_API_HOST" => "api-1234abcd.duosecurity.com".to_owned(),
        "DUO_IKEY" => "DIXXXXXXXXXXXXXXXXXX".to_owned(),
        "DUO_SKEY" => "s".repeat(40),
        "RELAY_SECRET_ID" => "idp-duo-relay".to_owned(),
        "RELAY_TABLE_NAME" => "idp-duo-relay".to_owned(),
        other => format!("{}-value-long-enough", other.to_ascii_lowercase()),
    }
}

fn secret_json(keys: &[&str]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|k| ((*k).to_owned(), serde_json::Value::String(sample(k))))
        .collect();
    serde_json::Value::Object(object).to_string()
}

/// Start-up as `bootstrap` does it, minus the AWS calls: the settings from the
/// plain environment, the secret parsed and laid over it, the relay built.
fn start(env: &RawConfig, secret: &str) -> Result<(), String> {
    Settings::from_env(env).map_err(|e| e.variable.to_owned())?;
    let values = SecretValues::parse("idp-duo-relay", secret).map_err(|e| e.to_string())?;
    let (retry, timeout) = sync_retry();
    duo_relay(
        &values.merged_over(env),
        MemoryStore::default(),
        retry,
        timeout,
    )
    .map(drop)
    .map_err(|e: ConfigError| e.variable.to_owned())
}

fn env_without(missing: Option<&str>) -> RawConfig {
    REQUIRED_ENV
        .iter()
        .filter(|name| Some(**name) != missing)
        .map(|name| ((*name).to_owned(), sample(name)))
        .collect()
}

#[test]
fn the_lists_are_what_start_up_needs() {
    let minimal_secret: Vec<&str> = REQUIRED_SECRET_KEYS
        .iter()
        .chain(&HOOK_SECRET_KEYS[..1])
        .copied()
        .collect();
    let secret = secret_json(&minimal_secret);
    assert_eq!(start(&env_without(None), &secret), Ok(()));

    for name in REQUIRED_ENV {
        assert_eq!(
            start(&env_without(Some(name)), &secret),
            Err((*name).to_owned()),
            "start-up without {name} should stop naming it"
        );
    }
    for key in REQUIRED_SECRET_KEYS {
        let keys: Vec<&str> = minimal_secret
            .iter()
            .copied()
            .filter(|k| k != key)
            .collect();
        let err = start(&env_without(None), &secret_json(&keys)).unwrap_err();
        assert!(err.contains(key), "{err}");
    }
    for hook in HOOK_SECRET_KEYS {
        let keys: Vec<&str> = REQUIRED_SECRET_KEYS.iter().chain([hook]).copied().collect();
        assert_eq!(start(&env_without(None), &secret_json(&keys)), Ok(()));
    }
    let err = start(&env_without(None), &secret_json(REQUIRED_SECRET_KEYS)).unwrap_err();
    assert!(HOOK_SECRET_KEYS.iter().all(|k| err.contains(k)), "{err}");
}
