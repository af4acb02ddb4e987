//! Log output for every entry point: one JSON object per line that
//! CloudWatch Logs Insights, Log Analytics (`parse_json`) and Cloud Logging
//! all read by field, or human-readable lines on a terminal.
//!
//! Each JSON line has `timestamp` (RFC 3339), `severity` (Cloud Logging's
//! name: `DEBUG`, `INFO`, `WARNING`, `ERROR`), `level` (the tracing level, for
//! CloudWatch habits), `message`, `target`, and every field of the event at the
//! top level (`event_id`, `outcome`, `duo_calls`, …), then every field of
//! the spans it happened in that the event does not carry itself: a line
//! written while an event is applied (a Duo error, the group index, a
//! retry) carries that event's `event_id`, `source` and `event_type` from
//! relay-core's `event` span, so the on-call engineer finds every line of
//! one event by its id.
//!
//! Every value a line carries is cut to
//! [`relay_core::limits::MAX_LOGGED_VALUE_BYTES`] with a marker saying how
//! much was left out, in both formats: a field a client filled with 900 KB
//! cannot make a megabyte log line.
//!
//! With `RELAY_METRICS=emf` (the default on Lambda) the per-event summary
//! and dead-letter lines also carry CloudWatch EMF metrics: see
//! [`crate::metrics`].

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use relay_core::limits::bounded;

pub use crate::log_format::LogFormat;
use crate::metrics::Emf;
pub use crate::metrics::Metrics;

/// Installs the global subscriber. `RUST_LOG` overrides `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) -> Result<(), String> {
    init_with_metrics(format, default_filter, Metrics::Off)
}

/// [`init`], with metrics in the log lines ([`crate::metrics`]; CloudWatch
/// EMF needs [`LogFormat::Json`], see [`Metrics::from_env`]).
pub fn init_with_metrics(
    format: LogFormat,
    default_filter: &str,
    metrics: Metrics,
) -> Result<(), String> {
    install(format, default_filter, metrics, std::io::stdout)
}

/// [`init`], writing to stderr: for commands whose stdout is their report
/// (`idp-duo-relay reconcile`).
pub fn init_stderr(format: LogFormat, default_filter: &str) -> Result<(), String> {
    install(format, default_filter, Metrics::Off, std::io::stderr)
}

fn install<W>(
    format: LogFormat,
    default_filter: &str,
    metrics: Metrics,
    writer: W,
) -> Result<(), String>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = match (format, metrics) {
        (LogFormat::Pretty, Metrics::Off) => builder.fmt_fields(bounded_fields()).try_init(),
        (LogFormat::Pretty, Metrics::Emf(_)) => {
            return Err("RELAY_METRICS: `emf` needs JSON log lines (RELAY_LOG_FORMAT=json)".into());
        }
        (LogFormat::Json, Metrics::Off) => builder
            .fmt_fields(JsonFields)
            .event_format(JsonLines::new())
            .try_init(),
        (LogFormat::Json, Metrics::Emf(emf)) => builder
            .fmt_fields(JsonFields)
            .event_format(JsonLines::with_emf(emf))
            .try_init(),
    };
    result.map_err(|e| format!("logging: {e}"))
}

/// The JSON line format described in the module docs; with
/// [`JsonLines::with_emf`], the per-event summary and dead-letter lines are
/// also CloudWatch EMF documents ([`crate::metrics`]).
#[derive(Debug, Clone, Default)]
pub struct JsonLines {
    emf: Option<Emf>,
}

impl JsonLines {
    /// Plain JSON lines.
    pub fn new() -> Self {
        Self::default()
    }

    /// JSON lines whose summary and dead-letter lines carry EMF metrics.
    pub fn with_emf(emf: Emf) -> Self {
        Self { emf: Some(emf) }
    }
}

fn severity(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG | Level::TRACE => "DEBUG",
    }
}

/// The human-readable format's fields, each value bounded like the JSON
/// lines' ([`relay_core::limits::bounded`]).
fn bounded_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    use tracing_subscriber::field::MakeExt as _;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = format!("{value:?}");
        let text = bounded(&text);
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited(" ")
}

struct Fields(Map<String, Value>);

/// A span's fields as one JSON object (bounded like an event's), kept by
/// the subscriber for [`JsonLines`] to add to the lines written inside it.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = Fields(Map::new());
        fields.record(&mut visitor);
        write!(writer, "{}", Value::Object(visitor.0))
    }

    fn add_fields(
        &self,
        current: &'writer mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = Fields(span_fields(&current.fields));
        fields.record(&mut visitor);
        current.fields = Value::Object(visitor.0).to_string();
        Ok(())
    }
}

/// The fields [`JsonFields`] kept for a span (none if another formatter
/// kept them).
fn span_fields(kept: &str) -> Map<String, Value> {
    match serde_json::from_str(kept) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::from(bounded(value)));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.0
            .insert(field.name().to_owned(), Value::from(bounded(&text)));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = Map::new();
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        line.insert(
            "timestamp".into(),
            Value::from(relay_core::time::rfc3339_millis(now_ms)),
        );
        line.insert("severity".into(), Value::from(severity(meta.level())));
        line.insert("level".into(), Value::from(meta.level().as_str()));
        let message = fields.0.remove("message").unwrap_or(Value::from(""));
        line.insert("message".into(), message);
        line.insert("target".into(), Value::from(meta.target()));
        for (k, v) in fields.0 {
            // Event fields never overwrite the envelope.
            line.entry(k).or_insert(v);
        }
        // Then the spans', innermost first; none overwrites the event's.
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                let extensions = span.extensions();
                let Some(kept) = extensions.get::<tracing_subscriber::fmt::FormattedFields<N>>()
                else {
                    continue;
                };
                for (k, v) in span_fields(&kept.fields) {
                    line.entry(k).or_insert(v);
                }
            }
        }
        if let Some(emf) = &self.emf {
            // Same instant as `timestamp`, in milliseconds.
            let millis = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
            emf.annotate(&mut line, millis);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
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

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_carry_severity_message_and_fields() {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines::new())
            .with_writer(buf.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                event_id = "okta:1",
                duo_calls = 3_u64,
                outcome = "applied",
                "event"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["severity"], "WARNING");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "event");
        assert_eq!(line["event_id"], "okta:1");
        assert_eq!(line["duo_calls"], 3);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn json_lines_carry_the_fields_of_their_spans_unless_they_have_their_own() {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields)
            .event_format(JsonLines::new())
            .with_writer(buf.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("delivery", source = "okta", attempt = 1_u64);
            let _outer = outer.enter();
            let span = tracing::info_span!(
                "event",
                event_id = "okta:1",
                event_type = tracing::field::Empty
            );
            span.record("event_type", "user.lifecycle.create");
            let _inner = span.enter();
            tracing::warn!(error = "503", "duo call failed");
            tracing::info!(event_id = "okta:2", "its own id wins");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "duo call failed");
        assert_eq!(lines[0]["event_id"], "okta:1");
        assert_eq!(lines[0]["event_type"], "user.lifecycle.create");
        assert_eq!(lines[0]["source"], "okta");
        assert_eq!(lines[0]["attempt"], 1);
        assert_eq!(lines[0]["error"], "503");
        assert_eq!(lines[1]["event_id"], "okta:2");
        assert_eq!(lines[1]["level"], "INFO");
    }

    /// Issue 13 item 3: a 900 KB value (a login a client sent, a Duo
    /// error) makes a bounded line, cut with a marker, in both formats.
    #[test]
    fn values_are_bounded_in_both_formats() {
        let huge = "x".repeat(900_000);
        let log = |subscriber: tracing::Dispatch, buf: &Buf| {
            tracing::dispatcher::with_default(&subscriber, || {
                tracing::warn!(subject = %huge, detail = huge.as_str(), "event {}", huge);
            });
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
        };
        let json = Buf::default();
        let line = log(
            tracing_subscriber::fmt()
                .event_format(JsonLines::new())
                .with_writer(json.clone())
                .finish()
                .into(),
            &json,
        );
        assert!(line.len() < 4 * 1024, "{} bytes", line.len());
        let value: Value = serde_json::from_str(line.trim()).unwrap();
        for field in ["subject", "detail", "message"] {
            let text = value[field].as_str().unwrap();
            assert!(text.ends_with("more bytes]"), "{field}: {text}");
        }
        let pretty = Buf::default();
        let line = log(
            tracing_subscriber::fmt()
                .fmt_fields(bounded_fields())
                .with_ansi(false)
                .with_writer(pretty.clone())
                .finish()
                .into(),
            &pretty,
        );
        assert!(line.len() < 4 * 1024, "{} bytes", line.len());
        assert!(line.contains("more bytes]"), "{line}");
    }

    #[test]
    fn format_parses() {
        assert_eq!(LogFormat::parse(Some("json")), Ok(Some(LogFormat::Json)));
        assert_eq!(LogFormat::parse(None), Ok(None));
        assert!(LogFormat::parse(Some("xml")).is_err());
    }
}
