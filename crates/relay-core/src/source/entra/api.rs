//! Microsoft Graph (v1.0) for one Entra ID tenant, with an application
//! token from the client-credentials grant of the Microsoft identity
//! platform (`POST {login}/{tenant}/oauth2/v2.0/token`, scope
//! `https://graph.microsoft.com/.default`;
//! learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
//!
//! Reads only: a user (`GET /users/{id}`, the id or the userPrincipalName),
//! a group, a group's user members, a user's groups, every user and group
//! (reconcile). Application permissions: `User.Read.All` and
//! `GroupMember.Read.All` (learn.microsoft.com/graph/api/user-get,
//! group-list-members, user-list-memberof).
//!
//! Throttling: Graph answers 429 (and sometimes 503) with `Retry-After` in
//! seconds (learn.microsoft.com/graph/throttling); both are waited out
//! within the call policy, then fail as a transient error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;

use super::credential::{self, Certificate, Credential};
use crate::Secret;
use crate::config::{ConfigError, RawConfig, optional};
use crate::event::{IdpKind, UserProfile, UserState};
use crate::idp::IdpReader;
use crate::idp::{
    Answer, CallPolicy, Http, IdpError, IdpGroup, IdpLookup, IdpUser, MAX_PAGES, TokenCache,
    base_url, decode, form_body, origin, path_segment, present, status_error,
};

pub const TENANT_ID: &str = "ENTRA_TENANT_ID";
pub const CLIENT_ID: &str = "ENTRA_CLIENT_ID";
pub const CLIENT_SECRET: &str = "ENTRA_CLIENT_SECRET";
/// Instead of the secret: the app's certificate and its private key, PEM
/// (`super::credential`).
pub const CLIENT_CERTIFICATE: &str = "ENTRA_CLIENT_CERTIFICATE";
/// Optional base URL overrides (tests, stand-ins, national clouds).
pub const GRAPH_URL: &str = "ENTRA_GRAPH_URL";
pub const LOGIN_URL: &str = "ENTRA_LOGIN_URL";
/// Optional: the relay's own notification URL (`https://HOST/entra`), so a
/// `subscriptionRemoved` lifecycle notification (or a renewal that finds
/// the subscription gone) can re-create the subscriptions.
pub const NOTIFICATION_URL: &str = "ENTRA_NOTIFICATION_URL";

const DEFAULT_GRAPH: &str = "https://graph.microsoft.com";
const DEFAULT_LOGIN: &str = "https://login.microsoftonline.com";
/// The user fields the relay maps and the attributes attribute mapping may
/// name (`super::ATTRIBUTES`); `$select` keeps answers small.
pub(crate) const USER_SELECT: &str = "id,userPrincipalName,displayName,givenName,surname,mail,accountEnabled,employeeId,mailNickname,onPremisesSamAccountName,onPremisesUserPrincipalName,onPremisesExtensionAttributes";
/// Graph's largest page for directory objects.
const PAGE_SIZE: u32 = 999;
/// A token is used until this long before it expires (Entra's app tokens
/// live 60–90 minutes).
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Client for Microsoft Graph of one tenant. Cheap to clone; clones share
/// the cached token and the call counter. `Debug` shows the URLs, tenant
/// and client id, never the client secret or a token.
#[derive(Clone)]
pub struct EntraApi {
    http: Http,
    inner: Arc<Inner>,
}

struct Inner {
    graph: String,
    token_url: String,
    tenant: String,
    client_id: String,
    credential: Credential,
    token: TokenCache,
    /// `ENTRA_NOTIFICATION_URL`, checked.
    notification_url: Option<String>,
    /// The first `ENTRA_CLIENT_STATE` entry: a re-created subscription's
    /// `clientState`.
    client_state: Option<Secret>,
}

impl fmt::Debug for EntraApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntraApi")
            .field("graph", &self.inner.graph)
            .field("token_url", &self.inner.token_url)
            .field("tenant", &self.inner.tenant)
            .field("client_id", &self.inner.client_id)
            .field("credential", &self.inner.credential)
            .field("notification_url", &self.inner.notification_url)
            .field("client_state", &self.inner.client_state)
            .finish_non_exhaustive()
    }
}

impl EntraApi {
    /// From `ENTRA_TENANT_ID` (a GUID or a verified domain),
    /// `ENTRA_CLIENT_ID`, `ENTRA_CLIENT_SECRET` or `ENTRA_CLIENT_CERTIFICATE`
    /// (one of them), and the optional `ENTRA_GRAPH_URL` /
    /// `ENTRA_LOGIN_URL`. `None` when none is set; an error naming the
    /// first missing one when only some are.
    pub fn from_config(raw: &RawConfig) -> Result<Option<Self>, ConfigError> {
        let names = [TENANT_ID, CLIENT_ID, CLIENT_SECRET, CLIENT_CERTIFICATE];
        let [tenant, client_id, secret, certificate] = names.map(|n| optional(raw, n));
        let (tenant, client_id, credential) = match (tenant, client_id, secret, certificate) {
            (None, None, None, None) => return Ok(None),
            (Some(_), Some(_), Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    CLIENT_CERTIFICATE,
                    "is set and so is ENTRA_CLIENT_SECRET: set one of them (the relay would not know which Entra expects)",
                ));
            }
            (Some(t), Some(c), Some(s), None) => (t, c, Credential::Secret(Secret::new(s))),
            (Some(t), Some(c), None, Some(pem)) => {
                let certificate = Certificate::from_pem(pem)
                    .map_err(|why| ConfigError::new(CLIENT_CERTIFICATE, why))?;
                (t, c, Credential::Certificate(certificate))
            }
            (t, c, _, _) => {
                let missing = if t.is_none() {
                    TENANT_ID
                } else if c.is_none() {
                    CLIENT_ID
                } else {
                    CLIENT_SECRET
                };
                return Err(ConfigError::new(
                    missing,
                    "is not set but other ENTRA_TENANT_ID/ENTRA_CLIENT_ID/ENTRA_CLIENT_SECRET variables are; Microsoft Graph needs the tenant, the client id, and the client secret or ENTRA_CLIENT_CERTIFICATE",
                ));
            }
        };
        let tenant_ok = tenant.len() <= 256
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !tenant_ok {
            return Err(ConfigError::new(
                TENANT_ID,
                "must be the tenant's id (a GUID) or a verified domain such as contoso.onmicrosoft.com",
            ));
        }
        let graph = base_url(
            GRAPH_URL,
            optional(raw, GRAPH_URL).unwrap_or(DEFAULT_GRAPH),
            DEFAULT_GRAPH,
        )?;
        let login = base_url(
            LOGIN_URL,
            optional(raw, LOGIN_URL).unwrap_or(DEFAULT_LOGIN),
            DEFAULT_LOGIN,
        )?;
        let notification_url = optional(raw, NOTIFICATION_URL)
            .map(|url| {
                super::subscription::check_notification_url(url)
                    .map_err(|why| ConfigError::new(NOTIFICATION_URL, why))
            })
            .transpose()?;
        // The first rotation entry is the current value.
        let client_state = optional(raw, super::IDP.secret_variable)
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        Ok(Some(Self {
            http: Http::new("entra", "", GRAPH_URL)?.with_retry_after_only(),
            inner: Arc::new(Inner {
                graph: origin(&graph),
                token_url: format!("{}/{tenant}/oauth2/v2.0/token", origin(&login)),
                tenant: tenant.to_owned(),
                client_id: client_id.to_owned(),
                credential,
                token: TokenCache::new(TOKEN_MARGIN, Duration::from_secs(3600)),
                notification_url,
                client_state,
            }),
        }))
    }

    /// Replaces the default timeout and throttling policy.
    #[must_use]
    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.http.policy = policy;
        self
    }

    /// HTTP requests sent so far (token requests and retries included).
    pub fn calls(&self) -> u64 {
        self.http.requests()
    }

    /// `ENTRA_NOTIFICATION_URL`: where the relay's subscriptions deliver.
    pub fn notification_url(&self) -> Option<&str> {
        self.inner.notification_url.as_deref()
    }

    /// The `clientState` a subscription the relay creates carries (the
    /// first `ENTRA_CLIENT_STATE` entry).
    pub fn client_state(&self) -> Option<&Secret> {
        self.inner.client_state.as_ref()
    }

    /// Whether `other` is this client or a clone of it (they share the
    /// token and the call counter).
    pub fn same_client(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The user members of a group (direct members; devices, service
    /// principals and nested groups are not Duo users).
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<IdpUser>, IdpError> {
        let path = format!(
            "/v1.0/groups/{}/members/microsoft.graph.user?$select={USER_SELECT}&$top={PAGE_SIZE}",
            path_segment(group_id)?
        );
        let users: Vec<GraphUser> = self.collect(&path, "groups.members").await?;
        Ok(users.into_iter().map(GraphUser::into_idp).collect())
    }

    /// The groups a user is a direct member of (`memberOf`, groups only:
    /// directory roles and administrative units are left out).
    pub async fn member_of(&self, user_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        let path = format!(
            "/v1.0/users/{}/memberOf/microsoft.graph.group?$select=id,displayName&$top={PAGE_SIZE}",
            path_segment(user_id)?
        );
        let groups: Vec<GraphGroup> = self.collect(&path, "users.memberOf").await?;
        Ok(groups.into_iter().map(GraphGroup::into_idp).collect())
    }

    /// Every page of a collection, following `@odata.nextLink` (only on
    /// the Graph base URL: the token goes with it).
    async fn collect<T: serde::de::DeserializeOwned>(
        &self,
        first: &str,
        endpoint: &'static str,
    ) -> Result<Vec<T>, IdpError> {
        let mut items = Vec::new();
        let mut next = Some(first.to_owned());
        for _ in 0..MAX_PAGES {
            let Some(target) = next.take() else {
                return Ok(items);
            };
            let answer = self.get(&target, endpoint).await?;
            let page: Page<T> = decode(&answer.body, endpoint)?;
            items.extend(page.value);
            next = match page.next_link {
                None => None,
                Some(link) => Some(self.path_on_graph(&link)?),
            };
        }
        Err(IdpError::Decode(format!("more than {MAX_PAGES} pages")))
    }

    /// A `nextLink` as a path and query on the Graph base URL, or an error
    /// when it points elsewhere.
    pub(crate) fn path_on_graph(&self, link: &str) -> Result<String, IdpError> {
        let url = Url::parse(link).map_err(|_| IdpError::Decode("nextLink is not a URL".into()))?;
        if origin(&url) != self.inner.graph {
            return Err(IdpError::Decode(
                "a nextLink points away from the Graph URL; not following it with the token".into(),
            ));
        }
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// A cached token, or a new one (one fetch for concurrent callers).
    async fn token(&self) -> Result<Secret, IdpError> {
        self.inner.token.get("entra", self.new_token()).await
    }

    /// The identity platform's token answer, its status checked.
    async fn new_token(&self) -> Result<Vec<u8>, IdpError> {
        let inner = &*self.inner;
        let assertion;
        let mut fields = vec![
            ("grant_type", "client_credentials"),
            ("client_id", inner.client_id.as_str()),
        ];
        match &inner.credential {
            Credential::Secret(secret) => fields.push(("client_secret", secret.expose())),
            Credential::Certificate(certificate) => {
                // A fresh assertion per token request (each has its jti).
                let now_s = crate::state::now_ms() / 1000;
                assertion = certificate
                    .assertion(&inner.client_id, &inner.token_url, now_s)
                    .map_err(IdpError::Transport)?;
                fields.push(("client_assertion_type", credential::ASSERTION_TYPE));
                fields.push(("client_assertion", assertion.as_str()));
            }
        }
        fields.push(("scope", "https://graph.microsoft.com/.default"));
        let form = form_body(&fields);
        let answer = self
            .http
            .send("token", |c| {
                c.post(&inner.token_url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(ACCEPT, "application/json")
                    .body(form.clone())
            })
            .await?;
        match answer.status {
            200..=299 => Ok(answer.body),
            // The identity platform answers a wrong secret or client id with
            // 400/401 (invalid_client, unauthorized_client).
            400 | 401 => Err(match inner.credential {
                Credential::Secret(_) => IdpError::Unauthorized {
                    status: answer.status,
                    variable: CLIENT_SECRET,
                    hint: "Entra refused the client credentials; check ENTRA_TENANT_ID, ENTRA_CLIENT_ID and ENTRA_CLIENT_SECRET (or ENTRA_CLIENT_CERTIFICATE) (an expired secret is refused too)",
                },
                Credential::Certificate(_) => IdpError::Unauthorized {
                    status: answer.status,
                    variable: CLIENT_CERTIFICATE,
                    hint: "Entra refused the certificate's assertion; check ENTRA_TENANT_ID, ENTRA_CLIENT_ID, and that the app registration holds ENTRA_CLIENT_CERTIFICATE's certificate (not expired) — its x5t#S256 is in the relay's Debug output of the Entra client",
                },
            }),
            status => Err(status_error(status)),
        }
    }

    /// `GET {graph}{path_and_query}` with the token; a 401 fetches a new
    /// token and tries once more.
    async fn get(&self, path_and_query: &str, endpoint: &'static str) -> Result<Answer, IdpError> {
        self.call(reqwest::Method::GET, path_and_query, None, endpoint)
            .await
    }

    /// A Graph call with the token and an optional JSON body, with
    /// [`Self::get`]'s 401 handling. Subscriptions are written through it
    /// (`super::subscription`).
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        json_body: Option<&serde_json::Value>,
        endpoint: &'static str,
    ) -> Result<Answer, IdpError> {
        let answer = self
            .call_any_status(method, path_and_query, json_body, endpoint)
            .await?;
        match answer.status {
            200..=299 => Ok(answer),
            status => Err(status_error(status)),
        }
    }

    /// [`Self::call`], but any status other than 401/403 is the caller's
    /// to read (with its body): a delta query tells an expired deltaLink
    /// by Graph's error code (`super::delta`).
    pub(crate) async fn call_any_status(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        json_body: Option<&serde_json::Value>,
        endpoint: &'static str,
    ) -> Result<Answer, IdpError> {
        let url = Url::parse(&format!("{}{path_and_query}", self.inner.graph))
            .map_err(|e| IdpError::Decode(format!("cannot build the request URL: {e}")))?;
        let body = json_body.map(serde_json::Value::to_string);
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| IdpError::Decode("token is not a valid header value".into()))?;
            bearer.set_sensitive(true);
            let answer = self
                .http
                .send(endpoint, |c| {
                    let request = c
                        .request(method.clone(), url.clone())
                        .header(AUTHORIZATION, bearer.clone())
                        .header(ACCEPT, "application/json");
                    match &body {
                        Some(body) => request
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone()),
                        None => request,
                    }
                })
                .await?;
            match answer.status {
                401 if !retried => {
                    self.inner.token.forget(&token).await;
                    retried = true;
                }
                401 | 403 => {
                    return Err(IdpError::Unauthorized {
                        status: answer.status,
                        variable: CLIENT_ID,
                        hint: "Graph refused the token; grant the application User.Read.All and GroupMember.Read.All (application permissions, admin consent)",
                    });
                }
                _ => return Ok(answer),
            }
        }
    }
}

impl IdpLookup for EntraApi {
    /// `GET /v1.0/users/{id}` (an id, or a userPrincipalName).
    async fn user(&self, idp_id: &str) -> Result<IdpUser, IdpError> {
        let path = format!(
            "/v1.0/users/{}?$select={USER_SELECT}",
            path_segment(idp_id)?
        );
        let answer = self.get(&path, "users.get").await?;
        Ok(decode::<GraphUser>(&answer.body, "Graph user")?.into_idp())
    }

    /// `GET /v1.0/groups/{id}`; the name is `displayName`.
    async fn group(&self, idp_id: &str) -> Result<IdpGroup, IdpError> {
        let path = format!(
            "/v1.0/groups/{}?$select=id,displayName",
            path_segment(idp_id)?
        );
        let answer = self.get(&path, "groups.get").await?;
        Ok(decode::<GraphGroup>(&answer.body, "Graph group")?.into_idp())
    }
}

impl IdpReader for EntraApi {
    fn kind(&self) -> IdpKind {
        IdpKind::Entra
    }

    /// Every user, disabled ones included (`accountEnabled: false`); a
    /// deleted user is in `deletedItems`, not here, so it reads as deleted.
    async fn list_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let path = format!("/v1.0/users?$select={USER_SELECT}&$top={PAGE_SIZE}");
        let users: Vec<GraphUser> = self.collect(&path, "users.list").await?;
        Ok(users.into_iter().map(GraphUser::into_idp).collect())
    }

    async fn list_groups(&self) -> Result<Vec<IdpGroup>, IdpError> {
        let path = format!("/v1.0/groups?$select=id,displayName&$top={PAGE_SIZE}");
        let groups: Vec<GraphGroup> = self.collect(&path, "groups.list").await?;
        Ok(groups.into_iter().map(GraphGroup::into_idp).collect())
    }

    async fn list_member_ids(&self, group_id: &str) -> Result<Vec<String>, IdpError> {
        Ok(self
            .group_members(group_id)
            .await?
            .into_iter()
            .map(|u| u.idp_id)
            .collect())
    }

    async fn user(&self, idp_id: &str) -> Result<Option<IdpUser>, IdpError> {
        match IdpLookup::user(self, idp_id).await {
            Ok(user) => Ok(Some(user)),
            Err(IdpError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Graph takes a userPrincipalName where an id is expected.
    async fn users_by_login(&self, login: &str) -> Result<Vec<IdpUser>, IdpError> {
        Ok(IdpReader::user(self, login).await?.into_iter().collect())
    }

    async fn user_groups(&self, idp_id: &str) -> Result<Vec<IdpGroup>, IdpError> {
        self.member_of(idp_id).await
    }

    fn calls(&self) -> u64 {
        EntraApi::calls(self)
    }
}

#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A Graph user, kept whole for attribute mapping.
type GraphUser = crate::idp::WithRaw<GraphUserFields>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphUserFields {
    id: String,
    user_principal_name: Option<String>,
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    mail: Option<String>,
    account_enabled: Option<bool>,
}

impl crate::idp::WithRaw<GraphUserFields> {
    /// The Duo username is the userPrincipalName (issue 17 makes it
    /// configurable); ids are kept lower-case, as notifications carry them.
    fn into_idp(self) -> IdpUser {
        let Self { fields, raw } = self;
        IdpUser {
            idp_id: fields.id.to_ascii_lowercase(),
            // Only an explicit `false` disables: a `$select` that lost the
            // field must not disable everyone.
            state: if fields.account_enabled == Some(false) {
                UserState::Disabled
            } else {
                UserState::Active
            },
            profile: UserProfile {
                login: present(fields.user_principal_name),
                email: present(fields.mail),
                display_name: present(fields.display_name),
                first_name: present(fields.given_name),
                last_name: present(fields.surname),
                aliases: Default::default(),
                phone: None,
                attributes: Some(raw),
            },
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphGroup {
    id: String,
    display_name: Option<String>,
}

impl GraphGroup {
    /// A group without a display name is named by its id.
    fn into_idp(self) -> IdpGroup {
        let id = self.id.to_ascii_lowercase();
        IdpGroup {
            name: present(self.display_name).unwrap_or_else(|| id.clone()),
            idp_id: id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawConfig {
        crate::config::from_pairs(pairs)
    }

    #[test]
    fn config_needs_all_three_and_never_shows_the_secret() {
        assert!(EntraApi::from_config(&raw(&[])).unwrap().is_none());
        let err =
            EntraApi::from_config(&raw(&[(TENANT_ID, "contoso.onmicrosoft.com")])).unwrap_err();
        assert_eq!(err.variable, CLIENT_ID);
        let err = EntraApi::from_config(&raw(&[
            (TENANT_ID, "../x"),
            (CLIENT_ID, "c"),
            (CLIENT_SECRET, "s"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, TENANT_ID);
        let api = EntraApi::from_config(&raw(&[
            (TENANT_ID, "contoso.onmicrosoft.com"),
            (CLIENT_ID, "app-1"),
            (CLIENT_SECRET, "very-secret-value"),
            (
                "ENTRA_CLIENT_STATE",
                "state-value-0123456789,older-state-value-0123",
            ),
            (NOTIFICATION_URL, "https://relay.example.com/entra"),
        ]))
        .unwrap()
        .unwrap();
        let shown = format!("{api:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("state-value"), "{shown}");
        assert_eq!(
            api.client_state().unwrap().expose(),
            "state-value-0123456789"
        );
        assert_eq!(
            api.notification_url(),
            Some("https://relay.example.com/entra")
        );
        for bad in ["http://relay.example.com/entra", "not a url"] {
            let err = EntraApi::from_config(&raw(&[
                (TENANT_ID, "t"),
                (CLIENT_ID, "c"),
                (CLIENT_SECRET, "s"),
                (NOTIFICATION_URL, bad),
            ]))
            .unwrap_err();
            assert_eq!(err.variable, NOTIFICATION_URL);
        }
        assert!(
            shown.contains(
                "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
            ),
            "{shown}"
        );
        assert!(shown.contains("https://graph.microsoft.com"), "{shown}");
        let err = EntraApi::from_config(&raw(&[
            (TENANT_ID, "t"),
            (CLIENT_ID, "c"),
            (CLIENT_SECRET, "s"),
            (GRAPH_URL, "http://graph.example.com"),
        ]))
        .unwrap_err();
        assert_eq!(err.variable, GRAPH_URL);
    }

    #[test]
    fn users_map_upn_to_login_and_only_false_disables() {
        let user: GraphUser = serde_json::from_str(
            r#"{"id":"ABC-1","userPrincipalName":"ada@contoso.com","displayName":"Ada L","givenName":"Ada","surname":"L","mail":null,"accountEnabled":false}"#,
        )
        .unwrap();
        let user = user.into_idp();
        assert_eq!(user.idp_id, "abc-1");
        assert_eq!(user.state, UserState::Disabled);
        assert_eq!(user.profile.login.as_deref(), Some("ada@contoso.com"));
        assert_eq!(user.profile.email, None);
        let user: GraphUser = serde_json::from_str(r#"{"id":"x"}"#).unwrap();
        assert_eq!(user.into_idp().state, UserState::Active);
    }
}
