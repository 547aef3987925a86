//! The server's session state machine, as pure functions of their inputs.
//!
//! A session exists from a `login` until it ends on exactly one of four paths
//! ([`EndReason`]). The seed's server had one session and quit when it ended;
//! hora keeps one per peer and keeps running, so it must also say what a peer
//! without a session gets. The driver (the daemon) owns the sessions and the
//! clock: it passes in whether the peer has a session, the parsed datagram and
//! `now`, and carries out the [`Decision`] it gets back.

use std::time::{Duration, Instant};

use crate::request::{ParseError, Request};
use crate::wire::Reply;

/// The protocol's tunable rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// How long a session may stay silent before it ends (the seed: 10 s).
    pub idle_timeout: Duration,
}

impl Default for Rules {
    /// The seed's rules.
    fn default() -> Self {
        Rules {
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What the server knows of a peer when one of its datagrams arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// The peer has an open session.
    LoggedIn,
    /// The peer has no session; `may_open` says whether the server's limits
    /// leave room for a new one.
    NoSession {
        /// Whether a `login` from this peer may open a session now.
        may_open: bool,
    },
}

/// How a session ended. Each session ends exactly once, on one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The session had not asked for the time since its login, and a new
    /// login needed its place (see [`displace`]).
    Displaced,
    /// The peer chose option `2`.
    Logout,
    /// The peer sent something other than `login`, `1` or `2`.
    InvalidOption,
    /// The peer was silent for the whole idle timeout.
    IdleTimeout,
    /// The server is shutting down.
    Shutdown,
}

/// What becomes of the peer's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A new session opens and idles out at `idle_deadline`.
    Open {
        /// When the session ends unless the peer speaks again.
        idle_deadline: Instant,
    },
    /// The open session goes on, with a new idle deadline.
    Keep {
        /// When the session ends unless the peer speaks again.
        idle_deadline: Instant,
    },
    /// The open session ends.
    End(EndReason),
    /// A `login` was refused by the server's limits; no session opens.
    Refuse,
    /// The peer had no session and still has none.
    Nothing,
}

/// The state machine's answer: what to send and what becomes of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The datagram to send back to the peer, if any.
    pub reply: Option<Reply>,
    /// What becomes of the peer's session.
    pub effect: Effect,
}

/// Decides what a datagram from a peer does, at `now`.
///
/// | peer         | request             | reply           | effect          |
/// |--------------|---------------------|-----------------|-----------------|
/// | no session   | `login`             | menu            | open            |
/// | no session   | `login`, at limit   | refused         | refuse          |
/// | no session   | `2`                 | closed          | nothing         |
/// | no session   | `1`, another number | no session      | nothing         |
/// | no session   | other text, too long, not UTF-8 | none (dropped) | nothing |
/// | logged in    | `login`             | menu            | keep            |
/// | logged in    | `1`                 | time            | keep            |
/// | logged in    | `2`                 | closed          | end: logout     |
/// | logged in    | anything else       | invalid option  | end: invalid    |
///
/// A repeated `login` keeps the session because a client may have resent it
/// after a lost reply; `2` from a peer without a session is answered as a
/// logout so that a resent logout is harmless.
///
/// A peer without a session is answered only when it sends a request of the
/// protocol (`login` or a number, a menu option): text that is neither may be
/// another server's reply, forged to start a loop (see [`crate::loop_guard`]),
/// and none of the server's own messages is a request.
pub fn decide(
    peer: PeerState,
    request: Result<Request, ParseError>,
    now: Instant,
    rules: Rules,
) -> Decision {
    let idle_deadline = now + rules.idle_timeout;
    let (reply, effect) = match (peer, request) {
        (PeerState::LoggedIn, Ok(Request::Login)) => (Reply::Menu, Effect::Keep { idle_deadline }),
        (PeerState::LoggedIn, Ok(Request::Time)) => (Reply::Time, Effect::Keep { idle_deadline }),
        (PeerState::LoggedIn, Ok(Request::Logout)) => {
            (Reply::Closed, Effect::End(EndReason::Logout))
        }
        (PeerState::LoggedIn, Err(_)) => {
            (Reply::InvalidOption, Effect::End(EndReason::InvalidOption))
        }
        (PeerState::NoSession { may_open: true }, Ok(Request::Login)) => {
            (Reply::Menu, Effect::Open { idle_deadline })
        }
        (PeerState::NoSession { may_open: false }, Ok(Request::Login)) => {
            (Reply::Refused, Effect::Refuse)
        }
        (PeerState::NoSession { .. }, Ok(Request::Logout)) => (Reply::Closed, Effect::Nothing),
        (PeerState::NoSession { .. }, Ok(Request::Time) | Err(ParseError::UnknownOption)) => {
            (Reply::NoSession, Effect::Nothing)
        }
        (
            PeerState::NoSession { .. },
            Err(ParseError::NotANumber | ParseError::TooLong(_) | ParseError::NotUtf8),
        ) => {
            return Decision {
                reply: None,
                effect: Effect::Nothing,
            }
        }
    };
    Decision {
        reply: Some(reply),
        effect,
    }
}

/// Whether a peer without a session gets an answer to `request`, whatever the
/// room for a session (a `login` gets the menu or a refusal): what a server
/// may check before it looks for room, as the overload shedding does.
pub fn answers_stranger(request: &Result<Request, ParseError>) -> bool {
    !matches!(
        request,
        Err(ParseError::NotANumber | ParseError::TooLong(_) | ParseError::NotUtf8)
    )
}

/// Decides whether a session whose deadline is `idle_deadline` has idled out
/// at `now`: if so it ends, and the peer is sent the idle notice.
pub fn expire(idle_deadline: Instant, now: Instant) -> Option<Decision> {
    (now >= idle_deadline).then_some(Decision {
        reply: Some(Reply::IdleNotice),
        effect: Effect::End(EndReason::IdleTimeout),
    })
}

/// Whether `request`, from a peer with a session, establishes it: a session
/// that has asked for the time is someone's, and is never displaced. A
/// session that has only logged in (perhaps more than once) may be what a
/// forged `login` left behind.
pub fn establishes(request: &Result<Request, ParseError>) -> bool {
    matches!(request, Ok(Request::Time))
}

/// What a session that has not asked for the time since its login gets when
/// a new `login` needs its place, the server's limits being reached: it ends,
/// and is told the server is full.
///
/// Without it, forged logins (a source address costs a forger nothing on a
/// LAN) would fill the session limits and lock every real client out until
/// they idled out. The oldest such session goes first; a session that has
/// asked for the time ([`establishes`]) is never displaced.
pub fn displace() -> Decision {
    Decision {
        reply: Some(Reply::Refused),
        effect: Effect::End(EndReason::Displaced),
    }
}

/// What an open session gets when the server shuts down.
pub fn shut_down() -> Decision {
    Decision {
        reply: Some(Reply::ShutdownNotice),
        effect: Effect::End(EndReason::Shutdown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    const LOGGED_IN: PeerState = PeerState::LoggedIn;
    const NEW: PeerState = PeerState::NoSession { may_open: true };
    const FULL: PeerState = PeerState::NoSession { may_open: false };

    fn rules() -> Rules {
        Rules {
            idle_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_stranger_is_answered_exactly_when_decide_gives_it_a_reply() {
        let now = Instant::now();
        let datagrams: [&[u8]; 9] = [
            b"login",
            b"1",
            b"2",
            b"3",
            b"-1",
            b"oi",
            b"",
            b"\xff",
            &[b'1'; 300],
        ];
        for datagram in datagrams {
            let request = parse(datagram);
            for state in [NEW, FULL] {
                assert_eq!(
                    answers_stranger(&request),
                    decide(state, request, now, rules()).reply.is_some(),
                    "{datagram:?} {state:?}"
                );
            }
        }
    }

    #[test]
    fn follows_the_transition_table() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(10);
        let keep = Effect::Keep {
            idle_deadline: deadline,
        };
        let open = Effect::Open {
            idle_deadline: deadline,
        };
        let table: &[(PeerState, &[u8], Option<Reply>, Effect)] = &[
            (NEW, b"login", Some(Reply::Menu), open),
            (FULL, b"login", Some(Reply::Refused), Effect::Refuse),
            (NEW, b"2", Some(Reply::Closed), Effect::Nothing),
            (FULL, b"2", Some(Reply::Closed), Effect::Nothing),
            (NEW, b"1", Some(Reply::NoSession), Effect::Nothing),
            (NEW, b"3", Some(Reply::NoSession), Effect::Nothing),
            (NEW, b"-1", Some(Reply::NoSession), Effect::Nothing),
            (NEW, b"oi", None, Effect::Nothing),
            (NEW, b"", None, Effect::Nothing),
            (
                NEW,
                crate::wire::NO_SESSION.as_bytes(),
                None,
                Effect::Nothing,
            ),
            (NEW, b"\xff\xfe", None, Effect::Nothing),
            (NEW, &[b'x'; 2000], None, Effect::Nothing),
            (LOGGED_IN, b"login", Some(Reply::Menu), keep),
            (LOGGED_IN, b"1", Some(Reply::Time), keep),
            (LOGGED_IN, b"1\n", Some(Reply::Time), keep),
            (
                LOGGED_IN,
                b"2",
                Some(Reply::Closed),
                Effect::End(EndReason::Logout),
            ),
            (
                LOGGED_IN,
                b"3",
                Some(Reply::InvalidOption),
                Effect::End(EndReason::InvalidOption),
            ),
            (
                LOGGED_IN,
                b"1.0",
                Some(Reply::InvalidOption),
                Effect::End(EndReason::InvalidOption),
            ),
            (
                LOGGED_IN,
                b"\xff",
                Some(Reply::InvalidOption),
                Effect::End(EndReason::InvalidOption),
            ),
            (
                LOGGED_IN,
                &[b'1'; 2000],
                Some(Reply::InvalidOption),
                Effect::End(EndReason::InvalidOption),
            ),
        ];
        for (peer, datagram, reply, effect) in table {
            let decision = decide(*peer, parse(datagram), now, rules());
            assert_eq!(
                decision,
                Decision {
                    reply: *reply,
                    effect: *effect
                },
                "{peer:?} sends {:?}",
                String::from_utf8_lossy(datagram)
            );
        }
    }

    #[test]
    fn every_request_moves_the_idle_deadline_by_the_timeout() {
        let start = Instant::now();
        let later = start + Duration::from_secs(7);
        let rules = Rules {
            idle_timeout: Duration::from_millis(500),
        };
        let decision = decide(LOGGED_IN, Ok(Request::Time), later, rules);
        assert_eq!(
            decision.effect,
            Effect::Keep {
                idle_deadline: later + Duration::from_millis(500)
            }
        );
    }

    #[test]
    fn expiry_fires_at_the_deadline_and_not_before() {
        let deadline = Instant::now() + Duration::from_secs(10);
        assert_eq!(expire(deadline, deadline - Duration::from_nanos(1)), None);
        let at = expire(deadline, deadline).expect("expires at its deadline");
        assert_eq!(at.reply, Some(Reply::IdleNotice));
        assert_eq!(at.effect, Effect::End(EndReason::IdleTimeout));
        assert!(expire(deadline, deadline + Duration::from_secs(1)).is_some());
    }

    #[test]
    fn only_asking_for_the_time_establishes_a_session() {
        assert!(establishes(&Ok(Request::Time)));
        assert!(!establishes(&Ok(Request::Login)));
        assert!(!establishes(&Ok(Request::Logout)));
        assert!(!establishes(&Err(ParseError::NotANumber)));
    }

    #[test]
    fn a_displaced_session_ends_and_is_told_the_server_is_full() {
        assert_eq!(
            displace(),
            Decision {
                reply: Some(Reply::Refused),
                effect: Effect::End(EndReason::Displaced)
            }
        );
    }

    #[test]
    fn shutdown_ends_the_session_with_a_notice() {
        assert_eq!(
            shut_down(),
            Decision {
                reply: Some(Reply::ShutdownNotice),
                effect: Effect::End(EndReason::Shutdown)
            }
        );
    }

    #[test]
    fn default_rules_are_the_seeds() {
        assert_eq!(Rules::default().idle_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_whole_conversation_in_memory() {
        // Figure 5 of the seed: login, 1, 1, 2.
        let mut now = Instant::now();
        let mut peer = NEW;
        let mut replies = Vec::new();
        for datagram in [&b"login"[..], b"1", b"1", b"2"] {
            let decision = decide(peer, parse(datagram), now, rules());
            replies.extend(decision.reply);
            peer = match decision.effect {
                Effect::Open { idle_deadline } | Effect::Keep { idle_deadline } => {
                    assert!(expire(idle_deadline, now).is_none());
                    LOGGED_IN
                }
                Effect::End(reason) => {
                    assert_eq!(reason, EndReason::Logout);
                    NEW
                }
                other => panic!("unexpected {other:?}"),
            };
            now += Duration::from_secs(5);
        }
        assert_eq!(
            replies,
            [Reply::Menu, Reply::Time, Reply::Time, Reply::Closed]
        );
        assert_eq!(peer, NEW);
    }
}
