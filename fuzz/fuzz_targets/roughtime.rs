//! Any datagram as a Roughtime request (RFC 10049), and as a response:
//! read and checked with a fixed server key; if accepted, answered in a
//! batch beside a good request. No input may panic; a response is never
//! longer than its request; every response made verifies with the client's
//! checks; and the client's checks take any bytes as a response without
//! panicking (and never verify them: they are not signed by the key).
//!
//! cargo +nightly fuzz run roughtime -- -max_total_time=600

#![no_main]

use hora_proto::roughtime::client;
use hora_proto::roughtime::keys::LongTermKey;
use hora_proto::roughtime::request;
use hora_proto::roughtime::response::{Responder, Time};
use hora_proto::roughtime::version::Version;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(long_term) = LongTermKey::from_seed(&[7; 32]) else {
        return;
    };
    let Ok(online) = long_term.delegate(&[9; 32], 1_000, 90_000) else {
        return;
    };
    let public = long_term.public_key();
    let good = client::request(&[1; 32], &[Version::RFC], Some(&public));
    if let Ok(fuzzed) = request::parse(data, long_term.server_hash()) {
        let batch = [
            fuzzed.accept(),
            request::parse(&good, long_term.server_hash())
                .map(|r| r.accept())
                .unwrap_or_else(|_| fuzzed.accept()),
        ];
        let time = Time { midpoint: 2_000, radius: 1 };
        Responder::default().answer(&online, &batch, time, |index, response| {
            let asked: &[u8] = if index == 0 { data } else { &good };
            assert!(response.len() <= asked.len());
            assert!(client::verify(asked, response, &public).is_ok());
        });
    }
    assert!(client::verify(&good, data, &public).is_err());
});
