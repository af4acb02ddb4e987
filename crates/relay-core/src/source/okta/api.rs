//! Okta Users / Groups API with an SSWS API token.

use std::fmt;

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue};
use serde::Deserialize;

use crate::Secret;
use crate::config::{ConfigError, RawConfig, optional};
use crate::event::{UserProfile, UserState};
use crate::idp::{
    Answer, CallPolicy, Http, IdpError, IdpGroup, IdpLookup, IdpUser, MAX_PAGES, base_url, decode,
    joined_name, next_link, origin, path_segment, present, status_error,
};

const ORG_URL: &str = "OKTA_ORG_URL";
const API_TOKEN: &str = "OKTA_API_TOKEN";
/// Okta's largest page for users; groups allow more, 200 keeps pages small.
const PAGE_LIMIT: u32 = 200;
/// Okta's largest (and default) page of a group's members.
const MEMBERS_PAGE_LIMIT: u32 = 1000;
/// The group type Okta gives its own `Everyone` group.
const BUILT_IN: &str = "BUILT_IN";

/// Client for `GET /api/v1/users…` and `/api/v1/groups…` of one Okta org.
/// Cheap to clone. `Debug` shows the org URL, never the token.
#[derive(Clone)]
pub struct OktaApi {
    http: Http,
    org: Url,
    /// Kept for `Debug` (redacted); requests use the prepared header.
    token: Secret,
    authorization: HeaderValue,
}

impl fmt::Debug for OktaApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OktaApi")
            .field("org_url", &origin(&self.org))
            .field("token", &self.token)
            .field("policy", &self.http.policy)
            .finish()
    }
}

impl OktaApi {
    /// From `OKTA_ORG_URL` (`https://acme.okta.com`; `http` only to
    /// 127.0.0.1/localhost) and `OKTA_API_TOKEN` (the bare token; a pasted
    /// `SSWS ` prefix is tolerated). `None` when neither is set; an error
    /// naming the missing one when only one is.
    pub fn from_config(raw: &RawConfig) -> Result<Option<Self>, ConfigError> {
        let (url, token) = match (optional(raw, ORG_URL), optional(raw, API_TOKEN)) {
            (None, None) => return Ok(None),
            (Some(_), None) => return Err(half_set(API_TOKEN, ORG_URL)),
            (None, Some(_)) => return Err(half_set(ORG_URL, API_TOKEN)),
            (Some(url), Some(token)) => (url, token),
        };
        let org = base_url(ORG_URL, url, "https://acme.okta.com")?;
        if org.host_str().is_some_and(|h| h.contains("-admin.")) {
            return Err(ConfigError::new(
                ORG_URL,
                "is the admin console address; use the org URL without -admin, like https://acme.okta.com",
            ));
        }
        let token = token.strip_prefix("SSWS ").unwrap_or(token).trim();
        let mut authorization = HeaderValue::from_str(&format!("SSWS {token}")).map_err(|_| {
            ConfigError::new(
                API_TOKEN,
                "contains characters not allowed in an HTTP header",
            )
        })?;
        authorization.set_sensitive(true);
        Ok(Some(Self {
            http: Http::new("okta", "x-rate-limit-reset", ORG_URL)?,
            org,
            token: Secret::new(token),
            authorization,
        }))
    }

    /// Replaces the default timeout and rate-limit policy.
    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.http.policy = policy;
        self
    }

    /// Every user, following `Link: rel="next"` (200 per page). Okta leaves
    /// `DEPROVISIONED` users out of this listing, so a reconcile must not
    /// read a user's absence as its deletion.
    pub async fn list_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let url = self.url(&format!("/api/v1/users?limit={PAGE_LIMIT}"))?;
        let users: Vec<OktaUser> = self.list(url, "users.list").await?;
        Ok(users.into_iter().map(OktaUser::into_idp).collect())
    }

    /// Every group (Okta, app and built-in groups alike), paged like users.
    pub async fn list_groups(&self) -> Result<Vec<IdpGroup>, IdpError> {
        let url = self.url(&format!("/api/v1/groups?limit={PAGE_LIMIT}"))?;
        let groups: Vec<OktaGroup> = self.list(url, "groups.list").await?;
        groups.into_iter().map(OktaGroup::into_idp).collect()
    }

    /// The groups one user belongs to, following `Link: rel="next"`.
    pub async fn list_user_groups(&self, idp_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        let url = self.url(&format!("/api/v1/users/{}/groups", path_segment(idp_id)?))?;
        let groups: Vec<OktaGroup> = self.list(url, "users.groups").await?;
        groups.into_iter().map(OktaGroup::into_idp).collect()
    }

    /// HTTP requests this client and its clones have sent (every attempt,
    /// 429s included).
    pub fn calls(&self) -> u64 {
        self.http.requests()
    }

    /// The `DEPROVISIONED` (deactivated) users, which [`Self::list_users`]
    /// leaves out: `filter=status eq "DEPROVISIONED"`, paged like users.
    pub async fn list_deprovisioned_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let url = self.url(&format!(
            "/api/v1/users?filter=status%20eq%20%22DEPROVISIONED%22&limit={PAGE_LIMIT}"
        ))?;
        let users: Vec<OktaUser> = self.list(url, "users.list").await?;
        Ok(users.into_iter().map(OktaUser::into_idp).collect())
    }

    /// Every group except Okta's `BUILT_IN` `Everyone` group, which holds
    /// every user implicitly and has no membership events.
    pub async fn list_groups_except_built_in(&self) -> Result<Vec<IdpGroup>, IdpError> {
        let url = self.url(&format!("/api/v1/groups?limit={PAGE_LIMIT}"))?;
        let groups: Vec<OktaGroup> = self.list(url, "groups.list").await?;
        without_built_in(groups)
    }

    /// The groups one user belongs to, `Everyone` left out.
    pub async fn list_user_groups_except_built_in(
        &self,
        idp_id: &str,
    ) -> Result<Vec<IdpGroup>, IdpError> {
        let url = self.url(&format!("/api/v1/users/{}/groups", path_segment(idp_id)?))?;
        let groups: Vec<OktaGroup> = self.list(url, "users.groups").await?;
        without_built_in(groups)
    }

    /// The members of one group (`GET /api/v1/groups/{id}/users`, 1000 per
    /// page, following `Link: rel="next"`).
    pub async fn list_group_members(&self, group_id: &str) -> Result<Vec<IdpUser>, IdpError> {
        let url = self.url(&format!(
            "/api/v1/groups/{}/users?limit={MEMBERS_PAGE_LIMIT}",
            path_segment(group_id)?
        ))?;
        let users: Vec<OktaUser> = self.list(url, "groups.users").await?;
        Ok(users.into_iter().map(OktaUser::into_idp).collect())
    }

    /// One page of `GET {org}{target}` (`target` a path and query), or of
    /// `target` itself when it is an absolute URL Okta gave in a `next`
    /// link — which must be on the org's origin, since the token goes with
    /// it. For the System Log reader of `crate::catch_up`; rate limits are
    /// waited out per the policy ([`Self::with_policy`]).
    pub async fn raw_page(
        &self,
        target: &str,
        endpoint: &'static str,
    ) -> Result<crate::idp::RawPage, IdpError> {
        let url = if target.starts_with('/') {
            self.url(target)?
        } else {
            let url = Url::parse(target)
                .map_err(|_| IdpError::Decode("a stored next link is not a URL".into()))?;
            if url.origin() != self.org.origin() {
                return Err(IdpError::Decode(
                    "a next link points away from OKTA_ORG_URL; not following it with the token"
                        .into(),
                ));
            }
            url
        };
        let answer = self.get(&url, endpoint).await?;
        let next = match next_link(&answer.headers) {
            Some(next) => Some(
                url.join(&next)
                    .map_err(|_| IdpError::Decode("Link rel=\"next\" is not a URL".into()))?
                    .to_string(),
            ),
            None => None,
        };
        Ok(crate::idp::RawPage {
            body: answer.body,
            next,
        })
    }

    fn url(&self, path_and_query: &str) -> Result<Url, IdpError> {
        Url::parse(&format!("{}{path_and_query}", origin(&self.org)))
            .map_err(|e| IdpError::Decode(format!("cannot build the request URL: {e}")))
    }

    async fn get(&self, url: &Url, endpoint: &'static str) -> Result<Answer, IdpError> {
        let answer = self
            .http
            .send(endpoint, |client| {
                client
                    .get(url.clone())
                    .header(AUTHORIZATION, self.authorization.clone())
                    .header(ACCEPT, "application/json")
            })
            .await?;
        match answer.status {
            200..=299 => Ok(answer),
            401 => Err(IdpError::Unauthorized {
                status: 401,
                variable: API_TOKEN,
                hint: "Okta does not accept OKTA_API_TOKEN (wrong, revoked, or expired after 30 days unused)",
            }),
            403 => Err(IdpError::Unauthorized {
                status: 403,
                variable: API_TOKEN,
                hint: "OKTA_API_TOKEN lacks permission; its admin needs read access to users and groups",
            }),
            status => Err(status_error(status)),
        }
    }

    /// Collects every page. A `next` link must stay on the org's origin: the
    /// token goes with every request.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        first: Url,
        endpoint: &'static str,
    ) -> Result<Vec<T>, IdpError> {
        let mut url = first;
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.get(&url, endpoint).await?;
            let page: Vec<T> = decode(&answer.body, "Okta list page")?;
            items.extend(page);
            let Some(next) = next_link(&answer.headers) else {
                return Ok(items);
            };
            let next = url
                .join(&next)
                .map_err(|_| IdpError::Decode("Link rel=\"next\" is not a URL".into()))?;
            if next.origin() != self.org.origin() {
                return Err(IdpError::Decode(
                    "Link rel=\"next\" points away from OKTA_ORG_URL; not following it with the token".into(),
                ));
            }
            if next == url {
                return Err(IdpError::Decode(
                    "Link rel=\"next\" repeats the current page".into(),
                ));
            }
            url = next;
        }
        Err(IdpError::Decode(format!("more than {MAX_PAGES} pages")))
    }
}

impl IdpLookup for OktaApi {
    /// `GET /api/v1/users/{id}`; Okta also accepts a login as the id.
    async fn user(&self, idp_id: &str) -> Result<IdpUser, IdpError> {
        let url = self.url(&format!("/api/v1/users/{}", path_segment(idp_id)?))?;
        let answer = self.get(&url, "users.get").await?;
        let user: OktaUser = decode(&answer.body, "Okta user")?;
        Ok(user.into_idp())
    }

    /// `GET /api/v1/groups/{id}`; the name is `profile.name`.
    async fn group(&self, idp_id: &str) -> Result<IdpGroup, IdpError> {
        let url = self.url(&format!("/api/v1/groups/{}", path_segment(idp_id)?))?;
        let answer = self.get(&url, "groups.get").await?;
        let group: OktaGroup = decode(&answer.body, "Okta group")?;
        group.into_idp()
    }
}

fn half_set(missing: &'static str, set: &str) -> ConfigError {
    ConfigError::new(
        missing,
        format!("is not set but {set} is; both are needed to fetch users and groups from Okta"),
    )
}

type OktaUser = crate::idp::WithRaw<OktaUserFields>;

#[derive(Deserialize)]
struct OktaUserFields {
    id: String,
    status: Option<String>,
    #[serde(default)]
    profile: OktaProfile,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OktaProfile {
    login: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    display_name: Option<String>,
}

impl OktaUser {
    fn into_idp(self) -> IdpUser {
        let Self { fields, raw } = self;
        let p = fields.profile;
        let first_name = present(p.first_name);
        let last_name = present(p.last_name);
        let display_name = present(p.display_name)
            .or_else(|| joined_name(first_name.as_deref(), last_name.as_deref()));
        IdpUser {
            state: user_state(fields.status.as_deref()),
            idp_id: fields.id,
            profile: UserProfile {
                login: present(p.login),
                email: present(p.email),
                display_name,
                first_name,
                last_name,
                aliases: Default::default(),
                phone: None,
                attributes: Some(raw),
            },
        }
    }
}

/// Okta status → whether the Duo user may authenticate.
///
/// `STAGED` (created, not yet activated) maps to `Active`, as the
/// `user.lifecycle.create` event does (it carries no state and the planner
/// creates an active Duo user): mapping it to `Disabled` would make a lookup
/// flip a user the create event just made active. Okta itself stops a
/// staged user at the first factor. `PROVISIONED`, `RECOVERY`,
/// `PASSWORD_EXPIRED` and `LOCKED_OUT` are states of a user Okta still
/// considers active. An unknown status is logged and treated as `Active`:
/// disabling on a guess would lock people out of Duo.
fn user_state(status: Option<&str>) -> UserState {
    match status {
        Some("SUSPENDED" | "DEPROVISIONED") => UserState::Disabled,
        Some(
            "ACTIVE" | "STAGED" | "PROVISIONED" | "RECOVERY" | "PASSWORD_EXPIRED" | "LOCKED_OUT",
        ) => UserState::Active,
        other => {
            tracing::warn!(
                status = other,
                "unknown Okta user status; treating as active"
            );
            UserState::Active
        }
    }
}

#[derive(Deserialize)]
struct OktaGroup {
    id: String,
    /// `OKTA_GROUP`, `APP_GROUP` or `BUILT_IN`.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    profile: OktaGroupProfile,
}

fn without_built_in(groups: Vec<OktaGroup>) -> Result<Vec<IdpGroup>, IdpError> {
    groups
        .into_iter()
        .filter(|g| g.kind.as_deref() != Some(BUILT_IN))
        .map(OktaGroup::into_idp)
        .collect()
}

#[derive(Default, Deserialize)]
struct OktaGroupProfile {
    name: Option<String>,
}

impl OktaGroup {
    fn into_idp(self) -> Result<IdpGroup, IdpError> {
        let name = present(self.profile.name)
            .ok_or_else(|| IdpError::Decode("Okta group has no profile.name".into()))?;
        Ok(IdpGroup {
            idp_id: self.id,
            name,
        })
    }
}

/// What reconcile reads of this IdP.
impl crate::idp::IdpReader for OktaApi {
    fn kind(&self) -> crate::event::IdpKind {
        crate::event::IdpKind::Okta
    }

    /// `GET /api/v1/users` leaves deactivated users out, so they are listed
    /// separately: a deactivated user is disabled in Duo, not deleted.
    async fn list_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let (listed, deprovisioned) =
            tokio::join!(OktaApi::list_users(self), self.list_deprovisioned_users());
        let mut users = listed?;
        let mut seen: std::collections::HashSet<String> =
            users.iter().map(|u| u.idp_id.clone()).collect();
        users.extend(
            deprovisioned?
                .into_iter()
                .filter(|u| seen.insert(u.idp_id.clone())),
        );
        Ok(users)
    }

    async fn list_groups(&self) -> Result<Vec<IdpGroup>, IdpError> {
        self.list_groups_except_built_in().await
    }

    async fn list_member_ids(&self, group_id: &str) -> Result<Vec<String>, IdpError> {
        Ok(self
            .list_group_members(group_id)
            .await?
            .into_iter()
            .map(|u| u.idp_id)
            .collect())
    }

    async fn user(&self, idp_id: &str) -> Result<Option<IdpUser>, IdpError> {
        crate::idp::none_if_not_found(IdpLookup::user(self, idp_id).await)
    }

    /// Okta takes a login where an id is expected (`GET /api/v1/users/{login}`).
    async fn users_by_login(&self, login: &str) -> Result<Vec<IdpUser>, IdpError> {
        Ok(
            crate::idp::none_if_not_found(IdpLookup::user(self, login).await)?
                .into_iter()
                .collect(),
        )
    }

    async fn user_groups(&self, idp_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        self.list_user_groups_except_built_in(idp_id).await
    }

    fn calls(&self) -> u64 {
        OktaApi::calls(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_states() {
        for active in [
            "ACTIVE",
            "STAGED",
            "PROVISIONED",
            "RECOVERY",
            "PASSWORD_EXPIRED",
            "LOCKED_OUT",
        ] {
            assert_eq!(user_state(Some(active)), UserState::Active, "{active}");
        }
        assert_eq!(user_state(Some("SUSPENDED")), UserState::Disabled);
        assert_eq!(user_state(Some("DEPROVISIONED")), UserState::Disabled);
        assert_eq!(user_state(Some("SOMETHING_NEW")), UserState::Active);
    }

    #[test]
    fn profile_maps_with_display_name_fallback() {
        let user: OktaUser = serde_json::from_str(
            r#"{"id":"00u1","status":"ACTIVE","profile":{"login":"ada@example.com",
                "email":"ada@example.com","firstName":"Ada","lastName":"Lovelace",
                "displayName":null,"mobilePhone":null}}"#,
        )
        .unwrap();
        let user = user.into_idp();
        assert_eq!(user.profile.display_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(user.profile.login.as_deref(), Some("ada@example.com"));
    }
}
