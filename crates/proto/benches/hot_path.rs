//! Micro-benchmarks of the protocol's hot path: one datagram in, one out.
//!
//! ```sh
//! cargo bench -p hora-proto
//! ```

#![allow(missing_docs)] // criterion's macros generate undocumented items.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use hora_proto::ratelimit::{RateLimit, RateLimiter};
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

/// A token from the rate limiter at the defaults' size, for a source with
/// an entry and for one that takes another's (every set full).
fn rate_limit(c: &mut Criterion) {
    let limit = RateLimit {
        rate: 20.0,
        burst: 40.0,
    };
    let start = Instant::now();
    let mut limiter = RateLimiter::new(limit, 16_384, start);
    for n in 0..100_000u32 {
        limiter.check(IpAddr::from((0x0A00_0000 + n).to_be_bytes()), start);
    }
    let known = IpAddr::from([10, 0, 0, 1]);
    c.bench_function("rate limit, a source with an entry", |b| {
        b.iter(|| limiter.check(black_box(known), start))
    });
    let mut stranger = 0x0B00_0000u32;
    c.bench_function("rate limit, a newcomer", |b| {
        b.iter(|| {
            stranger = stranger.wrapping_add(1);
            limiter.check(black_box(IpAddr::from(stranger.to_be_bytes())), start)
        })
    });
}

criterion_group!(
    benches,
    parse_requests,
    render_replies,
    state_machine_step,
    rate_limit
);
criterion_main!(benches);
