//! `idp-duo-relay serve` on damaged local state (issue 13, item 6): it
//! starts anyway, keeps every readable record, moves what it cannot read to
//! a quarantine file, logs one line per damaged file and lists it in
//! `/healthz`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SECRET: &str = "state-test-shared-secret-0123456789";

struct Serve {
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn serve(state: &Path, port: u16, mode: &str) -> Serve {
    let log = state.with_extension(format!("{mode}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DUO_API_HOST", "api-test.duosecurity.com")
        .env("DUO_IKEY", "DITESTTESTTESTTESTTE")
        .env("DUO_SKEY", "testsecretkeytestsecretkeytestsecretkey0")
        .env("DUO_API_URL", "http://127.0.0.1:9")
        .env("OKTA_AUTH_SECRET", SECRET)
        .env("RELAY_MODE", mode)
        .env("RELAY_STATE_DIR", state)
        .env("RELAY_LOG_FORMAT", "json")
        .env("PORT", port.to_string())
        .stdout(out.try_clone().expect("log handle"))
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("start idp-duo-relay serve");
    Serve { child, log }
}

fn log_text(path: &Path) -> String {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    s
}

/// `/healthz` once the relay answers; fails with its log if it exits or
/// does not answer within 30 s.
fn healthz(serve: &mut Serve, port: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = serve.child.try_wait() {
            panic!(
                "serve exited ({status}) instead of starting; its log:\n{}",
                log_text(&serve.log)
            );
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::Write as _;
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = write!(
                stream,
                "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if let Some((_, body)) = answer.split_once("\r\n\r\n")
                && let Ok(v) = serde_json::from_str::<Value>(body)
            {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "serve did not answer /healthz; its log:\n{}",
            log_text(&serve.log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("relay-cli-state-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("state dir");
    d
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Regression (issue 13, item 6): one invalid UTF-8 byte in `applied.log`
/// stopped `serve` from starting; an unparseable line was dropped without a
/// word.
#[test]
fn regression_issue_13_serve_starts_on_a_damaged_applied_log_and_says_so() {
    let dir = temp("applied");
    let until = now_secs() + 3600;
    let mut v1 = format!("{until} okta:kept-1\n").into_bytes();
    let bad_at = v1.len();
    v1.extend_from_slice(format!("{until} okta:da").as_bytes());
    v1.push(0xfe);
    v1.extend_from_slice(b"maged\n");
    let garbage_at = v1.len();
    v1.extend_from_slice(b"W 12x 5 user:okta:00u1/state\n");
    v1.extend_from_slice(format!("W {until} 1767225600000 user:okta:00u2/state\n").as_bytes());
    std::fs::write(dir.join("applied.log"), &v1).expect("write applied.log");

    let port = free_port();
    let mut relay = serve(&dir, port, "sync");
    let health = healthz(&mut relay, port);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["state"]["damaged"], true, "{health}");
    let file = &health["state"]["files"][0];
    assert!(
        file["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("applied.log"),
        "{health}"
    );
    assert_eq!(file["records"], 2, "{health}");
    assert_eq!(file["quarantined_records"], 2, "{health}");
    assert_eq!(
        file["offsets"],
        serde_json::json!([bad_at, garbage_at]),
        "{health}"
    );
    let quarantine = std::fs::read_to_string(dir.join("quarantine.log")).expect("quarantine.log");
    assert_eq!(quarantine.lines().count(), 2, "{quarantine}");
    drop(relay);
    let log = log_text(&dir.with_extension("sync.log"));
    let damaged: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("state file damaged"))
        })
        .collect();
    assert_eq!(damaged.len(), 1, "one line per damaged file:\n{log}");
    assert_eq!(damaged[0]["quarantined_records"], 2, "{log}");

    // Started again, the store is clean (the damage was set aside once).
    let port = free_port();
    let mut relay = serve(&dir, port, "sync");
    let health = healthz(&mut relay, port);
    assert_eq!(health["state"]["damaged"], false, "{health}");
    drop(relay);
    let _ = std::fs::remove_file(dir.with_extension("sync.log"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression (issue 13, item 6): the same for `queue.log` in queue mode —
/// an invalid UTF-8 byte stopped `serve`; a garbled line (a pending event,
/// a dead letter) vanished silently. The version 1 file is migrated with
/// every readable record; the pending events are applied, the dead letter
/// kept, the rest quarantined and reported.
#[test]
fn regression_issue_13_serve_starts_on_a_damaged_queue_log_and_says_so() {
    let dir = temp("queue");
    let queue = dir.join("queue");
    std::fs::create_dir_all(&queue).expect("queue dir");
    let letter = serde_json::json!({
        "body": "not json", "reason": "unreadable queue message", "attempts": 1,
        "dead_lettered_at_ms": 1, "event_id": null, "event_type": null, "subject": null
    });
    let mut log = format!(
        "{}\n",
        serde_json::json!({"op": "dead", "seq": 4, "letter": letter})
    )
    .into_bytes();
    let bad_at = log.len();
    log.extend_from_slice(
        b"{\"op\":\"put\",\"seq\":5,\"key\":\"user:okta:x\",\"body\":\"\xff\"}\n",
    );
    let garbage_at = log.len();
    log.extend_from_slice(b"{\"op\":\"ack\"\n");
    std::fs::write(queue.join("queue.log"), &log).expect("write queue.log");

    let port = free_port();
    let mut relay = serve(&dir, port, "queue");
    let health = healthz(&mut relay, port);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["queue"]["dead_letters"], 1, "{health}");
    assert_eq!(health["state"]["damaged"], true, "{health}");
    let files = health["state"]["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let v1 = files
        .iter()
        .find(|f| f["file"].as_str().is_some_and(|p| p.ends_with("queue.log")))
        .unwrap_or_else(|| panic!("queue.log reported: {health}"));
    assert_eq!(v1["quarantined_records"], 2, "{health}");
    assert_eq!(
        v1["offsets"],
        serde_json::json!([bad_at, garbage_at]),
        "{health}"
    );
    drop(relay);
    let log = log_text(&dir.with_extension("queue.log"));
    assert!(log.contains("state file damaged"), "{log}");
    let _ = std::fs::remove_file(dir.with_extension("queue.log"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The group index (`groups.log`) is a state file like the others: a
/// damaged record is quarantined and listed in `/healthz`, and the version 1
/// file (plain JSON lines) is migrated.
#[test]
fn serve_reports_a_damaged_group_index_and_migrates_it() {
    let dir = temp("groups");
    let v1 = concat!(
        "\"complete\"\n",
        "{\"put\":{\"group_id\":\"DG1\",\"name\":\"one\",\"tag\":\"okta:00g1\"}}\n",
        "{\"put\":{\"group_id\":\"DG2\",\"na",
        "\n",
        "{\"put\":{\"group_id\":\"DG3\",\"name\":\"three\"}}\n",
    );
    std::fs::write(dir.join("groups.log"), v1).expect("write groups.log");
    let port = free_port();
    let mut relay = serve(&dir, port, "sync");
    let health = healthz(&mut relay, port);
    assert_eq!(health["state"]["damaged"], true, "{health}");
    let files = health["state"]["files"].as_array().expect("files");
    let groups = files
        .iter()
        .find(|f| {
            f["file"]
                .as_str()
                .is_some_and(|name| name.ends_with("groups.log"))
        })
        .unwrap_or_else(|| panic!("groups.log is listed: {health}"));
    assert_eq!(groups["records"], 2, "{health}");
    assert_eq!(groups["quarantined_records"], 1, "{health}");
    drop(relay);
    let migrated = std::fs::read(dir.join("groups.log")).expect("groups.log");
    assert!(migrated.starts_with(b"RELAYSTATE v2 groups"), "migrated");

    let port = free_port();
    let mut relay = serve(&dir, port, "sync");
    let health = healthz(&mut relay, port);
    assert_eq!(health["state"]["damaged"], false, "{health}");
    drop(relay);
    let _ = std::fs::remove_file(dir.with_extension("sync.log"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// POSTs one Okta event hook delivery (one event: `id` created) and returns
/// the answer's status (0 when there was no HTTP answer).
fn post_okta(port: u16, id: usize) -> u16 {
    use std::io::Write as _;
    let body = serde_json::json!({"data": {"events": [{
        "uuid": format!("state-test-{id:04}"),
        "published": "2026-01-01T00:00:00.000Z",
        "eventType": "user.lifecycle.create",
        "version": "0",
        "displayMessage": "Create Okta user",
        "severity": "INFO",
        "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [{"id": format!("00ustate{id:04}"), "type": "User",
                    "alternateId": format!("user{id}@example.com"), "displayName": "User"}],
    }]}})
    .to_string();
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        stream,
        "POST /okta HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {SECRET}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The queue's data files (`RELAY_STATE_DIR/queue/*.log`: whatever holds
/// the pending messages and dead letters in this version).
fn queue_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("queue"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "log"));
    files.sort();
    files
}

/// What `/healthz` says about the damaged files, one string per file.
fn damage(health: &Value) -> String {
    health["state"]["files"]
        .as_array()
        .map(|files| {
            files
                .iter()
                .map(|f| format!("{}: {}", f["file"], f["problems"]))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// Regression (issue 13, item 6): a cut or emptied queue file silently lost
/// the pending events (and dead letters) it held — `serve` started on the
/// rest as if nothing had happened. Now the loss is reported (one log line,
/// `/healthz`). Through the binary and whatever files the queue keeps, so the
/// same test runs against the version 1 `queue.log`.
#[test]
fn regression_issue_13_a_cut_or_emptied_queue_is_reported() {
    let dir = temp("queuecut");
    // Duo is unreachable (port 9): every event stays pending.
    let port = free_port();
    let mut relay = serve(&dir, port, "queue");
    healthz(&mut relay, port);
    for id in 0..10 {
        assert_eq!(post_okta(port, id), 200, "delivery {id} accepted");
    }
    assert_eq!(healthz(&mut relay, port)["queue"]["pending"], 10);
    drop(relay); // SIGKILL
    let files = queue_files(&dir);
    assert!(!files.is_empty(), "the queue keeps files");
    for f in &files {
        let len = std::fs::metadata(f).expect("queue file").len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(f)
            .and_then(|h| h.set_len(len / 2))
            .expect("cut the file");
    }
    let port = free_port();
    let mut relay = serve(&dir, port, "queue");
    let health = healthz(&mut relay, port);
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["state"]["damaged"], true, "a cut queue: {health}");
    assert!(damage(&health).contains("cut"), "{health}");
    assert!(
        health["queue"]["pending"].as_u64().is_some_and(|p| p < 10),
        "{health}"
    );
    drop(relay);
    assert!(
        log_text(&dir.with_extension("queue.log")).contains("state file damaged"),
        "one log line says so"
    );

    for f in queue_files(&dir) {
        std::fs::write(&f, b"").expect("empty the file");
    }
    let port = free_port();
    let mut relay = serve(&dir, port, "queue");
    let health = healthz(&mut relay, port);
    assert_eq!(
        health["state"]["damaged"], true,
        "an emptied queue: {health}"
    );
    assert!(damage(&health).contains("emptied"), "{health}");
    assert_eq!(health["queue"]["pending"], 0, "{health}");
    drop(relay);
    let _ = std::fs::remove_file(dir.with_extension("queue.log"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regression (issue 13, item 6): a queue whose sequence numbers reached
/// `u64::MAX` wrapped and handed out the ids of existing dead letters. Now
/// `serve` says how many numbers are left, refuses the delivery with a 503
/// (the IdP retries) and keeps both dead letters' ids.
#[test]
fn regression_issue_13_sequence_numbers_near_the_end_refuse_instead_of_wrapping() {
    let dir = temp("queuewrap");
    let queue = dir.join("queue");
    std::fs::create_dir_all(&queue).expect("queue dir");
    let letter = serde_json::json!({
        "body": "not json", "reason": "unreadable queue message", "attempts": 1,
        "dead_lettered_at_ms": 1, "event_id": null, "event_type": null, "subject": null
    });
    let log = format!(
        "{}\n{}\n",
        serde_json::json!({"op": "dead", "seq": 0, "letter": letter}),
        serde_json::json!({"op": "dead", "seq": u64::MAX - 1, "letter": letter})
    );
    std::fs::write(queue.join("queue.log"), log).expect("write queue.log");
    let port = free_port();
    let mut relay = serve(&dir, port, "queue");
    let health = healthz(&mut relay, port);
    assert_eq!(health["queue"]["dead_letters"], 2, "{health}");
    // Two numbers past u64::MAX - 1 would be u64::MAX and then 0, the id of
    // the first dead letter.
    assert_eq!(post_okta(port, 1), 503, "refused, not given a used id");
    assert_eq!(post_okta(port, 2), 503, "refused, not given a used id");
    let health = healthz(&mut relay, port);
    assert_eq!(health["queue"]["dead_letters"], 2, "{health}");
    assert_eq!(health["queue"]["pending"], 0, "{health}");
    assert!(damage(&health).contains("numbers are left"), "{health}");
    drop(relay);
    let log = log_text(&dir.with_extension("queue.log"));
    assert!(log.contains("exhausted"), "the log says why:\n{log}");
    let _ = std::fs::remove_file(dir.with_extension("queue.log"));
    let _ = std::fs::remove_dir_all(&dir);
}
