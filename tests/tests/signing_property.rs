//! Property test: whatever parameters the relay signs — unicode, reserved
//! characters, repeated keys, empty values — the simulator, which verifies
//! signatures independently the way Duo does, accepts them; and the same
//! request signed with another key is refused (so the property can fail).

#![allow(clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::sync::OnceLock;

use duo_admin::{
    DuoClient, DuoConfig, DuoError, Idempotency, Method, RetryPolicy, Secret, SigVersion, V2Digest,
};
use duo_sim::DuoSim;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    sim: DuoSim,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime.block_on(DuoSim::start());
        Fixture { runtime, sim }
    })
}

fn client(version: SigVersion, skey: &str) -> DuoClient {
    let sim = &fixture().sim;
    let cfg = sim.config();
    let mut c = DuoConfig::new(cfg.host.clone(), cfg.ikey.clone(), Secret::new(skey));
    c.base_url = Some(sim.base_url());
    c.sig_version = version;
    c.retry = RetryPolicy::none();
    DuoClient::new(c).unwrap()
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Reserved and unreserved ASCII, space, `+`, `%`, `=` and `&`.
        "[ -~]{0,12}",
        // Any character at all, control characters and astral planes included.
        "(?s).{0,8}",
        Just(String::new()),
        Just("a b+c%20d=e&f".to_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{1,6}",
        "(?s).{1,6}",
        // A small pool so that keys repeat.
        prop::sample::select(vec![
            "username".to_owned(),
            "x".to_owned(),
            "ü ñ".to_owned()
        ]),
    ]
}

fn request() -> impl Strategy<Value = (usize, usize, Vec<(String, String)>)> {
    (
        0..3usize,
        0..3usize,
        prop::collection::vec((key(), text()), 0..8),
    )
}

#[test]
fn simulator_accepts_every_signed_parameter_set() {
    let fx = fixture();
    let good_skey = fx.sim.config().skey.clone();
    let versions = [
        SigVersion::V5,
        SigVersion::V2(V2Digest::Sha1),
        SigVersion::V2(V2Digest::Sha512),
    ];
    let methods = [Method::GET, Method::POST, Method::DELETE];
    let good: Vec<DuoClient> = versions.iter().map(|v| client(*v, &good_skey)).collect();
    let bad: Vec<DuoClient> = versions
        .iter()
        .map(|v| client(*v, "not-the-simulator-key-000000000000000000"))
        .collect();

    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&request(), |(v, m, params)| {
            let method = methods[m].clone();
            let repeated = {
                let mut keys: Vec<&String> = params.iter().map(|(k, _)| k).collect();
                keys.sort();
                keys.windows(2).any(|w| w[0] == w[1])
            };
            let result = fx.runtime.block_on(good[v].call(
                method.clone(),
                "/admin/v1/info/summary",
                &params,
                Idempotency::Safe,
            ));
            if method == Method::POST && versions[v] == SigVersion::V5 && repeated {
                // A JSON body cannot carry a repeated key: refused before sending.
                prop_assert!(
                    matches!(result, Err(DuoError::InvalidRequest(_))),
                    "{result:?}"
                );
                return Ok(());
            }
            match &result {
                // GET is the summary itself; POST/DELETE are 405 *after* the
                // signature was accepted.
                Ok(_) => prop_assert_eq!(&method, &Method::GET),
                Err(e) => {
                    prop_assert!(
                        !matches!(e, DuoError::Unauthorized(_)),
                        "signature refused: {e:?}"
                    );
                    prop_assert_ne!(&method, &Method::GET, "GET failed: {:?}", e);
                    prop_assert_eq!(e.code(), Some(40501));
                }
            }
            let refused = fx.runtime.block_on(bad[v].call(
                method,
                "/admin/v1/info/summary",
                &params,
                Idempotency::Safe,
            ));
            prop_assert!(
                matches!(refused, Err(DuoError::Unauthorized(_))),
                "{refused:?}"
            );
            Ok(())
        })
        .unwrap();
}
