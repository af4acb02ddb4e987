//! Catch-up from the IdP's own event log (issue 16), end to end: the relay
//! serves hooks on a real socket in front of the Duo simulator, the IdP
//! stand-in serves the System Log / tenant logs on another, and
//! `relay_core::catch_up::run` reads them through the same relay (the same
//! idempotency store and watermarks as the hook).

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use std::collections::{BTreeMap, HashMap};

use duo_sim::DuoSim;
use relay_core::catch_up::{
    CatchUpConfig, CatchUpOptions, CatchUpSummary, LogApi, LogSource, MemoryCheckpoints, RunStatus,
};
use relay_core::config::RawConfig;
use relay_tests::idp_standin::{IdpStandIn, StandInUser, Tenant, okta_user_log_event};
use relay_tests::served::{ServedRelay, serve};
use serde_json::{Value, json};

fn env(pairs: Vec<(String, String)>) -> RawConfig {
    pairs.into_iter().collect::<BTreeMap<_, _>>()
}

async fn catch_up(
    relay: &ServedRelay,
    api: &LogApi,
    checkpoints: &MemoryCheckpoints,
    config: &CatchUpConfig,
) -> CatchUpSummary {
    relay_core::catch_up::run(
        relay,
        api,
        checkpoints,
        config,
        &CatchUpOptions {
            source: api.source(),
            since_ms: None,
            dry_run: false,
        },
    )
    .await
}

// ---- Okta ----

const T0: i64 = 1_764_806_400_000; // replaced by "now − 1 h" in the tests

fn okta_user_target(i: usize) -> Value {
    json!({"id": format!("00uCATCHUP{i:010}"), "type": "User",
           "alternateId": format!("user{i:02}@example.com"),
           "displayName": format!("User{i:02} Tester"), "detailEntry": null})
}

const GROUPS: [(&str, &str); 2] = [
    ("00gDUOUSERS000000001", "duo-users"),
    ("00gFINANCE0000000002", "Finance"),
];

fn okta_event(
    seq: usize,
    at_ms: i64,
    event_type: &str,
    user: usize,
    group: Option<usize>,
) -> Value {
    let target = okta_user_target(user);
    let mut event = okta_user_log_event(
        &format!("c0ffee00-0000-4000-8000-{seq:012}"),
        at_ms,
        event_type,
        target["id"].as_str().unwrap(),
        target["alternateId"].as_str().unwrap(),
    );
    event["target"][0] = target;
    if let Some(g) = group {
        event["target"].as_array_mut().unwrap().push(
            json!({"id": GROUPS[g].0, "type": "UserGroup", "alternateId": "unknown",
                   "displayName": GROUPS[g].1, "detailEntry": null}),
        );
    }
    event
}

/// Each user's story, in time order; users interleaved. A third of the
/// users are deactivated and deleted at the end.
fn okta_story(users: usize, t0: i64) -> Vec<Value> {
    let mut events = Vec::new();
    let steps: &[(&str, Option<usize>)] = &[
        ("user.lifecycle.create", None),
        ("group.user_membership.add", Some(0)),
        ("group.user_membership.add", Some(1)),
        ("user.lifecycle.suspend", None),
        ("user.lifecycle.unsuspend", None),
        ("user.mfa.factor.reset_all", None),
        ("group.user_membership.remove", Some(1)),
        ("user.lifecycle.deactivate", None),
        ("user.lifecycle.delete.initiated", None),
    ];
    for (step, (event_type, group)) in steps.iter().enumerate() {
        for user in 0..users {
            let deleted = user % 3 == 0;
            if step >= 7 && !deleted {
                continue;
            }
            let at = t0 + (step * users + user) as i64 * 1000;
            events.push(okta_event(events.len(), at, event_type, user, *group));
        }
    }
    events
}

fn okta_delivery(event: &Value) -> String {
    json!({"eventType": "com.okta.event_hook", "eventId": format!("d-{}", event["uuid"].as_str().unwrap()),
           "data": {"events": [event]}})
    .to_string()
}

/// Duo as a comparable value: users by username (status, names, aliases,
/// groups), groups by name.
fn duo_state(sim: &DuoSim) -> Value {
    let snap = sim.snapshot();
    let mut users: Vec<Value> = snap
        .users
        .iter()
        .map(|u| {
            let mut groups = u.groups.clone();
            groups.sort();
            json!({"username": u.username, "status": u.status, "realname": u.realname,
                   "email": u.email, "aliases": u.aliases, "groups": groups})
        })
        .collect();
    users.sort_by_key(|u| u["username"].as_str().unwrap().to_owned());
    let mut groups: Vec<Value> = snap
        .groups
        .iter()
        .map(|g| json!({"name": g.name, "desc": g.desc}))
        .collect();
    groups.sort_by_key(|g| g["name"].as_str().unwrap().to_owned());
    json!({"users": users, "groups": groups})
}

/// MFA resets applied, per Duo user: each reset lists the user's bypass
/// codes once, after removing devices.
/// Asserts two `duo_state`s are equal, naming the users that differ.
fn assert_same_state(got: &Value, want: &Value) {
    let users = |v: &Value| v["users"].as_array().unwrap().clone();
    let (got_users, want_users) = (users(got), users(want));
    let differ: Vec<(Option<&Value>, Option<&Value>)> = (0..got_users.len().max(want_users.len()))
        .map(|i| (got_users.get(i), want_users.get(i)))
        .filter(|(a, b)| a != b)
        .collect();
    assert!(differ.is_empty(), "users differ (got, want): {differ:#?}");
    assert_eq!(got, want);
}

fn resets_per_user(sim: &DuoSim) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for call in sim.calls() {
        if call.route == "GET /admin/v1/users/{user_id}/bypass_codes" {
            *out.entry(call.path.clone()).or_default() += 1;
        }
    }
    out
}

fn destructive_calls(sim: &DuoSim) -> Vec<String> {
    sim.calls()
        .into_iter()
        .filter(|c| c.method == "DELETE")
        .map(|c| c.path)
        .collect()
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_a_30_percent_drop_is_healed_by_catch_up() {
    const USERS: usize = 30;
    let t0 = now_ms() - 3_600_000;
    assert!(T0 < t0);
    let events = okta_story(USERS, t0);
    let standin = IdpStandIn::start(Tenant::default()).await;
    for e in &events {
        standin.push_okta_log(e.clone());
    }
    // A small page so the 30-odd users take several pages, and one 429.
    standin.set_max_page(50);
    standin.rate_limit_once("/api/v1/logs");

    // Reference: every delivery arrives, in time order.
    let reference = serve(&[]).await;
    for e in &events {
        reference.deliver("/okta", okta_delivery(e)).await;
    }

    // The run under test: 30 % of deliveries lost at random.
    // The relay's own IdP lookups stay off, as in the reference: only the
    // catch-up reads the stand-in (its log; its tenant is empty).
    let served = serve(&[]).await;
    let mut rng = fastrand::Rng::with_seed(16);
    let lost: Vec<bool> = events.iter().map(|_| rng.f64() < 0.30).collect();
    let dropped = lost.iter().filter(|l| **l).count() as u64;
    for (e, lost) in events.iter().zip(&lost) {
        if !lost {
            served.deliver("/okta", okta_delivery(e)).await;
        }
    }
    assert!(
        dropped > events.len() as u64 / 5,
        "dropped {dropped} of {}",
        events.len()
    );
    // Per user: was the reset lost, and was the user removed from Duo by a
    // delivered deactivation or deletion before the catch-up ran (then
    // the lost reset has no Duo user left to act on).
    let lost_of = |user: usize, event_type: &str| {
        let id = okta_user_target(user)["id"].clone();
        events
            .iter()
            .zip(&lost)
            .any(|(e, l)| *l && e["eventType"] == event_type && e["target"][0]["id"] == id)
    };
    let delivered_of = |user: usize, event_type: &str| {
        let id = okta_user_target(user)["id"].clone();
        events
            .iter()
            .zip(&lost)
            .any(|(e, l)| !*l && e["eventType"] == event_type && e["target"][0]["id"] == id)
    };
    let lost_resets = (0..USERS)
        .filter(|u| lost_of(*u, "user.mfa.factor.reset_all"))
        .count();
    let moot_resets = (0..USERS)
        .filter(|u| {
            lost_of(*u, "user.mfa.factor.reset_all")
                && (delivered_of(*u, "user.lifecycle.deactivate")
                    || delivered_of(*u, "user.lifecycle.delete.initiated"))
        })
        .count();
    assert!(
        lost_resets > moot_resets,
        "the draw must lose resets catch-up can apply"
    );
    assert_ne!(duo_state(&served.sim), duo_state(&reference.sim));

    let api = LogApi::from_config(&env(standin.okta_env()), LogSource::Okta).unwrap();
    let checkpoints = MemoryCheckpoints::default();
    let config = CatchUpConfig::default();
    let calls_before = served.sim.total_calls() as u64;
    let first = catch_up(&served.relay, &api, &checkpoints, &config).await;
    eprintln!("first catch-up: {first:?}");
    assert_eq!(first.status, RunStatus::CaughtUp, "{first:?}");
    assert_eq!(first.records, events.len() as u64);
    assert_eq!(first.new, dropped);
    assert_eq!(first.duplicates, events.len() as u64 - dropped);
    assert_eq!(first.failed, 0);
    assert_eq!(
        first.duo_calls,
        served.sim.total_calls() as u64 - calls_before
    );
    // ceil(events / 50) full or partial pages, the empty last page, the 429.
    let pages = events.len().div_ceil(50) as u64 + 1;
    assert_eq!(first.pages, pages);
    assert_eq!(first.idp_calls, pages + 1);
    assert_eq!(standin.count_status(429), 1);

    // Final Duo state equals the log applied in time order.
    assert_same_state(&duo_state(&served.sim), &duo_state(&reference.sim));
    // Every MFA reset applied exactly once (by the hook or the catch-up),
    // except a lost one whose user a delivered deletion had already
    // removed from Duo (nothing left to reset); never twice.
    let resets = resets_per_user(&served.sim);
    assert!(resets.values().all(|n| *n == 1), "{resets:?}");
    assert_eq!(resets.len(), USERS - moot_resets, "{resets:?}");
    assert_eq!(resets_per_user(&reference.sim).len(), USERS);
    for user in served.sim.snapshot().users {
        let path = format!("/admin/v1/users/{}/bypass_codes", user.user_id);
        assert_eq!(resets.get(&path), Some(&1), "{}", user.username);
    }
    // No destructive operation twice, and as many as the reference made.
    let deletes = destructive_calls(&served.sim);
    let mut unique = deletes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        deletes.len(),
        "a DELETE was doubled: {deletes:?}"
    );
    // A lost membership removal of a user a delivered deletion had already
    // removed needs no call, so the drop run makes at most the reference's
    // DELETEs — and every user deletion the reference made.
    assert!(deletes.len() <= destructive_calls(&reference.sim).len());
    let user_deletes = |sim: &DuoSim| sim.call_count("DELETE /admin/v1/users/{user_id}");
    assert_eq!(user_deletes(&served.sim), user_deletes(&reference.sim));
    assert_eq!(user_deletes(&served.sim), USERS.div_ceil(3));

    // A second run reads from the stored cursor: nothing new, no Duo call.
    let calls_before = served.sim.total_calls();
    let second = catch_up(&served.relay, &api, &checkpoints, &config).await;
    assert_eq!(second.status, RunStatus::CaughtUp, "{second:?}");
    assert_eq!((second.records, second.new, second.duo_calls), (0, 0, 0));
    assert_eq!(served.sim.total_calls(), calls_before);
    assert_eq!(second.pages, 1, "one empty page from the stored cursor");
    // An expired cursor: the run restarts from the last event's time minus
    // the overlap (5 min, more than the story's span), so it re-reads the
    // story as duplicates and applies the two events the hook lost since.
    let late = now_ms() - 60_000;
    for (n, event_type) in [(0, "user.lifecycle.suspend"), (1, "user.lifecycle.suspend")] {
        standin.push_okta_log(okta_event(
            events.len() + n,
            late + n as i64,
            event_type,
            1,
            None,
        ));
    }
    standin.expire_okta_cursors();
    let calls_before = served.sim.total_calls() as u64;
    let third = catch_up(&served.relay, &api, &checkpoints, &config).await;
    assert_eq!(third.status, RunStatus::CaughtUp, "{third:?}");
    assert!(third.cursor_fallback, "{third:?}");
    assert_eq!(
        (third.new, third.duplicates),
        (2, events.len() as u64),
        "{third:?}"
    );
    assert_eq!(
        third.duo_calls,
        served.sim.total_calls() as u64 - calls_before
    );
    assert_eq!(
        served
            .sim
            .user_by_username("user01@example.com")
            .unwrap()
            .status,
        "disabled"
    );
    eprintln!(
        "okta 30% drop: events={} dropped={dropped} (resets lost {lost_resets}, of them moot {moot_resets}) records={} new={} duplicates={} duo_calls={} idp_calls={} state_equal=true; second run records={} duo_calls={}",
        events.len(),
        first.records,
        first.new,
        first.duplicates,
        first.duo_calls,
        first.idp_calls,
        second.records,
        second.duo_calls
    );
}

// ---- Auth0 ----

fn auth0_user(i: usize) -> (String, String) {
    (
        format!("auth0|catchup{i:04}"),
        format!("user{i:02}@example.com"),
    )
}

fn sapi(method: &str, path: &str, body: Value, response: Value) -> Value {
    json!({"type": "sapi", "description": "Management API operation",
           "user_id": "google-oauth2|100000000000000000099",
           "details": {"request": {"method": method, "path": path, "query": {}, "body": body,
                                   "auth": {"user": {"user_id": "google-oauth2|100000000000000000099"}}},
                       "response": {"statusCode": 200, "body": response}}})
}

/// Bare tenant log records (the API's shape), in `log_id` order: each
/// user's story, with a login record (type `s`, not acted on) between
/// steps. A third of the users are deleted at the end.
fn auth0_story(users: usize, t0: i64) -> Vec<Value> {
    let mut records = Vec::new();
    let push = |mut record: Value, records: &mut Vec<Value>| {
        let seq = records.len();
        record["log_id"] = json!(format!("9000{seq:020}"));
        record["date"] = json!(relay_core::time::rfc3339_millis(t0 + seq as i64 * 1000));
        records.push(record);
    };
    for step in 0..5 {
        for user in 0..users {
            let (id, email) = auth0_user(user);
            let path = format!("/api/v2/users/{}", id.replace('|', "%7C"));
            let record = match step {
                0 => sapi(
                    "post",
                    "/api/v2/users",
                    json!({"email": email, "name": format!("User{user:02} Tester"), "connection": "Username-Password-Authentication"}),
                    json!({"user_id": id, "email": email, "name": format!("User{user:02} Tester")}),
                ),
                1 => sapi(
                    "patch",
                    &path,
                    json!({"blocked": true}),
                    json!({"user_id": id, "blocked": true}),
                ),
                2 => sapi(
                    "patch",
                    &path,
                    json!({"blocked": false}),
                    json!({"user_id": id, "blocked": false}),
                ),
                3 => sapi(
                    "delete",
                    &format!("{path}/authenticators"),
                    json!({}),
                    json!({}),
                ),
                _ if user % 3 == 0 => {
                    json!({"type": "sdu", "description": "User was deleted", "user_id": id})
                }
                _ => continue,
            };
            push(record, &mut records);
            push(
                json!({"type": "s", "description": "Successful login", "user_id": id}),
                &mut records,
            );
        }
    }
    records
}

/// A Log Streams delivery of one record (the stream's `{log_id, data}` shape).
fn auth0_delivery(record: &Value) -> String {
    json!([{"log_id": record["log_id"], "data": record}]).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_a_30_percent_drop_is_healed_by_catch_up() {
    const USERS: usize = 15;
    let t0 = now_ms() - 3_600_000;
    let records = auth0_story(USERS, t0);
    let acted_on: Vec<&Value> = records.iter().filter(|r| r["type"] != "s").collect();
    // The tenant as it is at the end of the story, and the relays configured
    // with its Management API, as in production (catch-up reads the log
    // with the same credentials): a user event is then planned against the
    // user's current state. Without it, a lost create would leave the
    // user's next state change (an Auth0 PATCH carries no login to create
    // the user with) recorded as permanently failed, and a catch-up that
    // later applies the create and an older block would not undo it.
    let standin = IdpStandIn::start(Tenant {
        users: (0..USERS)
            .filter(|u| u % 3 != 0)
            .map(|u| {
                let (id, email) = auth0_user(u);
                StandInUser::new(&id, &email).named(&format!("User{u:02}"), "Tester")
            })
            .collect(),
        groups: vec![],
    })
    .await;
    for r in &records {
        standin.push_auth0_log(r.clone());
    }
    standin.set_max_page(20);
    standin.rate_limit_once("/api/v2/logs");

    let reference = serve(&standin.auth0_env()).await;
    for r in &acted_on {
        reference.deliver("/auth0/logs", auth0_delivery(r)).await;
    }
    let served = serve(&standin.auth0_env()).await;
    let mut rng = fastrand::Rng::with_seed(1616);
    let lost: Vec<bool> = acted_on.iter().map(|_| rng.f64() < 0.30).collect();
    let dropped = lost.iter().filter(|l| **l).count() as u64;
    for (r, lost) in acted_on.iter().zip(&lost) {
        if !lost {
            served.deliver("/auth0/logs", auth0_delivery(r)).await;
        }
    }
    // What was lost: MFA resets (actions: no state read heals them). The
    // users deleted by the end of the story are absent from the IdP, so
    // with its API the relay never creates them in Duo: their resets have
    // nothing to act on, in the reference as in the drop run.
    let is = |r: &Value, user: usize, reset: bool| {
        let (id, _) = auth0_user(user);
        if reset {
            r["details"]["request"]["path"]
                == json!(format!(
                    "/api/v2/users/{}/authenticators",
                    id.replace('|', "%7C")
                ))
        } else {
            r["type"] == "sdu" && r["user_id"] == json!(id)
        }
    };
    let lost_reset = |u: usize| {
        acted_on
            .iter()
            .zip(&lost)
            .any(|(r, l)| *l && is(r, u, true))
    };
    let delivered_delete = |u: usize| {
        acted_on
            .iter()
            .zip(&lost)
            .any(|(r, l)| !*l && is(r, u, false))
    };
    let lost_resets = (0..USERS).filter(|u| lost_reset(*u)).count();
    let live = |u: &usize| !u.is_multiple_of(3);
    let lost_live_resets = (0..USERS).filter(|u| live(u) && lost_reset(*u)).count();
    let moot_resets = (0..USERS)
        .filter(|u| lost_reset(*u) && delivered_delete(*u))
        .count();
    assert!(
        lost_live_resets > 0,
        "the draw must lose resets catch-up can apply"
    );
    let live_users = (0..USERS).filter(live).count();
    assert_eq!(resets_per_user(&reference.sim).len(), live_users);
    assert_eq!(
        resets_per_user(&served.sim).len(),
        live_users - lost_live_resets
    );

    let api = LogApi::from_config(&env(standin.auth0_env()), LogSource::Auth0).unwrap();
    let checkpoints = MemoryCheckpoints::default();
    let config = CatchUpConfig::default();
    let calls_before = served.sim.total_calls() as u64;
    let first = catch_up(&served.relay, &api, &checkpoints, &config).await;
    eprintln!("auth0 first catch-up: {first:?}");
    assert_eq!(first.status, RunStatus::CaughtUp, "{first:?}");
    assert_eq!(first.records, records.len() as u64);
    assert_eq!(first.ignored, (records.len() - acted_on.len()) as u64);
    assert_eq!(first.new, dropped);
    assert_eq!(first.duplicates, acted_on.len() as u64 - dropped);
    assert_eq!(first.failed, 0);
    assert_eq!(
        first.duo_calls,
        served.sim.total_calls() as u64 - calls_before
    );
    // The seed search (one record), then pages of 20 from it, the empty
    // last page; plus the token fetch and the 429.
    let pages = 1 + (records.len() - 1).div_ceil(20) as u64 + 1;
    assert_eq!(first.pages, pages);
    // The log client's own calls: its token and the 429 on top.
    assert_eq!(first.idp_calls, pages + 2);
    assert_same_state(&duo_state(&served.sim), &duo_state(&reference.sim));
    // Every lost reset of a live user applied, once.
    let resets = resets_per_user(&served.sim);
    assert!(resets.values().all(|n| *n == 1), "{resets:?}");
    assert_eq!(resets.len(), live_users);
    let deletes = destructive_calls(&served.sim);
    let mut unique = deletes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        deletes.len(),
        "a DELETE was doubled: {deletes:?}"
    );
    let user_deletes = |sim: &DuoSim| sim.call_count("DELETE /admin/v1/users/{user_id}");
    assert_eq!(user_deletes(&served.sim), user_deletes(&reference.sim));

    let calls_before = served.sim.total_calls();
    let second = catch_up(&served.relay, &api, &checkpoints, &config).await;
    assert_eq!(second.status, RunStatus::CaughtUp, "{second:?}");
    assert_eq!((second.records, second.new, second.duo_calls), (0, 0, 0));
    assert_eq!(second.pages, 1);
    assert_eq!(served.sim.total_calls(), calls_before);
    eprintln!(
        "auth0 30% drop: records={} acted_on={} dropped={dropped} (resets lost {lost_resets}, of live users {lost_live_resets}, of users whose deletion arrived {moot_resets}) new={} duplicates={} ignored={} duo_calls={} idp_calls={} state_equal=true; second run duo_calls={}",
        first.records,
        acted_on.len(),
        first.new,
        first.duplicates,
        first.ignored,
        first.duo_calls,
        first.idp_calls,
        second.duo_calls
    );
}

// ---- cost per run ----

/// IdP calls of one catch-up run over 10,000 log records, measured on the
/// stand-in (Okta pages of 1,000, Auth0 pages of 100 — each IdP's largest).
/// The relay plans without Duo ([`DryRun`]): the IdP side is what is
/// measured here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_calls_per_run_at_10k_records() {
    use relay_core::apply::DryRun;
    use relay_core::pipeline::Relay;
    use relay_core::plan::PlanRules;
    use relay_core::store::MemoryStore;
    use relay_core::verify::InboundAuth;

    const N: usize = 10_000;
    let t0 = now_ms() - 3_600_000;
    let standin = IdpStandIn::start(Tenant::default()).await;
    for i in 0..N {
        let at = t0 + i as i64 * 100;
        standin.push_okta_log(okta_event(i, at, "user.lifecycle.suspend", i % 500, None));
        let mut record = json!({"type": "s", "description": "Successful login", "user_id": format!("auth0|u{i}")});
        record["log_id"] = json!(format!("9000{i:020}"));
        record["date"] = json!(relay_core::time::rfc3339_millis(at));
        standin.push_auth0_log(record);
    }
    let raw = env(vec![("OKTA_AUTH_SECRET".into(), "x".repeat(32))]);
    let relay = Relay::new(
        InboundAuth::from_config(&raw).unwrap(),
        PlanRules::from_config(&raw).unwrap(),
        DryRun::default(),
        MemoryStore::default(),
    );
    let mut figures = Vec::new();
    for (source, env_of) in [
        (LogSource::Okta, standin.okta_env()),
        (LogSource::Auth0, standin.auth0_env()),
    ] {
        let api = LogApi::from_config(&env(env_of), source).unwrap();
        standin.reset_requests();
        let summary = relay_core::catch_up::run(
            &relay,
            &api,
            &MemoryCheckpoints::default(),
            &CatchUpConfig::default(),
            &CatchUpOptions {
                source,
                since_ms: None,
                dry_run: false,
            },
        )
        .await;
        assert_eq!(summary.status, RunStatus::CaughtUp, "{summary:?}");
        assert_eq!(summary.records, N as u64);
        assert_eq!(summary.idp_calls, standin.requests().len() as u64);
        figures.push((source, summary.pages, summary.idp_calls));
    }
    eprintln!("IdP calls per catch-up run at {N} records: {figures:?}");
    // Okta: 10 pages of 1,000 and the empty last page.
    assert_eq!(figures[0], (LogSource::Okta, 11, 11));
    // Auth0: the seed search (1 record), 100 pages of at most 100 from it,
    // the empty last page; and the token.
    assert_eq!(figures[1], (LogSource::Auth0, 102, 103));
}

/// The checkpoint moves past a page only when all its records are final: a
/// transient Duo failure stops the run with the checkpoint where it was,
/// and the next run applies the page. The page budget stops a run
/// `behind`, with the checkpoint after the last full page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_holds_the_checkpoint_before_its_page() {
    let t0 = now_ms() - 600_000;
    let standin = IdpStandIn::start(Tenant::default()).await;
    for user in 0..4 {
        standin.push_okta_log(okta_event(
            user,
            t0 + user as i64 * 1000,
            "user.lifecycle.create",
            user,
            None,
        ));
    }
    standin.set_max_page(2);
    let served = serve(&[]).await;
    let api = LogApi::from_config(&env(standin.okta_env()), LogSource::Okta).unwrap();
    let checkpoints = MemoryCheckpoints::default();
    use relay_core::catch_up::CheckpointStore as _;

    // One page only: two users, `behind`, the cursor after page 1.
    let one_page = CatchUpConfig {
        max_pages: 1,
        ..CatchUpConfig::default()
    };
    let first = catch_up(&served.relay, &api, &checkpoints, &one_page).await;
    assert_eq!(first.status, RunStatus::Behind, "{first:?}");
    assert_eq!((first.records, first.new), (2, 2));
    let after_page_1 = checkpoints.load("okta").await.unwrap().unwrap();
    assert!(after_page_1.cursor.as_deref().unwrap().contains("after="));

    // Duo fails every call: the run stops at page 2's first record, and
    // the checkpoint stays after page 1.
    served.sim.set_faults(duo_sim::Faults {
        rate_500: 1.0,
        ..duo_sim::Faults::default()
    });
    let failed = catch_up(&served.relay, &api, &checkpoints, &CatchUpConfig::default()).await;
    assert_eq!(failed.status, RunStatus::EventFailed, "{failed:?}");
    assert_eq!((failed.new, failed.failed), (0, 1), "{failed:?}");
    assert!(
        failed.error.as_deref().unwrap().contains("transiently"),
        "{failed:?}"
    );
    assert_eq!(
        checkpoints.load("okta").await.unwrap().unwrap(),
        after_page_1
    );
    assert!(served.sim.user_by_username("user02@example.com").is_none());

    // Duo is back: the next run applies page 2 and reaches the end.
    served.sim.set_faults(duo_sim::Faults::default());
    let healed = catch_up(&served.relay, &api, &checkpoints, &CatchUpConfig::default()).await;
    assert_eq!(healed.status, RunStatus::CaughtUp, "{healed:?}");
    assert_eq!((healed.records, healed.new, healed.failed), (2, 2, 0));
    for user in 0..4 {
        assert!(
            served
                .sim
                .user_by_username(&format!("user{user:02}@example.com"))
                .is_some()
        );
    }
}

/// An Auth0 checkpoint past retention (the `from` refused): the run reseeds
/// by date from the last event minus the overlap and applies what is new.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_a_checkpoint_past_retention_reseeds_by_date() {
    let t0 = now_ms() - 600_000;
    let story = auth0_story(6, t0);
    let creates: Vec<Value> = story
        .iter()
        .filter(|r| r["details"]["request"]["path"] == "/api/v2/users")
        .cloned()
        .collect();
    let standin = IdpStandIn::start(Tenant::default()).await;
    for r in &creates[..4] {
        standin.push_auth0_log(r.clone());
    }
    let served = serve(&[]).await;
    let api = LogApi::from_config(&env(standin.auth0_env()), LogSource::Auth0).unwrap();
    let checkpoints = MemoryCheckpoints::default();
    let config = CatchUpConfig::default();
    let first = catch_up(&served.relay, &api, &checkpoints, &config).await;
    assert_eq!(
        (first.status, first.new),
        (RunStatus::CaughtUp, 4),
        "{first:?}"
    );
    assert!(!first.cursor_fallback);

    // Two more users; the checkpoint's record (and the ones before it)
    // leave retention.
    for r in &creates[4..] {
        standin.push_auth0_log(r.clone());
    }
    standin.expire_auth0_log_through(creates[3]["log_id"].as_str().unwrap());
    let second = catch_up(&served.relay, &api, &checkpoints, &config).await;
    assert_eq!(second.status, RunStatus::CaughtUp, "{second:?}");
    assert!(second.cursor_fallback, "{second:?}");
    assert_eq!((second.new, second.duplicates), (2, 0), "{second:?}");
    for user in 0..6 {
        assert!(
            served
                .sim
                .user_by_username(&format!("user{user:02}@example.com"))
                .is_some()
        );
    }
}
