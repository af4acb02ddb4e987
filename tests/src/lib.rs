//! Helpers for the workspace end-to-end tests in `tests/*.rs`: a running
//! relay (the real router on a real socket) in front of the Duo simulator.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test harness: fail loudly

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod checkpoint_store;
pub mod claim_store;
pub mod dead_letters;
/// The Microsoft Graph stand-in (its own crate, `graph-sim`: the demo
/// embeds it too).
pub use graph_sim as graph_standin;
pub mod group_index;
mod harness;
pub mod idp_standin;
pub mod served;

pub use harness::{emulator_url, run_to_end, summary_lines};

use duo_sim::DuoSim;
use relay_core::config::RawConfig;
use relay_core::pipeline::duo_relay;
use relay_core::store::MemoryStore;

/// The shared secret every test relay accepts (Okta and Auth0).
pub const SECRET: &str = "e2e-test-secret-0123456789abcdef";

/// A relay listening on loopback, backed by a fresh Duo simulator.
#[derive(Debug)]
pub struct TestRelay {
    pub sim: DuoSim,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestRelay {
    /// Starts with default rules.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra configuration (e.g. `GROUP_FILTER`).
    pub async fn start_with(extra: &[(&str, &str)]) -> Self {
        let sim = DuoSim::start().await;
        let mut raw = duo_env(&sim);
        raw.insert("OKTA_AUTH_SECRET".to_owned(), SECRET.to_owned());
        raw.insert("AUTH0_AUTH_SECRET".to_owned(), SECRET.to_owned());
        for (k, v) in extra {
            raw.insert((*k).to_owned(), (*v).to_owned());
        }
        let retry = duo_admin::RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            max_jitter: Duration::ZERO,
            budget: Duration::from_millis(50),
        };
        let relay = Arc::new(
            duo_relay(&raw, MemoryStore::default(), retry, Duration::from_secs(2)).unwrap(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(relay_server::serve(
            listener,
            relay_server::app(relay),
            relay_server::ServeLimits::default(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            sim,
            addr,
            http: reqwest::Client::new(),
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// POSTs `body` to `path` with the shared secret and a JSON content type.
    pub async fn deliver(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a fixture file from `tests/fixtures/`.
    pub async fn deliver_fixture(&self, path: &str, fixture: &str) -> reqwest::Response {
        self.deliver(path, fixture_text(fixture)).await
    }
}

impl Drop for TestRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The Duo settings (`DUO_API_HOST`, `DUO_IKEY`, `DUO_SKEY`, `DUO_API_URL`)
/// that point a relay at `sim`.
pub fn duo_env(sim: &DuoSim) -> RawConfig {
    let cfg = sim.config();
    BTreeMap::from([
        ("DUO_API_HOST".to_owned(), cfg.host.clone()),
        ("DUO_IKEY".to_owned(), cfg.ikey.clone()),
        ("DUO_SKEY".to_owned(), cfg.skey.clone()),
        ("DUO_API_URL".to_owned(), sim.base_url()),
        // The simulator has no rate limit: tests that count calls or time
        // retries do not wait for Duo's pace (tests/tests/pace.rs does).
        ("DUO_RATE_PER_MINUTE".to_owned(), "off".to_owned()),
    ])
}

/// The text of `tests/fixtures/<name>`.
pub fn fixture_text(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}
