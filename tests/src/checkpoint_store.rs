//! The catch-up checkpoint as every checkpoint store must keep it (issue
//! 16): one contract ([`contract`]) that memory, file and the one
//! implementation over the claim protocol's compare-and-swap primitives
//! (`relay_core::catch_up::CasCheckpoints`: in memory here, DynamoDB on
//! moto, Table Storage on Azurite, Firestore on its emulator and the REST
//! stand-in) all run.
//!
//! Sources are prefixed (`<prefix>-okta`) so runs on a shared backend stay
//! apart; a store keys checkpoints by whatever source name it is given.

use std::future::Future;
use std::sync::Arc;

use relay_core::catch_up::{Checkpoint, CheckpointStore};

/// The cases of [`contract`], in order (the count is the suite's size).
pub const CASES: [&str; 6] = [
    "absent, then saved and loaded per source",
    "a newer checkpoint and a tie replace the stored one",
    "a checkpoint behind the stored one does not move it back",
    "another handle (another instance) sees the saves",
    "twenty concurrent savers end at the newest",
    "an 8 KiB cursor round-trips",
];

fn at(cursor: &str, last_event_ms: i64) -> Checkpoint {
    Checkpoint {
        cursor: Some(cursor.to_owned()),
        last_event_ms: Some(last_event_ms),
        caught_up_ms: None,
        resume_since_ms: None,
    }
}

/// Runs every case against the stores `open` returns (each call another
/// handle on the same data); answers how many cases ran.
pub async fn contract<C, F, Fut>(prefix: &str, open: F) -> usize
where
    C: CheckpointStore + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<C>>,
{
    let mut ran = 0;
    let okta = format!("{prefix}-okta");
    let auth0 = format!("{prefix}-auth0");
    let store = open().await;

    // 1. Nothing stored; each source keeps its own.
    assert_eq!(store.load(&okta).await.unwrap(), None);
    let first = Checkpoint {
        cursor: Some("https://acme.okta.com/api/v1/logs?after=1_1&limit=1000".into()),
        last_event_ms: Some(1_000),
        caught_up_ms: Some(1_500),
        resume_since_ms: None,
    };
    store.save(&okta, &first).await.unwrap();
    assert_eq!(store.load(&auth0).await.unwrap(), None);
    let seeded = Checkpoint {
        resume_since_ms: Some(900),
        ..Checkpoint::default()
    };
    store.save(&auth0, &seeded).await.unwrap();
    assert_eq!(store.load(&okta).await.unwrap(), Some(first.clone()));
    assert_eq!(store.load(&auth0).await.unwrap(), Some(seeded));
    ran += 1;

    // 2. Newer replaces; a tie (the end-of-log cursor of a run that found
    // nothing new) replaces too.
    let newer = at("after=2_2", 2_000);
    store.save(&okta, &newer).await.unwrap();
    assert_eq!(store.load(&okta).await.unwrap(), Some(newer.clone()));
    let tie = Checkpoint {
        caught_up_ms: Some(9_999),
        ..at("after=2_3", 2_000)
    };
    store.save(&okta, &tie).await.unwrap();
    assert_eq!(store.load(&okta).await.unwrap(), Some(tie.clone()));
    ran += 1;

    // 3. A run that loaded an older checkpoint saves behind a concurrent
    // run's: the stored one stays (the save itself succeeds).
    store.save(&okta, &at("after=1_9", 1_900)).await.unwrap();
    assert_eq!(store.load(&okta).await.unwrap(), Some(tie.clone()));
    ran += 1;

    // 4. Another handle reads and moves the same checkpoint.
    let other = open().await;
    assert_eq!(other.load(&okta).await.unwrap(), Some(tie));
    let moved = at("after=3_3", 3_000);
    other.save(&okta, &moved).await.unwrap();
    assert_eq!(store.load(&okta).await.unwrap(), Some(moved));
    ran += 1;

    // 5. Twenty handles save at once, in no particular order: the newest
    // is what stays (the lost races are decided again, not dropped).
    let race = format!("{prefix}-race");
    let mut tasks = Vec::new();
    for i in 1..=20_i64 {
        let store = open().await;
        let race = race.clone();
        tasks.push(tokio::spawn(async move {
            store
                .save(&race, &at(&format!("after={i}"), 10_000 + i * 7 % 20))
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let newest = (1..=20_i64).map(|i| 10_000 + i * 7 % 20).max().unwrap();
    let stored = open().await.load(&race).await.unwrap().unwrap();
    assert_eq!(stored.last_event_ms, Some(newest), "{stored:?}");
    ran += 1;

    // 6. A long Okta link (the cursor is whatever `next` link Okta gave).
    let long = format!(
        "https://acme.okta.com/api/v1/logs?filter={}&after=1_1",
        "x".repeat(8 * 1024)
    );
    let big = format!("{prefix}-big");
    store.save(&big, &at(&long, 5)).await.unwrap();
    assert_eq!(open().await.load(&big).await.unwrap(), Some(at(&long, 5)));
    ran += 1;

    ran
}
