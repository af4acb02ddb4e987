//! Every event type end to end: real HTTP to the relay's router, the relay
//! applying to the Duo simulator, assertions on the simulator's state and on
//! the number of Duo calls.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use duo_sim::{Faults, Seed, SeedUser};
use relay_tests::{TestRelay, fixture_text};

const JANE: &str = "jane.doe@example.com";

async fn ok(relay: &TestRelay, path: &str, fixture: &str) {
    let res = relay.deliver_fixture(path, fixture).await;
    assert_eq!(res.status(), 200, "{fixture}");
}

fn status(relay: &TestRelay, username: &str) -> String {
    relay.sim.user_by_username(username).unwrap().status
}

#[tokio::test]
async fn okta_user_journey_out_of_order_and_duplicated() {
    let relay = TestRelay::start().await;
    // The membership arrives before the create: the user is created on demand.
    ok(&relay, "/okta", "okta/membership-add.json").await;
    let jane = relay.sim.user_by_username(JANE).unwrap();
    assert_eq!(jane.groups, vec!["duo-users"]);
    assert_eq!(
        jane.aliases[3].as_deref(),
        Some("okta:00uNEWUSER0000000001")
    );
    let group = relay.sim.group_by_name("duo-users").unwrap();
    assert!(
        group.desc.starts_with("okta:00gDUOUSERS000000001"),
        "{}",
        group.desc
    );

    // The create, delivered three times: no second user, one create at most.
    for _ in 0..3 {
        ok(&relay, "/okta", "okta/user-lifecycle-create.json").await;
    }
    assert_eq!(relay.sim.snapshot().users.len(), 1);
    assert_eq!(relay.sim.call_count("POST /admin/v1/users"), 1);
    assert_eq!(
        relay.sim.user_by_username(JANE).unwrap().realname,
        "Jane Doe"
    );

    for (fixture, expected) in [
        ("okta/suspend.json", "disabled"),
        ("okta/unsuspend.json", "active"),
        ("okta/deactivate.json", "disabled"),
        ("okta/reactivate.json", "active"),
    ] {
        ok(&relay, "/okta", fixture).await;
        assert_eq!(status(&relay, JANE), expected, "{fixture}");
    }

    // Removing her from a group she is not in changes nothing.
    let before = relay.sim.total_calls();
    ok(&relay, "/okta", "okta/membership-remove.json").await;
    assert_eq!(
        relay.sim.user_by_username(JANE).unwrap().groups,
        vec!["duo-users"]
    );
    assert_eq!(
        relay.sim.total_calls() - before,
        1,
        "one user lookup, no write: {:?}",
        relay.sim.calls()
    );

    // A profile update without Okta API credentials: skipped, answered 200.
    let before = relay.sim.total_calls();
    ok(&relay, "/okta", "okta/update-profile.json").await;
    assert_eq!(relay.sim.total_calls(), before);

    ok(&relay, "/okta", "okta/delete-initiated.json").await;
    assert!(relay.sim.user_by_username(JANE).is_none());
    assert!(relay.sim.snapshot().users.is_empty());
}

#[tokio::test]
async fn okta_deprovision_action_disable_keeps_the_user() {
    let relay = TestRelay::start_with(&[("DEPROVISION_ACTION", "disable")]).await;
    ok(&relay, "/okta", "okta/user-lifecycle-create.json").await;
    ok(&relay, "/okta", "okta/delete-initiated.json").await;
    assert_eq!(status(&relay, JANE), "disabled");
}

#[tokio::test]
async fn okta_batch_with_failures_unknowns_and_nulls() {
    let relay = TestRelay::start().await;
    ok(&relay, "/okta", "okta/batch-mixed.json").await;
    let ben = relay.sim.user_by_username("ben.ito@example.com").unwrap();
    assert_eq!(ben.status, "active");
    // The FAILURE-outcome membership (Finance) was not applied.
    assert_eq!(ben.groups, vec!["duo-users"]);
    assert!(relay.sim.group_by_name("Finance").is_none());
    // Carla's create has no uuid (skipped), but her suspension (upper-case
    // type, "Success") says Okta has her, suspended: she is created disabled
    // (events arrive out of order; the state must not be lost).
    let carla = relay
        .sim
        .user_by_username("carla.diaz@example.com")
        .expect("created by the suspension");
    assert_eq!(carla.status, "disabled");
    assert_eq!(relay.sim.snapshot().users.len(), 2);
    // Preview deliveries with null targets are acknowledged and ignored.
    let before = relay.sim.total_calls();
    ok(&relay, "/okta", "okta/preview-null-target.json").await;
    assert_eq!(relay.sim.total_calls(), before);
}

#[tokio::test]
async fn okta_group_lifecycle() {
    let relay = TestRelay::start().await;
    ok(&relay, "/okta", "okta/group-create.json").await;
    let g = relay.sim.group_by_name("Engineering").unwrap();
    assert!(g.desc.starts_with("okta:00gENGINEERS00000003"));
    // The rename event carries no name: skipped without Okta API access.
    ok(&relay, "/okta", "okta/group-profile-update.json").await;
    assert!(relay.sim.group_by_name("Engineering").is_some());
    ok(&relay, "/okta", "okta/group-delete.json").await;
    assert!(relay.sim.snapshot().groups.is_empty());
}

fn seed_jane_with_devices(relay: &TestRelay) {
    relay.sim.seed(Seed {
        groups: vec![],
        users: vec![SeedUser {
            username: JANE.into(),
            groups: vec!["staff".into()],
            phones: 2,
            tokens: 1,
            webauthn: 1,
            u2f: 1,
            bypass_codes: 3,
            ..SeedUser::default()
        }],
    });
}

#[tokio::test]
async fn okta_mfa_resets_remove_devices_only_for_duo_or_all() {
    for (fixture, wiped) in [
        ("okta/factor-reset-all.json", true),
        ("okta/factor-deactivate-duo.json", true),
        ("okta/factor-deactivate-other.json", false),
    ] {
        let relay = TestRelay::start().await;
        seed_jane_with_devices(&relay);
        let before = relay.sim.user_by_username(JANE).unwrap();
        ok(&relay, "/okta", fixture).await;
        let after = relay.sim.user_by_username(JANE).unwrap();
        let devices = |u: &duo_sim::SimUser| {
            u.phones.len()
                + u.tokens.len()
                + u.webauthncredentials.len()
                + u.u2ftokens.len()
                + u.bypass_codes.len()
        };
        if wiped {
            assert_eq!(devices(&after), 0, "{fixture}");
        } else {
            assert_eq!(devices(&after), devices(&before), "{fixture}");
        }
        // The user itself stays, with its id, status and groups.
        assert_eq!(after.user_id, before.user_id);
        assert_eq!(after.status, "active");
        assert_eq!(after.groups, vec!["staff"]);
        // Each device or code removed exactly once.
        let removals = relay
            .sim
            .calls()
            .iter()
            .filter(|c| c.method == "DELETE")
            .count();
        assert_eq!(removals, if wiped { 8 } else { 0 }, "{fixture}");
    }
}

#[tokio::test]
async fn auth0_event_stream_journey() {
    let relay = TestRelay::start().await;
    ok(&relay, "/auth0", "auth0/user-created.json").await;
    let jane = relay.sim.user_by_username(JANE).unwrap();
    assert_eq!(
        jane.aliases[3].as_deref(),
        Some("auth0:auth0|65f0c0ffee0000000000a001")
    );
    assert_eq!(jane.realname, "Jane Doe");
    assert_eq!(jane.email, JANE);

    ok(&relay, "/auth0", "auth0/user-updated-blocked.json").await;
    assert_eq!(status(&relay, JANE), "disabled");

    // Email and name change plus block: renamed, not duplicated.
    ok(&relay, "/auth0", "auth0/user-updated-email.json").await;
    let users = relay.sim.snapshot().users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_id, jane.user_id);
    assert_eq!(users[0].username, "jane.smith@example.com");
    assert_eq!(users[0].realname, "Jane Smith");
    assert_eq!(users[0].status, "disabled");

    // Dashboard test deliveries are acknowledged and ignored.
    let before = relay.sim.total_calls();
    ok(&relay, "/auth0", "auth0/test-delivery.json").await;
    assert_eq!(relay.sim.total_calls(), before);

    ok(&relay, "/auth0", "auth0/user-deleted.json").await;
    assert!(relay.sim.snapshot().users.is_empty());
}

#[tokio::test]
async fn auth0_log_streams_roles_and_users() {
    let relay = TestRelay::start().await;
    let res = relay
        .http
        .post(relay.url("/auth0/logs"))
        .header("Authorization", relay_tests::SECRET)
        .header("Content-Type", "application/x-ndjson")
        .body(fixture_text("auth0/logs-jsonl.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Omar (a002) is created, blocked, then deleted twice (sapi delete and
    // sdu: one delete call). Jane (a001) was never created in this stream:
    // her profile patch (which also unblocks) creates her as jane.smith.
    let users = relay.sim.snapshot().users;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0].username, "jane.smith@example.com");
    assert_eq!(users[0].status, "active");
    assert_eq!(
        users[0].aliases[3].as_deref(),
        Some("auth0:auth0|65f0c0ffee0000000000a001")
    );
    assert_eq!(relay.sim.call_count("POST /admin/v1/users"), 2);
    assert_eq!(relay.sim.call_count("DELETE /admin/v1/users/{user_id}"), 1);

    ok(&relay, "/auth0/logs", "auth0/logs-roles.json").await;
    let snapshot = relay.sim.snapshot();
    for g in &snapshot.groups {
        assert!(g.desc.starts_with("auth0:rol_"), "{g:?}");
    }
    // The same batch again changes nothing (dedup on log_id).
    let before = relay.sim.total_calls();
    ok(&relay, "/auth0/logs", "auth0/logs-roles.json").await;
    assert_eq!(relay.sim.total_calls(), before);
}

#[tokio::test]
async fn transient_duo_failures_ask_the_idp_to_retry_and_the_retry_applies_once() {
    let relay = TestRelay::start().await;
    relay.sim.set_faults(Faults {
        rate_429: 1.0,
        ..Faults::default()
    });
    let res = relay
        .deliver_fixture("/okta", "okta/user-lifecycle-create.json")
        .await;
    assert_eq!(res.status(), 503);
    assert!(relay.sim.snapshot().users.is_empty());

    relay.sim.set_faults(Faults::default());
    ok(&relay, "/okta", "okta/user-lifecycle-create.json").await;
    ok(&relay, "/okta", "okta/user-lifecycle-create.json").await;
    assert_eq!(relay.sim.snapshot().users.len(), 1);
    assert_eq!(
        relay
            .sim
            .calls()
            .iter()
            .filter(|c| c.route == "POST /admin/v1/users" && c.status == 200)
            .count(),
        1
    );
}

#[tokio::test]
async fn group_filter_limits_what_is_synced() {
    let relay = TestRelay::start_with(&[("GROUP_FILTER", "^duo-")]).await;
    ok(&relay, "/okta", "okta/membership-add.json").await;
    ok(&relay, "/okta", "okta/group-create.json").await;
    assert!(relay.sim.group_by_name("duo-users").is_some());
    assert!(relay.sim.group_by_name("Engineering").is_none());
}

/// A tiny stand-in for Okta's Users and Groups API, serving the current
/// values the event hook does not carry.
async fn okta_stand_in() -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/api/v1/users/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>, headers: axum::http::HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("SSWS okta-test-token") {
                    return (axum::http::StatusCode::UNAUTHORIZED, String::new());
                }
                if id != "00uNEWUSER0000000001" {
                    return (axum::http::StatusCode::NOT_FOUND, String::new());
                }
                (
                    axum::http::StatusCode::OK,
                    serde_json::json!({
                        "id": id, "status": "ACTIVE",
                        "profile": {"login": "jane.smith@example.com", "email": "jane.smith@example.com",
                                    "firstName": "Jane", "lastName": "Smith"}
                    })
                    .to_string(),
                )
            }),
        )
        .route(
            "/api/v1/groups/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<String>| async move {
                axum::Json(serde_json::json!({
                    "id": id, "type": "OKTA_GROUP",
                    "profile": {"name": "Platform Engineering", "description": null}
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn with_okta_api_access_profile_updates_and_group_renames_apply() {
    let okta = okta_stand_in().await;
    let relay = TestRelay::start_with(&[
        ("OKTA_ORG_URL", okta.as_str()),
        ("OKTA_API_TOKEN", "okta-test-token"),
    ])
    .await;
    ok(&relay, "/okta", "okta/user-lifecycle-create.json").await;
    let before = relay.sim.user_by_username(JANE).unwrap();
    // The event says only "profile updated"; the relay fetches the new
    // login and names, and renames the same Duo user.
    ok(&relay, "/okta", "okta/update-profile.json").await;
    let users = relay.sim.snapshot().users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_id, before.user_id);
    assert_eq!(users[0].username, "jane.smith@example.com");
    assert_eq!(users[0].email, "jane.smith@example.com");
    assert_eq!(
        (users[0].firstname.as_str(), users[0].lastname.as_str()),
        ("Jane", "Smith")
    );

    ok(&relay, "/okta", "okta/group-create.json").await;
    ok(&relay, "/okta", "okta/group-profile-update.json").await;
    assert!(relay.sim.group_by_name("Engineering").is_none());
    let renamed = relay.sim.group_by_name("Platform Engineering").unwrap();
    assert!(renamed.desc.starts_with("okta:00gENGINEERS00000003"));
}

#[tokio::test]
async fn auth0_log_stream_mfa_reset_and_single_object_delete() {
    let relay = TestRelay::start().await;
    relay.sim.seed(Seed {
        groups: vec![],
        users: vec![SeedUser {
            username: "jane.smith@example.com".into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                "auth0:auth0|65f0c0ffee0000000000a001".into(),
            ],
            groups: vec!["staff".into()],
            phones: 1,
            webauthn: 2,
            bypass_codes: 2,
            ..SeedUser::default()
        }],
    });
    let before = relay
        .sim
        .user_by_username("jane.smith@example.com")
        .unwrap();
    ok(&relay, "/auth0/logs", "auth0/logs-mfa-reset.json").await;
    let after = relay
        .sim
        .user_by_username("jane.smith@example.com")
        .unwrap();
    assert!(after.phones.is_empty() && after.webauthncredentials.is_empty());
    assert!(after.bypass_codes.is_empty());
    assert_eq!(
        (after.user_id.as_str(), after.groups.clone()),
        (before.user_id.as_str(), vec!["staff".to_owned()])
    );
    // Four resets in one batch, each device removed once: the later resets
    // find nothing left to remove.
    let removals = relay
        .sim
        .calls()
        .iter()
        .filter(|c| c.method == "DELETE")
        .count();
    assert_eq!(removals, 5);

    // A single-object log delivery (JSONOBJECT format): the user is deleted.
    ok(&relay, "/auth0/logs", "auth0/logs-object.json").await;
    assert!(relay.sim.snapshot().users.is_empty());
}
