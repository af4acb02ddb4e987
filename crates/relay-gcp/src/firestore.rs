//! The idempotency store in Firestore (native mode), over its REST API.
//!
//! One document per event under
//! `projects/{project}/databases/{database}/documents/{collection}/{id}`,
//! where `{id}` is the event id in base64url without padding (Firestore ids
//! may not contain `/` nor be `__…__`; event ids are `okta:<uuid>` and the
//! like). Fields: `state` (`claimed` | `done`), `expires_at` (a timestamp:
//! give the collection a Firestore TTL policy on it so old documents are
//! deleted), `event_id` (the readable id, for people browsing the data) and,
//! on a claim, `claim_id` (a random nonce: when a claim's answer is lost,
//! reading it back tells whether the claim landed).
//!
//! The protocol reproduces [`relay_core::store::MemoryStore`]'s semantics:
//! - **claim**: `createDocument` with the document id — Firestore refuses it
//!   with 409 `ALREADY_EXISTS` when the document is there, which makes the
//!   claim atomic across instances. On 409 the document is read: done and
//!   live → `Done`; claimed and live → `InProgress`; expired (TTL deletion is
//!   lazy, so expired documents linger) → taken over by a `commit` whose
//!   write carries `currentDocument.updateTime` = the time just read, so of
//!   two instances taking over the same document only one wins; the loser
//!   gets `FAILED_PRECONDITION` and answers `InProgress`.
//! - **complete**: `patch` (an upsert) to `done` with `expires_at` = now + TTL.
//! - **release**: a `commit` deleting the document on condition that its
//!   `updateTime` is still the one of this instance's claim — a claim that
//!   was taken over or completed meanwhile is left alone.
//!
//! Watermarks (queue mode's per-subject event times, `relay_core::order`)
//! live in the same collection — so the same TTL policy on `expires_at`
//! removes them — as documents `mark.<key in base64url>` with fields
//! `at_ms` (integer), `expires_at` and `key` (readable). `set_watermark`
//! keeps the newer time with a conditional `commit` (`updateTime` as read,
//! or `exists: false`), so concurrent writers cannot move it back.
//!
//! Conditional writes go through `documents:commit` with the precondition in
//! the JSON body rather than `currentDocument.updateTime` as a query
//! parameter: the body is plain proto3 JSON (an RFC 3339 string), while the
//! query form depends on how a front end transcodes timestamps — the
//! Firestore emulator, for one, reads the RFC 3339 query form as time 0.
//!
//! Authentication: an OAuth token from the metadata server (the Cloud Run
//! service's identity needs `roles/datastore.user`), or, against the
//! Firestore emulator (`FIRESTORE_EMULATOR_HOST`), the emulator's `owner`
//! token.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relay_core::config::{ConfigError, RawConfig, optional};
use relay_core::event::EventId;
use relay_core::store::{CLAIM_TIMEOUT, Claim, DEFAULT_TTL, IdempotencyStore, StoreError};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::metadata::{AccessToken, DEFAULT_HOST, MetadataServer, backend, send_for_json};
use crate::settings;
use crate::timestamp::{format_rfc3339, parse_rfc3339};

/// Firestore's REST endpoint.
pub const DEFAULT_BASE_URL: &str = "https://firestore.googleapis.com/v1";
/// `RELAY_FIRESTORE_DATABASE` when unset.
pub const DEFAULT_DATABASE: &str = "(default)";
/// `RELAY_FIRESTORE_COLLECTION` when unset.
pub const DEFAULT_COLLECTION: &str = "relay-idempotency";

/// Each Firestore or metadata request gets this long: the whole webhook has
/// about 3 s before Okta gives up, and a store that does not answer should
/// turn into a 503 (the IdP retries) rather than a hung request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How the store authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirestoreAuth {
    /// Tokens from the metadata server (`metadata_host`).
    MetadataServer,
    /// The Firestore emulator's admin token `owner`; no metadata server.
    Emulator,
}

/// Where the store lives, read from the environment (step one of two: no
/// network; [`FirestoreStore::connect`] resolves the project if needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirestoreConfig {
    /// `GOOGLE_CLOUD_PROJECT`; `None` = ask the metadata server.
    pub project: Option<String>,
    /// `RELAY_FIRESTORE_DATABASE`, default `(default)`.
    pub database: String,
    /// `RELAY_FIRESTORE_COLLECTION`, default `relay-idempotency`.
    pub collection: String,
    /// `RELAY_FIRESTORE_URL`, else `http://$FIRESTORE_EMULATOR_HOST/v1`,
    /// else `https://firestore.googleapis.com/v1`.
    pub base_url: String,
    pub auth: FirestoreAuth,
    /// Where the metadata server is (`GCE_METADATA_HOST`), also used to find
    /// the project when `GOOGLE_CLOUD_PROJECT` is unset.
    pub metadata_host: String,
    /// How long a completed event is remembered.
    pub ttl: Duration,
    /// How long a claim without an outcome blocks other deliveries.
    pub claim_timeout: Duration,
    /// Per request to Firestore and the metadata server.
    pub request_timeout: Duration,
}

impl FirestoreConfig {
    /// From `GOOGLE_CLOUD_PROJECT`, `RELAY_FIRESTORE_DATABASE`,
    /// `RELAY_FIRESTORE_COLLECTION`, `RELAY_FIRESTORE_URL`,
    /// `FIRESTORE_EMULATOR_HOST` and `GCE_METADATA_HOST`.
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let project = settings::project(raw)?.map(str::to_owned);
        let database = optional(raw, "RELAY_FIRESTORE_DATABASE").unwrap_or(DEFAULT_DATABASE);
        if database != DEFAULT_DATABASE
            && !(database
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && database.len() <= 63)
        {
            return Err(ConfigError::new(
                "RELAY_FIRESTORE_DATABASE",
                "must be (default) or a database id of lowercase letters, digits and hyphens",
            ));
        }
        let collection = optional(raw, "RELAY_FIRESTORE_COLLECTION").unwrap_or(DEFAULT_COLLECTION);
        let reserved = collection.starts_with("__") && collection.ends_with("__");
        if reserved
            || collection.len() > 1500
            || collection == "."
            || collection == ".."
            || !collection
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ConfigError::new(
                "RELAY_FIRESTORE_COLLECTION",
                "must be a collection id of letters, digits, '-', '_' and '.' (not __name__)",
            ));
        }
        let emulator = settings::host(raw, "FIRESTORE_EMULATOR_HOST", Some("127.0.0.1:8080"))?;
        let base_url = match settings::base_url(
            raw,
            "RELAY_FIRESTORE_URL",
            "https://firestore.googleapis.com/v1",
        )? {
            Some(url) => url,
            None => match emulator {
                Some(host) => format!("http://{host}/v1"),
                None => DEFAULT_BASE_URL.to_owned(),
            },
        };
        let metadata_host = settings::host(raw, "GCE_METADATA_HOST", Some("127.0.0.1:8080"))?
            .unwrap_or(DEFAULT_HOST)
            .to_owned();
        let auth = if emulator.is_some() {
            FirestoreAuth::Emulator
        } else {
            FirestoreAuth::MetadataServer
        };
        Ok(Self {
            project,
            database: database.to_owned(),
            collection: collection.to_owned(),
            base_url,
            auth,
            metadata_host,
            ttl: DEFAULT_TTL,
            claim_timeout: CLAIM_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        })
    }
}

/// The Firestore idempotency store (see the module docs for the protocol).
#[derive(Debug)]
pub struct FirestoreStore {
    http: reqwest::Client,
    metadata: Arc<MetadataServer>,
    auth: FirestoreAuth,
    /// `projects/{p}/databases/{d}/documents`, the prefix of document names.
    documents: String,
    /// `{base}/projects/{p}/databases/{d}/documents`.
    documents_url: String,
    collection: String,
    ttl: Duration,
    claim_timeout: Duration,
    /// The `updateTime` of each claim this instance holds, so a release
    /// deletes only its own claim.
    held: Mutex<HashMap<String, String>>,
}

/// Longer encoded ids are hashed (Firestore's limit is 1,500 bytes).
const MAX_ENCODED_ID: usize = 1_000;

fn hex_digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One authorized request to Firestore; returns the status and the JSON
/// answer (`Null` when there is none). Transport failures are errors; HTTP
/// errors are the caller's to judge. A 401 forgets the cached token.
pub(crate) async fn send(
    metadata: &MetadataServer,
    auth: FirestoreAuth,
    op: &'static str,
    request: reqwest::RequestBuilder,
    body: Option<Value>,
) -> Result<(StatusCode, Value), StoreError> {
    let token = match auth {
        FirestoreAuth::MetadataServer => metadata.access_token().await?,
        FirestoreAuth::Emulator => AccessToken::new("owner"),
    };
    let mut request = request.bearer_auth(token.secret());
    if let Some(body) = body {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string());
    }
    let (status, answer) = send_for_json(request)
        .await
        .map_err(|e| backend(format!("firestore {op}: {e}")))?;
    if status == StatusCode::UNAUTHORIZED && auth == FirestoreAuth::MetadataServer {
        metadata.forget_token().await;
    }
    Ok((status, answer))
}

/// Claims this instance holds at once, at most (the pipeline completes or
/// releases each; this only bounds a leak should it not).
const MAX_HELD: usize = 10_000;

impl FirestoreStore {
    /// Builds the store; asks the metadata server for the project when
    /// `GOOGLE_CLOUD_PROJECT` is unset, and fails naming that variable when
    /// it cannot tell. Makes no Firestore call (cold starts stay short).
    pub async fn connect(config: FirestoreConfig) -> Result<Self, ConfigError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| {
                ConfigError::new("RELAY_STORE", format!("cannot start an HTTP client: {e}"))
            })?;
        let metadata = Arc::new(MetadataServer::new(&config.metadata_host, http.clone()));
        let project = match config.project {
            Some(project) => project,
            None => {
                let found = metadata.project_id().await.map_err(|e| {
                    ConfigError::new(
                        "GOOGLE_CLOUD_PROJECT",
                        format!(
                            "is not set, and the metadata server could not tell the project ({e}); set it to the project that holds the Firestore database"
                        ),
                    )
                })?;
                settings::valid_project(&found)?.to_owned()
            }
        };
        let documents = format!("projects/{project}/databases/{}/documents", config.database);
        Ok(Self {
            documents_url: format!("{}/{documents}", config.base_url),
            documents,
            http,
            metadata,
            auth: config.auth,
            collection: config.collection,
            ttl: config.ttl,
            claim_timeout: config.claim_timeout,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// `projects/{p}/databases/{d}/documents/{collection}`, for logs.
    pub fn collection_path(&self) -> String {
        format!("{}/{}", self.documents, self.collection)
    }

    /// The Firestore document id of an event: its id in base64url without
    /// padding (no `/`, never `__…__`, and distinct ids stay distinct). An
    /// id too long for Firestore (1,500 bytes) is hashed instead: `sha256.`
    /// and the hex digest (`.` is not in the base64url alphabet, so the two
    /// forms cannot meet).
    pub fn document_id(key: &EventId) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(key.as_str());
        if encoded.len() <= MAX_ENCODED_ID {
            encoded
        } else {
            format!("sha256.{}", hex_digest(key.as_str()))
        }
    }

    fn document_url(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.documents_url, self.collection)
    }

    fn document_name(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.documents, self.collection)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hold(&self, id: &str, update_time: Option<&str>) {
        let mut held = self.held();
        if held.len() >= MAX_HELD {
            held.clear();
        }
        if let Some(update_time) = update_time {
            held.insert(id.to_owned(), update_time.to_owned());
        }
    }

    /// Sends one request; returns the status and the JSON answer (`Null`
    /// when there is none). Transport failures are errors; HTTP errors are
    /// the caller's to judge.
    async fn send(
        &self,
        op: &'static str,
        request: reqwest::RequestBuilder,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), StoreError> {
        send(&self.metadata, self.auth, op, request, body).await
    }

    /// The Duo group index in the same collection ([`crate::groups`]),
    /// sharing this store's client and token.
    pub fn group_index(&self) -> crate::groups::FirestoreGroupIndex {
        crate::groups::FirestoreGroupIndex::new(
            self.http.clone(),
            Arc::clone(&self.metadata),
            self.auth,
            self.documents.clone(),
            self.documents_url.clone(),
            self.collection.clone(),
        )
    }

    fn fields(&self, key: &EventId, state: State, expires_at: u64, nonce: Option<&str>) -> Value {
        let mut fields = json!({
            "state": { "stringValue": state.as_str() },
            "expires_at": { "timestampValue": format_rfc3339(expires_at) },
            "event_id": { "stringValue": key.as_str() },
        });
        if let Some(nonce) = nonce {
            fields["claim_id"] = json!({ "stringValue": nonce });
        }
        fields
    }

    /// After a claim write failed without a verdict (its answer was lost,
    /// e.g. a timeout after Firestore applied it): `New` when the document
    /// holds this claim's nonce — the write landed — else the error. Without
    /// this, the claim would sit there unowned and the IdP's retry would be
    /// told "in progress" and then never come back.
    async fn recover_claim(
        &self,
        id: &str,
        nonce: &str,
        error: StoreError,
    ) -> Result<Claim, StoreError> {
        match self.read(id).await {
            Ok(Some(entry)) if entry.claim_id.as_deref() == Some(nonce) => {
                self.hold(id, Some(&entry.update_time));
                Ok(Claim::New)
            }
            _ => Err(error),
        }
    }

    async fn read(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let (status, answer) = self
            .send("read", self.http.get(self.document_url(id)), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(firestore_error("read", status, &answer));
        }
        let update_time = answer["updateTime"]
            .as_str()
            .ok_or_else(|| backend("firestore read: the document has no updateTime"))?
            .to_owned();
        let fields = &answer["fields"];
        Ok(Some(Entry {
            state: match fields["state"]["stringValue"].as_str() {
                Some("done") => State::Done,
                _ => State::Claimed,
            },
            // A document without a readable deadline must not block an
            // event forever: it counts as expired.
            expires_at: fields["expires_at"]["timestampValue"]
                .as_str()
                .and_then(parse_rfc3339)
                .unwrap_or(0),
            claim_id: fields["claim_id"]["stringValue"]
                .as_str()
                .map(str::to_owned),
            update_time,
        }))
    }

    /// One `commit` with one conditional write.
    async fn commit(&self, op: &'static str, write: Value) -> Result<Commit, StoreError> {
        let (status, answer) = self
            .send(
                op,
                self.http.post(format!("{}:commit", self.documents_url)),
                Some(json!({ "writes": [write] })),
            )
            .await?;
        if status.is_success() {
            return Ok(Commit::Written(
                answer["writeResults"][0]["updateTime"]
                    .as_str()
                    .map(str::to_owned),
            ));
        }
        // The document changed or vanished since it was read (or, for an
        // `exists: false` write, appeared). Firestore answers
        // FAILED_PRECONDITION (HTTP 400); 412, NOT_FOUND and ALREADY_EXISTS
        // are taken the same way.
        if status == StatusCode::PRECONDITION_FAILED
            || matches!(
                grpc_status(&answer),
                "FAILED_PRECONDITION" | "NOT_FOUND" | "ALREADY_EXISTS"
            )
        {
            return Ok(Commit::PreconditionFailed);
        }
        Err(firestore_error(op, status, &answer))
    }
}

/// The prefix of watermark document ids. `.` is not in the base64url
/// alphabet, so a watermark id never equals an event's; and `mark.` is not
/// `sha256.`.
pub const MARK_PREFIX: &str = "mark.";

/// A stored watermark as `set_watermark` reads it.
#[derive(Debug)]
struct Mark {
    at_ms: i64,
    expires_at: u64,
    update_time: String,
}

impl FirestoreStore {
    /// The document id of a watermark key (`user:okta:00u…/state`, …):
    /// `mark.` + the key in base64url, or `mark.sha256.` + its hex digest
    /// when too long.
    pub fn mark_document_id(key: &str) -> String {
        let encoded = URL_SAFE_NO_PAD.encode(key);
        if encoded.len() <= MAX_ENCODED_ID {
            format!("{MARK_PREFIX}{encoded}")
        } else {
            format!("{MARK_PREFIX}sha256.{}", hex_digest(key))
        }
    }

    async fn read_mark(&self, id: &str) -> Result<Option<Mark>, StoreError> {
        let (status, answer) = self
            .send("read watermark", self.http.get(self.document_url(id)), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(firestore_error("read watermark", status, &answer));
        }
        let update_time = answer["updateTime"]
            .as_str()
            .ok_or_else(|| backend("firestore read watermark: the document has no updateTime"))?
            .to_owned();
        let fields = &answer["fields"];
        let at_ms = match &fields["at_ms"]["integerValue"] {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| backend("firestore read watermark: the document has no at_ms"))?;
        Ok(Some(Mark {
            at_ms,
            // Unreadable deadline: expired.
            expires_at: fields["expires_at"]["timestampValue"]
                .as_str()
                .and_then(parse_rfc3339)
                .unwrap_or(0),
            update_time,
        }))
    }
}

impl fmt::Display for FirestoreStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "firestore {}", self.collection_path())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Claimed,
    Done,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Claimed => "claimed",
            Self::Done => "done",
        }
    }
}

#[derive(Debug)]
struct Entry {
    state: State,
    expires_at: u64,
    claim_id: Option<String>,
    update_time: String,
}

#[derive(Debug)]
enum Commit {
    Written(Option<String>),
    PreconditionFailed,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The `status` of Firestore's error body
/// (`{"error":{"code":409,"message":"…","status":"ALREADY_EXISTS"}}`).
fn grpc_status(answer: &Value) -> &str {
    answer["error"]["status"].as_str().unwrap_or("")
}

pub(crate) fn firestore_error(op: &str, status: StatusCode, answer: &Value) -> StoreError {
    let message: String = answer["error"]["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let grpc = grpc_status(answer);
    backend(format!(
        "firestore {op}: HTTP {} {}{}{}",
        status.as_u16(),
        if grpc.is_empty() {
            "(no error body)"
        } else {
            grpc
        },
        if message.is_empty() { "" } else { ": " },
        message
    ))
}

impl IdempotencyStore for FirestoreStore {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        let id = Self::document_id(key);
        // Marks this claim's writes (see `recover_claim`).
        let nonce = format!("{:016x}", fastrand::u64(..));
        // A few rounds at most: the document can vanish between the refused
        // create and the read (released, or deleted by the TTL policy).
        for _ in 0..3 {
            let now = now_secs();
            let claimed = self.fields(
                key,
                State::Claimed,
                now + self.claim_timeout.as_secs(),
                Some(&nonce),
            );
            // base64url needs no escaping in a query string.
            let create = self.http.post(format!(
                "{}/{}?documentId={id}",
                self.documents_url, self.collection
            ));
            let (status, answer) = match self
                .send("claim", create, Some(json!({ "fields": claimed })))
                .await
            {
                Ok(answer) => answer,
                Err(e) => return self.recover_claim(&id, &nonce, e).await,
            };
            if status.is_success() {
                self.hold(&id, answer["updateTime"].as_str());
                return Ok(Claim::New);
            }
            if status != StatusCode::CONFLICT && grpc_status(&answer) != "ALREADY_EXISTS" {
                return Err(firestore_error("claim", status, &answer));
            }
            let Some(entry) = self.read(&id).await? else {
                continue;
            };
            if entry.expires_at > now {
                return Ok(match entry.state {
                    State::Done => Claim::Done,
                    State::Claimed => Claim::InProgress,
                });
            }
            // Expired: a crashed instance's claim, or a done entry past its
            // TTL that Firestore has not deleted yet. Take it over unless
            // someone else does first.
            let write = json!({
                "update": { "name": self.document_name(&id), "fields": claimed },
                "currentDocument": { "updateTime": entry.update_time },
            });
            let outcome = match self.commit("claim takeover", write).await {
                Ok(outcome) => outcome,
                Err(e) => return self.recover_claim(&id, &nonce, e).await,
            };
            return match outcome {
                Commit::Written(update_time) => {
                    tracing::debug!(event_id = %key, "took over an expired idempotency entry");
                    self.hold(&id, update_time.as_deref());
                    Ok(Claim::New)
                }
                Commit::PreconditionFailed => Ok(Claim::InProgress),
            };
        }
        Err(backend(
            "firestore claim: the document kept changing under this claim; try again",
        ))
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        let id = Self::document_id(key);
        let done = self.fields(key, State::Done, now_secs() + self.ttl.as_secs(), None);
        let (status, answer) = self
            .send(
                "complete",
                self.http.patch(self.document_url(&id)),
                Some(json!({ "fields": done })),
            )
            .await?;
        if !status.is_success() {
            return Err(firestore_error("complete", status, &answer));
        }
        self.held().remove(&id);
        Ok(())
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        let id = Self::document_id(key);
        let held = self.held().remove(&id);
        let update_time = match held {
            Some(update_time) => update_time,
            // Not this instance's claim (or its answer carried no time):
            // release only a claim, never a done entry.
            None => match self.read(&id).await? {
                Some(entry) if entry.state == State::Claimed => entry.update_time,
                _ => return Ok(()),
            },
        };
        let write = json!({
            "delete": self.document_name(&id),
            "currentDocument": { "updateTime": update_time },
        });
        // PreconditionFailed: taken over or completed meanwhile; leave it.
        self.commit("release", write).await?;
        Ok(())
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let now = now_secs();
        Ok(self
            .read_mark(&Self::mark_document_id(key))
            .await?
            .filter(|mark| mark.expires_at > now)
            .map(|mark| mark.at_ms))
    }

    /// Keeps the newer time against concurrent writers: the write is
    /// conditional on the document being as it was read (`updateTime`, or
    /// `exists: false` when there was none); a lost race reads again.
    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        let id = Self::mark_document_id(key);
        let readable: String = key.chars().take(1024).collect();
        for _ in 0..5 {
            let now = now_secs();
            let stored = self.read_mark(&id).await?;
            let precondition = match &stored {
                Some(mark) if mark.expires_at > now && mark.at_ms >= at_ms => return Ok(()),
                Some(mark) => json!({ "updateTime": mark.update_time }),
                None => json!({ "exists": false }),
            };
            let write = json!({
                "update": {
                    "name": self.document_name(&id),
                    "fields": {
                        "at_ms": { "integerValue": at_ms.to_string() },
                        "expires_at": { "timestampValue": format_rfc3339(now + self.ttl.as_secs()) },
                        "key": { "stringValue": readable },
                    },
                },
                "currentDocument": precondition,
            });
            match self.commit("write watermark", write).await? {
                Commit::Written(_) => return Ok(()),
                Commit::PreconditionFailed => {}
            }
        }
        Err(backend(
            "firestore watermark: the document kept changing; try again",
        ))
    }
}
