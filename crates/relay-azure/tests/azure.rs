//! relay-azure's integration tests, one binary: the Function App files, the
//! SharedKey signer, the Table Storage store against Azurite
//! (`RELAY_TEST_AZURITE_TABLE_URL`, started by scripts/emulators.sh), and
//! the real `relay-azure` binary driven the way the Functions host drives it,
//! and queue mode against Azurite's Queue service
//! (`RELAY_TEST_AZURITE_QUEUE_URL`).

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // tests: fail loudly

#[path = "azure/app_files.rs"]
mod app_files;
#[path = "azure/catch_up.rs"]
mod catch_up;
#[path = "azure/common.rs"]
mod common;
#[path = "azure/handler.rs"]
mod handler;
#[path = "azure/identity.rs"]
mod identity;
#[path = "azure/queue.rs"]
mod queue;
#[path = "azure/signing.rs"]
mod signing;
#[path = "azure/store.rs"]
mod store;
