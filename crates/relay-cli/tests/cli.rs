//! The `idp-duo-relay` binary as a user runs it.

use std::process::Command;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
    // Start from a clean environment so a developer's shell cannot leak in.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    cmd
}

fn fixture(name: &str) -> String {
    format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn replay_dry_run_prints_the_operations_and_calls_nobody() {
    let out = bin()
        .args(["replay", "--dry-run", &fixture("okta/batch-mixed.json")])
        .env("RELAY_LOG_FORMAT", "json")
        .output()
        .expect("run idp-duo-relay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("would: upsert user ben.ito@example.com (okta:00uBENUSER0000000002)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "would: add ben.ito@example.com (okta:00uBENUSER0000000002) to group duo-users"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\"outcome\": \"skipped\""), "{stdout}");
    assert!(!stdout.contains("would: upsert user carla"), "{stdout}");
}

#[test]
fn serve_without_configuration_names_the_missing_variable() {
    let out = bin().arg("serve").output().expect("run idp-duo-relay");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OKTA_AUTH_SECRET"), "{stderr}");

    let out = bin()
        .arg("serve")
        .env("OKTA_AUTH_SECRET", "a-long-enough-shared-secret")
        .output()
        .expect("run idp-duo-relay");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DUO_API_HOST"), "{stderr}");
    assert!(!stderr.contains("a-long-enough-shared-secret"), "{stderr}");

    // A refused configuration leaves no state behind.
    let dir = std::env::temp_dir().join(format!("relay-cli-badconf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = bin()
        .arg("serve")
        .env("OKTA_AUTH_SECRET", "a-long-enough-shared-secret")
        .env("RELAY_STATE_DIR", &dir)
        .output()
        .expect("run idp-duo-relay");
    assert!(!out.status.success());
    assert!(
        !dir.exists(),
        "serve created {} before refusing",
        dir.display()
    );
}

#[test]
fn demo_once_shows_a_duo_user_appear() {
    let out = bin()
        .args(["demo", "--once"])
        .env("PORT", "0")
        .output()
        .expect("run idp-duo-relay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Sent each once: Okta HTTP 200, Entra HTTP 200"),
        "{stdout}"
    );
    assert!(stdout.contains("jane.doe@example.com"), "{stdout}");
    assert!(
        stdout.contains("idp-id=okta:00uNEWUSER0000000001"),
        "{stdout}"
    );
    // The Entra notification, read from the embedded Graph stand-in.
    assert!(stdout.contains("grace.hopper@contoso.com"), "{stdout}");
    assert!(stdout.contains("Grace Hopper"), "{stdout}");
    assert!(
        stdout.contains("idp-id=entra:4d9b8f2e-0000-4000-8000-00000000a11c"),
        "{stdout}"
    );
}

#[test]
fn unknown_commands_and_flags_fail_with_usage() {
    let out = bin().arg("frobnicate").output().expect("run idp-duo-relay");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("USAGE"));
    let out = bin()
        .args(["replay", "--bogus"])
        .output()
        .expect("run idp-duo-relay");
    assert!(!out.status.success());
}

#[tokio::test]
async fn dlq_lists_shows_and_replays_the_local_dead_letters() {
    use relay_core::queue::disk::DiskQueue;
    use relay_core::queue::{Disposition, EventQueue, QueuePolicy, QueuedEvent};
    let state = std::env::temp_dir().join(format!("relay-cli-dlq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let parsed =
        relay_core::source::okta::hook::parse(&relay_core::verified::Verified::trusted_local_file(
            relay_core::event::Source::Okta,
            std::fs::read(fixture("okta/suspend.json")).expect("fixture"),
        ))
        .expect("fixture parses");
    {
        let queue = DiskQueue::open(state.join("queue")).expect("open queue");
        let message = QueuedEvent::new(parsed.events[0].clone());
        queue.enqueue(&[message]).await.expect("enqueue");
        let lease = queue.lease().expect("a message");
        queue.settle(
            &lease,
            &Disposition::DeadLetter {
                reason: "permanent failure: Duo said 40002".into(),
            },
            &QueuePolicy::default(),
        );
    }
    let run = |args: &[&str]| {
        bin()
            .arg("dlq")
            .args(args)
            .env("RELAY_STATE_DIR", &state)
            .output()
            .expect("run idp-duo-relay")
    };
    let out = run(&["list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("permanent failure: Duo said 40002"),
        "{stdout}"
    );
    assert!(stdout.contains("1 dead letter(s)"), "{stdout}");
    let out = run(&["show", "okta:e5f6a7b8-0005-11f0-9c2e-000000000005"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("user.lifecycle.suspend"), "{stdout}");
    // A running relay holds the queue: no replay beside it.
    {
        let held = DiskQueue::open(state.join("queue")).expect("open queue");
        let out = run(&["replay", "--all"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("in use"), "{stderr}");
        drop(held);
    }
    let out = run(&["replay", "--all"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let queue = DiskQueue::open(state.join("queue")).expect("open queue");
    assert_eq!(queue.stats().pending, 1, "back on the queue");
    assert_eq!(queue.stats().dead_letters, 0);
    assert!(!run(&["frobnicate"]).status.success());
    let _ = std::fs::remove_dir_all(&state);
}

/// Regression (issue 13, item 7): `dlq list` on a state directory without a
/// queue printed an empty listing and exited 0, hiding a wrong
/// `RELAY_STATE_DIR`. It now says the queue is missing and fails, and
/// `dlq replay` does not create an empty queue there.
#[test]
fn regression_issue_13_dlq_on_a_missing_queue_says_so_and_fails() {
    let dir = std::env::temp_dir().join(format!("relay-cli-noqueue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for args in [
        &["dlq", "list"][..],
        &["dlq", "list", "--json"],
        &["dlq", "show", "1"],
        &["dlq", "replay", "--all"],
    ] {
        let out = bin()
            .args(args)
            .env("RELAY_STATE_DIR", &dir)
            .output()
            .expect("run idp-duo-relay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?}: {stdout}{stderr}");
        assert!(
            stderr.contains("there is no queue in") && stderr.contains("RELAY_STATE_DIR"),
            "{args:?}: {stderr}"
        );
        assert!(!stdout.contains("[]"), "{args:?}: {stdout}");
        assert!(!dir.exists(), "{args:?} created {}", dir.display());
    }
}
