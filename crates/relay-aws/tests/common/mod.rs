//! Helpers for the relay-aws tests: moto (AWS emulator, started by
//! scripts/emulators.sh), SDK configs pointed at it, a secret and a table per
//! test, the Duo simulator, and Lambda events shaped like the real ones.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]

pub mod queue;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use base64::Engine as _;
use duo_sim::DuoSim;
use relay_aws::{AwsRelay, DynamoStore, SecretSource, Settings};
use relay_core::config::RawConfig;
use serde_json::{Value, json};

/// The Okta shared secret of the first secret version.
pub const OKTA_SECRET: &str = "okta-hook-secret-0123456789abcdef";
/// The Okta shared secret after a rotation.
pub const ROTATED_OKTA_SECRET: &str = "okta-hook-rotated-fedcba9876543210";

/// moto's URL, or `None` (with a line saying so) when the emulator is not
/// running and not required. With `RELAY_TEST_REQUIRE_EMULATORS=1` a missing
/// emulator fails the test.
pub fn moto_url() -> Option<String> {
    relay_tests::emulator_url("RELAY_TEST_MOTO_URL", "moto")
}

/// An SDK config for `endpoint` with moto's dummy credentials, built
/// explicitly so parallel tests never touch the process environment.
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await
}

/// A name no other test (or earlier run against the same moto) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates an idempotency table shaped as the crate docs say.
pub async fn create_table(sdk: &aws_config::SdkConfig) -> String {
    let name = unique("relay-idem");
    aws_sdk_dynamodb::Client::new(sdk)
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap();
    name
}

pub fn secrets_client(sdk: &aws_config::SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(sdk)
}

/// Creates a secret holding `value`; returns its ARN.
pub async fn create_secret(sdk: &aws_config::SdkConfig, value: &str) -> String {
    let out = secrets_client(sdk)
        .create_secret()
        .name(unique("relay-secret"))
        .secret_string(value)
        .send()
        .await
        .unwrap();
    out.arn().unwrap().to_owned()
}

/// Rotates: a new current version of the secret.
pub async fn put_secret(sdk: &aws_config::SdkConfig, id: &str, value: &str) {
    secrets_client(sdk)
        .put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// The secret JSON for `sim` with the given Okta shared secret.
pub fn secret_json(sim: &DuoSim, okta_secret: &str) -> String {
    json!({
        "DUO_SKEY": sim.config().skey,
        "OKTA_AUTH_SECRET": okta_secret,
    })
    .to_string()
}

/// The secret JSON of a scheduled task reading Okta's API: the Duo key,
/// the hook secret and the API token (as the Terraform module stores them;
/// the org URL is in the plain environment).
pub fn okta_api_secret_json(sim: &DuoSim) -> String {
    json!({
        "DUO_SKEY": sim.config().skey,
        "OKTA_AUTH_SECRET": OKTA_SECRET,
        "OKTA_API_TOKEN": relay_tests::idp_standin::OKTA_TOKEN,
    })
    .to_string()
}

/// The plain (non-secret) Lambda environment for `sim`.
pub fn plain_env(sim: &DuoSim) -> RawConfig {
    RawConfig::from([
        ("DUO_API_HOST".to_owned(), sim.config().host.clone()),
        ("DUO_IKEY".to_owned(), sim.config().ikey.clone()),
        ("DUO_API_URL".to_owned(), sim.base_url()),
        ("DUO_RATE_PER_MINUTE".to_owned(), "off".to_owned()),
    ])
}

pub fn settings(secret_id: &str, table: &str, ttl: Duration) -> Settings {
    Settings {
        secret_id: secret_id.to_owned(),
        table_name: table.to_owned(),
        secret_ttl: ttl,
        forced_refresh_interval: Settings::FORCED_REFRESH_INTERVAL,
        queue: None,
    }
}

/// Everything a handler test needs, on moto and a fresh Duo simulator.
pub struct Fixture {
    pub sdk: aws_config::SdkConfig,
    pub sim: DuoSim,
    pub secret_id: String,
    pub table: String,
}

impl Fixture {
    pub async fn new(moto: &str) -> Self {
        let sdk = sdk(moto).await;
        let sim = DuoSim::start().await;
        let secret_id = create_secret(&sdk, &secret_json(&sim, OKTA_SECRET)).await;
        let table = create_table(&sdk).await;
        Self {
            sdk,
            sim,
            secret_id,
            table,
        }
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(relay_aws::dynamodb_client(&self.sdk), &self.table)
    }

    pub async fn relay(&self, ttl: Duration) -> AwsRelay {
        AwsRelay::start(
            plain_env(&self.sim),
            settings(&self.secret_id, &self.table, ttl),
            SecretSource::new(&self.sdk, &self.secret_id),
            self.store(),
            None,
        )
        .await
        .unwrap()
    }
}

/// The text of `tests/fixtures/okta/<name>` at the workspace root.
pub fn okta_fixture(name: &str) -> String {
    relay_tests::fixture_text(&format!("okta/{name}"))
}

/// The user the `user-lifecycle-create.json` delivery creates.
pub const CREATED_USER: &str = "jane.doe@example.com";

fn encode_body(body: Option<&str>, base64: bool) -> Value {
    match body {
        None => Value::Null,
        Some(b) if base64 => Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
        Some(b) => Value::from(b),
    }
}

/// A Lambda Function URL / API Gateway HTTP API (payload 2.0) event, as AWS
/// documents it. `stage` is `$default` for a Function URL.
pub fn v2_event(
    method: &str,
    path: &str,
    stage: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    base64: bool,
) -> String {
    let raw_path = if stage == "$default" {
        path.to_owned()
    } else {
        format!("/{stage}{path}")
    };
    let mut header_map = serde_json::Map::new();
    header_map.insert("host".into(), "abcdefgh.lambda-url.us-east-1.on.aws".into());
    header_map.insert("user-agent".into(), "Okta Event Hooks".into());
    header_map.insert("x-forwarded-proto".into(), "https".into());
    for (k, v) in headers {
        header_map.insert(k.to_ascii_lowercase(), Value::from(*v));
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdefgh",
            "domainName": "abcdefgh.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abcdefgh",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "Okta Event Hooks"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": stage,
            "time": "11/Mar/2026:09:00:02 +0000",
            "timeEpoch": 1_773_219_602_000_i64
        },
        "body": encode_body(body, base64),
        "pathParameters": null,
        "isBase64Encoded": base64,
        "stageVariables": null
    })
    .to_string()
}

/// An API Gateway REST API (payload 1.0, proxy integration) event on stage
/// `stage`, with `headers` and `multiValueHeaders` as API Gateway sends them.
pub fn v1_event(
    method: &str,
    path: &str,
    stage: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    base64: bool,
) -> String {
    let mut single = serde_json::Map::new();
    let mut multi = serde_json::Map::new();
    let mut all: Vec<(&str, &str)> = vec![
        ("Host", "abc123defg.execute-api.us-east-1.amazonaws.com"),
        ("User-Agent", "Okta Event Hooks"),
        ("X-Forwarded-Proto", "https"),
    ];
    all.extend_from_slice(headers);
    for (k, v) in all {
        single.insert(k.to_owned(), Value::from(v));
        multi.insert(k.to_owned(), json!([v]));
    }
    json!({
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": { "proxy": path.trim_start_matches('/') },
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123defg",
            "resourceId": "a1b2c3",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "extendedRequestId": "BQGojGnKIAMF-dA=",
            "requestTime": "11/Mar/2026:09:00:02 +0000",
            "path": format!("/{stage}{path}"),
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "abc123defg",
            "requestTimeEpoch": 1_773_219_602_000_i64,
            "requestId": "41b45ea3-70b5-11e6-b7bd-69b5aaebc7d9",
            "identity": {
                "sourceIp": "203.0.113.10",
                "userAgent": "Okta Event Hooks"
            },
            "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com"
        },
        "body": encode_body(body, base64),
        "isBase64Encoded": base64
    })
    .to_string()
}

/// Deserializes an event the way the Lambda runtime does.
pub fn request(event: &str) -> lambda_http::Request {
    lambda_http::request::from_str(event).unwrap()
}

/// The body of a handler's answer, as text.
pub fn body_text(response: &http::Response<lambda_http::Body>) -> String {
    String::from_utf8_lossy(response.body().as_ref()).into_owned()
}
