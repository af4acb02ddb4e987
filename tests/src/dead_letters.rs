//! Dead letters as every backend must keep them (issue 15): one contract
//! ([`contract`]) that the disk queue of `serve` (`tests/dead_letters.rs`),
//! SQS on moto, the Azure poison queue on Azurite and the Pub/Sub
//! dead-letter topic on its emulator all run, through `dlq` — the command
//! the operator types — not through the backend's own methods:
//!
//! - an empty store lists nothing;
//! - what the worker writes is listed whole: the message body byte for byte
//!   (a readable event, an unreadable poison body, a body with characters
//!   a transport escapes), the reason, the attempts, the event's id, type
//!   and subject when the body is readable, oldest first;
//! - `show` finds a letter by its id and by its event's id;
//! - `replay ID` puts the body back on the main queue unchanged and removes
//!   the letter; an unknown id fails (exit 1) and changes nothing;
//! - `replay --all` moves every remaining letter back, leaving none.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use relay_core::event::{Change, EventId, IdpEvent, Source, UserRef, UserState};
use relay_core::queue::{DeadLetter, DeadLetterStore, QueueError, QueuedEvent, dlq_command};
use serde_json::Value;

/// A boxed future, as the backend's closures return them.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The cases of [`contract`], in order (the count is the suite's size).
pub const CASES: [&str; 6] = [
    "an empty store lists nothing",
    "every letter listed whole, oldest first",
    "show by id and by event id",
    "replay puts the body back unchanged and removes the letter",
    "an unknown id fails and changes nothing",
    "replay --all leaves none",
];

/// A backend as the contract drives it.
pub struct Backend<'a> {
    /// For messages.
    pub name: &'a str,
    /// The dead letters as `dlq` sees them.
    pub store: &'a dyn DeadLetterStore,
    /// Writes a dead letter the way the backend's worker does.
    #[allow(clippy::type_complexity)]
    pub write: Box<dyn Fn(DeadLetter) -> Boxed<'a, Result<(), QueueError>> + Send + Sync + 'a>,
    /// Takes every message now on the main queue (their bodies), so each
    /// replay's result is seen alone.
    pub drain_main: Box<dyn Fn() -> Boxed<'a, Vec<String>> + Send + Sync + 'a>,
}

impl std::fmt::Debug for Backend<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A queue message of one Okta event, as the accept stage writes it.
pub fn event_message(id: &str, login: &str) -> String {
    QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, id),
        source: Source::Okta,
        event_type: "user.lifecycle.suspend".into(),
        occurred_at: Some("2026-12-04T10:00:00.000Z".into()),
        change: Change::UserStateChanged {
            user: UserRef {
                idp_id: Some(format!("00u{id}")),
                login: Some(login.into()),
            },
            state: UserState::Disabled,
        },
    })
    .to_json()
}

async fn dlq(backend: &Backend<'_>, args: &[&str]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let mut out = Vec::new();
    let code = dlq_command(&args, backend.store, &mut out).await;
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// `dlq list --json`, as values.
async fn listed(backend: &Backend<'_>) -> Vec<Value> {
    let (code, out) = dlq(backend, &["list", "--json"]).await;
    assert_eq!(code, 0, "{}: dlq list: {out}", backend.name);
    match serde_json::from_str(&out) {
        Ok(Value::Array(entries)) => entries,
        _ => panic!("{}: dlq list --json is not an array: {out}", backend.name),
    }
}

fn field<'v>(entry: &'v Value, name: &str) -> &'v str {
    entry[name].as_str().unwrap_or_default()
}

/// Runs every case against `backend`, whose dead letters and main queue
/// must be empty; answers how many cases ran ([`CASES`]).
pub async fn contract(backend: Backend<'_>) -> usize {
    let name = backend.name;
    let mut ran = 0;

    // An empty store lists nothing.
    assert!(listed(&backend).await.is_empty(), "{name}: not empty");
    ran += 1;

    // Every letter listed whole, oldest first.
    let readable = event_message("dl1", "dead.letter@example.com");
    let poison = "not a queue message {".to_owned();
    let escaped = event_message("dl3", "x<&>\"'ünïcødé+/=\\@example.com");
    let mut letters = vec![
        DeadLetter::new(&readable, "permanent failure: modify user: 400 40002", 3),
        DeadLetter::new(&poison, "unreadable message: expected value", 1),
        DeadLetter::new(&escaped, "gave up after 8 attempts; last error: 503", 8),
    ];
    let now = letters[0].dead_lettered_at_ms;
    for (i, letter) in letters.iter_mut().enumerate() {
        // Distinct times, oldest first, whatever the clock's resolution.
        letter.dead_lettered_at_ms = now - 3_000 + 1_000 * i64::try_from(i).unwrap_or(0);
    }
    for letter in &letters {
        (backend.write)(letter.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: writing a dead letter: {e}"));
        // Stores that order by arrival see the same order.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let entries = listed(&backend).await;
    assert_eq!(entries.len(), 3, "{name}: {entries:#?}");
    for (entry, letter) in entries.iter().zip(&letters) {
        assert_eq!(field(entry, "body"), letter.body, "{name}: body");
        assert_eq!(field(entry, "reason"), letter.reason, "{name}: reason");
        assert_eq!(
            entry["attempts"].as_u64(),
            Some(u64::from(letter.attempts)),
            "{name}: attempts"
        );
        assert_eq!(
            entry["event_id"].as_str(),
            letter.event_id.as_deref(),
            "{name}: event_id"
        );
        assert_eq!(
            entry["subject"].as_str(),
            letter.subject.as_deref(),
            "{name}: subject"
        );
        assert!(!field(entry, "id").is_empty(), "{name}: an id");
    }
    assert_eq!(entries[0]["event_id"], "okta:dl1");
    assert!(
        entries[1]["event_id"].is_null(),
        "{name}: a poison body has no event"
    );
    ran += 1;

    // Show by id and by event id.
    let first_id = field(&entries[0], "id").to_owned();
    for key in [first_id.as_str(), "okta:dl1"] {
        let (code, out) = dlq(&backend, &["show", key]).await;
        assert_eq!(code, 0, "{name}: dlq show {key}: {out}");
        let shown: Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(
            shown["body"].as_str(),
            Some(readable.as_str()),
            "{name}: {out}"
        );
    }
    let (code, _) = dlq(&backend, &["show", "no-such-letter"]).await;
    assert_eq!(code, 1, "{name}: show of an unknown id");
    ran += 1;

    // Replay puts the body back unchanged and removes the letter.
    let (code, out) = dlq(&backend, &["replay", &first_id]).await;
    assert_eq!(code, 0, "{name}: dlq replay: {out}");
    assert!(out.contains("1 replayed, 0 failed"), "{name}: {out}");
    assert_eq!(
        (backend.drain_main)().await,
        vec![readable.clone()],
        "{name}: main queue"
    );
    let left = listed(&backend).await;
    assert_eq!(left.len(), 2, "{name}: {left:#?}");
    assert!(left.iter().all(|e| field(e, "id") != first_id), "{name}");
    ran += 1;

    // An unknown id fails and changes nothing.
    let (code, out) = dlq(&backend, &["replay", "no-such-letter"]).await;
    assert_eq!(code, 1, "{name}: replay of an unknown id: {out}");
    assert!(
        out.contains("could not replay no-such-letter"),
        "{name}: {out}"
    );
    assert!(
        (backend.drain_main)().await.is_empty(),
        "{name}: main queue"
    );
    assert_eq!(listed(&backend).await.len(), 2, "{name}");
    ran += 1;

    // Replay --all leaves none.
    let (code, out) = dlq(&backend, &["replay", "--all"]).await;
    assert_eq!(code, 0, "{name}: dlq replay --all: {out}");
    assert!(out.contains("2 replayed, 0 failed"), "{name}: {out}");
    let back: BTreeSet<String> = (backend.drain_main)().await.into_iter().collect();
    assert_eq!(
        back,
        BTreeSet::from([poison, escaped]),
        "{name}: main queue"
    );
    assert!(listed(&backend).await.is_empty(), "{name}: letters left");
    ran += 1;

    assert_eq!(ran, CASES.len());
    ran
}
