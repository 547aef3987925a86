//! Any bytes as an NTS-KE message (RFC 8915, section 4), both ways: the
//! server's reader of requests and the client's reader of answers. No
//! input may panic; a complete request must be answerable, and the
//! server's answer must read back on the client side.
//!
//! cargo +nightly fuzz run nts_ke -- -max_total_time=600

#![no_main]

use hora_proto::nts::ke::{self, Progress, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Progress::Complete(request)) = ke::read_request(data) {
        let cookies: [&[u8]; 1] = [&[7; 104]];
        let response = match Response::choose(&request) {
            Ok(algorithm) => Response::Accept { algorithm, cookies: &cookies, server: None, port: None },
            Err(refusal) => refusal,
        };
        let mut out = Vec::new();
        response.write(&mut out);
        assert!(!matches!(ke::read_response(&out), Ok(Progress::Incomplete)));
    }
    let _ = ke::read_response(data);
});
