//! The `bootstrap` binary itself, under a stand-in for the Lambda Runtime API
//! (the HTTP interface Lambda offers a custom runtime: `GET .../next` hands an
//! event, `POST .../{id}/response` takes the answer), with moto for Secrets
//! Manager and DynamoDB through `AWS_ENDPOINT_URL`, and the Duo simulator.
//! Also measures the local cold start: process spawn → the `/healthz`
//! answer posted back.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use common::*;
use tokio::sync::mpsc;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

#[derive(Clone)]
struct RuntimeApi {
    events: Arc<Mutex<VecDeque<String>>>,
    answers: mpsc::UnboundedSender<(String, String)>,
}

async fn next(State(api): State<RuntimeApi>) -> (HeaderMap, String) {
    let event = api.events.lock().unwrap().pop_front();
    let Some(event) = event else {
        // No more invocations: hold the runtime here, as Lambda would.
        std::future::pending::<()>().await;
        unreachable!()
    };
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = format!(
        "req-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 30_000;
    let mut headers = HeaderMap::new();
    headers.insert(
        "lambda-runtime-aws-request-id",
        HeaderValue::from_str(&id).unwrap(),
    );
    headers.insert(
        "lambda-runtime-deadline-ms",
        HeaderValue::from_str(&deadline.to_string()).unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:idp-duo-relay"),
    );
    (headers, event)
}

async fn answer(
    State(api): State<RuntimeApi>,
    Path((id, kind)): Path<(String, String)>,
    body: String,
) -> StatusCode {
    let _ = api.answers.send((format!("{id}/{kind}"), body));
    StatusCode::ACCEPTED
}

async fn runtime_api(events: Vec<String>) -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let api = RuntimeApi {
        events: Arc::new(Mutex::new(events.into())),
        answers: tx,
    };
    let app = Router::new()
        .route(NEXT, get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(answer))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), rx)
}

fn bootstrap(runtime_api: &str, moto: &str, env: &[(&str, &str)]) -> Command {
    // RELAY_TEST_BOOTSTRAP runs another build of it (e.g. target/release/bootstrap
    // for the cold-start figure).
    let binary = std::env::var("RELAY_TEST_BOOTSTRAP")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_bootstrap").to_owned());
    let mut command = Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "idp-duo-relay")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", moto)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Stops the child this test started and returns what it printed.
fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let _ = child.wait();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn bootstrap_serves_invocations_and_logs_json_lines() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let delivery = okta_fixture("user-lifecycle-create.json");
    let events = vec![
        v2_event("GET", "/healthz", "$default", &[], None, false),
        v1_event(
            "POST",
            "/okta",
            "prod",
            &[
                ("Authorization", OKTA_SECRET),
                ("Content-Type", "application/json"),
            ],
            Some(&delivery),
            true,
        ),
    ];
    let (api, mut answers) = runtime_api(events).await;
    let duo_url = fx.sim.base_url();
    let env = [
        ("RELAY_SECRET_ID", fx.secret_id.as_str()),
        ("RELAY_TABLE_NAME", fx.table.as_str()),
        ("DUO_API_HOST", fx.sim.config().host.as_str()),
        ("DUO_IKEY", fx.sim.config().ikey.as_str()),
        ("DUO_API_URL", duo_url.as_str()),
        ("DUO_RATE_PER_MINUTE", "off"),
    ];
    let started = Instant::now();
    let child = bootstrap(&api, &moto, &env).spawn().unwrap();

    let first = tokio::time::timeout(Duration::from_secs(20), answers.recv()).await;
    let cold_start = started.elapsed();
    let second = tokio::time::timeout(Duration::from_secs(20), answers.recv()).await;
    let output = stop(child);
    let (path, body) = first
        .unwrap_or_else(|_| panic!("no answer; bootstrap printed:\n{output}"))
        .unwrap();
    assert_eq!(path, "req-0/response", "{output}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["statusCode"], 200, "{body}");
    assert_eq!(answer["body"], r#"{"status":"ok"}"#, "{body}");
    eprintln!(
        "cold start (spawn -> /healthz answer posted): {} ms",
        cold_start.as_millis()
    );

    let (path, body) = second.unwrap().unwrap();
    assert_eq!(path, "req-1/response", "{output}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["statusCode"], 200, "{body}");
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());

    // JSON lines that CloudWatch Logs Insights reads by field, with the
    // per-event summary, and no secret anywhere.
    let lines: Vec<serde_json::Value> = output
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("ready on Lambda"))),
        "{output}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["outcome"] == "applied" && l["event_id"].is_string()),
        "{output}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["severity"].is_string())
    );
    assert!(!output.contains(OKTA_SECRET));
    assert!(!output.contains(&fx.sim.config().skey));
}

#[tokio::test]
async fn bootstrap_refuses_to_start_naming_the_missing_variable() {
    let Some(moto) = moto_url() else { return };
    let (api, _answers) = runtime_api(Vec::new()).await;
    let output = bootstrap(&api, &moto, &[("RELAY_TABLE_NAME", "t")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(printed.contains("RELAY_SECRET_ID"), "{printed}");
    assert!(printed.contains("is not set"), "{printed}");
}

#[tokio::test]
async fn bootstrap_refuses_a_secret_without_duo_skey() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let id = create_secret(
        &fx.sdk,
        &format!(r#"{{"OKTA_AUTH_SECRET":"{OKTA_SECRET}"}}"#),
    )
    .await;
    let (api, _answers) = runtime_api(Vec::new()).await;
    let output = bootstrap(
        &api,
        &moto,
        &[("RELAY_SECRET_ID", &id), ("RELAY_TABLE_NAME", &fx.table)],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(printed.contains("lacks the key DUO_SKEY"), "{printed}");
    assert!(!printed.contains(OKTA_SECRET), "{printed}");
}

/// Runs `bootstrap` over `events` (one per invocation) and answers what it
/// posted back, in order, with everything it printed.
async fn run_invocations(
    moto: &str,
    env: &[(&str, &str)],
    events: Vec<String>,
) -> (Vec<(String, String)>, String) {
    let count = events.len();
    let (api, mut answers) = runtime_api(events).await;
    let child = bootstrap(&api, moto, env).spawn().unwrap();
    let mut out = Vec::new();
    for _ in 0..count {
        match tokio::time::timeout(Duration::from_secs(30), answers.recv()).await {
            Ok(Some(answer)) => out.push(answer),
            _ => break,
        }
    }
    let printed = stop(child);
    assert_eq!(
        out.len(),
        count,
        "not every invocation answered:\n{printed}"
    );
    (out, printed)
}

#[tokio::test]
async fn bootstrap_in_queue_mode_accepts_works_the_queue_and_its_dlq_command_replays() {
    use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
    use common::queue::*;

    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    let sqs = sqs(&fx.sdk);
    let duo_url = fx.sim.base_url();
    let env = [
        ("RELAY_SECRET_ID", fx.secret_id.as_str()),
        ("RELAY_TABLE_NAME", fx.table.as_str()),
        ("DUO_API_HOST", fx.sim.config().host.as_str()),
        ("DUO_IKEY", fx.sim.config().ikey.as_str()),
        ("DUO_API_URL", duo_url.as_str()),
        ("DUO_RATE_PER_MINUTE", "off"),
        ("RELAY_MODE", "queue"),
        ("RELAY_QUEUE_URL", queues.url.as_str()),
        ("RELAY_DLQ_URL", queues.dlq_url.as_str()),
    ];

    // 1. The Function URL delivery goes into the queue: 200, no Duo call.
    let delivery = okta_fixture("user-lifecycle-create.json");
    let http = v2_event(
        "POST",
        "/okta",
        "$default",
        &[
            ("Authorization", OKTA_SECRET),
            ("Content-Type", "application/json"),
        ],
        Some(&delivery),
        false,
    );
    let (answers, printed) = run_invocations(&moto, &env, vec![http]).await;
    let answer: serde_json::Value = serde_json::from_str(&answers[0].1).unwrap();
    assert_eq!(answer["statusCode"], 200, "{printed}");
    assert_eq!(fx.sim.total_calls(), 0);
    assert!(printed.contains(r#""mode":"queue""#), "{printed}");

    // 2. The SQS event source hands the binary a batch: the event and a
    //    poison message behind it in another group.
    sqs.send_message()
        .queue_url(&queues.url)
        .message_body("not a queue message")
        .message_group_id("poison")
        .message_deduplication_id("poison")
        .send()
        .await
        .unwrap();
    let mut messages = Vec::new();
    while messages.len() < 2 {
        let batch = receive(&sqs, &queues.url, 10, 30).await;
        assert!(
            !batch.is_empty(),
            "expected 2 messages, got {}",
            messages.len()
        );
        messages.extend(batch);
    }
    let event = sqs_event(&messages, &queues.arn).to_string();
    let (answers, printed) = run_invocations(&moto, &env, vec![event]).await;
    let (path, body) = &answers[0];
    assert!(path.ends_with("/response"), "{path} {body}\n{printed}");
    let answer: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"batchItemFailures": []}),
        "{printed}"
    );
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());
    assert!(printed.contains("dead_letter"), "{printed}");
    for m in &messages {
        sqs.delete_message()
            .queue_url(&queues.url)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }

    // 3. `bootstrap dlq list --json`, then `dlq replay --all`, by hand.
    let (api, _answers) = runtime_api(Vec::new()).await;
    let dlq_env = [
        ("RELAY_QUEUE_URL", queues.url.as_str()),
        ("RELAY_DLQ_URL", queues.dlq_url.as_str()),
    ];
    let listed = bootstrap(&api, &moto, &dlq_env)
        .args(["dlq", "list", "--json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let letters: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(letters.len(), 1, "{text}");
    assert_eq!(letters[0]["body"], "not a queue message");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable queue message")
    );

    let replayed = bootstrap(&api, &moto, &dlq_env)
        .args(["dlq", "replay", "--all"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&replayed.stdout).into_owned();
    assert!(replayed.status.success(), "{text}");
    assert!(text.contains("1 replayed, 0 failed"), "{text}");
    let back = receive(&sqs, &queues.url, 10, 30).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body().unwrap(), "not a queue message");
    assert_eq!(attribute(&back[0], Attr::ApproximateReceiveCount), "1");
    assert!(receive(&sqs, &queues.dlq_url, 10, 30).await.is_empty());

    // Without the queue URLs: a usage error naming them.
    let usage = bootstrap(&api, &moto, &[])
        .args(["dlq", "list"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stdout).contains("RELAY_DLQ_URL"));
}
