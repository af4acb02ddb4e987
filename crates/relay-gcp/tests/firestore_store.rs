//! The Firestore idempotency store: its semantics against the Firestore
//! emulator (when scripts/emulators.sh started one) and against the REST
//! stand-in; token handling, faults and configuration against the
//! stand-ins. Not tested against a real Firestore (no GCP project here).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    Backend, FirestoreStandIn, LATE_ANSWER, MetadataStandIn, STAND_IN_TOKEN, unique_project,
};
use relay_core::config::from_pairs as raw;
use relay_core::event::{EventId, Source};
use relay_core::store::{Claim, IdempotencyStore, StoreError};
use relay_gcp::firestore::{DEFAULT_COLLECTION, FirestoreAuth};
use relay_gcp::{FirestoreConfig, FirestoreStore, GcpStore};

fn id(s: &str) -> EventId {
    EventId::new(Source::Okta, s)
}

/// Runs one semantic check against the stand-in and, in a second test,
/// against the emulator.
macro_rules! on_both_backends {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn stand_in() {
                super::$check(&super::Backend::stand_in().await).await;
            }

            #[tokio::test]
            async fn emulator() {
                if let Some(backend) = super::Backend::emulator().await {
                    super::$check(&backend).await;
                }
            }
        }
    };
}

on_both_backends!(the_catch_up_checkpoints_keep_the_contract);
/// The catch-up checkpoint contract (relay-tests' `checkpoint_store`) on
/// the collection: `CasCheckpoints` over `FirestoreCas`, each handle
/// another instance.
async fn the_catch_up_checkpoints_keep_the_contract(backend: &Backend) {
    use relay_tests::checkpoint_store::{CASES, contract};
    let ran = contract("firestore", || async move {
        Arc::new(
            backend
                .store_with(|c| c.request_timeout = Duration::from_secs(10))
                .await
                .checkpoints(),
        )
    })
    .await;
    assert_eq!(ran, CASES.len());
}

on_both_backends!(the_claim_protocol_keeps_the_contract);
/// The claim protocol's contract (relay-tests' `claim_store::contract`),
/// the one every idempotency store runs: each handle is another instance on
/// the same collection. Requests get 10 s (the emulator is a JVM on a
/// shared machine).
async fn the_claim_protocol_keeps_the_contract(backend: &Backend) {
    use relay_tests::claim_store::{CASES, Instances, contract};
    let ran = contract("firestore", Instances::Separate, |t| async move {
        Arc::new(
            backend
                .store_with(|c| {
                    c.ttl = t.ttl;
                    c.claim_timeout = t.claim_timeout;
                    c.request_timeout = Duration::from_secs(10);
                })
                .await,
        )
    })
    .await;
    assert_eq!(ran, CASES.len());
}

on_both_backends!(claim_complete_release);
async fn claim_complete_release(backend: &Backend) {
    let store = backend.store().await;
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
    // Another instance (a second store) sees the same.
    let other = backend.store().await;
    assert_eq!(other.claim(&a).await.unwrap(), Claim::Done);
    other.release(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);

    let doc = backend
        .read_doc(DEFAULT_COLLECTION, &FirestoreStore::document_id(&a))
        .await
        .unwrap();
    assert_eq!(doc["fields"]["state"]["stringValue"], "done");
    assert_eq!(
        doc["fields"]["event_id"]["stringValue"],
        "okta:a1b2c3d4-0001"
    );
    assert!(
        doc["fields"]["expires_at"]["timestampValue"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

on_both_backends!(ten_concurrent_claims_one_wins);
async fn ten_concurrent_claims_one_wins(backend: &Backend) {
    // Ten instances, one event, all at once.
    let mut stores = Vec::new();
    for _ in 0..10 {
        stores.push(Arc::new(backend.store().await));
    }
    let key = id("concurrent");
    let mut tasks = tokio::task::JoinSet::new();
    for store in &stores {
        let (store, key) = (store.clone(), key.clone());
        tasks.spawn(async move { store.claim(&key).await.unwrap() });
    }
    let answers = tasks.join_all().await;
    let new = answers.iter().filter(|c| **c == Claim::New).count();
    let in_progress = answers.iter().filter(|c| **c == Claim::InProgress).count();
    assert_eq!((new, in_progress), (1, 9), "{answers:?}");
}

on_both_backends!(expired_entries_are_taken_over);
async fn expired_entries_are_taken_over(backend: &Backend) {
    let store = backend.store().await;
    // A crashed instance's claim, long expired (Firestore's TTL deletion is
    // lazy, so such documents linger).
    let crashed = id("crashed");
    backend
        .seed_doc(
            DEFAULT_COLLECTION,
            &FirestoreStore::document_id(&crashed),
            "claimed",
            "2020-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(store.claim(&crashed).await.unwrap(), Claim::New);
    assert_eq!(store.claim(&crashed).await.unwrap(), Claim::InProgress);
    // A done entry past its TTL counts as forgotten, like MemoryStore.
    let old = id("old-done");
    backend
        .seed_doc(
            DEFAULT_COLLECTION,
            &FirestoreStore::document_id(&old),
            "done",
            "2020-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(store.claim(&old).await.unwrap(), Claim::New);
    // A live claim from elsewhere blocks.
    let live = id("live");
    backend
        .seed_doc(
            DEFAULT_COLLECTION,
            &FirestoreStore::document_id(&live),
            "claimed",
            "2999-01-01T00:00:00Z",
        )
        .await;
    assert_eq!(store.claim(&live).await.unwrap(), Claim::InProgress);
}

on_both_backends!(a_stale_release_leaves_the_takeover_alone);
async fn a_stale_release_leaves_the_takeover_alone(backend: &Backend) {
    // Instance A's claims expire at once; B takes A's claim over; A then
    // releases: that must not delete B's claim.
    let a = backend
        .store_with(|c| c.claim_timeout = Duration::ZERO)
        .await;
    let b = backend.store().await;
    let key = id("slow-instance");
    assert_eq!(a.claim(&key).await.unwrap(), Claim::New);
    // Expiry is whole seconds: wait until A's deadline has passed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.claim(&key).await.unwrap(), Claim::New);
    a.release(&key).await.unwrap();
    let c = backend.store().await;
    assert_eq!(c.claim(&key).await.unwrap(), Claim::InProgress);
    b.complete(&key).await.unwrap();
    assert_eq!(c.claim(&key).await.unwrap(), Claim::Done);
}

on_both_backends!(awkward_event_ids_are_valid_documents);
async fn awkward_event_ids_are_valid_documents(backend: &Backend) {
    let store = backend.store().await;
    // `/` and `__…__` are not allowed in Firestore document ids; the store
    // encodes them away. Distinct ids stay distinct.
    let long = "x".repeat(400);
    let too_long = "y".repeat(2_000);
    for raw_id in ["a/b/c", "__name__", "..", "ünï cödé ✓", &long, &too_long] {
        let key = EventId::new(Source::Auth0Logs, raw_id);
        assert_eq!(store.claim(&key).await.unwrap(), Claim::New, "{raw_id}");
        store.complete(&key).await.unwrap();
        assert_eq!(store.claim(&key).await.unwrap(), Claim::Done, "{raw_id}");
    }
    assert_ne!(
        FirestoreStore::document_id(&id("a")),
        FirestoreStore::document_id(&id("b"))
    );
    let hashed = FirestoreStore::document_id(&EventId::new(Source::Auth0Logs, &too_long));
    assert!(
        hashed.starts_with("sha256.") && hashed.len() == 7 + 64,
        "{hashed}"
    );
}

#[tokio::test]
async fn the_emulator_admin_token_is_used_with_firestore_emulator_host() {
    // FIRESTORE_EMULATOR_HOST, as `gcloud emulators firestore start` prints
    // it: no metadata server involved.
    let Some(host) = common::emulator_host() else {
        return;
    };
    let config = FirestoreConfig::from_config(&raw(&[
        ("FIRESTORE_EMULATOR_HOST", &host),
        ("GOOGLE_CLOUD_PROJECT", &unique_project()),
        // Nothing listens here: a metadata call would fail the test.
        ("GCE_METADATA_HOST", "127.0.0.1:9"),
    ]))
    .unwrap();
    assert_eq!(config.auth, FirestoreAuth::Emulator);
    let store = FirestoreStore::connect(config).await.unwrap();
    let key = id("emulator-host");
    assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
    store.complete(&key).await.unwrap();
    assert_eq!(store.claim(&key).await.unwrap(), Claim::Done);
}

#[tokio::test]
async fn the_token_is_fetched_once_and_cached_across_calls() {
    let backend = Backend::stand_in().await;
    let store = backend.store().await;
    assert_eq!(
        backend.metadata.token_fetches(),
        0,
        "no call before the first use"
    );
    for n in 0..5 {
        let key = id(&format!("cached-{n}"));
        store.claim(&key).await.unwrap();
        store.complete(&key).await.unwrap();
        store.claim(&key).await.unwrap();
    }
    assert_eq!(backend.metadata.token_fetches(), 1);
    // Concurrent first uses share one fetch too.
    let fresh = Arc::new(backend.store().await);
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..8 {
        let store = fresh.clone();
        tasks.spawn(async move { store.claim(&id(&format!("together-{n}"))).await.unwrap() });
    }
    tasks.join_all().await;
    assert_eq!(backend.metadata.token_fetches(), 2);
}

#[tokio::test]
async fn a_token_is_refreshed_a_minute_before_it_expires() {
    // 61 s of life = 1 s before the refresh margin is reached.
    let backend = Backend::stand_in_with_expiry(61).await;
    let store = backend.store().await;
    store.claim(&id("r1")).await.unwrap();
    store.claim(&id("r2")).await.unwrap();
    assert_eq!(backend.metadata.token_fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.claim(&id("r3")).await.unwrap();
    assert_eq!(backend.metadata.token_fetches(), 2);
    // A token with less than a minute left is never cached.
    backend
        .metadata
        .state
        .expires_in
        .store(30, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    store.claim(&id("r4")).await.unwrap();
    store.claim(&id("r5")).await.unwrap();
    assert_eq!(backend.metadata.token_fetches(), 4);
}

#[tokio::test]
async fn the_metadata_flavor_header_is_sent_and_required() {
    let backend = Backend::stand_in().await;
    // The stand-in refuses a request without the header, like the real one.
    let bare = reqwest::get(format!(
        "http://{}/computeMetadata/v1/instance/service-accounts/default/token",
        backend.metadata.host()
    ))
    .await
    .unwrap();
    assert_eq!(bare.status(), 403);
    assert_eq!(
        backend
            .metadata
            .state
            .refused_without_header
            .swap(0, Ordering::SeqCst),
        1
    );
    // The store's requests carry it: no refusals.
    let store = backend.store().await;
    assert_eq!(store.claim(&id("flavor")).await.unwrap(), Claim::New);
    assert_eq!(
        backend
            .metadata
            .state
            .refused_without_header
            .load(Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_metadata_server_that_refuses_is_a_store_error() {
    // A "metadata server" that answers 403 to everything: the Firestore
    // stand-in itself has no such route.
    let firestore = FirestoreStandIn::start(STAND_IN_TOKEN).await;
    let config = FirestoreConfig::from_config(&raw(&[
        ("GOOGLE_CLOUD_PROJECT", "p"),
        ("RELAY_FIRESTORE_URL", &firestore.base_url()),
        ("GCE_METADATA_HOST", &firestore.addr.to_string()),
    ]))
    .unwrap();
    let store = FirestoreStore::connect(config).await.unwrap();
    let err = store.claim(&id("no-token")).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)));
    assert!(err.to_string().contains("metadata server"), "{err}");
    assert_eq!(firestore.state.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn firestore_5xx_is_a_store_error_and_the_next_call_recovers() {
    let backend = Backend::stand_in().await;
    let store = backend.store().await;
    let firestore = backend.firestore.as_ref().unwrap();
    let key = id("unavailable");
    firestore.state.fail_next.store(1, Ordering::SeqCst);
    let err = store.claim(&key).await.unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)));
    let text = err.to_string();
    assert!(
        text.contains("503") && text.contains("UNAVAILABLE"),
        "{text}"
    );
    assert!(!text.contains(STAND_IN_TOKEN));
    assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
    for op in ["complete", "release"] {
        firestore.state.fail_next.store(1, Ordering::SeqCst);
        let result = if op == "complete" {
            store.complete(&key).await
        } else {
            // A release not held by this instance reads first.
            backend.store().await.release(&key).await
        };
        assert!(result.is_err(), "{op}");
    }
}

/// The client timeout of the lost-answer test: see there.
const LOST_ANSWER_TIMEOUT: Duration = Duration::from_millis(1500);
const _: () = assert!(LOST_ANSWER_TIMEOUT.as_millis() < LATE_ANSWER.as_millis());

#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_this_instances() {
    // Firestore applies the write but the answer comes after the client's
    // timeout. Reading the claim's nonce back tells the claim landed;
    // otherwise the IdP's retry would find an unowned claim "in progress".
    // The timeout is short enough that the stand-in's late answer
    // (`LATE_ANSWER`, 4 s) always misses it, and long enough that its other
    // answers never do on a loaded machine (300 ms did: CI saw a plain
    // release time out at load 17).
    let backend = Backend::stand_in().await;
    let store = backend
        .store_with(|c| c.request_timeout = LOST_ANSWER_TIMEOUT)
        .await;
    let firestore = backend.firestore.as_ref().unwrap();
    let key = id("lost-answer");
    firestore.state.slow_after_write.store(1, Ordering::SeqCst);
    assert_eq!(store.claim(&key).await.unwrap(), Claim::New);
    assert_eq!(
        backend.store().await.claim(&key).await.unwrap(),
        Claim::InProgress
    );
    // It is held like any claim: the release deletes it.
    store.release(&key).await.unwrap();
    assert_eq!(backend.store().await.claim(&key).await.unwrap(), Claim::New);

    // The same for a takeover of an expired entry.
    let expired = id("lost-takeover");
    backend
        .seed_doc(
            DEFAULT_COLLECTION,
            &FirestoreStore::document_id(&expired),
            "claimed",
            "2020-01-01T00:00:00Z",
        )
        .await;
    firestore.state.slow_after_write.store(1, Ordering::SeqCst);
    assert_eq!(store.claim(&expired).await.unwrap(), Claim::New);
    assert_eq!(
        backend.store().await.claim(&expired).await.unwrap(),
        Claim::InProgress
    );

    // A write that did not land stays an error (the IdP retries).
    firestore.state.fail_next.store(1, Ordering::SeqCst);
    assert!(store.claim(&id("not-landed")).await.is_err());
}

#[tokio::test]
async fn a_refused_token_is_forgotten_and_fetched_again() {
    let backend = Backend::stand_in().await;
    let store = backend.store().await;
    store.claim(&id("t1")).await.unwrap();
    assert_eq!(backend.metadata.token_fetches(), 1);
    let firestore = backend.firestore.as_ref().unwrap();
    firestore
        .state
        .unauthenticated_next
        .store(1, Ordering::SeqCst);
    let err = store.claim(&id("t2")).await.unwrap_err();
    assert!(err.to_string().contains("UNAUTHENTICATED"), "{err}");
    assert_eq!(store.claim(&id("t2")).await.unwrap(), Claim::New);
    assert_eq!(backend.metadata.token_fetches(), 2);
}

#[tokio::test]
async fn an_unreachable_firestore_is_a_prompt_store_error() {
    let metadata = MetadataStandIn::start(STAND_IN_TOKEN, 3599, "p").await;
    let closed = common::free_port();
    let config = FirestoreConfig::from_config(&raw(&[
        ("GOOGLE_CLOUD_PROJECT", "p"),
        (
            "RELAY_FIRESTORE_URL",
            &format!("http://127.0.0.1:{closed}/v1"),
        ),
        ("GCE_METADATA_HOST", &metadata.host()),
    ]))
    .unwrap();
    let store = FirestoreStore::connect(config).await.unwrap();
    let started = std::time::Instant::now();
    let err = store.claim(&id("nowhere")).await.unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_project_comes_from_the_metadata_server_when_unset() {
    let metadata = MetadataStandIn::start(STAND_IN_TOKEN, 3599, "from-metadata-42").await;
    let store = GcpStore::from_config(&raw(&[("GCE_METADATA_HOST", &metadata.host())]))
        .await
        .unwrap();
    assert_eq!(
        store.to_string(),
        "firestore projects/from-metadata-42/databases/(default)/documents/relay-idempotency"
    );
    assert_eq!(metadata.state.project_fetches.load(Ordering::SeqCst), 1);
    // Named database and collection.
    let store = GcpStore::from_config(&raw(&[
        ("GOOGLE_CLOUD_PROJECT", "my-proj"),
        ("RELAY_FIRESTORE_DATABASE", "relay-db"),
        ("RELAY_FIRESTORE_COLLECTION", "relay_events"),
    ]))
    .await
    .unwrap();
    assert_eq!(
        store.to_string(),
        "firestore projects/my-proj/databases/relay-db/documents/relay_events"
    );
}

#[tokio::test]
async fn no_discoverable_project_fails_naming_google_cloud_project() {
    let closed = common::free_port();
    let err = GcpStore::from_config(&raw(&[(
        "GCE_METADATA_HOST",
        &format!("127.0.0.1:{closed}"),
    )]))
    .await
    .unwrap_err();
    assert_eq!(err.variable, "GOOGLE_CLOUD_PROJECT");
    assert!(
        err.to_string()
            .starts_with("GOOGLE_CLOUD_PROJECT: is not set"),
        "{err}"
    );
}

#[tokio::test]
async fn bad_configuration_names_the_variable() {
    let cases: &[(&str, &str, &str)] = &[
        ("RELAY_STORE", "redis", "RELAY_STORE"),
        (
            "RELAY_FIRESTORE_COLLECTION",
            "a/b",
            "RELAY_FIRESTORE_COLLECTION",
        ),
        (
            "RELAY_FIRESTORE_COLLECTION",
            "__x__",
            "RELAY_FIRESTORE_COLLECTION",
        ),
        (
            "RELAY_FIRESTORE_DATABASE",
            "My DB",
            "RELAY_FIRESTORE_DATABASE",
        ),
        (
            "RELAY_FIRESTORE_URL",
            "ftp://nowhere",
            "RELAY_FIRESTORE_URL",
        ),
        (
            "GCE_METADATA_HOST",
            "http://169.254.169.254",
            "GCE_METADATA_HOST",
        ),
        (
            "FIRESTORE_EMULATOR_HOST",
            "localhost:8080/v1",
            "FIRESTORE_EMULATOR_HOST",
        ),
        (
            "GOOGLE_CLOUD_PROJECT",
            "Not A Project",
            "GOOGLE_CLOUD_PROJECT",
        ),
    ];
    for (name, value, variable) in cases {
        let mut env = raw(&[("GOOGLE_CLOUD_PROJECT", "p")]);
        env.insert((*name).to_owned(), (*value).to_owned());
        let err = GcpStore::from_config(&env).await.unwrap_err();
        assert_eq!(err.variable, *variable, "{name}={value}");
        assert!(!err.to_string().contains(value), "{err}");
    }
    // memory needs no project at all.
    let memory = GcpStore::from_config(&raw(&[("RELAY_STORE", "memory")]))
        .await
        .unwrap();
    assert_eq!(memory.claim(&id("m")).await.unwrap(), Claim::New);
    assert_eq!(memory.claim(&id("m")).await.unwrap(), Claim::InProgress);
}

#[tokio::test]
async fn debug_output_holds_no_token() {
    let backend = Backend::stand_in().await;
    let store = backend.store().await;
    store.claim(&id("debug")).await.unwrap();
    let printed = format!("{store:?}");
    assert!(!printed.contains(STAND_IN_TOKEN), "{printed}");
    let token = relay_gcp::metadata::AccessToken::new(STAND_IN_TOKEN);
    assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
}

// ---------------------------------------------------------------- watermarks
// Against the Firestore emulator only (the stand-in does not model
// `exists: false` preconditions).

#[tokio::test]
async fn watermarks_keep_the_newer_time_against_the_emulator() {
    let Some(backend) = Backend::emulator().await else {
        return;
    };
    let store = backend.store().await;
    let key = "user:okta:00u1abc/state";
    assert_eq!(store.watermark(key).await.unwrap(), None);
    store.set_watermark(key, 2_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(2_000));
    store.set_watermark(key, 1_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(2_000));
    store.set_watermark(key, 3_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(3_000));
    assert_eq!(
        store.watermark("user:okta:00u1abc/profile").await.unwrap(),
        None
    );
    // Another instance reads the same; slashes and other characters in
    // keys make valid document ids.
    let other = backend.store().await;
    assert_eq!(other.watermark(key).await.unwrap(), Some(3_000));
    let odd = "group:auth0:rol_#?\\/ünï/name";
    other.set_watermark(odd, 42).await.unwrap();
    assert_eq!(store.watermark(odd).await.unwrap(), Some(42));
    let long = "k".repeat(2_000);
    store.set_watermark(&long, 7).await.unwrap();
    assert_eq!(store.watermark(&long).await.unwrap(), Some(7));
    // In the idempotency collection (one TTL policy), never an event's id.
    let doc = backend
        .read_doc(DEFAULT_COLLECTION, &FirestoreStore::mark_document_id(key))
        .await
        .expect("the watermark document");
    assert_eq!(doc["fields"]["at_ms"]["integerValue"], "3000");
    assert!(doc["fields"]["expires_at"]["timestampValue"].is_string());
    assert_eq!(store.claim(&id(key)).await.unwrap(), Claim::New);
    assert_eq!(store.watermark(key).await.unwrap(), Some(3_000));
    // Through the GcpStore the service uses.
    let raw: relay_core::config::RawConfig = backend.env().into_iter().collect();
    let gcp = GcpStore::from_config(&raw).await.unwrap();
    assert_eq!(gcp.watermark(key).await.unwrap(), Some(3_000));
}

#[tokio::test]
async fn concurrent_watermark_writers_end_at_the_newest_time() {
    let Some(backend) = Backend::emulator().await else {
        return;
    };
    let key = "user:okta:00uRACE/state";
    let backend = Arc::new(backend);
    let mut tasks = Vec::new();
    for at in [5_i64, 12, 3, 9, 1, 11, 7, 2, 10, 4, 8, 6] {
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            backend.store().await.set_watermark(key, at * 1000).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        backend.store().await.watermark(key).await.unwrap(),
        Some(12_000)
    );
}

#[tokio::test]
async fn watermarks_expire_like_the_idempotency_entries() {
    let Some(backend) = Backend::emulator().await else {
        return;
    };
    let store = backend.store_with(|c| c.ttl = Duration::from_secs(3)).await;
    let key = "group:okta:00gEXP/deleted";
    // Warm up (the first call to a fresh table or project can be slow),
    // then write and read back at once: well within the 3 s (expiry is in
    // whole seconds, so a mark lives 2 to 3 s).
    assert_eq!(store.watermark(key).await.unwrap(), None);
    store.set_watermark(key, 9_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(9_000));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while store.watermark(key).await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watermark did not expire after its 3 s TTL"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    store.set_watermark(key, 1_000).await.unwrap();
    assert_eq!(store.watermark(key).await.unwrap(), Some(1_000));
}

/// The Duo group index in the idempotency collection keeps the contract
/// every group index store keeps (relay-tests' `group_index::contract`):
/// another instance loads what one stored, so its first membership add at
/// 5,000 groups makes no listing. Against the emulator only (the REST
/// stand-in knows no batchGet or field masks); the index handle keeps
/// nothing in memory, so each handle sees only what Firestore holds.
#[tokio::test]
async fn the_group_index_in_the_collection_keeps_the_contract() {
    use relay_core::group_index::GroupIndexStore;
    let Some(backend) = Backend::emulator().await else {
        return;
    };
    // The emulator (a JVM on this shared machine) can take longer than the
    // 2 s a request gets in production to write or read 5,000 groups.
    let store = backend
        .store_with(|c| c.request_timeout = Duration::from_secs(30))
        .await;
    let calls = relay_tests::group_index::contract(|| {
        Arc::new(store.group_index()) as Arc<dyn GroupIndexStore>
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
