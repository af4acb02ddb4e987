//! Reconcile: make Duo match the IdP, on demand and on a schedule.
//!
//! Events get lost before they reach the relay (an IdP outage, a hook
//! disabled for an hour, a stream paused after failures), and tenants carry
//! drift from before the relay existed. A run reads the IdP's users, their
//! state and their (filtered) group/role memberships, reads Duo's users and
//! groups, plans the [`Operation`]s that make Duo match — the same
//! vocabulary events use — checks the safety cap, and applies them through
//! the same [`Directory`] as events. Reading everything first means an IdP
//! or Duo error aborts the run before anything is written.
//!
//! Layers, each usable alone (tests drive them with stand-ins):
//! - [`read`]: [`IdpReader`] (implemented by each source's API client) and
//!   [`TargetReader`] → snapshots;
//! - [`diff`]: two snapshots → a [`Plan`] (pure; the scope rules live there);
//! - [`user`]: one user → its plan (for `--user` and the event path);
//! - [`execute`]: a plan → Duo, through a [`Directory`], one log line per
//!   user or group;
//! - [`report`]: the [`ReconcileReport`] (JSON and a table).
//!
//! Reconcile knows no source: each source's API client implements
//! [`IdpReader`] in its own folder. `crate::idp_sync` composes them: its
//! `run_from_config` is what the CLI and the cloud entries call, its
//! `plan_event_with_idp` what the event path calls.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use duo_admin::DuoError;

use crate::apply::Directory;
use crate::config::{ConfigError, RawConfig};
use crate::event::UserRef;
use crate::idp::IdpError;
use crate::operation::Operation;
use crate::plan::{DeprovisionAction, PlanRules};

pub mod diff;
pub mod execute;
pub mod read;
pub mod report;
pub mod user;

pub use diff::{Action, Category, Plan, PlanScope, Subject, TenantStats, Unit, Untouched, plan};
pub use execute::{ActionOutcome, UnitResult};
pub use read::{DuoSnapshot, IdpReader, IdpSnapshot, Mapped, TargetReader, read_duo, read_idp};
pub use report::{
    ActionReport, CallCounts, Counts, ItemReport, ReconcileReport, RunStatus, ScopeReport,
};
pub use user::{UserPlan, UsernameMatch, plan_user};

/// Which IdP a run converges Duo to (declared with the sources).
pub use crate::event::IdpKind;

/// `--max-deletes` when not given: small, so a misconfigured run (a token
/// that sees only part of the IdP, the wrong org) stops and reports.
pub const DEFAULT_MAX_DELETES: usize = 10;

/// How to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileOptions {
    pub source: IdpKind,
    /// Plan and report; write nothing.
    pub dry_run: bool,
    /// Only this login (the IdP's login / Auth0 email, or a Duo username).
    pub user: Option<String>,
    /// More planned deletions/deprovisions than this stop the run before
    /// anything is applied.
    pub max_deletes: usize,
    /// Also deprovision Duo-only accounts (no IdP id, no IdP login).
    pub include_unmanaged: bool,
}

impl ReconcileOptions {
    /// The whole tenant, applied, [`DEFAULT_MAX_DELETES`], unmanaged
    /// accounts left alone.
    pub fn new(source: IdpKind) -> Self {
        Self {
            source,
            dry_run: false,
            user: None,
            max_deletes: DEFAULT_MAX_DELETES,
            include_unmanaged: false,
        }
    }
}

impl ReconcileOptions {
    /// The options of a scheduled run: the task's fields when it has them
    /// (`{"relay_task":"reconcile","source":"okta","dry_run":false,
    /// "max_deletes":10,"include_unmanaged":false}` from EventBridge
    /// Scheduler), else `RELAY_RECONCILE_SOURCE`, `RELAY_RECONCILE_DRY_RUN`,
    /// `RELAY_RECONCILE_MAX_DELETES` and `RELAY_RECONCILE_INCLUDE_UNMANAGED`
    /// (the Azure timer and the Cloud Run job). Without a source: Okta when
    /// `OKTA_ORG_URL` is set, else Auth0 when `AUTH0_DOMAIN` is.
    pub fn scheduled(
        raw: &RawConfig,
        task: Option<&serde_json::Value>,
    ) -> Result<Self, ConfigError> {
        use crate::config::optional;
        let field = |name: &str| task.and_then(|t| t.get(name));
        let source = match field("source") {
            Some(v) => Some(
                v.as_str()
                    .and_then(IdpKind::parse)
                    .ok_or_else(|| ConfigError::new("source", "must be okta, auth0 or entra"))?,
            ),
            None => optional(raw, "RELAY_RECONCILE_SOURCE")
                .map(|v| {
                    IdpKind::parse(v).ok_or_else(|| {
                        ConfigError::new("RELAY_RECONCILE_SOURCE", "must be okta, auth0 or entra")
                    })
                })
                .transpose()?,
        };
        let source = match source {
            Some(source) => source,
            None if optional(raw, "OKTA_ORG_URL").is_some() => IdpKind::Okta,
            None if optional(raw, "AUTH0_DOMAIN").is_some() => IdpKind::Auth0,
            None if optional(raw, "ENTRA_TENANT_ID").is_some() => IdpKind::Entra,
            None => {
                return Err(ConfigError::new(
                    "RELAY_RECONCILE_SOURCE",
                    "is not set and neither OKTA_ORG_URL, AUTH0_DOMAIN nor ENTRA_TENANT_ID is: nothing to reconcile from",
                ));
            }
        };
        let flag = |task_name: &str, variable: &'static str| -> Result<bool, ConfigError> {
            match field(task_name) {
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| ConfigError::new(variable, "must be true or false")),
                None => match optional(raw, variable)
                    .map(str::to_ascii_lowercase)
                    .as_deref()
                {
                    None | Some("false" | "0" | "no") => Ok(false),
                    Some("true" | "1" | "yes") => Ok(true),
                    Some(_) => Err(ConfigError::new(variable, "must be true or false")),
                },
            }
        };
        let max_deletes = match field("max_deletes") {
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| ConfigError::new("max_deletes", "must be a number (0 or more)"))?,
            None => match optional(raw, "RELAY_RECONCILE_MAX_DELETES") {
                None => DEFAULT_MAX_DELETES,
                Some(v) => v.parse().map_err(|_| {
                    ConfigError::new(
                        "RELAY_RECONCILE_MAX_DELETES",
                        "must be a number (0 or more)",
                    )
                })?,
            },
        };
        Ok(Self {
            source,
            dry_run: flag("dry_run", "RELAY_RECONCILE_DRY_RUN")?,
            user: None,
            max_deletes,
            include_unmanaged: flag("include_unmanaged", "RELAY_RECONCILE_INCLUDE_UNMANAGED")?,
        })
    }
}

/// Why a run stopped before it could plan. Nothing was written to Duo.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// A missing or malformed variable (named, never quoted).
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading {idp} failed; nothing was applied: {error}")]
    Idp { idp: IdpKind, error: IdpError },
    #[error("reading Duo failed; nothing was applied: {0}")]
    Duo(DuoError),
}

impl ReconcileError {
    /// Whether the next run may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Config(_) => false,
            Self::Idp { error, .. } => error.is_transient(),
            Self::Duo(e) => e.is_transient(),
        }
    }
}

/// Runs a reconcile: read both sides, plan, check the cap, apply (unless
/// `dry_run`), report. The IdP's kind is `idp.kind()`. Errors only when a
/// read failed, before anything was written.
pub async fn run<I: IdpReader, R: TargetReader, D: Directory>(
    idp: &I,
    duo: &R,
    directory: &D,
    rules: &PlanRules,
    opts: &ReconcileOptions,
) -> Result<ReconcileReport, ReconcileError> {
    let started = Instant::now();
    let run_id = new_run_id();
    let idp = &read::Mapped::new(idp, &rules.mapping);
    let kind = idp.kind();
    let idp_calls_before = idp.calls();
    let scope = PlanScope {
        kind,
        rules,
        include_unmanaged: opts.include_unmanaged,
    };
    let idp_err = |error| ReconcileError::Idp { idp: kind, error };
    let (plan, duo_read) = match &opts.user {
        None => {
            let (idp_snapshot, (duo_snapshot, duo_read)) =
                tokio::join!(read_idp(idp, rules), duo_admin::count_calls(read_duo(duo)));
            let idp_snapshot = idp_snapshot.map_err(idp_err)?;
            let duo_snapshot = duo_snapshot.map_err(ReconcileError::Duo)?;
            (plan(&idp_snapshot, &duo_snapshot, &scope), duo_read)
        }
        Some(login) => {
            let target = UserRef {
                idp_id: None,
                login: Some(login.clone()),
            };
            let username_match = if opts.include_unmanaged {
                UsernameMatch::Managed
            } else {
                UsernameMatch::Unmanaged
            };
            let (user_plan, duo_read) =
                duo_admin::count_calls(plan_user(idp, duo, &scope, &target, username_match)).await;
            let user_plan = user_plan?;
            let untouched: Vec<_> = user_plan.untouched.into_iter().collect();
            let (mut excluded, mut out_of_scope, mut unmanaged) =
                (Vec::new(), Vec::new(), Vec::new());
            if user_plan.excluded {
                excluded = untouched;
            } else if user_plan.out_of_scope {
                out_of_scope = untouched;
            } else {
                unmanaged = untouched;
            }
            let plan = Plan {
                ghosts: usize::from(user_plan.ghost),
                unmanaged,
                excluded,
                out_of_scope,
                units: user_plan.unit.into_iter().collect(),
                ..Plan::default()
            };
            (plan, duo_read)
        }
    };
    let cap_exceeded = plan.deprovisions() > opts.max_deletes;
    if cap_exceeded {
        tracing::warn!(
            event_id = %format!("reconcile:{run_id}"),
            source = kind.as_str(),
            deprovisions = plan.deprovisions(),
            max_deletes = opts.max_deletes,
            "reconcile plans more deletions/deprovisions than --max-deletes allows; nothing is applied"
        );
    }
    let results: Vec<UnitResult> = if opts.dry_run || cap_exceeded {
        plan.units.iter().map(UnitResult::planned).collect()
    } else {
        execute::apply_units(&plan.units, directory, kind, &run_id).await
    };
    let calls = CallCounts {
        idp: idp.calls().saturating_sub(idp_calls_before),
        duo_read,
        duo_apply: results.iter().map(|r| r.duo_calls).sum(),
    };
    let report = ReconcileReport::build(report::ReportInput {
        run_id,
        source: kind,
        dry_run: opts.dry_run,
        cap_exceeded,
        scope: ScopeReport {
            user: opts.user.clone(),
            group_filter: rules.group_filter.as_ref().map(|f| f.as_str().to_owned()),
            deprovision_action: match rules.deprovision {
                DeprovisionAction::Delete => "delete",
                DeprovisionAction::Disable => "disable",
            },
            include_unmanaged: opts.include_unmanaged,
            max_deletes: opts.max_deletes,
        },
        plan: &plan,
        results: &results,
        calls,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    });
    report.log_summary();
    Ok(report)
}

/// The operations that make one user match the IdP: the IdP user (by id,
/// else by login) with its groups/roles filtered by `GROUP_FILTER`, against
/// the Duo user. A user the IdP answers 404 for is deprovisioned
/// (`DEPROVISION_ACTION`) when its Duo user is the relay's: it carries this
/// IdP's id, or no IdP id and the login `user` names (the caller knows the
/// IdP named it). Empty when Duo already matches.
pub async fn reconcile_user<I: IdpReader, R: TargetReader>(
    idp: &I,
    duo: &R,
    rules: &PlanRules,
    user: &UserRef,
) -> Result<Vec<Operation>, ReconcileError> {
    let plan = user_plan(idp, duo, rules, user).await?;
    Ok(plan
        .unit
        .map(|unit| unit.actions.into_iter().map(|a| a.operation).collect())
        .unwrap_or_default())
}

/// [`reconcile_user`]'s plan, with why a user is left alone (the event
/// path's planner, `crate::idp_sync`, reads it).
pub async fn user_plan<I: IdpReader, R: TargetReader>(
    idp: &I,
    duo: &R,
    rules: &PlanRules,
    user: &UserRef,
) -> Result<UserPlan, ReconcileError> {
    let scope = PlanScope {
        kind: idp.kind(),
        rules,
        include_unmanaged: false,
    };
    let idp = &read::Mapped::new(idp, &rules.mapping);
    // The event's login as the Duo username it stands for (dropped when the
    // username comes from another attribute: the IdP user says).
    let mapping = rules.mapping.of(scope.kind);
    let user = &if mapping.is_default() {
        user.clone()
    } else {
        crate::plan::map_user_ref(user, mapping, crate::mapping::spec(scope.kind))
    };
    plan_user(idp, duo, &scope, user, UsernameMatch::Managed).await
}

/// A short id for one run: its start time (UTC, to the millisecond) and a
/// few bits of the clock's nanoseconds, which is unique enough to tell
/// runs apart in logs.
fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
    format!(
        "{}-{:04x}",
        crate::time::compact_millis(ms),
        now.subsec_nanos() & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::config::from_pairs as raw;

    #[test]
    fn scheduled_options_from_the_task_then_the_environment() {
        let env = raw(&[
            ("OKTA_ORG_URL", "https://acme.okta.com"),
            ("AUTH0_DOMAIN", "acme.us.auth0.com"),
            ("RELAY_RECONCILE_MAX_DELETES", "25"),
            ("RELAY_RECONCILE_DRY_RUN", "true"),
        ]);
        let from_env = ReconcileOptions::scheduled(&env, None).unwrap();
        assert_eq!(
            from_env,
            ReconcileOptions {
                source: IdpKind::Okta,
                dry_run: true,
                user: None,
                max_deletes: 25,
                include_unmanaged: false,
            }
        );
        let task = json!({"relay_task": "reconcile", "source": "auth0", "dry_run": false,
                          "max_deletes": 3, "include_unmanaged": true});
        let from_task = ReconcileOptions::scheduled(&env, Some(&task)).unwrap();
        assert_eq!(
            (
                from_task.source,
                from_task.dry_run,
                from_task.max_deletes,
                from_task.include_unmanaged
            ),
            (IdpKind::Auth0, false, 3, true)
        );
        let only_auth0 = raw(&[("AUTH0_DOMAIN", "acme.us.auth0.com")]);
        assert_eq!(
            ReconcileOptions::scheduled(&only_auth0, None).unwrap(),
            ReconcileOptions::new(IdpKind::Auth0)
        );
        for (env, task, variable) in [
            (raw(&[]), None, "RELAY_RECONCILE_SOURCE"),
            (
                raw(&[("RELAY_RECONCILE_SOURCE", "azure")]),
                None,
                "RELAY_RECONCILE_SOURCE",
            ),
            (
                raw(&[("OKTA_ORG_URL", "x"), ("RELAY_RECONCILE_DRY_RUN", "maybe")]),
                None,
                "RELAY_RECONCILE_DRY_RUN",
            ),
            (
                raw(&[("OKTA_ORG_URL", "x"), ("RELAY_RECONCILE_MAX_DELETES", "-1")]),
                None,
                "RELAY_RECONCILE_MAX_DELETES",
            ),
            (raw(&[]), Some(json!({"source": "ldap"})), "source"),
            (
                raw(&[("OKTA_ORG_URL", "x")]),
                Some(json!({"max_deletes": "ten"})),
                "max_deletes",
            ),
        ] {
            let err = ReconcileOptions::scheduled(&env, task.as_ref()).unwrap_err();
            assert_eq!(err.variable, variable, "{err}");
        }
    }

    /// Entry crates spawn runs on multi-threaded runtimes (axum handlers,
    /// Lambda): the futures must be `Send` (a borrow through a closure's
    /// argument once made them not).

    #[test]
    fn run_ids_are_timestamps() {
        let id = new_run_id();
        assert_eq!(id.len(), "20260311T090000.123Z-abcd".len(), "{id}");
        assert!(id.starts_with("20"), "{id}");
    }
}
