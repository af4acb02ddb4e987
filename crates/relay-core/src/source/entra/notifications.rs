//! Microsoft Graph change notifications (`POST /entra`): a JSON object whose
//! `value` array holds one notification per change, each with
//! `subscriptionId`, `changeType` (`created`, `updated`, `deleted`),
//! `resource` (`Users/{id}`, `Groups/{id}`), `resourceData` (`id`,
//! `@odata.type`) and `clientState`; or lifecycle notifications, which carry
//! `lifecycleEvent` (`reauthorizationRequired`, `subscriptionRemoved`,
//! `missed`) instead of a change (learn.microsoft.com/graph/api/resources/changenotification
//! and changenotificationcollection).
//!
//! A notification is a hint, not the truth: it says an object changed, not
//! how, and Graph may deliver it late, twice or out of order. So every
//! notification about one object becomes the same kind of event — "make
//! this user / this group match Graph now" — which the planner answers by
//! reading Graph (`super::plan`). The change type only labels the event
//! (and, without Graph credentials, a `deleted` still deprovisions).
//!
//! Idempotency keys: a notification has no id of its own, and two
//! notifications about one object are byte-identical whatever happened in
//! between, so a key made of the content alone would drop the second real
//! change as a duplicate. The key is the object, the change type and the
//! time the relay received the batch (`entra:users/{id}/updated@20261204T101500.123Z#0`):
//! unique per delivery, so nothing real is dropped; a redelivered batch is
//! applied again, which reads Graph and finds Duo already matching (no Duo
//! write). Within one batch, notifications about one object collapse into
//! one event (the last one's change type).

use serde_json::Value;

use crate::event::{
    Change, EventId, GroupRef, IdpEvent, Lifecycle, Parsed, Skipped, Source, UserProfile, UserRef,
};
use crate::parse_util::{ParseError, expect_source, parse_json, reject, require_well_formed, skip};
use crate::verified::Verified;

pub const SOURCE: crate::source::SourceSpec = crate::source::SourceSpec {
    source: Source::Entra,
    path: "/entra",
    verification_get: false,
    // learn.microsoft.com/graph/change-notifications-delivery-webhooks:
    // Graph validates a new notification URL with
    // `POST {url}?validationToken={token}` and expects the decoded token
    // back as text/plain with 200 within 10 seconds.
    validation_query: Some("validationToken"),
    extra_content_types: &[],
    parse,
    recognizes,
};

/// Longest object id accepted (Entra object ids are GUIDs, 36 characters).
const MAX_OBJECT_ID_BYTES: usize = 64;
/// Most notifications read from one delivery (Graph batches far fewer; a
/// body is at most 1 MiB anyway).
const MAX_ITEMS: usize = 1000;

/// A Graph notification collection: an object with a `value` array whose
/// items name a `subscriptionId`.
fn recognizes(body: &str) -> bool {
    body.contains("\"value\"") && body.contains("\"subscriptionId\"")
}

/// Every `clientState` of the delivery, one per item, for the inbound
/// check (`crate::verify`). `None` when the body is not a notification
/// collection or an item carries none (the delivery is then refused).
pub fn client_states(body: &[u8]) -> Option<Vec<String>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let items = value.get("value")?.as_array()?;
    items
        .iter()
        .take(MAX_ITEMS + 1)
        .map(|item| item.get("clientState")?.as_str().map(str::to_owned))
        .collect()
}

/// What kind of directory object a notification names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    User,
    Group,
    /// A lifecycle notification about the relay's subscription.
    Subscription(Lifecycle),
}

pub fn parse(delivery: &Verified) -> Result<Parsed, ParseError> {
    parse_at(delivery, crate::state::now_ms())
}

/// [`parse`] with the receive time (ms since the epoch) that goes into
/// the event ids.
fn parse_at(delivery: &Verified, received_ms: i64) -> Result<Parsed, ParseError> {
    expect_source(delivery, Source::Entra)?;
    let body = parse_json(delivery.body())?;
    let Some(items) = body.get("value") else {
        return Err(ParseError::WrongShape("no value array"));
    };
    let Some(items) = items.as_array() else {
        return Err(ParseError::WrongShape("value is not an array"));
    };
    if items.is_empty() {
        return Err(ParseError::EmptyBatch);
    }
    if items.len() > MAX_ITEMS {
        return Err(ParseError::WrongShape("more than 1000 notifications"));
    }
    let received = crate::time::compact_millis(received_ms);
    let mut parsed = Parsed::default();
    // One event per object: a later notification about the same object
    // replaces the earlier one in place (both would read the same state).
    let mut events: Vec<(Kind, String, IdpEvent)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match read_item(item) {
            Ok(Read::Change(kind, id, change_type, change)) => {
                let resource = match kind {
                    Kind::User => "users",
                    Kind::Group => "groups",
                    Kind::Subscription(_) => "subscriptions",
                };
                let event = IdpEvent {
                    id: EventId::with_suffix(
                        Source::Entra,
                        &format!("{resource}/{id}/{change_type}@{received}"),
                        &format!("#{index}"),
                    ),
                    source: Source::Entra,
                    event_type: format!("{resource}.{change_type}"),
                    // Graph sends no event time: ordering is by reading
                    // the current state, not by watermarks.
                    occurred_at: None,
                    change,
                };
                match events.iter_mut().find(|(k, i, _)| *k == kind && *i == id) {
                    Some(slot) => {
                        parsed.skipped.push(skip(
                            Some(slot.2.id.as_str()),
                            Some(&slot.2.event_type),
                            "superseded by a later notification about the same object in this batch",
                        ));
                        slot.2 = event;
                    }
                    None => events.push((kind, id, event)),
                }
            }
            Err(skipped) => parsed.skipped.push(skipped),
        }
    }
    parsed.events = events.into_iter().map(|(_, _, e)| e).collect();
    require_well_formed(parsed)
}

enum Read {
    Change(Kind, String, String, Change),
}

fn read_item(item: &Value) -> Result<Read, Skipped> {
    if !item.is_object() {
        return Err(reject(None, None, "notification is not an object"));
    }
    let text = |key: &str| item.get(key).and_then(Value::as_str);
    let subscription = text("subscriptionId").map(|s| crate::limits::truncated(s, 64));
    if let Some(name) = text("lifecycleEvent") {
        // Graph's lifecycle notifications: the subscription needs
        // reauthorizing (reauthorizationRequired), is gone
        // (subscriptionRemoved), or notifications were dropped (missed).
        // Each becomes an event the relay acts on with Graph
        // (`crate::idp_sync::entra::plan_lifecycle`, the pipeline's
        // catch-up for `missed`), in queue mode after the enqueue.
        let Some(lifecycle) = Lifecycle::parse(name) else {
            return Err(skip(
                subscription.as_deref(),
                Some(&crate::limits::truncated(name, 64)),
                "unknown lifecycle event",
            ));
        };
        let Some(id) = subscription
            .as_deref()
            .map(str::trim)
            .filter(|id| is_object_id(id))
        else {
            return Err(reject(
                None,
                Some(lifecycle.as_str()),
                "lifecycle notification without a subscriptionId, or not a GUID",
            ));
        };
        let id = id.to_ascii_lowercase();
        let change = Change::SubscriptionLifecycle {
            subscription: id.clone(),
            lifecycle,
        };
        return Ok(Read::Change(
            Kind::Subscription(lifecycle),
            id,
            lifecycle.as_str().to_owned(),
            change,
        ));
    }
    let Some(change_type) = text("changeType") else {
        return Err(reject(subscription.as_deref(), None, "no changeType"));
    };
    let change_type = change_type.trim().to_ascii_lowercase();
    let event_type = Some(change_type.as_str());
    let resource = text("resource").unwrap_or_default();
    let data = item.get("resourceData").filter(|d| d.is_object());
    let odata_type = data
        .and_then(|d| d.get("@odata.type"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let lower = resource.trim_start_matches('/').to_ascii_lowercase();
    // The resource path decides; `@odata.type` only when it says nothing.
    let kind = if lower.starts_with("users/") {
        Kind::User
    } else if lower.starts_with("groups/") {
        Kind::Group
    } else if odata_type.ends_with("graph.user") {
        Kind::User
    } else if odata_type.ends_with("graph.group") {
        Kind::Group
    } else {
        return Err(skip(
            subscription.as_deref(),
            event_type,
            "not a users or groups notification",
        ));
    };
    // The object id: resourceData.id, else the resource path's last segment.
    let id = data
        .and_then(|d| d.get("id"))
        .and_then(Value::as_str)
        .or_else(|| resource.rsplit('/').next().filter(|s| !s.is_empty()));
    let Some(id) = id.map(str::trim).filter(|id| is_object_id(id)) else {
        return Err(reject(
            subscription.as_deref(),
            event_type,
            "no object id (resourceData.id), or not a GUID",
        ));
    };
    let id = id.to_ascii_lowercase();
    // Delta-style payloads mark a removed object with `@removed`.
    let removed = data.is_some_and(|d| d.get("@removed").is_some());
    let deleted = removed || change_type == "deleted";
    if !deleted && !matches!(change_type.as_str(), "created" | "updated") {
        return Err(skip(
            subscription.as_deref(),
            event_type,
            crate::parse_util::UNHANDLED_EVENT_TYPE,
        ));
    }
    let change = match (kind, deleted) {
        (Kind::User, false) => Change::UserUpserted {
            user: user(&id),
            profile: UserProfile::default(),
            state: None,
        },
        (Kind::User, true) => Change::UserDeleted { user: user(&id) },
        (Kind::Group, false) => Change::GroupRenamed {
            group: group(&id),
            new_name: None,
        },
        (Kind::Group, true) => Change::GroupDeleted { group: group(&id) },
        // Change notifications name users and groups only (above).
        (Kind::Subscription(_), _) => {
            return Err(skip(
                subscription.as_deref(),
                event_type,
                "not a users or groups notification",
            ));
        }
    };
    let change_type = if removed {
        "deleted".to_owned()
    } else {
        change_type
    };
    Ok(Read::Change(kind, id, change_type, change))
}

fn user(id: &str) -> UserRef {
    UserRef {
        idp_id: Some(id.to_owned()),
        login: None,
    }
}

fn group(id: &str) -> GroupRef {
    GroupRef {
        idp_id: Some(id.to_owned()),
        name: None,
    }
}

/// An Entra object id: a GUID (hex digits and dashes, at most 64 bytes:
/// nothing else reaches a Graph URL or a Duo alias).
pub(crate) fn is_object_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_OBJECT_ID_BYTES
        && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const U1: &str = "2f1e1c0a-1111-4aaa-8bbb-000000000001";
    const G1: &str = "9a9b9c9d-2222-4ccc-8ddd-000000000001";

    fn item(change: &str, resource: &str, id: &str) -> Value {
        let odata_type = if resource.starts_with("Groups/") {
            "#Microsoft.Graph.Group"
        } else {
            "#Microsoft.Graph.User"
        };
        serde_json::json!({
            "subscriptionId": "sub-1",
            "subscriptionExpirationDateTime": "2026-12-30T00:00:00Z",
            "changeType": change,
            "resource": resource,
            "resourceData": {"@odata.type": odata_type, "@odata.id": resource, "id": id},
            "clientState": "state-0123456789abcdef",
            "tenantId": "t"
        })
    }

    fn parsed(items: Vec<Value>) -> Result<Parsed, ParseError> {
        let body = serde_json::json!({ "value": items }).to_string();
        parse_at(&Verified::for_tests(Source::Entra, body), 1_796_380_800_123)
    }

    #[test]
    fn users_and_groups_become_make_it_match_events() {
        let p = parsed(vec![
            item("created", &format!("Users/{U1}"), U1),
            item("updated", &format!("Groups/{G1}"), G1),
        ])
        .unwrap();
        assert_eq!(p.events.len(), 2);
        assert!(p.skipped.is_empty());
        let user = &p.events[0];
        assert_eq!(user.event_type, "users.created");
        assert_eq!(
            user.id.as_str(),
            format!("entra:users/{U1}/created@20261204T104000.123Z#0")
        );
        assert!(
            matches!(&user.change, Change::UserUpserted { user, .. } if user.idp_id.as_deref() == Some(U1))
        );
        assert!(
            matches!(&p.events[1].change, Change::GroupRenamed { group, new_name: None } if group.idp_id.as_deref() == Some(G1))
        );
    }

    #[test]
    fn deletes_and_removed_markers_deprovision() {
        let mut removed = item("updated", &format!("Users/{U1}"), U1);
        removed["resourceData"]["@removed"] = serde_json::json!({"reason": "deleted"});
        let p = parsed(vec![removed, item("deleted", &format!("Groups/{G1}"), G1)]).unwrap();
        assert_eq!(p.events[0].event_type, "users.deleted");
        assert!(matches!(p.events[0].change, Change::UserDeleted { .. }));
        assert!(matches!(p.events[1].change, Change::GroupDeleted { .. }));
    }

    #[test]
    fn one_event_per_object_per_batch_the_last_one_wins() {
        let r = format!("Users/{U1}");
        let p = parsed(vec![
            item("updated", &r, U1),
            item("updated", &r, &U1.to_ascii_uppercase()),
            item("deleted", &r, U1),
        ])
        .unwrap();
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].event_type, "users.deleted");
        assert_eq!(p.skipped.len(), 2);
        assert!(p.skipped.iter().all(|s| !s.malformed));
    }

    #[test]
    fn lifecycle_notifications_become_events_other_resources_are_skipped() {
        const SUB: &str = "7F105C7D-2DC5-4530-97CD-4E7AE6534C07";
        let lifecycle = |name: &str, sub: &str| serde_json::json!({"lifecycleEvent": name, "subscriptionId": sub, "clientState": "x", "resource": "users"});
        let mut other = item("updated", "me/messages/AAA", "AAA");
        other["resourceData"]["@odata.type"] = "#Microsoft.Graph.Message".into();
        let p = parsed(vec![
            lifecycle("missed", SUB),
            lifecycle("reauthorizationRequired", SUB),
            lifecycle("missed", SUB),
            lifecycle("somethingNew", SUB),
            other,
        ])
        .unwrap();
        let sub = SUB.to_ascii_lowercase();
        assert_eq!(p.events.len(), 2, "{:?}", p.events);
        assert_eq!(p.events[0].event_type, "subscriptions.missed");
        assert_eq!(
            p.events[0].id.as_str(),
            format!("entra:subscriptions/{sub}/missed@20261204T104000.123Z#2")
        );
        assert_eq!(
            p.events[1].change,
            Change::SubscriptionLifecycle {
                subscription: sub.clone(),
                lifecycle: Lifecycle::ReauthorizationRequired
            }
        );
        // The repeated `missed`, the unknown event, the message.
        assert_eq!(p.skipped.len(), 3);
        assert!(p.skipped.iter().all(|s| !s.malformed));
        // A lifecycle notification must name a GUID subscription.
        for bad in ["", "../x", "s"] {
            assert_eq!(
                parsed(vec![lifecycle("missed", bad)]),
                Err(ParseError::NoWellFormedRecord)
            );
        }
    }

    #[test]
    fn junk_is_refused() {
        assert_eq!(parsed(vec![]), Err(ParseError::EmptyBatch));
        assert_eq!(
            parsed(vec![Value::Null, serde_json::json!({})]),
            Err(ParseError::NoWellFormedRecord)
        );
        let bad_id = item("updated", "Users/../../x", "../../x");
        assert_eq!(parsed(vec![bad_id]), Err(ParseError::NoWellFormedRecord));
        let body = Verified::for_tests(Source::Entra, "[1]");
        assert!(matches!(parse(&body), Err(ParseError::WrongShape(_))));
        let body = Verified::for_tests(Source::Entra, "not json");
        assert_eq!(parse(&body), Err(ParseError::NotJson));
    }

    proptest::proptest! {
        /// Never a panic on input: any bytes, and notification-shaped JSON
        /// with arbitrary strings where ids, types and resources go.
        #[test]
        fn any_body_is_parsed_or_refused_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            items in proptest::collection::vec(
                ("\\PC{0,12}", "\\PC{0,48}", "\\PC{0,48}", proptest::prelude::any::<bool>()),
                0..6,
            ),
        ) {
            let _ = client_states(&bytes);
            let _ = parse(&Verified::for_tests(Source::Entra, bytes));
            let value: Vec<Value> = items
                .iter()
                .map(|(change, resource, id, removed)| {
                    let mut item = item(change, resource, id);
                    if *removed {
                        item["resourceData"]["@removed"] = serde_json::json!({});
                    }
                    item
                })
                .collect();
            if let Ok(p) = parsed(value) {
                for event in &p.events {
                    let id = match &event.change {
                        Change::UserUpserted { user, .. } | Change::UserDeleted { user } => user.idp_id.clone(),
                        Change::GroupRenamed { group, .. } | Change::GroupDeleted { group } => group.idp_id.clone(),
                        other => panic!("unexpected change {other:?}"),
                    };
                    // Only GUID-shaped ids reach Graph URLs and Duo aliases.
                    proptest::prop_assert!(id.as_deref().is_some_and(is_object_id));
                }
            }
        }
    }

    proptest::proptest! {
        /// Lifecycle notifications with arbitrary event names and
        /// subscription ids: never a panic, and only a known event about a
        /// GUID-shaped subscription becomes an event.
        #[test]
        fn any_lifecycle_notification_is_parsed_or_refused_without_panicking(
            items in proptest::collection::vec(
                (
                    proptest::prop_oneof![
                        proptest::strategy::Just("missed".to_owned()),
                        proptest::strategy::Just("ReauthorizationRequired ".to_owned()),
                        "\\PC{0,24}",
                    ],
                    proptest::prop_oneof!["[0-9a-fA-F-]{1,40}", "\\PC{0,48}"],
                ),
                1..6,
            ),
        ) {
            let value: Vec<Value> = items
                .iter()
                .map(|(event, sub)| serde_json::json!({"lifecycleEvent": event, "subscriptionId": sub, "clientState": "x"}))
                .collect();
            if let Ok(p) = parsed(value) {
                for event in &p.events {
                    let Change::SubscriptionLifecycle { subscription, lifecycle } = &event.change else {
                        panic!("unexpected change {:?}", event.change);
                    };
                    proptest::prop_assert!(is_object_id(subscription));
                    proptest::prop_assert!(Lifecycle::parse(lifecycle.as_str()) == Some(*lifecycle));
                }
            }
        }
    }

    #[test]
    fn client_states_are_one_per_item_or_none() {
        let body = br#"{"value":[{"clientState":"a"},{"clientState":"b"}]}"#;
        assert_eq!(client_states(body), Some(vec!["a".into(), "b".into()]));
        assert_eq!(
            client_states(br#"{"value":[{"clientState":"a"},{}]}"#),
            None
        );
        assert_eq!(client_states(br#"{"value":[{"clientState":1}]}"#), None);
        assert_eq!(client_states(b"[]"), None);
        assert_eq!(client_states(b"junk"), None);
        assert_eq!(client_states(br#"{"value":[]}"#), Some(vec![]));
    }
}
