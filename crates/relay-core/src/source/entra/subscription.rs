//! The relay's Graph subscriptions (`idp-duo-relay entra subscribe`): one
//! on `users` and one on `groups`, change types `created,updated,deleted`,
//! notifications and lifecycle notifications to the relay's `/entra`, with
//! `ENTRA_CLIENT_STATE` as `clientState`
//! (learn.microsoft.com/graph/api/subscription-post-subscriptions).
//!
//! Idempotent, so a schedule can run it: a subscription of the app on the
//! same resource and URL is renewed (`PATCH` of its `expirationDateTime`,
//! which also reauthorizes it), a missing one (never made, expired, or
//! removed: Graph's `subscriptionRemoved`) is created — and Graph then
//! validates the URL with the handshake (`POST /entra?validationToken=…`),
//! so the relay must be reachable and configured when this runs.
//!
//! Lifecycle notifications (learn.microsoft.com/graph/change-notifications-lifecycle-events;
//! microsoftgraph/microsoft-graph-docs-contrib,
//! `concepts/change-notifications-lifecycle-events.md`): Graph sends
//! `reauthorizationRequired` when the subscription's access token or the
//! subscription itself is about to expire, or the app lost its permission;
//! the app answers with *either* `POST /subscriptions/{id}/reauthorize`
//! (no new expiry) or `PATCH /subscriptions/{id}` with a new
//! `expirationDateTime`, which reauthorizes and renews in one call — and
//! must not send both within 10 minutes. The relay sends the PATCH
//! ([`renew`]), as `entra subscribe` does. `subscriptionRemoved` means the
//! subscription is gone: [`ensure_subscriptions`] re-creates it, which
//! needs the relay's notification URL (`ENTRA_NOTIFICATION_URL`). That page
//! lists `subscriptionRemoved` and `missed` for Outlook and Teams resources
//! only, so for users and groups only `reauthorizationRequired` is expected
//! today; the relay handles all three.
//!
//! Lifetime: subscriptions on users and groups live at most 41,760 minutes
//! (29 days) — a figure from third-party documentation that quotes
//! Microsoft's table (we could not read that page here). The relay asks for
//! 28 days and renews on every run, so a daily run keeps 27 days of margin.

use serde::Deserialize;
use serde_json::json;

use super::api::EntraApi;
use crate::idp::{IdpError, decode};

/// What the relay subscribes to.
pub const RESOURCES: [&str; 2] = ["users", "groups"];
/// The change types of each subscription.
pub const CHANGE_TYPES: &str = "created,updated,deleted";
/// Requested lifetime: under the 29-day maximum for users and groups.
pub const LIFETIME_MS: i64 = 28 * 24 * 60 * 60 * 1000;

/// What a run did to one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionOutcome {
    pub resource: String,
    pub id: String,
    /// `created`, `renewed`, `kept` (far enough from its expiry that a
    /// scheduled run left it alone: [`ensure_subscriptions_within`]), or
    /// `deleted` (replaced by a rotation: [`recreate_subscriptions`]).
    pub action: &'static str,
    /// RFC 3339.
    pub expires: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    id: String,
    resource: String,
    notification_url: String,
    #[serde(default)]
    expiration_date_time: Option<String>,
}

#[derive(Deserialize)]
struct Subscriptions {
    value: Vec<Subscription>,
}

/// The relay's notification URL (`ENTRA_NOTIFICATION_URL`, `entra
/// subscribe --url`): https (Graph delivers only to https), or http to a
/// loopback address (tests). `Err`: why not.
pub fn check_notification_url(url: &str) -> Result<String, &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "must be a URL")?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(url.to_owned()),
        "http" if loopback => Ok(url.to_owned()),
        _ => Err("must be https (Graph delivers only to https)"),
    }
}

/// Renews (and so reauthorizes) subscription `id`: `PATCH` of its
/// `expirationDateTime` to [`LIFETIME_MS`] after `now_ms`, which it
/// answers. [`IdpError::NotFound`]: Graph no longer has it.
pub async fn renew(api: &EntraApi, id: &str, now_ms: i64) -> Result<String, IdpError> {
    let expires = crate::time::rfc3339_millis(now_ms + LIFETIME_MS);
    let path = format!("/v1.0/subscriptions/{}", crate::idp::encode_component(id));
    api.call(
        reqwest::Method::PATCH,
        &path,
        Some(&json!({ "expirationDateTime": expires })),
        "subscriptions.renew",
    )
    .await?;
    Ok(expires)
}

/// Creates or renews the relay's subscriptions on `users` and `groups`
/// for `notification_url` (the relay's `https://…/entra`), expiring
/// [`LIFETIME_MS`] after `now_ms`. Stops at the first failure (the
/// subscriptions done before it stay done; a rerun finishes the rest).
pub async fn ensure_subscriptions(
    api: &EntraApi,
    notification_url: &str,
    client_state: &str,
    now_ms: i64,
) -> Result<Vec<SubscriptionOutcome>, IdpError> {
    ensure(api, notification_url, client_state, now_ms, None).await
}

/// [`ensure_subscriptions`] for a schedule: a subscription that still has
/// more than `margin_ms` to live is kept as it is (one listing call and no
/// write, so a run every few minutes costs Graph one request); one closer
/// to its expiry is renewed, a missing one created.
pub async fn ensure_subscriptions_within(
    api: &EntraApi,
    notification_url: &str,
    client_state: &str,
    now_ms: i64,
    margin_ms: i64,
) -> Result<Vec<SubscriptionOutcome>, IdpError> {
    ensure(api, notification_url, client_state, now_ms, Some(margin_ms)).await
}

async fn ensure(
    api: &EntraApi,
    notification_url: &str,
    client_state: &str,
    now_ms: i64,
    margin_ms: Option<i64>,
) -> Result<Vec<SubscriptionOutcome>, IdpError> {
    let expires = crate::time::rfc3339_millis(now_ms + LIFETIME_MS);
    let listed = api
        .call(
            reqwest::Method::GET,
            "/v1.0/subscriptions",
            None,
            "subscriptions.list",
        )
        .await?;
    let existing: Subscriptions = decode(&listed.body, "Graph subscriptions")?;
    let mut outcomes = Vec::new();
    for resource in RESOURCES {
        let mine = existing.value.iter().find(|s| {
            s.notification_url == notification_url
                && s.resource
                    .trim_start_matches('/')
                    .eq_ignore_ascii_case(resource)
        });
        if let Some(sub) = mine {
            let current = sub
                .expiration_date_time
                .as_deref()
                .and_then(|t| crate::time::parse_rfc3339_ms(t).map(|ms| (t, ms)));
            if let (Some(margin), Some((text, at))) = (margin_ms, current)
                && at - now_ms > margin
            {
                outcomes.push(SubscriptionOutcome {
                    resource: resource.to_owned(),
                    id: sub.id.clone(),
                    action: "kept",
                    expires: text.to_owned(),
                });
                continue;
            }
            match renew(api, &sub.id, now_ms).await {
                Ok(_) => {
                    outcomes.push(SubscriptionOutcome {
                        resource: resource.to_owned(),
                        id: sub.id.clone(),
                        action: "renewed",
                        expires: expires.clone(),
                    });
                    continue;
                }
                // Expired or removed between the listing and the renewal.
                Err(IdpError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        outcomes.push(create(api, notification_url, client_state, resource, &expires).await?);
    }
    Ok(outcomes)
}

/// Creates the subscription on `resource` (Graph validates the URL first).
async fn create(
    api: &EntraApi,
    notification_url: &str,
    client_state: &str,
    resource: &str,
    expires: &str,
) -> Result<SubscriptionOutcome, IdpError> {
    let body = json!({
        "changeType": CHANGE_TYPES,
        "notificationUrl": notification_url,
        "lifecycleNotificationUrl": notification_url,
        "resource": resource,
        "expirationDateTime": expires,
        "clientState": client_state,
    });
    let created = api
        .call(
            reqwest::Method::POST,
            "/v1.0/subscriptions",
            Some(&body),
            "subscriptions.create",
        )
        .await?;
    let sub: Subscription = decode(&created.body, "Graph subscription")?;
    Ok(SubscriptionOutcome {
        resource: resource.to_owned(),
        id: sub.id,
        action: "created",
        expires: expires.to_owned(),
    })
}

/// Rotates the subscriptions' `clientState` to `client_state`: Graph's
/// update changes only a subscription's expiry and URL, never its
/// `clientState` (learn.microsoft.com/graph/api/resources/subscription,
/// "Methods": Update), so the relay creates a new subscription on each
/// resource with the new value, then deletes the ones it had at the same
/// URL (a 404: already gone). New before old: for a moment both deliver,
/// and the relay applies the second notification of a change as an
/// unchanged duplicate; the other order could lose a change. During the
/// rotation `ENTRA_CLIENT_STATE` must accept both values (`"new,old"`).
/// Stops at the first failure: a rerun creates again (one more new
/// subscription on that resource, deleted by the next rotation or left to
/// expire) and deletes what is left.
pub async fn recreate_subscriptions(
    api: &EntraApi,
    notification_url: &str,
    client_state: &str,
    now_ms: i64,
) -> Result<Vec<SubscriptionOutcome>, IdpError> {
    let expires = crate::time::rfc3339_millis(now_ms + LIFETIME_MS);
    let listed = api
        .call(
            reqwest::Method::GET,
            "/v1.0/subscriptions",
            None,
            "subscriptions.list",
        )
        .await?;
    let existing: Subscriptions = decode(&listed.body, "Graph subscriptions")?;
    let mut outcomes = Vec::new();
    for resource in RESOURCES {
        outcomes.push(create(api, notification_url, client_state, resource, &expires).await?);
    }
    for old in existing.value.iter().filter(|s| {
        s.notification_url == notification_url
            && RESOURCES
                .iter()
                .any(|r| s.resource.trim_start_matches('/').eq_ignore_ascii_case(r))
    }) {
        let path = format!(
            "/v1.0/subscriptions/{}",
            crate::idp::encode_component(&old.id)
        );
        match api
            .call(reqwest::Method::DELETE, &path, None, "subscriptions.delete")
            .await
        {
            Ok(_) | Err(IdpError::NotFound) => {}
            Err(e) => return Err(e),
        }
        outcomes.push(SubscriptionOutcome {
            resource: old.resource.trim_start_matches('/').to_owned(),
            id: old.id.clone(),
            action: "deleted",
            expires: old.expiration_date_time.clone().unwrap_or_default(),
        });
    }
    Ok(outcomes)
}
