//! The idempotency store on Azure Table Storage, over its REST API.
//!
//! No Azure SDK crate: the store needs five calls (create table, insert,
//! get, update/insert-or-replace, delete), and SharedKey signing is a dozen
//! lines, while the SDK crates bring their own HTTP stack, async runtime
//! glue and a large dependency tree into a binary whose cold start and size
//! matter. `reqwest` (already in the workspace) does the HTTP.
//!
//! One entity per event: PartitionKey = the event's source (`okta`,
//! `auth0`, `auth0-logs`), RowKey = the whole event id in base64url (Table
//! keys forbid `/ \ # ?` and control characters; base64url has none of
//! them), properties `state` (`claimed` | `done`), `expires_at` (epoch
//! seconds, Edm.Int64) and `event_id` (the id as text, for people reading
//! the table), and on a claim `claim_token`. The claim and watermark
//! protocol is relay-core's one ([`relay_core::store::claim`]); this module
//! is its compare-and-swap adapter ([`TableCas`]), with the entity's ETag as
//! the version:
//!
//! - get: Get Entity (the ETag comes back in its header);
//! - put_if_absent: Insert Entity (`POST`; 409 EntityAlreadyExists is a
//!   conflict);
//! - replace_if_version / delete_if_version: Update (`PUT`) / Delete with
//!   `If-Match: <etag>` (412 or 404 is a conflict);
//! - put: Insert Or Replace (`PUT` without `If-Match`).
//!
//! Watermarks (queue mode's per-subject event times, see
//! `relay_core::order`) live in the same table under PartitionKey
//! `watermark`, RowKey = the watermark key in base64url, properties `at_ms`
//! and `expires_at` (Edm.Int64) and `key` (readable).
//!
//! Every failure is a [`StoreError::Backend`]: the pipeline answers 503 and
//! the IdP retries. The Table service has no TTL of its own: expired
//! entities stay until the same event id comes again (then they are
//! overwritten); at about 150 bytes each that is noise next to the storage
//! account's other use.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relay_core::event::EventId;
use relay_core::store::claim::hashed_key;
use relay_core::store::{
    CLAIM_TIMEOUT, Cas, CasStore, Cond, DEFAULT_TTL, Record, Slot, StoreError, Versioned,
};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::identity::TokenSource;
use crate::settings::{Credential, TableSettings};
use crate::shared_key::{self, API_VERSION, AccountKey};

/// Each call to the Table service gives up after this long: the store runs
/// inside the webhook request, and Okta gives up after about 3 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// RowKeys are at most 1 KiB; a (pathological) id whose base64url would be
/// longer is stored under `~` + the hex SHA-256 of the id instead (`~` is
/// not in the base64url alphabet, so the two forms never collide).
const MAX_ENCODED_ROW_KEY: usize = 512;

/// Properties are at most 64 KiB; the readable copy of the id is capped.
const MAX_EVENT_ID_PROPERTY: usize = 1024;

const JSON: &str = "application/json";
const ACCEPT: &str = "application/json;odata=nometadata";

/// The idempotency store on Azure Table Storage. Cheap to clone (shared).
#[derive(Clone)]
pub struct TableStore {
    claims: Arc<CasStore<TableCas>>,
}

relay_core::idempotency_store_via_cas!(TableStore, claims);

/// The Table service client: the compare-and-swap primitives of the claim
/// protocol, and signed requests for the group index. Cheap to clone.
#[derive(Clone)]
pub struct TableCas {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    table: String,
    auth: Auth,
}

enum Auth {
    SharedKey { account: String, key: AccountKey },
    Bearer(TokenSource),
}

impl fmt::Debug for TableCas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::SharedKey { account, .. } => format!("SharedKey({account}, [redacted])"),
            Auth::Bearer(_) => "ManagedIdentity".to_owned(),
        };
        f.debug_struct("TableCas")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("table", &self.inner.table)
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TableStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableStore")
            .field("table", self.claims.backend())
            .field("ttl", &self.claims.ttl())
            .field("claim_timeout", &self.claims.claim_timeout())
            .finish()
    }
}

/// What one Table service call answered.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    etag: Option<String>,
    pub(crate) body: bytes::Bytes,
    /// A query's continuation (`x-ms-continuation-NextPartitionKey`,
    /// `…-NextRowKey`): more entities to read.
    pub(crate) continuation: Option<(String, Option<String>)>,
}

impl Answer {
    /// The service's error code (`EntityAlreadyExists`, …) from the JSON
    /// error body, if any.
    fn error_code(&self) -> Option<String> {
        let v: Value = serde_json::from_slice(&self.body).ok()?;
        v.get("odata.error")
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    pub(crate) fn unexpected(&self, operation: &str) -> StoreError {
        let code = self.error_code().unwrap_or_default();
        let hint = if self.status == StatusCode::FORBIDDEN {
            " (the account key or the identity's role does not allow it)"
        } else {
            ""
        };
        StoreError::Backend(format!(
            "Azure Table Storage {operation}: HTTP {} {code}{hint}",
            self.status.as_u16()
        ))
    }
}

/// (PartitionKey, RowKey) of an event id; see the module docs.
pub fn entity_keys(id: &EventId) -> (String, String) {
    let text = id.as_str();
    let partition = text
        .split_once(':')
        .map(|(source, _)| source)
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .unwrap_or("other");
    (partition.to_owned(), row_key(text))
}

/// A RowKey for any text: base64url, or `~` + hex SHA-256 when too long.
fn row_key(text: &str) -> String {
    hashed_key(
        URL_SAFE_NO_PAD.encode(text.as_bytes()),
        MAX_ENCODED_ROW_KEY,
        "~",
        text,
    )
}

/// The PartitionKey of watermarks: not an event source label, so a
/// watermark never meets an event's entity.
pub const WATERMARK_PARTITION: &str = "watermark";

/// (PartitionKey, RowKey) of a watermark key (`user:okta:00u…:state`, …).
pub fn watermark_keys(key: &str) -> (String, String) {
    (WATERMARK_PARTITION.to_owned(), row_key(key))
}

/// The PartitionKey of the catch-up checkpoints (one entity per log
/// source, RowKey the source): not an event source label either.
pub const CHECKPOINT_PARTITION: &str = "catch-up";

fn slot_keys(slot: Slot<'_>) -> (String, String) {
    match slot {
        Slot::Event(id) => entity_keys(id),
        Slot::Mark(key) => watermark_keys(key),
        Slot::Checkpoint(source) => (CHECKPOINT_PARTITION.to_owned(), row_key(source)),
    }
}

/// An entity read back without the properties (or ETag) this store wrote.
fn malformed(operation: &str) -> StoreError {
    StoreError::Backend(format!(
        "Azure Table Storage {operation}: unexpected entity shape"
    ))
}

fn int_property(value: &Value, name: &str) -> Option<i64> {
    match value.get(name) {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
}

/// The entity of `record` in `slot` (Int64 travels as a string with its
/// type annotation in JSON).
fn entity(slot: Slot<'_>, record: &Record) -> String {
    let (partition, row) = slot_keys(slot);
    let readable = |text: &str| text.chars().take(MAX_EVENT_ID_PROPERTY).collect::<String>();
    let mut body = json!({
        "PartitionKey": partition,
        "RowKey": row,
        "expires_at": record.until().to_string(),
        "expires_at@odata.type": "Edm.Int64",
    });
    match slot {
        Slot::Event(id) => body["event_id"] = json!(readable(id.as_str())),
        Slot::Mark(key) | Slot::Checkpoint(key) => body["key"] = json!(readable(key)),
    }
    match record {
        Record::Claimed { token, .. } => {
            body["state"] = json!("claimed");
            body["claim_token"] = json!(token);
        }
        Record::Done { .. } => body["state"] = json!("done"),
        Record::Mark { at_ms, .. } => {
            body["at_ms"] = json!(at_ms.to_string());
            body["at_ms@odata.type"] = json!("Edm.Int64");
        }
        Record::Checkpoint {
            body: checkpoint, ..
        } => body["checkpoint"] = json!(checkpoint),
    }
    body.to_string()
}

/// The record an entity holds. An unreadable expiry counts as expired.
fn record(value: &Value, operation: &str) -> Result<Record, StoreError> {
    let until = int_property(value, "expires_at")
        .and_then(|e| u64::try_from(e).ok())
        .unwrap_or(0);
    if let Some(checkpoint) = value.get("checkpoint") {
        let body = checkpoint.as_str().ok_or_else(|| malformed(operation))?;
        return Ok(Record::Checkpoint {
            body: body.to_owned(),
            until,
        });
    }
    if value.get("at_ms").is_some() {
        let at_ms = int_property(value, "at_ms").ok_or_else(|| malformed(operation))?;
        return Ok(Record::Mark { at_ms, until });
    }
    match value.get("state").and_then(Value::as_str) {
        Some("done") => Ok(Record::Done { until }),
        Some(_) => Ok(Record::Claimed {
            until,
            token: value
                .get("claim_token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        None => Err(malformed(operation)),
    }
}

impl TableStore {
    /// A store with the default TTL (7 days) and claim timeout (120 s).
    pub fn new(settings: TableSettings) -> Result<Self, StoreError> {
        Self::with_timeouts(settings, DEFAULT_TTL, CLAIM_TIMEOUT)
    }

    /// A store with explicit TTL and claim timeout (tests shorten them).
    pub fn with_timeouts(
        settings: TableSettings,
        ttl: Duration,
        claim_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let cas = TableCas::new(settings)?;
        Ok(Self {
            claims: Arc::new(CasStore::with_timeouts(cas, ttl, claim_timeout)),
        })
    }

    fn cas(&self) -> &TableCas {
        self.claims.backend()
    }

    pub fn table_name(&self) -> &str {
        &self.cas().inner.table
    }

    /// The catch-up checkpoints in the same table.
    pub fn checkpoints(&self) -> relay_core::catch_up::CasCheckpoints<TableCas> {
        relay_core::catch_up::CasCheckpoints::new(Arc::clone(&self.claims))
    }

    /// The Duo group index in the same table ([`crate::groups`]).
    pub fn group_index(&self) -> crate::TableGroupIndex {
        crate::TableGroupIndex::new(self.cas().clone())
    }

    /// The Table service endpoint (no credentials in it).
    pub fn endpoint(&self) -> &Url {
        &self.cas().inner.endpoint
    }

    /// Creates the table unless it exists (start-up; 409
    /// TableAlreadyExists is success).
    pub async fn create_table_if_absent(&self) -> Result<(), StoreError> {
        self.cas().create_table_if_absent().await
    }
}

impl TableCas {
    fn new(settings: TableSettings) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| StoreError::Backend(format!("Azure Table Storage client: {e}")))?;
        let auth = match settings.credential {
            Credential::SharedKey { account, key } => Auth::SharedKey { account, key },
            Credential::ManagedIdentity(identity) => Auth::Bearer(TokenSource::new(identity)),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint: settings.endpoint,
                table: settings.table,
                auth,
            }),
        })
    }

    pub fn table_name(&self) -> &str {
        &self.inner.table
    }

    /// Creates the table unless it exists (start-up; 409
    /// TableAlreadyExists is success).
    pub async fn create_table_if_absent(&self) -> Result<(), StoreError> {
        let body = json!({ "TableName": self.inner.table }).to_string();
        let answer = self
            .send(
                "create table",
                Method::POST,
                "Tables",
                Some(body),
                &[("Prefer", "return-no-content")],
            )
            .await?;
        match answer.status {
            StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::CONFLICT if answer.error_code().as_deref() != Some("TableBeingDeleted") => {
                Ok(())
            }
            _ => Err(answer.unexpected("create table")),
        }
    }

    pub(crate) fn entity_path(&self, partition: &str, row: &str) -> String {
        // Keys never hold a quote (source labels and base64url), so no
        // '' escaping is needed.
        format!(
            "{}(PartitionKey='{partition}',RowKey='{row}')",
            self.inner.table
        )
    }

    /// One signed request to `<endpoint>/<resource>` (a query string in
    /// `resource` is not signed: SharedKey signs the path only).
    pub(crate) async fn send(
        &self,
        operation: &str,
        method: Method,
        resource: &str,
        body: Option<String>,
        extra: &[(&str, &str)],
    ) -> Result<Answer, StoreError> {
        let inner = &*self.inner;
        let url = format!(
            "{}/{resource}",
            inner.endpoint.as_str().trim_end_matches('/')
        );
        let url = Url::parse(&url).map_err(|_| {
            StoreError::Backend(format!("Azure Table Storage {operation}: bad request URL"))
        })?;
        let date = shared_key::rfc1123(SystemTime::now());
        let content_type = if body.is_some() { JSON } else { "" };
        let authorization = match &inner.auth {
            Auth::SharedKey { account, key } => {
                // The path exactly as it goes on the wire (Url keeps the
                // table's `(PartitionKey='…',RowKey='…')` unescaped).
                let resource = shared_key::canonicalized_resource(account, url.path(), None);
                let to_sign =
                    shared_key::string_to_sign(method.as_str(), "", content_type, &date, &resource);
                shared_key::authorization(account, key, &to_sign)
            }
            Auth::Bearer(tokens) => format!("Bearer {}", tokens.token(&inner.http).await?),
        };
        let mut request = inner
            .http
            .request(method, url)
            .header("x-ms-date", &date)
            .header("x-ms-version", API_VERSION)
            .header("Accept", ACCEPT)
            .header("DataServiceVersion", "3.0;NetFx")
            .header("MaxDataServiceVersion", "3.0;NetFx")
            .header("Authorization", authorization);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header("Content-Type", content_type).body(body);
        }
        let response = request.send().await.map_err(|e| {
            StoreError::Backend(format!(
                "Azure Table Storage {operation}: cannot reach {}: {}",
                inner.endpoint.host_str().unwrap_or("the endpoint"),
                e.without_url()
            ))
        })?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let etag = header("ETag");
        let continuation = header("x-ms-continuation-NextPartitionKey")
            .map(|partition| (partition, header("x-ms-continuation-NextRowKey")));
        let body = response.bytes().await.map_err(|e| {
            StoreError::Backend(format!(
                "Azure Table Storage {operation}: reading the answer: {}",
                e.without_url()
            ))
        })?;
        Ok(Answer {
            status,
            etag,
            body,
            continuation,
        })
    }

    fn slot_path(&self, slot: Slot<'_>) -> String {
        let (partition, row) = slot_keys(slot);
        self.entity_path(&partition, &row)
    }
}

fn operation(slot: Slot<'_>, event: &'static str, mark: &'static str) -> &'static str {
    match slot {
        Slot::Event(_) => event,
        Slot::Mark(_) => mark,
        Slot::Checkpoint(_) => "catch-up checkpoint",
    }
}

impl Cas for TableCas {
    async fn get(&self, slot: Slot<'_>) -> Result<Option<Versioned>, StoreError> {
        let op = operation(slot, "get entity", "get watermark");
        let answer = self
            .send(op, Method::GET, &self.slot_path(slot), None, &[])
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(answer.unexpected(op)),
        }
        match (serde_json::from_slice::<Value>(&answer.body), answer.etag) {
            (Ok(value), Some(version)) => Ok(Some(Versioned {
                record: record(&value, op)?,
                version,
            })),
            _ => Err(malformed(op)),
        }
    }

    async fn put_if_absent(&self, slot: Slot<'_>, record: &Record) -> Result<Cond, StoreError> {
        let op = operation(slot, "insert entity", "insert watermark");
        let answer = self
            .send(
                op,
                Method::POST,
                &self.inner.table,
                Some(entity(slot, record)),
                &[("Prefer", "return-no-content")],
            )
            .await?;
        match answer.status {
            StatusCode::CREATED | StatusCode::NO_CONTENT => Ok(Cond::Written(answer.etag)),
            StatusCode::CONFLICT => Ok(Cond::Conflict(None)),
            _ => Err(answer.unexpected(op)),
        }
    }

    async fn replace_if_version(
        &self,
        slot: Slot<'_>,
        record: &Record,
        version: &str,
    ) -> Result<Cond, StoreError> {
        let op = operation(slot, "replace expired entity", "replace watermark");
        let answer = self
            .send(
                op,
                Method::PUT,
                &self.slot_path(slot),
                Some(entity(slot, record)),
                &[("If-Match", version)],
            )
            .await?;
        match answer.status {
            s if s.is_success() => Ok(Cond::Written(answer.etag)),
            StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => Ok(Cond::Conflict(None)),
            _ => Err(answer.unexpected(op)),
        }
    }

    async fn put(&self, slot: Slot<'_>, record: &Record) -> Result<(), StoreError> {
        // PUT without If-Match = Insert Or Replace Entity.
        let op = "insert or replace entity";
        let answer = self
            .send(
                op,
                Method::PUT,
                &self.slot_path(slot),
                Some(entity(slot, record)),
                &[],
            )
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.unexpected(op))
        }
    }

    async fn delete_if_version(&self, slot: Slot<'_>, version: &str) -> Result<bool, StoreError> {
        let op = "delete entity";
        let answer = self
            .send(
                op,
                Method::DELETE,
                &self.slot_path(slot),
                None,
                &[("If-Match", version)],
            )
            .await?;
        match answer.status {
            s if s.is_success() => Ok(true),
            // 404: already gone; 412: taken over or completed meanwhile.
            StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED => Ok(false),
            _ => Err(answer.unexpected(op)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relay_core::event::Source;

    #[test]
    fn keys_are_safe_for_the_table_service() {
        for raw in [
            "a/b",
            "a\\b",
            "a#b",
            "a?b",
            "tab\tnew\nline",
            "ünïcødé ✓",
            "x'y",
        ] {
            let id = EventId::new(Source::Okta, raw);
            let (pk, rk) = entity_keys(&id);
            assert_eq!(pk, "okta");
            assert!(
                rk.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{rk}"
            );
            let decoded = URL_SAFE_NO_PAD.decode(&rk).unwrap();
            // The row key carries the event id exactly (which itself
            // escapes `#` and `%` of the IdP's id).
            assert_eq!(decoded, id.as_str().as_bytes());
        }
        let (pk, _) = entity_keys(&EventId::new(Source::Auth0Logs, "90020"));
        assert_eq!(pk, "auth0-logs");
        let long = "z".repeat(2000);
        let (_, rk) = entity_keys(&EventId::new(Source::Auth0Events, &long));
        assert!(rk.starts_with('~') && rk.len() == 65);
    }
}
