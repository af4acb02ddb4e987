//! What one Duo operation did, or found already done: the typed
//! description an [`crate::apply::OpOutcome`] carries. Its [`Display`] is
//! the one place these descriptions are worded; the summary line's
//! `detail` (joined with `; `), `replay`'s report and reconcile's report
//! print it. Values, not formatted strings, so a reader (a test, a
//! report) can tell what happened without parsing text.
//!
//! [`Display`]: std::fmt::Display

use std::fmt;

use crate::operation::{GroupKey, Operation, UserKey};

/// What an operation did in Duo, or found already done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    // ---- users ----
    /// A Duo user created (disabled when its first state was).
    CreatedUser { username: String, disabled: bool },
    /// A Duo user's fields (state, profile, the IdP id alias) written.
    ModifiedUser { username: String },
    /// A Duo user already as the IdP has it.
    UserUpToDate { username: String },
    /// A Duo user deleted.
    DeletedUser { username: String },
    /// A delete found the user gone (Duo answered 404).
    UserAlreadyGone { username: String },
    /// No Duo account for this identity.
    UserNotInDuo { user: UserKey },
    /// No Duo account, and a disable with no username to create it with.
    UserNotInDuoNothingToDisable { user: UserKey },
    /// No Duo account of this identity; the login's account belongs to
    /// another identity (`owner`), left alone.
    UserNotInDuoHeld {
        user: UserKey,
        holder: String,
        owner: String,
    },
    /// The Duo user matches an exclusion (`why`), left alone.
    UserExcluded { username: String, why: String },
    /// An MFA reset found no device or bypass code.
    NoDevices { username: String },
    /// An MFA reset removed `count` devices and bypass codes.
    RemovedDevices { username: String, count: usize },
    /// `effect`, and the mapped mobile phone `number` attached.
    PhoneAttached { effect: Box<Effect>, number: String },
    // ---- memberships ----
    /// A membership added.
    AddedMember { username: String, group: String },
    /// The user was already a member.
    AlreadyMember { username: String, group: String },
    /// A membership removed.
    RemovedMember { username: String, group: String },
    /// A removal found the user already out of the group.
    AlreadyOut { username: String, group: String },
    /// The user is in no group matching `group`.
    NotInGroup { username: String, group: GroupKey },
    /// The group is outside `GROUP_FILTER`.
    GroupFiltered { group: String },
    // ---- groups ----
    /// A Duo group created.
    CreatedGroup { name: String },
    /// The group already exists.
    GroupExists { name: String },
    /// A Duo group renamed.
    RenamedGroup { from: String, to: String },
    /// The group already has the new name.
    GroupAlreadyNamed { name: String },
    /// A Duo group deleted.
    DeletedGroup { name: String },
    /// A delete found the group gone (Duo answered 404).
    GroupAlreadyGone { name: String },
    /// No Duo group for this key.
    GroupNotInDuo { group: GroupKey },
    // ---- dry run ----
    /// A dry run: what the operation would do (nothing was called).
    WouldApply { operation: Box<Operation> },
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CreatedUser {
                username,
                disabled: false,
            } => write!(f, "created user {username}"),
            Self::CreatedUser {
                username,
                disabled: true,
            } => write!(f, "created user {username} as disabled"),
            Self::ModifiedUser { username } => write!(f, "modified user {username}"),
            Self::UserUpToDate { username } => write!(f, "user {username} already up to date"),
            Self::DeletedUser { username } => write!(f, "deleted user {username}"),
            Self::UserAlreadyGone { username } => write!(f, "user {username} was already gone"),
            Self::UserNotInDuo { user } => write!(f, "user {user} is not in Duo"),
            Self::UserNotInDuoNothingToDisable { user } => {
                write!(f, "user {user} is not in Duo; nothing to disable")
            }
            Self::UserNotInDuoHeld {
                user,
                holder,
                owner,
            } => write!(
                f,
                "user {user} is not in Duo (Duo user {holder} belongs to {owner}; left alone)"
            ),
            Self::UserExcluded { username, why } => {
                write!(f, "Duo user {username} is excluded, left alone: {why}")
            }
            Self::NoDevices { username } => write!(f, "user {username} has no devices"),
            Self::RemovedDevices { username, count } => {
                write!(f, "removed {count} devices/codes of user {username}")
            }
            Self::PhoneAttached { effect, number } => {
                write!(f, "{effect}; phone {number} attached")
            }
            Self::AddedMember { username, group } => write!(f, "added {username} to {group}"),
            Self::AlreadyMember { username, group } => {
                write!(f, "{username} is already in {group}")
            }
            Self::RemovedMember { username, group } => {
                write!(f, "removed {username} from {group}")
            }
            Self::AlreadyOut { username, group } => {
                write!(f, "{username} was already out of {group}")
            }
            Self::NotInGroup { username, group } => {
                write!(f, "{username} is not in group {group}")
            }
            Self::GroupFiltered { group } => {
                write!(f, "group {group} does not match GROUP_FILTER")
            }
            Self::CreatedGroup { name } => write!(f, "created group {name}"),
            Self::GroupExists { name } => write!(f, "group {name} exists"),
            Self::RenamedGroup { from, to } => write!(f, "renamed group {from} to {to}"),
            Self::GroupAlreadyNamed { name } => write!(f, "group {name} already named so"),
            Self::DeletedGroup { name } => write!(f, "deleted group {name}"),
            Self::GroupAlreadyGone { name } => write!(f, "group {name} was already gone"),
            Self::GroupNotInDuo { group } => write!(f, "group {group} is not in Duo"),
            Self::WouldApply { operation } => write!(f, "dry run: would {operation}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wording is the summary line's `detail` (on-call queries match
    /// it): each effect as it was written before the effects were typed.
    #[test]
    fn each_effect_reads_as_before() {
        let jane = || "jane@example.com".to_owned();
        let key = UserKey {
            idp_alias: Some("okta:00u1".into()),
            username: Some(jane()),
        };
        let group = GroupKey {
            idp_tag: None,
            name: Some("Engineering".into()),
        };
        let eng = || "Engineering".to_owned();
        let cases = [
            (
                Effect::CreatedUser {
                    username: jane(),
                    disabled: false,
                },
                "created user jane@example.com",
            ),
            (
                Effect::CreatedUser {
                    username: jane(),
                    disabled: true,
                },
                "created user jane@example.com as disabled",
            ),
            (
                Effect::ModifiedUser { username: jane() },
                "modified user jane@example.com",
            ),
            (
                Effect::UserUpToDate { username: jane() },
                "user jane@example.com already up to date",
            ),
            (
                Effect::DeletedUser { username: jane() },
                "deleted user jane@example.com",
            ),
            (
                Effect::UserAlreadyGone { username: jane() },
                "user jane@example.com was already gone",
            ),
            (
                Effect::UserNotInDuo { user: key.clone() },
                "user jane@example.com (okta:00u1) is not in Duo",
            ),
            (
                Effect::UserNotInDuoNothingToDisable { user: key.clone() },
                "user jane@example.com (okta:00u1) is not in Duo; nothing to disable",
            ),
            (
                Effect::UserNotInDuoHeld {
                    user: key.clone(),
                    holder: jane(),
                    owner: "okta:00u0".into(),
                },
                "user jane@example.com (okta:00u1) is not in Duo (Duo user jane@example.com belongs to okta:00u0; left alone)",
            ),
            (
                Effect::UserExcluded {
                    username: jane(),
                    why: "DUO_EXCLUDE_USERS".into(),
                },
                "Duo user jane@example.com is excluded, left alone: DUO_EXCLUDE_USERS",
            ),
            (
                Effect::NoDevices { username: jane() },
                "user jane@example.com has no devices",
            ),
            (
                Effect::RemovedDevices {
                    username: jane(),
                    count: 3,
                },
                "removed 3 devices/codes of user jane@example.com",
            ),
            (
                Effect::PhoneAttached {
                    effect: Box::new(Effect::ModifiedUser { username: jane() }),
                    number: "+15555550100".into(),
                },
                "modified user jane@example.com; phone +15555550100 attached",
            ),
            (
                Effect::AddedMember {
                    username: jane(),
                    group: eng(),
                },
                "added jane@example.com to Engineering",
            ),
            (
                Effect::AlreadyMember {
                    username: jane(),
                    group: eng(),
                },
                "jane@example.com is already in Engineering",
            ),
            (
                Effect::RemovedMember {
                    username: jane(),
                    group: eng(),
                },
                "removed jane@example.com from Engineering",
            ),
            (
                Effect::AlreadyOut {
                    username: jane(),
                    group: eng(),
                },
                "jane@example.com was already out of Engineering",
            ),
            (
                Effect::NotInGroup {
                    username: jane(),
                    group: group.clone(),
                },
                &format!("jane@example.com is not in group {group}"),
            ),
            (
                Effect::GroupFiltered { group: eng() },
                "group Engineering does not match GROUP_FILTER",
            ),
            (
                Effect::CreatedGroup { name: eng() },
                "created group Engineering",
            ),
            (
                Effect::GroupExists { name: eng() },
                "group Engineering exists",
            ),
            (
                Effect::RenamedGroup {
                    from: "Eng".into(),
                    to: eng(),
                },
                "renamed group Eng to Engineering",
            ),
            (
                Effect::GroupAlreadyNamed { name: eng() },
                "group Engineering already named so",
            ),
            (
                Effect::DeletedGroup { name: eng() },
                "deleted group Engineering",
            ),
            (
                Effect::GroupAlreadyGone { name: eng() },
                "group Engineering was already gone",
            ),
            (
                Effect::GroupNotInDuo {
                    group: group.clone(),
                },
                &format!("group {group} is not in Duo"),
            ),
        ];
        for (effect, expected) in cases {
            assert_eq!(effect.to_string(), expected);
        }
        let op = Operation::DeleteGroup { group };
        let dry = Effect::WouldApply {
            operation: Box::new(op.clone()),
        };
        assert_eq!(dry.to_string(), format!("dry run: would {op}"));
    }
}
