//! Queue mode on GCP against the Pub/Sub emulator (`RELAY_TEST_PUBSUB_URL`)
//! and the Firestore emulator, with duo-sim as Duo and the real `relay-gcp`
//! binary.
//!
//! The emulator pushes without an OIDC token, and the worker route accepts
//! nothing without one, so its push subscription points at [`AuthProxy`]:
//! it adds `Authorization: Bearer <token>` — a JWT signed with a test RSA
//! key, whose public half the relay fetches from a JWKS stand-in
//! (`RELAY_PUSH_JWKS_URL`) as it fetches Google's — and forwards the push
//! unchanged. The emulator also sends no `deliveryAttempt`, so these runs
//! exercise the worker's own delivery count.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use common::{Backend, RelayProcess};
use duo_sim::{DuoSim, Faults};
use relay_core::event::{Change, EventId, IdpEvent, Source, UserProfile, UserRef, UserState};
use relay_core::queue::{DeadLetter, QueuedEvent};
use serde_json::{Value, json};

const OKTA_SECRET: &str = "gcp-okta-hook-secret-0123456789abcdef";
const AUDIENCE: &str = "idp-duo-relay:test:pubsub-push";
const PUSH_SA: &str = "relay-push@relay-test.iam.gserviceaccount.com";
const KID: &str = "test-key-1";

// ------------------------------------------------------------------ tokens

/// An RSA key and the JWTs it signs, as Google signs push tokens.
struct Signer {
    key: KeyPair,
    kid: String,
}

/// (n, e) of a DER `RSAPublicKey` (SEQUENCE { INTEGER n, INTEGER e }).
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1];
        if first < 0x80 {
            (tag, at + 2, usize::from(first))
        } else {
            let n = usize::from(first & 0x7f);
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (tag, at + 2 + n, len)
        }
    }
    let (tag, body, _) = read(der, 0);
    assert_eq!(tag, 0x30);
    let (tag, n_at, n_len) = read(der, body);
    assert_eq!(tag, 0x02);
    let (tag, e_at, e_len) = read(der, n_at + n_len);
    assert_eq!(tag, 0x02);
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    (
        strip(&der[n_at..n_at + n_len]),
        strip(&der[e_at..e_at + e_len]),
    )
}

impl Signer {
    fn new(kid: &str) -> Self {
        Self {
            key: KeyPair::generate(KeySize::Rsa2048).unwrap(),
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        let (n, e) = rsa_components(self.key.public_key().as_ref());
        json!({
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let head = json!({ "alg": "RS256", "kid": self.kid, "typ": "JWT" });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(head.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The claims of Google's push token for the test subscription.
fn good_claims() -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "1234567890",
        "email": PUSH_SA,
        "email_verified": true,
        "sub": "1234567890",
        "iat": now(),
        "exp": now() + 3600,
    })
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Serves the signer's public key as Google serves its certs.
async fn jwks_stand_in(signer: &Signer) -> String {
    let body = json!({ "keys": [signer.jwk()] }).to_string();
    let router = Router::new().route(
        "/oauth2/v3/certs",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "public, max-age=3600"),
                    ],
                    body,
                )
            }
        }),
    );
    format!("http://{}/oauth2/v3/certs", serve(router).await)
}

/// Between the emulator's push and the relay: adds the token.
struct AuthProxy {
    signer: Arc<Signer>,
    target: String,
    http: reqwest::Client,
}

async fn proxy_push(State(proxy): State<Arc<AuthProxy>>, body: Bytes) -> impl IntoResponse {
    let token = proxy.signer.sign(&good_claims());
    let answer = proxy
        .http
        .post(&proxy.target)
        .header("content-type", "application/json")
        .bearer_auth(token)
        .body(body)
        .send()
        .await;
    match answer {
        Ok(answer) => StatusCode::from_u16(answer.status().as_u16()).unwrap(),
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

// ---------------------------------------------------------------- emulator

/// The Pub/Sub emulator's host:port, or `None` (skipped) when none runs.
fn pubsub_emulator() -> Option<String> {
    relay_tests::emulator_url("RELAY_TEST_PUBSUB_URL", "the Pub/Sub emulator")
        .map(|url| url.trim_start_matches("http://").to_owned())
}

/// Admin calls on the emulator (what Terraform creates in a project).
struct Emulator {
    base: String,
    project: String,
    http: reqwest::Client,
}

impl Emulator {
    async fn put(&self, path: &str, body: Value) {
        let answer = self
            .http
            .put(format!("{}/projects/{}/{path}", self.base, self.project))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = answer.status();
        assert!(
            status.is_success(),
            "PUT {path}: {status} {}",
            answer.text().await.unwrap()
        );
    }

    fn name(&self, kind: &str, id: &str) -> String {
        format!("projects/{}/{kind}/{id}", self.project)
    }

    async fn pull(&self, subscription: &str) -> Vec<Value> {
        let answer = self
            .http
            .post(format!(
                "{}/projects/{}/subscriptions/{subscription}:pull",
                self.base, self.project
            ))
            .header("content-type", "application/json")
            .body(json!({ "maxMessages": 100, "returnImmediately": true }).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        answer["receivedMessages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    async fn publish(&self, topic: &str, data: &str, ordering_key: &str) {
        let answer = self
            .http
            .post(format!("{}/projects/{}/topics/{topic}:publish", self.base, self.project))
            .header("content-type", "application/json")
            .body(
                json!({ "messages": [{ "data": BASE64.encode(data), "orderingKey": ordering_key }] })
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
}

/// Everything a queue-mode test needs, started.
struct QueueEnv {
    relay: RelayProcess,
    env: Vec<(String, String)>,
    emulator: Emulator,
    sim: DuoSim,
    _backend: Backend,
}

impl QueueEnv {
    /// `push` = false: no push subscription (the route is driven by hand).
    async fn start(push: bool, extra: &[(&str, &str)]) -> Option<Self> {
        let host = pubsub_emulator()?;
        let backend = Backend::emulator().await?;
        let sim = DuoSim::start().await;
        let signer = Arc::new(Signer::new(KID));
        let jwks = jwks_stand_in(&signer).await;
        let emulator = Emulator {
            base: format!("http://{host}/v1"),
            project: backend.project.clone(),
            http: reqwest::Client::new(),
        };
        for topic in ["relay-events", "relay-dead-letter"] {
            emulator.put(&format!("topics/{topic}"), json!({})).await;
        }
        emulator
            .put(
                "subscriptions/relay-dead-letter",
                json!({ "topic": emulator.name("topics", "relay-dead-letter"), "ackDeadlineSeconds": 60 }),
            )
            .await;
        // What was published, for the tests to look at.
        emulator
            .put(
                "subscriptions/audit",
                json!({ "topic": emulator.name("topics", "relay-events"), "enableMessageOrdering": true }),
            )
            .await;
        let cfg = sim.config();
        let mut env = backend.env();
        env.extend(
            [
                ("DUO_API_HOST", cfg.host.as_str()),
                ("DUO_IKEY", cfg.ikey.as_str()),
                ("DUO_SKEY", cfg.skey.as_str()),
                ("OKTA_AUTH_SECRET", OKTA_SECRET),
                ("RELAY_MODE", "queue"),
                ("PUBSUB_EMULATOR_HOST", host.as_str()),
                ("RELAY_PUBSUB_TOPIC", "relay-events"),
                ("RELAY_PUBSUB_DEAD_LETTER_TOPIC", "relay-dead-letter"),
                ("RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION", "relay-dead-letter"),
                ("RELAY_PUSH_AUDIENCE", AUDIENCE),
                ("RELAY_PUSH_SERVICE_ACCOUNT", PUSH_SA),
                ("RELAY_PUSH_JWKS_URL", jwks.as_str()),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env.push(("DUO_API_URL".into(), sim.base_url()));
        env.push(("DUO_RATE_PER_MINUTE".into(), "off".into()));
        for (k, v) in extra {
            env.push(((*k).to_owned(), (*v).to_owned()));
        }
        let mut relay = RelayProcess::spawn(&env);
        relay.wait_healthy().await;
        if push {
            let proxy = Arc::new(AuthProxy {
                signer,
                target: relay.url("/pubsub/push"),
                http: reqwest::Client::new(),
            });
            let addr = serve(
                Router::new()
                    .route("/push", post(proxy_push))
                    .with_state(proxy),
            )
            .await;
            // As Terraform configures it: ordering, backoff, a dead-letter
            // policy as the backstop (the emulator's minimum is 5 attempts).
            emulator
                .put(
                    "subscriptions/relay-worker",
                    json!({
                        "topic": emulator.name("topics", "relay-events"),
                        "pushConfig": { "pushEndpoint": format!("http://{addr}/push") },
                        "enableMessageOrdering": true,
                        "ackDeadlineSeconds": 30,
                        "retryPolicy": { "minimumBackoff": "1s", "maximumBackoff": "2s" },
                        "deadLetterPolicy": {
                            "deadLetterTopic": emulator.name("topics", "relay-dead-letter"),
                            "maxDeliveryAttempts": 10
                        }
                    }),
                )
                .await;
        }
        Some(Self {
            relay,
            env,
            emulator,
            sim,
            _backend: backend,
        })
    }

    async fn deliver_okta(&self) -> u16 {
        reqwest::Client::new()
            .post(self.relay.url("/okta"))
            .header("Authorization", OKTA_SECRET)
            .header("Content-Type", "application/json")
            .body(common::okta_fixture())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// `relay-gcp dlq <args>`: (exit code, stdout + stderr).
    async fn dlq(&self, args: &[&str]) -> (i32, String) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_relay-gcp"));
        command
            .arg("dlq")
            .args(args)
            .env_clear()
            .envs(self.env.iter().cloned());
        relay_tests::run_to_end(command).await
    }

    /// The summary lines (`message: "event"`) so far.
    fn summaries(&self) -> Vec<Value> {
        relay_tests::summary_lines(&self.relay.output())
    }

    /// Waits (bounded) until `done` holds.
    async fn wait_for(&self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what}: not within 30 s\n{}",
                self.relay.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn user(idp_id: &str, login: &str) -> UserRef {
    UserRef {
        idp_id: Some(idp_id.into()),
        login: Some(login.into()),
    }
}

fn queued(id: &str, at: &str, change: Change) -> QueuedEvent {
    QueuedEvent::new(IdpEvent {
        id: EventId::new(Source::Okta, id),
        source: Source::Okta,
        event_type: "test.event".into(),
        occurred_at: Some(at.into()),
        change,
    })
}

fn create(id: &str, at: &str, u: &UserRef) -> QueuedEvent {
    queued(
        id,
        at,
        Change::UserUpserted {
            user: u.clone(),
            profile: UserProfile {
                login: u.login.clone(),
                email: u.login.clone(),
                ..UserProfile::default()
            },
            state: Some(UserState::Active),
        },
    )
}

fn set_state(id: &str, at: &str, u: &UserRef, state: UserState) -> QueuedEvent {
    queued(
        id,
        at,
        Change::UserStateChanged {
            user: u.clone(),
            state,
        },
    )
}

/// A push body as Pub/Sub sends it.
fn push_body(text: &str, message_id: &str, attempt: Option<u32>) -> String {
    let mut body = json!({
        "message": { "data": BASE64.encode(text), "messageId": message_id, "attributes": {} },
        "subscription": "projects/p/subscriptions/relay-worker",
    });
    if let Some(n) = attempt {
        body["deliveryAttempt"] = json!(n);
    }
    body.to_string()
}

// ------------------------------------------------------------------- tests

/// `PushAuth::verify` itself, with no emulator: each forged, tampered or
/// misaddressed token is refused for its own reason, and the controls
/// (Google's token for us; a minute of skew; `aud` as a list; the bare
/// issuer) pass. Would fail if the signature or any claim went unchecked.
#[tokio::test]
async fn push_tokens_are_verified_without_an_emulator() {
    use axum::http::HeaderMap;
    use relay_gcp::push::{AuthFailure, PushAuth};

    let signer = Signer::new(KID);
    let auth = PushAuth::new(AUDIENCE, PUSH_SA, &jwks_stand_in(&signer).await);
    let bearer = |token: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        headers
    };
    let with = |field: &str, value: Value| {
        let mut claims = good_claims();
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(field);
        } else {
            claims[field] = value;
        }
        signer.sign(&claims)
    };
    let good = signer.sign(&good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    // Another subject under the original signature.
    let mut forged_claims = good_claims();
    forged_claims["email"] = json!("attacker@evil.iam.gserviceaccount.com");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(forged_claims.to_string()),
        parts[2]
    );
    // HS256 keyed with the published RSA key (algorithm confusion).
    let hs_signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "HS256", "kid": KID }).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    let hs_key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        signer.key.public_key().as_ref(),
    );
    let hs_tag = aws_lc_rs::hmac::sign(&hs_key, hs_signed.as_bytes());
    let hs256 = format!("{hs_signed}.{}", URL_SAFE_NO_PAD.encode(hs_tag.as_ref()));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "kid": KID }).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    let t = now();
    let cases: Vec<(&str, String, Result<(), AuthFailure>)> = vec![
        ("Google's token for us", good.clone(), Ok(())),
        (
            "exp passed 30 s ago (skew)",
            with("exp", json!(t - 30)),
            Ok(()),
        ),
        (
            "aud as a list",
            with("aud", json!(["someone-else", AUDIENCE])),
            Ok(()),
        ),
        (
            "bare issuer",
            with("iss", json!("accounts.google.com")),
            Ok(()),
        ),
        (
            "wrong key, known kid",
            Signer::new(KID).sign(&good_claims()),
            Err(AuthFailure::Signature),
        ),
        (
            "unknown kid",
            Signer::new("someone-elses-key").sign(&good_claims()),
            Err(AuthFailure::UnknownKey),
        ),
        ("payload swapped", tampered, Err(AuthFailure::Signature)),
        (
            "signature cut",
            format!("{}.{}.", parts[0], parts[1]),
            Err(AuthFailure::Signature),
        ),
        (
            "HS256 with the public key",
            hs256,
            Err(AuthFailure::Algorithm),
        ),
        ("alg none", none, Err(AuthFailure::Malformed)),
        (
            "garbage",
            "not.a.jwt".to_owned(),
            Err(AuthFailure::Malformed),
        ),
        (
            "expired 2 min ago",
            with("exp", json!(t - 120)),
            Err(AuthFailure::Expired),
        ),
        (
            "no exp",
            with("exp", Value::Null),
            Err(AuthFailure::Malformed),
        ),
        (
            "exp a string",
            with("exp", json!((t + 3600).to_string())),
            Err(AuthFailure::Malformed),
        ),
        (
            "issued in the future",
            with("iat", json!(t + 3600)),
            Err(AuthFailure::Expired),
        ),
        (
            "other issuer",
            with("iss", json!("https://evil.example.com")),
            Err(AuthFailure::Issuer),
        ),
        (
            "no issuer",
            with("iss", Value::Null),
            Err(AuthFailure::Malformed),
        ),
        (
            "other audience",
            with("aud", json!("https://relay.example.run.app/pubsub/push")),
            Err(AuthFailure::Audience),
        ),
        (
            "no audience",
            with("aud", Value::Null),
            Err(AuthFailure::Malformed),
        ),
        (
            "other service account",
            with("email", json!("attacker@evil.iam.gserviceaccount.com")),
            Err(AuthFailure::ServiceAccount),
        ),
        (
            "email not verified",
            with("email_verified", json!(false)),
            Err(AuthFailure::EmailNotVerified),
        ),
    ];
    for (what, token, expected) in cases {
        assert_eq!(auth.verify(&bearer(&token)).await, expected, "{what}");
    }
    assert_eq!(
        auth.verify(&HeaderMap::new()).await,
        Err(AuthFailure::MissingToken)
    );
    // Google's keys out of reach, none cached: 503 (KeysUnavailable), not 401.
    let closed = format!("http://127.0.0.1:{}/certs", common::free_port());
    let unreachable = PushAuth::new(AUDIENCE, PUSH_SA, &closed);
    assert_eq!(
        unreachable.verify(&bearer(&good)).await,
        Err(AuthFailure::KeysUnavailable)
    );
}

#[tokio::test]
async fn the_push_route_refuses_every_request_without_googles_token_for_us() {
    let Some(env) = QueueEnv::start(false, &[]).await else {
        return;
    };
    let http = reqwest::Client::new();
    let url = env.relay.url("/pubsub/push");
    let event = create(
        "auth-1",
        "2026-03-12T10:00:00Z",
        &user("00uAUTH1", "auth.one@example.com"),
    );
    let body = push_body(&event.to_json(), "1", Some(1));
    let intruder = Signer::new(KID); // same key id, another key
    let stranger = Signer::new("someone-elses-key");
    let mut cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("not bearer", Some("Basic dXNlcjpwYXNz".into())),
        (
            "wrong key, known kid",
            Some(format!("Bearer {}", intruder.sign(&good_claims()))),
        ),
        (
            "unknown kid",
            Some(format!("Bearer {}", stranger.sign(&good_claims()))),
        ),
    ];
    // An unsigned token ("alg": "none") with perfect claims.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "kid": KID }).to_string()),
        URL_SAFE_NO_PAD.encode(good_claims().to_string())
    );
    cases.push(("alg none", Some(format!("Bearer {none}"))));
    for (what, authorization) in cases {
        let mut request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{what}");
        assert!(answer.text().await.unwrap().is_empty(), "{what}");
    }
    assert_eq!(env.sim.total_calls(), 0, "a refused push reached Duo");
    assert!(env.summaries().is_empty(), "a refused push was processed");
    // In sync mode the route does not exist at all; here the other routes
    // are unaffected.
    let health = http.get(env.relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let output = env.relay.output();
    assert!(output.contains("pubsub push refused"), "{output}");
    assert!(!output.contains(OKTA_SECRET));
}

/// The same route with correctly signed tokens whose claims are wrong.
#[tokio::test]
async fn signed_tokens_with_wrong_claims_are_refused_and_a_good_one_applies() {
    let Some(host) = pubsub_emulator() else {
        return;
    };
    let Some(backend) = Backend::emulator().await else {
        return;
    };
    let sim = DuoSim::start().await;
    let signer = Signer::new(KID);
    let jwks = jwks_stand_in(&signer).await;
    let cfg = sim.config();
    let mut env = backend.env();
    for (k, v) in [
        ("DUO_API_HOST", cfg.host.clone()),
        ("DUO_IKEY", cfg.ikey.clone()),
        ("DUO_SKEY", cfg.skey.clone()),
        ("DUO_API_URL", sim.base_url()),
        ("OKTA_AUTH_SECRET", OKTA_SECRET.to_owned()),
        ("RELAY_MODE", "queue".to_owned()),
        ("PUBSUB_EMULATOR_HOST", host.clone()),
        ("RELAY_PUBSUB_TOPIC", "relay-events".to_owned()),
        (
            "RELAY_PUBSUB_DEAD_LETTER_TOPIC",
            "relay-dead-letter".to_owned(),
        ),
        ("RELAY_PUSH_AUDIENCE", AUDIENCE.to_owned()),
        ("RELAY_PUSH_SERVICE_ACCOUNT", PUSH_SA.to_owned()),
        ("RELAY_PUSH_JWKS_URL", jwks),
    ] {
        env.push((k.to_owned(), v));
    }
    let mut relay = RelayProcess::spawn(&env);
    relay.wait_healthy().await;
    let http = reqwest::Client::new();
    let u = user("00uCLAIMS1", "claims.one@example.com");
    let body = push_body(
        &create("claims-1", "2026-03-12T10:00:00Z", &u).to_json(),
        "9",
        Some(1),
    );
    let post = |token: String| {
        http.post(relay.url("/pubsub/push"))
            .header("content-type", "application/json")
            .bearer_auth(token)
            .body(body.clone())
            .send()
    };
    for (field, value) in [
        ("aud", json!("https://relay.example.run.app/pubsub/push")),
        ("email", json!("attacker@evil.iam.gserviceaccount.com")),
        ("iss", json!("https://evil.example.com")),
        ("exp", json!(now() - 3600)),
        ("email_verified", json!(false)),
    ] {
        let mut claims = good_claims();
        claims[field] = value;
        let answer = post(signer.sign(&claims)).await.unwrap();
        assert_eq!(answer.status(), 401, "{field}");
    }
    assert_eq!(sim.total_calls(), 0);
    // The positive control: Google's token for us applies the event.
    let answer = post(signer.sign(&good_claims())).await.unwrap();
    assert_eq!(answer.status(), 204, "{}", relay.output());
    assert_eq!(
        sim.user_by_username("claims.one@example.com")
            .unwrap()
            .status,
        "active"
    );
}

#[tokio::test]
async fn accepted_events_flow_through_pubsub_push_to_duo_once() {
    let Some(env) = QueueEnv::start(true, &[]).await else {
        return;
    };
    assert_eq!(env.deliver_okta().await, 200);
    // The Okta retry of the same delivery: published again, applied once.
    assert_eq!(env.deliver_okta().await, 200);
    env.wait_for("both copies processed", |e| e.summaries().len() == 2)
        .await;
    let jane = env.sim.user_by_username("jane.doe@example.com").unwrap();
    assert_eq!(jane.status, "active");
    assert_eq!(env.sim.call_count("POST /admin/v1/users"), 1);
    let outcomes: Vec<String> = env
        .summaries()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outcomes, ["applied", "duplicate"]);
    // Published with the subject as ordering key and the event id.
    let published = env.emulator.pull("audit").await;
    assert_eq!(published.len(), 2);
    let data = BASE64
        .decode(published[0]["message"]["data"].as_str().unwrap())
        .unwrap();
    let message = QueuedEvent::from_json(std::str::from_utf8(&data).unwrap()).unwrap();
    assert_eq!(
        published[0]["message"]["orderingKey"],
        message.group_id().as_str()
    );
    assert_eq!(
        published[0]["message"]["attributes"]["event_id"],
        "okta:a1b2c3d4-0001-11f0-9c2e-000000000001"
    );
    assert!(env.emulator.pull("relay-dead-letter").await.is_empty());
}

#[tokio::test]
async fn transient_failures_retry_then_dead_letter_with_the_reason_and_replay() {
    let Some(env) = QueueEnv::start(true, &[("RELAY_QUEUE_MAX_ATTEMPTS", "3")]).await else {
        return;
    };
    env.sim.set_faults(Faults {
        rate_500: 1.0,
        ..Faults::default()
    });
    assert_eq!(env.deliver_okta().await, 200);
    // Attempts 1 and 2 are nacked (503) and redelivered with backoff; the
    // third gives up: the dead letter is published and the push acked.
    env.wait_for("the dead letter", |e| {
        e.relay.output().contains("\"message\":\"dead_letter\"")
    })
    .await;
    let attempts: Vec<Value> = env
        .relay
        .output()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["message"] == "will retry")
        .collect();
    assert_eq!(attempts.len(), 2, "{}", env.relay.output());
    assert!(env.sim.user_by_username("jane.doe@example.com").is_none());

    let (code, out) = env.dlq(&["list", "--json"]).await;
    assert_eq!(code, 0, "{out}");
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["attempts"], 3);
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 3 attempts"),
        "{out}"
    );
    assert_eq!(
        listed[0]["event_id"],
        "okta:a1b2c3d4-0001-11f0-9c2e-000000000001"
    );
    let letter: DeadLetter = serde_json::from_value(listed[0].clone()).unwrap();
    assert!(QueuedEvent::from_json(&letter.body).is_ok());
    // Listing gave it back: it is still there.
    let (code, out) = env.dlq(&["list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("1 dead letter(s)"), "{out}");

    // Duo is back: the replay publishes it to the events topic again, the
    // push applies it, and the dead letter is gone.
    env.sim.set_faults(Faults::default());
    let id = listed[0]["id"].as_str().unwrap();
    let (code, out) = env.dlq(&["replay", id]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 replayed, 0 failed"), "{out}");
    env.wait_for("the replayed event applied", |e| {
        e.sim.user_by_username("jane.doe@example.com").is_some()
    })
    .await;
    let (code, out) = env.dlq(&["list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("0 dead letter(s)"), "{out}");
    let (code, out) = env.dlq(&["replay", "no-such-message"]).await;
    assert_eq!(code, 1, "{out}");
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_at_once_and_its_subject_flows_on() {
    let Some(env) = QueueEnv::start(true, &[]).await else {
        return;
    };
    let u = user("00uPOISON1", "poison.one@example.com");
    let good = create("poison-good", "2026-03-12T10:00:00Z", &u);
    // Garbage first, with the same ordering key: ordered delivery would
    // hold the good event behind it if it were retried.
    env.emulator
        .publish("relay-events", "this is not an event", &good.group_id())
        .await;
    env.emulator
        .publish("relay-events", &good.to_json(), &good.group_id())
        .await;
    env.wait_for("the good event applied", |e| {
        e.sim.user_by_username("poison.one@example.com").is_some()
    })
    .await;
    let output = env.relay.output();
    assert!(!output.contains("\"message\":\"will retry\""), "{output}");
    let dead = env.emulator.pull("relay-dead-letter").await;
    assert_eq!(dead.len(), 1);
    let data = BASE64
        .decode(dead[0]["message"]["data"].as_str().unwrap())
        .unwrap();
    let letter: DeadLetter = serde_json::from_slice(&data).unwrap();
    assert_eq!(letter.body, "this is not an event");
    assert!(
        letter.reason.starts_with("unreadable queue message"),
        "{}",
        letter.reason
    );
    assert_eq!(dead[0]["message"]["attributes"]["relay_dead_letter"], "1");
}

#[tokio::test]
async fn stale_events_do_not_undo_newer_state() {
    let Some(env) = QueueEnv::start(true, &[]).await else {
        return;
    };
    let u = user("00uSTALE01", "stale.one@example.com");
    let events = [
        create("stale-create", "2026-03-12T10:00:00.000Z", &u),
        set_state(
            "stale-deactivate",
            "2026-03-12T10:00:05.000Z",
            &u,
            UserState::Disabled,
        ),
        // Delivered late by the IdP: older than the deactivation.
        set_state(
            "stale-reactivate",
            "2026-03-12T10:00:02.000Z",
            &u,
            UserState::Active,
        ),
    ];
    for event in &events {
        env.emulator
            .publish("relay-events", &event.to_json(), &event.group_id())
            .await;
    }
    env.wait_for("three events processed", |e| e.summaries().len() == 3)
        .await;
    let summaries = env.summaries();
    let ids: Vec<&str> = summaries
        .iter()
        .map(|s| s["event_id"].as_str().unwrap())
        .collect();
    // One ordering key: pushed in publish order.
    assert_eq!(
        ids,
        [
            "okta:stale-create",
            "okta:stale-deactivate",
            "okta:stale-reactivate"
        ]
    );
    assert_eq!(summaries[2]["outcome"], "skipped");
    assert!(
        summaries[2]["detail"]
            .as_str()
            .unwrap()
            .starts_with("stale:")
    );
    assert_eq!(
        env.sim
            .user_by_username("stale.one@example.com")
            .unwrap()
            .status,
        "disabled"
    );
}

#[tokio::test]
async fn queue_mode_refuses_to_start_without_push_authentication() {
    let Some(backend) = Backend::emulator().await else {
        return;
    };
    let sim = DuoSim::start().await;
    let cfg = sim.config();
    let base: Vec<(String, String)> = backend
        .env()
        .into_iter()
        .chain(
            [
                ("DUO_API_HOST", cfg.host.as_str()),
                ("DUO_IKEY", cfg.ikey.as_str()),
                ("DUO_SKEY", cfg.skey.as_str()),
                ("OKTA_AUTH_SECRET", OKTA_SECRET),
                ("RELAY_MODE", "queue"),
                ("RELAY_PUBSUB_TOPIC", "relay-events"),
                ("RELAY_PUBSUB_DEAD_LETTER_TOPIC", "relay-dead-letter"),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
    let cases: [(BTreeMap<&str, &str>, &str); 3] = [
        (BTreeMap::new(), "RELAY_PUSH_AUDIENCE: is not set"),
        (
            BTreeMap::from([("RELAY_PUSH_AUDIENCE", AUDIENCE)]),
            "RELAY_PUSH_SERVICE_ACCOUNT: is not set",
        ),
        (
            BTreeMap::from([
                ("RELAY_PUSH_AUDIENCE", AUDIENCE),
                ("RELAY_PUSH_SERVICE_ACCOUNT", PUSH_SA),
                ("RELAY_PUBSUB_TOPIC", ""),
            ]),
            "RELAY_PUBSUB_TOPIC: is not set",
        ),
    ];
    for (extra, expected) in cases {
        let mut env: BTreeMap<String, String> = base.iter().cloned().collect();
        for (k, v) in extra {
            env.insert(k.to_owned(), v.to_owned());
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut relay = RelayProcess::spawn(&env);
        let status = relay.wait_exit(Duration::from_secs(20)).await;
        assert!(!status.success());
        assert!(
            relay.output().contains(expected),
            "{expected}:\n{}",
            relay.output()
        );
    }
}

#[tokio::test]
async fn headers_other_than_the_token_change_nothing() {
    // The worker reads the Authorization header only; a forged
    // x-goog-* or x-forwarded-* header does not stand in for a token.
    let Some(env) = QueueEnv::start(false, &[]).await else {
        return;
    };
    let answer = reqwest::Client::new()
        .post(env.relay.url("/pubsub/push"))
        .header(
            "x-goog-authenticated-user-email",
            "accounts.google.com:relay-push@relay-test.iam.gserviceaccount.com",
        )
        .header("x-serverless-authorization", "Bearer x.y.z")
        .header("x-forwarded-for", "35.187.132.1")
        .header("content-type", "application/json")
        .body(push_body("{}", "1", None))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    assert_eq!(env.sim.total_calls(), 0);
}

/// The dead-letter contract every backend keeps (relay-tests'
/// `dead_letters::contract`), through `dlq` on the dead-letter
/// subscription: letters published as the push worker publishes them (its
/// `DeadLetterSink`), replays onto the event topic, read back from a
/// subscription of its own.
#[tokio::test]
async fn the_dead_letter_topic_keeps_the_dead_letter_contract() {
    use relay_core::queue::DeadLetterSink as _;
    use relay_gcp::pubsub::{DeadLetterSubscription, PubSub, PubSubConfig};
    use relay_tests::dead_letters::{Backend as Letters, CASES, contract};
    let Some(host) = pubsub_emulator() else {
        return;
    };
    let project = common::unique_project();
    let emulator = Emulator {
        base: format!("http://{host}/v1"),
        project: project.clone(),
        http: reqwest::Client::new(),
    };
    for topic in ["events", "dead"] {
        emulator.put(&format!("topics/{topic}"), json!({})).await;
    }
    emulator
        .put(
            "subscriptions/dead",
            json!({ "topic": emulator.name("topics", "dead"), "ackDeadlineSeconds": 60 }),
        )
        .await;
    emulator
        .put(
            "subscriptions/replayed",
            json!({ "topic": emulator.name("topics", "events"), "enableMessageOrdering": true, "ackDeadlineSeconds": 600 }),
        )
        .await;
    let raw = relay_core::config::from_pairs(&[
        ("GOOGLE_CLOUD_PROJECT", project.as_str()),
        ("PUBSUB_EMULATOR_HOST", host.as_str()),
        ("RELAY_PUBSUB_TOPIC", "events"),
        ("RELAY_PUBSUB_DEAD_LETTER_TOPIC", "dead"),
        ("RELAY_PUBSUB_DEAD_LETTER_SUBSCRIPTION", "dead"),
    ]);
    let config = PubSubConfig::for_dlq(&raw).unwrap();
    let pubsub = Arc::new(PubSub::connect(config).await.unwrap());
    let store = DeadLetterSubscription::new(pubsub.clone());
    let emulator = &emulator;
    let ran = contract(Letters {
        name: "pubsub dead-letter topic",
        store: &store,
        write: Box::new(|letter| {
            let pubsub = pubsub.clone();
            Box::pin(async move { pubsub.put_dead_letter(&letter).await })
        }),
        // Pulled (and so held for the ack deadline, 10 min: never seen
        // again) until two pulls in a row come back empty.
        drain_main: Box::new(move || {
            Box::pin(async move {
                let mut bodies = Vec::new();
                let mut empty = 0;
                while empty < 2 {
                    let got = emulator.pull("replayed").await;
                    if got.is_empty() {
                        empty += 1;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    for received in got {
                        let data = received["message"]["data"].as_str().unwrap_or_default();
                        bodies.push(String::from_utf8(BASE64.decode(data).unwrap()).unwrap());
                    }
                }
                bodies
            })
        }),
    })
    .await;
    assert_eq!(ran, CASES.len());
}
