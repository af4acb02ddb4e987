//! Managed-identity mode (`AZURE_STORAGE_TABLE_ENDPOINT` + the Functions
//! token endpoint) against stand-ins: the token endpoint's protocol
//! (learn.microsoft.com/azure/app-service/overview-managed-identity) and a
//! Table endpoint that records what it is sent. Azurite accepts bearer
//! tokens only over HTTPS with `--oauth`, which scripts/emulators.sh does
//! not run, so this checks the request shape, not Entra ID itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use relay_azure::{TableSettings, TableStore};

#[derive(Default)]
struct Seen {
    token_requests: Vec<BTreeMap<String, String>>,
    table_auth: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

async fn token(
    State(seen): State<Shared>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let header_ok = headers
        .get("x-identity-header")
        .is_some_and(|v| v == "rotating-identity-header");
    seen.lock().unwrap().token_requests.push(query);
    if !header_ok {
        return (StatusCode::BAD_REQUEST, "missing X-IDENTITY-HEADER".into());
    }
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    (
        StatusCode::OK,
        format!(
            r#"{{"access_token":"eyJ0eXAi.test-token","expires_on":"{expires_on}","resource":"https://storage.azure.com/","token_type":"Bearer"}}"#
        ),
    )
}

async fn tables(State(seen): State<Shared>, headers: HeaderMap) -> StatusCode {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let version_ok = headers
        .get("x-ms-version")
        .is_some_and(|v| v == "2019-02-02");
    seen.lock().unwrap().table_auth.push(auth);
    if version_ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::BAD_REQUEST
    }
}

async fn stand_in() -> (String, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route("/msi/token", get(token))
        .route("/Tables", post(tables))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn settings(base: &str, header: &str, client_id: Option<&str>) -> TableSettings {
    let mut raw: relay_core::config::RawConfig = [
        ("AZURE_STORAGE_TABLE_ENDPOINT", base.to_owned()),
        ("IDENTITY_ENDPOINT", format!("{base}/msi/token")),
        ("IDENTITY_HEADER", header.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(id) = client_id {
        raw.insert("AZURE_CLIENT_ID".into(), id.into());
    }
    TableSettings::from_config(&raw).unwrap()
}

#[tokio::test]
async fn bearer_tokens_from_the_functions_identity_endpoint_are_cached() {
    let (base, seen) = stand_in().await;
    let store = TableStore::new(settings(
        &base,
        "rotating-identity-header",
        Some("5e29463d-71da-4fe0-8e69-999b57db23b0"),
    ))
    .unwrap();
    store.create_table_if_absent().await.unwrap();
    store.create_table_if_absent().await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.token_requests.len(), 1, "the token is cached");
    let query = &seen.token_requests[0];
    assert_eq!(query["resource"], "https://storage.azure.com/");
    assert_eq!(query["api-version"], "2019-08-01");
    assert_eq!(query["client_id"], "5e29463d-71da-4fe0-8e69-999b57db23b0");
    assert_eq!(
        seen.table_auth,
        ["Bearer eyJ0eXAi.test-token", "Bearer eyJ0eXAi.test-token"]
    );
    assert!(!format!("{store:?}").contains("rotating-identity-header"));
}

#[tokio::test]
async fn a_refused_token_request_is_a_store_error_without_secrets() {
    let (base, _) = stand_in().await;
    let store = TableStore::new(settings(&base, "stale-header-value", None)).unwrap();
    let err = store.create_table_if_absent().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("IDENTITY_ENDPOINT") && text.contains("HTTP 400"),
        "{text}"
    );
    assert!(!text.contains("stale-header-value"));
}
