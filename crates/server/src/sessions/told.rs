//! What the session table tells its protocol: what a request did
//! ([`Handled`]), why it got no answer ([`Unanswered`]), which limit a
//! login met ([`Limit`]), and the sessions it ended on its own ([`Ended`]),
//! each with what to send and from where.

use std::net::SocketAddr;

use hora_proto::v2::Token;
use hora_proto::Decision;

use super::SessionId;
use crate::sys::destination::Local;

/// A session the table ended on its own (idled out, shut down): whom to
/// tell, and what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Its peer.
    pub peer: SocketAddr,
    /// Its id.
    pub id: SessionId,
    /// What the state machine decided: the notice to send.
    pub decision: Decision,
    /// Its token, if it is a proven session: the notice carries it.
    pub token: Option<Token>,
    /// The address the notice leaves from: the one its client asked.
    pub local: Option<Local>,
}

/// Which of the session limits a login met, for the counters by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_sessions_per_ip`: its address holds its most.
    PerIp,
    /// `max_sessions`: the whole table is full.
    Table,
}

/// What a request did, for the receive loop to carry out and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// The state machine's decision.
    pub decision: Decision,
    /// The peer's session, if it had or now has one.
    pub session: Option<SessionId>,
    /// The session that made room for this login, if one had to: its peer,
    /// its id and what to tell it.
    pub displaced: Option<(SocketAddr, SessionId, Decision, Option<Local>)>,
    /// The limit a login met, if it met one: it was refused, or it
    /// displaced [`Handled::displaced`].
    pub limit: Option<Limit>,
}

/// Whether the peer of a datagram has a session, for the checks that
/// treat strangers differently (see `hora_proto::overload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The peer has an open session.
    Session,
    /// The peer has none: its request would open one, or be told it has none.
    Stranger,
}

/// Why a datagram the protocol would answer got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Its peer has no session and the server is behind.
    Shed,
    /// Its source is over its rate limit.
    RateLimited,
}
