//! The bodies of the fuzz targets: one function per target, each taking the
//! fuzzer's bytes and panicking only when a property the relay promises is
//! broken. `fuzz_targets/*.rs` hand them to libFuzzer (`cargo fuzz run`);
//! `crates/relay-core/tests/fuzz_corpus.rs` compiles this same file and runs
//! every function over the committed corpus and `tests/fixtures` on the
//! stable toolchain, in CI. See `fuzz/README.md` (adding a target: a
//! function here, a file in `fuzz_targets/`, a `[[bin]]`, a corpus folder,
//! a line in the replay test).
//!
//! Everything here uses only `relay-core`'s public API and crates it
//! already depends on, so the replay test needs nothing new.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use relay_core::event::{Change, GroupRef, IdpEvent, Source, UserRef};
use relay_core::pipeline::parse_delivery;
use relay_core::plan::{PlanRules, plan_event};
use relay_core::queue::QueuedEvent;
use relay_core::verified::Verified;
use relay_core::verify::InboundAuth;
use sha2::Sha256;

/// `POST /okta` bodies.
pub fn okta(data: &[u8]) {
    parser(Source::Okta, data);
}

/// `POST /auth0` bodies.
pub fn auth0_events(data: &[u8]) {
    parser(Source::Auth0Events, data);
}

/// `POST /auth0/logs` bodies.
pub fn auth0_logs(data: &[u8]) {
    parser(Source::Auth0Logs, data);
}

/// A body through the source's parser, then every event it yields through
/// what follows in the relay (planner, ordering keys, the queue message's
/// JSON). Properties: nothing panics; every event has the delivery's source,
/// a distinct id, a named subject and every value within the length limits;
/// a queued event reads back equal.
fn parser(source: Source, data: &[u8]) {
    let delivery = Verified::trusted_local_file(source, data.to_vec());
    let Ok(parsed) = parse_delivery(&delivery) else {
        return;
    };
    let rules = PlanRules::default();
    let mut ids = std::collections::HashSet::new();
    for event in &parsed.events {
        assert_eq!(event.source, source, "{event:?}");
        assert!(ids.insert(event.id.clone()), "duplicate id {}", event.id);
        assert!(subjects_named(event), "{event:?}");
        assert_eq!(
            relay_core::limits::check_event(event),
            Ok(()),
            "an event over the length limits"
        );
        let _ = plan_event(event, &rules);
        let _ = relay_core::order::aspects(event);
        let _ = relay_core::pipeline::subject(&event.change);
        let message = QueuedEvent::new(event.clone());
        let _ = (message.group_id(), message.dedup_id());
        let back = QueuedEvent::from_json(&message.to_json());
        assert_eq!(back.as_ref(), Ok(&message), "queue message round trip");
    }
}

/// Parsers never name a user or group by nothing.
fn subjects_named(event: &IdpEvent) -> bool {
    let user = |u: &UserRef| u.idp_id.is_some() || u.login.is_some();
    let group = |g: &GroupRef| g.idp_id.is_some() || g.name.is_some();
    match &event.change {
        Change::UserUpserted { user: u, .. }
        | Change::UserStateChanged { user: u, .. }
        | Change::UserProfileChanged { user: u, .. }
        | Change::UserDeleted { user: u }
        | Change::MfaReset { user: u, .. } => user(u),
        Change::MembershipAdded { user: u, group: g }
        | Change::MembershipRemoved { user: u, group: g } => user(u) && group(g),
        Change::GroupCreated { group: g }
        | Change::GroupRenamed { group: g, .. }
        | Change::GroupDeleted { group: g } => group(g),
        Change::SubscriptionLifecycle { subscription, .. } => !subscription.is_empty(),
    }
}

/// A queue message body (the JSON every queue backend carries). A message
/// that decodes re-encodes to one that decodes equal, and its keys compute.
pub fn queued_event(data: &[u8]) {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(message) = QueuedEvent::from_json(body) else {
        return;
    };
    let _ = (
        message.ordering_key(),
        message.group_id(),
        message.dedup_id(),
    );
    let _ = plan_event(&message.event, &PlanRules::default());
    let back = QueuedEvent::from_json(&message.to_json());
    assert_eq!(back.as_ref(), Ok(&message), "queue message round trip");
}

// ---- inbound verification ----

/// The secrets the verification target's relay is configured with. Each
/// source has two (a rotation), the Okta header is the default
/// `Authorization`.
pub const OKTA_SECRETS: [&str; 2] = ["fuzz-okta-secret-0123456789", "fuzz-okta-next-secret-98765"];
pub const AUTH0_SECRETS: [&str; 2] = [
    "fuzz-auth0-secret-0123456789",
    "fuzz-auth0-next-secret-9876",
];
/// A Standard Webhooks key (24 bytes, base64) for the signing variant.
pub const SIGNING_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
/// The verification target's clock: fixed, so a seed with a valid
/// signature stays valid.
pub const NOW_UNIX: u64 = 1_700_000_000;

fn auth(signing: bool) -> &'static InboundAuth {
    static PLAIN: OnceLock<InboundAuth> = OnceLock::new();
    static SIGNED: OnceLock<InboundAuth> = OnceLock::new();
    let cell = if signing { &SIGNED } else { &PLAIN };
    cell.get_or_init(|| {
        let okta = OKTA_SECRETS.join(",");
        let auth0 = AUTH0_SECRETS.join(",");
        let mut pairs = vec![
            ("OKTA_AUTH_SECRET", okta.as_str()),
            ("AUTH0_AUTH_SECRET", auth0.as_str()),
        ];
        if signing {
            pairs.push(("WEBHOOK_SIGNING_SECRETS", SIGNING_SECRET));
        }
        InboundAuth::from_config(&relay_core::config::from_pairs(&pairs))
            .expect("the fuzz configuration is valid")
    })
}

/// Request headers and body from the fuzzer's bytes: byte 0 picks the
/// route (`POST /okta`, `POST /auth0`, `POST /auth0/logs`, `GET /okta`),
/// byte 1 whether a Standard Webhooks signature is also required; then
/// header lines `name: value` separated by `\n`, a NUL byte, the body.
pub struct Request {
    pub route: u8,
    pub signing: bool,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn decode(data: &[u8]) -> Option<Self> {
        let (&route, rest) = data.split_first()?;
        let (&signing, rest) = rest.split_first()?;
        let (head, body) = match rest.iter().position(|b| *b == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        let mut headers = HeaderMap::new();
        for line in head.split(|b| *b == b'\n') {
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let value = &line[colon + 1..];
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        Some(Self {
            route: route % 4,
            signing: signing % 2 == 1,
            headers,
            body: Bytes::copy_from_slice(body),
        })
    }

    /// The inverse of [`Request::decode`], for writing seeds.
    pub fn encode(route: u8, signing: bool, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
        let mut out = vec![route, u8::from(signing)];
        let lines: Vec<String> = headers.iter().map(|(n, v)| format!("{n}: {v}")).collect();
        out.extend_from_slice(lines.join("\n").as_bytes());
        out.push(0);
        out.extend_from_slice(body);
        out
    }
}

/// Inbound verification, in one call and in the server's two steps.
/// Property: nothing is accepted without the exact secret — an accepted request carries one `Authorization` header whose
/// value, blanks trimmed, is a configured secret of the route's IdP (for
/// Auth0 also `Bearer <secret>`); with signing on, also a `v1` signature
/// that is the HMAC of `id.timestamp.body` under the key, within 5 minutes.
/// Answers whether the request was accepted (the replay test checks that
/// the accepting path is reached at all).
pub fn verify_headers(data: &[u8]) -> bool {
    let Some(request) = Request::decode(data) else {
        return false;
    };
    let auth = auth(request.signing);
    let now = UNIX_EPOCH + Duration::from_secs(NOW_UNIX);
    let (source, accepted) = match request.route {
        0 => (Source::Okta, verify(auth, Source::Okta, &request, now)),
        1 => (
            Source::Auth0Events,
            verify(auth, Source::Auth0Events, &request, now),
        ),
        2 => (
            Source::Auth0Logs,
            verify(auth, Source::Auth0Logs, &request, now),
        ),
        _ => {
            let accepted = auth
                .verify_challenge(Source::Okta, &request.headers)
                .is_ok();
            if accepted {
                assert_exact_secret(Source::Okta, &request.headers);
            }
            return accepted;
        }
    };
    if accepted {
        assert_exact_secret(source, &request.headers);
        if request.signing {
            assert_signed(&request, now);
        }
    }
    accepted
}

/// The one-call check and the server's two steps (headers before the body
/// is read, then the body) must agree.
fn verify(auth: &InboundAuth, source: Source, request: &Request, now: SystemTime) -> bool {
    let whole = auth
        .verify(source, &request.headers, request.body.clone(), now)
        .is_ok();
    let in_two_steps = auth
        .authenticate_headers(source, &request.headers, now)
        .and_then(|headers_ok| auth.verify_body(headers_ok, request.body.clone()))
        .is_ok();
    assert_eq!(whole, in_two_steps, "verify and its two steps disagree");
    whole
}

fn assert_exact_secret(source: Source, headers: &HeaderMap) {
    let values: Vec<&HeaderValue> = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .collect();
    assert_eq!(
        values.len(),
        1,
        "accepted without exactly one Authorization header"
    );
    let value = values[0]
        .to_str()
        .expect("an accepted secret is visible ASCII")
        .trim_matches([' ', '\t']);
    let secrets: &[&str] = match source {
        Source::Okta => &OKTA_SECRETS,
        Source::Auth0Events | Source::Auth0Logs => &AUTH0_SECRETS,
        // Not a route of this target (its secret is in the body, and the
        // target configures none): an Entra acceptance fails here.
        Source::Entra => &[],
    };
    let bearer = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_matches([' ', '\t']));
    let exact = secrets.contains(&value)
        || (source != Source::Okta && bearer.is_some_and(|t| secrets.contains(&t)));
    assert!(
        exact,
        "{source} accepted a value that is not a configured secret"
    );
}

fn assert_signed(request: &Request, now: SystemTime) {
    let one = |name: &str| {
        let mut values = request.headers.get_all(name).iter();
        let value = values.next().expect("accepted without a signature header");
        assert!(values.next().is_none(), "accepted with a repeated {name}");
        value.to_str().expect("signature headers are ASCII")
    };
    let (id, timestamp, signatures) = (
        one("webhook-id"),
        one("webhook-timestamp"),
        one("webhook-signature"),
    );
    let sent: i64 = timestamp.parse().expect("accepted a non-numeric timestamp");
    let now = i64::try_from(now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
        .unwrap_or(i64::MAX);
    assert!(
        (sent - now).abs() <= 300,
        "accepted a timestamp out of tolerance"
    );
    let key = BASE64
        .decode(SIGNING_SECRET.trim_start_matches("whsec_"))
        .expect("the key is base64");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = BASE64.encode(mac.finalize().into_bytes());
    assert!(
        signatures
            .split(' ')
            .any(|entry| entry.strip_prefix("v1,") == Some(expected.as_str())),
        "accepted without a valid v1 signature"
    );
}

/// A request the verification target accepts (for seeds and tests): the
/// route's first secret and, with `signing`, a valid signature at
/// [`NOW_UNIX`].
pub fn valid_request(route: u8, signing: bool, body: &[u8]) -> Vec<u8> {
    let secret = if matches!(route % 4, 0 | 3) {
        OKTA_SECRETS[0].to_owned()
    } else {
        format!("Bearer {}", AUTH0_SECRETS[0])
    };
    let mut headers = vec![("authorization", secret)];
    if route % 4 == 3 {
        headers.push(("x-okta-verification-challenge", "abc123".to_owned()));
    }
    if signing {
        let key = BASE64
            .decode(SIGNING_SECRET.trim_start_matches("whsec_"))
            .expect("the key is base64");
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes any key");
        mac.update(format!("msg_fuzz.{NOW_UNIX}.").as_bytes());
        mac.update(body);
        let signature = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        headers.push(("webhook-id", "msg_fuzz".to_owned()));
        headers.push(("webhook-timestamp", NOW_UNIX.to_string()));
        headers.push(("webhook-signature", signature));
    }
    let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Request::encode(route, signing, &headers, body)
}

// ---- local state files (`serve`'s RELAY_STATE_DIR) ----

use relay_core::queue::disk::format as queue_format;
use relay_core::queue::disk::{DiskQueue, Limits};
use relay_core::queue::{Disposition, QueuePolicy};
use relay_core::state::{Header, Kind, Unreadable};
use relay_core::store::{DEFAULT_TTL, FileStore, decode_applied_log};

/// Unreadable records lie inside the file, in file order, without
/// overlapping.
fn unreadable_in_order(unreadable: &[Unreadable], len: u64) {
    let mut end = 0u64;
    for u in unreadable {
        assert!(u.offset >= end, "unreadable records overlap or go back");
        end = u.offset + u.bytes.len() as u64;
        assert!(end <= len, "an unreadable record past the end");
    }
}

/// `applied.log` bytes (version 2 or 1) through its decoder. Properties: it
/// never fails on content and reads every byte; unreadable records lie in
/// the file, in order; every record read, framed again, reads back equal.
pub fn applied_log(data: &[u8]) {
    let mut records = Vec::new();
    let d = decode_applied_log(data, |r| records.push(r)).expect("reading memory cannot fail");
    assert_eq!(d.len, data.len() as u64);
    assert_eq!(d.records as usize, records.len());
    unreadable_in_order(&d.unreadable, d.len);
    for record in records {
        let mut file = Header::new(Kind::Applied).encode();
        relay_core::state::frame(&record.payload(), &mut file);
        let mut again = Vec::new();
        let d2 = decode_applied_log(&file[..], |r| again.push(r)).expect("memory");
        assert!(d2.unreadable.is_empty() && d2.problems.is_empty(), "{d2:?}");
        assert_eq!(again, [record], "applied.log record round trip");
    }
}

/// A disk queue segment through its decoder. Properties: never fails on
/// content; every byte is read; records and unreadable lines are in order;
/// every message read re-encodes to one that decodes equal.
pub fn queue_segment(data: &[u8]) {
    let mut messages = Vec::new();
    let mut last_end = 0u64;
    let scan = queue_format::scan(
        data,
        Kind::Segment,
        queue_format::decode_message,
        |at, m| {
            assert!(at.offset >= last_end, "records out of order");
            last_end = at.offset + at.len;
            messages.push(m);
        },
    )
    .expect("reading memory cannot fail");
    assert_eq!(scan.len, data.len() as u64);
    assert!(last_end <= scan.len && scan.good_end <= scan.len);
    unreadable_in_order(&scan.unreadable, scan.len);
    for m in messages {
        let line = queue_format::encode_message(m.status, m.attempts, m.seq, &m.key, &m.body);
        let back = queue_format::decode_message(&line[..line.len() - 1]);
        assert_eq!(back.as_ref(), Ok(&m), "queue message record round trip");
    }
}

/// `dead.log` through its decoder: the same properties as a segment.
pub fn dead_log(data: &[u8]) {
    let mut letters = Vec::new();
    let scan = queue_format::scan(data, Kind::Dead, queue_format::decode_dead, |_, d| {
        letters.push(d);
    })
    .expect("reading memory cannot fail");
    assert_eq!(scan.len, data.len() as u64);
    unreadable_in_order(&scan.unreadable, scan.len);
    for d in letters {
        let line = queue_format::encode_dead(d.status, d.seq, &d.letter);
        let back = queue_format::decode_dead(&line[..line.len() - 1]);
        assert_eq!(back.as_ref(), Ok(&d), "dead-letter record round trip");
    }
}

/// A version 1 `queue.log` (JSON lines) through the migration's decoder.
/// Properties: never fails on content; each line is a record or listed as
/// unreadable; what is pending or dead has a number at most the largest
/// seen.
pub fn queue_log_v1(data: &[u8]) {
    let q = queue_format::decode_v1_queue_log(data).expect("reading memory cannot fail");
    assert_eq!(q.len, data.len() as u64);
    let lines = data.iter().filter(|b| **b == b'\n').count()
        + usize::from(data.last().is_some_and(|b| *b != b'\n'));
    assert_eq!(
        q.records as usize + q.unreadable.len(),
        lines,
        "every line is read"
    );
    unreadable_in_order(&q.unreadable, q.len);
    let max = q.max_seq;
    for seq in q.pending.keys().chain(q.dead.keys()) {
        assert!(max.is_some_and(|m| *seq <= m));
    }
}

/// A state file header or a queue manifest. Properties: a header or
/// manifest that decodes re-encodes to one that decodes equal.
pub fn state_header(data: &[u8]) {
    if let Ok(h) = Header::decode(data) {
        let bytes = h.encode();
        assert_eq!(bytes.len(), relay_core::state::HEADER_LEN);
        assert_eq!(
            Header::decode(&bytes[..bytes.len() - 1]),
            Ok(h),
            "header round trip"
        );
    }
    if let Ok(m) = queue_format::decode_manifest(data) {
        let bytes = queue_format::encode_manifest(&m);
        assert_eq!(
            queue_format::decode_manifest(&bytes),
            Ok(m),
            "manifest round trip"
        );
    }
}

/// A scratch directory for the end-to-end loader targets, on tmpfs when
/// there is one (they fsync).
fn scratch(name: &str) -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("relay-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Problems every start repeats on purpose (not damage found once).
fn repeated_on_purpose(problem: &str) -> bool {
    problem.contains("sequence high-water mark")
}

/// The input of [`queue_open`]: byte 0's low bit makes the first file a
/// version 1 `queue.log` (else segment 1), its second bit makes the second
/// file `dead.log` (else it is not written); bytes 1-2 (little-endian) are
/// the first file's length; the rest is the second file.
pub fn queue_files(v1: bool, first: &[u8], dead: Option<&[u8]>) -> Vec<u8> {
    let len = u16::try_from(first.len()).unwrap_or(u16::MAX);
    let mut out = vec![u8::from(v1) | (u8::from(dead.is_some()) << 1)];
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&first[..usize::from(len)]);
    out.extend_from_slice(dead.unwrap_or_default());
    out
}

/// The disk queue's loader end to end, on files made of the fuzzer's bytes
/// (laid out as [`queue_files`] writes them). Properties: opening never
/// fails on content; a second open finds no damage (the first set it aside)
/// and the same counts; what is handed out and acknowledged stays
/// acknowledged.
pub fn queue_open(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let mode = data[0];
    let len = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let rest = &data[3..];
    let dir = scratch("queue");
    let (first, second) = rest.split_at(len.min(rest.len()));
    let name = if mode & 1 == 1 {
        "queue.log".to_owned()
    } else {
        format!("segment-{:020}.log", 1)
    };
    std::fs::write(dir.join(name), first).expect("write");
    if mode & 2 == 2 {
        std::fs::write(dir.join("dead.log"), second).expect("write");
    }
    let limits = Limits {
        window_messages: 4,
        window_bytes: 1 << 16,
        segment_bytes: 4096,
    };
    let q = DiskQueue::open_with(&dir, limits).expect("opening never fails on content");
    let stats = q.stats();
    assert_eq!(stats.in_flight, 0);
    drop(q);
    let q = DiskQueue::open_with(&dir, limits).expect("reopening never fails");
    for r in q.report() {
        let again: Vec<&String> = r
            .problems
            .iter()
            .filter(|p| !repeated_on_purpose(p))
            .collect();
        assert!(
            again.is_empty() && r.quarantined_records == 0,
            "damage reported twice: {r:?}"
        );
    }
    assert_eq!(q.stats(), stats, "a second open counts the same");
    let policy = QueuePolicy::default();
    let mut settled = 0;
    while let Some(lease) = q.lease() {
        q.settle(&lease, &Disposition::Done, &policy);
        settled += 1;
    }
    drop(q);
    let q = DiskQueue::open_with(&dir, limits).expect("reopening never fails");
    assert_eq!(
        q.stats().pending,
        stats.pending - settled,
        "acknowledged messages stay acknowledged"
    );
    drop(q);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `FileStore::open` end to end on an `applied.log` of the fuzzer's bytes.
/// Properties: opening never fails on content; a second open finds no
/// damage and no more records.
pub fn applied_open(data: &[u8]) {
    let dir = scratch("applied");
    let path = dir.join("applied.log");
    std::fs::write(&path, data).expect("write");
    let store = FileStore::open(&path, DEFAULT_TTL).expect("opening never fails on content");
    let records = store.report().records;
    drop(store);
    let store = FileStore::open(&path, DEFAULT_TTL).expect("reopening never fails");
    assert!(
        !store.report().damaged(),
        "damage reported twice: {:?}",
        store.report()
    );
    assert!(store.report().records <= records);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
