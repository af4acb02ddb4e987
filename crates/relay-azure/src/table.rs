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
//! the table). The semantics are [`relay_core::store::MemoryStore`]'s:
//!
//! - **claim**: Insert Entity (`POST`, atomic) with `state=claimed`,
//!   `expires_at=now+CLAIM_TIMEOUT` → New. On 409 EntityAlreadyExists the
//!   entity is read: done and live → Done; claimed and live → InProgress;
//!   expired (a crashed worker's claim, or a forgotten outcome) → replaced
//!   with `If-Match: <etag>` (optimistic concurrency: of two takers one gets
//!   412 and answers InProgress).
//! - **complete**: Insert Or Replace (`PUT`) with `state=done`,
//!   `expires_at=now+TTL`.
//! - **release**: Delete with `If-Match` = the etag of our own claim, so a
//!   claim someone else took over (or a `done`) is never removed; 404 and
//!   412 are fine.
//!
//! Watermarks (queue mode's per-subject event times, see
//! `relay_core::order`) live in the same table under PartitionKey
//! `watermark`, RowKey = the watermark key in base64url, properties `at_ms`
//! and `expires_at` (Edm.Int64) and `key` (readable). `set_watermark` keeps
//! the newer time with optimistic concurrency (insert, or replace with
//! `If-Match`), so two instances racing on one subject cannot move it back.
//!
//! Every failure is a [`StoreError::Backend`]: the pipeline answers 503 and
//! the IdP retries. The Table service has no TTL of its own: expired
//! entities stay until the same event id comes again (then they are
//! overwritten); at about 150 bytes each that is noise next to the storage
//! account's other use.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relay_core::event::EventId;
use relay_core::store::{CLAIM_TIMEOUT, Claim, DEFAULT_TTL, IdempotencyStore, StoreError};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

/// Our own claims' etags are forgotten beyond this many (a request future
/// dropped between claim and outcome never comes back for its etag).
const MAX_REMEMBERED_CLAIMS: usize = 10_000;

const JSON: &str = "application/json";
const ACCEPT: &str = "application/json;odata=nometadata";

/// The idempotency store on Azure Table Storage. Cheap to clone (shared).
#[derive(Clone)]
pub struct TableStore {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    table: String,
    auth: Auth,
    ttl: Duration,
    claim_timeout: Duration,
    /// "pk/rk" → etag of the claim this process holds.
    claims: Mutex<HashMap<String, String>>,
}

enum Auth {
    SharedKey { account: String, key: AccountKey },
    Bearer(TokenSource),
}

impl fmt::Debug for TableStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.inner.auth {
            Auth::SharedKey { account, .. } => format!("SharedKey({account}, [redacted])"),
            Auth::Bearer(_) => "ManagedIdentity".to_owned(),
        };
        f.debug_struct("TableStore")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("table", &self.inner.table)
            .field("auth", &auth)
            .field("ttl", &self.inner.ttl)
            .field("claim_timeout", &self.inner.claim_timeout)
            .finish_non_exhaustive()
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

/// A stored entity as `claim` reads it.
struct Stored {
    state: String,
    expires_at: u64,
    etag: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    let encoded = URL_SAFE_NO_PAD.encode(text.as_bytes());
    if encoded.len() <= MAX_ENCODED_ROW_KEY {
        encoded
    } else {
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("~{hex}")
    }
}

/// The PartitionKey of watermarks: not an event source label, so a
/// watermark never meets an event's entity.
pub const WATERMARK_PARTITION: &str = "watermark";

/// (PartitionKey, RowKey) of a watermark key (`user:okta:00u…:state`, …).
pub fn watermark_keys(key: &str) -> (String, String) {
    (WATERMARK_PARTITION.to_owned(), row_key(key))
}

/// A stored watermark as `set_watermark` reads it.
struct Mark {
    at_ms: i64,
    expires_at: u64,
    etag: String,
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
                ttl,
                claim_timeout,
                claims: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn table_name(&self) -> &str {
        &self.inner.table
    }

    /// The Duo group index in the same table ([`crate::groups`]).
    pub fn group_index(&self) -> crate::TableGroupIndex {
        crate::TableGroupIndex::new(self.clone())
    }

    /// The Table service endpoint (no credentials in it).
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
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

    fn entity_body(
        id: &EventId,
        partition: &str,
        row: &str,
        state: &str,
        expires_at: u64,
    ) -> String {
        let readable: String = id.as_str().chars().take(MAX_EVENT_ID_PROPERTY).collect();
        json!({
            "PartitionKey": partition,
            "RowKey": row,
            "state": state,
            // Int64 travels as a string with its type annotation in JSON.
            "expires_at": expires_at.to_string(),
            "expires_at@odata.type": "Edm.Int64",
            "event_id": readable,
        })
        .to_string()
    }

    fn remember(&self, slot: String, etag: Option<String>) {
        let mut claims = self
            .inner
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if claims.len() >= MAX_REMEMBERED_CLAIMS {
            claims.clear();
        }
        match etag {
            Some(etag) => {
                claims.insert(slot, etag);
            }
            None => {
                claims.remove(&slot);
            }
        }
    }

    fn forget(&self, slot: &str) -> Option<String> {
        self.inner
            .claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(slot)
    }

    /// GETs one entity: its properties and ETag, `None` when there is none.
    /// `operation` ("get entity", "get watermark") names it in errors.
    async fn get(
        &self,
        operation: &'static str,
        partition: &str,
        row: &str,
    ) -> Result<Option<(Value, String)>, StoreError> {
        let answer = self
            .send(
                operation,
                Method::GET,
                &self.entity_path(partition, row),
                None,
                &[],
            )
            .await?;
        match answer.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(answer.unexpected(operation)),
        }
        match (serde_json::from_slice(&answer.body), answer.etag) {
            (Ok(value), Some(etag)) => Ok(Some((value, etag))),
            _ => Err(malformed(operation)),
        }
    }

    async fn read(&self, partition: &str, row: &str) -> Result<Option<Stored>, StoreError> {
        let Some((value, etag)) = self.get("get entity", partition, row).await? else {
            return Ok(None);
        };
        let state = value
            .get("state")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("get entity"))?
            .to_owned();
        let expires_at = match value.get("expires_at") {
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(Value::Number(n)) => n.as_u64(),
            _ => None,
        }
        .ok_or_else(|| malformed("get entity"))?;
        Ok(Some(Stored {
            state,
            expires_at,
            etag,
        }))
    }

    async fn read_mark(&self, row: &str) -> Result<Option<Mark>, StoreError> {
        let Some((value, etag)) = self.get("get watermark", WATERMARK_PARTITION, row).await? else {
            return Ok(None);
        };
        Ok(Some(Mark {
            at_ms: int_property(&value, "at_ms").ok_or_else(|| malformed("get watermark"))?,
            // A mark without a readable expiry counts as expired.
            expires_at: int_property(&value, "expires_at")
                .and_then(|e| u64::try_from(e).ok())
                .unwrap_or(0),
            etag,
        }))
    }

    fn mark_body(key: &str, row: &str, at_ms: i64, expires_at: u64) -> String {
        let readable: String = key.chars().take(MAX_EVENT_ID_PROPERTY).collect();
        json!({
            "PartitionKey": WATERMARK_PARTITION,
            "RowKey": row,
            "at_ms": at_ms.to_string(),
            "at_ms@odata.type": "Edm.Int64",
            "expires_at": expires_at.to_string(),
            "expires_at@odata.type": "Edm.Int64",
            "key": readable,
        })
        .to_string()
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
}

impl IdempotencyStore for TableStore {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        let (partition, row) = entity_keys(key);
        let slot = format!("{partition}/{row}");
        let now = now_secs();
        let claimed = Self::entity_body(
            key,
            &partition,
            &row,
            "claimed",
            now + self.inner.claim_timeout.as_secs(),
        );
        // A few rounds: the entity can vanish (a release) or change between
        // the insert and the read; each round is a fresh decision.
        for _ in 0..3 {
            let inserted = self
                .send(
                    "insert entity",
                    Method::POST,
                    &self.inner.table,
                    Some(claimed.clone()),
                    &[("Prefer", "return-no-content")],
                )
                .await?;
            match inserted.status {
                StatusCode::CREATED | StatusCode::NO_CONTENT => {
                    self.remember(slot, inserted.etag);
                    return Ok(Claim::New);
                }
                StatusCode::CONFLICT => {}
                _ => return Err(inserted.unexpected("insert entity")),
            }
            let Some(stored) = self.read(&partition, &row).await? else {
                continue;
            };
            if stored.expires_at > now {
                return Ok(if stored.state == "done" {
                    Claim::Done
                } else {
                    Claim::InProgress
                });
            }
            // Expired: take it over, unless someone else does first.
            let path = self.entity_path(&partition, &row);
            let replaced = self
                .send(
                    "replace expired entity",
                    Method::PUT,
                    &path,
                    Some(claimed.clone()),
                    &[("If-Match", &stored.etag)],
                )
                .await?;
            match replaced.status {
                StatusCode::NO_CONTENT | StatusCode::OK => {
                    self.remember(slot, replaced.etag);
                    return Ok(Claim::New);
                }
                StatusCode::PRECONDITION_FAILED => return Ok(Claim::InProgress),
                StatusCode::NOT_FOUND => {}
                _ => return Err(replaced.unexpected("replace expired entity")),
            }
        }
        Err(StoreError::Backend(
            "Azure Table Storage claim: the entity kept changing under us; retry later".into(),
        ))
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        let (partition, row) = entity_keys(key);
        self.forget(&format!("{partition}/{row}"));
        let done = Self::entity_body(
            key,
            &partition,
            &row,
            "done",
            now_secs() + self.inner.ttl.as_secs(),
        );
        // PUT without If-Match = Insert Or Replace Entity.
        let answer = self
            .send(
                "insert or replace entity",
                Method::PUT,
                &self.entity_path(&partition, &row),
                Some(done),
                &[],
            )
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.unexpected("insert or replace entity"))
        }
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        let (partition, row) = entity_keys(key);
        let etag = match self.forget(&format!("{partition}/{row}")) {
            Some(etag) => etag,
            // Not our claim in this process (a restart between claim and
            // release): release a live claim, never a `done`.
            None => match self.read(&partition, &row).await? {
                Some(stored) if stored.state == "claimed" => stored.etag,
                _ => return Ok(()),
            },
        };
        let answer = self
            .send(
                "delete entity",
                Method::DELETE,
                &self.entity_path(&partition, &row),
                None,
                &[("If-Match", &etag)],
            )
            .await?;
        match answer.status {
            // 404: already gone; 412: someone took the claim over or it was
            // completed — either way not ours to remove.
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::PRECONDITION_FAILED => Ok(()),
            _ => Err(answer.unexpected("delete entity")),
        }
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let (_, row) = watermark_keys(key);
        let now = now_secs();
        Ok(self
            .read_mark(&row)
            .await?
            .filter(|mark| mark.expires_at > now)
            .map(|mark| mark.at_ms))
    }

    /// Keeps the newer time, safely against a concurrent writer (another
    /// instance applying an event of the same subject): the mark is inserted
    /// (409 if someone else did first) or replaced with `If-Match` = the etag
    /// read (412 if it changed meanwhile); either conflict reads again.
    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        let (_, row) = watermark_keys(key);
        for _ in 0..5 {
            let now = now_secs();
            let body = Self::mark_body(key, &row, at_ms, now + self.inner.ttl.as_secs());
            let stored = self.read_mark(&row).await?;
            let answer = match &stored {
                Some(mark) if mark.expires_at > now && mark.at_ms >= at_ms => return Ok(()),
                Some(mark) => {
                    self.send(
                        "replace watermark",
                        Method::PUT,
                        &self.entity_path(WATERMARK_PARTITION, &row),
                        Some(body),
                        &[("If-Match", &mark.etag)],
                    )
                    .await?
                }
                None => {
                    self.send(
                        "insert watermark",
                        Method::POST,
                        &self.inner.table,
                        Some(body),
                        &[("Prefer", "return-no-content")],
                    )
                    .await?
                }
            };
            match answer.status {
                s if s.is_success() => return Ok(()),
                // Someone else wrote it (or removed it) meanwhile: decide again.
                StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED | StatusCode::NOT_FOUND => {}
                _ => return Err(answer.unexpected("write watermark")),
            }
        }
        Err(StoreError::Backend(
            "Azure Table Storage watermark: the entity kept changing under us; retry later".into(),
        ))
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
