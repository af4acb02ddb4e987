//! Living beside Duo's own directory sync (issue 17 item 4): excluded Duo
//! accounts — synced by Duo's directory sync (`last_directory_sync`), in an
//! excluded Duo group, or matching an excluded username pattern — are never
//! modified, disabled or deleted, by events (through the real server) or by
//! reconcile, even with `--include-unmanaged`; reconcile lists them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use duo_sim::{Seed, SeedUser};
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{IdpKind, ReconcileOptions};
use relay_tests::TestRelay;
use relay_tests::idp_standin::{IdpStandIn, StandInUser, Tenant};

const JANE: &str = "jane.doe@example.com";
const JANE_ALIAS: &str = "okta:00uNEWUSER0000000001";

fn jane(groups: &[&str], last_directory_sync: Option<i64>) -> SeedUser {
    SeedUser {
        username: JANE.into(),
        aliases: vec![
            String::new(),
            String::new(),
            String::new(),
            JANE_ALIAS.into(),
        ],
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        last_directory_sync,
        phones: 1,
        ..SeedUser::default()
    }
}

/// The Duo writes (not lookups) the simulator saw.
fn writes(relay: &TestRelay) -> Vec<String> {
    relay
        .sim
        .calls()
        .into_iter()
        .filter(|c| c.method != "GET")
        .map(|c| format!("{} {}", c.method, c.route))
        .collect()
}

async fn deliver_all(relay: &TestRelay) {
    for fixture in [
        "okta/update-profile.json",
        "okta/suspend.json",
        "okta/membership-add.json",
        "okta/factor-reset-all.json",
        "okta/delete-initiated.json",
    ] {
        assert_eq!(relay.deliver_fixture("/okta", fixture).await.status(), 200);
    }
}

/// An account in an excluded Duo group, and one Duo's directory sync
/// manages, are untouched by suspend, membership, MFA reset and delete
/// events: lookups only, no write. With the directory-sync exclusion turned
/// off, the same delete removes the account (the test can fail).
#[tokio::test]
async fn excluded_accounts_are_untouched_by_events() {
    let grouped =
        TestRelay::start_with(&[("DUO_EXCLUDE_GROUPS", "AD Sync Users, Break Glass")]).await;
    grouped.sim.seed(Seed {
        users: vec![jane(&["ad sync users"], None)],
        ..Seed::default()
    });
    let before = grouped.sim.user_by_username(JANE).unwrap();
    deliver_all(&grouped).await;
    assert_eq!(writes(&grouped), Vec::<String>::new());
    assert_eq!(grouped.sim.user_by_username(JANE), Some(before));

    let synced = TestRelay::start().await;
    synced.sim.seed(Seed {
        users: vec![jane(&[], Some(1_508_789_163))],
        ..Seed::default()
    });
    let before = synced.sim.user_by_username(JANE).unwrap();
    deliver_all(&synced).await;
    assert_eq!(writes(&synced), Vec::<String>::new());
    assert_eq!(synced.sim.user_by_username(JANE), Some(before));

    // Control: the same account, the exclusion off.
    let control = TestRelay::start_with(&[("DUO_EXCLUDE_DIRECTORY_SYNCED", "false")]).await;
    control.sim.seed(Seed {
        users: vec![jane(&[], Some(1_508_789_163))],
        ..Seed::default()
    });
    assert_eq!(
        control
            .deliver_fixture("/okta", "okta/delete-initiated.json")
            .await
            .status(),
        200
    );
    assert!(control.sim.user_by_username(JANE).is_none());
}

/// A create whose login an excluded account holds adopts nothing and makes
/// no second account.
#[tokio::test]
async fn a_create_never_adopts_an_excluded_account() {
    let relay =
        TestRelay::start_with(&[("DUO_EXCLUDE_USERNAMES", "jane\\..*@example\\.com")]).await;
    relay.sim.seed(Seed {
        users: vec![SeedUser {
            username: JANE.into(),
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
    assert_eq!(
        relay
            .deliver_fixture("/okta", "okta/user-lifecycle-create.json")
            .await
            .status(),
        200
    );
    assert_eq!(writes(&relay), Vec::<String>::new());
    let users = relay.sim.snapshot().users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].aliases, [None, None, None, None]);
}

/// Reconcile with `--include-unmanaged` deprovisions a Duo-only account but
/// none of the excluded ones (a directory-synced one, one in an excluded
/// group — even a ghost carrying our alias —, one matching the pattern),
/// and lists them as excluded.
#[tokio::test]
async fn reconcile_with_include_unmanaged_leaves_excluded_accounts_alone() {
    let sim = duo_sim::DuoSim::start().await;
    let plain = |name: &str| SeedUser {
        username: name.into(),
        ..SeedUser::default()
    };
    sim.seed(Seed {
        users: vec![
            SeedUser {
                last_directory_sync: Some(1_700_000_000),
                ..plain("dirsync@example.com")
            },
            SeedUser {
                groups: vec!["Break Glass".into()],
                aliases: vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    "okta:00uGONE".into(),
                ],
                ..plain("breakglass@example.com")
            },
            plain("svc-backup"),
            plain("loose@example.com"),
        ],
        ..Seed::default()
    });
    let standin = IdpStandIn::start(Tenant {
        users: vec![StandInUser::new("00uANN", "ann@example.com")],
        ..Tenant::default()
    })
    .await;
    let mut raw = relay_tests::duo_env(&sim);
    raw.extend(standin.okta_env());
    raw.insert("DUO_EXCLUDE_GROUPS".into(), "break glass".into());
    raw.insert("DUO_EXCLUDE_USERNAMES".into(), "svc-.*".into());
    let report = run_from_config(
        &raw,
        &ReconcileOptions {
            include_unmanaged: true,
            ..ReconcileOptions::new(IdpKind::Okta)
        },
    )
    .await
    .unwrap();
    let mut excluded: Vec<&str> = report
        .excluded
        .iter()
        .map(|u| u.username.as_str())
        .collect();
    excluded.sort_unstable();
    assert_eq!(
        excluded,
        [
            "breakglass@example.com",
            "dirsync@example.com",
            "svc-backup"
        ],
        "{}",
        report.render_table()
    );
    assert_eq!(report.counts.excluded, 3);
    assert!(report.render_table().contains("excluded"));
    for kept in [
        "dirsync@example.com",
        "breakglass@example.com",
        "svc-backup",
    ] {
        assert!(sim.user_by_username(kept).is_some(), "{kept} was deleted");
    }
    assert!(sim.user_by_username("loose@example.com").is_none());
    assert!(sim.user_by_username("ann@example.com").is_some());
    assert_eq!(report.counts.users_delete, 1);
    assert_eq!(report.counts.ghosts, 0);
}
