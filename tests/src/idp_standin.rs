//! An IdP stand-in for the reconcile tests: one small tenant (users, groups
//! and memberships) served over real HTTP on loopback in the shapes of the
//! Okta Users/Groups API and the Auth0 Management API, with their paging
//! (`Link: rel="next"`; `page`/`per_page` capped at 1000 users, checkpoint
//! `from`/`take`, user export jobs), their credentials (SSWS token; M2M
//! client credentials for a bearer token), and their rate-limit answers
//! (429 with `X-Rate-Limit-Reset` / `X-RateLimit-Reset`). A test can make
//! one route answer 429 once, or fail with 500 after a number of requests,
//! and reads a log of every request.
//!
//! Statuses follow Okta (`ACTIVE`, `SUSPENDED`, `DEPROVISIONED`, …); in the
//! Auth0 shape anything but `ACTIVE`/`STAGED` is `blocked: true`, and
//! `DEPROVISIONED` users are left out of Okta's plain user listing, as Okta
//! does.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

mod logs;

/// The Okta API token the stand-in accepts.
pub const OKTA_TOKEN: &str = "00standin-okta-token-SECRET";
/// The Auth0 M2M client the stand-in accepts.
pub const AUTH0_CLIENT_ID: &str = "standin-client";
pub const AUTH0_CLIENT_SECRET: &str = "standin-client-SECRET";

/// Auth0 serves at most this many users through `page`/`per_page`.
const AUTH0_PAGED_CAP: usize = 1000;

/// A user of the stand-in tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInUser {
    /// `00u…` for Okta, `auth0|…` for Auth0.
    pub id: String,
    /// Okta login / Auth0 email.
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    /// Okta status: `ACTIVE`, `SUSPENDED`, `DEPROVISIONED`, `STAGED`, …
    pub status: String,
    /// More attributes: in Okta's `profile`, at the top of Auth0's user
    /// object (`app_metadata`, `username`, …).
    pub attributes: serde_json::Map<String, Value>,
}

impl StandInUser {
    /// An active user named after its login.
    pub fn new(id: &str, login: &str) -> Self {
        let local = login.split('@').next().unwrap_or(login);
        let (first, last) = local.split_once('.').unwrap_or((local, "Tester"));
        Self {
            id: id.to_owned(),
            login: login.to_owned(),
            first_name: capitalize(first),
            last_name: capitalize(last),
            status: "ACTIVE".to_owned(),
            attributes: serde_json::Map::new(),
        }
    }

    /// With one more attribute (see [`StandInUser::attributes`]).
    #[must_use]
    pub fn attribute(mut self, name: &str, value: Value) -> Self {
        self.attributes.insert(name.to_owned(), value);
        self
    }

    #[must_use]
    pub fn status(mut self, status: &str) -> Self {
        self.status = status.to_owned();
        self
    }

    #[must_use]
    pub fn named(mut self, first: &str, last: &str) -> Self {
        self.first_name = first.to_owned();
        self.last_name = last.to_owned();
        self
    }

    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }

    fn blocked(&self) -> bool {
        !matches!(self.status.as_str(), "ACTIVE" | "STAGED")
    }

    fn okta_json(&self) -> Value {
        let mut user = json!({
            "id": self.id, "status": self.status,
            "created": "2026-01-01T00:00:00.000Z",
            "profile": {
                "login": self.login, "email": self.login,
                "firstName": self.first_name, "lastName": self.last_name,
                "displayName": self.display_name(), "mobilePhone": null
            },
            "_links": {}
        });
        if let Some(profile) = user["profile"].as_object_mut() {
            profile.extend(self.attributes.clone());
        }
        user
    }

    fn auth0_json(&self) -> Value {
        let mut user = json!({
            "user_id": self.id, "email": self.login, "email_verified": true,
            "name": self.display_name(), "given_name": self.first_name,
            "family_name": self.last_name, "blocked": self.blocked(),
            "created_at": "2026-01-01T00:00:00.000Z"
        });
        if let Some(object) = user.as_object_mut() {
            object.extend(self.attributes.clone());
        }
        user
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A group (Okta group / Auth0 role) and its members' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandInGroup {
    /// `00g…` for Okta, `rol_…` for Auth0.
    pub id: String,
    pub name: String,
    /// Okta's group type: `OKTA_GROUP`, `APP_GROUP`, `BUILT_IN`.
    pub kind: String,
    pub members: Vec<String>,
}

impl StandInGroup {
    pub fn new(id: &str, name: &str, members: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            kind: "OKTA_GROUP".to_owned(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn okta_json(&self) -> Value {
        json!({
            "id": self.id, "type": self.kind, "objectClass": ["okta:user_group"],
            "profile": {"name": self.name, "description": null}
        })
    }

    fn auth0_json(&self) -> Value {
        json!({"id": self.id, "name": self.name, "description": null})
    }
}

/// The tenant a test shapes.
#[derive(Debug, Clone, Default)]
pub struct Tenant {
    pub users: Vec<StandInUser>,
    pub groups: Vec<StandInGroup>,
}

impl Tenant {
    fn user(&self, id_or_login: &str) -> Option<&StandInUser> {
        self.users
            .iter()
            .find(|u| u.id == id_or_login || u.login.eq_ignore_ascii_case(id_or_login))
    }

    fn group(&self, id: &str) -> Option<&StandInGroup> {
        self.groups.iter().find(|g| g.id == id)
    }
}

/// One request the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path as received (still percent-encoded).
    pub path: String,
    pub status: u16,
}

/// A fault a test arms.
#[derive(Debug, Clone)]
enum Fault {
    /// The next request whose path starts with the prefix answers 429.
    RateLimitOnce { prefix: String },
    /// Requests whose path starts with the prefix answer 500 once `after`
    /// of them have been answered normally.
    FailAfter { prefix: String, after: usize },
}

#[derive(Debug, Default)]
struct Inner {
    tenant: Tenant,
    /// User id → index in `tenant.users` (a 20,000-user tenant is looked up
    /// member by member).
    by_id: HashMap<String, usize>,
    faults: Vec<Fault>,
    /// Requests per fault prefix so far (for `FailAfter`).
    seen: HashMap<String, usize>,
    log: Vec<Request>,
    tokens_issued: usize,
    export_polls: HashMap<String, usize>,
    /// Largest page served, whatever the client asks (to page small tenants).
    max_page: Option<usize>,
    /// The event logs (`logs.rs`).
    logs: logs::Logs,
}

impl Inner {
    fn reindex(&mut self) {
        self.by_id = self
            .tenant
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect();
    }

    fn user_by_id(&self, id: &str) -> Option<&StandInUser> {
        self.by_id.get(id).and_then(|&i| self.tenant.users.get(i))
    }
}

struct Shared {
    base: String,
    inner: Mutex<Inner>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    shared
        .inner
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running stand-in. Dropping it stops the server.
pub struct IdpStandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for IdpStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpStandIn")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for IdpStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl IdpStandIn {
    /// Starts on a random loopback port with `tenant`.
    ///
    /// # Panics
    /// If no loopback port can be bound (tests only).
    pub async fn start(tenant: Tenant) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the IdP stand-in");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            inner: Mutex::new(Inner {
                tenant,
                ..Inner::default()
            }),
        });
        lock(&shared).reindex();
        let app = Router::new()
            .route("/api/v1/users", get(okta_list_users))
            .route("/api/v1/users/{id}", get(okta_user))
            .route("/api/v1/users/{id}/groups", get(okta_user_groups))
            .route("/api/v1/groups", get(okta_list_groups))
            .route("/api/v1/groups/{id}", get(okta_group))
            .route("/api/v1/groups/{id}/users", get(okta_group_members))
            .route("/oauth/token", post(auth0_token))
            .route("/api/v2/users", get(auth0_list_users))
            .route("/api/v2/users/{id}", get(auth0_user))
            .route("/api/v2/users/{id}/roles", get(auth0_user_roles))
            .route("/api/v2/users-by-email", get(auth0_users_by_email))
            .route("/api/v2/roles", get(auth0_list_roles))
            .route("/api/v2/roles/{id}", get(auth0_role))
            .route("/api/v2/roles/{id}/users", get(auth0_role_members))
            .route("/api/v2/jobs/users-exports", post(auth0_export_start))
            .route("/api/v2/jobs/{id}", get(auth0_export_job))
            .route("/exports/{file}", get(auth0_export_file))
            .route("/api/v1/logs", get(logs::okta_logs))
            .route("/api/v2/logs", get(logs::auth0_logs))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                faults_and_log,
            ))
            .with_state(shared.clone());
        Self {
            shared,
            addr,
            stop: Some(crate::harness::serve_until_dropped(listener, app)),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        self.shared.base.clone()
    }

    /// `OKTA_ORG_URL` and `OKTA_API_TOKEN` pointing here.
    pub fn okta_env(&self) -> Vec<(String, String)> {
        vec![
            ("OKTA_ORG_URL".into(), self.base_url()),
            ("OKTA_API_TOKEN".into(), OKTA_TOKEN.into()),
        ]
    }

    /// `AUTH0_DOMAIN`, `AUTH0_CLIENT_ID` and `AUTH0_CLIENT_SECRET` pointing here.
    pub fn auth0_env(&self) -> Vec<(String, String)> {
        vec![
            ("AUTH0_DOMAIN".into(), self.base_url()),
            ("AUTH0_CLIENT_ID".into(), AUTH0_CLIENT_ID.into()),
            ("AUTH0_CLIENT_SECRET".into(), AUTH0_CLIENT_SECRET.into()),
        ]
    }

    /// Changes the tenant.
    pub fn with_tenant<T>(&self, change: impl FnOnce(&mut Tenant) -> T) -> T {
        let mut inner = lock(&self.shared);
        let out = change(&mut inner.tenant);
        inner.reindex();
        out
    }

    /// Serves at most `n` items per page whatever the client asks for, so
    /// a small tenant still pages.
    pub fn set_max_page(&self, n: usize) {
        lock(&self.shared).max_page = Some(n.max(1));
    }

    /// The next request whose path starts with `prefix` answers 429 with a
    /// reset header one second ahead.
    pub fn rate_limit_once(&self, prefix: &str) {
        lock(&self.shared).faults.push(Fault::RateLimitOnce {
            prefix: prefix.to_owned(),
        });
    }

    /// Requests whose path starts with `prefix` answer 500 once `after` of
    /// them have been answered.
    pub fn fail_after(&self, prefix: &str, after: usize) {
        lock(&self.shared).faults.push(Fault::FailAfter {
            prefix: prefix.to_owned(),
            after,
        });
    }

    pub fn clear_faults(&self) {
        let mut inner = lock(&self.shared);
        inner.faults.clear();
        inner.seen.clear();
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared).log.clone()
    }

    /// How many requests were answered with `status`.
    pub fn count_status(&self, status: u16) -> usize {
        lock(&self.shared)
            .log
            .iter()
            .filter(|r| r.status == status)
            .count()
    }

    /// Appends an event to Okta's System Log (persistence order = the
    /// order of the calls).
    pub fn push_okta_log(&self, event: Value) {
        lock(&self.shared).logs.okta.push(event);
    }

    /// Appends a record to Auth0's tenant logs (served in `log_id` order).
    pub fn push_auth0_log(&self, record: Value) {
        lock(&self.shared).logs.auth0.push(record);
    }

    /// Auth0 forgets every record up to `log_id` (retention): they are no
    /// longer served, and a `from` at or before it answers 400.
    pub fn expire_auth0_log_through(&self, log_id: &str) {
        let mut inner = lock(&self.shared);
        inner
            .logs
            .auth0
            .retain(|r| r["log_id"].as_str().is_some_and(|id| id > log_id));
        inner.logs.auth0_retained_after = Some(log_id.to_owned());
    }

    /// Every Okta `after` cursor issued so far is refused from now on (400),
    /// as an expired one would be.
    pub fn expire_okta_cursors(&self) {
        lock(&self.shared).logs.cursor_generation += 1;
    }

    pub fn reset_requests(&self) {
        lock(&self.shared).log.clear();
    }
}

/// One System Log event about one user, as Okta logs it and the hook
/// delivers it (the LogEvent the catch-up reads): `uuid` is the hook's
/// idempotency key. For the cloud entries' catch-up tests.
pub fn okta_user_log_event(
    uuid: &str,
    at_ms: i64,
    event_type: &str,
    user_id: &str,
    login: &str,
) -> Value {
    serde_json::json!({
        "uuid": uuid,
        "published": relay_core::time::rfc3339_millis(at_ms),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": event_type,
        "actor": {"id": "00uADMIN0000000000001", "type": "User",
                  "alternateId": "admin@example.com", "displayName": "Example Admin"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [{"id": user_id, "type": "User", "alternateId": login,
                    "displayName": login, "detailEntry": null}],
    })
}

impl IdpStandIn {
    /// An Okta tenant with one user, whose creation (ten minutes ago) is
    /// in the System Log as event `uuid` and was never delivered by the
    /// hook: what a catch-up run must apply.
    pub async fn with_missed_okta_create(user_id: &str, login: &str, uuid: &str) -> Self {
        let idp = Self::start(Tenant {
            users: vec![StandInUser::new(user_id, login)],
            groups: vec![],
        })
        .await;
        idp.push_okta_log(okta_user_log_event(
            uuid,
            now_ms() - 10 * 60_000,
            "user.lifecycle.create",
            user_id,
            login,
        ));
        idp
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

// ---- plumbing ----

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"errorCode": "E0000022", "errorSummary": "The endpoint does not exist."}),
    )
}

/// Applies armed faults, then logs the answer.
async fn faults_and_log(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let injected = {
        let mut inner = lock(&shared);
        let mut injected = None;
        let mut fired = None;
        let faults = inner.faults.clone();
        for (i, fault) in faults.iter().enumerate() {
            match fault {
                Fault::RateLimitOnce { prefix } if path.starts_with(prefix.as_str()) => {
                    fired = Some(i);
                    injected = Some(StatusCode::TOO_MANY_REQUESTS);
                    break;
                }
                Fault::FailAfter { prefix, after } if path.starts_with(prefix.as_str()) => {
                    let seen = inner.seen.entry(prefix.clone()).or_default();
                    *seen += 1;
                    if *seen > *after {
                        injected = Some(StatusCode::INTERNAL_SERVER_ERROR);
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(i) = fired {
            inner.faults.remove(i);
        }
        injected
    };
    let response = match injected {
        Some(StatusCode::TOO_MANY_REQUESTS) => {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit due to too many requests."}),
            );
            let reset = HeaderValue::from(now_secs() + 1);
            let h = r.headers_mut();
            h.insert("x-rate-limit-limit", HeaderValue::from_static("600"));
            h.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
            h.insert("x-rate-limit-reset", reset.clone());
            h.insert("x-ratelimit-limit", HeaderValue::from_static("50"));
            h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            h.insert("x-ratelimit-reset", reset);
            r
        }
        Some(status) => json_response(
            status,
            json!({"errorCode": "E0000009", "errorSummary": "Internal Server Error"}),
        ),
        None => next.run(request).await,
    };
    lock(&shared).log.push(Request {
        method,
        path,
        status: response.status().as_u16(),
    });
    response
}

type Q = Query<HashMap<String, String>>;

fn number(q: &HashMap<String, String>, name: &str) -> Option<usize> {
    q.get(name).and_then(|v| v.parse().ok())
}

fn page_size(inner: &Inner, asked: usize) -> usize {
    inner.max_page.map_or(asked, |max| asked.min(max)).max(1)
}

// ---- Okta ----

fn okta_refuses(headers: &HeaderMap) -> Option<Response> {
    let expected = format!("SSWS {OKTA_TOKEN}");
    (headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())).then(
        || {
            json_response(
                StatusCode::UNAUTHORIZED,
                json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}),
            )
        },
    )
}

/// One page by an `after` cursor (the index of the next item), with Okta's
/// `Link` headers. Only the page's items are rendered.
fn okta_page<T>(
    base: &str,
    uri: &Uri,
    items: &[T],
    render: impl Fn(&T) -> Value,
    q: &HashMap<String, String>,
    limit: usize,
) -> Response {
    let start = number(q, "after").unwrap_or(0).min(items.len());
    let end = (start + limit).min(items.len());
    let page: Vec<Value> = items[start..end].iter().map(render).collect();
    let mut response = json_response(StatusCode::OK, Value::Array(page));
    let self_url = format!("{base}{uri}");
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("<{self_url}>; rel=\"self\"")) {
        headers.append("link", v);
    }
    if end < items.len() {
        let mut query: Vec<(String, String)> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "after")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        query.push(("after".into(), end.to_string()));
        query.sort();
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let next = format!("{base}{}?{}", uri.path(), query.join("&"));
        if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
            headers.append("link", v);
        }
    }
    response
}

fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn okta_limit(inner: &Inner, q: &HashMap<String, String>, default: usize, max: usize) -> usize {
    page_size(inner, number(q, "limit").unwrap_or(default).min(max))
}

async fn okta_list_users(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    let inner = lock(&s);
    let deprovisioned = match q.get("filter").map(String::as_str) {
        None => false,
        Some("status eq \"DEPROVISIONED\"") => true,
        Some(_) => {
            return json_response(StatusCode::BAD_REQUEST, json!({"errorCode": "E0000031"}));
        }
    };
    let users: Vec<&StandInUser> = inner
        .tenant
        .users
        .iter()
        .filter(|u| (u.status == "DEPROVISIONED") == deprovisioned)
        .collect();
    let limit = okta_limit(&inner, &q, 200, 200);
    okta_page(&s.base, &uri, &users, |u| u.okta_json(), &q, limit)
}

async fn okta_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    match lock(&s).tenant.user(&id) {
        Some(u) => json_response(StatusCode::OK, u.okta_json()),
        None => json_response(
            StatusCode::NOT_FOUND,
            json!({"errorCode": "E0000007", "errorSummary": "Not found: Resource not found"}),
        ),
    }
}

async fn okta_user_groups(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    let inner = lock(&s);
    let Some(user) = inner.tenant.user(&id) else {
        return json_response(StatusCode::NOT_FOUND, json!({"errorCode": "E0000007"}));
    };
    let groups: Vec<&StandInGroup> = inner
        .tenant
        .groups
        .iter()
        .filter(|g| g.kind == "BUILT_IN" || g.members.contains(&user.id))
        .collect();
    let limit = okta_limit(&inner, &q, 200, 200);
    okta_page(&s.base, &uri, &groups, |g| g.okta_json(), &q, limit)
}

async fn okta_list_groups(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    let inner = lock(&s);
    let limit = okta_limit(&inner, &q, 10_000, 10_000);
    okta_page(
        &s.base,
        &uri,
        &inner.tenant.groups,
        StandInGroup::okta_json,
        &q,
        limit,
    )
}

async fn okta_group(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    match lock(&s).tenant.group(&id) {
        Some(g) => json_response(StatusCode::OK, g.okta_json()),
        None => json_response(StatusCode::NOT_FOUND, json!({"errorCode": "E0000007"})),
    }
}

async fn okta_group_members(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    let inner = lock(&s);
    let Some(group) = inner.tenant.group(&id) else {
        return json_response(StatusCode::NOT_FOUND, json!({"errorCode": "E0000007"}));
    };
    let members: Vec<&StandInUser> = if group.kind == "BUILT_IN" {
        inner.tenant.users.iter().collect()
    } else {
        group
            .members
            .iter()
            .filter_map(|m| inner.user_by_id(m))
            .collect()
    };
    let limit = okta_limit(&inner, &q, 1000, 1000);
    okta_page(&s.base, &uri, &members, |u| u.okta_json(), &q, limit)
}

// ---- Auth0 ----

async fn auth0_token(State(s): State<Arc<Shared>>, body: String) -> Response {
    let uri: Uri = match format!("/?{body}").parse() {
        Ok(uri) => uri,
        Err(_) => {
            return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        }
    };
    let Ok(Query(form)) = Query::<HashMap<String, String>>::try_from_uri(&uri) else {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
    };
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
    }
    if field("client_id") != Some(AUTH0_CLIENT_ID)
        || field("client_secret") != Some(AUTH0_CLIENT_SECRET)
    {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    let mut inner = lock(&s);
    inner.tokens_issued += 1;
    json_response(
        StatusCode::OK,
        json!({
            "access_token": format!("standin-token-{}", inner.tokens_issued),
            "expires_in": 86_400, "scope": "read:users read:roles", "token_type": "Bearer"
        }),
    )
}

fn auth0_refuses(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let issued = lock(s).tokens_issued;
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer standin-token-"))
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n >= 1 && n <= issued);
    (!ok).then(|| {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"}),
        )
    })
}

fn auth0_not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"statusCode": 404, "error": "Not Found", "message": "The user does not exist."}),
    )
}

/// `page`/`per_page` paging, wrapped with totals when asked.
fn auth0_page(
    key: &str,
    items: Vec<Value>,
    q: &HashMap<String, String>,
    per_page: usize,
    total_cap: usize,
) -> Response {
    let page = number(q, "page").unwrap_or(0);
    let start = page * per_page;
    let slice: Vec<Value> = items.iter().skip(start).take(per_page).cloned().collect();
    if q.get("include_totals").map(String::as_str) == Some("true") {
        json_response(
            StatusCode::OK,
            json!({key: slice, "start": start, "limit": per_page, "length": slice.len(),
                   "total": items.len().min(total_cap)}),
        )
    } else {
        json_response(StatusCode::OK, Value::Array(slice))
    }
}

async fn auth0_list_users(
    State(s): State<Arc<Shared>>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let inner = lock(&s);
    let per_page = page_size(&inner, number(&q, "per_page").unwrap_or(50).min(100));
    let page = number(&q, "page").unwrap_or(0);
    if (page + 1) * per_page > AUTH0_PAGED_CAP {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"statusCode": 400, "error": "Bad Request",
                   "message": "You can only page through the first 1000 records. See https://auth0.com/docs/users/search/v3/view-search-results-by-page#limitation"}),
        );
    }
    let users: Vec<Value> = inner
        .tenant
        .users
        .iter()
        .map(StandInUser::auth0_json)
        .collect();
    auth0_page("users", users, &q, per_page, AUTH0_PAGED_CAP)
}

async fn auth0_user(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let inner = lock(&s);
    match inner.user_by_id(&id) {
        Some(u) => json_response(StatusCode::OK, u.auth0_json()),
        None => auth0_not_found(),
    }
}

async fn auth0_users_by_email(
    State(s): State<Arc<Shared>>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let Some(email) = q.get("email") else {
        return json_response(StatusCode::BAD_REQUEST, json!({"statusCode": 400}));
    };
    let inner = lock(&s);
    let users: Vec<Value> = inner
        .tenant
        .users
        .iter()
        .filter(|u| u.login.eq_ignore_ascii_case(email))
        .map(StandInUser::auth0_json)
        .collect();
    json_response(StatusCode::OK, Value::Array(users))
}

async fn auth0_user_roles(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let inner = lock(&s);
    if inner.user_by_id(&id).is_none() {
        return auth0_not_found();
    }
    let roles: Vec<Value> = inner
        .tenant
        .groups
        .iter()
        .filter(|g| g.members.contains(&id))
        .map(StandInGroup::auth0_json)
        .collect();
    let per_page = page_size(&inner, number(&q, "per_page").unwrap_or(50).min(100));
    auth0_page("roles", roles, &q, per_page, usize::MAX)
}

async fn auth0_list_roles(
    State(s): State<Arc<Shared>>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let inner = lock(&s);
    let roles: Vec<Value> = inner
        .tenant
        .groups
        .iter()
        .map(StandInGroup::auth0_json)
        .collect();
    let per_page = page_size(&inner, number(&q, "per_page").unwrap_or(50).min(100));
    auth0_page("roles", roles, &q, per_page, usize::MAX)
}

async fn auth0_role(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    match lock(&s).tenant.group(&id) {
        Some(g) => json_response(StatusCode::OK, g.auth0_json()),
        None => json_response(StatusCode::NOT_FOUND, json!({"statusCode": 404})),
    }
}

/// Checkpoint paging: `take` (≤ 100), `from` = the index to start at.
async fn auth0_role_members(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let inner = lock(&s);
    let Some(role) = inner.tenant.group(&id) else {
        return json_response(StatusCode::NOT_FOUND, json!({"statusCode": 404}));
    };
    let take = page_size(&inner, number(&q, "take").unwrap_or(50).min(100));
    let from = match q.get("from") {
        None => 0,
        Some(f) => match f.strip_prefix("cp-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return json_response(StatusCode::BAD_REQUEST, json!({"statusCode": 400})),
        },
    };
    let members: Vec<Value> = role
        .members
        .iter()
        .skip(from)
        .take(take)
        .filter_map(|m| inner.user_by_id(m))
        .map(|u| json!({"user_id": u.id, "email": u.login, "name": u.display_name()}))
        .collect();
    let end = from + take;
    let mut body = json!({"users": members});
    if end < role.members.len() {
        body["next"] = Value::String(format!("cp-{end}"));
    }
    json_response(StatusCode::OK, body)
}

async fn auth0_export_start(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let asked: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if asked["format"] != "json" || !asked["fields"].is_array() {
        return json_response(StatusCode::BAD_REQUEST, json!({"statusCode": 400}));
    }
    let mut inner = lock(&s);
    let id = format!("job_{}", inner.export_polls.len() + 1);
    inner.export_polls.insert(id.clone(), 0);
    json_response(
        StatusCode::CREATED,
        json!({"id": id, "type": "users_export", "status": "pending", "format": "json"}),
    )
}

/// Pending on the first poll, completed after.
async fn auth0_export_job(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let mut inner = lock(&s);
    let Some(polls) = inner.export_polls.get_mut(&id) else {
        return json_response(StatusCode::NOT_FOUND, json!({"statusCode": 404}));
    };
    *polls += 1;
    if *polls < 2 {
        return json_response(StatusCode::OK, json!({"id": id, "status": "processing"}));
    }
    json_response(
        StatusCode::OK,
        json!({"id": id, "status": "completed",
               "location": format!("{}/exports/{id}.json.gz", s.base)}),
    )
}

/// The export file: gzipped JSON lines. Refuses a bearer token (a real
/// pre-signed URL would not want one, and it must not travel there).
async fn auth0_export_file(
    State(s): State<Arc<Shared>>,
    Path(file): Path<String>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET || headers.contains_key("authorization") {
        return json_response(
            StatusCode::BAD_REQUEST,
            json!({"error": "unexpected credentials"}),
        );
    }
    let Some(id) = file.strip_suffix(".json.gz") else {
        return json_response(StatusCode::NOT_FOUND, json!({}));
    };
    let inner = lock(&s);
    if !inner.export_polls.contains_key(id) {
        return json_response(StatusCode::NOT_FOUND, json!({}));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for u in &inner.tenant.users {
        let line = json!({
            "user_id": u.id, "email": u.login, "name": u.display_name(),
            "given_name": u.first_name, "family_name": u.last_name, "blocked": u.blocked()
        });
        if writeln!(gz, "{line}").is_err() {
            return json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({}));
        }
    }
    match gz.finish() {
        Ok(bytes) => (
            StatusCode::OK,
            [("content-type", "application/gzip")],
            bytes,
        )
            .into_response(),
        Err(_) => json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({})),
    }
}
