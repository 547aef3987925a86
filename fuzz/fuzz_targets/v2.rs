//! Any datagram through protocol v2's readers: the server's
//! (`parse_client`) and the client's (`read_server`). No input may panic;
//! whatever the server would answer to a datagram it reads is no larger
//! than that datagram, and is never itself a client message (two servers
//! can't loop on each other's answers).
//!
//! cargo +nightly fuzz run v2 -- -max_total_time=600

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hora_proto::sntp::NtpTimestamp;
use hora_proto::v2::client::read_server;
use hora_proto::v2::wire::{self, Stamps, REQUEST_LEN};
use hora_proto::v2::{parse_client, ClientMessage, ClockStatus, CookieKey, Token};
use hora_proto::{decide, PeerState, Reply, Rules, TimeReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(answer) = read_server(data).ok().and_then(|d| match d {
        hora_proto::v2::client::ServerDatagram::Answer(answer) => Some(answer),
        _ => None,
    }) {
        let _ = answer.sample(1.0, 2.0);
    }
    let Ok(message) = parse_client(data) else {
        return;
    };
    let now = Instant::now();
    let peer = SocketAddr::from(([192, 0, 2, 1], 1234));
    let key = CookieKey::new([7; 16], now);
    let mut out = [0u8; REQUEST_LEN];
    let answer: Vec<u8> = match message {
        ClientMessage::Login { nonce } => {
            wire::write_challenge(&nonce, &key.issue(peer, &nonce, now)).to_vec()
        }
        ClientMessage::Confirm { nonce, cookie } => {
            assert!(!key.check(peer, &nonce, &cookie, now) || data.len() >= REQUEST_LEN);
            let len = wire::write_welcome(Reply::Menu, &nonce, &Token([1; 16]), Duration::from_secs(10), &mut out);
            out[..len].to_vec()
        }
        ClientMessage::Request { token, id, .. } => {
            let rules = Rules::default();
            let decision = decide(PeerState::LoggedIn, message.request(), now, rules);
            let reply = decision.reply.unwrap_or(Reply::NoSession);
            let time = TimeReply::render(
                chrono::DateTime::from_timestamp(1_700_000_000, 0)
                    .map(|t| t.naive_utc())
                    .unwrap_or_default(),
            );
            let stamps = Stamps {
                leap: 0,
                status: ClockStatus::Synchronized,
                receive: NtpTimestamp::default(),
            };
            let len = wire::write_answer(reply, reply.bytes(&time), &token, id, Some(&stamps), &mut out);
            out[..len].to_vec()
        }
    };
    assert!(answer.len() <= data.len(), "an answer larger than its request");
    assert!(parse_client(&answer).is_err(), "an answer must never be answered");
    assert!(read_server(&answer).is_ok());
});
