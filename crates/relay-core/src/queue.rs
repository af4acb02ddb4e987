//! Queue mode: the accept stage hands each event to a durable queue and
//! answers the IdP at once; a worker applies it with retries; what cannot be
//! applied lands in dead letters with its reason, to be inspected and
//! re-driven (`dlq list|show|replay`).
//!
//! This module holds what every queue shares — the message format, the
//! ordering and deduplication keys, the worker's decision, the dead-letter
//! record and the `dlq` command — and the traits each backend implements:
//! the embedded disk queue ([`disk`]) for `serve`, SQS FIFO, Azure Storage
//! Queue and Pub/Sub in the entry crates.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::IdpEvent;
use crate::report::EventReport;

pub mod disk;

/// A boxed future, so queue backends can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The version of [`QueuedEvent`]'s JSON.
pub const MESSAGE_VERSION: u32 = 1;

/// One accepted event as it travels through a queue (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// [`MESSAGE_VERSION`]; a worker refuses versions it does not know
    /// (dead letter, not a silent drop).
    pub v: u32,
    pub event: IdpEvent,
    /// When the relay accepted it (ms since the epoch).
    pub accepted_at_ms: i64,
}

impl QueuedEvent {
    pub fn new(event: IdpEvent) -> Self {
        Self {
            v: MESSAGE_VERSION,
            event,
            accepted_at_ms: now_ms(),
        }
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and numbers always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a message body; the error says why it is poison.
    pub fn from_json(body: &str) -> Result<Self, String> {
        let msg: Self =
            serde_json::from_str(body).map_err(|e| format!("unreadable queue message: {e}"))?;
        if msg.v != MESSAGE_VERSION {
            return Err(format!(
                "queue message version {} is not {MESSAGE_VERSION}",
                msg.v
            ));
        }
        Ok(msg)
    }

    /// The subject whose events must apply in order (see
    /// [`crate::order::subject_key`]).
    pub fn ordering_key(&self) -> String {
        crate::order::subject_key(&self.event)
    }

    /// A queue-safe form of a key: at most 128 characters from
    /// `[A-Za-z0-9_-]` (SQS `MessageGroupId` / `MessageDeduplicationId`,
    /// Pub/Sub ordering keys): `sha256` hex of the key.
    pub fn queue_safe(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    /// The ordering key in a queue-safe form.
    pub fn group_id(&self) -> String {
        Self::queue_safe(&self.ordering_key())
    }

    /// The deduplication id: the event's idempotency key, queue-safe.
    pub fn dedup_id(&self) -> String {
        Self::queue_safe(self.event.id.as_str())
    }
}

/// Why a queue could not take or give messages. Never carries a message
/// body, a URL with credentials or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("queue I/O: {0}")]
    Io(String),
    #[error("queue backend: {0}")]
    Backend(String),
    #[error("no dead letter with id {0}")]
    NotFound(String),
}

impl From<std::io::Error> for QueueError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// Where the accept stage puts events.
pub trait EventQueue: Send + Sync + fmt::Debug {
    /// Durably stores every event, or fails (then the IdP is answered 503
    /// and retries the delivery).
    fn enqueue<'a>(&'a self, events: &'a [QueuedEvent]) -> BoxFuture<'a, Result<(), QueueError>>;
}

/// `RELAY_MODE`: `sync` (the default: apply inside the request) or `queue`
/// (enqueue durably, answer at once, apply in a worker). `true` for queue.
pub fn queue_mode(raw: &crate::config::RawConfig) -> Result<bool, crate::config::ConfigError> {
    match crate::config::optional(raw, "RELAY_MODE") {
        None | Some("sync") => Ok(false),
        Some("queue") => Ok(true),
        Some(_) => Err(crate::config::ConfigError::new(
            "RELAY_MODE",
            "must be sync or queue",
        )),
    }
}

/// The worker's decision for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Applied, unchanged, duplicate, skipped or stale: delete the message.
    Done,
    /// A transient failure: leave the message for a later attempt.
    Retry { reason: String },
    /// Give up: move it to dead letters with this reason.
    DeadLetter { reason: String },
}

/// What a worker whose platform redelivers (the Azure queue trigger, a
/// Pub/Sub push) tells it about one message, once a dead letter, if any,
/// is durably written. relay-server maps it to each platform's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Applied, skipped, or durably dead-lettered: the platform may forget
    /// the message.
    Settled,
    /// A transient failure, or its dead letter could not be written: the
    /// platform must deliver the message again.
    Redeliver,
}

/// Where such a worker puts a dead letter: its platform's poison queue or
/// dead-letter topic.
pub trait DeadLetterSink: Send + Sync {
    /// The queue or topic, for log lines.
    fn sink_name(&self) -> String;
    fn put_dead_letter(
        &self,
        letter: &DeadLetter,
    ) -> impl std::future::Future<Output = Result<(), QueueError>> + Send;
}

/// Writes `letter` to `sink`: `Settled` once it is there, `Redeliver`
/// (logged, never with the body) when it could not be written, so the
/// platform brings the message back rather than lose it.
pub async fn dead_letter_to<K: DeadLetterSink>(
    sink: &K,
    letter: &DeadLetter,
    message_id: &str,
) -> Settlement {
    match sink.put_dead_letter(letter).await {
        Ok(()) => Settlement::Settled,
        Err(e) => {
            tracing::error!(
                error = %e,
                message_id,
                "could not write the dead letter to {}; the message is left for redelivery",
                sink.sink_name()
            );
            Settlement::Redeliver
        }
    }
}

/// How many attempts a message gets before it is dead-lettered, and the
/// backoff between them (queues that schedule redelivery themselves use
/// only `max_attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePolicy {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl QueuePolicy {
    /// From `RELAY_QUEUE_MAX_ATTEMPTS` (default 8) and
    /// `RELAY_QUEUE_BACKOFF_MS` (first retry delay, doubled each time up to
    /// 5 min; default 2000).
    pub fn from_config(raw: &crate::config::RawConfig) -> Result<Self, crate::config::ConfigError> {
        let mut policy = Self::default();
        if let Some(v) = raw
            .get("RELAY_QUEUE_MAX_ATTEMPTS")
            .filter(|v| !v.trim().is_empty())
        {
            policy.max_attempts = v
                .trim()
                .parse()
                .ok()
                .filter(|n: &u32| (1..=100).contains(n))
                .ok_or_else(|| crate::config::ConfigError {
                    variable: "RELAY_QUEUE_MAX_ATTEMPTS",
                    problem: "must be a whole number from 1 to 100".into(),
                })?;
        }
        if let Some(v) = raw
            .get("RELAY_QUEUE_BACKOFF_MS")
            .filter(|v| !v.trim().is_empty())
        {
            let ms: u64 = v
                .trim()
                .parse()
                .ok()
                .filter(|n: &u64| *n <= 3_600_000)
                .ok_or_else(|| crate::config::ConfigError {
                    variable: "RELAY_QUEUE_BACKOFF_MS",
                    problem: "must be milliseconds from 0 to 3600000".into(),
                })?;
            policy.initial_backoff = Duration::from_millis(ms);
        }
        Ok(policy)
    }

    /// The delay before attempt `attempt + 1` (attempts count from 1), with
    /// up to 25% jitter so a burst of failures does not retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let base = exp.min(self.max_backoff);
        let jitter = base.mul_f64(fastrand::f64() * 0.25);
        base + jitter
    }
}

/// A message the worker gave up on, as dead letters keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The queue message exactly as it was (so a replay re-sends it as is,
    /// and a poison message can still be read by a human).
    pub body: String,
    pub reason: String,
    pub attempts: u32,
    pub dead_lettered_at_ms: i64,
    /// From the message when it could be read.
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub subject: Option<String>,
}

impl DeadLetter {
    pub fn new(body: &str, reason: &str, attempts: u32) -> Self {
        let parsed = QueuedEvent::from_json(body).ok();
        Self {
            body: body.to_owned(),
            reason: reason.to_owned(),
            attempts,
            dead_lettered_at_ms: now_ms(),
            event_id: parsed.as_ref().map(|m| m.event.id.to_string()),
            event_type: parsed.as_ref().map(|m| m.event.event_type.clone()),
            subject: parsed
                .as_ref()
                .map(|m| crate::report::subject(&m.event.change)),
        }
    }

    /// The one log line per dead letter (tracing message `dead_letter`;
    /// field names are stable, metrics and alarms count them).
    pub fn log(&self, source: &str) {
        use crate::log_line::dead_letter as f;
        tracing::error!(
            {
                { f::EVENT_ID } = self.event_id.as_deref().unwrap_or("-"),
                { f::SOURCE } = source,
                { f::EVENT_TYPE } = self.event_type.as_deref().unwrap_or("-"),
                { f::SUBJECT } = self.subject.as_deref().unwrap_or("-"),
                { f::REASON } = tracing::field::display(&self.reason),
                { f::ATTEMPTS } = self.attempts,
            },
            "{}",
            f::MESSAGE
        );
    }
}

/// A dead letter and the backend's handle for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterEntry {
    /// What `dlq show` / `dlq replay` take (a sequence number, a message id).
    pub id: String,
    #[serde(flatten)]
    pub letter: DeadLetter,
}

/// Dead letters as `idp-duo-relay dlq` sees them, whatever the backend.
pub trait DeadLetterStore: Send + Sync {
    /// Up to `limit` dead letters, oldest first.
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetterEntry>, QueueError>>;
    /// Puts the message back on the main queue and removes the dead letter.
    fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), QueueError>>;
}

/// The worker's decision for one report (see `pipeline::Relay::process`).
pub(crate) fn decide(report: &EventReport, attempt: u32, policy: &QueuePolicy) -> Disposition {
    use crate::report::EventOutcome as O;
    match &report.outcome {
        O::Applied(_) | O::Unchanged(_) | O::Duplicate | O::Skipped(_) => Disposition::Done,
        O::FailedPermanent(detail) => Disposition::DeadLetter {
            reason: format!("permanent failure: {detail}"),
        },
        O::FailedTransient(detail) if attempt >= policy.max_attempts => Disposition::DeadLetter {
            reason: format!("gave up after {attempt} attempts; last error: {detail}"),
        },
        O::FailedTransient(detail) => Disposition::Retry {
            reason: detail.clone(),
        },
    }
}

/// `dlq list [--json] [--limit N]`, `dlq show ID`, `dlq replay ID…|--all`:
/// the same command for every backend. Writes to `out`; answers the exit
/// code (0 ok, 1 a replay or lookup failed, 2 usage).
pub async fn dlq_command(
    args: &[String],
    store: &dyn DeadLetterStore,
    out: &mut dyn std::io::Write,
) -> i32 {
    match run_dlq(args, store, out).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            1
        }
    }
}

const DLQ_USAGE: &str =
    "usage: dlq list [--json] [--limit N] | dlq show ID | dlq replay ID... | dlq replay --all";

async fn run_dlq(
    args: &[String],
    store: &dyn DeadLetterStore,
    out: &mut dyn std::io::Write,
) -> Result<i32, Box<dyn std::error::Error>> {
    let Some(verb) = args.first() else {
        writeln!(out, "{DLQ_USAGE}")?;
        return Ok(2);
    };
    let rest = &args[1..];
    match verb.as_str() {
        "list" => {
            let json = rest.iter().any(|a| a == "--json");
            let limit = match rest.iter().position(|a| a == "--limit") {
                Some(i) => match rest.get(i + 1).and_then(|v| v.parse().ok()) {
                    Some(n) => n,
                    None => {
                        writeln!(out, "--limit needs a number\n{DLQ_USAGE}")?;
                        return Ok(2);
                    }
                },
                None => 1000,
            };
            let entries = store.list(limit).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?;
            } else {
                writeln!(
                    out,
                    "{:<24} {:<8} {:<40} {:<28} reason",
                    "id", "attempts", "event_id", "subject"
                )?;
                for e in &entries {
                    writeln!(
                        out,
                        "{:<24} {:<8} {:<40} {:<28} {}",
                        e.id,
                        e.letter.attempts,
                        e.letter.event_id.as_deref().unwrap_or("-"),
                        e.letter.subject.as_deref().unwrap_or("-"),
                        e.letter.reason
                    )?;
                }
                writeln!(out, "{} dead letter(s)", entries.len())?;
            }
            Ok(0)
        }
        "show" => {
            let Some(id) = rest.first() else {
                writeln!(out, "{DLQ_USAGE}")?;
                return Ok(2);
            };
            let entries = store.list(usize::MAX).await?;
            match entries
                .iter()
                .find(|e| &e.id == id || e.letter.event_id.as_deref() == Some(id.as_str()))
            {
                Some(e) => {
                    writeln!(out, "{}", serde_json::to_string_pretty(e)?)?;
                    Ok(0)
                }
                None => {
                    writeln!(out, "no dead letter with id or event id {id}")?;
                    Ok(1)
                }
            }
        }
        "replay" => {
            let ids: Vec<String> = if rest.iter().any(|a| a == "--all") {
                store
                    .list(usize::MAX)
                    .await?
                    .into_iter()
                    .map(|e| e.id)
                    .collect()
            } else {
                rest.to_vec()
            };
            if ids.is_empty() {
                writeln!(out, "{DLQ_USAGE}")?;
                return Ok(2);
            }
            let mut failed = 0;
            for id in &ids {
                match store.replay(id).await {
                    Ok(()) => writeln!(out, "replayed {id}")?,
                    Err(e) => {
                        failed += 1;
                        writeln!(out, "could not replay {id}: {e}")?;
                    }
                }
            }
            writeln!(out, "{} replayed, {failed} failed", ids.len() - failed)?;
            Ok(i32::from(failed > 0))
        }
        _ => {
            writeln!(out, "{DLQ_USAGE}")?;
            Ok(2)
        }
    }
}

pub use crate::state::now_ms;
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_pairs;

    #[test]
    fn relay_mode_is_sync_by_default_and_refuses_anything_else() {
        assert!(!queue_mode(&from_pairs(&[])).unwrap());
        assert!(!queue_mode(&from_pairs(&[("RELAY_MODE", "sync")])).unwrap());
        assert!(queue_mode(&from_pairs(&[("RELAY_MODE", "queue")])).unwrap());
        let e = queue_mode(&from_pairs(&[("RELAY_MODE", "fast")])).unwrap_err();
        assert_eq!(e.to_string(), "RELAY_MODE: must be sync or queue");
    }
}
