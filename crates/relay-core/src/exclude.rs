//! Living beside Duo's own directory sync (issue 17 item 4): Duo accounts
//! the relay never modifies, disables or deletes — by events or by
//! reconcile, whatever `--include-unmanaged` says. Reconcile lists them as
//! `excluded`.
//!
//! How a Duo account managed by Duo Directory Sync (AD, Entra ID, OpenLDAP,
//! Google, inbound SCIM) shows through the Admin API: the user object's
//! `last_directory_sync`, Unix seconds of the sync's last update, `null` for
//! a user no sync manages (Duo's Go client models it as a nullable integer:
//! `duosecurity/duo_api_golang` `admin/admin.go` `User.LastDirectorySync`;
//! its tests answer `1508789163` for a listed user and `null` for one just
//! created through the API; Duo's clients carry no per-user `directory_key`,
//! which names a sync, not a user: `duo_client_python` `sync_user`). That a
//! user synced by *every* kind of sync carries it is not verified here, so
//! the design holds for both answers: `DUO_EXCLUDE_DIRECTORY_SYNCED` (on by
//! default) uses the field when Duo fills it, and `DUO_EXCLUDE_GROUPS` (the
//! Duo groups a directory sync fills) or `DUO_EXCLUDE_USERNAMES` (a pattern)
//! exclude accounts whatever it says.

use duo_admin::User;

use crate::config::{ConfigError, RawConfig, optional};

/// Which Duo accounts the relay leaves alone.
#[derive(Debug, Clone)]
pub struct Exclusions {
    /// Accounts with a `last_directory_sync` (Duo's directory sync).
    pub directory_synced: bool,
    /// Members of these Duo groups (names, compared without case).
    pub groups: Vec<String>,
    /// Usernames matching this (whole-username) pattern.
    pub usernames: Option<regex_lite::Regex>,
}

impl Default for Exclusions {
    fn default() -> Self {
        Self {
            directory_synced: true,
            groups: Vec::new(),
            usernames: None,
        }
    }
}

impl Exclusions {
    /// From `DUO_EXCLUDE_DIRECTORY_SYNCED` (`true` unless `false`),
    /// `DUO_EXCLUDE_GROUPS` (comma-separated Duo group names) and
    /// `DUO_EXCLUDE_USERNAMES` (a regex matched against the whole Duo
    /// username, without case).
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        const SYNCED: &str = "DUO_EXCLUDE_DIRECTORY_SYNCED";
        let directory_synced = match optional(raw, SYNCED)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(_) => return Err(ConfigError::new(SYNCED, "must be true or false")),
        };
        let groups = optional(raw, "DUO_EXCLUDE_GROUPS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let usernames = optional(raw, "DUO_EXCLUDE_USERNAMES")
            .map(|pattern| {
                regex_lite::RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| {
                        ConfigError::new(
                            "DUO_EXCLUDE_USERNAMES",
                            format!("is not a valid regex: {e}"),
                        )
                    })
            })
            .transpose()?;
        Ok(Self {
            directory_synced,
            groups,
            usernames,
        })
    }

    /// Why the relay must leave this Duo account alone, if it must.
    pub fn reason(&self, user: &User) -> Option<String> {
        if self.directory_synced && user.last_directory_sync.is_some() {
            return Some(
                "managed by Duo's directory sync (last_directory_sync is set; DUO_EXCLUDE_DIRECTORY_SYNCED)"
                    .into(),
            );
        }
        if let Some(group) = user.groups.iter().find(|g| {
            self.groups
                .iter()
                .any(|name| crate::identity::same_name(name, &g.name))
        }) {
            return Some(format!(
                "member of the excluded Duo group {} (DUO_EXCLUDE_GROUPS)",
                group.name
            ));
        }
        if self
            .usernames
            .as_ref()
            .is_some_and(|p| p.is_match(&user.username))
        {
            return Some("username matches DUO_EXCLUDE_USERNAMES".into());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_pairs;
    use serde_json::json;

    fn user(value: serde_json::Value) -> User {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn each_rule_excludes_and_says_why() {
        let rules = Exclusions::from_config(&from_pairs(&[
            ("DUO_EXCLUDE_GROUPS", "AD Sync, Break-glass"),
            ("DUO_EXCLUDE_USERNAMES", "svc-.*|admin"),
        ]))
        .unwrap();
        let synced =
            user(json!({"user_id": "DU1", "username": "a", "last_directory_sync": 1508789163}));
        assert!(rules.reason(&synced).unwrap().contains("directory sync"));
        let grouped = user(json!({"user_id": "DU2", "username": "b",
            "groups": [{"group_id": "DG1", "name": "break-GLASS"}]}));
        assert!(
            rules
                .reason(&grouped)
                .unwrap()
                .contains("DUO_EXCLUDE_GROUPS")
        );
        let svc = user(json!({"user_id": "DU3", "username": "SVC-backup"}));
        assert!(
            rules
                .reason(&svc)
                .unwrap()
                .contains("DUO_EXCLUDE_USERNAMES")
        );
        // Whole-username match: "administrator" is not "admin".
        let other = user(
            json!({"user_id": "DU4", "username": "administrator", "last_directory_sync": null}),
        );
        assert_eq!(rules.reason(&other), None);
    }

    #[test]
    fn directory_sync_exclusion_can_be_turned_off_and_bad_values_name_the_variable() {
        let off =
            Exclusions::from_config(&from_pairs(&[("DUO_EXCLUDE_DIRECTORY_SYNCED", "false")]))
                .unwrap();
        let synced = user(json!({"user_id": "DU1", "username": "a", "last_directory_sync": 1}));
        assert_eq!(off.reason(&synced), None);
        assert!(Exclusions::default().reason(&synced).is_some());
        for (name, value) in [
            ("DUO_EXCLUDE_DIRECTORY_SYNCED", "maybe"),
            ("DUO_EXCLUDE_USERNAMES", "("),
        ] {
            let e = Exclusions::from_config(&from_pairs(&[(name, value)])).unwrap_err();
            assert_eq!(e.variable, name);
        }
    }
}
