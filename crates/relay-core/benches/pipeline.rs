//! Verify + parse + plan of an Okta delivery (the accept stage's CPU cost),
//! for batches of 1, 10 and 100 events. No I/O: Duo is not involved.
//! Run: `cargo bench -p relay-core --bench pipeline`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::SystemTime;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use http::HeaderMap;
use relay_core::event::Source;
use relay_core::pipeline::parse_delivery;
use relay_core::plan::{PlanRules, plan_event};
use relay_core::verify::InboundAuth;

const SECRET: &str = "bench-secret-0123456789abcdef";

fn okta_batch(n: usize) -> String {
    let events: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"uuid":"uuid-{i}","published":"2026-03-11T09:15:00.936Z","eventType":"group.user_membership.add","version":"0",
                "displayMessage":"Add user to group membership","severity":"INFO",
                "actor":{{"id":"00uADMIN","type":"User","alternateId":"admin@example.com","displayName":"Admin"}},
                "outcome":{{"result":"SUCCESS","reason":null}},
                "target":[{{"id":"00uUSER{i}","type":"User","alternateId":"user{i}@example.com","displayName":"User {i}"}},
                          {{"id":"00gGROUP{g}","type":"UserGroup","alternateId":"unknown","displayName":"group-{g}"}}],
                "debugContext":{{"debugData":{{"requestUri":"/api/v1/groups/00gGROUP/users/00uUSER"}}}}}}"#,
                g = i % 7
            )
        })
        .collect();
    format!(
        r#"{{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","eventId":"env","data":{{"events":[{}]}}}}"#,
        events.join(",")
    )
}

fn bench_accept(c: &mut Criterion) {
    let raw = BTreeMap::from([("OKTA_AUTH_SECRET".to_owned(), SECRET.to_owned())]);
    let auth = InboundAuth::from_config(&raw).expect("config");
    let rules = PlanRules::default();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", SECRET.parse().expect("header"));
    let mut group = c.benchmark_group("okta verify+parse+plan");
    for n in [1usize, 10, 100] {
        let body = Bytes::from(okta_batch(n));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
            b.iter(|| {
                let verified = auth
                    .verify(Source::Okta, &headers, body.clone(), SystemTime::now())
                    .expect("verified");
                let parsed = parse_delivery(&verified).expect("parsed");
                let mut ops = 0;
                for event in &parsed.events {
                    if let relay_core::plan::Planned::Operations(o) = plan_event(event, &rules) {
                        ops += o.len();
                    }
                }
                black_box(ops)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_accept);
criterion_main!(benches);
