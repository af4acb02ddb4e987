//! Queue mode on Azure: Azure Storage Queues over their REST API.
//!
//! - **Accept** ([`AzureEventQueue`], `RELAY_MODE=queue`): each accepted
//!   event's [`QueuedEvent`] JSON is put on the queue (`RELAY_QUEUE_NAME`)
//!   base64-encoded — what the Functions host's queue trigger expects with
//!   host.json `extensions.queues.messageEncoding: "base64"` (the default of
//!   the Storage Queues extension 5.x) — with no expiry (`messagettl=-1`:
//!   a worker outage must not silently drop events). The IdP gets its 200
//!   only once every put answered 201.
//! - **Worker** ([`crate::worker`]): the `queue_worker` function's queue
//!   trigger hands each message to the handler; the host re-queues it when
//!   the invocation fails and moves it to `<queue>-poison` after host.json
//!   `maxDequeueCount` failures.
//! - **Dead letters** ([`PoisonQueue`]): the worker puts a
//!   [`relay_core::queue::DeadLetter`] (JSON, base64) on `<queue>-poison`
//!   itself when it gives up — with the reason — and answers success; a
//!   message the host moved there (the worker never answered) is read as a
//!   dead letter without a reason of ours. `relay-azure dlq list|show|replay`
//!   reads and re-drives them.
//!
//! Storage Queues keep no order (no FIFO, no message groups): ordering rests
//! on the event-time watermarks in the idempotency table (a stale event is
//! skipped, never applied over newer state) and on the app processing one
//! message at a time (host.json `batchSize: 1`, `newBatchThreshold: 0`, and
//! one instance in queue mode — see the README).
//!
//! Same credentials as the Table store: the managed identity's bearer token
//! (`AZURE_STORAGE_QUEUE_ENDPOINT`) or SharedKey with the account key of
//! `AzureWebJobsStorage` (Azurite, local runs).
//!
//! Why a hand-written client and not the official `azure_storage_queue`
//! (evaluated for issue 15, version 1.1.0, MSRV 1.88): it authenticates only
//! with a `TokenCredential` (Entra ID bearer tokens) or a SAS already in the
//! URL — no Shared Key — so the account-key connection strings this crate
//! accepts (`AzureWebJobsStorage`, and Azurite's well-known key, with which
//! every queue test here runs over plain http) would stop working, and
//! Azurite takes bearer tokens only over https. It would also bring its own
//! credential plumbing beside `identity.rs`. Its cost measured by
//! `cargo generate-lockfile` against a reqwest 0.13/tokio/axum/aws-lc-rs base:
//! +41 lock entries (azure_core, typespec*, quick-xml, time, uuid, futures,
//! async-compression, …; the same reqwest, so no second TLS stack). The
//! client here is six REST calls (Create Queue, Put/Get/Peek/Delete/Update
//! Message) over the Shared Key signer in `shared_key.rs` (or the managed
//! identity's token), pinned by the Azurite tests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use relay_core::queue::{
    BoxFuture, DeadLetter, DeadLetterEntry, DeadLetterStore, EventQueue, QueueError, QueuedEvent,
};
use reqwest::{Method, StatusCode, Url};

use crate::identity::TokenSource;
use crate::settings::{Credential, QueueSettings};
use crate::shared_key::{self, AccountKey};

/// `x-ms-version` of every Queue service request (managed-identity bearer
/// tokens need 2017-11-09 or later; `messagettl=-1` 2017-07-29 or later).
pub const QUEUE_API_VERSION: &str = "2021-12-02";

/// Each call gives up after this long: the accept stage runs inside the
/// webhook request (Okta gives up after about 3 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// A message's text is at most 64 KiB; base64 makes 3 bytes 4.
pub const MAX_MESSAGE_BYTES: usize = 48 * 1024;

/// The most messages one Get/Peek Messages call returns.
const MAX_BATCH: usize = 32;

/// How long `dlq` hides the poison messages it is reading (they are made
/// visible again as soon as the scan is over).
const SCAN_VISIBILITY_SECS: u64 = 60;

enum Auth {
    SharedKey { account: String, key: AccountKey },
    Bearer(TokenSource),
}

/// One Storage queue, reached over REST. Cheap to clone (shared).
#[derive(Clone)]
pub struct StorageQueue {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    name: String,
    auth: Arc<Auth>,
}

impl fmt::Debug for StorageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &*self.inner.auth {
            Auth::SharedKey { account, .. } => format!("SharedKey({account}, [redacted])"),
            Auth::Bearer(_) => "ManagedIdentity".to_owned(),
        };
        f.debug_struct("StorageQueue")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("name", &self.inner.name)
            .field("auth", &auth)
            .finish()
    }
}

/// A message as Get Messages / Peek Messages return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    /// Absent when peeked.
    pub pop_receipt: Option<String>,
    pub dequeue_count: u32,
    /// `InsertionTime` (RFC 1123), as the service wrote it.
    pub insertion_time: String,
    /// The message text decoded from base64 (the text itself when it is
    /// not base64).
    pub text: String,
}

fn backend(message: impl Into<String>) -> QueueError {
    QueueError::Backend(message.into())
}

impl StorageQueue {
    /// The queue named `name` at `settings`' endpoint with its credential.
    pub fn new(settings: &QueueSettings, name: &str) -> Result<Self, QueueError> {
        let auth = match &settings.credential {
            Credential::SharedKey { account, key } => Auth::SharedKey {
                account: account.clone(),
                key: key.clone(),
            },
            Credential::ManagedIdentity(identity) => {
                Auth::Bearer(TokenSource::new(identity.clone()))
            }
        };
        Self::with_auth(settings, name, Arc::new(auth))
    }

    fn with_auth(
        settings: &QueueSettings,
        name: &str,
        auth: Arc<Auth>,
    ) -> Result<Self, QueueError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| backend(format!("Azure Queue Storage client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint: settings.endpoint.clone(),
                name: name.to_owned(),
                auth,
            }),
        })
    }

    /// The main queue and its poison queue, sharing one credential (and so
    /// one token cache).
    pub fn pair(settings: &QueueSettings) -> Result<(Self, Self), QueueError> {
        let main = Self::new(settings, &settings.queue)?;
        let poison = Self::with_auth(settings, &settings.poison_queue(), main.inner.auth.clone())?;
        Ok((main, poison))
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The Queue service endpoint (no credentials in it).
    pub fn endpoint(&self) -> &Url {
        &self.inner.endpoint
    }

    /// Creates the queue unless it exists (start-up).
    pub async fn create_if_absent(&self) -> Result<(), QueueError> {
        let (status, body, _) = self
            .send("create queue", Method::PUT, "", &[], None)
            .await?;
        match status {
            // 201 created, 204 exists with the same metadata, 409 exists
            // with other metadata.
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::CONFLICT => Ok(()),
            _ => Err(unexpected("create queue", status, &body)),
        }
    }

    /// Puts one message (its text base64-encoded, never expiring).
    pub async fn put(&self, text: &str) -> Result<(), QueueError> {
        if text.len() > MAX_MESSAGE_BYTES {
            return Err(backend(format!(
                "queue message of {} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
                text.len()
            )));
        }
        let body = format!(
            "<QueueMessage><MessageText>{}</MessageText></QueueMessage>",
            BASE64.encode(text.as_bytes())
        );
        let (status, answer, _) = self
            .send(
                "put message",
                Method::POST,
                "/messages",
                &[("messagettl", "-1")],
                Some(body),
            )
            .await?;
        if status == StatusCode::CREATED {
            Ok(())
        } else {
            Err(unexpected("put message", status, &answer))
        }
    }

    /// Peeks at up to 32 messages from the front (no side effect).
    pub async fn peek(&self, count: usize) -> Result<Vec<QueueMessage>, QueueError> {
        let n = count.clamp(1, MAX_BATCH).to_string();
        let (status, body, _) = self
            .send(
                "peek messages",
                Method::GET,
                "/messages",
                &[("numofmessages", &n), ("peekonly", "true")],
                None,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(unexpected("peek messages", status, &body));
        }
        Ok(parse_messages(&body))
    }

    /// Gets (dequeues) up to 32 messages, hiding them for `visibility`.
    pub async fn get(
        &self,
        count: usize,
        visibility: Duration,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let n = count.clamp(1, MAX_BATCH).to_string();
        let secs = visibility.as_secs().max(1).to_string();
        let (status, body, _) = self
            .send(
                "get messages",
                Method::GET,
                "/messages",
                &[("numofmessages", &n), ("visibilitytimeout", &secs)],
                None,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(unexpected("get messages", status, &body));
        }
        Ok(parse_messages(&body))
    }

    /// Deletes a dequeued message. `Ok(false)` when it is gone or the pop
    /// receipt is stale (404, or 400 PopReceiptMismatch).
    pub async fn delete(&self, id: &str, pop_receipt: &str) -> Result<bool, QueueError> {
        let (status, body, _) = self
            .send(
                "delete message",
                Method::DELETE,
                &format!("/messages/{}", path_segment(id)?),
                &[("popreceipt", pop_receipt)],
                None,
            )
            .await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(true),
            _ if gone_or_stale(status, &body) => Ok(false),
            _ => Err(unexpected("delete message", status, &body)),
        }
    }

    /// Makes a dequeued message visible again after `visibility`; answers
    /// its new pop receipt (`None` when it is gone or the receipt is stale).
    pub async fn set_visibility(
        &self,
        id: &str,
        pop_receipt: &str,
        visibility: Duration,
    ) -> Result<Option<String>, QueueError> {
        let secs = visibility.as_secs().to_string();
        let (status, body, headers) = self
            .send(
                "update message",
                Method::PUT,
                &format!("/messages/{}", path_segment(id)?),
                &[("popreceipt", pop_receipt), ("visibilitytimeout", &secs)],
                None,
            )
            .await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(headers
                .get("x-ms-popreceipt")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)),
            _ if gone_or_stale(status, &body) => Ok(None),
            _ => Err(unexpected("update message", status, &body)),
        }
    }

    /// One signed request to `<endpoint>/<queue><path>?<query>`.
    async fn send(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<(StatusCode, bytes::Bytes, reqwest::header::HeaderMap), QueueError> {
        let inner = &*self.inner;
        let mut url = Url::parse(&format!(
            "{}/{}{path}",
            inner.endpoint.as_str().trim_end_matches('/'),
            inner.name
        ))
        .map_err(|_| backend(format!("Azure Queue Storage {operation}: bad request URL")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        let date = shared_key::rfc1123(SystemTime::now());
        let length = body.as_ref().map_or(0, String::len);
        let authorization = match &*inner.auth {
            Auth::SharedKey { account, key } => {
                let to_sign = shared_key::queue_string_to_sign(
                    method.as_str(),
                    length,
                    "",
                    &[("x-ms-date", &date), ("x-ms-version", QUEUE_API_VERSION)],
                    account,
                    url.path(),
                    query,
                );
                shared_key::authorization(account, key, &to_sign)
            }
            Auth::Bearer(tokens) => {
                let token = tokens
                    .token(&inner.http)
                    .await
                    .map_err(|e| backend(e.to_string()))?;
                format!("Bearer {token}")
            }
        };
        let mut request = inner
            .http
            .request(method.clone(), url)
            .header("x-ms-date", &date)
            .header("x-ms-version", QUEUE_API_VERSION)
            .header("Authorization", authorization);
        // PUT and POST carry a Content-Length even when empty.
        request = match body {
            Some(body) => request.body(body),
            None if method == Method::PUT || method == Method::POST => {
                request.header("Content-Length", "0")
            }
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            backend(format!(
                "Azure Queue Storage {operation}: cannot reach {}: {}",
                inner.endpoint.host_str().unwrap_or("the endpoint"),
                e.without_url()
            ))
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|e| {
            backend(format!(
                "Azure Queue Storage {operation}: reading the answer: {}",
                e.without_url()
            ))
        })?;
        Ok((status, body, headers))
    }
}

/// A message id as a path segment: the service's ids are GUIDs; anything
/// else (a typo in `dlq replay`) is refused before it reaches a URL.
fn path_segment(id: &str) -> Result<&str, QueueError> {
    if !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(id)
    } else {
        Err(QueueError::NotFound(id.chars().take(128).collect()))
    }
}

/// 404 MessageNotFound, or 400 PopReceiptMismatch (someone dequeued the
/// message since this receipt was issued).
fn gone_or_stale(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::NOT_FOUND
        || (status == StatusCode::BAD_REQUEST
            && xml_text(&String::from_utf8_lossy(body), "Code").as_deref()
                == Some("PopReceiptMismatch"))
}

fn unexpected(operation: &str, status: StatusCode, body: &[u8]) -> QueueError {
    let text = String::from_utf8_lossy(body);
    let code = xml_text(&text, "Code").unwrap_or_default();
    let hint = if status == StatusCode::FORBIDDEN {
        " (the account key or the identity's role does not allow it)"
    } else {
        ""
    };
    backend(format!(
        "Azure Queue Storage {operation}: HTTP {} {code}{hint}",
        status.as_u16()
    ))
}

/// The text of the first `<tag>…</tag>` in `xml`, unescaped.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    Some(unescape_xml(&xml[start..end]))
}

fn unescape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else {
            break;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The messages of a `QueueMessagesList` answer.
fn parse_messages(body: &[u8]) -> Vec<QueueMessage> {
    let xml = String::from_utf8_lossy(body);
    let mut messages = Vec::new();
    let mut rest = xml.as_ref();
    while let Some(start) = rest.find("<QueueMessage>") {
        let after = &rest[start..];
        let Some(end) = after.find("</QueueMessage>") else {
            break;
        };
        let block = &after[..end];
        if let Some(id) = xml_text(block, "MessageId") {
            let raw = xml_text(block, "MessageText").unwrap_or_default();
            messages.push(QueueMessage {
                id,
                pop_receipt: xml_text(block, "PopReceipt"),
                dequeue_count: xml_text(block, "DequeueCount")
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0),
                insertion_time: xml_text(block, "InsertionTime").unwrap_or_default(),
                text: decode_message_text(&raw),
            });
        }
        rest = &after[end..];
    }
    messages
}

/// Messages are base64 (messageEncoding `base64`); one that is not (put by
/// some other tool) is taken as it is.
pub fn decode_message_text(raw: &str) -> String {
    BASE64
        .decode(raw.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| raw.to_owned())
}

/// The accept stage's queue: puts each event on the Storage queue.
#[derive(Debug, Clone)]
pub struct AzureEventQueue {
    queue: StorageQueue,
}

impl AzureEventQueue {
    pub fn new(queue: StorageQueue) -> Self {
        Self { queue }
    }

    pub fn queue(&self) -> &StorageQueue {
        &self.queue
    }
}

impl EventQueue for AzureEventQueue {
    /// One Put Message per event, all at once (the service has no batch
    /// put); any failure fails the delivery, so the IdP retries it and the
    /// idempotency store absorbs the copies that did land.
    fn enqueue<'a>(&'a self, events: &'a [QueuedEvent]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for event in events {
                let queue = self.queue.clone();
                let text = event.to_json();
                tasks.spawn(async move { queue.put(&text).await });
            }
            let mut first_error = None;
            while let Some(joined) = tasks.join_next().await {
                let result = joined.unwrap_or_else(|e| Err(backend(format!("put task: {e}"))));
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
            first_error.map_or(Ok(()), Err)
        })
    }
}

/// What a poison-queue message says, as a dead letter.
pub fn letter_from_poison(message: &QueueMessage) -> DeadLetter {
    if let Ok(letter) = serde_json::from_str::<DeadLetter>(&message.text) {
        return letter;
    }
    // Moved by the Functions host after maxDequeueCount failed invocations
    // (the worker never answered, e.g. it crashed or timed out), or put
    // there by hand: the original message, without a reason of ours.
    let mut letter = DeadLetter::new(
        &message.text,
        "moved to the poison queue by the Functions host after its maxDequeueCount \
         (no answer from the worker: crash or timeout)",
        0,
    );
    if let Some(ms) = parse_rfc1123_ms(&message.insertion_time) {
        letter.dead_lettered_at_ms = ms;
    }
    letter
}

/// `Sun, 11 Oct 2009 21:49:13 GMT` → ms since the epoch (jiff's RFC 2822
/// parser, which also checks the weekday).
fn parse_rfc1123_ms(text: &str) -> Option<i64> {
    jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(text.trim())
        .ok()
        .map(|t| t.as_millisecond())
}

/// Dead letters on `<queue>-poison`, for `relay-azure dlq`.
///
/// Listing dequeues the poison messages for a minute (Peek Messages sees
/// only the first 32) and makes each visible again at once; the pop
/// receipts are kept so a replay right after needs no second scan. A
/// replay puts the original message back on the main queue, then deletes
/// the dead letter. Nothing else reads the poison queue; two `dlq` runs at
/// the same moment may each see part of it.
#[derive(Debug)]
pub struct PoisonQueue {
    main: StorageQueue,
    poison: StorageQueue,
    /// Message id → (pop receipt, text) from the last scan.
    handles: Mutex<HashMap<String, (String, String)>>,
}

impl PoisonQueue {
    pub fn new(main: StorageQueue, poison: StorageQueue) -> Self {
        Self {
            main,
            poison,
            handles: Mutex::new(HashMap::new()),
        }
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, String)>> {
        self.handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Dequeues up to `limit` poison messages (stopping at `stop_at` when
    /// given), then makes them all visible again; remembers their handles.
    async fn scan(
        &self,
        limit: usize,
        stop_at: Option<&str>,
    ) -> Result<Vec<QueueMessage>, QueueError> {
        let mut seen: Vec<QueueMessage> = Vec::new();
        let visibility = Duration::from_secs(SCAN_VISIBILITY_SECS);
        let result = async {
            while seen.len() < limit {
                let batch = self
                    .poison
                    .get((limit - seen.len()).min(MAX_BATCH), visibility)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                let found = stop_at.is_some_and(|id| batch.iter().any(|m| m.id == id));
                seen.extend(batch);
                if found {
                    break;
                }
            }
            Ok::<(), QueueError>(())
        }
        .await;
        // Whatever happened, nothing stays hidden longer than needed.
        for message in &mut seen {
            let Some(pop) = message.pop_receipt.clone() else {
                continue;
            };
            match self
                .poison
                .set_visibility(&message.id, &pop, Duration::ZERO)
                .await
            {
                Ok(Some(new_pop)) => message.pop_receipt = Some(new_pop),
                Ok(None) => message.pop_receipt = None,
                Err(e) => {
                    tracing::warn!(error = %e, "could not make a dead letter visible again; it reappears within a minute")
                }
            }
        }
        result?;
        let mut handles = self.handles();
        for message in &seen {
            if let Some(pop) = &message.pop_receipt {
                handles.insert(message.id.clone(), (pop.clone(), message.text.clone()));
            }
        }
        Ok(seen)
    }
}

impl DeadLetterStore for PoisonQueue {
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetterEntry>, QueueError>> {
        Box::pin(async move {
            let messages = self.scan(limit, None).await?;
            let mut entries: Vec<DeadLetterEntry> = messages
                .iter()
                .map(|m| DeadLetterEntry {
                    id: m.id.clone(),
                    letter: letter_from_poison(m),
                })
                .collect();
            entries.sort_by_key(|e| e.letter.dead_lettered_at_ms);
            Ok(entries)
        })
    }

    fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            path_segment(id)?;
            let cached = self.handles().get(id).cloned();
            let (pop, text) = match cached {
                Some(handle) => handle,
                None => {
                    self.scan(usize::MAX, Some(id)).await?;
                    self.handles()
                        .get(id)
                        .cloned()
                        .ok_or_else(|| QueueError::NotFound(id.to_owned()))?
                }
            };
            let letter = letter_from_poison(&QueueMessage {
                id: id.to_owned(),
                pop_receipt: None,
                dequeue_count: 0,
                insertion_time: String::new(),
                text,
            });
            // The original message first: should the delete fail, the
            // event is queued twice, which the idempotency store absorbs;
            // the other order could lose it.
            self.main.put(&letter.body).await?;
            let mut deleted = self.poison.delete(id, &pop).await?;
            if !deleted {
                // A stale receipt (someone read the queue meanwhile): find it
                // again. Not there at all: someone else removed it.
                self.handles().remove(id);
                self.scan(usize::MAX, Some(id)).await?;
                let handle = self.handles().get(id).cloned();
                if let Some((pop, _)) = handle {
                    deleted = self.poison.delete(id, &pop).await?;
                }
            }
            self.handles().remove(id);
            tracing::info!(
                message_id = id,
                event_id = letter.event_id.as_deref().unwrap_or("-"),
                removed = deleted,
                "dead letter replayed onto {}",
                self.main.name()
            );
            Ok(())
        })
    }
}

/// The poison queue as the queue worker's dead-letter sink: the letter
/// (body, reason, attempts) as one JSON message.
impl relay_core::queue::DeadLetterSink for StorageQueue {
    fn sink_name(&self) -> String {
        self.name().to_owned()
    }

    async fn put_dead_letter(&self, letter: &DeadLetter) -> Result<(), QueueError> {
        let text = serde_json::to_string(letter).map_err(|e| backend(e.to_string()))?;
        self.put(&text).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_list_is_parsed_and_decoded() {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><QueueMessagesList>\
             <QueueMessage><MessageId>6a3c-1</MessageId><InsertionTime>Sun, 11 Oct 2009 21:49:13 GMT</InsertionTime>\
             <PopReceipt>AgAAAA+x/y==</PopReceipt><DequeueCount>2</DequeueCount>\
             <MessageText>{}</MessageText></QueueMessage>\
             <QueueMessage><MessageId>6a3c-2</MessageId><DequeueCount>0</DequeueCount>\
             <MessageText>not base64 &amp; &lt;raw&gt; &#x41;&#66;</MessageText></QueueMessage>\
             </QueueMessagesList>",
            BASE64.encode(r#"{"v":1}"#)
        );
        let messages = parse_messages(xml.as_bytes());
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].id, "6a3c-1");
        assert_eq!(messages[0].pop_receipt.as_deref(), Some("AgAAAA+x/y=="));
        assert_eq!(messages[0].dequeue_count, 2);
        assert_eq!(messages[0].text, r#"{"v":1}"#);
        assert_eq!(messages[1].pop_receipt, None);
        assert_eq!(messages[1].text, "not base64 & <raw> AB");
        assert!(parse_messages(b"<QueueMessagesList />").is_empty());
    }

    #[test]
    fn rfc1123_times() {
        assert_eq!(
            parse_rfc1123_ms("Sun, 11 Oct 2009 21:49:13 GMT"),
            Some(1_255_297_753_000)
        );
        assert_eq!(parse_rfc1123_ms("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_rfc1123_ms("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_rfc1123_ms("garbage"), None);
    }

    #[test]
    fn message_ids_are_checked_before_they_reach_a_url() {
        assert!(path_segment("0f5e7c3a-1b2c-4d5e-8f90-123456789abc").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a b"] {
            assert!(matches!(path_segment(bad), Err(QueueError::NotFound(_))));
        }
    }

    #[test]
    fn host_moved_messages_read_as_dead_letters() {
        let message = QueueMessage {
            id: "m".into(),
            pop_receipt: None,
            dequeue_count: 0,
            insertion_time: "Sun, 11 Oct 2009 21:49:13 GMT".into(),
            text: "not json".into(),
        };
        let letter = letter_from_poison(&message);
        assert_eq!(letter.body, "not json");
        assert!(letter.reason.contains("maxDequeueCount"));
        assert_eq!(letter.dead_lettered_at_ms, 1_255_297_753_000);
        let ours = DeadLetter::new("{}", "permanent failure: 40002", 3);
        let message = QueueMessage {
            text: serde_json::to_string(&ours).unwrap(),
            ..message
        };
        assert_eq!(letter_from_poison(&message), ours);
    }
}
