//! A relay serving hooks on loopback in front of its own Duo simulator,
//! with the relay itself at hand, so a test can run other entry points
//! (the catch-up) through the same relay, store and watermarks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use duo_sim::DuoSim;
use relay_core::apply::DuoDirectory;
use relay_core::config::RawConfig;
use relay_core::pipeline::{Relay, duo_relay};
use relay_core::store::MemoryStore;

use crate::{SECRET, duo_env};

/// The relay type the tests build.
pub type ServedRelay = Relay<DuoDirectory, MemoryStore>;

/// A relay serving `/okta`, `/auth0`, `/auth0/logs` on loopback, with its
/// Duo simulator; dropping it stops the server.
#[derive(Debug)]
pub struct Served {
    pub sim: DuoSim,
    pub relay: Arc<ServedRelay>,
    pub addr: SocketAddr,
    /// The catch-up checkpoints of the relay's `missed` catch-up (Entra's
    /// deltaLinks), when Entra is configured.
    pub checkpoints: Arc<relay_core::catch_up::MemoryCheckpoints>,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts a relay with the simulator's Duo settings, both shared secrets,
/// no sync budget and `extra` configuration.
pub async fn serve(extra: &[(String, String)]) -> Served {
    serve_inner(extra, None).await
}

/// [`serve`] in queue mode: deliveries go into `queue`; the test runs the
/// workers (`relay_core::pipeline::run_workers`) on [`Served::relay`].
pub async fn serve_with_queue(
    extra: &[(String, String)],
    queue: Arc<relay_core::queue::disk::DiskQueue>,
) -> Served {
    serve_inner(extra, Some(queue)).await
}

async fn serve_inner(
    extra: &[(String, String)],
    queue: Option<Arc<relay_core::queue::disk::DiskQueue>>,
) -> Served {
    let sim = DuoSim::start().await;
    let mut raw: RawConfig = duo_env(&sim);
    raw.insert("OKTA_AUTH_SECRET".into(), SECRET.into());
    raw.insert("AUTH0_AUTH_SECRET".into(), SECRET.into());
    for (k, v) in extra {
        raw.insert(k.clone(), v.clone());
    }
    let retry = duo_admin::RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_jitter: Duration::ZERO,
        budget: Duration::from_millis(50),
    };
    let mut relay = duo_relay(&raw, MemoryStore::default(), retry, Duration::from_secs(5))
        .unwrap()
        .with_sync_budget(None);
    if let Some(queue) = queue {
        relay = relay.with_queue(queue);
    }
    // As `serve` wires it: a `missed` lifecycle notification runs a delta
    // catch-up with these checkpoints.
    let checkpoints = Arc::new(relay_core::catch_up::MemoryCheckpoints::default());
    if let Some(api) = relay.lookups().entra.clone() {
        relay = relay.with_catch_up(Arc::new(
            relay_core::catch_up::entra_delta::DeltaCatchUp::new(api, checkpoints.clone()),
        ));
    }
    let relay = Arc::new(relay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay_server::serve(
        listener,
        relay_server::app(relay.clone()),
        relay_server::ServeLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Served {
        sim,
        relay,
        addr,
        checkpoints,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Served {
    /// POSTs `body` to `path` with the shared secret; asserts a 200.
    pub async fn deliver(&self, path: &str, body: String) {
        let status = self
            .http
            .post(format!("http://{}{path}", self.addr))
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "hook delivery to {path}");
    }
}
