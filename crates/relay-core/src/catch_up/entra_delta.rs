//! Entra ID catch-up by delta query (`idp-duo-relay entra delta`, and what
//! a `missed` lifecycle notification runs): what changed in users and
//! groups since the stored `@odata.deltaLink`s, each change applied through
//! the relay like a notification about it ("make this user / this group
//! match Graph now"), so a catch-up costs the changes, not the tenant.
//!
//! The two deltaLinks are kept in the catch-up checkpoint store (keys
//! [`USERS_KEY`] and [`GROUPS_KEY`], the link in `cursor`). They move only
//! when no change failed transiently (a failed one is read again next
//! time; the applied ones are applied again, which reads Graph and writes
//! nothing to Duo).
//!
//! Without a stored link (the first run), or when Graph refuses one (410
//! Gone / `syncStateNotFound`: `crate::source::entra::delta`), the run is a
//! **full resync**, said in the log: it takes "now" deltaLinks first
//! (`$deltatoken=latest`, one call each, so nothing changed during the
//! resync is lost), runs a full reconcile of Entra (the relay's rules and
//! Duo directory; the same run as `reconcile --source entra`), and stores
//! the links only when the reconcile converged.

use std::sync::Arc;

use crate::apply::Directory;
use crate::catch_up::{Checkpoint, CheckpointStore};
use crate::event::{Change, EventId, GroupRef, IdpEvent, IdpKind, Source, UserProfile, UserRef};
use crate::idp::IdpError;
use crate::pipeline::{CatchUpFuture, CatchUpHook, EventOutcome, Relay};
use crate::reconcile::{ReconcileError, ReconcileOptions, RunStatus};
use crate::source::entra::api::EntraApi;
use crate::source::entra::delta::{self, DeltaChange, DeltaError, Resource};
use crate::store::IdempotencyStore;

/// The users deltaLink's key in the checkpoint store.
pub const USERS_KEY: &str = "entra-delta-users";
/// The groups deltaLink's key in the checkpoint store.
pub const GROUPS_KEY: &str = "entra-delta-groups";

fn key(resource: Resource) -> &'static str {
    match resource {
        Resource::Users => USERS_KEY,
        Resource::Groups => GROUPS_KEY,
    }
}

/// What one catch-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaRun {
    /// Why this run was a full resync (`None`: a delta run).
    pub resync: Option<String>,
    /// The resync's reconcile outcome.
    pub reconcile: Option<RunStatus>,
    /// Changed users and groups read from the deltaLinks.
    pub users: usize,
    pub groups: usize,
    /// How their events ended.
    pub applied: usize,
    pub unchanged: usize,
    pub duplicates: usize,
    pub skipped: usize,
    /// Failed transiently: the deltaLinks stayed put.
    pub failed: usize,
    /// Failed permanently (logged; the links move on).
    pub refused: usize,
    /// Graph requests of the run (token included).
    pub graph_calls: u64,
    /// Duo requests of the run (the resync's reads and writes included).
    pub duo_calls: u64,
}

impl DeltaRun {
    /// Whether the next run must read the same changes again (or resync).
    pub fn incomplete(&self) -> bool {
        self.failed > 0 || self.reconcile.is_some_and(|s| s != RunStatus::Converged)
    }
}

/// Why a catch-up stopped.
#[derive(Debug, thiserror::Error)]
pub enum CatchUpError {
    #[error("Graph: {0}")]
    Graph(#[from] IdpError),
    #[error("full resync: {0}")]
    Reconcile(#[from] ReconcileError),
    #[error("checkpoint store: {0}")]
    Store(String),
    #[error("the relay has no Duo directory to reconcile")]
    NoDuo,
}

impl CatchUpError {
    /// Whether retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Graph(e) => e.is_transient(),
            Self::Reconcile(e) => e.is_transient(),
            Self::Store(_) => true,
            Self::NoDuo => false,
        }
    }
}

/// Catches up on what changed in Entra since the stored deltaLinks, or
/// resyncs fully (see the module).
pub async fn catch_up<D, S, C>(
    relay: &Relay<D, S>,
    api: &EntraApi,
    checkpoints: &C,
    now_ms: i64,
) -> Result<DeltaRun, CatchUpError>
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    // Graph calls of the run: the delta reads (`api`) and the planner's
    // reads (the relay's own client, when it is another one).
    let calls = || {
        let planner = relay
            .lookups()
            .entra
            .as_ref()
            .filter(|own| !own.same_client(api))
            .map_or(0, EntraApi::calls);
        api.calls() + planner
    };
    let calls_before = calls();
    let mut links = Vec::new();
    for resource in Resource::ALL {
        let stored = checkpoints
            .load(key(resource))
            .await
            .map_err(|e| CatchUpError::Store(e.to_string()))?
            .and_then(|c| c.cursor);
        links.push(stored);
    }
    let (Some(users_link), Some(groups_link)) = (links[0].take(), links[1].take()) else {
        let mut run = resync(relay, api, checkpoints, now_ms, "no deltaLink stored yet").await?;
        run.graph_calls = calls() - calls_before;
        log_run(&run);
        return Ok(run);
    };
    let mut rounds = Vec::new();
    for (resource, link) in [
        (Resource::Users, users_link),
        (Resource::Groups, groups_link),
    ] {
        match delta::read_round(api, resource, &link).await {
            Ok(round) => rounds.push((resource, round)),
            Err(DeltaError::Refused { status, code }) => {
                let reason = format!(
                    "Graph refused the stored {} deltaLink (HTTP {status}{})",
                    resource.as_str(),
                    code.map(|c| format!(", {c}")).unwrap_or_default()
                );
                let mut run = resync(relay, api, checkpoints, now_ms, &reason).await?;
                run.graph_calls = calls() - calls_before;
                log_run(&run);
                return Ok(run);
            }
            Err(DeltaError::Graph(e)) => return Err(e.into()),
        }
    }
    let mut run = DeltaRun::default();
    let received = crate::time::compact_millis(now_ms);
    // Users first: a group's planning then finds its changed members done.
    for (resource, round) in &rounds {
        match resource {
            Resource::Users => run.users = round.changes.len(),
            Resource::Groups => run.groups = round.changes.len(),
        }
        for change in &round.changes {
            let event = event(*resource, change, &received);
            let report = relay.apply_event(&event).await;
            run.duo_calls += report.duo_calls;
            match report.outcome {
                EventOutcome::Applied(_) => run.applied += 1,
                EventOutcome::Unchanged(_) => run.unchanged += 1,
                EventOutcome::Duplicate => run.duplicates += 1,
                EventOutcome::Skipped(_) => run.skipped += 1,
                EventOutcome::FailedTransient(_) => run.failed += 1,
                EventOutcome::FailedPermanent(_) => run.refused += 1,
            }
        }
    }
    if run.failed == 0 {
        for (resource, round) in &rounds {
            save(checkpoints, *resource, &round.delta_link, now_ms).await?;
        }
    }
    run.graph_calls = calls() - calls_before;
    log_run(&run);
    Ok(run)
}

/// The event a delta entry becomes: the same "make it match" hint a
/// notification about the object is, keyed by the run's time.
pub fn event(resource: Resource, change: &DeltaChange, received: &str) -> IdpEvent {
    let id = change.id.clone();
    let (change_type, body) = match (resource, change.removed) {
        (Resource::Users, false) => (
            "updated",
            Change::UserUpserted {
                user: user(id),
                profile: UserProfile::default(),
                state: None,
            },
        ),
        (Resource::Users, true) => ("deleted", Change::UserDeleted { user: user(id) }),
        (Resource::Groups, false) => (
            "updated",
            Change::GroupRenamed {
                group: group(id),
                new_name: None,
            },
        ),
        (Resource::Groups, true) => ("deleted", Change::GroupDeleted { group: group(id) }),
    };
    IdpEvent {
        id: EventId::new(
            Source::Entra,
            &format!(
                "delta/{}/{}/{change_type}@{received}",
                resource.as_str(),
                change.id
            ),
        ),
        source: Source::Entra,
        event_type: format!("{}.delta.{change_type}", resource.as_str()),
        occurred_at: None,
        change: body,
    }
}

fn user(id: String) -> UserRef {
    UserRef {
        idp_id: Some(id),
        login: None,
    }
}

fn group(id: String) -> GroupRef {
    GroupRef {
        idp_id: Some(id),
        name: None,
    }
}

async fn save<C: CheckpointStore>(
    checkpoints: &C,
    resource: Resource,
    link: &str,
    now_ms: i64,
) -> Result<(), CatchUpError> {
    let checkpoint = Checkpoint {
        cursor: Some(link.to_owned()),
        last_event_ms: Some(now_ms),
        caught_up_ms: Some(now_ms),
        resume_since_ms: None,
    };
    checkpoints
        .save(key(resource), &checkpoint)
        .await
        .map_err(|e| CatchUpError::Store(e.to_string()))
}

/// A full resync: "now" deltaLinks, a full reconcile, the links stored if
/// it converged.
async fn resync<D, S, C>(
    relay: &Relay<D, S>,
    api: &EntraApi,
    checkpoints: &C,
    now_ms: i64,
    reason: &str,
) -> Result<DeltaRun, CatchUpError>
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    tracing::warn!(
        source = "entra",
        reason,
        "entra delta: full resync (reconcile of every user and group, then delta from now on)"
    );
    let mut baseline = Vec::new();
    for resource in Resource::ALL {
        let link = delta::latest(api, resource).await.map_err(|e| match e {
            DeltaError::Graph(e) => CatchUpError::Graph(e),
            refused @ DeltaError::Refused { .. } => {
                CatchUpError::Graph(IdpError::Decode(refused.to_string()))
            }
        })?;
        baseline.push((resource, link));
    }
    let duo = relay.directory().reader().ok_or(CatchUpError::NoDuo)?;
    let report = crate::reconcile::run(
        api,
        duo,
        relay.directory(),
        relay.rules(),
        &ReconcileOptions::new(IdpKind::Entra),
    )
    .await?;
    if report.status == RunStatus::Converged {
        for (resource, link) in &baseline {
            save(checkpoints, *resource, link, now_ms).await?;
        }
    } else {
        tracing::warn!(
            source = "entra",
            status = report.status.as_str(),
            "entra delta: the resync did not converge; no deltaLink stored, the next run resyncs again"
        );
    }
    Ok(DeltaRun {
        resync: Some(reason.to_owned()),
        reconcile: Some(report.status),
        duo_calls: report.calls.duo_read + report.calls.duo_apply,
        ..DeltaRun::default()
    })
}

/// The `missed` lifecycle notification's catch-up ([`catch_up`] with the
/// deployment's checkpoint store), for `crate::pipeline::Relay::with_catch_up`.
/// A run that left changes failed transiently is itself a transient
/// failure (the notification is retried, and the links have not moved).
pub struct DeltaCatchUp<C> {
    api: EntraApi,
    checkpoints: Arc<C>,
}

impl<C> std::fmt::Debug for DeltaCatchUp<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaCatchUp")
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl<C> DeltaCatchUp<C> {
    pub fn new(api: EntraApi, checkpoints: Arc<C>) -> Self {
        Self { api, checkpoints }
    }
}

impl<D, S, C> CatchUpHook<D, S> for DeltaCatchUp<C>
where
    D: Directory,
    S: IdempotencyStore,
    C: CheckpointStore,
{
    fn run<'a>(&'a self, relay: &'a Relay<D, S>) -> CatchUpFuture<'a> {
        Box::pin(async move {
            let now = crate::state::now_ms();
            match catch_up(relay, &self.api, self.checkpoints.as_ref(), now).await {
                Ok(run) if run.incomplete() => {
                    Err((true, format!("incomplete: {}", summary(&run))))
                }
                Ok(run) => Ok(summary(&run)),
                Err(e) => Err((e.is_transient(), e.to_string())),
            }
        })
    }
}

/// `relay` with the `missed` lifecycle notification's catch-up wired
/// ([`DeltaCatchUp`] on `checkpoints`, where the scheduled run keeps the
/// same deltaLinks) when it reads Entra ID; unchanged otherwise. Every
/// entry wires its own store: `serve` the state directory, AWS the
/// DynamoDB table, Azure the idempotency table, GCP the Firestore
/// collection.
pub fn with_missed_catch_up<D, S, C>(relay: Relay<D, S>, checkpoints: Arc<C>) -> Relay<D, S>
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
    C: CheckpointStore + 'static,
{
    match relay.lookups().entra.clone() {
        Some(api) => relay.with_catch_up(Arc::new(DeltaCatchUp::new(api, checkpoints))),
        None => relay,
    }
}

/// One line about a run.
pub fn summary(run: &DeltaRun) -> String {
    match (&run.resync, run.reconcile) {
        (Some(why), Some(status)) => format!(
            "full resync ({why}): reconcile {} ({} Graph calls)",
            status.as_str(),
            run.graph_calls
        ),
        _ => format!(
            "{} users and {} groups changed: {} applied, {} unchanged, {} skipped, {} duplicates, {} failed, {} refused ({} Graph calls)",
            run.users,
            run.groups,
            run.applied,
            run.unchanged,
            run.skipped,
            run.duplicates,
            run.failed,
            run.refused,
            run.graph_calls
        ),
    }
}

fn log_run(run: &DeltaRun) {
    tracing::info!(
        source = "entra",
        resync = run.resync.as_deref().unwrap_or("no"),
        reconcile = run.reconcile.map_or("-", RunStatus::as_str),
        users = run.users,
        groups = run.groups,
        applied = run.applied,
        unchanged = run.unchanged,
        duplicates = run.duplicates,
        skipped = run.skipped,
        failed = run.failed,
        refused = run.refused,
        graph_calls = run.graph_calls,
        "entra delta catch-up"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_make_it_match_events_keyed_by_the_run() {
        let change = DeltaChange {
            id: "0a1b2c3d-0000-4000-8000-00000000ada1".into(),
            removed: false,
        };
        let e = event(Resource::Users, &change, "20261204T120000.000Z");
        assert_eq!(
            e.id.as_str(),
            "entra:delta/users/0a1b2c3d-0000-4000-8000-00000000ada1/updated@20261204T120000.000Z"
        );
        assert!(
            matches!(e.change, Change::UserUpserted { ref user, .. } if user.idp_id.as_deref() == Some(change.id.as_str()))
        );
        let removed = DeltaChange {
            removed: true,
            ..change.clone()
        };
        assert!(matches!(
            event(Resource::Users, &removed, "t").change,
            Change::UserDeleted { .. }
        ));
        assert!(matches!(
            event(Resource::Groups, &change, "t").change,
            Change::GroupRenamed { new_name: None, .. }
        ));
        let e = event(Resource::Groups, &removed, "t");
        assert_eq!(e.event_type, "groups.delta.deleted");
        assert!(matches!(e.change, Change::GroupDeleted { .. }));
    }
}
