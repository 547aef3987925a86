//! Micro-benchmarks of NTS's request path, per AEAD: the cookie opened and
//! sealed, the request authenticated, the reply sealed (BENCHMARKS.md,
//! "NTS").
//!
//! ```sh
//! cargo bench -p hora-proto --bench nts
//! ```

#![allow(missing_docs)] // criterion's macros generate undocumented items.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hora_proto::nts::cookie::{self, CookieCipher, CookieKey, KEY_LEN, MAX_COOKIE_LEN, NONCE_LEN};
use hora_proto::nts::packet::{self, Parsed, MAX_PACKET};
use hora_proto::nts::{Algorithm, Keys};
use hora_proto::sntp::{self, NtpTimestamp, PACKET_LEN};

fn request_path(c: &mut Criterion) {
    let key = CookieKey {
        id: 1,
        key: [7; KEY_LEN],
    };
    for algorithm in Algorithm::PREFERRED {
        let len = algorithm.key_len();
        let Some(keys) = Keys::new(algorithm, &vec![1; len], &vec![2; len]) else {
            return;
        };
        let mut ciphers = vec![CookieCipher::new(&key).unwrap_or_else(|| unreachable!())];
        let mut sealed = [0u8; MAX_COOKIE_LEN];
        let cookie_len =
            cookie::seal_with(&mut ciphers[0], &keys, &[3; NONCE_LEN], &mut sealed).unwrap_or(0);
        let nonce = vec![4u8; algorithm.nonce_len()];
        let header = sntp::client_request(NtpTimestamp::default());
        let request =
            packet::write_request(&header, &keys, &sealed[..cookie_len], 0, &[5; 32], &nonce)
                .unwrap_or_default();
        let name = format!("{algorithm:?}");
        let mut group = c.benchmark_group(format!("nts {name}"));
        group.bench_function("cookie open", |b| {
            b.iter(|| cookie::open_with(&mut ciphers, black_box(&sealed[..cookie_len])))
        });
        group.bench_function("cookie seal", |b| {
            let mut out = [0u8; MAX_COOKIE_LEN];
            b.iter(|| {
                cookie::seal_with(&mut ciphers[0], black_box(&keys), &[3; NONCE_LEN], &mut out)
            })
        });
        let Ok(Parsed::Nts(parsed)) = packet::read_request(&request) else {
            return;
        };
        group.bench_function("read and authenticate a request", |b| {
            b.iter(|| {
                let Ok(Parsed::Nts(parsed)) = packet::read_request(black_box(&request)) else {
                    return None;
                };
                packet::authenticate_with(&parsed, &mut ciphers).ok()
            })
        });
        let Ok(authenticated) = packet::authenticate_with(&parsed, &mut ciphers) else {
            return;
        };
        group.bench_function("seal the reply with a fresh cookie", |b| {
            let mut out = [0u8; MAX_PACKET];
            let reply_header = [0u8; PACKET_LEN];
            b.iter(|| {
                packet::write_reply(
                    &parsed,
                    &authenticated,
                    &reply_header,
                    &nonce,
                    |keys, room| cookie::seal_with(&mut ciphers[0], keys, &[6; NONCE_LEN], room),
                    &mut out,
                )
            })
        });
        group.finish();
    }
}

criterion_group!(benches, request_path);
criterion_main!(benches);
