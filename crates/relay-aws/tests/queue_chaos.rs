//! Chaos on the AWS worker path: 300 events over 30 users in deliveries of
//! one to ten events, every delivery sent three times and all shuffled, some events re-sent after SQS's
//! deduplication window (as an IdP retry days later would be), 30% Duo
//! 429/500 for the first part of the run; three pollers do what Lambda's
//! SQS event source does (receive a batch, invoke the function with it,
//! delete what it did not report failed) until the queue is empty.
//! Then: Duo's state is the one the event log says, nothing was lost or
//! dead-lettered, and every MFA reset and delete was applied exactly once,
//! counted in the simulator's call log.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use common::queue::*;
use common::*;
use duo_sim::{Faults, Seed, SeedUser};
use relay_core::queue::QueuePolicy;

const USERS: usize = 30;
const EVENTS_PER_USER: usize = 10;
const DELETED_FROM: usize = 25;
const T0: i64 = 1_773_400_000_000;

fn login(user: usize) -> String {
    format!("chaos{user:02}@example.com")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_on_the_sqs_worker_path_loses_nothing_and_doubles_nothing() {
    let Some(moto) = moto_url() else { return };
    // Warnings and errors (a store write that failed, a dead letter) show in
    // the test's output.
    let _ = relay_server::logging::init(relay_server::logging::LogFormat::Json, "warn");
    let started = Instant::now();
    let seed = std::env::var("RELAY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("chaos seed {seed} (rerun with RELAY_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let fx = Fixture::new(&moto).await;
    fx.sim.seed(Seed {
        groups: Vec::new(),
        users: (0..USERS)
            .map(|u| SeedUser {
                username: login(u),
                phones: 2,
                ..SeedUser::default()
            })
            .collect(),
    });
    let before = fx.sim.snapshot();
    let duo_id: HashMap<String, String> = before
        .users
        .iter()
        .map(|u| (u.username.clone(), u.user_id.clone()))
        .collect();

    // The event log, and what it means for Duo.
    let mut log = Vec::new();
    let mut expected_status: HashMap<usize, &str> = HashMap::new();
    let mut resets = vec![0usize; USERS];
    for user in 0..USERS {
        let reset_at: Vec<usize> = {
            let mut at = vec![rng.usize(0..EVENTS_PER_USER - 1)];
            if rng.bool() {
                at.push(rng.usize(0..EVENTS_PER_USER - 1));
            }
            at
        };
        for k in 0..EVENTS_PER_USER {
            let event_type = if user >= DELETED_FROM && k == EVENTS_PER_USER - 1 {
                "user.lifecycle.delete.initiated"
            } else if reset_at.contains(&k) {
                resets[user] += 1;
                "user.mfa.factor.reset_all"
            } else if rng.bool() {
                expected_status.insert(user, "disabled");
                "user.lifecycle.suspend"
            } else {
                expected_status.insert(user, "active");
                "user.lifecycle.unsuspend"
            };
            log.push(OktaEvent {
                uuid: format!("chaos-{seed}-{user:02}-{k}"),
                event_type,
                published_ms: T0 + i64::try_from(k).unwrap() * 1_000,
                user_id: format!("00uchaos{user:02}"),
                login: login(user),
            });
        }
    }
    // Deliveries of 1–10 events, each sent three times, all shuffled.
    let mut order = log.clone();
    rng.shuffle(&mut order);
    let mut deliveries = Vec::new();
    let mut rest = order.as_slice();
    while !rest.is_empty() {
        let n = rng.usize(1..=10).min(rest.len());
        let body = okta_delivery(&rest[..n]);
        for _ in 0..3 {
            deliveries.push(body.clone());
        }
        rest = &rest[n..];
    }
    rng.shuffle(&mut deliveries);

    let queues = create_queues(&fx.sdk, 30, 100).await;
    let policy = QueuePolicy {
        max_attempts: 8,
        initial_backoff: Duration::from_millis(500),
        max_backoff: Duration::from_secs(2),
    };
    let relay = Arc::new(fx.queued_relay(&queues, policy, &fx.sim.base_url()).await);
    let sqs = sqs(&fx.sdk);

    // Duo misbehaves for the first part of the run.
    fx.sim.set_faults(Faults {
        rate_429: 0.15,
        rate_500: 0.15,
        seed: Some(seed),
        ..Faults::default()
    });
    let faults_until = log.len() / 2;
    let processed = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let polls = Arc::new(AtomicUsize::new(0));
    let all_sent = Arc::new(AtomicBool::new(false));
    let done_bodies: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let receiving = Arc::new(tokio::sync::Mutex::new(()));
    let mut idp_retries = 0;
    let mut late = Vec::new();
    let mut accept_time = Duration::ZERO;
    let run = async {
        // Three pollers work the queue while the deliveries arrive, as
        // Lambda's event source does (maximum concurrency 3).
        let mut pollers = Vec::new();
        for _ in 0..3 {
            let (relay, sqs, queues) = (Arc::clone(&relay), sqs.clone(), queues.clone());
            let receiving = Arc::clone(&receiving);
            let (processed, failures, polls, all_sent, done_bodies) = (
                Arc::clone(&processed),
                Arc::clone(&failures),
                Arc::clone(&polls),
                Arc::clone(&all_sent),
                Arc::clone(&done_bodies),
            );
            pollers.push(tokio::spawn(async move {
                loop {
                    // SQS hands a message group to one receiver at a time;
                    // moto's receive is not atomic across its server
                    // threads, so the pollers take turns receiving (their
                    // batches still run in parallel).
                    let messages = {
                        let _turn = receiving.lock().await;
                        receive(&sqs, &queues.url, 10, 30).await
                    };
                    let poll = lambda_invoke(&relay, &sqs, &queues, messages).await;
                    if poll.messages.is_empty() {
                        if all_sent.load(Ordering::SeqCst)
                            && queue_depth(&sqs, &queues.url).await == (0, 0)
                        {
                            return;
                        }
                        // Lambda's pollers back off on an empty queue too
                        // (and moto is single-threaded).
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        continue;
                    }
                    polls.fetch_add(1, Ordering::Relaxed);
                    processed.fetch_add(poll.messages.len() - poll.failed.len(), Ordering::Relaxed);
                    failures.fetch_add(poll.failed.len(), Ordering::Relaxed);
                    let mut bodies = done_bodies.lock().unwrap();
                    for m in &poll.messages {
                        if !poll
                            .failed
                            .iter()
                            .any(|f| Some(f.as_str()) == m.message_id())
                        {
                            bodies.push((
                                m.body().unwrap().to_owned(),
                                attribute(m, Attr::MessageGroupId),
                            ));
                        }
                    }
                }
            }));
        }
        let faults_off = {
            let processed = Arc::clone(&processed);
            let sim = &fx.sim;
            async move {
                while processed.load(Ordering::Relaxed) < faults_until {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                sim.set_faults(Faults::default());
            }
        };
        let accept = async {
            // Four deliveries at a time, as concurrent hooks arrive; a 503
            // (the queue did not answer in time) is retried, as the IdP does.
            let accepted_at = Instant::now();
            let mut pending = deliveries.clone();
            while !pending.is_empty() {
                // Hooks arrive over time rather than all at once: moto's
                // FIFO queue slows with its length (every call scans it).
                while queue_depth(&sqs, &queues.url).await.0 > 40 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let chunk: Vec<String> = pending.drain(..pending.len().min(4)).collect();
                let mut tasks = Vec::new();
                for body in chunk {
                    let relay = Arc::clone(&relay);
                    tasks.push(tokio::spawn(async move {
                        let mut retries = 0;
                        while deliver(&relay, &body).await != 200 {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                        retries
                    }));
                }
                for task in tasks {
                    idp_retries += task.await.unwrap();
                }
            }
            accept_time = accepted_at.elapsed();
            // Some applied events re-sent after SQS's deduplication window
            // (same event, a new deduplication id), as an IdP retry days
            // later would be: the idempotency store must catch them.
            late = {
                let mut bodies = done_bodies.lock().unwrap().clone();
                fastrand::Rng::with_seed(seed).shuffle(&mut bodies);
                bodies.truncate(30);
                bodies
            };
            for (i, (body, group)) in late.iter().enumerate() {
                sqs.send_message()
                    .queue_url(&queues.url)
                    .message_body(body)
                    .message_group_id(group)
                    .message_deduplication_id(format!("late-{seed}-{i}"))
                    .send()
                    .await
                    .unwrap();
            }
            all_sent.store(true, Ordering::SeqCst);
        };
        tokio::join!(accept, faults_off);
        for poller in pollers {
            poller.await.unwrap();
        }
    };
    let bounded = tokio::time::timeout(Duration::from_secs(120), run).await;
    fx.sim.set_faults(Faults::default());
    let calls = fx.sim.calls();
    let faults_injected = calls
        .iter()
        .filter(|c| c.status == 429 || c.status == 500)
        .count();
    let dead_letters = receive(&sqs, &queues.dlq_url, 10, 30).await;
    let figures = format!(
        "events {}, deliveries {} ({} distinct, each 3x; {} retried after a 503), late re-sends {}, messages settled {}, reported failed {}, polls {}, Duo calls {}, faults injected {}, dead letters {}, accept {:.1}s, total {:.1}s",
        log.len(),
        deliveries.len(),
        deliveries.len() / 3,
        idp_retries,
        late.len(),
        processed.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        polls.load(Ordering::Relaxed),
        calls.len(),
        faults_injected,
        dead_letters.len(),
        accept_time.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    eprintln!("{figures}");
    assert!(
        bounded.is_ok(),
        "the queue did not drain within 120 s: {figures}; depth {:?}",
        queue_depth(&sqs, &queues.url).await
    );
    assert!(
        dead_letters.is_empty(),
        "nothing may be dead-lettered: {:?}",
        dead_letters.iter().map(|m| m.body()).collect::<Vec<_>>()
    );
    assert!(faults_injected > 0, "the run must see faults: {figures}");
    // Each event's message settled (deleted) at least once; more when a
    // duplicate delivery arrived after its original was deleted: moto
    // forgets a deduplication id with its message, where SQS keeps it for
    // five minutes. The idempotency store catches those, as it catches
    // the late re-sends.
    assert!(
        processed.load(Ordering::Relaxed) >= log.len() + late.len(),
        "{figures}"
    );

    // Duo's state is the event log's.
    let mut lost = 0;
    let mut doubled = 0;
    for user in 0..USERS {
        let name = login(user);
        let now = fx.sim.user_by_username(&name);
        let id = &duo_id[&name];
        let ok_with = |route: &str, path: &str| {
            calls
                .iter()
                .filter(|c| c.route == route && c.path == path && c.status == 200)
                .count()
        };
        let deletes = ok_with(
            "DELETE /admin/v1/users/{user_id}",
            &format!("/admin/v1/users/{id}"),
        );
        let applied_resets = ok_with(
            "GET /admin/v1/users/{user_id}/bypass_codes",
            &format!("/admin/v1/users/{id}/bypass_codes"),
        );
        if user >= DELETED_FROM {
            if now.is_some() || deletes == 0 {
                lost += 1;
                eprintln!("{name}: not deleted");
            }
            if deletes > 1 || applied_resets > resets[user] {
                doubled += 1;
                eprintln!(
                    "{name}: {deletes} deletes, {applied_resets} resets for {}",
                    resets[user]
                );
            }
            continue;
        }
        let Some(now) = now else {
            lost += 1;
            eprintln!("{name}: gone");
            continue;
        };
        if now.status != expected_status[&user]
            || !now.phones.is_empty()
            || applied_resets < resets[user]
        {
            lost += 1;
            eprintln!(
                "{name}: status {} (want {}), {} phones, {applied_resets} of {} resets",
                now.status,
                expected_status[&user],
                now.phones.len(),
                resets[user]
            );
        }
        if applied_resets > resets[user] || deletes > 0 {
            doubled += 1;
            eprintln!(
                "{name}: {applied_resets} resets applied for {}, {deletes} deletes",
                resets[user]
            );
        }
        for phone in &before
            .users
            .iter()
            .find(|u| &u.user_id == id)
            .unwrap()
            .phones
        {
            let detached = calls
                .iter()
                .filter(|c| {
                    c.route == "DELETE /admin/v1/users/{user_id}/phones/{phone_id}"
                        && c.path.ends_with(&format!("/phones/{}", phone.phone_id))
                })
                .filter(|c| c.status != 429 && c.status != 500)
                .count();
            if detached != 1 {
                doubled += usize::from(detached > 1);
                lost += usize::from(detached == 0);
                eprintln!("{name}: phone {} detached {detached} times", phone.phone_id);
            }
        }
    }
    eprintln!("lost {lost}, doubled {doubled}");
    assert_eq!((lost, doubled), (0, 0), "{figures}");
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
}
