//! Events → operations: a pure function of the event and the rules
//! (`DEPROVISION_ACTION`, `GROUP_FILTER`). No I/O, so every mapping is a unit
//! test.

use crate::config::{ConfigError, RawConfig, optional};
use crate::event::{Change, GroupRef, IdpEvent, Source, UserProfile, UserRef, UserState};
use crate::operation::{GroupKey, Operation, UserAttrs, UserKey};

/// What an IdP delete does in Duo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeprovisionAction {
    /// Delete the Duo user (permanent: API deletes skip Duo's trash).
    #[default]
    Delete,
    /// Only set the Duo user `disabled`.
    Disable,
}

/// The rules the planner applies.
#[derive(Debug, Clone, Default)]
pub struct PlanRules {
    pub deprovision: DeprovisionAction,
    /// Only groups/roles whose name matches are synced (`GROUP_FILTER`).
    pub group_filter: Option<regex_lite::Regex>,
    /// Which IdP attribute fills which Duo field (`DUO_<FIELD>_ATTRIBUTE`…).
    pub mapping: crate::mapping::Mapping,
    /// Duo accounts never touched (`DUO_EXCLUDE_*`, Duo's directory sync).
    pub exclusions: crate::exclude::Exclusions,
    /// Only members of these IdP groups are synced (`SCOPE_GROUPS`).
    pub scope: Option<crate::scope::ScopeGroups>,
}

impl PlanRules {
    pub fn from_config(raw: &RawConfig) -> Result<Self, ConfigError> {
        let deprovision = match optional(raw, "DEPROVISION_ACTION").map(str::to_ascii_lowercase) {
            None => DeprovisionAction::Delete,
            Some(v) if v == "delete" => DeprovisionAction::Delete,
            Some(v) if v == "disable" => DeprovisionAction::Disable,
            Some(_) => {
                return Err(ConfigError::new(
                    "DEPROVISION_ACTION",
                    "must be `delete` or `disable`",
                ));
            }
        };
        let group_filter = optional(raw, "GROUP_FILTER")
            .map(|pattern| {
                regex_lite::Regex::new(pattern).map_err(|e| {
                    ConfigError::new("GROUP_FILTER", format!("is not a valid regex: {e}"))
                })
            })
            .transpose()?;
        Ok(Self {
            deprovision,
            group_filter,
            mapping: crate::mapping::Mapping::from_config(raw)?,
            exclusions: crate::exclude::Exclusions::from_config(raw)?,
            scope: crate::scope::ScopeGroups::from_config(raw)?,
        })
    }

    /// Whether a group of this name is synced. A group known only by id is
    /// let through here; the apply stage checks the Duo group's name.
    pub fn group_allowed(&self, name: Option<&str>) -> bool {
        match (&self.group_filter, name) {
            (Some(filter), Some(name)) => filter.is_match(name),
            _ => true,
        }
    }
}

/// The planner's answer for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    Operations(Vec<Operation>),
    /// Nothing to do in Duo, and why (logged, not an error).
    Skip(String),
    /// The current state could not be read (the IdP or Duo failed
    /// transiently): nothing is planned and the event is retried, since a
    /// skip would lose a change the event itself does not describe (an
    /// Entra notification carries no values).
    Retry(String),
    /// The planner did what the event asks itself, towards the IdP (an
    /// Entra subscription reauthorized or re-created, a catch-up run):
    /// nothing for Duo, and what was done.
    Done(String),
}

/// Why an event is nothing to do for the mapping in force: an Auth0
/// `user.updated` that changed only attributes no `DUO_*_ATTRIBUTE` setting
/// names ([`crate::source::auth0::events::ATTRIBUTES_SUFFIX`]).
pub fn unmapped_attribute_change(event: &IdpEvent, rules: &PlanRules) -> Option<String> {
    (event
        .id
        .as_str()
        .ends_with(crate::source::auth0::events::ATTRIBUTES_SUFFIX)
        && rules.mapping.of(event.source.idp()).is_default())
    .then(|| "no relevant change (only attributes no DUO_*_ATTRIBUTE setting names)".to_owned())
}

/// Maps one event to the operations that make Duo reflect it.
pub fn plan_event(event: &IdpEvent, rules: &PlanRules) -> Planned {
    if let Some(reason) = unmapped_attribute_change(event, rules) {
        return Planned::Skip(reason);
    }
    if let Some(scope) = &rules.scope
        && is_about_a_user(&event.change)
    {
        // Whether the user is in scope is its groups now: the IdP's API.
        return Planned::Skip(format!(
            "SCOPE_GROUPS ({}) is set: whether the user is in scope is read from the IdP; set {} so the relay can",
            scope.describe(),
            crate::mapping::spec(event.source.idp()).api_variables
        ));
    }
    plan_event_in_scope(event, rules)
}

/// [`plan_event`] for an event whose user is known to be in scope
/// (`SCOPE_GROUPS` checked against the IdP), or when no scope is set.
pub fn plan_event_in_scope(event: &IdpEvent, rules: &PlanRules) -> Planned {
    let event = match map_event(event, &rules.mapping) {
        Ok(event) => event,
        Err(reason) => return Planned::Skip(reason),
    };
    let event: &IdpEvent = &event;
    let source = event.source;
    let user_key = |u: &UserRef| user_key(source, u);
    let one = |op| Planned::Operations(vec![op]);
    match &event.change {
        Change::UserUpserted {
            user,
            profile,
            state,
        } => {
            let key = with_profile_login(user_key(user), profile);
            if key.username.is_none() {
                if source == Source::Entra {
                    return Planned::Skip(NO_GRAPH.into());
                }
                return Planned::Skip("the event carries no login to use as the Duo username".into());
            }
            one(Operation::UpsertUser {
                user: key,
                attrs: attrs(profile),
                state: *state,
            })
        }
        Change::UserStateChanged { user, state } => one(Operation::SetUserState {
            user: user_key(user),
            state: *state,
            attrs: UserAttrs::default(),
        }),
        Change::UserProfileChanged {
            user,
            profile,
            previous_login,
        } => match profile {
            Some(profile) => one(Operation::UpdateUser {
                user: with_profile_login(user_key(user), profile),
                attrs: attrs(profile),
                previous_username: previous_login.clone(),
            }),
            None => Planned::Skip(match source {
                Source::Okta => "the event does not carry the new profile; set OKTA_ORG_URL and OKTA_API_TOKEN so the relay can fetch it".into(),
                Source::Auth0Events | Source::Auth0Logs => "the event does not carry the new profile; set AUTH0_DOMAIN, AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET so the relay can fetch it".into(),
                Source::Entra => NO_GRAPH.into(),
            }),
        },
        Change::UserDeleted { user } => match rules.deprovision {
            DeprovisionAction::Delete => one(Operation::DeleteUser {
                user: user_key(user),
            }),
            DeprovisionAction::Disable => one(Operation::SetUserState {
                user: user_key(user),
                state: UserState::Disabled,
                attrs: UserAttrs::default(),
            }),
        },
        Change::MembershipAdded { user, group } | Change::MembershipRemoved { user, group } => {
            if !rules.group_allowed(group.name.as_deref()) {
                return Planned::Skip("group does not match GROUP_FILTER".into());
            }
            let user = user_key(user);
            let group = group_key(source, group);
            one(if matches!(event.change, Change::MembershipAdded { .. }) {
                Operation::AddMembership { user, group }
            } else {
                Operation::RemoveMembership { user, group }
            })
        }
        Change::GroupCreated { group } => {
            if group.name.is_none() {
                return Planned::Skip("the event carries no group name".into());
            }
            if !rules.group_allowed(group.name.as_deref()) {
                return Planned::Skip("group does not match GROUP_FILTER".into());
            }
            one(Operation::CreateGroup {
                group: group_key(source, group),
            })
        }
        Change::GroupRenamed { group, new_name } => match new_name {
            Some(new_name) if rules.group_allowed(Some(new_name)) => one(Operation::RenameGroup {
                group: group_key(source, group),
                new_name: new_name.clone(),
            }),
            Some(_) => Planned::Skip("new group name does not match GROUP_FILTER".into()),
            None => Planned::Skip(
                "the event does not carry the new group name; configure the IdP API credentials so the relay can fetch it"
                    .into(),
            ),
        },
        Change::GroupDeleted { group } => {
            if !rules.group_allowed(group.name.as_deref()) {
                return Planned::Skip("group does not match GROUP_FILTER".into());
            }
            one(Operation::DeleteGroup {
                group: group_key(source, group),
            })
        }
        Change::MfaReset { user, scope } => one(Operation::ResetMfa {
            user: user_key(user),
            scope: *scope,
        }),
        // Acted on with the IdP's API (`crate::idp_sync::entra`); without
        // it, only an operator can.
        Change::SubscriptionLifecycle {
            subscription,
            lifecycle,
        } => {
            let reason = format!(
                "{} on subscription {subscription}: set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE) so the relay acts on it, or run {}",
                lifecycle.as_str(),
                lifecycle_command(*lifecycle)
            );
            tracing::error!(event_id = %event.id, source = %event.source, "{reason}");
            Planned::Skip(reason)
        }
    }
}

/// The command an operator runs for a lifecycle event the relay cannot
/// act on itself.
pub fn lifecycle_command(lifecycle: crate::event::Lifecycle) -> &'static str {
    match lifecycle {
        crate::event::Lifecycle::ReauthorizationRequired
        | crate::event::Lifecycle::SubscriptionRemoved => {
            "idp-duo-relay entra subscribe --url https://HOST/entra (renews, reauthorizes and re-creates)"
        }
        crate::event::Lifecycle::Missed => {
            "idp-duo-relay entra delta (catches up what changed since the last run)"
        }
    }
}

/// The event with attribute mapping applied (`crate::mapping`): its
/// profile's fields from the mapped attributes, and every login replaced by
/// the Duo username it stands for — or dropped when the username comes from
/// an attribute the event does not carry (the Duo user is then found by its
/// IdP id alone, and never created from the event). Without mapping
/// settings for its IdP, the event as it is. `Err`: the event needs the
/// username and lacks its attribute; the reason names what to set.
pub fn map_event<'e>(
    event: &'e IdpEvent,
    mapping: &crate::mapping::Mapping,
) -> Result<std::borrow::Cow<'e, IdpEvent>, String> {
    let idp = event.source.idp();
    let m = mapping.of(idp);
    if m.is_default() {
        return Ok(std::borrow::Cow::Borrowed(event));
    }
    let spec = crate::mapping::spec(idp);
    let mut event = event.clone();
    let skip = |missing: crate::mapping::Missing| {
        if missing.user_lacks_it {
            format!("{missing}: not synced until the user has it")
        } else {
            format!(
                "{missing}; set {} so the relay can read it from the IdP",
                spec.api_variables
            )
        }
    };
    match &mut event.change {
        Change::UserUpserted { user, profile, .. } => {
            *profile = m.apply(spec, profile).map_err(skip)?;
            user.login = profile.login.clone();
        }
        Change::UserProfileChanged {
            user,
            profile: Some(profile),
            previous_login,
        } => {
            *profile = m.apply(spec, profile).map_err(skip)?;
            user.login = profile.login.clone();
            *previous_login = previous_login
                .as_deref()
                .and_then(|l| m.username_of_login(spec, l));
        }
        Change::UserProfileChanged { user, .. }
        | Change::UserStateChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MembershipAdded { user, .. }
        | Change::MembershipRemoved { user, .. }
        | Change::MfaReset { user, .. } => {
            *user = map_user_ref(user, m, spec);
        }
        Change::GroupCreated { .. }
        | Change::GroupRenamed { .. }
        | Change::GroupDeleted { .. }
        | Change::SubscriptionLifecycle { .. } => {}
    }
    Ok(std::borrow::Cow::Owned(event))
}

/// A user as an event names it, its login replaced by the Duo username it
/// stands for (`None` when the username comes from another attribute).
pub fn map_user_ref(
    user: &UserRef,
    mapping: &crate::mapping::IdpMapping,
    spec: &crate::mapping::AttributeSpec,
) -> UserRef {
    UserRef {
        idp_id: user.idp_id.clone(),
        login: user
            .login
            .as_deref()
            .and_then(|l| mapping.username_of_login(spec, l)),
    }
}

/// Whether the event is about one user (and its scope matters).
pub fn is_about_a_user(change: &Change) -> bool {
    match change {
        Change::UserUpserted { .. }
        | Change::UserStateChanged { .. }
        | Change::UserProfileChanged { .. }
        | Change::UserDeleted { .. }
        | Change::MembershipAdded { .. }
        | Change::MembershipRemoved { .. }
        | Change::MfaReset { .. } => true,
        Change::GroupCreated { .. }
        | Change::GroupRenamed { .. }
        | Change::GroupDeleted { .. }
        | Change::SubscriptionLifecycle { .. } => false,
    }
}

/// Why an Entra notification is skipped without Graph: it carries no values.
const NO_GRAPH: &str = "an Entra notification carries no user values; set ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE) so the relay reads them from Microsoft Graph";

/// The alias value that ties a Duo user to its IdP user.
pub fn idp_alias(source: Source, idp_id: &str) -> String {
    format!("{}:{}", source.idp_prefix(), idp_id)
}

fn user_key(source: Source, user: &UserRef) -> UserKey {
    UserKey {
        idp_alias: user.idp_id.as_deref().map(|id| idp_alias(source, id)),
        username: user.login.clone(),
    }
}

fn with_profile_login(mut key: UserKey, profile: &UserProfile) -> UserKey {
    if let Some(login) = &profile.login {
        key.username = Some(login.clone());
    }
    key
}

fn group_key(source: Source, group: &GroupRef) -> GroupKey {
    GroupKey {
        idp_tag: group.idp_id.as_deref().map(|id| idp_alias(source, id)),
        name: group.name.clone(),
    }
}

fn attrs(profile: &UserProfile) -> UserAttrs {
    UserAttrs {
        realname: profile.display_name.clone(),
        firstname: profile.first_name.clone(),
        lastname: profile.last_name.clone(),
        email: profile.email.clone(),
        aliases: profile.aliases.clone(),
        phone: profile.phone.clone(),
    }
}

impl crate::apply::DuoDirectory {
    /// With the rules' `GROUP_FILTER` and exclusions (`DUO_EXCLUDE_*`).
    pub fn from_rules(duo: duo_admin::DuoClient, rules: &PlanRules) -> Self {
        Self::new(duo, rules.group_filter.clone())
            .with_exclusions(rules.exclusions.clone())
            .with_phone_readd(rules.mapping.phone_readd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventId, MfaScope};

    fn event(source: Source, change: Change) -> IdpEvent {
        IdpEvent {
            id: EventId::new(source, "e1"),
            source,
            event_type: "t".into(),
            occurred_at: None,
            change,
        }
    }

    fn jane() -> UserRef {
        UserRef {
            idp_id: Some("00u1".into()),
            login: Some("jane@example.com".into()),
        }
    }

    fn rules(raw: &[(&str, &str)]) -> PlanRules {
        let raw: RawConfig = raw
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        PlanRules::from_config(&raw).unwrap()
    }

    #[test]
    fn create_keeps_the_idp_id_as_alias() {
        let e = event(
            Source::Okta,
            Change::UserUpserted {
                user: jane(),
                profile: UserProfile {
                    login: Some("jane@example.com".into()),
                    display_name: Some("Jane Doe".into()),
                    ..UserProfile::default()
                },
                state: None,
            },
        );
        let Planned::Operations(ops) = plan_event(&e, &PlanRules::default()) else {
            panic!("expected operations");
        };
        assert_eq!(
            ops,
            vec![Operation::UpsertUser {
                user: UserKey {
                    idp_alias: Some("okta:00u1".into()),
                    username: Some("jane@example.com".into()),
                },
                attrs: UserAttrs {
                    realname: Some("Jane Doe".into()),
                    ..UserAttrs::default()
                },
                state: None,
            }]
        );
    }

    #[test]
    fn delete_follows_deprovision_action() {
        let e = event(Source::Auth0Events, Change::UserDeleted { user: jane() });
        assert!(matches!(
            plan_event(&e, &PlanRules::default()),
            Planned::Operations(ops) if matches!(ops[..], [Operation::DeleteUser { .. }])
        ));
        let disable = rules(&[("DEPROVISION_ACTION", "Disable")]);
        assert!(matches!(
            plan_event(&e, &disable),
            Planned::Operations(ops) if matches!(ops[..], [Operation::SetUserState { state: UserState::Disabled, .. }])
        ));
    }

    #[test]
    fn group_filter_limits_groups() {
        let r = rules(&[("GROUP_FILTER", "^duo-")]);
        let add = |name: &str| {
            event(
                Source::Okta,
                Change::MembershipAdded {
                    user: jane(),
                    group: GroupRef {
                        idp_id: Some("00g1".into()),
                        name: Some(name.into()),
                    },
                },
            )
        };
        assert!(matches!(
            plan_event(&add("duo-users"), &r),
            Planned::Operations(_)
        ));
        assert!(matches!(plan_event(&add("everyone"), &r), Planned::Skip(_)));
    }

    #[test]
    fn profile_without_values_is_skipped_with_what_to_configure() {
        let e = event(
            Source::Okta,
            Change::UserProfileChanged {
                user: jane(),
                profile: None,
                previous_login: None,
            },
        );
        match plan_event(&e, &PlanRules::default()) {
            Planned::Skip(reason) => assert!(reason.contains("OKTA_API_TOKEN"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mfa_reset_maps_to_reset_mfa() {
        let e = event(
            Source::Okta,
            Change::MfaReset {
                user: jane(),
                scope: MfaScope::All,
            },
        );
        let Planned::Operations(ops) = plan_event(&e, &PlanRules::default()) else {
            panic!()
        };
        assert!(ops[0].is_destructive());
        assert_eq!(ops[0].name(), "reset_mfa");
    }

    #[test]
    fn bad_config_names_the_variable() {
        let raw: RawConfig = [("GROUP_FILTER".to_owned(), "(".to_owned())].into();
        assert_eq!(
            PlanRules::from_config(&raw).unwrap_err().variable,
            "GROUP_FILTER"
        );
        let raw: RawConfig = [("DEPROVISION_ACTION".to_owned(), "nuke".to_owned())].into();
        assert_eq!(
            PlanRules::from_config(&raw).unwrap_err().variable,
            "DEPROVISION_ACTION"
        );
    }
}
