//! The Azure Terraform module sets every app setting `relay-azure` requires.
//! The lists live once, in code (`relay_azure::REQUIRED_ENV`,
//! `REQUIRED_ONE_OF_ENV`, `TABLE_ONE_OF_ENV`, `PLATFORM_ENV`); this test
//! keeps the generated `terraform/modules/azure/required-env.json` (the
//! plain list) and `required-one-of-env.json` (the groups of which at least
//! one must be set) equal to them — the Terraform tests read those files —
//! and checks that the lists are right against the start-up code of
//! `main.rs`: with all of them start-up succeeds, and each one removed stops
//! it naming the variable. Nothing is contacted (no Azurite needed): only
//! configuration is read; the table is created later, at the first request
//! of a real start.
//! Regenerate with `UPDATE_REQUIRED_ENV=1 cargo test -p relay-azure --test required_env`.

#![allow(clippy::unwrap_used)] // tests: fail loudly

use std::path::PathBuf;

use relay_azure::{
    PLATFORM_ENV, REQUIRED_ENV, REQUIRED_ONE_OF_ENV, TABLE_ONE_OF_ENV, TableSettings, TableStore,
    check_key_vault_references, listen,
};
use relay_core::config::RawConfig;
use relay_core::pipeline::{duo_relay, sync_retry};

const UPDATE: &str = "UPDATE_REQUIRED_ENV";

fn module_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/modules/azure")
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
        "{} is out of date: run {UPDATE}=1 cargo test -p relay-azure --test required_env",
        path.display()
    );
}

#[test]
fn terraform_knows_the_required_settings() {
    check_generated(
        "required-env.json",
        &pretty(&serde_json::json!(REQUIRED_ENV)),
    );
}

#[test]
fn terraform_knows_the_one_of_groups() {
    check_generated(
        "required-one-of-env.json",
        &pretty(&serde_json::json!([REQUIRED_ONE_OF_ENV, TABLE_ONE_OF_ENV])),
    );
}

/// A value each setting accepts.
fn sample(name: &str) -> String {
    match name {
        "DUO_API_HOST" => "api-1234abcd.duosecurity.com".to_owned(),
        "DUO_IKEY" => "DIXXXXXXXXXXXXXXXXXX".to_owned(),
        "DUO_SKEY" => "s".repeat(40),
        "AZURE_STORAGE_TABLE_ENDPOINT" => "https://relaysa.table.core.windows.net".to_owned(),
        "AzureWebJobsStorage" => "DefaultEndpointsProtocol=https;AccountName=relaysa;\
             AccountKey=c2VjcmV0LWtleS1ieXRlcy1mb3ItdGVzdHM=;EndpointSuffix=core.windows.net"
            .to_owned(),
        "FUNCTIONS_CUSTOMHANDLER_PORT" => "41234".to_owned(),
        "IDENTITY_ENDPOINT" => "http://127.0.0.1:41233/msi/token".to_owned(),
        other => format!("{}-value-long-enough", other.to_ascii_lowercase()),
    }
}

/// The app settings as the Functions host hands them to the handler: what
/// the deployment set, what the platform adds, and `FUNCTIONS_WORKER_RUNTIME`
/// (which tells the handler it runs under the host).
fn under_host(deployment: &[&str]) -> RawConfig {
    let mut raw: RawConfig = deployment
        .iter()
        .chain(PLATFORM_ENV)
        .map(|name| ((*name).to_owned(), sample(name)))
        .collect();
    raw.insert("FUNCTIONS_WORKER_RUNTIME".into(), "custom".into());
    raw
}

/// The configuration-reading start-up steps of `main.rs`, in its order; the
/// error names the variable.
fn start(raw: &RawConfig) -> Result<(), String> {
    check_key_vault_references(raw).map_err(|e| e.variables.join(","))?;
    listen(raw).map_err(|e| e.variable.to_owned())?;
    let settings = TableSettings::from_config(raw).map_err(|e| e.variable.to_owned())?;
    let store = TableStore::new(settings).map_err(|e| format!("store: {e}"))?;
    let (retry, timeout) = sync_retry();
    duo_relay(raw, store, retry, timeout).map_err(|e| e.variable.to_owned())?;
    Ok(())
}

fn with(extra: &[&'static str]) -> Vec<&'static str> {
    REQUIRED_ENV.iter().chain(extra).copied().collect()
}

#[test]
fn starts_with_the_required_settings_one_idp_secret_and_one_table_setting() {
    for secret in REQUIRED_ONE_OF_ENV {
        for table in TABLE_ONE_OF_ENV {
            let names = with(&[secret, table]);
            assert_eq!(start(&under_host(&names)), Ok(()), "with {names:?}");
        }
    }
}

#[test]
fn refuses_to_start_without_each_required_setting() {
    for missing in REQUIRED_ENV {
        let names: Vec<&str> = with(&[REQUIRED_ONE_OF_ENV[0], TABLE_ONE_OF_ENV[0]])
            .into_iter()
            .filter(|n| n != missing)
            .collect();
        assert_eq!(
            start(&under_host(&names)),
            Err((*missing).to_owned()),
            "without {missing}"
        );
    }
}

#[test]
fn refuses_to_start_without_any_idp_secret() {
    let err = start(&under_host(&with(&[TABLE_ONE_OF_ENV[0]]))).unwrap_err();
    assert!(REQUIRED_ONE_OF_ENV.contains(&err.as_str()), "named {err}");
}

#[test]
fn refuses_to_start_without_any_table_setting() {
    let err = start(&under_host(&with(&[REQUIRED_ONE_OF_ENV[0]]))).unwrap_err();
    assert!(TABLE_ONE_OF_ENV.contains(&err.as_str()), "named {err}");
}

/// What the platform sets is required too: the port under the host, the
/// identity endpoint with `AZURE_STORAGE_TABLE_ENDPOINT`.
#[test]
fn refuses_to_start_without_each_platform_setting() {
    let names = with(&[REQUIRED_ONE_OF_ENV[0], "AZURE_STORAGE_TABLE_ENDPOINT"]);
    for missing in PLATFORM_ENV {
        let mut raw = under_host(&names);
        raw.remove(*missing);
        assert_eq!(start(&raw), Err((*missing).to_owned()), "without {missing}");
    }
}

/// A Key Vault reference the platform could not resolve stops start-up
/// naming the setting (what a missing "Key Vault Secrets User" role looks
/// like).
#[test]
fn refuses_an_unresolved_key_vault_reference() {
    let mut raw = under_host(&with(&[REQUIRED_ONE_OF_ENV[0], TABLE_ONE_OF_ENV[0]]));
    raw.insert(
        "DUO_SKEY".into(),
        "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/duo-skey/)".into(),
    );
    assert_eq!(start(&raw), Err("DUO_SKEY".to_owned()));
}
