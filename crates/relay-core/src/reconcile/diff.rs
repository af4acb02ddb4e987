//! The plan: two snapshots in, the operations that make Duo match out. Pure
//! (no I/O), so every rule is a unit test.
//!
//! Scope rules, in one place:
//! - A Duo user is *managed* when one of its aliases carries this IdP's id
//!   (`okta:00u…`), or when its username (or alias) is the login of an IdP
//!   user. Only managed users are updated, disabled or deleted. A Duo user
//!   with this IdP's alias whose IdP user no longer exists is a *ghost* and
//!   is deprovisioned (`DEPROVISION_ACTION`). Any other Duo user is
//!   *unmanaged*: reported, and touched only with `include_unmanaged`. Users
//!   carrying the other IdP's alias are never touched.
//! - An IdP user is matched to the Duo user carrying its id, else to the Duo
//!   user with its login only when that one carries no IdP id (it is then
//!   linked). A Duo user carrying another id is never adopted
//!   ([`crate::identity`]): when it is a ghost of this IdP (a login deleted
//!   and re-created), it is deleted and the new user created after it; with
//!   `DEPROVISION_ACTION=disable`, or when it is the other IdP's, the IdP
//!   user is reported as a conflict.
//! - A Duo group is *managed* when its description starts with this IdP's
//!   tag (`okta:00g…`); only managed groups are renamed or deleted, and
//!   members are removed only from managed groups. An IdP group whose Duo
//!   counterpart has no tag but the same name uses that group (members are
//!   added, never removed). `GROUP_FILTER` limits everything: a group whose
//!   name does not match is never created, joined, left, renamed or deleted.
//! - An IdP user that is disabled and absent from Duo is not created.

use std::collections::{BTreeMap, HashMap, HashSet};

use duo_admin::{DuoGroupId, Group, User, UserStatus};
use serde::Serialize;

use super::IdpKind;
use super::read::{DuoSnapshot, IdpSnapshot};
use crate::apply::managed_tag;
use crate::event::UserState;
use crate::identity;
use crate::idp::{IdpGroup, IdpUser};
use crate::operation::{GroupKey, Operation, UserAttrs, UserKey};
use crate::plan::{DeprovisionAction, PlanRules, idp_alias};

/// What one action does, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    CreateGroup,
    RenameGroup,
    CreateUser,
    UpdateUser,
    EnableUser,
    DisableUser,
    AddMembership,
    RemoveMembership,
    DeleteUser,
    DeleteGroup,
}

impl Category {
    /// How the report's table names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::CreateGroup => "create group",
            Self::RenameGroup => "rename group",
            Self::CreateUser => "create user",
            Self::UpdateUser => "update user",
            Self::EnableUser => "enable user",
            Self::DisableUser => "disable user",
            Self::AddMembership => "add membership",
            Self::RemoveMembership => "remove membership",
            Self::DeleteUser => "delete user",
            Self::DeleteGroup => "delete group",
        }
    }
}

/// One operation, why, and how the report files it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub category: Category,
    /// What differs, for a person: `realname "Jane Doe" → "Jane Smith"`.
    pub detail: String,
    pub operation: Operation,
    /// Counts against `max_deletes`: a user deleted or disabled because the
    /// IdP no longer has it (or it is unmanaged), a group deleted.
    pub deprovision: bool,
}

/// Whether a unit is about a user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    User,
    Group,
}

/// The actions about one user or one group, applied in order; the first
/// failure stops the rest of its unit (a membership of a user that could
/// not be created would only fail again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub subject_kind: Subject,
    /// The login or username, or the group name.
    pub subject: String,
    pub actions: Vec<Action>,
}

/// A Duo account the reconcile leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Untouched {
    pub username: String,
    pub reason: String,
}

/// Sizes of both sides, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TenantStats {
    pub idp_users: usize,
    pub idp_groups: usize,
    pub groups_in_scope: usize,
    pub duo_users: usize,
    pub duo_groups: usize,
}

/// Everything a run would do, in the order it would do it: group creates
/// and renames, then users (updates before creates, so a login freed by a
/// rename can be taken), then deprovisions, then the creates of logins a
/// ghost's account held (a login deleted and re-created in the IdP), then
/// group deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// Duo-only accounts (no IdP alias, no IdP login): not touched unless
    /// `include_unmanaged`.
    pub unmanaged: Vec<Untouched>,
    /// Managed Duo users whose IdP user is gone (deprovisioned above, or
    /// already disabled).
    pub ghosts: usize,
    /// Duo users that carry the other IdP's alias.
    pub other_idp: usize,
    /// IdP users the relay cannot map (no login, a login another IdP user
    /// also has).
    pub conflicts: Vec<Untouched>,
    /// Duo accounts excluded (`DUO_EXCLUDE_*`, Duo's directory sync): never
    /// modified, disabled or deleted, `include_unmanaged` or not; an IdP
    /// user whose account is one of them is left alone too.
    pub excluded: Vec<Untouched>,
    /// IdP users in none of `SCOPE_GROUPS`: never created; their Duo
    /// account is deprovisioned only when it is the relay's.
    pub out_of_scope: Vec<Untouched>,
    pub stats: TenantStats,
}

impl Plan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.units.iter().flat_map(|u| u.actions.iter())
    }

    /// Actions that count against `max_deletes`.
    pub fn deprovisions(&self) -> usize {
        self.actions().filter(|a| a.deprovision).count()
    }

    pub fn is_empty(&self) -> bool {
        self.units.iter().all(|u| u.actions.is_empty())
    }
}

/// How the planner was asked to work.
#[derive(Debug, Clone, Copy)]
pub struct PlanScope<'a> {
    pub kind: IdpKind,
    pub rules: &'a PlanRules,
    pub include_unmanaged: bool,
}

impl PlanScope<'_> {
    pub(crate) fn tag(&self, idp_id: &str) -> String {
        idp_alias(self.kind.source(), idp_id)
    }

    /// `okta:` / `auth0:`.
    pub(crate) fn prefix(&self) -> String {
        format!("{}:", self.kind.source().idp_prefix())
    }

    /// The alias prefixes of every other IdP.
    pub(crate) fn other_prefixes(&self) -> Vec<String> {
        IdpKind::ALL
            .iter()
            .filter(|k| **k != self.kind)
            .map(|k| format!("{}:", k.source().idp_prefix()))
            .collect()
    }

    /// This IdP's alias on a Duo user, if any (any slot: the relay writes
    /// slot 4, an admin may have moved it).
    pub(crate) fn our_alias<'u>(&self, user: &'u User) -> Option<&'u str> {
        let prefix = self.prefix();
        user.aliases()
            .into_iter()
            .flatten()
            .find(|a| starts_with_ignore_case(a, &prefix))
    }

    pub(crate) fn has_other_alias(&self, user: &User) -> bool {
        let prefixes = self.other_prefixes();
        user.aliases()
            .into_iter()
            .flatten()
            .any(|a| prefixes.iter().any(|p| starts_with_ignore_case(a, p)))
    }

    /// This IdP's tag at the start of a Duo group's description.
    pub(crate) fn our_group_tag<'g>(&self, group: &'g Group) -> Option<&'g str> {
        let tag = group.desc.as_deref().and_then(managed_tag)?;
        starts_with_ignore_case(tag, &self.prefix()).then_some(tag)
    }

    pub(crate) fn deprovision(&self, key: UserKey, user: &User, why: &str) -> Option<Action> {
        match self.rules.deprovision {
            DeprovisionAction::Delete => Some(Action {
                category: Category::DeleteUser,
                detail: why.to_owned(),
                operation: Operation::DeleteUser { user: key },
                deprovision: true,
            }),
            DeprovisionAction::Disable if user.status == UserStatus::Disabled => None,
            DeprovisionAction::Disable => Some(Action {
                category: Category::DisableUser,
                detail: format!("{why} (DEPROVISION_ACTION=disable)"),
                operation: Operation::SetUserState {
                    user: key,
                    state: UserState::Disabled,
                    attrs: UserAttrs::default(),
                },
                deprovision: true,
            }),
        }
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// The attributes the IdP holds, as Duo fields.
pub(crate) fn attrs_of(user: &IdpUser) -> UserAttrs {
    let p = &user.profile;
    UserAttrs {
        realname: p.display_name.clone(),
        firstname: p.first_name.clone(),
        lastname: p.last_name.clone(),
        email: p.email.clone(),
        aliases: p.aliases.clone(),
        phone: p.phone.clone(),
    }
}

/// `bypass` and `locked out` count as active, as in the apply stage: the
/// relay does not override an admin's bypass or Duo's own lockout.
fn status_matches(current: &UserStatus, wanted: UserState) -> bool {
    match wanted {
        UserState::Active => !matches!(current, UserStatus::Disabled),
        UserState::Disabled => matches!(current, UserStatus::Disabled),
    }
}

/// How the actions about an IdP user matched to a Duo user name it: this
/// IdP's alias, and the IdP login (else the Duo username).
pub(crate) fn matched_key(scope: &PlanScope<'_>, idp: &IdpUser, duo: &User) -> UserKey {
    UserKey {
        idp_alias: Some(scope.tag(&idp.idp_id)),
        username: idp
            .profile
            .login
            .clone()
            .or_else(|| Some(duo.username.clone())),
    }
}

/// The update, enable and disable actions that bring `duo` to `idp`.
pub(crate) fn user_changes(scope: &PlanScope<'_>, idp: &IdpUser, duo: &User) -> Vec<Action> {
    let key = matched_key(scope, idp, duo);
    let tag = scope.tag(&idp.idp_id);
    let attrs = attrs_of(idp);
    let mut changes = Vec::new();
    let mut renamed = None;
    if let Some(login) = &idp.profile.login
        && !login.eq_ignore_ascii_case(&duo.username)
    {
        changes.push(format!("username {} → {login}", duo.username));
        renamed = Some(duo.username.clone());
    }
    for (field, current, wanted) in [
        ("realname", &duo.realname, &attrs.realname),
        ("firstname", &duo.firstname, &attrs.firstname),
        ("lastname", &duo.lastname, &attrs.lastname),
        ("email", &duo.email, &attrs.email),
    ] {
        // Emails compare without case: a directory that lowercases them
        // must not look drifted on every run.
        let same = |c: &str, w: &str| {
            if field == "email" {
                c.eq_ignore_ascii_case(w)
            } else {
                c == w
            }
        };
        if let Some(wanted) = wanted
            && !current.as_deref().is_some_and(|c| same(c, wanted))
        {
            let was = current.as_deref().unwrap_or("");
            changes.push(format!("{field} {was:?} → {wanted:?}"));
        }
    }
    // The mapped phone, by the apply stage's rule (`DuoDirectory::ensure_phone`).
    if let Some(number) = &attrs.phone
        && !duo
            .phones
            .iter()
            .any(|p| p.number.as_deref() == Some(number))
    {
        let ours = duo
            .phones
            .iter()
            .find(|p| p.name.as_deref() == Some(crate::apply::RELAY_PHONE_NAME));
        if ours.is_some() || scope.rules.mapping.phone_readd {
            let was = ours.and_then(|p| p.number.as_deref()).unwrap_or("");
            changes.push(format!("phone {was:?} → {number:?}"));
        }
    }
    let current_aliases = duo.aliases();
    for (i, wanted) in attrs.aliases.iter().enumerate() {
        if let Some(wanted) = wanted
            && !current_aliases[i].is_some_and(|c| identity::same_name(c, wanted))
            && !current_aliases[i].is_some_and(identity::is_idp_id)
        {
            let was = current_aliases[i].unwrap_or("");
            changes.push(format!("alias{} {was:?} → {wanted:?}", i + 1));
        }
    }
    if !duo
        .aliases()
        .into_iter()
        .flatten()
        .any(|a| a.eq_ignore_ascii_case(&tag))
    {
        changes.push(format!("IdP id {tag} linked"));
    }
    let mut actions = Vec::new();
    if !changes.is_empty() {
        actions.push(Action {
            category: Category::UpdateUser,
            detail: changes.join("; "),
            operation: Operation::UpdateUser {
                user: key.clone(),
                attrs,
                previous_username: renamed,
            },
            deprovision: false,
        });
    }
    if !status_matches(&duo.status, idp.state) {
        let (category, detail) = match idp.state {
            UserState::Active => (
                Category::EnableUser,
                format!("active in {}; {} in Duo", scope.kind, duo.status.as_str()),
            ),
            UserState::Disabled => (
                Category::DisableUser,
                format!(
                    "suspended, deactivated or blocked in {}; {} in Duo",
                    scope.kind,
                    duo.status.as_str()
                ),
            ),
        };
        actions.push(Action {
            category,
            detail,
            operation: Operation::SetUserState {
                user: key,
                state: idp.state,
                attrs: UserAttrs::default(),
            },
            deprovision: false,
        });
    }
    actions
}

/// Creating a user the IdP has and Duo does not.
pub(crate) fn create_user(scope: &PlanScope<'_>, idp: &IdpUser, login: &str) -> Action {
    let attrs = attrs_of(idp);
    let name = attrs.realname.clone().unwrap_or_default();
    Action {
        category: Category::CreateUser,
        detail: if name.is_empty() {
            format!("in {}, not in Duo", scope.kind)
        } else {
            format!("{name}; in {}, not in Duo", scope.kind)
        },
        operation: Operation::UpsertUser {
            user: UserKey {
                idp_alias: Some(scope.tag(&idp.idp_id)),
                username: Some(login.to_owned()),
            },
            attrs,
            state: Some(UserState::Active),
        },
        deprovision: false,
    }
}

pub(crate) fn add_membership(key: &UserKey, group: &IdpGroup, tag: String) -> Action {
    Action {
        category: Category::AddMembership,
        detail: format!("member of {} in the IdP", group.name),
        operation: Operation::AddMembership {
            user: key.clone(),
            group: GroupKey {
                idp_tag: Some(tag),
                name: Some(group.name.clone()),
            },
        },
        deprovision: false,
    }
}

pub(crate) fn remove_membership(key: &UserKey, group: &Group, tag: &str) -> Action {
    Action {
        category: Category::RemoveMembership,
        detail: format!("not a member of {} in the IdP", group.name),
        operation: Operation::RemoveMembership {
            user: key.clone(),
            group: GroupKey {
                idp_tag: Some(tag.to_owned()),
                name: Some(group.name.clone()),
            },
        },
        deprovision: false,
    }
}

/// The Duo side of one in-scope IdP group.
struct GroupMatch<'a> {
    idp: &'a IdpGroup,
    tag: String,
    duo: Option<&'a Group>,
    /// The Duo group carries this IdP group's tag (else it was found by
    /// name, or is to be created).
    tagged: bool,
}

/// Compares the two snapshots.
pub fn plan(idp: &IdpSnapshot, duo: &DuoSnapshot, scope: &PlanScope<'_>) -> Plan {
    let rules = scope.rules;
    let mut out = Plan {
        stats: TenantStats {
            idp_users: idp.users.len(),
            idp_groups: idp.groups.len(),
            groups_in_scope: 0,
            duo_users: duo.users.len(),
            duo_groups: duo.groups.len(),
        },
        ..Plan::default()
    };

    // ---- groups ----
    let mut duo_by_tag: HashMap<String, &Group> = HashMap::new();
    let mut duo_by_name: HashMap<String, &Group> = HashMap::new();
    for g in &duo.groups {
        if let Some(tag) = scope.our_group_tag(g) {
            duo_by_tag.insert(lower(tag), g);
        }
        duo_by_name.insert(lower(&g.name), g);
    }
    let idp_group_ids: HashSet<&str> = idp.groups.iter().map(|g| g.idp_id.as_str()).collect();
    let mut matches: Vec<GroupMatch<'_>> = Vec::new();
    let mut claimed_groups: HashSet<&DuoGroupId> = HashSet::new();
    for g in idp
        .groups
        .iter()
        .filter(|g| rules.group_allowed(Some(&g.name)))
    {
        let tag = scope.tag(&g.idp_id);
        let (found, tagged) = match duo_by_tag.get(&lower(&tag)) {
            Some(d) => (Some(*d), true),
            None => (duo_by_name.get(&lower(&g.name)).copied(), false),
        };
        if let Some(d) = found {
            claimed_groups.insert(&d.group_id);
        }
        matches.push(GroupMatch {
            idp: g,
            tag,
            duo: found,
            tagged,
        });
    }
    out.stats.groups_in_scope = matches.len();
    matches.sort_by(|a, b| a.idp.name.cmp(&b.idp.name));
    for m in &matches {
        let action = match m.duo {
            None => Action {
                category: Category::CreateGroup,
                detail: format!("group {} in the IdP, not in Duo", m.tag),
                operation: Operation::CreateGroup {
                    group: GroupKey {
                        idp_tag: Some(m.tag.clone()),
                        name: Some(m.idp.name.clone()),
                    },
                },
                deprovision: false,
            },
            Some(d) if m.tagged && d.name != m.idp.name => Action {
                category: Category::RenameGroup,
                detail: format!("renamed in the IdP: {} → {}", d.name, m.idp.name),
                operation: Operation::RenameGroup {
                    group: GroupKey {
                        idp_tag: Some(m.tag.clone()),
                        name: Some(d.name.clone()),
                    },
                    new_name: m.idp.name.clone(),
                },
                deprovision: false,
            },
            Some(_) => continue,
        };
        out.units.push(Unit {
            subject_kind: Subject::Group,
            subject: m.idp.name.clone(),
            actions: vec![action],
        });
    }
    // Duo group id → the in-scope IdP group it stands for (members may be
    // removed from it when it is managed, i.e. tagged).
    let duo_group_role: HashMap<&DuoGroupId, &GroupMatch<'_>> = matches
        .iter()
        .filter_map(|m| Some((&m.duo?.group_id, m)))
        .collect();
    // IdP user id → in-scope groups it is a member of.
    let mut wanted_groups: HashMap<&str, Vec<&GroupMatch<'_>>> = HashMap::new();
    for m in &matches {
        for member in idp.members.get(&m.idp.idp_id).into_iter().flatten() {
            wanted_groups.entry(member.as_str()).or_default().push(m);
        }
    }

    // ---- users: match ----
    let excluded: HashMap<usize, String> = duo
        .users
        .iter()
        .enumerate()
        .filter_map(|(i, u)| Some((i, rules.exclusions.reason(u)?)))
        .collect();
    // IdP users whose Duo account is excluded: left alone.
    let mut skipped: HashSet<usize> = HashSet::new();
    // SCOPE_GROUPS: the IdP user ids in scope (members of a scope group).
    let in_scope: Option<HashSet<&str>> = rules.scope.as_ref().map(|scope_groups| {
        idp.groups
            .iter()
            .filter(|g| scope_groups.names(g))
            .flat_map(|g| idp.members.get(&g.idp_id).into_iter().flatten())
            .map(String::as_str)
            .collect()
    });
    let admitted = |u: &IdpUser| {
        in_scope
            .as_ref()
            .is_none_or(|ids| ids.contains(u.idp_id.as_str()))
    };
    let scope_names = rules
        .scope
        .as_ref()
        .map(crate::scope::ScopeGroups::describe)
        .unwrap_or_default();
    // Duo accounts of IdP users that left the scope (deprovisioned), and
    // accounts an out-of-scope IdP user's login names (left alone).
    let mut leavers: Vec<(usize, usize)> = Vec::new();
    let mut protected: HashSet<usize> = HashSet::new();
    let mut by_alias: HashMap<String, usize> = HashMap::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for (i, u) in duo.users.iter().enumerate() {
        for alias in u.aliases().into_iter().flatten() {
            by_alias.entry(lower(alias)).or_insert(i);
        }
        by_name.insert(lower(&u.username), i);
    }
    // The IdP users that share a login: the first (by id) keeps it unless
    // another already owns the Duo user by its alias.
    let mut idp_users: Vec<&IdpUser> = idp.users.iter().collect();
    idp_users.sort_by(|a, b| a.idp_id.cmp(&b.idp_id));
    let mut duo_of: BTreeMap<usize, usize> = BTreeMap::new(); // idp index → duo index
    let mut owner_of: HashMap<usize, usize> = HashMap::new(); // duo index → idp index
    for (i, u) in idp_users.iter().enumerate() {
        if let Some(&d) = by_alias.get(&lower(&scope.tag(&u.idp_id))) {
            if excluded.contains_key(&d) {
                skipped.insert(i);
                continue;
            }
            if !admitted(u) {
                leavers.push((i, d));
                skipped.insert(i);
                owner_of.insert(d, i);
                continue;
            }
            duo_of.insert(i, d);
            owner_of.insert(d, i);
        }
    }
    let mut login_taken: HashMap<String, usize> = HashMap::new();
    for (i, u) in idp_users.iter().enumerate() {
        if let Some(login) = &u.profile.login
            && duo_of.contains_key(&i)
        {
            login_taken.entry(lower(login)).or_insert(i);
        }
    }
    let mut creates: Vec<(usize, String)> = Vec::new();
    // Creates whose login a ghost's account holds: planned after the ghosts
    // are deleted.
    let mut after_ghosts: Vec<(usize, String)> = Vec::new();
    for (i, u) in idp_users.iter().enumerate() {
        if duo_of.contains_key(&i) || skipped.contains(&i) {
            continue;
        }
        if !admitted(u) {
            let login = u.profile.login.clone();
            if let Some(d) = login
                .as_deref()
                .and_then(|l| by_name.get(&lower(l)).or_else(|| by_alias.get(&lower(l))))
            {
                protected.insert(*d);
            }
            out.out_of_scope.push(Untouched {
                username: login.unwrap_or_else(|| scope.tag(&u.idp_id)),
                reason: format!("in none of SCOPE_GROUPS ({scope_names}): not synced"),
            });
            continue;
        }
        let Some(login) = u.profile.login.clone() else {
            out.conflicts.push(Untouched {
                username: scope.tag(&u.idp_id),
                reason: "the IdP user has no login (Auth0: no email) to use as the Duo username"
                    .into(),
            });
            continue;
        };
        if let Some(&other) = login_taken.get(&lower(&login)) {
            out.conflicts.push(Untouched {
                username: login.clone(),
                reason: format!(
                    "{} also has this login; the Duo user belongs to it",
                    scope.tag(&idp_users[other].idp_id)
                ),
            });
            continue;
        }
        login_taken.insert(lower(&login), i);
        let found = by_name
            .get(&lower(&login))
            .or_else(|| by_alias.get(&lower(&login)))
            .copied();
        match found {
            // An excluded account answers to this login: never adopted,
            // and no second account is made beside it.
            Some(d) if excluded.contains_key(&d) => {}
            // The username belongs to another IdP user's Duo account: that
            // one is renamed first (updates run before creates).
            Some(d) if owner_of.contains_key(&d) => creates.push((i, login)),
            // An account bound to another IdP id is never adopted (issue
            // 13): its IdP user is gone (it would own it otherwise), so it
            // is a ghost of this IdP — deleted below, and this user created
            // after it — or an account of the other IdP, left alone.
            Some(d) => match identity::bound_to(&duo.users[d]) {
                None => {
                    duo_of.insert(i, d);
                    owner_of.insert(d, i);
                }
                Some(_)
                    if scope.our_alias(&duo.users[d]).is_some()
                        && rules.deprovision == DeprovisionAction::Delete =>
                {
                    after_ghosts.push((i, login));
                }
                Some(owner) => out.conflicts.push(Untouched {
                    username: login.clone(),
                    reason: format!(
                        "{} has this login, but its Duo account is bound to {owner}{}; delete or rename that account to let this user be created",
                        scope.tag(&u.idp_id),
                        if scope.our_alias(&duo.users[d]).is_some() {
                            " (gone from the IdP, kept disabled: DEPROVISION_ACTION=disable)"
                        } else {
                            ", another IdP's user"
                        }
                    ),
                }),
            },
            None => creates.push((i, login)),
        }
    }

    // ---- users: plan ----
    let memberships = |key: &UserKey, idp_user: &IdpUser, duo_user: Option<&User>| {
        let wanted = wanted_groups
            .get(idp_user.idp_id.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let current: HashSet<&DuoGroupId> = duo_user
            .map(|d| d.groups.iter().map(|g| &g.group_id).collect())
            .unwrap_or_default();
        let mut actions = Vec::new();
        let mut wanted_ids: HashSet<&str> = HashSet::new();
        let mut sorted: Vec<&GroupMatch<'_>> = wanted.to_vec();
        sorted.sort_by(|a, b| a.idp.name.cmp(&b.idp.name));
        for m in sorted {
            wanted_ids.insert(m.idp.idp_id.as_str());
            if m.duo.is_some_and(|d| current.contains(&d.group_id)) {
                continue;
            }
            actions.push(add_membership(key, m.idp, m.tag.clone()));
        }
        if let Some(d) = duo_user {
            for g in &d.groups {
                if let Some(m) = duo_group_role.get(&g.group_id)
                    && m.tagged
                    && !wanted_ids.contains(m.idp.idp_id.as_str())
                {
                    actions.push(remove_membership(key, g, &m.tag));
                }
            }
        }
        actions
    };
    let mut updates = Vec::new();
    for (&i, &d) in &duo_of {
        let idp_user = idp_users[i];
        let duo_user = &duo.users[d];
        let mut actions = user_changes(scope, idp_user, duo_user);
        let key = matched_key(scope, idp_user, duo_user);
        actions.extend(memberships(&key, idp_user, Some(duo_user)));
        if !actions.is_empty() {
            updates.push(Unit {
                subject_kind: Subject::User,
                subject: key.username.clone().unwrap_or_default(),
                actions,
            });
        }
    }
    updates.sort_by(|a, b| a.subject.cmp(&b.subject));
    let create_units = |creates: Vec<(usize, String)>| {
        let mut created = Vec::new();
        for (i, login) in creates {
            let idp_user = idp_users[i];
            if idp_user.state == UserState::Disabled {
                continue;
            }
            let mut actions = vec![create_user(scope, idp_user, &login)];
            let key = UserKey {
                idp_alias: Some(scope.tag(&idp_user.idp_id)),
                username: Some(login.clone()),
            };
            actions.extend(memberships(&key, idp_user, None));
            created.push(Unit {
                subject_kind: Subject::User,
                subject: login,
                actions,
            });
        }
        created.sort_by(|a, b| a.subject.cmp(&b.subject));
        created
    };
    out.units.extend(updates);
    out.units.extend(create_units(creates));

    // ---- Duo users no IdP user claims ----
    let mut deprovisions = Vec::new();
    for (d, user) in duo.users.iter().enumerate() {
        if let Some(why) = excluded.get(&d) {
            out.excluded.push(Untouched {
                username: user.username.clone(),
                reason: why.clone(),
            });
            continue;
        }
        if owner_of.contains_key(&d) || protected.contains(&d) {
            continue;
        }
        let action = if let Some(alias) = scope.our_alias(user) {
            out.ghosts += 1;
            scope.deprovision(
                UserKey {
                    idp_alias: Some(alias.to_owned()),
                    username: Some(user.username.clone()),
                },
                user,
                &format!("{alias} is no longer in {}", scope.kind),
            )
        } else if scope.has_other_alias(user) {
            out.other_idp += 1;
            None
        } else {
            out.unmanaged.push(Untouched {
                username: user.username.clone(),
                reason: if scope.include_unmanaged {
                    "Duo-only account (deprovisioned: --include-unmanaged)".into()
                } else {
                    "Duo-only account, left alone (--include-unmanaged would deprovision it)".into()
                },
            });
            if !scope.include_unmanaged {
                continue;
            }
            scope.deprovision(
                UserKey {
                    idp_alias: None,
                    username: Some(user.username.clone()),
                },
                user,
                &format!("not in {} and carries no IdP id", scope.kind),
            )
        };
        if let Some(action) = action {
            deprovisions.push(Unit {
                subject_kind: Subject::User,
                subject: user.username.clone(),
                actions: vec![action],
            });
        }
    }
    for (i, d) in leavers {
        let user = &duo.users[d];
        let tag = scope.tag(&idp_users[i].idp_id);
        let key = UserKey {
            idp_alias: Some(tag.clone()),
            username: Some(user.username.clone()),
        };
        if let Some(action) = scope.deprovision(
            key,
            user,
            &format!("{tag} left SCOPE_GROUPS ({scope_names})"),
        ) {
            deprovisions.push(Unit {
                subject_kind: Subject::User,
                subject: user.username.clone(),
                actions: vec![action],
            });
        }
    }
    deprovisions.sort_by(|a, b| a.subject.cmp(&b.subject));
    out.units.extend(deprovisions);
    out.out_of_scope.sort_by(|a, b| a.username.cmp(&b.username));
    out.units.extend(create_units(after_ghosts));
    out.unmanaged.sort_by(|a, b| a.username.cmp(&b.username));

    // ---- managed Duo groups whose IdP group is gone ----
    let mut group_deletes = Vec::new();
    for g in &duo.groups {
        let Some(tag) = scope.our_group_tag(g) else {
            continue;
        };
        let id = &tag[scope.prefix().len()..];
        if claimed_groups.contains(&g.group_id)
            || idp_group_ids.contains(id)
            || !rules.group_allowed(Some(&g.name))
        {
            continue;
        }
        group_deletes.push(Unit {
            subject_kind: Subject::Group,
            subject: g.name.clone(),
            actions: vec![Action {
                category: Category::DeleteGroup,
                detail: format!("{tag} is no longer in {}", scope.kind),
                operation: Operation::DeleteGroup {
                    group: GroupKey {
                        idp_tag: Some(tag.to_owned()),
                        name: Some(g.name.clone()),
                    },
                },
                deprovision: true,
            }],
        });
    }
    group_deletes.sort_by(|a, b| a.subject.cmp(&b.subject));
    out.units.extend(group_deletes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;
    use crate::event::UserProfile;
    use serde_json::json;

    fn idp_user(id: &str, login: &str, name: &str, state: UserState) -> IdpUser {
        IdpUser {
            idp_id: id.into(),
            state,
            profile: UserProfile {
                login: Some(login.into()),
                email: Some(login.into()),
                display_name: Some(name.into()),
                first_name: None,
                last_name: None,
                ..UserProfile::default()
            },
        }
    }

    fn idp_group(id: &str, name: &str) -> IdpGroup {
        IdpGroup {
            idp_id: id.into(),
            name: name.into(),
        }
    }

    fn duo_group(id: &str, name: &str, desc: &str) -> Group {
        serde_json::from_value(json!({"group_id": id, "name": name, "desc": desc})).unwrap()
    }

    fn duo_user(
        id: &str,
        username: &str,
        alias4: Option<&str>,
        realname: &str,
        status: &str,
        groups: &[&Group],
    ) -> User {
        serde_json::from_value(json!({
            "user_id": id, "username": username, "alias4": alias4,
            "realname": realname, "email": username, "status": status,
            "groups": groups,
        }))
        .unwrap()
    }

    fn rules(pairs: &[(&str, &str)]) -> PlanRules {
        let raw: RawConfig = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PlanRules::from_config(&raw).unwrap()
    }

    fn scope(rules: &PlanRules, include_unmanaged: bool) -> PlanScope<'_> {
        PlanScope {
            kind: IdpKind::Okta,
            rules,
            include_unmanaged,
        }
    }

    /// (category, subject) of every action, in plan order.
    fn summary(plan: &Plan) -> Vec<(Category, String)> {
        plan.units
            .iter()
            .flat_map(|u| u.actions.iter().map(|a| (a.category, u.subject.clone())))
            .collect()
    }

    /// A tenant with one of each kind of drift.
    fn drifted() -> (IdpSnapshot, DuoSnapshot) {
        let eng = duo_group("DG1", "duo-eng-old", "okta:00gENG synced by idp-duo-relay");
        let gone = duo_group("DG2", "duo-gone", "okta:00gGONE synced by idp-duo-relay");
        let ops = duo_group("DG3", "duo-ops", "made by hand");
        let admins = duo_group("DG4", "admins", "made by hand");
        let idp = IdpSnapshot {
            users: vec![
                idp_user("00uA", "ann@x.com", "Ann New", UserState::Active),
                idp_user("00uB", "bob@x.com", "Bob", UserState::Disabled),
                idp_user("00uC", "cy@x.com", "Cy", UserState::Active),
                idp_user("00uD", "dee.new@x.com", "Dee", UserState::Active),
                idp_user("00uE", "eve@x.com", "Eve", UserState::Disabled),
            ],
            groups: vec![
                idp_group("00gENG", "duo-eng"),
                idp_group("00gOPS", "duo-ops"),
                idp_group("00gNEW", "duo-new"),
                idp_group("00gALL", "everyone-else"),
            ],
            members: HashMap::from([
                ("00gENG".into(), vec!["00uA".into(), "00uC".into()]),
                ("00gOPS".into(), vec!["00uA".into()]),
                ("00gNEW".into(), vec!["00uC".into()]),
                ("00gALL".into(), vec!["00uA".into()]),
            ]),
        };
        let duo = DuoSnapshot {
            users: vec![
                // Stale name, in a group the IdP removed her from (managed),
                // and in a hand-made group (never touched).
                duo_user(
                    "DUA",
                    "ann@x.com",
                    Some("okta:00uA"),
                    "Ann Old",
                    "active",
                    &[&gone, &admins],
                ),
                // Suspended in the IdP, active in Duo.
                duo_user("DUB", "bob@x.com", Some("okta:00uB"), "Bob", "active", &[]),
                // Renamed in the IdP (found by alias).
                duo_user("DUD", "dee@x.com", Some("okta:00uD"), "Dee", "active", &[]),
                // Deleted in the IdP: a ghost.
                duo_user(
                    "DUG",
                    "ghost@x.com",
                    Some("okta:00uGONE"),
                    "Ghost",
                    "active",
                    &[&eng],
                ),
                // Duo-only, and the other IdP's.
                duo_user("DUU", "admin@x.com", None, "Admin", "active", &[]),
                duo_user(
                    "DUZ",
                    "zed@x.com",
                    Some("auth0:auth0|z"),
                    "Zed",
                    "active",
                    &[],
                ),
            ],
            groups: vec![eng, gone, ops, admins],
        };
        (idp, duo)
    }

    #[test]
    fn every_kind_of_drift_is_planned_in_order() {
        let (idp, duo) = drifted();
        let rules = rules(&[("GROUP_FILTER", "^duo-")]);
        let plan = plan(&idp, &duo, &scope(&rules, false));
        assert_eq!(
            summary(&plan),
            vec![
                (Category::RenameGroup, "duo-eng".into()),
                (Category::CreateGroup, "duo-new".into()),
                // updates (by login), then creates
                (Category::UpdateUser, "ann@x.com".into()),
                (Category::AddMembership, "ann@x.com".into()),
                (Category::AddMembership, "ann@x.com".into()),
                (Category::DisableUser, "bob@x.com".into()),
                (Category::UpdateUser, "dee.new@x.com".into()),
                (Category::CreateUser, "cy@x.com".into()),
                (Category::AddMembership, "cy@x.com".into()),
                (Category::AddMembership, "cy@x.com".into()),
                // deprovisions, then group deletes
                (Category::DeleteUser, "ghost@x.com".into()),
                (Category::DeleteGroup, "duo-gone".into()),
            ]
        );
        // duo-ops has no tag but the IdP's name: joined by name, never
        // renamed or deleted; everyone-else is outside GROUP_FILTER.
        let ann = plan
            .units
            .iter()
            .find(|u| u.subject == "ann@x.com")
            .unwrap();
        assert!(matches!(
            &ann.actions[0].operation,
            Operation::UpdateUser { previous_username: None, attrs, .. }
                if attrs.realname.as_deref() == Some("Ann New")
        ));
        let joined: Vec<_> = ann.actions[1..]
            .iter()
            .map(|a| match &a.operation {
                Operation::AddMembership { group, .. } => group.name.clone().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(joined, ["duo-eng", "duo-ops"]);
        // Ann stays in duo-gone: the group itself is deleted (the IdP group
        // is gone), and in the hand-made group.
        assert!(
            !plan
                .actions()
                .any(|a| a.category == Category::RemoveMembership)
        );
        let dee = plan
            .units
            .iter()
            .find(|u| u.subject == "dee.new@x.com")
            .unwrap();
        assert!(matches!(
            &dee.actions[0].operation,
            Operation::UpdateUser { previous_username: Some(prev), .. } if prev == "dee@x.com"
        ));
        assert_eq!(plan.ghosts, 1);
        assert_eq!(plan.other_idp, 1);
        assert_eq!(plan.unmanaged.len(), 1);
        assert_eq!(plan.unmanaged[0].username, "admin@x.com");
        // Eve is disabled in the IdP and absent in Duo: not created.
        assert!(!plan.units.iter().any(|u| u.subject == "eve@x.com"));
        assert_eq!(plan.deprovisions(), 2);
        assert_eq!(plan.stats.groups_in_scope, 3);
    }

    #[test]
    fn members_leave_managed_groups_only() {
        let eng = duo_group("DG1", "duo-eng", "okta:00gENG synced by idp-duo-relay");
        let ops = duo_group("DG3", "duo-ops", "made by hand");
        let idp = IdpSnapshot {
            users: vec![idp_user("00uA", "ann@x.com", "Ann", UserState::Active)],
            groups: vec![
                idp_group("00gENG", "duo-eng"),
                idp_group("00gOPS", "duo-ops"),
            ],
            members: HashMap::new(),
        };
        let duo = DuoSnapshot {
            users: vec![duo_user(
                "DUA",
                "ann@x.com",
                Some("okta:00uA"),
                "Ann",
                "active",
                &[&eng, &ops],
            )],
            groups: vec![eng, ops],
        };
        let rules = PlanRules::default();
        let plan = plan(&idp, &duo, &scope(&rules, false));
        assert_eq!(
            summary(&plan),
            vec![(Category::RemoveMembership, "ann@x.com".into())]
        );
    }

    #[test]
    fn a_matching_tenant_plans_nothing() {
        let eng = duo_group("DG1", "duo-eng", "okta:00gENG synced by idp-duo-relay");
        let idp = IdpSnapshot {
            users: vec![
                idp_user("00uA", "ann@x.com", "Ann", UserState::Active),
                idp_user("00uB", "bob@x.com", "Bob", UserState::Disabled),
            ],
            groups: vec![idp_group("00gENG", "duo-eng")],
            members: HashMap::from([("00gENG".into(), vec!["00uA".into()])]),
        };
        let duo = DuoSnapshot {
            users: vec![
                // Bypass counts as active: the relay does not undo it.
                duo_user(
                    "DUA",
                    "Ann@X.com",
                    Some("okta:00uA"),
                    "Ann",
                    "bypass",
                    &[&eng],
                ),
                duo_user(
                    "DUB",
                    "bob@x.com",
                    Some("okta:00uB"),
                    "Bob",
                    "disabled",
                    &[],
                ),
            ],
            groups: vec![eng],
        };
        let rules = PlanRules::default();
        let plan = plan(&idp, &duo, &scope(&rules, false));
        assert!(plan.is_empty(), "{:?}", summary(&plan));
    }

    #[test]
    fn deprovision_action_disable_and_unmanaged_accounts() {
        let (idp, duo) = drifted();
        let rules = rules(&[("GROUP_FILTER", "^duo-"), ("DEPROVISION_ACTION", "disable")]);
        let plan_ = plan(&idp, &duo, &scope(&rules, true));
        let deprovisions: Vec<_> = plan_
            .actions()
            .filter(|a| a.deprovision)
            .map(|a| (a.category, a.operation.to_string()))
            .collect();
        assert_eq!(
            deprovisions,
            vec![
                (
                    Category::DisableUser,
                    "set user admin@x.com Disabled".to_owned()
                ),
                (
                    Category::DisableUser,
                    "set user ghost@x.com (okta:00uGONE) Disabled".to_owned()
                ),
                (
                    Category::DeleteGroup,
                    "delete group duo-gone (okta:00gGONE)".to_owned()
                ),
            ]
        );
        // A ghost that is already disabled needs nothing.
        let mut duo = duo;
        duo.users[3].status = UserStatus::Disabled;
        let plan_ = plan(&idp, &duo, &scope(&rules, false));
        assert_eq!(plan_.ghosts, 1);
        assert!(!plan_.units.iter().any(|u| u.subject == "ghost@x.com"));
    }

    #[test]
    fn group_filter_keeps_out_of_scope_groups_untouched() {
        let (idp, duo) = drifted();
        let rules = rules(&[("GROUP_FILTER", "^nothing$")]);
        let plan = plan(&idp, &duo, &scope(&rules, false));
        assert!(!plan.actions().any(|a| matches!(
            a.category,
            Category::CreateGroup
                | Category::RenameGroup
                | Category::DeleteGroup
                | Category::AddMembership
                | Category::RemoveMembership
        )));
    }

    #[test]
    fn usernames_adopt_unlinked_accounts_and_shared_logins_conflict() {
        let idp = IdpSnapshot {
            users: vec![
                idp_user("00uA", "ann@x.com", "Ann", UserState::Active),
                idp_user("00uB", "shared@x.com", "One", UserState::Active),
                idp_user("00uC", "shared@x.com", "Two", UserState::Active),
            ],
            ..IdpSnapshot::default()
        };
        let duo = DuoSnapshot {
            users: vec![duo_user("DUA", "ann@x.com", None, "Ann", "active", &[])],
            groups: vec![],
        };
        let rules = PlanRules::default();
        let plan = plan(&idp, &duo, &scope(&rules, false));
        assert_eq!(
            summary(&plan),
            vec![
                (Category::UpdateUser, "ann@x.com".into()),
                (Category::CreateUser, "shared@x.com".into()),
            ]
        );
        assert!(plan.units[0].actions[0].detail.contains("okta:00uA linked"));
        assert!(plan.unmanaged.is_empty());
        assert_eq!(plan.conflicts.len(), 1);
        assert!(plan.conflicts[0].reason.contains("okta:00uB"));
    }

    /// Issue 13: a login deleted and re-created in the IdP (new id) never
    /// adopts the old identity's Duo account: the ghost is deleted first and
    /// the new user created after it; kept disabled, or the other IdP's,
    /// the account is left alone and the new user reported.
    #[test]
    fn a_recreated_login_never_adopts_the_ghosts_account() {
        let idp = IdpSnapshot {
            users: vec![
                idp_user("00uNEW", "jane@x.com", "Jane New", UserState::Active),
                idp_user("00uBOB", "bob@x.com", "Bob", UserState::Active),
            ],
            ..IdpSnapshot::default()
        };
        let duo = DuoSnapshot {
            users: vec![
                duo_user(
                    "DUOLD",
                    "jane@x.com",
                    Some("okta:00uOLD"),
                    "Jane Old",
                    "active",
                    &[],
                ),
                duo_user(
                    "DUBOB",
                    "bob@x.com",
                    Some("auth0:auth0|bob"),
                    "Bob",
                    "active",
                    &[],
                ),
            ],
            groups: vec![],
        };
        let delete = PlanRules::default();
        let plan_ = plan(&idp, &duo, &scope(&delete, false));
        assert_eq!(
            summary(&plan_),
            vec![
                (Category::DeleteUser, "jane@x.com".into()),
                (Category::CreateUser, "jane@x.com".into()),
            ]
        );
        // The delete is the ghost's (by its own id), the create the new
        // identity's; nothing updates the old account.
        let ops: Vec<&Operation> = plan_.actions().map(|a| &a.operation).collect();
        assert!(
            matches!(ops[0], Operation::DeleteUser { user } if user.idp_alias.as_deref() == Some("okta:00uOLD"))
        );
        assert!(
            matches!(ops[1], Operation::UpsertUser { user, .. } if user.idp_alias.as_deref() == Some("okta:00uNEW"))
        );
        assert_eq!(plan_.ghosts, 1);
        assert_eq!(plan_.other_idp, 1);
        assert_eq!(plan_.conflicts.len(), 1, "{:?}", plan_.conflicts);
        assert!(plan_.conflicts[0].reason.contains("auth0:auth0|bob"));

        let disable = rules(&[("DEPROVISION_ACTION", "disable")]);
        let plan_ = plan(&idp, &duo, &scope(&disable, false));
        assert_eq!(
            summary(&plan_),
            vec![(Category::DisableUser, "jane@x.com".into())]
        );
        assert!(matches!(&plan_.units[0].actions[0].operation,
            Operation::SetUserState { user, .. } if user.idp_alias.as_deref() == Some("okta:00uOLD")));
        assert_eq!(plan_.conflicts.len(), 2, "{:?}", plan_.conflicts);
        assert!(
            plan_
                .conflicts
                .iter()
                .any(|c| c.reason.contains("okta:00uOLD"))
        );
    }
}
