//! The relay on Google Cloud Run: what is specific to GCP and nothing else.
//!
//! - **Secrets** arrive as environment variables: Cloud Run resolves Secret
//!   Manager references (`--set-secrets DUO_SKEY=duo-skey:latest`, or
//!   `secretKeyRef` in the service spec) before the process starts, so the
//!   binary reads `std::env::vars()` like every other entry point and never
//!   talks to Secret Manager itself.
//! - **State** (the idempotency store, and the Duo group index beside it:
//!   [`groups`]) lives in Firestore, over its REST API with the metadata
//!   server's token ([`firestore`], [`metadata`]).
//!   Firestore rather than Memorystore/Redis: it is serverless like Cloud
//!   Run — no VPC connector, no instance running (and billed) while the
//!   service has scaled to zero — and its free tier covers a webhook's load.
//! - `RELAY_STORE=memory` keeps the store in the process instead: only for a
//!   single-instance trial (`--max-instances=1`), since each instance and
//!   each cold start forgets what was applied.
//!
//! - **Queue mode** (`RELAY_MODE=queue`): accepted events go to Pub/Sub
//!   ([`pubsub`]: ordering keys per subject, a dead-letter topic, `dlq`
//!   over its subscription) and come back through a push subscription to
//!   `POST /pubsub/push` on this service, authenticated by its OIDC token
//!   ([`push`]).
//!
//! Routing, verification and everything behind it are `relay-server`'s and
//! `relay-core`'s; this crate must not know about Okta, Auth0 or Duo.

pub mod catch_up;
pub mod firestore;
pub mod groups;
pub mod metadata;
pub mod pubsub;
pub mod push;
pub mod reconcile;
mod settings;

use std::fmt;

use relay_core::catch_up::{CasCheckpoints, Checkpoint, CheckpointStore, MemoryCheckpoints};
use relay_core::config::{ConfigError, RawConfig, optional};
use relay_core::event::EventId;
use relay_core::store::{Claim, IdempotencyStore, MemoryStore, StoreError};

pub use firestore::{FirestoreConfig, FirestoreStore};
pub use groups::FirestoreGroupIndex;

/// The environment variables `relay-gcp` refuses to start without on Cloud
/// Run (each missing one stops start-up with a message naming it). `PORT` is
/// not among them: Cloud Run sets it, and 8080 is the default elsewhere. Nor
/// is `GOOGLE_CLOUD_PROJECT`: on Cloud Run the metadata server tells the
/// project when it is unset. `tests/required_env.rs` checks this list
/// against the start-up code and writes it to
/// `terraform/modules/gcp/required-env.json`, which the Terraform tests read.
pub const REQUIRED_ENV: &[&str] = &["DUO_API_HOST", "DUO_IKEY", "DUO_SKEY"];

/// At least one of these must be set as well (a source without its secret
/// answers 401): not a plain list, so not part of [`REQUIRED_ENV`].
pub const REQUIRED_ONE_OF_ENV: &[&str] = &[
    "OKTA_AUTH_SECRET",
    "AUTH0_AUTH_SECRET",
    "ENTRA_CLIENT_STATE",
];

/// The store the Cloud Run service uses, chosen by `RELAY_STORE`.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per process, built once at start
pub enum GcpStore {
    /// `firestore` (the default).
    Firestore(FirestoreStore),
    /// `memory`: one instance only; forgets on every cold start.
    Memory(MemoryStore),
}

impl GcpStore {
    /// From `RELAY_STORE` (`firestore`, the default, or `memory`) and, for
    /// Firestore, the variables of [`FirestoreConfig::from_config`]. Fails
    /// naming `GOOGLE_CLOUD_PROJECT` when no project can be found.
    pub async fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        match optional(raw, "RELAY_STORE") {
            None | Some("firestore") => {
                let config = FirestoreConfig::from_config(raw)?;
                Ok(Self::Firestore(FirestoreStore::connect(config).await?))
            }
            Some("memory") => Ok(Self::Memory(MemoryStore::default())),
            Some(_) => Err(ConfigError::new(
                "RELAY_STORE",
                "must be `firestore` (the default) or `memory`",
            )),
        }
    }
}

impl GcpStore {
    /// Where the Duo group index is kept between instances: beside the
    /// idempotency documents in Firestore; `None` for the memory store
    /// (the relay keeps its index in memory then).
    pub fn group_index(&self) -> Option<FirestoreGroupIndex> {
        match self {
            Self::Firestore(store) => Some(store.group_index()),
            Self::Memory(_) => None,
        }
    }
}

impl GcpStore {
    /// Where catch-up checkpoints (Entra's deltaLinks among them) are kept:
    /// beside the idempotency documents in Firestore; in memory for the
    /// memory store (forgotten with the instance, like its keys).
    pub fn checkpoints(&self) -> GcpCheckpoints {
        match self {
            Self::Firestore(store) => GcpCheckpoints::Firestore(store.checkpoints()),
            Self::Memory(_) => GcpCheckpoints::Memory(MemoryCheckpoints::default()),
        }
    }
}

/// The checkpoints of a [`GcpStore`].
#[derive(Debug)]
pub enum GcpCheckpoints {
    Firestore(CasCheckpoints<firestore::FirestoreCas>),
    Memory(MemoryCheckpoints),
}

impl CheckpointStore for GcpCheckpoints {
    async fn load(&self, source: &str) -> Result<Option<Checkpoint>, StoreError> {
        match self {
            Self::Firestore(c) => c.load(source).await,
            Self::Memory(c) => c.load(source).await,
        }
    }

    async fn save(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        match self {
            Self::Firestore(c) => c.save(source, checkpoint).await,
            Self::Memory(c) => c.save(source, checkpoint).await,
        }
    }
}

impl fmt::Display for GcpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Firestore(store) => store.fmt(f),
            Self::Memory(_) => f.write_str("memory (this instance only)"),
        }
    }
}

impl IdempotencyStore for GcpStore {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        match self {
            Self::Firestore(store) => store.claim(key).await,
            Self::Memory(store) => store.claim(key).await,
        }
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        match self {
            Self::Firestore(store) => store.complete(key).await,
            Self::Memory(store) => store.complete(key).await,
        }
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        match self {
            Self::Firestore(store) => store.release(key).await,
            Self::Memory(store) => store.release(key).await,
        }
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Self::Firestore(store) => store.watermark(key).await,
            Self::Memory(store) => store.watermark(key).await,
        }
    }

    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        match self {
            Self::Firestore(store) => store.set_watermark(key, at_ms).await,
            Self::Memory(store) => store.set_watermark(key, at_ms).await,
        }
    }
}
