//! A group notification → "make this Duo group and its members match
//! Graph now". (User notifications go through the planner every source
//! shares with an IdP API, `crate::idp_sync::plan_event_with_idp`, which
//! reads the user and its groups from Graph.)
//!
//! Graph's notification on a group says only that the group changed —
//! its name, or its members (membership changes arrive as `updated` on the
//! group) — so the planner reads the group's user members from Graph and
//! the Duo group's members from Duo, and plans the difference:
//! - the group itself: created, or renamed to Graph's `displayName`
//!   (`RenameGroup` creates a missing group), if `GROUP_FILTER` lets it in;
//! - each Graph member missing from the Duo group: planned as its own user
//!   notification would be (`crate::reconcile::reconcile_user`: created
//!   with its fields and state, all its groups, `SCOPE_GROUPS`, exclusions
//!   and attribute mapping applied), which adds it to this group;
//! - each Duo member that is the relay's Entra user (alias
//!   `entra:<objectId>`) but no longer a Graph member: `RemoveMembership`.
//!   Duo members the relay did not create are left alone.
//!
//! A group Graph answers 404 for is gone: deleted in Duo (the apply stage
//! checks the Duo group is the relay's).
//!
//! Costs: Graph 1 page of members per 999 (the group itself was read by
//! the enrich step) and 2 reads per member missing from the Duo group; Duo
//! the group search (1 page per 100 groups until the
//! group's), 1 page of members per 100, 1 `GET /users/{id}` per Duo member
//! whose username is not a Graph member's, and the operations.

use std::collections::HashSet;

use duo_admin::{DuoError, User};

use crate::event::{Change, GroupRef, IdpEvent, IdpKind, Lifecycle, Source, UserRef};
use crate::idp::{IdpError, IdpLookup};
use crate::operation::{GroupKey, Operation, UserKey};
use crate::plan::{PlanRules, Planned, idp_alias, plan_event};
use crate::source::entra::api::EntraApi;
use crate::source::entra::subscription::{ensure_subscriptions, renew};
use crate::target::{GroupMember, TargetReader};

/// Plans a group event of the Entra source, reading Graph and Duo; `None`
/// for any other event (the caller plans it).
pub async fn plan_group_event<R: TargetReader>(
    event: &IdpEvent,
    rules: &PlanRules,
    api: &EntraApi,
    duo: &R,
) -> Option<Planned> {
    let (group, name) = match &event.change {
        Change::GroupRenamed { group, new_name } => (group, new_name.clone()),
        // A `deleted` is a hint too: a group restored since is kept.
        Change::GroupDeleted { group } => {
            let id = group.idp_id.as_deref()?;
            match api.group(id).await {
                Ok(found) => (group, Some(found.name)),
                Err(IdpError::NotFound) => return Some(plan_event(event, rules)),
                Err(e) => {
                    return Some(failed(
                        event,
                        Failed {
                            transient: e.is_transient(),
                            detail: format!("Graph: {e}"),
                        },
                    ));
                }
            }
        }
        _ => return None,
    };
    let id = group.idp_id.as_deref()?;
    let Some(name) = name else {
        // The enrich step found no such group in Graph: it is gone.
        let gone = IdpEvent {
            change: Change::GroupDeleted {
                group: GroupRef {
                    idp_id: Some(id.to_owned()),
                    name: None,
                },
            },
            ..event.clone()
        };
        return Some(plan_event(&gone, rules));
    };
    if !rules.group_allowed(Some(&name)) {
        return Some(Planned::Skip("group does not match GROUP_FILTER".into()));
    }
    Some(match members_plan(api, duo, rules, id, &name).await {
        Ok(ops) if ops.is_empty() => {
            Planned::Skip("Duo already matches Graph for this group (reconciled)".into())
        }
        Ok(ops) => Planned::Operations(ops),
        Err(e) => failed(event, e),
    })
}

/// A read failed, and whether retrying may help.
struct Failed {
    transient: bool,
    detail: String,
}

impl Failed {
    fn graph(e: &IdpError) -> Self {
        Self {
            transient: e.is_transient(),
            detail: format!("Graph: {e}"),
        }
    }

    fn duo(e: &DuoError) -> Self {
        Self {
            transient: e.is_transient(),
            detail: format!("Duo: {e}"),
        }
    }
}

/// A transient failure retries the event (a skip would lose the change,
/// which the notification does not describe); a permanent one (refused
/// credentials, a missing permission) is skipped with its reason.
fn failed(event: &IdpEvent, failed: Failed) -> Planned {
    let reason = format!(
        "could not read the group's current members: {}",
        failed.detail
    );
    tracing::warn!(event_id = %event.id, source = %event.source, transient = failed.transient, "{reason}");
    if failed.transient {
        Planned::Retry(reason)
    } else {
        Planned::Skip(reason)
    }
}

async fn members_plan<R: TargetReader>(
    api: &EntraApi,
    duo: &R,
    rules: &PlanRules,
    id: &str,
    name: &str,
) -> Result<Vec<Operation>, Failed> {
    let key = GroupKey {
        idp_tag: Some(idp_alias(Source::Entra, id)),
        name: Some(name.to_owned()),
    };
    let graph_members = api.group_members(id).await.map_err(|e| Failed::graph(&e))?;
    let duo_group = duo.find_group(&key).await.map_err(|e| Failed::duo(&e))?;
    let mut ops = Vec::new();
    let duo_members: Vec<GroupMember> = match &duo_group {
        Some(entry) => {
            if entry.name != name || entry.tag.as_deref() != key.idp_tag.as_deref() {
                ops.push(Operation::RenameGroup {
                    group: key.clone(),
                    new_name: name.to_owned(),
                });
            }
            duo.group_members(&entry.group_id)
                .await
                .map_err(|e| Failed::duo(&e))?
        }
        None => {
            ops.push(Operation::RenameGroup {
                group: key.clone(),
                new_name: name.to_owned(),
            });
            Vec::new()
        }
    };
    let in_duo: HashSet<String> = duo_members
        .iter()
        .map(|m| m.username.to_lowercase())
        .collect();
    let mapping = rules.mapping.of(IdpKind::Entra);
    let spec = crate::mapping::spec(IdpKind::Entra);
    let mut logins = HashSet::new();
    let mut ids = HashSet::new();
    for member in &graph_members {
        ids.insert(member.idp_id.to_ascii_lowercase());
        // The Duo username per the attribute mapping in force (the UPN
        // without settings); a member without it is left to its user's
        // own planning, which says why.
        let login = mapping
            .apply(spec, &member.profile)
            .ok()
            .and_then(|p| p.login);
        if let Some(login) = &login {
            logins.insert(login.to_lowercase());
            if in_duo.contains(&login.to_lowercase()) {
                continue;
            }
        }
        // Not in the Duo group: the member is planned as its own user
        // notification would be (created with its fields and state, all its
        // groups, SCOPE_GROUPS, exclusions and mapping applied), which adds
        // it to this group.
        let user = UserRef {
            idp_id: Some(member.idp_id.clone()),
            login: None,
        };
        let member_ops = crate::reconcile::reconcile_user(api, duo, rules, &user)
            .await
            .map_err(|e| Failed {
                transient: e.is_transient(),
                detail: e.to_string(),
            })?;
        for op in member_ops {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
    }
    let prefix = format!("{}:", Source::Entra.idp_prefix());
    for member in duo_members
        .iter()
        .filter(|m| !logins.contains(&m.username.to_lowercase()))
    {
        let user: User = duo
            .user(&member.user_id)
            .await
            .map_err(|e| Failed::duo(&e))?;
        let entra_id = [&user.alias1, &user.alias2, &user.alias3, &user.alias4]
            .into_iter()
            .flatten()
            .find_map(|alias| {
                alias
                    .get(..prefix.len())
                    .filter(|p| p.eq_ignore_ascii_case(&prefix))
                    .map(|_| alias[prefix.len()..].to_ascii_lowercase())
            });
        // Not the relay's Entra user (no alias), or still a member under
        // another username (renamed in Graph, not yet in Duo): left alone.
        let Some(entra_id) = entra_id.filter(|i| !ids.contains(i)) else {
            continue;
        };
        ops.push(Operation::RemoveMembership {
            user: UserKey {
                idp_alias: Some(idp_alias(Source::Entra, &entra_id)),
                username: Some(user.username.clone()),
            },
            group: key.clone(),
        });
    }
    Ok(ops)
}

/// A lifecycle notification acted on with Graph
/// (`crate::source::entra::subscription` has the facts), and whether the
/// subscriptions were re-created (the pipeline then catches up on what
/// changed while there was none, when it has a catch-up):
/// - `reauthorizationRequired`: the subscription renewed with one `PATCH`
///   (reauthorizes it and moves its expiry 28 days out); one Graph no
///   longer has (404) is re-created;
/// - `subscriptionRemoved`: the relay's subscriptions re-created (and the
///   other renewed) for `ENTRA_NOTIFICATION_URL`; Graph validates the URL
///   through the relay's handshake first;
/// - `missed`: a catch-up the relay runs with its checkpoint store
///   (`crate::pipeline::Relay::with_catch_up`), not here.
///
/// A transient Graph failure retries the notification; anything that only
/// an operator can fix is an error line naming the command to run.
pub async fn plan_lifecycle(
    event: &IdpEvent,
    subscription: &str,
    lifecycle: Lifecycle,
    api: &EntraApi,
) -> (Planned, bool) {
    let now = crate::state::now_ms();
    match lifecycle {
        Lifecycle::ReauthorizationRequired => match renew(api, subscription, now).await {
            Ok(expires) => (
                Planned::Done(format!(
                    "subscription {subscription} reauthorized and renewed until {expires}"
                )),
                false,
            ),
            Err(IdpError::NotFound) => {
                let why = format!(
                    "subscription {subscription} is gone (Graph answered 404 to its renewal)"
                );
                recreate(event, api, &why, now).await
            }
            Err(e) => (
                lifecycle_failed(
                    event,
                    lifecycle,
                    &format!("renewing subscription {subscription}: {e}"),
                    e.is_transient(),
                ),
                false,
            ),
        },
        Lifecycle::SubscriptionRemoved => {
            let why = format!("Graph removed subscription {subscription}");
            recreate(event, api, &why, now).await
        }
        Lifecycle::Missed => (
            lifecycle_failed(
                event,
                lifecycle,
                "this relay runs no catch-up by itself (no checkpoint store wired)",
                false,
            ),
            false,
        ),
    }
}

/// Re-creates the relay's subscriptions (`ensure_subscriptions`: the
/// listing, a renewal of the one still there, a creation of the missing).
async fn recreate(event: &IdpEvent, api: &EntraApi, why: &str, now: i64) -> (Planned, bool) {
    let (Some(url), Some(state)) = (api.notification_url(), api.client_state()) else {
        let detail =
            format!("{why}; ENTRA_NOTIFICATION_URL is not set, so the relay cannot re-create it");
        return (
            lifecycle_failed(event, Lifecycle::SubscriptionRemoved, &detail, false),
            false,
        );
    };
    match ensure_subscriptions(api, url, state.expose(), now).await {
        Ok(outcomes) => {
            let done: Vec<String> = outcomes
                .iter()
                .map(|o| format!("{} {} {}", o.resource, o.action, o.id))
                .collect();
            (Planned::Done(format!("{why}: {}", done.join(", "))), true)
        }
        Err(e) => (
            lifecycle_failed(
                event,
                Lifecycle::SubscriptionRemoved,
                &format!("{why}; re-creating it failed: {e}"),
                e.is_transient(),
            ),
            false,
        ),
    }
}

/// A lifecycle notification the relay could not act on: retried when
/// `transient`, else an error line naming the operator's command.
fn lifecycle_failed(
    event: &IdpEvent,
    lifecycle: Lifecycle,
    detail: &str,
    transient: bool,
) -> Planned {
    if transient {
        tracing::warn!(event_id = %event.id, source = %event.source, lifecycle = lifecycle.as_str(), "{detail}; will retry");
        return Planned::Retry(detail.to_owned());
    }
    let reason = format!(
        "{}: {detail}; run {}",
        lifecycle.as_str(),
        crate::plan::lifecycle_command(lifecycle)
    );
    tracing::error!(event_id = %event.id, source = %event.source, "{reason}");
    Planned::Skip(reason)
}
