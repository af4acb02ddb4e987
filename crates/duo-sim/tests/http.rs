//! Drives the real server over a socket with requests signed inside the test.
//!
//! The signer below is a deliberately tiny v5/v2 implementation of the
//! published canonical-string rules (Duo Admin API docs; duosecurity/duo_hmac_python),
//! kept here so the tests do not trust the simulator's own code.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use duo_sim::{DuoSim, Faults, Seed, SimConfig};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha512};

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn canon(params: &[(&str, &str)]) -> String {
    let mut p: Vec<(String, String)> = params.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    p.sort();
    p.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn hmac_sha512(key: &str, msg: &str) -> String {
    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(key.as_bytes()).expect("key");
    m.update(msg.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
    )
    .expect("secs")
}

#[derive(Debug)]
struct Resp {
    status: u16,
    body: Value,
}

/// Sends one HTTP/1.1 request on a fresh connection (blocking I/O off the runtime).
async fn raw(addr: SocketAddr, head: String, body: Vec<u8>) -> Resp {
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(&body).expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).expect("read");
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        Resp {
            status,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
        }
    })
    .await
    .expect("join")
}

struct Call<'a> {
    method: &'a str,
    path: &'a str,
    params: &'a [(&'a str, &'a str)],
    date: i64,
    ikey: Option<&'a str>,
    sig_v2: bool,
    /// A JSON body sent as is instead of one built from `params`.
    raw_body: Option<&'a str>,
}

fn call<'a>(method: &'a str, path: &'a str, params: &'a [(&'a str, &'a str)]) -> Call<'a> {
    Call {
        method,
        path,
        params,
        date: now(),
        ikey: None,
        sig_v2: false,
        raw_body: None,
    }
}

/// v5: GET/DELETE params in the query, POST params as a JSON body.
/// v2 (`sig_v2`): POST params as a form body, HMAC-SHA512.
async fn send(sim: &DuoSim, c: Call<'_>) -> Resp {
    let cfg = sim.config();
    let date = duo_sim::verify::format_rfc2822(c.date);
    let post = c.method == "POST";
    let (query, body, ctype) = match (post, c.sig_v2) {
        (false, _) => (canon(c.params), String::new(), None),
        (true, false) => {
            let obj: serde_json::Map<String, Value> = c
                .params
                .iter()
                .map(|(k, v)| ((*k).into(), json!(v)))
                .collect();
            let body = c
                .raw_body
                .map_or_else(|| Value::Object(obj).to_string(), str::to_owned);
            (String::new(), body, Some("application/json"))
        }
        (true, true) => (
            String::new(),
            canon(c.params),
            Some("application/x-www-form-urlencoded"),
        ),
    };
    let lines = [date.as_str(), c.method, &cfg.host.to_lowercase(), c.path];
    let sig = if c.sig_v2 {
        let params = if post { &body } else { &query };
        hmac_sha512(&cfg.skey, &format!("{}\n{params}", lines.join("\n")))
    } else {
        let body_hash = hex::encode(Sha512::digest(body.as_bytes()));
        let hdr_hash = hex::encode(Sha512::digest(b""));
        hmac_sha512(
            &cfg.skey,
            &format!("{}\n{query}\n{body_hash}\n{hdr_hash}", lines.join("\n")),
        )
    };
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{sig}", c.ikey.unwrap_or(&cfg.ikey)));
    let target = if query.is_empty() {
        c.path.to_owned()
    } else {
        format!("{}?{query}", c.path)
    };
    let mut head = format!(
        "{} {target} HTTP/1.1\r\nHost: duo.test\r\nConnection: close\r\nDate: {date}\r\nAuthorization: Basic {auth}\r\nContent-Length: {}\r\n",
        c.method,
        body.len()
    );
    if let Some(ct) = ctype {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    raw(sim.addr(), head, body.into_bytes()).await
}

fn assert_fail(r: &Resp, status: u16, code: u64) {
    assert_eq!(
        (r.status, r.body["stat"].as_str(), r.body["code"].as_u64()),
        (status, Some("FAIL"), Some(code)),
        "{r:?}"
    );
    assert!(r.body["message"].is_string(), "{r:?}");
}

fn ok(r: Resp) -> Value {
    assert_eq!(
        (r.status, r.body["stat"].as_str()),
        (200, Some("OK")),
        "{r:?}"
    );
    r.body
}

fn seed(json: Value) -> Seed {
    serde_json::from_value(json).expect("seed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_get_modify_delete_and_alias_lookup() {
    let sim = DuoSim::start().await;
    let params = [
        ("username", "jdoe"),
        ("realname", "Jane Doe"),
        ("email", "jdoe@example.com"),
        ("alias1", "00u1"),
    ];
    let created =
        ok(send(&sim, call("POST", "/admin/v1/users", &params)).await)["response"].clone();
    let id = created["user_id"].as_str().expect("user_id").to_owned();
    assert_eq!(
        (created["username"].as_str(), created["status"].as_str()),
        (Some("jdoe"), Some("active"))
    );
    assert_eq!(
        (created["alias1"].as_str(), created["alias2"].clone()),
        (Some("00u1"), Value::Null)
    );

    let dup = send(
        &sim,
        call("POST", "/admin/v1/users", &[("username", "00u1")]),
    )
    .await;
    assert_fail(&dup, 400, 40002);
    assert_eq!(dup.body["message_detail"].as_str(), Some("username"));
    assert_fail(
        &send(&sim, call("POST", "/admin/v1/users", &[("realname", "x")])).await,
        400,
        40002,
    );

    let found = ok(send(
        &sim,
        call("GET", "/admin/v1/users", &[("username", "00u1")]),
    )
    .await);
    assert_eq!(found["response"][0]["user_id"].as_str(), Some(id.as_str()));
    let none = ok(send(
        &sim,
        call("GET", "/admin/v1/users", &[("username", "nobody")]),
    )
    .await);
    assert_eq!(none["response"], json!([]));

    let path = format!("/admin/v1/users/{id}");
    let modified = ok(send(
        &sim,
        call(
            "POST",
            &path,
            &[("username", "jane"), ("status", "disabled"), ("alias1", "")],
        ),
    )
    .await);
    assert_eq!(
        (
            modified["response"]["username"].as_str(),
            modified["response"]["alias1"].clone()
        ),
        (Some("jane"), Value::Null)
    );
    assert_eq!(
        sim.user_by_username("jane").expect("renamed").status,
        "disabled"
    );
    assert!(sim.user_by_username("jdoe").is_none());
    assert_eq!(
        ok(send(&sim, call("GET", &path, &[])).await)["response"]["email"].as_str(),
        Some("jdoe@example.com")
    );

    assert_eq!(
        ok(send(&sim, call("DELETE", &path, &[])).await)["response"],
        json!("")
    );
    assert_eq!(
        ok(send(&sim, call("DELETE", &path, &[])).await)["response"],
        json!("")
    );
    assert_fail(&send(&sim, call("GET", &path, &[])).await, 404, 40401);
    assert_eq!(sim.call_count("POST /admin/v1/users"), 3);
    assert_eq!(sim.call_count("DELETE /admin/v1/users/{user_id}"), 2);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_create_list_paging_and_v2_form_signing() {
    let sim = DuoSim::start().await;
    for i in 0..5 {
        let name = format!("team {i}");
        let params = [("name", name.as_str()), ("desc", "okta:00g")];
        let c = Call {
            sig_v2: i % 2 == 0,
            ..call("POST", "/admin/v1/groups", &params)
        };
        assert_eq!(
            ok(send(&sim, c).await)["response"]["name"].as_str(),
            Some(name.as_str())
        );
    }
    assert_fail(
        &send(
            &sim,
            call("POST", "/admin/v1/groups", &[("name", "team 0")]),
        )
        .await,
        400,
        40002,
    );
    let p1 = ok(send(&sim, call("GET", "/admin/v1/groups", &[("limit", "2")])).await);
    assert_eq!(
        p1["metadata"],
        json!({"total_objects": 5, "next_offset": 2})
    );
    assert_eq!(p1["response"][0]["name"].as_str(), Some("team 0"));
    let p3 = ok(send(
        &sim,
        call(
            "GET",
            "/admin/v1/groups",
            &[("limit", "2"), ("offset", "4")],
        ),
    )
    .await);
    assert_eq!(
        (
            p3["metadata"].clone(),
            p3["response"].as_array().map(Vec::len)
        ),
        (json!({"total_objects": 5, "prev_offset": 2}), Some(1))
    );
    let far = ok(send(
        &sim,
        call("GET", "/admin/v1/groups", &[("offset", "99999999999999")]),
    )
    .await);
    assert_eq!(far["response"], json!([]));
    assert_fail(
        &send(&sim, call("GET", "/admin/v1/groups", &[("limit", "-3")])).await,
        400,
        40002,
    );

    let gid = sim.group_by_name("team 1").expect("group").group_id;
    let g = ok(send(&sim, call("GET", &format!("/admin/v2/groups/{gid}"), &[])).await);
    assert_eq!(
        (
            g["response"]["status"].as_str(),
            g["response"]["push_enabled"].as_bool()
        ),
        (Some("Active"), Some(true))
    );
    let renamed = ok(send(
        &sim,
        call(
            "POST",
            &format!("/admin/v1/groups/{gid}"),
            &[("name", "renamed")],
        ),
    )
    .await);
    assert_eq!(renamed["response"]["group_id"].as_str(), Some(gid.as_str()));
    ok(send(
        &sim,
        call("DELETE", &format!("/admin/v1/groups/{gid}"), &[]),
    )
    .await);
    ok(send(
        &sim,
        call("DELETE", &format!("/admin/v1/groups/{gid}"), &[]),
    )
    .await);
    assert_fail(
        &send(&sim, call("GET", &format!("/admin/v2/groups/{gid}"), &[])).await,
        404,
        40401,
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_add_remove_and_the_100_group_limit() {
    let sim = DuoSim::start().await;
    let groups: Vec<Value> = (0..101).map(|i| json!({"name": format!("g{i}")})).collect();
    let member_of: Vec<String> = (0..100).map(|i| format!("g{i}")).collect();
    sim.seed(seed(json!({"groups": groups, "users": [{"username": "full", "groups": member_of}, {"username": "u"}]})));
    let full = sim.user_by_username("full").expect("seeded").user_id;
    let u = sim.user_by_username("u").expect("seeded").user_id;
    let g100 = sim.group_by_name("g100").expect("group").group_id;
    let over = send(
        &sim,
        call(
            "POST",
            &format!("/admin/v1/users/{full}/groups"),
            &[("group_id", &g100)],
        ),
    )
    .await;
    assert_fail(&over, 500, 50001);

    let path = format!("/admin/v1/users/{u}/groups");
    ok(send(&sim, call("POST", &path, &[("group_id", &g100)])).await);
    ok(send(&sim, call("POST", &path, &[("group_id", &g100)])).await);
    assert_fail(
        &send(
            &sim,
            call("POST", &path, &[("group_id", "DGNOSUCHGROUP0000000")]),
        )
        .await,
        400,
        40002,
    );
    let listed = ok(send(&sim, call("GET", &path, &[])).await);
    assert_eq!(
        (
            listed["response"][0]["name"].as_str(),
            listed["metadata"]["total_objects"].as_u64()
        ),
        (Some("g100"), Some(1))
    );
    let members = ok(send(
        &sim,
        call(
            "GET",
            &format!("/admin/v2/groups/{g100}/users"),
            &[("limit", "1000")],
        ),
    )
    .await);
    assert_eq!(
        members["response"],
        json!([{"user_id": u, "username": "u"}])
    );
    ok(send(&sim, call("DELETE", &format!("{path}/{g100}"), &[])).await);
    ok(send(&sim, call("DELETE", &format!("{path}/{g100}"), &[])).await);
    assert!(sim.user_by_username("u").expect("user").groups.is_empty());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_list_and_delete() {
    let sim = DuoSim::start().await;
    sim.seed(seed(json!({"users": [{"username": "dev", "phones": 2, "tokens": 1, "webauthn": 1, "u2f": 1, "bypass_codes": 2}]})));
    let before = sim.user_by_username("dev").expect("user");
    let id = &before.user_id;
    let phones = ok(send(
        &sim,
        call("GET", &format!("/admin/v1/users/{id}/phones"), &[]),
    )
    .await);
    assert_eq!(phones["response"].as_array().map(Vec::len), Some(2));
    let user = ok(send(&sim, call("GET", &format!("/admin/v1/users/{id}"), &[])).await);
    assert_eq!(user["response"]["is_enrolled"], json!(true));

    let deletes = [
        format!("/admin/v1/users/{id}/phones/{}", before.phones[0].phone_id),
        format!("/admin/v1/phones/{}", before.phones[1].phone_id),
        format!("/admin/v1/users/{id}/tokens/{}", before.tokens[0].token_id),
        format!(
            "/admin/v1/webauthncredentials/{}",
            before.webauthncredentials[0].webauthnkey
        ),
        format!(
            "/admin/v1/u2ftokens/{}",
            before.u2ftokens[0].registration_id
        ),
        format!(
            "/admin/v1/bypass_codes/{}",
            before.bypass_codes[0].bypass_code_id
        ),
        format!(
            "/admin/v1/bypass_codes/{}",
            before.bypass_codes[1].bypass_code_id
        ),
    ];
    for path in &deletes {
        ok(send(&sim, call("DELETE", path, &[])).await);
    }
    assert_fail(
        &send(&sim, call("DELETE", &deletes[1], &[])).await,
        404,
        40401,
    );
    for list in [
        "phones",
        "tokens",
        "webauthncredentials",
        "u2ftokens",
        "bypass_codes",
    ] {
        let r = ok(send(
            &sim,
            call("GET", &format!("/admin/v1/users/{id}/{list}"), &[]),
        )
        .await);
        assert_eq!(r["response"], json!([]), "{list}");
    }
    let after = sim.user_by_username("dev").expect("user");
    assert_eq!(
        (after.user_id, after.status),
        (before.user_id.clone(), before.status)
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_429_changes_nothing_and_is_recorded() {
    let sim = DuoSim::start().await;
    sim.set_faults(Faults {
        rate_429: 1.0,
        ..Faults::default()
    });
    let r = send(
        &sim,
        call("POST", "/admin/v1/users", &[("username", "nope")]),
    )
    .await;
    assert_fail(&r, 429, 42901);
    assert!(sim.snapshot().users.is_empty());
    let rec = sim.calls().pop().expect("recorded");
    assert_eq!(
        (rec.route.as_str(), rec.status, rec.code),
        ("POST /admin/v1/users", 429, Some(42901))
    );
    // Signature first: a bad signature is 401 even while faults are on.
    let bad = send(
        &sim,
        Call {
            ikey: Some("DIWRONG0000000000000"),
            ..call("GET", "/admin/v1/users", &[])
        },
    )
    .await;
    assert_fail(&bad, 401, 40102);
    sim.set_faults(Faults::default());
    ok(send(
        &sim,
        call("POST", "/admin/v1/users", &[("username", "yes")]),
    )
    .await);
    assert_eq!(sim.total_calls(), 3);
    sim.reset_calls();
    assert_eq!(sim.total_calls(), 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_truncated_answers_come_after_the_change_and_absent_deletes_can_be_404() {
    let sim = DuoSim::start().await;
    sim.seed(seed(
        json!({"users": [{"username": "gone"}, {"username": "cut"}], "groups": [{"name": "g"}]}),
    ));
    let id = |name: &str| sim.user_by_username(name).expect("user").user_id;
    let (gone, cut) = (id("gone"), id("cut"));
    let group = sim.group_by_name("g").expect("group").group_id;

    // Applied, then answered 500: the user is gone all the same.
    sim.set_faults(Faults {
        rate_lost_answer: 1.0,
        ..Faults::default()
    });
    let lost = send(
        &sim,
        call("DELETE", &format!("/admin/v1/users/{gone}"), &[]),
    )
    .await;
    assert_fail(&lost, 500, 50001);
    assert!(sim.user_by_username("gone").is_none());
    assert!(sim.calls().last().expect("recorded").lost_answer);
    assert_eq!(sim.history().deleted_users[0].username, "gone");
    // Reads are never lost.
    ok(send(&sim, call("GET", "/admin/v1/users", &[])).await);

    // Applied, then answered 200 with half a body (not JSON).
    sim.set_faults(Faults {
        rate_truncated: 1.0,
        ..Faults::default()
    });
    let cut_answer = send(&sim, call("DELETE", &format!("/admin/v1/users/{cut}"), &[])).await;
    assert_eq!(
        (cut_answer.status, cut_answer.body.clone()),
        (200, Value::Null)
    );
    assert!(sim.user_by_username("cut").is_none());

    // Deleting what is absent: 200 by default (Duo's documented answer for
    // users), 404 when asked.
    sim.set_faults(Faults::default());
    ok(send(
        &sim,
        call("DELETE", &format!("/admin/v1/users/{gone}"), &[]),
    )
    .await);
    sim.set_faults(Faults {
        absent_delete_not_found: true,
        ..Faults::default()
    });
    assert_fail(
        &send(
            &sim,
            call("DELETE", &format!("/admin/v1/users/{gone}"), &[]),
        )
        .await,
        404,
        40401,
    );
    ok(send(
        &sim,
        call("DELETE", &format!("/admin/v1/groups/{group}"), &[]),
    )
    .await);
    assert_fail(
        &send(
            &sim,
            call("DELETE", &format!("/admin/v1/groups/{group}"), &[]),
        )
        .await,
        404,
        40401,
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signature_skew_404_405_and_garbage() {
    let cfg = SimConfig {
        host: "API-Example.duosecurity.com".into(),
        max_skew: Duration::from_secs(60),
        ..SimConfig::default()
    };
    let sim = DuoSim::start_with(cfg).await.expect("start");
    let stale = send(
        &sim,
        Call {
            date: now() - 61,
            ..call("GET", "/admin/v1/users", &[])
        },
    )
    .await;
    assert_fail(&stale, 401, 40103);
    assert_eq!(
        stale.body["message"].as_str(),
        Some("Invalid signature in request credentials")
    );
    assert_fail(
        &send(
            &sim,
            Call {
                date: now() + 61,
                ..call("GET", "/admin/v1/users", &[])
            },
        )
        .await,
        401,
        40103,
    );
    ok(send(
        &sim,
        Call {
            date: now() - 50,
            ..call("GET", "/admin/v1/users", &[])
        },
    )
    .await);

    let unknown = send(&sim, call("GET", "/admin/v1/nothing", &[])).await;
    assert_fail(&unknown, 404, 40401);
    let wrong_key = Call {
        ikey: Some("DIWRONG0000000000000"),
        ..call("GET", "/admin/v1/nothing", &[])
    };
    assert_fail(&send(&sim, wrong_key).await, 401, 40102);
    assert_fail(
        &send(&sim, call("PUT", "/admin/v1/users", &[])).await,
        405,
        40501,
    );
    assert_eq!(
        sim.calls().last().map(|c| c.route.clone()),
        Some("PUT /admin/v1/users".into())
    );

    // Unsigned, tampered, non-UTF-8 and non-JSON requests get Duo-shaped answers.
    let head = |t: &str, extra: &str| {
        format!("GET {t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n")
    };
    assert_fail(
        &raw(sim.addr(), head("/admin/v1/users", ""), vec![]).await,
        401,
        40103,
    );
    let bad_auth = head(
        "/admin/v1/users",
        "Authorization: Basic %%%\r\nDate: nonsense\r\n",
    );
    assert_fail(&raw(sim.addr(), bad_auth, vec![]).await, 401, 40103);
    let date = duo_sim::verify::format_rfc2822(now());
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:00", sim.config().ikey));
    let non_utf8 = head(
        "/admin/v1/users?username=%FF",
        &format!("Date: {date}\r\nAuthorization: Basic {auth}\r\n"),
    );
    assert_fail(&raw(sim.addr(), non_utf8, vec![]).await, 400, 40002);
    assert_fail(
        &send(
            &sim,
            call("GET", "/admin/v1/users", &[("user_id_list", "not json")]),
        )
        .await,
        400,
        40002,
    );

    for body in ["[1,2]", "{not json", "\"s\""] {
        let c = Call {
            raw_body: Some(body),
            ..call("POST", "/admin/v1/users", &[])
        };
        assert_fail(&send(&sim, c).await, 400, 40002);
    }
    let typed = r#"{"username":"n","notes":12,"status":"bypass","email":null,"alias1":true}"#;
    let c = Call {
        raw_body: Some(typed),
        ..call("POST", "/admin/v1/users", &[])
    };
    let created = ok(send(&sim, c).await)["response"].clone();
    assert_eq!(
        (created["notes"].as_str(), created["alias1"].as_str()),
        (Some("12"), Some("true"))
    );

    let summary = ok(send(&sim, call("GET", "/admin/v1/info/summary", &[])).await);
    assert_eq!(summary["response"]["user_count"], json!(1));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_endpoints_need_no_signature() {
    let sim = DuoSim::start().await;
    let post = |path: &str, body: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let seeded = raw(
        sim.addr(),
        post(
            "/_sim/seed",
            r#"{"users":[{"username":"c","aliases":["a1"]}]}"#,
        ),
        vec![],
    )
    .await;
    assert_eq!(seeded.status, 200);
    let state = raw(
        sim.addr(),
        "GET /_sim/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
        vec![],
    )
    .await;
    assert_eq!(
        state.body["users"][0]["aliases"],
        json!(["a1", null, null, null])
    );
    let faults = raw(
        sim.addr(),
        post("/_sim/faults", r#"{"rate_500":1.0}"#),
        vec![],
    )
    .await;
    assert_eq!(faults.status, 200);
    assert_fail(
        &send(&sim, call("GET", "/admin/v1/users", &[])).await,
        500,
        50001,
    );
    let calls = raw(
        sim.addr(),
        "GET /_sim/calls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
        vec![],
    )
    .await;
    assert_eq!(calls.body[0]["code"], json!(50001));
    assert_eq!(
        raw(sim.addr(), post("/_sim/calls/reset", ""), vec![])
            .await
            .status,
        200
    );
    assert_eq!(sim.total_calls(), 0);
    sim.shutdown().await;
}
