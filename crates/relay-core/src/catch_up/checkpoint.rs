//! Where a catch-up run resumes: one checkpoint per source, kept beside the
//! idempotency keys (the local state directory for the CLI; the cloud
//! stores for the scheduled task).
//!
//! The checkpoint only moves past a page once every record of it was
//! applied, skipped or finally refused (see [`super::run`]).
//!
//! Three stores, one rule ([`Checkpoint::is_behind`]): a save never moves
//! a checkpoint back past one a concurrent run saved (two scheduled runs
//! can overlap: a slow run and the next tick, or a retried invocation).
//! Either position would be safe — every record before it was handled,
//! and a record read twice is a duplicate — but going back costs the
//! re-reading. The cloud stores keep it with one implementation over the
//! claim protocol's compare-and-swap primitives ([`CasCheckpoints`] over
//! [`Cas`]: DynamoDB, Table Storage, Firestore); memory and file keep it
//! under a lock.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::store::{Cas, CasStore, Cond, Record, Slot, StoreError, Versioned, now_secs};

/// The position of one source's catch-up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Checkpoint {
    /// Okta: the `next` link of the last System Log page fully handled (an
    /// opaque polling cursor: `okta-dev-docs`
    /// `docs/reference/system-log-query/index.md`, "Rely on the
    /// system-generated links"). Auth0: the `log_id` of the last tenant log
    /// record fully handled (checkpoint paging `from`, `auth0-docs`
    /// `deploy-monitor/logs/retrieve-log-events-using-mgmt-api.mdx`).
    /// `None` before the first record.
    pub cursor: Option<String>,
    /// The newest event time (ms since the epoch: Okta `published`, Auth0
    /// `date`) among the records passed. An expired cursor falls back to
    /// this time minus the overlap.
    pub last_event_ms: Option<i64>,
    /// When (ms since the epoch) a run last read the log to its end: the
    /// checkpoint's lag is measured from here.
    pub caught_up_ms: Option<i64>,
    /// Where the next run starts when there is no cursor yet (a first run
    /// that found no record): ms since the epoch.
    pub resume_since_ms: Option<i64>,
}

impl Checkpoint {
    /// Whether `self` is behind `stored`, so saving it would move the
    /// stored checkpoint back: it has seen older events. A run's
    /// `last_event_ms` never decreases (it starts from the loaded
    /// checkpoint's and keeps the maximum), so only a concurrent run's
    /// save can be ahead of it. A tie is not behind: the end-of-log cursor
    /// and `caught_up_ms` of a run that found nothing new replace it.
    pub fn is_behind(&self, stored: &Self) -> bool {
        self.last_event_ms < stored.last_event_ms
    }
}

/// How long a checkpoint nobody saves again is kept (the cloud stores'
/// expiry, renewed on every save): longer than any log's retention (Okta
/// 90 days), so it outlives everything it could still point into.
pub const CHECKPOINT_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

/// Lost races after which a checkpoint save gives up with an error. More
/// than a watermark's: a checkpoint has one writer per scheduled run, so a
/// race is rare and another round costs little, while giving up fails the
/// run (and its alarm).
pub const CHECKPOINT_ROUNDS: usize = 10;

/// Loads and saves checkpoints, keyed by source (`okta`, `auth0`). A save
/// behind the stored checkpoint ([`Checkpoint::is_behind`]) succeeds and
/// leaves the stored one.
pub trait CheckpointStore: Send + Sync {
    fn load(
        &self,
        source: &str,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;
    fn save(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// In memory (tests, dry runs).
#[derive(Debug, Default)]
pub struct MemoryCheckpoints {
    map: Mutex<std::collections::BTreeMap<String, Checkpoint>>,
}

impl MemoryCheckpoints {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Checkpoint>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CheckpointStore for MemoryCheckpoints {
    async fn load(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
        Ok(self.map().get(source).cloned())
    }

    async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let mut map = self.map();
        if map
            .get(source)
            .is_some_and(|stored| checkpoint.is_behind(stored))
        {
            return Ok(());
        }
        map.insert(source.to_owned(), checkpoint.clone());
        Ok(())
    }
}

/// One small JSON file per source in a directory (`RELAY_STATE_DIR` for
/// the CLI): `catch-up-okta.json`, `catch-up-auth0.json`, each replaced
/// atomically (temporary file, fsync, rename).
/// Saves of one handle are serialized (compare, then replace); the CLI
/// holds a lock file so that one run at a time uses a state directory.
#[derive(Debug, Clone)]
pub struct FileCheckpoints {
    dir: PathBuf,
    saving: Arc<Mutex<()>>,
}

impl FileCheckpoints {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            saving: Arc::default(),
        }
    }

    /// The file of one source.
    pub fn path(&self, source: &str) -> PathBuf {
        let name: String = source
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.dir.join(format!("catch-up-{name}.json"))
    }
}

impl FileCheckpoints {
    fn read(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
        let path = self.path(source);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                StoreError::Backend(format!(
                    "{}: not a catch-up checkpoint ({:?} error at line {} column {}); delete it to start again from RELAY_CATCH_UP_WINDOW",
                    path.display(),
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl CheckpointStore for FileCheckpoints {
    async fn load(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
        self.read(source)
    }

    async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let _saving = self
            .saving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // An unreadable file is replaced: the run that saves has read the
        // log up to its checkpoint.
        if let Ok(Some(stored)) = self.read(source)
            && checkpoint.is_behind(&stored)
        {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let body = serde_json::to_vec_pretty(checkpoint)
            .map_err(|e| StoreError::Backend(format!("cannot encode the checkpoint: {e}")))?;
        crate::state::replace_file(&self.path(source), &body)?;
        Ok(())
    }
}

/// The checkpoints of a cloud store, on the store's [`Cas`] backend (the
/// same table or collection as its idempotency records; see each adapter
/// for the key): one record per source, [`Record::Checkpoint`] with the
/// checkpoint's JSON, renewed for [`CHECKPOINT_TTL`] on every save.
///
/// A save reads the record, keeps it when the new checkpoint is behind
/// it, and otherwise writes on condition that it did not change since the
/// read (`put_if_absent` / `replace_if_version`); a lost race reads again,
/// up to [`CHECKPOINT_ROUNDS`] rounds.
#[derive(Debug)]
pub struct CasCheckpoints<C> {
    store: Arc<CasStore<C>>,
}

impl<C> Clone for CasCheckpoints<C> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
        }
    }
}

impl<C: Cas> CasCheckpoints<C> {
    /// On the backend of a cloud store's idempotency store.
    pub fn new(store: Arc<CasStore<C>>) -> Self {
        Self { store }
    }

    /// On a backend of its own.
    pub fn over(cas: C) -> Self {
        Self::new(Arc::new(CasStore::new(cas)))
    }

    fn decode(source: &str, found: Versioned) -> Result<Option<(Checkpoint, String)>, StoreError> {
        match found.record {
            Record::Checkpoint { until, .. } if until <= now_secs() => Ok(None),
            Record::Checkpoint { body, .. } => serde_json::from_str(&body)
                .map(|c| Some((c, found.version)))
                .map_err(|e| {
                    StoreError::Backend(format!(
                        "the catch-up checkpoint of {source} is unreadable ({:?} error at line {} column {}); delete it to start again from RELAY_CATCH_UP_WINDOW",
                        e.classify(),
                        e.line(),
                        e.column()
                    ))
                }),
            _ => Err(StoreError::Backend(format!(
                "the catch-up checkpoint slot of {source} holds another kind of record"
            ))),
        }
    }
}

impl<C: Cas> CheckpointStore for CasCheckpoints<C> {
    async fn load(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
        let found = self.store.backend().get(Slot::Checkpoint(source)).await?;
        Ok(match found {
            Some(found) => Self::decode(source, found)?.map(|(c, _)| c),
            None => None,
        })
    }

    async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let cas = self.store.backend();
        let slot = Slot::Checkpoint(source);
        let body = serde_json::to_string(checkpoint)
            .map_err(|e| StoreError::Backend(format!("cannot encode the checkpoint: {e}")))?;
        let rounds = CHECKPOINT_ROUNDS;
        for round in 0..rounds {
            if round > 0 {
                let ms = fastrand::u64(1..=5) * (round as u64 + 1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let record = Record::Checkpoint {
                body: body.clone(),
                until: now_secs() + CHECKPOINT_TTL.as_secs(),
            };
            let written = match cas.get(slot).await? {
                None => cas.put_if_absent(slot, &record).await?,
                Some(found) => {
                    let version = found.version.clone();
                    match Self::decode(source, found) {
                        Ok(Some((stored, _))) if checkpoint.is_behind(&stored) => return Ok(()),
                        // Expired or unreadable: this run's position
                        // replaces it.
                        Ok(_) | Err(_) => cas.replace_if_version(slot, &record, &version).await?,
                    }
                }
            };
            match written {
                Cond::Written(_) => return Ok(()),
                // Another run saved (or the record expired away) meanwhile.
                Cond::Conflict(_) => {}
            }
        }
        Err(StoreError::Backend(format!(
            "saving the catch-up checkpoint of {source}: it kept changing under us ({rounds} lost races); the next run reads from the stored one"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_checkpoints_round_trip_per_source() {
        let dir = std::env::temp_dir().join(format!(
            "catch-up-checkpoints-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let store = FileCheckpoints::new(&dir);
        assert_eq!(store.load("okta").await.unwrap(), None);
        let okta = Checkpoint {
            cursor: Some("https://acme.okta.com/api/v1/logs?after=1_1".into()),
            last_event_ms: Some(5),
            caught_up_ms: Some(6),
            resume_since_ms: None,
        };
        store.save("okta", &okta).await.unwrap();
        let auth0 = Checkpoint {
            cursor: Some("900".into()),
            ..Checkpoint::default()
        };
        store.save("auth0", &auth0).await.unwrap();
        assert_eq!(store.load("okta").await.unwrap(), Some(okta));
        assert_eq!(store.load("auth0").await.unwrap(), Some(auth0));
        std::fs::write(store.path("okta"), b"{not json").unwrap();
        let err = store.load("okta").await.unwrap_err().to_string();
        assert!(err.contains("not a catch-up checkpoint"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
