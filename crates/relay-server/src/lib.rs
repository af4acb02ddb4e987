//! The relay's HTTP surface, as one axum [`Router`]: the routes of the
//! interface contract, the request limits (413 body too large, 415 content
//! type, 405 method, 404 route), and `GET /healthz`. Everything behind a
//! route is `relay-core`'s; this crate only adapts HTTP.
//!
//! `app(relay)` serves the plain paths (`/okta`, …); `app_with_prefix(relay,
//! "/api")` the same under a prefix, as Azure Functions route them.

pub mod logging;
pub mod metrics;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use relay_core::apply::Directory;
use relay_core::pipeline::{Relay, Route};
use relay_core::store::IdempotencyStore;

/// The largest delivery accepted. Okta batches and Auth0 log batches are
/// well below this; anything larger is refused with 413 before it is read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The router on the plain paths.
pub fn app<D, S>(relay: Arc<Relay<D, S>>) -> Router
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    app_with_prefix(relay, "")
}

/// What `/healthz` adds to `{"status":"ok"}`: a JSON object whose fields
/// are added beside `status` (e.g. `serve`'s `"queue"` depth and `"state"`
/// damage report).
pub type Health = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The router on the plain paths, with `/healthz` also reporting the
/// fields of `health()`.
pub fn app_with_health<D, S>(relay: Arc<Relay<D, S>>, health: Health) -> Router
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    app_with_prefix(relay, "").layer(axum::Extension(health))
}

/// The router with every route under `prefix` (e.g. `/api`).
pub fn app_with_prefix<D, S>(relay: Arc<Relay<D, S>>, prefix: &str) -> Router
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    let routes = Router::new()
        .route("/okta", get(okta_challenge::<D, S>).post(okta::<D, S>))
        .route("/auth0", axum::routing::post(auth0_events::<D, S>))
        .route("/auth0/logs", axum::routing::post(auth0_logs::<D, S>))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(relay);
    let router = if prefix.is_empty() || prefix == "/" {
        routes
    } else {
        Router::new().nest(prefix, routes)
    };
    router.fallback(not_found)
}

async fn healthz(health: Option<axum::Extension<Health>>) -> Response {
    let body = match health {
        Some(axum::Extension(health)) => {
            let mut body = serde_json::Map::new();
            body.insert("status".into(), "ok".into());
            if let serde_json::Value::Object(fields) = health() {
                body.extend(fields.into_iter().filter(|(k, _)| k != "status"));
            }
            serde_json::Value::Object(body).to_string()
        }
        None => r#"{"status":"ok"}"#.to_owned(),
    };
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}

async fn okta_challenge<D: Directory, S: IdempotencyStore>(
    State(relay): State<Arc<Relay<D, S>>>,
    headers: HeaderMap,
) -> Response {
    into_axum(
        relay
            .handle(Route::OktaChallenge, &headers, Bytes::new())
            .await,
    )
}

async fn okta<D: Directory, S: IdempotencyStore>(
    State(relay): State<Arc<Relay<D, S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    deliver(&relay, Route::Okta, &headers, body).await
}

async fn auth0_events<D: Directory, S: IdempotencyStore>(
    State(relay): State<Arc<Relay<D, S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    deliver(&relay, Route::Auth0Events, &headers, body).await
}

async fn auth0_logs<D: Directory, S: IdempotencyStore>(
    State(relay): State<Arc<Relay<D, S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    deliver(&relay, Route::Auth0Logs, &headers, body).await
}

async fn deliver<D: Directory, S: IdempotencyStore>(
    relay: &Relay<D, S>,
    route: Route,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    if !content_type_ok(route, headers) {
        tracing::warn!(source = %route.source(), "delivery refused: unsupported content type");
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    into_axum(relay.handle(route, headers, body).await)
}

/// Okta and Auth0 Event Streams send `application/json`. Auth0 Log Streams
/// send whatever `httpContentType` was configured — JSON, JSON lines or
/// plain text — so that route also accepts `application/x-ndjson`,
/// `application/jsonl` and `text/plain`. A missing content type is refused.
fn content_type_ok(route: Route, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json" || essence.ends_with("+json");
    match route {
        Route::Auth0Logs => {
            json || matches!(
                essence.as_str(),
                "application/x-ndjson"
                    | "application/jsonl"
                    | "application/json-lines"
                    | "text/plain"
            )
        }
        _ => json,
    }
}

fn into_axum(response: http::Response<Bytes>) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// Serves `router` on `listener` until `shutdown` resolves, finishing
/// requests in flight (Cloud Run sends SIGTERM and waits; so does Ctrl-C).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
        h
    }

    #[test]
    fn content_types_per_route() {
        assert!(content_type_ok(
            Route::Okta,
            &headers("application/json; charset=utf-8")
        ));
        assert!(content_type_ok(
            Route::Auth0Events,
            &headers("application/cloudevents+json")
        ));
        assert!(!content_type_ok(Route::Okta, &headers("text/plain")));
        assert!(content_type_ok(Route::Auth0Logs, &headers("text/plain")));
        assert!(content_type_ok(
            Route::Auth0Logs,
            &headers("application/x-ndjson")
        ));
        assert!(!content_type_ok(Route::Auth0Logs, &headers("text/html")));
        assert!(!content_type_ok(Route::Okta, &HeaderMap::new()));
    }
}
