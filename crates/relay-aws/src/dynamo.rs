//! The idempotency store on DynamoDB: the claim + watermark protocol of
//! `relay_core::store::claim` over DynamoDB condition expressions
//! ([`DynamoCas`]).
//!
//! Table (name in `RELAY_TABLE_NAME`): partition key `pk` (string, the event
//! id, or `sha256:` + its hex SHA-256 when longer than 1 KiB), attribute `state` (`claimed` | `done`), attribute `expires_at`
//! (number, epoch seconds) which is also the table's TTL attribute,
//! `claim_token` on a claim, and `ver` (a random version written with every
//! write; an item written before `ver` existed has version "").
//!
//! - get: consistent `GetItem`.
//! - put_if_absent: `PutItem` on condition `attribute_not_exists(pk)`; a
//!   failed condition returns the old item
//!   (`ReturnValuesOnConditionCheckFailure=ALL_OLD`), so the protocol needs
//!   no second read. DynamoDB's TTL deletes expired items only eventually
//!   (within days); the protocol treats an expired item as absent.
//! - replace_if_version / delete_if_version: `PutItem` / `DeleteItem` on
//!   condition `ver = :ver` (or `attribute_exists(pk) AND
//!   attribute_not_exists(ver)` for version "").
//! - put: unconditional `PutItem`.
//!
//! Any other error is `StoreError::Backend`, which the pipeline answers 503
//! (the IdP retries).
//!
//! Watermarks (queue mode's stale-event protection, `relay_core::order`)
//! live in the same table: partition key `wm#<key>` (event ids always start
//! with their source, `okta:` / `auth0…:`, so the two never meet; a key too
//! long for a partition key is hashed), attribute `at_ms` (number, the event
//! time) and the same `expires_at` TTL attribute, renewed on every advance.
//!
//! The catch-up checkpoints (`relay_core::catch_up::CasCheckpoints`, one
//! per log source) live here too: partition key `cp#<source>`, attribute
//! `checkpoint` (the checkpoint's JSON), the same `ver` and `expires_at`.
//!
//! The queue worker also counts failed attempts per SQS message here
//! (`try#<message id>`, attribute `attempts`, same TTL): SQS's
//! `ApproximateReceiveCount` also counts the receives of messages that
//! waited behind a failed one of their group and were never attempted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use relay_core::event::EventId;
use relay_core::store::claim::hashed_key;
use relay_core::store::{
    CLAIM_TIMEOUT, Cas, CasStore, Cond, DEFAULT_TTL, Record, Slot, StoreError, Versioned,
};

const PK: &str = "pk";
const STATE: &str = "state";
const EXPIRES_AT: &str = "expires_at";
const CLAIMED: &str = "claimed";
const DONE: &str = "done";
const AT_MS: &str = "at_ms";
const CLAIM_TOKEN: &str = "claim_token";
const VERSION: &str = "ver";
const ATTEMPTS: &str = "attempts";
const CHECKPOINT: &str = "checkpoint";
/// Partition keys of catch-up checkpoints start with this.
pub const CHECKPOINT_PREFIX: &str = "cp#";
/// Partition keys of failed-attempt counters start with this.
pub const ATTEMPTS_PREFIX: &str = "try#";
/// Partition keys of watermark items start with this.
pub const WATERMARK_PREFIX: &str = "wm#";
/// Longest event id or watermark key kept as it is (DynamoDB allows 2048
/// bytes of partition key); longer ones are hashed.
const MAX_PLAIN_WATERMARK_KEY: usize = 1024;

type Item = HashMap<String, AttributeValue>;

/// The compare-and-swap primitives on one DynamoDB table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoCas {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

/// Idempotency store on one DynamoDB table. Cheap to clone (the client and
/// the claims this process holds are shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    claims: Arc<CasStore<DynamoCas>>,
}

relay_core::idempotency_store_via_cas!(DynamoStore, claims);

impl DynamoStore {
    /// A store on `table`, remembering applied events for `DEFAULT_TTL`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        let cas = DynamoCas {
            client,
            table: table.into(),
        };
        Self {
            claims: Arc::new(CasStore::with_timeouts(cas, DEFAULT_TTL, CLAIM_TIMEOUT)),
        }
    }

    fn cas(&self) -> &DynamoCas {
        self.claims.backend()
    }

    /// How long a completed event is remembered.
    #[must_use]
    pub fn with_ttl(self, ttl: Duration) -> Self {
        let claim_timeout = self.claims.claim_timeout();
        self.rebuilt(ttl, claim_timeout)
    }

    /// How long an unfinished claim blocks other deliveries (tests shorten it).
    #[must_use]
    pub fn with_claim_timeout(self, timeout: Duration) -> Self {
        let ttl = self.claims.ttl();
        self.rebuilt(ttl, timeout)
    }

    fn rebuilt(self, ttl: Duration, claim_timeout: Duration) -> Self {
        let cas = self.cas().clone();
        Self {
            claims: Arc::new(CasStore::with_timeouts(cas, ttl, claim_timeout)),
        }
    }

    pub fn table(&self) -> &str {
        &self.cas().table
    }

    /// The catch-up checkpoints in the same table.
    pub fn checkpoints(&self) -> relay_core::catch_up::CasCheckpoints<DynamoCas> {
        relay_core::catch_up::CasCheckpoints::new(Arc::clone(&self.claims))
    }

    /// The Duo group index in the same table ([`crate::groups`]).
    pub fn group_index(&self) -> crate::DynamoGroupIndex {
        crate::DynamoGroupIndex::new(self.cas().client.clone(), self.table())
    }

    /// The partition key of a watermark item.
    pub fn watermark_pk(key: &str) -> String {
        hashed_key(
            format!("{WATERMARK_PREFIX}{key}"),
            WATERMARK_PREFIX.len() + MAX_PLAIN_WATERMARK_KEY,
            &format!("{WATERMARK_PREFIX}sha256:"),
            key,
        )
    }

    /// How many attempts at the queue message `message_id` (an SQS message
    /// id) failed, as [`DynamoStore::record_failed_attempt`] counted them.
    pub async fn failed_attempts(&self, message_id: &str) -> Result<u32, StoreError> {
        let item = self
            .cas()
            .get_item(AttributeValue::S(format!("{ATTEMPTS_PREFIX}{message_id}")))
            .await?;
        Ok(match item.as_ref().and_then(|item| item.get(ATTEMPTS)) {
            Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
            _ => 0,
        })
    }

    /// Counts one more failed attempt at the queue message `message_id`;
    /// answers the new count.
    pub async fn record_failed_attempt(&self, message_id: &str) -> Result<u32, StoreError> {
        let until = now_secs() + self.claims.ttl().as_secs();
        let cas = self.cas();
        let output = cas
            .client
            .update_item()
            .table_name(&cas.table)
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
            .map_err(|e| backend("UpdateItem", &cas.table, &e))?;
        Ok(
            match output.attributes().and_then(|item| item.get(ATTEMPTS)) {
                Some(AttributeValue::N(n)) => n.parse().unwrap_or(1),
                _ => 1,
            },
        )
    }

    /// How much longer an unfinished claim of `event` blocks it, if one
    /// does (a worker that was cut off or whose store write failed left
    /// it); `None` when the event is not claimed (done, released, expired).
    pub async fn claim_held(&self, event: &EventId) -> Result<Option<Duration>, StoreError> {
        self.claims.claim_held(event).await
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

fn string(s: &str) -> AttributeValue {
    AttributeValue::S(s.to_owned())
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

/// A fresh version for a write.
fn version() -> String {
    relay_core::store::claim::token()
}

fn pk(slot: Slot<'_>) -> AttributeValue {
    match slot {
        // An id too long for a partition key (2048 bytes) is hashed, like
        // the Table and Firestore keys (event ids start with their source,
        // so `sha256:` never meets one).
        Slot::Event(event) => AttributeValue::S(hashed_key(
            event.as_str().to_owned(),
            MAX_PLAIN_WATERMARK_KEY,
            "sha256:",
            event.as_str(),
        )),
        Slot::Mark(key) => AttributeValue::S(DynamoStore::watermark_pk(key)),
        // Sources are short names (`okta`, `auth0`).
        Slot::Checkpoint(source) => AttributeValue::S(format!("{CHECKPOINT_PREFIX}{source}")),
    }
}

/// The item of `record` in `slot`, under version `ver`.
fn item(slot: Slot<'_>, record: &Record, ver: &str) -> Item {
    let mut item = Item::from([
        (PK.to_owned(), pk(slot)),
        (EXPIRES_AT.to_owned(), number(record.until())),
        (VERSION.to_owned(), string(ver)),
    ]);
    match record {
        Record::Claimed { token, .. } => {
            item.insert(STATE.to_owned(), string(CLAIMED));
            item.insert(CLAIM_TOKEN.to_owned(), string(token));
        }
        Record::Done { .. } => {
            item.insert(STATE.to_owned(), string(DONE));
        }
        Record::Mark { at_ms, .. } => {
            item.insert(AT_MS.to_owned(), AttributeValue::N(at_ms.to_string()));
        }
        Record::Checkpoint { body, .. } => {
            item.insert(CHECKPOINT.to_owned(), string(body));
        }
    }
    item
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

fn int<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// The record an item holds. An unreadable expiry counts as expired.
fn versioned(item: &Item, table: &str) -> Result<Versioned, StoreError> {
    let until = int(item, EXPIRES_AT).unwrap_or(0);
    let record = if let Some(body) = text(item, CHECKPOINT) {
        Record::Checkpoint {
            body: body.to_owned(),
            until,
        }
    } else if item.contains_key(AT_MS) {
        let at_ms = int(item, AT_MS).ok_or_else(|| {
            StoreError::Backend(format!(
                "DynamoDB table {table}: watermark item has a non-integer {AT_MS}"
            ))
        })?;
        Record::Mark { at_ms, until }
    } else if text(item, STATE) == Some(DONE) {
        Record::Done { until }
    } else {
        Record::Claimed {
            until,
            token: text(item, CLAIM_TOKEN).unwrap_or_default().to_owned(),
        }
    };
    Ok(Versioned {
        record,
        version: text(item, VERSION).unwrap_or_default().to_owned(),
    })
}

/// The condition "the item is at version `ver`" (an item from before
/// versions has none: version "").
fn at_version(ver: &str) -> (&'static str, Option<AttributeValue>) {
    if ver.is_empty() {
        ("attribute_exists(#pk) AND attribute_not_exists(#ver)", None)
    } else {
        ("attribute_exists(#pk) AND #ver = :ver", Some(string(ver)))
    }
}

impl DynamoCas {
    /// The item under `pk`, read consistently; `None` when there is none.
    async fn get_item(&self, pk: AttributeValue) -> Result<Option<Item>, StoreError> {
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
}

/// Whether a failed request failed its condition.
fn condition_failed<E, R>(error: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(aws_sdk_dynamodb::error::ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException")
}

impl Cas for DynamoCas {
    async fn get(&self, slot: Slot<'_>) -> Result<Option<Versioned>, StoreError> {
        match self.get_item(pk(slot)).await? {
            Some(item) => versioned(&item, &self.table).map(Some),
            None => Ok(None),
        }
    }

    async fn put_if_absent(&self, slot: Slot<'_>, record: &Record) -> Result<Cond, StoreError> {
        let ver = version();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(slot, record, &ver)))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Cond::Written(Some(ver))),
            Err(e) if condition_failed(&e) => {
                let old = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => c.item(),
                    _ => None,
                };
                Ok(Cond::Conflict(match old {
                    Some(old) => Some(versioned(old, &self.table)?),
                    None => None,
                }))
            }
            Err(e) => Err(backend("PutItem", &self.table, &e)),
        }
    }

    async fn replace_if_version(
        &self,
        slot: Slot<'_>,
        record: &Record,
        version_read: &str,
    ) -> Result<Cond, StoreError> {
        let ver = version();
        let (condition, value) = at_version(version_read);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(slot, record, &ver)))
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ver", VERSION)
            .set_expression_attribute_values(value.map(|v| HashMap::from([(":ver".into(), v)])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Cond::Written(Some(ver))),
            Err(e) if condition_failed(&e) => Ok(Cond::Conflict(None)),
            Err(e) => Err(backend("PutItem", &self.table, &e)),
        }
    }

    async fn put(&self, slot: Slot<'_>, record: &Record) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(slot, record, &version())))
            .send()
            .await
            .map_err(|e| backend("PutItem", &self.table, &e))?;
        Ok(())
    }

    async fn delete_if_version(
        &self,
        slot: Slot<'_>,
        version_read: &str,
    ) -> Result<bool, StoreError> {
        let (condition, value) = at_version(version_read);
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, pk(slot))
            .condition_expression(condition)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ver", VERSION)
            .set_expression_attribute_values(value.map(|v| HashMap::from([(":ver".into(), v)])))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(backend("DeleteItem", &self.table, &e)),
        }
    }
}
