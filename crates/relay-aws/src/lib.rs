//! The relay on AWS Lambda: the shared router (`relay-server`) behind a
//! Lambda Function URL or API Gateway (HTTP API payload v2 and REST API v1),
//! with the secret configuration in AWS Secrets Manager and the idempotency
//! store in DynamoDB. The binary `bootstrap` only wires these together.
//!
//! This crate owns where secrets and state live on AWS and how a Lambda
//! event becomes an HTTP request; it knows nothing of IdP payloads or Duo
//! (that is `relay-core`'s) and adds no route (that is `relay-server`'s).
//!
//! Configuration: the contract's variables in the Lambda environment, except
//! the secret ones, which come from one secret ([`secrets`]), plus:
//! - `RELAY_SECRET_ID` — id or ARN of that secret (required);
//! - `RELAY_TABLE_NAME` — the DynamoDB table of the idempotency store
//!   (required; see [`dynamo`] for its shape), which also holds the Duo
//!   group index ([`groups`]);
//! - `RELAY_SECRET_TTL_SECS` — how long a fetched secret is trusted before it
//!   is read again (default 300), so a rotation is picked up without a
//!   redeploy;
//! - `AWS_ENDPOINT_URL` (the SDK's own variable) points the SDK clients at
//!   another endpoint, e.g. moto in tests;
//! - `RELAY_MODE` — `sync` (default: events are applied inside the request)
//!   or `queue` (durable delivery, [`sqs`] and [`worker`]): the request only
//!   verifies, parses and puts the events on the SQS FIFO queue
//!   `RELAY_QUEUE_URL`; the same function, invoked by the queue's event
//!   source, applies them, and what cannot be applied goes to the FIFO
//!   dead-letter queue `RELAY_DLQ_URL` with its reason
//!   (`RELAY_QUEUE_MAX_ATTEMPTS`, `RELAY_QUEUE_BACKOFF_MS` as in
//!   `relay_core::queue::QueuePolicy`).
//!
//! One function, three kinds of invocation ([`AwsRelay::invoke`] reads the
//! raw event): an HTTP request (Function URL, HTTP API, REST API), an SQS
//! batch (`eventSource` `aws:sqs`), or a task
//! (`{"relay_task":"reconcile","source":"okta"}` or
//! `{"relay_task":"catch_up","source":"okta"}` from EventBridge Scheduler),
//! read once into an [`Invocation`]. Run locally as `bootstrap dlq list|show|replay …` with AWS
//! credentials and `RELAY_QUEUE_URL` / `RELAY_DLQ_URL`, it inspects and
//! re-drives the dead letters ([`dlq_cli`]).
//!
//! Secret rotation: after `RELAY_SECRET_TTL_SECS` the secret is read again and,
//! only if its content changed, the relay is rebuilt (otherwise the old one,
//! with its Duo group cache, stays). A delivery refused because its secret
//! did not match forces one early read — at most once per
//! [`Settings::FORCED_REFRESH_INTERVAL`], so refused requests cannot make us
//! hammer Secrets Manager — and is handled again if the secret changed.

pub mod dynamo;
pub mod groups;
pub mod secrets;
pub mod sqs;
pub mod worker;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use lambda_http::tower::ServiceExt as _;
use relay_core::apply::DuoDirectory;
use relay_core::config::{ConfigError, RawConfig, optional, required};
use relay_core::pipeline::{Relay, Route, duo_relay, sync_retry};
use relay_core::queue::{EventQueue, QueuePolicy};
use relay_core::verify::VerifyFailure;
use serde_json::Value;

pub use dynamo::DynamoStore;
pub use groups::DynamoGroupIndex;
pub use secrets::{
    HOOK_SECRET_KEYS, REQUIRED_SECRET_KEYS, SecretError, SecretSource, SecretValues,
};
pub use sqs::{SqsDeadLetters, SqsQueue};
pub use worker::{BatchResponse, Worker};

/// The plain (non-secret) environment variables without which `bootstrap`
/// refuses to start: its own two ([`Settings::from_env`]) and the Duo
/// client's non-secret ones (`relay_core::config::duo_config`). The keys the
/// secret must hold are [`REQUIRED_SECRET_KEYS`] and one of
/// [`HOOK_SECRET_KEYS`]. `DUO_API_HOST` and `DUO_IKEY` may also come from the
/// secret (its keys win), but Terraform sets them in the function's
/// environment, where they are visible to the operator.
///
/// `terraform/modules/aws/required-env.json` is generated from this list and
/// kept equal to it by `tests/required_env.rs`, which also checks that
/// removing any one of these stops start-up naming it.
pub const REQUIRED_ENV: &[&str] = &[
    "RELAY_SECRET_ID",
    "RELAY_TABLE_NAME",
    "DUO_API_HOST",
    "DUO_IKEY",
];

/// The relay as this entry runs it.
pub type LambdaRelay = Relay<DuoDirectory, DynamoStore>;

/// The AWS-specific settings, from the plain environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `RELAY_SECRET_ID`: id or ARN of the secret.
    pub secret_id: String,
    /// `RELAY_TABLE_NAME`: the idempotency table.
    pub table_name: String,
    /// `RELAY_SECRET_TTL_SECS`: how long a fetched secret is trusted.
    pub secret_ttl: Duration,
    /// Least time between two reads forced by refused deliveries.
    pub forced_refresh_interval: Duration,
    /// Queue mode (`RELAY_MODE=queue`); `None` in sync mode.
    pub queue: Option<QueueSettings>,
}

/// Queue mode's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// `RELAY_QUEUE_URL`: the SQS FIFO event queue.
    pub queue_url: String,
    /// `RELAY_DLQ_URL`: the SQS FIFO dead-letter queue.
    pub dlq_url: String,
    /// `RELAY_QUEUE_MAX_ATTEMPTS`, `RELAY_QUEUE_BACKOFF_MS`.
    pub policy: QueuePolicy,
}

impl QueueSettings {
    /// `RELAY_QUEUE_URL`, `RELAY_DLQ_URL` and the queue policy.
    pub fn from_env(env: &RawConfig) -> Result<Self, ConfigError> {
        let queue_url = required(env, "RELAY_QUEUE_URL").map_err(|_| {
            ConfigError::new(
                "RELAY_QUEUE_URL",
                "is not set; queue mode needs the URL of the SQS FIFO event queue",
            )
        })?;
        let dlq_url = required(env, "RELAY_DLQ_URL").map_err(|_| {
            ConfigError::new(
                "RELAY_DLQ_URL",
                "is not set; queue mode needs the URL of the SQS FIFO dead-letter queue",
            )
        })?;
        for (name, url) in [("RELAY_QUEUE_URL", queue_url), ("RELAY_DLQ_URL", dlq_url)] {
            if !url.ends_with(".fifo") {
                return Err(ConfigError::new(
                    name,
                    "must be the URL of a FIFO queue (its name ends in .fifo): per-user order and deduplication need one",
                ));
            }
        }
        Ok(Self {
            queue_url: queue_url.to_owned(),
            dlq_url: dlq_url.to_owned(),
            policy: QueuePolicy::from_config(env)?,
        })
    }
}

impl Settings {
    pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);
    pub const FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

    /// Reads `RELAY_SECRET_ID`, `RELAY_TABLE_NAME` and `RELAY_SECRET_TTL_SECS`.
    pub fn from_env(env: &RawConfig) -> Result<Self, ConfigError> {
        let secret_id = required(env, "RELAY_SECRET_ID").map_err(|_| {
            ConfigError::new(
                "RELAY_SECRET_ID",
                "is not set; set it to the id or ARN of the Secrets Manager secret holding DUO_SKEY, OKTA_AUTH_SECRET, …",
            )
        })?;
        let table_name = required(env, "RELAY_TABLE_NAME").map_err(|_| {
            ConfigError::new(
                "RELAY_TABLE_NAME",
                "is not set; set it to the DynamoDB table of the idempotency store",
            )
        })?;
        let queue = if relay_core::queue::queue_mode(env)? {
            Some(QueueSettings::from_env(env)?)
        } else {
            None
        };
        let secret_ttl = match optional(env, "RELAY_SECRET_TTL_SECS") {
            None => Self::DEFAULT_SECRET_TTL,
            Some(secs) => Duration::from_secs(secs.parse().map_err(|_| {
                ConfigError::new("RELAY_SECRET_TTL_SECS", "must be a whole number of seconds")
            })?),
        };
        Ok(Self {
            secret_id: secret_id.to_owned(),
            table_name: table_name.to_owned(),
            secret_ttl,
            forced_refresh_interval: Self::FORCED_REFRESH_INTERVAL,
            queue,
        })
    }
}

/// Why the function cannot start. Names the variable, the secret or the key;
/// never a value.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Secret(#[from] SecretError),
}

/// Why an invocation could not be handled (the function reports it as an
/// error; Lambda or the scheduler retries). Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(
        "an SQS batch arrived but RELAY_MODE is not queue: set RELAY_MODE=queue, RELAY_QUEUE_URL and RELAY_DLQ_URL, or remove the event source mapping"
    )]
    NotQueueMode,
    #[error("unknown relay_task {0}; the known tasks are reconcile and catch_up")]
    UnknownTask(String),
    #[error("relay_task reconcile: {0}")]
    Reconcile(String),
    #[error("relay_task catch_up: {0}")]
    CatchUp(String),
    #[error(
        "the event is neither an HTTP request (Function URL, API Gateway), an SQS batch nor a relay_task: {0}"
    )]
    Unrecognized(String),
    #[error("could not write the answer: {0}")]
    Answer(String),
}

/// The SDK configuration the Lambda runtime provides: region, credentials of
/// the execution role, and `AWS_ENDPOINT_URL` when set.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A DynamoDB client whose calls fit in a webhook answer: Okta gives up
/// after about 3 s, and a store that does not answer must turn into a 503
/// (the IdP retries) rather than a timeout.
pub fn dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    dynamodb_client_within(sdk, Duration::from_secs(1), Duration::from_secs(2))
}

/// A DynamoDB client for queue mode's worker: no IdP is waiting, so a slow
/// answer is better than a failed write (a watermark or completion that
/// cannot be written after Duo was changed is only logged).
pub fn worker_dynamodb_client(sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    dynamodb_client_within(sdk, Duration::from_secs(3), Duration::from_secs(10))
}

/// A DynamoDB client on `sdk` whose attempts and whole calls (retries
/// included) give up after `attempt` and `total`.
fn dynamodb_client_within(
    sdk: &aws_config::SdkConfig,
    attempt: Duration,
    total: Duration,
) -> aws_sdk_dynamodb::Client {
    let timeouts = aws_sdk_dynamodb::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(attempt)
        .operation_timeout(total)
        .build();
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .timeout_config(timeouts)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// `bootstrap dlq list|show|replay …`, run by hand with AWS credentials:
/// the dead letters of the queues `RELAY_QUEUE_URL` / `RELAY_DLQ_URL` in
/// `env` (see [`SqsDeadLetters`] and `relay_core::queue::dlq_command`).
/// Answers the exit code.
pub async fn dlq_cli(args: &[String], env: &RawConfig, out: &mut dyn std::io::Write) -> i32 {
    let (queue_url, dlq_url) = match (
        required(env, "RELAY_QUEUE_URL"),
        required(env, "RELAY_DLQ_URL"),
    ) {
        (Ok(queue), Ok(dlq)) => (queue.to_owned(), dlq.to_owned()),
        _ => {
            let _ = writeln!(
                out,
                "error: set RELAY_QUEUE_URL and RELAY_DLQ_URL (terraform output queue_url and dead_letter_queue_url), and AWS credentials for the account"
            );
            return 2;
        }
    };
    let sdk = sdk_config().await;
    let store = SqsDeadLetters::new(aws_sdk_sqs::Client::new(&sdk), queue_url, dlq_url);
    let code = relay_core::queue::dlq_command(args, &store, out).await;
    store.release().await;
    code
}

/// An SDK error as one line: each cause's message, outermost first (the
/// SDK's own `Display` says only "service error" or "dispatch failure").
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// SHA-256 of `text` as lower-case hex (hashed DynamoDB keys, SQS group and
/// deduplication ids).
pub(crate) fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Queue mode's parts: where the accept stage writes, and the worker.
#[derive(Debug, Clone)]
struct Queued {
    queue: Arc<SqsQueue>,
    worker: Worker,
}

/// The relay built from one version of the secret, with its router.
struct Active {
    relay: Arc<LambdaRelay>,
    router: axum::Router,
    digest: [u8; 32],
}

struct Schedule {
    active: Arc<Active>,
    /// When the secret is read again.
    next_check: Instant,
    /// The last read forced by a refused delivery.
    last_forced: Option<Instant>,
}

/// The function's state across invocations: the current relay and where to
/// reload it from.
pub struct AwsRelay {
    /// The plain environment; the secret is laid over it on every rebuild.
    env: RawConfig,
    secrets: SecretSource,
    store: DynamoStore,
    settings: Settings,
    queued: Option<Queued>,
    schedule: Mutex<Schedule>,
    /// One read of the secret at a time.
    refreshing: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl fmt::Debug for AwsRelay {
    // The environment may hold secrets someone put there by mistake.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsRelay")
            .field("settings", &self.settings)
            .field("secret_fetches", &self.secret_fetches())
            .finish_non_exhaustive()
    }
}

impl AwsRelay {
    /// Start-up in Lambda: settings and SDK configuration from the process
    /// environment, then [`AwsRelay::start`].
    pub async fn from_env(env: RawConfig) -> Result<Self, StartupError> {
        let settings = Settings::from_env(&env)?;
        let sdk = sdk_config().await;
        // In queue mode the store is used by the worker only (the request
        // just enqueues), which can wait longer than a webhook answer.
        let dynamodb = if settings.queue.is_some() {
            worker_dynamodb_client(&sdk)
        } else {
            dynamodb_client(&sdk)
        };
        let store = DynamoStore::new(dynamodb, &settings.table_name);
        let secrets = SecretSource::new(&sdk, &settings.secret_id);
        let sqs = settings.queue.as_ref().map(|_| sqs::sqs_client(&sdk));
        Self::start(env, settings, secrets, store, sqs).await
    }

    /// Reads the secret once and builds the relay; fails naming what is wrong
    /// (an unreadable secret, a missing key, a bad variable). Queue mode
    /// (`settings.queue`) needs `sqs`.
    pub async fn start(
        env: RawConfig,
        settings: Settings,
        secrets: SecretSource,
        store: DynamoStore,
        sqs: Option<aws_sdk_sqs::Client>,
    ) -> Result<Self, StartupError> {
        let queued = match (&settings.queue, sqs) {
            (None, _) => None,
            (Some(q), Some(client)) => Some(Queued {
                queue: Arc::new(SqsQueue::new(client.clone(), &q.queue_url)),
                worker: Worker::new(client, &q.queue_url, &q.dlq_url, q.policy),
            }),
            (Some(_), None) => {
                return Err(
                    ConfigError::new("RELAY_MODE", "queue mode needs an SQS client").into(),
                );
            }
        };
        let misplaced = secrets::secrets_in_plain_env(&env);
        if !misplaced.is_empty() {
            tracing::warn!(
                variables = %misplaced.join(","),
                "secret variables are set in the Lambda environment; keep them in the secret (RELAY_SECRET_ID), whose values win"
            );
        }
        let values = secrets.fetch().await?;
        let active = build(&env, &values, &store, queued.as_ref())?;
        let relay = &active.relay;
        tracing::info!(
            secret_id = %secrets.secret_id(),
            table = %store.table(),
            mode = relay.mode(),
            queue = settings.queue.as_ref().map_or("-", |q| q.queue_url.as_str()),
            dead_letters = settings.queue.as_ref().map_or("-", |q| q.dlq_url.as_str()),
            secret_ttl_secs = settings.secret_ttl.as_secs(),
            okta = relay.auth().is_configured(relay_core::event::Source::Okta),
            auth0 = relay.auth().is_configured(relay_core::event::Source::Auth0Events),
            entra = relay.auth().is_configured(relay_core::event::Source::Entra),
            "idp-duo-relay ready on Lambda: /okta, /auth0, /auth0/logs, /entra, /healthz"
        );
        Ok(Self {
            env,
            secrets,
            store,
            schedule: Mutex::new(Schedule {
                active: Arc::new(active),
                next_check: Instant::now() + settings.secret_ttl,
                last_forced: None,
            }),
            settings,
            queued,
            refreshing: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(1),
        })
    }

    /// How many times the secret was read (start-up included).
    pub fn secret_fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The relay currently serving (changes when a rotated secret is loaded).
    pub fn relay(&self) -> Arc<LambdaRelay> {
        Arc::clone(&self.schedule().active.relay)
    }

    /// The queue worker (queue mode only).
    pub fn worker(&self) -> Option<&Worker> {
        self.queued.as_ref().map(|q| &q.worker)
    }

    /// Handles one invocation, whatever its kind, from the raw event:
    /// an SQS batch (queue mode's worker; answers `batchItemFailures`), a
    /// `relay_task`, or an HTTP request (answers in the shape its origin
    /// expects). `deadline` is the invocation's.
    pub async fn invoke(
        &self,
        event: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, InvokeError> {
        match Invocation::of(event)? {
            Invocation::Sqs(records) => {
                let answer = self.handle_sqs(records, deadline).await?;
                serde_json::to_value(answer).map_err(|e| InvokeError::Answer(e.to_string()))
            }
            Invocation::Task(Task::Reconcile, task) => self.reconcile(&task).await,
            Invocation::Task(Task::CatchUp, task) => self.catch_up(&task).await,
            Invocation::Http(origin, event) => {
                let request = lambda_http::request::from_str(&event.to_string())
                    .map_err(|e| InvokeError::Unrecognized(e.to_string()))?;
                origin.answer(self.handle(request).await)
            }
        }
    }

    /// Queue mode's worker on one SQS batch.
    pub async fn handle_sqs(
        &self,
        records: Vec<worker::SqsRecord>,
        deadline: Option<Instant>,
    ) -> Result<BatchResponse, InvokeError> {
        let Some(queued) = &self.queued else {
            return Err(InvokeError::NotQueueMode);
        };
        // The current relay: a rotated secret (say DUO_SKEY) is picked up
        // by the worker as by the requests.
        let relay = Arc::clone(&self.active().await.relay);
        Ok(queued.worker.run(relay, records, deadline).await)
    }

    /// The scheduled reconcile: `{"relay_task":"reconcile","source":"okta"|"auth0",
    /// "dry_run":false,"max_deletes":10}` (EventBridge Scheduler; fields
    /// left out come from `RELAY_RECONCILE_*`, see
    /// `relay_core::reconcile::ReconcileOptions::scheduled`). The secret is
    /// read afresh (the IdP API credentials live there) and laid over the
    /// environment. Answers the run's summary when Duo converged, and an
    /// error otherwise — drift left, the deletion cap, a read error — so the
    /// invocation counts as failed (the Terraform module alarms on it).
    async fn reconcile(&self, event: &Value) -> Result<Value, InvokeError> {
        let raw = self
            .task_config()
            .await
            .map_err(|e| InvokeError::Reconcile(e.to_string()))?;
        let options = relay_core::reconcile::ReconcileOptions::scheduled(&raw, Some(event))
            .map_err(|e| InvokeError::Reconcile(e.to_string()))?;
        let report = relay_core::idp_sync::run_from_config(&raw, &options)
            .await
            .map_err(|e| InvokeError::Reconcile(e.to_string()))?;
        if !report.converged() {
            return Err(InvokeError::Reconcile(report.status_line()));
        }
        Ok(serde_json::json!({
            "run_id": report.run_id,
            "status": report.status.as_str(),
            "detail": report.status_line(),
            "counts": report.counts,
        }))
    }

    /// The scheduled catch-up: `{"relay_task":"catch_up","source":"okta"|
    /// "auth0"}` (EventBridge Scheduler; the source defaults as in
    /// `relay_core::catch_up::CatchUpOptions::scheduled`). Reads the IdP's
    /// log from the checkpoint in the DynamoDB table (`cp#<source>`) and
    /// applies what the hook missed through the current relay (its store,
    /// group index and lookups). Answers the run's summary when it read to
    /// the end (or to its page budget) with no failed event, and an error
    /// otherwise, so the invocation counts as failed (the Terraform
    /// module's catch_up_failed alarm).
    async fn catch_up(&self, event: &Value) -> Result<Value, InvokeError> {
        let raw = self
            .task_config()
            .await
            .map_err(|e| InvokeError::CatchUp(e.to_string()))?;
        let relay = Arc::clone(&self.active().await.relay);
        let summary = relay_core::catch_up::run_scheduled(
            &relay,
            &raw,
            &self.store.checkpoints(),
            Some(event),
        )
        .await
        .map_err(|e| InvokeError::CatchUp(e.to_string()))?;
        if !summary.is_ok() {
            return Err(InvokeError::CatchUp(summary.status_line()));
        }
        serde_json::to_value(&summary).map_err(|e| InvokeError::Answer(e.to_string()))
    }

    /// A task's configuration: the secret read afresh (the IdP API
    /// credentials live there) laid over the environment.
    async fn task_config(&self) -> Result<RawConfig, SecretError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let values = self.secrets.fetch().await?;
        Ok(values.merged_over(&self.env))
    }

    /// Handles one Lambda HTTP event (Function URL, HTTP API or REST API).
    pub async fn handle(&self, request: lambda_http::Request) -> http::Response<lambda_http::Body> {
        let request = Buffered::from_lambda(request);
        let active = self.active().await;
        let mut response = dispatch(&active.router, &request).await;
        if response.status() == StatusCode::UNAUTHORIZED
            && refused_for_its_secret(&active.relay, &request)
            && let Some(fresh) = self.forced_refresh(&active).await
        {
            response = dispatch(&fresh.router, &request).await;
        }
        into_lambda(response)
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current relay, re-reading the secret first when its TTL ran out.
    async fn active(&self) -> Arc<Active> {
        {
            let schedule = self.schedule();
            if Instant::now() < schedule.next_check {
                return Arc::clone(&schedule.active);
            }
        }
        let _one_at_a_time = self.refreshing.lock().await;
        {
            // Another request may have read it while we waited.
            let schedule = self.schedule();
            if Instant::now() < schedule.next_check {
                return Arc::clone(&schedule.active);
            }
        }
        self.refresh().await
    }

    /// A read forced by a delivery refused for its secret: `Some` with the
    /// new relay when the secret changed, `None` when it did not or when the
    /// last forced read is too recent.
    async fn forced_refresh(&self, seen: &Arc<Active>) -> Option<Arc<Active>> {
        let _one_at_a_time = self.refreshing.lock().await;
        {
            let mut schedule = self.schedule();
            if !Arc::ptr_eq(&schedule.active, seen) {
                // Rebuilt while this request ran: try the new one, no read.
                return Some(Arc::clone(&schedule.active));
            }
            let now = Instant::now();
            if schedule.last_forced.is_some_and(|last| {
                now.duration_since(last) < self.settings.forced_refresh_interval
            }) {
                tracing::debug!(
                    "secret mismatch: a forced secret read ran recently; not reading again"
                );
                return None;
            }
            schedule.last_forced = Some(now);
        }
        tracing::info!(
            secret_id = %self.secrets.secret_id(),
            "a delivery was refused for its secret: reading the secret again in case it was rotated"
        );
        let after = self.refresh().await;
        (!Arc::ptr_eq(&after, seen)).then_some(after)
    }

    /// Reads the secret and rebuilds the relay if its content changed. A
    /// failed read or an invalid new version keeps the current relay (it
    /// still works with the previous secret) and is logged. Call with
    /// `refreshing` held.
    async fn refresh(&self) -> Arc<Active> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let fetched = self.secrets.fetch().await;
        let current = Arc::clone(&self.schedule().active);
        let next = match fetched {
            Ok(values) if values.same_content(&current.digest) => current,
            Ok(values) => match build(&self.env, &values, &self.store, self.queued.as_ref()) {
                Ok(active) => {
                    tracing::info!(
                        secret_id = %self.secrets.secret_id(),
                        "the secret changed: configuration reloaded"
                    );
                    Arc::new(active)
                }
                Err(e) => {
                    tracing::error!(
                        secret_id = %self.secrets.secret_id(),
                        error = %e,
                        "the secret changed but its new version is not usable; keeping the previous configuration"
                    );
                    current
                }
            },
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot read the secret again; keeping the previous configuration"
                );
                current
            }
        };
        let mut schedule = self.schedule();
        schedule.active = Arc::clone(&next);
        schedule.next_check = Instant::now() + self.settings.secret_ttl;
        next
    }
}

/// Builds the relay from the environment with the secret laid over it, its
/// Duo group index kept in the table. In queue mode Duo calls happen in the
/// worker, which can wait longer than a webhook answer.
fn build(
    env: &RawConfig,
    values: &SecretValues,
    store: &DynamoStore,
    queued: Option<&Queued>,
) -> Result<Active, ConfigError> {
    let (retry, timeout) = if queued.is_some() {
        worker::worker_retry()
    } else {
        sync_retry()
    };
    let mut relay = duo_relay(&values.merged_over(env), store.clone(), retry, timeout)?
        .with_group_index(Arc::new(store.group_index()));
    if let Some(queued) = queued {
        relay = relay.with_queue(Arc::clone(&queued.queue) as Arc<dyn EventQueue>);
    }
    let relay = Arc::new(relay);
    Ok(Active {
        router: relay_server::app(Arc::clone(&relay)),
        relay,
        digest: values.digest(),
    })
}

/// What one invocation is, read from its raw event once (issue 15: a
/// typed dispatch instead of probing the JSON in several places).
#[derive(Debug)]
pub enum Invocation {
    /// An SQS batch (`eventSource` `aws:sqs`): queue mode's worker.
    Sqs(Vec<worker::SqsRecord>),
    /// A scheduled task (`relay_task`, from EventBridge Scheduler) with the
    /// event, whose other fields are the task's options.
    Task(Task, Value),
    /// An HTTP request, in the shape of its origin.
    Http(HttpOrigin, Value),
}

/// The scheduled tasks (`relay_task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `reconcile`: converge Duo with the IdP (relay_core::reconcile).
    Reconcile,
    /// `catch_up`: apply what the hook missed from the IdP's event log
    /// (relay_core::catch_up).
    CatchUp,
}

impl Invocation {
    /// Reads the event; an unknown `relay_task` or an event of no known
    /// shape is an error naming what was looked for.
    pub fn of(event: Value) -> Result<Self, InvokeError> {
        if let Some(records) = worker::sqs_records(&event) {
            return Ok(Self::Sqs(records));
        }
        if let Some(task) = event.get("relay_task") {
            let task = match task.as_str() {
                Some("reconcile") => Task::Reconcile,
                Some("catch_up") => Task::CatchUp,
                _ => return Err(InvokeError::UnknownTask(task.to_string())),
            };
            return Ok(Self::Task(task, event));
        }
        match HttpOrigin::of(&event) {
            Some(origin) => Ok(Self::Http(origin, event)),
            None => Err(InvokeError::Unrecognized(
                "no Records, relay_task, httpMethod or requestContext.http".into(),
            )),
        }
    }
}

/// Where an HTTP event came from, which decides the answer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOrigin {
    /// API Gateway REST API (payload 1.0).
    RestApi,
    /// Function URL or HTTP API (payload 2.0).
    HttpApi,
}

impl HttpOrigin {
    fn of(event: &Value) -> Option<Self> {
        if event.get("version").and_then(Value::as_str) == Some("2.0")
            || event.pointer("/requestContext/http").is_some()
        {
            Some(Self::HttpApi)
        } else if event.get("httpMethod").is_some() {
            Some(Self::RestApi)
        } else {
            None
        }
    }

    /// The answer as API Gateway / the Function URL reads it.
    fn answer(self, response: http::Response<lambda_http::Body>) -> Result<Value, InvokeError> {
        use lambda_http::aws_lambda_events::apigw::{
            ApiGatewayProxyResponse, ApiGatewayV2httpResponse,
        };
        let (parts, body) = response.into_parts();
        let (is_base64_encoded, body) = match body {
            lambda_http::Body::Empty => (false, None),
            text @ lambda_http::Body::Text(_) => (false, Some(text)),
            binary @ lambda_http::Body::Binary(_) => (true, Some(binary)),
            _ => (false, None),
        };
        let status_code = i64::from(parts.status.as_u16());
        let value = match self {
            Self::RestApi => {
                let mut answer = ApiGatewayProxyResponse::default();
                answer.status_code = status_code;
                // Only multi-value headers: API Gateway merges both fields.
                answer.multi_value_headers = parts.headers;
                answer.body = body;
                answer.is_base64_encoded = is_base64_encoded;
                serde_json::to_value(answer)
            }
            Self::HttpApi => {
                let mut answer = ApiGatewayV2httpResponse::default();
                answer.status_code = status_code;
                answer.headers = parts.headers;
                answer.body = body;
                answer.is_base64_encoded = is_base64_encoded;
                serde_json::to_value(answer)
            }
        };
        value.map_err(|e| InvokeError::Answer(e.to_string()))
    }
}

/// One request, read whole, so it can be handled a second time.
struct Buffered {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Buffered {
    fn from_lambda(request: lambda_http::Request) -> Self {
        let uri = stage_less_uri(&request);
        let (parts, body) = request.into_parts();
        let body = match body {
            lambda_http::Body::Empty => Bytes::new(),
            lambda_http::Body::Text(text) => Bytes::from(text),
            lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
            other => Bytes::copy_from_slice(other.as_ref()),
        };
        Self {
            method: parts.method,
            uri,
            headers: parts.headers,
            body,
        }
    }
}

/// The request's path and query without the API Gateway stage: lambda_http
/// puts a named stage in front of the path (`/prod/okta`), the routes have
/// none. A Function URL or a `$default` stage has nothing to strip.
fn stage_less_uri(request: &lambda_http::Request) -> Uri {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    let uri = request.uri();
    let path = strip_stage(uri.path(), stage);
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    path_and_query.parse().unwrap_or_else(|_| uri.clone())
}

fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Whether a 401 came from a secret that did not match (or a source with no
/// secret yet): the case a rotation explains. A missing or duplicated header
/// is not worth a read of the secret. The route comes from the source
/// registry (`Route::of`), the table `relay-server`'s router is built from.
fn refused_for_its_secret(relay: &LambdaRelay, request: &Buffered) -> bool {
    let Some(route) = Route::of(&request.method, request.uri.path()) else {
        return false;
    };
    let failure = match route {
        Route::Verification(source) => relay
            .auth()
            .verify_challenge(source, &request.headers)
            .err(),
        Route::Delivery(source) => relay
            .auth()
            .verify(
                source,
                &request.headers,
                request.body.clone(),
                SystemTime::now(),
            )
            .err(),
    };
    matches!(
        failure,
        Some(
            VerifyFailure::SecretMismatch { .. }
                | VerifyFailure::BodySecretMismatch { .. }
                | VerifyFailure::SignatureMismatch
                | VerifyFailure::NotConfigured { .. }
        )
    )
}

/// Runs the request through the router and reads the answer whole.
async fn dispatch(router: &axum::Router, request: &Buffered) -> http::Response<Bytes> {
    let mut http_request = http::Request::new(axum::body::Body::from(request.body.clone()));
    *http_request.method_mut() = request.method.clone();
    *http_request.uri_mut() = request.uri.clone();
    *http_request.headers_mut() = request.headers.clone();
    let response = match router.clone().oneshot(http_request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => http::Response::from_parts(parts, bytes),
        Err(e) => {
            tracing::error!(error = %e, "could not read the router's answer");
            let mut response = http::Response::new(Bytes::new());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// The answer as lambda_http sends it back (text when it is UTF-8, which
/// every answer of the router is; base64 otherwise).
fn into_lambda(response: http::Response<Bytes>) -> http::Response<lambda_http::Body> {
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        lambda_http::Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(e) => lambda_http::Body::Binary(e.into_bytes()),
        }
    };
    http::Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_stripped_only_when_named_and_present() {
        assert_eq!(strip_stage("/prod/okta", Some("prod")), "/okta");
        assert_eq!(strip_stage("/prod", Some("prod")), "/");
        assert_eq!(strip_stage("/okta", Some("$default")), "/okta");
        assert_eq!(strip_stage("/okta", None), "/okta");
        assert_eq!(
            strip_stage("/production/okta", Some("prod")),
            "/production/okta"
        );
        assert_eq!(strip_stage("/okta/okta", Some("okta")), "/okta");
    }

    #[test]
    fn settings_name_the_missing_or_bad_variable() {
        let env = relay_core::config::from_pairs;
        let err = Settings::from_env(&env(&[])).unwrap_err();
        assert_eq!(err.variable, "RELAY_SECRET_ID");
        let err = Settings::from_env(&env(&[("RELAY_SECRET_ID", "relay")])).unwrap_err();
        assert_eq!(err.variable, "RELAY_TABLE_NAME");
        let base = [("RELAY_SECRET_ID", "relay"), ("RELAY_TABLE_NAME", "t")];
        let settings = Settings::from_env(&env(&base)).unwrap();
        assert_eq!(settings.secret_ttl, Settings::DEFAULT_SECRET_TTL);
        let mut bad = base.to_vec();
        bad.push(("RELAY_SECRET_TTL_SECS", "five"));
        assert_eq!(
            Settings::from_env(&env(&bad)).unwrap_err().variable,
            "RELAY_SECRET_TTL_SECS"
        );
        bad.pop();
        bad.push(("RELAY_SECRET_TTL_SECS", "0"));
        assert_eq!(
            Settings::from_env(&env(&bad)).unwrap().secret_ttl,
            Duration::ZERO
        );
    }

    #[test]
    fn queue_mode_needs_both_fifo_queues() {
        let env = |pairs: &[(&str, &str)]| -> RawConfig {
            let mut env = relay_core::config::from_pairs(&[
                ("RELAY_SECRET_ID", "relay"),
                ("RELAY_TABLE_NAME", "t"),
            ]);
            env.extend(relay_core::config::from_pairs(pairs));
            env
        };
        let queue = "https://sqs.eu-west-1.amazonaws.com/123456789012/relay-events.fifo";
        let dlq = "https://sqs.eu-west-1.amazonaws.com/123456789012/relay-dead-letters.fifo";
        assert_eq!(Settings::from_env(&env(&[])).unwrap().queue, None);
        assert_eq!(
            Settings::from_env(&env(&[("RELAY_MODE", "sync"), ("RELAY_QUEUE_URL", queue)]))
                .unwrap()
                .queue,
            None
        );
        let variable =
            |pairs: &[(&str, &str)]| Settings::from_env(&env(pairs)).unwrap_err().variable;
        assert_eq!(variable(&[("RELAY_MODE", "fast")]), "RELAY_MODE");
        assert_eq!(variable(&[("RELAY_MODE", "queue")]), "RELAY_QUEUE_URL");
        assert_eq!(
            variable(&[("RELAY_MODE", "queue"), ("RELAY_QUEUE_URL", queue)]),
            "RELAY_DLQ_URL"
        );
        assert_eq!(
            variable(&[
                ("RELAY_MODE", "queue"),
                ("RELAY_QUEUE_URL", queue),
                (
                    "RELAY_DLQ_URL",
                    "https://sqs.eu-west-1.amazonaws.com/1/standard"
                ),
            ]),
            "RELAY_DLQ_URL"
        );
        assert_eq!(
            variable(&[
                ("RELAY_MODE", "queue"),
                ("RELAY_QUEUE_URL", queue),
                ("RELAY_DLQ_URL", dlq),
                ("RELAY_QUEUE_MAX_ATTEMPTS", "0"),
            ]),
            "RELAY_QUEUE_MAX_ATTEMPTS"
        );
        let settings = Settings::from_env(&env(&[
            ("RELAY_MODE", "queue"),
            ("RELAY_QUEUE_URL", queue),
            ("RELAY_DLQ_URL", dlq),
            ("RELAY_QUEUE_MAX_ATTEMPTS", "5"),
        ]))
        .unwrap();
        let q = settings.queue.unwrap();
        assert_eq!((q.queue_url.as_str(), q.dlq_url.as_str()), (queue, dlq));
        assert_eq!(q.policy.max_attempts, 5);
    }
}
