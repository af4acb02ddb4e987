//! One Duo pace for the process (issue 14 item 5): every Duo call of the
//! relay takes a token from one shared bucket, a 429 halves its rate for
//! everyone, and a call that cannot get a token within the retry budget is
//! not sent (the event fails transiently, so the IdP or the queue retries).
//! Counted by the simulator, not timed.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use duo_sim::{Faults, Seed, SeedUser};
use relay_tests::TestRelay;

fn jane(relay: &TestRelay) {
    relay.sim.seed(Seed {
        users: vec![SeedUser {
            username: "jane.doe@example.com".into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                "okta:00uNEWUSER0000000001".into(),
            ],
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
}

/// An "unsuspend" of an active user costs one lookup; `n` of them as
/// separate deliveries (distinct event ids).
fn unsuspends(n: usize) -> Vec<String> {
    let text = relay_tests::fixture_text("okta/unsuspend.json");
    let uuid =
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"]["events"][0]["uuid"]
            .as_str()
            .unwrap()
            .to_owned();
    (0..n)
        .map(|i| text.replace(&uuid, &format!("{uuid}-{i}")))
        .collect()
}

#[tokio::test]
async fn calls_beyond_the_burst_wait_for_the_pace_and_never_reach_duo_past_the_budget() {
    // 1 call a second after a burst of 3; the test relay's retry budget is
    // 50 ms, so a 4th call within the second is not sent.
    let relay =
        TestRelay::start_with(&[("DUO_RATE_PER_MINUTE", "60"), ("DUO_RATE_BURST", "3")]).await;
    jane(&relay);
    relay.sim.reset_calls();
    let mut answers = Vec::new();
    for body in unsuspends(6) {
        answers.push(relay.deliver("/okta", body).await.status().as_u16());
    }
    assert_eq!(answers, [200, 200, 200, 503, 503, 503]);
    assert_eq!(relay.sim.total_calls(), 3);
}

#[tokio::test]
async fn a_429_slows_every_caller_instead_of_a_private_backoff() {
    // Duo answers 429 to everything. Without a pace the client retries
    // after its own backoff (2 attempts here). With it, the 429 halves the
    // shared rate and drops the burst: the retry's token is 0.2 s away,
    // past the 50 ms budget, so it is not sent — and the next event's call
    // is not sent either, because the whole process slowed down.
    let relay =
        TestRelay::start_with(&[("DUO_RATE_PER_MINUTE", "600"), ("DUO_RATE_BURST", "30")]).await;
    jane(&relay);
    relay.sim.set_faults(Faults {
        rate_429: 1.0,
        ..Faults::default()
    });
    relay.sim.reset_calls();
    let bodies = unsuspends(2);
    assert_eq!(
        relay.deliver("/okta", bodies[0].clone()).await.status(),
        503
    );
    assert_eq!(relay.sim.total_calls(), 1, "one 429, no private retry");
    assert_eq!(
        relay.deliver("/okta", bodies[1].clone()).await.status(),
        503
    );
    assert_eq!(
        relay.sim.total_calls(),
        1,
        "the next event waits for the pace too"
    );
}
