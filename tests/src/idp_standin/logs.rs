//! The IdPs' event logs, for the catch-up tests: Okta's System Log
//! (`GET /api/v1/logs`) and Auth0's tenant logs (`GET /api/v2/logs`),
//! served by the same stand-in (same credentials, faults and request log).
//!
//! Okta, as documented (facts-16 §1, `okta-dev-docs`
//! `docs/reference/system-log-query/index.md`): a polling request (`since`,
//! `sortOrder=ASCENDING`, no `until`) returns events in persistence order
//! (here: the order the test appended them), `limit` up to 1000 (more is
//! 400 E0000001), a `filter` of `eventType eq "…"` joined by `or`, and a
//! `next` link on **every** page, empty ones included, carrying an opaque
//! `after` cursor. `since` and `after` together, an unknown `after`, or an
//! expired one (a test can expire cursors) answer 400. Every answer carries
//! `X-Rate-Limit-Limit/Remaining/Reset`.
//!
//! Auth0 (facts-16 §2, `auth0-docs`
//! `deploy-monitor/logs/retrieve-log-events-using-mgmt-api.mdx`): checkpoint
//! paging `from` + `take` (max 100; more is 400) returns the records with a
//! `log_id` greater than `from`, in `log_id` order, ignoring any other
//! parameter, with a `next` link (equal to the request when the page is
//! empty); search mode `q=date:[SINCE TO *]&sort=date:1&per_page=N`
//! returns the oldest records at or after SINCE. Every answer carries
//! `x-ratelimit-limit/remaining/reset`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Shared, auth0_refuses, json_response, lock, now_secs, okta_refuses, page_size};

/// Okta's largest System Log page.
const OKTA_MAX_LIMIT: usize = 1000;
/// Auth0's largest checkpoint page.
const AUTH0_MAX_TAKE: usize = 100;

/// The logs a test appends to.
#[derive(Debug, Default)]
pub(super) struct Logs {
    pub(super) okta: Vec<Value>,
    pub(super) auth0: Vec<Value>,
    /// Okta cursors issued before this generation are refused (expired).
    pub(super) cursor_generation: u64,
    /// Auth0 records with a `log_id` up to this one are past retention: a
    /// `from` at or before it answers 400 (Auth0 does not document what it
    /// answers; the relay must survive either an error or an empty page).
    pub(super) auth0_retained_after: Option<String>,
}

fn rate_headers(response: &mut Response, okta: bool) {
    let reset = HeaderValue::from(now_secs() + 60);
    let h = response.headers_mut();
    let (limit, remaining, reset_name) = if okta {
        (
            "x-rate-limit-limit",
            "x-rate-limit-remaining",
            "x-rate-limit-reset",
        )
    } else {
        (
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        )
    };
    h.insert(limit, HeaderValue::from_static("120"));
    h.insert(remaining, HeaderValue::from_static("119"));
    h.insert(reset_name, reset);
}

fn link(response: &mut Response, url: &str, rel: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"{rel}\"")) {
        response.headers_mut().append("link", v);
    }
}

/// The event types of an Okta filter `eventType eq "a" or eventType eq "b"`;
/// `None` when the filter is something else.
fn event_types(filter: &str) -> Option<Vec<String>> {
    filter
        .split(" or ")
        .map(|clause| {
            clause
                .trim()
                .strip_prefix("eventType eq \"")
                .and_then(|rest| rest.strip_suffix('"'))
                .map(str::to_owned)
        })
        .collect()
}

fn encode(value: &str) -> String {
    let mut url = reqwest::Url::parse("http://x.invalid/").unwrap();
    url.query_pairs_mut().append_pair("v", value);
    url.query().unwrap()[2..].to_owned()
}

fn okta_error(code: &str, summary: &str) -> Response {
    let mut r = json_response(
        StatusCode::BAD_REQUEST,
        json!({"errorCode": code, "errorSummary": summary}),
    );
    rate_headers(&mut r, true);
    r
}

pub(super) async fn okta_logs(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    let inner = lock(&s);
    if q.contains_key("until") || q.get("sortOrder").map(String::as_str) != Some("ASCENDING") {
        return okta_error("E0000001", "the stand-in serves polling requests only");
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if n <= OKTA_MAX_LIMIT => n,
        Some(_) => return okta_error("E0000001", "Api validation failed: limit"),
    };
    let limit = page_size(&inner, limit.max(1));
    let Some(filter) = q.get("filter") else {
        return okta_error("E0000001", "the stand-in wants a filter");
    };
    let Some(types) = event_types(filter) else {
        return okta_error("E0000031", "Invalid search criteria.");
    };
    // Position in persistence order: from `since` (by `published`) or from
    // the opaque cursor `g<generation>.<index>`.
    let start = match (q.get("since"), q.get("after")) {
        (Some(_), Some(_)) => {
            return okta_error("E0000001", "since and after are mutually exclusive");
        }
        (Some(since), None) => {
            let since = since.as_str();
            inner
                .logs
                .okta
                .iter()
                .position(|e| e["published"].as_str().is_some_and(|p| p >= since))
                .unwrap_or(inner.logs.okta.len())
        }
        (None, Some(after)) => {
            let parsed = after
                .strip_prefix('g')
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(g, i)| Some((g.parse::<u64>().ok()?, i.parse::<usize>().ok()?)));
            match parsed {
                Some((g, i)) if g == inner.logs.cursor_generation && i <= inner.logs.okta.len() => {
                    i
                }
                _ => return okta_error("E0000001", "Invalid after cursor"),
            }
        }
        (None, None) => 0,
    };
    let mut page = Vec::new();
    let mut next_index = start;
    for event in &inner.logs.okta[start..] {
        if page.len() == limit {
            break;
        }
        next_index += 1;
        if event["eventType"]
            .as_str()
            .is_some_and(|t| types.iter().any(|w| w == t))
        {
            page.push(event.clone());
        }
    }
    let mut r = json_response(StatusCode::OK, Value::Array(page));
    rate_headers(&mut r, true);
    let base = format!(
        "{}/api/v1/logs?sortOrder=ASCENDING&limit={limit}&filter={}",
        s.base,
        encode(filter)
    );
    link(&mut r, &base, "self");
    // A polling request always has a next page, even an empty one.
    let next = format!(
        "{base}&after=g{}.{next_index}",
        inner.logs.cursor_generation
    );
    link(&mut r, &next, "next");
    r
}

fn auth0_error(status: StatusCode, message: &str) -> Response {
    let mut r = json_response(
        status,
        json!({"statusCode": status.as_u16(), "error": "Bad Request", "message": message}),
    );
    rate_headers(&mut r, false);
    r
}

pub(super) async fn auth0_logs(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let inner = lock(&s);
    let log = &inner.logs.auth0;
    let id = |r: &Value| r["log_id"].as_str().unwrap_or_default().to_owned();
    if let Some(from) = q.get("from") {
        if inner
            .logs
            .auth0_retained_after
            .as_ref()
            .is_some_and(|cut| from <= cut)
        {
            return auth0_error(StatusCode::BAD_REQUEST, "from: log_id past retention");
        }
        // Checkpoint mode: everything but `from` and `take` is ignored.
        let take = match q.get("take").map(|t| t.parse::<usize>()) {
            None => 50,
            Some(Ok(n)) if (1..=AUTH0_MAX_TAKE).contains(&n) => n,
            Some(_) => return auth0_error(StatusCode::BAD_REQUEST, "take: max 100"),
        };
        let take = page_size(&inner, take);
        let mut newer: Vec<&Value> = log
            .iter()
            .filter(|r| id(r).as_str() > from.as_str())
            .collect();
        newer.sort_by_key(|r| id(r));
        let page: Vec<Value> = newer.into_iter().take(take).cloned().collect();
        let next_from = page.last().map_or_else(|| from.clone(), id);
        let mut r = json_response(StatusCode::OK, Value::Array(page));
        rate_headers(&mut r, false);
        let next = if next_from == *from {
            format!("{}{uri}", s.base)
        } else {
            format!(
                "{}/api/v2/logs?from={}&take={take}",
                s.base,
                encode(&next_from)
            )
        };
        link(&mut r, &next, "next");
        return r;
    }
    // Search mode, only as the catch-up uses it to find its start.
    let since = q
        .get("q")
        .and_then(|q| q.strip_prefix("date:["))
        .and_then(|rest| rest.strip_suffix(" TO *]"));
    let (Some(since), Some("date:1")) = (since, q.get("sort").map(String::as_str)) else {
        return auth0_error(
            StatusCode::BAD_REQUEST,
            "the stand-in searches by date only",
        );
    };
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 100);
    let mut hits: Vec<&Value> = log
        .iter()
        .filter(|r| r["date"].as_str().is_some_and(|d| d >= since))
        .collect();
    hits.sort_by_key(|r| r["date"].as_str().unwrap_or_default().to_owned());
    let page: Vec<Value> = hits.into_iter().take(per_page).cloned().collect();
    let mut r = json_response(StatusCode::OK, Value::Array(page));
    rate_headers(&mut r, false);
    r
}
