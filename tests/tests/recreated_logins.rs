//! Issue 13 item 1: a login deleted and re-created under a new IdP id never
//! inherits or loses an account.
//!
//! The old identity (`okta:00uOLD…`) has a Duo account with the login as its
//! username, phones and a group. The IdP deletes it and creates the login
//! again for another person (`okta:00uNEW…`). Whatever order the events
//! arrive in, the new person must never get the old account (its phones,
//! its groups), and the old identity's late events must never touch the new
//! account. While the old account still holds the login, the new identity's
//! create waits: 503 in sync mode (the IdP retries), a retry in queue mode.
//!
//! Through the real router over HTTP (sync mode) and the queue worker's
//! decision (`Relay::process`), against duo-sim.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use duo_sim::{Seed, SeedGroup, SeedUser, SimUser};
use relay_core::pipeline::duo_relay;
use relay_core::queue::{Disposition, QueuePolicy, QueuedEvent};
use relay_core::store::MemoryStore;
use relay_tests::{SECRET, TestRelay, duo_env};
use serde_json::{Value, json};

const LOGIN: &str = "sam.lee@example.com";
const OLD: &str = "00uOLDSAM00000000001";
const NEW: &str = "00uNEWSAM00000000002";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// One Okta event about the login; `id` is the target's Okta id (`None`:
/// an event that carries only the login).
fn event(uuid: &str, seconds: i64, event_type: &str, id: Option<&str>) -> Value {
    let mut user = json!({"type": "User", "alternateId": LOGIN, "displayName": "Sam Lee"});
    if let Some(id) = id {
        user["id"] = json!(id);
    }
    let mut target = vec![user];
    if event_type.starts_with("group.user_membership") {
        target.push(json!({"id": "00gSAMGROUP000000001", "type": "UserGroup",
            "alternateId": "unknown", "displayName": "sam-group"}));
    }
    json!({
        "uuid": uuid,
        "published": relay_core::time::rfc3339_millis(T0 + seconds * 1000),
        "eventType": event_type,
        "version": "0",
        "displayMessage": event_type,
        "severity": "INFO",
        "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@example.com"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": target,
    })
}

fn delivery(events: &[Value]) -> String {
    json!({"eventType": "com.okta.event_hook", "data": {"events": events}}).to_string()
}

/// The old identity's account: its phones and group.
fn seed_old_account(relay: &TestRelay) {
    relay.sim.seed(Seed {
        groups: vec![SeedGroup {
            name: "sam-group".into(),
            desc: "okta:00gSAMGROUP000000001 synced by idp-duo-relay".into(),
            ..SeedGroup::default()
        }],
        users: vec![SeedUser {
            username: LOGIN.into(),
            aliases: vec![
                String::new(),
                String::new(),
                String::new(),
                format!("okta:{OLD}"),
            ],
            groups: vec!["sam-group".into()],
            phones: 2,
            tokens: 1,
            ..SeedUser::default()
        }],
    });
}

fn account(relay: &TestRelay) -> Option<SimUser> {
    relay.sim.user_by_username(LOGIN)
}

fn assert_old_untouched(old: &SimUser, now: Option<SimUser>) {
    let now = now.expect("the old account is still there");
    assert_eq!(now.user_id, old.user_id);
    assert_eq!(
        now.aliases[3],
        Some(format!("okta:{OLD}")),
        "never re-bound"
    );
    assert_eq!((now.phones.len(), now.tokens.len()), (2, 1), "devices kept");
    assert_eq!(now.groups, ["sam-group"]);
    assert_eq!(now.status, old.status);
}

async fn post(relay: &TestRelay, events: &[Value]) -> u16 {
    relay
        .deliver("/okta", delivery(events))
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn the_new_identity_never_adopts_the_old_account_whatever_the_order() {
    let relay = TestRelay::start().await;
    seed_old_account(&relay);
    let old = account(&relay).unwrap();

    // The re-created login's events arrive before the old identity's
    // delete: create, suspend, membership, MFA reset of the new person.
    for (i, kind) in [
        "user.lifecycle.create",
        "user.lifecycle.suspend",
        "group.user_membership.add",
        "user.mfa.factor.reset_all",
    ]
    .into_iter()
    .enumerate()
    {
        let status = post(
            &relay,
            &[event(&format!("new-{i}"), 20 + i as i64, kind, Some(NEW))],
        )
        .await;
        // What needs the new account waits for the login (503: the IdP
        // retries); an MFA reset of an account that does not exist yet has
        // nothing to do.
        let want = if kind == "user.mfa.factor.reset_all" {
            200
        } else {
            503
        };
        assert_eq!(status, want, "{kind}");
        assert_old_untouched(&old, account(&relay));
    }
    assert_eq!(relay.sim.snapshot().users.len(), 1);

    // The old identity's delete (older than the new create) applies to the
    // old account only.
    assert_eq!(
        post(
            &relay,
            &[event(
                "old-del",
                10,
                "user.lifecycle.delete.initiated",
                Some(OLD)
            )]
        )
        .await,
        200
    );
    assert!(account(&relay).is_none(), "the old account is deleted");

    // The IdP's retries: now the new person gets a fresh account.
    for (i, kind) in [
        "user.lifecycle.create",
        "user.lifecycle.suspend",
        "group.user_membership.add",
    ]
    .into_iter()
    .enumerate()
    {
        let status = post(
            &relay,
            &[event(&format!("new-{i}"), 20 + i as i64, kind, Some(NEW))],
        )
        .await;
        assert_eq!(status, 200, "{kind} retried");
    }
    let fresh = account(&relay).unwrap();
    assert_ne!(fresh.user_id, old.user_id);
    assert_eq!(fresh.aliases[3], Some(format!("okta:{NEW}")));
    assert_eq!((fresh.phones.len(), fresh.tokens.len()), (0, 0));
    assert_eq!(fresh.status, "disabled");
    assert_eq!(fresh.groups, ["sam-group"]);
    // The old identity's late events never touch the new account: a late
    // delete, a late suspend, a late MFA reset.
    for (uuid, kind) in [
        ("old-late-del", "user.lifecycle.delete.initiated"),
        ("old-late-unsuspend", "user.lifecycle.unsuspend"),
        ("old-late-remove", "group.user_membership.remove"),
    ] {
        assert_eq!(
            post(&relay, &[event(uuid, 5, kind, Some(OLD))]).await,
            200,
            "{kind}"
        );
    }
    let after = account(&relay).expect("the new account survives");
    assert_eq!(
        (after.user_id, after.status, after.groups),
        (fresh.user_id, fresh.status, fresh.groups)
    );
}

#[tokio::test]
async fn a_late_delete_of_the_old_identity_never_deletes_the_new_account() {
    // In order this time: the old identity is deleted, the new one created;
    // then the old delete is delivered again, and once more as an event that
    // carries only the login (older than the new identity's create).
    let relay = TestRelay::start().await;
    seed_old_account(&relay);
    let events = [
        event("del", 10, "user.lifecycle.delete.initiated", Some(OLD)),
        event("create", 20, "user.lifecycle.create", Some(NEW)),
    ];
    assert_eq!(post(&relay, &events).await, 200);
    let fresh = account(&relay).unwrap();
    assert_eq!(fresh.aliases[3], Some(format!("okta:{NEW}")));
    assert_eq!(
        post(
            &relay,
            &[event(
                "del-again",
                10,
                "user.lifecycle.delete.initiated",
                Some(OLD)
            )]
        )
        .await,
        200
    );
    assert_eq!(
        post(
            &relay,
            &[event(
                "del-no-id",
                11,
                "user.lifecycle.delete.initiated",
                None
            )]
        )
        .await,
        200
    );
    assert_eq!(
        account(&relay).map(|u| u.user_id),
        Some(fresh.user_id),
        "the new account is still there"
    );
    assert_eq!(relay.sim.call_count("DELETE /admin/v1/users/{user_id}"), 1);
}

#[tokio::test]
async fn a_late_event_of_the_old_identity_is_stale_once_the_new_one_holds_the_login() {
    // The old identity's delete never arrived (or is still on its way); the
    // new identity has the login. The old identity's late events must not
    // touch the new account, and must not wait for it either (the new
    // account will not go away): they are skipped as stale.
    let relay = TestRelay::start().await;
    assert_eq!(
        post(
            &relay,
            &[event("new-create", 20, "user.lifecycle.create", Some(NEW))]
        )
        .await,
        200
    );
    let fresh = account(&relay).unwrap();
    for (uuid, kind) in [
        ("old-create", "user.lifecycle.create"),
        ("old-suspend", "user.lifecycle.suspend"),
        ("old-add", "group.user_membership.add"),
    ] {
        assert_eq!(
            post(&relay, &[event(uuid, 5, kind, Some(OLD))]).await,
            200,
            "{kind}"
        );
    }
    let after = account(&relay).unwrap();
    assert_eq!(
        (
            after.user_id,
            after.aliases[3].clone(),
            after.status,
            after.groups.len()
        ),
        (
            fresh.user_id,
            Some(format!("okta:{NEW}")),
            "active".into(),
            0
        )
    );
    assert_eq!(relay.sim.snapshot().users.len(), 1);
}

#[tokio::test]
async fn an_unaliased_account_is_adopted_once_and_then_bound() {
    // A Duo account created by hand (no IdP id): the first identity whose
    // event names the login adopts it and links its id; a later identity
    // with the same login cannot take it over.
    let relay = TestRelay::start().await;
    relay.sim.seed(Seed {
        users: vec![SeedUser {
            username: LOGIN.into(),
            phones: 1,
            ..SeedUser::default()
        }],
        ..Seed::default()
    });
    assert_eq!(
        post(
            &relay,
            &[event("adopt", 10, "user.lifecycle.suspend", Some(OLD))]
        )
        .await,
        200
    );
    let adopted = account(&relay).unwrap();
    assert_eq!(adopted.aliases[3], Some(format!("okta:{OLD}")));
    assert_eq!(adopted.status, "disabled");
    assert_eq!(
        post(
            &relay,
            &[event("take", 20, "user.lifecycle.unsuspend", Some(NEW))]
        )
        .await,
        503,
        "the login is held by the bound account"
    );
    let after = account(&relay).unwrap();
    assert_eq!(
        (after.user_id, after.aliases[3].clone(), after.status),
        (
            adopted.user_id,
            Some(format!("okta:{OLD}")),
            "disabled".into()
        )
    );
}

#[tokio::test]
async fn in_queue_mode_the_waiting_create_is_retried_until_the_old_delete_applies() {
    let relay = TestRelay::start().await;
    seed_old_account(&relay);
    let mut raw = duo_env(&relay.sim);
    raw.insert("OKTA_AUTH_SECRET".to_owned(), SECRET.to_owned());
    let worker = duo_relay(
        &raw,
        MemoryStore::default(),
        duo_admin::RetryPolicy::short(Duration::from_millis(50)),
        Duration::from_secs(2),
    )
    .unwrap();
    let policy = QueuePolicy::default();
    let parse = |e: Value| {
        let body = delivery(&[e]);
        let parsed = relay_core::source::okta::hook::parse(
            &relay_core::verified::Verified::trusted_local_file(
                relay_core::event::Source::Okta,
                body,
            ),
        )
        .unwrap();
        QueuedEvent::new(parsed.events.into_iter().next().unwrap()).to_json()
    };
    let create = parse(event("q-create", 20, "user.lifecycle.create", Some(NEW)));
    let delete = parse(event(
        "q-del",
        10,
        "user.lifecycle.delete.initiated",
        Some(OLD),
    ));

    let (report, disposition) = worker.process(&create, 1, &policy).await;
    let Disposition::Retry { reason } = disposition else {
        panic!("the create must wait: {disposition:?} {report:?}");
    };
    assert!(reason.contains("held by"), "{reason}");
    assert_eq!(
        worker.process(&delete, 1, &policy).await.1,
        Disposition::Done
    );
    assert_eq!(
        worker.process(&create, 2, &policy).await.1,
        Disposition::Done
    );
    let fresh = account(&relay).unwrap();
    assert_eq!(fresh.aliases[3], Some(format!("okta:{NEW}")));
    assert_eq!(fresh.phones.len(), 0);
}
