//! Any datagram as an NTS-authenticated SNTP request (RFC 8915, section
//! 5): read, authenticated with a fixed server key, and (if it were ever
//! to authenticate) answered. No input may panic; nothing but a request
//! sealed with the key may authenticate; a reply is never longer than its
//! request. The client's reader takes the same bytes as a reply.
//!
//! cargo +nightly fuzz run nts_packet -- -max_total_time=600

#![no_main]

use hora_proto::nts::cookie::{self, CookieKey, KEY_LEN, NONCE_LEN};
use hora_proto::nts::packet::{self, Parsed, MAX_PACKET};
use hora_proto::nts::{Algorithm, Keys};
use hora_proto::sntp::PACKET_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = CookieKey { id: 1, key: [9; KEY_LEN] };
    if let Ok(Parsed::Nts(request)) = packet::read_request(data) {
        if let Ok(authenticated) = packet::authenticate(&request, std::slice::from_ref(&key)) {
            let header = [0u8; PACKET_LEN];
            let nonce = vec![1u8; authenticated.keys.algorithm.nonce_len()];
            let mut out = [0u8; MAX_PACKET];
            if let Some((len, _)) = packet::write_reply(
                &request,
                &authenticated,
                &header,
                &nonce,
                |keys, room| cookie::seal(&key, keys, &[2; NONCE_LEN], room),
                &mut out,
            ) {
                assert!(len <= data.len());
            }
        }
        let mut nak = [0u8; MAX_PACKET];
        assert!(packet::write_nak(&request, &mut nak) <= data.len());
    }
    if let Some(keys) = Keys::new(Algorithm::AesSivCmac256, &[3; 32], &[4; 32]) {
        let _ = packet::read_reply(data, &keys, &[5; 32]);
    }
    let _ = cookie::open(std::slice::from_ref(&key), data);
});
