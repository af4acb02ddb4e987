//! The DynamoDB idempotency store on moto: the semantics of relay-core's
//! MemoryStore, atomic under concurrent claims, and errors as StoreError.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use relay_aws::DynamoStore;
use relay_core::event::{EventId, Source};
use relay_core::store::{Claim, IdempotencyStore, StoreError};

fn id(s: &str) -> EventId {
    EventId::new(Source::Okta, s)
}

async fn store(moto: &str) -> (aws_config::SdkConfig, DynamoStore) {
    let sdk = sdk(moto).await;
    let table = create_table(&sdk).await;
    let store = DynamoStore::new(relay_aws::dynamodb_client(&sdk), table);
    (sdk, store)
}

#[tokio::test]
async fn claim_complete_release() {
    let Some(moto) = moto_url() else { return };
    let (_, store) = store(&moto).await;
    assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::New);
    assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::InProgress);
    store.release(&id("a")).await.unwrap();
    assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::New);
    store.complete(&id("a")).await.unwrap();
    assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Done);
    // Release after completion does not forget the outcome.
    store.release(&id("a")).await.unwrap();
    assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Done);
    // Releasing what was never claimed is fine.
    store.release(&id("never")).await.unwrap();
    // Keys are per event id, sources apart.
    assert_eq!(
        store
            .claim(&EventId::new(Source::Auth0Events, "a"))
            .await
            .unwrap(),
        Claim::New
    );
}

#[tokio::test]
async fn the_item_carries_the_ttl_attribute_in_epoch_seconds() {
    let Some(moto) = moto_url() else { return };
    let (sdk, store) = store(&moto).await;
    store.claim(&id("ttl")).await.unwrap();
    store.complete(&id("ttl")).await.unwrap();
    let item = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("okta:ttl".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["state"].as_s().unwrap(), "done");
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let week = 7 * 24 * 3600;
    assert!(
        (now + week - 5..=now + week + 5).contains(&expires),
        "{expires}"
    );
}

#[tokio::test]
async fn ten_concurrent_claims_of_one_event_have_one_winner() {
    let Some(moto) = moto_url() else { return };
    let (_, store) = store(&moto).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.claim(&id("race")).await.unwrap()
        }));
    }
    let mut claims = Vec::new();
    for task in tasks {
        claims.push(task.await.unwrap());
    }
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::New).count(),
        1,
        "{claims:?}"
    );
    assert_eq!(
        claims.iter().filter(|c| **c == Claim::InProgress).count(),
        9
    );
}

#[tokio::test]
async fn a_stale_claim_expires_and_a_zero_ttl_forgets() {
    let Some(moto) = moto_url() else { return };
    let (_, store) = store(&moto).await;
    // A worker that claimed and died: after the claim timeout, claimable.
    let crashed = store.clone().with_claim_timeout(Duration::ZERO);
    assert_eq!(crashed.claim(&id("stale")).await.unwrap(), Claim::New);
    assert_eq!(store.claim(&id("stale")).await.unwrap(), Claim::New);
    // ... and the new claim (normal timeout) blocks others.
    assert_eq!(store.claim(&id("stale")).await.unwrap(), Claim::InProgress);

    // An expired done entry (DynamoDB's TTL deletes lazily) is claimable.
    let forgetful = store.clone().with_ttl(Duration::ZERO);
    assert_eq!(forgetful.claim(&id("old")).await.unwrap(), Claim::New);
    forgetful.complete(&id("old")).await.unwrap();
    assert_eq!(forgetful.claim(&id("old")).await.unwrap(), Claim::New);
}

#[tokio::test]
async fn backend_failures_are_store_errors() {
    let Some(moto) = moto_url() else { return };
    let sdk = sdk(&moto).await;
    let missing = DynamoStore::new(relay_aws::dynamodb_client(&sdk), "no-such-table");
    let err = missing.claim(&id("x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(err.to_string().contains("no-such-table"), "{err}");
    assert!(missing.complete(&id("x")).await.is_err());
    assert!(missing.release(&id("x")).await.is_err());

    let dead = common::sdk("http://127.0.0.1:9").await;
    let unreachable = DynamoStore::new(relay_aws::dynamodb_client(&dead), "t");
    let err = unreachable.claim(&id("x")).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("idempotency store backend: DynamoDB PutItem on table t"),
        "{err}"
    );
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn watermarks_keep_the_newest_time_with_the_ttl_attribute() {
    let Some(moto) = moto_url() else { return };
    let (sdk, store) = store(&moto).await;
    let key = "user:okta:00u1/state";
    assert_eq!(store.watermark(key).await.unwrap(), None);
    store.set_watermark(key, 2_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(2_000));
    // An older time does not move it back; a newer one moves it on.
    store.set_watermark(key, 1_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(2_000));
    store.set_watermark(key, 2_000).await.unwrap();
    store.set_watermark(key, 3_500).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(3_500));
    // Keys are independent, and never meet an event id's item.
    assert_eq!(
        store.watermark("user:okta:00u1/profile").await.unwrap(),
        None
    );
    assert_eq!(
        store.claim(&id("user:okta:00u1/state")).await.unwrap(),
        Claim::New
    );
    assert_eq!(store.watermark(key).await.unwrap(), Some(3_500));

    // The item: `wm#<key>`, the time, and the TTL attribute a week ahead.
    let item = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("wm#{key}")),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["at_ms"].as_n().unwrap(), "3500");
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let week = 7 * 24 * 3600;
    let now = now_secs();
    assert!(
        (now + week - 5..=now + week + 5).contains(&expires),
        "{expires}"
    );
}

#[tokio::test]
async fn concurrent_watermark_writes_end_at_the_newest_time() {
    let Some(moto) = moto_url() else { return };
    let (_, store) = store(&moto).await;
    let key = "group:okta:00g1/name";
    let mut times: Vec<i64> = (1..=20).map(|i| i * 1_000).collect();
    fastrand::shuffle(&mut times);
    let mut tasks = Vec::new();
    for at in times {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.set_watermark(key, at).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.watermark(key).await.unwrap(), Some(20_000));
}

#[tokio::test]
async fn an_expired_watermark_is_absent_and_long_keys_are_hashed() {
    let Some(moto) = moto_url() else { return };
    let (_, store) = store(&moto).await;
    // DynamoDB's TTL deletes lazily: an expired item must read as absent,
    // and a write over it wins whatever its time.
    let forgetful = store.clone().with_ttl(Duration::ZERO);
    forgetful.set_watermark("k", 9_000).await.unwrap();
    assert_eq!(store.watermark("k").await.unwrap(), None);
    store.set_watermark("k", 10).await.unwrap();
    assert_eq!(store.watermark("k").await.unwrap(), Some(10));

    let long = format!("user:okta:00u2/member/group:okta:{}", "g".repeat(3000));
    assert!(DynamoStore::watermark_pk(&long).len() < 100);
    store.set_watermark(&long, 77).await.unwrap();
    assert_eq!(store.watermark(&long).await.unwrap(), Some(77));
    let longer = format!("{long}x");
    assert_eq!(store.watermark(&longer).await.unwrap(), None);
}

#[tokio::test]
async fn failed_attempts_are_counted_per_queue_message() {
    let Some(moto) = moto_url() else { return };
    let (_, store) = store(&moto).await;
    assert_eq!(store.failed_attempts("m-1").await.unwrap(), 0);
    assert_eq!(store.record_failed_attempt("m-1").await.unwrap(), 1);
    assert_eq!(store.record_failed_attempt("m-1").await.unwrap(), 2);
    assert_eq!(store.failed_attempts("m-1").await.unwrap(), 2);
    assert_eq!(store.failed_attempts("m-2").await.unwrap(), 0);
    let missing = DynamoStore::new(
        relay_aws::dynamodb_client(&sdk(&moto).await),
        "no-such-table",
    );
    assert!(missing.watermark("k").await.is_err());
    assert!(missing.set_watermark("k", 1).await.is_err());
    assert!(missing.record_failed_attempt("m").await.is_err());
}

/// The Duo group index in the idempotency table keeps the contract every
/// group index store keeps (relay-tests' `group_index::contract`): a cold
/// start loads what an earlier instance stored, so its first membership add
/// at 5,000 groups makes no listing.
#[tokio::test]
async fn the_group_index_in_the_table_keeps_the_contract() {
    use relay_core::group_index::GroupIndexStore;
    use std::sync::Arc;
    let Some(moto) = moto_url() else { return };
    let (sdk, store) = store(&moto).await;
    let calls = relay_tests::group_index::contract(|| {
        // A new client each time: what a cold start would build (the
        // worker's timeouts: moto, in Python, needs longer than DynamoDB to
        // read or write a 5,000-group index).
        let cold = DynamoStore::new(relay_aws::worker_dynamodb_client(&sdk), store.table());
        Arc::new(cold.group_index()) as Arc<dyn GroupIndexStore>
    })
    .await;
    assert_eq!(
        calls, 2,
        "first membership add after a cold start: lookup + add"
    );
    // The shards and the mark are items of their own: the idempotency keys
    // beside them are untouched, and none of them expires.
    assert_eq!(store.claim(&id("beside")).await.unwrap(), Claim::New);
    let shard = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(store.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(relay_aws::groups::shard_pk(0)),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!shard.contains_key("expires_at"));
    assert!(shard.keys().any(|k| k.starts_with("g:")), "{shard:?}");
}

/// The claim protocol's contract (relay-tests' `claim_store::contract`),
/// the one every idempotency store runs: each handle is another process on
/// the same table.
#[tokio::test]
async fn the_claim_protocol_keeps_the_contract() {
    use relay_tests::claim_store::{CASES, Instances, contract};
    let Some(moto) = moto_url() else { return };
    let (sdk, store) = store(&moto).await;
    let client = relay_aws::dynamodb_client(&sdk);
    let table = store.table().to_owned();
    let ran = contract("dynamo", Instances::Separate, |t| {
        let store = DynamoStore::new(client.clone(), table.clone())
            .with_ttl(t.ttl)
            .with_claim_timeout(t.claim_timeout);
        async move { std::sync::Arc::new(store) }
    })
    .await;
    assert_eq!(ran, CASES.len());
}

/// The catch-up checkpoint contract (relay-tests' `checkpoint_store`) on
/// the table: `CasCheckpoints` over `DynamoCas`, each handle another
/// function instance.
#[tokio::test]
async fn the_catch_up_checkpoints_keep_the_contract() {
    use relay_tests::checkpoint_store::{CASES, contract};
    let Some(moto) = moto_url() else { return };
    let (sdk, store) = store(&moto).await;
    let client = relay_aws::dynamodb_client(&sdk);
    let table = store.table().to_owned();
    let ran = contract("dynamo", || {
        let store = DynamoStore::new(client.clone(), table.clone());
        async move { std::sync::Arc::new(store.checkpoints()) }
    })
    .await;
    assert_eq!(ran, CASES.len());
    // The item: partition key cp#<source>, the JSON in `checkpoint`, the
    // table's TTL attribute a year or more ahead.
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("cp#dynamo-okta".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let body = item["checkpoint"].as_s().unwrap();
    assert!(body.contains("after=3_3"), "{body}");
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires > now + 365 * 24 * 3600, "{expires}");
}
