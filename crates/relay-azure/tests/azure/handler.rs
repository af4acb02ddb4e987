//! The real `relay-azure` binary, started the way the Functions host starts
//! its custom handler (FUNCTIONS_CUSTOMHANDLER_PORT, app settings in the
//! environment) and sent the requests the host forwards with
//! `enableForwardingHttpRequest` (original method, headers and body, path
//! under `/api`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use duo_sim::DuoSim;
use relay_core::event::{EventId, Source};
use relay_core::store::{Claim, IdempotencyStore};

use crate::common::{
    DEV_KEY, Handler, SECRET, app_settings, azurite, connection_string, fixture, free_port,
    fresh_table, settings, wait_ready,
};

#[tokio::test]
async fn forwarded_requests_reach_duo_once() {
    let Some(url) = azurite() else { return };
    let sim = DuoSim::start().await;
    let port = free_port();
    let table = fresh_table();
    let env = app_settings(&sim, port, &connection_string(&url), &table);
    let started = Instant::now();
    let mut handler = Handler::spawn(&env);
    let cold_start = wait_ready(&mut handler, port, started).await;
    eprintln!("cold start (spawn → first 200 on /api/healthz): {cold_start:?}");

    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://127.0.0.1:{port}/api{path}");

    let health = http.get(api("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);

    // Okta's one-time verification GET, authenticated like a delivery.
    let challenge = http
        .get(api("/okta"))
        .header("Authorization", SECRET)
        .header("x-okta-verification-challenge", "abc123-challenge")
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&challenge.text().await.unwrap()).unwrap();
    assert_eq!(body["verification"], "abc123-challenge");

    // The same delivery three times (Okta retries): one Duo create.
    let delivery = fixture("okta/user-lifecycle-create.json");
    for attempt in 1..=3 {
        let answer = http
            .post(api("/okta"))
            .header("Authorization", SECRET)
            .header("Content-Type", "application/json")
            // Headers the host adds when it forwards.
            .header("x-azure-functions-invocationid", format!("inv-{attempt}"))
            .body(delivery.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "attempt {attempt}");
    }
    let jane = sim
        .user_by_username("jane.doe@example.com")
        .expect("Duo user created");
    assert_eq!(jane.status, "active");
    assert_eq!(sim.call_count("POST /admin/v1/users"), 1);

    // The outcome is in the table, where another instance would look.
    let store = relay_azure::TableStore::new(settings(&url, &table, DEV_KEY)).unwrap();
    let event = EventId::new(Source::Okta, "a1b2c3d4-0001-11f0-9c2e-000000000001");
    assert_eq!(store.claim(&event).await.unwrap(), Claim::Done);

    // Bad credentials: 401, no Duo call. Unprefixed paths are not routes.
    let refused = http
        .post(api("/okta"))
        .header("Authorization", "not-the-secret-at-all")
        .header("Content-Type", "application/json")
        .body(delivery.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let bare = http
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 404);
    // The host's readiness ping (GET /) gets an answer, whatever it is.
    let root = http
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 404);

    // One JSON line per event, queryable by field; no secret anywhere.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = handler.logs();
    let events = relay_tests::summary_lines(&logs);
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["applied", "duplicate", "duplicate"], "{logs}");
    assert_eq!(events[0]["subject"], "jane.doe@example.com");
    assert_eq!(
        events[0]["event_id"],
        "okta:a1b2c3d4-0001-11f0-9c2e-000000000001"
    );
    for secret in [
        SECRET,
        sim.config().skey.as_str(),
        DEV_KEY,
        "not-the-secret-at-all",
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
    }
}

/// Issue 13 item 4: the custom handler serves with the same connection
/// limits as `serve`, from the same app settings: a connection that sends
/// nothing is closed after `RELAY_HTTP_HEADER_TIMEOUT_MS`, a kept-alive one
/// after `RELAY_HTTP_IDLE_TIMEOUT_MS` (relay-cli's hostile_clients test
/// covers every limit; this one shows relay-azure applies them), and a bad
/// value stops start-up naming the setting.
#[tokio::test]
async fn connection_limits_apply_under_the_host() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let Some(url) = azurite() else { return };
    let sim = DuoSim::start().await;
    let port = free_port();
    let mut env = app_settings(&sim, port, &connection_string(&url), &fresh_table());
    env.insert("RELAY_HTTP_HEADER_TIMEOUT_MS".into(), "300".into());
    env.insert("RELAY_HTTP_IDLE_TIMEOUT_MS".into(), "500".into());
    let mut handler = Handler::spawn(&env);
    wait_ready(&mut handler, port, Instant::now()).await;
    let addr = format!("127.0.0.1:{port}");
    let mut buf = [0_u8; 1024];

    // Silent: counted from before the connect, so never below the limit.
    let sent = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(15), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "not closed: {read:?}");
    assert!(sent.elapsed() >= Duration::from_millis(300), "{sent:?}");

    // Kept alive after an answer: closed after the idle timeout.
    let sent = Instant::now();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /api/healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "kept-alive connection not closed");
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(sent.elapsed() >= Duration::from_millis(500), "{sent:?}");
    drop(handler);

    let mut env = app_settings(&sim, free_port(), &connection_string(&url), &fresh_table());
    env.insert("RELAY_HTTP_MAX_CONNECTIONS".into(), "0".into());
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(stderr.contains("RELAY_HTTP_MAX_CONNECTIONS:"), "{stderr}");
}

#[tokio::test]
async fn an_unresolved_key_vault_reference_stops_start_up() {
    let sim = DuoSim::start().await;
    let reference =
        "@Microsoft.KeyVault(SecretUri=https://relay-kv-7f3a.vault.azure.net/secrets/duo-skey/)";
    let mut env = app_settings(
        &sim,
        free_port(),
        "UseDevelopmentStorage=true",
        "relayidempotency",
    );
    env.insert("DUO_SKEY".into(), reference.into());
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(stderr.contains("DUO_SKEY"), "{stderr}");
    assert!(
        stderr.contains("Key Vault reference did not resolve"),
        "{stderr}"
    );
    assert!(stderr.contains("managed identity"), "{stderr}");
    let all = handler.logs();
    assert!(
        !all.contains("relay-kv-7f3a") && !all.contains("SecretUri"),
        "{all}"
    );
}

#[tokio::test]
async fn missing_storage_setting_is_named() {
    let sim = DuoSim::start().await;
    let mut env = app_settings(&sim, free_port(), "", "relayidempotency");
    env.remove("AzureWebJobsStorage");
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(
        stderr.contains("AzureWebJobsStorage: is not set"),
        "{stderr}"
    );
}

#[tokio::test]
async fn unreachable_storage_fails_start_up_clearly() {
    let sim = DuoSim::start().await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = app_settings(
        &sim,
        free_port(),
        &connection_string(&dead),
        "relayidempotency",
    );
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    assert!(
        stderr.contains("idempotency table relayidempotency"),
        "{stderr}"
    );
    assert!(stderr.contains("cannot reach 127.0.0.1"), "{stderr}");
    assert!(!stderr.contains(DEV_KEY));
}

#[tokio::test]
async fn under_the_host_the_port_is_required() {
    let sim = DuoSim::start().await;
    let mut env = app_settings(&sim, 0, "UseDevelopmentStorage=true", "relayidempotency");
    env.remove("FUNCTIONS_CUSTOMHANDLER_PORT");
    let mut handler = Handler::spawn(&env);
    let (status, stderr) = handler.wait_exit(Duration::from_secs(10));
    assert!(!status.success());
    assert!(
        stderr.contains("FUNCTIONS_CUSTOMHANDLER_PORT: is not set"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_store_outage_at_request_time_answers_503() {
    // The relay in-process with a store nobody listens at: the IdP must
    // retry (503), not give up (4xx), and Duo must not be called.
    let sim = DuoSim::start().await;
    let cfg = sim.config();
    let raw = BTreeMap::from([
        ("DUO_API_HOST".to_owned(), cfg.host.clone()),
        ("DUO_IKEY".to_owned(), cfg.ikey.clone()),
        ("DUO_SKEY".to_owned(), cfg.skey.clone()),
        ("DUO_API_URL".to_owned(), sim.base_url()),
        ("DUO_RATE_PER_MINUTE".to_owned(), "off".to_owned()),
        ("OKTA_AUTH_SECRET".to_owned(), SECRET.to_owned()),
    ]);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let store = relay_azure::TableStore::new(settings(&dead, "relayidempotency", DEV_KEY)).unwrap();
    let (retry, timeout) = relay_core::pipeline::sync_retry();
    let relay = relay_core::pipeline::duo_relay(&raw, store, retry, timeout).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(relay_server::serve(
        listener,
        relay_server::app_with_prefix(std::sync::Arc::new(relay), "/api"),
        relay_server::ServeLimits::default(),
        std::future::pending(),
    ));
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/api/okta"))
        .header("Authorization", SECRET)
        .header("Content-Type", "application/json")
        .body(fixture("okta/user-lifecycle-create.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert!(sim.user_by_username("jane.doe@example.com").is_none());
    assert_eq!(sim.call_count("POST /admin/v1/users"), 0);
}
