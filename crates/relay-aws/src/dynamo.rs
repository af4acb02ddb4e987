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
//!   which tells `Done` from `InProgress` without a second read.
//! - complete: unconditional `PutItem` of a `done` item expiring after the TTL.
//! - release: `DeleteItem` on condition `state = claimed` (a completed event
//!   stays completed).
//!
//! Any other error is `StoreError::Backend`, which the pipeline answers 503
//! (the IdP retries).

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

    fn key(event: &EventId) -> AttributeValue {
        AttributeValue::S(event.as_str().to_owned())
    }

    /// Tells `Done` from `InProgress` from the item a failed claim found.
    fn claim_of(item: &HashMap<String, AttributeValue>) -> Claim {
        match item.get(STATE) {
            Some(AttributeValue::S(state)) if state == DONE => Claim::Done,
            _ => Claim::InProgress,
        }
    }

    /// The item as it is now, for a failed claim whose error did not carry
    /// it. `None` when it vanished meanwhile (released or expired).
    async fn read(&self, event: &EventId) -> Result<Option<Claim>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, Self::key(event))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem", &self.table, &e))?;
        Ok(output.item().map(Self::claim_of))
    }
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
        // Two attempts: a lost race against a release or an expiry (the item
        // is gone by the time we read it) is simply claimed again.
        for _ in 0..2 {
            let now = now_secs();
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, Self::key(event))
                .item(STATE, AttributeValue::S(CLAIMED.to_owned()))
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
                        Some(item) => return Ok(Self::claim_of(item)),
                        None => {
                            if let Some(claim) = self.read(event).await? {
                                return Ok(claim);
                            }
                        }
                    }
                }
                _ => return Err(backend("PutItem", &self.table, &error)),
            }
        }
        // Claimed and released twice under our feet: someone is on it.
        Ok(Claim::InProgress)
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
}
