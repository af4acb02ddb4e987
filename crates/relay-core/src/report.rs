//! What happened to one event: its [`EventOutcome`], its [`EventReport`]
//! and the one summary line per event ([`log_report`]) — the record the
//! sync path, the queue worker's decision ([`crate::queue`]) and `replay`
//! read.

use serde::Serialize;

use crate::event::{Change, Skipped, Source};

/// How one event ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
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

impl EventOutcome {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Applied(_) => "applied",
            Self::Unchanged(_) => "unchanged",
            Self::Duplicate => "duplicate",
            Self::Skipped(_) => "skipped",
            Self::FailedTransient(_) => "failed_transient",
            Self::FailedPermanent(_) => "failed_permanent",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Self::Applied(d)
            | Self::Unchanged(d)
            | Self::Skipped(d)
            | Self::FailedTransient(d)
            | Self::FailedPermanent(d) => d,
            Self::Duplicate => "already applied for an earlier delivery",
        }
    }
}

/// What happened to one event, as the summary line and `replay` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReport {
    pub event_id: String,
    pub source: Source,
    pub event_type: String,
    pub subject: String,
    pub operations: Vec<String>,
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
/// depend on them. Its target stays `relay_core::pipeline`, where it was
/// written first.
pub(crate) fn log_report(r: &EventReport) {
    let operations = r.operations.join(",");
    let failed = matches!(
        r.outcome,
        EventOutcome::FailedTransient(_) | EventOutcome::FailedPermanent(_)
    );
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                target: "relay_core::pipeline",
                event_id = %r.event_id,
                source = %r.source,
                event_type = %r.event_type,
                subject = %r.subject,
                operations = %operations,
                outcome = r.outcome.label(),
                detail = %r.outcome.detail(),
                duo_calls = r.duo_calls,
                duo_throttled = r.duo_throttled,
                duration_ms = r.duration_ms,
                "event"
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
