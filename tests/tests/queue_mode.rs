//! Queue mode and stale-event protection through real sockets, the embedded
//! disk queue and duo-sim: poison messages are dead-lettered with their
//! reason while the rest flows; a failing queue makes the IdP retry; a late
//! event never undoes a newer one.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use duo_sim::DuoSim;
use relay_core::apply::DuoDirectory;
use relay_core::config::RawConfig;
use relay_core::event::{Change, EventId, GroupRef, IdpEvent, Source, UserRef};
use relay_core::pipeline::run_workers;
use relay_core::pipeline::{Relay, duo_relay};
use relay_core::queue::disk::DiskQueue;
use relay_core::queue::{
    BoxFuture, DeadLetterStore, EventQueue, QueueError, QueuePolicy, QueuedEvent,
};
use relay_core::store::MemoryStore;
use relay_tests::{SECRET, TestRelay, duo_env, fixture_text};

fn raw(sim: &DuoSim) -> RawConfig {
    let mut raw = duo_env(sim);
    raw.insert("OKTA_AUTH_SECRET".to_owned(), SECRET.to_owned());
    raw
}

fn relay(sim: &DuoSim) -> Relay<DuoDirectory, MemoryStore> {
    let retry = duo_admin::RetryPolicy::short(Duration::from_millis(100));
    duo_relay(
        &raw(sim),
        MemoryStore::default(),
        retry,
        Duration::from_secs(2),
    )
    .unwrap()
}

async fn serve(
    relay: Arc<Relay<DuoDirectory, MemoryStore>>,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(relay_server::serve(
        listener,
        relay_server::app(relay),
        relay_server::ServeLimits::default(),
        async move {
            let _ = rx.await;
        },
    ));
    (format!("http://{addr}"), tx)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("relay-qm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_their_reason_and_the_rest_flows() {
    let sim = DuoSim::start().await;
    let dir = temp_dir("poison");
    let queue = Arc::new(DiskQueue::open(&dir).unwrap());
    let relay = Arc::new(relay(&sim).with_queue(queue.clone()));
    let (base, stop_http) = serve(relay.clone()).await;
    let http = reqwest::Client::new();

    // 1. A message from a newer relay version (unreadable to this one).
    let mut future = QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, "from-the-future"),
        source: Source::Okta,
        event_type: "user.lifecycle.create".into(),
        occurred_at: None,
        change: Change::UserDeleted {
            user: UserRef {
                idp_id: Some("00uNEWUSER0000000001".into()),
                login: None,
            },
        },
    });
    future.v = 99;
    // 2. A membership for a user Duo does not have and the event cannot
    //    create (no login): a permanent failure ("target vanished").
    let orphan = QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Auth0Events, "orphan-role"),
        source: Source::Auth0Events,
        event_type: "user.role.assigned".into(),
        occurred_at: None,
        change: Change::MembershipAdded {
            user: UserRef {
                idp_id: Some("auth0|gone".into()),
                login: None,
            },
            group: GroupRef {
                idp_id: Some("rol_1".into()),
                name: Some("admins".into()),
            },
        },
    });
    queue.enqueue(&[future, orphan]).await.unwrap();
    // 3. Real deliveries behind them, one for the same subject as the
    //    poison message: none may be blocked.
    for fixture in [
        "okta/user-lifecycle-create.json",
        "okta/membership-add.json",
    ] {
        let r = http
            .post(format!("{base}/okta"))
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            .body(fixture_text(fixture))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        sim.total_calls(),
        0,
        "queue mode applies nothing in the request"
    );
    assert_eq!(queue.stats().pending, 4);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(run_workers(
        queue.clone(),
        relay.clone(),
        QueuePolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        2,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.stats().pending > 0 {
        assert!(
            Instant::now() < deadline,
            "queue did not drain: {:?}",
            queue.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    workers.await.unwrap();
    let _ = stop_http.send(());

    let jane = sim
        .user_by_username("jane.doe@example.com")
        .expect("created");
    assert_eq!(jane.groups, ["duo-users"]);
    let dead = queue.list(10).await.unwrap();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let reasons: Vec<&str> = dead.iter().map(|d| d.letter.reason.as_str()).collect();
    assert!(reasons[0].contains("version 99"), "{reasons:?}");
    assert!(reasons[1].starts_with("permanent failure:"), "{reasons:?}");
    assert!(reasons[1].contains("no login"), "{reasons:?}");
    assert_eq!(
        dead[1].letter.event_id.as_deref(),
        Some("auth0:orphan-role")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A queue that is down: the accept stage must answer 503 (nothing durable
/// holds the events, so the IdP retries) and call nobody.
#[derive(Debug)]
struct DownQueue;

impl EventQueue for DownQueue {
    fn enqueue<'a>(&'a self, _: &'a [QueuedEvent]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async { Err(QueueError::Backend("queue unavailable".into())) })
    }
}

#[tokio::test]
async fn a_queue_that_is_down_answers_503_so_the_idp_retries() {
    let sim = DuoSim::start().await;
    let relay = Arc::new(relay(&sim).with_queue(Arc::new(DownQueue)));
    let (base, stop) = serve(relay).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/okta"))
        .header("Authorization", SECRET)
        .header("Content-Type", "application/json")
        .body(fixture_text("okta/user-lifecycle-create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Bad input is still refused before the queue is asked.
    let r = http
        .post(format!("{base}/okta"))
        .header("Authorization", "wrong-secret-wrong-secret")
        .header("Content-Type", "application/json")
        .body(fixture_text("okta/user-lifecycle-create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(sim.total_calls(), 0);
    let _ = stop.send(());
}

fn with_published(fixture: &str, uuid: &str, published: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&fixture_text(fixture)).unwrap();
    v["data"]["events"][0]["uuid"] = uuid.into();
    v["data"]["events"][0]["published"] = published.into();
    v.to_string()
}

#[tokio::test]
async fn a_late_event_never_undoes_a_newer_state() {
    let relay = TestRelay::start().await;
    let deliver = |fixture: &str, uuid: &str, at: &str| {
        let body = with_published(fixture, uuid, at);
        let relay = &relay;
        async move {
            let r = relay.deliver("/okta", body).await;
            assert_eq!(r.status(), 200);
        }
    };
    deliver(
        "okta/user-lifecycle-create.json",
        "c1",
        "2026-03-12T08:00:00.000Z",
    )
    .await;
    // Unsuspended at 10:00 arrives before the suspension of 09:00.
    deliver("okta/unsuspend.json", "u1", "2026-03-12T10:00:00.000Z").await;
    deliver("okta/suspend.json", "s1", "2026-03-12T09:00:00.000Z").await;
    let jane = relay.sim.user_by_username("jane.doe@example.com").unwrap();
    assert_eq!(jane.status, "active", "the older suspension must not win");
    // Removed at 12:00 (from the same group) arrives before the add of 11:00.
    let mut remove: serde_json::Value = serde_json::from_str(&with_published(
        "okta/membership-add.json",
        "r1",
        "2026-03-12T12:00:00.000Z",
    ))
    .unwrap();
    remove["data"]["events"][0]["eventType"] = "group.user_membership.remove".into();
    assert_eq!(
        relay.deliver("/okta", remove.to_string()).await.status(),
        200
    );
    deliver("okta/membership-add.json", "a1", "2026-03-12T11:00:00.000Z").await;
    let jane = relay.sim.user_by_username("jane.doe@example.com").unwrap();
    assert!(jane.groups.is_empty(), "{:?}", jane.groups);
    // Deleted at 13:00; a late create (of 08:30) must not resurrect her.
    deliver(
        "okta/delete-initiated.json",
        "d1",
        "2026-03-12T13:00:00.000Z",
    )
    .await;
    assert!(relay.sim.user_by_username("jane.doe@example.com").is_none());
    let before = relay.sim.total_calls();
    deliver(
        "okta/user-lifecycle-create.json",
        "c2",
        "2026-03-12T08:30:00.000Z",
    )
    .await;
    deliver("okta/membership-add.json", "a2", "2026-03-12T12:30:00.000Z").await;
    assert!(relay.sim.user_by_username("jane.doe@example.com").is_none());
    assert_eq!(
        relay.sim.total_calls(),
        before,
        "stale events make no Duo call"
    );
    // A newer suspension still applies.
    let relay2 = TestRelay::start().await;
    for (fixture, uuid, at) in [
        (
            "okta/user-lifecycle-create.json",
            "c1",
            "2026-03-12T08:00:00.000Z",
        ),
        ("okta/suspend.json", "s1", "2026-03-12T09:00:00.000Z"),
    ] {
        let r = relay2
            .deliver("/okta", with_published(fixture, uuid, at))
            .await;
        assert_eq!(r.status(), 200);
    }
    let jane = relay2.sim.user_by_username("jane.doe@example.com").unwrap();
    assert_eq!(jane.status, "disabled");
}

/// Regression (found in review of the Pub/Sub worker): a message whose event
/// is claimed by another attempt must not be acked as a duplicate — if that
/// attempt fails or died, the event would be lost. It is retried instead.
#[tokio::test]
async fn a_message_claimed_by_another_attempt_is_retried_not_acked() {
    use relay_core::queue::Disposition;
    use relay_core::store::IdempotencyStore as _;
    let sim = DuoSim::start().await;
    let relay = relay(&sim);
    let message = QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, "claimed-elsewhere"),
        source: Source::Okta,
        event_type: "user.lifecycle.suspend".into(),
        occurred_at: None,
        change: Change::UserStateChanged {
            user: UserRef {
                idp_id: Some("00u1".into()),
                login: Some("jane@example.com".into()),
            },
            state: relay_core::event::UserState::Disabled,
        },
    });
    let policy = QueuePolicy::default();
    relay.store().claim(&message.event.id).await.unwrap();
    let (_, disposition) = relay.process(&message.to_json(), 1, &policy).await;
    assert!(
        matches!(&disposition, Disposition::Retry { reason } if reason.contains("another delivery")),
        "{disposition:?}"
    );
    assert_eq!(sim.total_calls(), 0);
    // The other attempt died: its claim is released (or expires).
    relay.store().release(&message.event.id).await.unwrap();
    let (_, disposition) = relay.process(&message.to_json(), 2, &policy).await;
    assert_eq!(disposition, Disposition::Done);
    assert_eq!(
        sim.user_by_username("jane@example.com").unwrap().status,
        "disabled"
    );
    // And now it is a duplicate.
    let (_, disposition) = relay.process(&message.to_json(), 3, &policy).await;
    assert_eq!(disposition, Disposition::Done);
}

/// A store that cannot record event times (a throttled table, say).
#[derive(Debug, Default)]
struct NoWatermarks(MemoryStore);

impl relay_core::store::IdempotencyStore for NoWatermarks {
    async fn claim(
        &self,
        key: &EventId,
    ) -> Result<relay_core::store::Claim, relay_core::store::StoreError> {
        self.0.claim(key).await
    }
    async fn complete(&self, key: &EventId) -> Result<(), relay_core::store::StoreError> {
        self.0.complete(key).await
    }
    async fn release(&self, key: &EventId) -> Result<(), relay_core::store::StoreError> {
        self.0.release(key).await
    }
    async fn watermark(&self, key: &str) -> Result<Option<i64>, relay_core::store::StoreError> {
        self.0.watermark(key).await
    }
    async fn set_watermark(
        &self,
        _key: &str,
        _at_ms: i64,
    ) -> Result<(), relay_core::store::StoreError> {
        Err(relay_core::store::StoreError::Backend(
            "UpdateItem: throttled".into(),
        ))
    }
}

/// Regression (found by the SQS chaos run): a change applied in Duo whose
/// event time could not be recorded was acked, so a late older event could
/// undo it. Now it is retried until the time is recorded.
#[tokio::test]
async fn an_event_whose_time_cannot_be_recorded_is_retried() {
    use relay_core::queue::Disposition;
    let sim = DuoSim::start().await;
    let retry = duo_admin::RetryPolicy::short(Duration::from_millis(100));
    let relay = duo_relay(
        &raw(&sim),
        NoWatermarks::default(),
        retry,
        Duration::from_secs(2),
    )
    .unwrap();
    let mut event = QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, "timed"),
        source: Source::Okta,
        event_type: "user.lifecycle.suspend".into(),
        occurred_at: Some("2026-03-12T09:00:00.000Z".into()),
        change: Change::UserStateChanged {
            user: UserRef {
                idp_id: Some("00u1".into()),
                login: Some("jane@example.com".into()),
            },
            state: relay_core::event::UserState::Disabled,
        },
    });
    let (report, disposition) = relay
        .process(&event.to_json(), 1, &QueuePolicy::default())
        .await;
    assert!(
        matches!(&disposition, Disposition::Retry { reason } if reason.contains("recording its event time")),
        "{disposition:?}"
    );
    assert_eq!(report.unwrap().outcome.label(), "failed_transient");
    // The claim was released: the retry applies again (idempotently).
    event.accepted_at_ms += 1;
    let (_, again) = relay
        .process(&event.to_json(), 2, &QueuePolicy::default())
        .await;
    assert!(matches!(again, Disposition::Retry { .. }), "{again:?}");
    assert_eq!(
        sim.user_by_username("jane@example.com").unwrap().status,
        "disabled"
    );
}
