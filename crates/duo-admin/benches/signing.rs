//! Signing cost per request, v2 (SHA-1 and SHA-512) and v5, for a typical
//! user-modify call. Run: `cargo bench -p duo-admin --bench signing`.

use criterion::{Criterion, criterion_group, criterion_main};
use duo_admin::Secret;
use duo_admin::sign::{self, SigVersion, SignInput, V2Digest};
use std::hint::black_box;

fn params() -> Vec<(String, String)> {
    [
        ("username", "jane.doe@example.com"),
        ("realname", "Jane Doe"),
        ("firstname", "Jane"),
        ("lastname", "Doe"),
        ("email", "jane.doe@example.com"),
        ("alias1", "okta:00uNEWUSER0000000001"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

fn bench_signing(c: &mut Criterion) {
    let skey = Secret::new("Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep");
    let params = params();
    let body = sign::json_body(&params).unwrap_or_default();
    let date = "Tue, 21 Aug 2012 17:29:18 -0000";
    let v2_input = SignInput {
        date,
        method: "POST",
        host: "api-xxxxxxxx.duosecurity.com",
        path: "/admin/v1/users/DUABCDEFGHIJKLMNOPQR",
        params: &params,
        body: &[],
        x_duo_headers: &[],
    };
    let v5_input = SignInput {
        params: &[],
        body: &body,
        ..v2_input
    };
    let ikey = "DIWJ8X6AEYOR5OMC6TQ1";
    c.bench_function("sign v2 hmac-sha1", |b| {
        b.iter(|| {
            sign::authorization(
                SigVersion::V2(V2Digest::Sha1),
                ikey,
                &skey,
                black_box(&v2_input),
            )
        })
    });
    c.bench_function("sign v2 hmac-sha512", |b| {
        b.iter(|| {
            sign::authorization(
                SigVersion::V2(V2Digest::Sha512),
                ikey,
                &skey,
                black_box(&v2_input),
            )
        })
    });
    c.bench_function("sign v5 (json body + hashes)", |b| {
        b.iter(|| sign::authorization(SigVersion::V5, ikey, &skey, black_box(&v5_input)))
    });
    c.bench_function("v5 json body encode", |b| {
        b.iter(|| sign::json_body(black_box(&params)))
    });
}

criterion_group!(benches, bench_signing);
criterion_main!(benches);
