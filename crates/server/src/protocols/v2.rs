//! Protocol v2 on the seed's socket (`hora_proto::v2`): a login answered
//! with a stateless cookie, a session opened only by a confirmation that
//! returns it, a token every request must carry. The seed protocol's loop
//! hands it every datagram that starts with the v2 magic
//! ([`crate::protocols::seed`]).
//!
//! Its sessions are in a table of their own, under the same limits as the
//! seed's but counted apart (`max_sessions` and `max_sessions_per_ip` each
//! hold for v2 sessions, and for seed sessions, separately): no number of
//! unproven seed sessions takes a v2 session's place or keeps one out.
//! Every v2 session is proven, so none is ever displaced. A request with
//! its session's token is answered whatever its address's rate limit says
//! (the limit keeps horad from being a reflector for forged sources; a
//! token proves the source): a forger flooding from a session's address
//! can't starve it. A login, and a request from an address without a v2
//! session, are rate limited as the seed's strangers are.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hora_proto::outcome::{DropReason, Outcome};
use hora_proto::overload::Admission;
use hora_proto::ratelimit::Verdict;
use hora_proto::sntp::NtpTimestamp;
use hora_proto::v2::wire::{self, Stamps};
use hora_proto::v2::{parse_client, ClientMessage, ClockStatus, CookieKey, Nonce, Token};
use hora_proto::{Effect, Reply};
use tracing::{debug, info, warn};

use crate::clock_state::ClockFeed;
use crate::engine::Context;
use crate::live::Live;
use crate::log_budget::LogKind;
use crate::outbox::Outbox;
use crate::protocols::session_ends::{self, Dialect, OptionalId};
use crate::sessions::{Ended, SessionStats, Sessions};
use crate::stats::Event;
use crate::sys::Received;
use crate::time_cache::TimeCache;

/// Protocol v2's state, owned by the seed protocol's loop.
#[derive(Debug)]
pub struct V2 {
    sessions: Sessions,
    cookies: CookieKey,
    clock: ClockFeed,
    /// The last of the clock's state read (re-read when it changed).
    stamps: (u8, ClockStatus),
    time: TimeCache,
    /// Which logins are answered at once while the server is behind.
    admission: Admission,
    /// The sessions still to be told of the shutdown, once it began.
    closing: Option<Vec<Ended>>,
}

impl V2 {
    /// The protocol with an empty table under `live`'s limits, counting its
    /// sessions in `sessions` (shared by every worker's table), its cookies
    /// under a fresh random key.
    pub fn new(live: &Live, sessions: Arc<SessionStats>, clock: ClockFeed) -> V2 {
        let mut v2 = V2 {
            sessions: Sessions::proven(live.limits(), sessions),
            cookies: CookieKey::new(rand::random(), Instant::now()),
            stamps: (0, ClockStatus::Unsynchronized),
            clock,
            time: TimeCache::new(),
            admission: Admission::default(),
            closing: None,
        };
        v2.read_clock();
        v2
    }

    /// One v2 datagram in, at most one answer queued; its outcome.
    /// `waited`: how long it waited in the socket's queue.
    pub fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: &Received,
        waited: std::time::Duration,
        out: &mut Outbox,
    ) -> Outcome {
        let peer = received.peer;
        let message = match parse_client(datagram) {
            Ok(message) => message,
            Err(error) => {
                ctx.stats.event(Event::InvalidDatagram);
                if let Some(suppressed) = ctx.log.allow(LogKind::InvalidDatagram) {
                    warn!(%peer, len = datagram.len(), suppressed, "invalid datagram: {error}");
                }
                return Outcome::Dropped(DropReason::Invalid);
            }
        };
        match message {
            ClientMessage::Login { nonce } => self.challenge(ctx, peer, &nonce, waited, out),
            ClientMessage::Confirm { nonce, cookie } => {
                if !self.cookies.check(peer, &nonce, &cookie, ctx.now.instant()) {
                    ctx.stats.event(Event::V2CookieRefused);
                    log_forged(ctx, peer, "confirmation with a cookie that is not good");
                    return Outcome::Dropped(DropReason::Unauthenticated);
                }
                self.confirm(ctx, peer, &nonce, out)
            }
            ClientMessage::Request { .. } => self.request(ctx, &message, received, out),
        }
    }

    /// Answers a login with the cookie for its address and nonce, keeping
    /// nothing: a forged one costs a 45-byte answer to its 256 bytes.
    fn challenge(
        &mut self,
        ctx: &Context<'_>,
        peer: SocketAddr,
        nonce: &Nonce,
        waited: std::time::Duration,
        out: &mut Outbox,
    ) -> Outcome {
        let now = ctx.now.instant();
        if !self.admission.admits(waited, now) {
            return Outcome::Dropped(DropReason::Overloaded);
        }
        if ctx.live.gate.within_rate(ctx.worker, peer, now, ctx.log) != Verdict::Allow {
            return Outcome::Dropped(DropReason::RateLimited);
        }
        let cookie = self.cookies.issue(peer, nonce, now);
        out.push(&wire::write_challenge(nonce, &cookie), peer, false);
        ctx.stats.event(Event::V2Challenge);
        Outcome::Answered
    }

    /// A confirmation whose cookie checked: opens the session (or, resent
    /// after a lost welcome, repeats the open one's token), or says the
    /// server is full.
    fn confirm(
        &mut self,
        ctx: &Context<'_>,
        peer: SocketAddr,
        nonce: &Nonce,
        out: &mut Outbox,
    ) -> Outcome {
        let now = ctx.now.instant();
        let rules = ctx.live.rules();
        let Ok(handled) =
            self.sessions
                .handle(peer, Ok(hora_proto::Request::Login), now, rules, |_| Ok(()))
        else {
            return Outcome::Dropped(DropReason::Invalid);
        };
        let (reply, token) = match handled.decision.effect {
            Effect::Open { .. } => {
                let token = Token(rand::random());
                self.sessions.prove(peer, token);
                self.sessions.reply_from(peer, out.source());
                ctx.stats.event(Event::V2Login);
                if let Some(suppressed) = ctx.log.allow(LogKind::Login) {
                    info!(session = %OptionalId(handled.session), %peer, suppressed, "login (protocol v2)");
                }
                (Reply::Menu, token)
            }
            Effect::Keep { .. } => match self.sessions.token(peer) {
                Some(token) => (Reply::Menu, token),
                None => return Outcome::Dropped(DropReason::Invalid),
            },
            _ => {
                ctx.stats.event(Event::V2Refused);
                if let Some(suppressed) = ctx.log.allow(LogKind::Refused) {
                    warn!(%peer, suppressed, "protocol v2 login refused: its session limit reached by v2 sessions");
                }
                (Reply::Refused, Token([0; 16]))
            }
        };
        let mut answer = [0u8; wire::REQUEST_LEN];
        let len = wire::write_welcome(reply, nonce, &token, rules.idle_timeout, &mut answer);
        out.push(&answer[..len], peer, false);
        Outcome::Answered
    }

    /// A menu option: answered if it carries its session's token (or, from
    /// an address without a v2 session, told there is none); dropped if
    /// the token is another.
    fn request(
        &mut self,
        ctx: &Context<'_>,
        message: &ClientMessage,
        received: &Received,
        out: &mut Outbox,
    ) -> Outcome {
        let ClientMessage::Request { token, id, .. } = message else {
            return Outcome::Dropped(DropReason::Invalid);
        };
        let (peer, now, id) = (received.peer, ctx.now.instant(), *id);
        let request = message.request();
        let reply = match self.sessions.token(peer) {
            Some(held) if held == *token => {
                let rules = ctx.live.rules();
                let Ok(handled) = self.sessions.handle(peer, request, now, rules, |_| Ok(()))
                else {
                    return Outcome::Dropped(DropReason::Invalid);
                };
                session_ends::count_end(ctx, &handled, peer, Dialect::V2);
                handled.decision.reply
            }
            Some(_) => {
                ctx.stats.event(Event::V2TokenWrong);
                log_forged(ctx, peer, "request with a token that is not its session's");
                return Outcome::Dropped(DropReason::Unauthenticated);
            }
            None => {
                if ctx.live.gate.within_rate(ctx.worker, peer, now, ctx.log) != Verdict::Allow {
                    return Outcome::Dropped(DropReason::RateLimited);
                }
                ctx.stats.event(Event::NoSession);
                Some(hora_proto::v2::without_session(request))
            }
        };
        let Some(reply) = reply else {
            return Outcome::Dropped(DropReason::Invalid);
        };
        let mut answer = [0u8; wire::REQUEST_LEN];
        let len = if reply == Reply::Time {
            ctx.stats.event(Event::V2TimeServed);
            // Its budget is asked only when the line would be written.
            if tracing::enabled!(tracing::Level::DEBUG) {
                if let Some(suppressed) = ctx.log.allow(LogKind::TimeServed) {
                    debug!(%peer, suppressed, "time served (protocol v2)");
                }
            }
            let stamps = self.stamps(ctx, received);
            let text = reply.bytes(self.time.at(ctx.now.wall));
            wire::write_answer(reply, text, token, id, Some(&stamps), &mut answer)
        } else {
            let text = reply.fixed_bytes().unwrap_or_default();
            wire::write_answer(reply, text, token, id, None, &mut answer)
        };
        // The transmit timestamp (`sntp::TRANSMIT_FIELD`) is written just before the
        // batch leaves, as SNTP's is.
        out.push(&answer[..len], peer, reply == Reply::Time);
        Outcome::Answered
    }

    /// A time answer's clock fields: the kernel's receive timestamp (else
    /// the batch's clock reading), the clock's state as SNTP says it.
    fn stamps(&mut self, ctx: &Context<'_>, received: &Received) -> Stamps {
        if self.clock.served.has_changed().unwrap_or(false)
            || self.clock.kernel.has_changed().unwrap_or(false)
        {
            self.read_clock();
        }
        let (leap, status) = self.stamps;
        Stamps {
            leap,
            status,
            receive: NtpTimestamp::from_system_time(received.kernel_time.unwrap_or(ctx.now.wall)),
        }
    }

    fn read_clock(&mut self) {
        let served = *self.clock.served.borrow_and_update();
        let kernel = *self.clock.kernel.borrow_and_update();
        self.stamps = (served.leap_indicator, ClockStatus::of(&served, kernel));
    }

    /// When the next v2 session may idle out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sessions.next_deadline()
    }

    /// Ends the v2 sessions that idled out, each told so with its token.
    pub fn due(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        session_ends::expire_due(&mut self.sessions, ctx, out, Dialect::V2, notify);
    }

    /// New limits, from a reload.
    pub fn reconfigure(&mut self, live: &Live) {
        self.sessions.set_limits(live.limits());
    }

    /// Sessions open in this worker's table.
    pub fn open_sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the shutdown's notices began ([`V2::shut_down`] was called).
    pub fn closing_began(&self) -> bool {
        self.closing.is_some()
    }

    /// Ends every v2 session, each told the server is going away; whether
    /// more remain to be told.
    pub fn shut_down(&mut self, ctx: &Context<'_>, out: &mut Outbox) -> bool {
        let sessions = &mut self.sessions;
        let closing = self
            .closing
            .get_or_insert_with(|| sessions.close_all(ctx.now.instant()));
        session_ends::tell_closed(closing, ctx, out, Dialect::V2, notify)
    }
}

/// Queues the notice of a session the table ended, with its token.
fn notify(ended: &Ended, out: &mut Outbox) {
    let (Some(reply), Some(token)) = (ended.decision.reply, ended.token) else {
        return;
    };
    let mut answer = [0u8; wire::REQUEST_LEN];
    let text = reply.fixed_bytes().unwrap_or_default();
    let len = wire::write_answer(reply, text, &token, 0, None, &mut answer);
    out.push_from(&answer[..len], ended.peer, ended.local);
}

/// Logs (within its budget) a datagram a forger may have sent.
fn log_forged(ctx: &Context<'_>, peer: SocketAddr, what: &str) {
    if let Some(suppressed) = ctx.log.allow(LogKind::Forged) {
        warn!(%peer, suppressed, "protocol v2 {what}: dropped");
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::{Duration, Instant as StdInstant};

    use hora_proto::v2::client::{read_server, ServerDatagram};
    use hora_proto::v2::wire::{confirm, login, request};
    use hora_proto::v2::Cookie;
    use hora_proto::wire::TIME_MENU;

    use super::*;
    use crate::config::Config;
    use crate::engine::Clocks;
    use crate::log_budget::LogBudget;
    use crate::stats::Stats;

    const NONCE: Nonce = Nonce([1; 16]);

    fn live(max_sessions: usize) -> Live {
        let mut config = Config::default();
        config.ratelimit.enabled = false;
        config.max_sessions = max_sessions;
        config.max_sessions_per_ip = max_sessions;
        Live::new(config, None, 1, StdInstant::now()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), port))
    }

    /// A v2 table and what it needs, driven one datagram at a time.
    struct Bench {
        v2: V2,
        live: Live,
        stats: Stats,
        log: LogBudget,
    }

    impl Bench {
        fn new(max_sessions: usize) -> Bench {
            let live = live(max_sessions);
            let clock = ClockFeed::fixed(hora_proto::sntp::ServerClock::default(), true);
            Bench {
                v2: V2::new(&live, Arc::default(), clock),
                live,
                stats: Stats::default(),
                log: LogBudget::new(tokio::time::Instant::now()),
            }
        }

        /// Runs `f` on the protocol as the loop would now; its value and
        /// what it queued, with the peers.
        fn turn<T>(
            &mut self,
            f: impl FnOnce(&mut V2, &Context<'_>, &mut Outbox) -> T,
        ) -> (T, Vec<(Vec<u8>, SocketAddr)>) {
            let ctx = Context {
                live: &self.live,
                stats: self.stats.worker(0),
                worker: 0,
                log: &self.log,
                now: Clocks::now(),
            };
            let mut out = Outbox::default();
            let value = f(&mut self.v2, &ctx, &mut out);
            let queued = out
                .queued()
                .iter()
                .map(|(b, to)| (b.to_vec(), *to))
                .collect();
            (value, queued)
        }

        /// Sends `datagram` from `from`; the outcome and what was answered.
        fn send(&mut self, datagram: &[u8], from: SocketAddr) -> (Outcome, Vec<Vec<u8>>) {
            let (outcome, queued) = self.turn(|v2, ctx, out| {
                let received = Received {
                    len: datagram.len(),
                    peer: from,
                    kernel_time: Some(ctx.now.wall),
                    local: None,
                };
                v2.datagram(ctx, datagram, &received, Duration::ZERO, out)
            });
            (
                outcome,
                queued.into_iter().map(|(bytes, _)| bytes).collect(),
            )
        }

        /// Logs in from `from`: the session's token.
        fn log_in(&mut self, from: SocketAddr) -> Token {
            let (_, answers) = self.send(&login(&NONCE), from);
            let Ok(ServerDatagram::Challenge { cookie, .. }) = read_server(&answers[0]) else {
                panic!("no challenge");
            };
            let (_, answers) = self.send(&confirm(&NONCE, &cookie), from);
            match read_server(&answers[0]) {
                Ok(ServerDatagram::Welcome(w)) if w.reply == Reply::Menu => w.token,
                other => panic!("not welcomed: {other:?}"),
            }
        }

        fn event(&self, event: Event) -> u64 {
            self.stats.snapshot(0).event(event)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_keeps_nothing_and_a_good_cookie_opens_a_session() {
        let mut bench = Bench::new(10);
        let (outcome, answers) = bench.send(&login(&NONCE), peer(1));
        assert_eq!(outcome, Outcome::Answered);
        assert!(answers[0].len() <= wire::REQUEST_LEN);
        assert!(bench.v2.sessions.is_empty(), "nothing kept for a login");
        let token = bench.log_in(peer(1));
        assert_eq!(bench.v2.sessions.len(), 1);
        assert_eq!(bench.event(Event::V2Login), 1);
        let (_, answers) = bench.send(&request(1, &token, 7), peer(1));
        let Ok(ServerDatagram::Answer(answer)) = read_server(&answers[0]) else {
            panic!("no answer");
        };
        assert_eq!(
            (answer.reply, answer.id, answer.token),
            (Reply::Time, 7, token)
        );
        assert_eq!(answer.status, Some(ClockStatus::Synchronized));
        assert!(answer.text.ends_with(TIME_MENU.as_bytes()));
        assert_ne!(answer.receive, NtpTimestamp::default());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cookie_for_another_address_or_made_up_opens_nothing() {
        let mut bench = Bench::new(10);
        let (_, answers) = bench.send(&login(&NONCE), peer(1));
        let Ok(ServerDatagram::Challenge { cookie, .. }) = read_server(&answers[0]) else {
            panic!("no challenge");
        };
        for (datagram, from) in [
            (confirm(&NONCE, &cookie), peer(2)),
            (confirm(&Nonce([2; 16]), &cookie), peer(1)),
            (confirm(&NONCE, &Cookie([0; 20])), peer(1)),
        ] {
            let (outcome, answers) = bench.send(&datagram, from);
            assert_eq!(outcome, Outcome::Dropped(DropReason::Unauthenticated));
            assert!(answers.is_empty());
        }
        assert!(bench.v2.sessions.is_empty());
        assert_eq!(bench.event(Event::V2CookieRefused), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wrong_token_changes_nothing_and_gets_no_answer() {
        let mut bench = Bench::new(10);
        let token = bench.log_in(peer(1));
        let forged = Token([9; 16]);
        for option in [0, 1, 2, 77] {
            let (outcome, answers) = bench.send(&request(option, &forged, 1), peer(1));
            assert_eq!(outcome, Outcome::Dropped(DropReason::Unauthenticated));
            assert!(answers.is_empty());
        }
        assert_eq!(bench.event(Event::V2TokenWrong), 4);
        // The session is untouched: its own logout still ends it.
        let (_, answers) = bench.send(&request(2, &token, 2), peer(1));
        let Ok(ServerDatagram::Answer(answer)) = read_server(&answers[0]) else {
            panic!("no answer");
        };
        assert_eq!(answer.reply, Reply::Closed);
        assert!(bench.v2.sessions.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_without_a_session_is_told_so_and_opens_none() {
        let mut bench = Bench::new(10);
        for (option, reply) in [
            (0, Reply::NoSession),
            (1, Reply::NoSession),
            (2, Reply::Closed),
        ] {
            let (_, answers) = bench.send(&request(option, &Token([3; 16]), 5), peer(1));
            let Ok(ServerDatagram::Answer(answer)) = read_server(&answers[0]) else {
                panic!("no answer");
            };
            assert_eq!((answer.reply, answer.id), (reply, 5), "option {option}");
        }
        assert!(bench.v2.sessions.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_resent_confirmation_gets_the_same_token_and_a_full_table_refuses() {
        let mut bench = Bench::new(1);
        let token = bench.log_in(peer(1));
        assert_eq!(bench.log_in(peer(1)), token, "resent after a lost welcome");
        let (_, answers) = bench.send(&login(&NONCE), peer(2));
        let Ok(ServerDatagram::Challenge { cookie, .. }) = read_server(&answers[0]) else {
            panic!("no challenge");
        };
        let (_, answers) = bench.send(&confirm(&NONCE, &cookie), peer(2));
        let Ok(ServerDatagram::Welcome(welcome)) = read_server(&answers[0]) else {
            panic!("no welcome");
        };
        assert_eq!(welcome.reply, Reply::Refused);
        assert_eq!(bench.event(Event::V2Refused), 1);
        assert_eq!(bench.v2.sessions.token(peer(1)), Some(token));
    }

    #[tokio::test(start_paused = true)]
    async fn every_session_is_told_of_the_shutdown_with_its_token() {
        let mut bench = Bench::new(10);
        let tokens: Vec<Token> = (1..=3).map(|port| bench.log_in(peer(port))).collect();
        let (more, queued) = bench.turn(|v2, ctx, out| v2.shut_down(ctx, out));
        assert!(!more, "all told in one turn");
        let mut told: Vec<(SocketAddr, Token)> = queued
            .iter()
            .map(|(bytes, to)| match read_server(bytes) {
                Ok(ServerDatagram::Answer(a)) if a.reply == Reply::ShutdownNotice => (*to, a.token),
                other => panic!("not a shutdown notice: {other:?}"),
            })
            .collect();
        told.sort_by_key(|(to, _)| to.port());
        let expected: Vec<_> = (1..=3).map(peer).zip(tokens).collect();
        assert_eq!(told, expected);
        assert_eq!(bench.event(Event::EndShutdown), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_session_is_told_with_its_token() {
        let mut bench = Bench::new(10);
        let token = bench.log_in(peer(1));
        tokio::time::advance(Duration::from_secs(10)).await;
        let ((), queued) = bench.turn(|v2, ctx, out| v2.due(ctx, out));
        let Ok(ServerDatagram::Answer(answer)) = read_server(&queued[0].0) else {
            panic!("no notice");
        };
        assert_eq!(
            (answer.reply, answer.id, answer.token),
            (Reply::IdleNotice, 0, token)
        );
        assert!(bench.v2.sessions.is_empty());
    }
}
