//! Sync mode's time budget (issue 13 item 7): a large batch is not applied
//! for 30 s inside a request Okta gave up on after 3 s. Once
//! `RELAY_SYNC_BUDGET_MS` is spent no further event is started; the answer
//! is 503 with a body saying why, the IdP redelivers, and the redelivery
//! skips what was applied (remembered) and carries on — every event is
//! applied exactly once in the end.

#![allow(clippy::unwrap_used)] // test: fail loudly

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use duo_sim::{DuoSim, Faults};
use relay_core::pipeline::{Route, duo_relay};
use relay_core::store::MemoryStore;
use relay_tests::TestRelay;
use serde_json::{Value, json};

const EVENTS: usize = 20;

fn batch() -> String {
    let events: Vec<Value> = (0..EVENTS)
        .map(|i| {
            json!({
                "uuid": format!("budget-{i:03}"),
                "published": format!("2026-03-11T09:00:{i:02}.000Z"),
                "eventType": "user.lifecycle.create",
                "outcome": {"result": "SUCCESS"},
                "target": [{"id": format!("00uBUDGET{i:03}"), "type": "User",
                    "alternateId": format!("budget{i}@example.com"), "displayName": format!("B {i}")}]
            })
        })
        .collect();
    json!({"eventType": "com.okta.event_hook", "data": {"events": events}}).to_string()
}

#[tokio::test]
async fn a_batch_over_the_sync_budget_is_finished_by_redeliveries() {
    let relay = TestRelay::start_with(&[("RELAY_SYNC_BUDGET_MS", "300")]).await;
    // Every Duo call takes 100 ms: an event takes two or more, so 300 ms
    // holds a couple of events, not twenty.
    relay.sim.set_faults(Faults {
        latency: Duration::from_millis(100),
        ..Faults::default()
    });
    let body = batch();
    let first = relay.deliver("/okta", body.clone()).await;
    assert_eq!(first.status(), 503);
    let answer: Value = serde_json::from_slice(&first.bytes().await.unwrap()).unwrap();
    let processed = answer["processed"].as_u64().unwrap();
    assert!(
        (1..EVENTS as u64).contains(&processed),
        "some but not all events applied: {answer}"
    );
    assert_eq!(answer["deferred"], EVENTS as u64 - processed);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("sync time budget (300 ms) spent"),
        "{answer}"
    );
    assert_eq!(relay.sim.snapshot().users.len(), processed as usize);

    // The IdP redelivers (Okta once; a person with `replay` as often as
    // needed): each redelivery skips what was applied and goes further.
    let mut deliveries = 1;
    loop {
        let response = relay.deliver("/okta", body.clone()).await;
        deliveries += 1;
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(deliveries < 2 * EVENTS, "no progress");
    }
    let users = relay.sim.snapshot().users;
    assert_eq!(users.len(), EVENTS);
    assert_eq!(
        relay.sim.call_count("POST /admin/v1/users"),
        EVENTS,
        "each user created once"
    );
    eprintln!("{EVENTS} events over {deliveries} deliveries");
}

#[tokio::test]
async fn no_budget_applies_the_whole_batch_in_one_request() {
    let relay = TestRelay::start_with(&[("RELAY_SYNC_BUDGET_MS", "0")]).await;
    relay.sim.set_faults(Faults {
        latency: Duration::from_millis(20),
        ..Faults::default()
    });
    let response = relay.deliver("/okta", batch()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(relay.sim.snapshot().users.len(), EVENTS);
}

/// A delivery whose budget is already spent when its body is in (a body
/// that took longer than the budget to arrive, counted from the request's
/// arrival): each delivery still applies one event not applied before, so
/// redeliveries finish the batch. Events already applied (duplicates,
/// skipped without a Duo call) do not count as that one.
#[tokio::test]
async fn a_delivery_whose_budget_is_spent_on_arrival_still_applies_a_new_event() {
    let sim = DuoSim::start().await;
    let mut raw = relay_tests::duo_env(&sim);
    raw.insert("OKTA_AUTH_SECRET".into(), relay_tests::SECRET.into());
    raw.insert("RELAY_SYNC_BUDGET_MS".into(), "100".into());
    let relay = duo_relay(
        &raw,
        MemoryStore::default(),
        duo_admin::RetryPolicy::none(),
        Duration::from_secs(2),
    )
    .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static(relay_tests::SECRET),
    );
    let body = Bytes::from(batch());
    for delivery in 1..=EVENTS {
        let arrived = Instant::now() - Duration::from_secs(1);
        let authenticated = relay
            .authenticate(Route::Delivery(relay_core::event::Source::Okta), &headers)
            .unwrap();
        let response = relay
            .handle_authenticated(authenticated, body.clone(), arrived)
            .await;
        assert_eq!(
            sim.snapshot().users.len(),
            delivery,
            "delivery {delivery} applied one new event"
        );
        let expected = if delivery == EVENTS { 200 } else { 503 };
        assert_eq!(
            relay_server::respond(response).status().as_u16(),
            expected,
            "delivery {delivery}"
        );
    }
    assert_eq!(sim.call_count("POST /admin/v1/users"), EVENTS);
}
