//! Issue 13 item 2: a delete that finds nothing is done, not failed.
//!
//! Duo may apply a DELETE and the answer still fail (a 500 from a proxy, a
//! body cut short). The retry — the client's own, or the queue's — then
//! meets a user, group or membership that is already gone, which Duo (or a
//! stand-in) may answer 404. That is the goal state: the event is done, no
//! dead letter, and the group index forgets the group.
//!
//! Each test runs the queue worker's decision (`Relay::process`) against
//! duo-sim with its lost-answer faults and `absent_delete_not_found`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use duo_sim::{DuoSim, Faults, Seed, SeedGroup, SeedUser};
use relay_core::apply::DuoDirectory;
use relay_core::event::{Change, EventId, GroupRef, IdpEvent, Source, UserRef};
use relay_core::pipeline::{EventOutcome, Relay, duo_relay};
use relay_core::queue::{Disposition, QueuePolicy, QueuedEvent};
use relay_core::store::MemoryStore;
use relay_tests::{SECRET, duo_env};

const JANE: &str = "jane.doe@example.com";
const JANE_ID: &str = "00uJANE0000000000001";
const GROUP: &str = "duo-users";
const GROUP_ID: &str = "00gDUOUSERS000000001";

fn relay(sim: &DuoSim) -> Relay<DuoDirectory, MemoryStore> {
    let retry = duo_admin::RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
        max_jitter: Duration::ZERO,
        budget: Duration::from_secs(1),
    };
    let mut raw = duo_env(sim);
    raw.insert("OKTA_AUTH_SECRET".to_owned(), SECRET.to_owned());
    duo_relay(&raw, MemoryStore::default(), retry, Duration::from_secs(2)).unwrap()
}

fn seed(sim: &DuoSim) {
    sim.seed(Seed {
        groups: vec![SeedGroup {
            name: GROUP.into(),
            desc: format!("okta:{GROUP_ID} synced by idp-duo-relay"),
            ..SeedGroup::default()
        }],
        users: vec![SeedUser {
            username: JANE.into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("okta:{JANE_ID}"),
            ],
            groups: vec![GROUP.into()],
            ..SeedUser::default()
        }],
    });
}

fn message(id: &str, change: Change) -> String {
    QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, id),
        source: Source::Okta,
        event_type: "t".into(),
        occurred_at: None,
        change,
    })
    .to_json()
}

fn jane() -> UserRef {
    UserRef {
        idp_id: Some(JANE_ID.into()),
        login: Some(JANE.into()),
    }
}

fn group() -> GroupRef {
    GroupRef {
        idp_id: Some(GROUP_ID.into()),
        name: Some(GROUP.into()),
    }
}

const POLICY: QueuePolicy = QueuePolicy {
    max_attempts: 8,
    initial_backoff: Duration::ZERO,
    max_backoff: Duration::ZERO,
};

/// Runs one message the way a queue worker does, attempt after attempt,
/// until the worker says done or dead letter; answers the last outcome and
/// disposition.
async fn run(relay: &Relay<DuoDirectory, MemoryStore>, body: &str) -> (EventOutcome, Disposition) {
    for attempt in 1..=POLICY.max_attempts {
        let (report, disposition) = relay.process(body, attempt, &POLICY).await;
        let outcome = report.unwrap().outcome;
        if !matches!(disposition, Disposition::Retry { .. }) {
            return (outcome, disposition);
        }
    }
    panic!("still retrying after {} attempts", POLICY.max_attempts)
}

#[tokio::test]
async fn a_user_delete_whose_answer_was_lost_is_done_not_dead_lettered() {
    let sim = DuoSim::start().await;
    seed(&sim);
    let relay = relay(&sim);
    // Duo deletes the user and the answer is lost; the client retries the
    // DELETE (safe to repeat) and meets a 404.
    sim.set_faults(Faults {
        rate_lost_answer: 1.0,
        absent_delete_not_found: true,
        ..Faults::default()
    });
    let (outcome, disposition) = run(
        &relay,
        &message("del-lost", Change::UserDeleted { user: jane() }),
    )
    .await;
    assert_eq!(disposition, Disposition::Done, "{outcome:?}");
    assert!(sim.user_by_username(JANE).is_none());
    let deletes = sim.call_count("DELETE /admin/v1/users/{user_id}");
    assert_eq!(deletes, 2, "the lost answer, then the retry's 404");
}

#[tokio::test]
async fn a_group_delete_whose_answer_was_cut_short_is_done_and_the_index_forgets_it() {
    let sim = DuoSim::start().await;
    seed(&sim);
    let relay = relay(&sim);
    // The DELETE applies and its answer is not JSON: transient, so the
    // queue retries the event; the retry's DELETE meets a 404.
    sim.set_faults(Faults {
        rate_truncated: 1.0,
        absent_delete_not_found: true,
        ..Faults::default()
    });
    let (outcome, disposition) = run(
        &relay,
        &message("gdel-cut", Change::GroupDeleted { group: group() }),
    )
    .await;
    assert_eq!(disposition, Disposition::Done, "{outcome:?}");
    assert!(sim.group_by_name(GROUP).is_none());
    // The index dropped the group: a create of the same group makes it
    // again instead of answering "exists" from memory.
    sim.set_faults(Faults::default());
    let (outcome, disposition) = run(
        &relay,
        &message("gcreate", Change::GroupCreated { group: group() }),
    )
    .await;
    assert_eq!(disposition, Disposition::Done, "{outcome:?}");
    assert!(
        sim.group_by_name(GROUP).is_some(),
        "group re-created: {outcome:?}"
    );
}

#[tokio::test]
async fn a_membership_removal_whose_answer_was_lost_is_done() {
    let sim = DuoSim::start().await;
    seed(&sim);
    let relay = relay(&sim);
    sim.set_faults(Faults {
        rate_lost_answer: 1.0,
        absent_delete_not_found: true,
        ..Faults::default()
    });
    let (outcome, disposition) = run(
        &relay,
        &message(
            "rm-lost",
            Change::MembershipRemoved {
                user: jane(),
                group: group(),
            },
        ),
    )
    .await;
    assert_eq!(disposition, Disposition::Done, "{outcome:?}");
    assert!(sim.user_by_username(JANE).unwrap().groups.is_empty());
}
