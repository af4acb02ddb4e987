//! The in-memory store (tests, one process) and the table the file store
//! keeps in memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{CLAIM_TIMEOUT, Claim, DEFAULT_TTL, IdempotencyStore, StoreError, now_secs};
use crate::event::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    Claimed { until: u64 },
    Done { until: u64 },
}

#[derive(Debug)]
pub(super) struct Table {
    pub(super) entries: HashMap<String, Entry>,
    /// Watermark key → (event time in ms, expiry in epoch seconds).
    pub(super) marks: HashMap<String, (i64, u64)>,
    ttl: Duration,
    /// How long a claim without an outcome blocks others.
    pub(super) claim_timeout: Duration,
    /// When (epoch seconds) expired entries are next dropped (see
    /// [`Table::tick`]).
    next_expiry: u64,
}

impl Table {
    pub(super) fn new(ttl: Duration) -> Self {
        let mut table = Self {
            entries: HashMap::new(),
            marks: HashMap::new(),
            ttl,
            claim_timeout: CLAIM_TIMEOUT,
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

    pub(super) fn watermark(&self, key: &str, now: u64) -> Option<i64> {
        self.marks
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(at, _)| *at)
    }

    /// Keeps the newer time; answers the expiry written, or `None` when the
    /// stored time was already newer.
    pub(super) fn set_watermark(&mut self, key: &str, at_ms: i64, now: u64) -> Option<u64> {
        self.tick(now);
        if self.watermark(key, now).is_some_and(|old| old >= at_ms) {
            return None;
        }
        let until = now + self.ttl.as_secs();
        self.marks.insert(key.to_owned(), (at_ms, until));
        Some(until)
    }

    pub(super) fn claim(&mut self, key: &str, now: u64) -> Claim {
        self.tick(now);
        match self.entries.get(key) {
            Some(Entry::Done { until }) if *until > now => Claim::Done,
            Some(Entry::Claimed { until }) if *until > now => Claim::InProgress,
            _ => {
                self.entries.insert(
                    key.to_owned(),
                    Entry::Claimed {
                        until: now + self.claim_timeout.as_secs(),
                    },
                );
                Claim::New
            }
        }
    }

    pub(super) fn complete(&mut self, key: &str, now: u64) -> u64 {
        self.tick(now);
        let until = now + self.ttl.as_secs();
        self.entries.insert(key.to_owned(), Entry::Done { until });
        until
    }

    pub(super) fn release(&mut self, key: &str) {
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

    /// How long a claim without an outcome blocks others (default
    /// `CLAIM_TIMEOUT`; tests shorten it).
    #[must_use]
    pub fn with_claim_timeout(self, timeout: Duration) -> Self {
        self.table().claim_timeout = timeout;
        self
    }

    pub(super) fn table(&self) -> std::sync::MutexGuard<'_, Table> {
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
}
