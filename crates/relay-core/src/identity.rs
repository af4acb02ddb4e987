//! Which Duo account an operation may act on (issue 13 item 1).
//!
//! A login can be deleted in the IdP and created again for another person,
//! who gets a new IdP id. The Duo account of the first person still carries
//! the login as its username (until its delete applies) and the first
//! person's phones, tokens and groups. The rule that keeps the two apart:
//!
//! - An operation acts only on the Duo account that carries **its** IdP id
//!   (an alias `okta:00u…` / `auth0:…`, the relay writes slot 4; any slot
//!   counts).
//! - An account found by the login that carries **another** IdP id (of the
//!   same IdP, or of the other one) is never adopted, modified or deleted by
//!   the event: for it, this identity has no Duo account, and the login is
//!   [`Resolution::Held`].
//! - An account found by the login that carries no IdP id is adopted once:
//!   the operation links its IdP id (in its own modify, or in one before its
//!   first write), and from then on it is bound.
//! - An event that carries no IdP id (rare: some Auth0 log records) can only
//!   go by the login; stale-event protection guards it instead
//!   (`crate::order`: it is older than the login's last assignment to an
//!   identity ⇒ skipped).
//!
//! What happens while both exist — the new identity's create meets the login
//! held by the old identity's account — is decided in `crate::apply`: the
//! operation waits (a transient failure, retried with backoff in queue mode,
//! answered 503 in sync mode so the IdP retries) until the old account is
//! deleted or renamed by its own events.
//!
//! One Duo call finds every candidate: `GET /admin/v1/users` with
//! `username_list` (a JSON list; each name matches a username **or an
//! alias**, per Duo's official clients: `duo_client_python`
//! `Admin.get_users_by_names`, "Returns a list user objects matching
//! usernames (or aliases)", and `duo_api_ruby` `Admin#get_users`). This
//! module is the pure part: which names to ask for, and which of the
//! answers is this identity's account.

use duo_admin::User;

use crate::operation::UserKey;

/// The IdP prefixes whose ids bind a Duo account to an IdP user.
const IDP_PREFIXES: [&str; 2] = ["okta:", "auth0:"];

/// What the lookup found for one identity.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The account of this identity. `adopted`: found by the login and
    /// carrying no IdP id yet, so the operation must link this identity's
    /// id when it writes.
    Found { user: User, adopted: bool },
    /// No account of this identity, and the login is free.
    Absent,
    /// No account of this identity; the login belongs to an account bound
    /// to another IdP id (`owner`, e.g. `okta:00uOLD…`).
    Held { user: User, owner: String },
}

impl Resolution {
    /// The account of this identity, if it has one.
    pub fn found(&self) -> Option<&User> {
        match self {
            Self::Found { user, .. } => Some(user),
            Self::Absent | Self::Held { .. } => None,
        }
    }
}

/// The names one lookup asks for: the login, the IdP id alias, and an
/// earlier login (a rename), without repeats.
pub fn lookup_names(key: &UserKey, previous_username: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::with_capacity(3);
    for name in [
        key.username.as_deref(),
        key.idp_alias.as_deref(),
        previous_username,
    ]
    .into_iter()
    .flatten()
    {
        if !name.is_empty() && !names.iter().any(|n| same_name(n, name)) {
            names.push(name.to_owned());
        }
    }
    names
}

/// The IdP id an account is bound to: its first alias with an IdP prefix.
pub fn bound_to(user: &User) -> Option<&str> {
    user.aliases().into_iter().flatten().find(|a| is_idp_id(a))
}

/// Whether an alias is an IdP id (`okta:…`, `auth0:…`) rather than an
/// admin's own alias.
pub fn is_idp_id(alias: &str) -> bool {
    IDP_PREFIXES
        .iter()
        .any(|p| starts_with_ignore_case(alias, p))
}

/// Whether the account carries this IdP id alias (any slot).
pub fn carries(user: &User, alias: &str) -> bool {
    user.aliases()
        .into_iter()
        .flatten()
        .any(|a| same_name(a, alias))
}

/// Chooses this identity's account among what the lookup answered
/// (`candidates`: the users matching any of [`lookup_names`]).
pub fn resolve(key: &UserKey, previous_username: Option<&str>, candidates: &[User]) -> Resolution {
    if let Some(alias) = &key.idp_alias
        && let Some(user) = candidates.iter().find(|u| carries(u, alias))
    {
        return Resolution::Found {
            user: user.clone(),
            adopted: false,
        };
    }
    let mut held = None;
    let logins = [key.username.as_deref(), previous_username];
    for (i, login) in logins.into_iter().enumerate() {
        let Some(login) = login else { continue };
        let Some(user) = candidates.iter().find(|u| answers_to(u, login)) else {
            continue;
        };
        match (&key.idp_alias, bound_to(user)) {
            // No id to compare: the login is all the event has.
            (None, _) => {
                return Resolution::Found {
                    user: user.clone(),
                    adopted: false,
                };
            }
            (Some(_), None) => {
                return Resolution::Found {
                    user: user.clone(),
                    adopted: true,
                };
            }
            // Another identity's account: never this one's. Only the login
            // the operation would use (not an earlier one) is "held".
            (Some(_), Some(owner)) => {
                if i == 0 && held.is_none() {
                    held = Some(Resolution::Held {
                        user: user.clone(),
                        owner: owner.to_owned(),
                    });
                }
            }
        }
    }
    held.unwrap_or(Resolution::Absent)
}

/// Whether a Duo user answers to `name` as Duo's lookup does: its username
/// or one of its aliases, without regard to case.
pub fn answers_to(user: &User, name: &str) -> bool {
    same_name(&user.username, name)
        || user
            .aliases()
            .into_iter()
            .flatten()
            .any(|a| same_name(a, name))
}

/// Usernames and aliases compare without case (ASCII fast path).
pub fn same_name(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, username: &str, alias4: Option<&str>) -> User {
        serde_json::from_value(serde_json::json!({
            "user_id": id, "username": username, "alias4": alias4,
        }))
        .unwrap()
    }

    fn key(alias: Option<&str>, username: Option<&str>) -> UserKey {
        UserKey {
            idp_alias: alias.map(str::to_owned),
            username: username.map(str::to_owned),
        }
    }

    const NEW: &str = "okta:00uNEW";
    const OLD: &str = "okta:00uOLD";

    #[test]
    fn names_asked_for_once_each() {
        assert_eq!(
            lookup_names(&key(Some(NEW), Some("jane@x")), Some("JANE@x")),
            ["jane@x", NEW]
        );
        assert_eq!(
            lookup_names(&key(None, Some("j2")), Some("j1")),
            ["j2", "j1"]
        );
        assert!(lookup_names(&key(None, None), None).is_empty());
    }

    #[test]
    fn the_account_carrying_this_id_wins_whatever_its_username() {
        let mine = user("DU1", "jane.old@x", Some("OKTA:00unew"));
        let other = user("DU2", "jane@x", None);
        let got = resolve(
            &key(Some(NEW), Some("jane@x")),
            None,
            &[other, mine.clone()],
        );
        assert_eq!(
            got,
            Resolution::Found {
                user: mine,
                adopted: false
            }
        );
    }

    #[test]
    fn an_account_bound_to_another_id_is_never_this_identitys() {
        let old = user("DU1", "jane@x", Some(OLD));
        let got = resolve(
            &key(Some(NEW), Some("jane@x")),
            None,
            std::slice::from_ref(&old),
        );
        assert_eq!(
            got,
            Resolution::Held {
                user: old.clone(),
                owner: OLD.into()
            }
        );
        assert_eq!(got.found(), None);
        // The other IdP's id binds as well.
        let auth0 = user("DU3", "jane@x", Some("auth0:auth0|1"));
        assert!(matches!(
            resolve(&key(Some(NEW), Some("jane@x")), None, &[auth0]),
            Resolution::Held { .. }
        ));
        // Held only for the login the operation would use; an earlier
        // login's account is simply not this identity's.
        assert_eq!(
            resolve(&key(Some(NEW), Some("jane2@x")), Some("jane@x"), &[old]),
            Resolution::Absent
        );
    }

    #[test]
    fn an_unaliased_account_is_adopted() {
        let free = user("DU1", "Jane@X", None);
        assert_eq!(
            resolve(
                &key(Some(NEW), Some("jane@x")),
                None,
                std::slice::from_ref(&free)
            ),
            Resolution::Found {
                user: free.clone(),
                adopted: true
            }
        );
        // A rename: the earlier login's account.
        assert_eq!(
            resolve(&key(Some(NEW), Some("jane2@x")), Some("jane@x"), &[free]),
            Resolution::Found {
                user: user("DU1", "Jane@X", None),
                adopted: true
            }
        );
        // An admin's own alias is not an IdP id.
        let hand = user("DU2", "bob@x", Some("bobby"));
        assert!(matches!(
            resolve(&key(Some(NEW), Some("bob@x")), None, &[hand]),
            Resolution::Found { adopted: true, .. }
        ));
    }

    #[test]
    fn without_an_id_the_login_decides() {
        let old = user("DU1", "jane@x", Some(OLD));
        assert_eq!(
            resolve(&key(None, Some("jane@x")), None, std::slice::from_ref(&old)),
            Resolution::Found {
                user: old,
                adopted: false
            }
        );
        assert_eq!(
            resolve(&key(Some(NEW), None), None, &[]),
            Resolution::Absent
        );
    }
}
