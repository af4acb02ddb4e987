//! The claim-protocol contract (relay-tests' `claim_store::contract`) on
//! the in-process stores: memory and the file store of `serve`. The cloud
//! stores run the same contract in their crates' tests (moto, Azurite, the
//! Firestore emulator).

#![allow(clippy::unwrap_used)] // test: fail loudly

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use relay_core::store::{FileStore, MemoryStore};
use relay_tests::claim_store::{CASES, Instances, Timeouts, contract};

/// One store per timeouts, shared by every handle (one process).
fn shared<S>(make: impl Fn(Timeouts) -> S) -> impl Fn(Timeouts) -> std::future::Ready<Arc<S>> {
    let stores: Mutex<HashMap<Timeouts, Arc<S>>> = Mutex::new(HashMap::new());
    move |t| {
        let mut stores = stores.lock().unwrap();
        std::future::ready(Arc::clone(
            stores.entry(t).or_insert_with(|| Arc::new(make(t))),
        ))
    }
}

#[tokio::test]
async fn the_memory_store_keeps_the_claim_contract() {
    let ran = contract(
        "memory",
        Instances::Shared,
        shared(|t| MemoryStore::new(t.ttl).with_claim_timeout(t.claim_timeout)),
    )
    .await;
    assert_eq!(ran, CASES.len() - 1, "all but the cross-process case");
}

#[tokio::test]
async fn the_file_store_keeps_the_claim_contract() {
    let dir = std::env::temp_dir().join(format!("relay-claim-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ran = contract("file", Instances::Shared, {
        let dir = dir.clone();
        shared(move |t| {
            let path = dir.join(format!("{}-{}", t.ttl.as_secs(), t.claim_timeout.as_secs()));
            FileStore::open(path.join("applied.log"), t.ttl)
                .unwrap()
                .with_claim_timeout(t.claim_timeout)
        })
    })
    .await;
    assert_eq!(ran, CASES.len() - 1, "all but the cross-process case");
    let _ = std::fs::remove_dir_all(&dir);
}
