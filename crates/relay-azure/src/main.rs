//! `relay-azure`: the relay as an Azure Functions custom handler. Reads the
//! app settings, reads a Key Vault reference the platform left unresolved
//! itself (retrying while the identity's role takes effect) or refuses
//! start-up naming it, builds the relay
//! with the Table Storage idempotency store once, and serves the shared
//! router under `/api` on `FUNCTIONS_CUSTOMHANDLER_PORT` — plus, with
//! `RELAY_MODE=queue`, the queue-trigger worker at `/queue_worker`.
//!
//! `relay-azure dlq list|show|replay …` (run anywhere with the storage
//! account's connection string in `AzureWebJobsStorage` and
//! `RELAY_QUEUE_NAME`) lists and re-drives the dead letters on
//! `<RELAY_QUEUE_NAME>-poison`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use relay_core::config::{RawConfig, optional};
use relay_core::pipeline::{duo_relay, sync_retry};
use relay_core::queue::QueuePolicy;
use relay_server::logging::{LogFormat, init};

fn main() -> std::process::ExitCode {
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let raw: RawConfig = std::env::vars().collect();
    if args.first().map(String::as_str) == Some("dlq") {
        let code = runtime.block_on(dlq(&raw, &args[1..]));
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match runtime.block_on(run(raw)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // stderr reaches the Functions host's logs (and its "worker
            // exited" message); the value of a setting never appears here.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `RELAY_MODE`: `sync` (default) or `queue`.
/// `relay-azure dlq …`: the poison queue's dead letters.
async fn dlq(raw: &RawConfig, args: &[String]) -> i32 {
    let store = match relay_azure::QueueSettings::from_config(raw)
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            let (main, poison) =
                relay_azure::StorageQueue::pair(&settings).map_err(anyhow::Error::from)?;
            Ok(relay_azure::PoisonQueue::new(main, poison))
        }) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e:#}");
            return 2;
        }
    };
    let mut out = std::io::stdout();
    relay_core::queue::dlq_command(args, &store, &mut out).await
}

async fn run(raw: RawConfig) -> anyhow::Result<()> {
    // JSON lines on stdout: the host collects the handler's stdout into
    // Application Insights `traces` (category Host.Function.Console).
    let format = LogFormat::parse(optional(&raw, "RELAY_LOG_FORMAT"))
        .map_err(anyhow::Error::msg)?
        .unwrap_or(LogFormat::Json);
    init(format, "info").map_err(anyhow::Error::msg)?;

    // A Key Vault reference the platform could not resolve (on a new
    // deployment: the identity's role not in effect yet) is read here with
    // the same identity, retrying for a while; only then does start-up
    // refuse it, naming the setting.
    let mut raw = raw;
    relay_azure::resolve_key_vault_references(&mut raw, relay_azure::Patience::START_UP).await?;
    relay_azure::check_key_vault_references(&raw)?;
    let listen = relay_azure::listen(&raw)?;
    let limits = relay_server::ServeLimits::from_config(&raw)?;
    let queued = relay_core::queue::queue_mode(&raw)?;
    let policy = QueuePolicy::from_config(&raw)?;
    // Every setting is read before anything is called.
    let queue_settings = if queued {
        Some(relay_azure::QueueSettings::from_config(&raw)?)
    } else {
        None
    };
    let store = relay_azure::TableStore::new(relay_azure::TableSettings::from_config(&raw)?)?;
    // Duo retries inside one invocation stay short in both modes: in sync
    // mode they must fit Okta's 3 s; in queue mode the queue does the
    // backing off (host.json visibilityTimeout), and a worker that
    // processes one message at a time must not sit on one for long.
    let (retry, timeout) = sync_retry();
    let mut relay = duo_relay(&raw, store.clone(), retry, timeout)?
        .with_group_index(Arc::new(store.group_index()));
    // A `missed` Entra lifecycle notification catches up by delta query
    // from the deltaLinks the catch_up function keeps in the table.
    relay = relay_core::catch_up::entra_delta::with_missed_catch_up(
        relay,
        Arc::new(store.checkpoints()),
    );
    store.create_table_if_absent().await.with_context(|| {
        format!(
            "idempotency table {} at {}",
            store.table_name(),
            store.endpoint()
        )
    })?;
    let queues = if let Some(settings) = queue_settings {
        let (main, poison) = relay_azure::StorageQueue::pair(&settings)?;
        for queue in [&main, &poison] {
            queue.create_if_absent().await.with_context(|| {
                format!(
                    "RELAY_QUEUE_NAME: queue {} at {}",
                    queue.name(),
                    queue.endpoint()
                )
            })?;
        }
        if policy.max_attempts >= relay_azure::worker::HOST_MAX_DEQUEUE_COUNT {
            tracing::warn!(
                max_attempts = policy.max_attempts,
                host_max_dequeue_count = relay_azure::worker::HOST_MAX_DEQUEUE_COUNT,
                "RELAY_QUEUE_MAX_ATTEMPTS is not below host.json maxDequeueCount: the host moves failing messages to the poison queue before the worker records why"
            );
        }
        relay = relay.with_queue(Arc::new(relay_azure::AzureEventQueue::new(main.clone())));
        Some((main, poison))
    } else {
        None
    };

    if listen.defaulted {
        tracing::info!(
            port = listen.port,
            "FUNCTIONS_CUSTOMHANDLER_PORT is not set (not under the Functions host): listening on the default port"
        );
    }
    // The host calls its custom handler on 127.0.0.1; nothing else needs to.
    let addr = SocketAddr::from(([127, 0, 0, 1], listen.port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("FUNCTIONS_CUSTOMHANDLER_PORT: cannot listen on {addr}"))?;
    let relay = Arc::new(relay);
    let mut router = relay_server::app_with_prefix(relay.clone(), "/api");
    // The scheduled catch-up (the `catch_up` timer function), in both modes:
    // the handler's own relay and table.
    let catch_up = relay_azure::catch_up::router(relay_azure::catch_up::CatchUpTask {
        relay: relay.clone(),
        checkpoints: store.checkpoints(),
        raw: Arc::new(raw.clone()),
    });
    if let Some((main, poison)) = queues {
        tracing::info!(
            port = listen.port,
            table = store.table_name(),
            queue = main.name(),
            poison_queue = poison.name(),
            max_attempts = policy.max_attempts,
            mode = "queue",
            "relay-azure serving {} and the queue worker /{}",
            relay_server::served_paths_line("/api"),
            relay_azure::worker::FUNCTION_NAME
        );
        let worker = Arc::new(relay_azure::worker::Worker {
            relay,
            poison,
            policy,
        });
        router = axum::Router::new()
            .route(
                &format!("/{}", relay_azure::worker::FUNCTION_NAME),
                axum::routing::post(relay_azure::worker::invoke),
            )
            .layer(axum::extract::DefaultBodyLimit::max(
                relay_server::MAX_BODY_BYTES,
            ))
            .with_state(worker)
            .merge(router);
    } else {
        tracing::info!(
            port = listen.port,
            table = store.table_name(),
            mode = "sync",
            "relay-azure serving {}",
            relay_server::served_paths_line("/api")
        );
    }
    // The scheduled reconcile (the `reconcile` timer function), in both modes.
    let router = router
        .merge(relay_azure::reconcile::router(Arc::new(raw.clone())))
        .merge(catch_up);
    relay_server::serve(listener, router, limits, relay_server::shutdown_signal()).await?;
    Ok(())
}
