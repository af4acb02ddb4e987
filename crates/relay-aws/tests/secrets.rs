//! Secrets Manager on moto: configuration from one JSON secret, rotation
//! picked up after the TTL or forced by a refused delivery (rate-limited),
//! and start-up errors that name what is wrong and never a value.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use relay_aws::{AwsRelay, SecretError, SecretSource, StartupError};

const LONG_TTL: Duration = Duration::from_secs(300);

fn delivery(secret: &str) -> String {
    let body = okta_fixture("user-lifecycle-create.json");
    v2_event(
        "POST",
        "/okta",
        "$default",
        &[
            ("Authorization", secret),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
        false,
    )
}

fn challenge(secret: &str) -> String {
    v2_event(
        "GET",
        "/okta",
        "$default",
        &[
            ("Authorization", secret),
            ("X-Okta-Verification-Challenge", "c1"),
        ],
        None,
        false,
    )
}

#[tokio::test]
async fn configuration_comes_from_the_secret_merged_over_the_environment() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    // Fetch directly: the keys are there, the Debug output has no value.
    let values = SecretSource::new(&fx.sdk, &fx.secret_id)
        .fetch()
        .await
        .unwrap();
    assert_eq!(
        values.keys().collect::<Vec<_>>(),
        ["DUO_SKEY", "OKTA_AUTH_SECRET"]
    );
    assert!(!format!("{values:?}").contains(OKTA_SECRET));
    assert!(!format!("{values:?}").contains(&fx.sim.config().skey));

    let relay = fx.relay(LONG_TTL).await;
    assert_eq!(relay.secret_fetches(), 1);
    assert!(!format!("{relay:?}").contains(OKTA_SECRET));
    let response = relay.handle(request(&challenge(OKTA_SECRET))).await;
    assert_eq!(response.status(), 200);
    // DUO_SKEY came from the secret: the signed call to Duo succeeds.
    assert_eq!(
        relay.handle(request(&delivery(OKTA_SECRET))).await.status(),
        200
    );
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());
    assert_eq!(relay.secret_fetches(), 1, "no read within the TTL");
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_after_the_ttl() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(Duration::ZERO).await;
    assert_eq!(
        relay
            .handle(request(&challenge(OKTA_SECRET)))
            .await
            .status(),
        200
    );
    let before = relay.relay();

    // Same content again: read, but the relay (and its Duo caches) is kept.
    put_secret(&fx.sdk, &fx.secret_id, &secret_json(&fx.sim, OKTA_SECRET)).await;
    assert_eq!(
        relay
            .handle(request(&challenge(OKTA_SECRET)))
            .await
            .status(),
        200
    );
    assert!(
        Arc::ptr_eq(&before, &relay.relay()),
        "unchanged secret: no rebuild"
    );

    put_secret(
        &fx.sdk,
        &fx.secret_id,
        &secret_json(&fx.sim, ROTATED_OKTA_SECRET),
    )
    .await;
    assert_eq!(
        relay
            .handle(request(&delivery(ROTATED_OKTA_SECRET)))
            .await
            .status(),
        200
    );
    assert!(
        !Arc::ptr_eq(&before, &relay.relay()),
        "changed secret: rebuilt"
    );
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());
    assert_eq!(
        relay
            .handle(request(&challenge(OKTA_SECRET)))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn a_rotation_to_an_unusable_secret_keeps_the_previous_configuration() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(Duration::ZERO).await;
    put_secret(
        &fx.sdk,
        &fx.secret_id,
        r#"{"OKTA_AUTH_SECRET":"okta-hook-rotated-fedcba9876543210"}"#,
    )
    .await;
    assert_eq!(
        relay
            .handle(request(&challenge(OKTA_SECRET)))
            .await
            .status(),
        200
    );
    put_secret(&fx.sdk, &fx.secret_id, "definitely not json").await;
    assert_eq!(
        relay
            .handle(request(&challenge(OKTA_SECRET)))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_refused_delivery_forces_one_read_and_succeeds_after_a_rotation() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(LONG_TTL).await;
    assert_eq!(relay.secret_fetches(), 1);

    // Okta was given the new secret before this instance's TTL ran out.
    put_secret(
        &fx.sdk,
        &fx.secret_id,
        &secret_json(&fx.sim, ROTATED_OKTA_SECRET),
    )
    .await;
    let response = relay.handle(request(&delivery(ROTATED_OKTA_SECRET))).await;
    assert_eq!(response.status(), 200, "handled again with the new secret");
    assert_eq!(relay.secret_fetches(), 2);
    assert!(fx.sim.user_by_username(CREATED_USER).is_some());

    // An attacker's wrong secrets: 401, and no further read within 30 s.
    for _ in 0..5 {
        let response = relay
            .handle(request(&delivery("attacker-guess-0123456789abc")))
            .await;
        assert_eq!(response.status(), 401);
    }
    assert_eq!(relay.secret_fetches(), 2, "forced reads are rate-limited");
    // A request without any secret never forces a read.
    let event = v2_event(
        "POST",
        "/okta",
        "$default",
        &[("Content-Type", "application/json")],
        Some("{}"),
        false,
    );
    assert_eq!(relay.handle(request(&event)).await.status(), 401);
    assert_eq!(relay.secret_fetches(), 2);
}

#[tokio::test]
async fn a_forced_read_with_no_rotation_still_answers_401() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(LONG_TTL).await;
    let response = relay
        .handle(request(&challenge("wrong-secret-0123456789abc")))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(relay.secret_fetches(), 2, "one forced read");
    let response = relay
        .handle(request(&challenge("wrong-secret-0123456789abc")))
        .await;
    assert_eq!(response.status(), 401);
    assert_eq!(relay.secret_fetches(), 2, "rate-limited");
}

async fn start_with_secret(fx: &Fixture, value: &str) -> StartupError {
    let id = create_secret(&fx.sdk, value).await;
    AwsRelay::start(
        plain_env(&fx.sim),
        settings(&id, &fx.table, LONG_TTL),
        SecretSource::new(&fx.sdk, &id),
        fx.store(),
        None,
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn unusable_secrets_fail_start_up_naming_the_problem_not_the_value() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let skey = fx.sim.config().skey.clone();

    let err = start_with_secret(&fx, &format!("DUO_SKEY={skey}")).await;
    assert!(
        matches!(err, StartupError::Secret(SecretError::NotJsonObject { .. })),
        "{err}"
    );
    assert!(err.to_string().starts_with("RELAY_SECRET_ID: "));
    assert!(err.to_string().contains("is not a JSON object"));
    assert!(!err.to_string().contains(&skey));

    let err = start_with_secret(&fx, &format!(r#"{{"OKTA_AUTH_SECRET":"{OKTA_SECRET}"}}"#)).await;
    assert!(err.to_string().contains("lacks the key DUO_SKEY"), "{err}");
    assert!(!err.to_string().contains(OKTA_SECRET));

    // A key the secret holds but whose value is bad: named by the relay's
    // own validation, still without the value.
    let err = start_with_secret(
        &fx,
        &format!(r#"{{"DUO_SKEY":"{skey}","OKTA_AUTH_SECRET":"short-secret"}}"#),
    )
    .await;
    assert!(
        matches!(err, StartupError::Config(ref c) if c.variable == "OKTA_AUTH_SECRET"),
        "{err}"
    );
    assert!(!err.to_string().contains("short-secret"));

    // A secret that does not exist.
    let err = AwsRelay::start(
        plain_env(&fx.sim),
        settings("no-such-secret", &fx.table, LONG_TTL),
        SecretSource::new(&fx.sdk, "no-such-secret"),
        fx.store(),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StartupError::Secret(SecretError::Unreadable { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("no-such-secret"));
}

#[tokio::test]
async fn an_unreachable_secrets_manager_fails_start_up_with_a_clear_message() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let dead = sdk("http://127.0.0.1:9").await;
    let err = AwsRelay::start(
        plain_env(&fx.sim),
        settings(&fx.secret_id, &fx.table, LONG_TTL),
        SecretSource::new(&dead, &fx.secret_id),
        fx.store(),
        None,
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("RELAY_SECRET_ID: cannot read secret"),
        "{message}"
    );
    assert!(message.contains(&fx.secret_id));
}

#[tokio::test]
async fn an_unreachable_secrets_manager_after_start_keeps_serving() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(Duration::ZERO).await;
    // The secret is deleted (or the network is gone): reads fail, the relay
    // that was built keeps answering with the secret it had.
    fx_delete_secret(&fx).await;
    assert_eq!(
        relay
            .handle(request(&challenge(OKTA_SECRET)))
            .await
            .status(),
        200
    );
    assert_eq!(relay.secret_fetches(), 2);
}

async fn fx_delete_secret(fx: &Fixture) {
    secrets_client(&fx.sdk)
        .delete_secret()
        .secret_id(&fx.secret_id)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}
