//! Queue mode against Azurite's Queue and Table services, with duo-sim as
//! Duo and the real `relay-azure` binary as the custom handler.
//!
//! No Functions host runs here, so [`FunctionsHost`] does what the host's
//! queue trigger does with `queue_worker` (Storage Queues extension 5.x
//! `QueueProcessor`): dequeue a message, POST the custom-handler invocation
//! document to `/queue_worker` with `Metadata.DequeueCount`, delete the
//! message on a 2xx answer, otherwise make it visible again — or, once it
//! has been dequeued `maxDequeueCount` times, copy it to `<queue>-poison`
//! and delete it. The one liberty: a failed message is made visible again
//! at once instead of after host.json's five minutes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use duo_sim::{DuoSim, Faults};
use relay_azure::queue::QueueMessage;
use relay_azure::worker::HOST_MAX_DEQUEUE_COUNT;
use relay_azure::{PoisonQueue, StorageQueue};
use relay_core::event::{Change, EventId, IdpEvent, Source, UserProfile, UserRef, UserState};
use relay_core::queue::{DeadLetter, DeadLetterStore, QueuedEvent};
use serde_json::{Value, json};

use crate::common::{
    DEV_KEY, Handler, SECRET, app_settings, azurite, azurite_queue, fixture, free_port,
    fresh_queue, fresh_table, queue_settings, storage_connection_string, wait_ready,
};

/// What the Functions host does with one queue message.
struct FunctionsHost {
    main: StorageQueue,
    poison: StorageQueue,
    worker_url: String,
    http: reqwest::Client,
}

/// One invocation as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Invoked {
    status: u16,
    dequeue_count: u32,
    text: String,
}

impl FunctionsHost {
    fn new(queue_url: &str, queue: &str, port: u16) -> Self {
        let (main, poison) =
            StorageQueue::pair(&queue_settings(queue_url, queue, DEV_KEY)).unwrap();
        Self {
            main,
            poison,
            worker_url: format!(
                "http://127.0.0.1:{port}/{}",
                relay_azure::worker::FUNCTION_NAME
            ),
            http: reqwest::Client::new(),
        }
    }

    /// Processes one message; `None` when the queue is empty.
    async fn run_once(&self) -> Option<Invoked> {
        let message = self
            .main
            .get(1, Duration::from_secs(60))
            .await
            .unwrap()
            .into_iter()
            .next()?;
        let pop = message.pop_receipt.clone().unwrap();
        let invocation = json!({
            "Data": { "message": message.text },
            "Metadata": {
                "DequeueCount": message.dequeue_count,
                "Id": message.id,
                "PopReceipt": pop,
                "InsertionTime": message.insertion_time,
                "sys": { "MethodName": relay_azure::worker::FUNCTION_NAME, "UtcNow": "2026-03-12T10:00:00Z", "RandGuid": "00000000-0000-0000-0000-000000000000" }
            }
        });
        let status = self
            .http
            .post(&self.worker_url)
            .header("Content-Type", "application/json")
            .body(invocation.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if (200..300).contains(&status) {
            assert!(self.main.delete(&message.id, &pop).await.unwrap());
        } else if message.dequeue_count >= HOST_MAX_DEQUEUE_COUNT {
            self.poison.put(&message.text).await.unwrap();
            assert!(self.main.delete(&message.id, &pop).await.unwrap());
        } else {
            self.main
                .set_visibility(&message.id, &pop, Duration::ZERO)
                .await
                .unwrap();
        }
        Some(Invoked {
            status,
            dequeue_count: message.dequeue_count,
            text: message.text,
        })
    }

    /// Runs until the queue is empty (bounded).
    async fn drain(&self) -> Vec<Invoked> {
        let mut seen = Vec::new();
        while let Some(invoked) = self.run_once().await {
            seen.push(invoked);
            assert!(seen.len() < 100, "the queue never drained: {seen:?}");
        }
        seen
    }

    async fn poison_messages(&self) -> Vec<QueueMessage> {
        self.poison.peek(32).await.unwrap()
    }
}

/// The relay-azure binary in queue mode on fresh Azurite table and queue.
struct QueueApp {
    handler: Handler,
    port: u16,
    env: BTreeMap<String, String>,
    host: FunctionsHost,
}

impl QueueApp {
    async fn start(sim: &DuoSim, extra: &[(&str, &str)]) -> Option<Self> {
        let table_url = azurite()?;
        let queue_url = azurite_queue()?;
        let port = free_port();
        let queue = fresh_queue();
        let mut env = app_settings(
            sim,
            port,
            &storage_connection_string(&table_url, &queue_url),
            &fresh_table(),
        );
        env.insert("RELAY_MODE".into(), "queue".into());
        env.insert("RELAY_QUEUE_NAME".into(), queue.clone());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let mut handler = Handler::spawn(&env);
        wait_ready(&mut handler, port, Instant::now()).await;
        let host = FunctionsHost::new(&queue_url, &queue, port);
        Some(Self {
            handler,
            port,
            env,
            host,
        })
    }

    async fn deliver_okta(&self, fixture_name: &str) -> u16 {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/api/okta", self.port))
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            .body(fixture(fixture_name))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// `relay-azure dlq <args>` with the app's settings: (exit code, stdout).
    async fn dlq(&self, args: &[&str]) -> (i32, String) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_relay-azure"));
        command
            .arg("dlq")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.env);
        relay_tests::run_to_end(command).await
    }

    /// The summary lines (`message: "event"`) the handler wrote so far.
    fn summaries(&self) -> Vec<Value> {
        relay_tests::summary_lines(&self.handler.logs())
    }
}

fn okta_user(idp_id: &str, login: &str) -> UserRef {
    UserRef {
        idp_id: Some(idp_id.into()),
        login: Some(login.into()),
    }
}

fn event(id: &str, at: &str, event_type: &str, change: Change) -> QueuedEvent {
    QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, id),
        source: Source::Okta,
        event_type: event_type.into(),
        occurred_at: Some(at.into()),
        change,
    })
}

fn create(id: &str, at: &str, user: &UserRef) -> QueuedEvent {
    event(
        id,
        at,
        "user.lifecycle.create",
        Change::UserUpserted {
            user: user.clone(),
            profile: UserProfile {
                login: user.login.clone(),
                email: user.login.clone(),
                display_name: Some("Queue Person".into()),
                first_name: Some("Queue".into()),
                last_name: Some("Person".into()),
                ..UserProfile::default()
            },
            state: Some(UserState::Active),
        },
    )
}

fn set_state(id: &str, at: &str, user: &UserRef, state: UserState) -> QueuedEvent {
    event(
        id,
        at,
        "user.lifecycle.state",
        Change::UserStateChanged {
            user: user.clone(),
            state,
        },
    )
}

#[tokio::test]
async fn storage_queue_round_trip_and_shared_key_is_checked() {
    let Some(url) = azurite_queue() else { return };
    let name = fresh_queue();
    let (main, poison) = StorageQueue::pair(&queue_settings(&url, &name, DEV_KEY)).unwrap();
    assert_eq!(poison.name(), format!("{name}-poison"));
    main.create_if_absent().await.unwrap();
    main.create_if_absent().await.unwrap(); // exists: fine
    let text = r#"{"v":1,"note":"ünïcødé & <xml> +/="}"#;
    main.put(text).await.unwrap();
    // Peek has no side effect; the text comes back decoded.
    let peeked = main.peek(32).await.unwrap();
    assert_eq!(peeked.len(), 1);
    assert_eq!(peeked[0].text, text);
    assert_eq!(main.peek(32).await.unwrap().len(), 1);
    let got = main.get(32, Duration::from_secs(60)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].dequeue_count, 1);
    // Hidden while leased, visible again on request (new pop receipt).
    assert!(
        main.get(32, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    let pop = got[0].pop_receipt.clone().unwrap();
    let new_pop = main
        .set_visibility(&got[0].id, &pop, Duration::ZERO)
        .await
        .unwrap()
        .expect("a new pop receipt");
    let again = main.get(1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(again[0].dequeue_count, 2);
    // The old receipts are stale now: delete answers "gone", not an error.
    assert!(!main.delete(&got[0].id, &new_pop).await.unwrap());
    assert!(
        main.delete(&again[0].id, again[0].pop_receipt.as_deref().unwrap())
            .await
            .unwrap()
    );
    assert!(main.peek(32).await.unwrap().is_empty());
    // Azurite checks every SharedKey signature: a wrong key is refused.
    let wrong = StorageQueue::new(
        &queue_settings(&url, &name, "d3Jvbmcta2V5LXdyb25nLWtleQ=="),
        &name,
    )
    .unwrap();
    let err = wrong.put("x").await.unwrap_err().to_string();
    assert!(err.contains("HTTP 403"), "{err}");
    assert!(!err.contains(DEV_KEY));
    // Over the size limit: refused before it is sent.
    let err = main.put(&"x".repeat(49 * 1024)).await.unwrap_err();
    assert!(err.to_string().contains("limit"), "{err}");
}

#[tokio::test]
async fn accepted_events_wait_in_the_queue_until_the_worker_applies_them_once() {
    let sim = DuoSim::start().await;
    let Some(app) = QueueApp::start(&sim, &[]).await else {
        return;
    };
    // Accept: 200 at once, nothing in Duo yet, one message in the queue.
    assert_eq!(
        app.deliver_okta("okta/user-lifecycle-create.json").await,
        200
    );
    assert_eq!(sim.total_calls(), 0, "the accept stage must not call Duo");
    let queued = app.host.main.peek(32).await.unwrap();
    assert_eq!(queued.len(), 1);
    let message = QueuedEvent::from_json(&queued[0].text).unwrap();
    assert_eq!(
        message.event.id.as_str(),
        "okta:a1b2c3d4-0001-11f0-9c2e-000000000001"
    );
    // The Okta retry of the same delivery is queued again (no dedup in
    // Storage Queues) …
    assert_eq!(
        app.deliver_okta("okta/user-lifecycle-create.json").await,
        200
    );
    // … and the worker applies the event once.
    let invoked = app.host.drain().await;
    assert_eq!(
        invoked.iter().map(|i| i.status).collect::<Vec<_>>(),
        [200, 200]
    );
    let jane = sim
        .user_by_username("jane.doe@example.com")
        .expect("created");
    assert_eq!(jane.status, "active");
    assert_eq!(sim.call_count("POST /admin/v1/users"), 1);
    let outcomes: Vec<String> = app
        .summaries()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["applied", "duplicate"]);
    assert!(app.host.poison_messages().await.is_empty());
    // Bad credentials are still refused before anything is queued.
    let refused = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/okta", app.port))
        .header("Authorization", "not-the-secret-at-all")
        .header("Content-Type", "application/json")
        .body(fixture("okta/user-lifecycle-create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(app.host.main.peek(32).await.unwrap().is_empty());
    let logs = app.handler.logs();
    assert!(!logs.contains(SECRET) && !logs.contains(DEV_KEY), "{logs}");
}

#[tokio::test]
async fn transient_failures_retry_then_dead_letter_with_the_reason_and_replay() {
    let sim = DuoSim::start().await;
    let Some(app) = QueueApp::start(&sim, &[("RELAY_QUEUE_MAX_ATTEMPTS", "3")]).await else {
        return;
    };
    // Duo answers 500 to everything.
    sim.set_faults(Faults {
        rate_500: 1.0,
        ..Faults::default()
    });
    assert_eq!(
        app.deliver_okta("okta/user-lifecycle-create.json").await,
        200
    );
    // Attempts 1 and 2 fail the invocation (the host retries); attempt 3
    // gives up: the dead letter goes to the poison queue and the
    // invocation succeeds, so the host does not move the message itself.
    let invoked = app.host.drain().await;
    assert_eq!(
        invoked
            .iter()
            .map(|i| (i.dequeue_count, i.status))
            .collect::<Vec<_>>(),
        [(1, 500), (2, 500), (3, 200)]
    );
    assert!(sim.user_by_username("jane.doe@example.com").is_none());
    let poison = app.host.poison_messages().await;
    assert_eq!(poison.len(), 1);
    let letter: DeadLetter = serde_json::from_str(&poison[0].text).unwrap();
    assert_eq!(letter.attempts, 3);
    assert!(
        letter.reason.starts_with("gave up after 3 attempts"),
        "{}",
        letter.reason
    );
    assert_eq!(letter.body, invoked[0].text);
    assert_eq!(
        letter.event_id.as_deref(),
        Some("okta:a1b2c3d4-0001-11f0-9c2e-000000000001")
    );
    let logs = app.handler.logs();
    let dead: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "dead_letter")
        .collect();
    assert_eq!(dead.len(), 1, "{logs}");
    assert_eq!(dead[0]["attempts"], 3);

    // `dlq list` shows it with its reason; `show` by event id too.
    let (code, out) = app.dlq(&["list", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["id"], poison[0].id.as_str());
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 3 attempts")
    );
    let (code, out) = app
        .dlq(&["show", "okta:a1b2c3d4-0001-11f0-9c2e-000000000001"])
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("gave up after 3 attempts"), "{out}");
    // Listing hid nothing: the dead letter is visible right away.
    assert_eq!(app.host.poison_messages().await.len(), 1);

    // Duo is back; the replay puts the event back on the queue, the
    // worker applies it (its claim was released when it was dead-lettered).
    sim.set_faults(Faults::default());
    let (code, out) = app.dlq(&["replay", &poison[0].id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 replayed, 0 failed"), "{out}");
    assert!(app.host.poison_messages().await.is_empty());
    let invoked = app.host.drain().await;
    assert_eq!(invoked.len(), 1);
    assert_eq!((invoked[0].dequeue_count, invoked[0].status), (1, 200));
    assert_eq!(
        sim.user_by_username("jane.doe@example.com").unwrap().status,
        "active"
    );
    let (code, out) = app.dlq(&["list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("0 dead letter(s)"), "{out}");
    // An unknown id fails the command, naming it.
    let (code, out) = app
        .dlq(&["replay", "00000000-0000-0000-0000-000000000000"])
        .await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("could not replay"), "{out}");
}

#[tokio::test]
async fn poison_messages_go_to_dead_letters_at_once_and_the_rest_flows() {
    let sim = DuoSim::start().await;
    let Some(app) = QueueApp::start(&sim, &[]).await else {
        return;
    };
    // A message nobody can read, then a good event behind it.
    app.host.main.put("definitely not an event").await.unwrap();
    let future = create(
        "from-the-future",
        "2026-03-12T10:00:00.000Z",
        &okta_user("00uV99", "v99@example.com"),
    )
    .to_json()
    .replace(r#""v":1,"#, r#""v":99,"#);
    assert!(future.contains(r#""v":99"#));
    app.host.main.put(&future).await.unwrap();
    assert_eq!(
        app.deliver_okta("okta/user-lifecycle-create.json").await,
        200
    );
    let invoked = app.host.drain().await;
    // Every invocation succeeded on its first dequeue: nothing blocked.
    assert_eq!(
        invoked
            .iter()
            .map(|i| (i.dequeue_count, i.status))
            .collect::<Vec<_>>(),
        [(1, 200), (1, 200), (1, 200)]
    );
    assert!(sim.user_by_username("jane.doe@example.com").is_some());
    let mut reasons: Vec<String> = app
        .host
        .poison_messages()
        .await
        .iter()
        .map(|m| serde_json::from_str::<DeadLetter>(&m.text).unwrap().reason)
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].starts_with("queue message version 99"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("unreadable queue message"),
        "{reasons:?}"
    );

    // A message the host moved itself (the worker never answered) is a
    // dead letter too, with the host's reason.
    let stranded = serde_json::to_string(&QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, "stranded-1"),
        source: Source::Okta,
        event_type: "user.lifecycle.deactivate".into(),
        occurred_at: None,
        change: Change::UserStateChanged {
            user: okta_user("00uSTRANDED", "stranded@example.com"),
            state: UserState::Disabled,
        },
    }))
    .unwrap();
    app.host.poison.put(&stranded).await.unwrap();
    let store = PoisonQueue::new(app.host.main.clone(), app.host.poison.clone());
    let listed = store.list(100).await.unwrap();
    assert_eq!(listed.len(), 3);
    let moved = listed
        .iter()
        .find(|e| e.letter.event_id.as_deref() == Some("okta:stranded-1"))
        .unwrap();
    assert!(moved.letter.reason.contains("maxDequeueCount"));
    assert_eq!(moved.letter.body, stranded);
    // `--limit` bounds the scan, and everything is visible again after it.
    assert_eq!(store.list(2).await.unwrap().len(), 2);
    assert_eq!(app.host.poison_messages().await.len(), 3);
}

#[tokio::test]
async fn stale_events_do_not_undo_newer_state() {
    let sim = DuoSim::start().await;
    let Some(app) = QueueApp::start(&sim, &[]).await else {
        return;
    };
    let user = okta_user("00uSTALE0001", "stale.person@example.com");
    // Storage Queues do not keep order: the reactivation of 10:00:02
    // arrives after the deactivation of 10:00:05.
    for message in [
        create("stale-create", "2026-03-12T10:00:00.000Z", &user),
        set_state(
            "stale-deactivate",
            "2026-03-12T10:00:05.000Z",
            &user,
            UserState::Disabled,
        ),
        set_state(
            "stale-reactivate",
            "2026-03-12T10:00:02.000Z",
            &user,
            UserState::Active,
        ),
    ] {
        app.host.main.put(&message.to_json()).await.unwrap();
    }
    let invoked = app.host.drain().await;
    assert!(invoked.iter().all(|i| i.status == 200), "{invoked:?}");
    let person = sim.user_by_username("stale.person@example.com").unwrap();
    assert_eq!(
        person.status, "disabled",
        "a stale reactivation undid the deactivation"
    );
    let summaries = app.summaries();
    let last = summaries.last().unwrap();
    assert_eq!(last["event_id"], "okta:stale-reactivate");
    assert_eq!(last["outcome"], "skipped");
    assert!(
        last["detail"].as_str().unwrap().starts_with("stale:"),
        "{last}"
    );
}

#[tokio::test]
async fn start_up_names_a_bad_queue_setting() {
    let sim = DuoSim::start().await;
    let mut env = app_settings(
        &sim,
        free_port(),
        "UseDevelopmentStorage=true",
        "relayidempotency",
    );
    env.insert("RELAY_MODE".into(), "queue".into());
    env.insert("RELAY_QUEUE_NAME".into(), "Not_A_Queue".into());
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(stderr.contains("RELAY_QUEUE_NAME: must be"), "{stderr}");
    let mut env = app_settings(
        &sim,
        free_port(),
        "UseDevelopmentStorage=true",
        "relayidempotency",
    );
    env.insert("RELAY_MODE".into(), "fifo".into());
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(
        stderr.contains("RELAY_MODE: must be sync or queue"),
        "{stderr}"
    );
}

/// The dead-letter contract every backend keeps (relay-tests'
/// `dead_letters::contract`), through `dlq` on the poison queue: letters
/// written as the queue worker writes them (its `DeadLetterSink`),
/// replays onto the main queue.
#[tokio::test]
async fn the_poison_queue_keeps_the_dead_letter_contract() {
    use relay_core::queue::DeadLetterSink as _;
    use relay_tests::dead_letters::{Backend, CASES, contract};
    let Some(url) = azurite_queue() else { return };
    let name = fresh_queue();
    let (main, poison) = StorageQueue::pair(&queue_settings(&url, &name, DEV_KEY)).unwrap();
    main.create_if_absent().await.unwrap();
    poison.create_if_absent().await.unwrap();
    let store = PoisonQueue::new(main.clone(), poison.clone());
    let ran = contract(Backend {
        name: "azure poison queue",
        store: &store,
        write: Box::new(|letter| {
            let poison = poison.clone();
            Box::pin(async move { poison.put_dead_letter(&letter).await })
        }),
        drain_main: Box::new(|| {
            let main = main.clone();
            Box::pin(async move {
                let mut bodies = Vec::new();
                loop {
                    let got = main.get(32, Duration::from_secs(60)).await.unwrap();
                    if got.is_empty() {
                        return bodies;
                    }
                    for message in got {
                        main.delete(&message.id, message.pop_receipt.as_deref().unwrap())
                            .await
                            .unwrap();
                        bodies.push(message.text);
                    }
                }
            })
        }),
    })
    .await;
    assert_eq!(ran, CASES.len());
}
