//! What a run found and did: JSON for machines ([`ReconcileReport`] is
//! `Serialize`), a table for the admin deciding whether to trust the relay
//! ([`ReconcileReport::render_table`]), and one summary log line.

use std::fmt::Write as _;

use serde::Serialize;

use super::IdpKind;
use super::diff::{Category, Plan, Subject, TenantStats, Untouched};
use super::execute::{ActionOutcome, UnitResult};
use crate::operation::Operation;

/// How a run ended. Only `Converged` means Duo matches the IdP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Nothing to do, or everything planned was applied.
    Converged,
    /// A dry run found differences (nothing was applied).
    Drift,
    /// Applied, but some actions failed or were not attempted.
    Incomplete,
    /// More deletions/deprovisions were planned than `max_deletes` allows:
    /// nothing was applied.
    CapExceeded,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Converged => "converged",
            Self::Drift => "drift",
            Self::Incomplete => "incomplete",
            Self::CapExceeded => "cap_exceeded",
        }
    }
}

/// The options and rules the run worked under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeReport {
    /// `--user LOGIN`, when the run was about one user.
    pub user: Option<String>,
    pub group_filter: Option<String>,
    pub deprovision_action: &'static str,
    pub include_unmanaged: bool,
    pub max_deletes: usize,
}

/// Actions by kind (planned, or attempted when applied), and accounts left
/// alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub users_create: usize,
    pub users_update: usize,
    pub users_enable: usize,
    pub users_disable: usize,
    pub users_delete: usize,
    pub memberships_add: usize,
    pub memberships_remove: usize,
    pub groups_create: usize,
    pub groups_rename: usize,
    pub groups_delete: usize,
    /// Users deleted or disabled because the IdP no longer has them (or,
    /// with `include_unmanaged`, never had them), and groups deleted: what
    /// `max_deletes` caps.
    pub deprovisions: usize,
    /// Managed Duo users whose IdP user is gone.
    pub ghosts: usize,
    /// Duo-only accounts.
    pub unmanaged: usize,
    /// Accounts excluded (`DUO_EXCLUDE_*`, Duo's directory sync).
    pub excluded: usize,
    /// IdP users in none of `SCOPE_GROUPS`.
    pub out_of_scope: usize,
    /// Duo users that carry the other IdP's id.
    pub other_idp: usize,
    /// IdP users that cannot be mapped to a Duo user.
    pub conflicts: usize,
    /// Actions by outcome.
    pub applied: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub not_attempted: usize,
}

impl Counts {
    /// Every planned action.
    pub fn actions(&self) -> usize {
        self.users_create
            + self.users_update
            + self.users_enable
            + self.users_disable
            + self.users_delete
            + self.memberships_add
            + self.memberships_remove
            + self.groups_create
            + self.groups_rename
            + self.groups_delete
    }
}

/// Requests the run made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    /// IdP API requests (every attempt, token fetches and 429s included).
    pub idp: u64,
    /// Duo requests made to read users and groups (or the one user).
    pub duo_read: u64,
    /// Duo requests made applying the plan.
    pub duo_apply: u64,
}

/// One action of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionReport {
    pub action: Category,
    /// The group of a membership action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What differs.
    pub reason: String,
    /// The operation, as `replay --dry-run` prints it.
    pub operation: String,
    #[serde(flatten)]
    pub outcome: ActionOutcome,
}

/// A user or a group and what the run does to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemReport {
    pub kind: Subject,
    pub subject: String,
    /// `planned`, `applied`, `unchanged`, `failed_transient`, `failed_permanent`.
    pub outcome: &'static str,
    pub duo_calls: u64,
    pub actions: Vec<ActionReport>,
}

/// Everything a reconcile run found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Also in the log lines' `event_id` (`reconcile:<run_id>`).
    pub run_id: String,
    pub source: IdpKind,
    pub dry_run: bool,
    pub status: RunStatus,
    pub scope: ScopeReport,
    pub counts: Counts,
    pub tenant: TenantStats,
    pub calls: CallCounts,
    pub items: Vec<ItemReport>,
    pub unmanaged: Vec<Untouched>,
    /// Duo accounts never touched (`DUO_EXCLUDE_*`, Duo's directory sync).
    pub excluded: Vec<Untouched>,
    /// IdP users in none of `SCOPE_GROUPS`: not synced.
    pub out_of_scope: Vec<Untouched>,
    pub conflicts: Vec<Untouched>,
    pub duration_ms: u64,
}

/// The parts a report is made of.
pub(crate) struct ReportInput<'a> {
    pub run_id: String,
    pub source: IdpKind,
    pub dry_run: bool,
    pub cap_exceeded: bool,
    pub scope: ScopeReport,
    pub plan: &'a Plan,
    pub results: &'a [UnitResult],
    pub calls: CallCounts,
    pub duration_ms: u64,
}

impl ReconcileReport {
    pub(crate) fn build(input: ReportInput<'_>) -> Self {
        let plan = input.plan;
        let mut counts = Counts {
            deprovisions: plan.deprovisions(),
            ghosts: plan.ghosts,
            unmanaged: plan.unmanaged.len(),
            excluded: plan.excluded.len(),
            out_of_scope: plan.out_of_scope.len(),
            other_idp: plan.other_idp,
            conflicts: plan.conflicts.len(),
            ..Counts::default()
        };
        let mut items = Vec::new();
        for (unit, result) in plan.units.iter().zip(input.results) {
            if unit.actions.is_empty() {
                continue;
            }
            let mut actions = Vec::new();
            for (action, outcome) in unit.actions.iter().zip(&result.outcomes) {
                let slot = match action.category {
                    Category::CreateUser => &mut counts.users_create,
                    Category::UpdateUser => &mut counts.users_update,
                    Category::EnableUser => &mut counts.users_enable,
                    Category::DisableUser => &mut counts.users_disable,
                    Category::DeleteUser => &mut counts.users_delete,
                    Category::AddMembership => &mut counts.memberships_add,
                    Category::RemoveMembership => &mut counts.memberships_remove,
                    Category::CreateGroup => &mut counts.groups_create,
                    Category::RenameGroup => &mut counts.groups_rename,
                    Category::DeleteGroup => &mut counts.groups_delete,
                };
                *slot += 1;
                match outcome {
                    ActionOutcome::Planned => {}
                    ActionOutcome::Applied(_) => counts.applied += 1,
                    ActionOutcome::Unchanged(_) => counts.unchanged += 1,
                    ActionOutcome::FailedTransient(_) | ActionOutcome::FailedPermanent(_) => {
                        counts.failed += 1;
                    }
                    ActionOutcome::NotAttempted(_) => counts.not_attempted += 1,
                }
                let group = match &action.operation {
                    Operation::AddMembership { group, .. }
                    | Operation::RemoveMembership { group, .. } => group.name.clone(),
                    _ => None,
                };
                actions.push(ActionReport {
                    action: action.category,
                    group,
                    reason: action.detail.clone(),
                    operation: action.operation.to_string(),
                    outcome: outcome.clone(),
                });
            }
            items.push(ItemReport {
                kind: unit.subject_kind,
                subject: unit.subject.clone(),
                outcome: result.label(),
                duo_calls: result.duo_calls,
                actions,
            });
        }
        let status = if input.cap_exceeded {
            RunStatus::CapExceeded
        } else if counts.actions() == 0 {
            RunStatus::Converged
        } else if input.dry_run {
            RunStatus::Drift
        } else if counts.failed + counts.not_attempted > 0 {
            RunStatus::Incomplete
        } else {
            RunStatus::Converged
        };
        Self {
            run_id: input.run_id,
            source: input.source,
            dry_run: input.dry_run,
            status,
            scope: input.scope,
            counts,
            tenant: plan.stats,
            calls: input.calls,
            items,
            unmanaged: plan.unmanaged.clone(),
            excluded: plan.excluded.clone(),
            out_of_scope: plan.out_of_scope.clone(),
            conflicts: plan.conflicts.clone(),
            duration_ms: input.duration_ms,
        }
    }

    /// Whether Duo matches the IdP (within the scope rules) after this run.
    pub fn converged(&self) -> bool {
        self.status == RunStatus::Converged
    }

    /// One line that says how the run ended.
    pub fn status_line(&self) -> String {
        let c = &self.counts;
        match self.status {
            RunStatus::Converged if c.applied + c.unchanged == 0 => {
                format!("converged: Duo matches {}", self.source)
            }
            RunStatus::Converged => format!(
                "converged: {} actions applied ({} already done)",
                c.applied + c.unchanged,
                c.unchanged
            ),
            RunStatus::Drift => format!(
                "drift: {} actions to apply (dry run: nothing applied)",
                c.actions()
            ),
            RunStatus::Incomplete => format!(
                "incomplete: {} applied, {} failed, {} not attempted (see the failed rows; the next run retries them)",
                c.applied + c.unchanged,
                c.failed,
                c.not_attempted
            ),
            RunStatus::CapExceeded => format!(
                "stopped: {} deletions/deprovisions planned, more than --max-deletes {}; nothing applied",
                c.deprovisions, self.scope.max_deletes
            ),
        }
    }

    /// The report as a table for a person.
    pub fn render_table(&self) -> String {
        let mut rows: Vec<[String; 4]> = Vec::new();
        for item in &self.items {
            for action in &item.actions {
                let subject = match &action.group {
                    Some(group) => format!("{} / {group}", item.subject),
                    None => item.subject.clone(),
                };
                let mut detail = action.reason.clone();
                let outcome_detail = action.outcome.detail();
                if action.outcome.is_failure() && !outcome_detail.is_empty() {
                    let _ = write!(detail, " — {outcome_detail}");
                }
                rows.push([
                    action.action.label().to_owned(),
                    subject,
                    action.outcome.label().to_owned(),
                    detail,
                ]);
            }
        }
        for u in &self.unmanaged {
            let outcome = if self.scope.include_unmanaged {
                "included"
            } else {
                "left alone"
            };
            rows.push([
                "unmanaged".into(),
                u.username.clone(),
                outcome.into(),
                u.reason.clone(),
            ]);
        }
        for u in &self.excluded {
            rows.push([
                "excluded".into(),
                u.username.clone(),
                "left alone".into(),
                u.reason.clone(),
            ]);
        }
        for u in &self.out_of_scope {
            rows.push([
                "out of scope".into(),
                u.username.clone(),
                "left alone".into(),
                u.reason.clone(),
            ]);
        }
        for u in &self.conflicts {
            rows.push([
                "conflict".into(),
                u.username.clone(),
                "left alone".into(),
                u.reason.clone(),
            ]);
        }
        let mut out = String::new();
        let mode = if self.dry_run { "dry run" } else { "apply" };
        let _ = writeln!(
            out,
            "reconcile {} → Duo · {mode} · run {}",
            self.source, self.run_id
        );
        let s = &self.scope;
        let _ = writeln!(
            out,
            "scope: {} · GROUP_FILTER {} · DEPROVISION_ACTION {} · max deletes {} · unmanaged accounts {}",
            s.user
                .as_deref()
                .map_or_else(|| "all users".to_owned(), |u| format!("user {u}")),
            s.group_filter.as_deref().unwrap_or("(none)"),
            s.deprovision_action,
            s.max_deletes,
            if s.include_unmanaged {
                "included"
            } else {
                "left alone"
            },
        );
        out.push('\n');
        if rows.is_empty() {
            out.push_str("nothing to do\n");
        } else {
            let header = [
                "ACTION".to_owned(),
                "SUBJECT".to_owned(),
                "OUTCOME".to_owned(),
                "DETAIL".to_owned(),
            ];
            let width = |i: usize| {
                rows.iter()
                    .chain(std::iter::once(&header))
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
                    .min(48)
            };
            let widths = [width(0), width(1), width(2)];
            for row in std::iter::once(&header).chain(rows.iter()) {
                let _ = writeln!(
                    out,
                    "{:<w0$}  {:<w1$}  {:<w2$}  {}",
                    row[0],
                    row[1],
                    row[2],
                    row[3],
                    w0 = widths[0],
                    w1 = widths[1],
                    w2 = widths[2],
                );
            }
        }
        let c = &self.counts;
        let t = &self.tenant;
        out.push('\n');
        let _ = writeln!(
            out,
            "users        create {} · update {} · enable {} · disable {} · delete {}",
            c.users_create, c.users_update, c.users_enable, c.users_disable, c.users_delete
        );
        let _ = writeln!(
            out,
            "memberships  add {} · remove {}",
            c.memberships_add, c.memberships_remove
        );
        let _ = writeln!(
            out,
            "groups       create {} · rename {} · delete {}",
            c.groups_create, c.groups_rename, c.groups_delete
        );
        let _ = writeln!(
            out,
            "accounts     ghosts {} · unmanaged {} · other IdP {} · conflicts {} · deprovisions {} (cap {}){}",
            c.ghosts,
            c.unmanaged,
            c.other_idp,
            c.conflicts,
            c.deprovisions,
            s.max_deletes,
            [("excluded", c.excluded), ("out of scope", c.out_of_scope)]
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!(" · {what} {n}"))
                .collect::<String>()
        );
        let _ = writeln!(
            out,
            "tenant       {} {} users, {} groups ({} in scope) · Duo {} users, {} groups",
            self.source, t.idp_users, t.idp_groups, t.groups_in_scope, t.duo_users, t.duo_groups
        );
        let _ = writeln!(
            out,
            "calls        {} {} · Duo {} reading + {} applying · {} ms",
            self.source,
            self.calls.idp,
            self.calls.duo_read,
            self.calls.duo_apply,
            self.duration_ms
        );
        let _ = writeln!(out, "status       {}", self.status_line());
        out
    }

    /// The run's closing log line.
    pub(crate) fn log_summary(&self) {
        let c = &self.counts;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    event_id = %format!("reconcile:{}", self.run_id),
                    source = self.source.as_str(),
                    dry_run = self.dry_run,
                    status = self.status.as_str(),
                    user = self.scope.user.as_deref().unwrap_or("-"),
                    users_create = c.users_create,
                    users_update = c.users_update,
                    users_enable = c.users_enable,
                    users_disable = c.users_disable,
                    users_delete = c.users_delete,
                    memberships_add = c.memberships_add,
                    memberships_remove = c.memberships_remove,
                    groups_create = c.groups_create,
                    groups_rename = c.groups_rename,
                    groups_delete = c.groups_delete,
                    unmanaged = c.unmanaged,
                    excluded = c.excluded,
                    out_of_scope = c.out_of_scope,
                    ghosts = c.ghosts,
                    applied = c.applied,
                    failed = c.failed,
                    not_attempted = c.not_attempted,
                    idp_calls = self.calls.idp,
                    duo_calls = self.calls.duo_read + self.calls.duo_apply,
                    duration_ms = self.duration_ms,
                    detail = %self.status_line(),
                    "reconcile"
                )
            };
        }
        if matches!(self.status, RunStatus::Converged | RunStatus::Drift) {
            line!(info);
        } else {
            line!(warn);
        }
    }
}
