//! The embedded durable queue of `idp-duo-relay serve` (`RELAY_MODE=queue`):
//! the same guarantees as the cloud queues on one machine, no service to run.
//!
//! - **Durable:** an accepted delivery is appended to a journal and fsync'd
//!   before the IdP gets its 200. A restart (even `kill -9`) resumes every
//!   pending message.
//! - **Ordered per subject:** a message is handed out only when it is the
//!   oldest pending one of its subject ([`QueuedEvent::ordering_key`]) and no
//!   other message of that subject is being applied — as SQS FIFO message
//!   groups do. Different subjects run in parallel.
//! - **Retries with backoff, then dead letters:** a transient failure puts the
//!   message back with an exponential delay; a permanent one, or one out of
//!   attempts, moves to dead letters with its reason. Attempts are journaled,
//!   so a message that crashes the process cannot loop forever.
//!
//! Journal (`queue.log`, one JSON object per line): `put` (seq, key, body),
//! `try` (seq), `ack` (seq), `dead` (seq, letter), `undead` (seq). It is
//! compacted when opened; a torn last line is ignored.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{
    BoxFuture, DeadLetter, DeadLetterEntry, DeadLetterStore, Disposition, EventQueue, QueueError,
    QueuePolicy, QueuedEvent,
};
use crate::apply::Directory;
use crate::pipeline::Relay;
use crate::store::IdempotencyStore;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Record {
    Put { seq: u64, key: String, body: String },
    Try { seq: u64 },
    Ack { seq: u64 },
    Dead { seq: u64, letter: DeadLetter },
    Undead { seq: u64 },
}

#[derive(Debug)]
struct Item {
    key: String,
    body: String,
    attempts: u32,
    not_before: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    next_seq: u64,
    pending: BTreeMap<u64, Item>,
    dead: BTreeMap<u64, DeadLetter>,
    in_flight: HashSet<String>,
}

/// Counts for `/healthz` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Waiting or being applied.
    pub pending: usize,
    pub in_flight: usize,
    pub dead_letters: usize,
}

/// One message handed to a worker.
#[derive(Debug, Clone)]
pub struct Lease {
    pub seq: u64,
    pub body: String,
    /// This delivery's attempt number, from 1.
    pub attempt: u32,
    key: String,
}

/// The embedded queue. Cheap to share behind an `Arc`. One process at a
/// time: [`DiskQueue::open`] takes an exclusive lock on `queue.lock` (held
/// until drop), so `dlq replay` cannot write beside a running `serve`.
#[derive(Debug)]
pub struct DiskQueue {
    state: Mutex<State>,
    journal: Mutex<File>,
    notify: Notify,
    _lock: File,
}

/// The dead letters of a queue directory, read without taking the lock
/// (what `dlq list|show` use while `serve` runs).
#[derive(Debug)]
pub struct DeadLettersSnapshot(Vec<DeadLetterEntry>);

impl DeadLettersSnapshot {
    /// Fails when `dir` does not exist: an empty listing there would hide
    /// a wrong `RELAY_STATE_DIR`.
    pub fn read(dir: impl AsRef<Path>) -> Result<Self, QueueError> {
        require_queue_dir(dir.as_ref())?;
        let path = dir.as_ref().join("queue.log");
        let state = if path.exists() {
            load(&path)?
        } else {
            State::default()
        };
        Ok(Self(
            state
                .dead
                .into_iter()
                .map(|(seq, letter)| DeadLetterEntry {
                    id: seq.to_string(),
                    letter,
                })
                .collect(),
        ))
    }
}

impl DeadLetterStore for DeadLettersSnapshot {
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetterEntry>, QueueError>> {
        let entries = self.0.iter().take(limit).cloned().collect();
        Box::pin(async move { Ok(entries) })
    }

    fn replay<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async {
            Err(QueueError::Io(
                "the queue is in use by a running `idp-duo-relay serve`: stop it, replay, start it again (pending work resumes)".into(),
            ))
        })
    }
}

/// An error naming `dir` unless it is a directory (a queue that was never
/// opened there).
fn require_queue_dir(dir: &Path) -> Result<(), QueueError> {
    if dir.is_dir() {
        Ok(())
    } else {
        Err(QueueError::Io(format!(
            "there is no queue in {}: nothing was ever queued there (is RELAY_STATE_DIR right?)",
            dir.display()
        )))
    }
}

fn load(path: &Path) -> Result<State, QueueError> {
    let mut state = State::default();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        // A torn last line (a crash mid-write) is not a record.
        let Ok(record) = serde_json::from_str::<Record>(&line) else {
            continue;
        };
        state.next_seq = state.next_seq.max(record_seq(&record) + 1);
        match record {
            Record::Put { seq, key, body } => {
                state.pending.insert(
                    seq,
                    Item {
                        key,
                        body,
                        attempts: 0,
                        not_before: None,
                    },
                );
            }
            Record::Try { seq } => {
                if let Some(item) = state.pending.get_mut(&seq) {
                    item.attempts += 1;
                }
            }
            Record::Ack { seq } => {
                state.pending.remove(&seq);
            }
            Record::Dead { seq, letter } => {
                state.pending.remove(&seq);
                state.dead.insert(seq, letter);
            }
            Record::Undead { seq } => {
                state.dead.remove(&seq);
            }
        }
    }
    Ok(state)
}

impl DiskQueue {
    /// Opens (or creates) the queue in `dir`, locks it, and compacts its
    /// journal. Fails if another process holds the lock.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, QueueError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("queue.lock"))?;
        if lock.try_lock().is_err() {
            return Err(QueueError::Io(format!(
                "{} is in use by another process (a running `idp-duo-relay serve`?)",
                dir.display()
            )));
        }
        let path = dir.join("queue.log");
        let state = if path.exists() {
            load(&path)?
        } else {
            State::default()
        };
        // Compact: rewrite what is live, then append from there.
        let tmp = path.with_extension("tmp");
        {
            let mut out = std::io::BufWriter::new(File::create(&tmp)?);
            for (seq, item) in &state.pending {
                write_record(
                    &mut out,
                    &Record::Put {
                        seq: *seq,
                        key: item.key.clone(),
                        body: item.body.clone(),
                    },
                )?;
                for _ in 0..item.attempts {
                    write_record(&mut out, &Record::Try { seq: *seq })?;
                }
            }
            for (seq, letter) in &state.dead {
                write_record(
                    &mut out,
                    &Record::Dead {
                        seq: *seq,
                        letter: letter.clone(),
                    },
                )?;
            }
            out.into_inner()
                .map_err(|e| QueueError::Io(e.to_string()))?
                .sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let journal = OpenOptions::new().append(true).open(&path)?;
        Ok(Self {
            state: Mutex::new(state),
            journal: Mutex::new(journal),
            notify: Notify::new(),
            _lock: lock,
        })
    }

    /// [`Self::open`] on a queue that must already exist (`dlq replay`):
    /// a missing directory is an error, not a new, empty queue.
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Self, QueueError> {
        require_queue_dir(dir.as_ref())?;
        Self::open(dir)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn append(&self, records: &[Record], sync: bool) -> Result<(), QueueError> {
        let mut buf = Vec::new();
        for r in records {
            write_record(&mut buf, r)?;
        }
        let mut file = self
            .journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        file.write_all(&buf)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }

    pub fn stats(&self) -> QueueStats {
        let s = self.state();
        QueueStats {
            pending: s.pending.len(),
            in_flight: s.in_flight.len(),
            dead_letters: s.dead.len(),
        }
    }

    /// The next message a worker may apply: the oldest pending message of a
    /// subject that has nothing in flight and whose backoff has passed.
    /// `None` when nothing is ready ([`Self::lease_or_wait`] waits for
    /// that).
    pub fn lease(&self) -> Option<Lease> {
        let now = Instant::now();
        let mut s = self.state();
        let seq = {
            let mut seen = HashSet::new();
            let mut found = None;
            for (seq, item) in &s.pending {
                if !seen.insert(item.key.as_str()) {
                    continue; // not the head of its subject
                }
                if s.in_flight.contains(&item.key) || item.not_before.is_some_and(|t| t > now) {
                    continue;
                }
                found = Some(*seq);
                break;
            }
            found?
        };
        let item = s.pending.get_mut(&seq)?;
        item.attempts += 1;
        let lease = Lease {
            seq,
            body: item.body.clone(),
            attempt: item.attempts,
            key: item.key.clone(),
        };
        s.in_flight.insert(lease.key.clone());
        drop(s);
        // Not fsync'd: losing a `try` only gives a message one more attempt.
        if let Err(e) = self.append(&[Record::Try { seq }], false) {
            tracing::error!(error = %e, "queue journal write failed");
        }
        Some(lease)
    }

    /// When the earliest backed-off message becomes ready, if any waits.
    fn next_due(&self) -> Option<Instant> {
        self.state()
            .pending
            .values()
            .filter_map(|i| i.not_before)
            .min()
    }

    /// Records the worker's decision for a leased message.
    pub fn settle(&self, lease: &Lease, disposition: &Disposition, policy: &QueuePolicy) {
        let mut s = self.state();
        s.in_flight.remove(&lease.key);
        let record = match disposition {
            Disposition::Done => {
                s.pending.remove(&lease.seq);
                Record::Ack { seq: lease.seq }
            }
            Disposition::Retry { .. } => {
                if let Some(item) = s.pending.get_mut(&lease.seq) {
                    item.not_before = Some(Instant::now() + policy.backoff(lease.attempt));
                }
                drop(s);
                self.notify.notify_waiters();
                return;
            }
            Disposition::DeadLetter { reason } => {
                s.pending.remove(&lease.seq);
                let letter = DeadLetter::new(&lease.body, reason, lease.attempt);
                s.dead.insert(lease.seq, letter.clone());
                Record::Dead {
                    seq: lease.seq,
                    letter,
                }
            }
        };
        drop(s);
        if let Err(e) = self.append(&[record], true) {
            tracing::error!(error = %e, "queue journal write failed");
        }
        // The subject's next message may now be ready.
        self.notify.notify_waiters();
    }

    /// The next ready message; when there is none, waits until one may be
    /// ready (a put, a settle, a backoff expiring) or at most `max`, and
    /// answers `None`. The wake-up is registered before the queue is looked
    /// at, so a settle between the look and the wait is not missed.
    pub async fn lease_or_wait(&self, max: Duration) -> Option<Lease> {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(lease) = self.lease() {
            return Some(lease);
        }
        let wait = match self.next_due() {
            Some(due) => due.saturating_duration_since(Instant::now()).min(max),
            None => max,
        };
        let _ = tokio::time::timeout(wait, notified).await;
        None
    }

    fn put(&self, bodies: Vec<(String, String)>) -> Result<(), QueueError> {
        let mut s = self.state();
        let mut records = Vec::with_capacity(bodies.len());
        for (key, body) in bodies {
            let seq = s.next_seq;
            s.next_seq += 1;
            records.push(Record::Put { seq, key, body });
        }
        // Journal first, under the state lock, so seqs hit the file in order
        // and nothing is visible to workers before it is durable.
        self.append(&records, true)?;
        for r in records {
            if let Record::Put { seq, key, body } = r {
                s.pending.insert(
                    seq,
                    Item {
                        key,
                        body,
                        attempts: 0,
                        not_before: None,
                    },
                );
            }
        }
        drop(s);
        self.notify.notify_waiters();
        Ok(())
    }
}

impl EventQueue for DiskQueue {
    fn enqueue<'a>(&'a self, events: &'a [QueuedEvent]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let bodies = events
                .iter()
                .map(|m| (m.ordering_key(), m.to_json()))
                .collect();
            self.put(bodies)
        })
    }
}

impl DeadLetterStore for DiskQueue {
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetterEntry>, QueueError>> {
        let entries = self
            .state()
            .dead
            .iter()
            .take(limit)
            .map(|(seq, letter)| DeadLetterEntry {
                id: seq.to_string(),
                letter: letter.clone(),
            })
            .collect();
        Box::pin(async move { Ok(entries) })
    }

    fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let seq: u64 = id
                .parse()
                .map_err(|_| QueueError::NotFound(id.to_owned()))?;
            let mut s = self.state();
            let letter = s
                .dead
                .get(&seq)
                .cloned()
                .ok_or_else(|| QueueError::NotFound(id.to_owned()))?;
            let key = QueuedEvent::from_json(&letter.body)
                .map(|m| m.ordering_key())
                .unwrap_or_else(|_| format!("poison:{seq}"));
            let new_seq = s.next_seq;
            s.next_seq += 1;
            self.append(
                &[
                    Record::Undead { seq },
                    Record::Put {
                        seq: new_seq,
                        key: key.clone(),
                        body: letter.body.clone(),
                    },
                ],
                true,
            )?;
            s.dead.remove(&seq);
            s.pending.insert(
                new_seq,
                Item {
                    key,
                    body: letter.body,
                    attempts: 0,
                    not_before: None,
                },
            );
            drop(s);
            self.notify.notify_waiters();
            Ok(())
        })
    }
}

/// Runs `concurrency` workers that apply the queue's messages through
/// `relay` until `shutdown` resolves; a worker finishes the message it holds
/// before it stops (what is left stays on disk for the next start).
pub async fn run_workers<D, S>(
    queue: Arc<DiskQueue>,
    relay: Arc<Relay<D, S>>,
    policy: QueuePolicy,
    concurrency: usize,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (queue, relay, mut stopped) = (queue.clone(), relay.clone(), stop.subscribe());
        workers.spawn(async move {
            while !*stopped.borrow() {
                // Wait for the Duo pace before taking a message, not while
                // holding one: a worker waiting for a token must not keep
                // its subject (and the events queued behind it) from others.
                if let Some(pacer) = relay.directory().duo_client().and_then(|c| c.pacer()) {
                    tokio::select! {
                        () = pacer.ready() => {}
                        _ = stopped.changed() => continue,
                    }
                }
                let lease = tokio::select! {
                    lease = queue.lease_or_wait(Duration::from_secs(1)) => lease,
                    _ = stopped.changed() => None,
                };
                let Some(lease) = lease else { continue };
                let (_, disposition) = relay.process(&lease.body, lease.attempt, &policy).await;
                queue.settle(&lease, &disposition, &policy);
            }
        });
    }
    shutdown.await;
    let _ = stop.send(true);
    while workers.join_next().await.is_some() {}
}

fn record_seq(r: &Record) -> u64 {
    match r {
        Record::Put { seq, .. }
        | Record::Try { seq }
        | Record::Ack { seq }
        | Record::Dead { seq, .. }
        | Record::Undead { seq } => *seq,
    }
}

fn write_record(out: &mut impl Write, record: &Record) -> Result<(), QueueError> {
    let line = serde_json::to_string(record).map_err(|e| QueueError::Io(e.to_string()))?;
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Change, EventId, IdpEvent, Source, UserRef, UserState};

    fn msg(id: &str, user: &str) -> QueuedEvent {
        QueuedEvent::new(IdpEvent {
            id: EventId::new(Source::Okta, id),
            source: Source::Okta,
            event_type: "user.lifecycle.suspend".into(),
            occurred_at: None,
            change: Change::UserStateChanged {
                user: UserRef {
                    idp_id: Some(user.into()),
                    login: None,
                },
                state: UserState::Disabled,
            },
        })
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("relay-q-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn policy() -> QueuePolicy {
        QueuePolicy {
            max_attempts: 3,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn one_subject_at_a_time_in_order_others_in_parallel() {
        let d = dir("order");
        let q = DiskQueue::open(&d).unwrap();
        q.enqueue(&[msg("1", "a"), msg("2", "a"), msg("3", "b")])
            .await
            .unwrap();
        let first = q.lease().unwrap();
        assert!(first.body.contains("okta:1"));
        // a's second message waits for the first; b's runs meanwhile.
        let second = q.lease().unwrap();
        assert!(second.body.contains("okta:3"));
        assert!(q.lease().is_none());
        q.settle(&first, &Disposition::Done, &policy());
        let third = q.lease().unwrap();
        assert!(third.body.contains("okta:2"));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn survives_a_crash_and_dead_letters_replay() {
        let d = dir("crash");
        {
            let q = DiskQueue::open(&d).unwrap();
            q.enqueue(&[msg("1", "a"), msg("2", "b"), msg("3", "c")])
                .await
                .unwrap();
            let l1 = q.lease().unwrap();
            q.settle(&l1, &Disposition::Done, &policy());
            let l2 = q.lease().unwrap();
            q.settle(
                &l2,
                &Disposition::DeadLetter {
                    reason: "permanent failure: 40002".into(),
                },
                &policy(),
            );
            // Message 3 is leased, then the process "dies".
            let _l3 = q.lease().unwrap();
        }
        // A torn last line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.join("queue.log"))
            .unwrap();
        write!(f, "{{\"op\":\"ack\",\"se").unwrap();
        drop(f);
        let q = DiskQueue::open(&d).unwrap();
        assert_eq!(
            q.stats(),
            QueueStats {
                pending: 1,
                in_flight: 0,
                dead_letters: 1
            }
        );
        let again = q.lease().unwrap();
        assert!(again.body.contains("okta:3"));
        assert_eq!(again.attempt, 2, "the crashed attempt counts");
        let dead = q.list(10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].letter.reason, "permanent failure: 40002");
        assert_eq!(dead[0].letter.event_id.as_deref(), Some("okta:2"));
        q.replay(&dead[0].id).await.unwrap();
        assert!(q.replay(&dead[0].id).await.is_err(), "replayed once only");
        assert_eq!(q.stats().dead_letters, 0);
        assert_eq!(q.stats().pending, 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn dlq_command_lists_shows_and_replays() {
        let d = dir("cmd");
        let q = DiskQueue::open(&d).unwrap();
        q.put(vec![("poison:x".into(), "not json".into())]).unwrap();
        let lease = q.lease().unwrap();
        q.settle(
            &lease,
            &Disposition::DeadLetter {
                reason: "unreadable queue message".into(),
            },
            &policy(),
        );
        let run = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            let q = &q;
            async move {
                let mut out = Vec::new();
                let code = crate::queue::dlq_command(&args, q, &mut out).await;
                (code, String::from_utf8(out).unwrap())
            }
        };
        let (code, out) = run(&["list"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("unreadable queue message"), "{out}");
        assert!(out.contains("1 dead letter(s)"), "{out}");
        let (code, out) = run(&["show", &lease.seq.to_string()]).await;
        assert_eq!(code, 0);
        assert!(out.contains("\"body\": \"not json\""), "{out}");
        assert_eq!(run(&["show", "999"]).await.0, 1);
        assert_eq!(run(&["frobnicate"]).await.0, 2);
        let (code, out) = run(&["replay", "--all"]).await;
        assert_eq!(code, 0, "{out}");
        assert_eq!(q.stats().pending, 1);
        let _ = std::fs::remove_dir_all(&d);
    }
}
