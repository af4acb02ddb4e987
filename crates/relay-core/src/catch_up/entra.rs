//! The scheduled catch-up of Entra ID (`RELAY_CATCH_UP_SOURCE=entra`, the
//! AWS task `{"relay_task":"catch_up","source":"entra"}`): what the
//! schedules and alarms of the Okta and Auth0 catch-ups already do for a
//! log, done for Graph, whose notifications have no log to replay. One run:
//!
//! 1. **Subscriptions** (when `ENTRA_NOTIFICATION_URL` is set): the relay's
//!    subscriptions on `users` and `groups` are created when missing and
//!    renewed when less than [`RENEW_MARGIN_MS`] is left of their 28 days
//!    (`crate::source::entra::subscription`), so a relay on a schedule
//!    never lets them lapse. Without the URL the run says so and manages
//!    none (`idp-duo-relay entra subscribe --url …` does it by hand).
//!    **clientState rotation**: Graph never changes a subscription's
//!    `clientState`, so the run keeps a fingerprint of the value the
//!    subscriptions were made with ([`SUBSCRIPTIONS_KEY`]: a SHA-256 of the
//!    value, never the value); when the first `ENTRA_CLIENT_STATE` entry no
//!    longer matches it — the operator set `"new,old"` — the run creates
//!    new subscriptions with the new value and deletes the old ones
//!    (`recreate_subscriptions`). With no fingerprint stored yet (the
//!    first run, or a relay upgraded to this), subscriptions are assumed to
//!    carry the current value unless `ENTRA_CLIENT_STATE` lists two
//!    values, which means a rotation is under way.
//! 2. **Delta catch-up** ([`super::entra_delta`]): what changed in users
//!    and groups since the stored deltaLinks, each change applied like a
//!    notification about it; the first run, or one whose deltaLink Graph
//!    refuses, is a full resync.
//! 3. **MFA resets** (when `ENTRA_AUDIT_LOG=true`; the permission
//!    `AuditLog.Read.All`): the audit-log poll ([`super::entra_audit`]).
//!    Off by default, because without the permission every poll is refused
//!    and the run would fail on each schedule.
//!
//! Each step runs even when an earlier one failed (they read different
//! things); the run's one `catch_up` line sums them — `records` the delta
//! changes and audit records read, `new` what they applied, `idp_calls`
//! the Graph requests — and its status is the first failure's (Graph
//! refused or unreachable → `idp_failed`; an event failed, or a resync did
//! not converge → `event_failed`; the checkpoint store → `store_failed`),
//! with every step's error in `error`. `checkpoint_lag_s` is the time since
//! the deltaLinks (and the audit checkpoint, when the poll is on) were last
//! read to their end; `cursor_fallback` says the run was a full resync.

use crate::Secret;
use crate::apply::Directory;
use crate::catch_up::entra_audit::{self, AuditPoll};
use crate::catch_up::entra_delta::{self, CatchUpError, DeltaRun};
use crate::catch_up::{CatchUpSummary, Checkpoint, CheckpointStore, LogSource, RunStatus};
use crate::config::{ConfigError, RawConfig, optional};
use crate::pipeline::Relay;
use crate::reconcile::RunStatus as ReconcileStatus;
use crate::source::entra::api::{EntraApi, TENANT_ID};
use crate::source::entra::subscription::{
    SubscriptionOutcome, ensure_subscriptions_within, recreate_subscriptions,
};
use crate::store::IdempotencyStore;

/// The checkpoint-store key of the subscriptions' clientState fingerprint.
pub const SUBSCRIPTIONS_KEY: &str = "entra-subscriptions";

/// `ENTRA_AUDIT_LOG`: poll the directory audit log for MFA resets.
pub const AUDIT_LOG: &str = "ENTRA_AUDIT_LOG";
/// A subscription with less than this left of its life is renewed (half of
/// the 28 days asked for; a schedule of up to two weeks keeps it alive).
pub const RENEW_MARGIN_MS: i64 = 14 * 24 * 60 * 60 * 1000;

/// What a run is configured to do.
#[derive(Debug)]
struct Plan {
    api: EntraApi,
    /// The URL and the clientState subscriptions are kept at.
    subscribe: Option<(String, Secret)>,
    /// `ENTRA_CLIENT_STATE` lists more than one value (a rotation).
    rotating: bool,
    audit: bool,
}

impl Plan {
    fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let api = EntraApi::from_config(raw)?
            .ok_or_else(|| {
                ConfigError::new(
                    TENANT_ID,
                    "is not set: the entra catch-up reads Microsoft Graph with ENTRA_TENANT_ID + ENTRA_CLIENT_ID + ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE)",
                )
            })?
            .with_policy(super::BATCH_POLICY);
        let audit = crate::config::flag(raw, AUDIT_LOG)?;
        let subscribe = match (api.notification_url(), api.client_state()) {
            (Some(url), Some(state)) => Some((url.to_owned(), state.clone())),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "ENTRA_CLIENT_STATE",
                    "is not set but ENTRA_NOTIFICATION_URL is: the subscriptions the catch-up keeps need it as their clientState",
                ));
            }
            (None, _) => None,
        };
        let rotating = optional(raw, "ENTRA_CLIENT_STATE")
            .is_some_and(|v| v.split(',').filter(|s| !s.trim().is_empty()).count() > 1);
        Ok(Self {
            api,
            subscribe,
            rotating,
            audit,
        })
    }
}

/// One scheduled Entra run (see the module) through `relay` — the entry's
/// own, whose Entra lookups plan the changes — with the deltaLinks and the
/// audit checkpoint in `checkpoints`. A configuration error reads and
/// writes nothing (and writes no summary line).
pub async fn run<D, S, C>(
    relay: &Relay<D, S>,
    raw: &RawConfig,
    checkpoints: &C,
) -> Result<CatchUpSummary, ConfigError>
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    let plan = Plan::from_config(raw)?;
    let now = crate::state::now_ms();
    let mut summary = CatchUpSummary::new(LogSource::Entra, false);
    let mut errors = Vec::new();
    let mut fail = |summary: &mut CatchUpSummary, status: RunStatus, error: String| {
        if summary.status == RunStatus::CaughtUp {
            summary.status = status;
        }
        errors.push(error);
    };
    // Graph calls of the run: the catch-up's client and the planner's own
    // (the relay's lookups), when it is another one.
    let planner_calls = || {
        relay
            .lookups()
            .entra
            .as_ref()
            .filter(|own| !own.same_client(&plan.api))
            .map_or(0, EntraApi::calls)
    };
    let calls_before = plan.api.calls() + planner_calls();

    match &plan.subscribe {
        Some((url, state)) => {
            if let Err((status, error)) =
                keep_subscriptions(&plan, url, state, checkpoints, now).await
            {
                fail(&mut summary, status, error);
            }
        }
        None => tracing::warn!(
            source = "entra",
            "ENTRA_NOTIFICATION_URL is not set: this catch-up neither creates nor renews the Graph subscriptions (they lapse 28 days after `idp-duo-relay entra subscribe --url …` unless it runs again)"
        ),
    }

    match entra_delta::catch_up(relay, &plan.api, checkpoints, now).await {
        Ok(delta) => add_delta(&mut summary, &delta, &mut fail),
        Err(e) => {
            let status = match e {
                CatchUpError::Store(_) => RunStatus::StoreFailed,
                _ => RunStatus::IdpFailed,
            };
            fail(&mut summary, status, format!("delta catch-up: {e}"));
        }
    }

    if plan.audit {
        match entra_audit::poll_resets(relay, &plan.api, checkpoints, now).await {
            Ok(poll) => add_audit(&mut summary, &poll, &mut fail),
            Err(e) => fail(
                &mut summary,
                RunStatus::IdpFailed,
                format!("audit-log poll (ENTRA_AUDIT_LOG=true needs AuditLog.Read.All): {e}"),
            ),
        }
    }

    summary.idp_calls = plan.api.calls() + planner_calls() - calls_before;
    summary.checkpoint_lag_s = lag_s(checkpoints, plan.audit, now).await;
    if !errors.is_empty() {
        summary.error = Some(errors.join("; "));
    }
    summary.log();
    Ok(summary)
}

/// Step 1: the subscriptions kept, or re-created for a new clientState.
async fn keep_subscriptions<C: CheckpointStore>(
    plan: &Plan,
    url: &str,
    state: &Secret,
    checkpoints: &C,
    now: i64,
) -> Result<(), (RunStatus, String)> {
    let fingerprint = state_fingerprint(state.expose());
    let stored = checkpoints
        .load(SUBSCRIPTIONS_KEY)
        .await
        .map_err(|e| {
            (
                RunStatus::StoreFailed,
                format!("loading the subscriptions' clientState fingerprint: {e}"),
            )
        })?
        .and_then(|c| c.cursor);
    let rotate = match &stored {
        Some(f) => *f != fingerprint,
        None => plan.rotating,
    };
    let done = if rotate {
        recreate_subscriptions(&plan.api, url, state.expose(), now).await
    } else {
        ensure_subscriptions_within(&plan.api, url, state.expose(), now, RENEW_MARGIN_MS).await
    };
    let outcomes = done.map_err(|e| {
        let what = if rotate {
            "re-creating the Graph subscriptions with the new clientState"
        } else {
            "keeping the Graph subscriptions at ENTRA_NOTIFICATION_URL"
        };
        (RunStatus::IdpFailed, format!("{what}: {e}"))
    })?;
    if rotate {
        tracing::warn!(
            source = "entra",
            "entra subscriptions re-created with the first ENTRA_CLIENT_STATE value (Graph cannot change a subscription's clientState); the old value may now be dropped from ENTRA_CLIENT_STATE"
        );
    }
    log_subscriptions(&outcomes);
    if stored.as_deref() != Some(fingerprint.as_str()) {
        let checkpoint = Checkpoint {
            cursor: Some(fingerprint),
            last_event_ms: Some(now),
            caught_up_ms: Some(now),
            resume_since_ms: None,
        };
        checkpoints
            .save(SUBSCRIPTIONS_KEY, &checkpoint)
            .await
            .map_err(|e| {
                (
                    RunStatus::StoreFailed,
                    format!("saving the subscriptions' clientState fingerprint: {e}"),
                )
            })?;
    }
    Ok(())
}

/// A fingerprint of a clientState: SHA-256 over a label and the value,
/// hex. The value is a random secret of 16 or more characters, so the
/// fingerprint tells nothing of it.
fn state_fingerprint(state: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"idp-duo-relay entra clientState v1\0");
    hash.update(state.as_bytes());
    hex::encode(hash.finalize())
}

fn add_delta(
    summary: &mut CatchUpSummary,
    delta: &DeltaRun,
    fail: &mut impl FnMut(&mut CatchUpSummary, RunStatus, String),
) {
    summary.records += (delta.users + delta.groups) as u64;
    summary.new += (delta.applied + delta.unchanged + delta.skipped) as u64;
    summary.duplicates += delta.duplicates as u64;
    summary.failed += (delta.failed + delta.refused) as u64;
    summary.duo_calls += delta.duo_calls;
    summary.cursor_fallback |= delta.resync.is_some();
    if let Some(status) = delta.reconcile
        && status != ReconcileStatus::Converged
    {
        fail(
            summary,
            RunStatus::EventFailed,
            format!(
                "full resync: the reconcile ended {} (no deltaLink stored; the next run resyncs again)",
                status.as_str()
            ),
        );
    }
    if delta.failed > 0 {
        fail(
            summary,
            RunStatus::EventFailed,
            format!(
                "delta catch-up: {} changes failed transiently (the deltaLinks stay; the next run reads them again)",
                delta.failed
            ),
        );
    }
}

fn add_audit(
    summary: &mut CatchUpSummary,
    poll: &AuditPoll,
    fail: &mut impl FnMut(&mut CatchUpSummary, RunStatus, String),
) {
    summary.records += poll.records as u64;
    summary.new += poll.applied as u64;
    summary.duplicates += poll.duplicates as u64;
    summary.failed += poll.failed as u64;
    summary.duo_calls += poll.duo_calls;
    summary.ignored += (poll.records - poll.resets) as u64;
    if poll.failed > 0 {
        fail(
            summary,
            RunStatus::EventFailed,
            format!(
                "audit-log poll: {} MFA resets failed transiently (the checkpoint stays; the next run retries them)",
                poll.failed
            ),
        );
    }
}

fn log_subscriptions(outcomes: &[SubscriptionOutcome]) {
    for o in outcomes {
        tracing::info!(
            source = "entra",
            resource = %o.resource,
            subscription = %o.id,
            action = o.action,
            expires = %o.expires,
            "entra subscription"
        );
    }
}

/// Seconds since the oldest of the run's checkpoints was last read to its
/// end (the deltaLinks; the audit log's when polled). A checkpoint never
/// read to its end counts from its first run's window: the lag is then
/// large, which is what an alarm on it should see.
async fn lag_s<C: CheckpointStore>(checkpoints: &C, audit: bool, now: i64) -> u64 {
    let mut keys = vec![entra_delta::USERS_KEY, entra_delta::GROUPS_KEY];
    if audit {
        keys.push(entra_audit::CHECKPOINT_KEY);
    }
    let mut oldest = now;
    for key in keys {
        let caught_up = match checkpoints.load(key).await {
            Ok(Some(c)) => c.caught_up_ms,
            Ok(None) | Err(_) => None,
        };
        oldest = oldest.min(caught_up.unwrap_or(now - super::millis(super::DEFAULT_WINDOW)));
    }
    u64::try_from((now - oldest).max(0) / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(extra: &[(&str, &str)]) -> RawConfig {
        let mut pairs = vec![
            ("ENTRA_TENANT_ID", "contoso.onmicrosoft.com"),
            ("ENTRA_CLIENT_ID", "11111111-2222-4333-8444-555555555555"),
            ("ENTRA_CLIENT_SECRET", "a-client-secret-value"),
        ];
        pairs.extend_from_slice(extra);
        crate::config::from_pairs(&pairs)
    }

    #[test]
    fn the_plan_follows_the_settings() {
        let plan = Plan::from_config(&raw(&[])).unwrap();
        assert!(plan.subscribe.is_none() && !plan.audit);
        let plan = Plan::from_config(&raw(&[
            ("ENTRA_NOTIFICATION_URL", "https://relay.example.com/entra"),
            (
                "ENTRA_CLIENT_STATE",
                "state-0123456789abcdef,old-state-0123456789",
            ),
            ("ENTRA_AUDIT_LOG", "TRUE"),
        ]))
        .unwrap();
        let (url, state) = plan.subscribe.unwrap();
        assert_eq!(url, "https://relay.example.com/entra");
        assert_eq!(state.expose(), "state-0123456789abcdef");
        assert!(plan.audit);
        assert!(
            !Plan::from_config(&raw(&[("ENTRA_AUDIT_LOG", "no")]))
                .unwrap()
                .audit
        );
    }

    #[test]
    fn bad_settings_are_named() {
        for (pairs, name) in [
            (vec![("ENTRA_AUDIT_LOG", "sometimes")], "ENTRA_AUDIT_LOG"),
            (
                vec![("ENTRA_NOTIFICATION_URL", "https://relay.example.com/entra")],
                "ENTRA_CLIENT_STATE",
            ),
            (
                vec![("ENTRA_NOTIFICATION_URL", "http://relay.example.com/entra")],
                "ENTRA_NOTIFICATION_URL",
            ),
        ] {
            let err = Plan::from_config(&raw(&pairs)).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = Plan::from_config(&crate::config::from_pairs(&[])).unwrap_err();
        assert!(err.to_string().contains("ENTRA_TENANT_ID"), "{err}");
        // Neither secret shows in what is printed of a plan.
        let plan = Plan::from_config(&raw(&[
            ("ENTRA_NOTIFICATION_URL", "https://relay.example.com/entra"),
            ("ENTRA_CLIENT_STATE", "state-0123456789abcdef"),
        ]))
        .unwrap();
        let printed = format!("{plan:?}");
        assert!(
            printed.contains("https://relay.example.com/entra"),
            "{printed}"
        );
        for secret in ["a-client-secret-value", "state-0123456789abcdef"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }
}
