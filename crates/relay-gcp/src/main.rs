//! `relay-gcp`: the relay as a Cloud Run service. Logs (JSON lines with
//! Cloud Logging's `severity` and `message`), configuration from the
//! environment (Secret Manager values arrive there), the Firestore store,
//! then the shared router on `$PORT` until SIGTERM — Cloud Run sends it and
//! waits about 10 s, so requests in flight are finished first.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use relay_core::config::{RawConfig, optional};
use relay_core::pipeline::{duo_relay, sync_retry};
use relay_gcp::GcpStore;
use relay_server::logging::{LogFormat, init};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let raw: RawConfig = std::env::vars().collect();
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
    match run(&raw).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "relay-gcp cannot start");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(raw: &RawConfig) -> anyhow::Result<()> {
    let port: u16 = match optional(raw, "PORT") {
        None => 8080,
        Some(p) => p
            .parse()
            .map_err(|_| anyhow::anyhow!("PORT: must be a port number (1-65535)"))?,
    };
    let store = GcpStore::from_config(raw).await?;
    let store_name = store.to_string();
    let (retry, timeout) = sync_retry();
    let relay = duo_relay(raw, store, retry, timeout)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], port)))
        .await
        .with_context(|| format!("PORT: cannot listen on {port}"))?;
    tracing::info!(
        port,
        store = %store_name,
        "relay-gcp serving /okta, /auth0, /auth0/logs, /healthz"
    );
    relay_server::serve(
        listener,
        relay_server::app(Arc::new(relay)),
        relay_server::shutdown_signal(),
    )
    .await
    .context("serving")?;
    tracing::info!("relay-gcp stopped");
    Ok(())
}
