//! The scheduled catch-up: the `catch_up` function (a `timerTrigger` on
//! `%RELAY_CATCH_UP_SCHEDULE%`, crates/relay-azure/app/catch_up) as the
//! custom handler receives it — a POST of the timer's invocation document
//! to `/catch_up`, like the `reconcile` function ([`crate::reconcile`]).
//!
//! The run reads the IdP's log (`RELAY_CATCH_UP_SOURCE`, else the IdP whose
//! API is configured; for `entra`, Graph's delta queries and audit log, and
//! the subscriptions kept: `relay_core::catch_up::entra`) from the
//! checkpoint in the idempotency table
//! (PartitionKey `catch-up`, RowKey the source) and applies what the hook
//! missed through the handler's own relay: the same table of idempotency
//! keys and watermarks, so what the hook delivered is a duplicate. The
//! timer runs one instance of the function across the app's instances (a
//! blob lock per timer function: Azure/azure-webjobs-sdk#614), so runs do
//! not overlap; the checkpoint's compare-and-swap would keep them safe
//! anyway. Terraform keeps the
//! function disabled (`AzureWebJobs.catch_up.Disabled`) until
//! `catch_up_enabled`.
//!
//! Answer: 200 when the run read to the end of the log (or to its page
//! budget) with no failed event, 500 otherwise — an event failed, reading
//! the log failed, the checkpoint could not be read or saved, bad
//! configuration — so a failed run shows in the function's failures (the
//! catch_up_failed alert). The run's `catch_up` line says why; its
//! `checkpoint_lag_s` is what the catch_up_lag alert reads.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use relay_core::apply::Directory;
use relay_core::catch_up::CheckpointStore;
use relay_core::config::RawConfig;
use relay_core::pipeline::Relay;
use relay_core::store::IdempotencyStore;

/// The function's folder name, which is the path the host calls.
pub const FUNCTION_NAME: &str = "catch_up";

/// What a run needs: the handler's relay, the checkpoints beside its
/// store, and the app settings (the IdP API credentials among them).
pub struct CatchUpTask<D, S, C> {
    pub relay: Arc<Relay<D, S>>,
    pub checkpoints: C,
    pub raw: Arc<RawConfig>,
}

impl<D, S, C> std::fmt::Debug for CatchUpTask<D, S, C> {
    // The settings hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchUpTask").finish_non_exhaustive()
    }
}

/// The route of the catch-up function.
pub fn router<D, S, C>(task: CatchUpTask<D, S, C>) -> axum::Router
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
    C: CheckpointStore + 'static,
{
    axum::Router::new()
        .route(
            &format!("/{FUNCTION_NAME}"),
            axum::routing::post(invoke::<D, S, C>),
        )
        .with_state(Arc::new(task))
}

/// `POST /catch_up`: runs one catch-up and answers how it ended.
async fn invoke<D, S, C>(State(task): State<Arc<CatchUpTask<D, S, C>>>, body: Bytes) -> Response
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
    C: CheckpointStore + 'static,
{
    tracing::debug!(bytes = body.len(), "catch-up timer invocation");
    let (succeeded, outcome) = match relay_core::catch_up::run_scheduled(
        &task.relay,
        &task.raw,
        &task.checkpoints,
        None,
    )
    .await
    {
        Ok(summary) => (summary.is_ok(), summary.status_line()),
        Err(e) => {
            tracing::error!(error = %e, "catch-up: bad configuration; nothing was read or written");
            (false, format!("configuration: {e}"))
        }
    };
    relay_server::platform::functions_task_answer(succeeded, &outcome)
}
