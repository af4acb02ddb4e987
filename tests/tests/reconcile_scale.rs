//! What a reconcile costs on a large tenant: Duo and IdP calls for a dry
//! run, an apply and a second (converged) run, against the Duo simulator
//! and the IdP stand-in (Okta, Auth0) or the Graph stand-in (Entra ID).
//! 2,000-user / 500-group Okta and Entra tenants run in CI; the 20,000 /
//! 5,000 tenants are `#[ignore]`d (minutes in a debug build):
//!
//! ```sh
//! cargo nextest run -p relay-tests --test reconcile_scale --run-ignored only --no-capture
//! ```
//!
//! The bounds asserted are the design's: Duo reads are one page of 300 users
//! and one page of 100 groups at a time; IdP reads are the user pages (200;
//! Auth0 uses an export job past 1000), the group pages, and one member
//! listing per group in scope (Okta 1000 members a page, Auth0 100). For
//! Entra they are exact: the token, the user and group pages of 999 (the
//! relay's `$top` and Graph's largest page) and one member page per group.
//! Entra's cheap second run, the delta catch-up (`entra delta`), is
//! measured on the same tenant after the reconcile: a full resync first,
//! then 2 Graph calls and no Duo call when nothing changed, then a few
//! changes for the delta pages and the reads of each changed object.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test setup should fail loudly

use std::time::Instant;

use duo_sim::{DuoSim, Seed, SeedGroup, SeedUser};
use relay_core::catch_up::MemoryCheckpoints;
use relay_core::catch_up::entra_delta::{DeltaRun, catch_up};
use relay_core::config::RawConfig;
use relay_core::idp_sync::run_from_config;
use relay_core::reconcile::{IdpKind, ReconcileOptions, ReconcileReport, RunStatus};
use relay_core::source::EntraApi;
use relay_tests::graph_standin::{GraphGroup, GraphStandIn, GraphUser};
use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};
use relay_tests::served::{Served, serve};

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
        // Served by the Graph stand-in (`measure_entra`).
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
        IdpKind::Entra => unreachable!("Entra is measured by measure_entra"),
    });
    let seeded = started.elapsed();
    let [dry, applied, again] = reconcile_three_times(kind, &shape, &raw).await;
    // IdP: user pages, group pages and one member listing per group.
    let idp_bound = match kind {
        IdpKind::Okta => shape.users.div_ceil(200) + 1 + shape.groups.div_ceil(200) + shape.groups,
        // Past 1000 users: one page, the export job (start, two polls,
        // download) and the token; roles by 100; members by 100.
        IdpKind::Auth0 => 1 + 4 + 1 + shape.groups.div_ceil(100) + shape.groups,
        IdpKind::Entra => unreachable!(),
    };
    assert!(
        dry.calls.idp as usize <= idp_bound,
        "{} IdP calls, bound {idp_bound}",
        dry.calls.idp
    );
    print_row(kind, &shape, &dry, &applied, &again, seeded.as_millis());
}

/// Graph's largest page, and the `$top` the relay asks for.
const GRAPH_PAGE: usize = 999;

/// [`measure`] for Entra ID, the tenant in the Graph stand-in; then the
/// delta catch-up on the converged tenant ([`delta_catch_up`]).
async fn measure_entra(shape: Shape) {
    let started = Instant::now();
    let (tenant, seed) = tenant(IdpKind::Entra, &shape);
    let graph = GraphStandIn::start(
        tenant.users.iter().map(graph_user).collect(),
        tenant.groups.iter().map(graph_group).collect(),
    )
    .await;
    let mut env = graph.env();
    env.push(("GROUP_FILTER".to_owned(), "^duo-".to_owned()));
    // The relay on a real socket, for the delta catch-up's planner; its
    // Duo simulator is the one every run here reads and writes.
    let served = serve(&env).await;
    served.sim.seed(seed);
    let mut raw = relay_tests::duo_env(&served.sim);
    raw.extend(env);
    let seeded = started.elapsed();
    let [dry, applied, again] = reconcile_three_times(IdpKind::Entra, &shape, &raw).await;
    // Graph, every run: the token, the user pages, the group pages, one
    // member page per group (at most 999 members each here).
    let reads =
        1 + shape.users.div_ceil(GRAPH_PAGE) + shape.groups.div_ceil(GRAPH_PAGE) + shape.groups;
    for run in [&dry, &applied, &again] {
        assert_eq!(run.calls.idp, reads as u64);
    }
    assert!(tenant.groups.iter().all(|g| g.members.len() <= GRAPH_PAGE));
    print_row(
        IdpKind::Entra,
        &shape,
        &dry,
        &applied,
        &again,
        seeded.as_millis(),
    );
    delta_catch_up(&shape, &tenant, &graph, &served, &raw, reads).await;
}

fn graph_user(u: &StandInUser) -> GraphUser {
    GraphUser {
        id: u.id.clone(),
        upn: u.login.clone(),
        given: u.first_name.clone(),
        surname: u.last_name.clone(),
        enabled: true,
    }
}

fn graph_group(g: &StandInGroup) -> GraphGroup {
    GraphGroup {
        id: g.id.clone(),
        name: g.name.clone(),
        members: g.members.clone(),
    }
}

/// `entra delta` on the converged tenant: the first run is a full resync
/// (2 "now" deltaLinks, then a reconcile that reads everything and writes
/// nothing); the next, with nothing changed, 2 Graph calls (one delta page
/// each) and no Duo call; then 4 users changed (disabled, renamed,
/// deleted, created into a group): the delta pages, user + memberOf per
/// changed user, group + member page per changed group.
async fn delta_catch_up(
    shape: &Shape,
    tenant: &Tenant,
    graph: &GraphStandIn,
    served: &Served,
    raw: &RawConfig,
    reads: usize,
) {
    let sim = &served.sim;
    let api = EntraApi::from_config(raw).unwrap().unwrap();
    let checkpoints = MemoryCheckpoints::default();
    let now = 1_796_380_800_000;

    let (resync, resync_ms) = timed_catch_up(served, graph, &api, &checkpoints, now).await;
    assert_eq!(resync.resync.as_deref(), Some("no deltaLink stored yet"));
    assert_eq!(resync.reconcile, Some(RunStatus::Converged));
    // The reconcile's reads (its token included) and 2 deltaLinks of now.
    assert_eq!(resync.graph_calls, (reads + 2) as u64);
    assert_eq!(graph.requests().len(), reads + 2);
    assert_eq!(sim.calls().iter().filter(|c| c.method != "GET").count(), 0);
    assert_eq!(
        resync.duo_calls,
        (shape.users.div_ceil(300) + shape.groups.div_ceil(100)) as u64
    );
    assert_eq!(sim.total_calls() as u64, resync.duo_calls);

    let (quiet, quiet_ms) = timed_catch_up(served, graph, &api, &checkpoints, now + 60_000).await;
    assert_eq!(
        (quiet.resync.as_deref(), quiet.users, quiet.groups),
        (None, 0, 0)
    );
    assert_eq!(quiet.graph_calls, 2);
    assert_eq!(graph.requests().len(), 2);
    assert_eq!((quiet.duo_calls, sim.total_calls()), (0, 0));

    // Changes the relay was not told about.
    let user = |i: usize| graph_user(&tenant.users[i]);
    let mut disabled = user(5);
    disabled.enabled = false;
    graph.put_user(disabled);
    let mut renamed = user(6);
    renamed.upn = "renamed.six@example.com".to_owned();
    graph.put_user(renamed);
    graph.delete_user(&tenant.users[7].id);
    let new_id = id(IdpKind::Entra, "user", shape.users);
    graph.put_user(GraphUser::new(&new_id, &login(shape.users)));
    let mut joined = graph_group(&tenant.groups[0]);
    joined.members.push(new_id);
    graph.put_group(joined);
    let mut changed_groups = groups_of(shape, 7);
    changed_groups.push(0);
    changed_groups.sort_unstable();
    changed_groups.dedup();
    let six = sim.user_by_username(&login(6)).unwrap();

    let (changes, changes_ms) =
        timed_catch_up(served, graph, &api, &checkpoints, now + 120_000).await;
    assert_eq!(changes.resync, None);
    assert_eq!((changes.users, changes.groups), (4, changed_groups.len()));
    assert_eq!((changes.failed, changes.refused), (0, 0));
    assert_eq!(sim.user_by_username(&login(5)).unwrap().status, "disabled");
    assert_eq!(
        sim.user_by_username("renamed.six@example.com")
            .unwrap()
            .user_id,
        six.user_id
    );
    assert!(sim.user_by_username(&login(7)).is_none());
    assert_eq!(
        sim.user_by_username(&login(shape.users)).unwrap().groups,
        ["duo-group-00000"]
    );
    // The planner's token, one delta page each, user + memberOf per
    // changed user (the deleted one's answer 404), group + its member page
    // per changed group.
    assert_eq!(
        changes.graph_calls,
        1 + 2 + 4 * 2 + 2 * changed_groups.len() as u64
    );
    assert_eq!(changes.graph_calls, graph.requests().len() as u64);
    assert_eq!(changes.duo_calls, sim.total_calls() as u64);
    // Duo writes: the disable, the rename, the delete, the create and its
    // one membership.
    let duo_writes = sim.calls().iter().filter(|c| c.method != "GET").count();
    assert_eq!(duo_writes, 5);

    println!("entra delta catch-up on the converged tenant:");
    println!("| run | Graph calls | Duo reads | Duo writes | duration |");
    println!("| --- | --- | --- | --- | --- |");
    let changed = format!("4 users, {} groups changed", changed_groups.len());
    for (name, run, writes, ms) in [
        ("first (full resync)", &resync, 0, resync_ms),
        ("second, nothing changed", &quiet, 0, quiet_ms),
        (changed.as_str(), &changes, duo_writes, changes_ms),
    ] {
        println!(
            "| {name} | {} | {} | {writes} | {ms} ms |",
            run.graph_calls,
            run.duo_calls - writes as u64,
        );
    }
}

/// One `entra delta` run at `at_ms`, the Duo and Graph logs reset first,
/// and how long it took.
async fn timed_catch_up(
    served: &Served,
    graph: &GraphStandIn,
    api: &EntraApi,
    checkpoints: &MemoryCheckpoints,
    at_ms: i64,
) -> (DeltaRun, u128) {
    served.sim.reset_calls();
    graph.reset_requests();
    let timer = Instant::now();
    let run = catch_up(&served.relay, api, checkpoints, at_ms)
        .await
        .unwrap();
    (run, timer.elapsed().as_millis())
}

/// A dry run, an apply and a second run of `reconcile --source <kind>`
/// against the tenant of `shape` (drift as [`tenant`] makes it), each
/// checked: the plan is the drift, Duo is read in pages of 300 users and
/// 100 groups, the apply converges and the second run changes nothing.
async fn reconcile_three_times(
    kind: IdpKind,
    shape: &Shape,
    raw: &RawConfig,
) -> [ReconcileReport; 3] {
    let ghosts = shape.users / shape.drift_every;
    let opts = |dry_run: bool| ReconcileOptions {
        dry_run,
        max_deletes: ghosts,
        ..ReconcileOptions::new(kind)
    };
    let missing = shape.users.div_ceil(shape.drift_every);
    let duo_users = shape.users - missing + ghosts;
    // Duo: pages of 300 users and 100 groups, nothing else.
    let duo_reads = |users: usize| (users.div_ceil(300) + shape.groups.div_ceil(100)) as u64;
    let drifted = |r: usize| (0..shape.users).filter(move |i| i % shape.drift_every == r);

    let dry = run_from_config(raw, &opts(true)).await.unwrap();
    assert_eq!(dry.status, RunStatus::Drift);
    assert_eq!(dry.counts.users_create, missing);
    assert_eq!(dry.counts.users_update, drifted(1).count());
    assert_eq!(dry.counts.users_delete, ghosts);
    assert_eq!(
        dry.counts.memberships_add,
        drifted(0).map(|i| groups_of(shape, i).len()).sum::<usize>() + drifted(2).count()
    );
    assert_eq!(dry.calls.duo_read, duo_reads(duo_users));
    assert_eq!(dry.calls.duo_apply, 0);

    let applied = run_from_config(raw, &opts(false)).await.unwrap();
    assert_eq!(applied.status, RunStatus::Converged);
    assert_eq!(applied.counts.actions(), dry.counts.actions());
    assert_eq!(
        (applied.counts.applied, applied.counts.failed),
        (dry.counts.actions(), 0)
    );
    assert_eq!(applied.calls.duo_read, duo_reads(duo_users));
    let again = run_from_config(raw, &opts(false)).await.unwrap();
    assert_eq!(again.status, RunStatus::Converged);
    assert_eq!(again.counts.actions(), 0);
    assert_eq!(again.calls.duo_apply, 0);
    assert_eq!(again.calls.duo_read, duo_reads(shape.users));
    [dry, applied, again]
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

/// The tenant measured in CI.
const SMALL: Shape = Shape {
    users: 2_000,
    groups: 500,
    drift_every: 100,
};

/// The tenant of the `#[ignore]`d runs.
const LARGE: Shape = Shape {
    users: 20_000,
    groups: 5_000,
    drift_every: 200,
};

#[tokio::test]
async fn okta_2k_users_500_groups() {
    measure(IdpKind::Okta, SMALL).await;
}

#[tokio::test]
#[ignore = "minutes in a debug build; run with --run-ignored only"]
async fn okta_20k_users_5k_groups() {
    measure(IdpKind::Okta, LARGE).await;
}

#[tokio::test]
#[ignore = "minutes in a debug build; run with --run-ignored only"]
async fn auth0_20k_users_5k_roles() {
    measure(IdpKind::Auth0, LARGE).await;
}

#[tokio::test]
async fn entra_2k_users_500_groups() {
    measure_entra(SMALL).await;
}

#[tokio::test]
#[ignore = "minutes in a debug build; run with --run-ignored only"]
async fn entra_20k_users_5k_groups() {
    measure_entra(LARGE).await;
}
