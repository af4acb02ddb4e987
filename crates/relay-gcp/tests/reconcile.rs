//! `relay-gcp reconcile` as the Cloud Run job runs it: the service's image
//! and settings with the argument `reconcile`, against the Duo simulator and
//! the IdP stand-in, judged by its exit code and its summary line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use duo_sim::DuoSim;
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};

fn command(sim: &DuoSim, idp: &IdpStandIn, extra: &[(&str, &str)]) -> Command {
    let cfg = sim.config();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relay-gcp"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DUO_API_HOST", &cfg.host)
        .env("DUO_IKEY", &cfg.ikey)
        .env("DUO_SKEY", &cfg.skey)
        .env("DUO_API_URL", sim.base_url())
        .env("DUO_RATE_PER_MINUTE", "off")
        .envs(idp.okta_env())
        .envs(extra.iter().copied())
        .arg("reconcile");
    cmd
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run relay-gcp"))
        .await
        .unwrap()
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "reconcile")
        .unwrap_or_else(|| panic!("no reconcile summary line in {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_reconciles_and_exits_with_how_it_ended() {
    let sim = DuoSim::start().await;
    let idp = IdpStandIn::start(Tenant {
        users: vec![StandInUser::new("00uANN", "ann.lee@example.com")],
        groups: vec![StandInGroup::new("00gENG", "duo-eng", &["00uANN"])],
    })
    .await;

    // The source defaults to the IdP whose API is configured (Okta here).
    let out = run(command(&sim, &idp, &[("RELAY_RECONCILE_DRY_RUN", "true")])).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(summary(&out)["status"], "drift");
    assert_eq!(summary(&out)["severity"], "INFO");
    assert!(sim.user_by_username("ann.lee@example.com").is_none());

    let out = run(command(&sim, &idp, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(summary(&out)["status"], "converged");
    assert_eq!(
        sim.user_by_username("ann.lee@example.com").unwrap().groups,
        ["duo-eng"]
    );

    idp.fail_after("/api/v1/", 0);
    let out = run(command(&sim, &idp, &[])).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");

    let out = run(command(&sim, &idp, &[("RELAY_RECONCILE_SOURCE", "ldap")])).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RELAY_RECONCILE_SOURCE"));
}
