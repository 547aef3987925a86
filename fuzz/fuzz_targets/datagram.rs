//! Any datagram, through everything in `hora_proto` that reads one: the
//! request parser and the state machine in every peer state, the client's
//! reader, and the SNTP parser and reply writer. No input may panic, and no
//! reply may exceed its bound.
//!
//! cargo +nightly fuzz run datagram -- -max_total_time=600

#![no_main]

use std::time::{Duration, Instant};

use hora_proto::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
use hora_proto::{decide, parse, PeerState, Rules, ServerMessage, TimeReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let time = TimeReply::render(chrono_free_time());
    let rules = Rules { idle_timeout: Duration::from_secs(10) };
    for peer in [
        PeerState::LoggedIn,
        PeerState::NoSession { may_open: true },
        PeerState::NoSession { may_open: false },
    ] {
        let decision = decide(peer, parse(data), now, rules);
        if let Some(reply) = decision.reply {
            assert!(reply.bytes(&time).len() <= 160);
        }
    }
    let _ = hora_proto::loop_guard::stateless_may_answer(40_000, &[5005], data);
    let message = ServerMessage::read(data);
    let _ = message.text();
    if let Ok(request) = sntp::parse_request(data) {
        let mut out = [0u8; PACKET_LEN];
        let stamp = NtpTimestamp::from_unix(Duration::from_secs(1));
        sntp::write_reply(&request, &ServerClock::default(), stamp, stamp, &mut out);
        assert!(out.len() <= data.len());
        assert!(sntp::parse_request(&out).is_err(), "a reply must never be answered");
    }
});

/// A fixed wall-clock time, so runs are reproducible.
fn chrono_free_time() -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000, 0)
        .map(|t| t.naive_utc())
        .unwrap_or_default()
}
