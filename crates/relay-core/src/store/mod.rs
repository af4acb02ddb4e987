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

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::event::EventId;

pub mod claim;
mod file;
mod memory;

pub use claim::{Cas, CasStore, Cond, MemoryCas, Record, Slot, Versioned};

pub use file::{AppliedDecoded, AppliedRecord, FileStore, decode_applied_log};
pub use memory::MemoryStore;

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

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
