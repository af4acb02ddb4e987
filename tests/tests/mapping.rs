//! Attribute mapping (issue 17 item 1) end to end: hook deliveries through
//! the real server to the Duo simulator, the IdP stand-in serving the
//! attributes an event does not carry, and reconcile reading the same
//! mapping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::time::SystemTime;

use bytes::Bytes;
use relay_core::event::Source;
use relay_core::idp_sync::run_from_config;
use relay_core::pipeline::{EventOutcome, EventReport};
use relay_core::reconcile::{IdpKind, ReconcileOptions};
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};
use relay_tests::served::{Served, serve};
use relay_tests::{SECRET, fixture_text};
use serde_json::{Value, json};

const JANE_ID: &str = "00uNEWUSER0000000001";
const JANE_LOGIN: &str = "jane.doe@example.com";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Runs one delivery through the relay's own pipeline (as the server does)
/// and answers its per-event reports: what the summary lines say.
async fn reports(served: &Served, source: Source, body: String) -> Vec<EventReport> {
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", SECRET.parse().unwrap());
    let auth = served.relay.auth();
    let authenticated = auth
        .authenticate_headers(source, &headers, SystemTime::now())
        .unwrap();
    let verified = auth.verify_body(authenticated, Bytes::from(body)).unwrap();
    served.relay.accept_and_apply(&verified).await.unwrap()
}

fn jane_okta(employee_number: &str) -> StandInUser {
    StandInUser::new(JANE_ID, JANE_LOGIN)
        .named("Jane", "Doe")
        .attribute("employeeNumber", json!(employee_number))
}

/// Issue 17: the Duo username from a custom Okta attribute (read through
/// the Okta API, since the hook event carries only the login), alias 1 from
/// the login, and a change of that attribute renames the same Duo user
/// (found by its IdP id alias) instead of creating a second one.
#[tokio::test]
async fn okta_username_from_a_custom_attribute_and_its_rename() {
    let standin = IdpStandIn::start(Tenant {
        users: vec![jane_okta("E1001")],
        groups: vec![StandInGroup::new(
            "00gDUOUSERS000000001",
            "duo-users",
            &[JANE_ID],
        )],
    })
    .await;
    let mut extra = standin.okta_env();
    extra.extend(env(&[
        ("DUO_USERNAME_ATTRIBUTE", "okta:profile.employeeNumber"),
        ("DUO_USERNAME_LOWERCASE", "true"),
        ("DUO_ALIAS1_ATTRIBUTE", "okta:login"),
    ]));
    let served = serve(&extra).await;

    served
        .deliver("/okta", fixture_text("okta/user-lifecycle-create.json"))
        .await;
    let created = served
        .sim
        .user_by_username("e1001")
        .expect("created under the mapped username");
    assert_eq!(
        created.aliases,
        [
            Some(JANE_LOGIN.to_owned()),
            None,
            None,
            Some(format!("okta:{JANE_ID}"))
        ]
    );
    assert_eq!(created.realname, "Jane Doe");
    assert!(served.sim.user_by_username(JANE_LOGIN).is_none());

    // The attribute changes in Okta; the event says only "profile updated".
    standin.with_tenant(|t| t.users[0] = jane_okta("E2002"));
    served
        .deliver("/okta", fixture_text("okta/update-profile.json"))
        .await;
    let users = served.sim.snapshot().users;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].user_id, created.user_id);
    assert_eq!(users[0].username, "e2002");

    // A membership event (login only) finds her by her IdP id (and, the
    // API configured, makes her match the IdP: already in duo-users).
    served
        .deliver("/okta", fixture_text("okta/membership-add.json"))
        .await;
    let jane = served.sim.user_by_username("e2002").unwrap();
    assert_eq!(jane.groups, ["duo-users"]);
    assert_eq!(jane.user_id, created.user_id);
    assert_eq!(served.sim.snapshot().users.len(), 1);

    // Reconcile reads the same mapping: nothing to change.
    let mut raw = relay_tests::duo_env(&served.sim);
    raw.extend(extra.iter().cloned());
    let report = run_from_config(
        &raw,
        &ReconcileOptions {
            dry_run: true,
            ..ReconcileOptions::new(IdpKind::Okta)
        },
    )
    .await
    .unwrap();
    let c = &report.counts;
    assert_eq!(
        (c.users_create, c.users_update, c.users_delete, c.unmanaged),
        (0, 0, 0, 0),
        "{report:?}"
    );
}

/// Without the Okta API, a custom attribute cannot be known from the hook
/// event: the event is skipped with a reason naming what to set, and no Duo
/// call is made.
#[tokio::test]
async fn okta_custom_attribute_without_the_api_is_skipped_naming_what_to_set() {
    let served = serve(&env(&[(
        "DUO_USERNAME_ATTRIBUTE",
        "okta:profile.employeeNumber",
    )]))
    .await;
    let got = reports(
        &served,
        Source::Okta,
        fixture_text("okta/user-lifecycle-create.json"),
    )
    .await;
    let EventOutcome::Skipped(reason) = &got[0].outcome else {
        panic!("{:?}", got[0]);
    };
    assert!(reason.contains("profile.employeeNumber"), "{reason}");
    assert!(
        reason.contains("OKTA_ORG_URL and OKTA_API_TOKEN"),
        "{reason}"
    );
    assert_eq!(served.sim.total_calls(), 0);
}

/// Lower-casing and domain stripping of the login need no API: the hook's
/// login is enough, and later login-only events find the same user.
#[tokio::test]
async fn okta_login_stripped_of_its_domain() {
    let served = serve(&env(&[
        ("DUO_USERNAME_STRIP_DOMAIN", "true"),
        ("DUO_USERNAME_LOWERCASE", "true"),
    ]))
    .await;
    served
        .deliver("/okta", fixture_text("okta/user-lifecycle-create.json"))
        .await;
    served
        .deliver("/okta", fixture_text("okta/suspend.json"))
        .await;
    let users = served.sim.snapshot().users;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].username, "jane.doe");
    assert_eq!(users[0].status, "disabled");
}

fn auth0_created(app_metadata: Value) -> String {
    let mut body: Value = serde_json::from_str(&fixture_text("auth0/user-created.json")).unwrap();
    body["data"]["object"]["app_metadata"] = app_metadata;
    body.to_string()
}

/// Auth0 Event Streams carry the whole user object: a username from
/// `app_metadata` needs no API, and a `user.updated` that changes only that
/// attribute renames the same Duo user.
#[tokio::test]
async fn auth0_username_from_app_metadata_and_its_rename() {
    let served = serve(&env(&[
        ("DUO_USERNAME_ATTRIBUTE", "auth0:app_metadata.duo.username"),
        ("DUO_EMAIL_ATTRIBUTE", "auth0:email"),
        ("DUO_REALNAME_ATTRIBUTE", "auth0:nickname"),
    ]))
    .await;
    served
        .deliver(
            "/auth0",
            auth0_created(json!({"duo": {"username": "jdoe"}})),
        )
        .await;
    let created = served
        .sim
        .user_by_username("jdoe")
        .expect("mapped username");
    assert_eq!(created.realname, "jane.doe");
    assert_eq!(created.email, JANE_LOGIN);

    let mut updated: Value =
        serde_json::from_str(&auth0_created(json!({"duo": {"username": "jdoe2"}}))).unwrap();
    updated["id"] = json!("evt_rename_1");
    updated["type"] = json!("user.updated");
    updated["time"] = json!("2026-03-11T09:10:00.000Z");
    let mut previous = updated["data"]["object"].clone();
    previous["app_metadata"] = json!({"duo": {"username": "jdoe"}});
    updated["data"]["previous_object"] = previous;
    served.deliver("/auth0", updated.to_string()).await;
    let users = served.sim.snapshot().users;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].user_id, created.user_id);
    assert_eq!(users[0].username, "jdoe2");

    // A user without the attribute is not synced, and the reason says so.
    let mut other: Value = serde_json::from_str(&auth0_created(json!({}))).unwrap();
    other["id"] = json!("evt_other_1");
    other["data"]["object"]["user_id"] = json!("auth0|other");
    let got = reports(&served, Source::Auth0Events, other.to_string()).await;
    let EventOutcome::Skipped(reason) = &got[0].outcome else {
        panic!("{:?}", got[0]);
    };
    assert!(reason.contains("app_metadata.duo.username"), "{reason}");
    assert!(
        reason.contains("not synced until the user has it"),
        "{reason}"
    );
}

/// Without mapping settings, an Auth0 `user.updated` that changes only
/// `app_metadata` costs no Duo call, as before the mapping existed.
#[tokio::test]
async fn without_mapping_an_app_metadata_change_is_nothing_to_do() {
    let served = serve(&[]).await;
    served
        .deliver("/auth0", auth0_created(json!({"a": 1})))
        .await;
    served.sim.reset_calls();
    let mut updated: Value = serde_json::from_str(&auth0_created(json!({"a": 2}))).unwrap();
    updated["id"] = json!("evt_meta_1");
    updated["type"] = json!("user.updated");
    let mut previous = updated["data"]["object"].clone();
    previous["app_metadata"] = json!({"a": 1});
    updated["data"]["previous_object"] = previous;
    let got = reports(&served, Source::Auth0Events, updated.to_string()).await;
    assert!(
        matches!(&got[0].outcome, EventOutcome::Skipped(r) if r.contains("no relevant change")),
        "{got:?}"
    );
    assert_eq!(served.sim.total_calls(), 0);
}

/// A bad mapping setting stops start-up naming the variable.
#[test]
fn bad_mapping_settings_stop_start_up_naming_the_variable() {
    let raw = relay_core::config::from_pairs(&[("DUO_FIRSTNAME_ATTRIBUTE", "okta:given_name")]);
    let err = relay_core::plan::PlanRules::from_config(&raw).unwrap_err();
    assert_eq!(err.variable, "DUO_FIRSTNAME_ATTRIBUTE");
    assert!(err.problem.contains("profile.<path>"), "{err}");
}
