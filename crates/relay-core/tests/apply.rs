//! The apply stage against the Duo simulator: every operation, applied
//! twice (the second time must change nothing), out-of-order membership, MFA
//! reset, login rename, and the number of Duo calls.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use std::time::Duration;

use duo_admin::{DuoClient, DuoConfig, RetryPolicy, Secret};
use duo_sim::{DuoSim, Seed, SeedGroup, SeedUser};
use relay_core::apply::{Directory, DuoDirectory, OpOutcome};
use relay_core::event::{MfaScope, UserState};
use relay_core::operation::{GroupKey, Operation, UserAttrs, UserKey};

fn directory(sim: &DuoSim, filter: Option<&str>) -> DuoDirectory {
    let cfg = sim.config();
    let mut c = DuoConfig::new(
        cfg.host.clone(),
        cfg.ikey.clone(),
        Secret::new(cfg.skey.clone()),
    );
    c.base_url = Some(sim.base_url());
    c.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_jitter: Duration::ZERO,
        budget: Duration::from_secs(1),
    };
    DuoDirectory::new(
        DuoClient::new(c).unwrap(),
        filter.map(|f| regex_lite::Regex::new(f).unwrap()),
    )
}

fn jane() -> UserKey {
    UserKey {
        idp_alias: Some("okta:00uJANE".into()),
        username: Some("jane@example.com".into()),
    }
}

fn group(name: &str) -> GroupKey {
    GroupKey {
        idp_tag: Some(format!("okta:00g{name}")),
        name: Some(name.into()),
    }
}

async fn twice(dir: &DuoDirectory, op: Operation) -> (OpOutcome, OpOutcome) {
    let first = dir.apply(&op).await.unwrap();
    let second = dir.apply(&op).await.unwrap();
    assert!(
        matches!(second, OpOutcome::Unchanged(_)),
        "{op}: second apply changed Duo: {second:?}"
    );
    (first, second)
}

#[tokio::test]
async fn upsert_creates_with_alias_then_is_idempotent() {
    let sim = DuoSim::start().await;
    let dir = directory(&sim, None);
    let op = Operation::UpsertUser {
        user: jane(),
        attrs: UserAttrs {
            realname: Some("Jane Doe".into()),
            email: Some("jane@example.com".into()),
            ..UserAttrs::default()
        },
        state: None,
    };
    let (first, _) = twice(&dir, op).await;
    assert!(matches!(first, OpOutcome::Changed(_)));
    let u = sim.user_by_username("jane@example.com").unwrap();
    assert_eq!(u.aliases[3].as_deref(), Some("okta:00uJANE"));
    assert_eq!(u.realname, "Jane Doe");
    assert_eq!(sim.snapshot().users.len(), 1);
}

#[tokio::test]
async fn a_login_rename_renames_instead_of_creating_a_second_user() {
    let sim = DuoSim::start().await;
    let dir = directory(&sim, None);
    dir.apply(&Operation::UpsertUser {
        user: jane(),
        attrs: UserAttrs::default(),
        state: None,
    })
    .await
    .unwrap();
    let id = sim.user_by_username("jane@example.com").unwrap().user_id;
    let renamed = UserKey {
        idp_alias: jane().idp_alias,
        username: Some("jane.smith@example.com".into()),
    };
    twice(
        &dir,
        Operation::UpdateUser {
            user: renamed,
            attrs: UserAttrs {
                realname: Some("Jane Smith".into()),
                ..UserAttrs::default()
            },
            previous_username: Some("jane@example.com".into()),
        },
    )
    .await;
    let users = sim.snapshot().users;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].user_id, id);
    assert_eq!(users[0].username, "jane.smith@example.com");
    assert_eq!(users[0].realname, "Jane Smith");
}

#[tokio::test]
async fn state_changes_disable_and_reactivate() {
    let sim = DuoSim::start().await;
    let dir = directory(&sim, None);
    dir.apply(&Operation::UpsertUser {
        user: jane(),
        attrs: UserAttrs::default(),
        state: None,
    })
    .await
    .unwrap();
    let disable = Operation::SetUserState {
        user: UserKey {
            idp_alias: jane().idp_alias,
            username: None,
        },
        state: UserState::Disabled,
        attrs: UserAttrs::default(),
    };
    twice(&dir, disable).await;
    assert_eq!(
        sim.user_by_username("jane@example.com").unwrap().status,
        "disabled"
    );
    twice(
        &dir,
        Operation::SetUserState {
            user: jane(),
            state: UserState::Active,
            attrs: UserAttrs::default(),
        },
    )
    .await;
    assert_eq!(
        sim.user_by_username("jane@example.com").unwrap().status,
        "active"
    );
    // Disabling someone Duo never had is nothing to do.
    let ghost = Operation::SetUserState {
        user: UserKey {
            idp_alias: Some("okta:00uGHOST".into()),
            username: None,
        },
        state: UserState::Disabled,
        attrs: UserAttrs::default(),
    };
    assert!(matches!(
        dir.apply(&ghost).await.unwrap(),
        OpOutcome::Unchanged(_)
    ));
}

#[tokio::test]
async fn membership_before_create_creates_user_and_group_once() {
    let sim = DuoSim::start().await;
    let dir = directory(&sim, None);
    twice(
        &dir,
        Operation::AddMembership {
            user: jane(),
            group: group("duo-users"),
        },
    )
    .await;
    let u = sim.user_by_username("jane@example.com").unwrap();
    assert_eq!(u.groups, vec!["duo-users"]);
    assert_eq!(u.aliases[3].as_deref(), Some("okta:00uJANE"));
    let g = sim.group_by_name("duo-users").unwrap();
    assert!(g.desc.starts_with("okta:00gduo-users"));
    // The create that arrives late changes nothing but the profile.
    dir.apply(&Operation::UpsertUser {
        user: jane(),
        attrs: UserAttrs {
            realname: Some("Jane Doe".into()),
            ..UserAttrs::default()
        },
        state: None,
    })
    .await
    .unwrap();
    assert_eq!(sim.snapshot().users.len(), 1);

    twice(
        &dir,
        Operation::RemoveMembership {
            user: jane(),
            group: group("duo-users"),
        },
    )
    .await;
    assert!(
        sim.user_by_username("jane@example.com")
            .unwrap()
            .groups
            .is_empty()
    );
}

#[tokio::test]
async fn group_lookups_do_not_page_through_every_group_per_event() {
    let sim = DuoSim::start().await;
    sim.seed(Seed {
        groups: (0..450)
            .map(|i| SeedGroup {
                name: format!("team-{i}"),
                ..SeedGroup::default()
            })
            .collect(),
        users: (0..20)
            .map(|i| SeedUser {
                username: format!("u{i}@example.com"),
                ..SeedUser::default()
            })
            .collect(),
    });
    let dir = directory(&sim, None);
    sim.reset_calls();
    for i in 0..20 {
        let user = UserKey {
            idp_alias: None,
            username: Some(format!("u{i}@example.com")),
        };
        let group = GroupKey {
            idp_tag: None,
            name: Some(format!("team-{}", i * 7)),
        };
        dir.apply(&Operation::AddMembership { user, group })
            .await
            .unwrap();
    }
    // team-0 … team-133 sit on the first two pages of 100: each search stops
    // at the page holding its group and the next resumes after it, so 2
    // group pages for all 20 events (not a listing of all 5), then per
    // event: 1 user lookup + 1 add.
    assert_eq!(sim.call_count("GET /admin/v1/groups"), 2);
    assert_eq!(sim.call_count("GET /admin/v1/users"), 20);
    assert_eq!(sim.call_count("POST /admin/v1/users/{user_id}/groups"), 20);
    assert_eq!(sim.total_calls(), 42);
}

#[tokio::test]
async fn group_lifecycle_and_filter() {
    let sim = DuoSim::start().await;
    let dir = directory(&sim, Some("^duo-"));
    twice(
        &dir,
        Operation::CreateGroup {
            group: group("duo-admins"),
        },
    )
    .await;
    twice(
        &dir,
        Operation::RenameGroup {
            group: group("duo-admins"),
            new_name: "duo-operators".into(),
        },
    )
    .await;
    assert!(sim.group_by_name("duo-operators").is_some());
    assert!(sim.group_by_name("duo-admins").is_none());
    twice(
        &dir,
        Operation::DeleteGroup {
            group: GroupKey {
                idp_tag: Some("okta:00gduo-admins".into()),
                name: None,
            },
        },
    )
    .await;
    assert!(sim.snapshot().groups.is_empty());
    // A group outside the filter is never created.
    let err = dir
        .apply(&Operation::AddMembership {
            user: jane(),
            group: group("everyone"),
        })
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(sim.group_by_name("everyone").is_none());
}

#[tokio::test]
async fn mfa_reset_removes_devices_and_keeps_the_user() {
    let sim = DuoSim::start().await;
    sim.seed(Seed {
        groups: vec![],
        users: vec![SeedUser {
            username: "jane@example.com".into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                "okta:00uJANE".into(),
            ],
            groups: vec!["staff".into()],
            status: Some("active".into()),
            phones: 2,
            tokens: 1,
            webauthn: 2,
            u2f: 1,
            bypass_codes: 4,
            ..SeedUser::default()
        }],
    });
    let before = sim.user_by_username("jane@example.com").unwrap();
    let dir = directory(&sim, None);
    sim.reset_calls();
    let op = Operation::ResetMfa {
        user: UserKey {
            idp_alias: Some("okta:00uJANE".into()),
            username: None,
        },
        scope: MfaScope::All,
    };
    twice(&dir, op).await;
    let after = sim.user_by_username("jane@example.com").unwrap();
    assert!(after.phones.is_empty() && after.tokens.is_empty() && after.bypass_codes.is_empty());
    assert!(after.webauthncredentials.is_empty() && after.u2ftokens.is_empty());
    assert_eq!(after.user_id, before.user_id);
    assert_eq!(after.groups, before.groups);
    assert_eq!(after.status, "active");
    // First apply: 1 lookup + 1 bypass list + 10 removals; second: 1 + 1.
    assert_eq!(sim.total_calls(), 12 + 2);
}

#[tokio::test]
async fn delete_is_idempotent_and_transient_errors_are_told_apart() {
    let sim = DuoSim::start().await;
    let dir = directory(&sim, None);
    dir.apply(&Operation::UpsertUser {
        user: jane(),
        attrs: UserAttrs::default(),
        state: None,
    })
    .await
    .unwrap();
    twice(&dir, Operation::DeleteUser { user: jane() }).await;
    assert!(sim.snapshot().users.is_empty());

    sim.set_faults(duo_sim::Faults {
        rate_429: 1.0,
        ..duo_sim::Faults::default()
    });
    let err = dir
        .apply(&Operation::UpsertUser {
            user: jane(),
            attrs: UserAttrs::default(),
            state: None,
        })
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}
