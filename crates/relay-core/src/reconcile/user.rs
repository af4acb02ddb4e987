//! One user: the IdP's view of it against Duo's, as operations. Used by
//! `reconcile --user LOGIN` and by the event path, where every event about
//! a user becomes "make this user match the IdP", so events that arrive
//! late, twice or not at all cannot leave Duo wrong.
//!
//! Costs: IdP 2 calls (the user, its groups); Duo 1 lookup.

use std::collections::HashSet;

use duo_admin::User;

use super::ReconcileError;
use super::diff::{
    Action, PlanScope, Subject, Unit, Untouched, add_membership, create_user, matched_key,
    remove_membership, user_changes,
};
use super::read::{IdpReader, TargetReader};
use crate::event::{UserRef, UserState};
use crate::identity::Resolution;
use crate::idp::IdpUser;
use crate::operation::UserKey;

/// The plan for one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPlan {
    /// Its actions (empty when Duo already matches).
    pub unit: Option<Unit>,
    /// Set when the user was left alone on purpose, and why.
    pub untouched: Option<Untouched>,
    /// The Duo user is a ghost (managed, gone from the IdP).
    pub ghost: bool,
    /// `untouched` is an excluded account (`DUO_EXCLUDE_*`).
    pub excluded: bool,
    /// `untouched` is an IdP user outside `SCOPE_GROUPS`.
    pub out_of_scope: bool,
}

/// How a Duo account found only by its username is treated when the IdP
/// has no such user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameMatch {
    /// The caller knows the IdP named this login (an event about it): the
    /// Duo user is the IdP user's and is deprovisioned.
    Managed,
    /// Nothing says it ever came from the IdP: a Duo-only account.
    Unmanaged,
}

/// Plans one user. `target` names it by IdP id (preferred: a login can be
/// reused) and/or login.
pub async fn plan_user<I: IdpReader, R: TargetReader>(
    idp: &I,
    duo: &R,
    scope: &PlanScope<'_>,
    target: &UserRef,
    username_match: UsernameMatch,
) -> Result<UserPlan, ReconcileError> {
    let idp_err = |e| ReconcileError::Idp {
        idp: scope.kind,
        error: e,
    };
    let mut found: Option<IdpUser> = match (&target.idp_id, &target.login) {
        (Some(id), _) => idp.user(id).await.map_err(idp_err)?,
        (None, Some(login)) => {
            let mut users = idp.users_by_login(login).await.map_err(idp_err)?;
            if users.len() > 1 {
                return Ok(UserPlan {
                    untouched: Some(Untouched {
                        username: login.clone(),
                        reason: format!("{} IdP users have this login", users.len()),
                    }),
                    ..UserPlan::default()
                });
            }
            users.pop()
        }
        (None, None) => return Ok(UserPlan::default()),
    };
    let key = match &found {
        Some(u) => UserKey {
            idp_alias: Some(scope.tag(&u.idp_id)),
            username: u.profile.login.clone().or_else(|| target.login.clone()),
        },
        None => UserKey {
            idp_alias: target.idp_id.as_deref().map(|id| scope.tag(id)),
            username: target.login.clone(),
        },
    };
    let resolution = duo.resolve_user(&key).await.map_err(ReconcileError::Duo)?;
    // The login's account is bound to another identity: never this one's
    // (it is not adopted, changed or deleted for it).
    let held = match &resolution {
        Resolution::Held { owner, .. } => Some(owner.clone()),
        Resolution::Found { .. } | Resolution::Absent => None,
    };
    let duo_user = resolution.found().cloned();
    if let Some(d) = &duo_user
        && let Some(why) = scope.rules.exclusions.reason(d)
    {
        return Ok(UserPlan {
            untouched: Some(Untouched {
                username: d.username.clone(),
                reason: why,
            }),
            excluded: true,
            ..UserPlan::default()
        });
    }
    // Looked up by login only (no IdP id in the key), the Duo user may carry
    // an id of this IdP: that IdP user decides.
    let other_id = duo_user
        .as_ref()
        .and_then(|d| scope.our_alias(d))
        .map(|alias| alias[scope.prefix().len()..].to_owned())
        .filter(|id| {
            found
                .as_ref()
                .is_none_or(|u| !u.idp_id.eq_ignore_ascii_case(id))
        });
    if let Some(other_id) = &other_id {
        let owner = idp.user(other_id).await.map_err(idp_err)?;
        match (&found, owner) {
            // Looked up by login only, and the Duo account is a renamed
            // user's: reconcile that one.
            (None, Some(owner)) if target.idp_id.is_none() => found = Some(owner),
            (_, Some(owner)) => {
                return Ok(UserPlan {
                    untouched: Some(Untouched {
                        username: duo_user.map(|d| d.username).unwrap_or_default(),
                        reason: format!(
                            "the Duo user belongs to {} ({})",
                            scope.tag(&owner.idp_id),
                            owner.profile.login.as_deref().unwrap_or("no login")
                        ),
                    }),
                    ..UserPlan::default()
                });
            }
            // The other id is gone from the IdP: the account is a ghost,
            // deprovisioned below (nothing else matches by login).
            (_, None) => {}
        }
    }
    // SCOPE_GROUPS: the user's groups decide whether it is synced at all.
    let mut groups = None;
    if let (Some(scope_groups), Some(u)) = (&scope.rules.scope, &found) {
        let of_user = idp.user_groups(&u.idp_id).await.map_err(idp_err)?;
        if !scope_groups.admits(&of_user) {
            return Ok(out_of_scope(scope, u, duo_user.as_ref()));
        }
        groups = Some(of_user);
    }
    match (found, duo_user) {
        (Some(u), Some(d)) => {
            let mut actions = user_changes(scope, &u, &d);
            let key = matched_key(scope, &u, &d);
            actions.extend(memberships(idp, scope, &u, &key, Some(&d), groups).await?);
            Ok(one(key, actions))
        }
        (Some(u), None) => {
            let Some(login) = u.profile.login.clone() else {
                return Ok(UserPlan {
                    untouched: Some(Untouched {
                        username: scope.tag(&u.idp_id),
                        reason: "the IdP user has no login to use as the Duo username".into(),
                    }),
                    ..UserPlan::default()
                });
            };
            if u.state == UserState::Disabled {
                return Ok(UserPlan::default());
            }
            let key = UserKey {
                idp_alias: Some(scope.tag(&u.idp_id)),
                username: Some(login.clone()),
            };
            let mut create = create_user(scope, &u, &login);
            if let Some(owner) = &held {
                // Applying it waits (a transient failure) until that
                // account is deleted or renamed by its own events, or by a
                // tenant reconcile that finds it a ghost.
                create.detail = format!(
                    "{}; the login is held by the Duo account of {owner}",
                    create.detail
                );
            }
            let mut actions = vec![create];
            actions.extend(memberships(idp, scope, &u, &key, None, groups).await?);
            Ok(one(key, actions))
        }
        (None, Some(d)) => Ok(gone_from_idp(scope, target, &d, username_match)),
        (None, None) => Ok(UserPlan::default()),
    }
}

/// An IdP user in none of `SCOPE_GROUPS`: its Duo account is deprovisioned
/// when it is the relay's (it carries this user's IdP id: the user left the
/// scope); anything else is left alone, and nothing is created.
fn out_of_scope(scope: &PlanScope<'_>, user: &IdpUser, duo_user: Option<&User>) -> UserPlan {
    let tag = scope.tag(&user.idp_id);
    let describe = scope
        .rules
        .scope
        .as_ref()
        .map(crate::scope::ScopeGroups::describe)
        .unwrap_or_default();
    match duo_user {
        Some(d) if crate::identity::carries(d, &tag) => {
            let key = UserKey {
                idp_alias: Some(tag.clone()),
                username: Some(d.username.clone()),
            };
            let why = format!("{tag} left SCOPE_GROUPS ({describe})");
            let action = scope.deprovision(key.clone(), d, &why);
            one(key, action.into_iter().collect())
        }
        _ => UserPlan {
            untouched: Some(Untouched {
                username: user.profile.login.clone().unwrap_or(tag),
                reason: format!("in none of SCOPE_GROUPS ({describe}): not synced"),
            }),
            out_of_scope: true,
            ..UserPlan::default()
        },
    }
}

fn one(key: UserKey, actions: Vec<Action>) -> UserPlan {
    UserPlan {
        unit: (!actions.is_empty()).then(|| Unit {
            subject_kind: Subject::User,
            subject: key.username.unwrap_or_default(),
            actions,
        }),
        ..UserPlan::default()
    }
}

/// The IdP has no such user: deprovision the Duo user if it is managed.
fn gone_from_idp(
    scope: &PlanScope<'_>,
    target: &UserRef,
    duo_user: &User,
    username_match: UsernameMatch,
) -> UserPlan {
    let ours = scope.our_alias(duo_user).map(str::to_owned);
    let managed = match &ours {
        // An alias naming another IdP user was followed above; one left
        // here names a user the IdP no longer has.
        Some(_) => true,
        None if scope.has_other_alias(duo_user) => {
            return UserPlan {
                untouched: Some(Untouched {
                    username: duo_user.username.clone(),
                    reason: "carries the other IdP's id".into(),
                }),
                ..UserPlan::default()
            };
        }
        None => username_match == UsernameMatch::Managed || scope.include_unmanaged,
    };
    if !managed {
        return UserPlan {
            untouched: Some(Untouched {
                username: duo_user.username.clone(),
                reason: format!(
                    "not in {} and carries no IdP id: a Duo-only account, left alone (--include-unmanaged would deprovision it)",
                    scope.kind
                ),
            }),
            ..UserPlan::default()
        };
    }
    let key = UserKey {
        idp_alias: ours
            .clone()
            .or_else(|| target.idp_id.as_deref().map(|id| scope.tag(id))),
        username: Some(duo_user.username.clone()),
    };
    let why = match &ours {
        Some(alias) => format!("{alias} is no longer in {}", scope.kind),
        None => format!("{} is not in {}", duo_user.username, scope.kind),
    };
    let action = scope.deprovision(key.clone(), duo_user, &why);
    UserPlan {
        ghost: ours.is_some(),
        ..one(key, action.into_iter().collect())
    }
}

/// Adds for the in-scope groups the Duo user lacks; removes from managed
/// Duo groups the IdP user is not in.
async fn memberships<I: IdpReader>(
    idp: &I,
    scope: &PlanScope<'_>,
    user: &IdpUser,
    key: &UserKey,
    duo_user: Option<&User>,
    groups: Option<Vec<crate::idp::IdpGroup>>,
) -> Result<Vec<Action>, ReconcileError> {
    let groups = match groups {
        Some(groups) => groups,
        None => idp
            .user_groups(&user.idp_id)
            .await
            .map_err(|e| ReconcileError::Idp {
                idp: scope.kind,
                error: e,
            })?,
    };
    let member_of: HashSet<String> = groups
        .iter()
        .map(|g| scope.tag(&g.idp_id).to_lowercase())
        .collect();
    let current = duo_user.map(|d| d.groups.as_slice()).unwrap_or_default();
    let mut actions = Vec::new();
    let mut wanted: Vec<_> = groups
        .iter()
        .filter(|g| scope.rules.group_allowed(Some(&g.name)))
        .collect();
    wanted.sort_by(|a, b| a.name.cmp(&b.name));
    for g in wanted {
        let tag = scope.tag(&g.idp_id);
        let present = current.iter().any(|m| {
            scope
                .our_group_tag(m)
                .is_some_and(|t| t.eq_ignore_ascii_case(&tag))
                || m.name.eq_ignore_ascii_case(&g.name)
        });
        if !present {
            actions.push(add_membership(key, g, tag));
        }
    }
    for m in current {
        if let Some(tag) = scope.our_group_tag(m)
            && !member_of.contains(&tag.to_lowercase())
            && scope.rules.group_allowed(Some(&m.name))
        {
            actions.push(remove_membership(key, m, tag));
        }
    }
    Ok(actions)
}
