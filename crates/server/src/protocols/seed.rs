//! The seed's login/menu protocol on its socket: the session table, the
//! idle deadlines, the notices and the shedding of strangers while behind.
//! Every protocol decision is `hora_proto`'s ([`parse`], the session state
//! machine through [`Sessions`]); this file carries them out, counts and
//! logs them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::overload::{Admission, Backlog, BACKLOG_AFTER_IDLE, BACKLOG_CHUNK};
use hora_proto::ratelimit::Verdict;
use hora_proto::{parse, Effect, ParseError, Reply, Request};
use tracing::{debug, info, warn};

use crate::engine::{Context, Protocol};
use crate::live::Live;
use crate::log_budget::{Budget, LogKind};
use crate::outbox::Outbox;
use crate::protocols::session_ends::{self, Dialect, OptionalId};
use crate::sessions::{Ended, Handled, Known, Limit, SessionStats, Sessions, Unanswered};
use crate::stats::Event;
use crate::sys::destination::Local;
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
    /// Which requests from peers without a session are answered at once
    /// while the server is behind.
    admission: Admission,
    /// The late logins past that, waiting for the socket's queue to empty.
    backlog: Backlog<(SocketAddr, Option<Local>)>,
    /// The sessions still to be told of the shutdown, once it began.
    closing: Option<Vec<Ended>>,
}

impl Seed {
    /// The protocol with an empty table, under `live`'s limits, counting
    /// its sessions in `sessions` (every worker's table shares it: see
    /// [`Sessions::sharing`]).
    pub fn new(live: &Live, sessions: Arc<SessionStats>) -> Seed {
        Seed {
            sessions: Sessions::sharing(live.limits(), sessions),
            time: TimeCache::new(),
            notices: Budget::new(
                NOTICES_PER_SECOND,
                Duration::from_secs(1),
                tokio::time::Instant::now(),
            ),
            admission: Admission::default(),
            backlog: Backlog::default(),
            closing: None,
        }
    }

    /// Runs the request through the checks and the table. `waited` is how
    /// long it waited in the socket's queue; `None` for a request from the
    /// backlog, which is never shed again.
    fn admit(
        &mut self,
        ctx: &Context<'_>,
        request: Result<Request, ParseError>,
        peer: SocketAddr,
        waited: Option<Duration>,
    ) -> Result<Handled, Unanswered> {
        let now = ctx.now.instant();
        let (gate, log, admission) = (&ctx.live.gate, ctx.log, &mut self.admission);
        let answerable = |known| {
            let late = waited.is_some_and(|waited| !admission.admits(waited, now));
            if known == Known::Stranger && late {
                return Err(Unanswered::Shed);
            }
            match gate.within_rate(ctx.worker, peer, now, log) {
                Verdict::Allow => Ok(()),
                _ => Err(Unanswered::RateLimited),
            }
        };
        self.sessions
            .handle(peer, request, now, ctx.live.rules(), answerable)
    }

    /// A refusal or displacement notice's bytes, within the notice budget;
    /// `None` when past it (or the decision sends none).
    fn notice(&mut self, ctx: &Context<'_>, reply: Option<Reply>) -> Option<&'static [u8]> {
        let bytes = reply.as_ref().and_then(Reply::fixed_bytes)?;
        self.notices.allow(ctx.now.monotonic)?;
        Some(bytes)
    }

    /// Counts, logs and answers what the table decided; the outcome.
    fn carry_out(
        &mut self,
        ctx: &Context<'_>,
        handled: &Handled,
        request: Result<Request, ParseError>,
        datagram: &[u8],
        peer: SocketAddr,
        out: &mut Outbox,
    ) -> Outcome {
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
        log_effect(ctx, handled, peer);
        if let Effect::Open { .. } = handled.decision.effect {
            // Its notices leave from the address it logged in on.
            self.sessions.reply_from(peer, out.source());
        }
        if let Some((displaced, id, notice, local)) = handled.displaced {
            ctx.stats.event(Event::EndDisplaced);
            ctx.stats.event(match handled.limit {
                Some(Limit::PerIp) => Event::DisplacingPerIp,
                _ => Event::DisplacingTable,
            });
            if let Some(suppressed) = ctx.log.allow(LogKind::Displaced) {
                info!(session = %id, peer = %displaced, by = %peer, suppressed, "session that never asked made room for a login");
            }
            if let Some(bytes) = self.notice(ctx, notice.reply) {
                out.push_from(bytes, displaced, local);
            }
        }
        self.answer(ctx, handled, peer, out)
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
                if let Some(bytes) = self.notice(ctx, Some(Reply::Refused)) {
                    out.push(bytes, peer, false);
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
    ) -> Option<Outcome> {
        let peer = received.peer;
        let waited = waited(ctx, &received);
        let request = parse(datagram);
        let handled = match self.admit(ctx, request, peer, Some(waited)) {
            Ok(handled) => handled,
            // The seed's protocol has no way to say "slow down": drop.
            Err(Unanswered::RateLimited) => return Some(Outcome::Dropped(DropReason::RateLimited)),
            // A late login waits for a moment the queue is empty.
            Err(Unanswered::Shed)
                if request == Ok(Request::Login)
                    && self.backlog.push((peer, received.local), ctx.now.instant()) =>
            {
                return None;
            }
            Err(Unanswered::Shed) => {
                log_shed(ctx, peer, waited);
                return Some(Outcome::Dropped(DropReason::Overloaded));
            }
        };
        Some(self.carry_out(ctx, &handled, request, datagram, peer, out))
    }

    fn deferred_after_idle(&self) -> Option<Duration> {
        (!self.backlog.is_empty()).then_some(BACKLOG_AFTER_IDLE)
    }

    /// Answers a chunk of the logins that waited in the backlog.
    fn deferred(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        for _ in 0..BACKLOG_CHUNK {
            let (peer, aged) = self.backlog.pop(ctx.now.instant());
            for _ in 0..aged {
                ctx.stats
                    .datagram(Service::Seed, Outcome::Dropped(DropReason::Overloaded));
            }
            let Some((peer, local)) = peer else {
                out.reply_from(None);
                return;
            };
            // Answered from the address it was sent to, as at once.
            out.reply_from(local);
            let login = Ok(Request::Login);
            let outcome = match self.admit(ctx, login, peer, None) {
                Ok(handled) => self.carry_out(ctx, &handled, login, b"login", peer, out),
                Err(_) => Outcome::Dropped(DropReason::RateLimited),
            };
            ctx.stats.datagram(Service::Seed, outcome);
        }
        out.reply_from(None);
    }

    fn next_deadline(&self) -> Option<std::time::Instant> {
        self.sessions.next_deadline()
    }

    /// Ends the sessions that idled out, each told so.
    fn due(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        session_ends::expire_due(&mut self.sessions, ctx, out, Dialect::Seed, tell);
    }

    fn reconfigure(&mut self, live: &Live) {
        self.sessions.set_limits(live.limits());
    }

    /// Ends every session, each told the server is going away.
    fn shut_down(&mut self, ctx: &Context<'_>, out: &mut Outbox) -> bool {
        for _ in 0..self.backlog.clear() {
            ctx.stats
                .datagram(Service::Seed, Outcome::Dropped(DropReason::Overloaded));
        }
        let sessions = &mut self.sessions;
        let closing = self
            .closing
            .get_or_insert_with(|| sessions.close_all(ctx.now.instant()));
        session_ends::tell_closed(closing, ctx, out, Dialect::Seed, tell)
    }
}

/// How long a datagram waited in the socket's queue; a clock stepped back
/// reads as no wait.
pub fn waited(ctx: &Context<'_>, received: &Received) -> Duration {
    received.kernel_time.map_or(Duration::ZERO, |at| {
        ctx.now.wall.duration_since(at).unwrap_or_default()
    })
}

impl Seed {
    /// Sessions open in this worker's table.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the shutdown's notices began.
    pub fn closing_began(&self) -> bool {
        self.closing.is_some()
    }
}

/// Queues a notice of the seed's protocol to the session the table ended,
/// from the address it logged in on.
fn tell(ended: &Ended, out: &mut Outbox) {
    if let Some(bytes) = ended.decision.reply.as_ref().and_then(Reply::fixed_bytes) {
        out.push_from(bytes, ended.peer, ended.local);
    }
}

/// Logs (within its budget) a stranger's request shed while behind.
fn log_shed(ctx: &Context<'_>, peer: SocketAddr, waited: Duration) {
    if let Some(suppressed) = ctx.log.allow(LogKind::Shed) {
        warn!(
            %peer,
            waited_ms = waited.as_secs_f64() * 1e3,
            suppressed,
            "behind: request from a peer without a session shed"
        );
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
        Effect::End(_) => session_ends::count_end(ctx, handled, peer, Dialect::Seed),
        Effect::Refuse => {
            let (event, limit) = match handled.limit {
                Some(Limit::PerIp) => (Event::RefusalPerIp, "max_sessions_per_ip"),
                _ => (Event::RefusalTable, "max_sessions"),
            };
            stats.event(event);
            if let Some(suppressed) = log.allow(LogKind::Refused) {
                warn!(%peer, suppressed, "login refused: {limit} reached and every session in the way has asked");
            }
        }
        Effect::Nothing => {
            if handled.decision.reply == Some(Reply::NoSession) {
                stats.event(Event::NoSession);
            }
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

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Instant as StdInstant;

    use hora_proto::overload::{BACKLOG, BACKLOG_AGE, STRANGERS_BURST};

    use super::*;
    use crate::config::Config;
    use crate::engine::Clocks;
    use crate::log_budget::LogBudget;
    use crate::stats::Stats;

    fn live() -> Live {
        let mut config = Config::default();
        config.ratelimit.enabled = false;
        config.max_sessions = 100_000;
        config.max_sessions_per_ip = 100_000;
        Live::new(config, None, 1, StdInstant::now()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn peer(n: usize) -> SocketAddr {
        SocketAddr::from((
            Ipv4Addr::new(10, (n >> 16) as u8, (n >> 8) as u8, n as u8),
            1000,
        ))
    }

    fn seed(live: &Live) -> Seed {
        Seed::new(live, Arc::default())
    }

    /// A login from `peer` that waited 3 ms in the queue: late.
    fn late_login(
        seed: &mut Seed,
        ctx: &Context<'_>,
        peer: SocketAddr,
        out: &mut Outbox,
    ) -> Option<Outcome> {
        let received = Received {
            len: 5,
            peer,
            kernel_time: Some(ctx.now.wall - Duration::from_millis(3)),
            local: None,
        };
        seed.datagram(ctx, b"login", received, out)
    }

    #[tokio::test(start_paused = true)]
    async fn a_herd_past_the_budget_waits_in_the_backlog_and_only_its_overflow_is_shed() {
        let (live, stats, log) = (
            live(),
            Stats::default(),
            LogBudget::new(tokio::time::Instant::now()),
        );
        let ctx = Context {
            live: &live,
            stats: stats.worker(0),
            worker: 0,
            log: &log,
            now: Clocks::now(),
        };
        let mut seed = seed(&live);
        let mut out = Outbox::default();
        let herd = STRANGERS_BURST as usize + BACKLOG + 5;
        let outcomes: Vec<_> = (0..herd)
            .map(|n| late_login(&mut seed, &ctx, peer(n), &mut out))
            .collect();
        let burst = STRANGERS_BURST as usize;
        assert!(outcomes[..burst]
            .iter()
            .all(|o| *o == Some(Outcome::Answered)));
        assert!(
            outcomes[burst..burst + BACKLOG].iter().all(Option::is_none),
            "deferred"
        );
        assert!(outcomes[burst + BACKLOG..]
            .iter()
            .all(|o| *o == Some(Outcome::Dropped(DropReason::Overloaded))));
        assert_eq!(seed.deferred_after_idle(), Some(BACKLOG_AFTER_IDLE));
        // The socket stayed idle: the backlog is answered a chunk a call.
        out = Outbox::default();
        seed.deferred(&ctx, &mut out);
        assert_eq!(seed.backlog.len(), BACKLOG - BACKLOG_CHUNK);
        while seed.deferred_after_idle().is_some() {
            seed.deferred(&ctx, &mut out);
        }
        assert_eq!(seed.sessions.len(), burst + BACKLOG);
        // The deferred ones are counted by the protocol when decided; the
        // others were returned for the loop to count.
        let now = stats.snapshot(seed.sessions.len());
        assert_eq!(now.answered(Service::Seed), BACKLOG as u64);
        assert_eq!(now.dropped(Service::Seed, DropReason::Overloaded), 0);
        assert_eq!(now.event(Event::Login), (burst + BACKLOG) as u64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_that_waited_too_long_in_the_backlog_is_shed_and_counted() {
        let (live, stats, log) = (
            live(),
            Stats::default(),
            LogBudget::new(tokio::time::Instant::now()),
        );
        let mut seed = seed(&live);
        let mut out = Outbox::default();
        let ctx = Context {
            live: &live,
            stats: stats.worker(0),
            worker: 0,
            log: &log,
            now: Clocks::now(),
        };
        for n in 0..STRANGERS_BURST as usize + 3 {
            late_login(&mut seed, &ctx, peer(n), &mut out);
        }
        assert_eq!(seed.backlog.len(), 3);
        // The socket never emptied for longer than a backlog entry may wait.
        tokio::time::advance(BACKLOG_AGE + Duration::from_millis(1)).await;
        let later = Context {
            now: Clocks::now(),
            ..ctx
        };
        seed.deferred(&later, &mut out);
        assert_eq!(seed.deferred_after_idle(), None);
        let now = stats.snapshot(seed.sessions.len());
        assert_eq!(now.dropped(Service::Seed, DropReason::Overloaded), 3);
        assert_eq!(seed.sessions.len(), STRANGERS_BURST as usize);
    }
}
