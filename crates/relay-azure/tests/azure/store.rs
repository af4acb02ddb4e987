//! The Table Storage idempotency store against Azurite: the claim protocol,
//! concurrency, expiry, awkward event ids, and authentication failures.

use std::time::Duration;

use relay_azure::TableStore;
use relay_azure::table::entity_keys;
use relay_core::event::{EventId, Source};
use relay_core::store::{Claim, DEFAULT_TTL, IdempotencyStore, StoreError};

use crate::common::{DEV_KEY, azurite, fresh_store, fresh_table, settings};

fn id(s: &str) -> EventId {
    EventId::new(Source::Okta, s)
}

const CLAIM: Duration = Duration::from_secs(120);

#[tokio::test]
async fn claim_complete_release_like_the_memory_store() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, DEFAULT_TTL, CLAIM).await;
    // Creating the table again is fine (409 TableAlreadyExists).
    store.create_table_if_absent().await.unwrap();
    let a = id("a1b2c3d4-0001");
    assert_eq!(store.claim(&a).await.unwrap(), Claim::New);
    assert_eq!(store.claim(&a).await.unwrap(), Claim::InProgress);
    store.release(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::New);
    store.complete(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
    // Release after completion does not forget the outcome.
    store.release(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
    // A second process (another Function instance) sees the same.
    let other = TableStore::new(settings(&url, store.table_name(), DEV_KEY)).unwrap();
    assert_eq!(other.claim(&a).await.unwrap(), Claim::Done);
    // Releasing something never claimed is a no-op.
    other.release(&id("never-claimed")).await.unwrap();
}

#[tokio::test]
async fn ten_concurrent_claims_make_exactly_one_new() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, DEFAULT_TTL, CLAIM).await;
    let event = id("concurrent-0001");
    // Ten independent stores: ten Function instances, no shared memory.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = TableStore::new(settings(&url, store.table_name(), DEV_KEY)).unwrap();
        let event = event.clone();
        tasks.push(tokio::spawn(
            async move { store.claim(&event).await.unwrap() },
        ));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|c| **c == Claim::New).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|c| **c == Claim::InProgress).count(),
        9
    );
}

#[tokio::test]
async fn an_expired_claim_is_taken_over_once_and_never_released_by_its_old_owner() {
    let Some(url) = azurite() else { return };
    let short = Duration::from_secs(1);
    let crashed = fresh_store(&url, DEFAULT_TTL, short).await;
    let event = id("takeover-0001");
    assert_eq!(crashed.claim(&event).await.unwrap(), Claim::New);
    // The owner "crashes"; its claim expires (second granularity).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let store = TableStore::with_timeouts(
            settings(&url, crashed.table_name(), DEV_KEY),
            DEFAULT_TTL,
            CLAIM,
        )
        .unwrap();
        let event = event.clone();
        tasks.push(tokio::spawn(
            async move { store.claim(&event).await.unwrap() },
        ));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    assert_eq!(
        answers.iter().filter(|c| **c == Claim::New).count(),
        1,
        "{answers:?}"
    );
    // The old owner wakes up and releases: its etag no longer matches, so
    // the new owner's claim stays.
    crashed.release(&event).await.unwrap();
    let observer = TableStore::new(settings(&url, crashed.table_name(), DEV_KEY)).unwrap();
    assert_eq!(observer.claim(&event).await.unwrap(), Claim::InProgress);
}

#[tokio::test]
async fn done_entries_expire_after_the_ttl() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, Duration::from_secs(1), CLAIM).await;
    let event = id("ttl-0001");
    assert_eq!(store.claim(&event).await.unwrap(), Claim::New);
    store.complete(&event).await.unwrap();
    assert_eq!(store.claim(&event).await.unwrap(), Claim::Done);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.claim(&event).await.unwrap(), Claim::New);
}

#[tokio::test]
async fn event_ids_with_reserved_and_unicode_characters() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, DEFAULT_TTL, CLAIM).await;
    let ids = [
        "a/b",
        "a#b",
        "a?b",
        "a\\b",
        "a'b",
        "a%2Fb",
        "tab\there",
        "ünïcødé-✓-日本",
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "",
    ];
    for raw in ids {
        let event = id(raw);
        assert_eq!(store.claim(&event).await.unwrap(), Claim::New, "{raw:?}");
    }
    // Distinct ids never share an entity (a/b, a#b, a?b all New above).
    for raw in ids {
        let event = id(raw);
        assert_eq!(
            store.claim(&event).await.unwrap(),
            Claim::InProgress,
            "{raw:?}"
        );
        store.complete(&event).await.unwrap();
        assert_eq!(store.claim(&event).await.unwrap(), Claim::Done, "{raw:?}");
    }
    // The same text from another source is another event.
    let auth0 = EventId::new(Source::Auth0Events, "a/b");
    assert_eq!(store.claim(&auth0).await.unwrap(), Claim::New);
    // An id too long for a RowKey still works (stored under its hash).
    let long = id(&"x".repeat(3000));
    assert!(entity_keys(&long).1.starts_with('~'));
    assert_eq!(store.claim(&long).await.unwrap(), Claim::New);
    store.complete(&long).await.unwrap();
    assert_eq!(store.claim(&long).await.unwrap(), Claim::Done);
}

#[tokio::test]
async fn a_wrong_account_key_is_refused_with_403() {
    let Some(url) = azurite() else { return };
    // Azurite checks every SharedKey signature (its --loose flag only
    // relaxes unsupported headers and parameters, not authentication).
    let wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let store = TableStore::new(settings(&url, &fresh_table(), wrong)).unwrap();
    let err = store.create_table_if_absent().await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)));
    assert!(text.contains("403"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(DEV_KEY));
    let err = store.claim(&id("x")).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // And a request with no Authorization at all.
    let answer = reqwest::Client::new()
        .get(format!("{url}/devstoreaccount1/Tables"))
        .header("x-ms-version", "2019-02-02")
        .header("Accept", "application/json;odata=nometadata")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 403);
}

#[tokio::test]
async fn an_unreachable_store_is_a_backend_error() {
    // No emulator needed: a loopback port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = TableStore::new(settings(
        &format!("http://127.0.0.1:{port}"),
        &fresh_table(),
        DEV_KEY,
    ))
    .unwrap();
    for result in [
        store.claim(&id("x")).await.map(|_| ()),
        store.complete(&id("x")).await,
        store.create_table_if_absent().await,
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
        assert!(err.to_string().contains("cannot reach 127.0.0.1"), "{err}");
    }
    assert!(!format!("{store:?}").contains(DEV_KEY));
}

// ---------------------------------------------------------------- watermarks

#[tokio::test]
async fn watermarks_keep_the_newer_time_and_are_shared() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, DEFAULT_TTL, CLAIM).await;
    let key = "user:okta:00u1abc/state";
    assert_eq!(store.watermark(key).await.unwrap(), None);
    store.set_watermark(key, 2_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(2_000));
    // An older time never moves it back; a newer one does.
    store.set_watermark(key, 1_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(2_000));
    store.set_watermark(key, 3_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(3_000));
    // Keys are independent; another instance reads the same.
    assert_eq!(
        store.watermark("user:okta:00u1abc/profile").await.unwrap(),
        None
    );
    let other = TableStore::new(settings(&url, store.table_name(), DEV_KEY)).unwrap();
    assert_eq!(other.watermark(key).await.unwrap(), Some(3_000));
    // Awkward keys (the table forbids / \ # ? in keys; base64url has none).
    let odd = "group:auth0:rol_#?\\/ünï/name";
    store.set_watermark(odd, 42).await.unwrap();
    assert_eq!(other.watermark(odd).await.unwrap(), Some(42));
    // A watermark never answers a claim, nor a claim a watermark.
    assert_eq!(store.claim(&id(key)).await.unwrap(), Claim::New);
    assert_eq!(store.watermark(key).await.unwrap(), Some(3_000));
}

#[tokio::test]
async fn concurrent_watermark_writers_end_at_the_newest_time() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, DEFAULT_TTL, CLAIM).await;
    let key = "user:okta:00uRACE/state";
    // Twelve instances write different times at once.
    let mut tasks = Vec::new();
    for at in [5_i64, 12, 3, 9, 1, 11, 7, 2, 10, 4, 8, 6] {
        let store = TableStore::new(settings(&url, store.table_name(), DEV_KEY)).unwrap();
        tasks.push(tokio::spawn(async move {
            store.set_watermark(key, at * 1000).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.watermark(key).await.unwrap(), Some(12_000));
}

#[tokio::test]
async fn watermarks_expire_like_the_idempotency_entries() {
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, Duration::from_secs(3), CLAIM).await;
    let key = "group:okta:00gEXP/deleted";
    // Warm up (the first call to a fresh table or project can be slow),
    // then write and read back at once: well within the 3 s (expiry is in
    // whole seconds, so a mark lives 2 to 3 s).
    assert_eq!(store.watermark(key).await.unwrap(), None);
    store.set_watermark(key, 9_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(9_000));
    // Expiry is in whole seconds: wait past it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while store.watermark(key).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watermark did not expire after its 3 s TTL"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // An expired mark is replaced even by an older time.
    store.set_watermark(key, 1_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(1_000));
}

/// The Duo group index in the idempotency table keeps the contract every
/// group index store keeps (relay-tests' `group_index::contract`): another
/// instance loads what one stored, so its first membership add at 5,000
/// groups makes no listing; the index's partition leaves event entities
/// alone.
#[tokio::test]
async fn the_group_index_in_the_table_keeps_the_contract() {
    use relay_core::group_index::GroupIndexStore;
    use std::sync::Arc;
    let Some(url) = azurite() else { return };
    let store = fresh_store(&url, DEFAULT_TTL, CLAIM).await;
    let calls = relay_tests::group_index::contract(|| {
        let other = TableStore::new(settings(&url, store.table_name(), DEV_KEY)).unwrap();
        Arc::new(other.group_index()) as Arc<dyn GroupIndexStore>
    })
    .await;
    assert_eq!(
        calls, 2,
        "first membership add on another instance: lookup + add"
    );
    let event = id("beside-the-index");
    assert_eq!(store.claim(&event).await.unwrap(), Claim::New);
    store.complete(&event).await.unwrap();
    assert_eq!(store.claim(&event).await.unwrap(), Claim::Done);
}

/// The claim protocol's contract (relay-tests' `claim_store::contract`),
/// the one every idempotency store runs: each handle is another Function
/// instance on the same table.
#[tokio::test]
async fn the_claim_protocol_keeps_the_contract() {
    use relay_tests::claim_store::{CASES, Instances, contract};
    let Some(url) = azurite() else { return };
    let table = fresh_store(&url, DEFAULT_TTL, CLAIM)
        .await
        .table_name()
        .to_owned();
    let ran = contract("table", Instances::Separate, |t| {
        let store =
            TableStore::with_timeouts(settings(&url, &table, DEV_KEY), t.ttl, t.claim_timeout)
                .unwrap();
        async move { std::sync::Arc::new(store) }
    })
    .await;
    assert_eq!(ran, CASES.len());
}

/// The catch-up checkpoint contract (relay-tests' `checkpoint_store`) on
/// the table: `CasCheckpoints` over `TableCas`, each handle another
/// Function instance.
#[tokio::test]
async fn the_catch_up_checkpoints_keep_the_contract() {
    use relay_tests::checkpoint_store::{CASES, contract};
    let Some(url) = azurite() else { return };
    let table = fresh_store(&url, DEFAULT_TTL, CLAIM)
        .await
        .table_name()
        .to_owned();
    let ran = contract("table", || {
        let store =
            TableStore::with_timeouts(settings(&url, &table, DEV_KEY), DEFAULT_TTL, CLAIM).unwrap();
        async move { std::sync::Arc::new(store.checkpoints()) }
    })
    .await;
    assert_eq!(ran, CASES.len());
}
