//! Stale-event protection: a late event never undoes a newer state.
//!
//! IdPs deliver at least once and in no guaranteed order, and a queue's
//! redelivery after a failure reorders further. So every event that sets a
//! piece of state carries the IdP's event time (`published` / `time` /
//! `date`), and the relay keeps, per subject and per *aspect* of it, the time
//! of the newest event applied (a watermark, in the idempotency store). An
//! event older than the watermark of an aspect it sets is stale: it is
//! skipped (or, for a create that also sets a state, the stale part is
//! dropped). Aspects are independent, so an old profile change still applies
//! after a newer suspension:
//!
//! | event | must not be older than | sets |
//! |---|---|---|
//! | user upsert (create) | `deleted` | `profile`, and `state` when it carries one |
//! | user state change | `deleted`, `state` | `state` |
//! | user profile change | `deleted`, `profile` | `profile` |
//! | user delete | `deleted` | `deleted` |
//! | membership add/remove | user `deleted`, group `deleted`, that membership | that membership |
//! | MFA reset | `deleted` | — (an action, not a state; exactly once by its id) |
//! | group create/rename | group `deleted`, `name` | `name` |
//! | group delete | group `deleted` | `deleted` |
//!
//! Events without a readable time apply as they come (nothing to compare).
//! When the IdP API is configured, user events are instead planned from the
//! IdP's current state ("make this user right"), which is stale-proof by
//! construction; the watermarks still guard deletes and groups.
//!
//! **Logins** (issue 13). A login can be deleted and re-created for another
//! person under a new IdP id. Events that carry the id are kept apart by it
//! ([`crate::identity`]: an operation acts only on the account carrying its
//! id), and every one records when its identity was seen
//! (`user:okta:00u…/seen`). Two identities never hold one login at the same
//! time in the IdP, so their events' times do not interleave: when an event
//! finds its login held by another identity's account, the pipeline
//! compares its time with that identity's `seen` — older means this event's
//! identity is the past one (skipped as stale), newer means the holder is on
//! its way out (the event waits and is retried). An event that carries only
//! a login cannot tell the two people apart, so the login gets a watermark
//! of its own: every user create that carries an id records
//! `user:<idp>:login:<login>/assigned` (the login was given to an identity
//! then), and an event without an id that is older than that is stale — it
//! is about an earlier holder of the login.
//!
//! **Ordering keys** ([`subject_key`]) stay per IdP id, not per login. A
//! per-login FIFO group (SQS `MessageGroupId`, a Pub/Sub ordering key, the
//! disk queue's subject) would deadlock a re-created login whose create
//! arrives before the old identity's delete: the create waits (its login is
//! held by the old account, see `crate::apply`) at the head of the group, in
//! front of the very delete that frees the login, until it is dead-lettered.
//! Keyed by id, the old identity's delete runs in its own group and the
//! waiting create's retry succeeds after it. Two events about one login are
//! still never applied at once within a process (`crate::pipeline` holds a
//! lock per login while it applies an event).

use crate::event::{Change, GroupRef, IdpEvent, Source, UserRef};
use crate::plan::idp_alias;

/// How a stale aspect affects the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Stale ⇒ skip the event; never advanced by it.
    Guard,
    /// Stale ⇒ skip the event; advanced when it applies.
    Sets,
    /// The user state carried by an upsert: stale ⇒ drop the state, apply
    /// the rest; advanced when it applies.
    UpsertState,
    /// The profile carried by an upsert: stale ⇒ apply only its state (if
    /// any); advanced when it applies.
    UpsertProfile,
    /// Never stale; advanced when the event applies (the login's last
    /// assignment to an identity).
    Records,
}

/// One watermark an event is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aspect {
    pub key: String,
    pub role: Role,
}

/// The watermarks an event is checked against and advances.
pub fn aspects(event: &IdpEvent) -> Vec<Aspect> {
    let mut out = subject_aspects(event);
    out.extend(login_aspects(event));
    out
}

/// A user event's identity and login watermarks (see the module docs):
/// an event with an id records that its identity was seen; a create with an
/// id also records the login's assignment; any user event without an id is
/// guarded by the assignment.
fn login_aspects(event: &IdpEvent) -> Vec<Aspect> {
    let mut out = Vec::new();
    if let Some(user) = change_user(&event.change)
        && let Some(id) = &user.idp_id
    {
        out.push(Aspect {
            key: seen_key(&idp_alias(event.source, id)),
            role: Role::Records,
        });
    }
    out.extend(login_aspect(event));
    out
}

/// The watermark that records when an identity (`okta:00u…`) was last seen
/// in an event.
pub fn seen_key(idp_alias: &str) -> String {
    format!("user:{}/seen", idp_alias.to_lowercase())
}

fn change_user(change: &Change) -> Option<&UserRef> {
    match change {
        Change::UserUpserted { user, .. }
        | Change::UserStateChanged { user, .. }
        | Change::UserProfileChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MembershipAdded { user, .. }
        | Change::MembershipRemoved { user, .. }
        | Change::MfaReset { user, .. } => Some(user),
        Change::GroupCreated { .. }
        | Change::GroupRenamed { .. }
        | Change::GroupDeleted { .. }
        | Change::SubscriptionLifecycle { .. } => None,
    }
}

fn login_aspect(event: &IdpEvent) -> Option<Aspect> {
    let (user, login) = match &event.change {
        Change::UserUpserted { user, profile, .. } => {
            (user, profile.login.as_ref().or(user.login.as_ref()))
        }
        Change::UserStateChanged { user, .. }
        | Change::UserProfileChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MembershipAdded { user, .. }
        | Change::MembershipRemoved { user, .. }
        | Change::MfaReset { user, .. } => (user, user.login.as_ref()),
        Change::GroupCreated { .. }
        | Change::GroupRenamed { .. }
        | Change::GroupDeleted { .. }
        | Change::SubscriptionLifecycle { .. } => {
            return None;
        }
    };
    let key = format!("{}/assigned", login_key(event.source, login?));
    match (&user.idp_id, &event.change) {
        (Some(_), Change::UserUpserted { .. }) => Some(Aspect {
            key,
            role: Role::Records,
        }),
        (Some(_), _) => None,
        (None, _) => Some(Aspect {
            key,
            role: Role::Guard,
        }),
    }
}

fn subject_aspects(event: &IdpEvent) -> Vec<Aspect> {
    let source = event.source;
    let a = |key: String, role| Aspect { key, role };
    match &event.change {
        Change::UserUpserted { user, state, .. } => {
            let u = user_key(source, user);
            let mut out = vec![
                a(format!("{u}/deleted"), Role::Guard),
                a(format!("{u}/profile"), Role::UpsertProfile),
            ];
            if state.is_some() {
                out.push(a(format!("{u}/state"), Role::UpsertState));
            }
            out
        }
        Change::UserStateChanged { user, .. } => {
            let u = user_key(source, user);
            vec![
                a(format!("{u}/deleted"), Role::Guard),
                a(format!("{u}/state"), Role::Sets),
            ]
        }
        Change::UserProfileChanged { user, .. } => {
            let u = user_key(source, user);
            vec![
                a(format!("{u}/deleted"), Role::Guard),
                a(format!("{u}/profile"), Role::Sets),
            ]
        }
        Change::UserDeleted { user } => {
            vec![a(format!("{}/deleted", user_key(source, user)), Role::Sets)]
        }
        Change::MembershipAdded { user, group } | Change::MembershipRemoved { user, group } => {
            let u = user_key(source, user);
            let g = group_key(source, group);
            vec![
                a(format!("{u}/deleted"), Role::Guard),
                a(format!("{g}/deleted"), Role::Guard),
                a(format!("{u}/member/{g}"), Role::Sets),
            ]
        }
        Change::MfaReset { user, .. } => {
            vec![a(
                format!("{}/deleted", user_key(source, user)),
                Role::Guard,
            )]
        }
        Change::GroupCreated { group } | Change::GroupRenamed { group, .. } => {
            let g = group_key(source, group);
            vec![
                a(format!("{g}/deleted"), Role::Guard),
                a(format!("{g}/name"), Role::Sets),
            ]
        }
        Change::GroupDeleted { group } => {
            vec![a(
                format!("{}/deleted", group_key(source, group)),
                Role::Sets,
            )]
        }
        // Not about a user or group: nothing to order against.
        Change::SubscriptionLifecycle { .. } => Vec::new(),
    }
}

/// The subject an event is about, as a stable key: the IdP id when the event
/// carries it (it survives renames), else the login or name. Queues use it to
/// keep one subject's events in order (SQS `MessageGroupId`, Pub/Sub
/// ordering key); memberships order with their user.
pub fn subject_key(event: &IdpEvent) -> String {
    let source = event.source;
    match &event.change {
        Change::UserUpserted { user, .. }
        | Change::UserStateChanged { user, .. }
        | Change::UserProfileChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MembershipAdded { user, .. }
        | Change::MembershipRemoved { user, .. }
        | Change::MfaReset { user, .. } => user_key(source, user),
        Change::GroupCreated { group }
        | Change::GroupRenamed { group, .. }
        | Change::GroupDeleted { group } => group_key(source, group),
        Change::SubscriptionLifecycle { subscription, .. } => {
            format!("{}:subscription/{subscription}", source.idp_prefix())
        }
    }
}

fn user_key(source: Source, user: &UserRef) -> String {
    match (&user.idp_id, &user.login) {
        (Some(id), _) => format!("user:{}", idp_alias(source, id)),
        (None, Some(login)) => login_key(source, login),
        (None, None) => format!("user:{}:-", source.idp_prefix()),
    }
}

/// The key of a login (`user:okta:login:jane@example.com`): the subject of
/// events that carry no id, and the prefix of the login's watermark.
pub fn login_key(source: Source, login: &str) -> String {
    format!(
        "user:{}:login:{}",
        source.idp_prefix(),
        login.to_lowercase()
    )
}

fn group_key(source: Source, group: &GroupRef) -> String {
    match (&group.idp_id, &group.name) {
        (Some(id), _) => format!("group:{}", idp_alias(source, id)),
        (None, Some(name)) => format!("group:{}:name:{name}", source.idp_prefix()),
        (None, None) => format!("group:{}:-", source.idp_prefix()),
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 / ISO-8601 time as IdPs
/// write it (`2024-03-01T12:00:00.123Z`, `…+02:00`, fraction optional).
/// `None` for anything else: such an event is not ordered.
pub use crate::time::parse_rfc3339_ms as parse_time_ms;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, UserState};

    fn event(change: Change) -> IdpEvent {
        IdpEvent {
            id: EventId::new(Source::Okta, "e"),
            source: Source::Okta,
            event_type: "t".into(),
            occurred_at: None,
            change,
        }
    }

    #[test]
    fn logins_are_recorded_by_creates_with_an_id_and_guard_events_without_one() {
        let with_id = UserRef {
            idp_id: Some("00uNEW".into()),
            login: Some("Jane@X".into()),
        };
        let create = event(Change::UserUpserted {
            user: with_id.clone(),
            profile: crate::event::UserProfile::default(),
            state: None,
        });
        let recorded: Vec<_> = aspects(&create)
            .into_iter()
            .filter(|a| a.role == Role::Records)
            .map(|a| a.key)
            .collect();
        assert_eq!(
            recorded,
            ["user:okta:00unew/seen", "user:okta:login:jane@x/assigned"]
        );
        // Other events with an id: their id keeps them apart.
        let delete = event(Change::UserDeleted { user: with_id });
        assert!(aspects(&delete).iter().all(|a| !a.key.contains(":login:")));
        assert!(aspects(&delete).contains(&Aspect {
            key: "user:okta:00unew/seen".into(),
            role: Role::Records
        }));
        // Without an id: guarded by the login's last assignment.
        let late = event(Change::UserDeleted {
            user: UserRef {
                idp_id: None,
                login: Some("jane@x".into()),
            },
        });
        assert!(aspects(&late).contains(&Aspect {
            key: "user:okta:login:jane@x/assigned".into(),
            role: Role::Guard
        }));
        assert_eq!(subject_key(&late), "user:okta:login:jane@x");
    }

    #[test]
    fn user_events_share_a_subject_key_across_renames() {
        let jane = |login: &str| UserRef {
            idp_id: Some("00u1".into()),
            login: Some(login.into()),
        };
        let a = event(Change::UserStateChanged {
            user: jane("jane@a.example"),
            state: UserState::Disabled,
        });
        let b = event(Change::MembershipAdded {
            user: jane("jane.doe@a.example"),
            group: GroupRef {
                idp_id: Some("00g1".into()),
                name: None,
            },
        });
        assert_eq!(subject_key(&a), "user:okta:00u1");
        assert_eq!(subject_key(&a), subject_key(&b));
        let keys: Vec<_> = aspects(&b).into_iter().map(|a| a.key).collect();
        assert_eq!(
            keys,
            [
                "user:okta:00u1/deleted",
                "group:okta:00g1/deleted",
                "user:okta:00u1/member/group:okta:00g1",
                "user:okta:00u1/seen",
            ]
        );
    }
}
