//! The seed's login/menu protocol on its socket: the session table, the
//! idle deadlines, the notices and the shedding of strangers while behind.
//! Every protocol decision is `hora_proto`'s ([`parse`], the session state
//! machine through [`Sessions`]); this file carries them out, counts and
//! logs them.

use std::net::SocketAddr;
use std::time::Duration;

use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::overload::Admission;
use hora_proto::ratelimit::Verdict;
use hora_proto::{parse, Decision, Effect, EndReason, ParseError, Reply, Request};
use tracing::{debug, info, warn};

use crate::engine::{Context, Protocol, NOTICES_PER_TURN};
use crate::live::Live;
use crate::log_budget::{Budget, LogKind};
use crate::sessions::{Handled, Known, SessionId, Sessions, Unanswered};
use crate::stats::Event;
use crate::sys::batch::Outbox;
use crate::sys::Received;
use crate::time_cache::TimeCache;

/// How many refusal and displacement notices may be sent per second, over
/// all peers (chrony likewise answers only some of the requests it limits).
const NOTICES_PER_SECOND: u32 = 100;

/// The seed protocol's state, owned by its loop alone.
#[derive(Debug)]
pub struct Seed {
    sessions: Sessions,
    time: TimeCache,
    /// Refusals and displacement notices sent this second: a flood of
    /// logins past the limits must not turn into a flood of replies.
    notices: Budget,
    /// Which requests from peers without a session are answered while the
    /// server is behind.
    admission: Admission,
    /// The sessions still to be told of the shutdown, once it began.
    closing: Option<Vec<(SocketAddr, SessionId, Decision)>>,
}

impl Seed {
    /// The protocol with an empty table, under `live`'s limits.
    pub fn new(live: &Live) -> Seed {
        Seed {
            sessions: Sessions::new(live.limits()),
            time: TimeCache::new(),
            notices: Budget::new(
                NOTICES_PER_SECOND,
                Duration::from_secs(1),
                tokio::time::Instant::now(),
            ),
            admission: Admission::default(),
            closing: None,
        }
    }

    /// The table, for its observer ([`Sessions::observer`]).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Runs the datagram through the gate, the checks and the table.
    fn admit(
        &mut self,
        ctx: &Context<'_>,
        request: Result<Request, ParseError>,
        peer: SocketAddr,
        waited: Duration,
    ) -> Result<Handled, Unanswered> {
        let now = ctx.now.instant();
        let (gate, log, admission) = (&ctx.live.gate, ctx.log, &mut self.admission);
        let answerable = |known| {
            if known == Known::Stranger && !admission.admits(waited, now) {
                return Err(Unanswered::Shed);
            }
            match gate.within_rate(peer, now, log) {
                Verdict::Allow => Ok(()),
                _ => Err(Unanswered::RateLimited),
            }
        };
        self.sessions
            .handle(peer, request, now, ctx.live.rules(), answerable)
    }

    /// Queues a refusal or displacement notice, within the notice budget;
    /// whether it was queued.
    fn notify(
        &mut self,
        ctx: &Context<'_>,
        reply: Option<Reply>,
        peer: SocketAddr,
        out: &mut Outbox,
    ) -> bool {
        let Some(bytes) = reply.as_ref().and_then(Reply::fixed_bytes) else {
            return false;
        };
        if self.notices.allow(ctx.now.monotonic).is_none() {
            return false;
        }
        out.push(bytes, peer, false);
        true
    }

    /// Queues the answer the decision names; the datagram's outcome.
    fn answer(
        &mut self,
        ctx: &Context<'_>,
        handled: &Handled,
        peer: SocketAddr,
        out: &mut Outbox,
    ) -> Outcome {
        match handled.decision.reply {
            Some(Reply::Refused) => {
                if self.notify(ctx, Some(Reply::Refused), peer, out) {
                    Outcome::Answered
                } else {
                    Outcome::Dropped(DropReason::Withheld)
                }
            }
            Some(reply) => {
                if reply == Reply::Time {
                    ctx.stats.event(Event::TimeServed);
                    // Its budget is asked only when the line would be written.
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        if let Some(suppressed) = ctx.log.allow(LogKind::TimeServed) {
                            debug!(session = %OptionalId(handled.session), %peer, suppressed, "time served");
                        }
                    }
                }
                out.push(reply.bytes(self.time.at(ctx.now.wall)), peer, false);
                Outcome::Answered
            }
            None => Outcome::Dropped(DropReason::Invalid),
        }
    }
}

impl Protocol for Seed {
    fn service(&self) -> Service {
        Service::Seed
    }

    /// One datagram in, at most one reply queued (and, when a login
    /// displaces a session, that session's notice).
    fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: Received,
        out: &mut Outbox,
    ) -> Outcome {
        let peer = received.peer;
        if !ctx.live.gate.admits(peer, ctx.log) {
            return Outcome::Dropped(DropReason::Denied);
        }
        // How long it waited in the socket's queue; a clock stepped back
        // reads as no wait.
        let waited = received.kernel_time.map_or(Duration::ZERO, |at| {
            ctx.now.wall.duration_since(at).unwrap_or_default()
        });
        let request = parse(datagram);
        let handled = match self.admit(ctx, request, peer, waited) {
            Ok(handled) => handled,
            // The seed's protocol has no way to say "slow down": drop.
            Err(Unanswered::RateLimited) => return Outcome::Dropped(DropReason::RateLimited),
            Err(Unanswered::Shed) => {
                if let Some(suppressed) = ctx.log.allow(LogKind::Shed) {
                    warn!(
                        %peer,
                        waited_ms = waited.as_secs_f64() * 1e3,
                        suppressed,
                        "behind: request from a peer without a session shed"
                    );
                }
                return Outcome::Dropped(DropReason::Overloaded);
            }
        };
        if let Err(error) = request {
            ctx.stats.event(Event::InvalidDatagram);
            if let Some(suppressed) = ctx.log.allow(LogKind::InvalidDatagram) {
                warn!(
                    session = %OptionalId(handled.session),
                    %peer,
                    len = datagram.len(),
                    start = %Preview(datagram),
                    suppressed,
                    "invalid datagram: {error}"
                );
            }
        }
        log_effect(ctx, &handled, peer);
        if let Some((displaced, id, notice)) = handled.displaced {
            ctx.stats.event(Event::EndDisplaced);
            if let Some(suppressed) = ctx.log.allow(LogKind::Displaced) {
                info!(session = %id, peer = %displaced, by = %peer, suppressed, "session that never asked made room for a login");
            }
            self.notify(ctx, notice.reply, displaced, out);
        }
        self.answer(ctx, &handled, peer, out)
    }

    fn next_deadline(&self) -> Option<std::time::Instant> {
        self.sessions.next_deadline()
    }

    /// Ends the sessions that idled out, each told so.
    fn due(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        for _ in 0..NOTICES_PER_TURN {
            let Some((peer, id, decision)) = self.sessions.expire_due(ctx.now.instant()) else {
                return;
            };
            ctx.stats.event(Event::EndIdle);
            if let Some(suppressed) = ctx.log.allow(LogKind::Idle) {
                info!(session = %id, %peer, suppressed, "session idled out");
            }
            if let Some(bytes) = decision.reply.as_ref().and_then(Reply::fixed_bytes) {
                out.push(bytes, peer, false);
            }
        }
    }

    fn reconfigure(&mut self, live: &Live) {
        self.sessions.set_limits(live.limits());
    }

    /// Ends every session, each told the server is going away.
    fn shut_down(&mut self, ctx: &Context<'_>, out: &mut Outbox) -> bool {
        let sessions = &mut self.sessions;
        let closing = self.closing.get_or_insert_with(|| {
            let closing = sessions.close_all(ctx.now.instant());
            info!(
                sessions = closing.len(),
                "shutting down; notifying open sessions"
            );
            closing
        });
        for _ in 0..NOTICES_PER_TURN {
            let Some((peer, session, decision)) = closing.pop() else {
                return false;
            };
            if let Some(bytes) = decision.reply.as_ref().and_then(Reply::fixed_bytes) {
                out.push(bytes, peer, false);
            }
            ctx.stats.event(Event::EndShutdown);
            debug!(%session, %peer, "session closed by shutdown");
        }
        !closing.is_empty()
    }
}

/// Counts and logs (within the budgets) what a decision did to the peer's
/// session.
fn log_effect(ctx: &Context<'_>, handled: &Handled, peer: SocketAddr) {
    let (stats, log) = (ctx.stats, ctx.log);
    let session = OptionalId(handled.session);
    match handled.decision.effect {
        Effect::Open { .. } => {
            stats.event(Event::Login);
            if let Some(suppressed) = log.allow(LogKind::Login) {
                info!(%session, %peer, suppressed, "login");
            }
        }
        Effect::Keep { .. } => {}
        Effect::End(EndReason::Logout) => {
            stats.event(Event::EndLogout);
            if let Some(suppressed) = log.allow(LogKind::Logout) {
                info!(%session, %peer, suppressed, "logout");
            }
        }
        Effect::End(_) => {
            stats.event(Event::EndInvalidOption);
            if let Some(suppressed) = log.allow(LogKind::InvalidOption) {
                info!(%session, %peer, suppressed, "session ended by an invalid option");
            }
        }
        Effect::Refuse => {
            stats.event(Event::Refusal);
            if let Some(suppressed) = log.allow(LogKind::Refused) {
                warn!(%peer, suppressed, "login refused: session limit reached and every session has asked");
            }
        }
        Effect::Nothing => {
            if handled.decision.reply == Some(Reply::NoSession) {
                stats.event(Event::NoSession);
            }
        }
    }
}

/// A session id for logs, or `-` for a peer without one.
struct OptionalId(Option<SessionId>);

impl std::fmt::Display for OptionalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// The first bytes of a datagram, escaped, so a log line shows what came
/// without printing control characters or a kilobyte of garbage.
struct Preview<'a>(&'a [u8]);

impl std::fmt::Display for Preview<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOWN: usize = 32;
        let shown = &self.0[..self.0.len().min(SHOWN)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if self.0.len() > SHOWN {
            f.write_str("...")?;
        }
        Ok(())
    }
}
