//! The `catch_up` timer function as the Functions host calls it: the real
//! `relay-azure` binary, a POST of the timer's invocation document to
//! `/catch_up`, the Table Storage store on Azurite, against the Duo
//! simulator and the IdP stand-in's System Log. Answered 200 when the run
//! read the log to its end, 500 when it failed; the checkpoint is in the
//! table.

use std::time::Instant;

use duo_sim::DuoSim;
use relay_azure::catch_up::FUNCTION_NAME;
use relay_tests::idp_standin::IdpStandIn;
use serde_json::Value;

use crate::common::{
    DEV_KEY, Handler, app_settings, azurite, connection_string, free_port, fresh_table, settings,
    wait_ready,
};

const USER: &str = "00uCATCHUPAZ00000001";
const LOGIN: &str = "cat.azure@example.com";

fn timer_invocation() -> String {
    serde_json::json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": FUNCTION_NAME, "UtcNow": "2026-12-04T08:00:00Z"}}
    })
    .to_string()
}

async fn post(http: &reqwest::Client, url: &str) -> (u16, String) {
    let res = http
        .post(url)
        .body(timer_invocation())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let doc: Value = serde_json::from_slice(&res.bytes().await.unwrap()).unwrap();
    (status, doc["ReturnValue"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_timer_runs_a_catch_up_from_the_checkpoint_in_the_table() {
    let Some(url) = azurite() else { return };
    let sim = DuoSim::start().await;
    let idp =
        IdpStandIn::with_missed_okta_create(USER, LOGIN, "az000000-0000-4000-8000-000000000001")
            .await;
    let port = free_port();
    let table = fresh_table();
    let mut env = app_settings(&sim, port, &connection_string(&url), &table);
    env.extend(idp.okta_env());
    env.insert("RELAY_CATCH_UP_SOURCE".into(), "okta".into());
    let started = Instant::now();
    let mut handler = Handler::spawn(&env);
    wait_ready(&mut handler, port, started).await;
    let endpoint = format!("http://127.0.0.1:{port}/{FUNCTION_NAME}");
    let http = reqwest::Client::new();

    // The missed create is applied.
    let (status, outcome) = post(&http, &endpoint).await;
    assert_eq!(status, 200, "{outcome}\n{}", handler.logs());
    assert!(
        outcome.starts_with("catch-up okta caught_up: 1 records, 1 new"),
        "{outcome}"
    );
    assert!(sim.user_by_username(LOGIN).is_some());

    // The checkpoint is in the table (where another instance looks), and
    // the summary line with its lag is in the handler's log.
    let store = relay_azure::TableStore::new(settings(&url, &table, DEV_KEY)).unwrap();
    let stored = relay_core::catch_up::CheckpointStore::load(&store.checkpoints(), "okta")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.cursor.is_some() && stored.caught_up_ms.is_some(),
        "{stored:?}"
    );
    let line = handler
        .logs()
        .lines()
        .find(|l| l.contains(r#""message":"catch_up""#))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains(r#""checkpoint_lag_s":"#), "{line}");

    // A second run reads nothing again.
    let (status, outcome) = post(&http, &endpoint).await;
    assert_eq!(status, 200, "{outcome}");
    assert!(outcome.contains(": 0 records, 0 new"), "{outcome}");

    // Reading the log fails: 500, the host counts a failed invocation.
    idp.fail_after("/api/v1/logs", 0);
    let (status, outcome) = post(&http, &endpoint).await;
    assert_eq!(status, 500, "{outcome}");
    assert!(outcome.contains("idp_failed"), "{outcome}");
}
