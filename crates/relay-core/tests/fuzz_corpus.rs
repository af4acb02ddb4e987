//! The fuzz targets (`fuzz/src/lib.rs`, run by cargo-fuzz on nightly) on
//! the stable toolchain: every target's function over its committed corpus
//! (`fuzz/corpus/<target>/`), over `tests/fixtures`, and over seeds derived
//! from the fixtures. CI runs this; a crash the fuzzer found and that was
//! saved into the corpus stays fixed. See `fuzz/README.md`.
//!
//! `cargo test -p relay-core --test fuzz_corpus -- --ignored write_seeds`
//! rewrites the derived seeds into `fuzz/corpus/` for libFuzzer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test: fail loudly

#[allow(unreachable_pub, dead_code)]
#[path = "../../../fuzz/src/lib.rs"]
mod fuzz_targets;

use std::path::{Path, PathBuf};

use relay_core::event::Source;
use relay_core::pipeline::parse_delivery;
use relay_core::queue::QueuedEvent;
use relay_core::verified::Verified;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files directly in `dir` (none when it does not exist), sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let path = e.path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    files(&repo().join("fuzz/corpus").join(target))
}

fn fixtures(folder: &str) -> Vec<(String, Vec<u8>)> {
    files(&repo().join("tests/fixtures").join(folder))
}

/// Runs `target` over `inputs`, naming the input that panicked.
fn replay(target: &str, inputs: &[(String, Vec<u8>)], run: impl Fn(&[u8])) -> usize {
    for (name, data) in inputs {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(data)));
        assert!(outcome.is_ok(), "fuzz target {target} fails on {name}");
    }
    inputs.len()
}

#[test]
fn okta_corpus_and_fixtures() {
    let mut inputs = corpus("okta");
    inputs.extend(fixtures("okta"));
    assert!(replay("okta", &inputs, fuzz_targets::okta) >= 17);
}

#[test]
fn auth0_events_corpus_and_fixtures() {
    let mut inputs = corpus("auth0_events");
    inputs.extend(fixtures("auth0"));
    assert!(replay("auth0_events", &inputs, fuzz_targets::auth0_events) >= 10);
}

#[test]
fn auth0_logs_corpus_and_fixtures() {
    let mut inputs = corpus("auth0_logs");
    inputs.extend(fixtures("auth0"));
    assert!(replay("auth0_logs", &inputs, fuzz_targets::auth0_logs) >= 10);
}

/// Every fixture body, by the route it belongs to (0 Okta, 1 Auth0 events,
/// 2 Auth0 logs).
fn fixture_bodies() -> Vec<(u8, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, body) in fixtures("okta") {
        out.push((0, name, body));
    }
    for (name, body) in fixtures("auth0") {
        let route = if name.contains("logs") { 2 } else { 1 };
        out.push((route, name, body));
    }
    out
}

/// Requests the verification target must accept, and the same requests
/// with one byte of the secret or the signature changed, which it must not.
fn verify_seeds() -> Vec<(String, Vec<u8>, bool)> {
    let mut seeds = Vec::new();
    for (route, name, body) in fixture_bodies() {
        for signing in [false, true] {
            let valid = fuzz_targets::valid_request(route, signing, &body);
            seeds.push((format!("{name} signing={signing}"), valid.clone(), true));
            // The challenge GET carries the same secret.
            if route == 0 {
                let challenge = fuzz_targets::valid_request(3, signing, b"");
                seeds.push((format!("challenge signing={signing}"), challenge, true));
            }
            for needle in [b"secret".as_slice(), b"v1,".as_slice()] {
                if let Some(at) = valid.windows(needle.len()).position(|w| w == needle) {
                    let mut bent = valid.clone();
                    bent[at] ^= 0x20;
                    let expect = needle == b"v1," && !signing;
                    seeds.push((format!("{name} signing={signing} bent"), bent, expect));
                }
            }
        }
    }
    seeds
}

#[test]
fn verify_headers_accepts_only_the_exact_secret() {
    let seeds = verify_seeds();
    assert!(seeds.len() > 40);
    for (name, data, accepted) in &seeds {
        assert_eq!(
            fuzz_targets::verify_headers(data),
            *accepted,
            "{name}: accepted should be {accepted}"
        );
    }
    let inputs = corpus("verify_headers");
    replay("verify_headers", &inputs, |data| {
        fuzz_targets::verify_headers(data);
    });
}

/// Queue messages for every event the fixtures yield.
fn queued_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (route, name, body) in fixture_bodies() {
        let source = [Source::Okta, Source::Auth0Events, Source::Auth0Logs][usize::from(route)];
        let Ok(parsed) = parse_delivery(&Verified::trusted_local_file(source, body)) else {
            continue;
        };
        for (i, event) in parsed.events.into_iter().enumerate() {
            let json = QueuedEvent::new(event).to_json();
            seeds.push((format!("{name} #{i}"), json.into_bytes()));
        }
    }
    seeds
}

#[test]
fn queued_event_corpus_and_fixture_events() {
    let mut inputs = queued_seeds();
    assert!(inputs.len() > 20, "{}", inputs.len());
    inputs.extend(corpus("queued_event"));
    replay("queued_event", &inputs, fuzz_targets::queued_event);
}

/// Writes the derived seeds into `fuzz/corpus/` (run by hand; see the
/// module docs).
#[test]
#[ignore = "writes files into fuzz/corpus; run by hand"]
fn write_seeds() {
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = repo().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let file = name
            .rsplit('/')
            .next()
            .unwrap_or(name)
            .replace([' ', '#', '='], "-");
        std::fs::write(dir.join(format!("seed-{file}")), data).unwrap();
    };
    for (name, data, _) in verify_seeds() {
        write("verify_headers", &name, &data);
    }
    for (name, data) in queued_seeds() {
        write("queued_event", &name, &data);
    }
}

// ---- local state files ----

/// Sample state files as `serve` writes them — an `applied.log` with keys
/// and watermarks, a queue segment, `dead.log` and manifest with pending,
/// acknowledged and dead messages, version 1 files — plus each with one
/// byte changed and with a torn tail, per target.
fn state_seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use relay_core::queue::disk::DiskQueue;
    use relay_core::queue::{DeadLetter, Disposition, EventQueue, QueuePolicy};
    use relay_core::store::{DEFAULT_TTL, FileStore, IdempotencyStore};

    let dir = std::env::temp_dir().join(format!("relay-fuzz-seeds-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut events: Vec<QueuedEvent> = queued_seeds()
        .into_iter()
        .filter_map(|(_, json)| QueuedEvent::from_json(std::str::from_utf8(&json).ok()?).ok())
        .collect();
    events.truncate(12);
    let (applied, segment, dead, manifest) = rt.block_on(async {
        let store = FileStore::open(dir.join("applied.log"), DEFAULT_TTL).unwrap();
        for e in &events {
            store.complete(&e.event.id).await.unwrap();
        }
        store
            .set_watermark("user:okta:00u1/state", 1_767_225_600_000)
            .await
            .unwrap();
        store
            .set_watermark("user:okta:00u1/member/group:okta:00g1 duo users", 5)
            .await
            .unwrap();
        drop(store);
        let q = DiskQueue::open(dir.join("queue")).unwrap();
        q.enqueue(&events).await.unwrap();
        q.enqueue(&[]).await.unwrap();
        let policy = QueuePolicy::default();
        let done = q.lease().unwrap();
        q.settle(&done, &Disposition::Done, &policy);
        let dead = q.lease().unwrap();
        q.settle(
            &dead,
            &Disposition::DeadLetter {
                reason: "permanent failure: 40002".into(),
            },
            &policy,
        );
        let retry = q.lease().unwrap();
        q.settle(
            &retry,
            &Disposition::Retry {
                reason: "429".into(),
            },
            &policy,
        );
        drop(q);
        let read = |name: &str| std::fs::read(dir.join("queue").join(name)).unwrap();
        (
            std::fs::read(dir.join("applied.log")).unwrap(),
            read(&format!("segment-{:020}.log", 1)),
            read("dead.log"),
            read("manifest"),
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    let until = 4_000_000_000u64;
    let applied_v1 = format!(
        "{until} okta:evt-1\nW {until} 1767225600000 user:okta:00u1/state\n{until} auth0:evt with spaces\n"
    )
    .into_bytes();
    let body = events[0].to_json();
    let letter = DeadLetter::new(&body, "gave up after 8 attempts", 8);
    let queue_v1 = [
        serde_json::json!({"op": "put", "seq": 0, "key": "user:okta:00u1", "body": body}),
        serde_json::json!({"op": "try", "seq": 0}),
        serde_json::json!({"op": "put", "seq": 1, "key": "poison:1", "body": "not json"}),
        serde_json::json!({"op": "ack", "seq": 1}),
        serde_json::json!({"op": "dead", "seq": 2, "letter": letter}),
        serde_json::json!({"op": "undead", "seq": 2}),
        serde_json::json!({"op": "dead", "seq": 3, "letter": letter}),
    ]
    .iter()
    .map(|v| format!("{v}\n"))
    .collect::<String>()
    .into_bytes();

    // Each sample, with one byte changed in its middle, and cut mid-record.
    let variants = |name: &str, bytes: &[u8]| -> Vec<(String, Vec<u8>)> {
        let mut flipped = bytes.to_vec();
        if let Some(b) = flipped.get_mut(bytes.len() * 2 / 3) {
            *b ^= 0x5a;
        }
        vec![
            (name.to_owned(), bytes.to_vec()),
            (format!("{name}-flipped"), flipped),
            (
                format!("{name}-torn"),
                bytes[..bytes.len() - 7.min(bytes.len())].to_vec(),
            ),
        ]
    };
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: &[u8]| {
        for (n, b) in variants(name, bytes) {
            seeds.push((target, n, b));
        }
    };
    add("applied_log", "applied-v2", &applied);
    add("applied_log", "applied-v1", &applied_v1);
    add("applied_open", "applied-v2", &applied);
    add("applied_open", "applied-v1", &applied_v1);
    add("queue_segment", "segment", &segment);
    add("dead_log", "dead", &dead);
    add("queue_log_v1", "queue-v1", &queue_v1);
    add(
        "state_header",
        "segment-header",
        &segment[..relay_core::state::HEADER_LEN - 1],
    );
    add("state_header", "manifest", &manifest);
    add(
        "queue_open",
        "segment-and-dead",
        &fuzz_targets::queue_files(false, &segment, Some(&dead)),
    );
    add(
        "queue_open",
        "segment-only",
        &fuzz_targets::queue_files(false, &segment, None),
    );
    add(
        "queue_open",
        "v1",
        &fuzz_targets::queue_files(true, &queue_v1, None),
    );
    seeds
}

#[test]
fn state_file_targets_corpus_and_sample_files() {
    let seeds = state_seeds();
    type Target = fn(&[u8]);
    let targets: [(&str, Target); 7] = [
        ("applied_log", fuzz_targets::applied_log),
        ("applied_open", fuzz_targets::applied_open),
        ("queue_segment", fuzz_targets::queue_segment),
        ("dead_log", fuzz_targets::dead_log),
        ("queue_log_v1", fuzz_targets::queue_log_v1),
        ("state_header", fuzz_targets::state_header),
        ("queue_open", fuzz_targets::queue_open),
    ];
    for (target, run) in targets {
        let mut inputs: Vec<(String, Vec<u8>)> = seeds
            .iter()
            .filter(|(t, _, _)| *t == target)
            .map(|(_, name, bytes)| (name.clone(), bytes.clone()))
            .collect();
        assert!(inputs.len() >= 3, "{target}: {}", inputs.len());
        inputs.extend(corpus(target));
        replay(target, &inputs, run);
    }
}

/// Writes the sample state files into `fuzz/corpus/` (run by hand, like
/// `write_seeds`).
#[test]
#[ignore = "writes files into fuzz/corpus; run by hand"]
fn write_state_seeds() {
    for (target, name, bytes) in state_seeds() {
        let dir = repo().join("fuzz/corpus").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}
