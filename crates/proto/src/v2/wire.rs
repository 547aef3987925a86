//! The bytes of protocol v2: what a client sends ([`parse_client`] reads
//! it, [`login`], [`confirm`] and [`request`] write it) and what the server
//! answers ([`write_challenge`], [`write_welcome`], [`write_answer`]).
//!
//! Every datagram starts with [`MAGIC`], eight whitespace characters that
//! begin and end with a newline: no datagram of the seed's client can (it
//! sends `login` and lines typed at `input()`, which never hold a newline),
//! and every one of them is answered by the seed's rules as before.
//!
//! A login is all whitespace but one `1` (its nonce is written in four
//! whitespace characters, two bits each): the seed's own Python server,
//! which reads every datagram after `login` with `int(data.decode())` and
//! quits on anything else, reads it as option 1 and answers the time, as
//! does a horad older than v2. That answer, instead of a challenge, is how
//! `hora` knows to go on in the seed's protocol, at once, without ever
//! sending the seed's server a datagram it would die of.
//!
//! Every client datagram is at least [`REQUEST_LEN`] bytes and every server
//! datagram at most that, so no answer is larger than what caused it.

use std::time::Duration;

use crate::request::{ParseError, Request};
use crate::sntp::{NtpTimestamp, ServerClock};
use crate::wire::{Reply, MAX_DATAGRAM};

/// What every v2 datagram starts with: whitespace, to Python's `int()`
/// too, beginning and ending with a newline.
pub const MAGIC: &[u8; 8] = b"\n\x0b\x0c\r\t\x0c\x0b\n";

/// The least a client datagram may be, and the most a server's is: the
/// server drops a shorter request, so it never sends more than it got.
pub const REQUEST_LEN: usize = 256;

/// The type byte of each datagram, after the magic. A login's is the
/// option the seed's rules read in it.
const LOGIN: u8 = b'1';
const CHALLENGE: u8 = b'C';
const CONFIRM: u8 = b'K';
const WELCOME: u8 = b'W';
const REQUEST: u8 = b'R';
const ANSWER: u8 = b'A';

const TYPE: usize = MAGIC.len();
const BODY: usize = TYPE + 1;

/// The length of a challenge (the only server datagram of fixed size).
pub const CHALLENGE_LEN: usize = BODY + NONCE_LEN + COOKIE_LEN;
/// Where a welcome's text starts.
const WELCOME_TEXT: usize = BODY + 1 + NONCE_LEN + TOKEN_LEN + 4;
/// Where an answer's fields sit: kind, leap, clock status, request id,
/// token, the transmit timestamp where SNTP's is (bytes 40..48, so the
/// server's outbox stamps both the same way, just before sending), the
/// receive timestamp, then the text.
const ANSWER_ID: usize = BODY + 3;
const ANSWER_TOKEN: usize = ANSWER_ID + 8;
/// Where an answer's transmit timestamp is.
pub const ANSWER_TRANSMIT: usize = 40;
const ANSWER_RECEIVE: usize = ANSWER_TRANSMIT + 8;
const ANSWER_TEXT: usize = ANSWER_RECEIVE + 8;

// The layout's promises, checked as it compiles: the answer's fields end
// where its transmit timestamp starts, at SNTP's offset; the challenge is
// no larger than the login it answers.
const _: () = assert!(ANSWER_TOKEN + TOKEN_LEN <= ANSWER_TRANSMIT);
const _: () = assert!(ANSWER_TRANSMIT == crate::sntp::TRANSMIT_FIELD.start);
const _: () = assert!(CHALLENGE_LEN <= REQUEST_LEN);

/// Bytes in a client nonce, a session token, a cookie.
pub const NONCE_LEN: usize = 16;
/// Bytes in a session token.
pub const TOKEN_LEN: usize = 16;
/// Bytes in a cookie: a 4-byte epoch and a 16-byte MAC.
pub const COOKIE_LEN: usize = 20;

/// The client's random number for one login: echoed in the challenge and
/// the welcome, so a client takes neither from a forger who never saw its
/// login, and bound into the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; NONCE_LEN]);

/// The random secret the server gives a confirmed session: every request
/// carries it, every answer echoes it. A datagram without it is dropped.
#[derive(Debug, Clone, Copy, Eq)]
pub struct Token(pub [u8; TOKEN_LEN]);

impl PartialEq for Token {
    /// In constant time: how long a wrong token takes to refuse says
    /// nothing of how close it was.
    fn eq(&self, other: &Token) -> bool {
        self.0
            .iter()
            .zip(other.0)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

/// A cookie as the server issued it (see [`crate::v2::cookie`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cookie(pub [u8; COOKIE_LEN]);

/// A client datagram, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    /// Asks for a challenge; no state is kept for it.
    Login {
        /// The client's nonce.
        nonce: Nonce,
    },
    /// Returns the challenge's cookie: the session opens if it is good.
    Confirm {
        /// The login's nonce.
        nonce: Nonce,
        /// The challenge's cookie.
        cookie: Cookie,
    },
    /// A menu option in a session.
    Request {
        /// The option: 0 the menu again, 1 the time, 2 log out, any other
        /// an invalid option (which ends the session, as the seed's does).
        option: u8,
        /// The session's token.
        token: Token,
        /// The client's id for this request, echoed in the answer.
        id: u64,
    },
}

impl ClientMessage {
    /// What the datagram asks of the session state machine: a confirmed
    /// login is a `login`; a request's option is the menu's.
    pub fn request(&self) -> Result<Request, ParseError> {
        match self {
            ClientMessage::Login { .. } | ClientMessage::Confirm { .. } => Ok(Request::Login),
            ClientMessage::Request { option, .. } => match option {
                0 => Ok(Request::Login),
                1 => Ok(Request::Time),
                2 => Ok(Request::Logout),
                _ => Err(ParseError::UnknownOption),
            },
        }
    }
}

/// The option byte for what a user typed, read by the seed's rules
/// ([`crate::parse`]): `login` the menu, `1`, `2`, anything else invalid.
pub fn option_of(typed: Result<Request, ParseError>) -> u8 {
    match typed {
        Ok(Request::Login) => 0,
        Ok(Request::Time) => 1,
        Ok(Request::Logout) => 2,
        Err(_) => u8::MAX,
    }
}

/// Why a datagram that starts with the magic is not a client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// It does not start with [`MAGIC`].
    #[error("not a protocol v2 datagram")]
    NotV2,
    /// Shorter than its kind must be: a client's is [`REQUEST_LEN`] at
    /// least, so that no answer is larger.
    #[error("v2 datagram of {0} bytes is too short")]
    TooShort(usize),
    /// Longer than any datagram the server reads.
    #[error("v2 datagram of {0} bytes is longer than the {MAX_DATAGRAM}-byte limit")]
    TooLong(usize),
    /// A type byte no message has.
    #[error("v2 datagram of unknown type {0:#04x}")]
    UnknownType(u8),
    /// A login whose nonce is not 64 of its four whitespace characters.
    #[error("v2 login with a malformed nonce")]
    BadNonce,
    /// A field that must be zero or a known value is not.
    #[error("v2 datagram with a malformed field")]
    Malformed,
}

/// Whether a datagram is protocol v2's (it starts with [`MAGIC`]).
pub fn is_v2(datagram: &[u8]) -> bool {
    datagram.starts_with(MAGIC)
}

/// Reads a client datagram.
pub fn parse_client(datagram: &[u8]) -> Result<ClientMessage, V2Error> {
    if !is_v2(datagram) {
        return Err(V2Error::NotV2);
    }
    if datagram.len() < REQUEST_LEN {
        return Err(V2Error::TooShort(datagram.len()));
    }
    if datagram.len() > MAX_DATAGRAM {
        return Err(V2Error::TooLong(datagram.len()));
    }
    let body = &datagram[BODY..];
    match datagram[TYPE] {
        LOGIN => Ok(ClientMessage::Login {
            nonce: Nonce(unspace(&body[..4 * NONCE_LEN]).ok_or(V2Error::BadNonce)?),
        }),
        CONFIRM => Ok(ClientMessage::Confirm {
            nonce: Nonce(array(&body[..NONCE_LEN])),
            cookie: Cookie(array(&body[NONCE_LEN..NONCE_LEN + COOKIE_LEN])),
        }),
        REQUEST => Ok(ClientMessage::Request {
            option: body[0],
            token: Token(array(&body[1..1 + TOKEN_LEN])),
            id: u64::from_be_bytes(array(&body[1 + TOKEN_LEN..1 + TOKEN_LEN + 8])),
        }),
        other => Err(V2Error::UnknownType(other)),
    }
}

/// A login: the magic, `1`, the nonce as 64 whitespace characters (two
/// bits each, [`SPACES`]), spaces to [`REQUEST_LEN`]: to the seed's rules
/// and Python's `int()`, option 1 (see the module's doc).
pub fn login(nonce: &Nonce) -> [u8; REQUEST_LEN] {
    let mut out = [b' '; REQUEST_LEN];
    out[..TYPE].copy_from_slice(MAGIC);
    out[TYPE] = LOGIN;
    for (i, byte) in nonce.0.iter().enumerate() {
        for pair in 0..4 {
            let bits = (byte >> (6 - 2 * pair)) & 0b11;
            out[BODY + 4 * i + pair] = SPACES[usize::from(bits)];
        }
    }
    out
}

/// A confirmation, returning the challenge's cookie.
pub fn confirm(nonce: &Nonce, cookie: &Cookie) -> [u8; REQUEST_LEN] {
    let mut out = header(CONFIRM);
    out[BODY..BODY + NONCE_LEN].copy_from_slice(&nonce.0);
    out[BODY + NONCE_LEN..BODY + NONCE_LEN + COOKIE_LEN].copy_from_slice(&cookie.0);
    out
}

/// A request for `option` in the session `token`.
pub fn request(option: u8, token: &Token, id: u64) -> [u8; REQUEST_LEN] {
    let mut out = header(REQUEST);
    out[BODY] = option;
    out[BODY + 1..BODY + 1 + TOKEN_LEN].copy_from_slice(&token.0);
    out[BODY + 1 + TOKEN_LEN..BODY + 1 + TOKEN_LEN + 8].copy_from_slice(&id.to_be_bytes());
    out
}

/// The server's answer to a login: the nonce and the cookie.
pub fn write_challenge(nonce: &Nonce, cookie: &Cookie) -> [u8; CHALLENGE_LEN] {
    let mut out = [0u8; CHALLENGE_LEN];
    out[..TYPE].copy_from_slice(MAGIC);
    out[TYPE] = CHALLENGE;
    out[BODY..BODY + NONCE_LEN].copy_from_slice(&nonce.0);
    out[BODY + NONCE_LEN..].copy_from_slice(&cookie.0);
    out
}

/// The server's answer to a confirmation: [`Reply::Menu`] with the
/// session's token and idle timeout, or [`Reply::Refused`] (token zero).
/// Its length; the text is cut to fit [`REQUEST_LEN`].
pub fn write_welcome(
    reply: Reply,
    nonce: &Nonce,
    token: &Token,
    idle_timeout: Duration,
    out: &mut [u8; REQUEST_LEN],
) -> usize {
    out[..TYPE].copy_from_slice(MAGIC);
    out[TYPE] = WELCOME;
    out[BODY] = code(reply);
    out[BODY + 1..BODY + 1 + NONCE_LEN].copy_from_slice(&nonce.0);
    out[BODY + 1 + NONCE_LEN..BODY + 1 + NONCE_LEN + TOKEN_LEN].copy_from_slice(&token.0);
    let idle = u32::try_from(idle_timeout.as_millis()).unwrap_or(u32::MAX);
    out[WELCOME_TEXT - 4..WELCOME_TEXT].copy_from_slice(&idle.to_be_bytes());
    WELCOME_TEXT
        + text_into(
            reply.fixed_bytes().unwrap_or_default(),
            &mut out[WELCOME_TEXT..],
        )
}

/// What an answer says of the server's clock, from what its SNTP replies
/// say ([`ServerClock`]) and whether the kernel says it is synchronized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStatus {
    /// Something synchronizes the host clock.
    Synchronized,
    /// Nothing does, and the admin serves it anyway (`local_stratum`).
    Local,
    /// Nothing does: the time is the host's guess (SNTP's leap indicator 3).
    Unsynchronized,
}

impl ClockStatus {
    /// The status SNTP's fields imply, with the kernel's word.
    pub fn of(clock: &ServerClock, kernel_synchronized: bool) -> ClockStatus {
        match (clock.leap_indicator, kernel_synchronized) {
            (3, _) => ClockStatus::Unsynchronized,
            (_, true) => ClockStatus::Synchronized,
            (_, false) => ClockStatus::Local,
        }
    }

    /// Its name, as `hora time --json`'s `clock` and `/status` write it.
    pub fn name(self) -> &'static str {
        match self {
            ClockStatus::Synchronized => "synchronized",
            ClockStatus::Local => "local",
            ClockStatus::Unsynchronized => "unsynchronized",
        }
    }

    fn code(self) -> u8 {
        match self {
            ClockStatus::Synchronized => 0,
            ClockStatus::Local => 1,
            ClockStatus::Unsynchronized => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<ClockStatus> {
        match code {
            0 => Some(ClockStatus::Synchronized),
            1 => Some(ClockStatus::Local),
            2 => Some(ClockStatus::Unsynchronized),
            _ => None,
        }
    }
}

/// The clock fields of a time answer: its state and when the request
/// arrived (the kernel's receive timestamp). The transmit timestamp is
/// written last, by whoever sends ([`ANSWER_TRANSMIT`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps {
    /// The leap indicator, as SNTP's (0 none, 1 insert, 2 delete, 3 alarm).
    pub leap: u8,
    /// What the clock is.
    pub status: ClockStatus,
    /// When the request arrived.
    pub receive: NtpTimestamp,
}

/// A server answer in a session (or to a request without one): `reply`
/// with its text (the seed's, byte for byte), the request's id and token,
/// and for a time answer its [`Stamps`] (the transmit timestamp is the
/// receive one until the sender overwrites it). Its length; the text is
/// cut to fit [`REQUEST_LEN`].
pub fn write_answer(
    reply: Reply,
    text: &[u8],
    token: &Token,
    id: u64,
    stamps: Option<&Stamps>,
    out: &mut [u8; REQUEST_LEN],
) -> usize {
    out[..ANSWER_TEXT].fill(0);
    out[..TYPE].copy_from_slice(MAGIC);
    out[TYPE] = ANSWER;
    out[BODY] = code(reply);
    out[ANSWER_ID..ANSWER_TOKEN].copy_from_slice(&id.to_be_bytes());
    out[ANSWER_TOKEN..ANSWER_TOKEN + TOKEN_LEN].copy_from_slice(&token.0);
    if let Some(stamps) = stamps {
        out[BODY + 1] = stamps.leap & 0b11;
        out[BODY + 2] = stamps.status.code();
        let receive = stamps.receive.to_u64().to_be_bytes();
        out[ANSWER_TRANSMIT..ANSWER_RECEIVE].copy_from_slice(&receive);
        out[ANSWER_RECEIVE..ANSWER_TEXT].copy_from_slice(&receive);
    }
    ANSWER_TEXT + text_into(text, &mut out[ANSWER_TEXT..])
}

/// The fields of a server datagram, for [`crate::v2::client`].
pub(crate) struct Fields;

impl Fields {
    pub(crate) const TYPE: usize = TYPE;
    pub(crate) const BODY: usize = BODY;
    pub(crate) const CHALLENGE: u8 = CHALLENGE;
    pub(crate) const WELCOME: u8 = WELCOME;
    pub(crate) const ANSWER: u8 = ANSWER;
    pub(crate) const WELCOME_TEXT: usize = WELCOME_TEXT;
    pub(crate) const ANSWER_ID: usize = ANSWER_ID;
    pub(crate) const ANSWER_TOKEN: usize = ANSWER_TOKEN;
    pub(crate) const ANSWER_RECEIVE: usize = ANSWER_RECEIVE;
    pub(crate) const ANSWER_TEXT: usize = ANSWER_TEXT;
}

/// The one byte that names a reply on the wire.
pub fn code(reply: Reply) -> u8 {
    match reply {
        Reply::Menu => 1,
        Reply::Time => 2,
        Reply::Closed => 3,
        Reply::InvalidOption => 4,
        Reply::NoSession => 5,
        Reply::IdleNotice => 6,
        Reply::Refused => 7,
        Reply::ShutdownNotice => 8,
    }
}

/// The reply a code names.
pub fn reply_of(code: u8) -> Option<Reply> {
    Some(match code {
        1 => Reply::Menu,
        2 => Reply::Time,
        3 => Reply::Closed,
        4 => Reply::InvalidOption,
        5 => Reply::NoSession,
        6 => Reply::IdleNotice,
        7 => Reply::Refused,
        8 => Reply::ShutdownNotice,
        _ => return None,
    })
}

/// The four whitespace characters a login's nonce is written in, two bits
/// each: space, tab, vertical tab, form feed.
pub const SPACES: &[u8; 4] = b" \t\x0b\x0c";

fn header(kind: u8) -> [u8; REQUEST_LEN] {
    let mut out = [0u8; REQUEST_LEN];
    out[..TYPE].copy_from_slice(MAGIC);
    out[TYPE] = kind;
    out
}

/// Copies as much of `text` as fits; how much.
fn text_into(text: &[u8], out: &mut [u8]) -> usize {
    let len = text.len().min(out.len());
    out[..len].copy_from_slice(&text[..len]);
    len
}

pub(crate) fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    out
}

fn unspace<const N: usize>(written: &[u8]) -> Option<[u8; N]> {
    let bits = |c: u8| SPACES.iter().position(|&s| s == c).map(|d| d as u8);
    let mut out = [0u8; N];
    for (i, four) in written.chunks_exact(4).take(N).enumerate() {
        for &c in four {
            out[i] = out[i] << 2 | bits(c)?;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TimeReply;
    use crate::request::parse;

    const NONCE: Nonce = Nonce(*b"0123456789abcdef");
    const TOKEN: Token = Token([7; TOKEN_LEN]);

    #[test]
    fn a_login_reads_as_option_1_by_the_seeds_rules() {
        let login = login(&NONCE);
        // Python's int() reads whitespace around one digit; so does a
        // horad older than v2 (the seed's server is run on it in
        // tests/seed_compat.rs).
        let digits: Vec<u8> = login
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace() && *b != 0x0b)
            .collect();
        assert_eq!(digits, b"1");
        assert_eq!(parse(&login), Ok(Request::Time));
        assert_eq!(
            parse_client(&login),
            Ok(ClientMessage::Login { nonce: NONCE })
        );
    }

    #[test]
    fn no_seed_client_datagram_starts_with_the_magic() {
        // The seed's client sends `login` and lines from input(), which
        // hold no newline; the magic starts with one and holds another.
        assert_eq!(MAGIC[0], b'\n');
        assert!(MAGIC[1..].contains(&b'\n'));
        assert!(!is_v2(b"login"));
        assert!(!is_v2(b"\n1\n"));
    }

    #[test]
    fn every_client_message_reads_back_as_written() {
        let cookie = Cookie([9; COOKIE_LEN]);
        assert_eq!(
            parse_client(&confirm(&NONCE, &cookie)),
            Ok(ClientMessage::Confirm {
                nonce: NONCE,
                cookie
            })
        );
        assert_eq!(
            parse_client(&request(1, &TOKEN, 42)),
            Ok(ClientMessage::Request {
                option: 1,
                token: TOKEN,
                id: 42
            })
        );
    }

    #[test]
    fn short_long_foreign_and_unknown_datagrams_are_errors() {
        let login = login(&NONCE);
        assert_eq!(
            parse_client(&login[..REQUEST_LEN - 1]),
            Err(V2Error::TooShort(REQUEST_LEN - 1))
        );
        let mut long = login.to_vec();
        long.resize(MAX_DATAGRAM + 1, b' ');
        assert_eq!(parse_client(&long), Err(V2Error::TooLong(MAX_DATAGRAM + 1)));
        assert_eq!(parse_client(b"login"), Err(V2Error::NotV2));
        let mut unknown = login;
        unknown[TYPE] = b'Z';
        assert_eq!(parse_client(&unknown), Err(V2Error::UnknownType(b'Z')));
        let mut bad = login;
        bad[BODY] = b'G';
        assert_eq!(parse_client(&bad), Err(V2Error::BadNonce));
    }

    #[test]
    fn options_map_to_the_seeds_requests_and_back() {
        for (option, request) in [
            (0, Ok(Request::Login)),
            (1, Ok(Request::Time)),
            (2, Ok(Request::Logout)),
            (3, Err(ParseError::UnknownOption)),
            (u8::MAX, Err(ParseError::UnknownOption)),
        ] {
            let message = ClientMessage::Request {
                option,
                token: TOKEN,
                id: 1,
            };
            assert_eq!(message.request(), request, "option {option}");
        }
        assert_eq!(option_of(parse(b"1")), 1);
        assert_eq!(option_of(parse(b"2")), 2);
        assert_eq!(option_of(parse(b"login")), 0);
        assert_eq!(option_of(parse(b"3")), u8::MAX);
        assert_eq!(option_of(parse(b"um")), u8::MAX);
    }

    #[test]
    fn no_server_datagram_is_larger_than_a_request() {
        let latest = TimeReply::render(
            chrono::NaiveDate::from_ymd_opt(2099, 12, 31)
                .and_then(|d| d.and_hms_opt(23, 59, 59))
                .unwrap_or_default(),
        );
        let mut out = [0u8; REQUEST_LEN];
        for code in 1..=8 {
            let reply = reply_of(code).unwrap_or(Reply::Menu);
            let text = reply.bytes(&latest);
            let stamps = Stamps {
                leap: 0,
                status: ClockStatus::Synchronized,
                receive: NtpTimestamp::default(),
            };
            let len = write_answer(reply, text, &TOKEN, 1, Some(&stamps), &mut out);
            assert_eq!(
                len,
                ANSWER_TEXT + text.len(),
                "{reply:?}: its text fits whole"
            );
            let len = write_welcome(reply, &NONCE, &TOKEN, Duration::from_secs(10), &mut out);
            assert!(len <= REQUEST_LEN);
        }
    }

    #[test]
    fn codes_name_every_reply_once() {
        for code in 1..=8 {
            let reply = reply_of(code).unwrap_or(Reply::Menu);
            assert_eq!(self::code(reply), code);
        }
        assert_eq!(reply_of(0), None);
        assert_eq!(reply_of(9), None);
    }

    #[test]
    fn tokens_compare_by_every_byte() {
        let mut other = TOKEN;
        assert_eq!(other, TOKEN);
        other.0[TOKEN_LEN - 1] ^= 1;
        assert_ne!(other, TOKEN);
    }
}
