//! The queue's writer thread: the only code that writes the queue's files
//! once it is open. It takes jobs from a channel and group-commits them:
//! everything that arrived while it was busy is written, then each dirty
//! file is fsync'd once, then every enqueue of the batch is answered and
//! made visible to workers. Between batches it reads backlog from disk into
//! the window.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, TryRecvError};

use super::format::{
    self, ACKED, ATTEMPTS_AT, DEAD, LIVE, Manifest, PENDING, REPLAYED, encode_attempts,
    encode_dead, encode_message,
};
use super::{Limits, Loc, Shared};
use crate::queue::{DeadLetter, QueueError, QueuedEvent};
use crate::state::{HEADER_LEN, Header, Kind};

type Reply = tokio::sync::oneshot::Sender<Result<(), QueueError>>;

/// What the writer is asked to do.
#[derive(Debug)]
pub(super) enum Job {
    /// Append messages `(ordering key, body)`; answer once durable.
    Put {
        entries: Vec<(String, String)>,
        done: Reply,
    },
    /// A message was handed out for its `attempts`-th time.
    Attempt { loc: Loc, attempts: u32 },
    /// A message is done.
    Ack { loc: Loc },
    /// A message moves to dead letters.
    Dead {
        seq: u64,
        loc: Loc,
        letter: DeadLetter,
    },
    /// `dlq replay`: a dead letter goes back on the queue.
    Replay { seq: u64, done: Reply },
    /// Answered once every job sent before it is written.
    Barrier { done: Reply },
}

/// Sequence numbers are reserved in the manifest this many at a time.
const RESERVE: u64 = 1 << 16;
/// Jobs taken into one batch at most.
const MAX_JOBS: usize = 8192;
/// Records read from the backlog between two looks at the channel.
const REFILL_CHUNK: usize = 256;

/// A segment or `dead.log`, open for writing.
#[derive(Debug)]
pub(super) struct DataFile {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) len: u64,
    /// The length an fsync made durable.
    pub(super) durable: u64,
    pub(super) header: Header,
    /// Pending messages (a segment) or live dead letters (`dead.log`).
    pub(super) live: u64,
    pub(super) dirty: bool,
}

impl DataFile {
    pub(super) fn new(file: File, path: PathBuf, len: u64, header: Header, live: u64) -> Self {
        Self {
            file,
            path,
            len,
            durable: len,
            header,
            live,
            dirty: false,
        }
    }

    fn overwrite(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.write_all(bytes)?;
        self.dirty = true;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let written = self
            .file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(bytes));
        if let Err(e) = written {
            // Leave the file on a record boundary.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Undoes appends that could not be made durable.
    fn truncate(&mut self, len: u64) {
        let _ = self.file.set_len(len);
        self.len = len;
    }

    /// One fsync for everything written since the last; the header's
    /// `sealed` becomes what the previous fsync made durable.
    pub(super) fn sync(&mut self, hwm: u64) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let mut header = self.header;
        header.sealed = self.durable;
        header.hwm = header.hwm.max(hwm);
        if header != self.header {
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(&header.encode())?;
            self.header = header;
        }
        self.file.sync_data()?;
        self.durable = self.len;
        self.dirty = false;
        Ok(())
    }
}

/// Reads the backlog, record by record, from where the window ends.
#[derive(Debug)]
struct Reader {
    segment: u64,
    inner: BufReader<File>,
}

/// A message just written, to be made visible.
struct New {
    seq: u64,
    key: String,
    body: String,
    loc: Loc,
    len: u64,
}

#[derive(Debug)]
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) limits: Limits,
    pub(super) segments: BTreeMap<u64, DataFile>,
    pub(super) dead: DataFile,
    pub(super) manifest: Manifest,
    pub(super) next_seq: u64,
    /// Where the first message not in the window is (meaningful while there
    /// is a backlog; else the end of the newest segment).
    pub(super) cursor: Loc,
    reader: Option<Reader>,
    pub(super) shared: Arc<Shared>,
}

pub(super) fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("segment-{n:020}.log"))
}

/// The segment number in a file name `segment-<n>.log`.
pub(super) fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?
        .strip_suffix(".log")
        .filter(|n| n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))?
        .parse()
        .ok()
}

pub(super) fn write_manifest(dir: &Path, m: &Manifest) -> io::Result<()> {
    crate::state::replace_file(&dir.join("manifest"), &format::encode_manifest(m))
}

fn exhausted(next: u64) -> QueueError {
    QueueError::Io(format!(
        "the queue's sequence numbers are exhausted (high-water mark {next}); no message can be queued without reusing an id: drain the queue, handle the dead letters, then move RELAY_STATE_DIR/queue aside"
    ))
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        dir: PathBuf,
        limits: Limits,
        segments: BTreeMap<u64, DataFile>,
        dead: DataFile,
        manifest: Manifest,
        next_seq: u64,
        cursor: Loc,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            dir,
            limits,
            segments,
            dead,
            manifest,
            next_seq,
            cursor,
            reader: None,
            shared,
        }
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    fn head(&self) -> u64 {
        self.segments.keys().next_back().copied().unwrap_or(1)
    }

    /// Runs until every sender is gone, then syncs what is left.
    pub(super) fn run(mut self, rx: &mpsc::Receiver<Job>) {
        loop {
            let first = if self.wants_refill() {
                match rx.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => {
                        self.refill();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                }
            };
            let mut jobs = vec![first];
            while jobs.len() < MAX_JOBS {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            self.process(jobs);
        }
        let _ = self.sync_dirty();
    }

    fn process(&mut self, jobs: Vec<Job>) {
        if let Err(e) = self.rotate_if_full() {
            tracing::error!(error = %e, "could not start a new queue segment; appending to the current one");
        }
        let head = self.head();
        let head_start = self.segments.get(&head).map_or(0, |s| s.len);
        let mut head_buf = Vec::new();
        let mut puts: Vec<(Reply, Vec<New>)> = Vec::new();
        let mut dead_buf = Vec::new();
        let mut dead_marks = Vec::new();
        let mut replays = Vec::new();
        let mut barriers = Vec::new();
        for job in jobs {
            match job {
                Job::Put { entries, done } => {
                    let first = match self.allocate(entries.len() as u64) {
                        Ok(first) => first,
                        Err(e) => {
                            tracing::error!(error = %e, "queue refused messages");
                            let _ = done.send(Err(e));
                            continue;
                        }
                    };
                    let mut news = Vec::with_capacity(entries.len());
                    for (seq, (key, body)) in (first..).zip(entries) {
                        let record = encode_message(PENDING, 0, seq, &key, &body);
                        let loc = Loc {
                            segment: head,
                            offset: head_start + head_buf.len() as u64,
                        };
                        head_buf.extend_from_slice(&record);
                        news.push(New {
                            seq,
                            key,
                            body,
                            loc,
                            len: record.len() as u64,
                        });
                    }
                    puts.push((done, news));
                }
                Job::Attempt { loc, attempts } => {
                    self.overwrite(loc, ATTEMPTS_AT, &encode_attempts(attempts));
                }
                Job::Ack { loc } => {
                    self.overwrite(loc, 0, &[ACKED]);
                    self.settled(loc.segment);
                }
                Job::Dead { seq, loc, letter } => {
                    dead_buf.extend_from_slice(&encode_dead(LIVE, seq, &letter));
                    dead_marks.push(loc);
                }
                Job::Replay { seq, done } => replays.push((seq, done)),
                Job::Barrier { done } => barriers.push(done),
            }
        }
        // Dead letters are durable before their messages are marked dead,
        // so a crash in between can duplicate one (fixed at the next open),
        // never lose one.
        if !dead_buf.is_empty() {
            let n = dead_marks.len() as u64;
            let hwm = self.next_seq;
            match self
                .dead
                .append(&dead_buf)
                .and_then(|()| self.dead.sync(hwm))
            {
                Ok(()) => {
                    self.dead.live += n;
                    self.shared.state().dead_letters += n;
                    for loc in dead_marks {
                        self.overwrite(loc, 0, &[DEAD]);
                        self.settled(loc.segment);
                    }
                }
                Err(e) => tracing::error!(
                    error = %e,
                    letters = n,
                    "could not write dead letters; their messages stay pending on disk and are tried again after a restart"
                ),
            }
        }
        let appended = match self.segments.get_mut(&head) {
            Some(seg) if !head_buf.is_empty() => seg.append(&head_buf),
            _ => Ok(()),
        };
        let synced = appended.and_then(|()| self.sync_dirty());
        match synced {
            Ok(()) => {
                let count: usize = puts.iter().map(|(_, n)| n.len()).sum();
                if let Some(seg) = self.segments.get_mut(&head) {
                    seg.live += count as u64;
                }
                for (done, news) in puts {
                    self.make_visible(news);
                    let _ = done.send(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "queue write failed; the deliveries waiting on it are answered 503");
                if let Some(seg) = self.segments.get_mut(&head)
                    && seg.len > head_start
                {
                    seg.truncate(head_start);
                }
                let message = format!("writing the queue: {e}");
                for (done, _) in puts {
                    let _ = done.send(Err(QueueError::Io(message.clone())));
                }
            }
        }
        for (seq, done) in replays {
            let _ = done.send(self.replay(seq));
        }
        for done in barriers {
            let _ = done.send(Ok(()));
        }
        self.drop_settled_segments();
        self.shared.notify.notify_waiters();
    }

    fn allocate(&mut self, n: u64) -> Result<u64, QueueError> {
        let first = self.next_seq;
        // The largest number handed out is u64::MAX - 1: the count never
        // wraps, it runs out.
        let end = first.checked_add(n).ok_or_else(|| exhausted(first))?;
        if end > self.manifest.reserved {
            let mut m = self.manifest;
            m.reserved = end.saturating_add(RESERVE);
            write_manifest(&self.dir, &m)?;
            self.manifest = m;
        }
        self.next_seq = end;
        Ok(first)
    }

    fn overwrite(&mut self, loc: Loc, at: u64, bytes: &[u8]) {
        if let Some(seg) = self.segments.get_mut(&loc.segment)
            && let Err(e) = seg.overwrite(loc.offset + at, bytes)
        {
            tracing::error!(error = %e, file = %seg.path.display(), "queue status write failed (the message may be handed out again after a restart)");
        }
    }

    fn settled(&mut self, segment: u64) {
        if let Some(seg) = self.segments.get_mut(&segment) {
            seg.live = seg.live.saturating_sub(1);
        }
    }

    /// fsyncs every dirty segment; answers the newest one's result (the one
    /// enqueues wait for), logging the others'.
    fn sync_dirty(&mut self) -> io::Result<()> {
        let head = self.head();
        let hwm = self.next_seq;
        let mut result = Ok(());
        for (n, seg) in &mut self.segments {
            if let Err(e) = seg.sync(hwm) {
                if *n == head {
                    result = Err(e);
                } else {
                    tracing::error!(error = %e, file = %seg.path.display(), "queue segment fsync failed");
                }
            }
        }
        result
    }

    /// Messages written and durable: into the window while nothing older
    /// waits on disk and there is room, else onto the backlog.
    fn make_visible(&mut self, news: Vec<New>) {
        let mut s = self.shared.state();
        for n in news {
            if s.backlog == 0 && s.window.has_room(&self.limits) {
                s.window.insert(n.seq, &n.key, n.body, 0, n.loc);
                self.cursor = Loc {
                    segment: n.loc.segment,
                    offset: n.loc.offset + n.len,
                };
            } else {
                if s.backlog == 0 {
                    self.cursor = n.loc;
                    self.reader = None;
                }
                s.backlog += 1;
            }
        }
    }

    fn wants_refill(&self) -> bool {
        let s = self.shared.state();
        s.backlog > 0 && s.window.has_room(&self.limits)
    }

    /// Reads up to a chunk of the backlog into the window.
    fn refill(&mut self) {
        let room = {
            let s = self.shared.state();
            self.limits
                .window_messages
                .saturating_sub(s.window.items.len())
                .min(usize::try_from(s.backlog).unwrap_or(usize::MAX))
                .min(REFILL_CHUNK)
        };
        let mut read = Vec::new();
        let mut at_end = false;
        while read.len() < room {
            match self.read_next() {
                Some(Some(found)) => read.push(found),
                Some(None) => {}
                None => {
                    at_end = true;
                    break;
                }
            }
        }
        let mut s = self.shared.state();
        for (m, loc) in read {
            // A repeated sequence number (a damaged file) is read once.
            s.window.insert(m.seq, &m.key, m.body, m.attempts, loc);
            s.backlog = s.backlog.saturating_sub(1);
        }
        if at_end && s.backlog > 0 {
            tracing::error!(
                backlog = s.backlog,
                "the queue's backlog count found no more messages on disk; counting it as empty"
            );
            s.backlog = 0;
        }
        drop(s);
        self.shared.notify.notify_waiters();
    }

    /// The next record at the cursor: `Some(Some(..))` a pending message,
    /// `Some(None)` anything else, `None` the end of the newest segment.
    fn read_next(&mut self) -> Option<Option<(format::Message, Loc)>> {
        loop {
            if self
                .reader
                .as_ref()
                .is_none_or(|r| r.segment != self.cursor.segment)
            {
                if !self.segments.contains_key(&self.cursor.segment) {
                    let next = self
                        .segments
                        .range(self.cursor.segment..)
                        .next()
                        .map(|(n, _)| *n)?;
                    self.cursor = Loc {
                        segment: next,
                        offset: HEADER_LEN as u64,
                    };
                }
                let path = segment_path(&self.dir, self.cursor.segment);
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(error = %e, file = %path.display(), "cannot read queue segment");
                        return None;
                    }
                };
                file.seek(SeekFrom::Start(self.cursor.offset)).ok()?;
                self.reader = Some(Reader {
                    segment: self.cursor.segment,
                    inner: BufReader::new(file),
                });
            }
            let reader = self.reader.as_mut()?;
            let mut buf = Vec::new();
            let n = reader.inner.read_until(b'\n', &mut buf).ok()?;
            if n == 0 || buf.last() != Some(&b'\n') {
                // The end of this segment (a partial line is never written
                // between batches; reread from the cursor next time).
                self.reader = None;
                let next = self
                    .segments
                    .range(self.cursor.segment + 1..)
                    .next()
                    .map(|(n, _)| *n)?;
                self.cursor = Loc {
                    segment: next,
                    offset: HEADER_LEN as u64,
                };
                continue;
            }
            let loc = self.cursor;
            self.cursor.offset += n as u64;
            return Some(match format::decode_message(&buf[..n - 1]) {
                Ok(m) if m.status == PENDING => Some((m, loc)),
                _ => None,
            });
        }
    }

    /// Starts a new segment once the newest one is full.
    fn rotate_if_full(&mut self) -> io::Result<()> {
        let head = self.head();
        if self
            .segments
            .get(&head)
            .is_none_or(|s| s.len < self.limits.segment_bytes)
        {
            return Ok(());
        }
        let n = head + 1;
        let seg = create_segment(&self.dir, n, self.next_seq)?;
        let mut m = self.manifest;
        m.last = n;
        write_manifest(&self.dir, &m)?;
        self.manifest = m;
        self.segments.insert(n, seg);
        Ok(())
    }

    /// Deletes the oldest segments once nothing in them is pending.
    fn drop_settled_segments(&mut self) {
        loop {
            let head = self.head();
            let Some((&first, seg)) = self.segments.first_key_value() else {
                return;
            };
            if first == head || seg.live > 0 {
                return;
            }
            let Some(&next) = self.segments.keys().nth(1) else {
                return;
            };
            let mut m = self.manifest;
            m.first = next;
            if let Err(e) = write_manifest(&self.dir, &m) {
                tracing::error!(error = %e, "could not update the queue manifest; keeping a settled segment");
                return;
            }
            self.manifest = m;
            if let Some(seg) = self.segments.remove(&first) {
                let path = seg.path.clone();
                drop(seg);
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(error = %e, file = %path.display(), "could not delete a settled queue segment");
                }
                let _ = crate::state::sync_dir(&path);
            }
            if self.reader.as_ref().is_some_and(|r| r.segment == first) {
                self.reader = None;
            }
            if self.cursor.segment == first {
                self.cursor = Loc {
                    segment: next,
                    offset: HEADER_LEN as u64,
                };
            }
        }
    }

    /// Puts dead letter `seq` back on the queue (a new sequence number) and
    /// marks it replayed.
    fn replay(&mut self, seq: u64) -> Result<(), QueueError> {
        let mut offsets = Vec::new();
        let mut letter = None;
        format::scan(
            BufReader::new(File::open(&self.dead.path)?),
            Kind::Dead,
            format::decode_dead,
            |at, d| {
                if d.seq == seq && d.status == LIVE {
                    offsets.push(at.offset);
                    letter = Some(d.letter);
                }
            },
        )?;
        let letter = letter.ok_or_else(|| QueueError::NotFound(seq.to_string()))?;
        let key = QueuedEvent::from_json(&letter.body)
            .map(|m| m.ordering_key())
            .unwrap_or_else(|_| format!("poison:{seq}"));
        let new_seq = self.allocate(1)?;
        let head = self.head();
        let hwm = self.next_seq;
        let seg = self
            .segments
            .get_mut(&head)
            .ok_or_else(|| QueueError::Io("the queue has no segment to write to".into()))?;
        let start = seg.len;
        let record = encode_message(PENDING, 0, new_seq, &key, &letter.body);
        if let Err(e) = seg.append(&record).and_then(|()| seg.sync(hwm)) {
            seg.truncate(start);
            return Err(e.into());
        }
        seg.live += 1;
        self.make_visible(vec![New {
            seq: new_seq,
            key,
            body: letter.body,
            loc: Loc {
                segment: head,
                offset: start,
            },
            len: record.len() as u64,
        }]);
        for offset in offsets {
            self.dead.overwrite(offset, &[REPLAYED])?;
        }
        self.dead.sync(hwm)?;
        self.dead.live = self.dead.live.saturating_sub(1);
        let mut s = self.shared.state();
        s.dead_letters = s.dead_letters.saturating_sub(1);
        Ok(())
    }
}

/// Creates segment `n` (header only), durable, and opens it.
pub(super) fn create_segment(dir: &Path, n: u64, hwm: u64) -> io::Result<DataFile> {
    let path = segment_path(dir, n);
    let header = Header {
        kind: Kind::Segment,
        sealed: HEADER_LEN as u64,
        hwm,
        extra: n,
    };
    crate::state::replace_file(&path, &header.encode())?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)?;
    Ok(DataFile::new(file, path, HEADER_LEN as u64, header, 0))
}
