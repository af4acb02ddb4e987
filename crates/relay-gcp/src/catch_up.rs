//! `relay-gcp catch-up`: one catch-up run, as the Cloud Run job that Cloud
//! Scheduler starts runs it (the service's image, service account and
//! settings, the argument `catch-up`). It reads the IdP's log
//! (`RELAY_CATCH_UP_SOURCE`, else the IdP whose API is configured; for
//! `entra`, Graph's delta queries and audit log, and the subscriptions
//! kept: `relay_core::catch_up::entra`) from the
//! checkpoint in the Firestore collection of the idempotency store (document
//! `checkpoint.<source in base64url>`) and applies what the hook missed
//! through a relay on the same store, so what the hook delivered is a
//! duplicate (0 Duo calls).
//!
//! The exit code is the CLI's (`idp-duo-relay catch-up`): 0 read to the end
//! of the log (or to `RELAY_CATCH_UP_MAX_PAGES`) with no failed event, 1 bad
//! configuration, 2 an event failed, 4 reading the log failed, 6 the
//! checkpoint or store failed — so a failed run is a failed job execution
//! (the catch_up_failed alert). The `catch_up` line has every figure; its
//! `checkpoint_lag_s` is what the catch_up_lag alert reads.

use std::process::ExitCode;
use std::sync::Arc;

use relay_core::config::{ConfigError, RawConfig};
use relay_core::pipeline::duo_relay;

use crate::GcpStore;

/// Duo calls of a batch job may wait longer than a webhook answer could.
const DUO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs one catch-up and answers the process's exit code. Logging must be
/// set up; the run writes its own summary line.
pub async fn run_job(raw: &RawConfig) -> ExitCode {
    match run(raw).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!(error = %e, "catch-up: bad configuration; nothing was read or written");
            ExitCode::from(1)
        }
    }
}

async fn run(raw: &RawConfig) -> Result<u8, ConfigError> {
    let store = match GcpStore::from_config(raw).await? {
        GcpStore::Firestore(store) => store,
        // A job's memory is gone when it ends: no checkpoint, no keys.
        GcpStore::Memory(_) => {
            return Err(ConfigError::new(
                "RELAY_STORE",
                "catch-up needs the Firestore store (its checkpoint and the hook's idempotency keys); memory forgets both when the job ends",
            ));
        }
    };
    let checkpoints = store.checkpoints();
    let groups = store.group_index();
    let relay = duo_relay(raw, store, duo_admin::RetryPolicy::default(), DUO_TIMEOUT)?
        .with_group_index(Arc::new(groups));
    let summary = relay_core::catch_up::run_scheduled(&relay, raw, &checkpoints, None).await?;
    Ok(summary.exit_code())
}
