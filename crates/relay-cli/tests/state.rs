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
