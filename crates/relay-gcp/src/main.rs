//! `relay-gcp`: the relay as a Cloud Run service. Logs (JSON lines with
//! Cloud Logging's `severity` and `message`), configuration from the
//! environment (Secret Manager values arrive there), the Firestore store,
//! then the shared router on `$PORT` until SIGTERM — Cloud Run sends it and
//! waits about 10 s, so requests in flight are finished first. With
//! `RELAY_MODE=queue` accepted events go to Pub/Sub and come back to
//! `POST /pubsub/push`.
//!
//! `relay-gcp reconcile` and `relay-gcp catch-up` run one scheduled task
//! each (Cloud Run jobs on the service's image and settings).
//!
//! `relay-gcp dlq list|show|replay …` reads and re-drives the dead letters
//! on `RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION` (as a Cloud Run job with the
//! service's settings, or anywhere with `GOOGLE_OAUTH_ACCESS_TOKEN`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use relay_core::config::{RawConfig, optional};
use relay_core::pipeline::{duo_relay, sync_retry};
use relay_core::queue::QueuePolicy;
use relay_gcp::GcpStore;
use relay_gcp::pubsub::{DeadLetterSubscription, PubSub, PubSubConfig, PubSubEventQueue};
use relay_gcp::push::{PUSH_ROUTE, PushAuth, PushWorker};
use relay_server::logging::{LogFormat, init};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let raw: RawConfig = std::env::vars().collect();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dlq") {
        let code = dlq(&raw, &args[1..]).await;
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let format = match LogFormat::parse(optional(&raw, "RELAY_LOG_FORMAT")) {
        Ok(format) => format.unwrap_or(LogFormat::Json),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(e) = init(format, "info") {
        eprintln!("error: {e}");
        return std::process::ExitCode::FAILURE;
    }
    // `relay-gcp reconcile`: one run (the Cloud Run job Cloud Scheduler starts).
    if args.first().map(String::as_str) == Some("reconcile") {
        return relay_gcp::reconcile::run_job(&raw).await;
    }
    // `relay-gcp catch-up`: one run (the Cloud Run job Cloud Scheduler starts).
    if args.first().map(String::as_str) == Some("catch-up") {
        return relay_gcp::catch_up::run_job(&raw).await;
    }
    match run(&raw).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "relay-gcp cannot start");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `relay-gcp dlq …`: the dead-letter subscription's dead letters.
async fn dlq(raw: &RawConfig, args: &[String]) -> i32 {
    let client = match PubSubConfig::for_dlq(raw) {
        Ok(config) => PubSub::connect(config).await,
        Err(e) => Err(e),
    };
    let client = match client {
        Ok(client) => Arc::new(client),
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let store = DeadLetterSubscription::new(client);
    let mut out = std::io::stdout();
    relay_core::queue::dlq_command(args, &store, &mut out).await
}

/// `RELAY_MODE`: `sync` (default) or `queue`.
async fn run(raw: &RawConfig) -> anyhow::Result<()> {
    let port: u16 = match optional(raw, "PORT") {
        None => 8080,
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("PORT: must be a port number (1-65535)"))?,
    };
    let limits = relay_server::ServeLimits::from_config(raw)?;
    let queued = relay_core::queue::queue_mode(raw)?;
    let policy = QueuePolicy::from_config(raw)?;
    // Queue settings are read before anything is called.
    let queue_config = if queued {
        Some((PubSubConfig::for_service(raw)?, PushAuth::from_config(raw)?))
    } else {
        None
    };
    let store = GcpStore::from_config(raw).await?;
    let store_name = store.to_string();
    // Duo retries inside one request stay short in both modes: in sync mode
    // they must fit Okta's 3 s; in queue mode Pub/Sub's retry policy does
    // the backing off, and a push must answer well within its deadline.
    let (retry, timeout) = sync_retry();
    let groups = store.group_index();
    let checkpoints = store.checkpoints();
    let mut relay = duo_relay(raw, store, retry, timeout)?;
    if let Some(groups) = groups {
        relay = relay.with_group_index(Arc::new(groups));
    }
    // A `missed` Entra lifecycle notification catches up by delta query
    // from the deltaLinks the catch-up job keeps in Firestore (in memory
    // with RELAY_STORE=memory: the first `missed` of an instance resyncs).
    relay = relay_core::catch_up::entra_delta::with_missed_catch_up(relay, Arc::new(checkpoints));
    let queue = match queue_config {
        Some((config, auth)) => {
            let pubsub = Arc::new(PubSub::connect(config).await?);
            relay = relay.with_queue(Arc::new(PubSubEventQueue::new(pubsub.clone())));
            Some((pubsub, auth))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .with_context(|| format!("PORT: cannot listen on {port}"))?;
    let relay = Arc::new(relay);
    let mut router = relay_server::app(relay.clone());
    if let Some((pubsub, auth)) = queue {
        tracing::info!(
            port,
            store = %store_name,
            mode = "queue",
            topic = pubsub.topic().unwrap_or("-"),
            dead_letter_topic = pubsub.dead_letter_topic().unwrap_or("-"),
            push_service_account = %auth.service_account,
            max_attempts = policy.max_attempts,
            "relay-gcp serving {} and the Pub/Sub push worker {PUSH_ROUTE}",
            relay_server::served_paths_line("")
        );
        let worker = Arc::new(PushWorker::new(relay, pubsub, auth, policy));
        router = axum::Router::new()
            .route(PUSH_ROUTE, axum::routing::post(relay_gcp::push::push))
            .layer(axum::extract::DefaultBodyLimit::max(
                relay_server::MAX_BODY_BYTES,
            ))
            .with_state(worker)
            .merge(router);
    } else {
        tracing::info!(
            port,
            store = %store_name,
            mode = "sync",
            "relay-gcp serving {}",
            relay_server::served_paths_line("")
        );
    }
    relay_server::serve(listener, router, limits, relay_server::shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("relay-gcp stopped");
    Ok(())
}
