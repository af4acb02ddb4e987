//! The Duo group index: IdP tag / group name → Duo group id, learnt without
//! listing every Duo group on every start.
//!
//! Duo has no "find a group by name" call: `GET /admin/v1/groups` pages
//! through every group, 100 a page (50 calls at 5,000 groups). So the index
//! learns ids wherever Duo shows them for free, and lists as little as it can:
//! - from the groups embedded in every user object Duo returns (a membership
//!   event looks the user up anyway);
//! - from groups the relay creates or renames;
//! - by a search that pages only until the first page holding the group;
//! - a search that reaches the last page has seen every group: the index is
//!   then **complete**, and a name it lacks is known to be absent (created
//!   straight away, no listing) until the relay creates it.
//!
//! The index is kept in the relay's state store ([`GroupIndexStore`]: a file
//! beside `serve`'s idempotency log, DynamoDB, Table Storage, Firestore), so a
//! restart or a cold start loads it instead of listing again, and one
//! listing serves every instance of a tenant. It is a cache, never the truth:
//! a store that cannot be read or written costs Duo calls, not correctness
//! (logged). Staleness is healed where Duo shows it: a group an admin deleted
//! answers 404 (or 40002 `group_id`) to a membership add, which forgets it and
//! retries once; an admin's rename shows in the next user object that embeds
//! the group; a group an admin created after the listing makes our create
//! fail as a duplicate name, which searches (early stop) and learns it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use duo_admin::{DuoClient, DuoError, DuoGroupId, Group};
use serde::{Deserialize, Serialize};

use crate::operation::GroupKey;
use crate::store::StoreError;

/// One Duo group as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    pub group_id: DuoGroupId,
    pub name: String,
    /// The IdP tag at the start of the group's description
    /// (`okta:00g…`), when the group is one the relay manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

impl GroupEntry {
    pub fn from_group(group: &Group) -> Self {
        Self {
            group_id: group.group_id.clone(),
            name: group.name.clone(),
            tag: group
                .desc
                .as_deref()
                .and_then(crate::apply::managed_tag)
                .map(str::to_owned),
        }
    }
}

/// What a [`GroupIndexStore`] holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub entries: Vec<GroupEntry>,
    /// A listing of every Duo group was stored ([`GroupIndexStore::replace_all`]):
    /// a name not among `entries` was absent then.
    pub complete: bool,
}

/// A boxed future, so the store can be shared as `Arc<dyn GroupIndexStore>`.
pub type StoreFuture<'a, T> =
    Pin<Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where the group index lives between processes: the platform's state store.
pub trait GroupIndexStore: Send + Sync + std::fmt::Debug {
    /// Everything stored (empty and not complete when nothing is).
    fn load(&self) -> StoreFuture<'_, GroupSnapshot>;
    /// Adds or replaces one group (by id); keeps the complete mark.
    fn put<'a>(&'a self, entry: &'a GroupEntry) -> StoreFuture<'a, ()>;
    /// Forgets one group (gone from Duo); keeps the complete mark.
    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()>;
    /// Replaces everything with a listing of every Duo group and marks the
    /// index complete.
    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The index's contents, shared by the in-process index and the stores
/// below.
#[derive(Debug, Default, Clone)]
struct Entries {
    by_id: HashMap<DuoGroupId, GroupEntry>,
    complete: bool,
}

impl Entries {
    fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            entries: self.by_id.values().cloned().collect(),
            complete: self.complete,
        }
    }

    fn replace_all(&mut self, entries: &[GroupEntry]) {
        self.by_id = entries
            .iter()
            .map(|e| (e.group_id.clone(), e.clone()))
            .collect();
        self.complete = true;
    }
}

/// The group index in memory only: for tests and single-process runs
/// (`MemoryStore`'s companion); forgotten at exit.
#[derive(Debug, Default)]
pub struct MemoryGroupIndex {
    entries: Mutex<Entries>,
}

impl GroupIndexStore for MemoryGroupIndex {
    fn load(&self) -> StoreFuture<'_, GroupSnapshot> {
        let snapshot = lock(&self.entries).snapshot();
        Box::pin(async move { Ok(snapshot) })
    }

    fn put<'a>(&'a self, entry: &'a GroupEntry) -> StoreFuture<'a, ()> {
        lock(&self.entries)
            .by_id
            .insert(entry.group_id.clone(), entry.clone());
        Box::pin(async { Ok(()) })
    }

    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()> {
        lock(&self.entries).by_id.remove(id);
        Box::pin(async { Ok(()) })
    }

    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        lock(&self.entries).replace_all(entries);
        Box::pin(async { Ok(()) })
    }
}

/// One line of the group index file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileRecord {
    Put(GroupEntry),
    Remove(DuoGroupId),
    /// Everything before it was replaced by a complete listing.
    Complete,
}

/// The group index of `serve`: a JSON-lines file (`RELAY_STATE_DIR/groups.log`)
/// of puts and removes, a `complete` line starting a complete listing; loaded
/// and compacted when opened, appended (and fsync'd off the async runtime)
/// after. A line that cannot be read is skipped and counted in one warning:
/// the index is a cache, and what it lacks costs a search, not correctness.
#[derive(Debug)]
pub struct FileGroupIndex {
    path: PathBuf,
    entries: Arc<Mutex<Entries>>,
    file: Arc<Mutex<File>>,
}

impl FileGroupIndex {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut entries = Entries::default();
        let mut unreadable = 0usize;
        if path.exists() {
            let mut reader = BufReader::new(File::open(&path)?);
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                match serde_json::from_slice::<FileRecord>(text) {
                    Ok(FileRecord::Put(e)) => {
                        entries.by_id.insert(e.group_id.clone(), e);
                    }
                    Ok(FileRecord::Remove(id)) => {
                        entries.by_id.remove(&id);
                    }
                    Ok(FileRecord::Complete) => {
                        entries.by_id.clear();
                        entries.complete = true;
                    }
                    Err(_) => unreadable += 1,
                }
            }
        }
        if unreadable > 0 {
            tracing::warn!(file = %path.display(), unreadable, "group index: skipped unreadable lines (a torn write or damage); the index relearns what they held");
        }
        write_compacted(&path, &entries)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(Self {
            path,
            entries: Arc::new(Mutex::new(entries)),
            file: Arc::new(Mutex::new(file)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records and fsyncs, on a blocking thread.
    fn append(&self, records: Vec<FileRecord>) -> StoreFuture<'_, ()> {
        let file = self.file.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
                let mut text = Vec::new();
                for r in &records {
                    serde_json::to_writer(&mut text, r)
                        .map_err(|e| StoreError::Backend(format!("group index: {e}")))?;
                    text.push(b'\n');
                }
                let mut file = lock(&file);
                file.write_all(&text)?;
                file.sync_data()?;
                Ok(())
            })
            .await
            .map_err(|e| StoreError::Backend(format!("group index writer: {e}")))?
        })
    }
}

/// Writes `entries` as a fresh file (temp + rename), so a crash leaves the
/// old file or the new one.
fn write_compacted(path: &Path, entries: &Entries) -> Result<(), StoreError> {
    let tmp = path.with_extension("tmp");
    {
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        let write =
            |out: &mut std::io::BufWriter<File>, r: &FileRecord| -> Result<(), StoreError> {
                serde_json::to_writer(&mut *out, r)
                    .map_err(|e| StoreError::Backend(format!("group index: {e}")))?;
                out.write_all(b"\n")?;
                Ok(())
            };
        if entries.complete {
            write(&mut out, &FileRecord::Complete)?;
        }
        for e in entries.by_id.values() {
            write(&mut out, &FileRecord::Put(e.clone()))?;
        }
        out.into_inner()
            .map_err(|e| StoreError::Io(e.into_error()))?
            .sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

impl GroupIndexStore for FileGroupIndex {
    fn load(&self) -> StoreFuture<'_, GroupSnapshot> {
        let snapshot = lock(&self.entries).snapshot();
        Box::pin(async move { Ok(snapshot) })
    }

    fn put<'a>(&'a self, entry: &'a GroupEntry) -> StoreFuture<'a, ()> {
        lock(&self.entries)
            .by_id
            .insert(entry.group_id.clone(), entry.clone());
        self.append(vec![FileRecord::Put(entry.clone())])
    }

    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()> {
        lock(&self.entries).by_id.remove(id);
        self.append(vec![FileRecord::Remove(id.clone())])
    }

    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        lock(&self.entries).replace_all(entries);
        let mut records = Vec::with_capacity(entries.len() + 1);
        records.push(FileRecord::Complete);
        records.extend(entries.iter().cloned().map(FileRecord::Put));
        self.append(records)
    }
}

/// What the in-process index knows.
#[derive(Debug, Default)]
struct Known {
    entries: Entries,
    by_tag: HashMap<String, DuoGroupId>,
    /// Lower-cased names.
    by_name: HashMap<String, DuoGroupId>,
    /// The stored index was read (or there is no store).
    loaded: bool,
    /// Where the next search starts: after the last page an earlier search
    /// read.
    resume_at: u64,
}

impl Known {
    fn insert(&mut self, entry: GroupEntry) -> bool {
        if self.entries.by_id.get(&entry.group_id) == Some(&entry) {
            return false;
        }
        self.remove(&entry.group_id);
        if let Some(tag) = &entry.tag {
            self.by_tag.insert(tag.clone(), entry.group_id.clone());
        }
        self.by_name
            .insert(entry.name.to_lowercase(), entry.group_id.clone());
        self.entries.by_id.insert(entry.group_id.clone(), entry);
        true
    }

    fn remove(&mut self, id: &DuoGroupId) -> bool {
        let Some(old) = self.entries.by_id.remove(id) else {
            return false;
        };
        if let Some(tag) = &old.tag
            && self.by_tag.get(tag) == Some(id)
        {
            self.by_tag.remove(tag);
        }
        let name = old.name.to_lowercase();
        if self.by_name.get(&name) == Some(id) {
            self.by_name.remove(&name);
        }
        true
    }

    fn replace_all(&mut self, entries: Vec<GroupEntry>, complete: bool) {
        *self = Self {
            loaded: self.loaded,
            resume_at: self.resume_at,
            ..Self::default()
        };
        for e in entries {
            self.insert(e);
        }
        self.entries.complete = complete;
    }

    fn find(&self, key: &GroupKey) -> Option<GroupEntry> {
        let id = key
            .idp_tag
            .as_ref()
            .and_then(|t| self.by_tag.get(t))
            .or_else(|| {
                key.name
                    .as_ref()
                    .and_then(|n| self.by_name.get(&n.to_lowercase()))
            })?;
        self.entries.by_id.get(id).cloned()
    }
}

/// Whether `entry` carries the IdP tag of `key`.
fn matches_tag(key: &GroupKey, entry: &GroupEntry) -> bool {
    key.idp_tag.is_some() && entry.tag == key.idp_tag
}

/// Whether `entry` has the name of `key` (case-insensitive, as Duo's names).
fn matches_name(key: &GroupKey, entry: &GroupEntry) -> bool {
    key.name
        .as_deref()
        .is_some_and(|n| entry.name.to_lowercase() == n.to_lowercase())
}

/// The index a [`crate::apply::DuoDirectory`] consults: in memory, loaded
/// once from its store, written through to it.
#[derive(Debug, Default)]
pub struct GroupIndex {
    known: Mutex<Known>,
    /// One search (paging) at a time: a burst of events for one unknown
    /// group costs one search, the others find its result.
    search: tokio::sync::Mutex<()>,
    store: Option<Arc<dyn GroupIndexStore>>,
}

impl GroupIndex {
    pub fn new(store: Option<Arc<dyn GroupIndexStore>>) -> Self {
        Self {
            store,
            ..Self::default()
        }
    }

    fn known(&self) -> MutexGuard<'_, Known> {
        lock(&self.known)
    }

    /// Reads the stored index the first time it is needed. A store that
    /// cannot be read is logged and not asked again by this process: the
    /// index then learns as if it were empty.
    async fn load(&self) {
        if self.known().loaded {
            return;
        }
        let _one = self.search.lock().await;
        if self.known().loaded {
            return;
        }
        let loaded = match &self.store {
            None => None,
            Some(store) => match store.load().await {
                Ok(snapshot) => Some(snapshot),
                Err(e) => {
                    tracing::warn!(error = %e, "group index: cannot read the stored index; learning it again from Duo");
                    None
                }
            },
        };
        let mut known = self.known();
        if let Some(snapshot) = loaded {
            // What this process learnt meanwhile is newer than the store.
            let learnt: Vec<GroupEntry> = known.entries.by_id.values().cloned().collect();
            known.replace_all(snapshot.entries, snapshot.complete);
            for e in learnt {
                known.insert(e);
            }
            tracing::info!(
                groups = known.entries.by_id.len(),
                complete = known.entries.complete,
                "group index loaded"
            );
        }
        known.loaded = true;
    }

    async fn persist_put(&self, entry: &GroupEntry) {
        if let Some(store) = &self.store
            && let Err(e) = store.put(entry).await
        {
            tracing::warn!(error = %e, group_id = %entry.group_id, "group index: cannot store a group (a later start may search for it again)");
        }
    }

    /// The group `key` names, if Duo has it: from the index, else by a
    /// search that stops at the first page holding it. `None` means absent
    /// (the index is complete, or the search saw every group).
    pub async fn find(
        &self,
        duo: &DuoClient,
        key: &GroupKey,
    ) -> Result<Option<GroupEntry>, DuoError> {
        self.load().await;
        {
            let known = self.known();
            if let Some(entry) = known.find(key) {
                return Ok(Some(entry));
            }
            if known.entries.complete {
                return Ok(None);
            }
        }
        self.search(duo, key).await
    }

    /// Pages through Duo's groups until one matches `key` (its tag first,
    /// else its name), learning every group on the pages read. A search
    /// resumes where the previous one stopped (the pages before were read
    /// and learnt already) and wraps around to the first page once; when it
    /// has read every page without a match, the index is complete.
    pub async fn search(
        &self,
        duo: &DuoClient,
        key: &GroupKey,
    ) -> Result<Option<GroupEntry>, DuoError> {
        let _one = self.search.lock().await;
        if let Some(entry) = self.known().find(key) {
            return Ok(Some(entry));
        }
        let start = self.known().resume_at;
        let mut pages = 0;
        // First from `start` to the end, then from the first page to `start`.
        for (from, until) in [(start, None), (0, Some(start))] {
            if until == Some(0) {
                break;
            }
            let mut pager = duo.list_groups().from_offset(from);
            while until.is_none_or(|u| pager.next_offset().is_some_and(|o| o < u)) {
                let Some(page) = pager.next_page().await? else {
                    break;
                };
                pages += 1;
                let entries: Vec<GroupEntry> = page.iter().map(GroupEntry::from_group).collect();
                let hit = entries
                    .iter()
                    .find(|e| matches_tag(key, e))
                    .or_else(|| entries.iter().find(|e| matches_name(key, e)))
                    .cloned();
                {
                    let mut known = self.known();
                    for e in &entries {
                        known.insert(e.clone());
                    }
                    known.resume_at = pager.next_offset().unwrap_or(0);
                }
                if let Some(hit) = hit {
                    self.persist_put(&hit).await;
                    return Ok(Some(hit));
                }
            }
        }
        // Every page read without a match: what the index holds now is every
        // Duo group (and what users showed of them meanwhile).
        let all: Vec<GroupEntry> = {
            let mut known = self.known();
            known.entries.complete = true;
            known.resume_at = 0;
            known.entries.by_id.values().cloned().collect()
        };
        if let Some(store) = &self.store
            && let Err(e) = store.replace_all(&all).await
        {
            tracing::warn!(error = %e, groups = all.len(), "group index: cannot store the complete listing (a later start may list again)");
        }
        tracing::info!(
            groups = all.len(),
            pages,
            "group index complete: every Duo group listed"
        );
        Ok(None)
    }

    /// Learns the groups embedded in a user object Duo returned; stores
    /// the new or changed ones.
    pub async fn learn(&self, groups: &[Group]) {
        if groups.is_empty() {
            return;
        }
        self.load().await;
        let changed: Vec<GroupEntry> = {
            let mut known = self.known();
            groups
                .iter()
                .map(GroupEntry::from_group)
                .filter(|e| known.insert(e.clone()))
                .collect()
        };
        for e in &changed {
            self.persist_put(e).await;
        }
    }

    /// Records a group the relay created or renamed.
    pub async fn insert(&self, entry: &GroupEntry) {
        if self.known().insert(entry.clone()) {
            self.persist_put(entry).await;
        }
    }

    /// Forgets a group Duo no longer has.
    pub async fn forget(&self, id: &DuoGroupId) {
        self.known().remove(id);
        if let Some(store) = &self.store
            && let Err(e) = store.remove(id).await
        {
            tracing::warn!(error = %e, group_id = %id, "group index: cannot drop a gone group from the store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, name: &str, tag: Option<&str>) -> GroupEntry {
        GroupEntry {
            group_id: DuoGroupId::new(id),
            name: name.into(),
            tag: tag.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn the_file_index_survives_a_reopen_and_skips_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("relay-groups-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("groups.log");
        {
            let index = FileGroupIndex::open(&path).unwrap();
            index
                .replace_all(&[
                    entry("DG1", "one", Some("okta:1")),
                    entry("DG2", "two", None),
                ])
                .await
                .unwrap();
            index
                .put(&entry("DG3", "three\nlines", None))
                .await
                .unwrap();
            index.remove(&DuoGroupId::new("DG2")).await.unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "{{\"put\":{{\"group_id\"").unwrap();
        drop(f);
        let index = FileGroupIndex::open(&path).unwrap();
        let mut got = index.load().await.unwrap();
        got.entries
            .sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
        assert_eq!(
            got,
            GroupSnapshot {
                entries: vec![
                    entry("DG1", "one", Some("okta:1")),
                    entry("DG3", "three\nlines", None)
                ],
                complete: true,
            }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn known_moves_a_renamed_group() {
        let mut known = Known::default();
        assert!(known.insert(entry("DG1", "Old", Some("okta:1"))));
        assert!(!known.insert(entry("DG1", "Old", Some("okta:1"))));
        assert!(known.insert(entry("DG1", "New", Some("okta:1"))));
        let by_name = |n: &str| GroupKey {
            idp_tag: None,
            name: Some(n.into()),
        };
        assert_eq!(known.find(&by_name("old")), None);
        assert_eq!(
            known.find(&by_name("NEW")).map(|e| e.name),
            Some("New".into())
        );
    }
}
