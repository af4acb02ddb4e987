//! `idp-duo-relay catch-up` as an operator or a scheduler runs it: `serve`
//! takes some hook deliveries into `RELAY_STATE_DIR`, is stopped, and the
//! binary's catch-up reads the System Log of the IdP stand-in from the same
//! state directory — judged by its exit code, its JSON summary on stdout,
//! its `catch_up` log line on stderr and the Duo simulator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duo_sim::DuoSim;
use relay_tests::idp_standin::{IdpStandIn, StandInUser, Tenant};
use relay_tests::run_to_end;
use serde_json::{Value, json};

const SECRET: &str = "catch-up-test-shared-secret-0123456789";

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "relay-cli-catch-up-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn duo_envs(cmd: &mut Command, sim: &DuoSim) {
    let cfg = sim.config();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RELAY_LOG_FORMAT", "json")
        .env("DUO_API_HOST", &cfg.host)
        .env("DUO_IKEY", &cfg.ikey)
        .env("DUO_SKEY", &cfg.skey)
        .env("DUO_API_URL", sim.base_url())
        .env("DUO_RATE_PER_MINUTE", "off");
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn event(n: usize, at_ms: i64, event_type: &str, user: &str) -> Value {
    json!({
        "uuid": format!("cli-catch-up-{n:04}"),
        "published": relay_core::time::rfc3339_millis(at_ms),
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "displayMessage": event_type,
        "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": [{"id": format!("00u{user}"), "type": "User",
                    "alternateId": format!("{user}@example.com"), "displayName": "Some User"}],
    })
}

fn catch_up(sim: &DuoSim, idp: &IdpStandIn, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    duo_envs(&mut cmd, sim);
    cmd.envs(idp.okta_env())
        .env("RELAY_STATE_DIR", state)
        .arg("catch-up")
        .args(args);
    cmd
}

/// The JSON summary (stdout's first JSON document) and the `catch_up` line.
fn summary_and_line(output: &str) -> (Value, Value) {
    let start = output.find("{\n").expect("a pretty JSON summary on stdout");
    let mut stream = serde_json::Deserializer::from_str(&output[start..]).into_iter::<Value>();
    let summary = stream.next().unwrap().unwrap();
    let line = output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "catch_up")
        .expect("a catch_up log line");
    (summary, line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_applies_what_serve_missed_and_nothing_twice() {
    let sim = DuoSim::start().await;
    // The IdP as it is now (the relay reads users it creates from it).
    let idp = IdpStandIn::start(Tenant {
        users: vec![
            StandInUser::new("00uann", "ann@example.com").status("SUSPENDED"),
            StandInUser::new("00ubob", "bob@example.com"),
        ],
        groups: vec![],
    })
    .await;
    let t = now_ms() - 10 * 60_000;
    let events = [
        event(1, t, "user.lifecycle.create", "ann"),
        event(2, t + 1000, "user.lifecycle.create", "bob"),
        event(3, t + 2000, "user.lifecycle.suspend", "ann"),
        event(4, t + 3000, "user.mfa.factor.reset_all", "bob"),
    ];
    for e in &events {
        idp.push_okta_log(e.clone());
    }
    let state = temp("state");

    // `serve` gets Ann's two events; Bob's creation and MFA reset are lost.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    duo_envs(&mut cmd, &sim);
    let serve = Serve(
        cmd.arg("serve")
            .env("OKTA_AUTH_SECRET", SECRET)
            .env("RELAY_STATE_DIR", &state)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    for e in [&events[0], &events[2]] {
        let body = json!({"data": {"events": [e]}}).to_string();
        loop {
            let answer = http
                .post(format!("http://127.0.0.1:{port}/okta"))
                .header("Authorization", SECRET)
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await;
            match answer {
                Ok(a) => {
                    assert_eq!(a.status(), 200);
                    break;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("serve did not answer: {e}"),
            }
        }
    }
    drop(serve);
    assert_eq!(
        sim.user_by_username("ann@example.com").unwrap().status,
        "disabled"
    );
    assert!(sim.user_by_username("bob@example.com").is_none());

    // A dry run first: it tells Bob's two (new) from Ann's (duplicates),
    // lists what it would do, calls Duo for nothing and saves no checkpoint.
    let calls = sim.total_calls();
    let (code, out) = run_to_end(catch_up(
        &sim,
        &idp,
        &state,
        &["--source", "okta", "--dry-run", "--json"],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    let (summary, _) = summary_and_line(&out);
    assert_eq!(
        [&summary["records"], &summary["new"], &summary["duplicates"]],
        [4, 2, 2],
        "{out}"
    );
    let would = summary["would"].as_array().unwrap();
    assert!(
        would
            .iter()
            .any(|op| op.as_str().unwrap().contains("bob@example.com")),
        "{out}"
    );
    assert_eq!(sim.total_calls(), calls);
    assert!(!state.join("catch-up-okta.json").exists());

    // Catch-up: Ann's two are duplicates (0 Duo calls), Bob's applied.
    let resets = |sim: &DuoSim| sim.call_count("GET /admin/v1/users/{user_id}/bypass_codes");
    assert_eq!(resets(&sim), 0);
    let calls = sim.total_calls();
    let (code, out) = run_to_end(catch_up(
        &sim,
        &idp,
        &state,
        &["--source", "okta", "--json"],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    let (summary, line) = summary_and_line(&out);
    assert_eq!(summary["status"], "caught_up", "{out}");
    assert_eq!(
        [
            &summary["records"],
            &summary["new"],
            &summary["duplicates"],
            &summary["failed"]
        ],
        [4, 2, 2, 0],
        "{out}"
    );
    assert_eq!(summary["duo_calls"], (sim.total_calls() - calls) as u64);
    assert_eq!(summary["idp_calls"], 2, "one page and the empty last page");
    for field in [
        "source",
        "records",
        "new",
        "duplicates",
        "failed",
        "checkpoint_lag_s",
        "idp_calls",
        "duo_calls",
    ] {
        assert!(
            !line[field].is_null(),
            "catch_up line lacks {field}: {line}"
        );
    }
    assert_eq!(line["new"], 2);
    assert_eq!(
        sim.user_by_username("bob@example.com").map(|u| u.status),
        Some("active".to_owned()),
        "{out}"
    );
    assert_eq!(resets(&sim), 1, "Bob's lost MFA reset is applied");
    let checkpoint = std::fs::read(state.join("catch-up-okta.json")).unwrap();
    assert!(
        String::from_utf8_lossy(&checkpoint).contains("after="),
        "the cursor is stored"
    );

    // Again: from the stored cursor, nothing to read, no Duo call.
    let calls = sim.total_calls();
    let (code, out) = run_to_end(catch_up(
        &sim,
        &idp,
        &state,
        &["--source", "okta", "--json"],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    let (summary, _) = summary_and_line(&out);
    assert_eq!(
        [&summary["records"], &summary["new"], &summary["duo_calls"]],
        [0, 0, 0]
    );
    assert_eq!(sim.total_calls(), calls);

    // A dry run from an hour ago: all four are duplicates; nothing
    // changes, the checkpoint stays.
    let checkpoint = std::fs::read(state.join("catch-up-okta.json")).unwrap();
    let (code, out) = run_to_end(catch_up(
        &sim,
        &idp,
        &state,
        &["--source", "okta", "--since", "1h", "--dry-run", "--json"],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    let (summary, _) = summary_and_line(&out);
    assert_eq!(
        [&summary["records"], &summary["duplicates"], &summary["new"]],
        [4, 4, 0]
    );
    assert_eq!(summary["would"], json!([]));
    assert_eq!(sim.total_calls(), calls);
    assert_eq!(
        std::fs::read(state.join("catch-up-okta.json")).unwrap(),
        checkpoint
    );

    // A real run from an hour ago reads them all again: duplicates only.
    let (code, out) = run_to_end(catch_up(
        &sim,
        &idp,
        &state,
        &["--source", "okta", "--since", "1h", "--json"],
    ))
    .await;
    assert_eq!(code, 0, "{out}");
    let (summary, _) = summary_and_line(&out);
    assert_eq!([&summary["duplicates"], &summary["duo_calls"]], [4, 0]);
    assert_eq!(resets(&sim), 1, "the reset is never applied twice");
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test]
async fn catch_up_needs_the_log_api_and_says_which_variable() {
    let sim = DuoSim::start().await;
    let state = temp("noapi");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    duo_envs(&mut cmd, &sim);
    cmd.env("RELAY_STATE_DIR", &state)
        .args(["catch-up", "--source", "auth0"]);
    let (code, out) = run_to_end(cmd).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("AUTH0_DOMAIN"), "{out}");
    assert_eq!(sim.total_calls(), 0);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    duo_envs(&mut cmd, &sim);
    cmd.args(["catch-up", "--source", "okta", "--since", "tomorrow"]);
    let (code, out) = run_to_end(cmd).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--since takes"), "{out}");

    // A token the IdP refuses: exit 4, the error names the variable (never
    // the token), no Duo call, no checkpoint.
    let idp = IdpStandIn::start(Tenant::default()).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    duo_envs(&mut cmd, &sim);
    cmd.envs(idp.okta_env())
        .env("OKTA_API_TOKEN", "wrong-token-SECRET")
        .env("RELAY_STATE_DIR", &state)
        .args(["catch-up", "--source", "okta", "--json"]);
    let (code, out) = run_to_end(cmd).await;
    assert_eq!(code, 4, "{out}");
    let (summary, line) = summary_and_line(&out);
    assert_eq!(summary["status"], "idp_failed", "{out}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap()
            .contains("OKTA_API_TOKEN"),
        "{out}"
    );
    assert_eq!(line["level"], "ERROR", "{line}");
    assert!(
        !out.contains("wrong-token-SECRET"),
        "the token leaked: {out}"
    );
    assert_eq!(sim.total_calls(), 0);
    assert!(!state.join("catch-up-okta.json").exists());
    let _ = std::fs::remove_dir_all(&state);
}
