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
//! - the groups on every page a search reads are learnt and stored too;
//! - once the searches of a process have read every page between them (or
//!   one search read them all without a match), the index has seen every
//!   group: it is then **complete**, and a name it lacks is known to be
//!   absent (created straight away, no listing) until the relay creates it.
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
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use duo_admin::{DuoClient, DuoError, DuoGroupId, Group};
use serde::{Deserialize, Serialize};

use crate::operation::GroupKey;
use crate::state::{Appender, FileReport, HEADER_LEN, Header, Kind, Unreadable};
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
                .and_then(managed_tag)
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
    /// Adds or replaces these groups (by id); keeps the complete mark. The
    /// groups a user object showed are stored in one call.
    fn put<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()>;
    /// Forgets one group (gone from Duo); keeps the complete mark.
    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()>;
    /// Replaces everything with a listing of every Duo group and marks the
    /// index complete.
    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()>;
}

// ---------------------------------------------------------------- shards

/// How many shards the cloud stores (DynamoDB items, Table entities,
/// Firestore documents) split the index into, by [`shard_of`]. Loading reads
/// them all in one request (DynamoDB's `BatchGetItem` takes 100 keys, a
/// Table query pages 1,000 entities, Firestore's `batchGet` takes more), and
/// a write touches only the shard of the group it stores. 64 keeps a shard
/// small at 5,000 groups (~78 groups, ~12 KB: DynamoDB bills a write by the
/// item's whole size, and caps an item at 400 KB) and within Table
/// Storage's 252 properties per entity up to about 12,000 groups. Changing
/// it moves groups between shards: a new value must come with a new shard
/// naming.
pub const SHARDS: usize = 64;

/// The shard that holds group `id`: CRC-32 of the id, so every process and
/// version agrees.
pub fn shard_of(id: &DuoGroupId) -> usize {
    crate::state::crc32(&[id.as_str().as_bytes()]) as usize % SHARDS
}

/// `entries` by shard: [`SHARDS`] lists, each in the order given.
pub fn by_shard(entries: &[GroupEntry]) -> Vec<Vec<&GroupEntry>> {
    let mut shards: Vec<Vec<&GroupEntry>> = vec![Vec::new(); SHARDS];
    for e in entries {
        shards[shard_of(&e.group_id)].push(e);
    }
    shards
}

/// A group as a cloud store keeps it under its id: `{"name":…,"tag":…}`.
#[derive(Serialize, Deserialize)]
struct StoredValue<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    tag: Option<std::borrow::Cow<'a, str>>,
}

impl GroupEntry {
    /// The value a cloud store keeps under the group's id.
    pub fn stored_value(&self) -> String {
        serde_json::json!(StoredValue {
            name: self.name.as_str().into(),
            tag: self.tag.as_deref().map(Into::into),
        })
        .to_string()
    }

    /// The entry a cloud store kept as [`GroupEntry::stored_value`]; `None`
    /// when the value is not one (an empty id, another shape).
    pub fn from_stored(group_id: &str, value: &str) -> Option<Self> {
        if group_id.is_empty() {
            return None;
        }
        let v: StoredValue<'_> = serde_json::from_str(value).ok()?;
        Some(Self {
            group_id: DuoGroupId::new(group_id),
            name: v.name.into_owned(),
            tag: v.tag.map(std::borrow::Cow::into_owned),
        })
    }
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

    fn put(&mut self, entries: &[GroupEntry]) {
        for e in entries {
            self.by_id.insert(e.group_id.clone(), e.clone());
        }
    }

    fn replace_all(&mut self, entries: &[GroupEntry]) {
        self.by_id.clear();
        self.put(entries);
        self.complete = true;
    }

    fn apply(&mut self, record: FileRecord) {
        match record {
            FileRecord::Put(e) => {
                self.by_id.insert(e.group_id.clone(), e);
            }
            FileRecord::Remove(id) => {
                self.by_id.remove(&id);
            }
            FileRecord::Complete => {
                self.by_id.clear();
                self.complete = true;
            }
        }
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

    fn put<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        lock(&self.entries).put(entries);
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

/// One record of the group index file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileRecord {
    Put(GroupEntry),
    Remove(DuoGroupId),
    /// Everything before it was replaced by a complete listing.
    Complete,
}

impl FileRecord {
    /// The record as a checksummed line.
    fn frame(&self, out: &mut Vec<u8>) {
        // Serializing plain strings cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        crate::state::frame(&json, out);
    }

    /// A record line of a version 2 file.
    fn decode(line: &[u8]) -> Result<Self, String> {
        let payload = crate::state::unframe(line)?;
        serde_json::from_slice(payload).map_err(|e| format!("unreadable group index record: {e}"))
    }
}

/// The group index of `serve`: `RELAY_STATE_DIR/groups.log`, a state file
/// in the shared format ([`crate::state`]: a checksummed header, one
/// CRC-32-framed JSON record per line) of puts, removes and `complete`
/// (everything before it was replaced by a complete listing). Loaded and
/// compacted when opened; appended through a group-committing writer thread
/// after, so no fsync runs on the async runtime.
///
/// Damage is handled like the other state files: unreadable records go to
/// `quarantine.log` beside it and the file's [`FileReport`] says what was
/// lost (`/healthz` lists it) — but it never costs more than Duo calls: the
/// index is a cache, and what it lacks is searched for or listed again. A
/// version 1 file (plain JSON lines) is migrated when opened.
#[derive(Debug)]
pub struct FileGroupIndex {
    path: PathBuf,
    entries: Mutex<Entries>,
    log: Appender,
    report: FileReport,
}

impl FileGroupIndex {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Present once a version 2 file was written here: then a missing or
        // empty file is a loss, not a first start.
        let marker = dir.join(format!("{name}.format"));
        let was_v2 = marker.exists();
        let mut entries = Entries::default();
        let mut report = FileReport::new(&path);
        let mut unreadable: Vec<Unreadable> = Vec::new();
        const LOST: &str = "the index is learnt again from Duo (a listing of its groups, once)";
        match File::open(&path) {
            Ok(file) => {
                let mut reader = BufReader::new(file);
                if Header::looks_like_v2(reader.fill_buf()?) {
                    let scan =
                        crate::state::scan(reader, Kind::Groups, FileRecord::decode, |_, r| {
                            entries.apply(r);
                        })?;
                    report.problems = scan.problems;
                    unreadable = scan.unreadable;
                } else {
                    let len = decode_v1(reader, &mut entries, &mut unreadable)?;
                    if len == 0 && was_v2 {
                        report.problems.push(format!(
                            "emptied: the file is empty, but it held records before; {LOST}"
                        ));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if was_v2 {
                    report.problems.push(format!(
                        "missing: the file was deleted, but it held records before; {LOST}"
                    ));
                }
            }
            Err(e) => return Err(e.into()),
        }
        for u in &unreadable {
            report.add_unreadable(u);
        }
        if !unreadable.is_empty() {
            let q = dir.join("quarantine.log");
            crate::state::quarantine(&q, &path, &unreadable)?;
            report.quarantine_file = Some(q.display().to_string());
        }
        report.records = entries.by_id.len() as u64;
        // Compact: the complete mark (if any), then every group.
        let mut header = Header::new(Kind::Groups);
        let mut body = Vec::new();
        if entries.complete {
            FileRecord::Complete.frame(&mut body);
        }
        for e in entries.by_id.values() {
            FileRecord::Put(e.clone()).frame(&mut body);
        }
        header.sealed = (HEADER_LEN + body.len()) as u64;
        let mut contents = header.encode();
        contents.extend_from_slice(&body);
        crate::state::replace_file(&path, &contents)?;
        if !was_v2 {
            crate::state::replace_file(&marker, b"RELAYSTATE v2\n")?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let log = Appender::start(&path, file, header, contents.len() as u64)?;
        report.log();
        Ok(Self {
            path,
            entries: Mutex::new(entries),
            log,
            report,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What loading the file found (damage, quarantined records).
    pub fn report(&self) -> &FileReport {
        &self.report
    }

    /// Appends records; resolves once they are durable.
    fn append(&self, records: &[FileRecord]) -> StoreFuture<'_, ()> {
        let mut bytes = Vec::new();
        for r in records {
            r.frame(&mut bytes);
        }
        Box::pin(async move { Ok(self.log.append(bytes).await?) })
    }
}

/// Reads a version 1 `groups.log` (one JSON record per line, no header or
/// checksums) into `entries`; answers its length. An unreadable line costs
/// that line (an incomplete last one is a torn tail).
fn decode_v1(
    reader: impl BufRead,
    entries: &mut Entries,
    unreadable: &mut Vec<Unreadable>,
) -> std::io::Result<u64> {
    crate::state::for_each_line(reader, |line| {
        if line.bytes.trim_ascii().is_empty() {
            return;
        }
        match serde_json::from_slice::<FileRecord>(line.bytes) {
            Ok(r) => entries.apply(r),
            Err(e) => {
                let mut u =
                    crate::state::unreadable(line, format!("unreadable version 1 record: {e}"));
                u.torn_tail = !line.complete;
                unreadable.push(u);
            }
        }
    })
}

impl GroupIndexStore for FileGroupIndex {
    fn load(&self) -> StoreFuture<'_, GroupSnapshot> {
        let snapshot = lock(&self.entries).snapshot();
        Box::pin(async move { Ok(snapshot) })
    }

    fn put<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        lock(&self.entries).put(entries);
        let records: Vec<FileRecord> = entries.iter().cloned().map(FileRecord::Put).collect();
        self.append(&records)
    }

    fn remove<'a>(&'a self, id: &'a DuoGroupId) -> StoreFuture<'a, ()> {
        lock(&self.entries).by_id.remove(id);
        self.append(&[FileRecord::Remove(id.clone())])
    }

    fn replace_all<'a>(&'a self, entries: &'a [GroupEntry]) -> StoreFuture<'a, ()> {
        lock(&self.entries).replace_all(entries);
        let mut records = Vec::with_capacity(entries.len() + 1);
        records.push(FileRecord::Complete);
        records.extend(entries.iter().cloned().map(FileRecord::Put));
        self.append(&records)
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
    /// The pages searches of this process read: offset → where the next
    /// page starts (`None`: it was the last). When they chain from the first
    /// page to the last, every group was seen — the index is complete even
    /// though no one search read everything.
    pages_read: std::collections::BTreeMap<u64, Option<u64>>,
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
            pages_read: std::mem::take(&mut self.pages_read),
            ..Self::default()
        };
        for e in entries {
            self.insert(e);
        }
        self.entries.complete = complete;
    }

    /// Whether the pages read chain from the first to the last.
    fn every_page_read(&self) -> bool {
        let mut at = 0;
        // The pager refuses a next offset that does not advance, so this
        // ends.
        loop {
            match self.pages_read.get(&at) {
                Some(Some(next)) => at = *next,
                Some(None) => return true,
                None => return false,
            }
        }
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

    async fn persist_put(&self, entries: &[GroupEntry]) {
        if let Some(store) = &self.store
            && !entries.is_empty()
            && let Err(e) = store.put(entries).await
        {
            tracing::warn!(error = %e, groups = entries.len(), group_id = %entries[0].group_id, "group index: cannot store groups (a later start may search for them again)");
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
                let offset = pager.next_offset().unwrap_or(from);
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
                let (learnt, covered) = {
                    let mut known = self.known();
                    let learnt: Vec<GroupEntry> = entries
                        .iter()
                        .filter(|e| known.insert((*e).clone()))
                        .cloned()
                        .collect();
                    known.resume_at = pager.next_offset().unwrap_or(0);
                    known.pages_read.insert(offset, pager.next_offset());
                    (learnt, known.every_page_read())
                };
                if let Some(hit) = hit {
                    if covered {
                        // The searches of this process have read every page
                        // between them: a listing of everything, made piece
                        // by piece.
                        self.complete_listing(pages).await;
                    } else {
                        // Learnt from the pages read, the hit among them.
                        self.persist_put(&learnt).await;
                    }
                    return Ok(Some(hit));
                }
                if covered {
                    // Every page read (by this search and earlier ones)
                    // without a match: no need to wrap around.
                    self.complete_listing(pages).await;
                    return Ok(None);
                }
                self.persist_put(&learnt).await;
            }
        }
        // Every page read without a match.
        self.complete_listing(pages).await;
        Ok(None)
    }

    /// Every Duo group was read: what the index holds now is every Duo
    /// group (and what users showed of them meanwhile), stored as a
    /// complete listing.
    async fn complete_listing(&self, pages: usize) {
        let all: Vec<GroupEntry> = {
            let mut known = self.known();
            known.entries.complete = true;
            known.resume_at = 0;
            known.pages_read.clear();
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
        self.persist_put(&changed).await;
    }

    /// Records a group the relay created or renamed.
    pub async fn insert(&self, entry: &GroupEntry) {
        if self.known().insert(entry.clone()) {
            self.persist_put(std::slice::from_ref(entry)).await;
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

/// The IdP tag the relay writes at the start of a group's description
/// (`okta:00g… synced by idp-duo-relay`).
pub fn managed_tag(desc: &str) -> Option<&str> {
    let first = desc.split_whitespace().next()?;
    let (prefix, id) = first.split_once(':')?;
    (crate::event::IdpKind::ALL
        .iter()
        .any(|k| k.as_str() == prefix)
        && !id.is_empty())
    .then_some(first)
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

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("relay-groups-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn sorted(mut snapshot: GroupSnapshot) -> GroupSnapshot {
        snapshot
            .entries
            .sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
        snapshot
    }

    /// A file holding a complete listing of DG1, DG2, then DG3 put and DG2
    /// removed.
    async fn written(path: &Path) {
        let index = FileGroupIndex::open(path).unwrap();
        index
            .replace_all(&[
                entry("DG1", "one", Some("okta:1")),
                entry("DG2", "two", None),
            ])
            .await
            .unwrap();
        index
            .put(&[entry("DG3", "three\nlines", None)])
            .await
            .unwrap();
        index.remove(&DuoGroupId::new("DG2")).await.unwrap();
    }

    fn expected() -> GroupSnapshot {
        GroupSnapshot {
            entries: vec![
                entry("DG1", "one", Some("okta:1")),
                entry("DG3", "three\nlines", None),
            ],
            complete: true,
        }
    }

    #[tokio::test]
    async fn the_file_index_survives_a_reopen_and_sets_a_torn_write_aside() {
        let dir = temp("reopen");
        let path = dir.join("groups.log");
        written(&path).await;
        let bytes = std::fs::read(&path).unwrap();
        assert!(Header::looks_like_v2(&bytes), "a state file with a header");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"0badc0de {\"put\":{\"group_id\"").unwrap();
        drop(f);
        let index = FileGroupIndex::open(&path).unwrap();
        assert_eq!(sorted(index.load().await.unwrap()), expected());
        let report = index.report();
        assert!(!report.damaged(), "{report:?}");
        assert!(report.torn_tail_bytes > 0, "{report:?}");
        assert_eq!(report.records, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_changed_byte_costs_one_group_loudly_not_the_index() {
        let dir = temp("damage");
        let path = dir.join("groups.log");
        written(&path).await;
        // Reopen (compacts: complete, DG1, DG3 in some order), then damage
        // the record holding DG3's name.
        drop(FileGroupIndex::open(&path).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes
            .windows(5)
            .position(|w| w == b"three")
            .expect("DG3 is in the file");
        bytes[at] = b'T';
        std::fs::write(&path, &bytes).unwrap();
        let index = FileGroupIndex::open(&path).unwrap();
        assert_eq!(
            sorted(index.load().await.unwrap()),
            GroupSnapshot {
                entries: vec![entry("DG1", "one", Some("okta:1"))],
                complete: true,
            }
        );
        let report = index.report().clone();
        assert!(report.damaged());
        assert_eq!(report.quarantined_records, 1, "{report:?}");
        let quarantine = std::fs::read_to_string(dir.join("quarantine.log")).unwrap();
        assert!(quarantine.contains("Three"), "{quarantine}");
        // The damage was reported once: the next open finds a clean file.
        drop(index);
        let again = FileGroupIndex::open(&path).unwrap();
        assert!(!again.report().damaged(), "{:?}", again.report());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_cut_or_deleted_file_is_reported() {
        let dir = temp("cut");
        let path = dir.join("groups.log");
        written(&path).await;
        drop(FileGroupIndex::open(&path).unwrap());
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 10).unwrap();
        drop(f);
        let index = FileGroupIndex::open(&path).unwrap();
        let problems = index.report().problems.join("; ");
        assert!(problems.contains("cut"), "{problems}");
        drop(index);
        std::fs::remove_file(&path).unwrap();
        let index = FileGroupIndex::open(&path).unwrap();
        let problems = index.report().problems.join("; ");
        assert!(problems.contains("missing"), "{problems}");
        assert_eq!(index.load().await.unwrap(), GroupSnapshot::default());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_version_1_file_is_migrated() {
        let dir = temp("v1");
        let path = dir.join("groups.log");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &path,
            concat!(
                "\"complete\"\n",
                "{\"put\":{\"group_id\":\"DG1\",\"name\":\"one\",\"tag\":\"okta:1\"}}\n",
                "{\"put\":{\"group_id\":\"DG2\",\"name\":\"two\"}}\n",
                "garbage\n",
                "{\"put\":{\"group_id\":\"DG3\",\"name\":\"three\\nlines\"}}\n",
                "{\"remove\":\"DG2\"}\n",
            ),
        )
        .unwrap();
        let index = FileGroupIndex::open(&path).unwrap();
        assert_eq!(sorted(index.load().await.unwrap()), expected());
        assert_eq!(index.report().quarantined_records, 1);
        drop(index);
        assert!(Header::looks_like_v2(&std::fs::read(&path).unwrap()));
        let index = FileGroupIndex::open(&path).unwrap();
        assert_eq!(sorted(index.load().await.unwrap()), expected());
        assert!(!index.report().damaged());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stored_values_round_trip_and_shards_are_stable() {
        for e in [
            entry("DG1", "one", Some("okta:00g1")),
            entry("DG2", "two \"quoted\" \n ünï", None),
        ] {
            let value = e.stored_value();
            assert_eq!(
                GroupEntry::from_stored(e.group_id.as_str(), &value),
                Some(e)
            );
        }
        assert_eq!(GroupEntry::from_stored("DG1", "not json"), None);
        assert_eq!(GroupEntry::from_stored("", r#"{"name":"x"}"#), None);
        // CRC-32 of the id: the same shard in every process and version
        // (CRC-32("DG1") is 0x663425f6 by Python's zlib.crc32).
        assert_eq!(crate::state::crc32(&[b"DG1"]), 0x6634_25f6);
        assert_eq!(shard_of(&DuoGroupId::new("DG1")), 0x6634_25f6 % SHARDS);
        let many: Vec<GroupEntry> = (0..5000)
            .map(|i| entry(&format!("DGX{i:017}"), &format!("group {i}"), None))
            .collect();
        let shards = by_shard(&many);
        assert_eq!(shards.len(), SHARDS);
        assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), 5000);
        let fullest = shards.iter().map(Vec::len).max().unwrap();
        assert!(fullest < 130, "a shard holds {fullest} of 5,000 groups");
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
