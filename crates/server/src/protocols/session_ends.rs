//! The plumbing the two session protocols of the seed's socket share: where
//! a session's end (option 2, an invalid option, silence, a shutdown)
//! becomes its counter, its log kind and its line, and where the sessions
//! that idled out or that a shutdown closed are told, a chunk a turn so a
//! million of them never stall the loop. The seed's protocol and v2 differ
//! only in how a notice is written ([`Dialect`] and the `notify` each
//! passes).

use std::net::SocketAddr;

use hora_proto::{Effect, EndReason};
use tracing::{debug, info};

use crate::engine::{Context, NOTICES_PER_TURN};
use crate::log_budget::LogKind;
use crate::outbox::Outbox;
use crate::sessions::{Ended, Handled, SessionId, Sessions};
use crate::stats::Event;

/// Which session protocol a line is about: v2's say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The seed's login/menu protocol.
    Seed,
    /// Protocol v2.
    V2,
}

impl Dialect {
    /// What its log lines end with.
    fn suffix(self) -> &'static str {
        match self {
            Dialect::Seed => "",
            Dialect::V2 => " (protocol v2)",
        }
    }
}

/// A session id for logs, or `-` for a peer without one.
pub struct OptionalId(pub Option<SessionId>);

impl std::fmt::Display for OptionalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Counts and logs (within the budgets) a session a request ended: by
/// option 2 or by an invalid option. Other effects are not ends: nothing.
pub fn count_end(ctx: &Context<'_>, handled: &Handled, peer: SocketAddr, dialect: Dialect) {
    let session = OptionalId(handled.session);
    let suffix = dialect.suffix();
    match handled.decision.effect {
        Effect::End(EndReason::Logout) => {
            ctx.stats.event(Event::EndLogout);
            if let Some(suppressed) = ctx.log.allow(LogKind::Logout) {
                info!(%session, %peer, suppressed, "logout{suffix}");
            }
        }
        Effect::End(_) => {
            ctx.stats.event(Event::EndInvalidOption);
            if let Some(suppressed) = ctx.log.allow(LogKind::InvalidOption) {
                info!(%session, %peer, suppressed, "session ended by an invalid option{suffix}");
            }
        }
        _ => {}
    }
}

/// Ends the sessions of `sessions` that idled out, at most
/// [`NOTICES_PER_TURN`] a turn, each counted, logged and told by `notify`.
pub fn expire_due(
    sessions: &mut Sessions,
    ctx: &Context<'_>,
    out: &mut Outbox,
    dialect: Dialect,
    notify: impl Fn(&Ended, &mut Outbox),
) {
    for _ in 0..NOTICES_PER_TURN {
        let Some(ended) = sessions.expire_due(ctx.now.instant()) else {
            return;
        };
        ctx.stats.event(Event::EndIdle);
        if let Some(suppressed) = ctx.log.allow(LogKind::Idle) {
            let suffix = dialect.suffix();
            info!(session = %ended.id, peer = %ended.peer, suppressed, "session idled out{suffix}");
        }
        notify(&ended, out);
    }
}

/// Tells at most [`NOTICES_PER_TURN`] of the sessions a shutdown closed
/// (`closing`) that the server is going away, each counted; whether more
/// remain to be told.
pub fn tell_closed(
    closing: &mut Vec<Ended>,
    ctx: &Context<'_>,
    out: &mut Outbox,
    dialect: Dialect,
    notify: impl Fn(&Ended, &mut Outbox),
) -> bool {
    for _ in 0..NOTICES_PER_TURN {
        let Some(ended) = closing.pop() else {
            return false;
        };
        notify(&ended, out);
        ctx.stats.event(Event::EndShutdown);
        let suffix = dialect.suffix();
        debug!(session = %ended.id, peer = %ended.peer, "session closed by shutdown{suffix}");
    }
    !closing.is_empty()
}
