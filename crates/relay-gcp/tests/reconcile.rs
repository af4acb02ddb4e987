//! `relay-gcp reconcile` as the Cloud Run job runs it: the service's image
//! and settings with the argument `reconcile`, against the Duo simulator and
//! the IdP stand-in, judged by its exit code and its summary line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use duo_sim::DuoSim;
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};

fn command(sim: &DuoSim, idp: &IdpStandIn, extra: &[(&str, &str)]) -> Command {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    common::job_command("reconcile", sim, idp, &extra)
}

async fn run(cmd: Command) -> Output {
    common::run_job(cmd).await
}

fn summary(out: &Output) -> serde_json::Value {
    common::summary_line(out, "reconcile")
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
