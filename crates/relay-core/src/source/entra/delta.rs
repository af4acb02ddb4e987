//! Microsoft Graph delta queries on users and groups: what changed since a
//! stored `@odata.deltaLink`, without reading the whole tenant.
//!
//! Facts (learn.microsoft.com/graph/delta-query-overview, delta-query-users,
//! delta-query-groups, api/user-delta, api/group-delta):
//! - `GET /v1.0/users/delta` and `/v1.0/groups/delta` answer pages; a page
//!   with `@odata.nextLink` has more to read (even when empty), the last one
//!   carries `@odata.deltaLink` instead, which the next round starts from.
//!   Query parameters (`$select`) go in the first request only: Graph keeps
//!   them in the links.
//! - Entra ID resources support "sync from now": `$deltatoken=latest`
//!   answers no objects and a `@odata.deltaLink` — the baseline a full
//!   resync takes before it reads everything.
//! - A removed object is `{"id": …, "@removed": {"reason": "changed" |
//!   "deleted"}}` (`changed`: soft-deleted, restorable for 30 days;
//!   `deleted`: gone). Group membership changes arrive as the group with
//!   `members@delta` when `members` is selected.
//! - A deltaLink Graph no longer honours is refused: `410 Gone`
//!   (delta-query-overview, "synchronization reset"), or for identity
//!   resources `400` with error code `syncStateNotFound` after 7 days
//!   (devblogs.microsoft.com/microsoft365dev, "Duration of change tracking
//!   tokens for identity and education resources", 2020-07-03). Either
//!   means a full resync.
//!
//! Like a notification, a delta entry is a hint: the relay keeps only the
//! object's id and whether it was removed, then makes Duo match what Graph
//! says now (the planner reads the object), so the entries' partial
//! properties never reach Duo.

use serde_json::Value;

use super::api::{EntraApi, USER_SELECT};
use crate::idp::{IdpError, MAX_PAGES, decode, status_error};

/// What a delta query tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Users,
    Groups,
}

impl Resource {
    pub const ALL: [Resource; 2] = [Self::Users, Self::Groups];

    /// `users` / `groups` (Graph's collection, the relay's event paths).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Groups => "groups",
        }
    }

    /// The first request of a round: the fields the relay maps for users
    /// (a change to one of them returns the user), `displayName` and
    /// `members` for groups (membership changes are tracked only when
    /// `members` is selected).
    pub fn first_path(self) -> String {
        match self {
            Self::Users => format!("/v1.0/users/delta?$select={USER_SELECT}"),
            Self::Groups => "/v1.0/groups/delta?$select=displayName,members".to_owned(),
        }
    }
}

/// One changed object of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaChange {
    /// The object id, lower-case (a GUID).
    pub id: String,
    /// `@removed` (soft- or hard-deleted).
    pub removed: bool,
}

/// A round read to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaRound {
    /// One entry per object (a later entry about an object replaces an
    /// earlier one: Graph may return an object more than once).
    pub changes: Vec<DeltaChange>,
    /// Entries that were not an object with a GUID id (ignored).
    pub ignored: usize,
    /// Where the next round starts.
    pub delta_link: String,
    pub pages: usize,
}

/// Why a round could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Graph refused the stored deltaLink (410, `syncStateNotFound`,
    /// `resyncRequired`): only a full resync recovers.
    #[error("Graph refused the stored deltaLink (HTTP {status}{}): a full resync is needed", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused { status: u16, code: Option<String> },
    #[error(transparent)]
    Graph(#[from] IdpError),
}

/// Error codes that mean "start over" (a refused state token).
const RESYNC_CODES: [&str; 3] = ["syncstatenotfound", "resyncrequired", "syncstateinvalid"];

/// Reads a round from `link` (a stored deltaLink, or [`Resource::first_path`])
/// to its deltaLink. A link pointing away from the Graph URL is refused
/// before the token is sent.
pub async fn read_round(
    api: &EntraApi,
    resource: Resource,
    link: &str,
) -> Result<DeltaRound, DeltaError> {
    let endpoint = match resource {
        Resource::Users => "users.delta",
        Resource::Groups => "groups.delta",
    };
    let mut target = if link.starts_with('/') {
        link.to_owned()
    } else {
        api.path_on_graph(link)?
    };
    let mut round = DeltaRound {
        changes: Vec::new(),
        ignored: 0,
        delta_link: String::new(),
        pages: 0,
    };
    for _ in 0..MAX_PAGES {
        let answer = api
            .call_any_status(reqwest::Method::GET, &target, None, endpoint)
            .await?;
        round.pages += 1;
        if !(200..=299).contains(&answer.status) {
            return Err(refusal(answer.status, &answer.body));
        }
        let page: Value = decode(&answer.body, endpoint)?;
        let items = page
            .get("value")
            .and_then(Value::as_array)
            .ok_or_else(|| IdpError::Decode(format!("{endpoint}: no value array")))?;
        for item in items {
            match change(item) {
                Some(change) => {
                    round.changes.retain(|c| c.id != change.id);
                    round.changes.push(change);
                }
                None => round.ignored += 1,
            }
        }
        let text = |k: &str| page.get(k).and_then(Value::as_str);
        if let Some(next) = text("@odata.nextLink") {
            target = api.path_on_graph(next)?;
            continue;
        }
        let Some(delta) = text("@odata.deltaLink") else {
            return Err(IdpError::Decode(format!(
                "{endpoint}: a page with neither @odata.nextLink nor @odata.deltaLink"
            ))
            .into());
        };
        // Checked now, so a stored link is always one the token may follow.
        api.path_on_graph(delta)?;
        round.delta_link = delta.to_owned();
        return Ok(round);
    }
    Err(IdpError::Decode(format!("{endpoint}: more than {MAX_PAGES} pages")).into())
}

/// The deltaLink of "now" (`$deltatoken=latest`): no objects, one call.
pub async fn latest(api: &EntraApi, resource: Resource) -> Result<String, DeltaError> {
    let first = format!("{}&$deltatoken=latest", resource.first_path());
    Ok(read_round(api, resource, &first).await?.delta_link)
}

/// A non-success answer: a refused state token, or an ordinary error.
fn refusal(status: u16, body: &[u8]) -> DeltaError {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/code")?.as_str().map(str::to_owned))
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    let resync_code = code
        .as_deref()
        .is_some_and(|c| RESYNC_CODES.contains(&c.to_ascii_lowercase().as_str()));
    if status == 410 || (status == 400 && resync_code) {
        DeltaError::Refused { status, code }
    } else {
        DeltaError::Graph(status_error(status))
    }
}

fn change(item: &Value) -> Option<DeltaChange> {
    let id = item.get("id")?.as_str()?.trim().to_ascii_lowercase();
    super::notifications::is_object_id(&id).then(|| DeltaChange {
        id,
        removed: item.get("@removed").is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_keep_the_id_and_the_removed_marker_only() {
        let c = change(&serde_json::json!({"id": "ABCD-12", "displayName": "x"})).unwrap();
        assert_eq!(
            c,
            DeltaChange {
                id: "abcd-12".into(),
                removed: false
            }
        );
        let c = change(&serde_json::json!({"id": "abcd-12", "@removed": {"reason": "changed"}}))
            .unwrap();
        assert!(c.removed);
        assert_eq!(change(&serde_json::json!({"id": "../x"})), None);
        assert_eq!(change(&serde_json::json!({"id": 1})), None);
        assert_eq!(change(&Value::Null), None);
    }

    #[test]
    fn gone_and_sync_state_errors_mean_resync_others_do_not() {
        assert!(matches!(
            refusal(410, b""),
            DeltaError::Refused {
                status: 410,
                code: None
            }
        ));
        let body = br#"{"error":{"code":"syncStateNotFound","message":"The sync state generation is not found."}}"#;
        assert!(matches!(
            refusal(400, body),
            DeltaError::Refused { status: 400, code: Some(c) } if c == "syncStateNotFound"
        ));
        assert!(matches!(
            refusal(400, br#"{"error":{"code":"Request_BadRequest"}}"#),
            DeltaError::Graph(IdpError::Http { status: 400 })
        ));
        assert!(matches!(refusal(503, b"junk"), DeltaError::Graph(e) if e.is_transient()));
        // A code that is not a plain word is not echoed into logs.
        assert!(matches!(
            refusal(410, br#"{"error":{"code":"a b\nc"}}"#),
            DeltaError::Refused { code: None, .. }
        ));
    }
}
