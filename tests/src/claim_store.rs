//! The claim protocol as every idempotency store must keep it (issue 15):
//! one contract ([`contract`]) that the memory and file stores
//! (`tests/claim_store.rs`) and the cloud stores (DynamoDB on moto, Table
//! Storage on Azurite, Firestore on its emulator and the REST stand-in) all
//! run — claims, concurrent claims, expiry, takeover after expiry, stale
//! releases, forgotten outcomes, watermarks and stale-event protection,
//! concurrent watermark writers, awkward and over-long keys.
//!
//! The expiry cases use only short-lived handles (an in-process store is
//! one store per [`Timeouts`]). Expiry is in whole seconds, so the
//! short-lived stores live
//! [`SHORT`] (2 s): a record written at second `t` is live through the
//! rest of `t + 1` at least, and gone by `t + 3`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use relay_core::event::{EventId, Source};
use relay_core::store::{CLAIM_TIMEOUT, Claim, DEFAULT_TTL, IdempotencyStore};

/// The TTL and claim timeout of the short-lived stores.
pub const SHORT: Duration = Duration::from_secs(2);

/// What a store handle is opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timeouts {
    pub ttl: Duration,
    pub claim_timeout: Duration,
}

impl Timeouts {
    /// The production defaults.
    pub const NORMAL: Self = Self {
        ttl: DEFAULT_TTL,
        claim_timeout: CLAIM_TIMEOUT,
    };
    /// Everything expires after [`SHORT`].
    pub const SHORT: Self = Self {
        ttl: SHORT,
        claim_timeout: SHORT,
    };
}

/// How the backend's handles relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// Each `open` is another process on the same data (the cloud stores):
    /// a claim belongs to the process that made it.
    Separate,
    /// Every `open` (per [`Timeouts`]) is the same in-process store
    /// (memory, file): there is one claim owner, the process; the stale
    /// release case does not apply.
    Shared,
}

/// The cases of [`contract`], in order (the count is the suite's size).
pub const CASES: [&str; 9] = [
    "claim, complete, release",
    "ten concurrent claims, one winner",
    "an expired claim is taken over",
    "ten concurrent takeovers, one winner",
    "a stale release leaves the takeover alone",
    "an expired outcome is forgotten",
    "watermarks keep the newest time (stale events lose)",
    "twenty concurrent watermark writers end at the newest time",
    "awkward and over-long keys; expired watermarks are absent",
];

fn id(prefix: &str, s: &str) -> EventId {
    EventId::new(Source::Okta, &format!("{prefix}-{s}"))
}

/// Runs every case against the stores `open` returns; `prefix` keeps the
/// keys of one run apart from another's on a shared backend. Answers how
/// many cases ran.
pub async fn contract<S, F, Fut>(prefix: &str, instances: Instances, open: F) -> usize
where
    S: IdempotencyStore + 'static,
    F: Fn(Timeouts) -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let mut ran = 0;
    let normal = || open(Timeouts::NORMAL);
    let short = || open(Timeouts::SHORT);

    // 1. Claim, complete, release; another instance sees the outcome.
    let store = normal().await;
    let a = id(prefix, "a1b2c3d4-0001");
    assert_eq!(store.claim(&a).await.unwrap(), Claim::New);
    assert_eq!(store.claim(&a).await.unwrap(), Claim::InProgress);
    store.release(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::New);
    store.complete(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
    // Release after completion does not forget the outcome.
    store.release(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
    let other = normal().await;
    assert_eq!(other.claim(&a).await.unwrap(), Claim::Done);
    other.release(&a).await.unwrap();
    assert_eq!(store.claim(&a).await.unwrap(), Claim::Done);
    // Releasing what was never claimed is fine; sources are apart.
    other.release(&id(prefix, "never")).await.unwrap();
    let same_id_other_source =
        EventId::new(Source::Auth0Events, &format!("{prefix}-a1b2c3d4-0001"));
    assert_eq!(
        other.claim(&same_id_other_source).await.unwrap(),
        Claim::New
    );
    ran += 1;

    // 2. Ten instances, one event, all at once: exactly one wins.
    let key = id(prefix, "concurrent");
    let answers = claim_all(&normal, &key, 10).await;
    assert_eq!(count(&answers), (1, 9), "{answers:?}");
    ran += 1;

    // Set up everything that must expire, then wait once.
    let crashed = short().await;
    let stale = id(prefix, "stale-claim");
    assert_eq!(crashed.claim(&stale).await.unwrap(), Claim::New);
    let raced = id(prefix, "raced-takeover");
    assert_eq!(crashed.claim(&raced).await.unwrap(), Claim::New);
    let forgotten = id(prefix, "forgotten");
    assert_eq!(crashed.claim(&forgotten).await.unwrap(), Claim::New);
    crashed.complete(&forgotten).await.unwrap();
    let mark = format!("user:okta:{prefix}-expiring/state");
    crashed.set_watermark(&mark, 9_000).await.unwrap();
    assert_eq!(crashed.watermark(&mark).await.unwrap(), Some(9_000));
    // While live, they block.
    assert_eq!(
        short().await.claim(&stale).await.unwrap(),
        Claim::InProgress
    );
    assert_eq!(short().await.claim(&forgotten).await.unwrap(), Claim::Done);
    tokio::time::sleep(SHORT + Duration::from_millis(1_100)).await;

    // 3. A crashed worker's claim, expired, is taken over; the new claim
    // blocks others. (Across processes the takers have the normal claim
    // timeout, so a slow backend cannot let their claims expire too; an
    // in-process store is one store per timeouts.)
    let takers = match instances {
        Instances::Separate => Timeouts::NORMAL,
        Instances::Shared => Timeouts::SHORT,
    };
    let taker = open(takers).await;
    assert_eq!(taker.claim(&stale).await.unwrap(), Claim::New);
    let third = short().await;
    assert_eq!(third.claim(&stale).await.unwrap(), Claim::InProgress);
    ran += 1;

    // 4. Ten instances take over one expired claim at once: one wins.
    let answers = claim_all(&|| open(takers), &raced, 10).await;
    assert_eq!(count(&answers), (1, 9), "{answers:?}");
    ran += 1;

    // 5. The crashed worker comes back and releases its old claim: the
    // takeover stays (a process owns its claims; in-process stores have a
    // single owner, so the case is theirs only across processes).
    if instances == Instances::Separate {
        crashed.release(&stale).await.unwrap();
        assert_eq!(third.claim(&stale).await.unwrap(), Claim::InProgress);
        taker.complete(&stale).await.unwrap();
        assert_eq!(third.claim(&stale).await.unwrap(), Claim::Done);
        ran += 1;
    }

    // 6. An outcome past its TTL is forgotten (the clouds delete lazily).
    assert_eq!(short().await.claim(&forgotten).await.unwrap(), Claim::New);
    ran += 1;

    // 7. Watermarks: the newer time wins, an older one is ignored, keys are
    // apart; another instance reads what one wrote.
    let store = normal().await;
    let state = format!("user:okta:{prefix}-1/state");
    let member = format!("user:okta:{prefix}-1/member/group:okta:a b");
    assert_eq!(store.watermark(&state).await.unwrap(), None);
    store.set_watermark(&state, 2_000).await.unwrap();
    store.set_watermark(&state, 1_000).await.unwrap();
    assert_eq!(normal().await.watermark(&state).await.unwrap(), Some(2_000));
    store.set_watermark(&state, 2_000).await.unwrap();
    store.set_watermark(&member, 5).await.unwrap();
    assert_eq!(store.watermark(&member).await.unwrap(), Some(5));
    assert_eq!(store.watermark(&state).await.unwrap(), Some(2_000));
    store.set_watermark(&state, 3_000).await.unwrap();
    assert_eq!(store.watermark(&state).await.unwrap(), Some(3_000));
    ran += 1;

    // 8. Twenty writers of one subject at once, in scrambled order (7 is
    // prime to 20, so this is each of 1..=20 once): the newest time stays.
    // A writer may give up after `MARK_ROUNDS` lost races ("retry later",
    // a transient store error its caller retries): under load a writer of
    // a new time can lose to a chain of older ones landing first, so each
    // writer here retries the way a redelivery would; any other error
    // fails the test.
    let key = format!("group:okta:{prefix}-00g1/name");
    let times: Vec<i64> = (1..=20).map(|i| ((i * 7) % 20 + 1) * 1_000).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for at in times {
        let (store, key) = (normal().await, key.clone());
        tasks.spawn(async move {
            for _ in 0..10 {
                match store.set_watermark(&key, at).await {
                    Ok(()) => return,
                    Err(e) if e.to_string().contains("lost races") => {}
                    Err(e) => panic!("set_watermark({at}): {e}"),
                }
            }
            panic!("set_watermark({at}) gave up ten times in a row");
        });
    }
    tasks.join_all().await;
    assert_eq!(store.watermark(&key).await.unwrap(), Some(20_000));
    ran += 1;

    // 9. Awkward and over-long keys are distinct records; an expired
    // watermark is absent and an older time may then be written.
    let long = "z".repeat(3_000);
    let awkward = [
        "a/b\\c#d?e",
        "tab\tnew\nline",
        "ünïcødé ✓",
        "x'y",
        long.as_str(),
    ];
    for raw in awkward {
        let event = id(prefix, raw);
        assert_eq!(store.claim(&event).await.unwrap(), Claim::New, "{raw:?}");
        store.complete(&event).await.unwrap();
        assert_eq!(store.claim(&event).await.unwrap(), Claim::Done, "{raw:?}");
        let mark = format!("user:okta:{prefix}-{raw}/state");
        store.set_watermark(&mark, 77).await.unwrap();
        assert_eq!(store.watermark(&mark).await.unwrap(), Some(77), "{raw:?}");
    }
    // Two long keys that differ only at the end stay apart.
    let long_a = id(prefix, &format!("{long}a"));
    let long_b = id(prefix, &format!("{long}b"));
    assert_eq!(store.claim(&long_a).await.unwrap(), Claim::New);
    assert_eq!(store.claim(&long_b).await.unwrap(), Claim::New);
    assert_eq!(crashed.watermark(&mark).await.unwrap(), None);
    crashed.set_watermark(&mark, 1_000).await.unwrap();
    assert_eq!(crashed.watermark(&mark).await.unwrap(), Some(1_000));
    ran += 1;

    ran
}

async fn claim_all<S, F, Fut>(open: &F, key: &EventId, n: usize) -> Vec<Claim>
where
    S: IdempotencyStore + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<S>>,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (store, key) = (open().await, key.clone());
        tasks.spawn(async move { store.claim(&key).await.unwrap() });
    }
    tasks.join_all().await
}

/// (New, InProgress) among `answers`.
fn count(answers: &[Claim]) -> (usize, usize) {
    (
        answers.iter().filter(|c| **c == Claim::New).count(),
        answers.iter().filter(|c| **c == Claim::InProgress).count(),
    )
}
