//! Duo calls per event type, counted by the simulator, against the minimum
//! written down in `relay-core/src/apply.rs`. A regression here means the
//! relay started spending Duo's rate limit on something it did not need.
//! Run with `--nocapture` to see the table.
//!
//! A user is found with one lookup whatever the event carries (issue 14
//! item 1: `username_list` holds the login and the IdP id alias, and Duo
//! matches both against usernames and aliases). A Duo account that does not
//! carry our IdP id yet pays one extra call, once: the modify that links it
//! (carried by the modify a state or profile change makes anyway; a call of
//! its own before a membership or device write). The rows marked
//! "un-aliased" show that price and that the next event no longer pays it.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use duo_sim::{Seed, SeedGroup, SeedUser};
use relay_tests::TestRelay;

const JANE: &str = "jane.doe@example.com";
const JANE_ALIAS: &str = "okta:00uNEWUSER0000000001";

/// Jane as Duo has her before the event.
#[derive(Clone, Copy, Default)]
struct Jane {
    /// Carries the relay's alias (`okta:00u…` in slot 4).
    aliased: bool,
    /// Member of duo-users and Finance.
    member: bool,
    phones: u32,
    webauthn: u32,
    bypass_codes: u32,
}

fn seed(relay: &TestRelay, jane: Jane) {
    relay.sim.seed(Seed {
        groups: vec![
            SeedGroup {
                name: "duo-users".into(),
                desc: "okta:00gDUOUSERS000000001 synced by idp-duo-relay".into(),
                ..SeedGroup::default()
            },
            SeedGroup {
                name: "Finance".into(),
                desc: "okta:00gFINANCE0000000002 synced by idp-duo-relay".into(),
                ..SeedGroup::default()
            },
        ],
        users: vec![SeedUser {
            username: JANE.into(),
            aliases: if jane.aliased {
                vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    JANE_ALIAS.into(),
                ]
            } else {
                vec![]
            },
            groups: if jane.member {
                vec!["duo-users".into(), "Finance".into()]
            } else {
                vec![]
            },
            phones: jane.phones,
            webauthn: jane.webauthn,
            bypass_codes: jane.bypass_codes,
            ..SeedUser::default()
        }],
    });
}

/// Duo calls of each delivery in `fixtures`, in order, after `setup` (and
/// `warm`, which fills the group index the way a running relay has it).
async fn counts(fixtures: &[&str], setup: Option<Jane>, warm: Option<&str>) -> Vec<usize> {
    let relay = TestRelay::start().await;
    if let Some(jane) = setup {
        seed(&relay, jane);
    }
    if let Some(warm) = warm {
        assert_eq!(relay.deliver_fixture("/okta", warm).await.status(), 200);
    }
    let mut out = Vec::new();
    for fixture in fixtures {
        relay.sim.reset_calls();
        assert_eq!(relay.deliver_fixture("/okta", fixture).await.status(), 200);
        out.push(relay.sim.total_calls());
    }
    out
}

async fn count(fixture: &str, setup: Option<Jane>, warm: Option<&str>) -> usize {
    counts(&[fixture], setup, warm).await[0]
}

#[tokio::test]
async fn duo_calls_per_event_type() {
    let aliased = Some(Jane {
        aliased: true,
        ..Jane::default()
    });
    let unaliased = Some(Jane::default());
    let warm = Some("okta/group-create.json");
    let two_phones = |aliased| {
        Some(Jane {
            aliased,
            phones: 2,
            ..Jane::default()
        })
    };
    // An un-aliased account pays the link once: the reset after the add
    // costs what it costs an aliased one.
    let add_then_reset = counts(
        &["okta/membership-add.json", "okta/factor-reset-all.json"],
        two_phones(false),
        warm,
    )
    .await;
    let member_unaliased = Some(Jane {
        member: true,
        ..Jane::default()
    });
    let rows = [
        // (event, calls, minimum, why)
        (
            "user create (new)",
            count("okta/user-lifecycle-create.json", None, None).await,
            2,
            "lookup (login + alias) + create",
        ),
        (
            "user create (exists)",
            count("okta/user-lifecycle-create.json", aliased, None).await,
            2,
            "lookup + modify (name differs)",
        ),
        (
            "suspend",
            count("okta/suspend.json", aliased, None).await,
            2,
            "lookup + modify",
        ),
        (
            "suspend (un-aliased)",
            count("okta/suspend.json", unaliased, None).await,
            2,
            "lookup + modify (status and alias)",
        ),
        (
            "unsuspend (already active)",
            count("okta/unsuspend.json", aliased, None).await,
            1,
            "lookup only",
        ),
        (
            "membership add (warm index)",
            count("okta/membership-add.json", aliased, warm).await,
            2,
            "lookup (embeds groups) + add",
        ),
        (
            "membership add (un-aliased, warm index)",
            add_then_reset[0],
            3,
            "lookup + link alias (once) + add",
        ),
        (
            "  then MFA reset (2 phones)",
            add_then_reset[1],
            4,
            "lookup + bypass list + 2 detaches: linked already",
        ),
        (
            "membership remove (un-aliased, member)",
            count("okta/membership-remove.json", member_unaliased, None).await,
            3,
            "lookup + link alias (once) + remove",
        ),
        (
            "membership remove (member)",
            count(
                "okta/membership-remove.json",
                Some(Jane {
                    aliased: true,
                    member: true,
                    ..Jane::default()
                }),
                None,
            )
            .await,
            2,
            "lookup + remove",
        ),
        (
            "membership add (cold index)",
            count("okta/membership-add.json", aliased, None).await,
            3,
            "lookup + 1 group page + add",
        ),
        (
            "membership remove (not member)",
            count("okta/membership-remove.json", aliased, None).await,
            1,
            "lookup only",
        ),
        (
            "delete",
            count("okta/delete-initiated.json", aliased, None).await,
            2,
            "lookup + delete",
        ),
        (
            "delete (un-aliased)",
            count("okta/delete-initiated.json", unaliased, None).await,
            2,
            "lookup + delete",
        ),
        (
            "MFA reset (2 phones)",
            count("okta/factor-reset-all.json", two_phones(true), None).await,
            4,
            "lookup + bypass list + 2 detaches",
        ),
        (
            "MFA reset (2 phones, un-aliased)",
            count("okta/factor-reset-all.json", two_phones(false), None).await,
            5,
            "lookup + bypass list + link alias (once) + 2 detaches",
        ),
        (
            "MFA reset (2 phones, 1 WebAuthn, 3 codes)",
            count(
                "okta/factor-reset-all.json",
                Some(Jane {
                    aliased: true,
                    member: true,
                    phones: 2,
                    webauthn: 1,
                    bypass_codes: 3,
                }),
                None,
            )
            .await,
            8,
            "lookup + bypass list + 6 removals",
        ),
        (
            "group create (cold index)",
            count("okta/group-create.json", None, None).await,
            2,
            "1 group page + create",
        ),
    ];
    println!("{:<44} {:>5} {:>5}  reasoning", "event", "calls", "min");
    for (event, calls, min, why) in &rows {
        println!("{event:<44} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
}

// ---- the group index (issue 14 item 2) ----

use std::sync::Arc;

use relay_core::group_index::{FileGroupIndex, GroupIndexStore, MemoryGroupIndex};
use relay_tests::group_index::{
    GROUPS, add_jane, big_tenant, group_name, group_tag, jane_in, relay_on,
};

/// The file and memory stores keep the group index contract the cloud
/// stores are held to (relay-aws, relay-azure, relay-gcp run it on their
/// emulators).
/// Entra ID (issue 18): Duo and Graph calls per notification, each the
/// first notification after the state it starts from. A notification
/// carries no values, so every one reads Graph (the user and its groups,
/// or the group's members) and Duo (one lookup, or the group and its
/// members) before it writes; a notification about a state Duo already has
/// writes nothing. Graph's token is fetched once per process (1 call,
/// counted in the first row only).
#[tokio::test]
async fn entra_calls_per_notification_type() {
    use relay_tests::graph_standin::{GraphGroup, GraphStandIn, GraphUser};
    const ADA: &str = "0a1b2c3d-0000-4000-8000-00000000ada1";
    const ENG: &str = "9e9e9e9e-0000-4000-8000-0000000000e1";
    let graph = GraphStandIn::start(Vec::new(), Vec::new()).await;
    let served = relay_tests::served::serve(&graph.env()).await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/entra", served.addr);
    let mut rows = Vec::new();
    let mut step = async |name: &str, items: &[(&str, &str, &str)]| {
        served.sim.reset_calls();
        graph.reset_requests();
        let started = std::time::Instant::now();
        let r = http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(GraphStandIn::notifications(items))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        // Sync mode: the answer comes once the notification is applied.
        println!("{name:<34} applied in {:?}", started.elapsed());
        let graph_calls = graph.requests().len();
        rows.push((name.to_owned(), served.sim.total_calls(), graph_calls));
    };
    let mut ada = GraphUser::new(ADA, "ada.lovelace@contoso.com");
    graph.put_user(ada.clone());
    step("user created (new)", &[("created", "Users", ADA)]).await;
    step("user updated (no change)", &[("updated", "Users", ADA)]).await;
    ada.enabled = false;
    graph.put_user(ada.clone());
    step("user disabled", &[("updated", "Users", ADA)]).await;
    ada.enabled = true;
    ada.upn = "ada.king@contoso.com".into();
    graph.put_user(ada.clone());
    step(
        "user renamed (UPN) and enabled",
        &[("updated", "Users", ADA)],
    )
    .await;
    graph.put_group(GraphGroup::new(ENG, "Engineering", &[ADA]));
    step("group created with 1 member", &[("created", "Groups", ENG)]).await;
    step("group updated (no change)", &[("updated", "Groups", ENG)]).await;
    graph.put_group(GraphGroup::new(ENG, "Engineering", &[]));
    step("group member removed", &[("updated", "Groups", ENG)]).await;
    graph.delete_user(ADA);
    step("user deleted", &[("deleted", "Users", ADA)]).await;
    graph.delete_group(ENG);
    step("group deleted", &[("deleted", "Groups", ENG)]).await;
    for (name, duo, graph) in &rows {
        println!("{name:<34} duo {duo:>2}  graph {graph:>2}");
    }
    let got: Vec<(&str, usize, usize)> =
        rows.iter().map(|(n, d, g)| (n.as_str(), *d, *g)).collect();
    assert_eq!(
        got,
        [
            // Graph: token + user + memberOf. Duo: the planner's lookup
            // (reconcile_user reads Duo's view), then the apply's lookup +
            // create.
            ("user created (new)", 3, 3),
            // Graph: user + memberOf. Duo: the planner's lookup; nothing to do.
            ("user updated (no change)", 1, 2),
            // Duo: planner lookup + apply lookup + modify (status).
            ("user disabled", 3, 2),
            // Duo: planner lookup; update_user (lookup + modify: username)
            // and set_user_state (lookup + modify: status).
            ("user renamed (UPN) and enabled", 5, 2),
            // Graph: group (enrich) + members + the new member as a user
            // notification reads it (user + memberOf). Duo: group search
            // (1 page), rename_group = create (index page + create), the
            // member's planner lookup, add_membership (lookup + add).
            ("group created with 1 member", 6, 4),
            // Duo: group search + 1 page of members; nothing to do.
            ("group updated (no change)", 2, 2),
            // Duo: group search + members + GET the member no longer in
            // Graph (is it the relay's Entra user?) + remove (lookup + remove).
            ("group member removed", 5, 2),
            // Graph: 2 reads (the user answers 404). Duo: planner lookup +
            // apply lookup + delete.
            ("user deleted", 3, 2),
            // Graph: group (404). Duo: delete (the group index knows it).
            ("group deleted", 1, 1),
        ]
    );
}

/// `entra delta` (issue 18): after the first run's resync, a user
/// disabled in Entra costs what its notification costs in Duo (3 calls:
/// planner lookup, apply lookup, modify) plus 2 delta pages in Graph; a
/// run with nothing changed: 2 Graph calls, 0 Duo calls.
#[tokio::test]
async fn entra_delta_catch_up_calls() {
    use relay_core::catch_up::MemoryCheckpoints;
    use relay_core::catch_up::entra_delta::catch_up;
    use relay_tests::graph_standin::{GraphStandIn, GraphUser};
    const ADA: &str = "0a1b2c3d-0000-4000-8000-00000000ada1";
    let mut ada = GraphUser::new(ADA, "ada.lovelace@contoso.com");
    let graph = GraphStandIn::start(vec![ada.clone()], Vec::new()).await;
    let served = relay_tests::served::serve(&graph.env()).await;
    let raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    let api = relay_core::source::EntraApi::from_config(&raw)
        .unwrap()
        .unwrap();
    let checkpoints = MemoryCheckpoints::default();
    let now = 1_796_380_800_000;
    let first = catch_up(&served.relay, &api, &checkpoints, now)
        .await
        .unwrap();
    assert!(first.resync.is_some());
    // token + 2 deltaLinks of now + 1 user page + 1 group page.
    assert_eq!(first.graph_calls, 1 + 2 + 2);
    assert!(
        served
            .sim
            .user_by_username("ada.lovelace@contoso.com")
            .is_some()
    );

    ada.enabled = false;
    graph.put_user(ada);
    served.sim.reset_calls();
    graph.reset_requests();
    let second = catch_up(&served.relay, &api, &checkpoints, now + 1)
        .await
        .unwrap();
    assert_eq!((second.users, second.applied), (1, 1));
    // The planner's token + 2 delta pages + user + memberOf.
    assert_eq!(second.graph_calls, 1 + 2 + 2);
    assert_eq!(graph.requests().len(), 5);
    assert_eq!(served.sim.total_calls(), 3, "{:?}", served.sim.calls());

    served.sim.reset_calls();
    let quiet = catch_up(&served.relay, &api, &checkpoints, now + 2)
        .await
        .unwrap();
    assert_eq!((quiet.users, quiet.groups, quiet.graph_calls), (0, 0, 2));
    assert_eq!(served.sim.total_calls(), 0);
}

/// Entra lifecycle notifications (issue 18), each posted to the real
/// server in sync mode: Graph and Duo calls per notification (the relay
/// has a catch-up store, as `serve` wires it).
#[tokio::test]
async fn entra_calls_per_lifecycle_notification() {
    use relay_core::source::entra::subscription::ensure_subscriptions;
    use relay_tests::graph_standin::{CLIENT_STATE, GraphStandIn, GraphUser};
    const ADA: &str = "0a1b2c3d-0000-4000-8000-00000000ada1";
    let mut ada = GraphUser::new(ADA, "ada.lovelace@contoso.com");
    let graph = GraphStandIn::start(vec![ada.clone()], Vec::new()).await;
    let target = relay_tests::served::serve(&graph.env()).await;
    let url = format!("http://{}/entra", target.addr);
    let mut env = graph.env();
    env.push(("ENTRA_NOTIFICATION_URL".into(), url.clone()));
    let served = relay_tests::served::serve(&env).await;
    let raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    let api = relay_core::source::EntraApi::from_config(&raw)
        .unwrap()
        .unwrap();
    let subs = ensure_subscriptions(&api, &url, CLIENT_STATE, 1_796_380_800_000)
        .await
        .unwrap();
    let users_sub = subs[0].id.clone();
    let http = reqwest::Client::new();
    let mut rows = Vec::new();
    let mut step = async |name: &str, event: &str| {
        served.sim.reset_calls();
        graph.reset_requests();
        let started = std::time::Instant::now();
        let r = http
            .post(format!("http://{}/entra", served.addr))
            .header("Content-Type", "application/json")
            .body(GraphStandIn::lifecycle_notification(
                event,
                &users_sub,
                CLIENT_STATE,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        // Sync mode: answered once acted on.
        println!("{name:<30} acted on in {:?}", started.elapsed());
        rows.push((
            name.to_owned(),
            served.sim.total_calls(),
            graph.requests().len(),
        ));
    };
    step("reauthorizationRequired", "reauthorizationRequired").await;
    graph.remove_subscription(&subs[0].id);
    step("subscriptionRemoved, first", "subscriptionRemoved").await;
    let users_now = graph
        .subscriptions()
        .iter()
        .find(|s| s["resource"] == "users")
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .unwrap();
    graph.remove_subscription(&users_now);
    step("subscriptionRemoved, again", "subscriptionRemoved").await;
    step("missed, nothing changed", "missed").await;
    ada.enabled = false;
    graph.put_user(ada);
    step("missed, 1 user disabled", "missed").await;
    for (name, duo, graph) in &rows {
        println!("{name:<30} duo {duo:>2}  graph {graph:>2}");
    }
    let got: Vec<(&str, usize, usize)> =
        rows.iter().map(|(n, d, g)| (n.as_str(), *d, *g)).collect();
    assert_eq!(
        got,
        [
            // Graph: token + PATCH (reauthorizes and renews).
            ("reauthorizationRequired", 0, 2),
            // Graph: list + create (validated through the handshake) +
            // renew the other one; then the catch-up of what changed
            // while there was no subscription — no deltaLink yet, so a
            // full resync: 2 deltaLinks of now + the reconcile (1 user
            // page, 1 group page). Duo: the reconcile's reads and Ada's
            // creation.
            ("subscriptionRemoved, first", 4, 3 + 2 + 2),
            // The same, the catch-up now a delta: one page each.
            ("subscriptionRemoved, again", 0, 3 + 2),
            // Graph: one delta page each.
            ("missed, nothing changed", 0, 2),
            // Graph: 2 delta pages + user + memberOf. Duo: as a
            // `disabled` notification (planner lookup, apply lookup,
            // modify).
            ("missed, 1 user disabled", 3, 4),
        ]
    );
}

#[tokio::test]
async fn file_and_memory_group_indexes_keep_the_contract() {
    let dir = std::env::temp_dir().join(format!("relay-duo-calls-contract-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("groups.log");
    let calls = relay_tests::group_index::contract(|| {
        Arc::new(FileGroupIndex::open(&file).unwrap()) as Arc<dyn GroupIndexStore>
    })
    .await;
    assert_eq!(
        calls, 2,
        "first membership add after a restart: lookup + add"
    );
    let memory: Arc<dyn GroupIndexStore> = Arc::new(MemoryGroupIndex::default());
    let calls = relay_tests::group_index::contract(|| Arc::clone(&memory)).await;
    assert_eq!(calls, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn group_index_calls() {
    let dir = std::env::temp_dir().join(format!("relay-duo-calls-groups-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = dir.join("groups.log");
    let open = || -> Arc<dyn GroupIndexStore> { Arc::new(FileGroupIndex::open(&file).unwrap()) };
    let mut rows = Vec::new();

    // A fresh tenant of 5,000 groups; the first relay has never listed.
    let sim = duo_sim::DuoSim::start().await;
    big_tenant(&sim, &[]);
    let relay = relay_on(&sim, open());
    rows.push((
        "membership add, 5,000 groups, never listed, group on page 1",
        add_jane(&sim, &relay, 1, &group_tag(7), &group_name(7)).await,
        3,
        "lookup + 1 group page (search stops at the match) + add",
    ));
    rows.push((
        "add to a group Duo lacks, index not complete",
        add_jane(&sim, &relay, 2, "00gNEW0000000000001", "g-new-1").await,
        52,
        "lookup + the 49 pages not read yet (the one listing) + create + add",
    ));
    rows.push((
        "add to a group Duo lacks, index complete",
        add_jane(&sim, &relay, 3, "00gNEW0000000000002", "g-new-2").await,
        3,
        "lookup + create + add: no listing",
    ));
    drop(relay);

    // A restart: a new relay on the same state.
    let relay = relay_on(&sim, open());
    rows.push((
        "first membership add after a restart, 5,000 groups",
        add_jane(&sim, &relay, 4, &group_tag(4_321), &group_name(4_321)).await,
        2,
        "lookup + add: the stored index knows the group",
    ));
    rows.push((
        "add to a group Duo lacks, after a restart",
        add_jane(&sim, &relay, 5, "00gNEW0000000000003", "g-new-3").await,
        3,
        "lookup + create + add",
    ));
    // An admin deletes a group the index knows, then the IdP adds to it.
    let doomed = sim.group_by_name(&group_name(4_000)).unwrap();
    assert!(
        duo_client_for(&sim)
            .delete_group(&duo_admin::DuoGroupId::new(doomed.group_id))
            .await
            .is_ok()
    );
    rows.push((
        "add to a group an admin deleted (cached id)",
        add_jane(&sim, &relay, 6, &group_tag(4_000), &group_name(4_000)).await,
        4,
        "lookup + add (refused: unknown group) + create + add",
    ));
    assert!(jane_in(&sim, &group_name(4_000)));
    // An admin creates a group after the listing; the IdP adds to a group
    // of that name: our create meets the duplicate and searches.
    let admin_made = duo_client_for(&sim)
        .create_group(&duo_admin::GroupFields {
            name: Some("g-admin".into()),
            desc: None,
        })
        .await
        .unwrap();
    rows.push((
        "add to a group an admin created after the listing",
        add_jane(&sim, &relay, 7, "00gADMIN0000000001", "g-admin").await,
        54,
        "lookup + create (duplicate name) + 51 pages (it is on the last) + add",
    ));
    assert!(
        sim.user_by_username(JANE)
            .unwrap()
            .groups
            .iter()
            .any(|g| g == "g-admin"),
        "{:?}",
        admin_made.name
    );
    drop(relay);

    // Groups learnt from the user objects Duo returns: a cold relay (no
    // stored index, never listed) finds g-02222 in Jane's lookup answer.
    let sim2 = duo_sim::DuoSim::start().await;
    big_tenant(&sim2, &[2_222]);
    let cold: Arc<dyn GroupIndexStore> = Arc::new(MemoryGroupIndex::default());
    let relay = relay_on(&sim2, cold);
    rows.push((
        "membership add to a group the user is in, cold index",
        add_jane(&sim2, &relay, 8, &group_tag(2_222), &group_name(2_222)).await,
        1,
        "lookup (its embedded groups name it): already a member",
    ));

    // Searches that stop early still store the pages they read, and once
    // they have read every page between them the index is complete: no
    // listing of everything is ever made on its own.
    let sim3 = duo_sim::DuoSim::start().await;
    big_tenant(&sim3, &[]);
    let pieces = dir.join("pieces.log");
    let open_pieces =
        || -> Arc<dyn GroupIndexStore> { Arc::new(FileGroupIndex::open(&pieces).unwrap()) };
    let relay = relay_on(&sim3, open_pieces());
    rows.push((
        "membership add, never listed, group on the last page",
        add_jane(
            &sim3,
            &relay,
            9,
            &group_tag(GROUPS - 1),
            &group_name(GROUPS - 1),
        )
        .await,
        52,
        "lookup + 50 pages (stops at the match, on the last) + add",
    ));
    drop(relay);
    let relay = relay_on(&sim3, open_pieces());
    rows.push((
        "  after a restart, to a group a search read past",
        add_jane(&sim3, &relay, 10, &group_tag(50), &group_name(50)).await,
        2,
        "lookup + add: the pages read were stored",
    ));
    rows.push((
        "  then to a group Duo lacks",
        add_jane(&sim3, &relay, 11, "00gNEW0000000000009", "g-new-9").await,
        3,
        "lookup + create + add: those pages were every page",
    ));
    drop(relay);

    println!("{:<56} {:>5} {:>5}  reasoning", "event", "calls", "min");
    for (event, calls, min, why) in &rows {
        println!("{event:<56} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn duo_client_for(sim: &duo_sim::DuoSim) -> duo_admin::DuoClient {
    let cfg = sim.config();
    let mut config = duo_admin::DuoConfig::new(
        cfg.host.clone(),
        cfg.ikey.clone(),
        duo_admin::Secret::new(cfg.skey.clone()),
    );
    config.base_url = Some(sim.base_url());
    duo_admin::DuoClient::new(config).unwrap()
}

/// Catch-up (issue 16) reads the System Log through the hook's pipeline
/// with the hook's key: a record the hook delivered costs no Duo call, a
/// missed create costs what the hook's create costs.
#[tokio::test]
async fn catch_up_calls() {
    use relay_core::catch_up::{
        CatchUpConfig, CatchUpOptions, LogApi, LogSource, MemoryCheckpoints,
    };
    use relay_tests::idp_standin::{IdpStandIn, Tenant};

    let fixture = relay_tests::fixture_text("okta/user-lifecycle-create.json");
    let body: serde_json::Value = serde_json::from_str(&fixture).unwrap();
    let event = body["data"]["events"][0].clone();
    let published = relay_core::order::parse_time_ms(event["published"].as_str().unwrap()).unwrap();
    let standin = IdpStandIn::start(Tenant::default()).await;
    standin.push_okta_log(event);
    let env: relay_core::config::RawConfig = standin.okta_env().into_iter().collect();
    let api = LogApi::from_config(&env, LogSource::Okta).unwrap();
    let options = CatchUpOptions {
        source: LogSource::Okta,
        since_ms: Some(published - 1000),
        dry_run: false,
    };
    let run = |relay: std::sync::Arc<relay_tests::served::ServedRelay>| {
        let (api, options) = (api.clone(), options.clone());
        async move {
            relay_core::catch_up::run(
                &relay,
                &api,
                &MemoryCheckpoints::default(),
                &CatchUpConfig::default(),
                &options,
            )
            .await
        }
    };

    // Delivered by the hook, then caught up: a duplicate, 0 Duo calls.
    let delivered = relay_tests::served::serve(&[]).await;
    delivered.deliver("/okta", fixture.clone()).await;
    let hook_calls = delivered.sim.total_calls();
    delivered.sim.reset_calls();
    let summary = run(delivered.relay.clone()).await;
    assert_eq!((summary.records, summary.duplicates), (1, 1), "{summary:?}");
    assert_eq!(delivered.sim.total_calls(), 0);
    assert_eq!(summary.duo_calls, 0);

    // Missed by the hook: the catch-up's create costs the hook's.
    let missed = relay_tests::served::serve(&[]).await;
    let summary = run(missed.relay.clone()).await;
    assert_eq!((summary.records, summary.new), (1, 1), "{summary:?}");
    assert_eq!(missed.sim.total_calls(), hook_calls);
    assert_eq!(
        missed.sim.total_calls(),
        2,
        "lookup (login + alias) + create"
    );
    assert_eq!(summary.duo_calls, 2);
    println!(
        "catch-up of a delivered create: 0 Duo calls; of a missed create: {hook_calls} (the hook's)"
    );
}

/// Attribute mapping (issue 17) adds no Duo call: the mapped username,
/// names and aliases ride in the lookup and the create or modify the event
/// makes anyway.
#[tokio::test]
async fn duo_calls_with_attribute_mapping() {
    let mapped = [
        ("DUO_USERNAME_STRIP_DOMAIN", "true"),
        ("DUO_USERNAME_LOWERCASE", "true"),
        ("DUO_ALIAS1_ATTRIBUTE", "okta:login"),
    ];
    let relay = TestRelay::start_with(&mapped).await;
    let mut rows = Vec::new();
    for (event, fixture, min, why) in [
        (
            "user create (new), username stripped, alias 1 mapped",
            "okta/user-lifecycle-create.json",
            2,
            "lookup + create (aliases in the create)",
        ),
        ("suspend", "okta/suspend.json", 2, "lookup + modify"),
        (
            "membership add, group not in Duo (cold index)",
            "okta/membership-add.json",
            4,
            "lookup + 1 group page + create group + add",
        ),
        ("delete", "okta/delete-initiated.json", 2, "lookup + delete"),
    ] {
        relay.sim.reset_calls();
        assert_eq!(relay.deliver_fixture("/okta", fixture).await.status(), 200);
        rows.push((event, relay.sim.total_calls(), min, why));
    }

    // Auth0: the username and alias 2 from app_metadata (carried by the
    // event), then a user.updated changing only that attribute: a rename.
    let relay = TestRelay::start_with(&[
        ("DUO_USERNAME_ATTRIBUTE", "auth0:app_metadata.duo_user"),
        ("DUO_ALIAS2_ATTRIBUTE", "auth0:email"),
    ])
    .await;
    let created = |name: &str| {
        let mut body: serde_json::Value =
            serde_json::from_str(&relay_tests::fixture_text("auth0/user-created.json")).unwrap();
        body["data"]["object"]["app_metadata"] = serde_json::json!({ "duo_user": name });
        body
    };
    relay.sim.reset_calls();
    let body = created("jdoe").to_string();
    assert_eq!(relay.deliver("/auth0", body).await.status(), 200);
    rows.push((
        "Auth0 user.created, username from app_metadata",
        relay.sim.total_calls(),
        2,
        "lookup + create",
    ));
    let mut updated = created("jdoe2");
    updated["id"] = serde_json::json!("evt_rename_calls");
    updated["type"] = serde_json::json!("user.updated");
    updated["time"] = serde_json::json!("2026-03-11T09:10:00.000Z");
    updated["data"]["previous_object"] = created("jdoe")["data"]["object"].clone();
    relay.sim.reset_calls();
    assert_eq!(
        relay.deliver("/auth0", updated.to_string()).await.status(),
        200
    );
    rows.push((
        "Auth0 user.updated, mapped attribute changed (rename)",
        relay.sim.total_calls(),
        2,
        "lookup (new name, alias, old name) + modify",
    ));
    assert!(relay.sim.user_by_username("jdoe2").is_some());

    println!(
        "{:<56} {:>5} {:>5}  reasoning",
        "event (mapping on)", "calls", "min"
    );
    for (event, calls, min, why) in &rows {
        println!("{event:<56} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
}

/// An event about an excluded Duo account (issue 17 item 4: Duo's directory
/// sync manages it) costs its lookup and nothing else.
#[tokio::test]
async fn duo_calls_on_excluded_accounts() {
    let mut rows = Vec::new();
    for (event, fixture) in [
        ("suspend, directory-synced account", "okta/suspend.json"),
        (
            "membership add, directory-synced account",
            "okta/membership-add.json",
        ),
        (
            "MFA reset (2 phones), directory-synced account",
            "okta/factor-reset-all.json",
        ),
        (
            "delete, directory-synced account",
            "okta/delete-initiated.json",
        ),
    ] {
        let relay = TestRelay::start().await;
        relay.sim.seed(Seed {
            users: vec![SeedUser {
                username: JANE.into(),
                aliases: vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    JANE_ALIAS.into(),
                ],
                last_directory_sync: Some(1_508_789_163),
                phones: 2,
                ..SeedUser::default()
            }],
            ..Seed::default()
        });
        assert_eq!(relay.deliver_fixture("/okta", fixture).await.status(), 200);
        rows.push((event, relay.sim.total_calls(), 1, "lookup only: excluded"));
    }
    println!("{:<56} {:>5} {:>5}  reasoning", "event", "calls", "min");
    for (event, calls, min, why) in &rows {
        println!("{event:<56} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
}

/// `SCOPE_GROUPS` (issue 17 item 2): the user's groups come from the IdP
/// (the stand-in), so a user outside costs the one Duo lookup and nothing
/// else; joining costs what a create and a membership add cost; leaving
/// what a delete costs.
#[tokio::test]
async fn duo_calls_with_scope_groups() {
    use relay_tests::idp_standin::{IdpStandIn, StandInGroup, StandInUser, Tenant};
    let tenant = |member: bool| Tenant {
        users: vec![StandInUser::new("00uNEWUSER0000000001", JANE)],
        groups: vec![StandInGroup::new(
            "00gDUOUSERS000000001",
            "duo-users",
            if member {
                &["00uNEWUSER0000000001"]
            } else {
                &[]
            },
        )],
    };
    let standin = IdpStandIn::start(tenant(false)).await;
    let mut extra = standin.okta_env();
    extra.push(("SCOPE_GROUPS".into(), "duo-users".into()));
    extra.push(("AUTH0_AUTH_SECRET".into(), String::new()));
    let served = relay_tests::served::serve(&extra).await;
    let mut rows = Vec::new();
    let step = |event, fixture: String, min, why| {
        let served = &served;
        async move {
            served.sim.reset_calls();
            served.deliver("/okta", fixture).await;
            (event, served.sim.total_calls(), min, why)
        }
    };
    rows.push(
        step(
            "user create, outside the scope",
            relay_tests::fixture_text("okta/user-lifecycle-create.json"),
            1,
            "lookup only",
        )
        .await,
    );
    standin.with_tenant(|t| *t = tenant(true));
    rows.push(
        step(
            "joins the scope group (cold group index, group not in Duo)",
            relay_tests::fixture_text("okta/membership-add.json"),
            7,
            "plan lookup + (lookup + create user) + (lookup + 1 group page + create group + add)",
        )
        .await,
    );
    standin.with_tenant(|t| *t = tenant(false));
    let mut leave: serde_json::Value =
        serde_json::from_str(&relay_tests::fixture_text("okta/membership-remove.json")).unwrap();
    for t in leave["data"]["events"][0]["target"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|t| t["type"] == "UserGroup")
    {
        t["id"] = serde_json::json!("00gDUOUSERS000000001");
        t["displayName"] = serde_json::json!("duo-users");
    }
    rows.push(
        step(
            "leaves the scope group",
            leave.to_string(),
            3,
            "plan lookup + (lookup + delete)",
        )
        .await,
    );
    // The same join with the IdP API and no SCOPE_GROUPS: the per-user
    // reconcile of the event path (issue 8) costs the same, so the scope
    // adds no Duo call.
    let mut plain_env = standin.okta_env();
    plain_env.push(("AUTH0_AUTH_SECRET".into(), String::new()));
    standin.with_tenant(|t| *t = tenant(true));
    let plain = relay_tests::served::serve(&plain_env).await;
    plain
        .deliver(
            "/okta",
            relay_tests::fixture_text("okta/membership-add.json"),
        )
        .await;
    rows.push((
        "  the same join without SCOPE_GROUPS (API on)",
        plain.sim.total_calls(),
        7,
        "the same: the scope adds no Duo call",
    ));
    println!(
        "{:<60} {:>5} {:>5}  reasoning",
        "event (SCOPE_GROUPS)", "calls", "min"
    );
    for (event, calls, min, why) in &rows {
        println!("{event:<60} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
}

/// A username from a custom Okta attribute (issue 17), read through the
/// Okta API (the stand-in) because the hook event carries only the login:
/// the event path's per-user reconcile (issue 8) costs its plan lookup on
/// top of the operation's own; the mapping adds none.
#[tokio::test]
async fn duo_calls_with_a_username_read_from_the_okta_api() {
    use relay_tests::idp_standin::{IdpStandIn, StandInUser, Tenant};
    let user = |number: &str| {
        StandInUser::new("00uNEWUSER0000000001", JANE)
            .attribute("employeeNumber", serde_json::json!(number))
    };
    let standin = IdpStandIn::start(Tenant {
        users: vec![user("E1")],
        ..Tenant::default()
    })
    .await;
    let mut extra = standin.okta_env();
    extra.push((
        "DUO_USERNAME_ATTRIBUTE".into(),
        "okta:profile.employeeNumber".into(),
    ));
    let served = relay_tests::served::serve(&extra).await;
    let mut rows = Vec::new();
    served
        .deliver(
            "/okta",
            relay_tests::fixture_text("okta/user-lifecycle-create.json"),
        )
        .await;
    rows.push((
        "user create (new), username from profile.employeeNumber",
        served.sim.total_calls(),
        3,
        "plan lookup + (lookup + create)",
    ));
    standin.with_tenant(|t| t.users[0] = user("E2"));
    served.sim.reset_calls();
    served
        .deliver(
            "/okta",
            relay_tests::fixture_text("okta/update-profile.json"),
        )
        .await;
    rows.push((
        "profile update renaming it (attribute changed)",
        served.sim.total_calls(),
        3,
        "plan lookup + (lookup + modify)",
    ));
    assert!(served.sim.user_by_username("E2").is_some());
    println!(
        "{:<60} {:>5} {:>5}  reasoning",
        "event (username via the Okta API)", "calls", "min"
    );
    for (event, calls, min, why) in &rows {
        println!("{event:<60} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
}

/// Phones (issue 17 item 3): what pre-provisioning the mapped mobile number
/// adds to an Auth0 event — at most the calls it must (find the number,
/// create the phone when Duo has none, attach; detach the relay's old one).
#[tokio::test]
async fn duo_calls_with_phones() {
    let relay = TestRelay::start_with(&[("DUO_PHONE_ATTRIBUTE", "auth0:phone_number")]).await;
    let object = |phone: &str| {
        let mut body: serde_json::Value =
            serde_json::from_str(&relay_tests::fixture_text("auth0/user-created.json")).unwrap();
        body["data"]["object"]["phone_number"] = serde_json::json!(phone);
        body
    };
    let updated = |id: &str, minute: u32, phone: &str, before: &str, name: &str| {
        let mut body = object(phone);
        body["id"] = serde_json::json!(id);
        body["type"] = serde_json::json!("user.updated");
        body["time"] = serde_json::json!(format!("2026-03-11T09:{minute:02}:00.000Z"));
        body["data"]["object"]["name"] = serde_json::json!(name);
        let mut previous = body["data"]["object"].clone();
        previous["phone_number"] = serde_json::json!(before);
        previous["name"] = serde_json::json!("Jane Doe");
        body["data"]["previous_object"] = previous;
        body.to_string()
    };
    let mut rows = Vec::new();
    for (event, body, min, why) in [
        (
            "user.created with a mobile number",
            object("+15550100199").to_string(),
            5,
            "lookup + create user + find number + create phone + attach",
        ),
        (
            "user.updated (name), same number",
            updated("evt_n", 10, "+15550100199", "+15550100199", "Jane Q. Doe"),
            2,
            "lookup + modify: the phone is there",
        ),
        (
            "user.updated, number changed",
            updated("evt_p", 20, "+442079460018", "+15550100199", "Jane Q. Doe"),
            5,
            "lookup + find number + create phone + attach + detach the relay's old one",
        ),
        (
            "user.updated, number not a number",
            updated("evt_b", 30, "call me", "+442079460018", "Jane B. Doe"),
            2,
            "lookup + modify: no phone call",
        ),
    ] {
        relay.sim.reset_calls();
        assert_eq!(relay.deliver("/auth0", body).await.status(), 200);
        rows.push((event, relay.sim.total_calls(), min, why));
    }
    println!(
        "{:<56} {:>5} {:>5}  reasoning",
        "event (phones on)", "calls", "min"
    );
    for (event, calls, min, why) in &rows {
        println!("{event:<56} {calls:>5} {min:>5}  {why}");
    }
    for (event, calls, min, _) in rows {
        assert_eq!(calls, min, "{event}");
    }
}
