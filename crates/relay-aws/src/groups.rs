//! The Duo group index (`relay_core::group_index`) in the idempotency
//! table, so a Lambda cold start loads it instead of listing every Duo
//! group, and one listing serves every instance.
//!
//! [`SHARDS`] items, partition key `grp#<n>` (`n` = the group's
//! [`shard_of`]), one attribute per group: `g:<Duo group id>` = the string
//! `{"name":…,"tag":…}`; and `grp#meta`, whose `complete` (a boolean) says
//! a listing of every group was stored. Event ids start with their source
//! and watermarks with `wm#`, so none of them meets these keys. The items
//! have no `expires_at`: the table's TTL never removes them.
//!
//! - load: one `BatchGetItem` of the 65 keys (it takes 100), consistent.
//! - put: per shard the groups fall in, one `UpdateItem` `SET` of their
//!   attributes (atomic per attribute, so two instances learning different
//!   groups of one shard do not undo each other), shards in parallel.
//! - remove: `UpdateItem` `REMOVE` of the attribute.
//! - replace_all: every shard rewritten whole (`BatchWriteItem`, 25 a call),
//!   then the `complete` mark — after the shards, so a failure part way
//!   leaves the index incomplete (a later search lists again), never
//!   "complete" and short of groups.
//!
//! Sizes: 5,000 groups of ~150 bytes are ~12 KB a shard against DynamoDB's
//! 400 KB item limit (a write is billed by the item's whole size, so small
//! shards keep a learnt group cheap). A shard that would outgrow the limit
//! fails its write; the index is a cache, so that costs Duo calls later,
//! not correctness.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use duo_admin::DuoGroupId;
use relay_core::group_index::{
    GroupEntry, GroupIndexStore, GroupSnapshot, SHARDS, StoreFuture, by_shard, shard_of,
};
use relay_core::store::StoreError;

const PK: &str = "pk";
const COMPLETE: &str = "complete";
/// Partition key of the item holding the complete mark.
pub const META_PK: &str = "grp#meta";
/// Group attributes start with this (the item's other attribute is `pk`).
const ATTRIBUTE_PREFIX: &str = "g:";
/// Groups set by one `UpdateItem`: its expression (4 KB at most) names
/// each with two placeholders; a user is in at most 100 groups.
const SET_PER_CALL: usize = 100;
/// Rounds of `BatchGetItem` / `BatchWriteItem` for what DynamoDB left
/// unprocessed (throttling) before giving up.
const UNPROCESSED_ROUNDS: u32 = 5;

/// The partition key of shard `n`.
pub fn shard_pk(n: usize) -> String {
    format!("grp#{n}")
}

/// The group index in a DynamoDB table (the idempotency table). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct DynamoGroupIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoGroupIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn error<E>(&self, operation: &str, e: &aws_sdk_dynamodb::error::SdkError<E>) -> StoreError
    where
        E: std::error::Error + 'static,
    {
        StoreError::Backend(format!(
            "DynamoDB {operation} (group index) on table {}: {}",
            self.table,
            crate::describe(e)
        ))
    }

    async fn load_items(&self) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let keys: Vec<HashMap<String, AttributeValue>> = (0..SHARDS)
            .map(shard_pk)
            .chain([META_PK.to_owned()])
            .map(|pk| HashMap::from([(PK.to_owned(), AttributeValue::S(pk))]))
            .collect();
        let mut wanted = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Backend(format!("DynamoDB BatchGetItem: {e}")))?;
        let mut items = Vec::new();
        for round in 0..UNPROCESSED_ROUNDS {
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, wanted)
                .send()
                .await
                .map_err(|e| self.error("BatchGetItem", &e))?;
            if let Some(mut found) = output.responses
                && let Some(mut got) = found.remove(&self.table)
            {
                items.append(&mut got);
            }
            match output
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
            {
                Some(rest) if !rest.keys().is_empty() => wanted = rest,
                _ => return Ok(items),
            }
            tokio::time::sleep(Duration::from_millis(50 << round)).await;
        }
        Err(StoreError::Backend(format!(
            "DynamoDB BatchGetItem (group index) on table {}: keys left unprocessed (throttled)",
            self.table
        )))
    }

    /// One `UpdateItem` on shard `shard`: `SET` these groups' attributes.
    async fn set(&self, shard: usize, entries: &[&GroupEntry]) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(shard_pk(shard)));
        let mut sets = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            sets.push(format!("#g{i} = :g{i}"));
            update = update
                .expression_attribute_names(format!("#g{i}"), attribute(&e.group_id))
                .expression_attribute_values(format!(":g{i}"), AttributeValue::S(e.stored_value()));
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(|e| self.error("UpdateItem", &e))?;
        Ok(())
    }

    /// `BatchWriteItem` of whole items, 25 a call, retrying what DynamoDB
    /// left unprocessed.
    async fn write_all(
        &self,
        items: Vec<HashMap<String, AttributeValue>>,
    ) -> Result<(), StoreError> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StoreError::Backend(format!("DynamoDB BatchWriteItem: {e}")))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut round = 0;
            while !pending.is_empty() {
                if round == UNPROCESSED_ROUNDS {
                    return Err(StoreError::Backend(format!(
                        "DynamoDB BatchWriteItem (group index) on table {}: items left unprocessed (throttled)",
                        self.table
                    )));
                }
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                let output = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| self.error("BatchWriteItem", &e))?;
                pending = output
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                round += 1;
            }
        }
        Ok(())
    }
}

/// The attribute holding group `id`.
fn attribute(id: &DuoGroupId) -> String {
    format!("{ATTRIBUTE_PREFIX}{}", id.as_str())
}

/// The index held by the items `load` read.
fn snapshot(items: &[HashMap<String, AttributeValue>]) -> GroupSnapshot {
    let mut snapshot = GroupSnapshot::default();
    let mut unreadable = 0usize;
    for item in items {
        if matches!(item.get(PK), Some(AttributeValue::S(pk)) if pk == META_PK) {
            snapshot.complete = matches!(item.get(COMPLETE), Some(AttributeValue::Bool(true)));
            continue;
        }
        for (name, value) in item {
            let Some(id) = name.strip_prefix(ATTRIBUTE_PREFIX) else {
                continue;
            };
            match value
                .as_s()
                .ok()
                .and_then(|v| GroupEntry::from_stored(id, v))
            {
                Some(entry) => snapshot.entries.push(entry),
                None => unreadable += 1,
            }
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "group index: stored groups that could not be read were skipped (the index learns them again)"
        );
    }
    snapshot
}

impl GroupIndexStore for DynamoGroupIndex {
    fn load(&self) -> StoreFuture<'_, GroupSnapshot> {
        Box::pin(async move { Ok(snapshot(&self.load_items().await?)) })
    }

    fn put<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut calls = tokio::task::JoinSet::new();
            for (shard, group) in by_shard(entries).into_iter().enumerate() {
                for chunk in group.chunks(SET_PER_CALL) {
                    let this = self.clone();
                    let owned: Vec<GroupEntry> = chunk.iter().map(|e| (*e).clone()).collect();
                    calls.spawn(async move {
                        let refs: Vec<&GroupEntry> = owned.iter().collect();
                        this.set(shard, &refs).await
                    });
                }
            }
            let mut result = Ok(());
            while let Some(done) = calls.join_next().await {
                let done = done.map_err(|e| {
                    StoreError::Backend(format!("DynamoDB UpdateItem (group index): {e}"))
                })?;
                if result.is_ok() {
                    result = done;
                }
            }
            result
        })
    }

    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .key(PK, AttributeValue::S(shard_pk(shard_of(id))))
                .update_expression("REMOVE #g")
                .expression_attribute_names("#g", attribute(id))
                .send()
                .await
                .map_err(|e| self.error("UpdateItem", &e))?;
            Ok(())
        })
    }

    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let items: Vec<HashMap<String, AttributeValue>> = by_shard(entries)
                .into_iter()
                .enumerate()
                .map(|(shard, group)| {
                    let mut item = HashMap::with_capacity(group.len() + 1);
                    item.insert(PK.to_owned(), AttributeValue::S(shard_pk(shard)));
                    for e in group {
                        item.insert(attribute(&e.group_id), AttributeValue::S(e.stored_value()));
                    }
                    item
                })
                .collect();
            self.write_all(items).await?;
            self.client
                .put_item()
                .table_name(&self.table)
                .item(PK, AttributeValue::S(META_PK.to_owned()))
                .item(COMPLETE, AttributeValue::Bool(true))
                .send()
                .await
                .map_err(|e| self.error("PutItem", &e))?;
            Ok(())
        })
    }
}
