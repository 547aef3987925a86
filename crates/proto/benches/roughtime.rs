//! Micro-benchmarks of Roughtime's request path (BENCHMARKS.md,
//! "Roughtime"): a request read and its leaf hashed (SHA-512 of the whole
//! 1024-byte request), and a batch answered (the tree, one signature, the
//! responses) at batch sizes 1, 16 and 64, so the signature's share per
//! request is visible.
//!
//! ```sh
//! cargo bench -p hora-proto --bench roughtime
//! ```

#![allow(missing_docs)] // criterion's macros generate undocumented items.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hora_proto::roughtime::client;
use hora_proto::roughtime::keys::LongTermKey;
use hora_proto::roughtime::request;
use hora_proto::roughtime::response::{Responder, Time};
use hora_proto::roughtime::version::Version;

fn request_path(c: &mut Criterion) {
    let Ok(long_term) = LongTermKey::from_seed(&[7; 32]) else {
        return;
    };
    let Ok(online) = long_term.delegate(&[9; 32], 1_000, 90_000) else {
        return;
    };
    let server = *long_term.server_hash();
    let packets: Vec<Vec<u8>> = (0..64u8)
        .map(|i| client::request(&[i; 32], &[Version::RFC], Some(&long_term.public_key())))
        .collect();
    let mut group = c.benchmark_group("roughtime");
    group.bench_function("read and hash a request", |b| {
        b.iter(|| request::parse(black_box(&packets[0]), &server).map(|r| r.accept().leaf[0]))
    });
    let accepted: Vec<_> = packets
        .iter()
        .filter_map(|p| request::parse(p, &server).ok().map(|r| r.accept()))
        .collect();
    let time = Time {
        midpoint: 2_000,
        radius: 1,
    };
    let mut responder = Responder::default();
    for size in [1usize, 16, 64] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_with_input(
            BenchmarkId::new("answer a batch", size),
            &size,
            |b, &size| {
                b.iter(|| {
                    let mut bytes = 0;
                    responder.answer(&online, &accepted[..size], time, |_, r| bytes += r.len());
                    bytes
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, request_path);
criterion_main!(benches);
