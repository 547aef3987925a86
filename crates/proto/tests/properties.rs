//! Properties of the protocol core over generated inputs (proptest): no input
//! panics, replies stay within their bounds, and every session ends exactly
//! once, on one path.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::time::{Duration, Instant};

use hora_proto::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
use hora_proto::wire::MAX_DATAGRAM;
use hora_proto::{decide, expire, parse, Effect, PeerState, Reply, Request, Rules, TimeReply};
use proptest::prelude::*;

/// The longest reply the seed's protocol has: the time reply.
fn longest_reply() -> usize {
    let time = TimeReply::render(chrono::DateTime::from_timestamp(0, 0).unwrap().naive_utc());
    time.as_bytes().len()
}

/// Datagrams a client might plausibly send, and garbage.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"login".to_vec()),
        Just(b"1".to_vec()),
        Just(b"2".to_vec()),
        "[ \\t\\r\\n]{0,2}[+-]?[0-9_]{0,4}[ \\t\\r\\n]{0,2}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec(any::<u8>(), 1000..1100),
    ]
}

proptest! {
    #[test]
    fn parsing_never_panics_and_respects_the_size_limit(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let parsed = parse(&data);
        if data.len() > MAX_DATAGRAM {
            prop_assert!(parsed.is_err());
        }
    }

    #[test]
    fn options_read_as_python_int_reads_them(n in any::<i64>(), sign in prop_oneof![Just(""), Just("+")], pad in "[ \\t\\n]{0,3}") {
        let text = format!("{pad}{sign}{n}{pad}");
        let expected = match n {
            _ if n < 0 && sign == "+" => Err(hora_proto::ParseError::NotANumber), // "+-1"
            1 => Ok(Request::Time),
            2 => Ok(Request::Logout),
            _ => Err(hora_proto::ParseError::UnknownOption),
        };
        prop_assert_eq!(parse(text.as_bytes()), expected);
    }

    #[test]
    fn a_session_ends_exactly_once_on_one_path(
        steps in proptest::collection::vec((datagram(), 0u64..15_000, any::<bool>()), 1..60),
    ) {
        let rules = Rules { idle_timeout: Duration::from_secs(10) };
        let start = Instant::now();
        let mut now = start;
        let mut deadline: Option<Instant> = None;
        let (mut opened, mut ended) = (0u32, 0u32);
        let bound = longest_reply();
        for (data, gap_ms, room) in steps {
            now += Duration::from_millis(gap_ms);
            // The idle timer fires first if the gap passed the deadline.
            if let Some(at) = deadline {
                if let Some(decision) = expire(at, now) {
                    prop_assert_eq!(decision.reply, Some(Reply::IdleNotice));
                    ended += 1;
                    deadline = None;
                }
            }
            let peer = match deadline {
                Some(_) => PeerState::LoggedIn,
                None => PeerState::NoSession { may_open: room },
            };
            let decision = decide(peer, parse(&data), now, rules);
            if let Some(reply) = decision.reply {
                let time = TimeReply::render(chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap().naive_utc());
                prop_assert!(reply.bytes(&time).len() <= bound);
            }
            match decision.effect {
                Effect::Open { idle_deadline } => {
                    prop_assert!(deadline.is_none(), "open only without a session");
                    prop_assert_eq!(idle_deadline, now + rules.idle_timeout);
                    opened += 1;
                    deadline = Some(idle_deadline);
                }
                Effect::Keep { idle_deadline } => {
                    prop_assert!(deadline.is_some(), "keep only with a session");
                    deadline = Some(idle_deadline);
                }
                Effect::End(_) => {
                    prop_assert!(deadline.is_some(), "end only with a session");
                    ended += 1;
                    deadline = None;
                }
                Effect::Refuse | Effect::Nothing => {
                    prop_assert!(deadline.is_none(), "a session always changes or ends");
                }
            }
        }
        prop_assert_eq!(opened, ended + u32::from(deadline.is_some()));
    }

    #[test]
    fn an_sntp_reply_is_never_larger_than_its_request_nor_answerable(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        first in any::<u8>(),
    ) {
        let mut data = data;
        if let Some(byte) = data.first_mut() {
            *byte = first;
        }
        if let Ok(request) = sntp::parse_request(&data) {
            let mut out = [0u8; PACKET_LEN];
            let stamp = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
            sntp::write_reply(&request, &ServerClock::default(), stamp, stamp, &mut out);
            prop_assert!(out.len() <= data.len());
            prop_assert!(sntp::parse_request(&out).is_err());
            prop_assert_eq!(&out[24..32], &data[40..48]);
        }
    }
}

/// What the client log is asked, in a generated order.
#[derive(Debug, Clone)]
enum LogStep {
    /// A reply logged with this receive time (a small number of ticks
    /// forward or back from the last, as datagrams stamped on several CPUs).
    Log(i16),
    /// The kernel's time for the reply `n` logs back.
    Sent(u8),
    /// An interleaved request naming the reply `n` logs back.
    Take(u8),
}

proptest! {
    /// Against a model that keeps every reply: the log never holds more
    /// than its capacity, answers a request only with the
    /// transmit time the kernel gave for the very reply it names, and each
    /// reply at most once. (Never more than 300 steps: keys stay unique.)
    #[test]
    fn the_client_log_answers_only_with_the_named_replys_own_time(
        capacity in 1usize..40,
        steps in proptest::collection::vec(prop_oneof![
            (-3i16..40).prop_map(LogStep::Log),
            any::<u8>().prop_map(LogStep::Sent),
            any::<u8>().prop_map(LogStep::Take),
        ], 0..300),
    ) {
        use hora_proto::interleave::{ClientLog, Earlier};
        use std::collections::HashMap;
        let mut log = ClientLog::new(capacity);
        let mut now: u64 = 1 << 40;
        let mut logged: Vec<u64> = Vec::new();
        let mut sent: HashMap<u64, u64> = HashMap::new();
        let mut used: HashMap<u64, bool> = HashMap::new();
        for step in steps {
            match step {
                LogStep::Log(delta) => {
                    // Unique keys (a key logged twice is the unit tests'):
                    // the step's serial in the low bits.
                    now = now.wrapping_add_signed(i64::from(delta) * 1024);
                    let receive = now & !1023 | logged.len() as u64;
                    log.log(receive);
                    logged.push(receive);
                }
                LogStep::Sent(back) => {
                    if let Some(&receive) = logged.iter().rev().nth(usize::from(back)) {
                        let transmit = receive + 5_000 + u64::from(back);
                        if log.sent(receive, transmit) {
                            sent.insert(receive, transmit);
                        }
                    }
                }
                LogStep::Take(back) => {
                    let Some(&receive) = logged.iter().rev().nth(usize::from(back)) else {
                        continue;
                    };
                    match log.take(receive) {
                        Earlier::Sent(transmit) => {
                            prop_assert_eq!(Some(&transmit), sent.get(&receive));
                            prop_assert!(!used.get(&receive).copied().unwrap_or(false), "used once");
                            used.insert(receive, true);
                        }
                        Earlier::NoTransmitTime => {
                            prop_assert!(!used.get(&receive).copied().unwrap_or(false));
                            used.insert(receive, true);
                        }
                        Earlier::Unknown => {}
                    }
                }
            }
            prop_assert!(log.len() <= capacity);
        }
    }
}
