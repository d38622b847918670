//! Checksum verification as done for every API call.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scalelite_core::checksum::{self, Algorithm, AlgorithmSet, CheckString, find_checksum};
use scalelite_core::{Params, Secret};

/// A Greenlight-style join query (sorted, Ruby encoding).
const JOIN: &str = "avatarURL=https%3A%2F%2Fgl.example.edu%2Favatars%2F42.png&createTime=1715261728123&fullName=Ada+Lovelace&meetingID=room-42-abcdef&password=&role=viewer&userID=gl-user-1234567890";

fn bench(c: &mut Criterion) {
    let secrets = vec![Secret::new("0123456789abcdef0123456789abcdef0123456789")];
    let three = vec![Secret::new("old-secret-1"), Secret::new("old-secret-2"), secrets[0].clone()];
    let all = AlgorithmSet::default_set();
    let mut group = c.benchmark_group("checksum");
    // Baseline: hashing the same bytes once, without parsing or comparing.
    group.bench_function("baseline_sha1_digest", |b| {
        b.iter(|| Algorithm::Sha1.digest(&[b"join", black_box(JOIN).as_bytes(), secrets[0].expose().as_bytes()]))
    });
    for alg in Algorithm::ALL {
        let sum = alg.sign("join", JOIN, &secrets[0]);
        let query = format!("{JOIN}&checksum={sum}");
        group.bench_function(format!("verify_{}", alg.name().to_lowercase()), |b| {
            b.iter(|| {
                let raw = black_box(query.as_bytes());
                let _params = Params::parse_limited(raw, 1000).unwrap();
                let pair = find_checksum(raw).unwrap().unwrap();
                let check = pair.check_string();
                let candidates: [&dyn CheckString; 1] = [&check];
                checksum::verify_check_strings("join", &candidates, &pair.value, &secrets, all).unwrap()
            })
        });
    }
    let sum = Algorithm::Sha256.sign("join", JOIN, &secrets[0]);
    group.bench_function("verify_sha256_three_secrets", |b| {
        b.iter(|| checksum::verify("join", &[black_box(JOIN)], &sum, &three, all).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
