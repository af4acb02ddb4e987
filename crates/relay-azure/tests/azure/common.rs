//! Helpers: the Azurite endpoints, fresh table and queue names, connection
//! strings, and the `relay-azure` binary as a child process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duo_sim::DuoSim;

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
    relay_tests::emulator_url("RELAY_TEST_AZURITE_TABLE_URL", "Azurite's Table service")
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

pub(crate) const SECRET: &str = "azure-e2e-secret-0123456789abcdef";

pub(crate) use relay_tests::fixture_text as fixture;

pub(crate) fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The binary with exactly `env` (nothing inherited from the test's
/// environment but PATH), stdout and stderr into files.
pub(crate) struct Handler {
    pub(crate) child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Handler {
    pub(crate) fn spawn(env: &BTreeMap<String, String>) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "relay-azure-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let stdout = dir.join("stdout.log");
        let stderr = dir.join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_relay-azure"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the process to exit on its own (start-up failures).
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, std::fs::read_to_string(&self.stderr).unwrap());
            }
            assert!(Instant::now() < deadline, "relay-azure did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap()
            + &std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Function App's settings for the relay against `sim`.
pub(crate) fn app_settings(
    sim: &DuoSim,
    port: u16,
    storage: &str,
    table: &str,
) -> BTreeMap<String, String> {
    let cfg = sim.config();
    BTreeMap::from([
        // What the host sets for a custom handler.
        ("FUNCTIONS_WORKER_RUNTIME".into(), "custom".into()),
        ("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port.to_string()),
        ("AzureWebJobsStorage".into(), storage.into()),
        ("RELAY_TABLE_NAME".into(), table.into()),
        ("DUO_API_HOST".into(), cfg.host.clone()),
        ("DUO_IKEY".into(), cfg.ikey.clone()),
        ("DUO_SKEY".into(), cfg.skey.clone()),
        ("DUO_API_URL".into(), sim.base_url()),
        ("DUO_RATE_PER_MINUTE".into(), "off".into()),
        ("OKTA_AUTH_SECRET".into(), SECRET.into()),
    ])
}

/// Polls `GET /api/healthz` until 200; the time from spawn to then is the
/// local cold start.
pub(crate) async fn wait_ready(handler: &mut Handler, port: u16, started: Instant) -> Duration {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/healthz");
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status() == 200
        {
            return started.elapsed();
        }
        if let Some(status) = handler.child.try_wait().unwrap() {
            panic!(
                "relay-azure exited ({status}) before serving:\n{}",
                handler.logs()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "relay-azure not ready:\n{}",
            handler.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The Azurite Queue endpoint, or `None` (test skipped) when it is not
/// running — a failure instead when RELAY_TEST_REQUIRE_EMULATORS=1.
pub(crate) fn azurite_queue() -> Option<String> {
    relay_tests::emulator_url("RELAY_TEST_AZURITE_QUEUE_URL", "Azurite's Queue service")
}

/// `AzureWebJobsStorage` for Azurite's Table and Queue services.
pub(crate) fn storage_connection_string(table: &str, queue: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint={table}/{DEV_ACCOUNT};QueueEndpoint={queue}/{DEV_ACCOUNT};"
    )
}

/// A queue name no other test uses.
pub(crate) fn fresh_queue() -> String {
    let mut rng = fastrand::Rng::new();
    let suffix: String = (0..12).map(|_| rng.lowercase()).collect();
    format!("q-{suffix}")
}

/// Queue settings for `queue` on Azurite with the given key.
pub(crate) fn queue_settings(
    azurite_queue: &str,
    queue: &str,
    key: &str,
) -> relay_azure::QueueSettings {
    let conn = format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={key};QueueEndpoint={azurite_queue}/{DEV_ACCOUNT};"
    );
    let raw = [
        ("AzureWebJobsStorage".to_owned(), conn),
        ("RELAY_QUEUE_NAME".to_owned(), queue.to_owned()),
    ]
    .into_iter()
    .collect();
    relay_azure::QueueSettings::from_config(&raw).unwrap()
}
