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
//! The claim and watermark protocol is relay-core's one
//! ([`relay_core::store::claim`]); this module is its compare-and-swap
//! adapter ([`FirestoreCas`]), with the document's `updateTime` as the
//! version:
//! - get: `GET` the document;
//! - put_if_absent: `createDocument` with the document id (409
//!   `ALREADY_EXISTS` is a conflict: atomic across instances);
//! - replace_if_version / delete_if_version: a `commit` whose write carries
//!   `currentDocument.updateTime` = the time read (`FAILED_PRECONDITION` is
//!   a conflict);
//! - put: `patch` (an upsert).
//!
//! TTL deletion is lazy, so expired documents linger; the protocol treats
//! them as absent.
//!
//! Watermarks (queue mode's per-subject event times, `relay_core::order`)
//! live in the same collection — so the same TTL policy on `expires_at`
//! removes them — as documents `mark.<key in base64url>` with fields
//! `at_ms` (integer), `expires_at` and `key` (readable).
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

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relay_core::config::{ConfigError, RawConfig, optional};
use relay_core::event::EventId;
use relay_core::store::claim::hashed_key;
use relay_core::store::{
    CLAIM_TIMEOUT, Cas, CasStore, Cond, DEFAULT_TTL, Record, Slot, StoreError, Versioned,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::metadata::{AccessToken, DEFAULT_HOST, MetadataServer, backend, send_for_json};
use crate::settings;
use relay_core::time::{parse_rfc3339_secs as parse_rfc3339, rfc3339_secs as format_rfc3339};

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
    pub(crate) claims: Arc<CasStore<FirestoreCas>>,
}

relay_core::idempotency_store_via_cas!(FirestoreStore, claims);

/// The compare-and-swap primitives on one Firestore collection.
#[derive(Debug)]
pub struct FirestoreCas {
    pub(crate) http: reqwest::Client,
    pub(crate) metadata: Arc<MetadataServer>,
    pub(crate) auth: FirestoreAuth,
    /// `projects/{p}/databases/{d}/documents`, the prefix of document names.
    pub(crate) documents: String,
    /// `{base}/projects/{p}/databases/{d}/documents`.
    pub(crate) documents_url: String,
    pub(crate) collection: String,
}

/// Longer encoded ids are hashed (Firestore's limit is 1,500 bytes).
const MAX_ENCODED_ID: usize = 1_000;

/// The prefix of watermark document ids. `.` is not in the base64url
/// alphabet, so a watermark id never equals an event's; and `mark.` is not
/// `sha256.`.
pub const MARK_PREFIX: &str = "mark.";

/// The prefix of catch-up checkpoint document ids (`checkpoint.` + the log
/// source in base64url): like [`MARK_PREFIX`], never an event's id.
pub const CHECKPOINT_PREFIX: &str = "checkpoint.";

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
        let cas = FirestoreCas {
            documents_url: format!("{}/{documents}", config.base_url),
            documents,
            http,
            metadata,
            auth: config.auth,
            collection: config.collection,
        };
        Ok(Self {
            claims: Arc::new(CasStore::with_timeouts(
                cas,
                config.ttl,
                config.claim_timeout,
            )),
        })
    }

    /// The catch-up checkpoints in the same collection.
    pub fn checkpoints(&self) -> relay_core::catch_up::CasCheckpoints<FirestoreCas> {
        relay_core::catch_up::CasCheckpoints::new(Arc::clone(&self.claims))
    }

    /// `projects/{p}/databases/{d}/documents/{collection}`, for logs.
    pub fn collection_path(&self) -> String {
        let cas = self.claims.backend();
        format!("{}/{}", cas.documents, cas.collection)
    }

    /// The Firestore document id of an event: its id in base64url without
    /// padding (no `/`, never `__…__`, and distinct ids stay distinct). An
    /// id too long for Firestore (1,500 bytes) is hashed instead: `sha256.`
    /// and the hex digest (`.` is not in the base64url alphabet, so the two
    /// forms cannot meet).
    pub fn document_id(key: &EventId) -> String {
        hashed_key(
            URL_SAFE_NO_PAD.encode(key.as_str()),
            MAX_ENCODED_ID,
            "sha256.",
            key.as_str(),
        )
    }

    /// The document id of a watermark key (`user:okta:00u…/state`, …):
    /// `mark.` + the key in base64url, or `mark.sha256.` + its hex digest
    /// when too long.
    pub fn mark_document_id(key: &str) -> String {
        hashed_key(
            format!("{MARK_PREFIX}{}", URL_SAFE_NO_PAD.encode(key)),
            MARK_PREFIX.len() + MAX_ENCODED_ID,
            &format!("{MARK_PREFIX}sha256."),
            key,
        )
    }
}

impl fmt::Display for FirestoreStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "firestore {}", self.collection_path())
    }
}

#[derive(Debug)]
enum Commit {
    Written(Option<String>),
    PreconditionFailed,
}

fn document_id(slot: Slot<'_>) -> String {
    match slot {
        Slot::Event(key) => FirestoreStore::document_id(key),
        Slot::Mark(key) => FirestoreStore::mark_document_id(key),
        Slot::Checkpoint(source) => {
            format!("{CHECKPOINT_PREFIX}{}", URL_SAFE_NO_PAD.encode(source))
        }
    }
}

/// The document fields of `record` in `slot`.
fn fields(slot: Slot<'_>, record: &Record) -> Value {
    let mut fields = json!({
        "expires_at": { "timestampValue": format_rfc3339(record.until()) },
    });
    match slot {
        Slot::Event(key) => fields["event_id"] = json!({ "stringValue": key.as_str() }),
        Slot::Mark(key) | Slot::Checkpoint(key) => {
            let readable: String = key.chars().take(1024).collect();
            fields["key"] = json!({ "stringValue": readable });
        }
    }
    match record {
        Record::Claimed { token, .. } => {
            fields["state"] = json!({ "stringValue": "claimed" });
            fields["claim_id"] = json!({ "stringValue": token });
        }
        Record::Done { .. } => fields["state"] = json!({ "stringValue": "done" }),
        Record::Mark { at_ms, .. } => {
            fields["at_ms"] = json!({ "integerValue": at_ms.to_string() });
        }
        Record::Checkpoint { body, .. } => {
            fields["checkpoint"] = json!({ "stringValue": body });
        }
    }
    fields
}

/// The record a document holds. A document without a readable deadline
/// must not block an event forever: it counts as expired.
fn record(fields: &Value) -> Result<Record, StoreError> {
    let until = fields["expires_at"]["timestampValue"]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or(0);
    if !fields["checkpoint"].is_null() {
        let body = fields["checkpoint"]["stringValue"]
            .as_str()
            .ok_or_else(|| {
                backend("firestore read checkpoint: the document has no string checkpoint")
            })?;
        return Ok(Record::Checkpoint {
            body: body.to_owned(),
            until,
        });
    }
    if !fields["at_ms"].is_null() {
        let at_ms = match &fields["at_ms"]["integerValue"] {
            Value::String(s) => s.parse::<i64>().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| backend("firestore read watermark: the document has no at_ms"))?;
        return Ok(Record::Mark { at_ms, until });
    }
    Ok(match fields["state"]["stringValue"].as_str() {
        Some("done") => Record::Done { until },
        _ => Record::Claimed {
            until,
            token: fields["claim_id"]["stringValue"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        },
    })
}

impl FirestoreCas {
    fn document_url(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.documents_url, self.collection)
    }

    fn document_name(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.documents, self.collection)
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

impl Cas for FirestoreCas {
    async fn get(&self, slot: Slot<'_>) -> Result<Option<Versioned>, StoreError> {
        let id = document_id(slot);
        let (status, answer) = self
            .send("read", self.http.get(self.document_url(&id)), None)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(firestore_error("read", status, &answer));
        }
        let version = answer["updateTime"]
            .as_str()
            .ok_or_else(|| backend("firestore read: the document has no updateTime"))?
            .to_owned();
        Ok(Some(Versioned {
            record: record(&answer["fields"])?,
            version,
        }))
    }

    async fn put_if_absent(&self, slot: Slot<'_>, record: &Record) -> Result<Cond, StoreError> {
        // base64url needs no escaping in a query string.
        let create = self.http.post(format!(
            "{}/{}?documentId={}",
            self.documents_url,
            self.collection,
            document_id(slot)
        ));
        let (status, answer) = self
            .send(
                "create",
                create,
                Some(json!({ "fields": fields(slot, record) })),
            )
            .await?;
        if status.is_success() {
            return Ok(Cond::Written(
                answer["updateTime"].as_str().map(str::to_owned),
            ));
        }
        if status == StatusCode::CONFLICT || grpc_status(&answer) == "ALREADY_EXISTS" {
            return Ok(Cond::Conflict(None));
        }
        Err(firestore_error("create", status, &answer))
    }

    async fn replace_if_version(
        &self,
        slot: Slot<'_>,
        record: &Record,
        version: &str,
    ) -> Result<Cond, StoreError> {
        let write = json!({
            "update": { "name": self.document_name(&document_id(slot)), "fields": fields(slot, record) },
            "currentDocument": { "updateTime": version },
        });
        Ok(match self.commit("replace", write).await? {
            Commit::Written(version) => Cond::Written(version),
            Commit::PreconditionFailed => Cond::Conflict(None),
        })
    }

    async fn put(&self, slot: Slot<'_>, record: &Record) -> Result<(), StoreError> {
        let (status, answer) = self
            .send(
                "complete",
                self.http.patch(self.document_url(&document_id(slot))),
                Some(json!({ "fields": fields(slot, record) })),
            )
            .await?;
        if !status.is_success() {
            return Err(firestore_error("complete", status, &answer));
        }
        Ok(())
    }

    async fn delete_if_version(&self, slot: Slot<'_>, version: &str) -> Result<bool, StoreError> {
        let write = json!({
            "delete": self.document_name(&document_id(slot)),
            "currentDocument": { "updateTime": version },
        });
        Ok(matches!(
            self.commit("release", write).await?,
            Commit::Written(_)
        ))
    }
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
