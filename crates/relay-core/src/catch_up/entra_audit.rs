//! MFA resets from Entra ID's audit log: Graph change notifications do not
//! cover authentication methods, so a poll reads the directory audit log
//! (`GET /v1.0/auditLogs/directoryAudits`, permission `AuditLog.Read.All`)
//! from a checkpoint and turns each deletion of a user's security info
//! into an MFA reset, applied through the relay like any event: the user's
//! Duo phones, tokens, WebAuthn/U2F credentials and bypass codes go, the
//! user stays (as for Okta's `user.mfa.factor.reset_all`).
//!
//! Facts (MicrosoftDocs/entra-docs,
//! `docs/identity/monitoring-health/reference-audit-activities.md`,
//! "Authentication Methods"): the service logs `Admin deleted security info`
//! and `User deleted security info` in the `UserManagement` category.
//! Licence: the reporting API's prerequisites page
//! (`howto-configure-prerequisites-for-reporting-api.md`) requires Entra ID
//! P1/P2 for sign-in reports and names none for audit logs; in case a
//! tenant is refused anyway, a 401/403 is reported as such and nothing is
//! applied.
//!
//! Idempotency: each audit record has a stable `id`; the event id is
//! `entra:audit/<id>`, so a record read twice (the overlap below, a rerun)
//! is a duplicate. Delay: one poll interval plus Entra's own audit latency.

use serde_json::Value;

use crate::apply::Directory;
use crate::catch_up::CheckpointStore;
use crate::event::{Change, EventId, IdpEvent, MfaScope, Source, UserRef};
use crate::idp::{IdpError, decode, encode_component};
use crate::pipeline::{EventOutcome, Relay};
use crate::source::entra::api::EntraApi;
use crate::store::IdempotencyStore;

/// The activities that reset MFA in Duo.
pub const RESET_ACTIVITIES: [&str; 2] =
    ["Admin deleted security info", "User deleted security info"];
/// The checkpoint's key in the catch-up checkpoint store.
pub const CHECKPOINT_KEY: &str = "entra-audit";
/// A first poll reads this far back.
pub const FIRST_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Each poll rereads this much before the newest record it saw (records
/// can land in the log late); the ids absorb the repeats.
pub const OVERLAP_MS: i64 = 5 * 60 * 1000;
/// Pages one poll reads at most (999 records each); the next continues.
const MAX_PAGES: usize = 50;

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditPoll {
    /// Audit records read (every Authentication Methods record).
    pub records: usize,
    /// MFA-reset events among them, and how they ended.
    pub resets: usize,
    pub applied: usize,
    pub duplicates: usize,
    /// Events that failed transiently: the checkpoint stayed put.
    pub failed: usize,
    pub graph_calls: u64,
    /// Duo requests the resets made.
    pub duo_calls: u64,
}

/// The MFA-reset events of some audit records (others are ignored): a
/// successful record of a [`RESET_ACTIVITIES`] activity whose target is a
/// user with an object id.
pub fn reset_events(records: &[Value]) -> Vec<IdpEvent> {
    records.iter().filter_map(reset_event).collect()
}

fn reset_event(record: &Value) -> Option<IdpEvent> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let activity = text(record, "activityDisplayName")?;
    if !RESET_ACTIVITIES
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&activity))
    {
        return None;
    }
    if !text(record, "result").is_some_and(|r| r.eq_ignore_ascii_case("success")) {
        return None;
    }
    let id = text(record, "id").filter(|id| !id.is_empty() && id.len() <= 128)?;
    let target = record
        .get("targetResources")?
        .as_array()?
        .iter()
        .find(|t| text(t, "type").is_some_and(|k| k.eq_ignore_ascii_case("user")))?;
    let user_id = text(target, "id")
        .map(|i| i.to_ascii_lowercase())
        .filter(|i| crate::source::entra::notifications::is_object_id(i))?;
    Some(IdpEvent {
        id: EventId::new(Source::Entra, &format!("audit/{id}")),
        source: Source::Entra,
        event_type: activity,
        occurred_at: text(record, "activityDateTime"),
        change: Change::MfaReset {
            user: UserRef {
                idp_id: Some(user_id),
                login: text(target, "userPrincipalName").filter(|l| !l.is_empty()),
            },
            scope: MfaScope::All,
        },
    })
}

/// Reads the audit log from the checkpoint and applies every MFA reset in
/// it through `relay`. The checkpoint moves to the newest record read only
/// when no event failed transiently (a failed one is read again next time;
/// the applied ones are duplicates then).
pub async fn poll_resets<D, S, C>(
    relay: &Relay<D, S>,
    api: &EntraApi,
    checkpoints: &C,
    now_ms: i64,
) -> Result<AuditPoll, IdpError>
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    let calls_before = api.calls();
    let mut checkpoint = checkpoints
        .load(CHECKPOINT_KEY)
        .await
        .map_err(|e| IdpError::Transport(format!("checkpoint store: {e}")))?
        .unwrap_or_default();
    let since = checkpoint
        .last_event_ms
        .map_or(now_ms - FIRST_WINDOW_MS, |last| last - OVERLAP_MS);
    let filter = format!(
        "loggedByService eq 'Authentication Methods' and activityDateTime ge {}",
        crate::time::rfc3339_millis(since)
    );
    let mut next = Some(format!(
        "/v1.0/auditLogs/directoryAudits?$filter={}&$top=999",
        encode_component(&filter)
    ));
    let mut poll = AuditPoll::default();
    let mut newest = checkpoint.last_event_ms;
    for _ in 0..MAX_PAGES {
        let Some(target) = next.take() else { break };
        let answer = api
            .call(
                reqwest::Method::GET,
                &target,
                None,
                "auditLogs.directoryAudits",
            )
            .await?;
        let page: Value = decode(&answer.body, "Graph directory audits")?;
        let records = page
            .get("value")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        poll.records += records.len();
        for record in &records {
            let at = record
                .get("activityDateTime")
                .and_then(Value::as_str)
                .and_then(crate::time::parse_rfc3339_ms);
            newest = newest.max(at);
        }
        let mut events = reset_events(&records);
        events.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at));
        for event in &events {
            poll.resets += 1;
            let report = relay.apply_event(event).await;
            poll.duo_calls += report.duo_calls;
            match report.outcome {
                EventOutcome::Duplicate => poll.duplicates += 1,
                EventOutcome::FailedTransient(_) => poll.failed += 1,
                _ => poll.applied += 1,
            }
        }
        next = match page.get("@odata.nextLink").and_then(Value::as_str) {
            Some(link) => Some(api.path_on_graph(link)?),
            None => None,
        };
    }
    if poll.failed == 0 {
        checkpoint.last_event_ms = newest;
        checkpoint.caught_up_ms = next.is_none().then_some(now_ms).or(checkpoint.caught_up_ms);
        checkpoints
            .save(CHECKPOINT_KEY, &checkpoint)
            .await
            .map_err(|e| IdpError::Transport(format!("checkpoint store: {e}")))?;
    }
    poll.graph_calls = api.calls() - calls_before;
    tracing::info!(
        source = "entra",
        records = poll.records,
        resets = poll.resets,
        applied = poll.applied,
        duplicates = poll.duplicates,
        failed = poll.failed,
        graph_calls = poll.graph_calls,
        "entra audit poll"
    );
    Ok(poll)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "0a1b2c3d-0000-4000-8000-00000000ada1";

    fn record(id: &str, activity: &str, result: &str) -> Value {
        serde_json::json!({
            "id": id, "category": "UserManagement", "loggedByService": "Authentication Methods",
            "activityDisplayName": activity, "activityDateTime": "2026-12-04T10:00:00Z",
            "result": result,
            "targetResources": [{"id": USER, "type": "User", "userPrincipalName": "ada@contoso.com"}]
        })
    }

    #[test]
    fn deleted_security_info_is_an_mfa_reset_of_its_target() {
        let events = reset_events(&[
            record("a1", "Admin deleted security info", "success"),
            record("a2", "User deleted security info", "success"),
            record("a3", "User registered security info", "success"),
            record("a4", "Admin deleted security info", "failure"),
            serde_json::json!({"id": "a5", "activityDisplayName": "Admin deleted security info", "result": "success", "targetResources": [{"type": "User", "id": "../x"}]}),
            Value::Null,
        ]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].id.as_str(), "entra:audit/a1");
        assert!(matches!(
            &events[0].change,
            Change::MfaReset { user, scope: MfaScope::All }
                if user.idp_id.as_deref() == Some(USER) && user.login.as_deref() == Some("ada@contoso.com")
        ));
        assert_eq!(events[1].event_type, "User deleted security info");
    }
}
