//! The handler driven with Lambda events as AWS sends them (Function URL /
//! HTTP API payload 2.0 and REST API payload 1.0, plain and base64 bodies),
//! deserialized by lambda_http, through the relay, into the Duo simulator;
//! the idempotency store is DynamoDB on moto.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use relay_aws::{AwsRelay, DynamoStore, SecretSource};

const TTL: Duration = Duration::from_secs(300);

fn okta_headers(secret: &str) -> [(&str, &str); 2] {
    [
        ("Authorization", secret),
        ("Content-Type", "application/json"),
    ]
}

#[tokio::test]
async fn function_url_event_creates_the_duo_user() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(TTL).await;
    let body = okta_fixture("user-lifecycle-create.json");
    let event = v2_event(
        "POST",
        "/okta",
        "$default",
        &okta_headers(OKTA_SECRET),
        Some(&body),
        false,
    );
    let response = relay.handle(request(&event)).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    let user = fx
        .sim
        .user_by_username(CREATED_USER)
        .expect("Duo user created");
    assert_eq!(user.status, "active");
}

#[tokio::test]
async fn http_api_event_with_a_base64_body_on_a_named_stage() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(TTL).await;
    let body = okta_fixture("user-lifecycle-create.json");
    let event = v2_event(
        "POST",
        "/okta",
        "live",
        &okta_headers(OKTA_SECRET),
        Some(&body),
        true,
    );
    let response = relay.handle(request(&event)).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());
}

#[tokio::test]
async fn rest_api_event_with_multi_value_headers_and_a_base64_body() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(TTL).await;
    let body = okta_fixture("user-lifecycle-create.json");
    let event = v1_event(
        "POST",
        "/okta",
        "prod",
        &okta_headers(OKTA_SECRET),
        Some(&body),
        true,
    );
    let response = relay.handle(request(&event)).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());

    // And a plain body on the same API.
    let event = v1_event(
        "POST",
        "/okta",
        "prod",
        &okta_headers(OKTA_SECRET),
        Some(&body),
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 200);
}

#[tokio::test]
async fn healthz_challenge_and_refusals_over_both_payload_versions() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(TTL).await;

    for event in [
        v1_event("GET", "/healthz", "prod", &[], None, false),
        v2_event("GET", "/healthz", "$default", &[], None, false),
    ] {
        let response = relay.handle(request(&event)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(body_text(&response), r#"{"status":"ok"}"#);
    }

    // Okta's one-time verification.
    let headers = [
        ("Authorization", OKTA_SECRET),
        ("X-Okta-Verification-Challenge", "abc123challenge"),
    ];
    let response = relay
        .handle(request(&v2_event(
            "GET", "/okta", "$default", &headers, None, false,
        )))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        body_text(&response),
        r#"{"verification":"abc123challenge"}"#
    );

    let body = okta_fixture("user-lifecycle-create.json");
    // Wrong secret: 401 with an empty body, nothing in Duo.
    let event = v2_event(
        "POST",
        "/okta",
        "$default",
        &okta_headers("wrong-secret-0123456789"),
        Some(&body),
        false,
    );
    let response = relay.handle(request(&event)).await;
    assert_eq!(response.status(), 401);
    assert!(body_text(&response).is_empty());
    // No secret at all.
    let event = v1_event(
        "POST",
        "/okta",
        "prod",
        &[("Content-Type", "application/json")],
        Some(&body),
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 401);
    // Wrong content type, unknown route, wrong method.
    let event = v2_event(
        "POST",
        "/okta",
        "$default",
        &[
            ("Authorization", OKTA_SECRET),
            ("Content-Type", "text/plain"),
        ],
        Some(&body),
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 415);
    let event = v2_event(
        "POST",
        "/nope",
        "$default",
        &okta_headers(OKTA_SECRET),
        Some(&body),
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 404);
    let event = v1_event(
        "DELETE",
        "/okta",
        "prod",
        &okta_headers(OKTA_SECRET),
        None,
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 405);
    // Not a delivery.
    let event = v2_event(
        "POST",
        "/okta",
        "$default",
        &okta_headers(OKTA_SECRET),
        Some("{\"x\":1}"),
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 400);
    assert!(fx.sim.user_by_username(CREATED_USER).is_none());
}

#[tokio::test]
async fn the_same_delivery_three_times_creates_one_duo_user() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(TTL).await;
    let body = okta_fixture("user-lifecycle-create.json");
    // Once over a Function URL, then twice over a REST API: same event id.
    let events = [
        v2_event(
            "POST",
            "/okta",
            "$default",
            &okta_headers(OKTA_SECRET),
            Some(&body),
            false,
        ),
        v1_event(
            "POST",
            "/okta",
            "prod",
            &okta_headers(OKTA_SECRET),
            Some(&body),
            true,
        ),
        v2_event(
            "POST",
            "/okta",
            "$default",
            &okta_headers(OKTA_SECRET),
            Some(&body),
            true,
        ),
    ];
    for event in &events {
        let response = relay.handle(request(event)).await;
        assert_eq!(response.status(), 200, "{}", body_text(&response));
    }
    assert_eq!(fx.sim.call_count("POST /admin/v1/users"), 1);
    assert_eq!(fx.sim.snapshot().users.len(), 1);

    // A second cold start (a new instance) shares the table: still applied once.
    let other = fx.relay(TTL).await;
    assert_eq!(other.handle(request(&events[0])).await.status(), 200);
    assert_eq!(fx.sim.call_count("POST /admin/v1/users"), 1);
}

#[tokio::test]
async fn an_unreachable_store_answers_503_so_the_idp_retries() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    // Secrets from moto, but DynamoDB on a port where nothing listens.
    let dead = sdk("http://127.0.0.1:9").await;
    let store = DynamoStore::new(relay_aws::dynamodb_client(&dead), &fx.table);
    let relay = AwsRelay::start(
        plain_env(&fx.sim),
        settings(&fx.secret_id, &fx.table, TTL),
        SecretSource::new(&fx.sdk, &fx.secret_id),
        store,
        None,
    )
    .await
    .unwrap();
    let body = okta_fixture("user-lifecycle-create.json");
    let event = v2_event(
        "POST",
        "/okta",
        "$default",
        &okta_headers(OKTA_SECRET),
        Some(&body),
        false,
    );
    let started = std::time::Instant::now();
    let response = relay.handle(request(&event)).await;
    assert_eq!(response.status(), 503);
    // The store client gives up after 2 s (Okta waits 3 s); the bound here
    // is looser so a loaded CI machine does not fail it.
    eprintln!("503 after {} ms", started.elapsed().as_millis());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the store client's 2 s operation timeout"
    );
    assert!(fx.sim.user_by_username(CREATED_USER).is_none());

    // A missing table is a store error too (503), not a 4xx.
    let store = DynamoStore::new(relay_aws::dynamodb_client(&fx.sdk), "no-such-table");
    let relay = AwsRelay::start(
        plain_env(&fx.sim),
        settings(&fx.secret_id, "no-such-table", TTL),
        SecretSource::new(&fx.sdk, &fx.secret_id),
        store,
        None,
    )
    .await
    .unwrap();
    assert_eq!(relay.handle(request(&event)).await.status(), 503);
}
