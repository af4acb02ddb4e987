//! The queue worker: the same function, invoked by Lambda's SQS event source
//! with a batch of messages from the FIFO event queue, answers which of them
//! failed (`ReportBatchItemFailures`); Lambda deletes the rest.
//!
//! For each record, in the batch's order within its message group (groups
//! run in parallel), [`Relay::process`](relay_core::pipeline::Relay::process)
//! applies the event and decides:
//! - **Done** (applied, unchanged, duplicate, skipped, stale): success, the
//!   message is deleted.
//! - **Retry** (Duo 429/5xx/timeout, the store unreachable): the record is
//!   reported failed, and its visibility is set to the policy's backoff
//!   (`RELAY_QUEUE_BACKOFF_MS`, doubling), so SQS hands it out again then
//!   rather than after the queue's whole visibility timeout. Every later
//!   record of the same group in the batch is reported failed too, with the
//!   same visibility, without being attempted: SQS FIFO only keeps a group
//!   in order if nothing behind a failed message is deleted.
//! - **DeadLetter** (a permanent failure, a poison body, or out of
//!   attempts): the [`DeadLetter`] JSON goes to the dead-letter queue, then
//!   the record counts as a success (deleted). If that write fails, the
//!   record is reported failed and tried again later.
//!
//! Attempts: the first receive is attempt 1; after that the attempt is one
//! more than the failures counted in DynamoDB for this SQS message id
//! ([`DynamoStore::record_failed_attempt`]), not the receive count, which
//! also counts receives spent waiting behind a failed message.
//!
//! An event another attempt still holds (an unfinished claim: that attempt
//! was cut off, or its release timed out after landing) is retried when the
//! claim expires ([`DynamoStore::claim_held`]), not after the backoff, and
//! that wait is not counted as a failed attempt: retrying sooner could only
//! fail again and would dead-letter an event nobody failed to apply.
//!
//! Time: the Lambda deadline bounds the batch. A record is not started with
//! less than [`RECORD_RESERVE`] left (it is reported failed and visible
//! again at once), and one still running [`DEADLINE_MARGIN`] before the
//! deadline is cut off and retried after the claim it may hold has expired
//! (`CLAIM_TIMEOUT`), so the retry finds the event free to apply.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_core::queue::{DeadLetter, Disposition, QueuePolicy, QueuedEvent};
use relay_core::store::CLAIM_TIMEOUT;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sqs::{change_visibility, send_dead_letter};
use crate::{DynamoStore, LambdaRelay};

/// A record is not started with less time than this before the deadline.
pub const RECORD_RESERVE: Duration = Duration::from_secs(15);
/// A record still running this long before the deadline is cut off.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// How long a record that was cut off (or whose task failed) stays
/// invisible: past the claim it may still hold, so the retry finds the
/// event free.
const AFTER_CLAIM: Duration = CLAIM_TIMEOUT.saturating_add(Duration::from_secs(10));

/// The Duo retry policy and per-attempt timeout of a queue worker: longer
/// than in the request (no IdP is waiting), bounded so a record fits well
/// inside the function timeout; what still fails is retried by the queue.
pub fn worker_retry() -> (duo_admin::RetryPolicy, Duration) {
    (
        duo_admin::RetryPolicy::short(Duration::from_secs(20)),
        Duration::from_secs(10),
    )
}

/// One SQS record of a Lambda event (the fields the worker reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    pub message_id: String,
    #[serde(default)]
    pub receipt_handle: String,
    #[serde(default)]
    pub body: Option<String>,
    /// `ApproximateReceiveCount`, `MessageGroupId`, …
    #[serde(default)]
    pub attributes: HashMap<String, String>,
    #[serde(default)]
    pub event_source: String,
}

impl SqsRecord {
    fn group(&self) -> &str {
        // A standard queue has no groups: every record stands alone.
        self.attributes
            .get("MessageGroupId")
            .map_or(self.message_id.as_str(), String::as_str)
    }

    fn receive_count(&self) -> u32 {
        self.attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }
}

/// The records of a Lambda SQS event, or `None` when `event` is not one
/// (every record's `eventSource` is `aws:sqs`).
pub fn sqs_records(event: &Value) -> Option<Vec<SqsRecord>> {
    let value = event.get("Records")?;
    let records = value.as_array()?;
    let is_sqs = !records.is_empty()
        && records
            .iter()
            .all(|r| r.get("eventSource").and_then(Value::as_str) == Some("aws:sqs"));
    if !is_sqs {
        return None;
    }
    // Read in place: the event (up to ten 256 KiB bodies) is not copied.
    Vec::<SqsRecord>::deserialize(value).ok()
}

/// The answer Lambda reads with `ReportBatchItemFailures`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub item_identifier: String,
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settled {
    Done,
    DeadLettered,
    /// Reported failed; visible again after this long.
    Failed {
        visible_in: Duration,
        attempted: bool,
    },
}

/// The worker's queues and policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Worker {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    dlq_url: String,
    policy: QueuePolicy,
}

impl Worker {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        queue_url: impl Into<String>,
        dlq_url: impl Into<String>,
        policy: QueuePolicy,
    ) -> Self {
        Self {
            sqs,
            queue_url: queue_url.into(),
            dlq_url: dlq_url.into(),
            policy,
        }
    }

    pub fn policy(&self) -> &QueuePolicy {
        &self.policy
    }

    /// Handles one batch; `deadline` is the invocation's (none in tests
    /// that do not care).
    pub async fn run(
        &self,
        relay: Arc<LambdaRelay>,
        records: Vec<SqsRecord>,
        deadline: Option<Instant>,
    ) -> BatchResponse {
        let total = records.len();
        let mut groups: Vec<(String, Vec<SqsRecord>)> = Vec::new();
        for record in records {
            match groups.iter_mut().find(|(g, _)| g == record.group()) {
                Some((_, members)) => members.push(record),
                None => groups.push((record.group().to_owned(), vec![record])),
            }
        }
        let mut tasks = Vec::with_capacity(groups.len());
        for (_, members) in groups {
            let handles: Vec<(String, String)> = members
                .iter()
                .map(|r| (r.message_id.clone(), r.receipt_handle.clone()))
                .collect();
            let worker = self.clone();
            let relay = Arc::clone(&relay);
            let task =
                tokio::spawn(async move { worker.run_group(&relay, members, deadline).await });
            tasks.push((handles, task));
        }
        let mut settled: Vec<(String, String, Settled)> = Vec::with_capacity(total);
        for (handles, task) in tasks {
            match task.await {
                Ok(results) => settled.extend(
                    handles
                        .into_iter()
                        .zip(results)
                        .map(|((id, handle), s)| (id, handle, s)),
                ),
                Err(e) => {
                    tracing::error!(error = %e, "a worker task failed; its records will be retried");
                    settled.extend(handles.into_iter().map(|(id, handle)| {
                        (
                            id,
                            handle,
                            Settled::Failed {
                                visible_in: AFTER_CLAIM,
                                attempted: true,
                            },
                        )
                    }));
                }
            }
        }
        self.set_visibility(&settled).await;
        let count = |f: fn(&Settled) -> bool| settled.iter().filter(|(_, _, s)| f(s)).count();
        let done = count(|s| matches!(s, Settled::Done));
        let dead = count(|s| matches!(s, Settled::DeadLettered));
        let retried = count(|s| {
            matches!(
                s,
                Settled::Failed {
                    attempted: true,
                    ..
                }
            )
        });
        let waiting = count(|s| {
            matches!(
                s,
                Settled::Failed {
                    attempted: false,
                    ..
                }
            )
        });
        tracing::info!(
            records = total,
            done,
            dead_lettered = dead,
            retried,
            not_attempted = waiting,
            "queue batch processed"
        );
        BatchResponse {
            batch_item_failures: settled
                .into_iter()
                .filter(|(_, _, s)| matches!(s, Settled::Failed { .. }))
                .map(|(id, _, _)| ItemFailure {
                    item_identifier: id,
                })
                .collect(),
        }
    }

    /// One message group's records, in order; stops at the first failure.
    async fn run_group(
        &self,
        relay: &LambdaRelay,
        records: Vec<SqsRecord>,
        deadline: Option<Instant>,
    ) -> Vec<Settled> {
        let mut out = Vec::with_capacity(records.len());
        let mut blocked: Option<Duration> = None;
        for record in &records {
            if let Some(visible_in) = blocked {
                out.push(Settled::Failed {
                    visible_in,
                    attempted: false,
                });
                continue;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|left| left < RECORD_RESERVE) {
                blocked = Some(Duration::ZERO);
                out.push(Settled::Failed {
                    visible_in: Duration::ZERO,
                    attempted: false,
                });
                continue;
            }
            let settled = self
                .run_record(
                    relay,
                    record,
                    left.map(|l| l.saturating_sub(DEADLINE_MARGIN)),
                )
                .await;
            if let Settled::Failed { visible_in, .. } = settled {
                blocked = Some(visible_in);
            }
            out.push(settled);
        }
        out
    }

    async fn run_record(
        &self,
        relay: &LambdaRelay,
        record: &SqsRecord,
        budget: Option<Duration>,
    ) -> Settled {
        let store = relay.store();
        let attempt = self.attempt(store, record).await;
        let body = record.body.as_deref().unwrap_or_default();
        let process = relay.process(body, attempt, &self.policy);
        // (`process` writes the event's summary line itself.)
        let (disposition, cut_off) = match budget {
            None => (process.await.1, false),
            Some(budget) => match tokio::time::timeout(budget, process).await {
                Ok((_, disposition)) => (disposition, false),
                Err(_) => (
                    Disposition::Retry {
                        reason: "cut off before the function's deadline".to_owned(),
                    },
                    true,
                ),
            },
        };
        match disposition {
            Disposition::Done => Settled::Done,
            Disposition::Retry { reason } => {
                if !cut_off && let Some(left) = self.held_claim(store, record, body).await {
                    tracing::warn!(message_id = %record.message_id, claim_left_secs = left.as_secs(), "the event is claimed by an earlier attempt that did not finish; retrying after the claim expires");
                    return Settled::Failed {
                        visible_in: left.max(self.policy.backoff(attempt)) + Duration::from_secs(1),
                        attempted: true,
                    };
                }
                if let Err(e) = store.record_failed_attempt(&record.message_id).await {
                    tracing::warn!(message_id = %record.message_id, error = %e, "could not count the failed attempt");
                }
                let mut visible_in = self.policy.backoff(attempt);
                if cut_off {
                    // The cut-off attempt may still hold the event's claim.
                    visible_in = visible_in.max(AFTER_CLAIM);
                    tracing::warn!(message_id = %record.message_id, attempt, reason = %reason, "record cut off");
                }
                Settled::Failed {
                    visible_in,
                    attempted: true,
                }
            }
            Disposition::DeadLetter { reason } => {
                // `process` has logged the `dead_letter` line.
                let letter = DeadLetter::new(body, &reason, attempt);
                match send_dead_letter(&self.sqs, &self.dlq_url, &letter, &record.message_id).await
                {
                    Ok(_) => Settled::DeadLettered,
                    Err(e) => {
                        tracing::error!(message_id = %record.message_id, error = %e, "could not write the dead letter; the message stays in the queue and is tried again");
                        Settled::Failed {
                            visible_in: self.policy.backoff(attempt),
                            attempted: true,
                        }
                    }
                }
            }
        }
    }

    /// How long an unfinished claim still holds the record's event, if one
    /// does (a failed read counts as none: the backoff applies).
    async fn held_claim(
        &self,
        store: &DynamoStore,
        record: &SqsRecord,
        body: &str,
    ) -> Option<Duration> {
        let message = QueuedEvent::from_json(body).ok()?;
        match store.claim_held(&message.event.id).await {
            Ok(left) => left,
            Err(e) => {
                tracing::warn!(message_id = %record.message_id, error = %e, "cannot read the event's claim");
                None
            }
        }
    }

    /// This delivery's attempt number (from 1).
    async fn attempt(&self, store: &DynamoStore, record: &SqsRecord) -> u32 {
        let received = record.receive_count();
        if received <= 1 {
            return 1;
        }
        match store.failed_attempts(&record.message_id).await {
            Ok(failed) => failed.saturating_add(1).min(received),
            Err(e) => {
                tracing::warn!(message_id = %record.message_id, error = %e, "could not read the failed attempts; counting receives instead");
                received
            }
        }
    }

    /// Sets the visibility of every failed record (best effort: a record
    /// whose visibility cannot be set comes back after the queue's
    /// visibility timeout).
    async fn set_visibility(&self, settled: &[(String, String, Settled)]) {
        let failed: Vec<(&str, Duration)> = settled
            .iter()
            .filter_map(|(_, handle, s)| match s {
                Settled::Failed { visible_in, .. } if !handle.is_empty() => {
                    Some((handle.as_str(), *visible_in))
                }
                _ => None,
            })
            .collect();
        if let Err(e) = change_visibility(&self.sqs, &self.queue_url, &failed).await {
            tracing::warn!(
                error = %e,
                "could not set the visibility of failed records; they come back after the queue's visibility timeout"
            );
        }
    }
}
