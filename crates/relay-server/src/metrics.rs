//! Metrics that need no agent.
//!
//! On AWS Lambda, CloudWatch Logs turns a log line that is a CloudWatch
//! *embedded metric format* (EMF) document — a JSON object with an `_aws`
//! member naming a namespace, dimension sets and metrics — into CloudWatch
//! metrics, with no agent and no `PutMetricData` call. With
//! `RELAY_METRICS=emf` the JSON line formatter ([`crate::logging::JsonLines`])
//! makes three kinds of line such documents:
//!
//! | line (`message`) | metric | unit | dimension sets |
//! | --- | --- | --- | --- |
//! | `event` (one per event) | `Events` (1 per line) | Count | `[Outcome, Source]`, `[Outcome]` |
//! | `event` | `DuoCalls` (`duo_calls`) | Count | none |
//! | `event` | `DuoThrottled` (`duo_throttled`, Duo 429 answers) | Count | none |
//! | `event` | `DurationMs` (`duration_ms`) | Milliseconds | none |
//! | `dead_letter` (queue mode) | `DeadLetters` (1 per line) | Count | none |
//! | `catch_up` (one per catch-up run) | `CatchUpLagSeconds` (`checkpoint_lag_s`) | Seconds | `[Source]` |
//!
//! **The summary line itself is the EMF document**, not a second line. Its
//! fields are already top-level members, so it only gains `_aws` and the six
//! members EMF needs (`Outcome`, `Source`, `Events`, `DuoCalls`,
//! `DuoThrottled`, `DurationMs` — EMF names metrics and dimensions after
//! members, so the lower-case fields cannot be reused under CloudWatch's
//! names): about 490 bytes, the same as a separate EMF line would be, minus
//! that line's per-event overhead. What decides it is on-call: a metric
//! point and the line the runbook queries are the same record, so
//! `Events{Outcome=failed_permanent}` = 3 means exactly three
//! `outcome = "failed_permanent"` lines in Logs Insights — never a metric
//! without its line or the other way round — and there is still exactly one
//! log event per IdP event. Every existing field keeps its name and value,
//! so the documented queries are unchanged.
//!
//! Dimensions are only the outcome and the source (a handful of values); the
//! other metrics have none, so a deployment creates at most 30 custom
//! metrics (6 outcomes × 3 sources + 6 outcomes, 4 without dimension, and
//! the catch-up lag per log source: okta, auth0). A catch-up run's line
//! (`catch_up`) is its own document, like the event line. Namespace: `RELAY_METRICS_NAMESPACE` (default
//! [`DEFAULT_NAMESPACE`]); Terraform gives each deployment its own.
//!
//! Only counts, durations, the outcome label and the source name are added:
//! nothing from a delivery's body, no subject, no secret.
//!
//! Azure and GCP need nothing here: their log-based metrics and alerts
//! (Terraform) read the same summary line's fields.

use relay_core::config::{RawConfig, optional};
use relay_core::log_line;
use serde_json::{Map, Value};

use crate::log_format::LogFormat;

/// Namespace when `RELAY_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "IdpDuoRelay";

// The lines' names and fields are relay-core's (`relay_core::log_line`,
// written by its pipeline, queue and catch-up): defined there once, read
// here.

/// `message` of the per-event summary line (relay-core's pipeline).
pub const EVENT_LINE: &str = log_line::event::MESSAGE;

/// `message` of the line queue mode writes when a message goes to dead
/// letters.
pub const DEAD_LETTER_LINE: &str = log_line::dead_letter::MESSAGE;

/// `message` of the summary line of a catch-up run (relay-core's
/// `catch_up`).
pub const CATCH_UP_LINE: &str = log_line::catch_up::MESSAGE;

/// Fields of the per-event summary line (the README's "The per-event log
/// line"; Terraform's log-based metrics and KQL read these).
pub const EVENT_LINE_FIELDS: &[&str] = log_line::event::FIELDS;

/// Fields of the dead-letter line.
pub const DEAD_LETTER_LINE_FIELDS: &[&str] = log_line::dead_letter::FIELDS;

/// Fields of the catch-up run's line (the README's "Catch-up"; the
/// catch-up lag alarms read `checkpoint_lag_s`).
pub const CATCH_UP_LINE_FIELDS: &[&str] = log_line::catch_up::FIELDS;

/// The outcomes the summary line's `outcome` takes
/// (`relay_core::report::OutcomeKind`).
pub const OUTCOMES: &[&str] = &relay_core::report::OUTCOMES;

/// A dimension: its CloudWatch name and the line field that gives its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dimension {
    /// Dimension name in CloudWatch (the EMF member added to the line).
    pub name: &'static str,
    /// The line's field the value is copied from.
    pub field: &'static str,
}

/// The dimensions used by [`METRICS`].
pub const DIMENSIONS: &[Dimension] = &[
    Dimension {
        name: "Outcome",
        field: log_line::event::OUTCOME,
    },
    Dimension {
        name: "Source",
        field: log_line::event::SOURCE,
    },
];

/// One metric the relay publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    /// Metric name in CloudWatch (the EMF member added to the line).
    pub name: &'static str,
    /// A CloudWatch unit.
    pub unit: &'static str,
    /// `message` of the line it comes from.
    pub line: &'static str,
    /// The line's numeric field that is the value; `None`: 1 per line.
    pub field: Option<&'static str>,
    /// Dimension sets (names from [`DIMENSIONS`]); `&[]` = no dimension.
    pub dimension_sets: &'static [&'static [&'static str]],
    /// What it counts.
    pub description: &'static str,
}

const NO_DIMENSION: &[&[&str]] = &[&[]];

/// Every metric, in the order the documents list them. Terraform's alarms
/// are checked against the generated `terraform/relay-metrics.json`.
pub const METRICS: &[MetricSpec] = &[
    MetricSpec {
        name: "Events",
        unit: "Count",
        line: EVENT_LINE,
        field: None,
        dimension_sets: &[&["Outcome", "Source"], &["Outcome"]],
        description: "events handled, by outcome (and source)",
    },
    MetricSpec {
        name: "DuoCalls",
        unit: "Count",
        line: EVENT_LINE,
        field: Some(log_line::event::DUO_CALLS),
        dimension_sets: NO_DIMENSION,
        description: "Duo Admin API requests (retries included)",
    },
    MetricSpec {
        name: "DuoThrottled",
        unit: "Count",
        line: EVENT_LINE,
        field: Some(log_line::event::DUO_THROTTLED),
        dimension_sets: NO_DIMENSION,
        description: "Duo answers 429 (rate limited)",
    },
    MetricSpec {
        name: "DurationMs",
        unit: "Milliseconds",
        line: EVENT_LINE,
        field: Some(log_line::event::DURATION_MS),
        dimension_sets: NO_DIMENSION,
        description: "time to apply one event",
    },
    MetricSpec {
        name: "DeadLetters",
        unit: "Count",
        line: DEAD_LETTER_LINE,
        field: None,
        dimension_sets: NO_DIMENSION,
        description: "queued events given up on (moved to dead letters)",
    },
    MetricSpec {
        name: "CatchUpLagSeconds",
        unit: "Seconds",
        line: CATCH_UP_LINE,
        field: Some(log_line::catch_up::CHECKPOINT_LAG_S),
        dimension_sets: &[&["Source"]],
        description: "seconds since a catch-up run last read the IdP's log to its end, per run",
    },
];

/// Value of a dimension whose field is missing or unusable.
const UNKNOWN: &str = "unknown";

/// What `RELAY_METRICS` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metrics {
    /// No metrics (plain log lines).
    Off,
    /// CloudWatch EMF in the JSON log lines.
    Emf(Emf),
}

impl Metrics {
    /// From `RELAY_METRICS` (`emf` or `off`; default `emf` when
    /// `AWS_LAMBDA_FUNCTION_NAME` is set and the log format is JSON, else
    /// `off`) and `RELAY_METRICS_NAMESPACE`.
    pub fn from_env(env: &RawConfig, format: LogFormat) -> Result<Self, String> {
        Self::parse(
            optional(env, "RELAY_METRICS"),
            optional(env, "RELAY_METRICS_NAMESPACE"),
            optional(env, "AWS_LAMBDA_FUNCTION_NAME").is_some(),
            format,
        )
    }

    /// [`Metrics::from_env`] on the values themselves.
    pub fn parse(
        mode: Option<&str>,
        namespace: Option<&str>,
        on_lambda: bool,
        format: LogFormat,
    ) -> Result<Self, String> {
        let emf = match mode.map(str::trim) {
            None | Some("") => on_lambda && format == LogFormat::Json,
            Some("emf") if format == LogFormat::Json => true,
            Some("emf") => {
                return Err(
                    "RELAY_METRICS: `emf` needs JSON log lines (RELAY_LOG_FORMAT=json)".into(),
                );
            }
            Some("off") => false,
            Some(_) => return Err("RELAY_METRICS: must be `emf` or `off`".into()),
        };
        if !emf {
            return Ok(Self::Off);
        }
        let namespace = namespace.map_or(DEFAULT_NAMESPACE, str::trim);
        Emf::new(namespace).map(Self::Emf)
    }

    /// The EMF settings, when on.
    pub fn emf(&self) -> Option<&Emf> {
        match self {
            Self::Off => None,
            Self::Emf(emf) => Some(emf),
        }
    }
}

/// EMF settings: the CloudWatch namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    namespace: String,
}

impl Emf {
    /// A CloudWatch namespace: 1–255 ASCII characters without control
    /// characters, not starting with `:` or the reserved `AWS/`.
    pub fn new(namespace: &str) -> Result<Self, String> {
        let ok = !namespace.is_empty()
            && namespace.len() <= 255
            && namespace
                .chars()
                .all(|c| c.is_ascii() && !c.is_ascii_control())
            && !namespace.starts_with(':')
            && !namespace.starts_with("AWS/");
        if ok {
            Ok(Self {
                namespace: namespace.to_owned(),
            })
        } else {
            Err("RELAY_METRICS_NAMESPACE: must be 1-255 ASCII characters, not starting with `:` or `AWS/`".into())
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Makes `line` (one JSON log line's object) an EMF document when it is
    /// a per-event summary line (`message` = `event` with an `outcome`), a
    /// dead-letter line or a catch-up run's line; leaves any other line
    /// alone. Adds `_aws` (with
    /// `timestamp_ms`, milliseconds since the epoch) and one member per
    /// metric and dimension; existing fields are not changed. A metric whose
    /// field is missing or not a number is left out. Returns whether the line
    /// became a document.
    pub fn annotate(&self, line: &mut Map<String, Value>, timestamp_ms: u64) -> bool {
        let message = line.get("message").and_then(Value::as_str).unwrap_or("");
        let kind = match message {
            EVENT_LINE
                if line
                    .get(log_line::event::OUTCOME)
                    .is_some_and(Value::is_string) =>
            {
                EVENT_LINE
            }
            DEAD_LETTER_LINE => DEAD_LETTER_LINE,
            CATCH_UP_LINE => CATCH_UP_LINE,
            _ => return false,
        };

        // Directives: the line's metrics, grouped by identical dimension sets.
        let mut directives: Vec<(&[&[&str]], Vec<Value>)> = Vec::new();
        let mut members: Vec<(&str, Value)> = Vec::new();
        for spec in METRICS.iter().filter(|m| m.line == kind) {
            let value = match spec.field {
                None => Value::from(1_u64),
                Some(field) => match line.get(field) {
                    Some(v) if v.is_number() => v.clone(),
                    _ => continue,
                },
            };
            members.push((spec.name, value));
            let definition = serde_json::json!({ "Name": spec.name, "Unit": spec.unit });
            match directives
                .iter_mut()
                .find(|(d, _)| *d == spec.dimension_sets)
            {
                Some((_, defs)) => defs.push(definition),
                None => directives.push((spec.dimension_sets, vec![definition])),
            }
        }
        if directives.is_empty() {
            return false;
        }
        for dimension in DIMENSIONS {
            let used = directives
                .iter()
                .any(|(sets, _)| sets.iter().any(|set| set.contains(&dimension.name)));
            if used {
                let value = dimension_value(line.get(dimension.field));
                members.push((dimension.name, Value::from(value)));
            }
        }
        let cloudwatch_metrics: Vec<Value> = directives
            .into_iter()
            .map(|(sets, defs)| {
                serde_json::json!({
                    "Namespace": self.namespace,
                    "Dimensions": sets,
                    "Metrics": defs,
                })
            })
            .collect();
        for (name, value) in members {
            line.insert(name.to_owned(), value);
        }
        line.insert(
            "_aws".to_owned(),
            serde_json::json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": cloudwatch_metrics,
            }),
        );
        true
    }
}

/// A dimension value CloudWatch accepts: 1–1024 ASCII characters, no control
/// character, not only whitespace; anything else is `unknown`.
fn dimension_value(value: Option<&Value>) -> &str {
    match value.and_then(Value::as_str) {
        Some(s)
            if !s.is_empty()
                && s.len() <= 1024
                && s.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
                && !s.trim().is_empty() =>
        {
            s
        }
        _ => UNKNOWN,
    }
}

/// The metrics and log-line contract as JSON, for the Terraform checks
/// (`terraform/relay-metrics.json`, kept equal by a test).
pub fn contract_json() -> Value {
    let metrics: Vec<Value> = METRICS
        .iter()
        .map(|m| {
            serde_json::json!({
                "name": m.name,
                "unit": m.unit,
                "line": m.line,
                "field": m.field,
                "dimension_sets": m.dimension_sets,
                "description": m.description,
            })
        })
        .collect();
    let dimensions: Vec<Value> = DIMENSIONS
        .iter()
        .map(|d| serde_json::json!({ "name": d.name, "field": d.field }))
        .collect();
    serde_json::json!({
        "emf": {
            "default_namespace": DEFAULT_NAMESPACE,
            "metrics": metrics,
            "dimensions": dimensions,
        },
        "log_lines": {
            EVENT_LINE: EVENT_LINE_FIELDS,
            DEAD_LETTER_LINE: DEAD_LETTER_LINE_FIELDS,
            CATCH_UP_LINE: CATCH_UP_LINE_FIELDS,
        },
        "outcomes": OUTCOMES,
    })
}

/// A checker of EMF documents written from the specification
/// ("Specification: Embedded metric format", Amazon CloudWatch User Guide,
/// and its JSON schema), independent of the code that writes them. Public
/// for the integration tests; not part of the relay's behaviour.
#[doc(hidden)]
pub mod spec {
    use serde_json::Value;

    /// CloudWatch units accepted in `Unit` (the schema's pattern).
    pub const UNITS: &[&str] = &[
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];

    /// Every violation of the specification in `doc` (empty = valid).
    pub fn violations(doc: &Value) -> Vec<String> {
        let mut out = Vec::new();
        let Some(root) = doc.as_object() else {
            return vec!["the root is not a JSON object".into()];
        };
        let Some(aws) = root.get("_aws").and_then(Value::as_object) else {
            return vec!["no `_aws` object on the root".into()];
        };
        for key in aws.keys() {
            if key != "Timestamp" && key != "CloudWatchMetrics" {
                out.push(format!(
                    "`_aws` has the member `{key}` the spec does not define"
                ));
            }
        }
        if !aws.get("Timestamp").is_some_and(|t| t.is_u64()) {
            out.push("`_aws.Timestamp` is not an integer number of milliseconds".into());
        }
        let Some(directives) = aws.get("CloudWatchMetrics").and_then(Value::as_array) else {
            out.push("`_aws.CloudWatchMetrics` is not an array".into());
            return out;
        };
        for (i, directive) in directives.iter().enumerate() {
            let Some(d) = directive.as_object() else {
                out.push(format!("directive {i} is not an object"));
                continue;
            };
            for key in d.keys() {
                if !matches!(key.as_str(), "Namespace" | "Dimensions" | "Metrics") {
                    out.push(format!("directive {i} has the member `{key}`"));
                }
            }
            match d.get("Namespace").and_then(Value::as_str) {
                Some(ns) if (1..=1024).contains(&ns.len()) => {}
                _ => out.push(format!(
                    "directive {i}: Namespace is not a 1-1024 char string"
                )),
            }
            match d.get("Dimensions").and_then(Value::as_array) {
                Some(sets) if !sets.is_empty() => {
                    for set in sets {
                        let Some(set) = set.as_array() else {
                            out.push(format!("directive {i}: a DimensionSet is not an array"));
                            continue;
                        };
                        if set.len() > 30 {
                            out.push(format!("directive {i}: a DimensionSet has over 30 keys"));
                        }
                        for key in set {
                            let Some(key) = key.as_str().filter(|k| (1..=250).contains(&k.len()))
                            else {
                                out.push(format!(
                                    "directive {i}: a dimension key is not a 1-250 char string"
                                ));
                                continue;
                            };
                            match root.get(key) {
                                Some(Value::String(v)) if v.len() <= 1024 => {}
                                Some(_) => out.push(format!(
                                    "dimension target `{key}` is not a string of at most 1024 chars"
                                )),
                                None => {
                                    out.push(format!("dimension target `{key}` is not on the root"))
                                }
                            }
                        }
                    }
                }
                _ => out.push(format!(
                    "directive {i}: Dimensions is not a non-empty array"
                )),
            }
            match d.get("Metrics").and_then(Value::as_array) {
                Some(metrics) if metrics.len() <= 100 => {
                    for m in metrics {
                        let Some(m) = m.as_object() else {
                            out.push(format!(
                                "directive {i}: a MetricDefinition is not an object"
                            ));
                            continue;
                        };
                        for key in m.keys() {
                            if !matches!(key.as_str(), "Name" | "Unit" | "StorageResolution") {
                                out.push(format!("MetricDefinition has the member `{key}`"));
                            }
                        }
                        if let Some(unit) = m.get("Unit")
                            && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
                        {
                            out.push(format!("Unit {unit} is not a CloudWatch unit"));
                        }
                        if let Some(r) = m.get("StorageResolution")
                            && r != 1
                            && r != 60
                        {
                            out.push(format!("StorageResolution {r} is not 1 or 60"));
                        }
                        let Some(name) = m
                            .get("Name")
                            .and_then(Value::as_str)
                            .filter(|n| (1..=1024).contains(&n.len()))
                        else {
                            out.push(format!(
                                "directive {i}: a metric Name is not a 1-1024 char string"
                            ));
                            continue;
                        };
                        match root.get(name) {
                            Some(Value::Number(_)) => {}
                            Some(Value::Array(a)) if a.len() <= 100 && a.iter().all(Value::is_number) => {}
                            Some(_) => out.push(format!("metric target `{name}` is not a number or an array of at most 100 numbers")),
                            None => out.push(format!("metric target `{name}` is not on the root")),
                        }
                    }
                }
                _ => out.push(format!(
                    "directive {i}: Metrics is not an array of at most 100"
                )),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    const NS: &str = "IdpDuoRelay/test";

    fn emf() -> Emf {
        Emf::new(NS).unwrap()
    }

    /// A summary line as `JsonLines` builds it from relay-core's fields.
    fn summary(outcome: &str) -> Map<String, Value> {
        let v = json!({
            "timestamp": "2025-03-01T12:00:00.123Z",
            "severity": "INFO",
            "level": "INFO",
            "message": "event",
            "target": "relay_core::pipeline",
            "event_id": "okta:a1b2",
            "source": "okta",
            "event_type": "user.lifecycle.create",
            "subject": "jane.doe@example.com",
            "operations": "upsert_user",
            "outcome": outcome,
            "detail": "created user jane.doe@example.com",
            "duo_calls": 3,
            "duo_throttled": 1,
            "duration_ms": 42,
        });
        v.as_object().unwrap().clone()
    }

    fn assert_valid(doc: &Map<String, Value>) {
        let v = Value::Object(doc.clone());
        let problems = spec::violations(&v);
        assert!(problems.is_empty(), "not valid EMF: {problems:?}\n{v}");
    }

    /// (namespace, dimension sets, metric names+units) of one directive.
    type Directive = (String, Value, Vec<(String, String)>);

    fn directives(doc: &Map<String, Value>) -> Vec<Directive> {
        doc["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let metrics = d["Metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["Name"].as_str().unwrap().to_owned(),
                            m["Unit"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                (
                    d["Namespace"].as_str().unwrap().to_owned(),
                    d["Dimensions"].clone(),
                    metrics,
                )
            })
            .collect()
    }

    #[test]
    fn every_outcome_makes_a_valid_document_with_the_lines_values() {
        for outcome in OUTCOMES {
            let mut line = summary(outcome);
            let before = line.clone();
            assert!(emf().annotate(&mut line, 1_740_830_400_123));
            assert_valid(&line);
            assert_eq!(line["_aws"]["Timestamp"], 1_740_830_400_123_u64);
            assert_eq!(line["Events"], 1);
            assert_eq!(line["DuoCalls"], 3);
            assert_eq!(line["DuoThrottled"], 1);
            assert_eq!(line["DurationMs"], 42);
            assert_eq!(line["Outcome"], *outcome);
            assert_eq!(line["Source"], "okta");
            // Every field of the line is still there, unchanged.
            for (k, v) in &before {
                assert_eq!(&line[k], v, "field {k} changed");
            }
            assert_eq!(
                directives(&line),
                vec![
                    (
                        NS.to_owned(),
                        json!([["Outcome", "Source"], ["Outcome"]]),
                        vec![("Events".to_owned(), "Count".to_owned())]
                    ),
                    (
                        NS.to_owned(),
                        json!([[]]),
                        vec![
                            ("DuoCalls".to_owned(), "Count".to_owned()),
                            ("DuoThrottled".to_owned(), "Count".to_owned()),
                            ("DurationMs".to_owned(), "Milliseconds".to_owned()),
                        ]
                    ),
                ]
            );
        }
    }

    #[test]
    fn only_metric_and_dimension_members_are_added() {
        let mut line = summary("failed_permanent");
        let before = line.clone();
        emf().annotate(&mut line, 1);
        let mut added: Vec<&str> = line
            .keys()
            .filter(|k| !before.contains_key(*k))
            .map(String::as_str)
            .collect();
        added.sort_unstable();
        assert_eq!(
            added,
            [
                "DuoCalls",
                "DuoThrottled",
                "DurationMs",
                "Events",
                "Outcome",
                "Source",
                "_aws"
            ]
        );
        // Nothing of the subject or detail is copied into the metrics.
        let aws = line["_aws"].to_string();
        assert!(!aws.contains("jane") && !aws.contains("created"), "{aws}");
    }

    #[test]
    fn a_missing_or_non_numeric_field_leaves_only_that_metric_out() {
        let mut line = summary("applied");
        line.remove("duo_throttled");
        line.insert("duration_ms".into(), Value::from("12"));
        assert!(emf().annotate(&mut line, 5));
        assert_valid(&line);
        assert!(!line.contains_key("DuoThrottled") && !line.contains_key("DurationMs"));
        let names: Vec<String> = directives(&line)
            .into_iter()
            .flat_map(|(_, _, m)| m.into_iter().map(|(n, _)| n))
            .collect();
        assert_eq!(names, ["Events", "DuoCalls"]);
    }

    #[test]
    fn dead_letter_lines_count_one_dead_letter() {
        let mut line = json!({
            "timestamp": "2025-03-01T12:00:00.000Z", "severity": "ERROR", "level": "ERROR",
            "message": "dead_letter", "target": "relay_core::queue",
            "event_id": "okta:x", "source": "okta", "event_type": "user.lifecycle.create",
            "subject": "jane.doe@example.com", "reason": "duo: 403 forbidden", "attempts": 5,
        })
        .as_object()
        .unwrap()
        .clone();
        assert!(emf().annotate(&mut line, 7));
        assert_valid(&line);
        assert_eq!(line["DeadLetters"], 1);
        assert_eq!(
            directives(&line),
            vec![(
                NS.to_owned(),
                json!([[]]),
                vec![("DeadLetters".to_owned(), "Count".to_owned())]
            )]
        );
        // No dimension is used, so none is added.
        assert!(!line.contains_key("Source") && !line.contains_key("Outcome"));
    }

    #[test]
    fn other_lines_are_left_alone() {
        let lines = [
            json!({"message": "delivery refused", "verify_failure": "secret_mismatch", "source": "okta"}),
            json!({"message": "event", "event_id": "okta:1"}), // no outcome: not a summary line
            json!({"message": "start-up failed", "error": "DUO_IKEY: is not set"}),
            json!({"outcome": "applied", "duo_calls": 1}), // no message
        ];
        for line in lines {
            let mut map = line.as_object().unwrap().clone();
            assert!(!emf().annotate(&mut map, 1));
            assert_eq!(Value::Object(map), line);
        }
    }

    #[test]
    fn unusable_dimension_values_become_unknown() {
        for bad in [
            json!(""),
            json!("   "),
            json!("ökta"),
            json!("a\nb"),
            json!("x".repeat(1025)),
            json!(3),
        ] {
            let mut line = summary("applied");
            line.insert("source".into(), bad.clone());
            emf().annotate(&mut line, 1);
            assert_valid(&line);
            assert_eq!(line["Source"], "unknown", "source {bad}");
            assert_eq!(line["source"], bad, "the field itself is kept");
        }
        let mut line = summary("applied");
        line.remove("source");
        emf().annotate(&mut line, 1);
        assert_eq!(line["Source"], "unknown");
    }

    #[test]
    fn the_checker_catches_broken_documents() {
        let mut good = summary("applied");
        emf().annotate(&mut good, 1);
        assert_valid(&good);
        type Breakage = (&'static str, fn(&mut Map<String, Value>));
        let breakages: [Breakage; 8] = [
            ("no _aws", |l| {
                l.remove("_aws");
            }),
            ("timestamp as text", |l| {
                l["_aws"]["Timestamp"] = json!("2025-03-01T12:00:00Z");
            }),
            ("metric target missing", |l| {
                l.remove("DuoCalls");
            }),
            ("metric target a string", |l| {
                l.insert("DurationMs".into(), json!("42"));
            }),
            ("dimension target missing", |l| {
                l.remove("Outcome");
            }),
            ("dimension target a number", |l| {
                l.insert("Source".into(), json!(1));
            }),
            ("bad unit", |l| {
                l["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Events");
            }),
            ("extra member in a directive", |l| {
                l["_aws"]["CloudWatchMetrics"][0]["Extra"] = json!(1);
            }),
        ];
        for (what, breaks) in breakages {
            let mut line = good.clone();
            breaks(&mut line);
            assert!(
                !spec::violations(&Value::Object(line)).is_empty(),
                "the checker accepted a document with {what}"
            );
        }
    }

    #[test]
    fn mode_and_namespace_from_the_environment() {
        use LogFormat::{Json, Pretty};
        let default = Metrics::Emf(Emf::new(DEFAULT_NAMESPACE).unwrap());
        assert_eq!(Metrics::parse(None, None, true, Json), Ok(default.clone()));
        assert_eq!(Metrics::parse(None, None, false, Json), Ok(Metrics::Off));
        assert_eq!(Metrics::parse(None, None, true, Pretty), Ok(Metrics::Off));
        assert_eq!(Metrics::parse(Some("emf"), None, false, Json), Ok(default));
        assert_eq!(
            Metrics::parse(Some("off"), None, true, Json),
            Ok(Metrics::Off)
        );
        assert_eq!(
            Metrics::parse(Some("emf"), Some("Relay/prod"), false, Json)
                .unwrap()
                .emf()
                .map(Emf::namespace),
            Some("Relay/prod")
        );
        assert!(Metrics::parse(Some("emf"), None, false, Pretty).is_err());
        assert!(Metrics::parse(Some("prometheus"), None, true, Json).is_err());
        for bad in ["AWS/Lambda", ":x", "naïve", &"n".repeat(256)] {
            let err = Metrics::parse(Some("emf"), Some(bad), false, Json).unwrap_err();
            assert!(err.starts_with("RELAY_METRICS_NAMESPACE"), "{err}");
            assert!(!err.contains(bad), "the error quotes the value: {err}");
        }
        let env = relay_core::config::from_pairs(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "relay"),
            ("RELAY_METRICS_NAMESPACE", "IdpDuoRelay/prod"),
        ]);
        assert_eq!(
            Metrics::from_env(&env, Json),
            Ok(Metrics::Emf(Emf::new("IdpDuoRelay/prod").unwrap()))
        );
    }

    #[test]
    fn every_metric_uses_declared_dimensions_and_a_cloudwatch_unit() {
        for m in METRICS {
            assert!(spec::UNITS.contains(&m.unit), "{}: unit {}", m.name, m.unit);
            let fields = match m.line {
                EVENT_LINE => EVENT_LINE_FIELDS,
                DEAD_LETTER_LINE => DEAD_LETTER_LINE_FIELDS,
                CATCH_UP_LINE => CATCH_UP_LINE_FIELDS,
                other => panic!("{}: unknown line {other}", m.name),
            };
            if let Some(f) = m.field {
                assert!(
                    fields.contains(&f),
                    "{}: {f} is not a field of its line",
                    m.name
                );
            }
            for set in m.dimension_sets {
                for d in *set {
                    let dim = DIMENSIONS.iter().find(|x| x.name == *d);
                    let dim = dim.unwrap_or_else(|| panic!("{}: undeclared dimension {d}", m.name));
                    assert!(fields.contains(&dim.field));
                }
            }
        }
    }
}
