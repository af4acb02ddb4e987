//! The catch-up checkpoint contract (relay-tests' `checkpoint_store`) on the
//! in-process stores: memory, the file store of the CLI, and the one
//! implementation over the claim protocol's compare-and-swap primitives
//! (`CasCheckpoints`) on an in-memory backend. The cloud adapters run the
//! same contract in their crates' tests (moto, Azurite, the Firestore
//! emulator and stand-in).

#![allow(clippy::unwrap_used)] // test: fail loudly

use std::sync::Arc;

use relay_core::catch_up::{CasCheckpoints, FileCheckpoints, MemoryCheckpoints};
use relay_core::store::MemoryCas;
use relay_tests::checkpoint_store::{CASES, contract};

#[tokio::test]
async fn the_memory_checkpoints_keep_the_contract() {
    let store = Arc::new(MemoryCheckpoints::default());
    let ran = contract("memory", || std::future::ready(Arc::clone(&store))).await;
    assert_eq!(ran, CASES.len());
}

#[tokio::test]
async fn the_file_checkpoints_keep_the_contract() {
    let dir = std::env::temp_dir().join(format!(
        "relay-checkpoint-contract-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    // One handle: the CLI holds a lock so one run at a time uses the
    // directory; the handle serializes its own saves.
    let store = Arc::new(FileCheckpoints::new(&dir));
    let ran = contract("file", || std::future::ready(Arc::clone(&store))).await;
    assert_eq!(ran, CASES.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_checkpoints_over_compare_and_swap_keep_the_contract() {
    let store = Arc::new(CasCheckpoints::over(MemoryCas::default()));
    let ran = contract("cas", || std::future::ready(Arc::clone(&store))).await;
    assert_eq!(ran, CASES.len());
}
