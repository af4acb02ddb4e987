//! The `reconcile` timer function as the Functions host calls it: a POST to
//! `/reconcile` with the timer's invocation document, answered 200 when Duo
//! converged and 500 otherwise, against the Duo simulator and the IdP
//! stand-in.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::sync::Arc;

use duo_sim::DuoSim;
use relay_core::config::RawConfig;
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};
use serde_json::Value;

async fn serve(raw: RawConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = relay_azure::reconcile::router(Arc::new(raw));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/{}", relay_azure::reconcile::FUNCTION_NAME)
}

/// What the host sends for a timer trigger.
fn timer_invocation() -> String {
    serde_json::json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "reconcile", "UtcNow": "2026-03-12T08:00:00Z"}}
    })
    .to_string()
}

#[tokio::test]
async fn the_timer_runs_a_reconcile_and_answers_how_it_ended() {
    let sim = DuoSim::start().await;
    let idp = IdpStandIn::start(Tenant {
        users: vec![StandInUser::new("00uANN", "ann.lee@example.com")],
        groups: vec![StandInGroup::new("00gENG", "duo-eng", &["00uANN"])],
    })
    .await;
    let mut raw = relay_tests::duo_env(&sim);
    raw.insert("RELAY_RECONCILE_SOURCE".to_owned(), "okta".to_owned());
    raw.extend(idp.okta_env());
    let http = reqwest::Client::new();

    // Dry run: drift found, nothing written, the invocation fails.
    let mut dry = raw.clone();
    dry.insert("RELAY_RECONCILE_DRY_RUN".into(), "true".into());
    let url = serve(dry).await;
    let res = http
        .post(&url)
        .body(timer_invocation())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let doc: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert!(
        doc["ReturnValue"].as_str().unwrap().starts_with("drift:"),
        "{doc}"
    );
    assert!(sim.user_by_username("ann.lee@example.com").is_none());

    // Applied: converged, 200.
    let url = serve(raw.clone()).await;
    let res = http
        .post(&url)
        .body(timer_invocation())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert_eq!(doc["Outputs"], serde_json::json!({}));
    assert!(
        doc["ReturnValue"]
            .as_str()
            .unwrap()
            .starts_with("converged"),
        "{doc}"
    );
    assert_eq!(
        sim.user_by_username("ann.lee@example.com").unwrap().groups,
        ["duo-eng"]
    );

    // The IdP failing: 500, nothing written.
    idp.fail_after("/api/v1/", 0);
    sim.reset_calls();
    let res = http
        .post(&url)
        .body(timer_invocation())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert!(sim.calls().iter().all(|c| c.method == "GET"));

    // A bad setting: 500 naming it.
    let mut bad = raw;
    bad.insert("RELAY_RECONCILE_MAX_DELETES".into(), "many".into());
    let url = serve(bad).await;
    let res = http
        .post(&url)
        .body(timer_invocation())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    let doc: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    assert!(
        doc["ReturnValue"]
            .as_str()
            .unwrap()
            .contains("RELAY_RECONCILE_MAX_DELETES"),
        "{doc}"
    );
}
