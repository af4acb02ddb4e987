//! `relay-gcp reconcile`: one reconcile run, as the Cloud Run job that
//! Cloud Scheduler starts runs it (the service's image and settings, the
//! argument `reconcile`). What to run comes from the environment
//! (`RELAY_RECONCILE_SOURCE`, `RELAY_RECONCILE_DRY_RUN`,
//! `RELAY_RECONCILE_MAX_DELETES`, `RELAY_RECONCILE_INCLUDE_UNMANAGED`; see
//! `relay_core::reconcile::ReconcileOptions::scheduled`).
//!
//! The exit code is the CLI's (`idp-duo-relay reconcile`): 0 when Duo
//! converged, otherwise non-zero, so the job execution fails and shows
//! (and alerts) when drift is left, the deletion cap stopped the run, or a
//! read failed: 1 configuration, 2 drift left, 3 cap, 4 IdP read error,
//! 5 Duo read error.

use std::process::ExitCode;

use relay_core::config::RawConfig;
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{ReconcileError, ReconcileOptions, ReconcileReport, RunStatus};

/// The exit code of a run.
pub fn exit_code(result: &Result<ReconcileReport, ReconcileError>) -> u8 {
    match result {
        Ok(report) => match report.status {
            RunStatus::Converged => 0,
            RunStatus::Drift | RunStatus::Incomplete => 2,
            RunStatus::CapExceeded => 3,
        },
        Err(ReconcileError::Config(_)) => 1,
        Err(ReconcileError::Idp { .. }) => 4,
        Err(ReconcileError::Duo(_)) => 5,
    }
}

/// Runs one reconcile and answers the process's exit code. Logging must be
/// set up; the run writes its own summary line.
pub async fn run_job(raw: &RawConfig) -> ExitCode {
    let options = match ReconcileOptions::scheduled(raw, None) {
        Ok(options) => options,
        Err(e) => {
            tracing::error!(error = %e, "reconcile: bad configuration; nothing was read or written");
            return ExitCode::from(1);
        }
    };
    let result = run_from_config(raw, &options).await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "reconcile failed");
    }
    ExitCode::from(exit_code(&result))
}
