//! The Okta and Auth0 API clients against a small IdP stand-in: axum on
//! 127.0.0.1:0 answering in Okta's and Auth0's shapes, refusing wrong
//! credentials, and counting what it was asked.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relay_core::event::UserState;
use relay_core::idp::{CallPolicy, IdpError, IdpLookup};
use relay_core::source::{Auth0Api, OktaApi};
use serde_json::{Value, json};

const OKTA_TOKEN: &str = "00okta-token-VERY-SECRET";
const CLIENT_ID: &str = "m2m-client-id";
/// Characters a form encoder must not pass through raw.
const CLIENT_SECRET: &str = "cl1ent+SECRET&x=/é %";

type Q = Query<HashMap<String, String>>;

/// The stand-in's state: what it was asked, and switches a test flips.
struct StandIn {
    base: String,
    hits: Mutex<HashMap<String, usize>>,
    /// Raw (still percent-encoded) paths of Auth0 user requests.
    raw_paths: Mutex<Vec<String>>,
    /// Arrival times of requests for the rate-limited Okta user.
    busy_arrivals: Mutex<Vec<SystemTime>>,
    busy_reset: AtomicU64,
    token_expires_in: AtomicU64,
    tokens_issued: AtomicUsize,
    revoked: Mutex<HashSet<String>>,
    reject_all_tokens: AtomicBool,
    link_elsewhere: AtomicBool,
}

impl StandIn {
    fn hit(&self, key: &str) -> usize {
        let mut hits = self.hits.lock().unwrap();
        let n = hits.entry(key.to_owned()).or_default();
        *n += 1;
        *n
    }

    fn hits(&self, key: &str) -> usize {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

async fn start() -> Arc<StandIn> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let state = Arc::new(StandIn {
        base: format!("http://{}", listener.local_addr().unwrap()),
        hits: Mutex::default(),
        raw_paths: Mutex::default(),
        busy_arrivals: Mutex::default(),
        busy_reset: AtomicU64::new(0),
        token_expires_in: AtomicU64::new(86_400),
        tokens_issued: AtomicUsize::new(0),
        revoked: Mutex::default(),
        reject_all_tokens: AtomicBool::new(false),
        link_elsewhere: AtomicBool::new(false),
    });
    let app = Router::new()
        .route("/api/v1/users", get(okta_list_users))
        .route("/api/v1/users/{id}", get(okta_user))
        .route("/api/v1/users/{id}/groups", get(okta_user_groups))
        .route("/api/v1/groups", get(okta_list_groups))
        .route("/api/v1/groups/{id}", get(okta_group))
        .route("/oauth/token", post(auth0_token))
        .route("/api/v2/users/{id}", get(auth0_user))
        .route("/api/v2/users/{id}/roles", get(auth0_user_roles))
        .route("/api/v2/roles/{id}", get(auth0_role))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    state
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

// ---- Okta stand-in ----

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

fn okta_user_json(id: &str, status: &str, first: &str, display: Option<&str>) -> Value {
    json!({
        "id": id, "status": status, "created": "2026-01-01T00:00:00.000Z",
        "profile": {
            "login": format!("{}@example.com", first.to_lowercase()),
            "email": format!("{}@example.com", first.to_lowercase()),
            "firstName": first, "lastName": "Tester", "displayName": display,
            "mobilePhone": null
        },
        "_links": {}
    })
}

fn okta_group_json(id: &str, name: &str) -> Value {
    json!({"id": id, "type": "OKTA_GROUP", "objectClass": ["okta:user_group"],
           "profile": {"name": name, "description": null}})
}

fn rate_limited(reset: u64) -> Response {
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"errorCode": "E0000047", "errorSummary": "API call exceeded rate limit"}),
    );
    let headers = response.headers_mut();
    headers.insert("x-rate-limit-limit", HeaderValue::from_static("600"));
    headers.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
    headers.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
    response
}

fn with_links(mut response: Response, self_url: &str, next: Option<&str>) -> Response {
    let headers = response.headers_mut();
    headers.append(
        "link",
        format!("<{self_url}>; rel=\"self\"").parse().unwrap(),
    );
    if let Some(next) = next {
        headers.append("link", format!("<{next}>; rel=\"next\"").parse().unwrap());
    }
    response
}

async fn okta_user(
    State(s): State<Arc<StandIn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    let n = s.hit(&format!("okta.user.{id}"));
    match id.as_str() {
        "00u1" => json_response(
            StatusCode::OK,
            okta_user_json("00u1", "ACTIVE", "Ada", Some("Countess Ada")),
        ),
        "00u2" => json_response(
            StatusCode::OK,
            okta_user_json("00u2", "SUSPENDED", "Grace", None),
        ),
        "00u-busy" => {
            s.busy_arrivals.lock().unwrap().push(SystemTime::now());
            if n == 1 {
                let reset = now_secs() + 1;
                s.busy_reset.store(reset, Ordering::SeqCst);
                rate_limited(reset)
            } else {
                json_response(
                    StatusCode::OK,
                    okta_user_json("00u-busy", "ACTIVE", "Busy", None),
                )
            }
        }
        // The reset second has already begun: the client waits its minimum.
        "00u-always-busy" => rate_limited(now_secs()),
        "00u-far" => rate_limited(now_secs() + 60),
        "00u-forbidden" => json_response(StatusCode::FORBIDDEN, json!({"errorCode": "E0000006"})),
        "00u-broken" => json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({})),
        "00u-slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            json_response(
                StatusCode::OK,
                okta_user_json("00u-slow", "ACTIVE", "Slow", None),
            )
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"errorCode": "E0000007", "errorSummary": "Not found: Resource not found"}),
        ),
    }
}

async fn okta_group(
    State(s): State<Arc<StandIn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    s.hit("okta.group");
    match id.as_str() {
        "00g1" => json_response(StatusCode::OK, okta_group_json("00g1", "Engineering")),
        _ => json_response(StatusCode::NOT_FOUND, json!({"errorCode": "E0000007"})),
    }
}

/// Five users over three pages, cursor `after` as Okta does.
async fn okta_list_users(
    State(s): State<Arc<StandIn>>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    s.hit("okta.users.list");
    if q.get("limit").map(String::as_str) != Some("200") {
        return json_response(StatusCode::BAD_REQUEST, json!({"errorCode": "E0000001"}));
    }
    let page = |ids: &[&str]| -> Value {
        ids.iter()
            .map(|id| okta_user_json(id, "ACTIVE", &format!("User{id}"), None))
            .collect()
    };
    let url = |after: &str| format!("{}/api/v1/users?after={after}&limit=200", s.base);
    let first = format!("{}/api/v1/users?limit=200", s.base);
    match q.get("after").map(String::as_str) {
        None => with_links(
            json_response(StatusCode::OK, page(&["00ua", "00ub"])),
            &first,
            Some(&url("00ub")),
        ),
        Some("00ub") => with_links(
            json_response(StatusCode::OK, page(&["00uc", "00ud"])),
            &url("00ub"),
            Some(&url("00ud")),
        ),
        Some("00ud") => with_links(
            json_response(StatusCode::OK, page(&["00ue"])),
            &url("00ud"),
            None,
        ),
        Some(_) => json_response(StatusCode::BAD_REQUEST, json!({"errorCode": "E0000031"})),
    }
}

async fn okta_list_groups(State(s): State<Arc<StandIn>>, headers: HeaderMap) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    s.hit("okta.groups.list");
    let body = json!([
        okta_group_json("00g1", "Engineering"),
        okta_group_json("00g2", "Everyone")
    ]);
    let this = format!("{}/api/v1/groups?limit=200", s.base);
    let next = s
        .link_elsewhere
        .load(Ordering::SeqCst)
        .then_some("http://attacker.example/api/v1/groups?after=00g2");
    with_links(json_response(StatusCode::OK, body), &this, next)
}

/// Two pages of groups for one user.
async fn okta_user_groups(
    State(s): State<Arc<StandIn>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = okta_refuses(&headers) {
        return refused;
    }
    s.hit("okta.user.groups");
    if id != "00u1" {
        return json_response(StatusCode::NOT_FOUND, json!({"errorCode": "E0000007"}));
    }
    let this = format!("{}/api/v1/users/00u1/groups", s.base);
    match q.get("after") {
        None => with_links(
            json_response(
                StatusCode::OK,
                json!([okta_group_json("00g1", "Engineering")]),
            ),
            &this,
            Some(&format!("{this}?after=00g1")),
        ),
        Some(_) => with_links(
            json_response(StatusCode::OK, json!([okta_group_json("00g2", "Everyone")])),
            &this,
            None,
        ),
    }
}

// ---- Auth0 stand-in ----

/// Client credentials, checked field by field after a real form decoder.
async fn auth0_token(State(s): State<Arc<StandIn>>, headers: HeaderMap, body: String) -> Response {
    s.hit("auth0.token");
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let uri: Uri = format!("/?{body}").parse().unwrap();
    let Ok(Query(form)) = Query::<HashMap<String, String>>::try_from_uri(&uri) else {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
    };
    let audience = format!("https://{}/api/v2/", s.base.trim_start_matches("http://"));
    let field = |name: &str| form.get(name).map(String::as_str);
    if content_type != Some("application/x-www-form-urlencoded")
        || field("grant_type") != Some("client_credentials")
        || field("audience") != Some(audience.as_str())
    {
        return json_response(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        return json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "access_denied", "error_description": "Unauthorized"}),
        );
    }
    // Slow enough that concurrent callers overlap the fetch.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let n = s.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
    json_response(
        StatusCode::OK,
        json!({
            "access_token": format!("tok-{n}"),
            "expires_in": s.token_expires_in.load(Ordering::SeqCst),
            "scope": "read:users read:roles",
            "token_type": "Bearer"
        }),
    )
}

fn auth0_refuses(s: &StandIn, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let issued = token
        .strip_prefix("tok-")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| n >= 1 && n <= s.tokens_issued.load(Ordering::SeqCst));
    let ok = issued
        && !s.reject_all_tokens.load(Ordering::SeqCst)
        && !s.revoked.lock().unwrap().contains(token);
    (!ok).then(|| {
        json_response(
            StatusCode::UNAUTHORIZED,
            json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"}),
        )
    })
}

async fn auth0_user(
    State(s): State<Arc<StandIn>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    s.hit("auth0.user");
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    s.raw_paths.lock().unwrap().push(uri.path().to_owned());
    match id.as_str() {
        "auth0|abc" => json_response(
            StatusCode::OK,
            json!({"user_id": "auth0|abc", "email": "ada@example.com", "name": "Ada Lovelace",
                   "given_name": "Ada", "family_name": "Lovelace"}),
        ),
        "auth0|blocked" => json_response(
            StatusCode::OK,
            json!({"user_id": "auth0|blocked", "email": "mallory@example.com", "blocked": true}),
        ),
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"statusCode": 404, "error": "Not Found", "message": "The user does not exist."}),
        ),
    }
}

/// 120 roles, paged with `page`/`per_page`, wrapped when `include_totals`.
async fn auth0_user_roles(
    State(s): State<Arc<StandIn>>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(50);
    s.hit(&format!("auth0.roles.page{page}.per{per_page}"));
    s.hit("auth0.roles");
    let roles: Vec<Value> = (0..120)
        .skip(page * per_page)
        .take(per_page)
        .map(|i| {
            json!({"id": format!("rol_{i:03}"), "name": format!("Role {i}"), "description": null})
        })
        .collect();
    if q.get("include_totals").map(String::as_str) == Some("true") {
        json_response(
            StatusCode::OK,
            json!({"roles": roles, "start": page * per_page, "limit": per_page, "total": 120}),
        )
    } else {
        json_response(StatusCode::OK, Value::Array(roles))
    }
}

async fn auth0_role(
    State(s): State<Arc<StandIn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = auth0_refuses(&s, &headers) {
        return refused;
    }
    s.hit("auth0.role");
    match id.as_str() {
        "rol_admins" => json_response(
            StatusCode::OK,
            json!({"id": "rol_admins", "name": "Admins", "description": "Duo admins"}),
        ),
        _ => json_response(StatusCode::NOT_FOUND, json!({"statusCode": 404})),
    }
}

// ---- clients ----

use relay_core::config::from_pairs as raw;

fn okta(s: &StandIn, token: &str) -> OktaApi {
    OktaApi::from_config(&raw(&[
        ("OKTA_ORG_URL", &s.base),
        ("OKTA_API_TOKEN", token),
    ]))
    .unwrap()
    .unwrap()
}

fn auth0_with(s: &StandIn, secret: &str) -> Auth0Api {
    Auth0Api::from_config(&raw(&[
        ("AUTH0_DOMAIN", &s.base),
        ("AUTH0_CLIENT_ID", CLIENT_ID),
        ("AUTH0_CLIENT_SECRET", secret),
    ]))
    .unwrap()
    .unwrap()
}

fn auth0(s: &StandIn) -> Auth0Api {
    auth0_with(s, CLIENT_SECRET)
}

// ---- Okta ----

#[tokio::test]
async fn okta_user_is_fetched_with_the_ssws_token_and_mapped() {
    let s = start().await;
    let api = okta(&s, OKTA_TOKEN);

    let ada = api.user("00u1").await.unwrap();
    assert_eq!(ada.idp_id, "00u1");
    assert_eq!(ada.state, UserState::Active);
    assert_eq!(ada.profile.login.as_deref(), Some("ada@example.com"));
    assert_eq!(ada.profile.email.as_deref(), Some("ada@example.com"));
    assert_eq!(ada.profile.display_name.as_deref(), Some("Countess Ada"));
    assert_eq!(ada.profile.first_name.as_deref(), Some("Ada"));
    assert_eq!(ada.profile.last_name.as_deref(), Some("Tester"));

    // No displayName: "first last". SUSPENDED: disabled.
    let grace = api.user("00u2").await.unwrap();
    assert_eq!(grace.profile.display_name.as_deref(), Some("Grace Tester"));
    assert_eq!(grace.state, UserState::Disabled);
    // The stand-in answers 401 to anything but the exact SSWS value.
    assert_eq!(s.hits("okta.user.00u1"), 1);
}

#[tokio::test]
async fn okta_group_name_is_its_profile_name() {
    let s = start().await;
    let group = okta(&s, OKTA_TOKEN).group("00g1").await.unwrap();
    assert_eq!(
        (group.idp_id.as_str(), group.name.as_str()),
        ("00g1", "Engineering")
    );
}

#[tokio::test]
async fn okta_list_users_follows_link_next_across_three_pages() {
    let s = start().await;
    let users = okta(&s, OKTA_TOKEN).list_users().await.unwrap();
    let ids: Vec<_> = users.iter().map(|u| u.idp_id.as_str()).collect();
    assert_eq!(ids, ["00ua", "00ub", "00uc", "00ud", "00ue"]);
    assert_eq!(s.hits("okta.users.list"), 3);
}

#[tokio::test]
async fn okta_list_groups_and_user_groups() {
    let s = start().await;
    let api = okta(&s, OKTA_TOKEN);
    let names = |groups: Vec<relay_core::idp::IdpGroup>| -> Vec<String> {
        groups.into_iter().map(|g| g.name).collect()
    };
    assert_eq!(
        names(api.list_groups().await.unwrap()),
        ["Engineering", "Everyone"]
    );
    assert_eq!(
        names(api.list_user_groups("00u1").await.unwrap()),
        ["Engineering", "Everyone"]
    );
    assert_eq!(s.hits("okta.user.groups"), 2);
}

#[tokio::test]
async fn okta_next_link_to_another_host_is_not_followed() {
    let s = start().await;
    s.link_elsewhere.store(true, Ordering::SeqCst);
    let err = okta(&s, OKTA_TOKEN).list_groups().await.unwrap_err();
    assert!(
        matches!(err, IdpError::Decode(ref m) if m.contains("OKTA_ORG_URL")),
        "{err}"
    );
}

#[tokio::test]
async fn okta_statuses_map_to_errors() {
    let s = start().await;
    let api = okta(&s, OKTA_TOKEN);
    assert_eq!(api.user("00u-gone").await.unwrap_err(), IdpError::NotFound);
    assert_eq!(api.group("00g-gone").await.unwrap_err(), IdpError::NotFound);
    // An empty id would otherwise ask for the user listing.
    assert_eq!(api.user("").await.unwrap_err(), IdpError::NotFound);
    let broken = api.user("00u-broken").await.unwrap_err();
    assert_eq!(broken, IdpError::Http { status: 500 });
    assert!(broken.is_transient());
    let forbidden = api.user("00u-forbidden").await.unwrap_err();
    assert!(matches!(
        forbidden,
        IdpError::Unauthorized {
            status: 403,
            variable: "OKTA_API_TOKEN",
            ..
        }
    ));
    assert!(!forbidden.is_transient());
}

#[tokio::test]
async fn okta_429_waits_for_the_announced_reset_then_succeeds() {
    let s = start().await;
    let started = Instant::now();
    let user = okta(&s, OKTA_TOKEN).user("00u-busy").await.unwrap();
    assert_eq!(user.idp_id, "00u-busy");
    let arrivals = s.busy_arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2);
    let reset = UNIX_EPOCH + Duration::from_secs(s.busy_reset.load(Ordering::SeqCst));
    assert!(arrivals[1] >= reset, "retried before X-Rate-Limit-Reset");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn okta_429_gives_up_after_three_retries_or_a_far_reset() {
    let s = start().await;
    let api = okta(&s, OKTA_TOKEN);
    let err = api.user("00u-always-busy").await.unwrap_err();
    assert!(matches!(err, IdpError::RateLimited { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(s.hits("okta.user.00u-always-busy"), 4);

    // A reset a minute away is not waited for: one request, fails at once.
    let started = Instant::now();
    let err = api.user("00u-far").await.unwrap_err();
    let IdpError::RateLimited {
        reset_after: Some(reset_after),
    } = err
    else {
        panic!("{err:?}");
    };
    assert!(reset_after > Duration::from_secs(50));
    assert_eq!(s.hits("okta.user.00u-far"), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn okta_wrong_token_is_unauthorized_and_the_error_holds_no_token() {
    let s = start().await;
    let wrong = "00wrong-token-ALSO-SECRET";
    let err = okta(&s, wrong).user("00u1").await.unwrap_err();
    assert!(matches!(
        err,
        IdpError::Unauthorized {
            status: 401,
            variable: "OKTA_API_TOKEN",
            ..
        }
    ));
    let (text, debug) = (err.to_string(), format!("{err:?}"));
    assert!(text.contains("OKTA_API_TOKEN"), "{text}");
    for shown in [&text, &debug] {
        assert!(
            !shown.contains(wrong) && !shown.contains("SSWS 00"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn okta_slow_answer_times_out_as_transient() {
    let s = start().await;
    let api = okta(&s, OKTA_TOKEN).with_policy(CallPolicy {
        timeout: Duration::from_millis(300),
        ..CallPolicy::default()
    });
    let err = api.user("00u-slow").await.unwrap_err();
    assert!(matches!(err, IdpError::Transport(_)), "{err}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("127.0.0.1"), "{err}");
}

// ---- Auth0 ----

#[tokio::test]
async fn auth0_token_is_fetched_once_for_several_calls() {
    let s = start().await;
    let api = auth0(&s);
    api.user("auth0|abc").await.unwrap();
    assert_eq!(api.group("rol_admins").await.unwrap().name, "Admins");
    api.list_user_roles("auth0|abc").await.unwrap();
    // A clone shares the cache.
    api.clone().user("auth0|abc").await.unwrap();
    assert_eq!(s.hits("auth0.token"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_concurrent_calls_share_one_token_fetch() {
    let s = start().await;
    let api = auth0(&s);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let api = api.clone();
        calls.spawn(async move { api.user("auth0|abc").await });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(s.hits("auth0.token"), 1);
    assert_eq!(s.hits("auth0.user"), 8);
}

#[tokio::test]
async fn auth0_short_lived_token_is_refetched_when_it_expires() {
    let s = start().await;
    // Four seconds: reused for half its life (a short token keeps no 60 s margin).
    s.token_expires_in.store(4, Ordering::SeqCst);
    let api = auth0(&s);
    api.user("auth0|abc").await.unwrap();
    api.user("auth0|abc").await.unwrap();
    assert_eq!(s.hits("auth0.token"), 1);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    api.user("auth0|abc").await.unwrap();
    assert_eq!(s.hits("auth0.token"), 2);
}

#[tokio::test]
async fn auth0_user_id_is_percent_encoded_and_mapped() {
    let s = start().await;
    let api = auth0(&s);
    let ada = api.user("auth0|abc").await.unwrap();
    assert_eq!(
        s.raw_paths.lock().unwrap().as_slice(),
        ["/api/v2/users/auth0%7Cabc"]
    );
    assert_eq!(ada.idp_id, "auth0|abc");
    assert_eq!(ada.state, UserState::Active);
    assert_eq!(ada.profile.login.as_deref(), Some("ada@example.com"));
    assert_eq!(ada.profile.email.as_deref(), Some("ada@example.com"));
    assert_eq!(ada.profile.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(ada.profile.first_name.as_deref(), Some("Ada"));
    assert_eq!(ada.profile.last_name.as_deref(), Some("Lovelace"));

    let blocked = api.user("auth0|blocked").await.unwrap();
    assert_eq!(blocked.state, UserState::Disabled);
    assert_eq!(blocked.profile.display_name, None);
    assert_eq!(
        api.user("auth0|nobody").await.unwrap_err(),
        IdpError::NotFound
    );
    assert_eq!(
        api.group("rol_nothing").await.unwrap_err(),
        IdpError::NotFound
    );
}

#[tokio::test]
async fn auth0_user_roles_are_read_across_pages() {
    let s = start().await;
    let roles = auth0(&s).list_user_roles("auth0|abc").await.unwrap();
    assert_eq!(roles.len(), 120);
    assert_eq!(roles[0].idp_id, "rol_000");
    assert_eq!(roles[119].name, "Role 119");
    assert_eq!(s.hits("auth0.roles"), 3);
    for page in 0..3 {
        assert_eq!(s.hits(&format!("auth0.roles.page{page}.per50")), 1);
    }
}

#[tokio::test]
async fn auth0_api_401_refreshes_the_token_once_then_succeeds() {
    let s = start().await;
    let api = auth0(&s);
    api.user("auth0|abc").await.unwrap();
    s.revoked.lock().unwrap().insert("tok-1".into());
    api.user("auth0|abc").await.unwrap();
    assert_eq!(s.hits("auth0.token"), 2);
    assert_eq!(s.hits("auth0.user"), 3);
}

#[tokio::test]
async fn auth0_api_401_after_a_refresh_is_unauthorized() {
    let s = start().await;
    s.reject_all_tokens.store(true, Ordering::SeqCst);
    let err = auth0(&s).user("auth0|abc").await.unwrap_err();
    assert!(
        matches!(
            err,
            IdpError::Unauthorized {
                status: 401,
                variable: "AUTH0_DOMAIN",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(s.hits("auth0.token"), 2);
    assert_eq!(s.hits("auth0.user"), 2);
}

#[tokio::test]
async fn auth0_wrong_client_secret_is_unauthorized_and_not_shown() {
    let s = start().await;
    let wrong = "wrong-client-SECRET-value";
    let api = auth0_with(&s, wrong);
    let err = api.user("auth0|abc").await.unwrap_err();
    assert!(matches!(
        err,
        IdpError::Unauthorized {
            status: 401,
            variable: "AUTH0_CLIENT_SECRET",
            ..
        }
    ));
    for shown in [err.to_string(), format!("{err:?}"), format!("{api:?}")] {
        assert!(!shown.contains(wrong), "{shown}");
    }
    assert_eq!(s.hits("auth0.user"), 0);
}

// ---- configuration ----

#[test]
fn okta_config_needs_both_variables_and_a_usable_url() {
    assert!(OktaApi::from_config(&raw(&[])).unwrap().is_none());
    let only_url = OktaApi::from_config(&raw(&[("OKTA_ORG_URL", "https://acme.okta.com")]));
    assert_eq!(only_url.unwrap_err().variable, "OKTA_API_TOKEN");
    let only_token = OktaApi::from_config(&raw(&[("OKTA_API_TOKEN", OKTA_TOKEN)])).unwrap_err();
    assert_eq!(only_token.variable, "OKTA_ORG_URL");
    assert!(!only_token.to_string().contains(OKTA_TOKEN));
    for bad in [
        "http://acme.okta.com",
        "https://acme-admin.okta.com",
        "https://acme.okta.com/api/v1",
        "not a url",
    ] {
        let err = OktaApi::from_config(&raw(&[
            ("OKTA_ORG_URL", bad),
            ("OKTA_API_TOKEN", OKTA_TOKEN),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, "OKTA_ORG_URL", "{bad}");
        assert!(!err.to_string().contains(OKTA_TOKEN));
    }
    let api = OktaApi::from_config(&raw(&[
        ("OKTA_ORG_URL", "https://acme.okta.com/"),
        ("OKTA_API_TOKEN", OKTA_TOKEN),
    ]))
    .unwrap()
    .unwrap();
    let debug = format!("{api:?}");
    assert!(
        debug.contains("https://acme.okta.com") && !debug.contains(OKTA_TOKEN),
        "{debug}"
    );
}

#[test]
fn auth0_config_needs_all_three_variables() {
    assert!(Auth0Api::from_config(&raw(&[])).unwrap().is_none());
    let err = Auth0Api::from_config(&raw(&[
        ("AUTH0_DOMAIN", "acme.us.auth0.com"),
        ("AUTH0_CLIENT_ID", CLIENT_ID),
    ]))
    .unwrap_err();
    assert_eq!(err.variable, "AUTH0_CLIENT_SECRET");
    let err = Auth0Api::from_config(&raw(&[("AUTH0_CLIENT_SECRET", CLIENT_SECRET)])).unwrap_err();
    assert_eq!(err.variable, "AUTH0_DOMAIN");
    assert!(!err.to_string().contains(CLIENT_SECRET));
    let err = Auth0Api::from_config(&raw(&[
        ("AUTH0_DOMAIN", "http://acme.us.auth0.com"),
        ("AUTH0_CLIENT_ID", CLIENT_ID),
        ("AUTH0_CLIENT_SECRET", CLIENT_SECRET),
    ]))
    .unwrap_err();
    assert_eq!(err.variable, "AUTH0_DOMAIN");
    let api = Auth0Api::from_config(&raw(&[
        ("AUTH0_DOMAIN", "acme.us.auth0.com"),
        ("AUTH0_CLIENT_ID", CLIENT_ID),
        ("AUTH0_CLIENT_SECRET", CLIENT_SECRET),
    ]))
    .unwrap()
    .unwrap();
    let debug = format!("{api:?}");
    assert!(debug.contains("https://acme.us.auth0.com"), "{debug}");
    assert!(
        !debug.contains(CLIENT_SECRET) && !debug.contains("cl1ent"),
        "{debug}"
    );
}
