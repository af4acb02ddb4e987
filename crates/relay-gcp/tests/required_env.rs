//! `relay_gcp::REQUIRED_ENV` is what the Terraform module must set; this
//! test keeps it true to the start-up code (no Firestore emulator needed:
//! the store is the in-memory one, or only its configuration is read) and
//! keeps the generated `terraform/modules/gcp/required-env.json` equal to it
//! (and `required-one-of-env.json` to `REQUIRED_ONE_OF_ENV`).
//! Regenerate with
//! `UPDATE_REQUIRED_ENV=1 cargo test -p relay-gcp --test required_env`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use relay_core::config::RawConfig;
use relay_core::pipeline::{duo_relay, sync_retry};
use relay_gcp::{FirestoreConfig, GcpStore, REQUIRED_ENV, REQUIRED_ONE_OF_ENV};

/// A value each variable accepts (the secrets at least 16 characters).
fn valid_value(name: &str) -> &'static str {
    match name {
        "DUO_API_HOST" => "api-1234abcd.duosecurity.com",
        "DUO_IKEY" => "DIXXXXXXXXXXXXXXXXXX",
        // 40 letters and digits, as Duo issues secret keys.
        "DUO_SKEY" => "DuoSecretKey0123456789abcdefghijklmnopqr",
        _ => "a-generated-secret-0123456789abcdef",
    }
}

fn config(names: &[&str]) -> RawConfig {
    names
        .iter()
        .map(|name| ((*name).to_owned(), valid_value(name).to_owned()))
        .collect()
}

/// The start-up steps of `main.rs` that read configuration, with the store
/// in memory so nothing is contacted; the error names the variable.
async fn start(mut raw: RawConfig) -> Result<(), &'static str> {
    raw.insert("RELAY_STORE".into(), "memory".into());
    let store = GcpStore::from_config(&raw).await.map_err(|e| e.variable)?;
    let (retry, timeout) = sync_retry();
    duo_relay(&raw, store, retry, timeout).map_err(|e| e.variable)?;
    Ok(())
}

#[tokio::test]
async fn starts_with_the_required_variables_and_one_idp_secret() {
    for secret in REQUIRED_ONE_OF_ENV {
        let mut names = REQUIRED_ENV.to_vec();
        names.push(secret);
        assert_eq!(start(config(&names)).await, Ok(()), "with {names:?}");
    }
}

#[tokio::test]
async fn refuses_to_start_without_each_required_variable() {
    for missing in REQUIRED_ENV {
        let mut names: Vec<&str> = REQUIRED_ENV
            .iter()
            .copied()
            .filter(|n| n != missing)
            .collect();
        names.push(REQUIRED_ONE_OF_ENV[0]);
        assert_eq!(
            start(config(&names)).await,
            Err(*missing),
            "without {missing}"
        );
    }
}

#[tokio::test]
async fn refuses_to_start_without_any_idp_secret() {
    let err = start(config(REQUIRED_ENV)).await.unwrap_err();
    assert!(REQUIRED_ONE_OF_ENV.contains(&err), "named {err}");
}

/// The Firestore store needs no variable at configuration time: on Cloud
/// Run the project comes from the metadata server when
/// `GOOGLE_CLOUD_PROJECT` is unset, the database and collection have
/// defaults. (Terraform still sets all three, so nothing depends on a
/// default or an extra metadata call.)
#[test]
fn the_firestore_store_needs_no_variable_to_be_configured() {
    let config = FirestoreConfig::from_config(&RawConfig::new()).unwrap();
    assert_eq!(config.project, None);
    assert_eq!(config.database, relay_gcp::firestore::DEFAULT_DATABASE);
    assert_eq!(config.collection, relay_gcp::firestore::DEFAULT_COLLECTION);
}

fn pretty(value: &serde_json::Value) -> String {
    let mut json = serde_json::to_string_pretty(value).unwrap();
    json.push('\n');
    json
}

/// Compares (or with `UPDATE_REQUIRED_ENV` set, first writes) one generated
/// file of `terraform/modules/gcp`.
fn check_generated(file: &str, expected: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../terraform/modules/gcp")
        .join(file);
    if std::env::var_os("UPDATE_REQUIRED_ENV").is_some() {
        std::fs::write(&path, expected).expect("write the generated list");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        expected,
        "{} is out of date: run UPDATE_REQUIRED_ENV=1 cargo test -p relay-gcp --test required_env",
        path.display()
    );
}

#[test]
fn terraform_module_list_is_generated_from_required_env() {
    check_generated(
        "required-env.json",
        &pretty(&serde_json::json!(REQUIRED_ENV)),
    );
}

/// The groups of which at least one variable must be set (same shape as the
/// Azure module's file: a list of groups).
#[test]
fn terraform_module_one_of_groups_are_generated() {
    check_generated(
        "required-one-of-env.json",
        &pretty(&serde_json::json!([REQUIRED_ONE_OF_ENV])),
    );
}
