//! The Duo group index (`relay_core::group_index`) in the idempotency
//! table, so a restart of the Function App (or another instance) loads it
//! instead of listing every Duo group.
//!
//! One partition of the table, `groupindex` (event entities are
//! partitioned by their source, watermarks under `watermark`): one entity
//! per shard, RowKey `shard-<n>` (`n` = the group's [`shard_of`], of
//! [`relay_core::group_index::SHARDS`]), one string property per group — `g_<Duo group id>` (an id
//! that is not a plain identifier is written `h_<hex>`) = `{"name":…,
//! "tag":…}` — and the entity `meta`, whose `complete` (a boolean) says a
//! listing of every group was stored.
//!
//! - load: one query of the partition (65 entities; the service pages at
//!   1,000, continuation followed).
//! - put: per shard the groups fall in, one Insert Or Merge (`MERGE`, no
//!   `If-Match`) of their properties — a merge touches only the properties
//!   it names, so instances learning different groups of a shard do not
//!   undo each other; shards in parallel.
//! - remove: a merge setting the group's property to `""` (a merge cannot
//!   drop a property; the next complete listing rewrites the shard without
//!   it).
//! - replace_all: every shard replaced whole (Insert Or Replace), then the
//!   `complete` mark, after the shards.
//!
//! Limits: an entity holds 252 properties of its own and 1 MiB
//! (learn.microsoft.com, "Understanding the Table service data model").
//! At 5,000 groups a shard holds about 78 (~30 KB); past about 12,000 groups
//! the fullest shards reach 252 and their writes fail — logged, and costing
//! Duo calls (a search, a listing per cold start), never correctness: the
//! index is a cache.

use std::fmt::Write as _;

use duo_admin::DuoGroupId;
use relay_core::group_index::{
    GroupEntry, GroupIndexStore, GroupSnapshot, StoreFuture, by_shard, shard_of,
};
use relay_core::store::StoreError;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::table::TableCas;

/// The partition holding the index.
pub const PARTITION: &str = "groupindex";
/// The RowKey of the entity holding the complete mark.
pub const META_ROW: &str = "meta";
const COMPLETE: &str = "complete";

/// The RowKey of shard `n`.
pub fn shard_row(n: usize) -> String {
    format!("shard-{n:02}")
}

/// The property holding group `id`: `g_<id>` when the id is a plain
/// identifier (Duo's are: `DG` and 18 letters or digits), else
/// `h_<hex of the id>`; `None` for an id too long for a property name (255).
pub fn property(id: &DuoGroupId) -> Option<String> {
    let id = id.as_str();
    let name = if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        format!("g_{id}")
    } else {
        let mut hex = String::with_capacity(2 + 2 * id.len());
        hex.push_str("h_");
        for b in id.bytes() {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    };
    (name.len() <= 255).then_some(name)
}

/// The group id a property holds, if it is a group's.
fn group_id(property: &str) -> Option<String> {
    if let Some(id) = property.strip_prefix("g_") {
        return Some(id.to_owned());
    }
    let hex = property.strip_prefix("h_")?;
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The group index in an Azure table (the idempotency table). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct TableGroupIndex {
    table: TableCas,
}

impl TableGroupIndex {
    pub fn new(table: TableCas) -> Self {
        Self { table }
    }

    /// One write of `properties` to shard `row`: Insert Or Merge, or with
    /// `replace` Insert Or Replace.
    async fn write(
        &self,
        operation: &'static str,
        row: String,
        properties: Map<String, Value>,
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut entity = Map::new();
        entity.insert("PartitionKey".into(), PARTITION.into());
        entity.insert("RowKey".into(), row.clone().into());
        entity.extend(properties);
        let method = if replace {
            Method::PUT
        } else {
            Method::from_bytes(b"MERGE").map_err(|e| StoreError::Backend(e.to_string()))?
        };
        let answer = self
            .table
            .send(
                operation,
                method,
                &self.table.entity_path(PARTITION, &row),
                Some(Value::Object(entity).to_string()),
                &[],
            )
            .await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(answer.unexpected(operation))
        }
    }

    /// Writes shards in parallel; the first error wins.
    async fn write_shards(
        &self,
        operation: &'static str,
        shards: Vec<(String, Map<String, Value>)>,
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut calls = tokio::task::JoinSet::new();
        for (row, properties) in shards {
            let this = self.clone();
            calls.spawn(async move { this.write(operation, row, properties, replace).await });
        }
        let mut result = Ok(());
        while let Some(done) = calls.join_next().await {
            let done = done.map_err(|e| {
                StoreError::Backend(format!("Azure Table Storage {operation}: {e}"))
            })?;
            if result.is_ok() {
                result = done;
            }
        }
        result
    }

    async fn query(&self) -> Result<Vec<Map<String, Value>>, StoreError> {
        let mut entities = Vec::new();
        let mut next: Option<(String, Option<String>)> = None;
        loop {
            let mut resource = format!(
                "{}()?$filter=PartitionKey%20eq%20'{PARTITION}'",
                self.table.table_name()
            );
            if let Some((partition, row)) = &next {
                let _ = write!(resource, "&NextPartitionKey={}", encode(partition));
                if let Some(row) = row {
                    let _ = write!(resource, "&NextRowKey={}", encode(row));
                }
            }
            let answer = self
                .table
                .send("query group index", Method::GET, &resource, None, &[])
                .await?;
            if answer.status != StatusCode::OK {
                return Err(answer.unexpected("query group index"));
            }
            let page: Value = serde_json::from_slice(&answer.body).map_err(|_| {
                StoreError::Backend("Azure Table Storage query group index: not JSON".into())
            })?;
            if let Some(Value::Array(value)) = page.get("value") {
                entities.extend(value.iter().filter_map(|e| e.as_object().cloned()));
            }
            match answer.continuation {
                Some(c) => next = Some(c),
                None => return Ok(entities),
            }
        }
    }
}

/// A continuation token as a query value (they are opaque; escape what a
/// query string cannot hold as it is).
fn encode(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!' | b'*') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The index the partition's entities hold.
fn snapshot(entities: &[Map<String, Value>]) -> GroupSnapshot {
    let mut snapshot = GroupSnapshot::default();
    let mut unreadable = 0usize;
    for entity in entities {
        if entity.get("RowKey").and_then(Value::as_str) == Some(META_ROW) {
            snapshot.complete = entity.get(COMPLETE).and_then(Value::as_bool) == Some(true);
            continue;
        }
        for (name, value) in entity {
            let Some(id) = group_id(name) else { continue };
            match value.as_str() {
                // A removed group.
                Some("") => {}
                Some(v) => match GroupEntry::from_stored(&id, v) {
                    Some(entry) => snapshot.entries.push(entry),
                    None => unreadable += 1,
                },
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

/// The properties of these groups (an id too long for a property name is
/// left out: it costs a search, logged).
fn properties(entries: &[&GroupEntry]) -> Map<String, Value> {
    let mut map = Map::new();
    for e in entries {
        match property(&e.group_id) {
            Some(name) => {
                map.insert(name, e.stored_value().into());
            }
            None => {
                tracing::warn!(group_id = %e.group_id, "group index: a group id too long for a Table property is not stored")
            }
        }
    }
    map
}

impl GroupIndexStore for TableGroupIndex {
    fn load(&self) -> StoreFuture<'_, GroupSnapshot> {
        Box::pin(async move { Ok(snapshot(&self.query().await?)) })
    }

    fn put<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let shards = by_shard(entries)
                .into_iter()
                .enumerate()
                .filter(|(_, group)| !group.is_empty())
                .map(|(n, group)| (shard_row(n), properties(&group)))
                .collect();
            self.write_shards("merge group index shard", shards, false)
                .await
        })
    }

    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let Some(name) = property(id) else {
                return Ok(());
            };
            let mut gone = Map::new();
            gone.insert(name, "".into());
            self.write(
                "remove from group index",
                shard_row(shard_of(id)),
                gone,
                false,
            )
            .await
        })
    }

    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let shards = by_shard(entries)
                .into_iter()
                .enumerate()
                .map(|(n, group)| (shard_row(n), properties(&group)))
                .collect();
            self.write_shards("replace group index shard", shards, true)
                .await?;
            let mut meta = Map::new();
            meta.insert(COMPLETE.into(), json!(true));
            self.write("mark group index complete", META_ROW.into(), meta, true)
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_names_are_identifiers_and_round_trip() {
        for id in ["DGXXXXXXXXXXXXXXXXX1", "DG_1", "odd-id/é", "a b"] {
            let name = property(&DuoGroupId::new(id)).unwrap();
            assert!(
                name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{name}"
            );
            assert!(name.as_bytes()[0].is_ascii_alphabetic());
            assert_eq!(group_id(&name).as_deref(), Some(id));
        }
        assert_eq!(property(&DuoGroupId::new("x".repeat(300))), None);
        assert_eq!(property(&DuoGroupId::new("-".repeat(150))), None);
        assert_eq!(group_id("PartitionKey"), None);
        assert_eq!(group_id("h_zz"), None);
    }

    #[test]
    fn continuation_tokens_are_escaped() {
        assert_eq!(encode("1!8!Z3JvdXBz"), "1!8!Z3JvdXBz");
        assert_eq!(encode("a+b/c="), "a%2Bb%2Fc%3D");
    }
}
