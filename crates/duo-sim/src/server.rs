//! HTTP: the route table, the Duo envelope, call records, and the `/_sim/`
//! control endpoints. Every Duo answer (success or failure) is built in
//! [`respond`]; every request is verified before anything else looks at it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::SimConfig;
use crate::error::ApiError;
use crate::faults::{AfterWrite, FaultState, Faults, Injected};
use crate::state::{DeviceKind, Params, Reply, Seed, Tenant};
use crate::verify::{Verified, verify_request};

/// Largest request body read; bigger ones are refused with 40002 "body".
const MAX_BODY: usize = 1 << 20;

/// One Duo call as the simulator answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub method: String,
    /// The route template, e.g. `POST /admin/v1/users/{user_id}/groups`;
    /// `GET (unmatched)` for a path no route knows.
    pub route: String,
    /// The path as received.
    pub path: String,
    pub status: u16,
    /// The Duo error code, for failures.
    pub code: Option<u32>,
    /// A write that was applied and then answered 500 anyway
    /// ([`crate::Faults::rate_lost_answer`]): it took effect.
    #[serde(default)]
    pub lost_answer: bool,
}

/// State shared by the server and the [`crate::DuoSim`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: SimConfig,
    pub(crate) tenant: Mutex<Tenant>,
    pub(crate) calls: Mutex<Vec<CallRecord>>,
    pub(crate) faults: Mutex<FaultState>,
}

impl Shared {
    pub(crate) fn new(cfg: SimConfig) -> Self {
        Self {
            cfg,
            tenant: Mutex::default(),
            calls: Mutex::default(),
            faults: Mutex::default(),
        }
    }
}

/// A panic elsewhere must not take the simulator down with a poisoned lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn epoch_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Clone, Copy)]
enum Op {
    ListUsers,
    CreateUser,
    GetUser,
    ModifyUser,
    DeleteUser,
    UserGroups,
    AddUserGroup,
    RemoveUserGroup,
    ListGroups,
    GetGroup,
    CreateGroup,
    ModifyGroup,
    DeleteGroup,
    GroupUsers,
    UserDevices(DeviceKind),
    Disassociate(DeviceKind),
    DeleteDevice(DeviceKind),
    ListPhones,
    CreatePhone,
    AttachPhone,
    Summary,
}

/// Route templates use the parameter names of Duo's docs; `{…}` matches one
/// non-empty segment.
const ROUTES: &[(&str, Op)] = {
    use DeviceKind as D;
    &[
        ("GET /admin/v1/users", Op::ListUsers),
        ("POST /admin/v1/users", Op::CreateUser),
        ("GET /admin/v1/users/{user_id}", Op::GetUser),
        ("POST /admin/v1/users/{user_id}", Op::ModifyUser),
        ("DELETE /admin/v1/users/{user_id}", Op::DeleteUser),
        ("GET /admin/v1/users/{user_id}/groups", Op::UserGroups),
        ("POST /admin/v1/users/{user_id}/groups", Op::AddUserGroup),
        (
            "DELETE /admin/v1/users/{user_id}/groups/{group_id}",
            Op::RemoveUserGroup,
        ),
        (
            "GET /admin/v1/users/{user_id}/phones",
            Op::UserDevices(D::Phones),
        ),
        (
            "DELETE /admin/v1/users/{user_id}/phones/{phone_id}",
            Op::Disassociate(D::Phones),
        ),
        ("POST /admin/v1/users/{user_id}/phones", Op::AttachPhone),
        ("GET /admin/v1/phones", Op::ListPhones),
        ("POST /admin/v1/phones", Op::CreatePhone),
        (
            "GET /admin/v1/users/{user_id}/tokens",
            Op::UserDevices(D::Tokens),
        ),
        (
            "DELETE /admin/v1/users/{user_id}/tokens/{token_id}",
            Op::Disassociate(D::Tokens),
        ),
        (
            "GET /admin/v1/users/{user_id}/webauthncredentials",
            Op::UserDevices(D::Webauthn),
        ),
        (
            "GET /admin/v1/users/{user_id}/u2ftokens",
            Op::UserDevices(D::U2f),
        ),
        (
            "GET /admin/v1/users/{user_id}/bypass_codes",
            Op::UserDevices(D::BypassCodes),
        ),
        ("GET /admin/v1/groups", Op::ListGroups),
        ("POST /admin/v1/groups", Op::CreateGroup),
        ("GET /admin/v1/groups/{group_id}", Op::GetGroup),
        ("POST /admin/v1/groups/{group_id}", Op::ModifyGroup),
        ("DELETE /admin/v1/groups/{group_id}", Op::DeleteGroup),
        ("GET /admin/v2/groups/{group_id}", Op::GetGroup),
        ("GET /admin/v2/groups/{group_id}/users", Op::GroupUsers),
        (
            "DELETE /admin/v1/phones/{phone_id}",
            Op::DeleteDevice(D::Phones),
        ),
        (
            "DELETE /admin/v1/webauthncredentials/{webauthnkey}",
            Op::DeleteDevice(D::Webauthn),
        ),
        (
            "DELETE /admin/v1/u2ftokens/{registration_id}",
            Op::DeleteDevice(D::U2f),
        ),
        (
            "DELETE /admin/v1/bypass_codes/{bypass_code_id}",
            Op::DeleteDevice(D::BypassCodes),
        ),
        ("GET /admin/v1/info/summary", Op::Summary),
    ]
};

#[derive(Debug)]
enum RouteMatch {
    Found {
        template: &'static str,
        op: Op,
        ids: Vec<String>,
    },
    WrongMethod {
        pattern: &'static str,
    },
    Unknown,
}

fn match_route(method: &Method, path: &str) -> RouteMatch {
    let segs: Vec<&str> = path.split('/').collect();
    let mut wrong_method = None;
    for &(template, op) in ROUTES {
        let Some((m, pattern)) = template.split_once(' ') else {
            continue;
        };
        let pat: Vec<&str> = pattern.split('/').collect();
        if pat.len() != segs.len() {
            continue;
        }
        let mut ids = Vec::new();
        let fits = pat.iter().zip(&segs).all(|(p, s)| {
            if p.starts_with('{') {
                ids.push((*s).to_owned());
                !s.is_empty()
            } else {
                p == s
            }
        });
        if !fits {
            continue;
        }
        if m == method.as_str() {
            return RouteMatch::Found { template, op, ids };
        }
        wrong_method = Some(pattern);
    }
    wrong_method.map_or(RouteMatch::Unknown, |pattern| RouteMatch::WrongMethod {
        pattern,
    })
}

fn dispatch(
    t: &mut Tenant,
    op: Op,
    ids: &[String],
    p: &Params,
    now: i64,
    absent_delete_not_found: bool,
) -> Result<Reply, ApiError> {
    let id = |i: usize| ids.get(i).map_or("", String::as_str);
    if absent_delete_not_found {
        match op {
            Op::DeleteUser => {
                t.get_user(id(0))?;
            }
            Op::DeleteGroup => {
                t.get_group(id(0))?;
            }
            Op::RemoveUserGroup => t.check_member(id(0), id(1))?,
            Op::Disassociate(kind) => t.check_holds(id(0), kind, id(1))?,
            _ => {}
        }
    }
    match op {
        Op::ListUsers => t.list_users(p),
        Op::CreateUser => t.create_user(p, now),
        Op::GetUser => t.get_user(id(0)),
        Op::ModifyUser => t.modify_user(id(0), p),
        Op::DeleteUser => Ok(t.delete_user(id(0))),
        Op::UserGroups => t.user_groups(id(0), p),
        Op::AddUserGroup => t.add_user_group(id(0), p),
        Op::RemoveUserGroup => t.remove_user_group(id(0), id(1)),
        Op::ListGroups => t.list_groups(p),
        Op::GetGroup => t.get_group(id(0)),
        Op::CreateGroup => t.create_group(p),
        Op::ModifyGroup => t.modify_group(id(0), p),
        Op::DeleteGroup => Ok(t.delete_group(id(0))),
        Op::GroupUsers => t.group_users(id(0), p),
        Op::UserDevices(kind) => t.user_devices(id(0), kind, p),
        Op::Disassociate(kind) => t.disassociate(id(0), kind, id(1)),
        Op::DeleteDevice(kind) => t.delete_device(kind, id(0)),
        Op::ListPhones => t.list_phones(p),
        Op::CreatePhone => t.create_phone(p),
        Op::AttachPhone => t.attach_phone(id(0), p),
        Op::Summary => Ok(t.summary()),
    }
}

/// Parameters of a verified request: the form body or JSON object body of a
/// POST/PUT/PATCH, else the query. JSON numbers and booleans count as their
/// string form; `null` is ignored; arrays and objects are kept as JSON text.
fn request_params(
    v: &Verified,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Params, ApiError> {
    if let Some(form) = v.form_params() {
        return Ok(Params(form.to_vec()));
    }
    let json_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        && headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|c| c.to_str().ok())
            .is_some_and(|c| {
                c.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
    if !json_body {
        return Ok(Params(v.query_params().to_vec()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::default());
    }
    let obj: serde_json::Map<String, Value> =
        serde_json::from_slice(body).map_err(|_| ApiError::invalid("body"))?;
    let pairs = obj
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect();
    Ok(Params(pairs))
}

/// The only place a Duo answer is shaped.
fn respond(result: &Result<Reply, ApiError>) -> Response {
    let (status, body) = match result {
        Ok(Reply::One(v)) => (200, json!({"stat": "OK", "response": v})),
        Ok(Reply::Page { items, meta }) => {
            let mut m = serde_json::Map::new();
            m.insert("total_objects".into(), meta.total.into());
            if let Some(n) = meta.next_offset {
                m.insert("next_offset".into(), n.into());
            }
            if let Some(p) = meta.prev_offset {
                m.insert("prev_offset".into(), p.into());
            }
            (200, json!({"stat": "OK", "response": items, "metadata": m}))
        }
        Err(e) => {
            let mut v = json!({"stat": "FAIL", "code": e.code, "message": e.message});
            if let (Some(d), Value::Object(m)) = (&e.detail, &mut v) {
                m.insert("message_detail".into(), d.clone().into());
            }
            (e.status, v)
        }
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(body)).into_response()
}

async fn duo(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let method = parts.method;
    let path = parts.uri.path().to_owned();
    let route = match_route(&method, &path);
    let route_name = match &route {
        RouteMatch::Found { template, .. } => (*template).to_owned(),
        RouteMatch::WrongMethod { pattern } => format!("{method} {pattern}"),
        RouteMatch::Unknown => format!("{method} (unmatched)"),
    };
    let result = async {
        let body = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::invalid("body"))?;
        let query = parts.uri.query().unwrap_or("");
        let verified = verify_request(
            &method,
            &path,
            query,
            &parts.headers,
            &body,
            &sh.cfg,
            SystemTime::now(),
        )
        .map_err(|e| ApiError::from(&e))?;
        let latency = lock(&sh.faults).latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let injected = lock(&sh.faults).roll();
        match injected {
            Injected::TooManyRequests => return Err(ApiError::too_many_requests()),
            Injected::ServerError => return Err(ApiError::internal(None)),
            Injected::None => {}
        }
        let (op, ids) = match route {
            RouteMatch::Found { op, ids, .. } => (op, ids),
            RouteMatch::WrongMethod { .. } => return Err(ApiError::method_not_allowed()),
            RouteMatch::Unknown => return Err(ApiError::not_found()),
        };
        let params = request_params(&verified, &method, &parts.headers, &body)?;
        let absent_delete_not_found = lock(&sh.faults).absent_delete_not_found();
        let reply = dispatch(
            &mut lock(&sh.tenant),
            op,
            &ids,
            &params,
            epoch_now(),
            absent_delete_not_found,
        )?;
        // A write that succeeded may still lose its answer: the tenant has
        // changed, the client sees a failure.
        let after = if matches!(method, Method::POST | Method::DELETE) {
            lock(&sh.faults).roll_after_write()
        } else {
            AfterWrite::Answer
        };
        Ok((reply, after))
    }
    .await;
    let lost_answer = matches!(result, Ok((_, AfterWrite::LoseAnswer)));
    let (result, after) = match result {
        Ok((_, AfterWrite::LoseAnswer)) => (Err(ApiError::internal(None)), AfterWrite::Answer),
        Ok((reply, after)) => (Ok(reply), after),
        Err(e) => (Err(e), AfterWrite::Answer),
    };
    let mut response = respond(&result);
    if after == AfterWrite::Truncate {
        response = truncated(response).await;
    }
    let status = response.status().as_u16();
    let code = result.as_ref().err().map(|e| e.code);
    tracing::info!(method = %method, route = %route_name, status, code, "duo-sim call");
    lock(&sh.calls).push(CallRecord {
        method: method.to_string(),
        route: route_name,
        path,
        status,
        code,
        lost_answer,
    });
    response
}

/// The same answer with its body cut in half (no longer JSON).
async fn truncated(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        axum::body::Body::from(bytes.slice(..bytes.len() / 2)),
    )
}

/// `/_sim/` is for loopback peers only; others get a Duo-shaped 404.
async fn loopback_only(req: Request, next: Next) -> Response {
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ci| ci.0.ip());
    if remote.is_some_and(|ip| !ip.is_loopback()) {
        return respond(&Err(ApiError::not_found()));
    }
    next.run(req).await
}

async fn sim_state(State(sh): State<Arc<Shared>>) -> Response {
    Json(lock(&sh.tenant).snapshot()).into_response()
}

async fn sim_seed(State(sh): State<Arc<Shared>>, Json(seed): Json<Seed>) -> Response {
    lock(&sh.tenant).seed(seed, epoch_now());
    Json(json!({"stat": "OK"})).into_response()
}

async fn sim_calls(State(sh): State<Arc<Shared>>) -> Response {
    Json(lock(&sh.calls).clone()).into_response()
}

async fn sim_calls_reset(State(sh): State<Arc<Shared>>) -> Response {
    lock(&sh.calls).clear();
    Json(json!({"stat": "OK"})).into_response()
}

async fn sim_faults(State(sh): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Response {
    lock(&sh.faults).set(faults);
    Json(json!({"stat": "OK"})).into_response()
}

/// The simulator's router: `/_sim/` control endpoints (unsigned, loopback
/// only, not part of Duo's API) and every other path as a signed Duo call.
pub(crate) fn app(shared: Arc<Shared>) -> Router {
    let control = Router::new()
        .route("/_sim/state", get(sim_state))
        .route("/_sim/seed", post(sim_seed))
        .route("/_sim/calls", get(sim_calls))
        .route("/_sim/calls/reset", post(sim_calls_reset))
        .route("/_sim/faults", post(sim_faults))
        .route_layer(middleware::from_fn(loopback_only));
    control.fallback(duo).with_state(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_templates_methods_and_ids() {
        let m = match_route(&Method::DELETE, "/admin/v1/users/DU1/groups/DG2");
        let RouteMatch::Found { template, ids, .. } = m else {
            panic!("not found: {m:?}")
        };
        assert_eq!(
            template,
            "DELETE /admin/v1/users/{user_id}/groups/{group_id}"
        );
        assert_eq!(ids, ["DU1", "DG2"]);
        let m = match_route(&Method::PUT, "/admin/v1/users/DU1");
        assert!(matches!(
            m,
            RouteMatch::WrongMethod {
                pattern: "/admin/v1/users/{user_id}"
            }
        ));
        for p in [
            "/admin/v1/users/",
            "/admin/v1/nothing",
            "",
            "/admin/v1/users//groups",
            "/admin/v1/users/DU1/",
        ] {
            assert!(
                matches!(match_route(&Method::GET, p), RouteMatch::Unknown),
                "{p}"
            );
        }
        for &(template, _) in ROUTES {
            let (m, p) = template.split_once(' ').expect("template");
            let method = Method::from_bytes(m.as_bytes()).expect("method");
            assert!(
                matches!(match_route(&method, p), RouteMatch::Found { template: t, .. } if t == template)
            );
        }
    }

    #[test]
    fn failure_envelope_shape() {
        let r = respond(&Err(ApiError::invalid("username")));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
}
