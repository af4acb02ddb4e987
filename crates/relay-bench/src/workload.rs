//! The generated tenant and event mix.
//!
//! Half the users are Okta's (alias `okta:00ubench…`), half Auth0's
//! (`auth0:auth0|bench…`), every Okta user is in one group, every fifth user
//! has a phone and two bypass codes, every tenth is disabled. The mix, per 100
//! events: 15 creates, 20 profile updates (Auth0 `user.updated`), 15
//! membership adds, 15 removes, 8 suspensions, 7 unsuspensions, 10 MFA
//! resets, 10 deletes. Okta events go out in batches of 1-3 per delivery, as
//! Okta batches them; Auth0 Event Streams send one per delivery.

use duo_sim::{Seed, SeedGroup, SeedUser};
use serde_json::json;

/// One HTTP delivery to the relay.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) path: &'static str,
    pub(crate) body: String,
    pub(crate) events: usize,
}

#[derive(Debug)]
pub(crate) struct Workload {
    pub(crate) seed: Seed,
    pub(crate) deliveries: Vec<Delivery>,
}

/// The fewest Duo calls an event of this type needs when its target exists
/// and the group index is warm — the reasoning is in
/// `relay-core/src/apply.rs`. `None` for types the mix does not measure.
pub(crate) fn minimum_calls(event_type: &str) -> Option<u64> {
    Some(match event_type {
        // A new user: one lookup (login and alias in one username_list) +
        // create.
        "user.lifecycle.create" => 2,
        // Lookup + modify.
        "user.updated" | "user.lifecycle.suspend" | "user.lifecycle.unsuspend" => 2,
        // Lookup (its answer embeds the groups) + add / remove.
        "group.user_membership.add" | "group.user_membership.remove" => 2,
        // Lookup + delete.
        "user.lifecycle.delete.initiated" => 2,
        // Lookup + bypass-code list + 1 phone + 2 codes (the seeded devices).
        "user.mfa.factor.reset_all" => 5,
        _ => return None,
    })
}

fn okta_id(i: usize) -> String {
    format!("00ubench{i:08}")
}

fn group_name(j: usize) -> String {
    format!("bench-group-{j:05}")
}

fn group_id(j: usize) -> String {
    format!("00gbench{j:08}")
}

fn username(i: usize) -> String {
    format!("user{i}@bench.example")
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Create,
    ProfileUpdate,
    MembershipAdd,
    MembershipRemove,
    Suspend,
    Unsuspend,
    MfaReset,
    Delete,
}

const MIX: [(Kind, u32); 8] = [
    (Kind::Create, 15),
    (Kind::ProfileUpdate, 20),
    (Kind::MembershipAdd, 15),
    (Kind::MembershipRemove, 15),
    (Kind::Suspend, 8),
    (Kind::Unsuspend, 7),
    (Kind::MfaReset, 10),
    (Kind::Delete, 10),
];

/// Draws users without replacement from a pool, so two events rarely touch
/// the same user (and then only after the pool runs dry).
struct Pool {
    users: Vec<usize>,
}

impl Pool {
    fn new(users: impl Iterator<Item = usize>, rng: &mut fastrand::Rng) -> Self {
        let mut users: Vec<usize> = users.collect();
        rng.shuffle(&mut users);
        Self { users }
    }

    fn take(&mut self, rng: &mut fastrand::Rng, fallback: usize) -> usize {
        self.users
            .pop()
            .unwrap_or_else(|| rng.usize(0..fallback.max(1)))
    }
}

/// The tenant: `groups` managed groups; half the users Okta's, half
/// Auth0's, each carrying the relay's alias unless `aliased` is false (Duo
/// accounts made before the relay); every Okta user in one group, every
/// fifth with a phone and two bypass codes, every tenth disabled.
pub(crate) fn tenant(users: usize, groups: usize, aliased: bool) -> Seed {
    let okta_users = users / 2;
    Seed {
        groups: (0..groups)
            .map(|j| SeedGroup {
                name: group_name(j),
                desc: format!("okta:{} synced by idp-duo-relay", group_id(j)),
                ..SeedGroup::default()
            })
            .collect(),
        users: (0..users)
            .map(|i| {
                let alias = if i < okta_users {
                    format!("okta:{}", okta_id(i))
                } else {
                    format!("auth0:auth0|bench{i:08}")
                };
                SeedUser {
                    username: username(i),
                    aliases: if aliased {
                        vec![String::new(), String::new(), String::new(), alias]
                    } else {
                        vec![]
                    },
                    realname: format!("User {i}"),
                    email: username(i),
                    status: Some(if i % 10 == 3 { "disabled" } else { "active" }.into()),
                    groups: if i < okta_users {
                        vec![group_name(i % groups)]
                    } else {
                        vec![]
                    },
                    phones: u32::from(i % 5 == 0),
                    bypass_codes: if i % 5 == 0 { 2 } else { 0 },
                    ..SeedUser::default()
                }
            })
            .collect(),
    }
}

impl Workload {
    pub(crate) fn generate(users: usize, groups: usize, events: usize, seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let okta_users = users / 2;
        let tenant = tenant(users, groups, true);

        let okta = 0..okta_users;
        let mut active = Pool::new(okta.clone().filter(|i| i % 10 != 3 && i % 5 != 0), &mut rng);
        let mut disabled = Pool::new(okta.clone().filter(|i| i % 10 == 3), &mut rng);
        let mut with_devices =
            Pool::new(okta.clone().filter(|i| i % 5 == 0 && i % 10 != 3), &mut rng);
        let mut auth0 = Pool::new(okta_users..users, &mut rng);
        let total_weight: u32 = MIX.iter().map(|(_, w)| w).sum();
        let mut new_user = 0usize;
        let mut okta_events = Vec::new();
        let mut deliveries = Vec::new();
        for n in 0..events {
            let mut roll = rng.u32(0..total_weight);
            let kind = MIX
                .iter()
                .find(|(_, w)| {
                    if roll < *w {
                        true
                    } else {
                        roll -= w;
                        false
                    }
                })
                .map_or(Kind::Create, |(k, _)| *k);
            let uuid = format!("bench-{seed}-{n:08}");
            let event = match kind {
                Kind::Create => {
                    new_user += 1;
                    let id = format!("00unew{new_user:08}");
                    let login = format!("new{new_user}@bench.example");
                    okta_event(&uuid, "user.lifecycle.create", &id, &login, None)
                }
                Kind::ProfileUpdate => {
                    let i = auth0.take(&mut rng, users);
                    deliveries.push(Delivery {
                        path: "/auth0",
                        body: auth0_profile_update(&uuid, i),
                        events: 1,
                    });
                    continue;
                }
                Kind::MembershipAdd => {
                    let i = active.take(&mut rng, okta_users);
                    let j = (i + 1) % groups;
                    okta_event(
                        &uuid,
                        "group.user_membership.add",
                        &okta_id(i),
                        &username(i),
                        Some(j),
                    )
                }
                Kind::MembershipRemove => {
                    let i = active.take(&mut rng, okta_users);
                    okta_event(
                        &uuid,
                        "group.user_membership.remove",
                        &okta_id(i),
                        &username(i),
                        Some(i % groups),
                    )
                }
                Kind::Suspend => {
                    let i = active.take(&mut rng, okta_users);
                    okta_event(
                        &uuid,
                        "user.lifecycle.suspend",
                        &okta_id(i),
                        &username(i),
                        None,
                    )
                }
                Kind::Unsuspend => {
                    let i = disabled.take(&mut rng, okta_users);
                    okta_event(
                        &uuid,
                        "user.lifecycle.unsuspend",
                        &okta_id(i),
                        &username(i),
                        None,
                    )
                }
                Kind::MfaReset => {
                    let i = with_devices.take(&mut rng, okta_users);
                    okta_event(
                        &uuid,
                        "user.mfa.factor.reset_all",
                        &okta_id(i),
                        &username(i),
                        None,
                    )
                }
                Kind::Delete => {
                    let i = active.take(&mut rng, okta_users);
                    okta_event(
                        &uuid,
                        "user.lifecycle.delete.initiated",
                        &okta_id(i),
                        &username(i),
                        None,
                    )
                }
            };
            okta_events.push(event);
            if okta_events.len() >= rng.usize(1..=3) {
                deliveries.push(okta_delivery(std::mem::take(&mut okta_events)));
            }
        }
        if !okta_events.is_empty() {
            deliveries.push(okta_delivery(okta_events));
        }
        Self {
            seed: tenant,
            deliveries,
        }
    }
}

/// One Okta event per delivery (so every event's calls are its own).
fn one_each(events: Vec<serde_json::Value>) -> Vec<Delivery> {
    events.into_iter().map(|e| okta_delivery(vec![e])).collect()
}

impl Workload {
    /// Issue 14's un-aliased users: Duo accounts made before the relay (no
    /// `okta:` alias). Each of `events / 2` Okta users gets one delivery of
    /// two events: a membership add (lookup + link the alias, once + add)
    /// then a removal from its own group (lookup + remove: linked already).
    pub(crate) fn unaliased(users: usize, groups: usize, events: usize, seed: u64) -> Self {
        let okta_users = users / 2;
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut pool = Pool::new((0..okta_users).filter(|i| i % 10 != 3), &mut rng);
        let deliveries = (0..events.div_ceil(2))
            .map(|n| {
                let i = pool.take(&mut rng, okta_users);
                let (id, login) = (okta_id(i), username(i));
                okta_delivery(vec![
                    okta_event(
                        &format!("unaliased-{seed}-{n:08}-a"),
                        "group.user_membership.add",
                        &id,
                        &login,
                        Some((i + 1) % groups),
                    ),
                    okta_event(
                        &format!("unaliased-{seed}-{n:08}-r"),
                        "group.user_membership.remove",
                        &id,
                        &login,
                        Some(i % groups),
                    ),
                ])
            })
            .collect();
        Self {
            seed: tenant(users, groups, false),
            deliveries,
        }
    }

    /// Membership adds of random Okta users to random existing groups, one
    /// event per delivery; `tag` keeps the event ids of two phases apart.
    pub(crate) fn membership_adds(
        users: usize,
        groups: usize,
        events: usize,
        seed: u64,
        tag: &str,
    ) -> Self {
        let okta_users = users / 2;
        let mut rng = fastrand::Rng::with_seed(seed);
        let added = (0..events)
            .map(|n| {
                let i = rng.usize(0..okta_users);
                // Not the user's own group (it is a member already).
                let j = (i % groups + 1 + rng.usize(0..groups - 1)) % groups;
                okta_event(
                    &format!("adds-{tag}-{seed}-{n:08}"),
                    "group.user_membership.add",
                    &okta_id(i),
                    &username(i),
                    Some(j),
                )
            })
            .collect();
        Self {
            seed: tenant(users, groups, true),
            deliveries: one_each(added),
        }
    }

    /// Every event a membership add to a group Duo lacks (a new name each
    /// time), one event per delivery.
    pub(crate) fn new_groups(users: usize, groups: usize, events: usize, seed: u64) -> Self {
        let okta_users = users / 2;
        let mut rng = fastrand::Rng::with_seed(seed);
        let added = (0..events)
            .map(|n| {
                let i = rng.usize(0..okta_users);
                let mut event = okta_event(
                    &format!("newgroup-{seed}-{n:08}"),
                    "group.user_membership.add",
                    &okta_id(i),
                    &username(i),
                    Some(0),
                );
                event["target"][1]["id"] = json!(format!("00gnew{n:08}"));
                event["target"][1]["displayName"] = json!(format!("bench-new-{n:05}"));
                event
            })
            .collect();
        Self {
            seed: tenant(users, groups, true),
            deliveries: one_each(added),
        }
    }
}

fn okta_event(
    uuid: &str,
    event_type: &str,
    user_id: &str,
    login: &str,
    group: Option<usize>,
) -> serde_json::Value {
    let mut targets = vec![json!({
        "id": user_id, "type": "User", "alternateId": login, "displayName": "Bench User", "detailEntry": null
    })];
    if let Some(j) = group {
        targets.push(json!({
            "id": group_id(j), "type": "UserGroup", "alternateId": "unknown", "displayName": group_name(j), "detailEntry": null
        }));
    }
    json!({
        "uuid": uuid,
        "published": "2026-03-11T09:00:00.871Z",
        "eventType": event_type,
        "version": "0",
        "severity": "INFO",
        "actor": {"id": "00uADMIN", "type": "User", "alternateId": "admin@bench.example", "displayName": "Admin"},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": targets,
        "debugContext": {"debugData": {"requestId": uuid}}
    })
}

fn okta_delivery(events: Vec<serde_json::Value>) -> Delivery {
    let n = events.len();
    Delivery {
        path: "/okta",
        body: json!({
            "eventType": "com.okta.event_hook",
            "eventTypeVersion": "1.0",
            "cloudEventsVersion": "0.1",
            "source": "https://bench.okta.com/api/v1/eventHooks/whobench",
            "eventId": format!("env-{}", events.first().and_then(|e| e["uuid"].as_str()).unwrap_or("x")),
            "eventTime": "2026-03-11T09:00:01.412Z",
            "contentType": "application/json",
            "data": {"events": events}
        })
        .to_string(),
        events: n,
    }
}

fn auth0_profile_update(id: &str, i: usize) -> String {
    let user_id = format!("auth0|bench{i:08}");
    json!({
        "id": format!("evt_{id}"),
        "source": "urn:auth0:bench.us.auth0.com",
        "specversion": "1.0",
        "type": "user.updated",
        "time": "2026-03-11T09:05:00.101Z",
        "data": {
            "object": {"user_id": user_id, "email": username(i), "name": format!("User {i} Renamed"),
                       "given_name": "User", "family_name": format!("{i} Renamed"), "blocked": false},
            "previous_object": {"user_id": user_id, "email": username(i), "name": format!("User {i}"), "blocked": false}
        }
    })
    .to_string()
}
