//! `relay-gcp catch-up` as the Cloud Run job runs it: the service's image
//! and settings with the argument `catch-up`, the checkpoint and the
//! idempotency keys in Firestore (the emulator when scripts/emulators.sh
//! started it, else the REST stand-in), against the Duo simulator and the
//! IdP stand-in's System Log; judged by its exit code, its `catch_up` line
//! and the checkpoint document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Output};

use common::Backend;
use duo_sim::DuoSim;
use relay_gcp::firestore::DEFAULT_COLLECTION;
use relay_tests::idp_standin::IdpStandIn;

const USER: &str = "00uCATCHUPGCP0000001";
const LOGIN: &str = "cat.gcp@example.com";

fn command(sim: &DuoSim, idp: &IdpStandIn, backend: &Backend, extra: &[(&str, &str)]) -> Command {
    let mut env = backend.env();
    env.push((
        "OKTA_AUTH_SECRET".into(),
        "gcp-catch-up-secret-0123456789abcdef".into(),
    ));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    common::job_command("catch-up", sim, idp, &env)
}

async fn run(cmd: Command) -> Output {
    common::run_job(cmd).await
}

fn summary(out: &Output) -> serde_json::Value {
    common::summary_line(out, "catch_up")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_catches_up_from_the_checkpoint_in_firestore() {
    let backend = Backend::best().await;
    let sim = DuoSim::start().await;
    let idp =
        IdpStandIn::with_missed_okta_create(USER, LOGIN, "gcp00000-0000-4000-8000-000000000001")
            .await;

    // The missed create is applied (the source defaults to Okta, whose API
    // is configured).
    let out = run(command(&sim, &idp, &backend, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = summary(&out);
    assert_eq!(
        (&line["status"], &line["records"], &line["new"]),
        (&"caught_up".into(), &1.into(), &1.into()),
        "{line}"
    );
    assert_eq!(line["severity"], "INFO");
    assert!(line["checkpoint_lag_s"].is_u64(), "{line}");
    assert!(sim.user_by_username(LOGIN).is_some());

    // The checkpoint document, where the next execution finds it.
    let doc = backend
        .read_doc(DEFAULT_COLLECTION, "checkpoint.b2t0YQ")
        .await
        .expect("the okta checkpoint document");
    let body = doc["fields"]["checkpoint"]["stringValue"].as_str().unwrap();
    assert!(body.contains("caught_up_ms"), "{body}");
    let out = run(command(&sim, &idp, &backend, &[])).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = summary(&out);
    assert_eq!(
        (&line["records"], &line["duo_calls"]),
        (&0.into(), &0.into()),
        "{line}"
    );

    // Reading the log fails: exit 4, the line at ERROR.
    idp.fail_after("/api/v1/logs", 0);
    let out = run(command(&sim, &idp, &backend, &[])).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(summary(&out)["status"], "idp_failed");
    assert_eq!(summary(&out)["severity"], "ERROR");

    // Bad configuration: exit 1, naming the setting; nothing read.
    let out = run(command(&sim, &idp, &backend, &[("RELAY_STORE", "memory")])).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RELAY_STORE"));
    let out = run(command(
        &sim,
        &idp,
        &backend,
        &[("RELAY_CATCH_UP_SOURCE", "ldap")],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("RELAY_CATCH_UP_SOURCE"));
}
