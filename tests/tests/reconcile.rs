//! Reconcile end to end: the IdP stand-in (Okta and Auth0 shapes, real
//! HTTP) and the Duo simulator seeded with drift, through
//! `idp_sync::run_from_config` as the CLI and the cloud entries call it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use duo_sim::{DuoSim, Seed, SeedGroup, SeedUser};
use relay_core::config::RawConfig;
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{
    Category, IdpKind, ReconcileError, ReconcileOptions, ReconcileReport, RunStatus,
};
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};

struct World {
    sim: DuoSim,
    idp: IdpStandIn,
    raw: RawConfig,
}

impl World {
    async fn start(kind: IdpKind, tenant: Tenant, seed: Seed, extra: &[(&str, &str)]) -> Self {
        let sim = DuoSim::start().await;
        sim.seed(seed);
        let idp = IdpStandIn::start(tenant).await;
        let mut raw = relay_tests::duo_env(&sim);
        let idp_env = match kind {
            IdpKind::Okta => idp.okta_env(),
            IdpKind::Auth0 => idp.auth0_env(),
            // This stand-in speaks Okta and Auth0; Entra's reconcile is
            // tested against the Graph stand-in (tests/entra.rs).
            IdpKind::Entra => Vec::new(),
        };
        raw.extend(idp_env);
        for (k, v) in extra {
            raw.insert((*k).to_owned(), (*v).to_owned());
        }
        Self { sim, idp, raw }
    }

    async fn run(&self, opts: &ReconcileOptions) -> Result<ReconcileReport, ReconcileError> {
        run_from_config(&self.raw, opts).await
    }

    /// Duo calls other than reads, since the last reset.
    fn duo_writes(&self) -> Vec<String> {
        self.sim
            .calls()
            .into_iter()
            .filter(|c| c.method != "GET")
            .map(|c| c.route)
            .collect()
    }

    fn user(&self, username: &str) -> duo_sim::SimUser {
        self.sim
            .user_by_username(username)
            .unwrap_or_else(|| panic!("{username} is not in Duo"))
    }
}

fn seed_user(username: &str, alias: Option<&str>, realname: &str, groups: &[&str]) -> SeedUser {
    let (first, last) = realname.split_once(' ').unwrap_or((realname, ""));
    SeedUser {
        username: username.into(),
        email: username.into(),
        realname: realname.into(),
        firstname: first.into(),
        lastname: last.into(),
        aliases: match alias {
            Some(a) => vec![String::new(), String::new(), String::new(), a.into()],
            None => Vec::new(),
        },
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..SeedUser::default()
    }
}

fn tagged(name: &str, tag: &str) -> SeedGroup {
    SeedGroup {
        name: name.into(),
        desc: format!("{tag} synced by idp-duo-relay"),
        ..SeedGroup::default()
    }
}

fn dry(kind: IdpKind) -> ReconcileOptions {
    ReconcileOptions {
        dry_run: true,
        ..ReconcileOptions::new(kind)
    }
}

/// An Okta tenant and a Duo tenant with one of each kind of drift.
fn okta_drift() -> (Tenant, Seed) {
    let ann = StandInUser::new("00uANN", "ann.lee@example.com").named("Ann", "Lee");
    let tenant = Tenant {
        users: vec![
            ann,
            StandInUser::new("00uBOB", "bob.ray@example.com").status("SUSPENDED"),
            StandInUser::new("00uCY", "cy.new@example.com"),
            StandInUser::new("00uDEE", "dee.new@example.com").named("Dee", "Dean"),
            StandInUser::new("00uEVE", "eve.off@example.com").status("DEPROVISIONED"),
            StandInUser::new("00uFAY", "fay.link@example.com").named("Fay", "Link"),
        ],
        groups: vec![
            StandInGroup::new("00gENG", "duo-eng", &["00uANN", "00uCY"]),
            StandInGroup::new("00gOPS", "duo-ops", &["00uANN"]),
            StandInGroup::new("00gNEW", "duo-new", &["00uCY"]),
            StandInGroup::new("00gSTAFF", "staff", &["00uANN", "00uCY", "00uFAY"]),
            StandInGroup {
                kind: "BUILT_IN".into(),
                ..StandInGroup::new("00gEVERYONE", "Everyone", &[])
            },
        ],
    };
    let seed = Seed {
        groups: vec![
            tagged("duo-engineering-old", "okta:00gENG"),
            tagged("duo-gone", "okta:00gGONE"),
            SeedGroup {
                name: "hand-made".into(),
                desc: "an admin's own group".into(),
                ..SeedGroup::default()
            },
        ],
        users: vec![
            // Stale real name; not yet in duo-eng; in a hand-made group.
            seed_user(
                "ann.lee@example.com",
                Some("okta:00uANN"),
                "Ann Old",
                &["hand-made"],
            ),
            // Suspended in Okta, active here; in duo-eng without reason.
            seed_user(
                "bob.ray@example.com",
                Some("okta:00uBOB"),
                "Bob Ray",
                &["duo-engineering-old"],
            ),
            // Renamed in Okta.
            seed_user("dee.old@example.com", Some("okta:00uDEE"), "Dee Dean", &[]),
            // Deactivated in Okta (not in its plain user listing).
            seed_user("eve.off@example.com", Some("okta:00uEVE"), "Eve Off", &[]),
            // Created by hand before the relay: same login, no IdP id yet.
            seed_user("fay.link@example.com", None, "Fay Link", &[]),
            // Deleted in Okta long ago: a ghost.
            seed_user(
                "ghost@example.com",
                Some("okta:00uGHOST"),
                "Ghost",
                &["duo-gone"],
            ),
            // Duo-only, and the other IdP's.
            seed_user("admin@example.com", None, "Break Glass", &[]),
            seed_user("zed@example.com", Some("auth0:auth0|zed"), "Zed", &[]),
        ],
    };
    (tenant, seed)
}

#[tokio::test]
async fn okta_drift_is_reported_then_applied_and_a_second_run_plans_nothing() {
    let (tenant, seed) = okta_drift();
    let w = World::start(IdpKind::Okta, tenant, seed, &[("GROUP_FILTER", "^duo-")]).await;
    // Small pages, so every listing follows Link: rel="next"; and one 429.
    w.idp.set_max_page(2);
    w.idp.rate_limit_once("/api/v1/groups");

    let report = w.run(&dry(IdpKind::Okta)).await.unwrap();
    assert_eq!(report.status, RunStatus::Drift);
    assert!(!report.converged());
    let c = report.counts;
    assert_eq!(
        (
            c.users_create,
            c.users_update,
            c.users_enable,
            c.users_disable,
            c.users_delete
        ),
        (1, 3, 0, 2, 1),
        "{}",
        report.render_table()
    );
    assert_eq!((c.memberships_add, c.memberships_remove), (4, 1));
    assert_eq!(
        (c.groups_create, c.groups_rename, c.groups_delete),
        (2, 1, 1)
    );
    assert_eq!(
        (c.ghosts, c.unmanaged, c.other_idp, c.conflicts),
        (1, 1, 1, 0)
    );
    assert_eq!(c.deprovisions, 2);
    assert_eq!(report.tenant.groups_in_scope, 3);
    assert!(w.duo_writes().is_empty(), "a dry run wrote to Duo");
    assert_eq!(w.idp.count_status(429), 1);
    assert!(
        w.idp
            .requests()
            .iter()
            .filter(|r| r.path == "/api/v1/users")
            .count()
            >= 4,
        "users were not paged"
    );
    let table = report.render_table();
    for line in [
        "rename group",
        "duo-engineering-old → duo-eng",
        "create user",
        "cy.new@example.com",
        "username dee.old@example.com → dee.new@example.com",
        "realname \"Ann Old\" → \"Ann Lee\"",
        "IdP id okta:00uFAY linked",
        "okta:00uGHOST is no longer in okta",
        "bob.ray@example.com / duo-engineering-old",
        "admin@example.com",
        "status       drift: 16 actions to apply (dry run: nothing applied)",
    ] {
        assert!(table.contains(line), "missing {line:?} in\n{table}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "drift");
    assert_eq!(json["source"], "okta");
    assert_eq!(json["counts"]["memberships_add"], 4);
    assert_eq!(json["unmanaged"][0]["username"], "admin@example.com");

    // Apply.
    let report = w.run(&ReconcileOptions::new(IdpKind::Okta)).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Converged,
        "{}",
        report.render_table()
    );
    assert_eq!(report.counts.applied, 16);
    assert_eq!(w.user("ann.lee@example.com").realname, "Ann Lee");
    let mut ann_groups = w.user("ann.lee@example.com").groups;
    ann_groups.sort();
    assert_eq!(ann_groups, ["duo-eng", "duo-ops", "hand-made"]);
    assert_eq!(w.user("bob.ray@example.com").status, "disabled");
    assert!(w.user("bob.ray@example.com").groups.is_empty());
    let cy = w.user("cy.new@example.com");
    assert_eq!(cy.aliases[3].as_deref(), Some("okta:00uCY"));
    assert_eq!(cy.groups, ["duo-eng", "duo-new"]);
    assert!(w.sim.user_by_username("dee.old@example.com").is_none());
    assert_eq!(
        w.user("dee.new@example.com").aliases[3].as_deref(),
        Some("okta:00uDEE")
    );
    assert_eq!(w.user("eve.off@example.com").status, "disabled");
    assert_eq!(
        w.user("fay.link@example.com").aliases[3].as_deref(),
        Some("okta:00uFAY")
    );
    assert!(w.sim.user_by_username("ghost@example.com").is_none());
    assert_eq!(w.user("admin@example.com").status, "active");
    assert_eq!(w.user("zed@example.com").status, "active");
    assert!(w.sim.group_by_name("duo-gone").is_none());
    assert!(w.sim.group_by_name("duo-engineering-old").is_none());
    assert!(
        w.sim.group_by_name("staff").is_none(),
        "GROUP_FILTER ignored"
    );
    assert!(w.sim.group_by_name("Everyone").is_none());
    assert!(
        w.sim
            .group_by_name("duo-ops")
            .unwrap()
            .desc
            .starts_with("okta:00gOPS")
    );

    // Converged: a second run plans nothing and writes nothing.
    w.sim.reset_calls();
    let report = w.run(&ReconcileOptions::new(IdpKind::Okta)).await.unwrap();
    assert_eq!(report.status, RunStatus::Converged);
    assert_eq!(report.counts.actions(), 0, "{}", report.render_table());
    assert!(w.duo_writes().is_empty(), "{:?}", w.duo_writes());
    assert!(
        report
            .render_table()
            .contains("status       converged: Duo matches okta")
    );
}

#[tokio::test]
async fn an_idp_error_mid_run_aborts_before_any_duo_write() {
    let (tenant, seed) = okta_drift();
    let w = World::start(IdpKind::Okta, tenant, seed, &[]).await;
    w.idp.set_max_page(1);
    // The third group-member listing fails (after users and groups paged).
    w.idp.fail_after("/api/v1/groups/", 2);
    let err = w
        .run(&ReconcileOptions::new(IdpKind::Okta))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ReconcileError::Idp {
                idp: IdpKind::Okta,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
    assert!(err.to_string().contains("nothing was applied"), "{err}");
    assert!(w.idp.count_status(500) >= 1);
    assert!(
        w.duo_writes().is_empty(),
        "Duo was written to: {:?}",
        w.duo_writes()
    );
    // The same tenant in the Auth0 shape, failing on the second users page.
    let (tenant, seed) = okta_drift();
    let w = World::start(IdpKind::Auth0, tenant, seed, &[]).await;
    w.idp.set_max_page(2);
    w.idp.fail_after("/api/v2/users", 1);
    let err = w
        .run(&ReconcileOptions::new(IdpKind::Auth0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ReconcileError::Idp {
                idp: IdpKind::Auth0,
                ..
            }
        ),
        "{err}"
    );
    assert!(w.duo_writes().is_empty(), "{:?}", w.duo_writes());
}

#[tokio::test]
async fn a_duo_error_on_one_user_does_not_stop_the_others() {
    // "full" already has Duo's maximum of 100 groups: adding one more is
    // refused with 500/50001, which is not retried.
    let hand: Vec<String> = (0..100).map(|i| format!("hand-{i:03}")).collect();
    let hand_refs: Vec<&str> = hand.iter().map(String::as_str).collect();
    let tenant = Tenant {
        users: vec![
            StandInUser::new("00uAAA", "aaa@example.com"),
            StandInUser::new("00uFULL", "full@example.com"),
            StandInUser::new("00uZZZ", "zzz@example.com"),
        ],
        groups: vec![StandInGroup::new(
            "00gENG",
            "duo-eng",
            &["00uAAA", "00uFULL", "00uZZZ"],
        )],
    };
    let seed = Seed {
        groups: vec![],
        users: vec![seed_user(
            "full@example.com",
            Some("okta:00uFULL"),
            "Full Tester",
            &hand_refs,
        )],
    };
    let w = World::start(IdpKind::Okta, tenant, seed, &[]).await;
    let report = w.run(&ReconcileOptions::new(IdpKind::Okta)).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Incomplete,
        "{}",
        report.render_table()
    );
    assert!(!report.converged());
    assert_eq!(report.counts.failed, 1);
    let full = report
        .items
        .iter()
        .find(|i| i.subject == "full@example.com")
        .unwrap();
    // Duo answers 500/50001; it is not retried (it cannot succeed), and
    // the next run tries again.
    assert!(full.outcome.starts_with("failed"), "{}", full.outcome);
    // The others were created and joined, before and after the failure.
    for login in ["aaa@example.com", "zzz@example.com"] {
        assert_eq!(w.user(login).groups, ["duo-eng"], "{login}");
    }
    assert!(report.render_table().contains("incomplete: "));
    // The next run tries the one left, and only it.
    let again = w.run(&ReconcileOptions::new(IdpKind::Okta)).await.unwrap();
    assert_eq!(again.status, RunStatus::Incomplete);
    assert_eq!(again.counts.actions(), 1);
}

#[tokio::test]
async fn the_max_deletes_cap_stops_a_run_before_anything_is_applied() {
    let tenant = Tenant {
        users: vec![StandInUser::new("00uNEW", "new@example.com")],
        groups: vec![],
    };
    let seed = Seed {
        groups: vec![],
        users: (0..5)
            .map(|i| {
                seed_user(
                    &format!("gone{i}@example.com"),
                    Some(&format!("okta:00uGONE{i}")),
                    "Gone",
                    &[],
                )
            })
            .collect(),
    };
    let w = World::start(IdpKind::Okta, tenant, seed, &[]).await;
    let capped = ReconcileOptions {
        max_deletes: 3,
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&capped).await.unwrap();
    assert_eq!(report.status, RunStatus::CapExceeded);
    assert_eq!(report.counts.deprovisions, 5);
    assert_eq!(report.counts.applied, 0);
    assert!(
        report
            .render_table()
            .contains("more than --max-deletes 3; nothing applied")
    );
    // Not even the harmless create was applied.
    assert!(w.duo_writes().is_empty(), "{:?}", w.duo_writes());
    assert!(w.sim.user_by_username("new@example.com").is_none());

    let enough = ReconcileOptions {
        max_deletes: 5,
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&enough).await.unwrap();
    assert_eq!(report.status, RunStatus::Converged);
    assert_eq!(report.counts.users_delete, 5);
    assert_eq!(w.sim.snapshot().users.len(), 1);
}

#[tokio::test]
async fn deprovision_action_disable_and_include_unmanaged() {
    let (tenant, seed) = okta_drift();
    let w = World::start(
        IdpKind::Okta,
        tenant,
        seed,
        &[("GROUP_FILTER", "^duo-"), ("DEPROVISION_ACTION", "disable")],
    )
    .await;
    let opts = ReconcileOptions {
        include_unmanaged: true,
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&opts).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Converged,
        "{}",
        report.render_table()
    );
    assert_eq!(report.counts.users_delete, 0);
    // The ghost and the Duo-only account are disabled, not deleted; the
    // other IdP's user is not touched.
    assert_eq!(w.user("ghost@example.com").status, "disabled");
    assert_eq!(w.user("admin@example.com").status, "disabled");
    assert_eq!(w.user("zed@example.com").status, "active");
    assert_eq!(w.sim.call_count("DELETE /admin/v1/users/{user_id}"), 0);
    // A second run: the disabled ghosts need nothing.
    let report = w.run(&opts).await.unwrap();
    assert_eq!(report.counts.actions(), 0, "{}", report.render_table());
    assert_eq!(report.counts.ghosts, 1);
}

#[tokio::test]
async fn one_user_by_login() {
    let (tenant, seed) = okta_drift();
    let w = World::start(IdpKind::Okta, tenant, seed, &[("GROUP_FILTER", "^duo-")]).await;
    let only_cy = ReconcileOptions {
        user: Some("cy.new@example.com".into()),
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&only_cy).await.unwrap();
    assert_eq!(report.status, RunStatus::Converged);
    let actions: Vec<Category> = report.items[0].actions.iter().map(|a| a.action).collect();
    assert_eq!(
        actions,
        [
            Category::CreateUser,
            Category::AddMembership,
            Category::AddMembership
        ]
    );
    // One user's run joins the group tagged with duo-eng's id; renaming
    // that group is the whole-tenant run's job.
    let mut groups = w.user("cy.new@example.com").groups;
    groups.sort();
    assert_eq!(groups, ["duo-engineering-old", "duo-new"]);
    // Nobody else changed.
    assert_eq!(w.user("ann.lee@example.com").realname, "Ann Old");
    assert!(w.sim.user_by_username("ghost@example.com").is_some());

    // The old login of a renamed user finds the IdP user through its id.
    let old_dee = ReconcileOptions {
        user: Some("dee.old@example.com".into()),
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&old_dee).await.unwrap();
    assert_eq!(report.counts.users_update, 1, "{}", report.render_table());
    assert!(w.sim.user_by_username("dee.new@example.com").is_some());

    // A Duo-only account is left alone unless asked.
    let admin = ReconcileOptions {
        user: Some("admin@example.com".into()),
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&admin).await.unwrap();
    assert_eq!(report.counts.actions(), 0);
    assert_eq!(report.counts.unmanaged, 1);
    assert_eq!(w.user("admin@example.com").status, "active");
}

#[tokio::test]
async fn auth0_past_1000_users_reads_an_export_and_converges() {
    // 1,050 users: more than Auth0 serves by paging, so the reconcile must
    // use a user export job (a truncated listing would look like deletes).
    let mut users: Vec<StandInUser> = (0..1050)
        .map(|i| {
            StandInUser::new(
                &format!("auth0|u{i:04}"),
                &format!("user{i:04}@example.com"),
            )
        })
        .collect();
    users[7].status = "BLOCKED".into();
    let members: Vec<String> = (0..300).map(|i| format!("auth0|u{i:04}")).collect();
    let member_refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let tenant = Tenant {
        users,
        groups: vec![
            StandInGroup::new("rol_duo", "duo-users", &member_refs),
            StandInGroup::new("rol_admin", "Admins", &member_refs[..3]),
        ],
    };
    // Duo already has the first 1,000 (the blocked one active), none in
    // the group; plus one ghost.
    let mut seed_users: Vec<SeedUser> = (0..1000)
        .map(|i| {
            seed_user(
                &format!("user{i:04}@example.com"),
                Some(&format!("auth0:auth0|u{i:04}")),
                &format!("User{i:04} Tester"),
                &[],
            )
        })
        .collect();
    seed_users.push(seed_user(
        "left@example.com",
        Some("auth0:auth0|left"),
        "Left",
        &[],
    ));
    let seed = Seed {
        groups: vec![],
        users: seed_users,
    };
    let w = World::start(IdpKind::Auth0, tenant, seed, &[("GROUP_FILTER", "^duo-")]).await;
    w.idp.rate_limit_once("/api/v2/roles/");

    let report = w.run(&dry(IdpKind::Auth0)).await.unwrap();
    let c = report.counts;
    assert_eq!(
        (
            c.users_create,
            c.users_update,
            c.users_disable,
            c.users_delete
        ),
        (50, 0, 1, 1),
        "{}",
        report.render_table()
    );
    assert_eq!((c.groups_create, c.memberships_add), (1, 300));
    assert!(
        w.idp
            .requests()
            .iter()
            .any(|r| r.path == "/api/v2/jobs/users-exports"),
        "no export job"
    );
    assert_eq!(w.idp.count_status(429), 1);
    println!(
        "auth0 dry run, 1,050 users: {} IdP calls, {} Duo reads",
        report.calls.idp, report.calls.duo_read
    );

    let report = w.run(&ReconcileOptions::new(IdpKind::Auth0)).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Converged,
        "{}",
        report.render_table()
    );
    assert_eq!(w.user("user0007@example.com").status, "disabled");
    assert_eq!(
        w.user("user1049@example.com").aliases[3].as_deref(),
        Some("auth0:auth0|u1049")
    );
    assert_eq!(w.user("user0299@example.com").groups, ["duo-users"]);
    assert!(w.sim.group_by_name("Admins").is_none());
    assert!(w.sim.user_by_username("left@example.com").is_none());

    w.sim.reset_calls();
    let report = w.run(&ReconcileOptions::new(IdpKind::Auth0)).await.unwrap();
    assert_eq!(report.counts.actions(), 0, "{}", report.render_table());
    assert!(w.duo_writes().is_empty());
}

#[tokio::test]
async fn events_become_make_this_user_right_when_the_idp_api_is_configured() {
    const JANE_ID: &str = "00uNEWUSER0000000001";
    const JANE: &str = "jane.doe@example.com";
    let idp = IdpStandIn::start(Tenant {
        users: vec![StandInUser::new(JANE_ID, JANE).named("Jane", "Doe")],
        groups: vec![
            StandInGroup::new("00gDUOUSERS000000001", "duo-users", &[JANE_ID]),
            StandInGroup::new("00gOTHER", "other", &[]),
        ],
    })
    .await;
    let env = idp.okta_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let relay = relay_tests::TestRelay::start_with(&env).await;

    // A suspension Okta has since undone, for a user Duo never heard of:
    // the relay makes her what Okta says now — active, in her group.
    let res = relay.deliver_fixture("/okta", "okta/suspend.json").await;
    assert_eq!(res.status(), 200);
    let jane = relay.sim.user_by_username(JANE).unwrap();
    assert_eq!(jane.status, "active");
    assert_eq!(jane.realname, "Jane Doe");
    assert_eq!(jane.groups, ["duo-users"]);
    assert_eq!(
        jane.aliases[3].as_deref(),
        Some("okta:00uNEWUSER0000000001")
    );
    assert!(
        idp.requests()
            .iter()
            .any(|r| r.path == format!("/api/v1/users/{JANE_ID}")),
        "the IdP was not asked"
    );

    // Okta deleted her: the delete event deprovisions (the IdP says 404).
    idp.with_tenant(|t| t.users.clear());
    let res = relay
        .deliver_fixture("/okta", "okta/delete-initiated.json")
        .await;
    assert_eq!(res.status(), 200);
    assert!(relay.sim.user_by_username(JANE).is_none());
}

/// Issue 13 item 1, the reconcile side: a login deleted and re-created in
/// the IdP (a new id) never adopts the Duo account that still carries the
/// old id — not in a tenant run, not for one user, not on the event path.
#[tokio::test]
async fn a_recreated_login_never_adopts_the_old_identitys_account() {
    const SAM: &str = "sam.lee@example.com";
    let tenant = Tenant {
        users: vec![StandInUser::new("00uSAMNEW", SAM).named("Sam", "New")],
        groups: vec![],
    };
    let seed = Seed {
        users: vec![SeedUser {
            phones: 2,
            ..seed_user(SAM, Some("okta:00uSAMOLD"), "Sam Old", &[])
        }],
        ..Seed::default()
    };
    let w = World::start(IdpKind::Okta, tenant, seed, &[]).await;
    let old = w.user(SAM);

    // One user: the new identity's create waits for the login; the old
    // account is neither re-bound nor renamed nor deleted for it.
    let only_sam = ReconcileOptions {
        user: Some(SAM.into()),
        ..ReconcileOptions::new(IdpKind::Okta)
    };
    let report = w.run(&only_sam).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Incomplete,
        "{}",
        report.render_table()
    );
    assert_eq!(report.counts.users_create, 1, "{}", report.render_table());
    let still = w.user(SAM);
    assert_eq!(
        (still.user_id, still.aliases[3].clone(), still.phones.len()),
        (old.user_id.clone(), Some("okta:00uSAMOLD".into()), 2)
    );

    // The event path (the IdP API configured): the same.
    let env: Vec<(String, String)> = w.idp.okta_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let relay = relay_tests::TestRelay::start_with(&env).await;
    relay.sim.seed(Seed {
        users: vec![SeedUser {
            phones: 2,
            ..seed_user(SAM, Some("okta:00uSAMOLD"), "Sam Old", &[])
        }],
        ..Seed::default()
    });
    let before = relay.sim.user_by_username(SAM).unwrap();
    let body = relay_tests::fixture_text("okta/user-lifecycle-create.json")
        .replace("00uNEWUSER0000000001", "00uSAMNEW")
        .replace("jane.doe@example.com", SAM);
    assert_eq!(relay.deliver("/okta", body).await.status(), 503);
    let after = relay.sim.user_by_username(SAM).unwrap();
    assert_eq!(
        (after.user_id, after.aliases[3].clone(), after.phones.len()),
        (before.user_id, Some("okta:00uSAMOLD".into()), 2)
    );

    // The whole tenant: the old account is a ghost, deleted; the new
    // identity gets an account of its own, after it.
    let report = w.run(&ReconcileOptions::new(IdpKind::Okta)).await.unwrap();
    assert_eq!(
        report.status,
        RunStatus::Converged,
        "{}",
        report.render_table()
    );
    assert_eq!(
        (report.counts.users_delete, report.counts.users_create),
        (1, 1)
    );
    let fresh = w.user(SAM);
    assert_ne!(fresh.user_id, old.user_id);
    assert_eq!(fresh.aliases[3].as_deref(), Some("okta:00uSAMNEW"));
    assert_eq!(fresh.phones.len(), 0);
}
