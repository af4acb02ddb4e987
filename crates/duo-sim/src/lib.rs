//! `duo-sim`: a Duo Admin API simulator for tests and the demo.
//!
//! It owns a fake Duo tenant (users, aliases, groups, memberships, phones,
//! tokens, WebAuthn/U2F credentials, bypass codes) and serves the subset of
//! the Admin API the relay uses, with Duo's envelope, error codes, paging and
//! one-to-many limits. Like Duo, it refuses any request whose signature (v2
//! HMAC-SHA1/SHA512 or v5 HMAC-SHA512, see [`verify`]) or date is wrong, before
//! it looks at anything else, including whether the path exists.
//!
//! It knows nothing about identity providers or the relay, and does not depend
//! on the `duo-admin` client: its verifier is an independent implementation.
//!
//! Test hooks: [`DuoSim`] (seed, snapshot, call records, fault injection). The
//! binary exposes the same hooks over HTTP under `/_sim/` (unsigned, loopback
//! peers only). **`/_sim/` is not part of Duo's API.**
//!
//! Choices where Duo's behaviour is unknown or unpublished:
//! - `+` in a query string or form body decodes to a space (standard form
//!   parsing); clients should percent-encode (`%20`, `%2B`) as they sign.
//! - Usernames and aliases are matched case-insensitively.
//! - Creating a user whose username (or an alias) another user answers to is
//!   400 / 40002 with `message_detail` "username" (or "aliases").
//! - Duplicate group names are refused: 400 / 40002, detail "name".
//! - Deleting an absent user or group, or removing a membership or a
//!   phone/token association that does not exist, is 200 OK (Duo documents
//!   this for users) unless
//!   [`Faults::absent_delete_not_found`] asks for 404 / 40401; deleting an
//!   absent phone, token, WebAuthn/U2F credential or bypass code is 404 / 40401.
//! - `limit` above the maximum is clamped; zero, negative or non-numeric
//!   `limit`/`offset` is 400 / 40002.
//! - An injected 429 or 500 changes nothing; a lost or truncated answer
//!   ([`Faults::rate_lost_answer`], [`Faults::rate_truncated`]) comes after
//!   the change was made.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

mod error;
pub mod faults;
mod server;
pub mod state;
pub mod verify;

pub use faults::Faults;
pub use server::CallRecord;
pub use state::{
    AliasChange, Detached, History, Seed, SeedGroup, SeedUser, SimBypassCode, SimGroup, SimPhone,
    SimToken, SimU2fToken, SimUser, SimWebauthnCredential, Snapshot,
};
pub use verify::{SigVersion, Verified, VerifyError, verify_request};

use server::{Shared, lock};

/// Where the simulator listens and which keys it accepts.
#[derive(Clone)]
pub struct SimConfig {
    /// The API host clients sign (`DUO_API_HOST`), compared lower-case.
    pub host: String,
    pub ikey: String,
    pub skey: String,
    /// Largest accepted |now − request date|.
    pub max_skew: Duration,
    pub addr: SocketAddr,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            host: "api-sim.duosecurity.com".into(),
            ikey: "DISIMULATOR000000000".into(),
            skey: "simulatorsecretkeysimulatorsecretkey0000".into(),
            max_skew: Duration::from_secs(300),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("host", &self.host)
            .field("ikey", &self.ikey)
            .field("skey", &"[redacted]")
            .field("max_skew", &self.max_skew)
            .field("addr", &self.addr)
            .finish()
    }
}

/// A running simulator. Dropping it stops the server too; [`DuoSim::shutdown`]
/// waits for it.
pub struct DuoSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for DuoSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DuoSim")
            .field("addr", &self.addr)
            .field("config", &self.shared.cfg)
            .finish()
    }
}

impl DuoSim {
    /// Starts with [`SimConfig::default`] on a random loopback port.
    ///
    /// # Panics
    /// If no loopback port can be bound (tests only).
    pub async fn start() -> DuoSim {
        Self::start_with(SimConfig::default())
            .await
            .expect("bind a loopback port for duo-sim")
    }

    /// Binds `cfg.addr` and serves until shutdown.
    pub async fn start_with(cfg: SimConfig) -> std::io::Result<DuoSim> {
        Self::start_seeded(cfg, None).await
    }

    /// Seeds the tenant, then binds `cfg.addr` and serves: a client that
    /// finds the port open finds the whole tenant there. (Seeding after
    /// binding let the load harness's first calls wait for a 20,000-user
    /// seed behind the tenant lock, past the relay's 2 s Duo timeout.)
    pub async fn start_seeded(cfg: SimConfig, seed: Option<Seed>) -> std::io::Result<DuoSim> {
        // Before binding: the kernel completes connections to a bound port
        // even while nothing accepts them yet.
        let mut tenant = state::Tenant::default();
        if let Some(seed) = seed {
            tenant.seed(seed, server::epoch_now());
        }
        let listener = tokio::net::TcpListener::bind(cfg.addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(SimConfig { addr, ..cfg }));
        *lock(&shared.tenant) = tenant;
        let app = server::app(shared.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                // A dropped sender also means stop.
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "duo-sim server stopped");
            }
        });
        tracing::info!(%addr, host = %shared.cfg.host, "duo-sim listening");
        Ok(DuoSim {
            shared,
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash); use as the client's base-URL override.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration in force (`addr` is the bound address).
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Adds users and groups; existing usernames/group names are skipped.
    pub fn seed(&self, seed: Seed) {
        lock(&self.shared.tenant).seed(seed, server::epoch_now());
    }

    pub fn snapshot(&self) -> Snapshot {
        lock(&self.shared.tenant).snapshot()
    }

    /// What the API did that a snapshot no longer shows: users deleted (as
    /// they were) and aliases replaced by another value. A test hook.
    pub fn history(&self) -> History {
        lock(&self.shared.tenant).history()
    }

    /// The user whose username (not alias) matches, case-insensitively.
    pub fn user_by_username(&self, username: &str) -> Option<SimUser> {
        lock(&self.shared.tenant).user_by_username(username)
    }

    /// The group with exactly this name.
    pub fn group_by_name(&self, name: &str) -> Option<SimGroup> {
        lock(&self.shared.tenant).group_by_name(name)
    }

    /// Every Duo call answered since start or the last [`DuoSim::reset_calls`].
    pub fn calls(&self) -> Vec<CallRecord> {
        lock(&self.shared.calls).clone()
    }

    /// Calls whose route template equals `route`, e.g. `"POST /admin/v1/users"`.
    pub fn call_count(&self, route: &str) -> usize {
        lock(&self.shared.calls)
            .iter()
            .filter(|c| c.route == route)
            .count()
    }

    pub fn total_calls(&self) -> usize {
        lock(&self.shared.calls).len()
    }

    pub fn reset_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    /// Replaces the active faults (all zero = none).
    pub fn set_faults(&self, faults: Faults) {
        lock(&self.shared.faults).set(faults);
    }

    /// Stops accepting, lets in-flight calls finish (at most 5 s), and returns.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_skey() {
        let cfg = SimConfig {
            skey: "TOPSECRETTOPSECRETTOPSECRETTOPSECRET0000".into(),
            ..SimConfig::default()
        };
        let text = format!("{cfg:?}");
        assert!(
            !text.contains("TOPSECRET") && text.contains("[redacted]"),
            "{text}"
        );
        assert_eq!(
            (
                SimConfig::default().ikey.len(),
                SimConfig::default().skey.len()
            ),
            (20, 40)
        );
    }

    /// The tenant is complete before the port opens, and a seed keeps its
    /// rule that a taken username or alias (of earlier seeded users too) or
    /// group name is skipped.
    #[tokio::test]
    async fn start_seeded_serves_the_whole_seed_and_skips_taken_names() {
        let user = |name: &str, alias: &str| SeedUser {
            username: name.into(),
            aliases: vec![alias.into()],
            groups: vec!["g1".into()],
            ..SeedUser::default()
        };
        let seed = Seed {
            groups: vec![
                SeedGroup {
                    name: "g1".into(),
                    ..SeedGroup::default()
                },
                SeedGroup {
                    name: "g1".into(),
                    desc: "duplicate".into(),
                    ..SeedGroup::default()
                },
            ],
            users: vec![
                user("ann", "ann-alias"),
                user("ANN", ""),
                user("ann-alias", ""),
                user("bob", ""),
            ],
        };
        let sim = DuoSim::start_seeded(SimConfig::default(), Some(seed))
            .await
            .unwrap();
        let snap = sim.snapshot();
        let names: Vec<&str> = snap.users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["ann", "bob"]);
        assert_eq!(snap.groups.len(), 1);
        assert!(snap.users.iter().all(|u| u.groups == ["g1"]));
        sim.shutdown().await;
    }

    #[tokio::test]
    async fn handle_debug_is_redacted_and_shutdown_returns() {
        let sim = DuoSim::start().await;
        let text = format!("{sim:?}");
        assert!(!text.contains(&sim.config().skey) && text.contains("[redacted]"));
        assert!(sim.base_url().starts_with("http://127.0.0.1:"));
        sim.shutdown().await;
    }
}
