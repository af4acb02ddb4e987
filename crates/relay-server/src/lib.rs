//! The relay's HTTP surface, as one axum [`Router`]: the routes of the
//! interface contract, the request limits (413 body too large, 415 content
//! type, 405 method, 404 route, 408 body too slow), and `GET /healthz`; and
//! [`serve`], the serving loop with connection limits ([`listen`]) that
//! `serve`, Cloud Run and Azure share. Everything behind a route is
//! `relay-core`'s; this crate only adapts HTTP.
//!
//! `app(relay)` serves the plain paths (`/okta`, …); `app_with_prefix(relay,
//! "/api")` the same under a prefix, as Azure Functions route them.
//!
//! A delivery's headers are checked (content type, then the secret) before
//! its body is read: an unauthenticated client never gets its body read.

pub mod listen;
mod log_format;
pub mod logging;
pub mod metrics;
pub mod platform;

use std::sync::Arc;
use std::time::Instant;

pub use listen::{ServeLimits, serve};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt as _;
use relay_core::apply::Directory;
use relay_core::event::Source;
use relay_core::pipeline::{Answer, Relay, Route};
use relay_core::store::IdempotencyStore;

/// The largest delivery accepted. Okta batches and Auth0 log batches are
/// well below this; anything larger is refused with 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of an oversized body is read and thrown away before the 413 is
/// sent. A client that sends its whole body without waiting for an answer
/// would otherwise have its connection reset under it (the kernel resets a
/// socket closed with unread data) and might never read the 413. A body
/// declared larger than the limit plus this, or sent with `Expect:
/// 100-continue`, is answered at once without reading any of it.
pub const DRAIN_BYTES: usize = 1024 * 1024;

/// The health route, beside the sources' delivery routes.
const HEALTH_PATH: &str = "/healthz";

/// The router on the plain paths.
pub fn app<D, S>(relay: Arc<Relay<D, S>>) -> Router
where
    D: Directory + 'static,
    S: IdempotencyStore + 'static,
{
    app_with_prefix(relay, "")
}

/// Every path [`app_with_prefix`] serves under `prefix`, in registry order
/// and then `/healthz`: the sources' delivery routes come from
/// [`relay_core::source::SOURCES`], so a new source is listed (and served)
/// without touching this crate.
pub fn served_paths(prefix: &str) -> Vec<String> {
    let prefix = prefix.trim_end_matches('/');
    relay_core::source::SOURCES
        .iter()
        .map(|spec| spec.path)
        .chain([HEALTH_PATH])
        .map(|path| format!("{prefix}{path}"))
        .collect()
}

/// [`served_paths`] as one string for a start-up log line:
/// `/okta, /auth0, /auth0/logs, /entra, /healthz`.
pub fn served_paths_line(prefix: &str) -> String {
    served_paths(prefix).join(", ")
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
    let mut routes = Router::new();
    for spec in relay_core::source::SOURCES {
        let source = spec.source;
        let mut methods = post(
            move |State(relay): State<Arc<Relay<D, S>>>, request: Request| {
                deliver(relay, Route::Delivery(source), request)
            },
        );
        if spec.verification_get {
            methods = methods.get(
                move |State(relay): State<Arc<Relay<D, S>>>, headers: HeaderMap| {
                    verification(relay, source, headers)
                },
            );
        }
        routes = routes.route(spec.path, methods);
    }
    let routes = routes
        .route(HEALTH_PATH, get(healthz))
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

/// A source's one-time verification `GET` (Okta's event hook).
async fn verification<D: Directory, S: IdempotencyStore>(
    relay: Arc<Relay<D, S>>,
    source: Source,
    headers: HeaderMap,
) -> Response {
    respond(
        relay
            .handle(Route::Verification(source), &headers, Bytes::new())
            .await,
    )
}

/// One delivery: content type and secret from the headers, then the body
/// (limit 413, timeout 408), then the relay. The relay runs in a task of
/// its own so that a client hanging up (Okta gives up after 3 s) does not
/// cancel an event halfway through its Duo calls: the events of the
/// delivery are applied (within the sync budget) and remembered, and the
/// IdP's redelivery finds them done.
async fn deliver<D: Directory + 'static, S: IdempotencyStore + 'static>(
    relay: Arc<Relay<D, S>>,
    route: Route,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    // A subscription validation handshake (Graph's `?validationToken=`)
    // carries no secret, and its content type and body do not matter.
    if let Some(answer) = relay.validation(route, parts.uri.query()) {
        return respond(answer);
    }
    if !content_type_ok(route, &parts.headers) {
        tracing::warn!(source = %route.source(), "delivery refused: unsupported content type");
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let authenticated = match relay.authenticate(route, &parts.headers) {
        Ok(authenticated) => authenticated,
        Err(refused) => return respond(refused.answer()),
    };
    let body = match read_body(route, &parts.headers, body).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let task = tokio::spawn(async move {
        relay
            .handle_authenticated(authenticated, body, started)
            .await
    });
    match task.await {
        Ok(answer) => respond(answer),
        Err(e) => {
            tracing::error!(source = %route.source(), error = %e, "handling a delivery failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The body of an authenticated delivery, at most [`MAX_BODY_BYTES`].
/// Errors are the answer: 413 (after draining up to [`DRAIN_BYTES`]), 408
/// when the body did not arrive within the body timeout
/// ([`listen::ServeLimits`]), 400 when the connection broke.
async fn read_body(route: Route, headers: &HeaderMap, mut body: Body) -> Result<Bytes, Response> {
    let source = route.source();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let waits_for_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let limit = MAX_BODY_BYTES as u64;
    if let Some(declared) = declared
        && declared > limit
        && (waits_for_continue || declared > limit + DRAIN_BYTES as u64)
    {
        tracing::warn!(source = %source, declared_bytes = declared, "delivery refused: body over 1 MiB (not read)");
        return Err(too_large(true));
    }
    let capacity = declared.map_or(0, |d| usize::try_from(d.min(limit)).unwrap_or(0));
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return Err(body_failed(source, &e)),
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > MAX_BODY_BYTES {
            let seen = bytes.len() + data.len();
            drop(bytes);
            tracing::warn!(source = %source, "delivery refused: body over 1 MiB");
            return Err(drain(body, seen).await);
        }
        bytes.extend_from_slice(&data);
    }
    Ok(Bytes::from(bytes))
}

/// Reads and discards the rest of an oversized body, up to [`DRAIN_BYTES`]
/// past the limit (and within the body timeout), then answers 413: on a
/// connection kept alive when the body ended, else one that closes.
async fn drain(mut body: Body, mut seen: usize) -> Response {
    while seen <= MAX_BODY_BYTES + DRAIN_BYTES {
        match body.frame().await {
            None => return too_large(false),
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
            Some(Err(_)) => break,
        }
    }
    too_large(true)
}

fn too_large(close: bool) -> Response {
    closing(StatusCode::PAYLOAD_TOO_LARGE, close)
}

/// 408 when the body timeout cut the body, 400 when the body broke off;
/// the connection closes either way (what is left of the body is unread).
fn body_failed(source: Source, e: &axum::Error) -> Response {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if error.is::<listen::BodyTimedOut>() {
            tracing::warn!(source = %source, "delivery refused: body not received within the body timeout");
            return closing(StatusCode::REQUEST_TIMEOUT, true);
        }
        cause = error.source();
    }
    tracing::warn!(source = %source, error = %e, "delivery refused: reading the body failed");
    closing(StatusCode::BAD_REQUEST, true)
}

fn closing(status: StatusCode, close: bool) -> Response {
    let mut response = status.into_response();
    if close {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// JSON (`application/json`, `…+json`), or one of the source's
/// registered extra content types (Auth0 Log Streams: JSON lines and plain
/// text, `SourceSpec::extra_content_types`). A missing content type is
/// refused.
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
    json || relay_core::source::spec(route.source())
        .extra_content_types
        .contains(&essence.as_str())
}

/// The one mapping of the relay's [`Answer`] to HTTP: 200 done (the
/// challenge echoed as `{"verification": …}`, a validation token as
/// `text/plain`), 401 refused (empty body), 400
/// no challenge (empty) or not a delivery (`{"error": …}`), 503 retry later
/// (empty) or deferred by the sync budget (a JSON body saying why).
pub fn respond(answer: Answer) -> Response {
    match answer {
        Answer::Done => StatusCode::OK.into_response(),
        Answer::Challenge(challenge) => json(
            StatusCode::OK,
            &serde_json::json!({ "verification": challenge }),
        ),
        Answer::Validation(token) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            token,
        )
            .into_response(),
        Answer::Refused => StatusCode::UNAUTHORIZED.into_response(),
        Answer::NoChallenge => StatusCode::BAD_REQUEST.into_response(),
        Answer::NotADelivery(error) => json(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({ "error": error }),
        ),
        Answer::RetryLater => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        Answer::Deferred {
            processed,
            deferred,
            budget_ms,
        } => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({
                "error": format!(
                    "sync time budget ({budget_ms} ms) spent after {processed} of {} events; the other {deferred} were not started. Redeliver: the {processed} processed events are remembered and skipped.",
                    processed + deferred,
                ),
                "processed": processed,
                "deferred": deferred,
            }),
        ),
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
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
    fn served_paths_list_every_source_and_healthz() {
        assert_eq!(
            served_paths_line(""),
            "/okta, /auth0, /auth0/logs, /entra, /healthz"
        );
        assert_eq!(
            served_paths("/api/"),
            [
                "/api/okta",
                "/api/auth0",
                "/api/auth0/logs",
                "/api/entra",
                "/api/healthz"
            ]
        );
    }

    #[test]
    fn content_types_per_route() {
        assert!(content_type_ok(
            Route::Delivery(Source::Okta),
            &headers("application/json; charset=utf-8")
        ));
        assert!(content_type_ok(
            Route::Delivery(Source::Auth0Events),
            &headers("application/cloudevents+json")
        ));
        assert!(!content_type_ok(
            Route::Delivery(Source::Okta),
            &headers("text/plain")
        ));
        assert!(content_type_ok(
            Route::Delivery(Source::Auth0Logs),
            &headers("text/plain")
        ));
        assert!(content_type_ok(
            Route::Delivery(Source::Auth0Logs),
            &headers("application/x-ndjson")
        ));
        assert!(!content_type_ok(
            Route::Delivery(Source::Auth0Logs),
            &headers("text/html")
        ));
        assert!(!content_type_ok(
            Route::Delivery(Source::Okta),
            &HeaderMap::new()
        ));
    }
}
