//! The API's own CPU work for one join, without network or Redis: parse and
//! verify the request, build the forwarded parameters and sign the URL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::Request;
use scalelite_api::request::{ApiCall, BodyKind, Unverified};
use scalelite_core::params::forwarded_params;
use scalelite_core::sign::signed_url;
use scalelite_core::{Algorithm, AlgorithmSet, Secret};

const JOIN: ApiCall = ApiCall { name: "join", body: BodyKind::Any };

fn bench(c: &mut Criterion) {
    let secret = Secret::new("0123456789abcdef0123456789abcdef0123456789");
    let query = "avatarURL=https%3A%2F%2Fgl.example.edu%2Favatars%2F42.png&createTime=1715261728123&fullName=Ada+Lovelace&meetingID=room-42-abcdef&password=&role=viewer&userID=gl-user-1234567890";
    let uri = format!("/bigbluebutton/api/join?{query}&checksum={}", Algorithm::Sha1.sign("join", query, &secret));
    let secrets = vec![secret];
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let server_secret = Secret::new("server-secret-xyz");
    c.bench_function("join_request_cpu", |b| {
        b.iter(|| {
            let (parts, ()) = Request::get(black_box(uri.as_str())).body(()).unwrap().into_parts();
            let unverified = Unverified::parse(&JOIN, &parts, bytes::Bytes::new()).unwrap();
            let request =
                runtime.block_on(unverified.verify(JOIN.name, &secrets, AlgorithmSet::default_set())).unwrap();
            let params = forwarded_params(&request.params, &[], &[], &[], &[]);
            signed_url(
                "https://bbb1.example.edu/bigbluebutton/api",
                "join",
                &params.encode(),
                &server_secret,
                Algorithm::Sha256,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
