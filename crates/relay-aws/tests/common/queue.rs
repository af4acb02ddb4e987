//! Queue-mode helpers: FIFO queues on moto, the relay in queue mode, the
//! Lambda service's SQS poller (receive, invoke with the event Lambda would
//! send, delete what did not fail), Okta deliveries built from a few fields,
//! and a proxy in front of the Duo simulator that fails the calls naming one
//! user (a targeted transient failure) and records them in order.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use relay_aws::{AwsRelay, QueueSettings, SecretSource};
use relay_core::config::RawConfig;
use relay_core::queue::QueuePolicy;
use serde_json::{Value, json};

use super::{Fixture, OKTA_SECRET, settings, unique};

/// A FIFO event queue and its FIFO dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub url: String,
    pub arn: String,
    pub dlq_url: String,
}

/// The test's own client (the Lambda service's poller, the operator):
/// the SDK's default timeouts, not the relay's tight ones.
pub fn sqs(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(sdk)
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone()
}

/// Creates the two queues as the Terraform module does (FIFO, redrive to
/// the DLQ after `max_receive` receives) with `visibility` seconds.
pub async fn create_queues(
    sdk: &aws_config::SdkConfig,
    visibility: u32,
    max_receive: u32,
) -> Queues {
    let sqs = sqs(sdk);
    let name = unique("relay");
    let dlq_url = sqs
        .create_queue()
        .queue_name(format!("{name}-dl.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let url = sqs
        .create_queue()
        .queue_name(format!("{name}-ev.fifo"))
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = queue_arn(&sqs, &url).await;
    Queues { url, arn, dlq_url }
}

/// A policy whose retries come back at once (visibility 0).
pub fn fast_policy(max_attempts: u32) -> QueuePolicy {
    QueuePolicy {
        max_attempts,
        initial_backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    }
}

impl Fixture {
    /// The relay in queue mode on `queues`, Duo at `duo_url`.
    pub async fn queued_relay(
        &self,
        queues: &Queues,
        policy: QueuePolicy,
        duo_url: &str,
    ) -> AwsRelay {
        let mut env = super::plain_env(&self.sim);
        env.insert("DUO_API_URL".into(), duo_url.to_owned());
        env.insert("DUO_RATE_PER_MINUTE".into(), "off".to_owned());
        let mut settings = settings(&self.secret_id, &self.table, Duration::from_secs(300));
        settings.queue = Some(QueueSettings {
            queue_url: queues.url.clone(),
            dlq_url: queues.dlq_url.clone(),
            policy,
        });
        AwsRelay::start(
            env,
            settings,
            SecretSource::new(&self.sdk, &self.secret_id),
            relay_aws::DynamoStore::new(relay_aws::worker_dynamodb_client(&self.sdk), &self.table),
            Some(relay_aws::sqs::sqs_client(&self.sdk)),
        )
        .await
        .unwrap()
    }
}

/// Receives up to `max` messages with every system attribute, holding them
/// for `visibility` seconds.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    max: i32,
    visibility: i32,
) -> Vec<Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(max)
        .visibility_timeout(visibility)
        .wait_time_seconds(0)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

pub fn attribute(message: &Message, name: MessageSystemAttributeName) -> String {
    message
        .attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_default()
}

/// The event Lambda's SQS poller sends for these messages.
pub fn sqs_event(messages: &[Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), Value::from(v.as_str())))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// One poll of the Lambda service: what it received and which records the
/// function reported failed.
#[derive(Debug, Default)]
pub struct Poll {
    pub messages: Vec<Message>,
    pub failed: Vec<String>,
}

/// Receives a batch, invokes the function with it, deletes the records it
/// did not report failed — as Lambda's SQS event source does.
pub async fn lambda_poll(
    relay: &AwsRelay,
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    max: i32,
) -> Poll {
    let messages = receive(sqs, &queues.url, max, 30).await;
    lambda_invoke(relay, sqs, queues, messages).await
}

/// Invokes the function with received messages and deletes the records
/// it did not report failed.
pub async fn lambda_invoke(
    relay: &AwsRelay,
    sqs: &aws_sdk_sqs::Client,
    queues: &Queues,
    messages: Vec<Message>,
) -> Poll {
    if messages.is_empty() {
        return Poll::default();
    }
    let answer = relay
        .invoke(
            sqs_event(&messages, &queues.arn),
            Some(Instant::now() + Duration::from_secs(60)),
        )
        .await
        .unwrap();
    let failed: Vec<String> = answer["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {answer}"))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
        .collect();
    let done: Vec<&Message> = messages
        .iter()
        .filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
        .collect();
    for chunk in done.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        let out = sqs
            .delete_message_batch()
            .queue_url(&queues.url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
        assert!(out.failed().is_empty(), "{:?}", out.failed());
    }
    Poll { messages, failed }
}

/// Messages in a queue: visible, and held by a consumer.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let attrs = out.attributes().unwrap();
    let n = |name: &QueueAttributeName| -> u64 { attrs[name].parse().unwrap() };
    (
        n(&QueueAttributeName::ApproximateNumberOfMessages),
        n(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// One Okta System Log event of a delivery, about one user.
#[derive(Debug, Clone)]
pub struct OktaEvent {
    pub uuid: String,
    pub event_type: &'static str,
    /// ms since the epoch.
    pub published_ms: i64,
    pub user_id: String,
    pub login: String,
}

/// An Okta event hook delivery holding `events`.
pub fn okta_delivery(events: &[OktaEvent]) -> String {
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            json!({
                "uuid": e.uuid,
                "published": relay_core::time::rfc3339_millis(e.published_ms),
                "eventType": e.event_type,
                "version": "0",
                "displayMessage": e.event_type,
                "severity": "INFO",
                "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com", "displayName": "Admin"},
                "outcome": {"result": "SUCCESS", "reason": null},
                "target": [{
                    "id": e.user_id,
                    "type": "User",
                    "alternateId": e.login,
                    "displayName": e.login,
                    "detailEntry": null
                }]
            })
        })
        .collect();
    json!({
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://example.okta.com/api/v1/eventHooks/who1",
        "eventId": unique("delivery"),
        "eventTime": relay_core::time::rfc3339_millis(0),
        "contentType": "application/json",
        "data": { "events": events }
    })
    .to_string()
}

/// The Function URL event of one Okta delivery.
pub fn okta_http_event(delivery: &str) -> Value {
    let event = super::v2_event(
        "POST",
        "/okta",
        "$default",
        &[
            ("Authorization", OKTA_SECRET),
            ("Content-Type", "application/json"),
        ],
        Some(delivery),
        false,
    );
    serde_json::from_str(&event).unwrap()
}

/// Accepts `delivery` through the function (queue mode: straight into the
/// queue); answers the status code.
pub async fn deliver(relay: &AwsRelay, delivery: &str) -> u16 {
    let answer = relay.invoke(okta_http_event(delivery), None).await.unwrap();
    u16::try_from(answer["statusCode"].as_i64().unwrap()).unwrap()
}

/// One call the proxy saw.
#[derive(Debug, Clone)]
pub struct ProxiedCall {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub failed: bool,
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    client: reqwest::Client,
    fail: Arc<Mutex<Option<String>>>,
    calls: Arc<Mutex<Vec<ProxiedCall>>>,
}

/// A proxy in front of the Duo simulator that answers 503 to the calls
/// whose query or body contains a pattern, and records every call.
#[derive(Clone)]
pub struct DuoProxy {
    pub url: String,
    state: ProxyState,
}

async fn proxy(
    State(state): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let text = String::from_utf8_lossy(&body).into_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    let decoded = |s: &str| s.replace("%40", "@").replace('+', " ");
    let fail = state.fail.lock().unwrap().as_ref().is_some_and(|p| {
        decoded(&query).contains(p.as_str()) || decoded(&text).contains(p.as_str())
    });
    state.calls.lock().unwrap().push(ProxiedCall {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: decoded(&query),
        body: decoded(&text),
        failed: fail,
    });
    if fail {
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().unwrap());
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            h,
            Bytes::from(r#"{"stat":"FAIL","code":50301,"message":"injected by the test proxy"}"#),
        );
    }
    let mut request = state.client.request(
        method,
        format!(
            "{}{}",
            state.target,
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
    );
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let response = request.body(body).send().await.unwrap();
    let status = response.status();
    let mut out = HeaderMap::new();
    if let Some(ct) = response.headers().get("content-type") {
        out.insert("content-type", ct.clone());
    }
    (status, out, response.bytes().await.unwrap())
}

impl DuoProxy {
    pub async fn start(target: String) -> Self {
        let state = ProxyState {
            target,
            client: reqwest::Client::new(),
            fail: Arc::default(),
            calls: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(proxy)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Fail (503) every call naming `pattern`, or none.
    pub fn fail_when(&self, pattern: Option<&str>) {
        *self.state.fail.lock().unwrap() = pattern.map(str::to_owned);
    }

    pub fn calls(&self) -> Vec<ProxiedCall> {
        self.state.calls.lock().unwrap().clone()
    }
}

/// The environment for `bootstrap` in queue mode (tests of the binary).
pub fn queue_env(queues: &Queues) -> RawConfig {
    RawConfig::from([
        ("RELAY_MODE".to_owned(), "queue".to_owned()),
        ("RELAY_QUEUE_URL".to_owned(), queues.url.clone()),
        ("RELAY_DLQ_URL".to_owned(), queues.dlq_url.clone()),
    ])
}
