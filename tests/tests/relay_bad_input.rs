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
    // Every path the start-up log line names is served: none falls through
    // to the 404 of an unknown route (an unauthenticated POST is 401, 405
    // on /healthz).
    let paths = relay_server::served_paths("");
    assert_eq!(paths.len(), relay_core::source::SOURCES.len() + 1);
    for path in paths {
        let res = relay.http.post(relay.url(&path)).send().await.unwrap();
        assert_ne!(res.status(), 404, "{path} is named but not served");
    }
    assert_no_duo_calls(&relay).await;
}

/// Issue 13 item 5: a delivery none of whose records is well-formed is 400
/// (the README's promise), with no Duo call; one well-formed record beside
/// the junk keeps today's answer (200, the junk skipped).
#[tokio::test]
async fn junk_only_batches_are_400() {
    let relay = TestRelay::start().await;
    for (path, body) in [
        ("/auth0/logs", "{}"),
        ("/auth0/logs", "[null]"),
        ("/auth0/logs", "[1,2,3]"),
        ("/auth0/logs", r#"{"data":"x"}"#),
        ("/auth0", "[{}]"),
        ("/auth0", "[null]"),
        ("/auth0", r#"{"type":"x"}"#),
        ("/okta", r#"{"data":{"events":[null]}}"#),
        ("/okta", r#"{"data":{"events":[{},{"uuid":"u1"}]}}"#),
    ] {
        let res = relay.deliver(path, body).await;
        assert_eq!(res.status(), 400, "{path} {body}");
        let answer: serde_json::Value =
            serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
        assert_eq!(answer["error"], "delivery holds no well-formed event");
    }
    assert_no_duo_calls(&relay).await;
    // Well-formed but unhandled: still 200, still no Duo call.
    for (path, body) in [
        (
            "/okta",
            r#"{"data":{"events":[null,{"uuid":"u2","eventType":"user.session.start"}]}}"#,
        ),
        ("/auth0", r#"[null,{"id":"evt_1","type":"group.created"}]"#),
        ("/auth0/logs", r#"[7,{"log_id":"1","data":{"type":"s"}}]"#),
    ] {
        let res = relay.deliver(path, body).await;
        assert_eq!(res.status(), 200, "{path} {body}");
    }
    assert_no_duo_calls(&relay).await;
}

/// Issue 13 item 3: an id or login over the length limits is refused at
/// parse time (400 alone, skipped in a batch) and never reaches Duo —
/// before, a 70 KB login made a URL the HTTP client could not build and
/// sync mode answered 503 forever.
#[tokio::test]
async fn values_over_the_length_limits_never_reach_duo() {
    let relay = TestRelay::start().await;
    let huge = "x".repeat(70_000);
    let create = |uuid: &str, id: &str, login: &str| {
        serde_json::json!({
            "uuid": uuid, "eventType": "user.lifecycle.create",
            "published": "2026-03-11T09:00:00.000Z",
            "outcome": {"result": "SUCCESS"},
            "target": [{"id": id, "type": "User", "alternateId": login, "displayName": "X"}]
        })
    };
    for event in [
        create("u1", "00uA", &format!("{huge}@example.com")),
        create("u1", &huge, "a@example.com"),
        create(&huge, "00uA", "a@example.com"),
    ] {
        let body = serde_json::json!({"data": {"events": [event]}}).to_string();
        let res = relay.deliver("/okta", body).await;
        assert_eq!(res.status(), 400);
    }
    let auth0 = serde_json::json!({"id": "evt_1", "type": "user.created",
        "data": {"object": {"user_id": "auth0|1", "email": format!("{huge}@example.com")}}});
    assert_eq!(
        relay.deliver("/auth0", auth0.to_string()).await.status(),
        400
    );
    assert_no_duo_calls(&relay).await;
    // Beside a good event: 200, the good one applied, the long one skipped.
    let body = serde_json::json!({"data": {"events": [
        create("u3", "00uB", &format!("{huge}@example.com")),
        create("u4", "00uC", "c@example.com"),
    ]}});
    let res = relay.deliver("/okta", body.to_string()).await;
    assert_eq!(res.status(), 200);
    let users = relay.sim.snapshot().users;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].username, "c@example.com");
}
