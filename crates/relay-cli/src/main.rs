//! `idp-duo-relay`: the relay on one machine.
//!
//! - `serve`  — the webhook routes, configured from the environment.
//! - `demo`   — the Duo simulator and the relay in one process, with a
//!   ready-to-paste delivery: no cloud account, no Duo tenant.
//! - `replay` — recorded deliveries through the pipeline (`--dry-run` prints
//!   the Duo operations instead of making them).
//! - `dlq`    — the local queue's dead letters (`RELAY_MODE=queue`).
//! - `reconcile` — converge Duo to the IdP, or report the drift.
//! - `catch-up` — apply what the hook missed, from the IdP's event log.

mod catch_up;
mod entra;
mod reconcile;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use relay_core::apply::{DryRun, DuoDirectory};
use relay_core::config::{RawConfig, duo_client, duo_config, optional};
use relay_core::event::Source;
use relay_core::pipeline::{EventReport, IdpLookups, Relay, duo_relay, sync_retry};
use relay_core::plan::PlanRules;
use relay_core::queue::QueuePolicy;
use relay_core::queue::disk::{DeadLettersSnapshot, DiskQueue};
use relay_core::state::StateReport;
use relay_core::store::{DEFAULT_TTL, FileStore, MemoryStore};
use relay_core::verified::Verified;
use relay_core::verify::InboundAuth;

const USAGE: &str = "\
idp-duo-relay — keep Duo in sync with Okta and Auth0

USAGE:
    idp-duo-relay serve                 serve the webhook routes (configuration: environment, see README)
    idp-duo-relay demo [--once]         Duo simulator + relay in one process, with a sample delivery
    idp-duo-relay replay [--dry-run] [--source okta|auth0|auth0-logs] FILE...
                                        run recorded deliveries through the pipeline
    idp-duo-relay dlq list [--json] | show ID | replay ID...|--all
                                        dead letters of the local queue (RELAY_STATE_DIR/queue)
    idp-duo-relay reconcile --source okta|auth0|entra [--dry-run] [--user LOGIN] [--max-deletes N]
                            [--include-unmanaged] [--json]
                                        converge Duo to the IdP, or report the drift (reconcile --help)
    idp-duo-relay catch-up --source okta|auth0 [--since TIME] [--dry-run] [--json]
                                        apply what the hook missed, from the IdP's log (catch-up --help)
    idp-duo-relay entra subscribe --url https://HOST/entra | entra audit | entra delta
                                        create or renew the Microsoft Graph subscriptions; apply
                                        Entra MFA resets from the audit log (entra --help)
    idp-duo-relay --version | --help
";

/// The demo's Entra ID user (in its embedded Graph stand-in).
const DEMO_ENTRA_USER: (&str, &str) = (
    "4d9b8f2e-0000-4000-8000-00000000a11c",
    "grace.hopper@contoso.com",
);

/// A sample Okta delivery for the demo (the same shape as the test fixtures).
const SAMPLE_OKTA_DELIVERY: &str =
    include_str!("../../../tests/fixtures/okta/user-lifecycle-create.json");

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // reconcile answers its own exit codes (converged, drift, cap, IdP/Duo error).
    if args.first().map(String::as_str) == Some("reconcile") {
        let raw: RawConfig = std::env::vars().collect();
        return runtime.block_on(reconcile::command(&raw, &args[1..]));
    }
    if args.first().map(String::as_str) == Some("entra") {
        let raw: RawConfig = std::env::vars().collect();
        return runtime.block_on(entra::command(&raw, &args[1..]));
    }
    if args.first().map(String::as_str) == Some("catch-up") {
        let raw: RawConfig = std::env::vars().collect();
        return runtime.block_on(catch_up::command(&raw, &args[1..]));
    }
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Vec<String>) -> anyhow::Result<()> {
    let raw: RawConfig = std::env::vars().collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&raw).await,
        Some("demo") => demo(&raw, args.iter().any(|a| a == "--once")).await,
        Some("replay") => replay(&raw, &args[1..]).await,
        Some("dlq") => dlq(&raw, &args[1..]).await,
        Some("--version" | "-V") => {
            println!("idp-duo-relay {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some("--help" | "-h" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// `RELAY_LOG_FORMAT`: `json` (the default, what log platforms parse) or
/// `pretty`; `pretty` is also the default on a terminal.
fn init_logging(raw: &RawConfig, default_pretty: bool) -> anyhow::Result<()> {
    init_logging_with(raw, default_pretty, "info")
}

fn init_logging_with(
    raw: &RawConfig,
    default_pretty: bool,
    default_filter: &str,
) -> anyhow::Result<()> {
    use relay_server::logging::{LogFormat, init};
    let format = LogFormat::parse(optional(raw, "RELAY_LOG_FORMAT"))
        .map_err(anyhow::Error::msg)?
        .unwrap_or(if default_pretty {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        });
    init(format, default_filter).map_err(anyhow::Error::msg)
}

fn port(raw: &RawConfig) -> anyhow::Result<u16> {
    match optional(raw, "PORT") {
        None => Ok(8080),
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("PORT: must be a port number (1-65535)")),
    }
}

/// `RELAY_QUEUE_CONCURRENCY`: how many queue workers `serve` runs (default 4).
fn queue_concurrency(raw: &RawConfig) -> anyhow::Result<usize> {
    match optional(raw, "RELAY_QUEUE_CONCURRENCY") {
        None => Ok(4),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| anyhow::anyhow!("RELAY_QUEUE_CONCURRENCY: must be 1 to 64")),
    }
}

fn state_dir(raw: &RawConfig) -> &str {
    optional(raw, "RELAY_STATE_DIR").unwrap_or(".idp-duo-relay")
}

async fn serve(raw: &RawConfig) -> anyhow::Result<()> {
    init_logging(raw, std::io::stdout().is_terminal())?;
    let state_dir = state_dir(raw);
    let queued = relay_core::queue::queue_mode(raw)?;
    let policy = QueuePolicy::from_config(raw)?;
    let concurrency = queue_concurrency(raw)?;
    let limits = relay_server::ServeLimits::from_config(raw)?;
    // Refuse a bad configuration before creating anything in the state
    // directory.
    duo_relay(raw, MemoryStore::default(), sync_retry().0, sync_retry().1)?;
    let store = FileStore::open(PathBuf::from(state_dir).join("applied.log"), DEFAULT_TTL)
        .with_context(|| {
            format!("RELAY_STATE_DIR: cannot open the idempotency store in {state_dir}")
        })?;
    let mut state = StateReport {
        files: vec![store.report().clone()],
    };
    // In the request, Duo retries must fit Okta's 3 s; a queue worker can
    // wait longer, and the queue retries after that.
    let (retry, timeout) = if queued {
        (
            duo_admin::RetryPolicy::short(std::time::Duration::from_secs(10)),
            std::time::Duration::from_secs(10),
        )
    } else {
        sync_retry()
    };
    let groups =
        relay_core::group_index::FileGroupIndex::open(PathBuf::from(state_dir).join("groups.log"))
            .with_context(|| {
                format!("RELAY_STATE_DIR: cannot open the group index in {state_dir}")
            })?;
    state.files.push(groups.report().clone());
    let mut relay = duo_relay(raw, store, retry, timeout)?.with_group_index(Arc::new(groups));
    let queue = if queued {
        let dir = PathBuf::from(state_dir).join("queue");
        let queue = Arc::new(DiskQueue::open(&dir).with_context(|| {
            format!(
                "RELAY_STATE_DIR: cannot open the queue in {}",
                dir.display()
            )
        })?);
        state.files.extend(queue.report().iter().cloned());
        relay = relay.with_queue(queue.clone());
        Some(queue)
    } else {
        None
    };
    // A `missed` lifecycle notification catches up by delta query, with
    // the deltaLinks in the state directory (`entra delta` keeps them there).
    relay = relay_core::catch_up::entra_delta::with_missed_catch_up(
        relay,
        Arc::new(relay_core::catch_up::FileCheckpoints::new(state_dir)),
    );
    let lookups = relay.lookups();
    if !relay_core::event::IdpKind::ALL
        .iter()
        .any(|idp| lookups.configured(*idp))
    {
        tracing::info!(
            "no IdP API credentials: profile updates and group renames whose events lack the new values will be skipped (set OKTA_ORG_URL + OKTA_API_TOKEN, AUTH0_DOMAIN + AUTH0_CLIENT_ID + AUTH0_CLIENT_SECRET, or ENTRA_TENANT_ID + ENTRA_CLIENT_ID + ENTRA_CLIENT_SECRET or ENTRA_CLIENT_CERTIFICATE)"
        );
    }
    let port = port(raw)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .with_context(|| format!("PORT: cannot listen on {port}"))?;
    let relay = Arc::new(relay);
    if state.damaged() {
        tracing::error!(
            state_dir,
            "RELAY_STATE_DIR holds damaged state (see the lines above; /healthz lists it): serving with every record that could be read"
        );
    }
    let state = state.health();
    let Some(queue) = queue else {
        tracing::info!(
            port,
            state_dir,
            mode = "sync",
            "idp-duo-relay serving {}",
            relay_server::served_paths_line("")
        );
        let health: relay_server::Health =
            Arc::new(move || serde_json::json!({ "state": state.clone() }));
        relay_server::serve(
            listener,
            relay_server::app_with_health(relay, health),
            limits,
            relay_server::shutdown_signal(),
        )
        .await?;
        return Ok(());
    };
    let stats = queue.stats();
    tracing::info!(
        port,
        state_dir,
        mode = "queue",
        pending = stats.pending,
        dead_letters = stats.dead_letters,
        concurrency,
        max_attempts = policy.max_attempts,
        "idp-duo-relay serving {}; queue workers started",
        relay_server::served_paths_line("")
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        relay_server::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let health_queue = queue.clone();
    let health: relay_server::Health = Arc::new(move || {
        serde_json::json!({
            "queue": serde_json::to_value(health_queue.stats()).unwrap_or_default(),
            "state": state.clone(),
        })
    });
    let workers = tokio::spawn(relay_core::pipeline::run_workers(
        queue.clone(),
        relay.clone(),
        policy,
        concurrency,
        stopped(stop_rx.clone()),
    ));
    relay_server::serve(
        listener,
        relay_server::app_with_health(relay, health),
        limits,
        stopped(stop_rx),
    )
    .await?;
    workers.await?;
    let stats = queue.stats();
    tracing::info!(
        pending = stats.pending,
        dead_letters = stats.dead_letters,
        "stopped; pending messages resume at the next start"
    );
    Ok(())
}

/// `dlq list|show|replay` over `RELAY_STATE_DIR/queue`. Listing works while
/// `serve` runs; a replay needs the queue's lock, so `serve` must be stopped.
async fn dlq(raw: &RawConfig, args: &[String]) -> anyhow::Result<()> {
    let dir = PathBuf::from(state_dir(raw)).join("queue");
    let mut out = std::io::stdout();
    let code = if args.first().map(String::as_str) == Some("replay") {
        let queue = DiskQueue::open_existing(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        relay_core::queue::dlq_command(args, &queue, &mut out).await
    } else {
        let snapshot = DeadLettersSnapshot::read(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
        relay_core::queue::dlq_command(args, &snapshot, &mut out).await
    };
    if code == 0 {
        Ok(())
    } else {
        bail!("dlq {} failed (exit {code})", args.join(" "))
    }
}

fn random_secret() -> String {
    let mut rng = fastrand::Rng::new();
    (0..32).map(|_| rng.alphanumeric()).collect()
}

async fn demo(raw: &RawConfig, once: bool) -> anyhow::Result<()> {
    // The simulator's per-call lines would drown the relay's summary lines.
    init_logging_with(raw, true, "info,duo_sim=warn")?;
    let sim = duo_sim::DuoSim::start_with(duo_sim::SimConfig::default())
        .await
        .context("cannot start the Duo simulator")?;
    let secret = random_secret();
    let cfg = sim.config();
    let env: RawConfig = BTreeMap::from([
        ("DUO_API_HOST".to_owned(), cfg.host.clone()),
        ("DUO_IKEY".to_owned(), cfg.ikey.clone()),
        ("DUO_SKEY".to_owned(), cfg.skey.clone()),
        ("DUO_API_URL".to_owned(), sim.base_url()),
        ("OKTA_AUTH_SECRET".to_owned(), secret.clone()),
        ("AUTH0_AUTH_SECRET".to_owned(), secret.clone()),
    ]);
    let mut env = env;
    // Entra ID: an embedded Microsoft Graph stand-in (loopback) with one
    // user in one group; the relay reads Graph there, as it would read
    // graph.microsoft.com. The notifications' clientState is the secret.
    let (entra_id, entra_upn) = DEMO_ENTRA_USER;
    let graph = graph_sim::GraphStandIn::start(
        vec![graph_sim::GraphUser::new(entra_id, entra_upn)],
        vec![graph_sim::GraphGroup::new(
            "4d9b8f2e-0000-4000-8000-0000000e1e11",
            "Engineering",
            &[entra_id],
        )],
    )
    .await;
    env.extend(graph.env());
    env.insert("ENTRA_CLIENT_STATE".to_owned(), secret.clone());
    for key in ["GROUP_FILTER", "DEPROVISION_ACTION"] {
        if let Some(v) = optional(raw, key) {
            env.insert(key.to_owned(), v.to_owned());
        }
    }
    let (retry, timeout) = sync_retry();
    let relay = Arc::new(duo_relay(&env, MemoryStore::default(), retry, timeout)?);

    let wanted = port(raw)?;
    let listener =
        match tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], wanted))).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .context("cannot listen on loopback")?,
        };
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(relay_server::serve(
        listener,
        relay_server::app(relay),
        relay_server::ServeLimits::default(),
        async move {
            tokio::select! {
                _ = stop_rx => {},
                () = relay_server::shutdown_signal() => {},
            }
        },
    ));

    let sample = std::env::temp_dir().join("idp-duo-relay-demo-okta.json");
    std::fs::write(&sample, SAMPLE_OKTA_DELIVERY).context("cannot write the sample delivery")?;
    let url = format!("http://{addr}/okta");
    println!();
    println!("  idp-duo-relay demo — a Duo simulator and the relay, no cloud needed");
    println!();
    println!("  Okta hook URL        {url}");
    println!("  Auth0 stream URLs    http://{addr}/auth0   http://{addr}/auth0/logs");
    println!(
        "  Entra ID (Graph)     http://{addr}/entra   (Graph stand-in: {})",
        graph_url(&env)
    );
    println!(
        "  Shared secret        {secret}   (OKTA_AUTH_SECRET / AUTH0_AUTH_SECRET / ENTRA_CLIENT_STATE)"
    );
    println!(
        "  Duo simulator        {} (state: {}/_sim/state)",
        sim.base_url(),
        sim.base_url()
    );
    println!();
    println!("  Send an Okta 'user created' delivery:");
    println!("    curl -i -X POST {url} \\");
    println!("      -H 'Authorization: {secret}' -H 'Content-Type: application/json' \\");
    println!("      --data-binary @{}", sample.display());
    println!();
    // An Entra change notification names the user only: the relay reads
    // her from the Graph stand-in (Grace Hopper, in Engineering).
    let entra_url = format!("http://{addr}/entra");
    let notification = graph_sim::GraphStandIn::notifications_with_state(
        &[("created", "Users", entra_id)],
        &secret,
    );
    let entra_sample = std::env::temp_dir().join("idp-duo-relay-demo-entra.json");
    std::fs::write(&entra_sample, &notification).context("cannot write the sample notification")?;
    println!("  Send a Microsoft Graph change notification (user created in Entra ID):");
    println!("    curl -i -X POST {entra_url} -H 'Content-Type: application/json' \\");
    println!("      --data-binary @{}", entra_sample.display());
    println!();

    // Send both once ourselves, so the newcomer sees Duo users appear.
    let client = reqwest::Client::new();
    let response = client
        .post(&url)
        .header("Authorization", &secret)
        .header("Content-Type", "application/json")
        .body(SAMPLE_OKTA_DELIVERY)
        .send()
        .await
        .context("the demo could not reach its own relay")?;
    let entra = client
        .post(&entra_url)
        .header("Content-Type", "application/json")
        .body(notification)
        .send()
        .await
        .context("the demo could not reach its own relay")?;
    println!(
        "  Sent each once: Okta HTTP {}, Entra HTTP {}. Duo users now:",
        response.status().as_u16(),
        entra.status().as_u16()
    );
    for user in sim.snapshot().users {
        println!(
            "    {:<28} {:<22} status={:<8} idp-id={}",
            user.username,
            user.realname,
            user.status,
            user.aliases[3].as_deref().unwrap_or("-")
        );
    }
    println!();
    if once {
        let _ = stop_tx.send(());
    } else {
        println!("  Serving until Ctrl-C. Send it again: it is applied once (idempotent).");
    }
    server.await.context("server task")??;
    drop(graph);
    Ok(())
}

/// The Graph base URL the demo's relay reads.
fn graph_url(env: &RawConfig) -> &str {
    optional(env, "ENTRA_GRAPH_URL").unwrap_or("-")
}

/// Guesses the source of a recorded delivery from its shape (the
/// registry's `recognizes`, in registry order).
fn detect_source(body: &str) -> anyhow::Result<Source> {
    relay_core::source::recognize(body).with_context(|| {
        format!(
            "cannot tell the source of the delivery; pass --source {}",
            relay_core::source::names()
                .replace(", ", "|")
                .replace(" or ", "|")
        )
    })
}

async fn replay(raw: &RawConfig, args: &[String]) -> anyhow::Result<()> {
    let mut dry_run = false;
    let mut source: Option<Source> = None;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--dry-run" => dry_run = true,
            "--source" => {
                source = Some(
                    match it.next().map(String::as_str).and_then(Source::from_name) {
                        Some(source) => source,
                        None => bail!("--source takes {}", relay_core::source::names()),
                    },
                );
            }
            flag if flag.starts_with("--") => bail!("unknown flag {flag}\n\n{USAGE}"),
            file => files.push(PathBuf::from(file)),
        }
    }
    if files.is_empty() {
        bail!("replay needs at least one FILE\n\n{USAGE}");
    }
    init_logging(raw, std::io::stdout().is_terminal())?;
    let rules = PlanRules::from_config(raw)?;
    let mut reports: Vec<EventReport> = Vec::new();
    if dry_run {
        let relay = Relay::new(
            replay_auth()?,
            rules,
            DryRun::default(),
            MemoryStore::default(),
        );
        for file in &files {
            reports.extend(replay_file(&relay, file, source).await?);
        }
        for op in relay.directory().planned() {
            println!("would: {op}");
        }
    } else {
        let duo = duo_client(duo_config(raw, duo_admin::RetryPolicy::default())?)?;
        let directory = DuoDirectory::from_rules(duo, &rules);
        let relay = Relay::new(replay_auth()?, rules, directory, MemoryStore::default())
            .with_lookups(IdpLookups::from_config(raw)?);
        for file in &files {
            reports.extend(replay_file(&relay, file, source).await?);
        }
    }
    println!("{}", serde_json::to_string_pretty(&reports)?);
    Ok(())
}

/// Replay never authenticates (files are trusted), but a Relay needs an
/// InboundAuth; this one accepts nothing over HTTP.
fn replay_auth() -> anyhow::Result<InboundAuth> {
    let raw = BTreeMap::from([("OKTA_AUTH_SECRET".to_owned(), random_secret())]);
    Ok(InboundAuth::from_config(&raw)?)
}

async fn replay_file<D, S>(
    relay: &Relay<D, S>,
    file: &PathBuf,
    source: Option<Source>,
) -> anyhow::Result<Vec<EventReport>>
where
    D: relay_core::apply::Directory,
    S: relay_core::store::IdempotencyStore,
{
    let body =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let source = match source {
        Some(source) => source,
        None => detect_source(&body)?,
    };
    let delivery = Verified::trusted_local_file(source, body);
    relay
        .accept_and_apply(&delivery)
        .await
        .with_context(|| format!("{} is not a valid {source} delivery", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_detected_by_shape() {
        assert_eq!(detect_source(SAMPLE_OKTA_DELIVERY).unwrap(), Source::Okta);
        assert_eq!(
            detect_source(r#"{"id":"evt_1","specversion":"1.0","type":"user.created"}"#).unwrap(),
            Source::Auth0Events
        );
        assert_eq!(
            detect_source("{\"log_id\":\"1\"}\n{\"log_id\":\"2\"}").unwrap(),
            Source::Auth0Logs
        );
    }
}
