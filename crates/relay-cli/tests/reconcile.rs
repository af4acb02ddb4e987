//! `idp-duo-relay reconcile` as an operator or a scheduler runs it: the
//! binary against the Duo simulator and the IdP stand-in, judged by its exit
//! code, its report on stdout and its log lines on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::process::{Command, Output};

use duo_sim::{DuoSim, Seed, SeedUser};
use relay_tests::idp_standin::{IdpStandIn, OKTA_TOKEN, StandInGroup, StandInUser, Tenant};

struct World {
    sim: DuoSim,
    idp: IdpStandIn,
}

impl World {
    async fn start() -> Self {
        let sim = DuoSim::start().await;
        sim.seed(Seed {
            groups: vec![],
            users: vec![
                SeedUser {
                    username: "ghost@example.com".into(),
                    aliases: vec![
                        String::new(),
                        String::new(),
                        String::new(),
                        "okta:00uGHOST".into(),
                    ],
                    ..SeedUser::default()
                },
                SeedUser {
                    username: "admin@example.com".into(),
                    ..SeedUser::default()
                },
            ],
        });
        let idp = IdpStandIn::start(Tenant {
            users: vec![StandInUser::new("00uANN", "ann.lee@example.com")],
            groups: vec![StandInGroup::new("00gENG", "duo-eng", &["00uANN"])],
        })
        .await;
        Self { sim, idp }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"));
        let cfg = self.sim.config();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RELAY_LOG_FORMAT", "json")
            .env("DUO_API_HOST", &cfg.host)
            .env("DUO_IKEY", &cfg.ikey)
            .env("DUO_SKEY", &cfg.skey)
            .env("DUO_API_URL", self.sim.base_url())
            .env("DUO_RATE_PER_MINUTE", "off")
            .envs(self.idp.okta_env())
            .arg("reconcile")
            .args(args);
        cmd
    }

    /// Runs the binary off the runtime's threads (the simulator and the
    /// stand-in answer it meanwhile).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run idp-duo-relay"))
            .await
            .unwrap()
    }

    fn duo_writes(&self) -> usize {
        self.sim
            .calls()
            .iter()
            .filter(|c| c.method != "GET")
            .count()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_say_drift_then_converged() {
    let w = World::start().await;

    let out = w.run(&["--source", "okta", "--dry-run"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("reconcile okta → Duo · dry run"),
        "{stdout}"
    );
    assert!(stdout.contains("create user"), "{stdout}");
    assert!(stdout.contains("ghost@example.com"), "{stdout}");
    assert!(
        stdout.contains("drift: 4 actions to apply (dry run: nothing applied)"),
        "{stdout}"
    );
    // The summary line is JSON on stderr; stdout is only the report.
    let summary = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "reconcile")
        .unwrap_or_else(|| panic!("no summary line in {stderr}"));
    assert_eq!(summary["status"], "drift");
    assert_eq!(summary["users_create"], 1);
    assert_eq!(w.duo_writes(), 0);

    let out = w.run(&["--source", "okta"]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("converged: 4 actions applied"), "{stdout}");
    // One event-style line per user or group changed.
    let lines = relay_tests::summary_lines(&stderr);
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(lines.iter().all(|l| l["event_type"] == "reconcile"));
    assert!(
        lines
            .iter()
            .any(|l| l["subject"] == "ann.lee@example.com" && l["outcome"] == "applied")
    );
    assert!(w.sim.user_by_username("ann.lee@example.com").is_some());
    assert_eq!(
        w.sim.user_by_username("admin@example.com").unwrap().status,
        "active"
    );

    let out = w.run(&["--source", "okta", "--dry-run", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "converged");
    assert_eq!(report["counts"]["unmanaged"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_for_the_cap_and_read_errors() {
    let w = World::start().await;
    let out = w.run(&["--source", "okta", "--max-deletes", "0"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("more than --max-deletes 0; nothing applied"));
    assert_eq!(w.duo_writes(), 0);

    w.idp.fail_after("/api/v1/", 0);
    let out = w.run(&["--source", "okta"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("reading okta failed; nothing was applied"),
        "{stderr}"
    );
    assert_eq!(w.duo_writes(), 0);
    w.idp.clear_faults();

    // Duo refuses the keys (401, not worth retrying).
    let mut cmd = w.command(&["--source", "okta", "--dry-run"]);
    cmd.env("DUO_SKEY", "NotTheSimulatorSecretKey0000000000000000");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("reading Duo failed"), "{stderr}");
    assert!(!stderr.contains("not-the-simulator-secret"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_configuration_errors_exit_1_without_quoting_secrets() {
    let w = World::start().await;
    let out = w.run(&["--dry-run"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--source okta|auth0|entra is required"));

    let out = w.run(&["--source", "auth0", "--dry-run"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AUTH0_DOMAIN"), "{stderr}");

    let mut cmd = w.command(&["--source", "okta", "--dry-run"]);
    cmd.env_remove("OKTA_ORG_URL");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("OKTA_ORG_URL"), "{stderr}");
    assert!(!stderr.contains(OKTA_TOKEN), "{stderr}");

    let out = w.run(&["--help"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("EXIT CODES"));
}
