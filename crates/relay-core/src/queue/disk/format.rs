//! The disk queue's file formats, as pure functions over bytes (what the
//! loaders use and what the fuzz targets drive).
//!
//! Every file starts with a [`Header`]; then one record per line:
//!
//! - a **segment** (`segment-<n>.log`) holds messages:
//!   `<status> <attempts:010> <seq:020> <crc:08x> {"key":…,"body":…}` —
//!   `status` is `P` (pending), `A` (acknowledged) or `D` (moved to dead
//!   letters) and, with `attempts`, is rewritten in place (fixed width); the
//!   CRC-32 covers the sequence number and the JSON.
//! - **`dead.log`** holds dead letters:
//!   `<status> <seq:020> <crc:08x> <letter JSON>` — `L` (live) or `R`
//!   (replayed), rewritten in place.
//! - **`manifest`** is one framed line of JSON: the sequence numbers
//!   reserved so far and the range of segments that must exist.
//!
//! A line of `#` is a record that was found damaged, quarantined and voided
//! in place (so offsets stay valid and it is reported once); an empty line
//! is skipped the same way.
//!
//! Version 1 (`queue.log`, JSON lines, all state in memory) is read by
//! [`decode_v1_queue_log`] to migrate it.

use std::collections::BTreeMap;
use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};

use crate::queue::DeadLetter;
pub use crate::state::{At, Scan, scan};
use crate::state::{Unreadable, crc32, for_each_line, unreadable};

pub const PENDING: u8 = b'P';
pub const ACKED: u8 = b'A';
pub const DEAD: u8 = b'D';
pub const LIVE: u8 = b'L';
pub const REPLAYED: u8 = b'R';
pub use crate::state::VOID;

/// Where the attempts field starts in a message record.
pub const ATTEMPTS_AT: u64 = 2;
const ATTEMPTS_WIDTH: usize = 10;

/// A message as a segment holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub status: u8,
    pub attempts: u32,
    pub seq: u64,
    pub key: String,
    pub body: String,
}

#[derive(Serialize)]
struct PayloadOut<'a> {
    key: &'a str,
    body: &'a str,
}

#[derive(Deserialize)]
struct PayloadIn {
    key: String,
    body: String,
}

/// One message record, newline included.
pub fn encode_message(status: u8, attempts: u32, seq: u64, key: &str, body: &str) -> Vec<u8> {
    // A struct of two strings always serializes.
    let payload = serde_json::to_string(&PayloadOut { key, body }).unwrap_or_default();
    let seq = format!("{seq:020}");
    let crc = crc32(&[seq.as_bytes(), b" ", payload.as_bytes()]);
    let mut out = Vec::with_capacity(payload.len() + 48);
    out.push(status);
    out.extend_from_slice(format!(" {attempts:010} {seq} {crc:08x} ").as_bytes());
    out.extend_from_slice(payload.as_bytes());
    out.push(b'\n');
    out
}

/// The in-place attempts field.
pub fn encode_attempts(attempts: u32) -> Vec<u8> {
    format!("{attempts:010}").into_bytes()
}

/// Reads one message record (a line without its newline).
pub fn decode_message(line: &[u8]) -> Result<Message, String> {
    // P 0000000000 00000000000000000000 xxxxxxxx {...}
    const FIXED: usize = 2 + ATTEMPTS_WIDTH + 1 + 20 + 1 + 8 + 1;
    if line.len() < FIXED + 2 {
        return Err("too short for a message record".into());
    }
    let status = line[0];
    if ![PENDING, ACKED, DEAD].contains(&status) {
        return Err("unknown message status".into());
    }
    if line[1] != b' ' || line[12] != b' ' || line[33] != b' ' || line[42] != b' ' {
        return Err("malformed message record".into());
    }
    let attempts = digits(&line[2..12]).ok_or_else(|| "bad attempts field".to_owned())?;
    let attempts = u32::try_from(attempts).map_err(|_| "attempts out of range".to_owned())?;
    let seq_text = &line[13..33];
    let seq = digits(seq_text).ok_or_else(|| "bad sequence number".to_owned())?;
    let crc = hex32(&line[34..42]).ok_or_else(|| "bad checksum field".to_owned())?;
    let payload = &line[43..];
    if crc32(&[seq_text, b" ", payload]) != crc {
        return Err("checksum mismatch".into());
    }
    let PayloadIn { key, body } =
        serde_json::from_slice(payload).map_err(|e| format!("unreadable payload: {e}"))?;
    Ok(Message {
        status,
        attempts,
        seq,
        key,
        body,
    })
}

/// One dead-letter record, newline included.
pub fn encode_dead(status: u8, seq: u64, letter: &DeadLetter) -> Vec<u8> {
    let json = serde_json::to_string(letter).unwrap_or_default();
    let seq = format!("{seq:020}");
    let crc = crc32(&[seq.as_bytes(), b" ", json.as_bytes()]);
    let mut out = Vec::with_capacity(json.len() + 40);
    out.push(status);
    out.extend_from_slice(format!(" {seq} {crc:08x} ").as_bytes());
    out.extend_from_slice(json.as_bytes());
    out.push(b'\n');
    out
}

/// A dead letter as `dead.log` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dead {
    pub status: u8,
    pub seq: u64,
    pub letter: DeadLetter,
}

/// Reads one dead-letter record (a line without its newline).
pub fn decode_dead(line: &[u8]) -> Result<Dead, String> {
    // L 00000000000000000000 xxxxxxxx {...}
    const FIXED: usize = 2 + 20 + 1 + 8 + 1;
    if line.len() < FIXED + 2 {
        return Err("too short for a dead-letter record".into());
    }
    let status = line[0];
    if ![LIVE, REPLAYED].contains(&status) {
        return Err("unknown dead-letter status".into());
    }
    if line[1] != b' ' || line[22] != b' ' || line[31] != b' ' {
        return Err("malformed dead-letter record".into());
    }
    let seq_text = &line[2..22];
    let seq = digits(seq_text).ok_or_else(|| "bad sequence number".to_owned())?;
    let crc = hex32(&line[23..31]).ok_or_else(|| "bad checksum field".to_owned())?;
    let json = &line[32..];
    if crc32(&[seq_text, b" ", json]) != crc {
        return Err("checksum mismatch".into());
    }
    let letter = serde_json::from_slice(json).map_err(|e| format!("unreadable letter: {e}"))?;
    Ok(Dead {
        status,
        seq,
        letter,
    })
}

fn digits(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn hex32(b: &[u8]) -> Option<u32> {
    if b.len() != 8 || !b.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u32::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
}

/// What `manifest` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version (2).
    pub v: u32,
    /// Sequence numbers below this may have been handed out: the queue
    /// never hands out one below it again, even if every segment is lost.
    pub reserved: u64,
    /// The oldest segment that must exist.
    pub first: u64,
    /// The newest segment that must exist.
    pub last: u64,
}

pub fn encode_manifest(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::new();
    crate::state::frame(&serde_json::to_string(m).unwrap_or_default(), &mut out);
    out
}

pub fn decode_manifest(bytes: &[u8]) -> Result<Manifest, String> {
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let payload = crate::state::unframe(line)?;
    let m: Manifest =
        serde_json::from_slice(payload).map_err(|e| format!("unreadable manifest: {e}"))?;
    if m.v != 2 {
        return Err(format!("manifest version {} is not 2", m.v));
    }
    Ok(m)
}

// ---------------------------------------------------------------- version 1

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum V1Record {
    Put { seq: u64, key: String, body: String },
    Try { seq: u64 },
    Ack { seq: u64 },
    Dead { seq: u64, letter: DeadLetter },
    Undead { seq: u64 },
}

/// A version 1 pending message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Pending {
    pub key: String,
    pub body: String,
    pub attempts: u32,
}

/// What a version 1 `queue.log` held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Queue {
    pub pending: BTreeMap<u64, V1Pending>,
    pub dead: BTreeMap<u64, DeadLetter>,
    /// The largest sequence number seen (of any record).
    pub max_seq: Option<u64>,
    pub records: u64,
    pub unreadable: Vec<Unreadable>,
    pub len: u64,
}

/// Reads a version 1 `queue.log` (one JSON record per line), keeping every
/// readable record and listing the others — an invalid UTF-8 byte or a
/// garbled line costs that line only; an incomplete last line is a torn
/// tail.
pub fn decode_v1_queue_log(reader: impl BufRead) -> io::Result<V1Queue> {
    let mut q = V1Queue::default();
    q.len = for_each_line(reader, |line| {
        let record = if line.complete {
            serde_json::from_slice::<V1Record>(line.bytes).map_err(|e| e.to_string())
        } else {
            Err("incomplete last record".into())
        };
        let record = match record {
            Ok(r) => r,
            Err(reason) => {
                let mut u = unreadable(line, reason);
                u.torn_tail = !line.complete;
                q.unreadable.push(u);
                return;
            }
        };
        q.records += 1;
        let seq = match &record {
            V1Record::Put { seq, .. }
            | V1Record::Try { seq }
            | V1Record::Ack { seq }
            | V1Record::Dead { seq, .. }
            | V1Record::Undead { seq } => *seq,
        };
        q.max_seq = Some(q.max_seq.map_or(seq, |m| m.max(seq)));
        match record {
            V1Record::Put { seq, key, body } => {
                q.pending.insert(
                    seq,
                    V1Pending {
                        key,
                        body,
                        attempts: 0,
                    },
                );
            }
            V1Record::Try { seq } => {
                if let Some(p) = q.pending.get_mut(&seq) {
                    p.attempts = p.attempts.saturating_add(1);
                }
            }
            V1Record::Ack { seq } => {
                q.pending.remove(&seq);
            }
            V1Record::Dead { seq, letter } => {
                q.pending.remove(&seq);
                q.dead.insert(seq, letter);
            }
            V1Record::Undead { seq } => {
                q.dead.remove(&seq);
            }
        }
    })?;
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_records_round_trip_and_refuse_changed_bytes() {
        let line = encode_message(PENDING, 3, 42, "user:okta:1", "{\"v\":1}");
        let m = decode_message(&line[..line.len() - 1]).unwrap();
        assert_eq!(
            m,
            Message {
                status: PENDING,
                attempts: 3,
                seq: 42,
                key: "user:okta:1".into(),
                body: "{\"v\":1}".into()
            }
        );
        // Status and attempts are rewritten in place; every other byte is
        // covered by the checksum or the fixed layout.
        for i in 13..line.len() - 1 {
            let mut damaged = line.clone();
            damaged[i] ^= 0x04;
            assert!(
                decode_message(&damaged[..damaged.len() - 1]).is_err(),
                "byte {i} changed and still accepted"
            );
        }
        let mut acked = line.clone();
        acked[0] = ACKED;
        acked[ATTEMPTS_AT as usize..ATTEMPTS_AT as usize + 10].copy_from_slice(&encode_attempts(9));
        let m = decode_message(&acked[..acked.len() - 1]).unwrap();
        assert_eq!((m.status, m.attempts), (ACKED, 9));
    }

    #[test]
    fn dead_records_round_trip() {
        let letter = DeadLetter::new("not json", "unreadable queue message", 2);
        let line = encode_dead(LIVE, 7, &letter);
        let d = decode_dead(&line[..line.len() - 1]).unwrap();
        assert_eq!((d.status, d.seq, &d.letter), (LIVE, 7, &letter));
        let mut damaged = line.clone();
        damaged[40] ^= 0x01;
        assert!(decode_dead(&damaged[..damaged.len() - 1]).is_err());
    }

    #[test]
    fn manifests_round_trip() {
        let m = Manifest {
            v: 2,
            reserved: u64::MAX,
            first: 3,
            last: 9,
        };
        assert_eq!(decode_manifest(&encode_manifest(&m)), Ok(m));
        assert!(decode_manifest(b"").is_err());
    }
}
