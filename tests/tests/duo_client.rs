//! The Duo client against the Duo simulator over real sockets: every typed
//! call, every signature version, the retry policy under injected faults, and
//! malformed answers from a raw TCP server.

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::time::Duration;

use duo_admin::{
    DuoClient, DuoConfig, DuoError, DuoGroupId, GroupFields, Idempotency, Method, RetryPolicy,
    Secret, SigVersion, TransportKind, UserFields, UserStatus, V2Digest,
};
use duo_sim::{DuoSim, Faults, Seed, SeedGroup, SeedUser};

const VERSIONS: [SigVersion; 3] = [
    SigVersion::V5,
    SigVersion::V2(V2Digest::Sha1),
    SigVersion::V2(V2Digest::Sha512),
];

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        max_jitter: Duration::from_millis(1),
        budget: Duration::from_secs(5),
    }
}

fn config_for(sim: &DuoSim, version: SigVersion) -> DuoConfig {
    let cfg = sim.config();
    let mut c = DuoConfig::new(
        cfg.host.clone(),
        cfg.ikey.clone(),
        Secret::new(cfg.skey.clone()),
    );
    c.base_url = Some(sim.base_url());
    c.sig_version = version;
    c.retry = fast_retry(4);
    c
}

fn client_for(sim: &DuoSim, version: SigVersion) -> DuoClient {
    DuoClient::new(config_for(sim, version)).unwrap()
}

fn user_fields(username: &str) -> UserFields {
    UserFields {
        username: Some(username.into()),
        realname: Some("Zoë O'Brien-Łukasz 山田".into()),
        firstname: Some("Zoë".into()),
        lastname: Some("O'Brien".into()),
        email: Some(format!("{username}@example.com")),
        aliases: [Some(format!("okta:00u{username}")), None, None, None],
        ..UserFields::default()
    }
}

#[tokio::test]
async fn user_lifecycle_with_every_signature_version() {
    let sim = DuoSim::start().await;
    for (i, version) in VERSIONS.into_iter().enumerate() {
        let duo = client_for(&sim, version);
        let name = format!("user{i} with space&amp=+");
        let created = duo.create_user(&user_fields(&name)).await.unwrap();
        assert_eq!(created.username, name);
        assert_eq!(created.realname.as_deref(), Some("Zoë O'Brien-Łukasz 山田"));

        let by_name = duo.find_user_by_username(&name).await.unwrap().unwrap();
        assert_eq!(by_name.user_id, created.user_id);
        // Username lookups match aliases too, which is how the relay finds a
        // user by its IdP id.
        let by_alias = duo
            .find_user_by_username(&format!("okta:00u{name}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_alias.user_id, created.user_id);
        let by_email = duo
            .find_users_by_email(&format!("{name}@example.com"))
            .await
            .unwrap();
        assert_eq!(by_email.len(), 1);
        assert!(duo.find_user_by_username("nobody").await.unwrap().is_none());
        // One call for several names: usernames and aliases both match
        // (username_list, a JSON list, in the query of a signed GET).
        sim.reset_calls();
        let alias = format!("okta:00u{name}");
        let both = duo
            .find_users_by_names(&[name.as_str(), alias.as_str(), "nobody \"quoted\" ü"])
            .await
            .unwrap();
        assert_eq!(
            both.iter().map(|u| &u.user_id).collect::<Vec<_>>(),
            [&created.user_id],
            "one user answers to both names"
        );
        assert_eq!(sim.total_calls(), 1);

        let renamed = format!("renamed{i}");
        let modified = duo
            .modify_user(
                &created.user_id,
                &UserFields {
                    username: Some(renamed.clone()),
                    status: Some(UserStatus::Disabled),
                    ..UserFields::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(modified.username, renamed);
        assert_eq!(modified.status, UserStatus::Disabled);
        assert_eq!(sim.user_by_username(&renamed).unwrap().status, "disabled");

        duo.delete_user(&created.user_id).await.unwrap();
        // Deleting what is gone succeeds, as Duo documents.
        duo.delete_user(&created.user_id).await.unwrap();
        let err = duo.get_user(&created.user_id).await.unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert_eq!(err.code(), Some(40401));
    }
    assert!(sim.snapshot().users.is_empty());
}

#[tokio::test]
async fn duplicate_username_is_an_invalid_parameter() {
    let sim = DuoSim::start().await;
    let duo = client_for(&sim, SigVersion::V5);
    duo.create_user(&user_fields("jane")).await.unwrap();
    let err = duo.create_user(&user_fields("jane")).await.unwrap_err();
    assert!(matches!(err, DuoError::InvalidParameter(_)), "{err:?}");
    assert_eq!(err.code(), Some(40002));
    // Refused locally, nothing sent.
    let before = sim.total_calls();
    let err = duo.create_user(&UserFields::default()).await.unwrap_err();
    assert!(matches!(err, DuoError::InvalidRequest(_)));
    assert_eq!(sim.total_calls(), before);
}

#[tokio::test]
async fn groups_page_and_membership_round_trip() {
    let sim = DuoSim::start().await;
    sim.seed(Seed {
        groups: (0..250)
            .map(|i| SeedGroup {
                name: format!("group-{i:03}"),
                desc: format!("okta:00g{i}"),
                ..SeedGroup::default()
            })
            .collect(),
        users: vec![SeedUser {
            username: "jane".into(),
            ..SeedUser::default()
        }],
    });
    let duo = client_for(&sim, SigVersion::V5);
    sim.reset_calls();
    let groups = duo.list_groups().collect_all().await.unwrap();
    assert_eq!(groups.len(), 250);
    // 100 per page: three requests, not one per group.
    assert_eq!(sim.call_count("GET /admin/v1/groups"), 3);

    let jane = duo.find_user_by_username("jane").await.unwrap().unwrap();
    let g = &groups[7];
    duo.add_user_to_group(&jane.user_id, &g.group_id)
        .await
        .unwrap();
    let mine = duo
        .list_user_groups(&jane.user_id)
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].name, "group-007");
    assert_eq!(
        sim.user_by_username("jane").unwrap().groups,
        vec!["group-007"]
    );

    let fetched = duo.get_group(&g.group_id).await.unwrap();
    assert_eq!(fetched.desc.as_deref(), Some("okta:00g7"));
    let renamed = duo
        .modify_group(
            &g.group_id,
            &GroupFields {
                name: Some("engineering".into()),
                desc: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "engineering");
    assert_eq!(
        sim.user_by_username("jane").unwrap().groups,
        vec!["engineering"]
    );

    duo.remove_user_from_group(&jane.user_id, &g.group_id)
        .await
        .unwrap();
    assert!(sim.user_by_username("jane").unwrap().groups.is_empty());

    let created = duo
        .create_group(&GroupFields {
            name: Some("new group".into()),
            desc: Some("auth0:rol_1".into()),
        })
        .await
        .unwrap();
    duo.delete_group(&created.group_id).await.unwrap();
    assert!(sim.group_by_name("new group").is_none());
    let err = duo.get_group(&created.group_id).await.unwrap_err();
    assert!(err.is_not_found());
}

#[tokio::test]
async fn the_hundred_and_first_group_is_50001_and_not_retried() {
    let sim = DuoSim::start().await;
    let mut groups: Vec<String> = (0..100).map(|i| format!("g{i}")).collect();
    sim.seed(Seed {
        groups: vec![SeedGroup {
            name: "one-too-many".into(),
            ..SeedGroup::default()
        }],
        users: vec![SeedUser {
            username: "busy".into(),
            groups: std::mem::take(&mut groups),
            ..SeedUser::default()
        }],
    });
    let duo = client_for(&sim, SigVersion::V5);
    let user = duo.find_user_by_username("busy").await.unwrap().unwrap();
    assert_eq!(user.groups.len(), 100);
    let extra = DuoGroupId::new(sim.group_by_name("one-too-many").unwrap().group_id);
    sim.reset_calls();
    let err = duo
        .add_user_to_group(&user.user_id, &extra)
        .await
        .unwrap_err();
    assert!(matches!(err, DuoError::Server(_)), "{err:?}");
    assert_eq!(err.code(), Some(50001));
    assert_eq!(sim.call_count("POST /admin/v1/users/{user_id}/groups"), 1);
}

#[tokio::test]
async fn authenticators_can_be_listed_and_removed() {
    let sim = DuoSim::start().await;
    sim.seed(Seed {
        groups: vec![],
        users: vec![SeedUser {
            username: "phoneuser".into(),
            groups: vec!["staff".into()],
            phones: 2,
            tokens: 1,
            webauthn: 2,
            u2f: 1,
            bypass_codes: 3,
            ..SeedUser::default()
        }],
    });
    let duo = client_for(&sim, SigVersion::V5);
    let user = duo
        .find_user_by_username("phoneuser")
        .await
        .unwrap()
        .unwrap();
    let id = &user.user_id;

    let phones = duo.list_user_phones(id).await.unwrap();
    let tokens = duo.list_user_tokens(id).await.unwrap();
    let webauthn = duo.list_user_webauthn(id).await.unwrap();
    let u2f = duo.list_user_u2f(id).await.unwrap();
    let codes = duo.list_user_bypass_codes(id).await.unwrap();
    assert_eq!(
        (
            phones.len(),
            tokens.len(),
            webauthn.len(),
            u2f.len(),
            codes.len()
        ),
        (2, 1, 2, 1, 3)
    );

    duo.detach_phone(id, &phones[0].phone_id).await.unwrap();
    duo.delete_phone(&phones[1].phone_id).await.unwrap();
    duo.detach_token(id, &tokens[0].token_id).await.unwrap();
    for w in &webauthn {
        duo.delete_webauthn(&w.webauthnkey).await.unwrap();
    }
    duo.delete_u2f(&u2f[0].registration_id).await.unwrap();
    for c in &codes {
        duo.delete_bypass_code(&c.bypass_code_id).await.unwrap();
    }

    let after = sim.user_by_username("phoneuser").unwrap();
    assert!(after.phones.is_empty() && after.tokens.is_empty());
    assert!(after.webauthncredentials.is_empty() && after.u2ftokens.is_empty());
    assert!(after.bypass_codes.is_empty());
    // The user, its id, status and groups stay.
    assert_eq!(after.user_id, user.user_id.as_str());
    assert_eq!(after.status, "active");
    assert_eq!(after.groups, vec!["staff"]);
    // A detached phone still exists in the tenant; a deleted one does not.
    let all_phones = sim.snapshot().phones;
    assert!(
        all_phones
            .iter()
            .any(|p| p.phone_id == phones[0].phone_id.as_str())
    );
    assert!(
        !all_phones
            .iter()
            .any(|p| p.phone_id == phones[1].phone_id.as_str())
    );
}

#[tokio::test]
async fn rate_limits_are_retried_until_the_attempts_run_out() {
    let sim = DuoSim::start().await;
    sim.set_faults(Faults {
        rate_429: 1.0,
        ..Faults::default()
    });
    let duo = client_for(&sim, SigVersion::V5);
    let err = duo
        .create_user(&user_fields("ratelimited"))
        .await
        .unwrap_err();
    match &err {
        DuoError::RateLimited { attempts, failure } => {
            assert_eq!(*attempts, 4);
            assert_eq!(failure.code, Some(42901));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(err.is_transient());
    // Even a create is retried on 429 (Duo did not act), and nothing changed.
    assert_eq!(sim.call_count("POST /admin/v1/users"), 4);
    assert!(sim.user_by_username("ratelimited").is_none());
    assert_eq!(duo.stats().rate_limited, 4);
    assert_eq!(duo.stats().retries, 3);

    // Faults off again: the same call goes through first time.
    sim.set_faults(Faults::default());
    duo.create_user(&user_fields("ratelimited")).await.unwrap();
}

#[tokio::test]
async fn a_partial_429_storm_is_ridden_out() {
    let sim = DuoSim::start().await;
    sim.set_faults(Faults {
        rate_429: 0.5,
        seed: Some(42),
        ..Faults::default()
    });
    let mut cfg = config_for(&sim, SigVersion::V5);
    cfg.retry = fast_retry(20);
    let duo = DuoClient::new(cfg).unwrap();
    for i in 0..20 {
        duo.create_user(&user_fields(&format!("storm{i}")))
            .await
            .unwrap();
    }
    assert_eq!(sim.snapshot().users.len(), 20);
    assert!(duo.stats().rate_limited > 0, "{:?}", duo.stats());
}

#[tokio::test]
async fn server_errors_are_retried_only_for_safe_requests() {
    let sim = DuoSim::start().await;
    sim.seed(Seed {
        groups: vec![],
        users: vec![SeedUser {
            username: "reader".into(),
            ..SeedUser::default()
        }],
    });
    sim.set_faults(Faults {
        rate_500: 1.0,
        ..Faults::default()
    });
    let duo = client_for(&sim, SigVersion::V5);
    sim.reset_calls();
    let err = duo.find_user_by_username("reader").await.unwrap_err();
    assert!(matches!(err, DuoError::Server(_)));
    assert_eq!(sim.call_count("GET /admin/v1/users"), 4);

    let err = duo.create_user(&user_fields("writer")).await.unwrap_err();
    assert!(matches!(err, DuoError::Server(_)));
    assert_eq!(sim.call_count("POST /admin/v1/users"), 1);
}

#[tokio::test]
async fn the_retry_budget_stops_retries_early() {
    let sim = DuoSim::start().await;
    sim.set_faults(Faults {
        rate_429: 1.0,
        ..Faults::default()
    });
    let mut cfg = config_for(&sim, SigVersion::V5);
    cfg.retry = RetryPolicy {
        max_attempts: 7,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(1),
        max_jitter: Duration::ZERO,
        budget: Duration::from_millis(100),
    };
    let duo = DuoClient::new(cfg).unwrap();
    let err = duo.find_user_by_username("x").await.unwrap_err();
    assert!(
        matches!(err, DuoError::RateLimited { attempts: 1, .. }),
        "{err:?}"
    );
    assert_eq!(sim.call_count("GET /admin/v1/users"), 1);
}

#[tokio::test]
async fn slow_answers_time_out_per_attempt() {
    let sim = DuoSim::start().await;
    sim.set_faults(Faults {
        latency: Duration::from_millis(400),
        ..Faults::default()
    });
    let mut cfg = config_for(&sim, SigVersion::V5);
    cfg.timeout = Duration::from_millis(50);
    cfg.retry = fast_retry(2);
    let duo = DuoClient::new(cfg).unwrap();
    let err = duo.find_user_by_username("slow").await.unwrap_err();
    assert!(
        matches!(
            err,
            DuoError::Transport {
                kind: TransportKind::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(duo.stats().requests, 2);
}

#[tokio::test]
async fn wrong_keys_and_wrong_host_are_refused_and_never_retried() {
    let sim = DuoSim::start().await;
    let secret = "an-entirely-wrong-secret-key-0123456789";
    let mut cfg = config_for(&sim, SigVersion::V5);
    cfg.skey = Secret::new(secret);
    let duo = DuoClient::new(cfg).unwrap();
    let err = duo.find_user_by_username("x").await.unwrap_err();
    assert!(matches!(err, DuoError::Unauthorized(_)), "{err:?}");
    assert_eq!(err.code(), Some(40103));
    assert_eq!(duo.stats().requests, 1);
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));

    let mut cfg = config_for(&sim, SigVersion::V2(V2Digest::Sha1));
    cfg.api_host = "api-other.duosecurity.com".into();
    let err = DuoClient::new(cfg)
        .unwrap()
        .find_user_by_username("x")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(40103));

    let mut cfg = config_for(&sim, SigVersion::V5);
    cfg.ikey = "DIWRONGWRONGWRONGWRO".into();
    let err = DuoClient::new(cfg)
        .unwrap()
        .find_user_by_username("x")
        .await
        .unwrap_err();
    assert!(matches!(err, DuoError::Unauthorized(_)), "{err:?}");
}

#[tokio::test]
async fn no_secret_in_debug_output() {
    let sim = DuoSim::start().await;
    let skey = sim.config().skey.clone();
    let cfg = config_for(&sim, SigVersion::V5);
    assert!(!format!("{cfg:?}").contains(&skey));
    let duo = DuoClient::new(cfg).unwrap();
    let shown = format!("{duo:?}");
    assert!(!shown.contains(&skey), "{shown}");
    assert!(shown.contains("[redacted]"));
    assert!(!format!("{sim:?}").contains(&skey));
}

#[tokio::test]
async fn unreachable_duo_is_a_transport_error() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = DuoConfig::new("api-x.duosecurity.com", "DIX", Secret::new("s"));
    cfg.base_url = Some(format!("http://127.0.0.1:{port}"));
    cfg.retry = fast_retry(3);
    let duo = DuoClient::new(cfg).unwrap();
    let err = duo.find_user_by_username("x").await.unwrap_err();
    assert!(
        matches!(
            err,
            DuoError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(duo.stats().requests, 3);
}

/// A server that answers every request with the same raw bytes and closes.
async fn raw_server(answer: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 16 * 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket.write_all(answer).await;
            let _ = socket.shutdown().await;
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn malformed_answers_become_typed_errors() {
    let cases: [(&'static [u8], &str); 5] = [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"stat\":\"OK\",\"resp",
            "truncated (content-length)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"stat\":\"OK\",\"resp",
            "truncated (close-delimited)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 11\r\n\r\n<html></html",
            "not JSON",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n{\"stat\":\"FAIL\",\"code\":40002,\"message\":\"x\"}",
            "FAIL with 200",
        ),
        (b"garbage that is not HTTP\r\n\r\n", "not HTTP"),
    ];
    for (answer, what) in cases {
        let base = raw_server(answer).await;
        let mut cfg = DuoConfig::new("api-x.duosecurity.com", "DIX", Secret::new("s"));
        cfg.base_url = Some(base);
        cfg.retry = RetryPolicy::none();
        let duo = DuoClient::new(cfg).unwrap();
        let err = duo
            .call(Method::GET, "/admin/v1/users", &[], Idempotency::Safe)
            .await
            .unwrap_err();
        match what {
            "FAIL with 200" => assert!(
                matches!(err, DuoError::InvalidParameter(_)),
                "{what}: {err:?}"
            ),
            "not HTTP" => assert!(matches!(err, DuoError::Transport { .. }), "{what}: {err:?}"),
            _ => assert!(
                matches!(err, DuoError::Decode { .. } | DuoError::Transport { .. }),
                "{what}: {err:?}"
            ),
        }
    }
}

#[tokio::test]
async fn repeated_keys_cannot_go_in_a_json_body() {
    let sim = DuoSim::start().await;
    let duo = client_for(&sim, SigVersion::V5);
    let params = vec![
        ("a".to_owned(), "1".to_owned()),
        ("a".to_owned(), "2".to_owned()),
    ];
    let err = duo
        .call(
            Method::POST,
            "/admin/v1/info/summary",
            &params,
            Idempotency::Unsafe,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DuoError::InvalidRequest(_)), "{err:?}");
    assert_eq!(sim.total_calls(), 0);
    // In a query string they are fine.
    duo.call(
        Method::GET,
        "/admin/v1/info/summary",
        &params,
        Idempotency::Safe,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn calls_are_counted_per_task() {
    let sim = DuoSim::start().await;
    let duo = client_for(&sim, SigVersion::V5);
    let (a, b) = tokio::join!(
        duo_admin::count_calls(async {
            for _ in 0..3 {
                duo.find_user_by_username("a").await.unwrap();
            }
        }),
        duo_admin::count_calls(async {
            duo.find_user_by_username("b").await.unwrap();
        }),
    );
    assert_eq!((a.1, b.1), (3, 1));
    // Retries count as calls.
    sim.set_faults(Faults {
        rate_429: 1.0,
        ..Faults::default()
    });
    let (_, n) = duo_admin::count_calls(duo.find_user_by_username("c")).await;
    assert_eq!(n, 4);
}

/// Issue 13 item 3: a request the HTTP client cannot build (a username of
/// 70 KB makes a URL no URI can hold: "Parsed Url is not a valid Uri") is
/// permanent — never retried, never sent, and not a transport error (which
/// sync mode would answer 503 forever and queue mode retry 8 times).
#[tokio::test]
async fn a_request_that_cannot_be_built_is_permanent() {
    let sim = DuoSim::start().await;
    let duo = client_for(&sim, SigVersion::V5);
    let huge = "u".repeat(70_000);
    let err = duo.find_user_by_username(&huge).await.unwrap_err();
    assert!(matches!(err, DuoError::InvalidRequest(_)), "{err:?}");
    assert!(!err.is_transient());
    assert!(
        !err.to_string().contains(&huge[..100]),
        "the value is not quoted"
    );
    assert_eq!(
        sim.total_calls(),
        0,
        "nothing reached Duo: {:?}",
        sim.calls()
    );
    assert_eq!(duo.stats().requests, 0);
    assert_eq!(duo.stats().transport_errors, 0);
}

/// The phone calls of issue 17 (find by number, create, attach) against the
/// simulator, every signature version: a phone is created once, found by
/// its number, attached idempotently, and a number that is not E.164 is
/// refused as an invalid parameter.
#[tokio::test]
async fn phones_are_created_found_and_attached_with_every_signature_version() {
    let sim = DuoSim::start().await;
    for (i, version) in VERSIONS.into_iter().enumerate() {
        let duo = client_for(&sim, version);
        let user = duo
            .create_user(&user_fields(&format!("ph{i}")))
            .await
            .unwrap();
        let number = format!("+1555010{i:04}");
        assert!(duo.find_phones_by_number(&number).await.unwrap().is_empty());
        let phone = duo
            .create_phone(&number, "mobile", "idp-duo-relay")
            .await
            .unwrap();
        assert_eq!(phone.number.as_deref(), Some(number.as_str()));
        assert_eq!(phone.name.as_deref(), Some("idp-duo-relay"));
        let found = duo.find_phones_by_number(&number).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].phone_id, phone.phone_id);
        duo.attach_phone(&user.user_id, &phone.phone_id)
            .await
            .unwrap();
        duo.attach_phone(&user.user_id, &phone.phone_id)
            .await
            .unwrap();
        let phones = duo.list_user_phones(&user.user_id).await.unwrap();
        assert_eq!(phones.len(), 1);
        let refused = duo.create_phone("555-0100", "mobile", "x").await;
        assert!(
            matches!(refused, Err(DuoError::InvalidParameter(_))),
            "{refused:?}"
        );
    }
}
