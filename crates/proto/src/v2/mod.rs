//! hora's second session protocol ("v2"), beside the seed's on its socket:
//! the seed's menu, answers and 10 s idle rule, with sessions an off-path
//! forger can't open, end or crowd out, and time answers that carry the
//! kernel's receive timestamp, the transmit timestamp and the clock's
//! state, so a client computes offset and round trip as NTP does.
//! `PROTOCOL.md`, "Protocol v2", specifies it byte by byte.
//!
//! - [`wire`]: the datagrams, read and written (no state);
//! - [`cookie`]: the stateless cookie that proves a login's address
//!   (return routability) before any state is kept for it;
//! - [`client`]: what a client reads in the server's datagrams, and the
//!   offset and delay of a time answer.
//!
//! The session state machine is the seed's ([`crate::decide`]): a
//! confirmed login is a `login`, a request's option is the menu option. The
//! token check before it, and the limits that count v2 sessions apart from
//! the seed's, are the server's.

use crate::request::{ParseError, Request};
use crate::wire::Reply;

pub mod client;
pub mod cookie;
pub mod wire;

pub use cookie::CookieKey;
pub use wire::{
    is_v2, parse_client, ClientMessage, ClockStatus, Cookie, Nonce, Token, V2Error, MAGIC,
    REQUEST_LEN,
};

/// What a request from an address without a v2 session gets, as the
/// seed's rules answer a peer without a session: a logout is told it is
/// closed (so a resent one is harmless), anything else that there is no
/// session. It never opens one: only a confirmed login does.
pub fn without_session(request: Result<Request, ParseError>) -> Reply {
    match request {
        Ok(Request::Logout) => Reply::Closed,
        _ => Reply::NoSession,
    }
}
