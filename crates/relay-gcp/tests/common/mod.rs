//! Test helpers: a metadata-server stand-in, a Firestore REST stand-in, the
//! Firestore emulator (when scripts/emulators.sh started one), and the
//! `relay-gcp` binary as a child process.
//!
//! The stand-ins implement exactly the calls the store makes, with the
//! request and answer shapes of Google's documentation and of the Firestore
//! emulator (`{"error":{"code":409,"status":"ALREADY_EXISTS",…}}`, HTTP 400
//! `FAILED_PRECONDITION` for a stale `updateTime`). They exist for what an
//! emulator cannot show — token caching, a missing `Metadata-Flavor`, 5xx
//! and 401 answers — and so the store's semantics are checked even where
//! no emulator runs. They are not Firestore.

#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use relay_core::config::RawConfig;
use relay_gcp::{FirestoreConfig, FirestoreStore};
use serde_json::{Value, json};

/// The variable scripts/emulators.sh exports: the Firestore emulator's base
/// URL (`http://127.0.0.1:PORT`).
pub const EMULATOR_VAR: &str = "RELAY_TEST_FIRESTORE_URL";

/// How late the Firestore stand-in answers a write when asked to
/// (`slow_after_write`): far past any client timeout a test sets to lose it.
pub const LATE_ANSWER: Duration = Duration::from_secs(4);

/// The Firestore emulator's host:port, when one runs. Unset: a failure when
/// `RELAY_TEST_REQUIRE_EMULATORS=1`, else a printed line and `None`.
pub fn emulator_host() -> Option<String> {
    relay_tests::emulator_url(EMULATOR_VAR, "the Firestore emulator")
        .map(|url| url.trim_start_matches("http://").to_owned())
}

/// A project id no other test uses (the emulator keeps one dataset per
/// project).
pub fn unique_project() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "relay-test-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn google_error(code: StatusCode, status: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code.as_u16(), "message": message, "status": status } });
    (
        code,
        [("content-type", "application/json; charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------- metadata

#[derive(Debug)]
pub struct MetadataState {
    pub token: String,
    pub expires_in: AtomicU64,
    pub project: String,
    pub token_fetches: AtomicUsize,
    pub project_fetches: AtomicUsize,
    pub refused_without_header: AtomicUsize,
}

/// The metadata server's two endpoints the relay uses. Like the real one,
/// it refuses a request without `Metadata-Flavor: Google` (403).
#[derive(Debug)]
pub struct MetadataStandIn {
    pub addr: SocketAddr,
    pub state: Arc<MetadataState>,
}

impl MetadataStandIn {
    pub async fn start(token: &str, expires_in: u64, project: &str) -> Self {
        let state = Arc::new(MetadataState {
            token: token.to_owned(),
            expires_in: AtomicU64::new(expires_in),
            project: project.to_owned(),
            token_fetches: AtomicUsize::new(0),
            project_fetches: AtomicUsize::new(0),
            refused_without_header: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route(
                "/computeMetadata/v1/instance/service-accounts/default/token",
                get(metadata_token),
            )
            .route(
                "/computeMetadata/v1/project/project-id",
                get(metadata_project),
            )
            .with_state(state.clone());
        Self {
            addr: serve(router).await,
            state,
        }
    }

    /// host:port, as `GCE_METADATA_HOST` takes it.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn token_fetches(&self) -> usize {
        self.state.token_fetches.load(Ordering::SeqCst)
    }
}

fn flavor_ok(state: &MetadataState, headers: &HeaderMap) -> bool {
    let ok = headers
        .get("metadata-flavor")
        .is_some_and(|v| v.as_bytes() == b"Google");
    if !ok {
        state.refused_without_header.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

async fn metadata_token(State(state): State<Arc<MetadataState>>, headers: HeaderMap) -> Response {
    if !flavor_ok(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.",
        )
            .into_response();
    }
    state.token_fetches.fetch_add(1, Ordering::SeqCst);
    let body = json!({
        "access_token": state.token,
        "expires_in": state.expires_in.load(Ordering::SeqCst),
        "token_type": "Bearer",
    });
    ([("content-type", "application/json")], body.to_string()).into_response()
}

async fn metadata_project(State(state): State<Arc<MetadataState>>, headers: HeaderMap) -> Response {
    if !flavor_ok(&state, &headers) {
        return (
            StatusCode::FORBIDDEN,
            "Missing Metadata-Flavor:Google header.",
        )
            .into_response();
    }
    state.project_fetches.fetch_add(1, Ordering::SeqCst);
    (
        [("content-type", "application/text")],
        state.project.clone(),
    )
        .into_response()
}

// --------------------------------------------------------------- firestore

#[derive(Debug, Clone)]
struct Doc {
    fields: Value,
    create_time: String,
    update_time: String,
}

#[derive(Debug)]
pub struct FirestoreState {
    docs: Mutex<BTreeMap<String, Doc>>,
    token: String,
    /// Answer the next N requests with 503 UNAVAILABLE.
    pub fail_next: AtomicUsize,
    /// Answer the next N requests with 401 UNAUTHENTICATED.
    pub unauthenticated_next: AtomicUsize,
    /// Apply the next N creates/commits, then answer too late (the client's
    /// timeout fires: a lost answer to a write that landed).
    pub slow_after_write: AtomicUsize,
    pub requests: AtomicUsize,
    clock: AtomicU64,
}

/// The Firestore REST calls the store makes: `createDocument` (POST with
/// `documentId`), `get`, `patch` (upsert, no mask) and `commit` with one
/// `update` or `delete` write and a `currentDocument` precondition.
#[derive(Debug)]
pub struct FirestoreStandIn {
    pub addr: SocketAddr,
    pub state: Arc<FirestoreState>,
}

impl FirestoreStandIn {
    /// Accepts only `Authorization: Bearer <token>`.
    pub async fn start(token: &str) -> Self {
        let state = Arc::new(FirestoreState {
            docs: Mutex::new(BTreeMap::new()),
            token: token.to_owned(),
            fail_next: AtomicUsize::new(0),
            unauthenticated_next: AtomicUsize::new(0),
            slow_after_write: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            clock: AtomicU64::new(0),
        });
        let router = Router::new()
            .route(
                "/v1/projects/{project}/databases/{database}/documents:commit",
                post(fs_commit),
            )
            .route(
                "/v1/projects/{project}/databases/{database}/documents/{collection}",
                post(fs_create),
            )
            .route(
                "/v1/projects/{project}/databases/{database}/documents/{collection}/{doc}",
                get(fs_get).patch(fs_patch),
            )
            .with_state(state.clone());
        Self {
            addr: serve(router).await,
            state,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }
}

impl FirestoreState {
    /// A fresh, strictly increasing timestamp with microseconds, as
    /// Firestore's `updateTime`.
    fn tick(&self) -> String {
        let now = u64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_micros(),
        )
        .unwrap();
        let prev = self.clock.fetch_max(now, Ordering::SeqCst);
        let micros = if now > prev {
            now
        } else {
            self.clock.fetch_add(1, Ordering::SeqCst) + 1
        };
        rfc3339_micros(micros)
    }

    /// Auth and injected faults, checked first on every call.
    fn gate(&self, headers: &HeaderMap) -> Option<Response> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if take(&self.fail_next) {
            return Some(google_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The service is currently unavailable.",
            ));
        }
        let expected = format!("Bearer {}", self.token);
        let authorized = headers
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == expected.as_bytes());
        if !authorized || take(&self.unauthenticated_next) {
            return Some(google_error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials.",
            ));
        }
        None
    }

    /// Answers after a write, late if asked to: by `LATE_ANSWER`, far past
    /// the client timeout a test sets for it.
    async fn after_write(&self, response: Response) -> Response {
        if response.status().is_success() && take(&self.slow_after_write) {
            tokio::time::sleep(LATE_ANSWER).await;
        }
        response
    }

    fn docs(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Doc>> {
        self.docs.lock().unwrap()
    }
}

/// Takes one from a fault counter; whether there was one.
fn take(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

fn doc_json(name: &str, doc: &Doc) -> Value {
    json!({
        "name": name,
        "fields": doc.fields,
        "createTime": doc.create_time,
        "updateTime": doc.update_time,
    })
}

fn json_ok(value: &Value) -> Response {
    (
        [("content-type", "application/json; charset=UTF-8")],
        value.to_string(),
    )
        .into_response()
}

fn valid_doc_id(id: &str) -> bool {
    !id.is_empty()
        && !id.contains('/')
        && id != "."
        && id != ".."
        && !(id.starts_with("__") && id.ends_with("__"))
}

async fn fs_create(
    State(state): State<Arc<FirestoreState>>,
    Path((project, database, collection)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("projects/{project}/databases/{database}/documents/{collection}");
    let response = create_document(&state, &path, &query, &headers, &body);
    state.after_write(response).await
}

fn create_document(
    state: &FirestoreState,
    collection_path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Some(refused) = state.gate(headers) {
        return refused;
    }
    let Some(id) = query.get("documentId") else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "documentId is required by this stand-in",
        );
    };
    if !valid_doc_id(id) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("Resource id \"{id}\" is invalid because it is reserved."),
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
        );
    };
    let name = format!("{collection_path}/{id}");
    let mut docs = state.docs();
    if docs.contains_key(&name) {
        return google_error(
            StatusCode::CONFLICT,
            "ALREADY_EXISTS",
            &format!("Document already exists: {name}"),
        );
    }
    let now = state.tick();
    let doc = Doc {
        fields: body["fields"].clone(),
        create_time: now.clone(),
        update_time: now,
    };
    let answer = doc_json(&name, &doc);
    docs.insert(name, doc);
    json_ok(&answer)
}

async fn fs_get(
    State(state): State<Arc<FirestoreState>>,
    Path((project, database, collection, id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = state.gate(&headers) {
        return refused;
    }
    let name = format!("projects/{project}/databases/{database}/documents/{collection}/{id}");
    match state.docs().get(&name) {
        Some(doc) => json_ok(&doc_json(&name, doc)),
        None => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Document \"{name}\" not found."),
        ),
    }
}

async fn fs_patch(
    State(state): State<Arc<FirestoreState>>,
    Path((project, database, collection, id)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = state.gate(&headers) {
        return refused;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
        );
    };
    let name = format!("projects/{project}/databases/{database}/documents/{collection}/{id}");
    let now = state.tick();
    let mut docs = state.docs();
    let create_time = docs
        .get(&name)
        .map_or_else(|| now.clone(), |d| d.create_time.clone());
    let doc = Doc {
        fields: body["fields"].clone(),
        create_time,
        update_time: now,
    };
    let answer = doc_json(&name, &doc);
    docs.insert(name, doc);
    json_ok(&answer)
}

async fn fs_commit(
    State(state): State<Arc<FirestoreState>>,
    Path((project, database)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let database = format!("projects/{project}/databases/{database}");
    let response = commit(&state, &database, &headers, &body);
    state.after_write(response).await
}

fn commit(state: &FirestoreState, database: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Some(refused) = state.gate(headers) {
        return refused;
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
        );
    };
    let writes = body["writes"].as_array().cloned().unwrap_or_default();
    let [write] = writes.as_slice() else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "this stand-in takes exactly one write",
        );
    };
    let name = write["update"]["name"]
        .as_str()
        .or_else(|| write["delete"].as_str())
        .unwrap_or_default()
        .to_owned();
    if !name.starts_with(&format!("{database}/documents/")) {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "document name outside this database",
        );
    }
    let mut docs = state.docs();
    let precondition = &write["currentDocument"];
    if let Some(expected) = precondition["updateTime"].as_str() {
        match docs.get(&name) {
            None => {
                return google_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    &format!("No document to update: {name}"),
                );
            }
            Some(doc) if doc.update_time != expected => {
                return google_error(
                    StatusCode::BAD_REQUEST,
                    "FAILED_PRECONDITION",
                    "the stored version does not match the required base version",
                );
            }
            Some(_) => {}
        }
    }
    if let Some(exists) = precondition["exists"].as_bool()
        && docs.contains_key(&name) != exists
    {
        return if exists {
            google_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                &format!("No document to update: {name}"),
            )
        } else {
            google_error(
                StatusCode::CONFLICT,
                "ALREADY_EXISTS",
                &format!("Document already exists: {name}"),
            )
        };
    }
    let now = state.tick();
    let result = if write["delete"].is_string() {
        docs.remove(&name);
        json!({})
    } else {
        let create_time = docs
            .get(&name)
            .map_or_else(|| now.clone(), |d| d.create_time.clone());
        docs.insert(
            name,
            Doc {
                fields: write["update"]["fields"].clone(),
                create_time,
                update_time: now.clone(),
            },
        );
        json!({ "updateTime": now })
    };
    json_ok(&json!({ "writeResults": [result], "commitTime": now }))
}

/// Unix microseconds → `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub fn rfc3339_micros(micros: u64) -> String {
    let time = jiff::Timestamp::from_microsecond(i64::try_from(micros).unwrap()).unwrap();
    format!("{time:.6}")
}

// ------------------------------------------------- a backend for the store

/// Where a test's store lives: the Firestore emulator or the stand-in, with
/// a metadata stand-in handing out a token that backend accepts.
#[derive(Debug)]
pub struct Backend {
    pub kind: &'static str,
    pub base_url: String,
    pub metadata: MetadataStandIn,
    pub firestore: Option<FirestoreStandIn>,
    pub project: String,
}

/// The emulator's admin token; it refuses anything that is not a JWT.
pub const EMULATOR_TOKEN: &str = "owner";
/// What the stand-ins accept.
pub const STAND_IN_TOKEN: &str = "ya29.stand-in-access-token-0123456789";

impl Backend {
    pub async fn stand_in() -> Self {
        Self::stand_in_with_expiry(3599).await
    }

    pub async fn stand_in_with_expiry(expires_in: u64) -> Self {
        let project = unique_project();
        let firestore = FirestoreStandIn::start(STAND_IN_TOKEN).await;
        Self {
            kind: "stand-in",
            base_url: firestore.base_url(),
            metadata: MetadataStandIn::start(STAND_IN_TOKEN, expires_in, &project).await,
            firestore: Some(firestore),
            project,
        }
    }

    /// `None` when no emulator runs (and none is required).
    pub async fn emulator() -> Option<Self> {
        let host = emulator_host()?;
        let project = unique_project();
        Some(Self {
            kind: "emulator",
            base_url: format!("http://{host}/v1"),
            metadata: MetadataStandIn::start(EMULATOR_TOKEN, 3599, &project).await,
            firestore: None,
            project,
        })
    }

    /// The emulator when it runs, else the stand-in (said on stderr).
    pub async fn best() -> Self {
        match Self::emulator().await {
            Some(backend) => backend,
            None => {
                eprintln!("using the Firestore stand-in instead");
                Self::stand_in().await
            }
        }
    }

    pub fn token(&self) -> &'static str {
        if self.firestore.is_some() {
            STAND_IN_TOKEN
        } else {
            EMULATOR_TOKEN
        }
    }

    /// The store's environment: this backend's URL, the metadata stand-in,
    /// the project.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("GOOGLE_CLOUD_PROJECT".into(), self.project.clone()),
            ("RELAY_FIRESTORE_URL".into(), self.base_url.clone()),
            ("GCE_METADATA_HOST".into(), self.metadata.host()),
        ]
    }

    pub async fn store(&self) -> FirestoreStore {
        self.store_with(|_| {}).await
    }

    pub async fn store_with(&self, tweak: impl FnOnce(&mut FirestoreConfig)) -> FirestoreStore {
        let raw: RawConfig = self.env().into_iter().collect();
        let mut config = FirestoreConfig::from_config(&raw).unwrap();
        tweak(&mut config);
        FirestoreStore::connect(config).await.unwrap()
    }

    fn doc_url(&self, collection: &str, id: &str) -> String {
        format!(
            "{}/projects/{}/databases/(default)/documents/{collection}/{id}",
            self.base_url, self.project
        )
    }

    /// Reads a document straight from the backend (`None`: absent).
    pub async fn read_doc(&self, collection: &str, id: &str) -> Option<Value> {
        let response = reqwest::Client::new()
            .get(self.doc_url(collection, id))
            .bearer_auth(self.token())
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::NOT_FOUND {
            return None;
        }
        assert!(response.status().is_success(), "{}", response.status());
        Some(serde_json::from_str(&response.text().await.unwrap()).unwrap())
    }

    /// Writes a document straight into the backend, as another instance
    /// (or a crashed one) would have left it.
    pub async fn seed_doc(&self, collection: &str, id: &str, state: &str, expires_at: &str) {
        let body = json!({ "fields": {
            "state": { "stringValue": state },
            "expires_at": { "timestampValue": expires_at },
        }});
        let response = reqwest::Client::new()
            .patch(self.doc_url(collection, id))
            .bearer_auth(self.token())
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

// ------------------------------------------------------------- the binary

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `relay-gcp` running as a child process with exactly the given
/// environment; its stdout and stderr are collected.
#[derive(Debug)]
pub struct RelayProcess {
    pub child: Child,
    pub port: u16,
    pub started: Instant,
    output: Arc<Mutex<String>>,
}

impl RelayProcess {
    pub fn spawn(env: &[(String, String)]) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay-gcp"));
        command
            .env_clear()
            .env("PORT", port.to_string())
            .env("RELAY_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let started = Instant::now();
        let mut child = command.spawn().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Self {
            child,
            port,
            started,
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits for the first 200 on /healthz; returns the time since spawn.
    pub async fn wait_healthy(&mut self) -> Duration {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http.get(self.url("/healthz")).send().await
                && response.status() == 200
            {
                return self.started.elapsed();
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "relay-gcp exited with {status} before serving:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "relay-gcp did not serve /healthz within 30 s:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits for the process to exit on its own.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "relay-gcp still running after {within:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, as Cloud Run sends it (through `kill`, so no libc here).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The Okta fixture every binary test delivers.
pub fn okta_fixture() -> String {
    relay_tests::fixture_text("okta/user-lifecycle-create.json")
}

/// `relay-gcp <task>` as a Cloud Run job runs it: only the Duo settings of
/// `sim`, the Okta API of `idp` and `extra` in the environment.
pub fn job_command(
    task: &str,
    sim: &duo_sim::DuoSim,
    idp: &relay_tests::idp_standin::IdpStandIn,
    extra: &[(String, String)],
) -> Command {
    let cfg = sim.config();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relay-gcp"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DUO_API_HOST", &cfg.host)
        .env("DUO_IKEY", &cfg.ikey)
        .env("DUO_SKEY", &cfg.skey)
        .env("DUO_API_URL", sim.base_url())
        .env("DUO_RATE_PER_MINUTE", "off")
        .envs(idp.okta_env())
        .envs(extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .arg(task);
    cmd
}

/// Runs a job's process to its end.
pub async fn run_job(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run relay-gcp"))
        .await
        .unwrap()
}

/// The job's log line whose message is `message` (its summary line).
pub fn summary_line(out: &std::process::Output, message: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no {message} summary line in {stdout}"))
}
