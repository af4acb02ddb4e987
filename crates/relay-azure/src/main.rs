//! `relay-azure`: the relay as an Azure Functions custom handler. Reads the
//! app settings, refuses unresolved Key Vault references, builds the relay
//! with the Table Storage idempotency store once, and serves the shared
//! router under `/api` on `FUNCTIONS_CUSTOMHANDLER_PORT`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use relay_core::config::{RawConfig, optional};
use relay_core::pipeline::{duo_relay, sync_retry};
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
    match runtime.block_on(run(std::env::vars().collect())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // stderr reaches the Functions host's logs (and its "worker
            // exited" message); the value of a setting never appears here.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(raw: RawConfig) -> anyhow::Result<()> {
    // JSON lines on stdout: the host collects the handler's stdout into
    // Application Insights `traces` (category Host.Function.Console).
    let format = LogFormat::parse(optional(&raw, "RELAY_LOG_FORMAT"))
        .map_err(anyhow::Error::msg)?
        .unwrap_or(LogFormat::Json);
    init(format, "info").map_err(anyhow::Error::msg)?;

    relay_azure::check_key_vault_references(&raw)?;
    let listen = relay_azure::listen(&raw)?;
    let store = relay_azure::TableStore::new(relay_azure::TableSettings::from_config(&raw)?)?;
    let (retry, timeout) = sync_retry();
    let relay = duo_relay(&raw, store.clone(), retry, timeout)?;
    store.create_table_if_absent().await.with_context(|| {
        format!(
            "idempotency table {} at {}",
            store.table_name(),
            store.endpoint()
        )
    })?;

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
    tracing::info!(
        port = listen.port,
        table = store.table_name(),
        "relay-azure serving /api/okta, /api/auth0, /api/auth0/logs, /api/healthz"
    );
    relay_server::serve(
        listener,
        relay_server::app_with_prefix(Arc::new(relay), "/api"),
        relay_server::shutdown_signal(),
    )
    .await?;
    Ok(())
}
