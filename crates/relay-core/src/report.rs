//! What happened to one event: its [`EventOutcome`], its [`EventReport`]
//! and the one summary line per event ([`log_report`]) — the record the
//! sync path, the queue worker's decision ([`crate::queue`]) and `replay`
//! read.

use serde::{Serialize, Serializer, ser::SerializeMap as _};

use crate::event::{Change, Skipped, Source};
use crate::log_line;
use crate::operation::OperationKind;

/// How one event ended. On the summary line and in `--json` reports it is
/// two fields: `outcome` ([`OutcomeKind`]'s label) and `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// Operations ran and at least one changed Duo.
    Applied(String),
    /// Operations ran and Duo already matched.
    Unchanged(String),
    /// Already applied (or being applied) for an earlier delivery.
    Duplicate,
    /// Nothing to do in Duo, and why.
    Skipped(String),
    /// Failed; a retry may succeed (the event was released for it).
    FailedTransient(String),
    /// Failed; a retry cannot help (recorded, not retried).
    FailedPermanent(String),
}

/// Which way an event ended, without its detail: the summary line's
/// `outcome` (and the metrics' `Outcome` dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    Applied,
    Unchanged,
    Duplicate,
    Skipped,
    FailedTransient,
    FailedPermanent,
}

impl OutcomeKind {
    /// Every kind, in the order the documents list them.
    pub const ALL: [Self; 6] = [
        Self::Applied,
        Self::Unchanged,
        Self::Duplicate,
        Self::Skipped,
        Self::FailedTransient,
        Self::FailedPermanent,
    ];

    /// The label on the wire (log line, `--json`, metric dimension). The
    /// one place these strings are written.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Unchanged => "unchanged",
            Self::Duplicate => "duplicate",
            Self::Skipped => "skipped",
            Self::FailedTransient => "failed_transient",
            Self::FailedPermanent => "failed_permanent",
        }
    }

    /// A failure (the summary line is a warning).
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::FailedTransient | Self::FailedPermanent)
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels the summary line's `outcome` takes, in [`OutcomeKind::ALL`]'s
/// order (relay-server's metrics and the Terraform contract read these).
pub const OUTCOMES: [&str; 6] = {
    let mut labels = [""; 6];
    let mut i = 0;
    while i < OutcomeKind::ALL.len() {
        labels[i] = OutcomeKind::ALL[i].as_str();
        i += 1;
    }
    labels
};

impl EventOutcome {
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Applied(_) => OutcomeKind::Applied,
            Self::Unchanged(_) => OutcomeKind::Unchanged,
            Self::Duplicate => OutcomeKind::Duplicate,
            Self::Skipped(_) => OutcomeKind::Skipped,
            Self::FailedTransient(_) => OutcomeKind::FailedTransient,
            Self::FailedPermanent(_) => OutcomeKind::FailedPermanent,
        }
    }

    /// The summary line's `outcome`: [`OutcomeKind::as_str`].
    pub fn label(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The detail the outcome carries (`None` for a duplicate, whose
    /// `--json` report has no `detail`).
    fn carried_detail(&self) -> Option<&str> {
        match self {
            Self::Applied(d)
            | Self::Unchanged(d)
            | Self::Skipped(d)
            | Self::FailedTransient(d)
            | Self::FailedPermanent(d) => Some(d),
            Self::Duplicate => None,
        }
    }

    /// The summary line's `detail`.
    pub fn detail(&self) -> &str {
        self.carried_detail()
            .unwrap_or("already applied for an earlier delivery")
    }
}

/// `{"outcome": <label>, "detail": <detail>}` (no `detail` for a
/// duplicate), flattened into [`EventReport`]'s `--json` form: the same
/// names and labels as the summary line.
impl Serialize for EventOutcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_outcome(serializer, self.label(), self.carried_detail())
    }
}

/// An outcome as the two fields `outcome` and `detail` (left out when
/// `None`), to flatten into a report: events' and reconcile actions'.
pub(crate) fn serialize_outcome<S: Serializer>(
    serializer: S,
    label: &str,
    detail: Option<&str>,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1 + usize::from(detail.is_some())))?;
    map.serialize_entry(log_line::event::OUTCOME, label)?;
    if let Some(detail) = detail {
        map.serialize_entry(log_line::event::DETAIL, detail)?;
    }
    map.end()
}

/// What happened to one event, as the summary line and `replay` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReport {
    pub event_id: String,
    pub source: Source,
    pub event_type: String,
    pub subject: String,
    pub operations: Vec<OperationKind>,
    #[serde(flatten)]
    pub outcome: EventOutcome,
    pub duo_calls: u64,
    /// Of `duo_calls`, how many Duo answered 429 (rate limited).
    pub duo_throttled: u64,
    pub duration_ms: u64,
}

pub(crate) fn skipped_report(source: Source, skipped: &Skipped) -> EventReport {
    EventReport {
        event_id: skipped
            .id
            .as_deref()
            .map_or_else(|| "-".to_owned(), |id| format!("{}:{id}", source.as_str())),
        source,
        event_type: skipped.event_type.clone().unwrap_or_else(|| "-".into()),
        subject: "-".into(),
        operations: Vec::new(),
        outcome: EventOutcome::Skipped(skipped.reason.clone()),
        duo_calls: 0,
        duo_throttled: 0,
        duration_ms: 0,
    }
}

/// The one summary line per event. Field names are stable: on-call queries
/// depend on them; they are defined once, in [`crate::log_line::event`].
/// Its target stays `relay_core::pipeline`, where it was written first.
pub(crate) fn log_report(r: &EventReport) {
    use crate::log_line::event as f;
    let operations = r
        .operations
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let failed = r.outcome.kind().is_failure();
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "relay_core::pipeline",
                {
                    { f::EVENT_ID } = tracing::field::display(&r.event_id),
                    { f::SOURCE } = tracing::field::display(&r.source),
                    { f::EVENT_TYPE } = tracing::field::display(&r.event_type),
                    { f::SUBJECT } = tracing::field::display(&r.subject),
                    { f::OPERATIONS } = tracing::field::display(&operations),
                    { f::OUTCOME } = r.outcome.label(),
                    { f::DETAIL } = tracing::field::display(&r.outcome.detail()),
                    { f::DUO_CALLS } = r.duo_calls,
                    { f::DUO_THROTTLED } = r.duo_throttled,
                    { f::DURATION_MS } = r.duration_ms,

                },
                "{}",
                f::MESSAGE
            )
        };
    }
    if failed {
        line!(warn);
    } else {
        line!(info);
    }
}

/// Who an event is about, for the summary line: the user's login (else its
/// IdP id) or the group's name (else its id).
pub fn subject(change: &Change) -> String {
    let user = |u: &crate::event::UserRef| {
        u.login
            .clone()
            .or_else(|| u.idp_id.clone())
            .unwrap_or_else(|| "-".into())
    };
    let group = |g: &crate::event::GroupRef| {
        g.name
            .clone()
            .or_else(|| g.idp_id.clone())
            .unwrap_or_else(|| "-".into())
    };
    match change {
        Change::UserUpserted { user: u, .. }
        | Change::UserStateChanged { user: u, .. }
        | Change::UserProfileChanged { user: u, .. }
        | Change::UserDeleted { user: u }
        | Change::MfaReset { user: u, .. } => user(u),
        Change::MembershipAdded { user: u, group: g }
        | Change::MembershipRemoved { user: u, group: g } => format!("{} / {}", user(u), group(g)),
        Change::GroupCreated { group: g }
        | Change::GroupRenamed { group: g, .. }
        | Change::GroupDeleted { group: g } => group(g),
        Change::SubscriptionLifecycle { subscription, .. } => {
            format!("subscription {subscription}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: EventOutcome) -> EventReport {
        EventReport {
            event_id: "okta:1".into(),
            source: Source::Okta,
            event_type: "user.lifecycle.create".into(),
            subject: "jane".into(),
            operations: vec![OperationKind::UpsertUser],
            outcome,
            duo_calls: 2,
            duo_throttled: 0,
            duration_ms: 3,
        }
    }

    /// The `--json` report has the summary line's fields, by the same names
    /// (`log_line::event::FIELDS`), and its outcome labels.
    #[test]
    fn the_json_report_has_the_summary_lines_fields_and_labels() {
        let outcomes = [
            EventOutcome::Applied("created user jane".into()),
            EventOutcome::Unchanged("user jane exists".into()),
            EventOutcome::Skipped("no relevant change".into()),
            EventOutcome::FailedTransient("503".into()),
            EventOutcome::FailedPermanent("400".into()),
        ];
        for outcome in outcomes {
            let json = serde_json::to_value(report(outcome.clone())).expect("JSON");
            let keys: Vec<&str> = json
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            let mut expected = log_line::event::FIELDS.to_vec();
            expected.sort_unstable();
            let mut keys = keys;
            keys.sort_unstable();
            assert_eq!(keys, expected);
            assert_eq!(json["outcome"], outcome.label());
            assert_eq!(json["detail"], outcome.detail());
        }
        let json = serde_json::to_value(report(EventOutcome::Duplicate)).expect("JSON");
        assert_eq!(json["operations"], serde_json::json!(["upsert_user"]));
        assert_eq!(json["outcome"], "duplicate");
        assert!(json.get("detail").is_none(), "{json}");
    }

    /// The hand-written form is the one serde's derive gave before the
    /// labels were typed (`rename_all = "snake_case"`, `tag = "outcome"`,
    /// `content = "detail"`, flattened): `replay --json` is unchanged.
    #[test]
    fn the_json_outcome_is_the_former_derived_one() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
        enum Derived {
            Applied(String),
            Unchanged(String),
            Duplicate,
            Skipped(String),
            FailedTransient(String),
            FailedPermanent(String),
        }
        #[derive(Serialize)]
        struct Flat<T: Serialize> {
            before: u8,
            #[serde(flatten)]
            outcome: T,
        }
        let d = || "created user jane; added jane to Engineering".to_owned();
        let pairs = [
            (EventOutcome::Applied(d()), Derived::Applied(d())),
            (EventOutcome::Unchanged(d()), Derived::Unchanged(d())),
            (EventOutcome::Duplicate, Derived::Duplicate),
            (EventOutcome::Skipped(d()), Derived::Skipped(d())),
            (
                EventOutcome::FailedTransient(d()),
                Derived::FailedTransient(d()),
            ),
            (
                EventOutcome::FailedPermanent(d()),
                Derived::FailedPermanent(d()),
            ),
        ];
        for (ours, derived) in pairs {
            assert_eq!(
                serde_json::to_string(&Flat {
                    before: 1,
                    outcome: ours
                })
                .expect("JSON"),
                serde_json::to_string(&Flat {
                    before: 1,
                    outcome: derived
                })
                .expect("JSON"),
            );
        }
    }

    #[test]
    fn the_labels_are_the_documented_ones_each_once() {
        assert_eq!(
            OUTCOMES,
            [
                "applied",
                "unchanged",
                "duplicate",
                "skipped",
                "failed_transient",
                "failed_permanent"
            ]
        );
        for kind in OutcomeKind::ALL {
            assert_eq!(kind.to_string(), kind.as_str());
        }
        let failures: Vec<_> = OutcomeKind::ALL
            .into_iter()
            .filter(|k| k.is_failure())
            .collect();
        assert_eq!(
            failures,
            [OutcomeKind::FailedTransient, OutcomeKind::FailedPermanent]
        );
    }
}
