//! Auth0 Management API with a machine-to-machine (client-credentials) token.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use crate::Secret;
use crate::config::{ConfigError, RawConfig, optional};
use crate::event::{UserProfile, UserState};
use crate::idp::{
    Answer, CallPolicy, Http, IdpError, IdpGroup, IdpLookup, IdpUser, MAX_PAGES, TokenCache,
    base_url, decode, form_body, next_link, origin, path_segment, present, status_error,
};

mod listing;

const DOMAIN: &str = "AUTH0_DOMAIN";
const CLIENT_ID: &str = "AUTH0_CLIENT_ID";
const CLIENT_SECRET: &str = "AUTH0_CLIENT_SECRET";
/// Auth0's default page size for `/users/{id}/roles`.
const ROLES_PER_PAGE: usize = 50;
/// A token is replaced this long before it expires (see `TokenCache`).
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Assumed lifetime when the answer has no `expires_in`; a 401 still
/// refreshes it early.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// Only the fields the relay maps.
/// The user fields read: what the relay maps by default, and what attribute
/// mapping may name (`crate::mapping`, `super::ATTRIBUTES`).
const USER_FIELDS: &str = "fields=user_id,email,name,given_name,family_name,blocked,username,nickname,phone_number,app_metadata,user_metadata&include_fields=true";

/// Client for the Auth0 Management API of one tenant. Cheap to clone; clones
/// share the cached token. `Debug` shows the base URL and client id, never
/// the client secret or a token.
#[derive(Clone)]
pub struct Auth0Api {
    http: Http,
    shared: Arc<Shared>,
}

struct Shared {
    /// `https://acme.us.auth0.com` (or a loopback stand-in), no trailing slash.
    base: String,
    /// `https://{domain}/api/v2/`.
    audience: String,
    client_id: String,
    client_secret: Secret,
    token: TokenCache,
}

impl fmt::Debug for Auth0Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth0Api")
            .field("base_url", &self.shared.base)
            .field("client_id", &self.shared.client_id)
            .field("client_secret", &self.shared.client_secret)
            .field("policy", &self.http.policy)
            .finish_non_exhaustive()
    }
}

impl Auth0Api {
    /// From `AUTH0_DOMAIN` (`acme.us.auth0.com`: the tenant's canonical
    /// domain, not a custom domain, since it names the Management API
    /// audience; or a full `http://127.0.0.1:port` base for tests),
    /// `AUTH0_CLIENT_ID` and `AUTH0_CLIENT_SECRET`. `None` when none is set;
    /// an error naming the first missing one when only some are.
    pub fn from_config(raw: &RawConfig) -> Result<Option<Self>, ConfigError> {
        let names = [DOMAIN, CLIENT_ID, CLIENT_SECRET];
        let values = names.map(|name| optional(raw, name));
        let (domain, client_id, client_secret) = match values {
            [None, None, None] => return Ok(None),
            [Some(d), Some(id), Some(secret)] => (d, id, secret),
            _ => {
                let missing = names
                    .into_iter()
                    .zip(values)
                    .find_map(|(name, value)| value.is_none().then_some(name))
                    .unwrap_or(DOMAIN);
                return Err(ConfigError::new(
                    missing,
                    "is not set but other AUTH0_DOMAIN/AUTH0_CLIENT_ID/AUTH0_CLIENT_SECRET variables are; all three are needed for the Management API",
                ));
            }
        };
        let url = base_url(DOMAIN, domain, "acme.us.auth0.com")?;
        let host = url
            .host_str()
            .ok_or_else(|| ConfigError::new(DOMAIN, "must name a host"))?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Some(Self {
            http: Http::new("auth0", "x-ratelimit-reset", DOMAIN)?,
            shared: Arc::new(Shared {
                base: origin(&url),
                audience: format!("https://{authority}/api/v2/"),
                client_id: client_id.to_owned(),
                client_secret: Secret::new(client_secret),
                token: TokenCache::new(TOKEN_MARGIN, DEFAULT_TOKEN_LIFETIME),
            }),
        }))
    }

    /// Replaces the default timeout and rate-limit policy.
    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.http.policy = policy;
        self
    }

    /// The roles assigned to a user, following `page`/`per_page` paging.
    pub async fn list_user_roles(&self, user_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        let path = format!("/api/v2/users/{}/roles", path_segment(user_id)?);
        let mut roles = Vec::new();
        for page in 0..MAX_PAGES {
            let (batch, total) = self
                .roles_page(&path, page, ROLES_PER_PAGE, "users.roles")
                .await?;
            let batch_len = batch.len();
            roles.extend(batch);
            let done = batch_len < ROLES_PER_PAGE
                || total.is_some_and(|total| roles.len() as u64 >= total);
            if done {
                return Ok(roles);
            }
        }
        Err(IdpError::Decode(format!("more than {MAX_PAGES} pages")))
    }

    /// One page of `GET {base}{target}` (`target` a path and query, or an
    /// absolute `next` link Auth0 gave, which must be on the tenant's base
    /// URL: the token goes with it). For the tenant log reader of
    /// `crate::catch_up` (`/api/v2/logs`, scope `read:logs`).
    pub async fn raw_page(
        &self,
        target: &str,
        endpoint: &'static str,
    ) -> Result<crate::idp::RawPage, IdpError> {
        let path_and_query = if target.starts_with('/') {
            target.to_owned()
        } else {
            let url = Url::parse(target)
                .map_err(|_| IdpError::Decode("a next link is not a URL".into()))?;
            if origin(&url) != self.shared.base {
                return Err(IdpError::Decode(
                    "a next link points away from AUTH0_DOMAIN; not following it with the token"
                        .into(),
                ));
            }
            match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            }
        };
        let answer = self.api_get(&path_and_query, endpoint).await?;
        let base = Url::parse(&format!("{}{path_and_query}", self.shared.base))
            .map_err(|e| IdpError::Decode(format!("cannot build the request URL: {e}")))?;
        let next = match next_link(&answer.headers) {
            Some(next) => Some(
                base.join(&next)
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

    /// One page of roles from `{path}?page=…&per_page=…&include_totals=true`
    /// (all roles, or a user's): the roles and the total Auth0 reports, if
    /// it reports one.
    async fn roles_page(
        &self,
        path: &str,
        page: usize,
        per_page: usize,
        endpoint: &'static str,
    ) -> Result<(Vec<IdpGroup>, Option<u64>), IdpError> {
        let answer = self
            .api_get(
                &format!("{path}?page={page}&per_page={per_page}&include_totals=true"),
                endpoint,
            )
            .await?;
        let (batch, total) = match decode(&answer.body, "Auth0 roles page")? {
            RolesPage::WithTotals { roles, total } => (roles, total),
            RolesPage::Bare(roles) => (roles, None),
        };
        Ok((batch.into_iter().map(Auth0Role::into_idp).collect(), total))
    }

    /// A cached token, or one fetched now (one fetch for concurrent callers).
    async fn token(&self) -> Result<Secret, IdpError> {
        self.shared.token.get("auth0", self.fetch_token()).await
    }

    /// The token endpoint's answer, its status checked.
    async fn fetch_token(&self) -> Result<Vec<u8>, IdpError> {
        let shared = &*self.shared;
        let url = format!("{}/oauth/token", shared.base);
        let body = form_body(&[
            ("grant_type", "client_credentials"),
            ("client_id", &shared.client_id),
            ("client_secret", shared.client_secret.expose()),
            ("audience", &shared.audience),
        ]);
        let answer = self
            .http
            .send("oauth.token", |client| {
                client
                    .post(&url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(ACCEPT, "application/json")
                    .body(body.clone())
            })
            .await?;
        match answer.status {
            200..=299 => Ok(answer.body),
            401 => Err(IdpError::Unauthorized {
                status: 401,
                variable: CLIENT_SECRET,
                hint: "Auth0 refused the client credentials; check AUTH0_CLIENT_ID and AUTH0_CLIENT_SECRET",
            }),
            403 => Err(IdpError::Unauthorized {
                status: 403,
                variable: CLIENT_ID,
                hint: "the application AUTH0_CLIENT_ID is not authorized for the Management API of AUTH0_DOMAIN (add a client grant)",
            }),
            status => Err(status_error(status)),
        }
    }

    /// `GET {base}{path_and_query}` with the bearer token. A 401 drops the
    /// token and retries once with a fresh one (revoked, or expired early).
    async fn api_get(
        &self,
        path_and_query: &str,
        endpoint: &'static str,
    ) -> Result<Answer, IdpError> {
        self.api_call(reqwest::Method::GET, path_and_query, None, endpoint)
            .await
    }

    /// A Management API call with the bearer token and an optional JSON
    /// body, with [`Self::api_get`]'s 401 handling.
    async fn api_call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        json_body: Option<&str>,
        endpoint: &'static str,
    ) -> Result<Answer, IdpError> {
        let url = Url::parse(&format!("{}{path_and_query}", self.shared.base))
            .map_err(|e| IdpError::Decode(format!("cannot build the request URL: {e}")))?;
        let mut refreshed = false;
        loop {
            let token = self.token().await?;
            let mut authorization = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| IdpError::Decode("token is not a valid header value".into()))?;
            authorization.set_sensitive(true);
            let answer = self
                .http
                .send(endpoint, |client| {
                    let request = client
                        .request(method.clone(), url.clone())
                        .header(AUTHORIZATION, authorization.clone())
                        .header(ACCEPT, "application/json");
                    match json_body {
                        Some(body) => request
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.to_owned()),
                        None => request,
                    }
                })
                .await?;
            match answer.status {
                200..=299 => return Ok(answer),
                401 if !refreshed => {
                    tracing::info!(idp = "auth0", endpoint, "token refused; fetching a new one");
                    self.shared.token.forget(&token).await;
                    refreshed = true;
                }
                401 => {
                    return Err(IdpError::Unauthorized {
                        status: 401,
                        variable: DOMAIN,
                        hint: "Auth0 refused a freshly issued token; check that AUTH0_DOMAIN is the tenant's canonical domain (it names the audience)",
                    });
                }
                403 => {
                    return Err(IdpError::Unauthorized {
                        status: 403,
                        variable: CLIENT_ID,
                        hint: "the token of AUTH0_CLIENT_ID lacks a scope; grant read:users and read:roles to the application",
                    });
                }
                status => return Err(status_error(status)),
            }
        }
    }
}

impl IdpLookup for Auth0Api {
    /// `GET /api/v2/users/{id}` (`auth0|abc` travels as `auth0%7Cabc`).
    /// The email is the login (the Duo username by default).
    async fn user(&self, idp_id: &str) -> Result<IdpUser, IdpError> {
        let path = format!("/api/v2/users/{}?{USER_FIELDS}", path_segment(idp_id)?);
        let answer = self.api_get(&path, "users.get").await?;
        let user: Auth0User = decode(&answer.body, "Auth0 user")?;
        Ok(user.into_idp())
    }

    /// `GET /api/v2/roles/{id}`: Auth0 roles are the relay's groups.
    async fn group(&self, idp_id: &str) -> Result<IdpGroup, IdpError> {
        let path = format!("/api/v2/roles/{}", path_segment(idp_id)?);
        let answer = self.api_get(&path, "roles.get").await?;
        let role: Auth0Role = decode(&answer.body, "Auth0 role")?;
        Ok(role.into_idp())
    }
}

pub(super) type Auth0User = crate::idp::WithRaw<Auth0UserFields>;

#[derive(Deserialize)]
pub(super) struct Auth0UserFields {
    user_id: String,
    email: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    blocked: Option<bool>,
}

impl Auth0User {
    fn into_idp(self) -> IdpUser {
        let Self { fields, raw } = self;
        let email = present(fields.email);
        IdpUser {
            idp_id: fields.user_id,
            state: if fields.blocked == Some(true) {
                UserState::Disabled
            } else {
                UserState::Active
            },
            profile: UserProfile {
                login: email.clone(),
                email,
                display_name: present(fields.name),
                first_name: present(fields.given_name),
                last_name: present(fields.family_name),
                aliases: Default::default(),
                phone: None,
                attributes: Some(raw),
            },
        }
    }
}

#[derive(Deserialize)]
struct Auth0Role {
    id: String,
    name: String,
}

impl Auth0Role {
    fn into_idp(self) -> IdpGroup {
        IdpGroup {
            idp_id: self.id,
            name: self.name,
        }
    }
}

/// `include_totals=true` wraps the page; without it the page is a bare array.
#[derive(Deserialize)]
#[serde(untagged)]
enum RolesPage {
    WithTotals {
        roles: Vec<Auth0Role>,
        total: Option<u64>,
    },
    Bare(Vec<Auth0Role>),
}

/// What reconcile reads of this IdP.
impl crate::idp::IdpReader for Auth0Api {
    fn kind(&self) -> crate::event::IdpKind {
        crate::event::IdpKind::Auth0
    }

    async fn list_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        Auth0Api::list_users(self).await
    }

    async fn list_groups(&self) -> Result<Vec<IdpGroup>, IdpError> {
        self.list_roles().await
    }

    async fn list_member_ids(&self, group_id: &str) -> Result<Vec<String>, IdpError> {
        self.list_role_member_ids(group_id).await
    }

    async fn user(&self, idp_id: &str) -> Result<Option<IdpUser>, IdpError> {
        crate::idp::none_if_not_found(IdpLookup::user(self, idp_id).await)
    }

    async fn users_by_login(&self, login: &str) -> Result<Vec<IdpUser>, IdpError> {
        self.users_by_email(login).await
    }

    async fn user_groups(&self, idp_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        self.list_user_roles(idp_id).await
    }

    fn calls(&self) -> u64 {
        Auth0Api::calls(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_reused_until_a_minute_before_expiry() {
        let cache = TokenCache::new(TOKEN_MARGIN, DEFAULT_TOKEN_LIFETIME);
        let refresh_after = |d| cache.fresh_for(d);
        assert_eq!(
            refresh_after(Duration::from_secs(86_400)),
            Duration::from_secs(86_340)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn roles_pages_with_and_without_totals() {
        let wrapped: RolesPage = serde_json::from_str(
            r#"{"roles":[{"id":"rol_1","name":"Admins","description":null}],"start":0,"limit":50,"total":1}"#,
        )
        .unwrap();
        assert!(
            matches!(wrapped, RolesPage::WithTotals { total: Some(1), ref roles }
                if roles.len() == 1)
        );
        let bare: RolesPage = serde_json::from_str(r#"[{"id":"rol_1","name":"Admins"}]"#).unwrap();
        assert!(matches!(bare, RolesPage::Bare(ref roles) if roles.len() == 1));
    }

    #[test]
    fn user_maps_email_to_login_and_blocked_to_disabled() {
        let user: Auth0User = serde_json::from_str(
            r#"{"user_id":"auth0|abc","email":"ada@example.com","name":"Ada Lovelace",
                "given_name":"Ada","family_name":"Lovelace","blocked":true}"#,
        )
        .unwrap();
        let user = user.into_idp();
        assert_eq!(user.state, UserState::Disabled);
        assert_eq!(user.profile.login.as_deref(), Some("ada@example.com"));
        assert_eq!(user.profile.display_name.as_deref(), Some("Ada Lovelace"));
    }
}
