//! The scheduled catch-up as EventBridge Scheduler invokes it:
//! `{"relay_task":"catch_up",…}` to the function, with the IdP token in the
//! Secrets Manager secret and the checkpoint in the DynamoDB table (moto),
//! against the Duo simulator and the IdP stand-in's System Log.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use relay_aws::{AwsRelay, SecretSource};
use relay_tests::idp_standin::{IdpStandIn, StandInUser, Tenant, now_ms, okta_user_log_event};
use serde_json::json;

const USER: &str = "00uCATCHUPAWS0000001";
const LOGIN: &str = "cat.aws@example.com";

#[tokio::test]
async fn a_catch_up_task_applies_what_the_hook_missed_and_keeps_its_checkpoint_in_dynamodb() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let idp = IdpStandIn::start(Tenant {
        users: vec![StandInUser::new(USER, LOGIN)],
        groups: vec![],
    })
    .await;
    let t0 = now_ms() - 10 * 60_000;
    idp.push_okta_log(okta_user_log_event(
        "aws00000-0000-4000-8000-000000000001",
        t0,
        "user.lifecycle.create",
        USER,
        LOGIN,
    ));
    // The API token lives in the secret, the org URL in the environment,
    // as the Terraform module sets them.
    let secret_id = create_secret(&fx.sdk, &okta_api_secret_json(&fx.sim)).await;
    let mut env = plain_env(&fx.sim);
    env.insert("OKTA_ORG_URL".into(), idp.base_url());
    let start = || {
        AwsRelay::start(
            env.clone(),
            settings(&secret_id, &fx.table, Duration::from_secs(300)),
            SecretSource::new(&fx.sdk, &secret_id),
            fx.store(),
            None,
        )
    };
    let relay = start().await.unwrap();

    // The missed create is applied (the source defaults to Okta, whose API
    // is configured).
    let answer = relay
        .invoke(json!({"relay_task": "catch_up"}), None)
        .await
        .unwrap();
    assert_eq!(answer["status"], "caught_up", "{answer}");
    assert_eq!(
        (answer["records"].as_u64(), answer["new"].as_u64()),
        (Some(1), Some(1))
    );
    assert!(fx.sim.user_by_username(LOGIN).is_some());

    // The checkpoint is in the table, where another function instance
    // finds it: nothing new, no Duo call.
    let item = relay_aws::dynamodb_client(&fx.sdk)
        .get_item()
        .table_name(&fx.table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("cp#okta".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(item["checkpoint"].as_s().unwrap().contains("last_event_ms"));
    let other = start().await.unwrap();
    let answer = other
        .invoke(json!({"relay_task": "catch_up", "source": "okta"}), None)
        .await
        .unwrap();
    assert_eq!(
        (answer["records"].as_u64(), answer["duo_calls"].as_u64()),
        (Some(0), Some(0)),
        "{answer}"
    );

    // A later event, missed too, is read from the checkpoint on.
    idp.push_okta_log(okta_user_log_event(
        "aws00000-0000-4000-8000-000000000002",
        t0 + 60_000,
        "user.lifecycle.suspend",
        USER,
        LOGIN,
    ));
    idp.with_tenant(|t| t.users[0] = StandInUser::new(USER, LOGIN).status("SUSPENDED"));
    let answer = relay
        .invoke(json!({"relay_task": "catch_up"}), None)
        .await
        .unwrap();
    assert_eq!(
        (answer["records"].as_u64(), answer["new"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(fx.sim.user_by_username(LOGIN).unwrap().status, "disabled");

    // Reading the log fails: the invocation fails (the run-failed alarm),
    // naming the status.
    idp.fail_after("/api/v1/logs", 0);
    let err = relay
        .invoke(json!({"relay_task": "catch_up"}), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("catch-up okta idp_failed"),
        "{err}"
    );

    // A bad task field is named; an unknown task too.
    let err = relay
        .invoke(json!({"relay_task": "catch_up", "source": "ldap"}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source"), "{err}");
    let err = relay
        .invoke(json!({"relay_task": "catchup"}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("catch_up"), "{err}");
}
