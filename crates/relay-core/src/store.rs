//! The idempotency store: an event already applied is not applied again.
//!
//! Protocol: [`IdempotencyStore::claim`] before applying (atomic: two
//! concurrent deliveries of one event cannot both win), then
//! [`IdempotencyStore::complete`] when the outcome is final (applied, skipped
//! or permanently failed), or [`IdempotencyStore::release`] after a transient
//! failure so the IdP's retry can try again. Entries expire after a TTL
//! (IdPs retry within minutes to days; a week is plenty).
//!
//! Two implementations here: in memory (tests, one process) and an embedded
//! file for `serve` (survives restarts). Cloud entry crates bring their own
//! (DynamoDB, Table Storage, Firestore).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::event::EventId;

/// The default time an applied event is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a claim without an outcome blocks others (a crashed worker's
/// claim must not block the event forever).
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(120);

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody has this event: apply it.
    New,
    /// It was applied (or finally refused) before: skip it.
    Done,
    /// Someone else is applying it right now.
    InProgress,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("idempotency store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A cloud store's backend refused or could not be reached (the
    /// message names the operation and the service's error, never a value).
    #[error("idempotency store backend: {0}")]
    Backend(String),
}

/// Remembers which events were applied.
pub trait IdempotencyStore: Send + Sync {
    fn claim(&self, key: &EventId) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    fn complete(&self, key: &EventId) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn release(&self, key: &EventId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The event time (ms since the epoch) of the newest event applied to
    /// one aspect of a subject (see [`crate::order`]), if any is remembered.
    /// Required, not defaulted: a store that silently remembered nothing
    /// would switch stale-event protection off.
    fn watermark(&self, key: &str) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;

    /// Records that an event of time `at_ms` was applied to `key` (keeps the
    /// newer of the stored and the given time).
    fn set_watermark(
        &self,
        key: &str,
        at_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Claimed { until: u64 },
    Done { until: u64 },
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug)]
struct Table {
    entries: HashMap<String, Entry>,
    /// Watermark key → (event time in ms, expiry in epoch seconds).
    marks: HashMap<String, (i64, u64)>,
    ttl: Duration,
    /// When (epoch seconds) expired entries are next dropped (see
    /// [`Table::tick`]).
    next_expiry: u64,
}

impl Table {
    fn new(ttl: Duration) -> Self {
        let mut table = Self {
            entries: HashMap::new(),
            marks: HashMap::new(),
            ttl,
            next_expiry: 0,
        };
        table.next_expiry = now_secs().saturating_add(table.expiry_interval());
        table
    }

    /// How often expired entries are dropped while running: a quarter of
    /// the TTL, between 1 s and 60 s. Each sweep is O(entries), so the
    /// cost per operation stays constant while memory holds at most about
    /// one TTL (plus an interval) of events.
    fn expiry_interval(&self) -> u64 {
        (self.ttl.as_secs() / 4).clamp(1, 60)
    }

    /// Drops expired entries when a sweep is due; every operation calls it.
    fn tick(&mut self, now: u64) {
        if now >= self.next_expiry {
            self.expire(now);
            self.next_expiry = now.saturating_add(self.expiry_interval());
        }
    }

    fn watermark(&self, key: &str, now: u64) -> Option<i64> {
        self.marks
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(at, _)| *at)
    }

    /// Keeps the newer time; answers the expiry written, or `None` when the
    /// stored time was already newer.
    fn set_watermark(&mut self, key: &str, at_ms: i64, now: u64) -> Option<u64> {
        self.tick(now);
        if self.watermark(key, now).is_some_and(|old| old >= at_ms) {
            return None;
        }
        let until = now + self.ttl.as_secs();
        self.marks.insert(key.to_owned(), (at_ms, until));
        Some(until)
    }

    fn claim(&mut self, key: &str, now: u64) -> Claim {
        self.tick(now);
        match self.entries.get(key) {
            Some(Entry::Done { until }) if *until > now => Claim::Done,
            Some(Entry::Claimed { until }) if *until > now => Claim::InProgress,
            _ => {
                self.entries.insert(
                    key.to_owned(),
                    Entry::Claimed {
                        until: now + CLAIM_TIMEOUT.as_secs(),
                    },
                );
                Claim::New
            }
        }
    }

    fn complete(&mut self, key: &str, now: u64) -> u64 {
        self.tick(now);
        let until = now + self.ttl.as_secs();
        self.entries.insert(key.to_owned(), Entry::Done { until });
        until
    }

    fn release(&mut self, key: &str) {
        if matches!(self.entries.get(key), Some(Entry::Claimed { .. })) {
            self.entries.remove(key);
        }
    }

    fn expire(&mut self, now: u64) {
        self.entries.retain(|_, e| match e {
            Entry::Claimed { until } | Entry::Done { until } => *until > now,
        });
        self.marks.retain(|_, (_, until)| *until > now);
    }
}

/// In-memory store for tests and single-process runs.
#[derive(Debug)]
pub struct MemoryStore {
    table: Mutex<Table>,
}

impl MemoryStore {
    pub fn new(ttl: Duration) -> Self {
        Self {
            table: Mutex::new(Table::new(ttl)),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(DEFAULT_TTL)
    }
}

impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        Ok(self.table().claim(key.as_str(), now_secs()))
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        self.table().complete(key.as_str(), now_secs());
        Ok(())
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        self.table().release(key.as_str());
        Ok(())
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.table().watermark(key, now_secs()))
    }

    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        self.table().set_watermark(key, at_ms, now_secs());
        Ok(())
    }
}

/// An embedded on-disk store: completed keys are appended to a file (one
/// `<expiry-epoch> <key>` line each, fsync'd; watermarks as
/// `W <expiry-epoch> <event-time-ms> <key>`) and loaded at start, so a
/// restarted `serve` still knows what it applied. Claims live in memory: a
/// crash mid-apply releases them, which is right because the IdP retries and
/// every operation is idempotent. The file is compacted (expired lines
/// dropped) when it is opened.
#[derive(Debug)]
pub struct FileStore {
    table: Mutex<Table>,
    file: Mutex<File>,
    path: PathBuf,
}

impl FileStore {
    pub fn open(path: impl AsRef<Path>, ttl: Duration) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let now = now_secs();
        let mut table = Table::new(ttl);
        if path.exists() {
            for line in BufReader::new(File::open(&path)?).lines() {
                let line = line?;
                if let Some(rest) = line.strip_prefix("W ") {
                    let mut parts = rest.splitn(3, ' ');
                    if let (Some(until), Some(at), Some(key)) =
                        (parts.next(), parts.next(), parts.next())
                        && let (Ok(until), Ok(at)) = (until.parse::<u64>(), at.parse::<i64>())
                        && until > now
                        && !key.is_empty()
                    {
                        let newer = table.marks.get(key).is_none_or(|(old, _)| *old < at);
                        if newer {
                            table.marks.insert(key.to_owned(), (at, until));
                        }
                    }
                    continue;
                }
                // A torn last line after a crash is ignored, not fatal.
                if let Some((until, key)) = line.split_once(' ')
                    && let Ok(until) = until.parse::<u64>()
                    && until > now
                    && !key.is_empty()
                {
                    table.entries.insert(key.to_owned(), Entry::Done { until });
                }
            }
        }
        // Compact: rewrite only live entries, then append from there.
        let tmp = path.with_extension("tmp");
        {
            let mut out = File::create(&tmp)?;
            for (key, entry) in &table.entries {
                if let Entry::Done { until } = entry {
                    writeln!(out, "{until} {key}")?;
                }
            }
            for (key, (at, until)) in &table.marks {
                writeln!(out, "W {until} {at} {key}")?;
            }
            out.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Self {
            table: Mutex::new(table),
            file: Mutex::new(file),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl IdempotencyStore for FileStore {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        Ok(self.table().claim(key.as_str(), now_secs()))
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        // Event ids never contain a newline (parsers take them from JSON
        // strings, but be strict: a newline would split the record).
        let clean: String = key
            .as_str()
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect();
        let until = self.table().complete(key.as_str(), now_secs());
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writeln!(file, "{until} {clean}")?;
        file.sync_data()?;
        Ok(())
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        self.table().release(key.as_str());
        Ok(())
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.table().watermark(key, now_secs()))
    }

    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        let clean: String = key.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        let Some(until) = self.table().set_watermark(key, at_ms, now_secs()) else {
            return Ok(());
        };
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writeln!(file, "W {until} {at_ms} {clean}")?;
        file.sync_data()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;

    fn id(s: &str) -> EventId {
        EventId::new(Source::Okta, s)
    }

    #[tokio::test]
    async fn claim_complete_release() {
        let store = MemoryStore::default();
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::New);
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::InProgress);
        store.release(&id("a")).await.unwrap();
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::New);
        store.complete(&id("a")).await.unwrap();
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Done);
        // Release after completion does not forget the outcome.
        store.release(&id("a")).await.unwrap();
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Done);
    }

    #[tokio::test]
    async fn zero_ttl_forgets_at_once() {
        let store = MemoryStore::new(Duration::ZERO);
        assert_eq!(store.claim(&id("b")).await.unwrap(), Claim::New);
        store.complete(&id("b")).await.unwrap();
        assert_eq!(store.claim(&id("b")).await.unwrap(), Claim::New);
    }

    /// Regression (issue 13, item 7): the in-memory table forgot nothing
    /// while running (the memory store swept only past 100,000 entries, the
    /// file store never), so a long-running `serve` grew without bound.
    /// Entries and watermarks now go once their TTL has passed.
    #[tokio::test]
    async fn regression_issue_13_tables_expire_while_running() {
        let dir = std::env::temp_dir().join(format!("relay-expiry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ttl = Duration::from_secs(1);
        let memory = MemoryStore::new(ttl);
        let file = FileStore::open(dir.join("applied.log"), ttl).unwrap();
        for i in 0..50 {
            let key = id(&format!("old-{i}"));
            assert_eq!(memory.claim(&key).await.unwrap(), Claim::New);
            memory.complete(&key).await.unwrap();
            assert_eq!(file.claim(&key).await.unwrap(), Claim::New);
            file.complete(&key).await.unwrap();
        }
        memory.set_watermark("user:okta:1/state", 5).await.unwrap();
        file.set_watermark("user:okta:1/state", 5).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // Any operation sweeps once the TTL (and the sweep interval) passed.
        assert_eq!(memory.claim(&id("fresh")).await.unwrap(), Claim::New);
        assert_eq!(file.claim(&id("fresh")).await.unwrap(), Claim::New);
        for table in [memory.table(), file.table()] {
            assert_eq!(table.entries.len(), 1, "only the fresh claim is left");
            assert!(table.marks.is_empty(), "the watermark expired too");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn file_store_survives_a_restart_and_tolerates_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("relay-store-{}", std::process::id()));
        let path = dir.join("applied.log");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
            assert_eq!(store.claim(&id("x")).await.unwrap(), Claim::New);
            store.complete(&id("x")).await.unwrap();
            assert_eq!(store.claim(&id("y")).await.unwrap(), Claim::New);
            // y is never completed: a crash mid-apply.
        }
        // A torn write at the end of the file.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "17000").unwrap();
        drop(f);
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert_eq!(store.claim(&id("x")).await.unwrap(), Claim::Done);
        assert_eq!(store.claim(&id("y")).await.unwrap(), Claim::New);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn watermarks_keep_the_newest_time_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("relay-marks-{}", std::process::id()));
        let path = dir.join("applied.log");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
            assert_eq!(store.watermark("user:okta:1/state").await.unwrap(), None);
            store
                .set_watermark("user:okta:1/state", 2_000)
                .await
                .unwrap();
            store
                .set_watermark("user:okta:1/state", 1_000)
                .await
                .unwrap();
            assert_eq!(
                store.watermark("user:okta:1/state").await.unwrap(),
                Some(2_000)
            );
            store
                .set_watermark("user:okta:1/member/group:okta:a b", 5)
                .await
                .unwrap();
        }
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert_eq!(
            store.watermark("user:okta:1/state").await.unwrap(),
            Some(2_000)
        );
        assert_eq!(
            store
                .watermark("user:okta:1/member/group:okta:a b")
                .await
                .unwrap(),
            Some(5)
        );
        let memory = MemoryStore::default();
        memory.set_watermark("k", 7).await.unwrap();
        memory.set_watermark("k", 3).await.unwrap();
        assert_eq!(memory.watermark("k").await.unwrap(), Some(7));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
