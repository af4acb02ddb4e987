//! Scope by IdP group (issue 17 item 2): `SCOPE_GROUPS` names the IdP
//! groups (Okta groups, Auth0 roles; by name or id) whose members are
//! synced — the usual "users assigned to Duo". A member is provisioned
//! when it joins one, deprovisioned (`DEPROVISION_ACTION`) when it leaves
//! the last; a user outside every one is never created, and a Duo account
//! of such a user is touched only when it is the relay's (it carries the
//! user's IdP id: the user left the scope).
//!
//! Whether a user is in scope is its IdP group memberships *now*, so the
//! setting needs the IdP's API (`OKTA_ORG_URL` + `OKTA_API_TOKEN`,
//! `AUTH0_DOMAIN` + …): every user event is then planned as "make this user
//! match the IdP" (`crate::idp_sync::plan_event_with_idp`), and reconcile
//! reads the scope groups' members. Without the API a user event is skipped
//! with a line saying so.

use crate::config::{ConfigError, RawConfig, optional};
use crate::idp::IdpGroup;

/// The IdP groups whose members are synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeGroups {
    /// Group names (compared without case) or ids (exact).
    entries: Vec<String>,
}

impl ScopeGroups {
    /// `SCOPE_GROUPS`: comma-separated IdP group/role names or ids; unset:
    /// every IdP user is in scope (`None`).
    pub fn from_config(raw: &RawConfig) -> Result<Option<Self>, ConfigError> {
        let Some(value) = optional(raw, "SCOPE_GROUPS") else {
            return Ok(None);
        };
        let entries: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        if entries.is_empty() {
            return Err(ConfigError::new(
                "SCOPE_GROUPS",
                "names no group (comma-separated IdP group or role names or ids)",
            ));
        }
        Ok(Some(Self { entries }))
    }

    /// Whether `group` is one of the scope groups.
    pub fn names(&self, group: &IdpGroup) -> bool {
        self.entries
            .iter()
            .any(|e| *e == group.idp_id || crate::identity::same_name(e, &group.name))
    }

    /// Whether a member of `groups` is in scope.
    pub fn admits(&self, groups: &[IdpGroup]) -> bool {
        groups.iter().any(|g| self.names(g))
    }

    /// For messages: `Duo Users, rol_123`.
    pub fn describe(&self) -> String {
        self.entries.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_pairs;

    fn group(id: &str, name: &str) -> IdpGroup {
        IdpGroup {
            idp_id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn names_or_ids_admit_members() {
        let scope = ScopeGroups::from_config(&from_pairs(&[("SCOPE_GROUPS", "Duo Users, rol_9")]))
            .unwrap()
            .unwrap();
        assert!(scope.admits(&[group("00g1", "duo users")]));
        assert!(scope.admits(&[group("rol_9", "Anything")]));
        assert!(!scope.admits(&[group("00g2", "Everyone"), group("ROL_9", "x")]));
        assert!(!scope.admits(&[]));
        assert_eq!(ScopeGroups::from_config(&from_pairs(&[])).unwrap(), None);
        assert_eq!(
            ScopeGroups::from_config(&from_pairs(&[("SCOPE_GROUPS", " , ")]))
                .unwrap_err()
                .variable,
            "SCOPE_GROUPS"
        );
    }
}
