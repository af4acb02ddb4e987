//! Applying a plan through the same [`Directory`] the events use, one unit
//! (a user or a group) at a time, with one summary line per unit in the
//! event line's format (`message = "event"`, `event_type = "reconcile"`), so
//! "everything that happened to user X" finds reconcile changes too.

use std::collections::HashSet;
use std::time::Instant;

use serde::{Serialize, Serializer};

use super::IdpKind;
use super::diff::{Category, Unit};
use crate::apply::{Directory, OpOutcome};
use crate::log_line::event as line;
use crate::operation::Operation;
use crate::report::OutcomeKind;

/// How one action ended. In `--json` reports: `outcome` (its label) and
/// `detail` (none when planned), the event line's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    /// Dry run, or held back by the safety cap.
    Planned,
    Applied(String),
    /// Duo already matched when the operation ran.
    Unchanged(String),
    FailedTransient(String),
    FailedPermanent(String),
    /// Not tried: an earlier action of the same unit (or the group it
    /// needs) failed.
    NotAttempted(String),
}

impl ActionOutcome {
    /// The label: an event's ([`OutcomeKind`]) where the two mean the
    /// same, and reconcile's own `planned` and `not_attempted`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Applied(_) => OutcomeKind::Applied.as_str(),
            Self::Unchanged(_) => OutcomeKind::Unchanged.as_str(),
            Self::FailedTransient(_) => OutcomeKind::FailedTransient.as_str(),
            Self::FailedPermanent(_) => OutcomeKind::FailedPermanent.as_str(),
            Self::NotAttempted(_) => "not_attempted",
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::FailedTransient(_) | Self::FailedPermanent(_) | Self::NotAttempted(_)
        )
    }

    pub fn detail(&self) -> &str {
        self.carried_detail().unwrap_or("")
    }

    fn carried_detail(&self) -> Option<&str> {
        match self {
            Self::Planned => None,
            Self::Applied(d)
            | Self::Unchanged(d)
            | Self::FailedTransient(d)
            | Self::FailedPermanent(d)
            | Self::NotAttempted(d) => Some(d),
        }
    }
}

/// `{"outcome": <label>, "detail": <detail>}` (no `detail` when planned),
/// from [`ActionOutcome::label`]: the labels are written once.
impl Serialize for ActionOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::report::serialize_outcome(serializer, self.label(), self.carried_detail())
    }
}

/// What applying one unit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitResult {
    pub outcomes: Vec<ActionOutcome>,
    pub duo_calls: u64,
    pub duration_ms: u64,
}

impl UnitResult {
    pub(crate) fn planned(unit: &Unit) -> Self {
        Self {
            outcomes: vec![ActionOutcome::Planned; unit.actions.len()],
            duo_calls: 0,
            duration_ms: 0,
        }
    }

    /// The first failed action (transient or permanent), if any.
    fn failed(&self) -> Option<&ActionOutcome> {
        self.outcomes.iter().find(|o| {
            matches!(
                o,
                ActionOutcome::FailedTransient(_) | ActionOutcome::FailedPermanent(_)
            )
        })
    }

    /// The unit's outcome as the summary line labels it.
    pub fn label(&self) -> &'static str {
        if let Some(failed) = self.failed() {
            return failed.label();
        }
        if self
            .outcomes
            .iter()
            .any(|o| matches!(o, ActionOutcome::Applied(_)))
        {
            OutcomeKind::Applied.as_str()
        } else if self.outcomes.iter().all(|o| *o == ActionOutcome::Planned) {
            "planned"
        } else {
            OutcomeKind::Unchanged.as_str()
        }
    }
}

/// The group an action needs to exist.
fn needed_group(op: &Operation) -> Option<&str> {
    match op {
        Operation::AddMembership { group, .. } => group.idp_tag.as_deref(),
        _ => None,
    }
}

/// Applies the units in order. A failure stops the rest of its unit only;
/// memberships in a group whose creation failed are not attempted.
pub(crate) async fn apply_units<D: Directory>(
    units: &[Unit],
    directory: &D,
    kind: IdpKind,
    run_id: &str,
) -> Vec<UnitResult> {
    let mut failed_groups: HashSet<String> = HashSet::new();
    let mut results = Vec::with_capacity(units.len());
    for unit in units {
        let started = Instant::now();
        let (outcomes, duo_calls) =
            duo_admin::count_calls(apply_unit(unit, directory, &failed_groups)).await;
        for (action, outcome) in unit.actions.iter().zip(&outcomes) {
            if action.category == Category::CreateGroup
                && outcome.is_failure()
                && let Operation::CreateGroup { group } = &action.operation
                && let Some(tag) = &group.idp_tag
            {
                failed_groups.insert(tag.clone());
            }
        }
        let result = UnitResult {
            outcomes,
            duo_calls,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        log_unit(kind, run_id, unit, &result);
        results.push(result);
    }
    results
}

async fn apply_unit<D: Directory>(
    unit: &Unit,
    directory: &D,
    failed_groups: &HashSet<String>,
) -> Vec<ActionOutcome> {
    let mut outcomes = Vec::with_capacity(unit.actions.len());
    let mut stopped: Option<String> = None;
    for action in &unit.actions {
        if let Some(why) = &stopped {
            outcomes.push(ActionOutcome::NotAttempted(why.clone()));
            continue;
        }
        if let Some(tag) = needed_group(&action.operation)
            && failed_groups.contains(tag)
        {
            outcomes.push(ActionOutcome::NotAttempted(format!(
                "group {tag} could not be created"
            )));
            continue;
        }
        let outcome = match directory.apply(&action.operation).await {
            Ok(OpOutcome::Changed(effect)) => ActionOutcome::Applied(effect.to_string()),
            Ok(OpOutcome::Unchanged(effect)) => ActionOutcome::Unchanged(effect.to_string()),
            Err(e) => {
                let detail = format!("{}: {e}", action.operation);
                stopped = Some(format!("an earlier action failed ({detail})"));
                if e.is_transient() {
                    ActionOutcome::FailedTransient(detail)
                } else {
                    ActionOutcome::FailedPermanent(detail)
                }
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// One line per unit, with the event line's fields (named in
/// [`crate::log_line::event`]; no `duo_throttled`).
fn log_unit(kind: IdpKind, run_id: &str, unit: &Unit, result: &UnitResult) {
    let operations: Vec<&str> = unit.actions.iter().map(|a| a.operation.name()).collect();
    let operations = operations.join(",");
    let detail: Vec<&str> = result
        .outcomes
        .iter()
        .map(ActionOutcome::detail)
        .filter(|d| !d.is_empty())
        .collect();
    let detail = detail.join("; ");
    let event_id = format!("reconcile:{run_id}");
    let outcome = result.label();
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                {
                    { line::EVENT_ID } = tracing::field::display(&event_id),
                    { line::SOURCE } = kind.as_str(),
                    { line::EVENT_TYPE } = "reconcile",
                    { line::SUBJECT } = tracing::field::display(&unit.subject),
                    { line::OPERATIONS } = tracing::field::display(&operations),
                    { line::OUTCOME } = outcome,
                    { line::DETAIL } = tracing::field::display(&detail),
                    { line::DUO_CALLS } = result.duo_calls,
                    { line::DURATION_MS } = result.duration_ms,
                },
                "{}",
                line::MESSAGE
            )
        };
    }
    if result.failed().is_some() {
        line!(warn);
    } else {
        line!(info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written form is the one serde's derive gave before
    /// (`rename_all = "snake_case"`, `tag = "outcome"`, `content =
    /// "detail"`, flattened into the report's action): `reconcile --json`
    /// is unchanged.
    #[test]
    fn the_json_outcome_is_the_former_derived_one() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
        enum Former {
            Planned,
            Applied(String),
            Unchanged(String),
            FailedTransient(String),
            FailedPermanent(String),
            NotAttempted(String),
        }
        #[derive(Serialize)]
        struct Action<T: Serialize> {
            operation: &'static str,
            #[serde(flatten)]
            outcome: T,
        }
        let d = || "added ann to Engineering".to_owned();
        let pairs = [
            (ActionOutcome::Planned, Former::Planned),
            (ActionOutcome::Applied(d()), Former::Applied(d())),
            (ActionOutcome::Unchanged(d()), Former::Unchanged(d())),
            (
                ActionOutcome::FailedTransient(d()),
                Former::FailedTransient(d()),
            ),
            (
                ActionOutcome::FailedPermanent(d()),
                Former::FailedPermanent(d()),
            ),
            (ActionOutcome::NotAttempted(d()), Former::NotAttempted(d())),
        ];
        for (ours, former) in pairs {
            let op = "add ann to Engineering";
            assert_eq!(
                serde_json::to_string(&Action {
                    operation: op,
                    outcome: ours
                })
                .expect("JSON"),
                serde_json::to_string(&Action {
                    operation: op,
                    outcome: former
                })
                .expect("JSON"),
            );
        }
    }
}
