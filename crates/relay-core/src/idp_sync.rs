//! Making Duo match what an IdP's API says now, composed from the sources
//! (each API client implements [`IdpReader`]) and reconcile (which knows no
//! source): a reconcile run as configured ([`run_from_config`], what the
//! CLI and the cloud entries call) and an event planned against the IdP's
//! current state ([`plan_event_with_idp`], what the event path calls).
//! Its own module so that reconcile and the sources never import each
//! other (`scripts/check-module-cycles.py`).

pub mod entra;

use crate::apply::{Directory, DuoDirectory};
use crate::config::{ConfigError, RawConfig};
use crate::event::{Change, IdpEvent, IdpKind, UserRef};
use crate::plan::{PlanRules, Planned, plan_event};
use crate::reconcile::{
    IdpReader, ReconcileError, ReconcileOptions, ReconcileReport, UserPlan, run, user_plan,
};
use crate::source::{Auth0Api, EntraApi, IdpLookups, OktaApi};

/// Runs a reconcile configured from the environment: the Duo variables,
/// `GROUP_FILTER`, `DEPROVISION_ACTION`, and the IdP API of `opts.source`
/// (`OKTA_ORG_URL` + `OKTA_API_TOKEN`, or `AUTH0_DOMAIN` + `AUTH0_CLIENT_ID`
/// + `AUTH0_CLIENT_SECRET`). Duo calls use the full retry policy: a batch
///   job can wait out a rate limit.
pub async fn run_from_config(
    raw: &RawConfig,
    opts: &ReconcileOptions,
) -> Result<ReconcileReport, ReconcileError> {
    let rules = PlanRules::from_config(raw)?;
    let duo = crate::config::duo_client(crate::config::duo_config(
        raw,
        duo_admin::RetryPolicy::default(),
    )?)?;
    let directory = DuoDirectory::from_rules(duo.clone(), &rules);
    match opts.source {
        IdpKind::Okta => {
            let api = OktaApi::from_config(raw)?.ok_or_else(|| {
                ConfigError::new(
                    "OKTA_ORG_URL",
                    "is not set; reconcile --source okta reads users and groups with OKTA_ORG_URL and OKTA_API_TOKEN",
                )
            })?;
            run(&api, &duo, &directory, &rules, opts).await
        }
        IdpKind::Auth0 => {
            let api = Auth0Api::from_config(raw)?.ok_or_else(|| {
                ConfigError::new(
                    "AUTH0_DOMAIN",
                    "is not set; reconcile --source auth0 reads users and roles with AUTH0_DOMAIN, AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET",
                )
            })?;
            run(&api, &duo, &directory, &rules, opts).await
        }
        IdpKind::Entra => {
            let api = EntraApi::from_config(raw)?.ok_or_else(|| {
                ConfigError::new(
                    "ENTRA_TENANT_ID",
                    "is not set; reconcile --source entra reads users and groups from Microsoft Graph with ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE)",
                )
            })?;
            run(&api, &duo, &directory, &rules, opts).await
        }
    }
}

/// The event path's planner. An event about one user (created, state,
/// profile, deleted, membership added/removed) becomes "make this user
/// right" when the IdP API of its source is configured and the directory
/// can read Duo: out-of-order, repeated and missed events heal. MFA resets
/// (actions, not state), group events and events without a configured API
/// are planned from the event itself ([`plan_event`]), as is an event whose
/// IdP lookup fails (logged): the event is still the best information then.
pub async fn plan_event_with_idp<D: Directory>(
    event: &IdpEvent,
    rules: &PlanRules,
    lookups: &IdpLookups,
    directory: &D,
) -> Planned {
    if let Change::MfaReset { user, .. } = &event.change
        && let Some(scope) = &rules.scope
    {
        return match mfa_reset_in_scope(event, user, scope, lookups).await {
            Ok(true) => crate::plan::plan_event_in_scope(event, rules),
            Ok(false) => Planned::Skip(format!(
                "the user is in none of SCOPE_GROUPS ({})",
                scope.describe()
            )),
            Err(reason) => Planned::Skip(reason),
        };
    }
    let user = match &event.change {
        Change::SubscriptionLifecycle {
            subscription,
            lifecycle,
        } => {
            return match (event.source.idp(), &lookups.entra) {
                (IdpKind::Entra, Some(api)) => {
                    entra::plan_lifecycle(event, subscription, *lifecycle, api)
                        .await
                        .0
                }
                _ => plan_event(event, rules),
            };
        }
        Change::UserUpserted { user, .. }
        | Change::UserStateChanged { user, .. }
        | Change::UserProfileChanged { user, .. }
        | Change::UserDeleted { user }
        | Change::MembershipAdded { user, .. }
        | Change::MembershipRemoved { user, .. } => user,
        Change::GroupCreated { .. }
        | Change::GroupRenamed { .. }
        | Change::GroupDeleted { .. }
        | Change::MfaReset { .. } => {
            if let (IdpKind::Entra, Some(api), Some(duo)) =
                (event.source.idp(), &lookups.entra, directory.reader())
                && let Some(planned) = entra::plan_group_event(event, rules, api, duo).await
            {
                return planned;
            }
            return plan_event(event, rules);
        }
    };
    let Some(duo) = directory.reader() else {
        return plan_event(event, rules);
    };
    let result = match event.source.idp() {
        IdpKind::Entra => match &lookups.entra {
            Some(api) => user_plan(api, duo, rules, user).await,
            None => return plan_event(event, rules),
        },
        IdpKind::Okta => match &lookups.okta {
            Some(api) => user_plan(api, duo, rules, user).await,
            None => return plan_event(event, rules),
        },
        IdpKind::Auth0 => match &lookups.auth0 {
            Some(api) => user_plan(api, duo, rules, user).await,
            None => return plan_event(event, rules),
        },
    };
    match result {
        Ok(UserPlan {
            excluded: true,
            untouched: Some(why),
            ..
        }) => Planned::Skip(format!(
            "Duo user {} is excluded, left alone: {}",
            why.username, why.reason
        )),
        Ok(UserPlan { unit: None, .. }) => {
            Planned::Skip("Duo already matches the IdP for this user (reconciled)".into())
        }
        Ok(UserPlan {
            unit: Some(unit), ..
        }) => Planned::Operations(unit.actions.into_iter().map(|a| a.operation).collect()),
        // An Entra notification carries no values: a failed read is
        // retried, never replaced by planning from the notification.
        Err(e) if event.source.idp() == IdpKind::Entra && e.is_transient() => {
            Planned::Retry(e.to_string())
        }
        Err(e) if event.source.idp() == IdpKind::Entra => {
            Planned::Skip(format!("could not read the user from Graph: {e}"))
        }
        // The scope cannot be told without the IdP: the event is not
        // applied (the next event about the user, or a reconcile, heals).
        Err(e) if rules.scope.is_some() => Planned::Skip(format!(
            "SCOPE_GROUPS is set and the user's groups could not be read from the IdP: {e}"
        )),
        Err(e) => {
            tracing::warn!(
                event_id = %event.id,
                source = %event.source,
                error = %e,
                "could not reconcile the user with the IdP; planning from the event as sent"
            );
            plan_event(event, rules)
        }
    }
}

/// Whether an MFA reset's user is in `SCOPE_GROUPS` (its groups read from
/// the IdP); `Err`: why it cannot be told.
async fn mfa_reset_in_scope(
    event: &IdpEvent,
    user: &UserRef,
    scope: &crate::scope::ScopeGroups,
    lookups: &IdpLookups,
) -> Result<bool, String> {
    let Some(id) = &user.idp_id else {
        return Err("SCOPE_GROUPS is set and the event names no IdP user id to check".into());
    };
    let groups = match event.source.idp() {
        IdpKind::Okta => match &lookups.okta {
            Some(api) => IdpReader::user_groups(api, id).await,
            None => return Err(no_api(event)),
        },
        IdpKind::Auth0 => match &lookups.auth0 {
            Some(api) => IdpReader::user_groups(api, id).await,
            None => return Err(no_api(event)),
        },
        IdpKind::Entra => match &lookups.entra {
            Some(api) => IdpReader::user_groups(api, id).await,
            None => return Err(no_api(event)),
        },
    };
    match groups {
        Ok(groups) => Ok(scope.admits(&groups)),
        Err(e) => Err(format!(
            "SCOPE_GROUPS is set and the user's groups could not be read from the IdP: {e}"
        )),
    }
}

fn no_api(event: &IdpEvent) -> String {
    format!(
        "SCOPE_GROUPS is set: whether the user is in scope is read from the IdP; set {} so the relay can",
        crate::mapping::spec(event.source.idp()).api_variables
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::event::Source;
    #[test]
    fn runs_can_be_spawned() {
        fn assert_send<T: Send>(_: &T) {}
        let raw = RawConfig::new();
        let opts = ReconcileOptions::new(IdpKind::Okta);
        assert_send(&run_from_config(&raw, &opts));
        let lookups = IdpLookups::default();
        let directory = crate::apply::DryRun::default();
        let event = IdpEvent {
            id: crate::event::EventId::new(Source::Okta, "e"),
            source: Source::Okta,
            event_type: "t".into(),
            occurred_at: None,
            change: Change::UserDeleted {
                user: UserRef::default(),
            },
        };
        let rules = PlanRules::default();
        assert_send(&plan_event_with_idp(&event, &rules, &lookups, &directory));
    }
}
