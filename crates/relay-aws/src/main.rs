//! `bootstrap`: the relay as an AWS Lambda function (Function URL, API
//! Gateway HTTP API or REST API; in queue mode also the SQS event source's
//! worker; scheduled tasks). Logs JSON lines for CloudWatch Logs Insights,
//! reads the secret and builds the relay once per cold start, then hands
//! every invocation to it. Built with `cargo lambda build --release
//! --arm64`; see the crate docs for the configuration.
//!
//! Run by hand as `bootstrap dlq list|show|replay …` (AWS credentials,
//! `RELAY_QUEUE_URL`, `RELAY_DLQ_URL`), it works on the dead letters instead.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::lambda_runtime::{self, LambdaEvent};
use lambda_http::{Error, service_fn};
use relay_aws::AwsRelay;
use relay_core::config::{RawConfig, optional};
use relay_server::logging::{LogFormat, Metrics, init_with_metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env: RawConfig = std::env::vars().collect();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("dlq") {
        let code = relay_aws::dlq_cli(&args[1..], &env, &mut std::io::stdout()).await;
        std::process::exit(code);
    }
    let format = LogFormat::parse(optional(&env, "RELAY_LOG_FORMAT"))?.unwrap_or(LogFormat::Json);
    init_with_metrics(format, "info", Metrics::from_env(&env, format)?)?;
    let relay = match AwsRelay::from_env(env).await {
        Ok(relay) => Arc::new(relay),
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            return Err(e.to_string().into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let relay = Arc::clone(&relay);
        async move {
            let deadline = deadline_of(event.context.deadline);
            relay
                .invoke(event.payload, Some(deadline))
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "invocation failed");
                    Error::from(e.to_string())
                })
        }
    }))
    .await
}

/// The invocation's deadline (ms since the epoch) as an instant.
fn deadline_of(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
