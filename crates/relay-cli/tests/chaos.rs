//! The chaos test of queue mode (`RELAY_MODE=queue`): nothing lost, nothing
//! doubled, nothing stale wins, no login inherited — with the real
//! `idp-duo-relay serve` process, over real sockets, against `duo-sim`.
//!
//! 2,000 Okta events over 200 logins (creates, suspensions, memberships, MFA
//! resets, deletes), each delivered 3 times, in shuffled order, by a sender
//! that retries refused deliveries as an IdP would. 40 logins are deleted and
//! created again under a new Okta id (10 of them twice: three identities),
//! so the events of two or three people share a login and arrive in any
//! order. For part of the run Duo answers 30% of calls with 429 or 500, loses
//! or cuts short the answers of some writes it applied, and answers 404 to a
//! delete of something already gone; halfway through, the relay is killed
//! with SIGKILL and started again on the same state directory. The run ends
//! when the relay's queue is empty (bounded wait). Then:
//! - the final Duo state equals the state the event log implies when applied
//!   in event-time order (so no event was lost and no stale event won), and
//!   every login's account carries its last identity's id;
//! - no Duo account ever went from one identity's id to another's (0 wrong
//!   adoptions), and every deleted account belonged to an identity the log
//!   deletes, each deleted once (0 wrong deletes), from the simulator's
//!   history;
//! - every MFA reset detached each device exactly once, from the
//!   simulator's history;
//! - no dead letters.
//!
//! It lives in relay-cli because it runs this package's binary. Figures are
//! printed (`--nocapture` or nextest's output on failure).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use duo_sim::{DuoSim, Faults, Seed, SeedGroup, SeedUser};
use serde_json::{Value, json};

const USERS: usize = 200;
const SEEDED: usize = 150;
const GROUPS: usize = 10;
const EVENTS: usize = 2000;
const COPIES: usize = 3;
const SECRET: &str = "chaos-test-shared-secret-0123456789";

/// How many identities hold login `i` over the run: 40 logins are deleted
/// and created again under a new Okta id, 10 of those twice.
fn identities(i: usize) -> usize {
    match (i % 5, i % 20) {
        (2, 2) => 3,
        (2, _) => 2,
        _ => 1,
    }
}
/// The Okta id of login `i`'s `generation`-th identity.
fn user_id(i: usize, generation: usize) -> String {
    format!("00uCHAOS{i:06}G{generation:05}")
}
fn login(i: usize) -> String {
    format!("user{i:03}@chaos.example")
}
fn group_id(j: usize) -> String {
    format!("00gCHAOS{j:012}")
}
fn group_name(j: usize) -> String {
    format!("chaos-g{j}")
}

#[derive(Debug, Clone)]
enum Ev {
    Create,
    Suspend,
    Unsuspend,
    Add(usize),
    Remove(usize),
    Reset,
    Delete,
}

/// One event of the log: its time (ms), the login, the identity's
/// generation, what happened.
type Entry = (i64, usize, usize, Ev);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Expected {
    exists: bool,
    active: bool,
    groups: BTreeSet<String>,
    /// The identity that holds the login at the end.
    generation: usize,
    /// The account at the end is the seeded one (not made during the run).
    seeded_account: bool,
    /// The seeded account's devices were reset.
    seeded_reset: bool,
}

/// The event log, in time order.
fn generate(rng: &mut fastrand::Rng) -> Vec<Entry> {
    let reset_users: BTreeSet<usize> = (0..SEEDED).filter(|i| i % 3 == 0).collect();
    let delete_users: BTreeSet<usize> = (0..USERS).filter(|i| i % 10 == 7).collect();
    // Creates of logins not seeded, resets, final deletes, and a delete +
    // create per re-creation.
    let fixed: usize = (SEEDED..USERS).count()
        + reset_users.len()
        + delete_users.len()
        + (0..USERS).map(|i| 2 * (identities(i) - 1)).sum::<usize>();
    let mut random: Vec<Vec<Ev>> = vec![Vec::new(); USERS];
    for _ in 0..EVENTS - fixed {
        let ev = match rng.u8(0..4) {
            0 => Ev::Suspend,
            1 => Ev::Unsuspend,
            2 => Ev::Add(rng.usize(0..GROUPS)),
            _ => Ev::Remove(rng.usize(0..GROUPS)),
        };
        random[rng.usize(0..USERS)].push(ev);
    }
    // Per-login lists in that login's own order: the random events split
    // between its identities, each identity but the last ending with its
    // delete, each but the first starting with its create.
    let mut per_user: Vec<Vec<(usize, Ev)>> = Vec::with_capacity(USERS);
    for (i, events) in random.into_iter().enumerate() {
        let mut splits: Vec<usize> = (1..identities(i))
            .map(|_| rng.usize(0..=events.len()))
            .collect();
        splits.sort_unstable();
        let mut out = Vec::new();
        if i >= SEEDED {
            out.push((0, Ev::Create));
        }
        let mut generation = 0;
        let mut first_delete = None;
        for k in 0..=events.len() {
            while splits.first() == Some(&k) {
                splits.remove(0);
                first_delete.get_or_insert(out.len());
                out.push((generation, Ev::Delete));
                generation += 1;
                out.push((generation, Ev::Create));
            }
            if let Some(ev) = events.get(k) {
                out.push((generation, ev.clone()));
            }
        }
        if reset_users.contains(&i) {
            // A reset of the seeded account: while its first identity has it.
            let end = first_delete.unwrap_or(out.len());
            out.insert(rng.usize(0..=end), (0, Ev::Reset));
        }
        if delete_users.contains(&i) {
            out.push((generation, Ev::Delete));
        }
        per_user.push(out);
    }
    // Interleave logins along one timeline, keeping each login's order.
    let mut cursors = vec![0usize; USERS];
    let mut log = Vec::with_capacity(EVENTS);
    let t0 = 1_767_225_600_000i64; // 2026-01-01T00:00:00Z
    while log.len() < EVENTS {
        let u = rng.usize(0..USERS);
        if let Some((generation, ev)) = per_user[u].get(cursors[u]) {
            let t = t0 + i64::try_from(log.len()).expect("small") * 1000;
            log.push((t, u, *generation, ev.clone()));
            cursors[u] += 1;
        }
    }
    log
}

fn expected(log: &[Entry]) -> Vec<Expected> {
    let mut state: Vec<Expected> = (0..USERS)
        .map(|i| Expected {
            exists: i < SEEDED,
            active: true,
            seeded_account: i < SEEDED,
            ..Expected::default()
        })
        .collect();
    for (_, u, generation, ev) in log {
        let s = &mut state[*u];
        match ev {
            // A new identity gets an account of its own.
            Ev::Create if *generation > 0 => {
                *s = Expected {
                    exists: true,
                    active: true,
                    generation: *generation,
                    seeded_reset: s.seeded_reset,
                    ..Expected::default()
                };
            }
            Ev::Create => s.exists = true,
            Ev::Suspend => {
                s.exists = true;
                s.active = false;
            }
            Ev::Unsuspend => {
                s.exists = true;
                s.active = true;
            }
            Ev::Add(g) => {
                s.exists = true;
                s.groups.insert(group_name(*g));
            }
            Ev::Remove(g) => {
                s.groups.remove(&group_name(*g));
            }
            Ev::Reset => s.seeded_reset = true,
            Ev::Delete => {
                s.exists = false;
                s.seeded_account = false;
            }
        }
    }
    state
}

fn okta_event(seq: usize, t: i64, u: usize, generation: usize, ev: &Ev) -> Value {
    let user = json!({"id": user_id(u, generation), "type": "User", "alternateId": login(u), "displayName": format!("User {u}")});
    let group = |g: usize| json!({"id": group_id(g), "type": "UserGroup", "alternateId": "unknown", "displayName": group_name(g)});
    let (event_type, target) = match ev {
        Ev::Create => ("user.lifecycle.create", json!([user])),
        Ev::Suspend => ("user.lifecycle.suspend", json!([user])),
        Ev::Unsuspend => ("user.lifecycle.unsuspend", json!([user])),
        Ev::Add(g) => ("group.user_membership.add", json!([user, group(*g)])),
        Ev::Remove(g) => ("group.user_membership.remove", json!([user, group(*g)])),
        Ev::Reset => ("user.mfa.factor.reset_all", json!([user])),
        Ev::Delete => ("user.lifecycle.delete.initiated", json!([user])),
    };
    json!({
        "uuid": format!("chaos-{seq:05}"),
        "published": relay_core::time::rfc3339_millis(t),
        "eventType": event_type,
        "version": "0",
        "displayMessage": event_type,
        "severity": "INFO",
        "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@chaos.example"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": target,
    })
}

struct RelayProcess {
    child: Child,
    log: PathBuf,
}

fn start_relay(sim: &DuoSim, state: &Path, port: u16, generation: usize) -> RelayProcess {
    let cfg = sim.config();
    let log = state.join(format!("relay-{generation}.log"));
    let out = std::fs::File::create(&log).expect("relay log file");
    let child = Command::new(env!("CARGO_BIN_EXE_idp-duo-relay"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DUO_API_HOST", &cfg.host)
        .env("DUO_IKEY", &cfg.ikey)
        .env("DUO_SKEY", &cfg.skey)
        .env("DUO_API_URL", sim.base_url())
        .env("DUO_RATE_PER_MINUTE", "off")
        .env("OKTA_AUTH_SECRET", SECRET)
        .env("RELAY_MODE", "queue")
        .env("RELAY_STATE_DIR", state)
        .env("RELAY_QUEUE_BACKOFF_MS", "100")
        .env("RELAY_QUEUE_MAX_ATTEMPTS", "40")
        .env("RELAY_QUEUE_CONCURRENCY", "6")
        .env("RELAY_LOG_FORMAT", "json")
        .env("PORT", port.to_string())
        .stdout(out.try_clone().expect("log handle"))
        .stderr(out)
        .spawn()
        .expect("start idp-duo-relay serve");
    RelayProcess { child, log }
}

fn tail(path: &Path) -> String {
    let mut s = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

async fn wait_healthy(http: &reqwest::Client, base: &str, relay: &RelayProcess) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
            && let Ok(text) = r.text().await
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "relay did not become healthy; its log:\n{}",
            tail(&relay.log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_mode_survives_duplicates_shuffling_faults_and_a_kill() {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(0x000c_4a05);
    let sim = DuoSim::start().await;
    sim.seed(Seed {
        groups: (0..GROUPS)
            .map(|j| SeedGroup {
                name: group_name(j),
                desc: format!("okta:{} synced by idp-duo-relay", group_id(j)),
                ..SeedGroup::default()
            })
            .collect(),
        users: (0..SEEDED)
            .map(|i| SeedUser {
                username: login(i),
                realname: format!("User {i}"),
                phones: 2,
                tokens: 1,
                // A login that will be re-created: its account already
                // carries its first identity's id (as the relay or a
                // reconcile left it). The others carry none: the relay
                // adopts them.
                aliases: if identities(i) > 1 {
                    vec![
                        String::new(),
                        String::new(),
                        String::new(),
                        format!("okta:{}", user_id(i, 0)),
                    ]
                } else {
                    Vec::new()
                },
                ..SeedUser::default()
            })
            .collect(),
    });
    let seeded_ids: HashMap<String, usize> = (0..SEEDED)
        .map(|i| {
            let u = sim.user_by_username(&login(i)).expect("seeded user");
            (u.user_id, i)
        })
        .collect();

    let log = generate(&mut rng);
    let want = expected(&log);

    // Deliveries: batches of 1–4 events of the log, each sent COPIES times,
    // all shuffled.
    let mut events: Vec<Value> = log
        .iter()
        .enumerate()
        .map(|(seq, (t, u, generation, ev))| okta_event(seq, *t, *u, *generation, ev))
        .collect();
    rng.shuffle(&mut events);
    let mut deliveries = Vec::new();
    let mut rest = &events[..];
    while !rest.is_empty() {
        let n = rng.usize(1..=4).min(rest.len());
        let body =
            json!({"eventType": "com.okta.event_hook", "data": {"events": &rest[..n]}}).to_string();
        for _ in 0..COPIES {
            deliveries.push(body.clone());
        }
        rest = &rest[n..];
    }
    rng.shuffle(&mut deliveries);
    let total = deliveries.len();

    let dir = std::env::temp_dir().join(format!("relay-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("state dir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client");
    let mut relay = start_relay(&sim, &dir, port, 0);
    wait_healthy(&http, &base, &relay).await;

    // Send with 8 concurrent senders; a refused or failed delivery is sent
    // again (an IdP retries a non-2xx), until it is answered 200.
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let resent = Arc::new(AtomicUsize::new(0));
    let deliveries = Arc::new(deliveries);
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (next, sent, resent, deliveries, http, url) = (
            next.clone(),
            sent.clone(),
            resent.clone(),
            deliveries.clone(),
            http.clone(),
            format!("{base}/okta"),
        );
        senders.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(body) = deliveries.get(i) else { break };
                let give_up = Instant::now() + Duration::from_secs(120);
                loop {
                    let answer = http
                        .post(&url)
                        .header("Authorization", SECRET)
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    if matches!(&answer, Ok(r) if r.status() == 200) {
                        break;
                    }
                    assert!(
                        Instant::now() < give_up,
                        "delivery {i} never accepted: {answer:?}"
                    );
                    resent.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    // The script: faults on at 20% of deliveries, a SIGKILL + restart at
    // 50%, faults off at 60%.
    let mut faults_on = false;
    let mut faults_since = Instant::now();
    let mut faults_done = false;
    let mut restarts = 0;
    loop {
        let done = sent.load(Ordering::SeqCst);
        if !faults_on && !faults_done && done >= total / 5 {
            sim.set_faults(Faults {
                rate_429: 0.15,
                rate_500: 0.15,
                rate_lost_answer: 0.2,
                rate_truncated: 0.1,
                absent_delete_not_found: true,
                seed: Some(7),
                ..Faults::default()
            });
            faults_on = true;
            faults_since = Instant::now();
        }
        if restarts == 0 && done >= total / 2 {
            relay.child.kill().expect("SIGKILL the relay");
            let _ = relay.child.wait();
            restarts += 1;
            relay = start_relay(&sim, &dir, port, restarts);
            wait_healthy(&http, &base, &relay).await;
        }
        // At least 5 s of faults, so they hit the workers and not only the
        // accept stage (which makes no Duo call).
        if faults_on && done >= total * 3 / 5 && faults_since.elapsed() >= Duration::from_secs(5) {
            sim.set_faults(Faults::default());
            faults_on = false;
            faults_done = true;
        }
        if senders.is_empty() && !faults_on {
            break;
        }
        if let Some(joined) = tokio::time::timeout(Duration::from_millis(20), senders.join_next())
            .await
            .ok()
            .flatten()
        {
            joined.expect("a sender panicked");
        }
    }
    sim.set_faults(Faults::default());
    let faults_injected = sim
        .calls()
        .iter()
        .filter(|c| c.status == 429 || c.status >= 500)
        .count();

    // The run ends by itself: wait (bounded) for the queue to drain.
    let deadline = Instant::now() + Duration::from_secs(240);
    let health = loop {
        let h = wait_healthy(&http, &base, &relay).await;
        let q = &h["queue"];
        if q["pending"] == 0 && q["in_flight"] == 0 {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "queue did not drain: {h}; relay log:\n{}",
            tail(&relay.log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = relay.child.kill();
    let _ = relay.child.wait();

    // Final state equals the event log applied in time order.
    let snap = sim.snapshot();
    let by_name: HashMap<&str, &duo_sim::SimUser> = snap
        .users
        .iter()
        .map(|u| (u.username.as_str(), u))
        .collect();
    let mut wrong = Vec::new();
    for (i, want) in want.iter().enumerate() {
        let got = by_name.get(login(i).as_str());
        match (want.exists, got) {
            (false, None) => {}
            (false, Some(_)) => wrong.push(format!("{}: should be deleted", login(i))),
            (true, None) => wrong.push(format!("{}: missing", login(i))),
            (true, Some(u)) => {
                let active = u.status == "active";
                if active != want.active {
                    wrong.push(format!(
                        "{}: status {} want active={}",
                        login(i),
                        u.status,
                        want.active
                    ));
                }
                let groups: BTreeSet<String> = u.groups.iter().cloned().collect();
                if groups != want.groups {
                    wrong.push(format!(
                        "{}: groups {groups:?} want {:?}",
                        login(i),
                        want.groups
                    ));
                }
                let devices = u.phones.len() + u.tokens.len();
                let want_devices = if want.seeded_account && !want.seeded_reset {
                    3
                } else {
                    0
                };
                if devices != want_devices {
                    wrong.push(format!(
                        "{}: {devices} devices want {want_devices}",
                        login(i)
                    ));
                }
                // The last identity's id. A seeded account without one keeps
                // none when nothing wrote to it (a reset or a removal alone).
                let alias = format!("okta:{}", user_id(i, want.generation));
                let may_lack = want.seeded_account && identities(i) == 1;
                if u.aliases[3].as_deref().is_some_and(|a| a != alias)
                    || (!may_lack && u.aliases[3].is_none())
                {
                    wrong.push(format!(
                        "{}: alias slot 4 {:?} want {alias}",
                        login(i),
                        u.aliases[3]
                    ));
                }
            }
        }
    }
    let dup_names = snap.users.len()
        - snap
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<BTreeSet<_>>()
            .len();
    assert_eq!(dup_names, 0, "duplicate Duo users were created");
    assert_eq!(snap.groups.len(), GROUPS, "no duplicate groups");

    // Identities, from the simulator's history. A wrong adoption: an account
    // that went from one identity's id to another's. A wrong delete: an
    // account deleted that belonged to an identity the log does not delete
    // (the last identity of a login that is not deleted at the end), or an
    // identity's account deleted twice.
    let history = sim.history();
    let wrong_adoptions: Vec<String> = history
        .alias_changes
        .iter()
        .filter(|c| c.from.starts_with("okta:") || c.to.starts_with("okta:"))
        .map(|c| format!("{} ({}): {} -> {}", c.username, c.user_id, c.from, c.to))
        .collect();
    let deleted_at_end: BTreeSet<usize> = (0..USERS).filter(|i| i % 10 == 7).collect();
    let mut wrong_deletes = Vec::new();
    let mut deleted_identities: BTreeMap<String, usize> = BTreeMap::new();
    for d in &history.deleted_users {
        let Some(i) = (0..USERS).find(|i| login(*i) == d.username) else {
            wrong_deletes.push(format!("{} ({}): not a chaos login", d.username, d.user_id));
            continue;
        };
        let generation = match d.aliases[3].as_deref() {
            Some(alias) => (0..identities(i)).find(|g| alias == format!("okta:{}", user_id(i, *g))),
            // An account without an id can only be the seeded one of a
            // login with a single identity.
            None => (identities(i) == 1).then_some(0),
        };
        let Some(generation) = generation else {
            wrong_deletes.push(format!(
                "{}: deleted an account bound to {:?}",
                d.username, d.aliases[3]
            ));
            continue;
        };
        let last = generation + 1 == identities(i);
        if last && !deleted_at_end.contains(&i) {
            wrong_deletes.push(format!(
                "{}: deleted the account of {} (never deleted in the IdP)",
                d.username,
                user_id(i, generation)
            ));
        }
        *deleted_identities
            .entry(user_id(i, generation))
            .or_default() += 1;
    }
    let doubled_deletes = deleted_identities.values().filter(|n| **n > 1).count();

    // Exactly once, from the simulator's history: each reset device
    // detached once (whatever answers were lost on the way).
    let calls = sim.calls();
    let mut detaches: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in &history.detached {
        *detaches
            .entry((d.user_id.clone(), d.device_id.clone()))
            .or_default() += 1;
    }
    let doubled_detaches = detaches.values().filter(|n| **n > 1).count();
    let resets = log
        .iter()
        .filter(|(_, _, _, e)| matches!(e, Ev::Reset))
        .count();
    // Detaches per seeded account: 3 (2 phones + 1 token) for every reset
    // account that still exists; one deleted after its reset may have been
    // deleted before the (older) reset arrived: then the reset is stale and
    // detaches nothing.
    let mut detached_per_user: HashMap<String, usize> = HashMap::new();
    for (user, _) in detaches.keys() {
        *detached_per_user.entry(user.clone()).or_default() += 1;
    }
    let mut reset_wrong = Vec::new();
    for (id, i) in &seeded_ids {
        let n = detached_per_user.get(id).copied().unwrap_or(0);
        let w = &want[*i];
        let ok = match (w.seeded_reset, w.seeded_account) {
            (true, true) => n == 3,
            (true, false) => n <= 3,
            (false, _) => n == 0,
        };
        if !ok {
            reset_wrong.push(format!("{}: {n} devices detached", login(*i)));
        }
    }
    // Every seeded account whose identity the log deletes was deleted, once.
    let seeded_deleted: Vec<&String> = seeded_ids
        .iter()
        .filter(|(_, i)| !want[**i].seeded_account)
        .map(|(id, _)| id)
        .collect();
    let seeded_deleted_once = seeded_deleted
        .iter()
        .filter(|id| {
            history
                .deleted_users
                .iter()
                .filter(|d| &d.user_id == **id)
                .count()
                == 1
        })
        .count();
    let recreations = log
        .iter()
        .filter(|(_, _, generation, e)| *generation > 0 && matches!(e, Ev::Create))
        .count();
    let lost_answers = calls.iter().filter(|c| c.lost_answer).count();

    println!("chaos figures:");
    println!(
        "  events                 {EVENTS} over {USERS} logins ({resets} MFA resets, {} deletes)",
        log.iter()
            .filter(|(_, _, _, e)| matches!(e, Ev::Delete))
            .count()
    );
    println!(
        "  re-created logins      {recreations} re-creations under a new Okta id ({} logins with 2 identities, {} with 3)",
        (0..USERS).filter(|i| identities(*i) == 2).count(),
        (0..USERS).filter(|i| identities(*i) == 3).count()
    );
    println!("  deliveries             {total} ({COPIES}x duplicated, shuffled, 1-4 events each)");
    println!(
        "  deliveries re-sent     {} (refused while the relay was down or restarting)",
        resent.load(Ordering::Relaxed)
    );
    println!(
        "  Duo faults injected    {faults_injected} 429/5xx answers, of which {lost_answers} lost answers of applied writes (+ truncated answers, absent deletes answered 404)"
    );
    println!("  relay restarts         {restarts} (SIGKILL mid-run)");
    println!("  Duo calls              {}", calls.len());
    println!("  lost / wrong users     {}", wrong.len());
    println!("  wrong adoptions        {}", wrong_adoptions.len());
    println!("  wrong deletes          {}", wrong_deletes.len());
    println!("  doubled resets/deletes {doubled_detaches}/{doubled_deletes}");
    println!(
        "  dead letters           {}",
        health["queue"]["dead_letters"]
    );
    println!(
        "  wall time              {:.1} s",
        started.elapsed().as_secs_f64()
    );

    assert!(
        wrong.is_empty(),
        "final state differs from the event log:\n{}",
        wrong.join("\n")
    );
    assert!(
        wrong_adoptions.is_empty(),
        "wrong adoptions: {wrong_adoptions:?}"
    );
    assert!(wrong_deletes.is_empty(), "wrong deletes: {wrong_deletes:?}");
    assert_eq!(doubled_detaches, 0, "a device was detached twice");
    assert_eq!(
        doubled_deletes, 0,
        "an identity's account was deleted twice"
    );
    assert!(reset_wrong.is_empty(), "MFA resets: {reset_wrong:?}");
    assert_eq!(
        seeded_deleted_once,
        seeded_deleted.len(),
        "every deleted seeded account deleted once"
    );
    assert_eq!(health["queue"]["dead_letters"], 0, "no dead letters");
    assert!(faults_injected > 0, "the fault phase injected faults");
    assert!(lost_answers > 0, "the fault phase lost answers");
    assert!(recreations >= 50, "logins were re-created");
    assert_eq!(restarts, 1);
    let _ = std::fs::remove_dir_all(&dir);
}
