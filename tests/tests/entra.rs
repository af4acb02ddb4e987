//! Entra ID end to end (issue 18): Microsoft Graph change notifications
//! posted to the real server on a real socket, Graph read from the Graph
//! stand-in, Duo written in duo-sim. Sync mode and queue mode.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use relay_core::pipeline::run_workers;
use relay_core::queue::QueuePolicy;
use relay_core::queue::disk::DiskQueue;
use relay_tests::graph_standin::{GraphGroup, GraphStandIn, GraphUser};
use relay_tests::served::{Served, serve};

const ADA: &str = "0a1b2c3d-0000-4000-8000-00000000ada1";
const BOB: &str = "0a1b2c3d-0000-4000-8000-000000000b0b";
const ENG: &str = "9e9e9e9e-0000-4000-8000-0000000000e1";

async fn setup(extra: &[(&str, &str)]) -> (Served, GraphStandIn) {
    let graph = GraphStandIn::start(Vec::new(), Vec::new()).await;
    let mut env = graph.env();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    (serve(&env).await, graph)
}

async fn post(served: &Served, query: &str, body: String) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("http://{}/entra{query}", served.addr))
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn notify(served: &Served, items: &[(&str, &str, &str)]) {
    let r = post(served, "", GraphStandIn::notifications(items)).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
}

/// Duo calls that change something.
fn writes(served: &Served) -> usize {
    served
        .sim
        .calls()
        .iter()
        .filter(|c| c.method != "GET")
        .count()
}

#[tokio::test]
async fn the_validation_handshake_echoes_the_decoded_token_as_text() {
    let (served, graph) = setup(&[]).await;
    let token =
        "Validation: Testing client application reachability for subscription Request-Id: 5a4f+x";
    let encoded: String =
        reqwest::Url::parse_with_params("http://x/", [("validationToken", token)])
            .unwrap()
            .query()
            .unwrap()
            .to_owned();
    // Graph's validation POST is text/plain with an empty body.
    let r = reqwest::Client::new()
        .post(format!("http://{}/entra?{encoded}", served.addr))
        .header("Content-Type", "text/plain; charset=utf-8")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), token);
    // Empty or over-long tokens: 400. No Graph, no Duo.
    for query in [
        "?validationToken=",
        &format!("?validationToken={}", "a".repeat(1025)),
    ] {
        let r = post(&served, query, String::new()).await;
        assert_eq!(r.status(), 400, "{query}");
    }
    assert!(graph.requests().is_empty());
    assert_eq!(served.sim.total_calls(), 0);

    // A relay without ENTRA_CLIENT_STATE refuses the handshake: no
    // subscription can point at a relay that would refuse its notifications.
    let bare = serve(&[]).await;
    let r = post(&bare, "?validationToken=abc", String::new()).await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_wrong_client_state_is_refused_with_no_graph_or_duo_call() {
    let (served, graph) = setup(&[]).await;
    graph.put_user(GraphUser::new(ADA, "ada.lovelace@contoso.com"));
    let wrong = GraphStandIn::notifications_with_state(
        &[("created", "Users", ADA)],
        "entra-client-state-0123456789X",
    );
    assert_eq!(post(&served, "", wrong).await.status(), 401);
    // One good item and one bad one: the whole batch is refused.
    let good = GraphStandIn::notifications(&[("created", "Users", ADA)]);
    let mut mixed: serde_json::Value = serde_json::from_str(&good).unwrap();
    let mut bad = mixed["value"][0].clone();
    bad["clientState"] = "nope-nope-nope-nope-nope".into();
    mixed["value"].as_array_mut().unwrap().push(bad);
    assert_eq!(post(&served, "", mixed.to_string()).await.status(), 401);
    // No clientState at all, junk, and an empty batch.
    let mut none: serde_json::Value = serde_json::from_str(&good).unwrap();
    none["value"][0]
        .as_object_mut()
        .unwrap()
        .remove("clientState");
    assert_eq!(post(&served, "", none.to_string()).await.status(), 401);
    assert_eq!(post(&served, "", "junk".into()).await.status(), 401);
    assert_eq!(
        post(&served, "", r#"{"value":[]}"#.into()).await.status(),
        401
    );
    assert!(graph.requests().is_empty(), "{:?}", graph.requests());
    assert_eq!(served.sim.total_calls(), 0);
    // Authenticated but not a notification: 400, still no call.
    let junk = r#"{"value":[{"clientState":"entra-client-state-0123456789","changeType":"updated","resource":"Users/../x"}]}"#;
    assert_eq!(post(&served, "", junk.into()).await.status(), 400);
    assert!(graph.requests().is_empty());
    assert_eq!(served.sim.total_calls(), 0);
}

#[tokio::test]
async fn create_disable_rename_groups_and_delete_reach_duo() {
    let (served, graph) = setup(&[]).await;
    let sim = &served.sim;

    // Create.
    graph.put_user(GraphUser::new(ADA, "ada.lovelace@contoso.com"));
    notify(&served, &[("created", "Users", ADA)]).await;
    let ada = sim.user_by_username("ada.lovelace@contoso.com").unwrap();
    assert_eq!(ada.status, "active");
    assert_eq!(ada.realname, "Ada Lovelace");
    assert!(
        ada.aliases
            .iter()
            .flatten()
            .any(|a| a == &format!("entra:{ADA}")),
        "{:?}",
        ada.aliases
    );

    // Disable.
    let mut user = GraphUser::new(ADA, "ada.lovelace@contoso.com");
    user.enabled = false;
    graph.put_user(user.clone());
    notify(&served, &[("updated", "Users", ADA)]).await;
    assert_eq!(
        sim.user_by_username("ada.lovelace@contoso.com")
            .unwrap()
            .status,
        "disabled"
    );

    // Rename (UPN change): the same Duo user, found by its alias.
    user.enabled = true;
    user.upn = "ada.king@contoso.com".into();
    graph.put_user(user.clone());
    notify(&served, &[("updated", "Users", ADA)]).await;
    let renamed = sim.user_by_username("ada.king@contoso.com").unwrap();
    assert_eq!(renamed.user_id, ada.user_id);
    assert_eq!(renamed.status, "active");
    assert!(sim.user_by_username("ada.lovelace@contoso.com").is_none());

    // Group add: a new group with Ada and Bob (Bob not yet in Duo).
    graph.put_user(GraphUser::new(BOB, "bob.builder@contoso.com"));
    graph.put_group(GraphGroup::new(ENG, "Engineering", &[ADA, BOB]));
    notify(&served, &[("updated", "Groups", ENG)]).await;
    let group = sim.group_by_name("Engineering").unwrap();
    assert!(
        group.desc.starts_with(&format!("entra:{ENG}")),
        "{}",
        group.desc
    );
    assert_eq!(
        sim.user_by_username("ada.king@contoso.com").unwrap().groups,
        ["Engineering"]
    );
    assert_eq!(
        sim.user_by_username("bob.builder@contoso.com")
            .unwrap()
            .groups,
        ["Engineering"]
    );

    // Group remove (and rename of the group in the same change).
    graph.put_group(GraphGroup::new(ENG, "Engineering EU", &[BOB]));
    notify(&served, &[("updated", "Groups", ENG)]).await;
    assert!(sim.group_by_name("Engineering").is_none());
    assert!(
        sim.user_by_username("ada.king@contoso.com")
            .unwrap()
            .groups
            .is_empty()
    );
    assert_eq!(
        sim.user_by_username("bob.builder@contoso.com")
            .unwrap()
            .groups,
        ["Engineering EU"]
    );

    // Delete (DEPROVISION_ACTION defaults to delete).
    graph.delete_user(ADA);
    notify(&served, &[("deleted", "Users", ADA)]).await;
    assert!(sim.user_by_username("ada.king@contoso.com").is_none());

    // Group deleted in Entra: deleted in Duo.
    graph.delete_group(ENG);
    notify(&served, &[("deleted", "Groups", ENG)]).await;
    assert!(sim.group_by_name("Engineering EU").is_none());
    assert!(sim.user_by_username("bob.builder@contoso.com").is_some());
}

#[tokio::test]
async fn deprovision_action_disable_keeps_the_user_disabled() {
    let (served, graph) = setup(&[("DEPROVISION_ACTION", "disable")]).await;
    graph.put_user(GraphUser::new(ADA, "ada@contoso.com"));
    notify(&served, &[("created", "Users", ADA)]).await;
    graph.delete_user(ADA);
    notify(&served, &[("deleted", "Users", ADA)]).await;
    assert_eq!(status_of(&served, "ada@contoso.com"), "disabled");
}

#[tokio::test]
async fn duplicate_and_reordered_notifications_end_in_graphs_current_state() {
    let (served, graph) = setup(&[]).await;
    let sim = &served.sim;
    graph.put_user(GraphUser::new(ADA, "ada@contoso.com"));
    notify(&served, &[("created", "Users", ADA)]).await;

    // The same notification again, alone and three times in one batch:
    // Duo already matches, so no Duo write.
    sim.reset_calls();
    notify(&served, &[("created", "Users", ADA)]).await;
    notify(
        &served,
        &[
            ("updated", "Users", ADA),
            ("updated", "Users", ADA),
            ("updated", "Users", ADA),
        ],
    )
    .await;
    assert_eq!(writes(&served), 0, "{:?}", sim.calls());

    // Disabled, then enabled again in Entra; the "disabled" notification
    // arrives after the "enabled" one. Both read Graph now: active wins.
    notify(&served, &[("updated", "Users", ADA)]).await; // (the enable's)
    notify(&served, &[("updated", "Users", ADA)]).await; // (the late disable's)
    assert_eq!(
        sim.user_by_username("ada@contoso.com").unwrap().status,
        "active"
    );

    // A late "deleted" for a user Entra has again (restored): kept.
    notify(&served, &[("deleted", "Users", ADA)]).await;
    assert!(sim.user_by_username("ada@contoso.com").is_some());
    // created + deleted of one user in one batch, user gone now: deleted once.
    graph.delete_user(ADA);
    notify(
        &served,
        &[("created", "Users", ADA), ("deleted", "Users", ADA)],
    )
    .await;
    assert!(sim.user_by_username("ada@contoso.com").is_none());
}

#[tokio::test]
async fn graph_throttling_is_waited_out() {
    let (served, graph) = setup(&[]).await;
    graph.put_user(GraphUser::new(ADA, "ada@contoso.com"));
    graph.throttle_once("/v1.0/users/", 429, 1);
    let started = Instant::now();
    notify(&served, &[("created", "Users", ADA)]).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert!(served.sim.user_by_username("ada@contoso.com").is_some());
    let statuses: Vec<u16> = graph.requests().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    // 503 with Retry-After too.
    graph.put_user(GraphUser::new(BOB, "bob@contoso.com"));
    graph.throttle_once("/v1.0/users/", 503, 1);
    notify(&served, &[("created", "Users", BOB)]).await;
    assert!(served.sim.user_by_username("bob@contoso.com").is_some());
}

#[tokio::test]
async fn members_are_paged_through_next_links() {
    let (served, graph) = setup(&[]).await;
    graph.page_size(2);
    let ids: Vec<String> = (0..5)
        .map(|i| format!("0a1b2c3d-0000-4000-8000-00000000000{i}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        graph.put_user(GraphUser::new(id, &format!("user{i}@contoso.com")));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    graph.put_group(GraphGroup::new(ENG, "Paged", &refs));
    notify(&served, &[("created", "Groups", ENG)]).await;
    for i in 0..5 {
        let u = served
            .sim
            .user_by_username(&format!("user{i}@contoso.com"))
            .unwrap();
        assert_eq!(u.groups, ["Paged"]);
    }
    let member_pages = graph
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/members/microsoft.graph.user"))
        .count();
    assert_eq!(member_pages, 3);
}

#[tokio::test]
async fn group_filter_applies_to_entra_groups() {
    let (served, graph) = setup(&[("GROUP_FILTER", "^Duo-")]).await;
    graph.put_user(GraphUser::new(ADA, "ada@contoso.com"));
    graph.put_group(GraphGroup::new(ENG, "Engineering", &[ADA]));
    notify(&served, &[("created", "Groups", ENG)]).await;
    assert!(served.sim.group_by_name("Engineering").is_none());
    assert_eq!(served.sim.total_calls(), 0);
}

/// Runs one queue worker on the served relay until `done` (10 s at most).
async fn work_until(queue: &Arc<DiskQueue>, served: &Served, what: &str, done: impl Fn() -> bool) {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(run_workers(
        queue.clone(),
        served.relay.clone(),
        QueuePolicy::default(),
        1,
        async move {
            let _ = stop_rx.await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(());
    workers.await.unwrap();
}

#[tokio::test]
async fn queue_mode_answers_at_once_and_a_worker_applies() {
    let graph = GraphStandIn::start(Vec::new(), Vec::new()).await;
    graph.put_user(GraphUser::new(ADA, "ada@contoso.com"));
    let dir = std::env::temp_dir().join(format!("relay-entra-queue-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let queue = Arc::new(DiskQueue::open(&dir).unwrap());
    let served = relay_tests::served::serve_with_queue(&graph.env(), queue.clone()).await;

    notify(&served, &[("created", "Users", ADA)]).await;
    assert!(graph.requests().is_empty(), "the request reads nothing");
    assert_eq!(served.sim.total_calls(), 0, "the request writes nothing");
    assert_eq!(queue.stats().pending, 1);

    work_until(
        &queue,
        &served,
        "the worker did not apply the notification",
        || served.sim.user_by_username("ada@contoso.com").is_some(),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `reconcile --source entra`: every Graph user and group read, Duo made to
/// match (created, disabled, renamed, memberships, ghosts deprovisioned),
/// and a second run finds nothing to do. Graph calls per run: the token,
/// the user pages, the group pages and one member listing per group (no
/// delta query yet, so a second run costs the same).
#[tokio::test]
async fn reconcile_source_entra_converges_and_a_second_run_changes_nothing() {
    use duo_sim::{Seed, SeedUser};
    use relay_core::idp_sync::run_from_config;
    use relay_core::reconcile::{IdpKind, ReconcileOptions, RunStatus};

    let (mut users, groups) = tenant();
    for (i, u) in users.iter_mut().enumerate() {
        u.enabled = i % 10 != 3;
    }
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let graph = GraphStandIn::start(users, groups).await;
    graph.page_size(7);
    let sim = duo_sim::DuoSim::start().await;
    // Drift: user0 with a stale name, a ghost the relay created earlier.
    sim.seed(Seed {
        users: vec![
            SeedUser {
                username: "user0@contoso.com".into(),
                aliases: vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("entra:{}", ids[0]),
                ],
                realname: "Old Name".into(),
                ..SeedUser::default()
            },
            SeedUser {
                username: "gone@contoso.com".into(),
                aliases: vec![
                    String::new(),
                    String::new(),
                    String::new(),
                    "entra:0a1b2c3d-0000-4000-8000-999999999999".into(),
                ],
                ..SeedUser::default()
            },
        ],
        ..Seed::default()
    });
    let mut raw = relay_tests::duo_env(&sim);
    raw.extend(graph.env());
    let opts = ReconcileOptions::new(IdpKind::Entra);
    let first = run_from_config(&raw, &opts).await.unwrap();
    // 27 enabled users but user0 (in Duo): created; the 3 disabled ones
    // are not created disabled (reconcile's rule for every IdP).
    assert_eq!(first.counts.users_create, 26);
    assert_eq!(first.counts.users_update, 1);
    assert_eq!(first.counts.users_delete, 1);
    // token + 5 user pages (30 by 7) + 1 group page + 3 member listings
    // of 10 members (2 pages each).
    assert_eq!(first.calls.idp, 1 + 5 + 1 + 3 * 2);
    let snapshot = sim.snapshot();
    assert_eq!(snapshot.users.len(), 27);
    assert!(sim.user_by_username("user3@contoso.com").is_none());
    assert_eq!(
        sim.user_by_username("user4@contoso.com").unwrap().groups,
        ["team-1"]
    );
    assert_eq!(
        sim.user_by_username("user0@contoso.com").unwrap().realname,
        "User0 Tester"
    );
    assert!(sim.user_by_username("gone@contoso.com").is_none());

    let again = run_from_config(&raw, &opts).await.unwrap();
    assert_eq!(again.status, RunStatus::Converged);
    assert_eq!(again.counts.actions(), 0);
    assert_eq!(again.calls.duo_apply, 0);
    assert_eq!(again.calls.idp, first.calls.idp);
    println!(
        "reconcile --source entra, 30 users / 3 groups, pages of 7: Graph {} calls first run, {} second; Duo reads {} / {}",
        first.calls.idp, again.calls.idp, first.calls.duo_read, again.calls.duo_read
    );
}

/// `entra subscribe`: creates the users and groups subscriptions — the
/// stand-in validates the URL through the real server's handshake, as
/// Graph does —, renews them on the next run, and re-creates one Graph
/// dropped. A relay without ENTRA_CLIENT_STATE fails the validation.
#[tokio::test]
async fn subscriptions_are_created_validated_renewed_and_recreated() {
    use relay_core::source::EntraApi;
    use relay_core::source::entra::subscription::{LIFETIME_MS, ensure_subscriptions};

    let (served, graph) = setup(&[]).await;
    let raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    let api = EntraApi::from_config(&raw).unwrap().unwrap();
    let url = format!("http://{}/entra", served.addr);
    let state = "entra-client-state-0123456789";
    let now = 1_796_380_800_000;
    let first = ensure_subscriptions(&api, &url, state, now).await.unwrap();
    let actions: Vec<(&str, &str)> = first
        .iter()
        .map(|o| (o.resource.as_str(), o.action))
        .collect();
    assert_eq!(actions, [("users", "created"), ("groups", "created")]);
    assert_eq!(
        first[0].expires,
        relay_core::time::rfc3339_millis(now + LIFETIME_MS)
    );
    let subs = graph.subscriptions();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["changeType"], "created,updated,deleted");
    assert_eq!(subs[0]["lifecycleNotificationUrl"], url.as_str());

    let later = now + 86_400_000;
    let second = ensure_subscriptions(&api, &url, state, later)
        .await
        .unwrap();
    assert!(second.iter().all(|o| o.action == "renewed"), "{second:?}");
    assert_eq!(graph.subscriptions().len(), 2);
    assert_eq!(
        graph.subscriptions()[1]["expirationDateTime"],
        relay_core::time::rfc3339_millis(later + LIFETIME_MS).as_str()
    );

    graph.drop_subscriptions();
    let third = ensure_subscriptions(&api, &url, state, later)
        .await
        .unwrap();
    assert!(third.iter().all(|o| o.action == "created"), "{third:?}");
    // No Duo call at any point.
    assert_eq!(served.sim.total_calls(), 0);

    // The relay at the URL has no ENTRA_CLIENT_STATE: the handshake is
    // refused, Graph refuses the subscription.
    let bare = serve(&[]).await;
    graph.drop_subscriptions();
    let refused =
        ensure_subscriptions(&api, &format!("http://{}/entra", bare.addr), state, later).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(graph.subscriptions().is_empty());
}

/// Attribute mapping applies to Entra users on both paths (a user
/// notification and a group's new member): the username is the UPN
/// without its domain, and a UPN change still renames the same Duo user.
#[tokio::test]
async fn attribute_mapping_applies_to_entra_users_and_group_members() {
    let (served, graph) = setup(&[("DUO_USERNAME_STRIP_DOMAIN", "true")]).await;
    let sim = &served.sim;
    graph.put_user(GraphUser::new(ADA, "ada.lovelace@contoso.com"));
    notify(&served, &[("created", "Users", ADA)]).await;
    let ada = sim.user_by_username("ada.lovelace").unwrap();
    let mut renamed = GraphUser::new(ADA, "ada.king@contoso.com");
    renamed.given = "Ada".into();
    graph.put_user(renamed);
    notify(&served, &[("updated", "Users", ADA)]).await;
    assert_eq!(
        sim.user_by_username("ada.king").unwrap().user_id,
        ada.user_id
    );
    assert!(sim.user_by_username("ada.lovelace").is_none());

    graph.put_user(GraphUser::new(BOB, "bob.builder@contoso.com"));
    graph.put_group(GraphGroup::new(ENG, "Engineering", &[ADA, BOB]));
    notify(&served, &[("created", "Groups", ENG)]).await;
    assert_eq!(
        sim.user_by_username("bob.builder").unwrap().groups,
        ["Engineering"]
    );
    assert_eq!(
        sim.user_by_username("ada.king").unwrap().groups,
        ["Engineering"]
    );
    // Duo already matches: the mapped usernames are recognized as members.
    sim.reset_calls();
    notify(&served, &[("updated", "Groups", ENG)]).await;
    assert_eq!(writes(&served), 0, "{:?}", sim.calls());
}

/// An MFA reset in Entra (an admin deletes a user's security info) reaches
/// Duo through the audit-log poll: the devices go, the user stays; a second
/// poll rereads the overlap and finds a duplicate (0 Duo calls).
#[tokio::test]
async fn an_entra_mfa_reset_removes_the_duo_devices_and_keeps_the_user() {
    use duo_sim::{Seed, SeedUser};
    use relay_core::catch_up::MemoryCheckpoints;
    use relay_core::catch_up::entra_audit::poll_resets;
    use relay_core::source::EntraApi;

    let (served, graph) = setup(&[]).await;
    served.sim.seed(Seed {
        users: vec![SeedUser {
            username: "ada@contoso.com".into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("entra:{ADA}"),
            ],
            phones: 2,
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
    let now = relay_core::time::parse_rfc3339_ms("2026-12-04T12:00:00Z").unwrap();
    graph.add_audit(
        "r1",
        "Admin deleted security info",
        ADA,
        "ada@contoso.com",
        "2026-12-04T11:59:00.000Z",
    );
    graph.add_audit(
        "r2",
        "User registered security info",
        ADA,
        "ada@contoso.com",
        "2026-12-04T11:59:30.000Z",
    );
    // Older than the first poll's 24 h window: not read.
    graph.add_audit(
        "r0",
        "Admin deleted security info",
        BOB,
        "bob@contoso.com",
        "2026-12-02T11:00:00.000Z",
    );
    let raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    let api = EntraApi::from_config(&raw).unwrap().unwrap();
    let checkpoints = MemoryCheckpoints::default();

    served.sim.reset_calls();
    let first = poll_resets(&served.relay, &api, &checkpoints, now)
        .await
        .unwrap();
    assert_eq!(
        (first.records, first.resets, first.applied, first.failed),
        (2, 1, 1, 0),
        "{first:?}"
    );
    let ada = served.sim.user_by_username("ada@contoso.com").unwrap();
    assert!(ada.phones.is_empty(), "{:?}", ada.phones);
    assert_eq!(ada.status, "active");
    println!(
        "entra audit poll: {} Graph calls, {} Duo calls",
        first.graph_calls,
        served.sim.total_calls()
    );

    served.sim.reset_calls();
    let second = poll_resets(&served.relay, &api, &checkpoints, now + 60_000)
        .await
        .unwrap();
    assert_eq!(
        (second.resets, second.applied, second.duplicates),
        (1, 0, 1)
    );
    assert_eq!(served.sim.total_calls(), 0);
}

/// A tenant of 30 users / 3 groups read in pages of 7.
fn tenant() -> (Vec<GraphUser>, Vec<GraphGroup>) {
    let users: Vec<GraphUser> = (0..30)
        .map(|i| {
            GraphUser::new(
                &format!("0a1b2c3d-0000-4000-8000-{i:012}"),
                &format!("user{i}@contoso.com"),
            )
        })
        .collect();
    let ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    let groups = (0..3)
        .map(|g| {
            let members: Vec<&str> = ids.iter().skip(g).step_by(3).map(String::as_str).collect();
            GraphGroup::new(
                &format!("9e9e9e9e-0000-4000-8000-{g:012}"),
                &format!("team-{g}"),
                &members,
            )
        })
        .collect();
    (users, groups)
}

fn uid(i: usize) -> String {
    format!("0a1b2c3d-0000-4000-8000-{i:012}")
}

/// `entra delta`: the first run is a full resync (baseline deltaLinks of
/// now, then a reconcile); the next run reads only what changed since —
/// a disabled user, a UPN rename, a deleted user, a new member — and
/// applies each like a notification; a run with nothing changed costs 2
/// Graph calls and 0 Duo calls; a deltaLink Graph refuses (410 Gone, or
/// 400 syncStateNotFound) means a full resync, then delta again.
#[tokio::test]
async fn delta_catch_up_resyncs_first_then_costs_only_the_changes() {
    use relay_core::catch_up::CheckpointStore;
    use relay_core::catch_up::MemoryCheckpoints;
    use relay_core::catch_up::entra_delta::{GROUPS_KEY, USERS_KEY, catch_up};
    use relay_core::reconcile::RunStatus;
    use relay_core::source::EntraApi;

    let (users, groups) = tenant();
    let graph = GraphStandIn::start(users, groups).await;
    graph.page_size(7);
    let served = serve(&graph.env()).await;
    let sim = &served.sim;
    let raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    let api = EntraApi::from_config(&raw).unwrap().unwrap();
    let checkpoints = MemoryCheckpoints::default();
    let now = 1_796_380_800_000;

    let first = catch_up(&served.relay, &api, &checkpoints, now)
        .await
        .unwrap();
    assert_eq!(first.resync.as_deref(), Some("no deltaLink stored yet"));
    assert_eq!(first.reconcile, Some(RunStatus::Converged));
    // token + 2 deltaLinks of now + the reconcile's reads (5 user pages,
    // 1 group page, 3 member listings of 10 in 2 pages each).
    assert_eq!(first.graph_calls, 1 + 2 + (5 + 1 + 3 * 2));
    assert_eq!(sim.snapshot().users.len(), 30);
    let stored = checkpoints.load(USERS_KEY).await.unwrap().unwrap();
    assert!(
        stored
            .cursor
            .unwrap()
            .contains("/v1.0/users/delta?$deltatoken=")
    );
    assert!(checkpoints.load(GROUPS_KEY).await.unwrap().is_some());

    // Changes in Entra the relay was not told about.
    let mut five = GraphUser::new(&uid(5), "user5@contoso.com");
    five.enabled = false;
    graph.put_user(five);
    graph.put_user(GraphUser::new(&uid(6), "user6.renamed@contoso.com"));
    graph.delete_user(&uid(7)); // in team-1
    graph.put_user(GraphUser::new(&uid(30), "user30@contoso.com"));
    let (_, groups) = tenant();
    let mut team0 = groups[0].clone();
    team0.members.push(uid(30));
    graph.put_group(team0);
    let user6 = sim.user_by_username("user6@contoso.com").unwrap();

    sim.reset_calls();
    graph.reset_requests();
    let second = catch_up(&served.relay, &api, &checkpoints, now + 60_000)
        .await
        .unwrap();
    assert_eq!(second.resync, None);
    assert_eq!((second.users, second.groups), (4, 2), "{second:?}");
    assert_eq!(second.failed, 0);
    assert_eq!(
        sim.user_by_username("user5@contoso.com").unwrap().status,
        "disabled"
    );
    assert_eq!(
        sim.user_by_username("user6.renamed@contoso.com")
            .unwrap()
            .user_id,
        user6.user_id
    );
    assert!(sim.user_by_username("user7@contoso.com").is_none());
    assert_eq!(
        sim.user_by_username("user30@contoso.com").unwrap().groups,
        ["team-0"]
    );
    let delta_pages = graph
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/delta"))
        .count();
    assert_eq!(delta_pages, 2, "one page of users, one of groups");
    // The run counts its own and the planner's Graph calls: the planner's
    // token, 2 delta pages, user + memberOf per changed user (the deleted
    // one's user read answers 404 and memberOf too), and per changed group
    // the group + its members (2 pages of 7: team-0 has 11, team-1 9).
    assert_eq!(second.graph_calls, graph.requests().len() as u64);
    assert_eq!(second.graph_calls, 1 + 2 + 4 * 2 + 2 * (1 + 2));
    println!(
        "entra delta, 4 users and 2 groups changed: {} Graph calls ({delta_pages} delta pages), {} Duo calls",
        second.graph_calls,
        sim.total_calls()
    );

    // Nothing changed: one delta page each, nothing in Duo.
    sim.reset_calls();
    let quiet = catch_up(&served.relay, &api, &checkpoints, now + 120_000)
        .await
        .unwrap();
    assert_eq!(
        (quiet.users, quiet.groups, quiet.resync.as_deref()),
        (0, 0, None)
    );
    assert_eq!(quiet.graph_calls, 2);
    assert_eq!(sim.total_calls(), 0);

    // Graph refuses the stored links: full resync, said in the result,
    // then delta from the new links.
    for (round, status) in [410, 400].into_iter().enumerate() {
        let at = now + 180_000 * (round as i64 + 1);
        graph.refuse_delta_tokens(status);
        let resynced = catch_up(&served.relay, &api, &checkpoints, at)
            .await
            .unwrap();
        let why = resynced.resync.clone().unwrap_or_default();
        assert!(why.contains(&format!("HTTP {status}")), "{why}");
        if status == 400 {
            assert!(why.contains("syncStateNotFound"), "{why}");
        }
        assert_eq!(resynced.reconcile, Some(RunStatus::Converged));
        let after = catch_up(&served.relay, &api, &checkpoints, at + 60_000)
            .await
            .unwrap();
        assert_eq!((after.resync, after.graph_calls), (None, 2));
    }
}

/// The Graph requests since the last reset, as `METHOD path`.
fn graph_calls(graph: &GraphStandIn) -> Vec<String> {
    graph
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// The relay's two subscriptions created in the stand-in for a relay
/// that answers the handshake (Graph validates every new subscription
/// there): that relay, its URL, the subscriptions (users, groups).
async fn subscribed(
    graph: &GraphStandIn,
) -> (
    Served,
    String,
    Vec<relay_core::source::entra::subscription::SubscriptionOutcome>,
) {
    let target = serve(&graph.env()).await;
    let url = format!("http://{}/entra", target.addr);
    let raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    let api = relay_core::source::EntraApi::from_config(&raw)
        .unwrap()
        .unwrap();
    let subs = relay_core::source::entra::subscription::ensure_subscriptions(
        &api,
        &url,
        relay_tests::graph_standin::CLIENT_STATE,
        1_796_380_800_000,
    )
    .await
    .unwrap();
    (target, url, subs)
}

/// A Duo user's status.
fn status_of(served: &Served, username: &str) -> String {
    served.sim.user_by_username(username).unwrap().status
}

/// Lifecycle notifications through the real server (sync mode):
/// `reauthorizationRequired` renews the subscription (one PATCH, which
/// reauthorizes too); `subscriptionRemoved` (and a renewal Graph answers
/// 404) re-creates it at ENTRA_NOTIFICATION_URL, Graph validating the URL
/// through a relay's handshake, then catches up (a full resync the first
/// time); `missed` runs the delta catch-up. No Duo call but the
/// catch-up's. A wrong clientState on a lifecycle notification: 401, no
/// Graph or Duo call.
#[tokio::test]
async fn lifecycle_notifications_renew_recreate_and_catch_up() {
    let graph = GraphStandIn::start(vec![GraphUser::new(ADA, "ada@contoso.com")], Vec::new()).await;
    let (_target, url, subs) = subscribed(&graph).await;
    let mut env = graph.env();
    env.push(("ENTRA_NOTIFICATION_URL".into(), url.clone()));
    let served = serve(&env).await;
    let state = relay_tests::graph_standin::CLIENT_STATE;
    let (users_sub, groups_sub) = (subs[0].id.clone(), subs[1].id.clone());
    let lifecycle =
        |event: &str, sub: &str| GraphStandIn::lifecycle_notification(event, sub, state);

    // A wrong clientState: refused before anything.
    graph.reset_requests();
    let wrong = GraphStandIn::lifecycle_notification(
        "reauthorizationRequired",
        &users_sub,
        "entra-client-state-0123456789X",
    );
    assert_eq!(post(&served, "", wrong).await.status(), 401);
    assert!(graph.requests().is_empty());
    assert_eq!(served.sim.total_calls(), 0);

    // reauthorizationRequired: the token, one PATCH; the expiry moved.
    let before = graph.subscriptions()[0]["expirationDateTime"].clone();
    let r = post(
        &served,
        "",
        lifecycle("reauthorizationRequired", &users_sub),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        graph_calls(&graph),
        [
            format!(
                "POST /{}/oauth2/v2.0/token",
                relay_tests::graph_standin::TENANT
            ),
            format!("PATCH /v1.0/subscriptions/{users_sub}"),
        ]
    );
    assert_ne!(graph.subscriptions()[0]["expirationDateTime"], before);
    assert_eq!(served.sim.total_calls(), 0);

    // subscriptionRemoved: list, create the missing one (validated through
    // the target relay's handshake), renew the one left; then a catch-up
    // of what changed while there was no subscription — no deltaLink yet,
    // so a full resync: links of now, then the reconcile (Ada created).
    graph.remove_subscription(&users_sub);
    graph.reset_requests();
    let r = post(&served, "", lifecycle("subscriptionRemoved", &users_sub)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        graph_calls(&graph),
        [
            "GET /v1.0/subscriptions".to_owned(),
            "POST /v1.0/subscriptions".to_owned(),
            format!("PATCH /v1.0/subscriptions/{groups_sub}"),
            "GET /v1.0/users/delta".to_owned(),
            "GET /v1.0/groups/delta".to_owned(),
            "GET /v1.0/users".to_owned(),
            "GET /v1.0/groups".to_owned(),
        ]
    );
    let now: Vec<String> = graph
        .subscriptions()
        .iter()
        .map(|s| s["resource"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(now, ["groups", "users"]);
    assert_eq!(status_of(&served, "ada@contoso.com"), "active");

    // reauthorizationRequired for a subscription Graph no longer has: the
    // PATCH answers 404, the relay re-creates both and catches up by delta
    // (the links are stored now: one page each).
    graph.drop_subscriptions();
    graph.reset_requests();
    served.sim.reset_calls();
    let r = post(
        &served,
        "",
        lifecycle("reauthorizationRequired", &groups_sub),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(graph.subscriptions().len(), 2);
    assert_eq!(
        graph_calls(&graph).len(),
        1 + 1 + 2 + 2,
        "PATCH 404, list, 2 creations, 2 delta pages: {:?}",
        graph_calls(&graph)
    );
    assert_eq!(served.sim.total_calls(), 0);

    // missed: a change the relay was not told about is caught up from the
    // stored links.
    let mut ada = GraphUser::new(ADA, "ada@contoso.com");
    ada.enabled = false;
    graph.put_user(ada);
    graph.reset_requests();
    served.sim.reset_calls();
    let r = post(&served, "", lifecycle("missed", &users_sub)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(status_of(&served, "ada@contoso.com"), "disabled");
    // 2 delta pages + user + memberOf; Duo as a `disabled` notification.
    assert_eq!(graph.requests().len(), 4, "{:?}", graph_calls(&graph));
    assert_eq!(served.sim.total_calls(), 3);
}

/// Without ENTRA_NOTIFICATION_URL a `subscriptionRemoved` cannot be acted
/// on: answered 200 (Graph must not retry it), nothing created, an error
/// line names the command; no Graph or Duo call.
#[tokio::test]
async fn subscription_removed_without_a_notification_url_creates_nothing() {
    let (served, graph) = setup(&[]).await;
    let body = GraphStandIn::lifecycle_notification(
        "subscriptionRemoved",
        "7f105c7d-0000-4000-8000-000000000001",
        relay_tests::graph_standin::CLIENT_STATE,
    );
    let r = post(&served, "", body).await;
    assert_eq!(r.status(), 200);
    assert!(graph.requests().is_empty(), "{:?}", graph.requests());
    assert!(graph.subscriptions().is_empty());
    assert_eq!(served.sim.total_calls(), 0);
}

/// Queue mode: a lifecycle notification is only enqueued in the request
/// (no Graph call); the worker renews the subscription.
#[tokio::test]
async fn queue_mode_enqueues_lifecycle_notifications_and_a_worker_acts() {
    let graph = GraphStandIn::start(Vec::new(), Vec::new()).await;
    let (_target, _url, subs) = subscribed(&graph).await;
    let state = relay_tests::graph_standin::CLIENT_STATE;
    let before = graph.subscriptions()[0]["expirationDateTime"].clone();
    let dir = std::env::temp_dir().join(format!(
        "relay-entra-lifecycle-queue-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let queue = Arc::new(DiskQueue::open(&dir).unwrap());
    let served = relay_tests::served::serve_with_queue(&graph.env(), queue.clone()).await;

    graph.reset_requests();
    let body = GraphStandIn::lifecycle_notification("reauthorizationRequired", &subs[0].id, state);
    assert_eq!(post(&served, "", body).await.status(), 200);
    assert!(graph.requests().is_empty(), "the request calls no Graph");
    assert_eq!(queue.stats().pending, 1);

    work_until(&queue, &served, "the worker did not renew", || {
        graph.subscriptions()[0]["expirationDateTime"] != before
    })
    .await;
    assert_eq!(served.sim.total_calls(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lifecycle notifications that are junk: without a GUID subscription id
/// → 400; an unknown lifecycle event → 200, skipped; no Graph or Duo call
/// either way.
#[tokio::test]
async fn junk_lifecycle_notifications_make_no_call() {
    let (served, graph) = setup(&[]).await;
    let state = relay_tests::graph_standin::CLIENT_STATE;
    for sub in ["", "../../subscriptions", "not-a-guid!"] {
        let body = GraphStandIn::lifecycle_notification("reauthorizationRequired", sub, state);
        assert_eq!(post(&served, "", body).await.status(), 400, "{sub:?}");
    }
    let body = GraphStandIn::lifecycle_notification(
        "somethingNew",
        "7f105c7d-0000-4000-8000-000000000001",
        state,
    );
    assert_eq!(post(&served, "", body).await.status(), 200);
    assert!(graph.requests().is_empty(), "{:?}", graph.requests());
    assert_eq!(served.sim.total_calls(), 0);
}

/// The scheduled catch-up with source entra — what the three clouds'
/// schedules run (`RELAY_CATCH_UP_SOURCE=entra`, the AWS task
/// `{"relay_task":"catch_up","source":"entra"}`): the first run creates
/// the subscriptions (Graph validating the URL through the real server),
/// resyncs fully and polls the audit log; the next run keeps the
/// subscriptions without a write, applies only what changed (a disabled
/// user) and the MFA reset (devices gone, user kept), and sums it all in
/// one `catch_up` summary; a refused credential is `idp_failed` (exit 4)
/// with no Duo call; a bad ENTRA_AUDIT_LOG is a configuration error
/// before any call.
#[tokio::test]
async fn scheduled_catch_up_source_entra_subscribes_catches_up_and_polls_resets() {
    use duo_sim::{Seed, SeedUser};
    use relay_core::catch_up::{LogSource, RunStatus, run_scheduled};

    let (mut users, groups) = tenant();
    users.push(GraphUser::new(ADA, "ada@contoso.com"));
    let graph = GraphStandIn::start(users, groups).await;
    let served = serve(&graph.env()).await;
    let sim = &served.sim;
    sim.seed(Seed {
        users: vec![SeedUser {
            username: "ada@contoso.com".into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("entra:{ADA}"),
            ],
            phones: 2,
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
    let url = format!("http://{}/entra", served.addr);
    let mut raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
    raw.insert("ENTRA_NOTIFICATION_URL".into(), url.clone());
    raw.insert("ENTRA_AUDIT_LOG".into(), "true".into());
    let task = serde_json::json!({"relay_task": "catch_up", "source": "entra"});
    let checkpoints = served.checkpoints.as_ref();

    sim.reset_calls();
    graph.reset_requests();
    let first = run_scheduled(&served.relay, &raw, checkpoints, Some(&task))
        .await
        .unwrap();
    assert_eq!(
        (first.source, first.status, first.cursor_fallback),
        (LogSource::Entra, RunStatus::CaughtUp, true),
        "{first:?}"
    );
    assert!(first.is_ok() && first.error.is_none(), "{first:?}");
    let subs = graph.subscriptions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    assert!(subs.iter().all(|s| s["notificationUrl"] == url.as_str()));
    assert_eq!(sim.snapshot().users.len(), 31);
    assert_eq!(first.duo_calls, sim.total_calls() as u64);
    assert_eq!(first.idp_calls, graph.requests().len() as u64);
    assert_eq!(first.checkpoint_lag_s, 0, "{first:?}");

    // What the relay was not told: a disabled user, and an admin deleting
    // Ada's security info.
    let mut five = GraphUser::new(&uid(5), "user5@contoso.com");
    five.enabled = false;
    graph.put_user(five);
    let at = relay_core::time::rfc3339_millis(relay_core::state::now_ms() - 60_000);
    graph.add_audit(
        "reset-1",
        "Admin deleted security info",
        ADA,
        "ada@contoso.com",
        &at,
    );
    sim.reset_calls();
    graph.reset_requests();
    let second = run_scheduled(&served.relay, &raw, checkpoints, Some(&task))
        .await
        .unwrap();
    assert_eq!(second.status, RunStatus::CaughtUp, "{second:?}");
    assert!(!second.cursor_fallback);
    // 1 changed user + 1 audit record read, both applied.
    assert_eq!(
        (second.records, second.new, second.duplicates, second.failed),
        (2, 2, 0, 0),
        "{second:?}"
    );
    assert_eq!(status_of(&served, "user5@contoso.com"), "disabled");
    let ada = sim.user_by_username("ada@contoso.com").unwrap();
    assert!(ada.phones.is_empty(), "{:?}", ada.phones);
    assert_eq!(ada.status, "active");
    // The subscriptions have 28 days left: listed, not renewed.
    let calls = graph_calls(&graph);
    assert!(
        calls.iter().any(|c| c == "GET /v1.0/subscriptions"),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c.starts_with("PATCH ")), "{calls:?}");
    assert_eq!(second.idp_calls, calls.len() as u64);
    assert_eq!(second.duo_calls, sim.total_calls() as u64);
    println!(
        "scheduled entra catch-up, 1 user changed + 1 MFA reset: {} Graph calls, {} Duo calls",
        second.idp_calls, second.duo_calls
    );

    // Nothing new: the audit overlap rereads the reset, a duplicate.
    sim.reset_calls();
    let quiet = run_scheduled(&served.relay, &raw, checkpoints, Some(&task))
        .await
        .unwrap();
    assert_eq!(
        (quiet.status, quiet.new, quiet.duplicates),
        (RunStatus::CaughtUp, 0, 1),
        "{quiet:?}"
    );
    assert_eq!(sim.total_calls(), 0);
    // A quiet run's Graph requests: the run's token, the subscription
    // listing, one delta page each for users and groups, one audit page.
    assert_eq!(quiet.idp_calls, 5, "{quiet:?}");

    // A refused client secret: every step fails, no Duo call, exit 4.
    let mut refused = raw.clone();
    refused.insert("ENTRA_CLIENT_SECRET".into(), "not-the-secret".into());
    let failed = run_scheduled(&served.relay, &refused, checkpoints, Some(&task))
        .await
        .unwrap();
    assert_eq!(failed.status, RunStatus::IdpFailed, "{failed:?}");
    assert_eq!(failed.exit_code(), 4);
    let error = failed.error.clone().unwrap_or_default();
    for step in ["subscriptions", "delta catch-up", "audit-log poll"] {
        assert!(error.contains(step), "{error}");
    }
    assert!(!error.contains("not-the-secret"), "{error}");
    assert_eq!(sim.total_calls(), 0);

    // Bad configuration: named, nothing read.
    graph.reset_requests();
    let mut bad = raw.clone();
    bad.insert("ENTRA_AUDIT_LOG".into(), "maybe".into());
    let err = run_scheduled(&served.relay, &bad, checkpoints, Some(&task))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ENTRA_AUDIT_LOG"), "{err}");
    assert!(graph.requests().is_empty());
}

/// `ENTRA_CLIENT_CERTIFICATE` instead of the client secret: the token
/// request carries a PS256 assertion the stand-in verifies as Entra does
/// (thumbprint, audience, issuer, lifetime, signature, a jti never seen
/// before), and a notification is applied as with a secret. A wrong
/// client id is refused at the token endpoint: the scheduled run fails
/// naming ENTRA_CLIENT_CERTIFICATE, with no Duo call.
#[tokio::test]
async fn a_certificate_credential_reads_graph_with_a_signed_assertion() {
    use relay_core::catch_up::{RunStatus, run_scheduled};

    let graph = GraphStandIn::start(Vec::new(), Vec::new()).await;
    let env = graph.env_with_certificate();
    assert!(!env.iter().any(|(k, _)| k == "ENTRA_CLIENT_SECRET"));
    let served = serve(&env).await;
    graph.put_user(GraphUser::new(ADA, "ada.cert@contoso.com"));
    notify(&served, &[("created", "Users", ADA)]).await;
    assert!(
        served
            .sim
            .user_by_username("ada.cert@contoso.com")
            .is_some()
    );
    let calls = graph_calls(&graph);
    let tokens = calls.iter().filter(|c| c.ends_with("/token")).count();
    assert_eq!(tokens, 1, "{calls:?}");

    // The scheduled run with its own client: a second assertion (a new
    // jti, accepted), then a client id Entra does not know (refused).
    let raw: relay_core::config::RawConfig = env.iter().cloned().collect();
    let task = serde_json::json!({"source": "entra"});
    let run = run_scheduled(
        &served.relay,
        &raw,
        served.checkpoints.as_ref(),
        Some(&task),
    )
    .await
    .unwrap();
    assert_eq!(run.status, RunStatus::CaughtUp, "{run:?}");
    let mut wrong = raw.clone();
    wrong.insert("ENTRA_CLIENT_ID".into(), "another-app".into());
    served.sim.reset_calls();
    let refused = run_scheduled(
        &served.relay,
        &wrong,
        served.checkpoints.as_ref(),
        Some(&task),
    )
    .await
    .unwrap();
    assert_eq!(refused.status, RunStatus::IdpFailed, "{refused:?}");
    let error = refused.error.unwrap_or_default();
    assert!(error.contains("ENTRA_CLIENT_CERTIFICATE"), "{error}");
    assert!(!error.contains("PRIVATE KEY"), "{error}");
    assert_eq!(served.sim.total_calls(), 0);
}

/// clientState rotation on the scheduled run: Graph cannot change a
/// subscription's clientState, so when the first ENTRA_CLIENT_STATE value
/// is not the one the subscriptions were made with ("new,old"), the run
/// creates new subscriptions with the new value and deletes the old ones;
/// the next runs (with "new,old", then "new") keep them without a write.
/// The store holds a fingerprint of the value, never the value.
#[tokio::test]
async fn a_new_client_state_recreates_the_subscriptions_on_the_scheduled_run() {
    use relay_core::catch_up::entra::SUBSCRIPTIONS_KEY;
    use relay_core::catch_up::{CheckpointStore, MemoryCheckpoints, RunStatus, run_scheduled};

    const OLD: &str = relay_tests::graph_standin::CLIENT_STATE;
    const NEW: &str = "entra-client-state-NEW-9876543210";
    let graph = GraphStandIn::start(Vec::new(), Vec::new()).await;
    let served = serve(&graph.env()).await;
    let checkpoints = MemoryCheckpoints::default();
    let task = serde_json::json!({"source": "entra"});
    let run = |state: &str| {
        let mut raw: relay_core::config::RawConfig = graph.env().into_iter().collect();
        raw.insert("ENTRA_CLIENT_STATE".into(), state.into());
        raw.insert(
            "ENTRA_NOTIFICATION_URL".into(),
            format!("http://{}/entra", served.addr),
        );
        raw
    };
    let graph_writes = |graph: &GraphStandIn| -> Vec<String> {
        graph_calls(graph)
            .into_iter()
            .filter(|c| {
                c.starts_with("POST /v1.0/sub")
                    || c.starts_with("DELETE ")
                    || c.starts_with("PATCH ")
            })
            .collect()
    };

    let first = run_scheduled(&served.relay, &run(OLD), &checkpoints, Some(&task))
        .await
        .unwrap();
    assert_eq!(first.status, RunStatus::CaughtUp, "{first:?}");
    assert_eq!(graph.subscription_client_states(), [OLD, OLD]);
    let old_ids: Vec<String> = graph
        .subscriptions()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    let stored = checkpoints.load(SUBSCRIPTIONS_KEY).await.unwrap().unwrap();
    let fingerprint = stored.cursor.unwrap();
    assert_eq!(fingerprint.len(), 64);
    assert!(!fingerprint.contains(OLD));

    // The operator sets "new,old": the run rotates.
    graph.reset_requests();
    let rotated = run_scheduled(
        &served.relay,
        &run(&format!("{NEW},{OLD}")),
        &checkpoints,
        Some(&task),
    )
    .await
    .unwrap();
    assert_eq!(rotated.status, RunStatus::CaughtUp, "{rotated:?}");
    assert_eq!(graph.subscription_client_states(), [NEW, NEW]);
    let subs = graph.subscriptions();
    assert!(
        subs.iter()
            .all(|s| !old_ids.contains(&s["id"].as_str().unwrap().to_owned()))
    );
    let calls = graph_writes(&graph);
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("POST")).count(),
        2,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| c.starts_with("DELETE")).count(),
        2,
        "{calls:?}"
    );
    let stored = checkpoints.load(SUBSCRIPTIONS_KEY).await.unwrap().unwrap();
    assert_ne!(stored.cursor.unwrap(), fingerprint);

    // Rotation done: with "new,old" and then "new" alone, no write.
    for state in [format!("{NEW},{OLD}"), NEW.to_owned()] {
        graph.reset_requests();
        let kept = run_scheduled(&served.relay, &run(&state), &checkpoints, Some(&task))
            .await
            .unwrap();
        assert_eq!(kept.status, RunStatus::CaughtUp, "{kept:?}");
        assert!(
            graph_writes(&graph).is_empty(),
            "{:?}",
            graph_writes(&graph)
        );
        assert_eq!(graph.subscription_client_states(), [NEW, NEW]);
    }

    // A relay upgraded mid-rotation (no fingerprint, two values): rotates.
    let fresh = MemoryCheckpoints::default();
    graph.reset_requests();
    let upgraded = run_scheduled(
        &served.relay,
        &run(&format!("{OLD},{NEW}")),
        &fresh,
        Some(&task),
    )
    .await
    .unwrap();
    assert_eq!(upgraded.status, RunStatus::CaughtUp, "{upgraded:?}");
    assert_eq!(graph.subscription_client_states(), [OLD, OLD]);
    // Duo was only read (the first run's full resync).
    assert_eq!(writes(&served), 0);
}
