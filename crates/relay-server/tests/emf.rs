//! CloudWatch EMF from the real pipeline: the relay (relay-core against the
//! Duo simulator) logs through `JsonLines::with_emf`, and every line written
//! is parsed and checked against the EMF specification, the summary-line
//! contract, and for secrets or body content that must never appear.
//!
//! Also keeps `terraform/relay-metrics.json` (what the Terraform alarms and
//! log-based metrics are checked against) equal to `relay_server::metrics`.
//! Regenerate with `UPDATE_RELAY_METRICS=1 cargo test -p relay-server --test emf`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use duo_sim::{DuoSim, Faults};
use http::{HeaderMap, HeaderValue, StatusCode};
use relay_core::config::RawConfig;
use relay_core::pipeline::{Route, duo_relay};
use relay_core::store::MemoryStore;
use relay_server::logging::JsonLines;
use relay_server::metrics::{self, EVENT_LINE_FIELDS, Emf, spec};
use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;

const HOOK_SECRET: &str = "emf-test-hook-secret-0123456789abcdef";
const NAMESPACE: &str = "IdpDuoRelay/emf-test";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("UTF-8 log lines")
    }
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

fn headers(secret: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(secret).expect("header value"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h
}

#[tokio::test]
async fn summary_lines_from_the_pipeline_are_valid_emf_and_leak_nothing() {
    let sim = DuoSim::start().await;
    let cfg = sim.config().clone();
    let raw: RawConfig = BTreeMap::from([
        ("DUO_API_HOST".to_owned(), cfg.host.clone()),
        ("DUO_IKEY".to_owned(), cfg.ikey.clone()),
        ("DUO_SKEY".to_owned(), cfg.skey.clone()),
        ("DUO_API_URL".to_owned(), sim.base_url()),
        ("DUO_RATE_PER_MINUTE".to_owned(), "off".to_owned()),
        ("OKTA_AUTH_SECRET".to_owned(), HOOK_SECRET.to_owned()),
    ]);
    let retry = duo_admin::RetryPolicy {
        max_attempts: 2,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_jitter: Duration::ZERO,
        budget: Duration::from_millis(50),
    };
    let relay = duo_relay(&raw, MemoryStore::default(), retry, Duration::from_secs(2))
        .expect("relay from configuration");

    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .event_format(JsonLines::with_emf(Emf::new(NAMESPACE).expect("namespace")))
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // 1. Duo answers every call 429: one failed_transient event, throttled.
    sim.set_faults(Faults {
        rate_429: 1.0,
        seed: Some(7),
        ..Faults::default()
    });
    let create = fixture("okta/user-lifecycle-create.json");
    let answer = relay
        .handle(
            Route::Delivery(relay_core::event::Source::Okta),
            &headers(HOOK_SECRET),
            Bytes::from(create.clone()),
        )
        .await;
    assert_eq!(
        relay_server::respond(answer).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    sim.set_faults(Faults::default());

    // 2. A mixed batch, applied.
    let batch = fixture("okta/batch-mixed.json");
    let answer = relay
        .handle(
            Route::Delivery(relay_core::event::Source::Okta),
            &headers(HOOK_SECRET),
            Bytes::from(batch.clone()),
        )
        .await;
    assert_eq!(relay_server::respond(answer).status(), StatusCode::OK);

    // 3. A delivery with a wrong secret: refused, no event line.
    let wrong = "wrong-secret-that-must-not-be-logged-0123";
    let answer = relay
        .handle(
            Route::Delivery(relay_core::event::Source::Okta),
            &headers(wrong),
            Bytes::from(create.clone()),
        )
        .await;
    assert_eq!(
        relay_server::respond(answer).status(),
        StatusCode::UNAUTHORIZED
    );

    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"))
        })
        .collect();
    let events: Vec<&Value> = lines.iter().filter(|l| l["message"] == "event").collect();
    let batch_events =
        serde_json::from_str::<Value>(&batch).expect("fixture JSON")["data"]["events"]
            .as_array()
            .expect("events")
            .len();
    assert_eq!(
        events.len(),
        1 + batch_events,
        "one summary line per event:\n{text}"
    );

    for line in &events {
        let problems = spec::violations(line);
        assert!(
            problems.is_empty(),
            "summary line is not valid EMF: {problems:?}\n{line}"
        );
        for field in EVENT_LINE_FIELDS {
            assert!(
                line.get(*field).is_some(),
                "summary line lacks `{field}` (README contract): {line}"
            );
        }
        let aws = &line["_aws"]["CloudWatchMetrics"];
        assert!(
            aws.as_array()
                .expect("directives")
                .iter()
                .all(|d| d["Namespace"] == NAMESPACE)
        );
        assert_eq!(line["Events"], 1);
        assert_eq!(line["Outcome"], line["outcome"]);
        assert_eq!(line["Source"], "okta");
        assert_eq!(line["DuoCalls"], line["duo_calls"]);
        assert_eq!(line["DuoThrottled"], line["duo_throttled"]);
        assert_eq!(line["DurationMs"], line["duration_ms"]);
        assert!(metrics::OUTCOMES.contains(&line["outcome"].as_str().expect("outcome")));
    }

    let throttled = events[0];
    assert_eq!(throttled["outcome"], "failed_transient", "{throttled}");
    assert!(
        throttled["DuoThrottled"].as_u64().expect("DuoThrottled") >= 1,
        "{throttled}"
    );
    assert!(throttled["DuoCalls"].as_u64().expect("DuoCalls") >= 1);
    let applied = events.iter().filter(|l| l["outcome"] == "applied").count();
    assert!(applied >= 1, "the batch applied nothing:\n{text}");
    assert!(events[1..].iter().all(|l| l["DuoThrottled"] == 0));

    // Lines that are not summary lines carry no metrics.
    for line in lines.iter().filter(|l| l["message"] != "event") {
        assert!(
            line.get("_aws").is_none(),
            "only summary lines are EMF: {line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.get("verify_failure").is_some()),
        "the refused delivery left no line:\n{text}"
    );

    // Nothing secret and nothing from the bodies beyond the documented fields.
    for needle in [
        HOOK_SECRET,
        wrong,
        cfg.skey.as_str(),
        "idx1a2B3c4D5e6F7g8H9i0J", // externalSessionId in the bodies
        "198.51.100.20",           // client IP in the bodies
        "rawUserAgent",
        "Mozilla/5.0",
    ] {
        assert!(
            !text.contains(needle),
            "the logs contain {needle:?}:\n{text}"
        );
    }
    sim.shutdown().await;
}

#[test]
fn the_dead_letter_line_is_valid_emf_without_the_message_body() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .event_format(JsonLines::with_emf(Emf::new(NAMESPACE).expect("namespace")))
        .with_writer(logs.clone())
        .finish();
    let body = r#"{"not":"a queued event","token":"body-marker-must-not-be-logged"}"#;
    tracing::subscriber::with_default(subscriber, || {
        relay_core::queue::DeadLetter::new(body, "duo: 403 forbidden", 5).log("okta");
    });
    let text = logs.text();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    let line = &lines[0];
    assert_eq!(line["message"], "dead_letter");
    for field in metrics::DEAD_LETTER_LINE_FIELDS {
        assert!(
            line.get(*field).is_some(),
            "dead-letter line lacks `{field}`: {line}"
        );
    }
    let problems = spec::violations(line);
    assert!(
        problems.is_empty(),
        "dead-letter line is not valid EMF: {problems:?}\n{line}"
    );
    assert_eq!(line["DeadLetters"], 1);
    assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
    assert!(!text.contains("body-marker-must-not-be-logged"), "{text}");
}

#[test]
fn terraform_reads_the_metrics_the_code_writes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../terraform/relay-metrics.json");
    let mut expected = serde_json::to_string_pretty(&metrics::contract_json()).expect("JSON");
    expected.push('\n');
    if std::env::var_os("UPDATE_RELAY_METRICS").is_some() {
        std::fs::write(&path, &expected).expect("write terraform/relay-metrics.json");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        expected,
        "{} is out of date: run UPDATE_RELAY_METRICS=1 cargo test -p relay-server --test emf",
        path.display()
    );
}

#[test]
fn the_catch_up_line_is_valid_emf_with_the_lag_per_source() {
    use relay_core::catch_up::{CatchUpSummary, LogSource, RunStatus};
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .event_format(JsonLines::with_emf(Emf::new(NAMESPACE).expect("namespace")))
        .with_writer(logs.clone())
        .finish();
    let summary = CatchUpSummary {
        source: LogSource::Auth0,
        status: RunStatus::IdpFailed,
        dry_run: false,
        records: 200,
        new: 3,
        duplicates: 197,
        failed: 0,
        ignored: 0,
        pages: 2,
        idp_calls: 4,
        duo_calls: 6,
        checkpoint_lag_s: 5_400,
        cursor_fallback: false,
        error: Some("reading the auth0 log: 429".into()),
    };
    tracing::subscriber::with_default(subscriber, || summary.log());
    let text = logs.text();
    let line: Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(line["message"], metrics::CATCH_UP_LINE);
    // Every field the Terraform queries may read is on the line.
    for field in metrics::CATCH_UP_LINE_FIELDS {
        assert!(
            line.get(*field).is_some(),
            "catch_up line lacks `{field}`: {line}"
        );
    }
    let problems = spec::violations(&line);
    assert!(
        problems.is_empty(),
        "catch_up line is not valid EMF: {problems:?}\n{line}"
    );
    assert_eq!(line["CatchUpLagSeconds"], 5_400);
    assert_eq!(line["Source"], "auth0");
    let directive = &line["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], NAMESPACE);
    assert_eq!(directive["Dimensions"], serde_json::json!([["Source"]]));
    assert_eq!(directive["Metrics"][0]["Unit"], "Seconds");
    // Only the catch-up metric: the line's duo_calls is not an event's.
    assert!(line.get("DuoCalls").is_none(), "{line}");
}
