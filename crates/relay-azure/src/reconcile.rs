//! The scheduled reconcile: the `reconcile` function (a `timerTrigger` on
//! `%RELAY_RECONCILE_SCHEDULE%`, crates/relay-azure/app/reconcile) as the
//! custom handler receives it.
//!
//! For a non-HTTP trigger the Functions host POSTs an invocation document
//! (`{"Data": {"timer": {…}}, "Metadata": {…}}`) to `/<functionName>` and
//! takes any 2xx answer as success, anything else as a failed invocation.
//! The timer's data is not needed: what to run comes from the app settings
//! (`RELAY_RECONCILE_SOURCE`, `RELAY_RECONCILE_DRY_RUN`,
//! `RELAY_RECONCILE_MAX_DELETES`, `RELAY_RECONCILE_INCLUDE_UNMANAGED`; see
//! `relay_core::reconcile::ReconcileOptions::scheduled`). Terraform keeps
//! the function disabled (`AzureWebJobs.reconcile.Disabled`) until
//! `reconcile_schedule` is set.
//!
//! Answer: 200 when the run converged (Duo matches the IdP), 500 when it
//! did not — drift found by a dry run, actions that failed, the
//! `--max-deletes` cap, or a read error — so a failed run shows in the
//! function's failure count and alerts. The run's log lines (one per user or
//! group changed, and the `reconcile` summary) say why.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use relay_core::config::RawConfig;
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::ReconcileOptions;
use relay_server::platform::functions_task_answer;

/// The function's folder name, which is the path the host calls.
pub const FUNCTION_NAME: &str = "reconcile";

/// The route for the reconcile function, with the app settings it reads.
pub fn router(raw: Arc<RawConfig>) -> axum::Router {
    axum::Router::new()
        .route(&format!("/{FUNCTION_NAME}"), axum::routing::post(invoke))
        .with_state(raw)
}

/// `POST /reconcile`: runs one reconcile and answers how it ended.
pub async fn invoke(State(raw): State<Arc<RawConfig>>, body: Bytes) -> Response {
    let (succeeded, outcome) = run(&raw).await;
    tracing::debug!(bytes = body.len(), "reconcile timer invocation");
    functions_task_answer(succeeded, &outcome)
}

/// The run and its answer: whether it succeeded (converged) and a short
/// outcome for the host.
pub async fn run(raw: &RawConfig) -> (bool, String) {
    let options = match ReconcileOptions::scheduled(raw, None) {
        Ok(options) => options,
        Err(e) => {
            tracing::error!(error = %e, "reconcile: bad configuration; nothing was read or written");
            return (false, format!("configuration: {e}"));
        }
    };
    match run_from_config(raw, &options).await {
        Ok(report) if report.converged() => (true, report.status_line()),
        Ok(report) => (false, report.status_line()),
        Err(e) => {
            tracing::error!(error = %e, "reconcile failed");
            (false, e.to_string())
        }
    }
}
