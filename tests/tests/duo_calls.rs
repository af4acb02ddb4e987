//! Duo calls per event type, counted by the simulator, against the minimum
//! written down in `relay-core/src/apply.rs`. A regression here means the
//! relay started spending Duo's rate limit on something it did not need.
//! Run with `--nocapture` to see the table.

#![allow(clippy::unwrap_used)] // test setup should fail loudly

use duo_sim::{Seed, SeedGroup, SeedUser};
use relay_tests::TestRelay;

const JANE: &str = "jane.doe@example.com";

fn jane_exists(relay: &TestRelay, devices: bool) {
    relay.sim.seed(Seed {
        groups: vec![SeedGroup {
            name: "duo-users".into(),
            desc: "okta:00gDUOUSERS000000001 synced by idp-duo-relay".into(),
            ..SeedGroup::default()
        }],
        users: vec![SeedUser {
            username: JANE.into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                "okta:00uNEWUSER0000000001".into(),
            ],
            groups: if devices {
                vec!["duo-users".into()]
            } else {
                vec![]
            },
            phones: if devices { 2 } else { 0 },
            webauthn: u32::from(devices),
            bypass_codes: if devices { 3 } else { 0 },
            ..SeedUser::default()
        }],
    });
}

async fn count(fixture: &str, setup: impl Fn(&TestRelay), warm: Option<&str>) -> usize {
    let relay = TestRelay::start().await;
    setup(&relay);
    if let Some(warm) = warm {
        // Warm the group index the way a running relay has it warm.
        assert_eq!(relay.deliver_fixture("/okta", warm).await.status(), 200);
    }
    relay.sim.reset_calls();
    assert_eq!(relay.deliver_fixture("/okta", fixture).await.status(), 200);
    relay.sim.total_calls()
}

#[tokio::test]
async fn duo_calls_per_event_type() {
    let none = |_: &TestRelay| {};
    let existing = |r: &TestRelay| jane_exists(r, false);
    let with_devices = |r: &TestRelay| jane_exists(r, true);
    let rows = [
        // (event, calls, minimum, why)
        (
            "user create (new)",
            count("okta/user-lifecycle-create.json", none, None).await,
            3,
            "alias lookup + username lookup + create",
        ),
        (
            "user create (exists)",
            count("okta/user-lifecycle-create.json", existing, None).await,
            2,
            "alias lookup + modify (name differs)",
        ),
        (
            "suspend",
            count("okta/suspend.json", existing, None).await,
            2,
            "lookup + modify",
        ),
        (
            "unsuspend (already active)",
            count("okta/unsuspend.json", existing, None).await,
            1,
            "lookup only",
        ),
        (
            "membership add (warm index)",
            count(
                "okta/membership-add.json",
                existing,
                Some("okta/group-create.json"),
            )
            .await,
            2,
            "lookup (embeds groups) + add",
        ),
        (
            "membership add (cold index)",
            count("okta/membership-add.json", existing, None).await,
            3,
            "lookup + 1 group page + add",
        ),
        (
            "membership remove (not member)",
            count("okta/membership-remove.json", existing, None).await,
            1,
            "lookup only",
        ),
        (
            "delete",
            count("okta/delete-initiated.json", existing, None).await,
            2,
            "lookup + delete",
        ),
        (
            "MFA reset (2 phones, 1 WebAuthn, 3 codes)",
            count("okta/factor-reset-all.json", with_devices, None).await,
            8,
            "lookup + bypass list + 6 removals",
        ),
        (
            "group create (cold index)",
            count("okta/group-create.json", none, None).await,
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
