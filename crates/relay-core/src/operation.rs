//! The Duo side of the vocabulary: what the relay will do in Duo.
//!
//! Every event, whatever its source, becomes zero or more [`Operation`]s.
//! Each operation is idempotent by definition (create-if-absent,
//! delete-if-present, add-if-not-member, rename-if-different), so applying
//! one twice is harmless and a retried delivery cannot do damage.

use std::fmt;

use serde::Serialize;

use crate::event::{MfaScope, UserState};

/// How the relay finds a Duo user: by the IdP's immutable id, stored in an
/// alias slot (`okta:00u…`), and/or by username. The alias wins when both are
/// known, which is what makes a login rename a rename.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserKey {
    /// `okta:00u…` / `auth0:auth0|…`, as stored in the Duo user's alias slot.
    pub idp_alias: Option<String>,
    /// The Duo username (Okta login / Auth0 email).
    pub username: Option<String>,
}

impl fmt::Display for UserKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.username, &self.idp_alias) {
            (Some(u), Some(a)) => write!(f, "{u} ({a})"),
            (Some(u), None) => f.write_str(u),
            (None, Some(a)) => f.write_str(a),
            (None, None) => f.write_str("?"),
        }
    }
}

/// How the relay finds a Duo group: by the IdP's group/role id kept in the
/// group's description, and/or by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroupKey {
    /// `okta:00g…` / `auth0:rol_…`, as kept in the Duo group's description.
    pub idp_tag: Option<String>,
    pub name: Option<String>,
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, &self.idp_tag) {
            (Some(n), Some(t)) => write!(f, "{n} ({t})"),
            (Some(n), None) => f.write_str(n),
            (None, Some(t)) => f.write_str(t),
            (None, None) => f.write_str("?"),
        }
    }
}

/// User fields to set in Duo; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UserAttrs {
    pub realname: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    /// Duo `alias1`..`alias3` from attribute mapping (`crate::mapping`).
    pub aliases: [Option<String>; 3],
    /// The mobile phone to provision, E.164 (`crate::phone`).
    pub phone: Option<String>,
}

/// One thing to make true in Duo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operation {
    /// Create the user if absent; otherwise bring the given fields (and the
    /// IdP id alias, and `state` when set) up to date.
    UpsertUser {
        user: UserKey,
        attrs: UserAttrs,
        state: Option<UserState>,
    },
    /// Set `active` / `disabled` if different. A missing user is created
    /// only when it is to be active and its username is known.
    SetUserState {
        user: UserKey,
        state: UserState,
        attrs: UserAttrs,
    },
    /// Bring fields up to date and rename the user to `user.username` if the
    /// Duo user (found by alias, else by `previous_username`) has another one.
    UpdateUser {
        user: UserKey,
        attrs: UserAttrs,
        previous_username: Option<String>,
    },
    /// Delete if present (permanent in Duo).
    DeleteUser { user: UserKey },
    /// Add if not a member; creates a missing user (events arrive out of
    /// order: the membership may come before the create) and a missing group.
    AddMembership { user: UserKey, group: GroupKey },
    /// Remove if a member.
    RemoveMembership { user: UserKey, group: GroupKey },
    /// Create if absent.
    CreateGroup { group: GroupKey },
    /// Rename if different (create if absent).
    RenameGroup { group: GroupKey, new_name: String },
    /// Delete if present.
    DeleteGroup { group: GroupKey },
    /// Remove the user's phones, hardware tokens, WebAuthn/U2F credentials
    /// and bypass codes; keep the user, its id, status and groups.
    ResetMfa { user: UserKey, scope: MfaScope },
}

/// Which operation, without its arguments: what the summary line's
/// `operations` and the `--json` report list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperationKind {
    UpsertUser,
    SetUserState,
    UpdateUser,
    DeleteUser,
    AddMembership,
    RemoveMembership,
    CreateGroup,
    RenameGroup,
    DeleteGroup,
    ResetMfa,
}

impl OperationKind {
    /// A short stable name for logs and metrics (the one place these
    /// strings are written).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UpsertUser => "upsert_user",
            Self::SetUserState => "set_user_state",
            Self::UpdateUser => "update_user",
            Self::DeleteUser => "delete_user",
            Self::AddMembership => "add_membership",
            Self::RemoveMembership => "remove_membership",
            Self::CreateGroup => "create_group",
            Self::RenameGroup => "rename_group",
            Self::DeleteGroup => "delete_group",
            Self::ResetMfa => "reset_mfa",
        }
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its name (`"upsert_user"`).
impl Serialize for OperationKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Operation {
    /// Which operation this is.
    pub fn kind(&self) -> OperationKind {
        match self {
            Self::UpsertUser { .. } => OperationKind::UpsertUser,
            Self::SetUserState { .. } => OperationKind::SetUserState,
            Self::UpdateUser { .. } => OperationKind::UpdateUser,
            Self::DeleteUser { .. } => OperationKind::DeleteUser,
            Self::AddMembership { .. } => OperationKind::AddMembership,
            Self::RemoveMembership { .. } => OperationKind::RemoveMembership,
            Self::CreateGroup { .. } => OperationKind::CreateGroup,
            Self::RenameGroup { .. } => OperationKind::RenameGroup,
            Self::DeleteGroup { .. } => OperationKind::DeleteGroup,
            Self::ResetMfa { .. } => OperationKind::ResetMfa,
        }
    }

    /// A short stable name for logs and metrics: [`OperationKind::as_str`].
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Whether applying it destroys something that cannot be restored.
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Self::DeleteUser { .. } | Self::DeleteGroup { .. } | Self::ResetMfa { .. }
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UpsertUser { user, state, .. } => match state {
                Some(s) => write!(f, "upsert user {user} ({s:?})"),
                None => write!(f, "upsert user {user}"),
            },
            Self::SetUserState { user, state, .. } => write!(f, "set user {user} {state:?}"),
            Self::UpdateUser {
                user,
                previous_username,
                ..
            } => match previous_username {
                Some(prev) => write!(f, "update user {user} (was {prev})"),
                None => write!(f, "update user {user}"),
            },
            Self::DeleteUser { user } => write!(f, "delete user {user}"),
            Self::AddMembership { user, group } => write!(f, "add {user} to group {group}"),
            Self::RemoveMembership { user, group } => {
                write!(f, "remove {user} from group {group}")
            }
            Self::CreateGroup { group } => write!(f, "create group {group}"),
            Self::RenameGroup { group, new_name } => {
                write!(f, "rename group {group} to {new_name}")
            }
            Self::DeleteGroup { group } => write!(f, "delete group {group}"),
            Self::ResetMfa { user, scope } => write!(f, "reset MFA ({scope:?}) of {user}"),
        }
    }
}
