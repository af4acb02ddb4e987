//! The queue worker: the `queue_worker` function (a `queueTrigger` on
//! `%RELAY_QUEUE_NAME%`, crates/relay-azure/app/queue_worker) as the custom
//! handler receives it.
//!
//! For a non-HTTP trigger the Functions host POSTs to `/<functionName>` an
//! invocation document, `{"Data": {"message": …}, "Metadata":
//! {"DequeueCount": …, "Id": …, …}}`, and takes any 2xx answer as success
//! (it then deletes the message) and anything else as a failed invocation
//! (it makes the message visible again after host.json `visibilityTimeout`
//! and, after `maxDequeueCount` dequeues, moves it to `<queue>-poison`).
//! Source: learn.microsoft.com/azure/azure-functions/functions-custom-handlers
//! ("Request payload"), and Azure/azure-functions-host
//! `DefaultHttpWorkerService.ProcessDefaultInvocationRequest`
//! (`EnsureSuccessStatusCode`).
//!
//! The message value is read defensively, since the host's serialization of
//! trigger data has varied: a JSON string (the message text), a string that
//! is itself a JSON-encoded string, the message parsed into an object, or
//! base64 of the text. `DequeueCount` may be a number or a string.
//!
//! Per message: `Relay::process(text, DequeueCount, policy)`; Done → 200;
//! Retry → 500 (the host retries it); DeadLetter → the dead letter (with its
//! reason) is put on the poison queue, then 200 — or 500 when that put
//! failed, so the message comes back and is dead-lettered again.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use relay_core::apply::Directory;
use relay_core::pipeline::Relay;
use relay_core::queue::{QueuePolicy, Settlement};
use relay_core::store::IdempotencyStore;
use serde_json::Value;

use relay_server::platform::functions_queue_answer;

use crate::queue::StorageQueue;

/// The function's folder name, which is the path the host calls.
pub const FUNCTION_NAME: &str = "queue_worker";

/// The trigger binding's `name` in function.json.
pub const BINDING_NAME: &str = "message";

/// The host.json `extensions.queues.maxDequeueCount`: after this many
/// failed invocations the host moves a message to the poison queue itself.
/// `RELAY_QUEUE_MAX_ATTEMPTS` should stay below it so the worker gives up
/// first and records why.
pub const HOST_MAX_DEQUEUE_COUNT: u32 = 10;

/// What the worker route needs.
#[derive(Debug)]
pub struct Worker<D, S> {
    pub relay: Arc<Relay<D, S>>,
    pub poison: StorageQueue,
    pub policy: QueuePolicy,
}

/// One queue-trigger invocation, as read from the host's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The message text (the `QueuedEvent` JSON, or whatever was put).
    pub text: String,
    /// From 1.
    pub dequeue_count: u32,
    pub message_id: Option<String>,
}

/// Reads the host's invocation document. `None` when it is not one (no
/// `Data` member with a message).
pub fn parse_invocation(body: &[u8]) -> Option<Invocation> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    let data = doc.get("Data")?;
    let value = data.get(BINDING_NAME).or_else(|| {
        // Another binding name: the only input there is.
        data.as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.values().next())
    })?;
    let metadata = doc.get("Metadata");
    let number = |name: &str| -> Option<u64> {
        match metadata?.get(name)? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().trim_matches('"').parse().ok(),
            _ => None,
        }
    };
    let text_field = |name: &str| -> Option<String> {
        match metadata?.get(name)? {
            Value::String(s) => Some(s.trim_matches('"').to_owned()),
            _ => None,
        }
    };
    Some(Invocation {
        text: message_text(value),
        dequeue_count: number("DequeueCount")
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1),
        message_id: text_field("Id"),
    })
}

/// The message text from the trigger value, whatever shape the host gave.
fn message_text(value: &Value) -> String {
    match value {
        Value::String(s) => {
            let mut text = s.clone();
            // A JSON string inside the string (serialized twice).
            if let Ok(Value::String(inner)) = serde_json::from_str::<Value>(&text) {
                text = inner;
            }
            if text.trim_start().starts_with('{') {
                return text;
            }
            // base64 of the text (bytes handed over as a string).
            match BASE64
                .decode(text.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
            {
                Some(decoded) if decoded.trim_start().starts_with('{') => decoded,
                _ => text,
            }
        }
        // The host parsed the JSON message for us.
        other => other.to_string(),
    }
}

/// The route handler: `POST /queue_worker`.
pub async fn invoke<D, S>(State(worker): State<Arc<Worker<D, S>>>, body: Bytes) -> Response
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    let Some(invocation) = parse_invocation(&body) else {
        // Not a queue-trigger invocation: fail it, so the host retries and
        // in the end moves the message to the poison queue untouched.
        tracing::error!(
            bytes = body.len(),
            "queue_worker: the host's invocation has no Data.{BINDING_NAME}; failing it"
        );
        return functions_queue_answer(Settlement::Redeliver);
    };
    let settlement = worker
        .relay
        .settle(
            &invocation.text,
            invocation.dequeue_count,
            &worker.policy,
            &worker.poison,
            invocation.message_id.as_deref().unwrap_or("-"),
        )
        .await;
    functions_queue_answer(settlement)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT: &str = r#"{"v":1,"event":{}}"#;

    fn doc(value: Value, count: Value) -> Vec<u8> {
        serde_json::json!({
            "Data": { "message": value },
            "Metadata": { "DequeueCount": count, "Id": "\"abc\"", "sys": {} }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn every_shape_of_the_message_gives_the_text() {
        let shapes = [
            Value::String(EVENT.into()),
            Value::String(serde_json::to_string(EVENT).unwrap()),
            serde_json::from_str(EVENT).unwrap(),
            Value::String(BASE64.encode(EVENT)),
        ];
        for shape in shapes {
            let inv = parse_invocation(&doc(shape.clone(), 3.into())).unwrap();
            let parsed: Value = serde_json::from_str(&inv.text).unwrap();
            assert_eq!(
                parsed,
                serde_json::from_str::<Value>(EVENT).unwrap(),
                "{shape}"
            );
            assert_eq!(inv.dequeue_count, 3);
            assert_eq!(inv.message_id.as_deref(), Some("abc"));
        }
    }

    #[test]
    fn dequeue_count_as_string_or_missing() {
        let inv = parse_invocation(&doc(EVENT.into(), "7".into())).unwrap();
        assert_eq!(inv.dequeue_count, 7);
        let inv = parse_invocation(&doc(EVENT.into(), Value::Null)).unwrap();
        assert_eq!(inv.dequeue_count, 1);
        // Poison text stays as it is (the worker dead-letters it).
        let inv = parse_invocation(&doc("not json at all".into(), 1.into())).unwrap();
        assert_eq!(inv.text, "not json at all");
    }

    #[test]
    fn not_an_invocation() {
        assert_eq!(parse_invocation(b"not json"), None);
        assert_eq!(parse_invocation(br#"{"Metadata":{}}"#), None);
        assert_eq!(parse_invocation(br#"{"Data":{}}"#), None);
        // One input under another name is still the message.
        let inv = parse_invocation(br#"{"Data":{"item":"{\"v\":1}"}}"#).unwrap();
        assert_eq!(inv.text, r#"{"v":1}"#);
    }
}
