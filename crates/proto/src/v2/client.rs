//! What a v2 client reads in the server's datagrams ([`read_server`]) and
//! the offset and round trip of a time answer ([`Answer::sample`]).
//!
//! A client takes a challenge or a welcome only with its login's nonce,
//! and an answer only with its session's token and a request id it sent:
//! anything else is a forger's or stale, and skipped.

use std::time::Duration;

use super::wire::{array, reply_of, ClockStatus, Cookie, Fields, Nonce, Token, V2Error};
use super::wire::{is_v2, ANSWER_TRANSMIT, CHALLENGE_LEN, COOKIE_LEN, NONCE_LEN, TOKEN_LEN};
use crate::sntp::NtpTimestamp;
use crate::wire::Reply;

/// A server datagram, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerDatagram<'a> {
    /// The answer to a login: send the cookie back to confirm.
    Challenge {
        /// The login's nonce, echoed.
        nonce: Nonce,
        /// The cookie to return.
        cookie: Cookie,
    },
    /// The answer to a confirmation.
    Welcome(Welcome<'a>),
    /// An answer in a session, or a notice (request id 0).
    Answer(Answer<'a>),
}

/// The answer to a confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Welcome<'a> {
    /// [`Reply::Menu`]: the session is open; [`Reply::Refused`]: the
    /// server is full.
    pub reply: Reply,
    /// The login's nonce, echoed.
    pub nonce: Nonce,
    /// The session's token.
    pub token: Token,
    /// How long the session may stay silent.
    pub idle_timeout: Duration,
    /// The seed's text for the reply.
    pub text: &'a [u8],
}

/// An answer in a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    /// Which of the seed's replies it is.
    pub reply: Reply,
    /// The leap indicator, as SNTP's.
    pub leap: u8,
    /// What the server's clock is (time answers only).
    pub status: Option<ClockStatus>,
    /// The request's id; 0 for a notice the server sent on its own.
    pub id: u64,
    /// The session's token.
    pub token: Token,
    /// When the request arrived at the server (t2).
    pub receive: NtpTimestamp,
    /// When the answer left it (t3).
    pub transmit: NtpTimestamp,
    /// The seed's text for the reply, byte for byte.
    pub text: &'a [u8],
}

/// How the server's clock stands against ours, from one time answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Offset {
    /// How far the server's clock is ahead of ours, in seconds.
    pub offset: f64,
    /// The round trip minus the server's own time, in seconds.
    pub delay: f64,
    /// The server's transmit time, seconds since the Unix epoch.
    pub server_time: f64,
    /// The leap indicator the answer carried, as SNTP's.
    pub leap: u8,
    /// What the server's clock is: an unsynchronized one's time is a guess.
    pub status: ClockStatus,
}

impl Answer<'_> {
    /// The offset and delay of a time answer to a request sent at `sent`
    /// and received at `received` (seconds since the Unix epoch, on our
    /// clock), as NTP computes them; `None` for any other answer.
    pub fn sample(&self, sent: f64, received: f64) -> Option<Offset> {
        let status = self.status.filter(|_| self.reply == Reply::Time)?;
        let t2 = self.receive.to_unix_seconds(received);
        let t3 = self.transmit.to_unix_seconds(received);
        Some(Offset {
            offset: ((t2 - sent) + (t3 - received)) / 2.0,
            delay: (received - sent) - (t3 - t2),
            server_time: t3,
            leap: self.leap,
            status,
        })
    }
}

/// Reads a server datagram.
pub fn read_server(datagram: &[u8]) -> Result<ServerDatagram<'_>, V2Error> {
    if !is_v2(datagram) {
        return Err(V2Error::NotV2);
    }
    let short = || V2Error::TooShort(datagram.len());
    let body = Fields::BODY;
    match datagram.get(Fields::TYPE) {
        Some(&Fields::CHALLENGE) => {
            if datagram.len() < CHALLENGE_LEN {
                return Err(short());
            }
            Ok(ServerDatagram::Challenge {
                nonce: Nonce(array(&datagram[body..])),
                cookie: Cookie(array::<COOKIE_LEN>(&datagram[body + NONCE_LEN..])),
            })
        }
        Some(&Fields::WELCOME) => {
            let text_at = Fields::WELCOME_TEXT;
            if datagram.len() < text_at {
                return Err(short());
            }
            let idle = u32::from_be_bytes(array(&datagram[text_at - 4..]));
            Ok(ServerDatagram::Welcome(Welcome {
                reply: reply_of(datagram[body]).ok_or(V2Error::Malformed)?,
                nonce: Nonce(array(&datagram[body + 1..])),
                token: Token(array::<TOKEN_LEN>(&datagram[body + 1 + NONCE_LEN..])),
                idle_timeout: Duration::from_millis(u64::from(idle)),
                text: &datagram[text_at..],
            }))
        }
        Some(&Fields::ANSWER) => {
            if datagram.len() < Fields::ANSWER_TEXT {
                return Err(short());
            }
            let reply = reply_of(datagram[body]).ok_or(V2Error::Malformed)?;
            let stamp =
                |at: usize| NtpTimestamp::from_u64(u64::from_be_bytes(array(&datagram[at..])));
            let status = match reply {
                Reply::Time => {
                    Some(ClockStatus::from_code(datagram[body + 2]).ok_or(V2Error::Malformed)?)
                }
                _ => None,
            };
            Ok(ServerDatagram::Answer(Answer {
                reply,
                leap: datagram[body + 1] & 0b11,
                status,
                id: u64::from_be_bytes(array(&datagram[Fields::ANSWER_ID..])),
                token: Token(array(&datagram[Fields::ANSWER_TOKEN..])),
                transmit: stamp(ANSWER_TRANSMIT),
                receive: stamp(Fields::ANSWER_RECEIVE),
                text: &datagram[Fields::ANSWER_TEXT..],
            }))
        }
        Some(&other) => Err(V2Error::UnknownType(other)),
        None => Err(short()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::wire::{write_answer, write_challenge, write_welcome, Stamps, REQUEST_LEN};
    use crate::wire::{LOGIN_MENU, SESSION_CLOSED};

    const NONCE: Nonce = Nonce([5; 16]);
    const TOKEN: Token = Token([6; 16]);

    #[test]
    fn a_challenge_and_a_welcome_read_back_as_written() {
        let cookie = Cookie([8; COOKIE_LEN]);
        let challenge = write_challenge(&NONCE, &cookie);
        assert_eq!(
            read_server(&challenge),
            Ok(ServerDatagram::Challenge {
                nonce: NONCE,
                cookie
            })
        );
        let mut out = [0u8; REQUEST_LEN];
        let len = write_welcome(
            Reply::Menu,
            &NONCE,
            &TOKEN,
            Duration::from_secs(10),
            &mut out,
        );
        let Ok(ServerDatagram::Welcome(welcome)) = read_server(&out[..len]) else {
            panic!("not a welcome");
        };
        assert_eq!(welcome.reply, Reply::Menu);
        assert_eq!((welcome.nonce, welcome.token), (NONCE, TOKEN));
        assert_eq!(welcome.idle_timeout, Duration::from_secs(10));
        assert_eq!(welcome.text, LOGIN_MENU.as_bytes());
    }

    #[test]
    fn a_time_answer_gives_ntps_offset_and_delay() {
        // The server's clock is 0.5 s ahead: the request left at 100.0 and
        // reached it at 100.5 + 0.001 (its clock), the answer left at
        // 100.5 + 0.002 and arrived at 100.003.
        let at = |s: f64| NtpTimestamp::from_unix(Duration::from_secs_f64(s));
        let stamps = Stamps {
            leap: 0,
            status: ClockStatus::Local,
            receive: at(100.501),
        };
        let mut out = [0u8; REQUEST_LEN];
        let len = write_answer(Reply::Time, b"\nData", &TOKEN, 9, Some(&stamps), &mut out);
        out[ANSWER_TRANSMIT..ANSWER_TRANSMIT + 8]
            .copy_from_slice(&at(100.502).to_u64().to_be_bytes());
        let Ok(ServerDatagram::Answer(answer)) = read_server(&out[..len]) else {
            panic!("not an answer");
        };
        assert_eq!((answer.id, answer.token), (9, TOKEN));
        assert_eq!(answer.status, Some(ClockStatus::Local));
        assert_eq!(answer.text, b"\nData");
        let sample = answer
            .sample(100.0, 100.003)
            .unwrap_or_else(|| panic!("no sample"));
        assert!((sample.offset - 0.5).abs() < 1e-6, "{sample:?}");
        assert!((sample.delay - 0.002).abs() < 1e-6, "{sample:?}");
    }

    #[test]
    fn only_a_time_answer_has_a_sample() {
        let mut out = [0u8; REQUEST_LEN];
        let text = SESSION_CLOSED.as_bytes();
        let len = write_answer(Reply::Closed, text, &TOKEN, 1, None, &mut out);
        let Ok(ServerDatagram::Answer(answer)) = read_server(&out[..len]) else {
            panic!("not an answer");
        };
        assert_eq!(answer.reply, Reply::Closed);
        assert_eq!(answer.sample(1.0, 2.0), None);
        assert_eq!(answer.text, text);
    }

    #[test]
    fn truncated_and_foreign_datagrams_are_errors() {
        let challenge = write_challenge(&NONCE, &Cookie([0; COOKIE_LEN]));
        for len in 0..challenge.len() {
            assert!(read_server(&challenge[..len]).is_err(), "{len}");
        }
        assert_eq!(read_server(b"Conexao encerrada"), Err(V2Error::NotV2));
    }
}
