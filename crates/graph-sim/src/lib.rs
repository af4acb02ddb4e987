//! A Microsoft Graph stand-in for Entra ID (the relay's tests and its
//! `demo`): one small tenant (users, groups, direct memberships) served
//! over real HTTP on loopback in Graph v1.0's shapes — the identity
//! platform's client-credentials token (`POST /{tenant}/oauth2/v2.0/token`),
//! `GET /v1.0/users/{id or UPN}`, `/v1.0/users`, `/v1.0/groups/{id}`,
//! `/v1.0/groups`, `/v1.0/groups/{id}/members/microsoft.graph.user`,
//! `/v1.0/users/{id}/memberOf/microsoft.graph.group`, with `$top` paging
//! through `@odata.nextLink`; `/v1.0/users/delta` and `/v1.0/groups/delta`
//! (`@odata.nextLink` / `@odata.deltaLink`, `@removed`, `$deltatoken=latest`,
//! refused tokens); `/v1.0/subscriptions` (created only after the
//! validation handshake to the notification URL, renewed, listed);
//! `/v1.0/auditLogs/directoryAudits` — a bearer check, and Graph's
//! throttling answer (429 or 503 with `Retry-After`). A test changes the
//! tenant between notifications, arms a throttle, and reads the log of
//! every request.

mod assertion;

pub use assertion::TEST_CLIENT_CERTIFICATE;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "graph-standin-app";
pub const CLIENT_SECRET: &str = "graph-standin-SECRET";
/// What the relay must send in `clientState` (`ENTRA_CLIENT_STATE`).
pub const CLIENT_STATE: &str = "entra-client-state-0123456789";
const TOKEN: &str = "graph-standin-access-token";

/// An Entra user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphUser {
    pub id: String,
    pub upn: String,
    pub given: String,
    pub surname: String,
    pub enabled: bool,
}

impl GraphUser {
    /// An enabled user named after its UPN (`ada.lovelace@…` → Ada
    /// Lovelace), as the Okta/Auth0 stand-in names its users.
    pub fn new(id: &str, upn: &str) -> Self {
        let local = upn.split('@').next().unwrap_or(upn);
        let (given, surname) = local.split_once('.').unwrap_or((local, "Tester"));
        let capitalize = |s: &str| -> String {
            let mut chars = s.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        };
        Self {
            id: id.to_owned(),
            upn: upn.to_owned(),
            given: capitalize(given),
            surname: capitalize(surname),
            enabled: true,
        }
    }

    fn json(&self) -> Value {
        json!({
            "@odata.type": "#microsoft.graph.user",
            "id": self.id, "userPrincipalName": self.upn,
            "displayName": format!("{} {}", self.given, self.surname),
            "givenName": self.given, "surname": self.surname,
            "mail": self.upn, "accountEnabled": self.enabled
        })
    }
}

/// An Entra group and its direct members' ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphGroup {
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

impl GraphGroup {
    pub fn new(id: &str, name: &str, members: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    fn json(&self) -> Value {
        json!({"@odata.type": "#microsoft.graph.group", "id": self.id, "displayName": self.name})
    }
}

/// One request the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphRequest {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Default)]
struct Inner {
    /// In listing order (a replaced object moves to the end).
    users: Vec<GraphUser>,
    groups: Vec<GraphGroup>,
    /// id → position in `users` / `groups` (the first one, as a scan
    /// finds it), rebuilt on every change so that reads at 20,000 users
    /// and 5,000 groups cost a lookup, not a scan of the tenant.
    user_at: HashMap<String, usize>,
    group_at: HashMap<String, usize>,
    /// Path prefix → (status, Retry-After seconds) answered once.
    throttles: Vec<(String, u16, u64)>,
    log: Vec<GraphRequest>,
    /// Largest page served.
    page: usize,
    subscriptions: Vec<Value>,
    next_subscription: usize,
    /// Each subscription's clientState (Graph lists it as null).
    client_states: HashMap<String, String>,
    /// Directory audit records (`activityDateTime` in RFC 3339 with
    /// milliseconds, as the relay's filter writes it).
    audits: Vec<Value>,
    /// The change log delta queries read: (version, "users"|"groups", id).
    changes: Vec<(u64, &'static str, String)>,
    version: u64,
    /// State tokens carry the epoch they were issued in; those of an
    /// earlier epoch are refused with this status (410, or 400
    /// `syncStateNotFound`).
    epoch: u64,
    refused_status: u16,
}

impl Inner {
    fn reindex_users(&mut self) {
        self.user_at.clear();
        for (i, u) in self.users.iter().enumerate() {
            self.user_at.entry(u.id.clone()).or_insert(i);
        }
    }

    fn reindex_groups(&mut self) {
        self.group_at.clear();
        for (i, g) in self.groups.iter().enumerate() {
            self.group_at.entry(g.id.clone()).or_insert(i);
        }
    }

    fn user(&self, id: &str) -> Option<&GraphUser> {
        self.user_at.get(id).and_then(|&i| self.users.get(i))
    }

    fn group(&self, id: &str) -> Option<&GraphGroup> {
        self.group_at.get(id).and_then(|&i| self.groups.get(i))
    }

    fn changed(&mut self, kind: &'static str, id: &str) {
        self.version += 1;
        let version = self.version;
        self.changes.push((version, kind, id.to_owned()));
    }
}

/// A mutex's guard, whether or not a panicking test poisoned it (the
/// stand-in's state stays readable for the assertions after).
fn unpoisoned<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves `app` on `listener` in a task until the returned sender is
/// dropped or fired (the relay's other test stand-ins use it too).
pub fn serve_until_dropped(
    listener: tokio::net::TcpListener,
    app: Router,
) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

/// The stand-in's state and its own base URL (for `@odata.nextLink`).
struct Shared {
    base: String,
    inner: Mutex<Inner>,
    /// The `jti` of every client assertion accepted (a replay is refused).
    jtis: Mutex<HashSet<String>>,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    unpoisoned(&shared.inner)
}

/// A running stand-in; dropping it stops the server.
pub struct GraphStandIn {
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for GraphStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphStandIn")
            .field("base", &self.shared.base)
            .finish_non_exhaustive()
    }
}

impl GraphStandIn {
    /// # Panics
    /// If no loopback port can be bound (tests only).
    pub async fn start(users: Vec<GraphUser>, groups: Vec<GraphGroup>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the Graph stand-in");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        let mut inner = Inner {
            users,
            groups,
            page: 999,
            ..Inner::default()
        };
        inner.reindex_users();
        inner.reindex_groups();
        let shared = Arc::new(Shared {
            base: format!("http://{addr}"),
            inner: Mutex::new(inner),
            jtis: Mutex::default(),
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users", get(list_users))
            .route("/v1.0/users/delta", get(users_delta))
            .route("/v1.0/groups/delta", get(groups_delta))
            .route("/v1.0/users/{id}", get(user))
            .route(
                "/v1.0/users/{id}/memberOf/microsoft.graph.group",
                get(member_of),
            )
            .route("/v1.0/groups", get(list_groups))
            .route("/v1.0/groups/{id}", get(group))
            .route(
                "/v1.0/groups/{id}/members/microsoft.graph.user",
                get(members),
            )
            .route("/v1.0/auditLogs/directoryAudits", get(directory_audits))
            .route(
                "/v1.0/subscriptions",
                get(list_subscriptions).post(create_subscription),
            )
            .route(
                "/v1.0/subscriptions/{id}",
                axum::routing::patch(renew_subscription).delete(delete_subscription),
            )
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        Self {
            shared,
            _stop: serve_until_dropped(listener, app),
        }
    }

    /// `ENTRA_*` variables pointing a relay here (Graph and the token
    /// endpoint on this server) and the client state to expect.
    pub fn env(&self) -> Vec<(String, String)> {
        let base = self.shared.base.clone();
        vec![
            ("ENTRA_TENANT_ID".into(), TENANT.into()),
            ("ENTRA_CLIENT_ID".into(), CLIENT_ID.into()),
            ("ENTRA_CLIENT_SECRET".into(), CLIENT_SECRET.into()),
            ("ENTRA_CLIENT_STATE".into(), CLIENT_STATE.into()),
            ("ENTRA_GRAPH_URL".into(), base.clone()),
            ("ENTRA_LOGIN_URL".into(), base),
        ]
    }

    /// [`Self::env`] with the app's certificate
    /// ([`TEST_CLIENT_CERTIFICATE`] as `ENTRA_CLIENT_CERTIFICATE`) instead
    /// of its client secret.
    pub fn env_with_certificate(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        env.retain(|(k, _)| k != "ENTRA_CLIENT_SECRET");
        env.push((
            "ENTRA_CLIENT_CERTIFICATE".into(),
            TEST_CLIENT_CERTIFICATE.into(),
        ));
        env
    }

    /// Adds or replaces a user (by id).
    pub fn put_user(&self, user: GraphUser) {
        let mut inner = lock(&self.shared);
        inner.changed("users", &user.id);
        inner.users.retain(|u| u.id != user.id);
        inner.users.push(user);
        inner.reindex_users();
    }

    /// Deletes a user (and its memberships), as a delete in Entra does.
    pub fn delete_user(&self, id: &str) {
        let mut inner = lock(&self.shared);
        inner.changed("users", id);
        inner.users.retain(|u| u.id != id);
        inner.reindex_users();
        let groups: Vec<String> = inner
            .groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == id))
            .map(|g| g.id.clone())
            .collect();
        for g in &groups {
            inner.changed("groups", g);
        }
        for g in &mut inner.groups {
            g.members.retain(|m| m != id);
        }
    }

    /// Adds or replaces a group (by id).
    pub fn put_group(&self, group: GraphGroup) {
        let mut inner = lock(&self.shared);
        inner.changed("groups", &group.id);
        inner.groups.retain(|g| g.id != group.id);
        inner.groups.push(group);
        inner.reindex_groups();
    }

    pub fn delete_group(&self, id: &str) {
        let mut inner = lock(&self.shared);
        inner.changed("groups", id);
        inner.groups.retain(|g| g.id != id);
        inner.reindex_groups();
    }

    /// From now on, every state token handed out so far is refused with
    /// `status` (410 Gone, or 400 with `syncStateNotFound`), as Graph does
    /// with an expired deltaLink.
    pub fn refuse_delta_tokens(&self, status: u16) {
        let mut inner = lock(&self.shared);
        inner.epoch += 1;
        inner.refused_status = status;
    }

    /// A lifecycle notification collection (`lifecycleEvent` =
    /// `reauthorizationRequired`, `subscriptionRemoved` or `missed`) about
    /// `subscription_id`, with `state` as clientState.
    pub fn lifecycle_notification(event: &str, subscription_id: &str, state: &str) -> String {
        json!({"value": [{
            "subscriptionId": subscription_id,
            "subscriptionExpirationDateTime": "2026-12-31T00:00:00Z",
            "lifecycleEvent": event,
            "resource": "users",
            "clientState": state,
            "tenantId": "tenant-1",
            "organizationId": "tenant-1"
        }]})
        .to_string()
    }

    /// The next request whose path starts with `prefix` answers `status`
    /// (429 or 503) with `Retry-After: retry_after_s`.
    pub fn throttle_once(&self, prefix: &str, status: u16, retry_after_s: u64) {
        lock(&self.shared)
            .throttles
            .push((prefix.to_owned(), status, retry_after_s));
    }

    /// Pages hold at most `n` objects (to exercise `@odata.nextLink`).
    pub fn page_size(&self, n: usize) {
        lock(&self.shared).page = n.max(1);
    }

    /// Adds an Authentication Methods audit record: `activity` on the user
    /// `user_id` at `at` (RFC 3339 with milliseconds).
    pub fn add_audit(&self, id: &str, activity: &str, user_id: &str, upn: &str, at: &str) {
        lock(&self.shared).audits.push(json!({
            "id": id, "category": "UserManagement", "loggedByService": "Authentication Methods",
            "activityDisplayName": activity, "activityDateTime": at, "result": "success",
            "initiatedBy": {"user": {"userPrincipalName": "admin@contoso.com"}},
            "targetResources": [{"id": user_id, "type": "User", "userPrincipalName": upn}]
        }));
    }

    /// The clientState each current subscription was created with (Graph
    /// lists none), in creation order.
    pub fn subscription_client_states(&self) -> Vec<String> {
        let inner = lock(&self.shared);
        inner
            .subscriptions
            .iter()
            .filter_map(|s| s["id"].as_str())
            .filter_map(|id| inner.client_states.get(id).cloned())
            .collect()
    }

    /// The subscriptions created so far, as Graph lists them.
    pub fn subscriptions(&self) -> Vec<Value> {
        lock(&self.shared).subscriptions.clone()
    }

    /// Removes one subscription (Graph's `subscriptionRemoved`).
    pub fn remove_subscription(&self, id: &str) {
        lock(&self.shared).subscriptions.retain(|s| s["id"] != id);
    }

    /// Removes every subscription (as Graph does when one expires or is
    /// removed).
    pub fn drop_subscriptions(&self) {
        lock(&self.shared).subscriptions.clear();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GraphRequest> {
        lock(&self.shared).log.clone()
    }

    pub fn reset_requests(&self) {
        lock(&self.shared).log.clear();
    }

    /// A notification collection (`{"value":[…]}`) naming `items`
    /// (`(changeType, "Users"|"Groups", id)`) with the right client state.
    pub fn notifications(items: &[(&str, &str, &str)]) -> String {
        Self::notifications_with_state(items, CLIENT_STATE)
    }

    pub fn notifications_with_state(items: &[(&str, &str, &str)], state: &str) -> String {
        let value: Vec<Value> = items
            .iter()
            .map(|(change, kind, id)| {
                let odata = if *kind == "Groups" {
                    "#Microsoft.Graph.Group"
                } else {
                    "#Microsoft.Graph.User"
                };
                json!({
                    "subscriptionId": "7f105c7d-2dc5-4530-97cd-4e7ae6534c07",
                    "subscriptionExpirationDateTime": "2026-12-31T00:00:00Z",
                    "changeType": change,
                    "resource": format!("{kind}/{id}"),
                    "resourceData": {"@odata.type": odata, "@odata.id": format!("{kind}/{id}"), "id": id, "organizationId": "tenant-1"},
                    "clientState": state,
                    "tenantId": "tenant-1"
                })
            })
            .collect();
        json!({ "value": value }).to_string()
    }
}

/// Logs every request, answers an armed throttle, checks the bearer token
/// on Graph paths.
async fn gate(
    State(shared): State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    let throttled = {
        let mut inner = lock(&shared);
        let hit = inner
            .throttles
            .iter()
            .position(|(prefix, _, _)| path.starts_with(prefix.as_str()));
        hit.map(|i| inner.throttles.remove(i))
    };
    let response = if let Some((_, status, after)) = throttled {
        (
            StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
            [("retry-after", after.to_string())],
            r#"{"error":{"code":"TooManyRequests","message":"throttled"}}"#,
        )
            .into_response()
    } else if path.starts_with("/v1.0/")
        && request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            != Some(&format!("Bearer {TOKEN}"))
    {
        StatusCode::UNAUTHORIZED.into_response()
    } else {
        next.run(request).await
    };
    lock(&shared).log.push(GraphRequest {
        method,
        path,
        status: response.status().as_u16(),
    });
    response
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: String,
) -> Response {
    let form: Vec<(String, String)> = url_pairs(&body);
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    // A client secret, or a certificate's assertion (never both).
    let credential = match (field("client_secret"), field("client_assertion")) {
        (Some(secret), None) => secret == CLIENT_SECRET,
        (None, Some(jwt)) => {
            let audience = format!("{}/{tenant}/oauth2/v2.0/token", shared.base);
            let now_s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            field("client_assertion_type")
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                && assertion::refusal(jwt, CLIENT_ID, &audience, now_s, &shared.jtis).is_none()
        }
        _ => false,
    };
    let ok = tenant == TENANT
        && field("grant_type") == Some("client_credentials")
        && field("client_id") == Some(CLIENT_ID)
        && credential
        && field("scope") == Some("https://graph.microsoft.com/.default");
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "access_token": TOKEN}))
        .into_response()
}

fn url_pairs(body: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// One page of a listing of `len` objects from `$skiptoken` (an offset
/// here; opaque to the client), `$top` capped at `max` (the stand-in's page
/// size); `render` turns the page's positions into objects (only the page
/// is serialized, not the listing).
fn page(
    base: &str,
    uri: &Uri,
    q: &Query<Vec<(String, String)>>,
    max: usize,
    len: usize,
    render: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
) -> Response {
    let get = |k: &str| q.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let top = get("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(100)
        .min(max);
    let from = get("$skiptoken")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    let until = from.saturating_add(top).min(len);
    let value = if from < until {
        render(from..until)
    } else {
        Vec::new()
    };
    let mut body = json!({ "value": value });
    if until < len {
        let mut others: Vec<String> =
            q.0.iter()
                .filter(|(n, _)| n != "$skiptoken")
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
        others.push(format!("$skiptoken={until}"));
        body["@odata.nextLink"] = json!(format!("{base}{}?{}", uri.path(), others.join("&")));
    }
    axum::Json(body).into_response()
}

async fn list_users(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
) -> Response {
    let inner = lock(&shared);
    page(&shared.base, &uri, &q, inner.page, inner.users.len(), |r| {
        inner.users[r].iter().map(GraphUser::json).collect()
    })
}

async fn user(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let inner = lock(&shared);
    // By id (indexed), else by UPN (a scan, as before).
    let found = inner
        .user(&id)
        .or_else(|| inner.users.iter().find(|u| u.upn.eq_ignore_ascii_case(&id)));
    match found {
        Some(u) => axum::Json(u.json()).into_response(),
        None => not_found(),
    }
}

async fn member_of(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
) -> Response {
    let inner = lock(&shared);
    if inner.user(&id).is_none() {
        return not_found();
    }
    let groups: Vec<&GraphGroup> = inner
        .groups
        .iter()
        .filter(|g| g.members.contains(&id))
        .collect();
    page(&shared.base, &uri, &q, inner.page, groups.len(), |r| {
        groups[r].iter().map(|g| g.json()).collect()
    })
}

async fn list_groups(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
) -> Response {
    let inner = lock(&shared);
    page(
        &shared.base,
        &uri,
        &q,
        inner.page,
        inner.groups.len(),
        |r| inner.groups[r].iter().map(GraphGroup::json).collect(),
    )
}

async fn group(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match lock(&shared).group(&id) {
        Some(g) => axum::Json(g.json()).into_response(),
        None => not_found(),
    }
}

async fn members(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
    _headers: HeaderMap,
) -> Response {
    let inner = lock(&shared);
    let Some(g) = inner.group(&id) else {
        return not_found();
    };
    // The group's members in its order, those still users.
    let users: Vec<&GraphUser> = g.members.iter().filter_map(|m| inner.user(m)).collect();
    page(&shared.base, &uri, &q, inner.page, users.len(), |r| {
        users[r].iter().map(|u| u.json()).collect()
    })
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": {"code": "Request_ResourceNotFound", "message": "not found"}})),
    )
        .into_response()
}

async fn list_subscriptions(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({ "value": lock(&shared).subscriptions.clone() })).into_response()
}

/// Creates a subscription the way Graph does: first the validation request
/// to `notificationUrl` (`POST ?validationToken=…`, text/plain), which must
/// echo the token within 10 seconds, else 400.
async fn create_subscription(
    State(shared): State<Arc<Shared>>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(url), Some(resource), Some(state), Some(expires)) = (
        field("notificationUrl"),
        field("resource"),
        field("clientState"),
        field("expirationDateTime"),
    ) else {
        return bad_request("missing a required property");
    };
    let token = format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        lock(&shared).next_subscription
    );
    let Ok(target) = reqwest::Url::parse_with_params(&url, [("validationToken", token.as_str())])
    else {
        return bad_request("notificationUrl is not a URL");
    };
    let validation = reqwest::Client::new()
        .post(target)
        .header("content-type", "text/plain; charset=utf-8")
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    let echoed = match validation {
        Ok(r) if r.status() == 200 => r.text().await.ok() == Some(token),
        _ => false,
    };
    if !echoed {
        return bad_request("Subscription validation request failed");
    }
    let mut inner = lock(&shared);
    inner.next_subscription += 1;
    let sub = json!({
        "id": format!("7f105c7d-0000-4000-8000-{:012}", inner.next_subscription),
        "resource": resource, "changeType": body["changeType"], "notificationUrl": url,
        "lifecycleNotificationUrl": body["lifecycleNotificationUrl"],
        "expirationDateTime": expires, "clientState": null
    });
    inner.subscriptions.push(sub.clone());
    let id = sub["id"].as_str().unwrap_or_default().to_owned();
    inner.client_states.insert(id, state);
    (StatusCode::CREATED, axum::Json(sub)).into_response()
}

async fn delete_subscription(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    let mut inner = lock(&shared);
    let before = inner.subscriptions.len();
    inner.subscriptions.retain(|s| s["id"] != id.as_str());
    if inner.subscriptions.len() == before {
        return not_found();
    }
    inner.client_states.remove(&id);
    StatusCode::NO_CONTENT.into_response()
}

async fn renew_subscription(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut inner = lock(&shared);
    match inner
        .subscriptions
        .iter_mut()
        .find(|s| s["id"] == id.as_str())
    {
        Some(sub) => {
            sub["expirationDateTime"] = body["expirationDateTime"].clone();
            axum::Json(sub.clone()).into_response()
        }
        None => not_found(),
    }
}

fn bad_request(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": {"code": "InvalidRequest", "message": message}})),
    )
        .into_response()
}

/// `$filter=loggedByService eq 'Authentication Methods' and
/// activityDateTime ge <time>` (the only filter the relay sends; anything
/// else is a 400), paged like the other listings.
async fn directory_audits(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
) -> Response {
    let filter =
        q.0.iter()
            .find(|(n, _)| n == "$filter")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
    let Some(since) = filter
        .strip_prefix("loggedByService eq 'Authentication Methods' and activityDateTime ge ")
        .map(str::to_owned)
    else {
        return bad_request("unsupported filter");
    };
    let inner = lock(&shared);
    let items: Vec<&Value> = inner
        .audits
        .iter()
        .filter(|a| {
            a["activityDateTime"]
                .as_str()
                .is_some_and(|t| t >= since.as_str())
        })
        .collect();
    page(&shared.base, &uri, &q, inner.page, items.len(), |r| {
        items[r].iter().map(|a| (*a).clone()).collect()
    })
}

async fn users_delta(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
) -> Response {
    delta(&shared, &uri, &q, "users")
}

async fn groups_delta(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    q: Query<Vec<(String, String)>>,
) -> Response {
    delta(&shared, &uri, &q, "groups")
}

/// A delta query in Graph's shapes: no token = every object; `$deltatoken=
/// latest` = no object and a deltaLink of now; `$deltatoken=vN` = the
/// objects changed since version N (current state, or `@removed` when gone);
/// pages through `$skiptoken=<since>:<upto>:<offset>` (`@odata.nextLink`),
/// the last page carries `@odata.deltaLink` (`$deltatoken=v<upto>`). Every
/// token starts with its epoch (`e<epoch>.`): one of an earlier epoch is
/// refused ([`GraphStandIn::refuse_delta_tokens`]).
fn delta(
    shared: &Shared,
    uri: &Uri,
    q: &Query<Vec<(String, String)>>,
    kind: &'static str,
) -> Response {
    let get = |k: &str| q.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let inner = lock(shared);
    let link = |query: String| format!("{}{}?{query}", shared.base, uri.path());
    let epoch = format!("e{}.", inner.epoch);
    // `Err(true)`: a token of an earlier epoch; `Err(false)`: not a token.
    let token = |k: &str| -> Result<Option<String>, bool> {
        match get(k) {
            None => Ok(None),
            Some(t) if k == "$deltatoken" && t == "latest" => Ok(Some(t)),
            Some(t) => match t.strip_prefix(epoch.as_str()) {
                Some(rest) => Ok(Some(rest.to_owned())),
                None => Err(t.starts_with('e')),
            },
        }
    };
    let (delta_token, skip_token) = match (token("$deltatoken"), token("$skiptoken")) {
        (Ok(d), Ok(s)) => (d, s),
        (Err(true), _) | (_, Err(true)) => return refused(inner.refused_status),
        _ => return bad_request("bad state token"),
    };
    let (since, upto, offset) = match (delta_token, skip_token) {
        (Some(t), _) if t == "latest" => {
            let body = json!({"value": [], "@odata.deltaLink": link(format!("$deltatoken={epoch}v{}", inner.version))});
            return axum::Json(body).into_response();
        }
        (Some(t), _) => match t.strip_prefix('v').and_then(|v| v.parse::<u64>().ok()) {
            Some(v) => (Some(v), inner.version, 0),
            None => return bad_request("bad delta token"),
        },
        (None, Some(skip)) => {
            let parts: Vec<&str> = skip.split(':').collect();
            let num = |s: &str| s.parse::<u64>().ok();
            match parts.as_slice() {
                [since, upto, offset] => match (num(upto), num(offset)) {
                    (Some(upto), Some(offset)) => (num(since), upto, offset),
                    _ => return bad_request("bad skip token"),
                },
                _ => return bad_request("bad skip token"),
            }
        }
        (None, None) => (None, inner.version, 0),
    };
    let current = |id: &str| -> Value {
        let found = if kind == "users" {
            inner.user(id).map(GraphUser::json)
        } else {
            inner.group(id).map(|g| {
                let mut j = g.json();
                j["members@delta"] = json!(
                    g.members
                        .iter()
                        .map(|m| json!({"@odata.type": "#microsoft.graph.user", "id": m}))
                        .collect::<Vec<_>>()
                );
                j
            })
        };
        found.unwrap_or_else(|| json!({"id": id, "@removed": {"reason": "changed"}}))
    };
    let ids: Vec<&str> = match since {
        None => {
            if kind == "users" {
                inner.users.iter().map(|u| u.id.as_str()).collect()
            } else {
                inner.groups.iter().map(|g| g.id.as_str()).collect()
            }
        }
        Some(since) => {
            // Each changed id once, in the order of its first change.
            let mut seen: HashSet<&str> = HashSet::new();
            inner
                .changes
                .iter()
                .filter(|(v, k, id)| *k == kind && *v > since && *v <= upto && seen.insert(id))
                .map(|(_, _, id)| id.as_str())
                .collect()
        }
    };
    let page = inner.page;
    let from = usize::try_from(offset).unwrap_or(usize::MAX).min(ids.len());
    let until = (from + page).min(ids.len());
    let items: Vec<Value> = ids[from..until].iter().map(|id| current(id)).collect();
    let mut body = json!({ "value": items });
    if until < ids.len() {
        let since = since.map(|s| s.to_string()).unwrap_or_default();
        body["@odata.nextLink"] = json!(link(format!("$skiptoken={epoch}{since}:{upto}:{until}")));
    } else {
        body["@odata.deltaLink"] = json!(link(format!("$deltatoken={epoch}v{upto}")));
    }
    axum::Json(body).into_response()
}

/// Graph's answers to a state token it no longer honours.
fn refused(status: u16) -> Response {
    if status == 410 {
        (
            StatusCode::GONE,
            axum::Json(json!({"error": {"code": "resyncRequired", "message": "resync"}})),
        )
            .into_response()
    } else {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"code": "syncStateNotFound", "message": "The sync state generation is not found. The delta token is expired and data must be synchronized again."}})),
        )
            .into_response()
    }
}
