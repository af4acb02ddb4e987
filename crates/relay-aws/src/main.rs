//! `bootstrap`: the relay as an AWS Lambda function (Function URL, API
//! Gateway HTTP API or REST API). Logs JSON lines for CloudWatch Logs
//! Insights, reads the secret and builds the relay once per cold start, then
//! hands every invocation to it. Built with `cargo lambda build --release
//! --arm64`; see the crate docs for the configuration.

use std::sync::Arc;

use lambda_http::{Error, service_fn};
use relay_aws::AwsRelay;
use relay_core::config::{RawConfig, optional};
use relay_server::logging::{LogFormat, Metrics, init_with_metrics};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let env: RawConfig = std::env::vars().collect();
    let format = LogFormat::parse(optional(&env, "RELAY_LOG_FORMAT"))?.unwrap_or(LogFormat::Json);
    init_with_metrics(format, "info", Metrics::from_env(&env, format)?)?;
    let relay = match AwsRelay::from_env(env).await {
        Ok(relay) => Arc::new(relay),
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            return Err(e.to_string().into());
        }
    };
    lambda_http::run(service_fn(move |request| {
        let relay = Arc::clone(&relay);
        async move { Ok::<_, std::convert::Infallible>(relay.handle(request).await) }
    }))
    .await
}
