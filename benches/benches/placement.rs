//! Server selection over large pools and parameter forwarding for create.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scalelite_core::Params;
use scalelite_core::params::{ParamList, forwarded_params};
use scalelite_core::selection::{Candidate, TagSpec, select};

fn bench(c: &mut Criterion) {
    let ids: Vec<String> = (0..500).map(|i| format!("server-{i:03}")).collect();
    let pool: Vec<Candidate<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| Candidate { id, load: (i * 37 % 500) as f64, tag: (i % 5 == 0).then_some("gpu"), exists: true })
        .collect();
    let mut group = c.benchmark_group("placement");
    let none = TagSpec::default();
    let gpu = TagSpec::parse(Some("gpu;none"));
    group.bench_function("select_500_untagged", |b| b.iter(|| select(black_box(&pool), &none)));
    group.bench_function("select_500_tags", |b| b.iter(|| select(black_box(&pool), &gpu)));

    let request = Params::parse(
        "meetingID=room-42&name=Room+42&record=true&moderatorPW=mp&attendeePW=ap&welcome=Hello&logoutURL=https%3A%2F%2Fgl.example.edu\
         &meta_bbb-origin=greenlight&meta_bbb-origin-version=v3&meta_bbb-recording-ready-url=https%3A%2F%2Fgl%2Fcb&checksum=abc",
    );
    let defaults: ParamList = vec![("muteOnStart".into(), "true".into())];
    let overrides: ParamList = vec![("record".into(), "false".into())];
    let exclude = vec!["welcome".to_owned()];
    group.bench_function("forward_create_params", |b| {
        b.iter(|| forwarded_params(black_box(&request), &[&exclude], &[&defaults], &[&overrides], &[]).encode())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
