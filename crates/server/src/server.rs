//! The daemon proper: one UDP socket, the receive loop, the idle timers and
//! shutdown. Every protocol decision is `hora_proto`'s; this module moves
//! datagrams, keeps time and logs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hora_proto::ratelimit::Verdict;
use hora_proto::wire::MAX_DATAGRAM;
use hora_proto::{parse, Effect, EndReason, Reply, Rules};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::clock_state::ClockState;
use crate::config::Config;
use crate::gate::Gate;
use crate::log_budget::{Budget, LogBudget, LogKind};
use crate::sessions::{Limits, SessionId, Sessions, TimerCheck};
use crate::standard::{self, Protocol};
use crate::stats::{Snapshot, Stats};
use crate::sys;
use crate::time_cache::TimeCache;

/// How often the status line systemd shows is updated.
const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// How many refusal and displacement notices may be sent per second, over
/// all peers (chrony likewise answers only some of the requests it limits).
const NOTICES_PER_SECOND: u32 = 100;

/// The receive buffer asked of the kernel (it caps it at `net.core.rmem_max`).
/// The default (~200 KiB) holds only a few hundred small datagrams, so a
/// burst from a thousand peers overflows it and datagrams are lost.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// A bound socket, ready to serve.
#[derive(Debug)]
pub struct Server {
    socket: Arc<UdpSocket>,
    sessions: Arc<Sessions>,
    stats: Arc<Stats>,
    gate: Arc<Gate>,
    log: Arc<LogBudget>,
    rules: Rules,
    stats_interval: Duration,
    /// The standard protocols' sockets, served beside the seed's protocol.
    standard: Vec<(UdpSocket, Protocol)>,
    /// The reader of the host clock's state, when SNTP is served.
    clock: Option<ClockState>,
}

/// The socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the OS said.
    pub source: io::Error,
}

impl Server {
    /// Binds the configured address. Nothing is served until [`Server::run`].
    pub async fn bind(config: &Config) -> Result<Server, BindError> {
        let bind =
            |addr: SocketAddr| bind_socket(addr).map_err(|source| BindError { addr, source });
        let socket = bind(config.bind)?;
        let mut standard = Vec::new();
        let mut clock = None;
        if let (Some(addr), Some(settings)) = (config.sntp.bind, config.sntp.settings()) {
            let socket = bind(addr)?;
            if let Err(error) = sys::enable_receive_timestamps(&socket) {
                warn!(%error, "no kernel receive timestamps on the SNTP socket; the clock is read instead");
            }
            let state = ClockState::start(settings);
            standard.push((socket, Protocol::Sntp(state.subscribe())));
            clock = Some(state);
        }
        if let Some(addr) = config.time.bind {
            standard.push((bind(addr)?, Protocol::Time));
        }
        if let Some(addr) = config.daytime.bind {
            standard.push((bind(addr)?, Protocol::Daytime));
        }
        Ok(Server {
            standard,
            clock,
            socket: Arc::new(socket),
            sessions: Arc::new(Sessions::new(Limits {
                max_sessions: config.max_sessions,
                max_sessions_per_ip: config.max_sessions_per_ip,
            })),
            stats: Arc::new(Stats::default()),
            gate: Arc::new(Gate::new(config, std::time::Instant::now())),
            log: Arc::new(LogBudget::new(Instant::now())),
            rules: Rules {
                idle_timeout: config.idle_timeout,
            },
            stats_interval: config.stats_interval,
        })
    }

    /// The address actually bound (its port when the config said port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Each standard protocol served, by name (`sntp`, `time`, `daytime`),
    /// with the address actually bound.
    pub fn standard_addrs(&self) -> io::Result<Vec<(&'static str, SocketAddr)>> {
        self.standard
            .iter()
            .map(|(socket, protocol)| Ok((protocol.name(), socket.local_addr()?)))
            .collect()
    }

    /// Whether per-source rate limiting is on (start-up logs say so).
    pub fn limits_rate(&self) -> bool {
        self.gate.limits_rate()
    }

    /// The open sessions, for observers such as tests.
    pub fn sessions(&self) -> Arc<Sessions> {
        Arc::clone(&self.sessions)
    }

    /// The counters, for observers such as tests.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// Serves until `shutdown` completes, then tells every open session the
    /// server is going away and returns the final counters.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Snapshot {
        tokio::pin!(shutdown);
        // The standard protocols run as tasks of their own, told to stop
        // through a watch channel and awaited before the summary.
        let (stop_standard, stopped) = watch::channel(false);
        let mut standard = JoinSet::new();
        if let Some(clock) = self.clock.take() {
            standard.spawn(clock.run(stopped.clone()));
        }
        let own_ports = self.own_ports();
        for (socket, protocol) in std::mem::take(&mut self.standard) {
            standard.spawn(standard::serve(
                socket,
                protocol,
                standard::Shared {
                    stats: Arc::clone(&self.stats),
                    gate: Arc::clone(&self.gate),
                    log: Arc::clone(&self.log),
                    own_ports: own_ports.clone(),
                },
                stopped.clone(),
            ));
        }
        let mut receiver = Receiver {
            server: &self,
            time: TimeCache::new(),
            notices: Budget::new(NOTICES_PER_SECOND, Duration::from_secs(1), Instant::now()),
        };
        let mut summary = (!self.stats_interval.is_zero()).then(|| {
            let period = self.stats_interval;
            let mut interval = tokio::time::interval_at(Instant::now() + period, period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        // Under systemd, a one-line status for `systemctl status`.
        let mut status = std::env::var_os("NOTIFY_SOCKET").map(|_| {
            let mut interval = tokio::time::interval(STATUS_PERIOD);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        let mut buffer = [0u8; MAX_DATAGRAM + 1];
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = next_tick(&mut summary) => {
                    info!(stats = %self.snapshot(), "summary");
                }
                () = next_tick(&mut status) => {
                    let now = self.snapshot();
                    let served = now.time_requests + now.sntp_requests + now.rfc868_requests + now.daytime_requests;
                    sys::notify::status(&format!("sessions open: {}, requests served: {served}", now.sessions_open));
                }
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((len, peer)) => receiver.datagram(&buffer[..len], peer).await,
                    Err(error) => receiver.receive_error(&error),
                },
            }
        }
        let _ = stop_standard.send(true);
        while standard.join_next().await.is_some() {}
        self.shut_down().await
    }

    /// Ends every session with the shutdown notice and logs the summary.
    async fn shut_down(&self) -> Snapshot {
        let closing = self.sessions.close_all();
        info!(
            sessions = closing.len(),
            "shutting down; notifying open sessions"
        );
        for (peer, session, decision) in closing {
            if let Some(bytes) = decision.reply.as_ref().and_then(Reply::fixed_bytes) {
                send(&self.socket, &self.stats, &self.log, bytes, peer).await;
            }
            Stats::bump(&self.stats.shutdown_closes);
            debug!(%session, %peer, "session closed by shutdown");
        }
        let snapshot = self.snapshot();
        info!(stats = %snapshot, "stopped");
        snapshot
    }

    /// The ports of every socket the daemon serves: a datagram from one of
    /// them (on another host) is another daemon's reply, never a request.
    fn own_ports(&self) -> Vec<u16> {
        std::iter::once(&*self.socket)
            .chain(self.standard.iter().map(|(socket, _)| socket))
            .filter_map(|socket| socket.local_addr().ok())
            .map(|addr| addr.port())
            .collect()
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            ..self.stats.snapshot(self.sessions.len())
        }
    }
}

/// A non-blocking UDP socket on `addr` with a large receive buffer.
fn bind_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(RECEIVE_BUFFER_BYTES) {
        warn!(%error, "cannot enlarge the receive buffer; bursts may be lost");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    debug!(bytes = socket.recv_buffer_size()?, "receive buffer");
    UdpSocket::from_std(socket.into())
}

/// The state the receive loop alone owns.
struct Receiver<'a> {
    server: &'a Server,
    time: TimeCache,
    /// Refusals and displacement notices sent this second: a flood of
    /// logins past the limits must not turn into a flood of replies.
    notices: Budget,
}

impl Receiver<'_> {
    /// One datagram in, at most one out (and, when a login displaces a
    /// session, that session's notice).
    async fn datagram(&mut self, datagram: &[u8], peer: SocketAddr) {
        let server = self.server;
        let (stats, log, gate) = (&*server.stats, &*server.log, &*server.gate);
        let now = Instant::now();
        if !gate.admits(peer, stats, log) {
            Stats::bump(&stats.dropped);
            return;
        }
        let request = parse(datagram);
        let answerable = || gate.within_rate(peer, now.into_std(), stats, log) == Verdict::Allow;
        let handled =
            server
                .sessions
                .handle(peer, request, now.into_std(), server.rules, answerable);
        let Some(handled) = handled else {
            // Over the rate limit. The seed's protocol has no way to say
            // "slow down": drop.
            Stats::bump(&stats.dropped);
            return;
        };
        let session = handled.session;

        if let Err(error) = request {
            Stats::bump(&stats.invalid_datagrams);
            if let Some(suppressed) = log.allow(LogKind::InvalidDatagram) {
                warn!(
                    session = %OptionalId(session),
                    %peer,
                    len = datagram.len(),
                    start = %Preview(datagram),
                    suppressed,
                    "invalid datagram: {error}"
                );
            }
        }
        match handled.decision.effect {
            Effect::Open { idle_deadline } => {
                Stats::bump(&stats.logins);
                if let Some(id) = session {
                    if let Some(suppressed) = log.allow(LogKind::Login) {
                        info!(session = %id, %peer, suppressed, "login");
                    }
                    self.spawn_idle_timer(peer, id, Instant::from_std(idle_deadline));
                }
            }
            Effect::Keep { .. } => {}
            Effect::End(EndReason::Logout) => {
                Stats::bump(&stats.logouts);
                if let Some(suppressed) = log.allow(LogKind::Logout) {
                    info!(session = %OptionalId(session), %peer, suppressed, "logout");
                }
            }
            Effect::End(_) => {
                Stats::bump(&stats.invalid_options);
                if let Some(suppressed) = log.allow(LogKind::InvalidOption) {
                    info!(session = %OptionalId(session), %peer, suppressed, "session ended by an invalid option");
                }
            }
            Effect::Refuse => {
                Stats::bump(&stats.refusals);
                if let Some(suppressed) = log.allow(LogKind::Refused) {
                    warn!(%peer, suppressed, "login refused: session limit reached and every session has asked");
                }
            }
            Effect::Nothing => {
                if handled.decision.reply == Some(Reply::NoSession) {
                    Stats::bump(&stats.no_session);
                }
            }
        }
        if let Some((displaced, id, notice)) = handled.displaced {
            Stats::bump(&stats.displaced);
            if let Some(suppressed) = log.allow(LogKind::Displaced) {
                info!(session = %id, peer = %displaced, by = %peer, suppressed, "session that never asked made room for a login");
            }
            self.notify(notice.reply, displaced, now).await;
        }
        match handled.decision.reply {
            Some(Reply::Refused) => self.notify(Some(Reply::Refused), peer, now).await,
            Some(reply) => {
                if reply == Reply::Time {
                    Stats::bump(&stats.time_requests);
                    if let Some(suppressed) = log.allow(LogKind::TimeServed) {
                        debug!(session = %OptionalId(session), %peer, suppressed, "time served");
                    }
                }
                let bytes = reply.bytes(self.time.current());
                send(&server.socket, stats, log, bytes, peer).await;
            }
            None => Stats::bump(&stats.dropped),
        }
    }

    /// Sends a refusal or displacement notice, within the notice budget.
    async fn notify(&mut self, reply: Option<Reply>, peer: SocketAddr, now: Instant) {
        let Some(bytes) = reply.as_ref().and_then(Reply::fixed_bytes) else {
            return;
        };
        if self.notices.allow(now).is_some() {
            send(
                &self.server.socket,
                &self.server.stats,
                &self.server.log,
                bytes,
                peer,
            )
            .await;
        } else {
            Stats::bump(&self.server.stats.notices_withheld);
        }
    }

    fn receive_error(&mut self, error: &io::Error) {
        Stats::bump(&self.server.stats.dropped);
        if let Some(suppressed) = self.server.log.allow(LogKind::ReceiveError) {
            warn!(%error, suppressed, "receive failed");
        }
    }

    /// Starts the task that ends session `id` when it has been idle too long.
    fn spawn_idle_timer(&self, peer: SocketAddr, id: SessionId, deadline: Instant) {
        let socket = Arc::clone(&self.server.socket);
        let sessions = Arc::clone(&self.server.sessions);
        let stats = Arc::clone(&self.server.stats);
        let log = Arc::clone(&self.server.log);
        let timer = tokio::spawn(async move {
            let mut deadline = deadline;
            loop {
                tokio::time::sleep_until(deadline).await;
                match sessions.check_idle(peer, id, Instant::now().into_std()) {
                    TimerCheck::Gone => return,
                    TimerCheck::Later(next) => deadline = Instant::from_std(next),
                    TimerCheck::Expired(decision) => {
                        Stats::bump(&stats.idle_expiries);
                        if let Some(suppressed) = log.allow(LogKind::Idle) {
                            info!(session = %id, %peer, suppressed, "session idled out");
                        }
                        if let Some(bytes) = decision.reply.as_ref().and_then(Reply::fixed_bytes) {
                            // Not `send(..).await`: an awaited send would be
                            // part of every timer task's state, and tripled
                            // its size (184 -> 512 bytes per session).
                            match socket.try_send_to(bytes, peer) {
                                Ok(_) => Stats::bump(&stats.replies),
                                Err(error) => {
                                    Stats::bump(&stats.send_errors);
                                    if let Some(suppressed) = log.allow(LogKind::SendError) {
                                        debug!(%peer, %error, suppressed, "idle notice not sent");
                                    }
                                }
                            }
                        }
                        return;
                    }
                }
            }
        });
        self.server
            .sessions
            .set_timer(peer, id, timer.abort_handle());
    }
}

/// The next tick of an optional interval; never, without one.
async fn next_tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sends one datagram; a failure is counted and logged, never fatal.
pub(crate) async fn send(
    socket: &UdpSocket,
    stats: &Stats,
    log: &LogBudget,
    bytes: &[u8],
    peer: SocketAddr,
) {
    match socket.send_to(bytes, peer).await {
        Ok(_) => Stats::bump(&stats.replies),
        Err(error) => {
            Stats::bump(&stats.send_errors);
            if let Some(suppressed) = log.allow(LogKind::SendError) {
                debug!(%peer, %error, suppressed, "send failed");
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
