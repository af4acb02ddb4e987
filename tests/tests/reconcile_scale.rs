//! What a reconcile costs on a large tenant: Duo and IdP calls for a dry
//! run, an apply and a second (converged) run, against the Duo simulator
//! and the IdP stand-in. A 2,000-user / 500-group Okta tenant runs in CI;
//! the 20,000 / 5,000 tenants are `#[ignore]`d (minutes in a debug build):
//!
//! ```sh
//! cargo nextest run -p relay-tests --test reconcile_scale --run-ignored only --no-capture
//! ```
//!
//! The bounds asserted are the design's: Duo reads are one page of 300 users
//! and one page of 100 groups at a time; IdP reads are the user pages (200;
//! Auth0 uses an export job past 1000), the group pages, and one member
//! listing per group in scope (Okta 1000 members a page, Auth0 100).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::time::Instant;

use duo_sim::{DuoSim, Seed, SeedGroup, SeedUser};
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{IdpKind, ReconcileOptions, ReconcileReport, RunStatus};
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};

/// Memberships per user.
const GROUPS_PER_USER: usize = 3;

struct Shape {
    users: usize,
    groups: usize,
    /// One user in `drift_every` is missing from Duo, one has a stale name,
    /// one is missing a membership, and as many ghosts are added.
    drift_every: usize,
}

fn id(kind: IdpKind, what: &str, i: usize) -> String {
    match (kind, what) {
        (IdpKind::Okta, "user") => format!("00u{i:07}"),
        (IdpKind::Okta, _) => format!("00g{i:07}"),
        (IdpKind::Auth0, "user") => format!("auth0|u{i:07}"),
        (IdpKind::Auth0, _) => format!("rol_{i:07}"),
        // Not measured here: this stand-in speaks Okta and Auth0 (Entra's
        // reconcile reads the Graph stand-in, tests/entra.rs).
        (IdpKind::Entra, "user") => format!("00000000-0000-4000-8000-{i:012}"),
        (IdpKind::Entra, _) => format!("00000000-0000-4000-9000-{i:012}"),
    }
}

fn login(i: usize) -> String {
    format!("user{i:06}@example.com")
}

fn groups_of(shape: &Shape, i: usize) -> Vec<usize> {
    let mut groups: Vec<usize> = (0..GROUPS_PER_USER)
        .map(|k| (i * (2 * k + 1) + k * 7) % shape.groups)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// The IdP tenant and a Duo tenant that matches it except for the drift.
fn tenant(kind: IdpKind, shape: &Shape) -> (Tenant, Seed) {
    let mut members: Vec<Vec<String>> = vec![Vec::new(); shape.groups];
    let mut users = Vec::with_capacity(shape.users);
    for i in 0..shape.users {
        users.push(StandInUser::new(&id(kind, "user", i), &login(i)));
        for g in groups_of(shape, i) {
            members[g].push(id(kind, "user", i));
        }
    }
    let groups: Vec<StandInGroup> = members
        .into_iter()
        .enumerate()
        .map(|(g, m)| StandInGroup {
            id: id(kind, "group", g),
            name: format!("duo-group-{g:05}"),
            kind: "OKTA_GROUP".into(),
            members: m,
        })
        .collect();
    let prefix = kind.as_str();
    let seed_groups: Vec<SeedGroup> = (0..shape.groups)
        .map(|g| SeedGroup {
            name: format!("duo-group-{g:05}"),
            desc: format!("{prefix}:{} synced by idp-duo-relay", id(kind, "group", g)),
            ..SeedGroup::default()
        })
        .collect();
    let mut seed_users = Vec::with_capacity(shape.users);
    for (i, u) in users.iter().enumerate() {
        if i % shape.drift_every == 0 {
            continue; // missing in Duo
        }
        let mut groups: Vec<String> = groups_of(shape, i)
            .into_iter()
            .map(|g| format!("duo-group-{g:05}"))
            .collect();
        if i % shape.drift_every == 2 {
            groups.pop(); // a membership lost
        }
        let stale = i % shape.drift_every == 1;
        seed_users.push(SeedUser {
            username: u.login.clone(),
            email: u.login.clone(),
            realname: if stale {
                "Old Name".into()
            } else {
                u.display_name()
            },
            firstname: u.first_name.clone(),
            lastname: u.last_name.clone(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("{prefix}:{}", u.id),
            ],
            groups,
            ..SeedUser::default()
        });
    }
    for g in 0..shape.users / shape.drift_every {
        seed_users.push(SeedUser {
            username: format!("ghost{g:06}@example.com"),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("{prefix}:{}", id(kind, "user", 9_000_000 + g)),
            ],
            ..SeedUser::default()
        });
    }
    (
        Tenant { users, groups },
        Seed {
            groups: seed_groups,
            users: seed_users,
        },
    )
}

async fn measure(kind: IdpKind, shape: Shape) {
    let started = Instant::now();
    let (tenant, seed) = tenant(kind, &shape);
    let sim = DuoSim::start().await;
    sim.seed(seed);
    let idp = IdpStandIn::start(tenant).await;
    let mut raw = relay_tests::duo_env(&sim);
    raw.insert("GROUP_FILTER".to_owned(), "^duo-".to_owned());
    raw.extend(match kind {
        IdpKind::Okta => idp.okta_env(),
        IdpKind::Auth0 => idp.auth0_env(),
        IdpKind::Entra => Vec::new(),
    });
    let seeded = started.elapsed();
    let ghosts = shape.users / shape.drift_every;
    let opts = |dry_run: bool| ReconcileOptions {
        dry_run,
        max_deletes: ghosts,
        ..ReconcileOptions::new(kind)
    };

    let dry = run_from_config(&raw, &opts(true)).await.unwrap();
    assert_eq!(dry.status, RunStatus::Drift);
    let missing = shape.users.div_ceil(shape.drift_every);
    assert_eq!(dry.counts.users_create, missing);
    assert_eq!(dry.counts.users_delete, ghosts);
    let duo_users = shape.users - missing + ghosts;
    // Duo: pages of 300 users and 100 groups, nothing else.
    assert_eq!(
        dry.calls.duo_read,
        (duo_users.div_ceil(300) + shape.groups.div_ceil(100)) as u64
    );
    // IdP: user pages, group pages and one member listing per group.
    let idp_bound = match kind {
        IdpKind::Okta => shape.users.div_ceil(200) + 1 + shape.groups.div_ceil(200) + shape.groups,
        // Past 1000 users: one page, the export job (start, two polls,
        // download) and the token; roles by 100; members by 100.
        IdpKind::Auth0 => 1 + 4 + 1 + shape.groups.div_ceil(100) + shape.groups,
        IdpKind::Entra => 0,
    };
    assert!(
        dry.calls.idp as usize <= idp_bound,
        "{} IdP calls, bound {idp_bound}",
        dry.calls.idp
    );

    let applied = run_from_config(&raw, &opts(false)).await.unwrap();
    assert_eq!(applied.status, RunStatus::Converged);
    let again = run_from_config(&raw, &opts(false)).await.unwrap();
    assert_eq!(again.status, RunStatus::Converged);
    assert_eq!(again.counts.actions(), 0);
    assert_eq!(again.calls.duo_apply, 0);

    print_row(kind, &shape, &dry, &applied, &again, seeded.as_millis());
}

fn print_row(
    kind: IdpKind,
    shape: &Shape,
    dry: &ReconcileReport,
    applied: &ReconcileReport,
    again: &ReconcileReport,
    seed_ms: u128,
) {
    println!(
        "\n{kind} tenant: {} users, {} groups (Duo: {} users incl. {} ghosts, {} groups); seeded in {seed_ms} ms",
        shape.users, shape.groups, dry.tenant.duo_users, dry.counts.ghosts, dry.tenant.duo_groups
    );
    println!("| run | actions | {kind} calls | Duo reads | Duo calls applying | duration |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, r) in [("dry run", dry), ("apply", applied), ("second run", again)] {
        println!(
            "| {name} | {} | {} | {} | {} | {} ms |",
            r.counts.actions(),
            r.calls.idp,
            r.calls.duo_read,
            r.calls.duo_apply,
            r.duration_ms
        );
    }
    println!(
        "drift: {} creates, {} updates, {} membership adds, {} deletes",
        dry.counts.users_create,
        dry.counts.users_update,
        dry.counts.memberships_add,
        dry.counts.users_delete
    );
}

#[tokio::test]
async fn okta_2k_users_500_groups() {
    measure(
        IdpKind::Okta,
        Shape {
            users: 2_000,
            groups: 500,
            drift_every: 100,
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "minutes in a debug build; run with --run-ignored only"]
async fn okta_20k_users_5k_groups() {
    measure(
        IdpKind::Okta,
        Shape {
            users: 20_000,
            groups: 5_000,
            drift_every: 200,
        },
    )
    .await;
}

#[tokio::test]
#[ignore = "minutes in a debug build; run with --run-ignored only"]
async fn auth0_20k_users_5k_roles() {
    measure(
        IdpKind::Auth0,
        Shape {
            users: 20_000,
            groups: 5_000,
            drift_every: 200,
        },
    )
    .await;
}
