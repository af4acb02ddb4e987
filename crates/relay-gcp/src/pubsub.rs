//! Queue mode on GCP: Pub/Sub over its REST API (`RELAY_MODE=queue`).
//!
//! Why Pub/Sub rather than Cloud Tasks: the relay needs per-subject order
//! (Pub/Sub ordering keys: one user's events are pushed one at a time, in
//! publish order, while other users' flow in parallel; Cloud Tasks has no
//! ordering at all), a dead-letter destination that keeps what failed with
//! its attributes (a dead-letter topic + subscription; Cloud Tasks drops a
//! task after its last attempt), and a push to Cloud Run with an OIDC token
//! (both have that). Cloud Tasks' one advantage — per-task scheduling — the
//! subscription's retry policy (exponential backoff) covers.
//!
//! - **Accept** ([`PubSubEventQueue`]): the accepted events of a delivery
//!   are published in one `topics.publish` call to `RELAY_PUBSUB_TOPIC`,
//!   each with `orderingKey` = [`QueuedEvent::group_id`] (the subject) and
//!   the event id as an attribute. Pub/Sub answers once the messages are
//!   stored; only then does the IdP get its 200.
//! - **Worker** ([`crate::push`]): a push subscription with message
//!   ordering, a retry policy and a dead-letter policy delivers each message
//!   to `POST /pubsub/push` on the same service with an OIDC token.
//! - **Dead letters**: the worker publishes a
//!   [`relay_core::queue::DeadLetter`] (JSON, with the reason) to
//!   `RELAY_PUBSUB_DEAD_LETTER_TOPIC` itself and acknowledges the message;
//!   Pub/Sub's own dead-letter policy (a few attempts later) is the backstop
//!   for a message the worker never answered. [`DeadLetterSubscription`]
//!   reads both kinds from `RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION` for
//!   `relay-gcp dlq`.
//!
//! Authentication: the metadata server's token (the service account needs
//! `roles/pubsub.publisher` on both topics), `GOOGLE_OAUTH_ACCESS_TOKEN`
//! (a token of your own, e.g. `gcloud auth print-access-token`, for `dlq`
//! outside Cloud Run; it also needs `roles/pubsub.subscriber` on the
//! dead-letter subscription), or none against the emulator
//! (`PUBSUB_EMULATOR_HOST`).
//!
//! Why a hand-written client and not the official `google-cloud-pubsub`
//! (evaluated for issue 15, version 1.7.0, MSRV 1.91 — fine on our 1.95
//! toolchain): it speaks gRPC, so it brings a second HTTP stack (tonic,
//! h2, prost, google-cloud-gax/-auth/-wkt, …): +69 lock entries measured
//! by `cargo generate-lockfile` against a reqwest 0.13/tokio/axum/aws-lc-rs
//! base, against the handful of REST calls (publish, pull, acknowledge,
//! modifyAckDeadline) this module makes with the reqwest client and
//! metadata-server token the crate already has. The push side (the
//! worker) is an HTTP route either way, which no client library covers.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use relay_core::config::{ConfigError, RawConfig, optional};
use relay_core::queue::{
    BoxFuture, DeadLetter, DeadLetterEntry, DeadLetterStore, EventQueue, QueueError, QueuedEvent,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::metadata::{AccessToken, DEFAULT_HOST, MetadataServer, send_for_json};
use crate::settings;
use relay_core::time::parse_rfc3339_secs;

/// Pub/Sub's REST endpoint. A regional one
/// (`https://<region>-pubsub.googleapis.com/v1`, via `RELAY_PUBSUB_URL`)
/// keeps publishes with ordering keys in one region, as Google recommends
/// for ordering.
pub const DEFAULT_BASE_URL: &str = "https://pubsub.googleapis.com/v1";

/// Each call gives up after this long: the accept stage runs inside the
/// webhook request (Okta gives up after about 3 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Attribute values are at most 1,024 bytes.
const MAX_ATTRIBUTE: usize = 1024;

/// Marks a dead letter the worker published (with a reason), as opposed to
/// one Pub/Sub's dead-letter policy forwarded.
pub const DEAD_LETTER_ATTRIBUTE: &str = "relay_dead_letter";

/// Pub/Sub's attribute on a message its dead-letter policy forwarded.
const FORWARDED_COUNT_ATTRIBUTE: &str = "CloudPubSubDeadLetterSourceDeliveryCount";

/// How long a `dlq` scan holds the dead letters it pulled before it gives
/// them back (they are nacked as soon as the scan is over).
const SCAN_ACK_DEADLINE_SECS: u64 = 60;

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum PubSubAuth {
    /// Tokens from the metadata server.
    MetadataServer,
    /// A token given in `GOOGLE_OAUTH_ACCESS_TOKEN`.
    Token(AccessToken),
    /// The emulator (`PUBSUB_EMULATOR_HOST`): no token.
    Emulator,
}

impl fmt::Debug for PubSubAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MetadataServer => f.write_str("MetadataServer"),
            Self::Token(_) => f.write_str("Token([redacted])"),
            Self::Emulator => f.write_str("Emulator"),
        }
    }
}

/// Where the queue mode's topics and subscription are (step one: no
/// network; [`PubSub::connect`] resolves the project if needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubConfig {
    /// `GOOGLE_CLOUD_PROJECT`; `None` = ask the metadata server (only
    /// needed when a name below is a bare id).
    pub project: Option<String>,
    /// `RELAY_PUBSUB_TOPIC`: where accepted events go (and replays).
    pub topic: Option<String>,
    /// `RELAY_PUBSUB_DEAD_LETTER_TOPIC`: where the worker puts dead letters.
    pub dead_letter_topic: Option<String>,
    /// `RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION`: what `dlq` reads.
    pub dead_letter_subscription: Option<String>,
    /// `RELAY_PUBSUB_URL`, else `http://$PUBSUB_EMULATOR_HOST/v1`, else
    /// [`DEFAULT_BASE_URL`].
    pub base_url: String,
    pub auth: PubSubAuth,
    /// `GCE_METADATA_HOST`, else `metadata.google.internal`.
    pub metadata_host: String,
    pub request_timeout: Duration,
}

/// A topic or subscription name: a bare id (`relay-events`) or the full
/// resource name (`projects/p/topics/relay-events`).
fn valid_name(value: &str, kind: &str, variable: &'static str) -> Result<String, ConfigError> {
    let id = match value.strip_prefix("projects/") {
        Some(rest) => {
            let mut parts = rest.splitn(3, '/');
            let project = parts.next().unwrap_or_default();
            let collection = parts.next().unwrap_or_default();
            let id = parts.next().unwrap_or_default();
            if project.is_empty() || collection != kind {
                return Err(ConfigError::new(
                    variable,
                    format!("must be an id or projects/<project>/{kind}/<id>"),
                ));
            }
            id
        }
        None => value,
    };
    // Pub/Sub's rule: 3-255 characters, a letter first, then letters,
    // digits and - _ . ~ + %; not starting with "goog".
    let ok = (3..=255).contains(&id.len())
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~+%".contains(&b))
        && !id.to_ascii_lowercase().starts_with("goog");
    if ok {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::new(
            variable,
            "must be a Pub/Sub id (3-255 letters, digits and - _ . ~ + %, starting with a letter)",
        ))
    }
}

impl PubSubConfig {
    /// From `GOOGLE_CLOUD_PROJECT`, `RELAY_PUBSUB_TOPIC`,
    /// `RELAY_PUBSUB_DEAD_LETTER_TOPIC`,
    /// `RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION`, `RELAY_PUBSUB_URL`,
    /// `PUBSUB_EMULATOR_HOST`, `GOOGLE_OAUTH_ACCESS_TOKEN` and
    /// `GCE_METADATA_HOST`. What each use needs is checked by
    /// [`Self::for_service`] and [`Self::for_dlq`].
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let project = settings::project(raw)?.map(str::to_owned);
        let name = |variable: &'static str, kind: &str| {
            optional(raw, variable)
                .map(|v| valid_name(v, kind, variable))
                .transpose()
        };
        let topic = name("RELAY_PUBSUB_TOPIC", "topics")?;
        let dead_letter_topic = name("RELAY_PUBSUB_DEAD_LETTER_TOPIC", "topics")?;
        let dead_letter_subscription =
            name("RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION", "subscriptions")?;
        let emulator = settings::host(raw, "PUBSUB_EMULATOR_HOST", Some("127.0.0.1:8085"))?;
        let base_url = settings::base_url(
            raw,
            "RELAY_PUBSUB_URL",
            "https://us-central1-pubsub.googleapis.com/v1",
        )?
        .unwrap_or_else(|| {
            emulator.map_or_else(
                || DEFAULT_BASE_URL.to_owned(),
                |host| format!("http://{host}/v1"),
            )
        });
        let metadata_host = settings::host(raw, "GCE_METADATA_HOST", None)?
            .unwrap_or(DEFAULT_HOST)
            .to_owned();
        let auth = if emulator.is_some() {
            PubSubAuth::Emulator
        } else if let Some(token) = optional(raw, "GOOGLE_OAUTH_ACCESS_TOKEN") {
            PubSubAuth::Token(AccessToken::new(token))
        } else {
            PubSubAuth::MetadataServer
        };
        Ok(Self {
            project,
            topic,
            dead_letter_topic,
            dead_letter_subscription,
            base_url,
            auth,
            metadata_host,
            request_timeout: REQUEST_TIMEOUT,
        })
    }

    /// What the Cloud Run service needs in queue mode: both topics.
    pub fn for_service(raw: &RawConfig) -> Result<Self, ConfigError> {
        let config = Self::from_config(raw)?;
        if config.topic.is_none() {
            return Err(ConfigError::new(
                "RELAY_PUBSUB_TOPIC",
                "is not set: RELAY_MODE=queue publishes accepted events to this topic",
            ));
        }
        if config.dead_letter_topic.is_none() {
            return Err(ConfigError::new(
                "RELAY_PUBSUB_DEAD_LETTER_TOPIC",
                "is not set: RELAY_MODE=queue publishes what it gives up on to this topic",
            ));
        }
        Ok(config)
    }

    /// What `relay-gcp dlq` needs: the dead-letter subscription and the
    /// topic replays go to.
    pub fn for_dlq(raw: &RawConfig) -> Result<Self, ConfigError> {
        let config = Self::from_config(raw)?;
        if config.dead_letter_subscription.is_none() {
            return Err(ConfigError::new(
                "RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION",
                "is not set: dlq reads the dead letters from this subscription",
            ));
        }
        if config.topic.is_none() {
            return Err(ConfigError::new(
                "RELAY_PUBSUB_TOPIC",
                "is not set: dlq replay publishes to this topic",
            ));
        }
        Ok(config)
    }
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub data: String,
    pub ordering_key: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

/// One pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub ack_id: String,
    pub message_id: String,
    /// `data` decoded (lossily, when not UTF-8).
    pub data: String,
    pub attributes: BTreeMap<String, String>,
    pub publish_time: Option<String>,
    pub delivery_attempt: Option<u32>,
}

/// A Pub/Sub REST client for one project.
#[derive(Debug)]
pub struct PubSub {
    http: reqwest::Client,
    metadata: MetadataServer,
    auth: PubSubAuth,
    base_url: String,
    project: Option<String>,
    topic: Option<String>,
    dead_letter_topic: Option<String>,
    dead_letter_subscription: Option<String>,
}

fn backend(message: impl Into<String>) -> QueueError {
    QueueError::Backend(message.into())
}

impl PubSub {
    /// Builds the client; asks the metadata server for the project only when
    /// a configured name is a bare id and `GOOGLE_CLOUD_PROJECT` is unset.
    pub async fn connect(config: PubSubConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| {
                ConfigError::new(
                    "RELAY_PUBSUB_TOPIC",
                    format!("cannot start an HTTP client: {e}"),
                )
            })?;
        let metadata = MetadataServer::new(&config.metadata_host, http.clone());
        let bare = [
            &config.topic,
            &config.dead_letter_topic,
            &config.dead_letter_subscription,
        ]
        .iter()
        .any(|n| n.as_deref().is_some_and(|n| !n.starts_with("projects/")));
        let project = match config.project {
            Some(p) => Some(p),
            None if bare && config.auth == PubSubAuth::MetadataServer => {
                Some(metadata.project_id().await.map_err(|e| {
                    ConfigError::new(
                        "GOOGLE_CLOUD_PROJECT",
                        format!(
                            "is not set, and the metadata server could not tell the project ({e})"
                        ),
                    )
                })?)
            }
            None if bare => {
                return Err(ConfigError::new(
                    "GOOGLE_CLOUD_PROJECT",
                    "is not set: the Pub/Sub names are bare ids, so the project must be given",
                ));
            }
            None => None,
        };
        let full = |name: Option<String>, kind: &str| {
            name.map(|n| match (&project, n.starts_with("projects/")) {
                (_, true) | (None, _) => n,
                (Some(p), false) => format!("projects/{p}/{kind}/{n}"),
            })
        };
        Ok(Self {
            http,
            metadata,
            auth: config.auth,
            base_url: config.base_url,
            topic: full(config.topic, "topics"),
            dead_letter_topic: full(config.dead_letter_topic, "topics"),
            dead_letter_subscription: full(config.dead_letter_subscription, "subscriptions"),
            project,
        })
    }

    /// `projects/…/topics/…` of the events topic.
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    pub fn dead_letter_topic(&self) -> Option<&str> {
        self.dead_letter_topic.as_deref()
    }

    pub fn dead_letter_subscription(&self) -> Option<&str> {
        self.dead_letter_subscription.as_deref()
    }

    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }

    async fn call(&self, op: &str, path: &str, body: Value) -> Result<Value, QueueError> {
        let mut request = self
            .http
            .post(format!("{}/{path}", self.base_url))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
        match &self.auth {
            PubSubAuth::Emulator => {}
            PubSubAuth::Token(token) => request = request.bearer_auth(token.secret()),
            PubSubAuth::MetadataServer => {
                let token = self
                    .metadata
                    .access_token()
                    .await
                    .map_err(|e| backend(format!("pubsub {op}: {e}")))?;
                request = request.bearer_auth(token.secret());
            }
        }
        let (status, answer) = send_for_json(request)
            .await
            .map_err(|e| backend(format!("pubsub {op}: {e}")))?;
        if status.is_success() {
            return Ok(answer);
        }
        if status == StatusCode::UNAUTHORIZED && self.auth == PubSubAuth::MetadataServer {
            self.metadata.forget_token().await;
        }
        let message: String = answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        let grpc = answer["error"]["status"].as_str().unwrap_or("");
        let hint = if status == StatusCode::FORBIDDEN {
            " (the service account lacks the Pub/Sub role for this resource)"
        } else {
            ""
        };
        Err(backend(format!(
            "pubsub {op}: HTTP {} {grpc}{}{message}{hint}",
            status.as_u16(),
            if message.is_empty() { "" } else { ": " },
        )))
    }

    /// Publishes `messages` to `topic` (a full resource name) in one call;
    /// answers their message ids.
    pub async fn publish(
        &self,
        topic: &str,
        messages: &[Outgoing],
    ) -> Result<Vec<String>, QueueError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut message = json!({
                    "data": BASE64.encode(m.data.as_bytes()),
                    "attributes": m.attributes,
                });
                if let Some(key) = &m.ordering_key {
                    message["orderingKey"] = json!(key);
                }
                message
            })
            .collect();
        let answer = self
            .call(
                "publish",
                &format!("{topic}:publish"),
                json!({ "messages": messages }),
            )
            .await?;
        let ids: Vec<String> = answer["messageIds"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|i| i.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() != messages.len() {
            return Err(backend(format!(
                "pubsub publish: {} message ids for {} messages",
                ids.len(),
                messages.len()
            )));
        }
        Ok(ids)
    }

    /// Pulls up to `max` messages from `subscription` without waiting.
    pub async fn pull(&self, subscription: &str, max: usize) -> Result<Vec<Received>, QueueError> {
        let answer = self
            .call(
                "pull",
                &format!("{subscription}:pull"),
                json!({ "maxMessages": max.clamp(1, 1000), "returnImmediately": true }),
            )
            .await?;
        let mut out = Vec::new();
        for received in answer["receivedMessages"].as_array().into_iter().flatten() {
            let message = &received["message"];
            let (Some(ack_id), Some(message_id)) =
                (received["ackId"].as_str(), message["messageId"].as_str())
            else {
                continue;
            };
            let data = message["data"]
                .as_str()
                .and_then(|d| BASE64.decode(d).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let attributes = message["attributes"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Received {
                ack_id: ack_id.to_owned(),
                message_id: message_id.to_owned(),
                data,
                attributes,
                publish_time: message["publishTime"].as_str().map(str::to_owned),
                delivery_attempt: received["deliveryAttempt"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok()),
            });
        }
        Ok(out)
    }

    pub async fn acknowledge(
        &self,
        subscription: &str,
        ack_ids: &[String],
    ) -> Result<(), QueueError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        self.call(
            "acknowledge",
            &format!("{subscription}:acknowledge"),
            json!({ "ackIds": ack_ids }),
        )
        .await
        .map(|_| ())
    }

    /// `seconds` = 0 gives the messages back at once (a nack).
    pub async fn modify_ack_deadline(
        &self,
        subscription: &str,
        ack_ids: &[String],
        seconds: u64,
    ) -> Result<(), QueueError> {
        if ack_ids.is_empty() {
            return Ok(());
        }
        self.call(
            "modifyAckDeadline",
            &format!("{subscription}:modifyAckDeadline"),
            json!({ "ackIds": ack_ids, "ackDeadlineSeconds": seconds }),
        )
        .await
        .map(|_| ())
    }

    /// Publishes a dead letter (JSON) to the dead-letter topic, marked as
    /// the worker's, with its reason and event id as attributes.
    pub async fn publish_dead_letter(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let topic = self
            .dead_letter_topic
            .as_deref()
            .ok_or_else(|| backend("RELAY_PUBSUB_DEAD_LETTER_TOPIC is not set"))?;
        let mut attributes = BTreeMap::from([
            (DEAD_LETTER_ATTRIBUTE.to_owned(), "1".to_owned()),
            ("reason".to_owned(), truncate(&letter.reason, MAX_ATTRIBUTE)),
        ]);
        if let Some(id) = &letter.event_id {
            attributes.insert("event_id".to_owned(), truncate(id, MAX_ATTRIBUTE));
        }
        self.publish(
            topic,
            &[Outgoing {
                data: serde_json::to_string(letter).unwrap_or_default(),
                ordering_key: None,
                attributes,
            }],
        )
        .await
        .map(|_| ())
    }

    /// The message that carries an accepted (or replayed) event.
    fn event_message(body: &str) -> Outgoing {
        let parsed = QueuedEvent::from_json(body).ok();
        let mut attributes = BTreeMap::new();
        if let Some(m) = &parsed {
            attributes.insert(
                "event_id".to_owned(),
                truncate(m.event.id.as_str(), MAX_ATTRIBUTE),
            );
        }
        Outgoing {
            data: body.to_owned(),
            ordering_key: parsed.as_ref().map(QueuedEvent::group_id),
            attributes,
        }
    }
}

/// At most `max` bytes, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// The accept stage's queue: publishes to `RELAY_PUBSUB_TOPIC`.
#[derive(Debug)]
pub struct PubSubEventQueue {
    client: std::sync::Arc<PubSub>,
}

impl PubSubEventQueue {
    pub fn new(client: std::sync::Arc<PubSub>) -> Self {
        Self { client }
    }
}

/// Pub/Sub takes at most 1,000 messages (and 10 MB) per publish call.
const PUBLISH_BATCH: usize = 500;

impl EventQueue for PubSubEventQueue {
    fn enqueue<'a>(&'a self, events: &'a [QueuedEvent]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let topic = self
                .client
                .topic()
                .ok_or_else(|| backend("RELAY_PUBSUB_TOPIC is not set"))?;
            let messages: Vec<Outgoing> = events
                .iter()
                .map(|e| PubSub::event_message(&e.to_json()))
                .collect();
            // In order: the messages of one subject keep their order.
            for chunk in messages.chunks(PUBLISH_BATCH) {
                self.client.publish(topic, chunk).await?;
            }
            Ok(())
        })
    }
}

/// What a message on the dead-letter subscription says, as a dead letter.
pub fn letter_from_message(message: &Received) -> DeadLetter {
    if message.attributes.contains_key(DEAD_LETTER_ATTRIBUTE)
        && let Ok(letter) = serde_json::from_str::<DeadLetter>(&message.data)
    {
        return letter;
    }
    // Forwarded by the subscription's dead-letter policy: the worker never
    // answered this message with a success (a crash, a timeout, or an
    // error before it could decide).
    let attempts = message
        .attributes
        .get(FORWARDED_COUNT_ATTRIBUTE)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut letter = DeadLetter::new(
        &message.data,
        &format!(
            "moved to dead letters by Pub/Sub's dead-letter policy after {attempts} delivery attempts without a success answer from the worker"
        ),
        attempts,
    );
    if let Some(secs) = message.publish_time.as_deref().and_then(parse_rfc3339_secs) {
        letter.dead_lettered_at_ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    }
    letter
}

/// Dead letters on `RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION`, for
/// `relay-gcp dlq`. Listing pulls them (holding each for a minute at most)
/// and gives them all back at once when done; a replay publishes the
/// original message to `RELAY_PUBSUB_TOPIC` with its ordering key, then
/// acknowledges the dead letter. Nothing else should pull this
/// subscription.
#[derive(Debug)]
pub struct DeadLetterSubscription {
    client: std::sync::Arc<PubSub>,
}

impl DeadLetterSubscription {
    pub fn new(client: std::sync::Arc<PubSub>) -> Self {
        Self { client }
    }

    fn subscription(&self) -> Result<&str, QueueError> {
        self.client
            .dead_letter_subscription()
            .ok_or_else(|| backend("RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION is not set"))
    }

    /// Pulls until `limit` messages, `stop_at` is seen, or two pulls in a
    /// row come back empty (a pull may answer empty while messages wait).
    async fn scan(&self, limit: usize, stop_at: Option<&str>) -> Result<Vec<Received>, QueueError> {
        let subscription = self.subscription()?;
        let mut seen: Vec<Received> = Vec::new();
        let mut ids = HashSet::new();
        let mut empty = 0;
        let result = async {
            while seen.len() < limit && empty < 2 {
                let batch = self
                    .client
                    .pull(subscription, (limit - seen.len()).min(1000))
                    .await?;
                if batch.is_empty() {
                    empty += 1;
                    continue;
                }
                empty = 0;
                let found = stop_at.is_some_and(|id| batch.iter().any(|m| m.message_id == id));
                for message in batch {
                    if ids.insert(message.message_id.clone()) {
                        seen.push(message);
                    }
                }
                if found {
                    break;
                }
            }
            Ok::<(), QueueError>(())
        }
        .await;
        // Keep the lease short whatever happened: give them back now.
        let acks: Vec<String> = seen.iter().map(|m| m.ack_id.clone()).collect();
        if let Err(e) = self
            .client
            .modify_ack_deadline(subscription, &acks, 0)
            .await
        {
            tracing::warn!(error = %e, "could not give the dead letters back; they reappear within {SCAN_ACK_DEADLINE_SECS} s");
        }
        result.map(|()| seen)
    }
}

impl DeadLetterStore for DeadLetterSubscription {
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetterEntry>, QueueError>> {
        Box::pin(async move {
            let mut entries: Vec<DeadLetterEntry> = self
                .scan(limit, None)
                .await?
                .iter()
                .map(|m| DeadLetterEntry {
                    id: m.message_id.clone(),
                    letter: letter_from_message(m),
                })
                .collect();
            entries.sort_by_key(|e| e.letter.dead_lettered_at_ms);
            Ok(entries)
        })
    }

    fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let subscription = self.subscription()?;
            let topic = self
                .client
                .topic()
                .ok_or_else(|| backend("RELAY_PUBSUB_TOPIC is not set"))?;
            let subscription = subscription.to_owned();
            // Pull until it shows up; everything else is given back.
            let mut held: Vec<Received> = Vec::new();
            let mut target = None;
            let mut empty = 0;
            let found = async {
                while target.is_none() && empty < 2 {
                    let batch = self.client.pull(&subscription, 1000).await?;
                    if batch.is_empty() {
                        empty += 1;
                        continue;
                    }
                    empty = 0;
                    for message in batch {
                        if message.message_id == id && target.is_none() {
                            target = Some(message);
                        } else {
                            held.push(message);
                        }
                    }
                }
                Ok::<(), QueueError>(())
            }
            .await;
            let others: Vec<String> = held.iter().map(|m| m.ack_id.clone()).collect();
            if let Err(e) = self
                .client
                .modify_ack_deadline(&subscription, &others, 0)
                .await
            {
                tracing::warn!(error = %e, "could not give the other dead letters back; they reappear within {SCAN_ACK_DEADLINE_SECS} s");
            }
            found?;
            let Some(message) = target else {
                return Err(QueueError::NotFound(id.to_owned()));
            };
            let letter = letter_from_message(&message);
            // Publish first, then acknowledge: a failure in between leaves
            // a duplicate (absorbed by the idempotency store), never a loss.
            let published = self
                .client
                .publish(topic, &[PubSub::event_message(&letter.body)])
                .await;
            if let Err(e) = published {
                let _ = self
                    .client
                    .modify_ack_deadline(&subscription, std::slice::from_ref(&message.ack_id), 0)
                    .await;
                return Err(e);
            }
            self.client
                .acknowledge(&subscription, std::slice::from_ref(&message.ack_id))
                .await?;
            tracing::info!(
                message_id = id,
                event_id = letter.event_id.as_deref().unwrap_or("-"),
                "dead letter replayed onto {topic}"
            );
            Ok(())
        })
    }
}

/// The dead-letter topic as the push worker's dead-letter sink.
impl relay_core::queue::DeadLetterSink for PubSub {
    fn sink_name(&self) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| "the dead-letter topic".to_owned())
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        self.publish_dead_letter(letter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use relay_core::config::from_pairs as raw;

    #[test]
    fn names_and_endpoints() {
        let c = PubSubConfig::for_service(&raw(&[
            ("RELAY_PUBSUB_TOPIC", "relay-events"),
            (
                "RELAY_PUBSUB_DEAD_LETTER_TOPIC",
                "projects/other-proj/topics/relay-dead-letter",
            ),
            ("PUBSUB_EMULATOR_HOST", "127.0.0.1:8085"),
        ]))
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:8085/v1");
        assert_eq!(c.auth, PubSubAuth::Emulator);
        let c = PubSubConfig::from_config(&raw(&[
            ("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.secret-token"),
            (
                "RELAY_PUBSUB_URL",
                "https://us-central1-pubsub.googleapis.com/v1/",
            ),
        ]))
        .unwrap();
        assert_eq!(c.base_url, "https://us-central1-pubsub.googleapis.com/v1");
        assert!(matches!(c.auth, PubSubAuth::Token(_)));
        assert!(!format!("{c:?}").contains("ya29"));
        assert_eq!(
            PubSubConfig::from_config(&raw(&[])).unwrap().auth,
            PubSubAuth::MetadataServer
        );
    }

    #[test]
    fn bad_and_missing_settings_are_named() {
        for (pairs, variable) in [
            (
                vec![("RELAY_PUBSUB_TOPIC", "9starts-with-digit")],
                "RELAY_PUBSUB_TOPIC",
            ),
            (
                vec![("RELAY_PUBSUB_TOPIC", "goog-reserved")],
                "RELAY_PUBSUB_TOPIC",
            ),
            (
                vec![("RELAY_PUBSUB_TOPIC", "projects/p/subscriptions/x-y-z")],
                "RELAY_PUBSUB_TOPIC",
            ),
            (vec![("RELAY_PUBSUB_URL", "ftp://x")], "RELAY_PUBSUB_URL"),
            (
                vec![("PUBSUB_EMULATOR_HOST", "http://localhost:8085")],
                "PUBSUB_EMULATOR_HOST",
            ),
            (
                vec![("RELAY_PUBSUB_TOPIC", "relay-events")],
                "RELAY_PUBSUB_DEAD_LETTER_TOPIC",
            ),
            (vec![], "RELAY_PUBSUB_TOPIC"),
        ] {
            let err = PubSubConfig::for_service(&raw(&pairs)).unwrap_err();
            assert_eq!(err.variable, variable, "{pairs:?}: {err}");
        }
        let err =
            PubSubConfig::for_dlq(&raw(&[("RELAY_PUBSUB_TOPIC", "relay-events")])).unwrap_err();
        assert_eq!(err.variable, "RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION");
    }

    #[test]
    fn forwarded_messages_read_as_dead_letters() {
        let message = Received {
            ack_id: "a".into(),
            message_id: "7".into(),
            data: "{\"v\":1}".into(),
            attributes: BTreeMap::from([(FORWARDED_COUNT_ATTRIBUTE.to_owned(), "12".to_owned())]),
            publish_time: Some("2026-03-12T10:00:00.000Z".into()),
            delivery_attempt: None,
        };
        let letter = letter_from_message(&message);
        assert_eq!(letter.attempts, 12);
        assert!(letter.reason.contains("after 12 delivery attempts"));
        assert_eq!(letter.body, "{\"v\":1}");
        assert_eq!(letter.dead_lettered_at_ms, 1_773_309_600_000);
        // The worker's own, with its reason.
        let ours = DeadLetter::new("{}", "permanent failure: x", 2);
        let message = Received {
            data: serde_json::to_string(&ours).unwrap(),
            attributes: BTreeMap::from([(DEAD_LETTER_ATTRIBUTE.to_owned(), "1".to_owned())]),
            ..message
        };
        assert_eq!(letter_from_message(&message), ours);
        assert_eq!(truncate("ünï", 2), "ü");
    }
}
