//! The one claim + watermark protocol of the cloud stores, written once over
//! a small compare-and-swap trait ([`Cas`]) that each cloud store adapts
//! (DynamoDB condition expressions, Table Storage `If-Match` etags,
//! Firestore `currentDocument` preconditions).
//!
//! What a slot ([`Slot`]) holds is a [`Record`]: an event's claim or its
//! outcome, or a watermark. Every record has an expiry; an expired record
//! counts as absent (the clouds delete expired data lazily or never).
//!
//! - **claim**: `put_if_absent` a `Claimed` record → `New`. On a conflict
//!   the record found decides: live `Done` → `Done`; live `Claimed` →
//!   `InProgress` (or `New` when it is this claim's own, written by a retry
//!   whose first answer was lost); expired → `replace_if_version` with the
//!   version read, so of two takers exactly one wins.
//! - **complete**: `put` a `Done` record (unconditional).
//! - **release**: `delete_if_version` with the version of this process's
//!   own claim (or, after a restart, of the live claim read): a claim taken
//!   over or completed meanwhile is never removed.
//! - **watermark**: `get`; **set_watermark**: keep the newer time with
//!   `put_if_absent` / `replace_if_version`.
//!
//! **The give-up rule.** A lost race (a conditional write refused because
//! the record changed or vanished since it was read) starts a fresh round:
//! the record is read again and decided again. After [`ROUNDS`] lost rounds
//! ([`MARK_ROUNDS`] for a watermark)
//! the answer is `Err(StoreError::Backend)`: the pipeline treats it as
//! transient (503 to the IdP, or a queue retry), so this delivery is tried
//! again later. `Ok(Claim::InProgress)` would be a guess — in sync mode the
//! pipeline acknowledges an `InProgress` delivery (200) and relies on the
//! other delivery, but a record that keeps vanishing says nobody holds it.
//! Between rounds the protocol waits a few random milliseconds so racers
//! spread out.
//!
//! A conditional write that fails with an error (a timeout, say) may still
//! have landed: the claim then reads the record back, and when it holds this
//! claim's token the claim is `New` (the write landed), else the error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{CLAIM_TIMEOUT, Claim, DEFAULT_TTL, IdempotencyStore, StoreError, now_secs};
use crate::event::EventId;

/// Lost races after which a claim gives up with an error (see the module
/// docs).
pub const ROUNDS: usize = 3;

/// Lost races after which a watermark write gives up with an error: each
/// lost round means another writer stored a time meanwhile, and several
/// instances may apply events of one subject at once.
pub const MARK_ROUNDS: usize = 5;

/// This process's own claims' versions are forgotten beyond this many (a
/// request dropped between claim and outcome never comes back for its
/// version).
const MAX_HELD: usize = 10_000;

/// Which record: an event's claim/outcome, a watermark, or a catch-up
/// checkpoint. Adapters map each to a key of their own (and hash what is
/// too long, see [`hashed_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot<'a> {
    Event(&'a EventId),
    Mark(&'a str),
    /// The catch-up checkpoint of one log source (`okta`, `auth0`; see
    /// `crate::catch_up::checkpoint::CasCheckpoints`).
    Checkpoint(&'a str),
}

/// What a slot holds. Times are epoch seconds (`until`) and, for watermarks,
/// the event time in ms (`at_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// Someone applies the event until `until`; `token` tells one claim
    /// from another.
    Claimed { until: u64, token: String },
    /// The event was applied (or finally refused).
    Done { until: u64 },
    /// An event of time `at_ms` was applied to the watermark's subject.
    Mark { at_ms: i64, until: u64 },
    /// A catch-up checkpoint: `body` is its JSON, opaque to the adapters
    /// (an Okta cursor is a URL of a few hundred bytes).
    Checkpoint { body: String, until: u64 },
}

impl Record {
    pub fn until(&self) -> u64 {
        match self {
            Self::Claimed { until, .. }
            | Self::Done { until }
            | Self::Mark { until, .. }
            | Self::Checkpoint { until, .. } => *until,
        }
    }
}

/// A record as stored, with the version a conditional write names (an
/// etag, an update time, a version attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub record: Record,
    pub version: String,
}

/// The answer to a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// Written; the new version when the backend tells it.
    Written(Option<String>),
    /// Refused: the slot is not as the condition said (for `put_if_absent`:
    /// it holds a record, given when the backend returns it).
    Conflict(Option<Versioned>),
}

/// The compare-and-swap primitives a store backend provides. Each call is
/// one request; none retries on a conflict (the protocol decides).
pub trait Cas: Send + Sync {
    /// The record in `slot`, read consistently; `None` when there is none.
    fn get(
        &self,
        slot: Slot<'_>,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Writes `record` unless the slot holds one (expired or not).
    fn put_if_absent(
        &self,
        slot: Slot<'_>,
        record: &Record,
    ) -> impl Future<Output = Result<Cond, StoreError>> + Send;

    /// Replaces the record whose version is `version`; `Conflict` when it
    /// changed or vanished.
    fn replace_if_version(
        &self,
        slot: Slot<'_>,
        record: &Record,
        version: &str,
    ) -> impl Future<Output = Result<Cond, StoreError>> + Send;

    /// Writes `record` whatever the slot holds.
    fn put(
        &self,
        slot: Slot<'_>,
        record: &Record,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes the record if its version is still `version`; `false` when it
    /// changed or vanished (not an error).
    fn delete_if_version(
        &self,
        slot: Slot<'_>,
        version: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The idempotency store over any [`Cas`] backend.
#[derive(Debug)]
pub struct CasStore<C> {
    cas: C,
    ttl: Duration,
    claim_timeout: Duration,
    /// Event id → version of the claim this process holds.
    held: Mutex<HashMap<String, String>>,
}

impl<C: Cas> CasStore<C> {
    /// A store remembering outcomes for `DEFAULT_TTL`, claims for
    /// `CLAIM_TIMEOUT`.
    pub fn new(cas: C) -> Self {
        Self::with_timeouts(cas, DEFAULT_TTL, CLAIM_TIMEOUT)
    }

    pub fn with_timeouts(cas: C, ttl: Duration, claim_timeout: Duration) -> Self {
        Self {
            cas,
            ttl,
            claim_timeout,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// The backend (its own calls: group index, table name, …).
    pub fn backend(&self) -> &C {
        &self.cas
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn claim_timeout(&self) -> Duration {
        self.claim_timeout
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hold(&self, key: &EventId, version: Option<String>) {
        let mut held = self.held();
        if held.len() >= MAX_HELD {
            held.clear();
        }
        match version {
            Some(version) => {
                held.insert(key.as_str().to_owned(), version);
            }
            None => {
                held.remove(key.as_str());
            }
        }
    }

    /// How much longer an unfinished claim of `key` blocks it, if one does;
    /// `None` when the event is not claimed (done, released, expired).
    pub async fn claim_held(&self, key: &EventId) -> Result<Option<Duration>, StoreError> {
        let now = now_secs();
        Ok(match self.cas.get(Slot::Event(key)).await? {
            Some(Versioned {
                record: Record::Claimed { until, .. },
                ..
            }) if until > now => Some(Duration::from_secs(until - now)),
            _ => None,
        })
    }

    /// After a claim write failed with an error: `New` when the record
    /// holds this claim's token (the write landed), else the error.
    async fn recover(
        &self,
        key: &EventId,
        token: &str,
        error: StoreError,
    ) -> Result<Claim, StoreError> {
        match self.cas.get(Slot::Event(key)).await {
            Ok(Some(Versioned {
                record: Record::Claimed { token: t, .. },
                version,
            })) if t == token => {
                self.hold(key, Some(version));
                Ok(Claim::New)
            }
            _ => Err(error),
        }
    }
}

/// A few random milliseconds, more each lost round, so racers spread out.
async fn pause(round: usize) {
    let ms = fastrand::u64(1..=5) * (round as u64 + 1);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// A claim token or a record version for backends that keep their own:
/// random enough that two never meet.
pub fn token() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

fn lost(what: &str, rounds: usize) -> StoreError {
    StoreError::Backend(format!(
        "{what}: the record kept changing under us ({rounds} lost races); retry later"
    ))
}

impl<C: Cas> IdempotencyStore for CasStore<C> {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        let slot = Slot::Event(key);
        let token = token();
        for round in 0..ROUNDS {
            if round > 0 {
                pause(round).await;
            }
            let now = now_secs();
            let claimed = Record::Claimed {
                until: now + self.claim_timeout.as_secs(),
                token: token.clone(),
            };
            let found = match self.cas.put_if_absent(slot, &claimed).await {
                Ok(Cond::Written(version)) => {
                    self.hold(key, version);
                    return Ok(Claim::New);
                }
                Ok(Cond::Conflict(found)) => found,
                Err(e) => return self.recover(key, &token, e).await,
            };
            let found = match found {
                Some(found) => Some(found),
                None => self.cas.get(slot).await?,
            };
            // Vanished since the refused write (released, or deleted by a
            // TTL): a lost race.
            let Some(found) = found else { continue };
            if found.record.until() > now {
                return match found.record {
                    Record::Done { .. } => Ok(Claim::Done),
                    Record::Claimed { token: t, .. } if t == token => {
                        self.hold(key, Some(found.version));
                        Ok(Claim::New)
                    }
                    Record::Claimed { .. } => Ok(Claim::InProgress),
                    Record::Mark { .. } | Record::Checkpoint { .. } => Err(StoreError::Backend(
                        "claim: an event's slot holds a watermark or a checkpoint".into(),
                    )),
                };
            }
            // Expired (a crashed worker's claim, or an outcome past its
            // TTL): take it over unless someone else does first.
            match self
                .cas
                .replace_if_version(slot, &claimed, &found.version)
                .await
            {
                Ok(Cond::Written(version)) => {
                    tracing::debug!(event_id = %key, "took over an expired idempotency record");
                    self.hold(key, version);
                    return Ok(Claim::New);
                }
                // Taken over or removed meanwhile: decide again.
                Ok(Cond::Conflict(_)) => {}
                Err(e) => return self.recover(key, &token, e).await,
            }
        }
        Err(lost("claim", ROUNDS))
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        let done = Record::Done {
            until: now_secs() + self.ttl.as_secs(),
        };
        self.cas.put(Slot::Event(key), &done).await?;
        self.hold(key, None);
        Ok(())
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        let slot = Slot::Event(key);
        let held = self.held().remove(key.as_str());
        let version = match held {
            Some(version) => version,
            // Not this process's claim (a restart between claim and
            // release): release a claim, never an outcome.
            None => match self.cas.get(slot).await? {
                Some(Versioned {
                    record: Record::Claimed { .. },
                    version,
                }) => version,
                _ => return Ok(()),
            },
        };
        // false: taken over or completed meanwhile — not ours to remove.
        self.cas.delete_if_version(slot, &version).await?;
        Ok(())
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let now = now_secs();
        match self.cas.get(Slot::Mark(key)).await? {
            Some(Versioned {
                record: Record::Mark { at_ms, until },
                ..
            }) => Ok((until > now).then_some(at_ms)),
            Some(_) => Err(StoreError::Backend(
                "watermark: the slot holds no watermark".into(),
            )),
            None => Ok(None),
        }
    }

    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        let slot = Slot::Mark(key);
        for round in 0..MARK_ROUNDS {
            if round > 0 {
                pause(round).await;
            }
            let now = now_secs();
            let mark = Record::Mark {
                at_ms,
                until: now + self.ttl.as_secs(),
            };
            let written = match self.cas.get(slot).await? {
                Some(Versioned {
                    record: Record::Mark { at_ms: old, until },
                    ..
                }) if until > now && old >= at_ms => return Ok(()),
                Some(stored) => {
                    self.cas
                        .replace_if_version(slot, &mark, &stored.version)
                        .await?
                }
                None => self.cas.put_if_absent(slot, &mark).await?,
            };
            match written {
                Cond::Written(_) => return Ok(()),
                // Someone else wrote (or removed) it meanwhile: decide again.
                Cond::Conflict(_) => {}
            }
        }
        Err(lost("watermark", MARK_ROUNDS))
    }
}

/// Implements [`IdempotencyStore`] for a cloud store type whose field
/// `$field` is an `Arc<CasStore<_>>`: every call goes to the one protocol.
#[macro_export]
macro_rules! idempotency_store_via_cas {
    ($ty:ty, $field:ident) => {
        impl $crate::store::IdempotencyStore for $ty {
            async fn claim(
                &self,
                key: &$crate::event::EventId,
            ) -> Result<$crate::store::Claim, $crate::store::StoreError> {
                $crate::store::IdempotencyStore::claim(&*self.$field, key).await
            }

            async fn complete(
                &self,
                key: &$crate::event::EventId,
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::IdempotencyStore::complete(&*self.$field, key).await
            }

            async fn release(
                &self,
                key: &$crate::event::EventId,
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::IdempotencyStore::release(&*self.$field, key).await
            }

            async fn watermark(&self, key: &str) -> Result<Option<i64>, $crate::store::StoreError> {
                $crate::store::IdempotencyStore::watermark(&*self.$field, key).await
            }

            async fn set_watermark(
                &self,
                key: &str,
                at_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                $crate::store::IdempotencyStore::set_watermark(&*self.$field, key, at_ms).await
            }
        }
    };
}

/// The [`Cas`] primitives in memory: one process's slots behind a mutex,
/// each record with a version of its own. The in-process backend of the
/// protocols written over [`Cas`] (their unit tests, and the checkpoint
/// contract's in-process run).
#[derive(Debug, Default)]
pub struct MemoryCas {
    slots: Mutex<HashMap<String, Versioned>>,
}

impl MemoryCas {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Versioned>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(slot: Slot<'_>) -> String {
        match slot {
            Slot::Event(id) => format!("e:{id}"),
            Slot::Mark(key) => format!("m:{key}"),
            Slot::Checkpoint(source) => format!("c:{source}"),
        }
    }
}

impl Cas for MemoryCas {
    async fn get(&self, slot: Slot<'_>) -> Result<Option<Versioned>, StoreError> {
        Ok(self.slots().get(&Self::key(slot)).cloned())
    }

    async fn put_if_absent(&self, slot: Slot<'_>, record: &Record) -> Result<Cond, StoreError> {
        let mut slots = self.slots();
        if let Some(found) = slots.get(&Self::key(slot)) {
            return Ok(Cond::Conflict(Some(found.clone())));
        }
        let version = token();
        slots.insert(
            Self::key(slot),
            Versioned {
                record: record.clone(),
                version: version.clone(),
            },
        );
        Ok(Cond::Written(Some(version)))
    }

    async fn replace_if_version(
        &self,
        slot: Slot<'_>,
        record: &Record,
        version: &str,
    ) -> Result<Cond, StoreError> {
        let mut slots = self.slots();
        match slots.get_mut(&Self::key(slot)) {
            Some(found) if found.version == version => {
                found.record = record.clone();
                found.version = token();
                Ok(Cond::Written(Some(found.version.clone())))
            }
            _ => Ok(Cond::Conflict(None)),
        }
    }

    async fn put(&self, slot: Slot<'_>, record: &Record) -> Result<(), StoreError> {
        self.slots().insert(
            Self::key(slot),
            Versioned {
                record: record.clone(),
                version: token(),
            },
        );
        Ok(())
    }

    async fn delete_if_version(&self, slot: Slot<'_>, version: &str) -> Result<bool, StoreError> {
        let mut slots = self.slots();
        let key = Self::key(slot);
        if slots
            .get(&key)
            .is_some_and(|found| found.version == version)
        {
            slots.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// A key for a backend whose keys are limited in length: `plain` when it
/// is at most `max` bytes, else `prefix` + the hex SHA-256 of `text` (the
/// one hashing of over-long keys, shared by every store).
pub fn hashed_key(plain: String, max: usize, prefix: &str, text: &str) -> String {
    if plain.len() <= max {
        plain
    } else {
        format!("{prefix}{}", sha256_hex(text))
    }
}

/// The hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A backend where every write loses its race: the insert finds a
    /// record, which is gone by the time it is read (claimed and released
    /// under our feet, again and again).
    #[derive(Default)]
    struct Vanishing {
        puts: AtomicUsize,
    }

    impl Cas for Vanishing {
        async fn get(&self, _: Slot<'_>) -> Result<Option<Versioned>, StoreError> {
            Ok(None)
        }
        async fn put_if_absent(&self, _: Slot<'_>, _: &Record) -> Result<Cond, StoreError> {
            self.puts.fetch_add(1, Ordering::SeqCst);
            Ok(Cond::Conflict(None))
        }
        async fn replace_if_version(
            &self,
            _: Slot<'_>,
            _: &Record,
            _: &str,
        ) -> Result<Cond, StoreError> {
            Ok(Cond::Conflict(None))
        }
        async fn put(&self, _: Slot<'_>, _: &Record) -> Result<(), StoreError> {
            Ok(())
        }
        async fn delete_if_version(&self, _: Slot<'_>, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    /// The unified give-up rule (issue 15): after `ROUNDS` lost races a
    /// claim is an error (transient: the delivery is retried), never a
    /// guessed `InProgress`. DynamoDB answered `Ok(InProgress)` after 2
    /// rounds; Table and Firestore `Err` after 3.
    #[tokio::test]
    async fn a_claim_that_keeps_losing_races_gives_up_with_an_error() {
        let store = CasStore::new(Vanishing::default());
        let event = EventId::new(Source::Okta, "contended");
        let answer = store.claim(&event).await;
        match answer {
            Err(StoreError::Backend(message)) => {
                assert!(message.contains("3 lost races"), "{message}");
            }
            other => panic!("expected a backend error, got {other:?}"),
        }
        assert_eq!(store.backend().puts.load(Ordering::SeqCst), ROUNDS);
    }

    #[test]
    fn long_keys_are_hashed_once_and_short_ones_kept() {
        assert_eq!(hashed_key("wm#k".into(), 10, "wm#sha256:", "k"), "wm#k");
        let long = "x".repeat(20);
        let key = hashed_key(format!("wm#{long}"), 10, "wm#sha256:", &long);
        // Published vector: SHA-256("abc") (FIPS 180-2, appendix B.1).
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(key, format!("wm#sha256:{}", sha256_hex(&long)));
    }
}
