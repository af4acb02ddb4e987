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
//! The caching, the TTL and the rate limit are [`reloading::Reloading`]'s.

pub mod dynamo;
pub mod groups;
pub mod invocation;
pub mod reloading;
pub mod secrets;
pub mod settings;
pub mod sqs;
pub mod worker;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http::StatusCode;
use relay_core::apply::DuoDirectory;
use relay_core::config::{ConfigError, RawConfig, required};
use relay_core::pipeline::{Relay, duo_relay, sync_retry};
use relay_core::queue::EventQueue;
use serde_json::Value;

use invocation::{Buffered, dispatch, into_lambda, refused_for_its_secret};
use reloading::{Reload, Reloading};

pub use dynamo::DynamoStore;
pub use groups::DynamoGroupIndex;
pub use invocation::{HttpOrigin, Invocation, Task};
pub use secrets::{
    HOOK_SECRET_KEYS, REQUIRED_SECRET_KEYS, SecretError, SecretSource, SecretValues,
};
pub use settings::{QueueSettings, Settings, dynamodb_client, sdk_config, worker_dynamodb_client};
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

/// The function's state across invocations: the current relay, rebuilt
/// when the secret is rotated.
pub struct AwsRelay {
    settings: Settings,
    active: Reloading<Rebuild>,
}

/// What the relay is built from, the secret being read again by
/// [`Reloading`].
struct Rebuild {
    /// The plain environment; the secret is laid over it on every rebuild.
    env: RawConfig,
    secrets: SecretSource,
    store: DynamoStore,
    queued: Option<Queued>,
    fetches: AtomicU64,
}

impl Reload for Rebuild {
    type Value = Active;

    fn secret_id(&self) -> &str {
        self.secrets.secret_id()
    }

    /// Rebuilds the relay if the secret's content changed. A failed read or
    /// an invalid new version keeps the current relay (it still works with
    /// the previous secret) and is logged.
    async fn reload(&self, current: &Active) -> Option<Active> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.secrets.fetch().await {
            Ok(values) if values.same_content(&current.digest) => None,
            Ok(values) => match build(&self.env, &values, &self.store, self.queued.as_ref()) {
                Ok(active) => {
                    tracing::info!(
                        secret_id = %self.secrets.secret_id(),
                        "the secret changed: configuration reloaded"
                    );
                    Some(active)
                }
                Err(e) => {
                    tracing::error!(
                        secret_id = %self.secrets.secret_id(),
                        error = %e,
                        "the secret changed but its new version is not usable; keeping the previous configuration"
                    );
                    None
                }
            },
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot read the secret again; keeping the previous configuration"
                );
                None
            }
        }
    }
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
        let rebuild = Rebuild {
            env,
            secrets,
            store,
            queued,
            fetches: AtomicU64::new(1),
        };
        Ok(Self {
            active: Reloading::new(
                rebuild,
                active,
                settings.secret_ttl,
                settings.forced_refresh_interval,
            ),
            settings,
        })
    }

    /// How many times the secret was read (start-up included).
    pub fn secret_fetches(&self) -> u64 {
        self.active.source().fetches.load(Ordering::Relaxed)
    }

    /// The relay currently serving (changes when a rotated secret is loaded).
    pub fn relay(&self) -> Arc<LambdaRelay> {
        Arc::clone(&self.active.cached().relay)
    }

    /// The queue worker (queue mode only).
    pub fn worker(&self) -> Option<&Worker> {
        self.active.source().queued.as_ref().map(|q| &q.worker)
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
        // Each kind's future is boxed, so this one stays small: a reconcile
        // or catch-up future is large enough that, inlined, a debug build
        // overflowed the 2 MiB stack of a thread (the test threads', and the
        // runtime's workers have the same size).
        match Invocation::of(event)? {
            Invocation::Sqs(records) => {
                let answer = Box::pin(self.handle_sqs(records, deadline)).await?;
                serde_json::to_value(answer).map_err(|e| InvokeError::Answer(e.to_string()))
            }
            Invocation::Task(Task::Reconcile, task) => Box::pin(self.reconcile(&task)).await,
            Invocation::Task(Task::CatchUp, task) => Box::pin(self.catch_up(&task)).await,
            Invocation::Http(origin, event) => {
                let request = lambda_http::request::from_str(&event.to_string())
                    .map_err(|e| InvokeError::Unrecognized(e.to_string()))?;
                origin.answer(Box::pin(self.handle(request)).await)
            }
        }
    }

    /// Queue mode's worker on one SQS batch.
    pub async fn handle_sqs(
        &self,
        records: Vec<worker::SqsRecord>,
        deadline: Option<Instant>,
    ) -> Result<BatchResponse, InvokeError> {
        let Some(queued) = &self.active.source().queued else {
            return Err(InvokeError::NotQueueMode);
        };
        // The current relay: a rotated secret (say DUO_SKEY) is picked up
        // by the worker as by the requests.
        let relay = Arc::clone(&self.active.current().await.relay);
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
    /// "auth0"|"entra"}` (EventBridge Scheduler; the source defaults as in
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
        let relay = Arc::clone(&self.active.current().await.relay);
        let summary = relay_core::catch_up::run_scheduled(
            &relay,
            &raw,
            &self.active.source().store.checkpoints(),
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
        let source = self.active.source();
        source.fetches.fetch_add(1, Ordering::Relaxed);
        let values = source.secrets.fetch().await?;
        Ok(values.merged_over(&source.env))
    }

    /// Handles one Lambda HTTP event (Function URL, HTTP API or REST API).
    pub async fn handle(&self, request: lambda_http::Request) -> http::Response<lambda_http::Body> {
        let request = Buffered::from_lambda(request);
        let active = self.active.current().await;
        let mut response = dispatch(&active.router, &request).await;
        if response.status() == StatusCode::UNAUTHORIZED
            && refused_for_its_secret(&active.relay, &request)
            && let Some(fresh) = self
                .active
                .reread(&active, "a delivery was refused for its secret")
                .await
        {
            response = dispatch(&fresh.router, &request).await;
        }
        into_lambda(response)
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
    // A `missed` Entra lifecycle notification catches up by delta query
    // from the deltaLinks the scheduled catch-up keeps in the table.
    relay = relay_core::catch_up::entra_delta::with_missed_catch_up(
        relay,
        Arc::new(store.checkpoints()),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invocation::strip_stage;
    use std::time::Duration;

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
