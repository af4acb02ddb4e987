//! Queue mode on SQS FIFO: the accept stage's [`EventQueue`] ([`SqsQueue`]),
//! the worker's dead-letter writes ([`send_dead_letter`]) and the
//! `bootstrap dlq …` view of the dead-letter queue ([`SqsDeadLetters`]).
//!
//! - **Event queue** (`RELAY_QUEUE_URL`, a FIFO queue): one message per
//!   event, body [`QueuedEvent`] JSON, `MessageGroupId` =
//!   [`QueuedEvent::group_id`] (the subject: one user's events apply in
//!   order, different users in parallel), `MessageDeduplicationId` =
//!   [`QueuedEvent::dedup_id`] (the event id: an IdP retry within SQS's five
//!   minute window is dropped by SQS; a later one by the idempotency store).
//!   Sent with `SendMessageBatch`, at most 10 entries and 256 KiB a call, in
//!   the delivery's order (FIFO keeps a batch's order).
//! - **Dead-letter queue** (`RELAY_DLQ_URL`, FIFO): the worker writes a
//!   [`DeadLetter`] JSON (the original body, the reason, the attempts) with
//!   its own group per message, so every dead letter can be listed at once
//!   (a FIFO queue hands out nothing more of a group while one of its
//!   messages is held). SQS's own redrive (`maxReceiveCount`, the backstop for
//!   a message the function never finishes) moves the raw message instead;
//!   [`SqsDeadLetters`] reads both.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageSystemAttributeName,
    SendMessageBatchRequestEntry,
};
use relay_core::queue::{
    BoxFuture, DeadLetter, DeadLetterEntry, DeadLetterStore, EventQueue, QueueError, QueuedEvent,
};

/// The largest message SQS takes by default (bytes of body), and the
/// largest `SendMessageBatch` (all bodies together).
pub const MAX_MESSAGE_BYTES: usize = 262_144;
/// Entries per `SendMessageBatch` / `ChangeMessageVisibilityBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The longest visibility timeout SQS accepts (12 h).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// An SQS client whose calls fit in a webhook answer (the accept stage
/// must answer Okta within 3 s; a queue that does not answer becomes a 503
/// and the IdP retries).
pub fn sqs_client(sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
    let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(Duration::from_millis(1500))
        .operation_timeout(Duration::from_millis(2500))
        .build();
    let config = aws_sdk_sqs::config::Builder::from(sdk)
        .timeout_config(timeouts)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

pub(crate) fn sqs_error<E, R>(
    operation: &str,
    queue_url: &str,
    error: &SdkError<E, R>,
) -> QueueError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    QueueError::Backend(format!(
        "SQS {operation} on {queue_url}: {}",
        crate::describe(error)
    ))
}

/// The FIFO event queue, as the accept stage writes to it.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// Sends one `SendMessageBatch`; any entry SQS refused fails the whole
    /// call (the IdP is answered 503 and retries; what did go in is dropped
    /// as a duplicate by its deduplication id, or skipped by the idempotency
    /// store after five minutes).
    async fn send_batch(&self, batch: Vec<SendMessageBatchRequestEntry>) -> Result<(), QueueError> {
        let sent = batch.len();
        let output = self
            .client
            .send_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(batch))
            .send()
            .await
            .map_err(|e| sqs_error("SendMessageBatch", &self.queue_url, &e))?;
        if let Some(first) = output.failed().first() {
            return Err(QueueError::Backend(format!(
                "SQS SendMessageBatch on {}: {} of {sent} messages refused, e.g. {}: {}",
                self.queue_url,
                output.failed().len(),
                first.code(),
                first.message().unwrap_or("no message"),
            )));
        }
        if output.successful().len() != sent {
            return Err(QueueError::Backend(format!(
                "SQS SendMessageBatch on {}: {} of {sent} messages acknowledged",
                self.queue_url,
                output.successful().len()
            )));
        }
        Ok(())
    }
}

/// One event as an SQS message: body, group and deduplication ids, or why
/// it cannot be sent.
fn message_of(message: &QueuedEvent) -> Result<(String, String, String), QueueError> {
    let body = message.to_json();
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(QueueError::Backend(format!(
            "event {} is {} bytes as a queue message; SQS takes at most {MAX_MESSAGE_BYTES}",
            message.event.id,
            body.len()
        )));
    }
    Ok((body, message.group_id(), message.dedup_id()))
}

impl EventQueue for SqsQueue {
    fn enqueue<'a>(&'a self, events: &'a [QueuedEvent]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            // Every message is checked before anything is sent.
            let messages = events
                .iter()
                .map(message_of)
                .collect::<Result<Vec<_>, _>>()?;
            let mut batch = Vec::with_capacity(MAX_BATCH_ENTRIES);
            let mut bytes = 0;
            for (body, group, dedup) in messages {
                if batch.len() == MAX_BATCH_ENTRIES || bytes + body.len() > MAX_MESSAGE_BYTES {
                    self.send_batch(std::mem::take(&mut batch)).await?;
                    bytes = 0;
                }
                bytes += body.len();
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(batch.len().to_string())
                    .message_body(body)
                    .message_group_id(group)
                    .message_deduplication_id(dedup)
                    .build()
                    .map_err(|e| QueueError::Backend(format!("SQS batch entry: {e}")))?;
                batch.push(entry);
            }
            if !batch.is_empty() {
                self.send_batch(batch).await?;
            }
            Ok(())
        })
    }
}

/// Writes a dead letter to the FIFO dead-letter queue. `source_message_id`
/// (the SQS message id of the original) makes the write idempotent for five
/// minutes: a worker that dead-letters the same delivery twice (it crashed
/// before the original was deleted) leaves one dead letter. Each dead letter
/// is its own message group (see the module docs).
pub async fn send_dead_letter(
    client: &aws_sdk_sqs::Client,
    dlq_url: &str,
    letter: &DeadLetter,
    source_message_id: &str,
) -> Result<String, QueueError> {
    let body = serde_json::to_string(letter)
        .map_err(|e| QueueError::Backend(format!("dead letter JSON: {e}")))?;
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(QueueError::Backend(format!(
            "the dead letter of event {} is {} bytes; SQS takes at most {MAX_MESSAGE_BYTES} (SQS's redrive will move the original after maxReceiveCount receives)",
            letter.event_id.as_deref().unwrap_or("-"),
            body.len()
        )));
    }
    let id = crate::sha256_hex(&format!("dead-letter:{source_message_id}"));
    let output = client
        .send_message()
        .queue_url(dlq_url)
        .message_body(body)
        .message_group_id(&id)
        .message_deduplication_id(&id)
        .send()
        .await
        .map_err(|e| sqs_error("SendMessage", dlq_url, &e))?;
    Ok(output.message_id().unwrap_or_default().to_owned())
}

/// A dead letter received from the dead-letter queue and held (invisible to
/// others) until `until`.
#[derive(Debug, Clone)]
struct Held {
    receipt_handle: String,
    letter: DeadLetter,
    until: Instant,
}

/// The dead-letter queue as `bootstrap dlq list|show|replay` sees it.
///
/// SQS cannot read a message without receiving it, and a FIFO queue's
/// receipt handle expires with the visibility timeout. So every message
/// seen is held for [`SqsDeadLetters::HOLD`] and remembered with its fresh
/// receipt handle; a replay of a held message needs no second search. Call
/// [`SqsDeadLetters::release`] when the command is done: the held messages
/// become visible again at once (otherwise after `HOLD`).
///
/// Ids are SQS message ids. `replay` sends the original body to the event
/// queue (same message group, a fresh deduplication id so SQS does not drop
/// it as a duplicate of the first delivery), then deletes the dead letter.
#[derive(Debug)]
pub struct SqsDeadLetters {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    held: Mutex<HashMap<String, Held>>,
}

impl SqsDeadLetters {
    /// How long a seen dead letter stays held.
    pub const HOLD: Duration = Duration::from_secs(300);
    /// A held message is used only while this much of its hold remains.
    const HOLD_MARGIN: Duration = Duration::from_secs(30);

    pub fn new(
        client: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dlq_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
            held: Mutex::new(HashMap::new()),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Held messages whose handle is still good to use.
    fn fresh(&self) -> Vec<(String, Held)> {
        let now = Instant::now();
        let mut held = self.held();
        held.retain(|_, h| h.until > now + Self::HOLD_MARGIN);
        held.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Receives dead letters (holding them) until `want` are held, `stop`
    /// is among them, or the queue has no more to give.
    async fn scan(&self, want: usize, stop: Option<&str>) -> Result<(), QueueError> {
        loop {
            let have = self.fresh().len();
            if have >= want || stop.is_some_and(|id| self.held().contains_key(id)) {
                return Ok(());
            }
            let max = i32::try_from((want - have).min(MAX_BATCH_ENTRIES)).unwrap_or(10);
            let received_at = Instant::now();
            let output = self
                .client
                .receive_message()
                .queue_url(&self.dlq_url)
                .max_number_of_messages(max)
                .visibility_timeout(i32::try_from(Self::HOLD.as_secs()).unwrap_or(300))
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .map_err(|e| sqs_error("ReceiveMessage", &self.dlq_url, &e))?;
            let messages = output.messages();
            if messages.is_empty() {
                return Ok(());
            }
            let mut held = self.held();
            for message in messages {
                let (Some(id), Some(handle)) = (message.message_id(), message.receipt_handle())
                else {
                    continue;
                };
                let body = message.body().unwrap_or_default();
                let sent_ms = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse::<i64>().ok());
                held.insert(
                    id.to_owned(),
                    Held {
                        receipt_handle: handle.to_owned(),
                        letter: letter_of(body, sent_ms),
                        until: received_at + Self::HOLD,
                    },
                );
            }
        }
    }

    /// Makes every held message visible again (best effort: what cannot be
    /// released becomes visible after [`SqsDeadLetters::HOLD`]).
    pub async fn release(&self) {
        let held: Vec<(String, Held)> = self.held().drain().collect();
        let handles: Vec<(&str, Duration)> = held
            .iter()
            .map(|(_, h)| (h.receipt_handle.as_str(), Duration::ZERO))
            .collect();
        if let Err(e) = change_visibility(&self.client, &self.dlq_url, &handles).await {
            tracing::warn!(error = %e, "could not release dead letters; they become visible again after the hold");
        }
    }
}

/// Sets the visibility of received messages (receipt handle, visible again
/// after; at most [`MAX_VISIBILITY`]) in batches of [`MAX_BATCH_ENTRIES`].
/// Every batch is tried; the error names the first that failed, or how many
/// messages SQS refused.
pub(crate) async fn change_visibility(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    handles: &[(&str, Duration)],
) -> Result<(), QueueError> {
    let mut first_error = None;
    let mut refused = 0;
    for chunk in handles.chunks(MAX_BATCH_ENTRIES) {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter_map(|(i, (handle, visible_in))| {
                let secs = visible_in.min(&MAX_VISIBILITY).as_secs_f64().ceil();
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    // At most 43200: fits.
                    .visibility_timeout(secs as i32)
                    .build()
                    .ok()
            })
            .collect();
        match client
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => refused += output.failed().len(),
            Err(e) => {
                first_error.get_or_insert_with(|| {
                    sqs_error("ChangeMessageVisibilityBatch", queue_url, &e)
                });
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None if refused > 0 => Err(QueueError::Backend(format!(
            "SQS ChangeMessageVisibilityBatch on {queue_url}: {refused} of {} messages refused",
            handles.len()
        ))),
        None => Ok(()),
    }
}

/// The dead letter a DLQ message holds: the worker's JSON, or a raw queue
/// message SQS's redrive moved (the function never finished it).
fn letter_of(body: &str, sent_ms: Option<i64>) -> DeadLetter {
    if let Ok(letter) = serde_json::from_str::<DeadLetter>(body) {
        return letter;
    }
    let mut letter = DeadLetter::new(
        body,
        "moved by SQS after maxReceiveCount receives: the function failed, timed out or crashed on it every time",
        0,
    );
    if let Some(sent) = sent_ms {
        letter.dead_lettered_at_ms = sent;
    }
    letter
}

impl DeadLetterStore for SqsDeadLetters {
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetterEntry>, QueueError>> {
        Box::pin(async move {
            self.scan(limit, None).await?;
            let mut entries: Vec<DeadLetterEntry> = self
                .fresh()
                .into_iter()
                .map(|(id, held)| DeadLetterEntry {
                    id,
                    letter: held.letter,
                })
                .collect();
            entries.sort_by(|a, b| {
                (a.letter.dead_lettered_at_ms, &a.id).cmp(&(b.letter.dead_lettered_at_ms, &b.id))
            });
            entries.truncate(limit);
            Ok(entries)
        })
    }

    fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let held = match self.fresh().into_iter().find(|(k, _)| k == id) {
                Some((_, held)) => held,
                None => {
                    self.scan(usize::MAX, Some(id)).await?;
                    self.fresh()
                        .into_iter()
                        .find(|(k, _)| k == id)
                        .map(|(_, held)| held)
                        .ok_or_else(|| QueueError::NotFound(id.to_owned()))?
                }
            };
            let body = &held.letter.body;
            let (group, dedup) = match QueuedEvent::from_json(body) {
                Ok(message) => (message.group_id(), message.dedup_id()),
                Err(_) => {
                    let hash = crate::sha256_hex(body);
                    (hash.clone(), hash)
                }
            };
            let fresh_dedup =
                crate::sha256_hex(&format!("{dedup}:replay:{}", relay_core::queue::now_ms()));
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .message_group_id(group)
                .message_deduplication_id(fresh_dedup)
                .send()
                .await
                .map_err(|e| sqs_error("SendMessage", &self.queue_url, &e))?;
            self.client
                .delete_message()
                .queue_url(&self.dlq_url)
                .receipt_handle(&held.receipt_handle)
                .send()
                .await
                .map_err(|e| {
                    QueueError::Backend(format!(
                        "sent back to the event queue, but not removed from the dead-letter queue (a second replay applies nothing twice): {}",
                        sqs_error("DeleteMessage", &self.dlq_url, &e)
                    ))
                })?;
            self.held().remove(id);
            tracing::info!(
                message_id = id,
                event_id = held.letter.event_id.as_deref().unwrap_or("-"),
                "dead letter replayed"
            );
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_message_moved_by_sqs_reads_as_a_dead_letter() {
        let letter = letter_of("not json", Some(42));
        assert_eq!(letter.body, "not json");
        assert!(
            letter.reason.contains("maxReceiveCount"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.dead_lettered_at_ms, 42);
        let written = DeadLetter::new("{}", "permanent failure: 40002", 3);
        let json = serde_json::to_string(&written).unwrap_or_default();
        assert_eq!(letter_of(&json, None), written);
    }
}
