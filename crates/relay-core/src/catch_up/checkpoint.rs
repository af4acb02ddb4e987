//! Where a catch-up run resumes: one checkpoint per source, kept beside the
//! idempotency keys (the local state directory for the CLI; the cloud
//! stores for the scheduled task).
//!
//! The checkpoint only moves past a page once every record of it was
//! applied, skipped or finally refused (see [`super::run`]).

use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

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

/// Loads and saves checkpoints, keyed by source (`okta`, `auth0`).
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
        self.map().insert(source.to_owned(), checkpoint.clone());
        Ok(())
    }
}

/// One small JSON file per source in a directory (`RELAY_STATE_DIR` for
/// the CLI): `catch-up-okta.json`, `catch-up-auth0.json`, each replaced
/// atomically (temporary file, fsync, rename).
#[derive(Debug, Clone)]
pub struct FileCheckpoints {
    dir: PathBuf,
}

impl FileCheckpoints {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
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

impl CheckpointStore for FileCheckpoints {
    async fn load(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
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

    async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.dir)?;
        let body = serde_json::to_vec_pretty(checkpoint)
            .map_err(|e| StoreError::Backend(format!("cannot encode the checkpoint: {e}")))?;
        crate::state::replace_file(&self.path(source), &body)?;
        Ok(())
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
