//! What the local state files of `serve` share — the idempotency store's
//! `applied.log` ([`crate::store::FileStore`]), the disk queue's segments
//! and dead letters ([`crate::queue::disk`]) and the Duo group index's
//! `groups.log` ([`crate::group_index::FileGroupIndex`]):
//!
//! - **Framing.** Every file starts with a [`Header`] line (its kind, the
//!   length known durable, a sequence high-water mark), checksummed; every
//!   record is one line carrying a CRC-32 of its content. A damaged byte
//!   anywhere fails one record, not the file.
//! - **Damage is loud, not fatal.** A loader keeps every readable record,
//!   moves each unreadable one to a quarantine file (with its offset and the
//!   reason), and fills a [`FileReport`]: one log line per file, and
//!   `/healthz` lists the damaged ones. A file shorter than its header's
//!   durable length was cut; a file that should exist and is empty was
//!   emptied — both are reported, never silently taken as "nothing".
//! - **Group commit off the runtime.** [`Appender`] owns an append-only
//!   file on a dedicated thread: callers hand it records and await; the
//!   thread writes everything that arrived while it was busy in one write
//!   and one `fdatasync`, then answers them all. No fsync runs on an async
//!   runtime thread or under a lock that one waits on.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde::Serialize;

/// CRC-32 (ISO-HDLC, as zlib and gzip use) of the concatenation of `parts`.
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

// ---------------------------------------------------------------- header

/// What a state file holds (the header's second field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `applied.log`: idempotency keys and watermarks.
    Applied,
    /// A disk queue segment: messages.
    Segment,
    /// The disk queue's dead letters.
    Dead,
    /// `groups.log`: the Duo group index ([`crate::group_index`]).
    Groups,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Segment => "segment",
            Self::Dead => "dead",
            Self::Groups => "groups",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "applied" => Some(Self::Applied),
            "segment" => Some(Self::Segment),
            "dead" => Some(Self::Dead),
            "groups" => Some(Self::Groups),
            _ => None,
        }
    }
}

const MAGIC: &str = "RELAYSTATE v2";

/// The first line of every state file, fixed width so it can be rewritten
/// in place: `RELAYSTATE v2 <kind> <sealed> <hwm> <extra> <crc>`.
///
/// - `sealed`: a length of the file known to be durable (written and
///   fsync'd by an earlier batch). A file found shorter was cut.
/// - `hwm`: a sequence high-water mark (the next sequence number the queue
///   may hand out; 0 where unused), so a lost record cannot make a number
///   be handed out twice.
/// - `extra`: the segment number of a queue segment (0 elsewhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub sealed: u64,
    pub hwm: u64,
    pub extra: u64,
}

/// The header's length in bytes, newline included.
pub const HEADER_LEN: usize = MAGIC.len() + 1 + 8 + 3 * 21 + 1 + 8 + 1;

impl Header {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            sealed: HEADER_LEN as u64,
            hwm: 0,
            extra: 0,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let body = format!(
            "{MAGIC} {:<8} {:020} {:020} {:020}",
            self.kind.name(),
            self.sealed,
            self.hwm,
            self.extra
        );
        let line = format!("{body} {:08x}\n", crc32(&[body.as_bytes()]));
        debug_assert_eq!(line.len(), HEADER_LEN);
        line.into_bytes()
    }

    /// Reads a header line (without its newline); the error says what is
    /// wrong with it.
    pub fn decode(line: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
        let (body, crc) = text
            .rsplit_once(' ')
            .ok_or_else(|| "no checksum".to_owned())?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| "unreadable checksum".to_owned())?;
        if crc != crc32(&[body.as_bytes()]) || text.len() + 1 != HEADER_LEN {
            return Err("checksum mismatch".into());
        }
        let rest = body
            .strip_prefix(MAGIC)
            .ok_or_else(|| "not a state file header".to_owned())?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let [kind, sealed, hwm, extra] = fields[..] else {
            return Err("wrong number of fields".into());
        };
        let number = |s: &str| s.parse::<u64>().map_err(|_| format!("bad number {s:?}"));
        Ok(Self {
            kind: Kind::parse(kind).ok_or_else(|| format!("unknown kind {kind:?}"))?,
            sealed: number(sealed)?,
            hwm: number(hwm)?,
            extra: number(extra)?,
        })
    }

    /// Whether `bytes` start like a v2 state file (as opposed to the
    /// unframed v1 files this version migrates).
    pub fn looks_like_v2(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC.as_bytes())
    }
}

// ---------------------------------------------------------------- lines

/// One line of a state file as the loaders see it.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Where the line starts in the file.
    pub offset: u64,
    /// The line without its newline.
    pub bytes: &'a [u8],
    /// `false` for a last line without a newline (a write cut short).
    pub complete: bool,
}

/// Calls `f` for each line of `reader`, with its offset; answers the total
/// length read. Lines of any content (invalid UTF-8, NUL bytes) are
/// handed over as they are.
pub fn for_each_line(mut reader: impl BufRead, mut f: impl FnMut(Line<'_>)) -> io::Result<u64> {
    let mut offset = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(offset);
        }
        let complete = buf.last() == Some(&b'\n');
        let bytes = if complete { &buf[..n - 1] } else { &buf[..] };
        f(Line {
            offset,
            bytes,
            complete,
        });
        offset += n as u64;
    }
}

/// A record a loader could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub offset: u64,
    pub bytes: Vec<u8>,
    pub reason: String,
    /// An incomplete last record past the durable length: a write that a
    /// crash cut short and that nobody was told had succeeded. Kept in the
    /// quarantine file too, but not damage.
    pub torn_tail: bool,
}

/// The checksummed record line `<crc:08x> <payload>`; answers the payload.
pub fn unframe(line: &[u8]) -> Result<&[u8], String> {
    if line.len() < 9 || line[8] != b' ' {
        return Err("no record checksum".into());
    }
    let crc = std::str::from_utf8(&line[..8])
        .ok()
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| "unreadable record checksum".to_owned())?;
    let payload = &line[9..];
    if crc32(&[payload]) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(payload)
}

/// `<crc:08x> <payload>\n`.
pub fn frame(payload: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{:08x} ", crc32(&[payload.as_bytes()])).as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.push(b'\n');
}

// ---------------------------------------------------------------- scan

/// A line of this byte, whole, is a record that was found damaged,
/// quarantined and voided in place (so offsets stay valid and it is
/// reported once).
pub const VOID: u8 = b'#';

/// One readable record of a file, where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub offset: u64,
    /// Length with the newline.
    pub len: u64,
}

/// What [`scan`] found besides the records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The header, if readable and of the expected kind.
    pub header: Option<Header>,
    /// Bytes read.
    pub len: u64,
    pub records: u64,
    /// Lines voided earlier (damage already reported).
    pub voided: u64,
    pub unreadable: Vec<Unreadable>,
    pub problems: Vec<String>,
    /// Where the last complete line ends: appends continue from here once
    /// a torn tail is cut off.
    pub good_end: u64,
}

/// Scans a state file of records (a queue segment, `dead.log`,
/// `groups.log`): checks the header (kind `kind`), hands each readable
/// record to `on_record` with its place, lists the unreadable ones (an
/// unreadable suffix past the durable length is a torn tail), and reports a
/// file cut below its durable length or without a header. Never fails on
/// content.
pub fn scan<T>(
    reader: impl BufRead,
    kind: Kind,
    decode: impl Fn(&[u8]) -> Result<T, String>,
    mut on_record: impl FnMut(At, T),
) -> io::Result<Scan> {
    let mut s = Scan::default();
    let mut sealed = 0u64;
    let mut tail: Vec<Unreadable> = Vec::new();
    let mut first = true;
    let len = for_each_line(reader, |line: Line<'_>| {
        if line.complete {
            s.good_end = line.offset + line.bytes.len() as u64 + 1;
        }
        if first {
            first = false;
            match Header::decode(line.bytes) {
                Ok(h) if h.kind == kind && line.complete => {
                    sealed = h.sealed;
                    s.header = Some(h);
                    return;
                }
                Ok(h) => {
                    s.problems.push(format!(
                        "the header is of another kind ({:?}, expected {kind:?})",
                        h.kind
                    ));
                    s.unreadable
                        .push(unreadable(line, "header of another kind".into()));
                    return;
                }
                Err(e) if Header::looks_like_v2(line.bytes) => {
                    s.problems.push(format!("unreadable header ({e})"));
                    s.unreadable
                        .push(unreadable(line, format!("unreadable header: {e}")));
                    return;
                }
                Err(_) => s.problems.push("the header is missing".into()),
            }
        }
        // A voided record, or an empty line (it carries nothing, and there
        // is nothing in it to void).
        if line.complete && line.bytes.iter().all(|b| *b == VOID) {
            s.voided += 1;
            return;
        }
        let parsed = if line.complete {
            decode(line.bytes)
        } else {
            Err("incomplete last record".into())
        };
        match parsed {
            Ok(record) => {
                s.unreadable.append(&mut tail);
                s.records += 1;
                on_record(
                    At {
                        offset: line.offset,
                        len: line.bytes.len() as u64 + 1,
                    },
                    record,
                );
            }
            Err(reason) => {
                let u = unreadable(line, reason);
                if line.offset < sealed {
                    s.unreadable.push(u);
                } else {
                    tail.push(u);
                }
            }
        }
    })?;
    for mut t in tail {
        t.torn_tail = true;
        s.unreadable.push(t);
    }
    s.len = len;
    if len == 0 {
        s.problems.clear();
        s.problems.push("emptied: the file is empty".into());
    } else if sealed > len {
        s.problems.push(format!(
            "cut: the file ends at byte {len} but {sealed} bytes had been made durable ({} bytes of records lost)",
            sealed - len
        ));
    }
    Ok(s)
}

/// An unreadable record at `line`, for the loaders.
pub(crate) fn unreadable(line: Line<'_>, reason: String) -> Unreadable {
    Unreadable {
        offset: line.offset,
        bytes: line.bytes.to_vec(),
        reason,
        torn_tail: false,
    }
}

// ---------------------------------------------------------------- reports

/// How many offsets a report lists (the quarantine file has them all).
const OFFSETS_LISTED: usize = 32;

/// What loading one state file found: one log line at start-up, and the
/// damaged ones in `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub file: String,
    /// Records kept.
    pub records: u64,
    /// Unreadable records moved to the quarantine file.
    pub quarantined_records: u64,
    pub quarantined_bytes: u64,
    /// Offsets of the quarantined records (the first 32).
    pub offsets: Vec<u64>,
    /// An incomplete last write dropped (a crash mid-write; not damage).
    pub torn_tail_bytes: u64,
    /// Whole-file problems: cut, emptied, missing, unreadable header.
    pub problems: Vec<String>,
    pub quarantine_file: Option<String>,
}

impl FileReport {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.display().to_string(),
            ..Self::default()
        }
    }

    /// Whether anything was lost or set aside (a torn tail is not damage).
    pub fn damaged(&self) -> bool {
        self.quarantined_records > 0 || !self.problems.is_empty()
    }

    pub(crate) fn add_unreadable(&mut self, bad: &Unreadable) {
        if bad.torn_tail {
            self.torn_tail_bytes += bad.bytes.len() as u64;
            return;
        }
        self.quarantined_records += 1;
        self.quarantined_bytes += bad.bytes.len() as u64;
        if self.offsets.len() < OFFSETS_LISTED {
            self.offsets.push(bad.offset);
        }
    }

    /// The one start-up line for this file: `ERROR` when damaged.
    pub fn log(&self) {
        if self.damaged() {
            tracing::error!(
                file = %self.file,
                records_kept = self.records,
                quarantined_records = self.quarantined_records,
                quarantined_bytes = self.quarantined_bytes,
                offsets = ?self.offsets,
                torn_tail_bytes = self.torn_tail_bytes,
                problems = %self.problems.join("; "),
                quarantine_file = self.quarantine_file.as_deref().unwrap_or("-"),
                "state file damaged: every readable record was kept, unreadable ones were moved to the quarantine file"
            );
        } else if self.torn_tail_bytes > 0 {
            tracing::warn!(
                file = %self.file,
                records_kept = self.records,
                torn_tail_bytes = self.torn_tail_bytes,
                quarantine_file = self.quarantine_file.as_deref().unwrap_or("-"),
                "state file loaded; an incomplete last write (cut short by a crash, never acknowledged) was set aside"
            );
        } else {
            tracing::info!(file = %self.file, records_kept = self.records, "state file loaded");
        }
    }
}

/// Every state file of a process, for `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StateReport {
    pub files: Vec<FileReport>,
}

impl StateReport {
    pub fn damaged(&self) -> bool {
        self.files.iter().any(FileReport::damaged)
    }

    /// `{"damaged": bool, "files": [the damaged files' reports]}`.
    pub fn health(&self) -> serde_json::Value {
        let damaged: Vec<&FileReport> = self.files.iter().filter(|f| f.damaged()).collect();
        serde_json::json!({ "damaged": !damaged.is_empty(), "files": damaged })
    }
}

// ---------------------------------------------------------------- quarantine

/// Appends unreadable records to `quarantine` (JSON lines: when, which
/// file, offset, length, reason, the bytes in base64 and as lossy text) and
/// fsyncs it, before the loader rewrites or moves past them.
pub fn quarantine(quarantine: &Path, source: &Path, bad: &[Unreadable]) -> io::Result<()> {
    use base64::Engine as _;
    if bad.is_empty() {
        return Ok(());
    }
    let at = crate::time::rfc3339_millis(now_ms());
    let mut out = Vec::new();
    for b in bad {
        let line = serde_json::json!({
            "at": at,
            "file": source.display().to_string(),
            "offset": b.offset,
            "length": b.bytes.len(),
            "reason": b.reason,
            "torn_tail": b.torn_tail,
            "base64": base64::engine::general_purpose::STANDARD.encode(&b.bytes),
            "text": String::from_utf8_lossy(&b.bytes),
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(quarantine)?;
    file.write_all(&out)?;
    file.sync_all()
}

/// Replaces `path` with `contents` atomically (a temporary file, fsync,
/// rename, fsync of the directory).
pub fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut out = File::create(&tmp)?;
        out.write_all(contents)?;
        out.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(path)
}

/// fsyncs the directory holding `path`, so a create, rename or delete in it
/// is durable.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Reads the header of `file`, if it has a readable one.
pub fn read_header(file: &mut File) -> io::Result<Option<Header>> {
    let mut buf = [0u8; HEADER_LEN];
    file.seek(SeekFrom::Start(0))?;
    let mut read = 0;
    while read < HEADER_LEN {
        let n = file.read(&mut buf[read..])?;
        if n == 0 {
            return Ok(None);
        }
        read += n;
    }
    Ok(Header::decode(&buf[..HEADER_LEN - 1]).ok())
}

// ---------------------------------------------------------------- appender

type Reply = tokio::sync::oneshot::Sender<Result<(), String>>;

struct Job {
    bytes: Vec<u8>,
    done: Reply,
}

/// Batches larger than this are split, so one huge burst cannot hold every
/// waiter behind one enormous write.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// An append-only state file owned by a dedicated writer thread that
/// group-commits: whatever arrived while it was writing goes out in one
/// write and one `fdatasync`; every caller's future resolves once its bytes
/// are durable. After each batch the header's `sealed` field is rewritten
/// with the length the previous fsync made durable (so it never claims more
/// than the disk has).
#[derive(Debug)]
pub struct Appender {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

impl Appender {
    /// Takes over `file` (which holds `header` and is `len` bytes long, all
    /// of it durable) and starts its writer thread.
    pub fn start(path: &Path, file: File, header: Header, len: u64) -> io::Result<Self> {
        Self::start_on(mpsc::channel::<Job>(), path, file, header, len)
    }

    /// [`Appender::start`] on a channel made beforehand (so a test can queue
    /// jobs before the thread takes its first batch).
    fn start_on(
        (tx, rx): (mpsc::Sender<Job>, mpsc::Receiver<Job>),
        path: &Path,
        file: File,
        header: Header,
        len: u64,
    ) -> io::Result<Self> {
        let name = format!(
            "writer:{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        );
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || write_loop(&rx, file, header, len))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            path: path.to_path_buf(),
        })
    }

    /// Appends `bytes` (whole records) and resolves once they are durable.
    pub async fn append(&self, bytes: Vec<u8>) -> io::Result<()> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Job { bytes, done }).is_ok());
        if !sent {
            return Err(io::Error::other(format!(
                "{}: the writer thread has stopped",
                self.path.display()
            )));
        }
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io::Error::other(format!("{}: {e}", self.path.display()))),
            Err(_) => Err(io::Error::other(format!(
                "{}: the writer thread has stopped",
                self.path.display()
            ))),
        }
    }
}

impl Drop for Appender {
    /// Lets the thread finish what it was given, then waits for it.
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(rx: &mpsc::Receiver<Job>, mut file: File, mut header: Header, mut len: u64) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        let mut bytes = first.bytes;
        let mut replies = vec![first.done];
        while bytes.len() < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes.extend_from_slice(&job.bytes);
                    replies.push(job.done);
                }
                Err(_) => break,
            }
        }
        let result = commit(&mut file, &mut header, len, &bytes);
        match &result {
            Ok(()) => len += bytes.len() as u64,
            Err(e) => {
                tracing::error!(error = %e, "state file write failed; the writes waiting on it fail");
                // Drop a partial write so the next batch starts on a record
                // boundary.
                let _ = file.set_len(len);
            }
        }
        let answer = result.map_err(|e| e.to_string());
        for reply in replies {
            let _ = reply.send(answer.clone());
        }
        // Keep batching without blocking when more is waiting.
        pending = rx.try_recv().ok();
    }
}

fn commit(file: &mut File, header: &mut Header, len: u64, bytes: &[u8]) -> io::Result<()> {
    file.seek(SeekFrom::Start(len))?;
    file.write_all(bytes)?;
    // `len` was made durable by the previous batch's fsync.
    if header.sealed != len {
        header.sealed = len;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(&header.encode())?;
    }
    file.sync_data()
}

/// Milliseconds since the Unix epoch (message, dead-letter and damage
/// report times).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_iso_hdlc_check_value() {
        // The published check value of CRC-32/ISO-HDLC (the "123456789"
        // test string of the CRC catalogue).
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
    }

    #[test]
    fn headers_round_trip_and_refuse_any_changed_byte() {
        let h = Header {
            kind: Kind::Segment,
            sealed: 12_345,
            hwm: u64::MAX,
            extra: 7,
        };
        let bytes = h.encode();
        assert_eq!(bytes.len(), HEADER_LEN);
        assert_eq!(Header::decode(&bytes[..HEADER_LEN - 1]), Ok(h));
        for i in 0..HEADER_LEN - 1 {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x01;
            assert!(
                Header::decode(&damaged[..HEADER_LEN - 1]).is_err(),
                "byte {i} changed and still accepted"
            );
        }
    }

    #[test]
    fn framed_records_detect_damage() {
        let mut out = Vec::new();
        frame("D 1700000000 okta:abc def", &mut out);
        let line = &out[..out.len() - 1];
        assert_eq!(unframe(line), Ok(&b"D 1700000000 okta:abc def"[..]));
        let mut damaged = line.to_vec();
        damaged[12] = 0xff;
        assert!(unframe(&damaged).is_err());
        assert!(unframe(b"").is_err());
        assert!(unframe(b"zzzzzzzz x").is_err());
    }

    /// A framed record `D 1 <key>` and its line.
    fn record(key: &str) -> Vec<u8> {
        let mut line = Vec::new();
        frame(&format!("D 1 {key}"), &mut line);
        line
    }

    /// The records after the header, each checked complete and intact.
    fn records(bytes: &[u8]) -> usize {
        let mut lines = 0;
        for_each_line(&bytes[HEADER_LEN..], |l| {
            assert!(l.complete);
            unframe(l.bytes).unwrap();
            lines += 1;
        })
        .unwrap();
        lines
    }

    #[tokio::test]
    async fn the_appender_group_commits_and_seals_what_it_made_durable() {
        let dir = std::env::temp_dir().join(format!("relay-appender-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.log");
        let header = Header::new(Kind::Applied);
        std::fs::write(&path, header.encode()).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        // 200 appends are waiting before the writer takes its first batch:
        // they must go out as one batch (one write, one fdatasync). Queued
        // on the channel directly, so the test does not depend on how fast
        // the writer thread is scheduled.
        let (tx, rx) = mpsc::channel::<Job>();
        let mut waits = Vec::new();
        let mut written = 0;
        for i in 0..200 {
            let bytes = record(&format!("key-{i}"));
            written += bytes.len();
            let (done, wait) = tokio::sync::oneshot::channel();
            tx.send(Job { bytes, done }).unwrap();
            waits.push(wait);
        }
        let appender =
            Appender::start_on((tx, rx), &path, file, header, HEADER_LEN as u64).unwrap();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(records(&bytes), 200);
        assert_eq!(bytes.len(), HEADER_LEN + written);
        // One batch: a batch never claims its own bytes durable (the header
        // is written before its fsync), so the header still seals only
        // itself. Two or more batches would have sealed the first one.
        let header = Header::decode(&bytes[..HEADER_LEN - 1]).unwrap();
        assert_eq!(header.sealed, HEADER_LEN as u64);

        // The next batch seals exactly what the first made durable.
        let last = record("key-last");
        let last_len = last.len();
        appender.append(last).await.unwrap();
        drop(appender);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(records(&bytes), 201);
        assert_eq!(bytes.len(), HEADER_LEN + written + last_len);
        let header = Header::decode(&bytes[..HEADER_LEN - 1]).unwrap();
        assert_eq!(header.sealed, (HEADER_LEN + written) as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
