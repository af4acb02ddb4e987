//! The idempotency store on DynamoDB, with the semantics of
//! `relay_core::store::MemoryStore`, made atomic by condition expressions.
//!
//! Table (name in `RELAY_TABLE_NAME`): partition key `pk` (string, the event
//! id), attribute `state` (`claimed` | `done`), attribute `expires_at`
//! (number, epoch seconds) which is also the table's TTL attribute.
//!
//! - claim: `PutItem` of a `claimed` item expiring after `CLAIM_TIMEOUT`, on
//!   condition `attribute_not_exists(pk) OR expires_at <= :now`. DynamoDB's
//!   TTL deletes expired items only eventually (within days), so the
//!   condition itself treats an expired item as absent. A failed condition
//!   returns the old item (`ReturnValuesOnConditionCheckFailure=ALL_OLD`),
//!   which tells `Done` from `InProgress` without a second read. Each claim
//!   carries a random `claim_token`: when the SDK retries a `PutItem` whose
//!   first attempt timed out but was written, the retry finds its own token
//!   and the claim is still `New` (not someone else's `InProgress`); when a
//!   claim fails with an error, the item is deleted if it holds our token, so
//!   a claim that landed unseen does not block the event for
//!   `CLAIM_TIMEOUT`. An item that vanishes between the refused put and the
//!   read every round, three rounds running, is an error (retried).
//! - complete: unconditional `PutItem` of a `done` item expiring after the TTL.
//! - release: `DeleteItem` on condition `state = claimed` (a completed event
//!   stays completed).
//!
//! Any other error is `StoreError::Backend`, which the pipeline answers 503
//! (the IdP retries).
//!
//! Watermarks (queue mode's stale-event protection, `relay_core::order`)
//! live in the same table: partition key `wm#<key>` (event ids always start
//! with their source, `okta:` / `auth0…:`, so the two never meet; a key too
//! long for a partition key is hashed), attribute `at_ms` (number, the event
//! time) and the same `expires_at` TTL attribute, renewed on every advance.
//! - watermark: consistent `GetItem`; an expired item counts as absent.
//! - set_watermark: `UpdateItem` on condition `attribute_not_exists(pk) OR
//!   at_ms < :at OR expires_at <= :now`, so the newer time always wins, even
//!   between two writers; a failed condition means a newer (or the same) time
//!   is stored, which is success.
//!
//! The queue worker also counts failed attempts per SQS message here
//! (`try#<message id>`, attribute `attempts`, same TTL): SQS's
//! `ApproximateReceiveCount` also counts the receives of messages that
//! waited behind a failed one of their group and were never attempted.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use relay_core::event::EventId;
use relay_core::store::{CLAIM_TIMEOUT, Claim, DEFAULT_TTL, IdempotencyStore, StoreError};

const PK: &str = "pk";
const STATE: &str = "state";
const EXPIRES_AT: &str = "expires_at";
const CLAIMED: &str = "claimed";
const DONE: &str = "done";
const AT_MS: &str = "at_ms";
const CLAIM_TOKEN: &str = "claim_token";
const ATTEMPTS: &str = "attempts";
/// Partition keys of failed-attempt counters start with this.
pub const ATTEMPTS_PREFIX: &str = "try#";
/// Partition keys of watermark items start with this.
pub const WATERMARK_PREFIX: &str = "wm#";
/// Longest watermark key kept as it is (DynamoDB allows 2048 bytes of
/// partition key); longer ones are hashed.
const MAX_PLAIN_WATERMARK_KEY: usize = 1024;

/// Idempotency store on one DynamoDB table. Cheap to clone (the client is
/// shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
    ttl: Duration,
    claim_timeout: Duration,
}

impl DynamoStore {
    /// A store on `table`, remembering applied events for `DEFAULT_TTL`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            ttl: DEFAULT_TTL,
            claim_timeout: CLAIM_TIMEOUT,
        }
    }

    /// How long a completed event is remembered.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long an unfinished claim blocks other deliveries (tests shorten it).
    #[must_use]
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The Duo group index in the same table ([`crate::groups`]).
    pub fn group_index(&self) -> crate::DynamoGroupIndex {
        crate::DynamoGroupIndex::new(self.client.clone(), &self.table)
    }

    fn key(event: &EventId) -> AttributeValue {
        AttributeValue::S(event.as_str().to_owned())
    }

    /// The partition key of a watermark item.
    pub fn watermark_pk(key: &str) -> String {
        if key.len() <= MAX_PLAIN_WATERMARK_KEY {
            format!("{WATERMARK_PREFIX}{key}")
        } else {
            format!("{WATERMARK_PREFIX}sha256:{}", crate::sha256_hex(key))
        }
    }

    /// How many attempts at the queue message `message_id` (an SQS message
    /// id) failed, as [`DynamoStore::record_failed_attempt`] counted them.
    pub async fn failed_attempts(&self, message_id: &str) -> Result<u32, StoreError> {
        let item = self
            .get(AttributeValue::S(format!("{ATTEMPTS_PREFIX}{message_id}")))
            .await?;
        Ok(match item.as_ref().and_then(|item| item.get(ATTEMPTS)) {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        })
    }

    /// Counts one more failed attempt at the queue message `message_id`;
    /// answers the new count.
    pub async fn record_failed_attempt(&self, message_id: &str) -> Result<u32, StoreError> {
        let until = now_secs() + self.ttl.as_secs();
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(
                PK,
                AttributeValue::S(format!("{ATTEMPTS_PREFIX}{message_id}")),
            )
            .update_expression("ADD #attempts :one SET #expires_at = :until")
            .expression_attribute_names("#attempts", ATTEMPTS)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":one", number(1))
            .expression_attribute_values(":until", number(until))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("UpdateItem", &self.table, &e))?;
        Ok(
            match output.attributes().and_then(|item| item.get(ATTEMPTS)) {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(1),
                _ => 1,
            },
        )
    }

    /// Tells `Done` from `InProgress` (or our own claim, `New`) from the
    /// item a failed claim found.
    fn claim_of(item: &HashMap<String, AttributeValue>, token: &str) -> Claim {
        match (item.get(STATE), item.get(CLAIM_TOKEN)) {
            (Some(AttributeValue::S(state)), _) if state == DONE => Claim::Done,
            (_, Some(AttributeValue::S(t))) if t == token => Claim::New,
            _ => Claim::InProgress,
        }
    }

    /// How much longer an unfinished claim of `event` blocks it, if one
    /// does (a worker that was cut off or whose store write failed left
    /// it); `None` when the event is not claimed (done, released, expired).
    pub async fn claim_held(&self, event: &EventId) -> Result<Option<Duration>, StoreError> {
        let Some(item) = self.get(Self::key(event)).await? else {
            return Ok(None);
        };
        let claimed = matches!(item.get(STATE), Some(AttributeValue::S(s)) if s == CLAIMED);
        let until = match item.get(EXPIRES_AT) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().unwrap_or(0),
            _ => 0,
        };
        let now = now_secs();
        Ok((claimed && until > now).then(|| Duration::from_secs(until - now)))
    }

    /// The item as it is now, for a failed claim whose error did not carry
    /// it. `None` when it vanished meanwhile (released or expired).
    async fn read(&self, event: &EventId, token: &str) -> Result<Option<Claim>, StoreError> {
        let item = self.get(Self::key(event)).await?;
        Ok(item.map(|item| Self::claim_of(&item, token)))
    }

    /// The item under `pk`, read consistently; `None` when there is none.
    async fn get(
        &self,
        pk: AttributeValue,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, pk)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", &self.table, &e))?;
        Ok(output.item)
    }

    /// After a claim that failed with an error: removes the claim if it was
    /// written after all (best effort).
    async fn forget_claim(&self, event: &EventId, token: &str) {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, Self::key(event))
            .condition_expression("#token = :token")
            .expression_attribute_names("#token", CLAIM_TOKEN)
            .expression_attribute_values(":token", AttributeValue::S(token.to_owned()))
            .send()
            .await;
        if let Err(e) = result
            && !e
                .as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception())
        {
            tracing::warn!(event_id = %event, error = %backend("DeleteItem", &self.table, &e), "a failed claim may block the event until it expires");
        }
    }
}

/// A claim token: random enough that two claims never share one.
fn claim_token() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", hasher.finish())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

fn backend<E, R>(operation: &str, table: &str, error: &SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    StoreError::Backend(format!(
        "DynamoDB {operation} on table {table}: {}",
        crate::describe(error)
    ))
}

impl IdempotencyStore for DynamoStore {
    async fn claim(&self, event: &EventId) -> Result<Claim, StoreError> {
        // Three rounds: a lost race against a release or an expiry (the item
        // is gone by the time we read it) is simply claimed again; then the
        // give-up rule of relay_core::store::claim (an error, retried).
        let token = claim_token();
        for _ in 0..relay_core::store::claim::ROUNDS {
            let now = now_secs();
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, Self::key(event))
                .item(STATE, AttributeValue::S(CLAIMED.to_owned()))
                .item(CLAIM_TOKEN, AttributeValue::S(token.clone()))
                .item(EXPIRES_AT, number(now + self.claim_timeout.as_secs()))
                .condition_expression("attribute_not_exists(#pk) OR #expires_at <= :now")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#expires_at", EXPIRES_AT)
                .expression_attribute_values(":now", number(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(Claim::New),
                Err(error) => error,
            };
            match error.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => {
                    let old = match e {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item(),
                        _ => None,
                    };
                    match old {
                        Some(item) => return Ok(Self::claim_of(item, &token)),
                        None => {
                            if let Some(claim) = self.read(event, &token).await? {
                                return Ok(claim);
                            }
                        }
                    }
                }
                _ => {
                    let error = backend("PutItem", &self.table, &error);
                    self.forget_claim(event, &token).await;
                    return Err(error);
                }
            }
        }
        // Claimed and released under our feet every round: not decided, so
        // not a guessed InProgress (a 200 in sync mode) but an error.
        Err(StoreError::Backend(format!(
            "DynamoDB claim on table {}: the item kept changing under us; retry later",
            self.table
        )))
    }

    async fn complete(&self, event: &EventId) -> Result<(), StoreError> {
        let until = now_secs() + self.ttl.as_secs();
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, Self::key(event))
            .item(STATE, AttributeValue::S(DONE.to_owned()))
            .item(EXPIRES_AT, number(until))
            .send()
            .await
            .map_err(|e| backend("PutItem", &self.table, &e))?;
        Ok(())
    }

    async fn release(&self, event: &EventId) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, Self::key(event))
            .condition_expression("#state = :claimed")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_values(":claimed", AttributeValue::S(CLAIMED.to_owned()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed or already gone: nothing to release.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("DeleteItem", &self.table, &e)),
        }
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        let Some(item) = self.get(AttributeValue::S(Self::watermark_pk(key))).await? else {
            return Ok(None);
        };
        let expires_at = match item.get(EXPIRES_AT) {
            Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
            _ => None,
        };
        if expires_at.is_some_and(|until| until <= now_secs()) {
            return Ok(None);
        }
        match item.get(AT_MS) {
            Some(AttributeValue::N(n)) => n.parse::<i64>().map(Some).map_err(|_| {
                StoreError::Backend(format!(
                    "DynamoDB table {}: watermark item has a non-integer {AT_MS}",
                    self.table
                ))
            }),
            _ => Err(StoreError::Backend(format!(
                "DynamoDB table {}: watermark item without {AT_MS}",
                self.table
            ))),
        }
    }

    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        let now = now_secs();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(Self::watermark_pk(key)))
            .update_expression("SET #at = :at, #expires_at = :until")
            .condition_expression("attribute_not_exists(#pk) OR #at < :at OR #expires_at <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#at", AT_MS)
            .expression_attribute_names("#expires_at", EXPIRES_AT)
            .expression_attribute_values(":at", AttributeValue::N(at_ms.to_string()))
            .expression_attribute_values(":until", number(now + self.ttl.as_secs()))
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // A newer (or the same) time is stored: keep it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(backend("UpdateItem", &self.table, &e)),
        }
    }
}
