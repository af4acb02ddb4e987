//! The AWS-specific settings from the plain environment (the secret, the
//! table, queue mode's queues) and the SDK clients built from them.

use std::time::Duration;

use relay_core::config::{ConfigError, RawConfig, optional, required};
use relay_core::queue::QueuePolicy;

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
