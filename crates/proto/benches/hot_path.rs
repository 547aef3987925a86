//! Micro-benchmarks of the protocol's hot path: one datagram in, one out.
//!
//! ```sh
//! cargo bench -p hora-proto
//! ```

#![allow(missing_docs)] // criterion's macros generate undocumented items.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use hora_proto::{decide, parse, PeerState, Reply, Rules, TimeReply};

fn parse_requests(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let garbage = vec![b'x'; 1024];
    for (name, datagram) in [
        ("time", &b"1"[..]),
        ("login", b"login"),
        ("padded option", b"  +01\r\n"),
        ("garbage 1024 bytes", &garbage),
    ] {
        group.bench_function(name, |b| b.iter(|| parse(black_box(datagram))));
    }
    group.finish();
}

fn render_replies(c: &mut Criterion) {
    let local = chrono::Local::now().naive_local();
    c.bench_function("render time reply (once a second)", |b| {
        b.iter(|| TimeReply::render(black_box(local)))
    });
    let time = TimeReply::render(local);
    c.bench_function("reply bytes (every request)", |b| {
        b.iter(|| black_box(Reply::Time).bytes(&time).len())
    });
}

fn state_machine_step(c: &mut Criterion) {
    let now = Instant::now();
    let rules = Rules::default();
    c.bench_function("parse + decide, logged-in time request", |b| {
        b.iter(|| decide(PeerState::LoggedIn, parse(black_box(b"1")), now, rules))
    });
}

criterion_group!(benches, parse_requests, render_replies, state_machine_step);
criterion_main!(benches);
