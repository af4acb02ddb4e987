//! The scheduled reconcile as EventBridge Scheduler invokes it:
//! `{"relay_task":"reconcile",…}` to the function, with the IdP token in
//! the Secrets Manager secret (moto), against the Duo simulator and the IdP
//! stand-in.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use relay_aws::{AwsRelay, SecretSource};
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};
use serde_json::json;

#[tokio::test]
async fn a_reconcile_task_converges_duo_and_fails_while_drift_is_left() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let idp = IdpStandIn::start(Tenant {
        users: vec![StandInUser::new("00uANN", "ann.lee@example.com")],
        groups: vec![StandInGroup::new("00gENG", "duo-eng", &["00uANN"])],
    })
    .await;
    // The API token lives in the secret, the org URL in the environment,
    // as the Terraform module sets them.
    let secret_id = create_secret(&fx.sdk, &okta_api_secret_json(&fx.sim)).await;
    let mut env = plain_env(&fx.sim);
    env.insert("OKTA_ORG_URL".into(), idp.base_url());
    let relay = AwsRelay::start(
        env,
        settings(&secret_id, &fx.table, Duration::from_secs(300)),
        SecretSource::new(&fx.sdk, &secret_id),
        fx.store(),
        None,
    )
    .await
    .unwrap();

    // A dry run finds the drift: the invocation fails, nothing is written.
    let err = relay
        .invoke(
            json!({"relay_task": "reconcile", "source": "okta", "dry_run": true}),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("drift: 3 actions"), "{err}");
    assert!(fx.sim.user_by_username("ann.lee@example.com").is_none());

    // Applied (the source defaults to Okta, whose API is configured).
    let answer = relay
        .invoke(json!({"relay_task": "reconcile"}), None)
        .await
        .unwrap();
    assert_eq!(answer["status"], "converged", "{answer}");
    assert_eq!(answer["counts"]["users_create"], 1);
    assert_eq!(
        fx.sim
            .user_by_username("ann.lee@example.com")
            .unwrap()
            .groups,
        ["duo-eng"]
    );

    // The cap: a ghost to delete with max_deletes 0 fails, applies nothing.
    fx.sim.seed(duo_sim::Seed {
        groups: vec![],
        users: vec![duo_sim::SeedUser {
            username: "ghost@example.com".into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                "okta:00uGHOST".into(),
            ],
            ..duo_sim::SeedUser::default()
        }],
    });
    let err = relay
        .invoke(json!({"relay_task": "reconcile", "max_deletes": 0}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--max-deletes 0"), "{err}");
    assert!(fx.sim.user_by_username("ghost@example.com").is_some());

    // A bad task field is named.
    let err = relay
        .invoke(json!({"relay_task": "reconcile", "source": "ldap"}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source"), "{err}");
}
