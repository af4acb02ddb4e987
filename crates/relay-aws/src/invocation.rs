//! How a Lambda event becomes work: [`Invocation`] reads the raw event
//! once (an SQS batch, a scheduled task, an HTTP request of a Function URL,
//! HTTP API or REST API), and the HTTP path's conversions — the request
//! buffered with the API Gateway stage stripped, run through the shared
//! router, and the answer back in lambda_http's shape — plus the check that
//! sends a delivery refused for its secret to a secret re-read.

use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use lambda_http::RequestExt as _;
use lambda_http::request::RequestContext;
use lambda_http::tower::ServiceExt as _;
use relay_core::pipeline::Route;
use relay_core::verify::VerifyFailure;
use serde_json::Value;

use crate::{InvokeError, LambdaRelay, worker};

/// What one invocation is, read from its raw event once (issue 15: a
/// typed dispatch instead of probing the JSON in several places).
#[derive(Debug)]
pub enum Invocation {
    /// An SQS batch (`eventSource` `aws:sqs`): queue mode's worker.
    Sqs(Vec<worker::SqsRecord>),
    /// A scheduled task (`relay_task`, from EventBridge Scheduler) with the
    /// event, whose other fields are the task's options.
    Task(Task, Value),
    /// An HTTP request, in the shape of its origin.
    Http(HttpOrigin, Value),
}

/// The scheduled tasks (`relay_task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `reconcile`: converge Duo with the IdP (relay_core::reconcile).
    Reconcile,
    /// `catch_up`: apply what the hook missed from the IdP's event log
    /// (relay_core::catch_up).
    CatchUp,
}

impl Invocation {
    /// Reads the event; an unknown `relay_task` or an event of no known
    /// shape is an error naming what was looked for.
    pub fn of(event: Value) -> Result<Self, InvokeError> {
        if let Some(records) = worker::sqs_records(&event) {
            return Ok(Self::Sqs(records));
        }
        if let Some(task) = event.get("relay_task") {
            let task = match task.as_str() {
                Some("reconcile") => Task::Reconcile,
                Some("catch_up") => Task::CatchUp,
                _ => return Err(InvokeError::UnknownTask(task.to_string())),
            };
            return Ok(Self::Task(task, event));
        }
        match HttpOrigin::of(&event) {
            Some(origin) => Ok(Self::Http(origin, event)),
            None => Err(InvokeError::Unrecognized(
                "no Records, relay_task, httpMethod or requestContext.http".into(),
            )),
        }
    }
}

/// Where an HTTP event came from, which decides the answer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpOrigin {
    /// API Gateway REST API (payload 1.0).
    RestApi,
    /// Function URL or HTTP API (payload 2.0).
    HttpApi,
}

impl HttpOrigin {
    pub(crate) fn of(event: &Value) -> Option<Self> {
        if event.get("version").and_then(Value::as_str) == Some("2.0")
            || event.pointer("/requestContext/http").is_some()
        {
            Some(Self::HttpApi)
        } else if event.get("httpMethod").is_some() {
            Some(Self::RestApi)
        } else {
            None
        }
    }

    /// The answer as API Gateway / the Function URL reads it.
    pub(crate) fn answer(
        self,
        response: http::Response<lambda_http::Body>,
    ) -> Result<Value, InvokeError> {
        use lambda_http::aws_lambda_events::apigw::{
            ApiGatewayProxyResponse, ApiGatewayV2httpResponse,
        };
        let (parts, body) = response.into_parts();
        let (is_base64_encoded, body) = match body {
            lambda_http::Body::Empty => (false, None),
            text @ lambda_http::Body::Text(_) => (false, Some(text)),
            binary @ lambda_http::Body::Binary(_) => (true, Some(binary)),
            _ => (false, None),
        };
        let status_code = i64::from(parts.status.as_u16());
        let value = match self {
            Self::RestApi => {
                let mut answer = ApiGatewayProxyResponse::default();
                answer.status_code = status_code;
                // Only multi-value headers: API Gateway merges both fields.
                answer.multi_value_headers = parts.headers;
                answer.body = body;
                answer.is_base64_encoded = is_base64_encoded;
                serde_json::to_value(answer)
            }
            Self::HttpApi => {
                let mut answer = ApiGatewayV2httpResponse::default();
                answer.status_code = status_code;
                answer.headers = parts.headers;
                answer.body = body;
                answer.is_base64_encoded = is_base64_encoded;
                serde_json::to_value(answer)
            }
        };
        value.map_err(|e| InvokeError::Answer(e.to_string()))
    }
}

/// One request, read whole, so it can be handled a second time.
pub(crate) struct Buffered {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl Buffered {
    pub(crate) fn from_lambda(request: lambda_http::Request) -> Self {
        let uri = stage_less_uri(&request);
        let (parts, body) = request.into_parts();
        let body = match body {
            lambda_http::Body::Empty => Bytes::new(),
            lambda_http::Body::Text(text) => Bytes::from(text),
            lambda_http::Body::Binary(bytes) => Bytes::from(bytes),
            other => Bytes::copy_from_slice(other.as_ref()),
        };
        Self {
            method: parts.method,
            uri,
            headers: parts.headers,
            body,
        }
    }
}

/// The request's path and query without the API Gateway stage: lambda_http
/// puts a named stage in front of the path (`/prod/okta`), the routes have
/// none. A Function URL or a `$default` stage has nothing to strip.
pub(crate) fn stage_less_uri(request: &lambda_http::Request) -> Uri {
    let stage = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(context)) => context.stage.as_deref(),
        Some(RequestContext::ApiGatewayV2(context)) => context.stage.as_deref(),
        _ => None,
    };
    let uri = request.uri();
    let path = strip_stage(uri.path(), stage);
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    path_and_query.parse().unwrap_or_else(|_| uri.clone())
}

pub(crate) fn strip_stage<'a>(path: &'a str, stage: Option<&str>) -> &'a str {
    let Some(stage) = stage.filter(|s| !s.is_empty() && *s != "$default") else {
        return path;
    };
    match path.strip_prefix('/').and_then(|p| p.strip_prefix(stage)) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Whether a 401 came from a secret that did not match (or a source with no
/// secret yet): the case a rotation explains. A missing or duplicated header
/// is not worth a read of the secret. The route comes from the source
/// registry (`Route::of`), the table `relay-server`'s router is built from.
pub(crate) fn refused_for_its_secret(relay: &LambdaRelay, request: &Buffered) -> bool {
    let Some(route) = Route::of(&request.method, request.uri.path()) else {
        return false;
    };
    let failure = match route {
        Route::Verification(source) => relay
            .auth()
            .verify_challenge(source, &request.headers)
            .err(),
        Route::Delivery(source) => relay
            .auth()
            .verify(
                source,
                &request.headers,
                request.body.clone(),
                SystemTime::now(),
            )
            .err(),
    };
    matches!(
        failure,
        Some(
            VerifyFailure::SecretMismatch { .. }
                | VerifyFailure::BodySecretMismatch { .. }
                | VerifyFailure::SignatureMismatch
                | VerifyFailure::NotConfigured { .. }
        )
    )
}

/// Runs the request through the router and reads the answer whole.
pub(crate) async fn dispatch(router: &axum::Router, request: &Buffered) -> http::Response<Bytes> {
    let mut http_request = http::Request::new(axum::body::Body::from(request.body.clone()));
    *http_request.method_mut() = request.method.clone();
    *http_request.uri_mut() = request.uri.clone();
    *http_request.headers_mut() = request.headers.clone();
    let response = match router.clone().oneshot(http_request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => http::Response::from_parts(parts, bytes),
        Err(e) => {
            tracing::error!(error = %e, "could not read the router's answer");
            let mut response = http::Response::new(Bytes::new());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        }
    }
}

/// The answer as lambda_http sends it back (text when it is UTF-8, which
/// every answer of the router is; base64 otherwise).
pub(crate) fn into_lambda(response: http::Response<Bytes>) -> http::Response<lambda_http::Body> {
    let (parts, body) = response.into_parts();
    let body = if body.is_empty() {
        lambda_http::Body::Empty
    } else {
        match String::from_utf8(body.to_vec()) {
            Ok(text) => lambda_http::Body::Text(text),
            Err(e) => lambda_http::Body::Binary(e.into_bytes()),
        }
    };
    http::Response::from_parts(parts, body)
}
