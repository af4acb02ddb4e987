//! The Duo group index (`relay_core::group_index`) in the idempotency
//! collection, so a Cloud Run cold start loads it instead of listing every
//! Duo group, and one listing serves every instance.
//!
//! Documents `groups.shard-<n>` (`n` = the group's [`shard_of`], of
//! [`relay_core::group_index::SHARDS`]) with one map field `groups`: Duo
//! group id → the string `{"name":…,"tag":…}`; and `groups.meta`, whose
//! `complete` (a boolean) says a listing of every group was stored. Event
//! documents are base64url ids (no `.`), watermarks `mark.…`, so none of
//! them meets these ids; they have no `expires_at`, so the TTL policy never
//! deletes them.
//!
//! - load: one `batchGet` of the 65 documents.
//! - put: one `commit` with, per shard the groups fall in, an update whose
//!   mask names only those groups' map entries (`groups.`id``) — other
//!   entries of the shard, written by other instances, stay.
//! - remove: the same with the entry named in the mask and absent from the
//!   document, which deletes it.
//! - replace_all: one `commit` replacing every shard and writing the
//!   `complete` mark — atomic, so the mark never comes without its groups.
//!
//! Sizes: 5,000 groups are about 78 a shard (~12 KB) against Firestore's
//! 1 MiB document. Terraform exempts the `groups` field from single-field
//! indexes (nothing queries it; indexing thousands of map entries would
//! only slow the writes).

use std::sync::Arc;

use duo_admin::DuoGroupId;
use relay_core::group_index::{
    GroupEntry, GroupIndexStore, GroupSnapshot, SHARDS, StoreFuture, by_shard, shard_of,
};
use relay_core::store::StoreError;
use serde_json::{Map, Value, json};

use crate::firestore::{FirestoreAuth, firestore_error, send};
use crate::metadata::MetadataServer;

/// The map field holding the groups of a shard document.
const FIELD: &str = "groups";
const COMPLETE: &str = "complete";
/// The document holding the complete mark.
pub const META_ID: &str = "groups.meta";

/// The document id of shard `n`.
pub fn shard_id(n: usize) -> String {
    format!("groups.shard-{n:02}")
}

/// The field path of group `id`'s entry: `groups.`id`` (backquoted, with
/// `` ` `` and `\` escaped, so any id is one path segment).
fn field_path(id: &DuoGroupId) -> String {
    let escaped = id.as_str().replace('\\', "\\\\").replace('`', "\\`");
    format!("{FIELD}.`{escaped}`")
}

/// The group index in a Firestore collection (the idempotency
/// collection), sharing the store's HTTP client and token.
#[derive(Debug, Clone)]
pub struct FirestoreGroupIndex {
    http: reqwest::Client,
    metadata: Arc<MetadataServer>,
    auth: FirestoreAuth,
    /// `projects/{p}/databases/{d}/documents`.
    documents: String,
    /// `{base}/projects/{p}/databases/{d}/documents`.
    documents_url: String,
    collection: String,
}

impl FirestoreGroupIndex {
    pub(crate) fn new(
        http: reqwest::Client,
        metadata: Arc<MetadataServer>,
        auth: FirestoreAuth,
        documents: String,
        documents_url: String,
        collection: String,
    ) -> Self {
        Self {
            http,
            metadata,
            auth,
            documents,
            documents_url,
            collection,
        }
    }

    fn name(&self, id: &str) -> String {
        format!("{}/{}/{id}", self.documents, self.collection)
    }

    /// One `commit` of `writes` (atomic).
    async fn commit(&self, op: &'static str, writes: Vec<Value>) -> Result<(), StoreError> {
        let (status, answer) = send(
            &self.metadata,
            self.auth,
            op,
            self.http.post(format!("{}:commit", self.documents_url)),
            Some(json!({ "writes": writes })),
        )
        .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(firestore_error(op, status, &answer))
        }
    }

    /// An update of shard `n` setting (or, with `None`, deleting) these
    /// entries and no other field.
    fn masked_update(&self, n: usize, entries: &[(&DuoGroupId, Option<String>)]) -> Value {
        let mut set = Map::new();
        let mut paths = Vec::with_capacity(entries.len());
        for (id, value) in entries {
            paths.push(field_path(id));
            if let Some(value) = value {
                set.insert(id.as_str().to_owned(), json!({ "stringValue": value }));
            }
        }
        json!({
            "update": {
                "name": self.name(&shard_id(n)),
                "fields": { FIELD: { "mapValue": { "fields": set } } },
            },
            "updateMask": { "fieldPaths": paths },
        })
    }
}

/// The index the documents `batchGet` found hold.
fn snapshot(answer: &Value) -> GroupSnapshot {
    let mut snapshot = GroupSnapshot::default();
    let mut unreadable = 0usize;
    for result in answer.as_array().into_iter().flatten() {
        let Some(doc) = result.get("found") else {
            continue;
        };
        let fields = &doc["fields"];
        if doc["name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!("/{META_ID}")))
        {
            snapshot.complete = fields[COMPLETE]["booleanValue"].as_bool() == Some(true);
            continue;
        }
        let Some(groups) = fields[FIELD]["mapValue"]["fields"].as_object() else {
            continue;
        };
        for (id, value) in groups {
            match value["stringValue"]
                .as_str()
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

impl GroupIndexStore for FirestoreGroupIndex {
    fn load(&self) -> StoreFuture<'_, GroupSnapshot> {
        Box::pin(async move {
            let names: Vec<String> = (0..SHARDS)
                .map(shard_id)
                .chain([META_ID.to_owned()])
                .map(|id| self.name(&id))
                .collect();
            let (status, answer) = send(
                &self.metadata,
                self.auth,
                "group index batchGet",
                self.http.post(format!("{}:batchGet", self.documents_url)),
                Some(json!({ "documents": names })),
            )
            .await?;
            if !status.is_success() {
                return Err(firestore_error("group index batchGet", status, &answer));
            }
            Ok(snapshot(&answer))
        })
    }

    fn put<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let writes: Vec<Value> = by_shard(entries)
                .into_iter()
                .enumerate()
                .filter(|(_, group)| !group.is_empty())
                .map(|(n, group)| {
                    let set: Vec<(&DuoGroupId, Option<String>)> = group
                        .iter()
                        .map(|e| (&e.group_id, Some(e.stored_value())))
                        .collect();
                    self.masked_update(n, &set)
                })
                .collect();
            if writes.is_empty() {
                return Ok(());
            }
            self.commit("group index put", writes).await
        })
    }

    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let write = self.masked_update(shard_of(id), &[(id, None)]);
            self.commit("group index remove", vec![write]).await
        })
    }

    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let mut writes: Vec<Value> = by_shard(entries)
                .into_iter()
                .enumerate()
                .map(|(n, group)| {
                    let set: Map<String, Value> = group
                        .iter()
                        .map(|e| {
                            (
                                e.group_id.as_str().to_owned(),
                                json!({ "stringValue": e.stored_value() }),
                            )
                        })
                        .collect();
                    json!({
                        "update": {
                            "name": self.name(&shard_id(n)),
                            "fields": { FIELD: { "mapValue": { "fields": set } } },
                        },
                    })
                })
                .collect();
            writes.push(json!({
                "update": {
                    "name": self.name(META_ID),
                    "fields": { COMPLETE: { "booleanValue": true } },
                },
            }));
            self.commit("group index replace_all", writes).await
        })
    }
}

impl crate::firestore::FirestoreStore {
    /// The Duo group index in the same collection (this module),
    /// sharing this store's client and token.
    pub fn group_index(&self) -> FirestoreGroupIndex {
        let cas = self.claims.backend();
        FirestoreGroupIndex::new(
            cas.http.clone(),
            Arc::clone(&cas.metadata),
            cas.auth,
            cas.documents.clone(),
            cas.documents_url.clone(),
            cas.collection.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_quote_any_id() {
        assert_eq!(field_path(&DuoGroupId::new("DG1")), "groups.`DG1`");
        assert_eq!(
            field_path(&DuoGroupId::new("a`b\\c.d")),
            "groups.`a\\`b\\\\c.d`"
        );
    }
}
