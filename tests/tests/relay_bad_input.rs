//! Bad input gets a clear answer and changes nothing: not one Duo call.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use relay_tests::{SECRET, TestRelay, fixture_text};

const CREATE: &str = "okta/user-lifecycle-create.json";

async fn assert_no_duo_calls(relay: &TestRelay) {
    assert_eq!(relay.sim.total_calls(), 0, "{:?}", relay.sim.calls());
    assert!(relay.sim.snapshot().users.is_empty());
}

#[tokio::test]
async fn wrong_or_missing_secret_is_401_with_an_empty_body() {
    let relay = TestRelay::start().await;
    for (path, auth) in [
        ("/okta", Some("wrong-secret-wrong-secret")),
        ("/okta", None),
        ("/okta", Some("Bearer e2e-test-secret-0123456789abcdef")),
        ("/auth0", Some("Bearer nope-nope-nope-nope")),
        ("/auth0/logs", None),
    ] {
        let mut req = relay
            .http
            .post(relay.url(path))
            .header("Content-Type", "application/json")
            .body(fixture_text(CREATE));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{path} {auth:?}");
        assert!(res.bytes().await.unwrap().is_empty());
    }
    // The verification GET is authenticated too.
    let res = relay
        .http
        .get(relay.url("/okta"))
        .header("X-Okta-Verification-Challenge", "abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_no_duo_calls(&relay).await;
}

#[tokio::test]
async fn okta_verification_challenge_is_echoed() {
    let relay = TestRelay::start().await;
    let res = relay
        .http
        .get(relay.url("/okta"))
        .header("Authorization", SECRET)
        .header("x-okta-verification-challenge", "Z2o2b3BjT0l0dW5kZ1NIbQ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"verification": "Z2o2b3BjT0l0dW5kZ1NIbQ"})
    );
    // Authenticated but without a challenge: a bad request.
    let res = relay
        .http
        .get(relay.url("/okta"))
        .header("Authorization", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_no_duo_calls(&relay).await;
}

#[tokio::test]
async fn junk_wrong_shape_and_empty_batches_are_400() {
    let relay = TestRelay::start().await;
    for (path, body) in [
        ("/okta", "not json at all"),
        ("/okta", "[1,2,3]"),
        ("/okta", r#"{"data":{"events":[]}}"#),
        ("/okta", r#"{"data":{"events":"nope"}}"#),
        ("/okta", ""),
        ("/auth0", "{\"id\":"),
        ("/auth0", "42"),
        ("/auth0/logs", "\u{0}\u{1}garbage"),
        ("/auth0/logs", "[]"),
    ] {
        let res = relay.deliver(path, body).await;
        assert_eq!(res.status(), 400, "{path} {body:?}");
    }
    // Non-UTF-8 bytes.
    let res = relay.deliver("/okta", vec![0xff_u8, 0xfe, 0x7b]).await;
    assert_eq!(res.status(), 400);
    assert_no_duo_calls(&relay).await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let relay = TestRelay::start().await;
    let big = format!(
        "{{\"pad\":\"{}\"}}",
        "x".repeat(relay_server::MAX_BODY_BYTES + 10)
    );
    let res = relay.deliver("/okta", big).await;
    assert_eq!(res.status(), 413);
    assert_no_duo_calls(&relay).await;
}

#[tokio::test]
async fn wrong_method_content_type_and_route() {
    let relay = TestRelay::start().await;
    let res = relay
        .http
        .put(relay.url("/okta"))
        .header("Authorization", SECRET)
        .body(fixture_text(CREATE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let res = relay.http.get(relay.url("/auth0")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let res = relay
        .http
        .post(relay.url("/okta"))
        .header("Authorization", SECRET)
        .header("Content-Type", "text/html")
        .body(fixture_text(CREATE))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    let res = relay.deliver("/nowhere", "{}").await;
    assert_eq!(res.status(), 404);
    let res = relay.http.get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_no_duo_calls(&relay).await;
}
