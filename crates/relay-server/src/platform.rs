//! The answers to the platforms that hand the relay work — the Azure
//! Functions host (the queue trigger and the timers of a custom handler)
//! and Pub/Sub push — beside [`crate::respond`], the answer to an IdP.
//! Every HTTP status the relay answers with is chosen in this crate.
//!
//! | platform | settled | redeliver / failed | refused |
//! | --- | --- | --- | --- |
//! | Functions host, queue trigger | 200 (the host deletes the message) | 500 (visible again; after `maxDequeueCount` the host moves it to `<queue>-poison`) | - |
//! | Functions host, timer | 200 | 500 (a failed invocation, which the alert counts) | - |
//! | Pub/Sub push | 204 (an ack) | 503 (a nack: redelivered with the subscription's backoff) | 401 bad token, 503 Google's keys unavailable |
//!
//! Pub/Sub takes a success status from a push endpoint as an ack and an
//! error as a nack (Google Cloud, "Push subscriptions"); the Functions host
//! takes a non-2xx answer of a custom handler as a failed invocation
//! (Microsoft Learn, "Azure Functions custom handlers").

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use relay_core::queue::Settlement;

/// A queue-trigger invocation's answer: the custom-handler response
/// document (no output bindings) with 200 or 500.
pub fn functions_queue_answer(settlement: Settlement) -> Response {
    functions_document(settlement == Settlement::Settled, serde_json::Value::Null)
}

/// A timer invocation's answer (reconcile, catch-up): 200 when the run
/// succeeded, 500 otherwise, with `outcome` (a status line, never a
/// secret) as the document's `ReturnValue`, which the host logs.
pub fn functions_task_answer(succeeded: bool, outcome: &str) -> Response {
    functions_document(succeeded, serde_json::Value::String(outcome.to_owned()))
}

fn functions_document(succeeded: bool, return_value: serde_json::Value) -> Response {
    let status = if succeeded {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let document = serde_json::json!({ "Outputs": {}, "Logs": [], "ReturnValue": return_value });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        document.to_string(),
    )
        .into_response()
}

/// A Pub/Sub push's answer: 204 (ack) or 503 (nack), no body.
pub fn push_answer(settlement: Settlement) -> Response {
    match settlement {
        Settlement::Settled => StatusCode::NO_CONTENT,
        Settlement::Redeliver => StatusCode::SERVICE_UNAVAILABLE,
    }
    .into_response()
}

/// Why a push was refused before anything was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushRefusal {
    /// The token is missing, invalid, or not for this audience and account.
    Unauthorized,
    /// Google's signing keys could not be fetched: not the sender's fault,
    /// so a nack (503) Pub/Sub retries rather than a 401.
    KeysUnavailable,
}

/// A refused push: 401, or 503 when the keys were unavailable.
pub fn push_refused(refusal: PushRefusal) -> Response {
    match refusal {
        PushRefusal::Unauthorized => StatusCode::UNAUTHORIZED,
        PushRefusal::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(response: Response) -> (u16, String) {
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn each_platform_gets_its_own_answer() {
        let document = r#"{"Logs":[],"Outputs":{},"ReturnValue":null}"#;
        let (status, body) = parts(functions_queue_answer(Settlement::Settled)).await;
        assert_eq!((status, body.as_str()), (200, document));
        let (status, body) = parts(functions_queue_answer(Settlement::Redeliver)).await;
        assert_eq!((status, body.as_str()), (500, document));
        let (status, body) = parts(functions_task_answer(false, "drift 3")).await;
        assert_eq!(status, 500);
        assert!(body.contains(r#""ReturnValue":"drift 3""#), "{body}");
        assert_eq!(parts(functions_task_answer(true, "ok")).await.0, 200);
        assert_eq!(
            parts(push_answer(Settlement::Settled)).await,
            (204, String::new())
        );
        assert_eq!(
            parts(push_answer(Settlement::Redeliver)).await,
            (503, String::new())
        );
        assert_eq!(parts(push_refused(PushRefusal::Unauthorized)).await.0, 401);
        assert_eq!(
            parts(push_refused(PushRefusal::KeysUnavailable)).await.0,
            503
        );
    }
}
