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

mod v2 {
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use hora_proto::sntp::NtpTimestamp;
    use hora_proto::v2::client::{read_server, ServerDatagram};
    use hora_proto::v2::wire::{
        self, code, confirm, login, reply_of, request, Stamps, REQUEST_LEN,
    };
    use hora_proto::v2::{parse_client, without_session, ClientMessage, ClockStatus, Cookie};
    use hora_proto::v2::{CookieKey, Nonce, Token};
    use hora_proto::wire::MAX_DATAGRAM;
    use hora_proto::{decide, Effect, PeerState, Reply, Request, Rules};
    use proptest::prelude::*;

    fn peer() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
    }

    proptest! {
        #[test]
        fn reading_any_datagram_never_panics_and_short_ones_are_refused(
            data in proptest::collection::vec(any::<u8>(), 0..1100),
            magic in any::<bool>(),
        ) {
            let mut data = data;
            if magic {
                data.splice(0..0, wire::MAGIC.iter().copied());
            }
            if let Ok(message) = parse_client(&data) {
                prop_assert!((REQUEST_LEN..=MAX_DATAGRAM).contains(&data.len()), "{message:?}");
            }
            let _ = read_server(&data);
        }

        #[test]
        fn every_client_message_reads_back_as_written(
            nonce in any::<[u8; 16]>(),
            cookie in any::<[u8; 20]>(),
            token in any::<[u8; 16]>(),
            option in any::<u8>(),
            id in any::<u64>(),
        ) {
            let (nonce, cookie, token) = (Nonce(nonce), Cookie(cookie), Token(token));
            prop_assert_eq!(parse_client(&login(&nonce)), Ok(ClientMessage::Login { nonce }));
            prop_assert_eq!(
                parse_client(&confirm(&nonce, &cookie)),
                Ok(ClientMessage::Confirm { nonce, cookie })
            );
            prop_assert_eq!(
                parse_client(&request(option, &token, id)),
                Ok(ClientMessage::Request { option, token, id })
            );
        }

        #[test]
        fn a_server_answer_is_never_larger_than_a_request_nor_a_request_itself(
            reply in 1u8..=8,
            text in proptest::collection::vec(any::<u8>(), 0..400),
            token in any::<[u8; 16]>(),
            id in any::<u64>(),
            receive in any::<u64>(),
        ) {
            let reply = reply_of(reply).unwrap();
            let stamps = Stamps {
                leap: 0,
                status: ClockStatus::Local,
                receive: NtpTimestamp::from_u64(receive),
            };
            let mut out = [0u8; REQUEST_LEN];
            let len = wire::write_answer(reply, &text, &Token(token), id, Some(&stamps), &mut out);
            prop_assert!(len <= REQUEST_LEN);
            prop_assert!(parse_client(&out[..len]).is_err());
            let Ok(ServerDatagram::Answer(answer)) = read_server(&out[..len]) else {
                return Err(TestCaseError::fail("not read back"));
            };
            prop_assert_eq!((answer.reply, answer.id, answer.token), (reply, id, Token(token)));
            prop_assert_eq!(code(answer.reply), code(reply));
        }

        #[test]
        fn a_cookie_checks_only_for_the_address_and_nonce_it_was_issued_to(
            key in any::<[u8; 16]>(),
            (a, b) in (peer(), peer()),
            (n, m) in (any::<[u8; 16]>(), any::<[u8; 16]>()),
            later in 0u64..200,
        ) {
            let start = Instant::now();
            let key = CookieKey::new(key, start);
            let (n, m) = (Nonce(n), Nonce(m));
            let cookie = key.issue(a, &n, start);
            let at = start + Duration::from_secs(later);
            prop_assert_eq!(key.check(a, &n, &cookie, at), later < 120);
            if b != a {
                prop_assert!(!key.check(b, &n, &cookie, start));
            }
            if m != n {
                prop_assert!(!key.check(a, &m, &cookie, start));
            }
        }

        #[test]
        fn a_request_means_in_a_session_what_its_menu_option_means(option in any::<u8>(), token in any::<[u8; 16]>()) {
            let message = ClientMessage::Request { option, token: Token(token), id: 1 };
            let now = Instant::now();
            let decision = decide(PeerState::LoggedIn, message.request(), now, Rules::default());
            let expected = match option {
                0 => (Reply::Menu, true),
                1 => (Reply::Time, true),
                2 => (Reply::Closed, false),
                _ => (Reply::InvalidOption, false),
            };
            prop_assert_eq!(decision.reply, Some(expected.0));
            prop_assert_eq!(matches!(decision.effect, Effect::Keep { .. }), expected.1);
            // Without a session, no option opens one or gets the time.
            let stranger = without_session(message.request());
            prop_assert!(matches!(stranger, Reply::NoSession | Reply::Closed));
            prop_assert_eq!(stranger == Reply::Closed, message.request() == Ok(Request::Logout));
        }
    }
}
