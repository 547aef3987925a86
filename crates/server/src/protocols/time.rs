//! RFC 868 Time and RFC 867 Daytime over UDP: any datagram is a request,
//! answered with the time, unless it looks like part of a loop
//! ([`stateless_may_answer`]).

use hora_proto::loop_guard::stateless_may_answer;
use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::ratelimit::Verdict;
use hora_proto::{daytime, rfc868};
use tracing::warn;

use crate::engine::{Context, Protocol};
use crate::log_budget::LogKind;
use crate::outbox::Outbox;
use crate::sys::Received;

/// Which of the two a socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RFC 868: 32-bit seconds since 1900.
    Time,
    /// RFC 867: one line of text.
    Daytime,
}

/// Time or Daytime on one socket.
#[derive(Debug)]
pub struct Stateless {
    kind: Kind,
    /// The ports of the daemon's own sockets (see [`stateless_may_answer`]).
    own_ports: Vec<u16>,
}

impl Stateless {
    /// Serves `kind`, never answering a datagram from one of `own_ports`.
    pub fn new(kind: Kind, own_ports: Vec<u16>) -> Stateless {
        Stateless { kind, own_ports }
    }
}

impl Protocol for Stateless {
    fn service(&self) -> Service {
        match self.kind {
            Kind::Time => Service::Time,
            Kind::Daytime => Service::Daytime,
        }
    }

    fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: Received,
        out: &mut Outbox,
    ) -> Option<Outcome> {
        let peer = received.peer;
        if !stateless_may_answer(peer.port(), &self.own_ports, datagram) {
            if let Some(suppressed) = ctx.log.allow(LogKind::Ignored) {
                warn!(
                    protocol = self.service().name(),
                    %peer,
                    len = received.len,
                    suppressed,
                    "ignored: a server's reply, or from a port that answers unasked"
                );
            }
            return Some(Outcome::Dropped(DropReason::Loop));
        }
        if ctx
            .live
            .gate
            .within_rate(ctx.worker, peer, ctx.now.instant(), ctx.log)
            != Verdict::Allow
        {
            return Some(Outcome::Dropped(DropReason::RateLimited));
        }
        match self.kind {
            Kind::Time => out.push(&rfc868::reply(ctx.now.wall), peer, false),
            Kind::Daytime => {
                let line = daytime::reply(&chrono::DateTime::<chrono::Local>::from(ctx.now.wall));
                out.push(line.as_bytes(), peer, false);
            }
        }
        Some(Outcome::Answered)
    }
}
