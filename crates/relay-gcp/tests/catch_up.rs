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

/// `RELAY_CATCH_UP_SOURCE=entra`: the job catches up from Microsoft Graph
/// (the stand-in) with the deltaLinks in Firestore — a full resync the
/// first time, then only what changed — and a refused credential is a
/// failed execution (exit 4) with no Duo call.
#[tokio::test(flavor = "multi_thread")]
async fn the_job_catches_up_entra_by_delta_query_with_the_links_in_firestore() {
    use relay_tests::graph_standin::{GraphStandIn, GraphUser};

    const ADA: &str = "0a1b2c3d-0000-4000-8000-0000000a0c01";
    const BOB: &str = "0a1b2c3d-0000-4000-8000-0000000a0c02";
    let backend = Backend::best().await;
    let sim = DuoSim::start().await;
    let idp = IdpStandIn::start(Default::default()).await;
    let graph = GraphStandIn::start(
        vec![
            GraphUser::new(ADA, "ada.gcp@contoso.com"),
            GraphUser::new(BOB, "bob.gcp@contoso.com"),
        ],
        Vec::new(),
    )
    .await;
    let mut entra: Vec<(String, String)> = graph.env();
    entra.push(("RELAY_CATCH_UP_SOURCE".into(), "entra".into()));
    let extra: Vec<(&str, &str)> = entra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let out = run(command(&sim, &idp, &backend, &extra)).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = summary(&out);
    assert_eq!(
        (&line["source"], &line["status"], &line["cursor_fallback"]),
        (&"entra".into(), &"caught_up".into(), &true.into()),
        "{line}"
    );
    assert!(sim.user_by_username("ada.gcp@contoso.com").is_some());
    assert!(sim.user_by_username("bob.gcp@contoso.com").is_some());
    let doc = backend
        .read_doc(DEFAULT_COLLECTION, "checkpoint.ZW50cmEtZGVsdGEtdXNlcnM")
        .await
        .expect("the users deltaLink document");
    let body = doc["fields"]["checkpoint"]["stringValue"].as_str().unwrap();
    assert!(body.contains("/v1.0/users/delta"), "{body}");

    // Bob is disabled in Entra: the next execution reads one change.
    let mut bob = GraphUser::new(BOB, "bob.gcp@contoso.com");
    bob.enabled = false;
    graph.put_user(bob);
    let out = run(command(&sim, &idp, &backend, &extra)).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let line = summary(&out);
    assert_eq!(
        (&line["records"], &line["new"], &line["cursor_fallback"]),
        (&1.into(), &1.into(), &false.into()),
        "{line}"
    );
    assert_eq!(
        sim.user_by_username("bob.gcp@contoso.com").unwrap().status,
        "disabled"
    );

    // The service's `missed` lifecycle notification catches up from the
    // same deltaLinks in Firestore: only Ada's change is read (2 delta
    // pages + her user and memberOf), no resync.
    let cfg = sim.config();
    let mut env = backend.env();
    env.extend(graph.env());
    env.extend([
        ("DUO_API_HOST".to_owned(), cfg.host.clone()),
        ("DUO_IKEY".to_owned(), cfg.ikey.clone()),
        ("DUO_SKEY".to_owned(), cfg.skey.clone()),
        ("DUO_API_URL".to_owned(), sim.base_url()),
        ("DUO_RATE_PER_MINUTE".to_owned(), "off".to_owned()),
    ]);
    let mut service = common::RelayProcess::spawn(&env);
    service.wait_healthy().await;
    let mut ada = GraphUser::new(ADA, "ada.gcp@contoso.com");
    ada.enabled = false;
    graph.put_user(ada);
    graph.reset_requests();
    let missed = GraphStandIn::lifecycle_notification(
        "missed",
        "7f105c7d-0000-4000-8000-0000000000c1",
        relay_tests::graph_standin::CLIENT_STATE,
    );
    let answer = reqwest::Client::new()
        .post(service.url("/entra"))
        .header("Content-Type", "application/json")
        .body(missed)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", service.output());
    assert_eq!(
        sim.user_by_username("ada.gcp@contoso.com").unwrap().status,
        "disabled"
    );
    let paths: Vec<String> = graph.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths.iter().filter(|p| p.ends_with("/delta")).count(),
        2,
        "{paths:?}"
    );
    // Not a resync (baseline links, then every user and group listed).
    let graph_reads: Vec<&String> = paths.iter().filter(|p| !p.ends_with("/token")).collect();
    assert_eq!(graph_reads.len(), 4, "{paths:?}");

    // A refused client secret: a failed execution, nothing in Duo.
    sim.reset_calls();
    let mut refused = extra.clone();
    refused.push(("ENTRA_CLIENT_SECRET", "not-the-secret"));
    let out = run(command(&sim, &idp, &backend, &refused)).await;
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert_eq!(summary(&out)["status"], "idp_failed");
    assert_eq!(sim.total_calls(), 0);
}
