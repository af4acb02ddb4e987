//! Whole-tenant reads for a reconcile: every user, every role, each role's
//! members, and users by email.
//!
//! Auth0 pages `GET /api/v2/users` 100 at a time and serves at most 1000
//! users that way, whatever the tenant holds. Below that the listing pages;
//! at or above it the users come from a user export job (the way Auth0
//! documents for full exports): a truncated listing must never reach a
//! reconcile, which would read every missing user as deleted.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Deserialize;

use super::{Auth0Api, Auth0User, USER_FIELDS};
use crate::idp::{
    IdpError, IdpGroup, IdpUser, MAX_PAGES, decode, encode_component, is_loopback, path_segment,
    status_error,
};

/// Auth0's largest page of users, roles and role members.
const PER_PAGE: usize = 100;
/// Users `GET /api/v2/users` serves by paging, at most.
const PAGED_USERS_CAP: usize = 1000;
/// How long a user export may take before the listing gives up.
const EXPORT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);
const EXPORT_FIRST_POLL: Duration = Duration::from_millis(500);
const EXPORT_MAX_POLL: Duration = Duration::from_secs(5);
/// The decompressed export is refused past this (about 2 million users).
const EXPORT_MAX_BYTES: u64 = 512 * 1024 * 1024;
/// The fields a reconcile maps, as the export job names them.
const EXPORT_FIELDS: [&str; 11] = [
    "user_id",
    "email",
    "name",
    "given_name",
    "family_name",
    "blocked",
    "username",
    "nickname",
    "phone_number",
    "app_metadata",
    "user_metadata",
];

impl Auth0Api {
    /// HTTP requests this client and its clones have sent (every attempt,
    /// 429s and the token fetch included).
    pub fn calls(&self) -> u64 {
        self.http.requests()
    }

    /// Every user of the tenant: `GET /api/v2/users` by pages of 100 sorted
    /// by creation time when the tenant holds fewer than 1000, else a user
    /// export job (`POST /api/v2/jobs/users-exports`, polled, its gzipped
    /// JSON lines downloaded without the token). Blocked users are included.
    pub async fn list_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let mut users = Vec::new();
        let mut seen = HashSet::new();
        for page in 0..PAGED_USERS_CAP / PER_PAGE {
            let answer = self
                .api_get(
                    &format!(
                        "/api/v2/users?page={page}&per_page={PER_PAGE}&include_totals=true&sort=created_at%3A1&search_engine=v3&{USER_FIELDS}"
                    ),
                    "users.list",
                )
                .await?;
            let (batch, total) = match decode(&answer.body, "Auth0 users page")? {
                UsersPage::WithTotals { users, total } => (users, total),
                UsersPage::Bare(users) => (users, None),
            };
            // Auth0 reports at most 1000 as the total: at the cap the
            // tenant may hold more than paging can reach.
            if total.is_some_and(|t| t >= PAGED_USERS_CAP as u64) {
                tracing::info!(
                    idp = "auth0",
                    "1000 users or more: reading them through a user export job"
                );
                return self.export_users().await;
            }
            let batch_len = batch.len();
            for user in batch {
                if seen.insert(user.user_id.clone()) {
                    users.push(user.into_idp());
                }
            }
            let done = match total {
                Some(total) => batch_len == 0 || seen.len() as u64 >= total,
                None => batch_len < PER_PAGE,
            };
            if done {
                return Ok(users);
            }
        }
        tracing::info!(
            idp = "auth0",
            "paging reached Auth0's 1000-user cap: reading the users through a user export job"
        );
        self.export_users().await
    }

    /// Every role (`GET /api/v2/roles`, pages of 100): the relay's groups.
    pub async fn list_roles(&self) -> Result<Vec<IdpGroup>, IdpError> {
        let mut roles = Vec::new();
        for page in 0..MAX_PAGES {
            let (batch, total) = self
                .roles_page("/api/v2/roles", page, PER_PAGE, "roles.list")
                .await?;
            let batch_len = batch.len();
            roles.extend(batch);
            let done = match total {
                Some(total) => batch_len == 0 || roles.len() as u64 >= total,
                None => batch_len < PER_PAGE,
            };
            if done {
                return Ok(roles);
            }
        }
        Err(IdpError::Decode(format!("more than {MAX_PAGES} pages")))
    }

    /// The ids of the users a role is assigned to
    /// (`GET /api/v2/roles/{id}/users`, checkpoint paging with `from`/`take`,
    /// which is not capped at 1000 like page numbers are).
    pub async fn list_role_member_ids(&self, role_id: &str) -> Result<Vec<String>, IdpError> {
        let path = format!("/api/v2/roles/{}/users", path_segment(role_id)?);
        let mut ids = Vec::new();
        let mut from: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let query = match &from {
                None => format!("?take={PER_PAGE}"),
                Some(next) => format!("?take={PER_PAGE}&from={}", encode_component(next)),
            };
            let answer = self
                .api_get(&format!("{path}{query}"), "roles.users")
                .await?;
            let (batch, next) = match decode(&answer.body, "Auth0 role members page")? {
                MembersPage::Checkpoint { users, next } => (users, next),
                MembersPage::Bare(users) if users.len() < PER_PAGE => (users, None),
                MembersPage::Bare(_) => {
                    return Err(IdpError::Decode(
                        "role members answer has no checkpoint (`next`) to page on".into(),
                    ));
                }
            };
            let empty = batch.is_empty();
            ids.extend(batch.into_iter().map(|m| m.user_id));
            match next.filter(|n| !n.is_empty()) {
                Some(next) if !empty && from.as_deref() != Some(next.as_str()) => from = Some(next),
                _ => return Ok(ids),
            }
        }
        Err(IdpError::Decode(format!("more than {MAX_PAGES} pages")))
    }

    /// The users with this email (`GET /api/v2/users-by-email`; Auth0 does
    /// not make emails unique across connections).
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<IdpUser>, IdpError> {
        let answer = self
            .api_get(
                &format!(
                    "/api/v2/users-by-email?email={}&{USER_FIELDS}",
                    encode_component(email)
                ),
                "users.by_email",
            )
            .await?;
        let users: Vec<Auth0User> = decode(&answer.body, "Auth0 users by email")?;
        Ok(users.into_iter().map(Auth0User::into_idp).collect())
    }

    /// Runs a user export job and reads its file.
    async fn export_users(&self) -> Result<Vec<IdpUser>, IdpError> {
        let fields: Vec<serde_json::Value> = EXPORT_FIELDS
            .iter()
            .map(|name| serde_json::json!({ "name": name }))
            .collect();
        let body = serde_json::json!({ "format": "json", "fields": fields }).to_string();
        let answer = self
            .api_call(
                reqwest::Method::POST,
                "/api/v2/jobs/users-exports",
                Some(&body),
                "jobs.users_exports",
            )
            .await?;
        let mut job: ExportJob = decode(&answer.body, "Auth0 export job")?;
        let started = Instant::now();
        let mut wait = EXPORT_FIRST_POLL;
        let location = loop {
            match job.status.as_str() {
                "completed" => {
                    break job.location.ok_or_else(|| {
                        IdpError::Decode("completed export job has no location".into())
                    })?;
                }
                "failed" | "cancelled" | "canceled" => {
                    return Err(IdpError::Decode(format!(
                        "the user export job ended {}",
                        job.status
                    )));
                }
                _ => {}
            }
            if started.elapsed() >= EXPORT_MAX_WAIT {
                return Err(IdpError::Transport(format!(
                    "the user export job was not done after {} s",
                    EXPORT_MAX_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(EXPORT_MAX_POLL);
            let answer = self
                .api_get(
                    &format!("/api/v2/jobs/{}", path_segment(&job.id)?),
                    "jobs.get",
                )
                .await?;
            job = decode(&answer.body, "Auth0 export job")?;
        };
        let file = self.download_export(&location).await?;
        parse_export(&file)
    }

    /// Fetches the export file. It lives on another host (a pre-signed
    /// URL), so it travels without the Management API token, and only over
    /// https (http only to a loopback stand-in).
    async fn download_export(&self, location: &str) -> Result<Vec<u8>, IdpError> {
        let url = Url::parse(location)
            .map_err(|_| IdpError::Decode("export job location is not a URL".into()))?;
        let loopback = url.host_str().is_some_and(is_loopback);
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(IdpError::Decode(
                "export job location is not an https URL".into(),
            ));
        }
        let answer = self
            .http
            .send("jobs.download", |client| client.get(url.clone()))
            .await?;
        match answer.status {
            200..=299 => Ok(answer.body),
            status => Err(status_error(status)),
        }
    }
}

/// Reads an export file: gzipped (as Auth0 serves it) or plain JSON lines.
fn parse_export(file: &[u8]) -> Result<Vec<IdpUser>, IdpError> {
    let plain: Box<dyn Read + '_> = if file.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let reader = BufReader::new(plain.take(EXPORT_MAX_BYTES + 1));
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    let mut bytes = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| IdpError::Decode(format!("export file: {e}")))?;
        bytes += line.len() as u64 + 1;
        if bytes > EXPORT_MAX_BYTES {
            return Err(IdpError::Decode(format!(
                "export file larger than {EXPORT_MAX_BYTES} bytes"
            )));
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let user: Auth0User = decode(line.as_bytes(), &format!("export file line {}", n + 1))?;
        if seen.insert(user.user_id.clone()) {
            users.push(user.into_idp());
        }
    }
    Ok(users)
}

/// `include_totals=true` wraps the page; without it the page is a bare array.
#[derive(Deserialize)]
#[serde(untagged)]
enum UsersPage {
    WithTotals {
        users: Vec<Auth0User>,
        total: Option<u64>,
    },
    Bare(Vec<Auth0User>),
}

#[derive(Deserialize)]
struct Member {
    user_id: String,
}

/// Checkpoint paging answers `{users, next}`; an old-style answer is a bare
/// array.
#[derive(Deserialize)]
#[serde(untagged)]
enum MembersPage {
    Checkpoint {
        users: Vec<Member>,
        next: Option<String>,
    },
    Bare(Vec<Member>),
}

#[derive(Deserialize)]
struct ExportJob {
    id: String,
    status: String,
    location: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn export_files_parse_gzipped_or_plain_and_dedupe() {
        let lines = "{\"user_id\":\"auth0|1\",\"email\":\"a@example.com\",\"blocked\":true}\n\n\
                     {\"user_id\":\"auth0|2\",\"email\":\"b@example.com\",\"name\":\"Bea\"}\n\
                     {\"user_id\":\"auth0|1\",\"email\":\"a@example.com\"}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(lines.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        for file in [gz.as_slice(), lines.as_bytes()] {
            let users = parse_export(file).unwrap();
            assert_eq!(users.len(), 2);
            assert_eq!(users[0].state, crate::event::UserState::Disabled);
            assert_eq!(users[1].profile.display_name.as_deref(), Some("Bea"));
        }
        assert!(matches!(
            parse_export(b"{\"email\":\"no id\"}\n"),
            Err(IdpError::Decode(_))
        ));
    }

    #[test]
    fn member_pages_with_and_without_checkpoints() {
        let page: MembersPage =
            serde_json::from_str(r#"{"users":[{"user_id":"auth0|1","email":"a@x"}],"next":"abc"}"#)
                .unwrap();
        assert!(
            matches!(page, MembersPage::Checkpoint { ref users, next: Some(ref n) } if users.len() == 1 && n == "abc")
        );
        let bare: MembersPage = serde_json::from_str(r#"[{"user_id":"auth0|1"}]"#).unwrap();
        assert!(matches!(bare, MembersPage::Bare(ref users) if users.len() == 1));
    }
}
