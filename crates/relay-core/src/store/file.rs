//! The embedded on-disk store for `serve` (`applied.log`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::memory::{Entry, Table};
use super::{Claim, IdempotencyStore, StoreError, now_secs};
use crate::event::EventId;
use crate::state::{Appender, FileReport, HEADER_LEN, Header, Kind, Unreadable};

/// One record of `applied.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppliedRecord {
    /// An event applied (or finally refused), remembered until `until`
    /// (epoch seconds).
    Done { until: u64, key: String },
    /// A watermark: an event of time `at_ms` was applied to `key`.
    Mark { until: u64, at_ms: i64, key: String },
}

impl AppliedRecord {
    /// `D <until> <key>` or `W <until> <at_ms> <key>` (the key is the rest
    /// of the line and may hold spaces).
    pub fn payload(&self) -> String {
        match self {
            Self::Done { until, key } => format!("D {until} {key}"),
            Self::Mark { until, at_ms, key } => format!("W {until} {at_ms} {key}"),
        }
    }

    fn parse(payload: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8".to_owned())?;
        if let Some(rest) = text.strip_prefix("D ") {
            Self::parse_done(rest)
        } else if text.starts_with("W ") {
            Self::parse_v1(text)
        } else {
            Err("unknown record type".into())
        }
    }

    /// The unframed lines of version 1: `<until> <key>` and
    /// `W <until> <at_ms> <key>`.
    fn parse_v1(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("W ") {
            let mut parts = rest.splitn(3, ' ');
            let (Some(until), Some(at), Some(key)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err("watermark record with missing fields".into());
            };
            let until = until
                .parse()
                .map_err(|_| "watermark record with a bad expiry".to_owned())?;
            let at_ms = at
                .parse()
                .map_err(|_| "watermark record with a bad event time".to_owned())?;
            return nonempty(key).map(|key| Self::Mark { until, at_ms, key });
        }
        Self::parse_done(text)
    }

    fn parse_done(text: &str) -> Result<Self, String> {
        let (until, key) = text
            .split_once(' ')
            .ok_or_else(|| "record without a key".to_owned())?;
        let until = until
            .parse()
            .map_err(|_| "record with a bad expiry".to_owned())?;
        nonempty(key).map(|key| Self::Done { until, key })
    }
}

fn nonempty(key: &str) -> Result<String, String> {
    if key.is_empty() || key.contains(['\n', '\r']) {
        Err("record with an empty or broken key".into())
    } else {
        Ok(key.to_owned())
    }
}

/// What [`decode_applied_log`] found besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedDecoded {
    /// The file's header (`None`: a version 1 file, or the header is
    /// unreadable — then `problems` says so).
    pub header: Option<Header>,
    /// An unframed version 1 file (migrated when the store opens it).
    pub v1: bool,
    /// Bytes read.
    pub len: u64,
    pub records: u64,
    /// Records that could not be read, in file order.
    pub unreadable: Vec<Unreadable>,
    /// Whole-file problems (unreadable header, cut).
    pub problems: Vec<String>,
}

/// Decodes an `applied.log` (version 2, framed and checksummed, or the
/// unframed version 1), handing each readable record to `on_record`, in file
/// order. Never fails on content: what cannot be read is listed, with its
/// offset and the reason, and the next line is read.
pub fn decode_applied_log(
    reader: impl BufRead,
    mut on_record: impl FnMut(AppliedRecord),
) -> std::io::Result<AppliedDecoded> {
    let mut d = AppliedDecoded::default();
    // Unreadable lines past the durable length: a torn tail if nothing
    // readable follows them.
    let mut tail: Vec<Unreadable> = Vec::new();
    let mut first = true;
    let mut sealed = 0u64;
    let len = crate::state::for_each_line(reader, |line| {
        if first {
            first = false;
            if Header::looks_like_v2(line.bytes) {
                match Header::decode(line.bytes) {
                    Ok(h) if h.kind == Kind::Applied && line.complete => {
                        sealed = h.sealed;
                        d.header = Some(h);
                    }
                    Ok(_) => {
                        d.problems
                            .push("the header is not an applied.log header".into());
                        d.unreadable
                            .push(bad(line, "not an applied.log header".into()));
                    }
                    Err(e) => {
                        d.problems.push(format!("unreadable header ({e})"));
                        d.unreadable
                            .push(bad(line, format!("unreadable header: {e}")));
                    }
                }
                return;
            }
            // No header: version 1, unless the line is a framed record (a
            // version 2 file whose header was lost).
            if crate::state::unframe(line.bytes).is_ok() {
                d.problems.push("the header is missing".into());
            } else {
                d.v1 = true;
            }
        }
        let parsed = if !line.complete {
            Err("incomplete last record".to_owned())
        } else if d.v1 {
            std::str::from_utf8(line.bytes)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(AppliedRecord::parse_v1)
        } else {
            crate::state::unframe(line.bytes).and_then(AppliedRecord::parse)
        };
        match parsed {
            Ok(record) => {
                // What looked like a torn tail was followed by good records:
                // it is damage.
                d.unreadable.append(&mut tail);
                d.records += 1;
                on_record(record);
            }
            Err(reason) => {
                let unreadable = bad(line, reason);
                if d.v1 && line.complete || !d.v1 && line.offset < sealed {
                    d.unreadable.push(unreadable);
                } else {
                    tail.push(unreadable);
                }
            }
        }
    })?;
    for mut t in tail {
        t.torn_tail = true;
        d.unreadable.push(t);
    }
    d.len = len;
    if sealed > len {
        d.problems.push(format!(
            "cut: the file ends at byte {len} but {sealed} bytes had been made durable ({} bytes of records lost)",
            sealed - len
        ));
    }
    Ok(d)
}

fn bad(line: crate::state::Line<'_>, reason: String) -> Unreadable {
    Unreadable {
        offset: line.offset,
        bytes: line.bytes.to_vec(),
        reason,
        torn_tail: false,
    }
}

/// An embedded on-disk store for `serve`: `applied.log` holds one
/// checksummed line per completed key and per watermark (see
/// [`AppliedRecord`], [`crate::state`]) and is loaded at start, so a
/// restarted `serve` still knows what it applied. Claims live in memory: a
/// crash mid-apply releases them, which is right because the IdP retries and
/// every operation is idempotent.
///
/// Writes are group-committed by a writer thread ([`Appender`]): a
/// completion resolves once its line is durable, and concurrent ones share
/// one fsync. At open the file is compacted (expired and superseded lines
/// dropped); damage is reported ([`FileStore::report`]) and unreadable
/// lines moved to `quarantine.log` beside it, never fatal. A version 1 file
/// (unframed lines) is migrated.
#[derive(Debug)]
pub struct FileStore {
    table: Mutex<Table>,
    log: Appender,
    path: PathBuf,
    report: FileReport,
}

impl FileStore {
    pub fn open(path: impl AsRef<Path>, ttl: Duration) -> Result<Self, StoreError> {
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
        let now = now_secs();
        let mut table = Table::new(ttl);
        let mut report = FileReport::new(&path);
        match File::open(&path) {
            Ok(file) => {
                let decoded = decode_applied_log(BufReader::new(file), |record| match record {
                    AppliedRecord::Done { until, key } if until > now => {
                        table.entries.insert(key, Entry::Done { until });
                    }
                    AppliedRecord::Mark { until, at_ms, key } if until > now => {
                        let newer = table.marks.get(&key).is_none_or(|(old, _)| *old < at_ms);
                        if newer {
                            table.marks.insert(key, (at_ms, until));
                        }
                    }
                    _ => {}
                })?;
                report.problems = decoded.problems;
                if decoded.len == 0 && was_v2 {
                    report.problems.push(
                        "emptied: the file is empty, but it held records before (idempotency keys and event-time watermarks are lost: an applied event may apply again, a stale one may win)".into(),
                    );
                }
                for u in &decoded.unreadable {
                    report.add_unreadable(u);
                }
                if !decoded.unreadable.is_empty() {
                    let q = dir.join("quarantine.log");
                    crate::state::quarantine(&q, &path, &decoded.unreadable)?;
                    report.quarantine_file = Some(q.display().to_string());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if was_v2 {
                    report.problems.push(
                        "missing: the file was deleted, but it held records before (idempotency keys and event-time watermarks are lost)".into(),
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
        report.records = (table.entries.len() + table.marks.len()) as u64;
        // Compact: rewrite only live entries, then append from there.
        let mut header = Header::new(Kind::Applied);
        let mut body = Vec::new();
        for (key, entry) in &table.entries {
            if let Entry::Done { until } = entry {
                let record = AppliedRecord::Done {
                    until: *until,
                    key: key.clone(),
                };
                crate::state::frame(&record.payload(), &mut body);
            }
        }
        for (key, (at_ms, until)) in &table.marks {
            let record = AppliedRecord::Mark {
                until: *until,
                at_ms: *at_ms,
                key: key.clone(),
            };
            crate::state::frame(&record.payload(), &mut body);
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
            table: Mutex::new(table),
            log,
            path,
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

    /// How long a claim without an outcome blocks others (default
    /// `CLAIM_TIMEOUT`; tests shorten it).
    #[must_use]
    pub fn with_claim_timeout(self, timeout: Duration) -> Self {
        self.table().claim_timeout = timeout;
        self
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn append(&self, record: &AppliedRecord) -> Result<(), StoreError> {
        let mut line = Vec::new();
        crate::state::frame(&record.payload(), &mut line);
        Ok(self.log.append(line).await?)
    }
}

/// Keys are written to the end of a line: a newline would split the record
/// (parsers take ids from JSON strings, so none should have one).
fn clean_key(key: &str) -> String {
    key.chars().filter(|c| *c != '\n' && *c != '\r').collect()
}

impl IdempotencyStore for FileStore {
    async fn claim(&self, key: &EventId) -> Result<Claim, StoreError> {
        Ok(self.table().claim(key.as_str(), now_secs()))
    }

    async fn complete(&self, key: &EventId) -> Result<(), StoreError> {
        let until = self.table().complete(key.as_str(), now_secs());
        self.append(&AppliedRecord::Done {
            until,
            key: clean_key(key.as_str()),
        })
        .await
    }

    async fn release(&self, key: &EventId) -> Result<(), StoreError> {
        self.table().release(key.as_str());
        Ok(())
    }

    async fn watermark(&self, key: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.table().watermark(key, now_secs()))
    }

    async fn set_watermark(&self, key: &str, at_ms: i64) -> Result<(), StoreError> {
        let Some(until) = self.table().set_watermark(key, at_ms, now_secs()) else {
            return Ok(());
        };
        self.append(&AppliedRecord::Mark {
            until,
            at_ms,
            key: clean_key(key),
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Source;
    use crate::store::{DEFAULT_TTL, MemoryStore};
    use std::io::Write;

    fn id(s: &str) -> EventId {
        EventId::new(Source::Okta, s)
    }

    /// Regression (issue 13, item 7): the in-memory table forgot nothing
    /// while running (the memory store swept only past 100,000 entries, the
    /// file store never), so a long-running `serve` grew without bound.
    /// Entries and watermarks now go once their TTL has passed.
    #[tokio::test]
    async fn regression_issue_13_tables_expire_while_running() {
        let dir = std::env::temp_dir().join(format!("relay-expiry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let ttl = Duration::from_secs(1);
        let memory = MemoryStore::new(ttl);
        let file = FileStore::open(dir.join("applied.log"), ttl).unwrap();
        for i in 0..50 {
            let key = id(&format!("old-{i}"));
            assert_eq!(memory.claim(&key).await.unwrap(), Claim::New);
            memory.complete(&key).await.unwrap();
            assert_eq!(file.claim(&key).await.unwrap(), Claim::New);
            file.complete(&key).await.unwrap();
        }
        memory.set_watermark("user:okta:1/state", 5).await.unwrap();
        file.set_watermark("user:okta:1/state", 5).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2100)).await;
        // Any operation sweeps once the TTL (and the sweep interval) passed.
        assert_eq!(memory.claim(&id("fresh")).await.unwrap(), Claim::New);
        assert_eq!(file.claim(&id("fresh")).await.unwrap(), Claim::New);
        for table in [memory.table(), file.table()] {
            assert_eq!(table.entries.len(), 1, "only the fresh claim is left");
            assert!(table.marks.is_empty(), "the watermark expired too");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn file_store_survives_a_restart_and_tolerates_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("relay-store-{}", std::process::id()));
        let path = dir.join("applied.log");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
            assert_eq!(store.claim(&id("x")).await.unwrap(), Claim::New);
            store.complete(&id("x")).await.unwrap();
            assert_eq!(store.claim(&id("y")).await.unwrap(), Claim::New);
            // y is never completed: a crash mid-apply.
        }
        // A torn write at the end of the file.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        write!(f, "17000").unwrap();
        drop(f);
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert_eq!(store.claim(&id("x")).await.unwrap(), Claim::Done);
        assert_eq!(store.claim(&id("y")).await.unwrap(), Claim::New);
        // A torn tail is a crash artifact, set aside but not damage.
        assert!(!store.report().damaged(), "{:?}", store.report());
        assert_eq!(store.report().torn_tail_bytes, 5);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("relay-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn quarantined(dir: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("quarantine.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Regression (issue 13, item 6): one invalid UTF-8 byte in
    /// `applied.log` stopped `serve` from starting ("stream did not contain
    /// valid UTF-8", no file, line or offset), and an unparseable line was
    /// dropped silently (a lost watermark lets a stale event win). Now the
    /// store opens, keeps every readable record, moves the unreadable ones
    /// to `quarantine.log` with their offsets, and reports the damage.
    #[tokio::test]
    async fn regression_issue_13_a_damaged_applied_log_opens_loudly() {
        let dir = temp("damaged-v1");
        let path = dir.join("applied.log");
        let until = now_secs() + 3600;
        // A version 1 file as the old store wrote it, with two bad lines.
        let mut v1 = Vec::new();
        v1.extend_from_slice(format!("{until} okta:one\n").as_bytes());
        let bad_utf8_at = v1.len();
        v1.extend_from_slice(format!("{until} okta:t").as_bytes());
        v1.push(0xff);
        v1.extend_from_slice(b"o\n");
        v1.extend_from_slice(format!("W {until} 2000 user:okta:1/state\n").as_bytes());
        let garbage_at = v1.len();
        v1.extend_from_slice(b"W not-a-number 5 user:okta:2/state\n");
        v1.extend_from_slice(format!("{until} okta:three\n").as_bytes());
        std::fs::write(&path, &v1).unwrap();

        let store = FileStore::open(&path, DEFAULT_TTL).expect("opens despite the damage");
        assert_eq!(store.claim(&id("one")).await.unwrap(), Claim::Done);
        assert_eq!(store.claim(&id("three")).await.unwrap(), Claim::Done);
        assert_eq!(
            store.watermark("user:okta:1/state").await.unwrap(),
            Some(2000)
        );
        let report = store.report().clone();
        assert!(report.damaged());
        assert_eq!(report.records, 3);
        assert_eq!(report.quarantined_records, 2);
        assert_eq!(report.offsets, [bad_utf8_at as u64, garbage_at as u64]);
        let q = quarantined(&dir);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0]["offset"], bad_utf8_at);
        assert_eq!(q[0]["reason"], "not UTF-8");
        assert_eq!(q[1]["offset"], garbage_at);
        assert_eq!(q[1]["text"], "W not-a-number 5 user:okta:2/state");
        drop(store);
        // Migrated to version 2; a second open finds nothing wrong.
        assert!(Header::looks_like_v2(&std::fs::read(&path).unwrap()));
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert!(!store.report().damaged(), "{:?}", store.report());
        assert_eq!(store.report().records, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn written(dir: &Path, n: usize) -> PathBuf {
        let path = dir.join("applied.log");
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        for i in 0..n {
            store.complete(&id(&format!("k{i:03}"))).await.unwrap();
        }
        store.set_watermark("user:okta:9/state", 77).await.unwrap();
        path
    }

    #[tokio::test]
    async fn a_changed_byte_costs_one_record_not_the_file() {
        let dir = temp("flip");
        let path = written(&dir, 20).await;
        let mut bytes = std::fs::read(&path).unwrap();
        // Damage the 6th record's key.
        let line_starts: Vec<usize> = std::iter::once(0)
            .chain(
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| **b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        let victim = line_starts[6];
        let end = line_starts[7] - 1;
        bytes[end - 2] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        let report = store.report();
        assert!(report.damaged());
        assert_eq!(report.quarantined_records, 1);
        assert_eq!(report.offsets, [victim as u64]);
        assert_eq!(report.records, 20, "19 keys and the watermark");
        assert_eq!(quarantined(&dir)[0]["reason"], "checksum mismatch");
        assert_eq!(
            store.watermark("user:okta:9/state").await.unwrap(),
            Some(77)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_cut_an_emptied_and_a_deleted_file_are_reported() {
        let dir = temp("cut");
        let path = written(&dir, 30).await;
        // Reopen once so the header seals everything written.
        drop(FileStore::open(&path, DEFAULT_TTL).unwrap());
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
        drop(f);
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        let problems = store.report().problems.join("; ");
        assert!(
            problems.starts_with("cut: the file ends at byte"),
            "{problems}"
        );
        assert!(store.report().damaged());
        drop(store);

        std::fs::write(&path, b"").unwrap();
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert!(
            store.report().problems[0].starts_with("emptied:"),
            "{:?}",
            store.report()
        );
        drop(store);

        std::fs::remove_file(&path).unwrap();
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert!(
            store.report().problems[0].starts_with("missing:"),
            "{:?}",
            store.report()
        );
        drop(store);
        // A first start in an empty directory is not damage.
        let fresh = temp("fresh");
        let store = FileStore::open(fresh.join("applied.log"), DEFAULT_TTL).unwrap();
        assert!(!store.report().damaged());
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&fresh);
    }

    #[tokio::test]
    async fn watermarks_keep_the_newest_time_and_survive_a_restart() {
        let dir = std::env::temp_dir().join(format!("relay-marks-{}", std::process::id()));
        let path = dir.join("applied.log");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
            assert_eq!(store.watermark("user:okta:1/state").await.unwrap(), None);
            store
                .set_watermark("user:okta:1/state", 2_000)
                .await
                .unwrap();
            store
                .set_watermark("user:okta:1/state", 1_000)
                .await
                .unwrap();
            assert_eq!(
                store.watermark("user:okta:1/state").await.unwrap(),
                Some(2_000)
            );
            store
                .set_watermark("user:okta:1/member/group:okta:a b", 5)
                .await
                .unwrap();
        }
        let store = FileStore::open(&path, DEFAULT_TTL).unwrap();
        assert_eq!(
            store.watermark("user:okta:1/state").await.unwrap(),
            Some(2_000)
        );
        assert_eq!(
            store
                .watermark("user:okta:1/member/group:okta:a b")
                .await
                .unwrap(),
            Some(5)
        );
        let memory = MemoryStore::default();
        memory.set_watermark("k", 7).await.unwrap();
        memory.set_watermark("k", 3).await.unwrap();
        assert_eq!(memory.watermark("k").await.unwrap(), Some(7));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
