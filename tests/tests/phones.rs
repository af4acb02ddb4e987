//! Phones (issue 17 item 3): the user's mobile number from a mapped
//! attribute, normalized to E.164, pre-provisioned in Duo — created and
//! attached only when the user has no such phone, replaced when the IdP
//! number changes (only the relay's phone is detached), never re-added
//! after an MFA reset unless `DUO_PHONE_READD`. Auth0 Event Streams (which
//! carry `phone_number`) through the real server to the Duo simulator,
//! which verifies every signature and refuses a number that is not E.164.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use relay_tests::{TestRelay, fixture_text};
use serde_json::{Value, json};

const JANE: &str = "jane.doe@example.com";

fn created(phone: &str) -> String {
    let mut body: Value = serde_json::from_str(&fixture_text("auth0/user-created.json")).unwrap();
    body["data"]["object"]["phone_number"] = json!(phone);
    body.to_string()
}

/// A `user.updated` (id `evt`) whose object has `phone` and `name`, with a
/// previous object that had `before`.
fn updated(evt: &str, phone: &str, before: &str, name: &str) -> String {
    let mut body: Value = serde_json::from_str(&created(phone)).unwrap();
    body["id"] = json!(evt);
    body["type"] = json!("user.updated");
    // Later events, later times (stale-event protection orders them).
    let minute = match evt {
        "evt_name" => 10,
        "evt_phone" => 20,
        "evt_bad" => 30,
        _ => 40,
    };
    body["time"] = json!(format!("2026-03-11T09:{minute:02}:00.000Z"));
    body["data"]["object"]["name"] = json!(name);
    let mut previous = body["data"]["object"].clone();
    previous["phone_number"] = json!(before);
    previous["name"] = json!("Jane Doe");
    body["data"]["previous_object"] = previous;
    body.to_string()
}

fn numbers(relay: &TestRelay) -> Vec<(String, String)> {
    relay
        .sim
        .user_by_username(JANE)
        .unwrap()
        .phones
        .into_iter()
        .map(|p| (p.number, p.name))
        .collect()
}

/// Duo calls of the last delivery, by route.
fn calls(relay: &TestRelay) -> Vec<String> {
    relay.sim.calls().into_iter().map(|c| c.route).collect()
}

#[tokio::test]
async fn phone_created_not_duplicated_updated_and_bad_numbers_skipped() {
    let relay = TestRelay::start_with(&[("DUO_PHONE_ATTRIBUTE", "auth0:phone_number")]).await;

    // Created with the user, normalized.
    let ok = relay.deliver("/auth0", created("+1 (555) 010-0199")).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        numbers(&relay),
        [("+15550100199".to_owned(), "idp-duo-relay".to_owned())]
    );
    assert_eq!(
        calls(&relay),
        [
            "GET /admin/v1/users",
            "POST /admin/v1/users",
            "GET /admin/v1/phones",
            "POST /admin/v1/phones",
            "POST /admin/v1/users/{user_id}/phones",
        ]
    );

    // A change of something else: the phone is there, nothing added.
    relay.sim.reset_calls();
    relay
        .deliver(
            "/auth0",
            updated(
                "evt_name",
                "+1 555 010 0199",
                "+1 555 010 0199",
                "Jane Q. Doe",
            ),
        )
        .await;
    assert_eq!(numbers(&relay).len(), 1);
    assert_eq!(
        calls(&relay),
        ["GET /admin/v1/users", "POST /admin/v1/users/{user_id}"]
    );

    // The number changes in Auth0: the new phone attached, the relay's old
    // one detached (kept in Duo, detached only).
    relay.sim.reset_calls();
    relay
        .deliver(
            "/auth0",
            updated(
                "evt_phone",
                "+44 20 7946 0018",
                "+1 555 010 0199",
                "Jane Q. Doe",
            ),
        )
        .await;
    assert_eq!(
        numbers(&relay),
        [("+442079460018".to_owned(), "idp-duo-relay".to_owned())]
    );
    assert!(
        relay
            .sim
            .snapshot()
            .phones
            .iter()
            .any(|p| p.number == "+15550100199")
    );
    assert_eq!(
        calls(&relay),
        [
            "GET /admin/v1/users",
            "GET /admin/v1/phones",
            "POST /admin/v1/phones",
            "POST /admin/v1/users/{user_id}/phones",
            "DELETE /admin/v1/users/{user_id}/phones/{phone_id}",
        ]
    );

    // A number that is not one: the user is updated, no phone call, the
    // phone stays.
    relay.sim.reset_calls();
    relay
        .deliver(
            "/auth0",
            updated(
                "evt_bad",
                "call me maybe",
                "+44 20 7946 0018",
                "Jane B. Doe",
            ),
        )
        .await;
    assert_eq!(numbers(&relay).len(), 1);
    assert_eq!(
        relay.sim.user_by_username(JANE).unwrap().realname,
        "Jane B. Doe"
    );
    assert!(
        calls(&relay).iter().all(|c| !c.contains("phones")),
        "{:?}",
        calls(&relay)
    );
}

/// A user the relay creates with a national number and no default region:
/// created, no phone (the reason is logged); with `DUO_PHONE_DEFAULT_REGION`
/// the same number gets its calling code.
#[tokio::test]
async fn national_numbers_need_a_default_region() {
    let relay = TestRelay::start_with(&[("DUO_PHONE_ATTRIBUTE", "auth0:phone_number")]).await;
    relay.deliver("/auth0", created("020 7946 0018")).await;
    assert!(numbers(&relay).is_empty());
    let relay = TestRelay::start_with(&[
        ("DUO_PHONE_ATTRIBUTE", "auth0:phone_number"),
        ("DUO_PHONE_DEFAULT_REGION", "GB"),
    ])
    .await;
    relay.deliver("/auth0", created("020 7946 0018")).await;
    assert_eq!(
        numbers(&relay),
        [("+442079460018".to_owned(), "idp-duo-relay".to_owned())]
    );
}

/// After an MFA reset (which detaches every phone), a later profile event
/// does not put the phone back — unless `DUO_PHONE_READD=true`.
#[tokio::test]
async fn no_readd_after_an_mfa_reset_unless_configured() {
    for (readd, expected) in [("false", 0), ("true", 1)] {
        let relay = TestRelay::start_with(&[
            ("DUO_PHONE_ATTRIBUTE", "auth0:phone_number"),
            ("DUO_PHONE_READD", readd),
        ])
        .await;
        relay.deliver("/auth0", created("+15550100199")).await;
        assert_eq!(numbers(&relay).len(), 1);
        let reset = relay
            .deliver("/auth0/logs", fixture_text("auth0/logs-mfa-reset.json"))
            .await;
        assert_eq!(reset.status(), 200);
        assert!(numbers(&relay).is_empty(), "the reset detached it");
        relay
            .deliver(
                "/auth0",
                updated(
                    "evt_after_reset",
                    "+15550100199",
                    "+15550100199",
                    "Jane R. Doe",
                ),
            )
            .await;
        assert_eq!(numbers(&relay).len(), expected, "DUO_PHONE_READD={readd}");
    }
}

/// A phone number Duo already has (another user's) is attached, not
/// created twice.
#[tokio::test]
async fn an_existing_phone_is_attached_not_duplicated() {
    let relay = TestRelay::start_with(&[("DUO_PHONE_ATTRIBUTE", "auth0:phone_number")]).await;
    relay.sim.seed(duo_sim::Seed {
        users: vec![duo_sim::SeedUser {
            username: "desk@example.com".into(),
            phones: 1,
            ..duo_sim::SeedUser::default()
        }],
        ..duo_sim::Seed::default()
    });
    let shared = relay.sim.snapshot().phones[0].number.clone();
    relay.deliver("/auth0", created(&shared)).await;
    assert_eq!(relay.sim.snapshot().phones.len(), 1);
    assert_eq!(numbers(&relay).len(), 1);
}

/// A bad phone setting stops start-up naming the variable.
#[test]
fn bad_phone_settings_name_the_variable() {
    for (name, value) in [
        ("DUO_PHONE_DEFAULT_REGION", "Atlantis"),
        ("DUO_PHONE_READD", "sometimes"),
        ("DUO_PHONE_ATTRIBUTE", "okta:mobile"),
    ] {
        let raw = relay_core::config::from_pairs(&[(name, value)]);
        let err = relay_core::plan::PlanRules::from_config(&raw).unwrap_err();
        assert_eq!(err.variable, name, "{err}");
    }
}

/// Reconcile provisions the mapped phone of a user it creates (Okta
/// `profile.mobilePhone`, read through the stand-in's Users API).
#[tokio::test]
async fn reconcile_creates_the_user_with_its_phone() {
    use relay_core::idp_sync::run_from_config;
    use relay_core::reconcile::{IdpKind, ReconcileOptions};
    use relay_tests::idp_standin::{IdpStandIn, StandInUser, Tenant};
    let standin = IdpStandIn::start(Tenant {
        users: vec![
            StandInUser::new("00uANN", "ann@example.com")
                .attribute("mobilePhone", json!("(555) 010-0142")),
        ],
        ..Tenant::default()
    })
    .await;
    let sim = duo_sim::DuoSim::start().await;
    let mut raw = relay_tests::duo_env(&sim);
    raw.extend(standin.okta_env());
    raw.insert(
        "DUO_PHONE_ATTRIBUTE".into(),
        "okta:profile.mobilePhone".into(),
    );
    raw.insert("DUO_PHONE_DEFAULT_REGION".into(), "US".into());
    let report = run_from_config(&raw, &ReconcileOptions::new(IdpKind::Okta))
        .await
        .unwrap();
    assert_eq!(report.counts.users_create, 1, "{}", report.render_table());
    let ann = sim.user_by_username("ann@example.com").unwrap();
    assert_eq!(ann.phones.len(), 1);
    assert_eq!(ann.phones[0].number, "+15550100142");
    // A second run finds nothing to do.
    let again = run_from_config(&raw, &ReconcileOptions::new(IdpKind::Okta))
        .await
        .unwrap();
    assert_eq!(again.counts.users_update, 0, "{}", again.render_table());
}
