//! Opening the queue: migrate a version 1 `queue.log`, read the manifest,
//! `dead.log` and every segment — keeping every readable record, moving
//! unreadable ones to `quarantine.log` and voiding them in place (so they
//! are reported once), reporting cut, emptied and missing files — then
//! rebuild the window (the oldest pending messages) and the backlog count.
//! Memory stays bounded: segments are streamed, only the window is kept.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::format::{self, DEAD, LIVE, Manifest, PENDING, VOID};
use super::writer::{
    DataFile, Writer, create_segment, segment_number, segment_path, write_manifest,
};
use super::{Limits, Loc, Shared};
use crate::queue::QueueError;
use crate::state::{FileReport, HEADER_LEN, Header, Kind, Unreadable};

/// How close to `u64::MAX` the sequence high-water mark may come before
/// every start reports it.
const SEQ_WARNING: u64 = 1 << 32;

pub(super) fn load(
    dir: &Path,
    limits: Limits,
    shared: Arc<Shared>,
) -> Result<(Writer, Vec<FileReport>), QueueError> {
    let quarantine = dir.join("quarantine.log");
    let mut reports = Vec::new();
    let manifest_path = dir.join("manifest");
    let v1 = dir.join("queue.log");
    if v1.exists() {
        if manifest_path.exists() {
            // Migrated already; the old file outlived a crash.
            std::fs::remove_file(&v1)?;
            crate::state::sync_dir(&v1)?;
        } else {
            reports.push(migrate_v1(dir, &v1, &quarantine)?);
        }
    }

    let mut manifest_report = FileReport::new(&manifest_path);
    let manifest = match std::fs::read(&manifest_path) {
        Ok(bytes) => match format::decode_manifest(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                manifest_report.problems.push(format!(
                    "unreadable manifest ({e}): the segments that must exist and the sequence reservation are recomputed from the files"
                ));
                let bad = Unreadable {
                    offset: 0,
                    bytes,
                    reason: e,
                    torn_tail: false,
                };
                manifest_report.add_unreadable(&bad);
                set_aside(&quarantine, &manifest_path, &[bad], &mut manifest_report)?;
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };

    let mut found: BTreeMap<u64, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(n) = entry.file_name().to_str().and_then(segment_number) {
            found.insert(n, entry.path());
        }
    }
    let dead_path = dir.join("dead.log");
    if manifest.is_none()
        && manifest_report.problems.is_empty()
        && (!found.is_empty() || dead_path.exists())
    {
        manifest_report.problems.push(
            "missing: the manifest was deleted (the segments that must exist cannot be checked; the sequence reservation is recomputed from the files)".into(),
        );
    }
    if let Some(m) = manifest {
        if m.first <= m.last && m.last - m.first < 1_000_000 {
            for n in m.first..=m.last {
                if !found.contains_key(&n) {
                    let mut r = FileReport::new(&segment_path(dir, n));
                    r.problems.push(
                        "missing: the segment was deleted; the pending messages it held are lost"
                            .into(),
                    );
                    reports.push(r);
                }
            }
        } else {
            manifest_report.problems.push(format!(
                "implausible segment range {}..={}",
                m.first, m.last
            ));
        }
    }

    // A manifest means a queue was opened here before: dead.log must exist.
    let (dead, dead_live, dead_max, dead_report) =
        load_dead(&dead_path, manifest.is_some(), &quarantine)?;
    reports.push(dead_report);

    let mut next_seq = manifest
        .map_or(0, |m| m.reserved)
        .max(dead.header.hwm)
        .max(dead_max.map_or(0, |s| s.saturating_add(1)));
    let mut segments = BTreeMap::new();
    let mut cursor = None;
    let mut backlog = 0u64;
    let mut fill = Fill {
        shared: &shared,
        limits: &limits,
        dead_live: &dead_live,
        cursor: &mut cursor,
        backlog: &mut backlog,
        last_seq: None,
    };
    for (n, path) in found {
        let (seg, report, hwm) = load_segment(n, path, &mut fill, &quarantine)?;
        next_seq = next_seq.max(hwm);
        reports.push(report);
        segments.insert(n, seg);
    }
    if segments.is_empty() {
        let n = manifest.map_or(1, |m| m.last.saturating_add(1)).max(1);
        segments.insert(n, create_segment(dir, n, next_seq)?);
    }
    if u64::MAX - next_seq < SEQ_WARNING {
        manifest_report.problems.push(format!(
            "the sequence high-water mark is {next_seq}: {} numbers are left before the queue refuses new messages (a number is never reused and never wraps)",
            u64::MAX - next_seq
        ));
    }
    let first = segments.keys().next().copied().unwrap_or(1);
    let head = segments.keys().next_back().copied().unwrap_or(1);
    let m = Manifest {
        v: 2,
        reserved: next_seq.max(manifest.map_or(0, |m| m.reserved)),
        first,
        last: head,
    };
    write_manifest(dir, &m)?;
    manifest_report.records = 1;
    reports.insert(0, manifest_report);
    let cursor = match cursor {
        Some(c) if backlog > 0 => c,
        _ => Loc {
            segment: head,
            offset: segments.get(&head).map_or(HEADER_LEN as u64, |s| s.len),
        },
    };
    {
        let mut s = shared.state();
        s.backlog = backlog;
        s.dead_letters = dead_live.len() as u64;
    }
    let writer = Writer::new(
        dir.to_path_buf(),
        limits,
        segments,
        dead,
        m,
        next_seq,
        cursor,
        shared,
    );
    Ok((writer, reports))
}

/// Where loaded pending messages go: the window while it has room and
/// nothing older waits on disk, else the backlog.
struct Fill<'a> {
    shared: &'a Shared,
    limits: &'a Limits,
    /// Sequence numbers with a live dead letter: their messages are dead
    /// even if a crash kept the status write from landing.
    dead_live: &'a HashSet<u64>,
    cursor: &'a mut Option<Loc>,
    backlog: &'a mut u64,
    /// The last sequence number read, across segments.
    last_seq: Option<u64>,
}

fn load_segment(
    n: u64,
    path: PathBuf,
    fill: &mut Fill<'_>,
    quarantine: &Path,
) -> Result<(DataFile, FileReport, u64), QueueError> {
    let mut report = FileReport::new(&path);
    ensure_header(
        &path,
        Kind::Segment,
        n,
        &mut report,
        quarantine,
        "the pending messages it held are lost",
    )?;
    let mut max_seq: Option<u64> = None;
    let mut live = 0u64;
    let mut fix_dead = Vec::new();
    // The writer only ever appends increasing sequence numbers: a record
    // that does not follow the one before it (a repeat, a hand-made file)
    // is set aside like an unreadable one.
    let mut out_of_order: Vec<(format::At, String)> = Vec::new();
    let scan = {
        let mut s = fill.shared.state();
        format::scan(
            BufReader::new(File::open(&path)?),
            Kind::Segment,
            format::decode_message,
            |at, m| {
                if let Some(last) = fill.last_seq
                    && m.seq <= last
                {
                    out_of_order.push((
                        at,
                        format!("sequence number {} does not follow {last}", m.seq),
                    ));
                    return;
                }
                fill.last_seq = Some(m.seq);
                max_seq = Some(max_seq.map_or(m.seq, |x| x.max(m.seq)));
                if m.status != PENDING {
                    return;
                }
                if fill.dead_live.contains(&m.seq) {
                    fix_dead.push(at.offset);
                    return;
                }
                live += 1;
                let loc = Loc {
                    segment: n,
                    offset: at.offset,
                };
                if *fill.backlog == 0 && s.window.has_room(fill.limits) {
                    s.window.insert(m.seq, &m.key, m.body, m.attempts, loc);
                } else {
                    if *fill.backlog == 0 {
                        *fill.cursor = Some(loc);
                    }
                    *fill.backlog += 1;
                }
            },
        )?
    };
    let mut scan = scan;
    if !out_of_order.is_empty() {
        let bytes = std::fs::read(&path)?;
        for (at, reason) in out_of_order {
            let start = usize::try_from(at.offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(at.len).unwrap_or(0) - 1);
            scan.unreadable.push(Unreadable {
                offset: at.offset,
                bytes: bytes.get(start..end).unwrap_or_default().to_vec(),
                reason,
                torn_tail: false,
            });
            scan.records -= 1;
        }
        scan.unreadable.sort_by_key(|u| u.offset);
    }
    report.records = scan.records;
    report.problems.extend(scan.problems.iter().cloned());
    let mut file = OpenOptions::new().read(true).write(true).open(&path)?;
    let len = repair(&mut file, &path, &scan, &mut report, quarantine)?;
    for offset in fix_dead {
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&[DEAD])?;
    }
    let header = scan.header.unwrap_or(Header {
        kind: Kind::Segment,
        sealed: 0,
        hwm: 0,
        extra: n,
    });
    let hwm = header.hwm.max(max_seq.map_or(0, |s| s.saturating_add(1)));
    let header = Header {
        sealed: len,
        hwm,
        ..header
    };
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header.encode())?;
    file.sync_data()?;
    Ok((DataFile::new(file, path, len, header, live), report, hwm))
}

type DeadLoad = (DataFile, HashSet<u64>, Option<u64>, FileReport);

fn load_dead(path: &Path, existed: bool, quarantine: &Path) -> Result<DeadLoad, QueueError> {
    let mut report = FileReport::new(path);
    if !path.exists() {
        if existed {
            report
                .problems
                .push("missing: dead.log was deleted; the dead letters it held are lost".into());
        }
        crate::state::replace_file(path, &Header::new(Kind::Dead).encode())?;
    } else {
        ensure_header(
            path,
            Kind::Dead,
            0,
            &mut report,
            quarantine,
            "the dead letters it held are lost",
        )?;
    }
    let mut live = HashSet::new();
    let mut max_seq: Option<u64> = None;
    let scan = format::scan(
        BufReader::new(File::open(path)?),
        Kind::Dead,
        format::decode_dead,
        |_, d| {
            max_seq = Some(max_seq.map_or(d.seq, |x| x.max(d.seq)));
            if d.status == LIVE {
                live.insert(d.seq);
            }
        },
    )?;
    report.records = scan.records;
    report.problems.extend(scan.problems.iter().cloned());
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = repair(&mut file, path, &scan, &mut report, quarantine)?;
    let header = scan.header.unwrap_or(Header::new(Kind::Dead));
    let header = Header {
        sealed: len,
        hwm: header.hwm.max(max_seq.map_or(0, |s| s.saturating_add(1))),
        ..header
    };
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&header.encode())?;
    file.sync_data()?;
    Ok((
        DataFile::new(file, path.to_path_buf(), len, header, live.len() as u64),
        live,
        max_seq,
        report,
    ))
}

/// Sets a scan's unreadable records aside: to the quarantine file first,
/// then voided in place (complete lines) or cut off (an incomplete last
/// line). Answers the file's length afterwards.
fn repair(
    file: &mut File,
    path: &Path,
    scan: &format::Scan,
    report: &mut FileReport,
    quarantine: &Path,
) -> Result<u64, QueueError> {
    for u in &scan.unreadable {
        report.add_unreadable(u);
    }
    set_aside(quarantine, path, &scan.unreadable, report)?;
    for u in &scan.unreadable {
        let end = u.offset + u.bytes.len() as u64;
        if end < scan.good_end {
            file.seek(SeekFrom::Start(u.offset))?;
            file.write_all(&vec![VOID; u.bytes.len()])?;
        }
    }
    let len = if scan.good_end < scan.len {
        file.set_len(scan.good_end)?;
        scan.good_end
    } else {
        scan.len
    };
    Ok(len)
}

fn set_aside(
    quarantine: &Path,
    source: &Path,
    bad: &[Unreadable],
    report: &mut FileReport,
) -> Result<(), QueueError> {
    if !bad.is_empty() {
        crate::state::quarantine(quarantine, source, bad)?;
        report.quarantine_file = Some(quarantine.display().to_string());
    }
    Ok(())
}

/// Makes sure `path` starts with a readable header of `kind`: an empty
/// file is reported as emptied; a missing or damaged header is reported (a
/// damaged one quarantined) and the file rewritten behind a new one.
fn ensure_header(
    path: &Path,
    kind: Kind,
    extra: u64,
    report: &mut FileReport,
    quarantine: &Path,
    lost: &str,
) -> Result<(), QueueError> {
    let mut first = Vec::new();
    BufReader::new(File::open(path)?).read_until(b'\n', &mut first)?;
    let fresh = Header {
        kind,
        sealed: 0,
        hwm: 0,
        extra,
    };
    if first.is_empty() {
        report
            .problems
            .push(format!("emptied: the file is empty ({lost})"));
        let mut h = fresh;
        h.sealed = HEADER_LEN as u64;
        crate::state::replace_file(path, &h.encode())?;
        return Ok(());
    }
    let complete = first.last() == Some(&b'\n');
    let line = if complete {
        &first[..first.len() - 1]
    } else {
        &first[..]
    };
    if let Ok(h) = Header::decode(line)
        && h.kind == kind
        && complete
    {
        return Ok(());
    }
    let is_record = complete
        && match kind {
            Kind::Segment => format::decode_message(line).is_ok(),
            Kind::Dead => format::decode_dead(line).is_ok(),
            Kind::Applied | Kind::Groups => false,
        };
    let keep_from = if is_record {
        report
            .problems
            .push("the header is missing (rewritten)".into());
        0
    } else {
        let reason = match Header::decode(line) {
            Ok(h) => format!("a header of another kind ({:?})", h.kind),
            Err(e) => format!("unreadable header: {e}"),
        };
        report
            .problems
            .push(format!("{reason} (set aside and rewritten)"));
        let bad = Unreadable {
            offset: 0,
            bytes: line.to_vec(),
            reason,
            torn_tail: false,
        };
        report.add_unreadable(&bad);
        set_aside(quarantine, path, &[bad], report)?;
        first.len()
    };
    let bytes = std::fs::read(path)?;
    let mut contents = fresh.encode();
    contents.extend_from_slice(&bytes[keep_from.min(bytes.len())..]);
    let mut h = fresh;
    h.sealed = contents.len() as u64;
    contents[..HEADER_LEN].copy_from_slice(&h.encode());
    crate::state::replace_file(path, &contents)?;
    Ok(())
}

/// Rewrites a version 1 `queue.log` as segment 1 and `dead.log` (same
/// sequence numbers, attempts kept), writes the manifest, then removes it.
fn migrate_v1(dir: &Path, v1: &Path, quarantine: &Path) -> Result<FileReport, QueueError> {
    let decoded = format::decode_v1_queue_log(BufReader::new(File::open(v1)?))?;
    let mut report = FileReport::new(v1);
    report.records = decoded.records;
    for u in &decoded.unreadable {
        report.add_unreadable(u);
    }
    set_aside(quarantine, v1, &decoded.unreadable, &mut report)?;
    // Leftovers of a migration a crash interrupted (no manifest yet).
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_str()
            .and_then(segment_number)
            .is_some()
        {
            std::fs::remove_file(entry.path())?;
        }
    }
    let next = decoded.max_seq.map_or(0, |m| m.saturating_add(1));
    let mut segment = Header {
        kind: Kind::Segment,
        sealed: 0,
        hwm: next,
        extra: 1,
    }
    .encode();
    for (seq, p) in &decoded.pending {
        segment.extend_from_slice(&format::encode_message(
            PENDING, p.attempts, *seq, &p.key, &p.body,
        ));
    }
    seal(&mut segment);
    crate::state::replace_file(&segment_path(dir, 1), &segment)?;
    let mut dead = Header {
        kind: Kind::Dead,
        sealed: 0,
        hwm: next,
        extra: 0,
    }
    .encode();
    for (seq, letter) in &decoded.dead {
        dead.extend_from_slice(&format::encode_dead(LIVE, *seq, letter));
    }
    seal(&mut dead);
    crate::state::replace_file(&dir.join("dead.log"), &dead)?;
    write_manifest(
        dir,
        &Manifest {
            v: 2,
            reserved: next,
            first: 1,
            last: 1,
        },
    )?;
    std::fs::remove_file(v1)?;
    crate::state::sync_dir(v1)?;
    tracing::info!(
        pending = decoded.pending.len(),
        dead_letters = decoded.dead.len(),
        next_seq = next,
        "migrated the version 1 queue.log to segments"
    );
    Ok(report)
}

/// Sets the header of a file built in memory to its full length.
fn seal(contents: &mut [u8]) {
    if let Ok(mut h) = Header::decode(&contents[..HEADER_LEN - 1]) {
        h.sealed = contents.len() as u64;
        contents[..HEADER_LEN].copy_from_slice(&h.encode());
    }
}
