//! Helpers: the Azurite endpoint, fresh table names, connection strings.

use std::time::Duration;

use relay_azure::settings::parse_connection_string;
use relay_azure::{TableSettings, TableStore};

/// Azurite's well-known development account and key (public; Azurite's
/// `src/common/utils/constants.ts`).
pub(crate) const DEV_ACCOUNT: &str = "devstoreaccount1";
pub(crate) const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The Azurite Table endpoint, or `None` (test skipped) when it is not
/// running — a failure instead when RELAY_TEST_REQUIRE_EMULATORS=1.
pub(crate) fn azurite() -> Option<String> {
    match std::env::var("RELAY_TEST_AZURITE_TABLE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("RELAY_TEST_REQUIRE_EMULATORS").as_deref() != Ok("1"),
                "RELAY_TEST_AZURITE_TABLE_URL is not set but RELAY_TEST_REQUIRE_EMULATORS=1: \
                 Azurite must be running (source scripts/emulators.sh)"
            );
            eprintln!(
                "skipped: RELAY_TEST_AZURITE_TABLE_URL is not set (run under scripts/test or source scripts/emulators.sh)"
            );
            None
        }
    }
}

/// `AzureWebJobsStorage` for Azurite, as the brief's Function App would
/// have it.
pub(crate) fn connection_string(azurite: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint={azurite}/{DEV_ACCOUNT};"
    )
}

/// A table name no other test uses (tests share one Azurite).
pub(crate) fn fresh_table() -> String {
    let mut rng = fastrand::Rng::new();
    let suffix: String = (0..12).map(|_| rng.lowercase()).collect();
    format!("t{suffix}")
}

/// Table settings for `table` on Azurite with the given key.
pub(crate) fn settings(azurite: &str, table: &str, key: &str) -> TableSettings {
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={key};TableEndpoint={azurite}/{DEV_ACCOUNT};"
    );
    let raw = [
        ("AzureWebJobsStorage".to_owned(), conn),
        ("RELAY_TABLE_NAME".to_owned(), table.to_owned()),
    ]
    .into_iter()
    .collect();
    let settings = TableSettings::from_config(&raw).unwrap();
    // The same string through the public parser gives the same endpoint.
    assert_eq!(
        parse_connection_string(&connection_string(azurite))
            .unwrap()
            .0,
        settings.endpoint
    );
    settings
}

/// A store on a fresh table of Azurite, created.
pub(crate) async fn fresh_store(
    azurite: &str,
    ttl: Duration,
    claim_timeout: Duration,
) -> TableStore {
    let store = TableStore::with_timeouts(
        settings(azurite, &fresh_table(), DEV_KEY),
        ttl,
        claim_timeout,
    )
    .unwrap();
    store.create_table_if_absent().await.unwrap();
    store
}
