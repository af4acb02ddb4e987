//! Queue mode on AWS, against moto's SQS FIFO and DynamoDB and the Duo
//! simulator: the HTTP path enqueues (group = subject, dedup = event id);
//! the worker, fed the events Lambda's SQS poller would send, applies,
//! reports partial batch failures, keeps each user's order, dead-letters
//! poison messages and messages out of attempts while the rest flows; and
//! `dlq list|show|replay` brings a dead letter back.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use common::queue::*;
use common::*;
use relay_aws::SqsDeadLetters;
use relay_core::queue::{DeadLetter, QueuedEvent, dlq_command};
use relay_core::store::IdempotencyStore as _;

fn event(uuid: &str, event_type: &'static str, published_ms: i64, who: &str) -> OktaEvent {
    OktaEvent {
        uuid: uuid.to_owned(),
        event_type,
        published_ms,
        user_id: format!("00u{who}0001"),
        login: format!("{who}@example.com"),
    }
}

const T0: i64 = 1_773_300_000_000;

#[tokio::test]
async fn deliveries_are_queued_per_subject_with_event_id_dedup_and_nothing_reaches_duo() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    let relay = fx
        .queued_relay(&queues, fast_policy(8), &fx.sim.base_url())
        .await;
    let events = [
        event("ev-a1", "user.lifecycle.create", T0, "alice"),
        event("ev-b1", "user.lifecycle.create", T0 + 1, "bob"),
        event("ev-a2", "user.lifecycle.suspend", T0 + 2, "alice"),
        event("ev-a3", "user.lifecycle.unsuspend", T0 + 3, "alice"),
    ];
    let delivery = okta_delivery(&events);
    assert_eq!(deliver(&relay, &delivery).await, 200);
    // Okta's retry of the same delivery: SQS drops the duplicates.
    assert_eq!(deliver(&relay, &delivery).await, 200);
    assert_eq!(
        fx.sim.total_calls(),
        0,
        "queue mode applies nothing in the request"
    );

    let sqs = sqs(&fx.sdk);
    let mut messages = Vec::new();
    loop {
        let batch = receive(&sqs, &queues.url, 10, 30).await;
        if batch.is_empty() {
            break;
        }
        messages.extend(batch);
    }
    assert_eq!(
        messages.len(),
        4,
        "one message per event, duplicates dropped"
    );
    let mut alice = Vec::new();
    for m in &messages {
        let queued = QueuedEvent::from_json(m.body().unwrap()).unwrap();
        assert_eq!(attribute(m, Attr::MessageGroupId), queued.group_id());
        assert_eq!(
            attribute(m, Attr::MessageDeduplicationId),
            queued.dedup_id()
        );
        if queued.event.id.as_str().starts_with("okta:ev-a") {
            alice.push(queued.event.id.to_string());
        }
    }
    assert_eq!(
        alice,
        ["okta:ev-a1", "okta:ev-a2", "okta:ev-a3"],
        "delivery order kept within a group"
    );
    let groups: std::collections::HashSet<String> = messages
        .iter()
        .map(|m| attribute(m, Attr::MessageGroupId))
        .collect();
    assert_eq!(groups.len(), 2, "one group per user");
}

#[tokio::test]
async fn an_unreachable_or_refusing_queue_answers_503_so_the_idp_retries() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    // A queue that does not exist.
    let missing = Queues {
        url: format!("{}/123456789012/no-such-queue.fifo", moto),
        ..queues.clone()
    };
    let relay = fx
        .queued_relay(&missing, fast_policy(8), &fx.sim.base_url())
        .await;
    let delivery = okta_delivery(&[event("ev-x", "user.lifecycle.create", T0, "xavier")]);
    let started = Instant::now();
    assert_eq!(deliver(&relay, &delivery).await, 503);
    // The SQS client gives up after 2.5 s (Okta waits 3 s); the bound here
    // is looser so a loaded CI machine does not fail it.
    eprintln!("503 after {} ms", started.elapsed().as_millis());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the SQS client's 2.5 s operation timeout"
    );

    // A login too big for one SQS message (and for Duo) is refused when
    // the delivery is parsed (400, issue 13: values over the length
    // limits), so nothing is enqueued, truncated or retried.
    let relay = fx
        .queued_relay(&queues, fast_policy(8), &fx.sim.base_url())
        .await;
    let mut huge = event("ev-huge", "user.lifecycle.create", T0, "hugo");
    huge.login = format!("{}@example.com", "h".repeat(300_000));
    assert_eq!(deliver(&relay, &okta_delivery(&[huge])).await, 400);
    assert!(receive(&sqs(&fx.sdk), &queues.url, 10, 30).await.is_empty());
}

#[tokio::test]
async fn the_worker_reports_partial_failures_and_keeps_each_users_order() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let proxy = DuoProxy::start(fx.sim.base_url()).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    let relay = fx.queued_relay(&queues, fast_policy(8), &proxy.url).await;
    // Same event time for alice's three events: only the queue's order
    // decides which applies last.
    let delivery = okta_delivery(&[
        event("ev-a1", "user.lifecycle.create", T0, "alice"),
        event("ev-b1", "user.lifecycle.create", T0, "bob"),
        event("ev-a2", "user.lifecycle.suspend", T0, "alice"),
        event("ev-b2", "user.lifecycle.suspend", T0 + 1, "bob"),
        event("ev-a3", "user.lifecycle.unsuspend", T0, "alice"),
        event("ev-a4", "user.lifecycle.suspend", T0, "alice"),
    ]);
    assert_eq!(deliver(&relay, &delivery).await, 200);
    let sqs = sqs(&fx.sdk);

    // Duo fails every call about alice: her first event is retried, the
    // three behind it are reported failed without being tried, bob's apply.
    proxy.fail_when(Some("alice"));
    let poll = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(poll.messages.len(), 6);
    let alice_ids: Vec<String> = poll
        .messages
        .iter()
        .filter(|m| m.body().unwrap().contains("alice"))
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(poll.failed, alice_ids, "alice's four, in order");
    assert_eq!(
        fx.sim.user_by_username("bob@example.com").unwrap().status,
        "disabled"
    );
    assert!(fx.sim.user_by_username("alice@example.com").is_none());
    let tried: Vec<_> = proxy.calls().into_iter().filter(|c| c.failed).collect();
    assert!(!tried.is_empty());
    assert!(
        tried.iter().all(|c| c.method == "GET"),
        "only the first event's lookup was tried: {tried:?}"
    );
    // One failed attempt counted for the first, none for those behind it.
    let store = fx.store();
    assert_eq!(store.failed_attempts(&alice_ids[0]).await.unwrap(), 1);
    assert_eq!(store.failed_attempts(&alice_ids[1]).await.unwrap(), 0);

    // The worker made them visible again at once (backoff 0), though the
    // queue's visibility timeout is 30 s; Duo is back: they apply in order.
    proxy.fail_when(None);
    let poll = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(poll.messages.len(), 4, "redelivered without waiting 30 s");
    assert!(poll.failed.is_empty(), "{:?}", poll.failed);
    let ids: Vec<String> = poll
        .messages
        .iter()
        .map(|m| m.message_id().unwrap().to_owned())
        .collect();
    assert_eq!(ids, alice_ids, "redelivered in the group's order");
    assert_eq!(
        poll.messages[0].attributes().unwrap()[&Attr::ApproximateReceiveCount],
        "2"
    );
    let alice_path = format!(
        "/admin/v1/users/{}",
        fx.sim
            .user_by_username("alice@example.com")
            .unwrap()
            .user_id
    );
    let statuses: Vec<String> = proxy
        .calls()
        .into_iter()
        .filter(|c| !c.failed && c.method == "POST" && c.path == alice_path)
        .filter_map(|c| {
            let body: serde_json::Value = serde_json::from_str(&c.body).ok()?;
            body["status"].as_str().map(str::to_owned)
        })
        .collect();
    assert_eq!(
        statuses,
        ["disabled", "active", "disabled"],
        "suspend, unsuspend, suspend in order"
    );
    assert_eq!(
        fx.sim.user_by_username("alice@example.com").unwrap().status,
        "disabled"
    );
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
}

#[tokio::test]
async fn poison_and_exhausted_messages_go_to_dead_letters_and_the_rest_flows() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let proxy = DuoProxy::start(fx.sim.base_url()).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    let relay = fx.queued_relay(&queues, fast_policy(2), &proxy.url).await;
    let sqs = sqs(&fx.sdk);
    // A body no worker can read, first in carol's group, then carol's
    // event (as the accept stage wrote it, read back from a scratch queue).
    let scratch = create_queues(&fx.sdk, 30, 50).await;
    let scratch_relay = fx.queued_relay(&scratch, fast_policy(2), &proxy.url).await;
    let carol = okta_delivery(&[event("ev-c1", "user.lifecycle.create", T0, "carol")]);
    assert_eq!(deliver(&scratch_relay, &carol).await, 200);
    let carol = receive(&sqs, &scratch.url, 1, 30).await.remove(0);
    let carol_group = attribute(&carol, Attr::MessageGroupId);
    sqs.send_message()
        .queue_url(&queues.url)
        .message_body("{not json")
        .message_group_id(&carol_group)
        .message_deduplication_id("poison-1")
        .send()
        .await
        .unwrap();
    sqs.send_message()
        .queue_url(&queues.url)
        .message_body(carol.body().unwrap())
        .message_group_id(&carol_group)
        .message_deduplication_id(attribute(&carol, Attr::MessageDeduplicationId))
        .send()
        .await
        .unwrap();
    // Dave's events: Duo keeps failing his, so after 2 attempts his first
    // is given up on, and the one behind it then goes ahead.
    assert_eq!(
        deliver(
            &relay,
            &okta_delivery(&[
                event("ev-d1", "user.lifecycle.create", T0, "dave"),
                event("ev-d2", "user.mfa.factor.reset_all", T0 + 1, "dave"),
            ])
        )
        .await,
        200
    );
    proxy.fail_when(Some("dave"));

    let first = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(first.messages.len(), 4);
    assert_eq!(first.failed.len(), 2, "dave's two (the second not tried)");
    assert!(
        fx.sim.user_by_username("carol@example.com").is_some(),
        "the event behind the poison one applied"
    );

    // Attempt 2 of dave's first event: out of attempts, dead-lettered; the
    // reset behind it is tried (and fails: his calls still fail).
    let second = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(second.messages.len(), 2);
    assert_eq!(second.failed, [second.messages[1].message_id().unwrap()]);
    proxy.fail_when(None);
    let third = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(third.messages.len(), 1);
    assert!(third.failed.is_empty());
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));

    // Two dead letters, with their reasons.
    let letters = SqsDeadLetters::new(sqs.clone(), &queues.url, &queues.dlq_url);
    let mut out = Vec::new();
    assert_eq!(
        dlq_command(&["list".into(), "--json".into()], &letters, &mut out).await,
        0
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(listed.len(), 2, "{}", String::from_utf8_lossy(&out));
    let poison = listed.iter().find(|l| l["body"] == "{not json").unwrap();
    assert!(
        poison["reason"]
            .as_str()
            .unwrap()
            .starts_with("unreadable queue message"),
        "{poison}"
    );
    let dave = listed
        .iter()
        .find(|l| l["event_id"] == "okta:ev-d1")
        .unwrap();
    let reason = dave["reason"].as_str().unwrap();
    assert!(reason.starts_with("gave up after 2 attempts"), "{reason}");
    assert_eq!(dave["attempts"], 2);
    assert!(dave["subject"].as_str().unwrap().contains("dave"), "{dave}");

    // `show` by event id; `replay` puts it back with a fresh dedup id, in
    // its user's group, and removes the dead letter.
    let mut out = Vec::new();
    assert_eq!(
        dlq_command(&["show".into(), "okta:ev-d1".into()], &letters, &mut out).await,
        0
    );
    assert!(String::from_utf8_lossy(&out).contains("gave up after 2 attempts"));
    let id = dave["id"].as_str().unwrap().to_owned();
    let mut out = Vec::new();
    assert_eq!(
        dlq_command(&["replay".into(), id.clone()], &letters, &mut out).await,
        0,
        "{}",
        String::from_utf8_lossy(&out)
    );
    letters.release().await;
    let replayed = receive(&sqs, &queues.url, 10, 30).await;
    assert_eq!(replayed.len(), 1);
    let original = DeadLetter::new(dave["body"].as_str().unwrap(), "", 0);
    let queued = QueuedEvent::from_json(&original.body).unwrap();
    assert_eq!(
        attribute(&replayed[0], Attr::MessageGroupId),
        queued.group_id()
    );
    assert_ne!(
        attribute(&replayed[0], Attr::MessageDeduplicationId),
        queued.dedup_id()
    );
    assert_eq!(replayed[0].body().unwrap(), original.body);
    // Let the worker have it: it applies now (the claim was released when
    // it was dead-lettered).
    sqs.change_message_visibility()
        .queue_url(&queues.url)
        .receipt_handle(replayed[0].receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let poll = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(poll.messages.len(), 1);
    assert!(poll.failed.is_empty());
    assert!(fx.sim.user_by_username("dave@example.com").is_some());
    assert!(fx.store().claim(&queued.event.id).await.is_ok());

    let mut out = Vec::new();
    assert_eq!(dlq_command(&["list".into()], &letters, &mut out).await, 0);
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("1 dead letter(s)"), "{text}");
    assert!(text.contains("unreadable queue message"), "{text}");
    // An id that is not there.
    let mut out = Vec::new();
    assert_eq!(
        dlq_command(&["replay".into(), "no-such-id".into()], &letters, &mut out).await,
        1
    );
    letters.release().await;
}

#[tokio::test]
async fn an_sqs_batch_in_sync_mode_and_unknown_events_are_errors() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let relay = fx.relay(Duration::from_secs(300)).await;
    let batch = serde_json::json!({"Records": [{"messageId": "m", "receiptHandle": "r", "body": "{}", "attributes": {}, "eventSource": "aws:sqs"}]});
    let err = relay.invoke(batch, None).await.unwrap_err();
    assert!(err.to_string().contains("RELAY_MODE is not queue"), "{err}");
    let err = relay
        .invoke(
            serde_json::json!({"relay_task": "reconcile", "source": "okta"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reconcile"), "{err}");
    let err = relay
        .invoke(serde_json::json!({"relay_task": "dance"}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown relay_task"), "{err}");
    let err = relay
        .invoke(serde_json::json!({"hello": 1}), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("neither an HTTP request"), "{err}");
}

#[tokio::test]
async fn an_event_held_by_an_unfinished_claim_is_retried_when_the_claim_expires() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    let relay = fx
        .queued_relay(&queues, fast_policy(8), &fx.sim.base_url())
        .await;
    let sqs = sqs(&fx.sdk);
    assert_eq!(
        deliver(
            &relay,
            &okta_delivery(&[event("ev-e1", "user.lifecycle.create", T0, "erin")])
        )
        .await,
        200
    );
    // An earlier attempt claimed the event and never finished (its release
    // timed out after landing, say): the claim holds it for 8 s more.
    let id = relay_core::event::EventId::new(relay_core::event::Source::Okta, "ev-e1");
    let crashed = fx.store().with_claim_timeout(Duration::from_secs(8));
    assert_eq!(
        crashed.claim(&id).await.unwrap(),
        relay_core::store::Claim::New
    );
    assert!(fx.store().claim_held(&id).await.unwrap().is_some());

    // The worker keeps the message, and hides it until the claim expires
    // (not for the policy's zero backoff), without counting a failure.
    let first = lambda_poll(&relay, &sqs, &queues, 10).await;
    assert_eq!(first.messages.len(), 1);
    assert_eq!(first.failed.len(), 1, "kept, not deleted as a duplicate");
    assert!(fx.sim.user_by_username("erin@example.com").is_none());
    assert!(
        receive(&sqs, &queues.url, 10, 30).await.is_empty(),
        "hidden while the claim holds the event"
    );
    assert_eq!(
        fx.store().failed_attempts(&first.failed[0]).await.unwrap(),
        0
    );

    // Once the claim has expired, the message comes back and applies.
    let waited = Instant::now();
    let mut receives = 1;
    while fx.sim.user_by_username("erin@example.com").is_none() {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the message never came back after the claim expired"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let poll = lambda_poll(&relay, &sqs, &queues, 10).await;
        receives += poll.messages.len();
        assert!(poll.failed.is_empty() || poll.messages.len() == 1);
    }
    assert!(receives >= 2);
    assert_eq!(fx.sim.call_count("POST /admin/v1/users"), 1);
    assert_eq!(fx.store().claim_held(&id).await.unwrap(), None);
    assert_eq!(queue_depth(&sqs, &queues.url).await, (0, 0));
}

#[tokio::test]
async fn a_batch_too_close_to_the_deadline_is_handed_back_untried() {
    let Some(moto) = moto_url() else { return };
    let fx = Fixture::new(&moto).await;
    let queues = create_queues(&fx.sdk, 30, 50).await;
    let relay = fx
        .queued_relay(&queues, fast_policy(8), &fx.sim.base_url())
        .await;
    let sqs = sqs(&fx.sdk);
    let delivery = okta_delivery(&[
        event("ev-f1", "user.lifecycle.create", T0, "frank"),
        event("ev-g1", "user.lifecycle.create", T0, "grace"),
    ]);
    assert_eq!(deliver(&relay, &delivery).await, 200);
    let messages = receive(&sqs, &queues.url, 10, 30).await;
    assert_eq!(messages.len(), 2);
    // Less time left than the worker's reserve for one record.
    let deadline = Instant::now() + relay_aws::worker::RECORD_RESERVE - Duration::from_secs(1);
    let answer = relay
        .invoke(sqs_event(&messages, &queues.arn), Some(deadline))
        .await
        .unwrap();
    let failed: Vec<&str> = answer["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{answer}");
    assert_eq!(fx.sim.total_calls(), 0, "nothing was tried");
    // Visible again at once (not after the queue's 30 s), with no failed
    // attempt counted.
    let again = receive(&sqs, &queues.url, 10, 30).await;
    assert_eq!(again.len(), 2);
    for m in &again {
        assert_eq!(
            fx.store()
                .failed_attempts(m.message_id().unwrap())
                .await
                .unwrap(),
            0
        );
    }
}

/// The dead-letter contract every backend keeps (relay-tests'
/// `dead_letters::contract`), through `dlq` on the FIFO dead-letter queue:
/// letters written as the worker writes them (`send_dead_letter`), replays
/// onto the FIFO event queue.
#[tokio::test]
async fn the_dead_letter_queue_keeps_the_dead_letter_contract() {
    use relay_tests::dead_letters::{Backend, CASES, contract};
    let Some(moto) = moto_url() else { return };
    let sdk = sdk(&moto).await;
    let queues = create_queues(&sdk, 30, 50).await;
    let sqs = sqs(&sdk);
    let letters = SqsDeadLetters::new(sqs.clone(), &queues.url, &queues.dlq_url);
    let written = std::sync::atomic::AtomicU32::new(0);
    let ran = contract(Backend {
        name: "sqs",
        store: &letters,
        write: Box::new(|letter| {
            let (sqs, dlq_url) = (sqs.clone(), queues.dlq_url.clone());
            let n = written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Box::pin(async move {
                relay_aws::sqs::send_dead_letter(&sqs, &dlq_url, &letter, &format!("m{n}"))
                    .await
                    .map(|_| ())
            })
        }),
        drain_main: Box::new(|| {
            let (sqs, url) = (sqs.clone(), queues.url.clone());
            Box::pin(async move {
                let mut bodies = Vec::new();
                loop {
                    let got = receive(&sqs, &url, 10, 30).await;
                    if got.is_empty() {
                        return bodies;
                    }
                    for message in got {
                        sqs.delete_message()
                            .queue_url(&url)
                            .receipt_handle(message.receipt_handle().unwrap())
                            .send()
                            .await
                            .unwrap();
                        bodies.push(message.body().unwrap().to_owned());
                    }
                }
            })
        }),
    })
    .await;
    assert_eq!(ran, CASES.len());
}
