//! Scope by IdP group (issue 17 item 2): with `SCOPE_GROUPS`, only members
//! of those IdP groups are synced. Joining provisions, leaving deprovisions
//! (`DEPROVISION_ACTION`), a user outside is never created and an account
//! that is not the relay's is never touched; reconcile reports who is out
//! of scope. Hook deliveries go through the real server to the Duo
//! simulator; the IdP stand-in answers the user's groups.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use duo_sim::{Seed, SeedUser};
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{IdpKind, ReconcileOptions};
use relay_tests::fixture_text;
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};
use relay_tests::served::serve;
use serde_json::{Value, json};

const JANE_ID: &str = "00uNEWUSER0000000001";
const JANE: &str = "jane.doe@example.com";
const SCOPE_ID: &str = "00gDUOUSERS000000001";

fn tenant(jane_in_scope: bool) -> Tenant {
    Tenant {
        users: vec![StandInUser::new(JANE_ID, JANE).named("Jane", "Doe")],
        groups: vec![
            StandInGroup::new(
                SCOPE_ID,
                "duo-users",
                if jane_in_scope { &[JANE_ID] } else { &[] },
            ),
            StandInGroup::new("00gFINANCE0000000002", "Finance", &[JANE_ID]),
        ],
    }
}

/// Okta's membership removal, from the scope group.
fn leave_scope() -> String {
    let mut body: Value =
        serde_json::from_str(&fixture_text("okta/membership-remove.json")).unwrap();
    let targets = body["data"]["events"][0]["target"].as_array_mut().unwrap();
    for t in targets.iter_mut().filter(|t| t["type"] == "UserGroup") {
        t["id"] = json!(SCOPE_ID);
        t["displayName"] = json!("duo-users");
    }
    body.to_string()
}

async fn journey(deprovision: &str) -> (Option<duo_sim::SimUser>, usize) {
    let standin = IdpStandIn::start(tenant(false)).await;
    let mut extra = standin.okta_env();
    extra.push(("SCOPE_GROUPS".into(), "duo-users".into()));
    extra.push(("DEPROVISION_ACTION".into(), deprovision.into()));
    // Okta only: SCOPE_GROUPS needs the API of every IdP whose hook is on.
    extra.push(("AUTH0_AUTH_SECRET".into(), String::new()));
    let served = serve(&extra).await;

    // Created in Okta, not in the scope group: never created in Duo.
    served
        .deliver("/okta", fixture_text("okta/user-lifecycle-create.json"))
        .await;
    served
        .deliver("/okta", fixture_text("okta/suspend.json"))
        .await;
    assert!(served.sim.snapshot().users.is_empty());
    let writes_outside = served
        .sim
        .calls()
        .iter()
        .filter(|c| c.method != "GET")
        .count();
    assert_eq!(writes_outside, 0);

    // Joins the scope group: provisioned (active, with the group).
    standin.with_tenant(|t| *t = tenant(true));
    served
        .deliver("/okta", fixture_text("okta/membership-add.json"))
        .await;
    let jane = served
        .sim
        .user_by_username(JANE)
        .expect("provisioned on joining");
    assert_eq!(jane.status, "active");
    assert!(jane.groups.contains(&"duo-users".to_owned()), "{jane:?}");
    assert_eq!(
        jane.aliases[3].as_deref(),
        Some("okta:00uNEWUSER0000000001")
    );

    // Leaves it: deprovisioned.
    standin.with_tenant(|t| *t = tenant(false));
    served.deliver("/okta", leave_scope()).await;
    (
        served.sim.user_by_username(JANE),
        served.sim.snapshot().users.len(),
    )
}

#[tokio::test]
async fn joining_provisions_and_leaving_deprovisions() {
    let (jane, users) = journey("delete").await;
    assert!(jane.is_none(), "{jane:?}");
    assert_eq!(users, 0);
    let (jane, _) = journey("disable").await;
    assert_eq!(jane.unwrap().status, "disabled");
}

/// An account of a user outside the scope that is not the relay's (no IdP
/// id) is never touched, by events or by reconcile with
/// `--include-unmanaged`; reconcile lists the user as out of scope, and
/// provisions the one in scope.
#[tokio::test]
async fn users_outside_are_never_touched_and_reconcile_reports_them() {
    let mut t = tenant(false);
    t.users.push(StandInUser::new("00uANN", "ann@example.com"));
    t.groups[0].members = vec!["00uANN".into()];
    let standin = IdpStandIn::start(t).await;
    let mut extra = standin.okta_env();
    extra.push(("SCOPE_GROUPS".into(), SCOPE_ID.into()));
    extra.push(("AUTH0_AUTH_SECRET".into(), String::new()));
    let served = serve(&extra).await;
    served.sim.seed(Seed {
        users: vec![SeedUser {
            username: JANE.into(),
            realname: "Hand Made".into(),
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
    let before = served.sim.user_by_username(JANE).unwrap();
    for fixture in [
        "okta/update-profile.json",
        "okta/suspend.json",
        "okta/factor-reset-all.json",
        "okta/delete-initiated.json",
    ] {
        served.deliver("/okta", fixture_text(fixture)).await;
    }
    assert_eq!(served.sim.user_by_username(JANE), Some(before.clone()));

    let mut raw = relay_tests::duo_env(&served.sim);
    raw.extend(extra.iter().cloned());
    let report = run_from_config(
        &raw,
        &ReconcileOptions {
            include_unmanaged: true,
            ..ReconcileOptions::new(IdpKind::Okta)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        report
            .out_of_scope
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        [JANE],
        "{}",
        report.render_table()
    );
    assert_eq!(report.counts.out_of_scope, 1);
    assert_eq!(served.sim.user_by_username(JANE), Some(before));
    assert!(served.sim.user_by_username("ann@example.com").is_some());
    assert_eq!(report.counts.users_create, 1);
    assert_eq!(report.counts.users_delete, 0);
}

/// Reconcile deprovisions the relay's account of a user who left the scope
/// while no event said so.
#[tokio::test]
async fn reconcile_deprovisions_a_user_who_left_the_scope() {
    let standin = IdpStandIn::start(tenant(false)).await;
    let sim = duo_sim::DuoSim::start().await;
    sim.seed(Seed {
        users: vec![SeedUser {
            username: JANE.into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("okta:{JANE_ID}"),
            ],
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
    let mut raw = relay_tests::duo_env(&sim);
    raw.extend(standin.okta_env());
    raw.insert("SCOPE_GROUPS".into(), "duo-users".into());
    let report = run_from_config(&raw, &ReconcileOptions::new(IdpKind::Okta))
        .await
        .unwrap();
    assert_eq!(report.counts.users_delete, 1, "{}", report.render_table());
    assert!(sim.user_by_username(JANE).is_none());
}

/// `SCOPE_GROUPS` needs the API of every IdP whose hook is configured.
#[test]
fn scope_without_the_idp_api_stops_start_up() {
    let raw = relay_core::config::from_pairs(&[
        ("DUO_API_HOST", "api-x.duosecurity.com"),
        ("DUO_IKEY", "DIXXXXXXXXXXXXXXXXXX"),
        ("DUO_SKEY", "0123456789012345678901234567890123456789"),
        ("OKTA_AUTH_SECRET", "0123456789abcdef0123"),
        ("SCOPE_GROUPS", "duo-users"),
    ]);
    let (retry, timeout) = relay_core::pipeline::sync_retry();
    let err = relay_core::pipeline::duo_relay(
        &raw,
        relay_core::store::MemoryStore::default(),
        retry,
        timeout,
    )
    .unwrap_err();
    assert_eq!(err.variable, "SCOPE_GROUPS");
    assert!(err.problem.contains("OKTA_ORG_URL"), "{err}");
}
