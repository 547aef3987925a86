//! The daemon proper: one UDP socket, the receive loop, the idle timers and
//! shutdown. Every protocol decision is `hora_proto`'s; this module moves
//! datagrams, keeps time and logs.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hora_proto::host_clock::ClockSettings;
use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::overload::Admission;
use hora_proto::ratelimit::Verdict;
use hora_proto::{parse, Effect, EndReason, Reply, Rules};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::clock_state::ClockState;
use crate::config::{Config, ConfigError};
use crate::gate::Gate;
use crate::log_budget::{Budget, LogBudget, LogKind};
use crate::logging;
use crate::ops;
use crate::sessions::{Known, Limits, SessionId, Sessions, TimerCheck, Unanswered};
use crate::standard::{self, Protocol};
use crate::stats::{log_summary, Event, Snapshot, Stats};
use crate::sys;
use crate::sys::batch::{Inbox, Outbox};
use crate::time_cache::TimeCache;

/// How often the status line systemd shows is updated.
const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// How many refusal and displacement notices may be sent per second, over
/// all peers (chrony likewise answers only some of the requests it limits).
const NOTICES_PER_SECOND: u32 = 100;

/// The receive buffer asked of the kernel for the seed protocol's socket
/// (it caps it at `net.core.rmem_max`). The default (~200 KiB) holds only a
/// few hundred small datagrams, so a burst of logins from a thousand peers
/// overflows it and datagrams are lost; a session's client would resend
/// only after a second.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// The receive buffer of the SNTP socket: small, as chronyd keeps its own.
/// A request that waits in a deep queue gets a late answer whose delay the
/// client can't use; a request dropped from a short one is retried by its
/// client, which polls again anyway. 256 KiB holds a few hundred requests,
/// under a millisecond of work (BENCHMARKS.md, "SNTP under a garbage flood at full speed").
const SNTP_RECEIVE_BUFFER_BYTES: usize = 256 << 10;

/// A bound socket, ready to serve.
#[derive(Debug)]
pub struct Server {
    socket: Arc<UdpSocket>,
    sessions: Arc<Sessions>,
    stats: Arc<Stats>,
    gate: Arc<Gate>,
    log: Arc<LogBudget>,
    /// The idle timeout in force, in nanoseconds (a reload changes it).
    idle_timeout_nanos: AtomicU64,
    stats_interval: Duration,
    /// The configuration in force: a reload is compared with it.
    config: Mutex<Config>,
    /// Where a reload sends new SNTP settings, when SNTP is served.
    clock_settings: Option<watch::Sender<ClockSettings>>,
    /// The standard protocols' sockets, served beside the seed's protocol.
    standard: Vec<(UdpSocket, Protocol)>,
    /// The reader of the host clock's state, when SNTP is served.
    clock: Option<ClockState>,
    /// What SNTP replies say of the clock, for observers.
    served_clock: Option<watch::Receiver<hora_proto::sntp::ServerClock>>,
    /// The operators' HTTP listener, when configured.
    metrics: Option<TcpListener>,
    /// When the daemon started, and the limits it runs with, for `/status`.
    started: SystemTime,
    limits: ops::Limits,
}

/// The socket could not be bound.
#[derive(Debug, thiserror::Error)]
// Not "{addr}: {source}": the source is the error's cause, and `{:#}`
// already prints it after a colon; naming it twice printed it twice.
#[error("cannot bind {addr}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the OS said.
    pub source: io::Error,
}

impl Server {
    /// Binds the configured address. Nothing is served until [`Server::run`].
    pub async fn bind(config: &Config) -> Result<Server, BindError> {
        let bind_with = |addr: SocketAddr, buffer: usize| {
            bind_socket(addr, buffer).map_err(|source| BindError { addr, source })
        };
        let bind = |addr: SocketAddr| bind_with(addr, RECEIVE_BUFFER_BYTES);
        let socket = bind(config.bind)?;
        // How long each datagram waited tells when the server is behind.
        if let Err(error) = sys::enable_receive_timestamps(&socket) {
            warn!(%error, "no kernel receive timestamps on the seed protocol's socket; it never counts as behind");
        }
        let mut standard = Vec::new();
        let mut clock = None;
        let mut clock_settings = None;
        if let (Some(addr), Some(settings)) = (config.sntp.bind, config.sntp.settings()) {
            let socket = bind_with(addr, SNTP_RECEIVE_BUFFER_BYTES)?;
            if let Err(error) = sys::enable_receive_timestamps(&socket) {
                warn!(%error, "no kernel receive timestamps on the SNTP socket; the clock is read instead");
            }
            let (settings_tx, settings_rx) = watch::channel(settings);
            clock_settings = Some(settings_tx);
            let state = ClockState::start(settings_rx);
            standard.push((socket, Protocol::Sntp(state.subscribe())));
            clock = Some(state);
        }
        let metrics = match config.metrics.bind {
            Some(addr) => Some(bind_listener(addr).map_err(|source| BindError { addr, source })?),
            None => None,
        };
        if let Some(addr) = config.time.bind {
            standard.push((bind(addr)?, Protocol::Time));
        }
        if let Some(addr) = config.daytime.bind {
            standard.push((bind(addr)?, Protocol::Daytime));
        }
        Ok(Server {
            standard,
            served_clock: clock.as_ref().map(ClockState::subscribe),
            clock,
            metrics,
            started: SystemTime::now(),
            limits: ops::Limits {
                idle_timeout: config.idle_timeout,
                max_sessions: config.max_sessions,
                max_sessions_per_ip: config.max_sessions_per_ip,
                rate: config.ratelimit.enabled.then_some(config.ratelimit.rate),
                burst: config.ratelimit.burst,
            },
            socket: Arc::new(socket),
            sessions: Arc::new(Sessions::new(Limits {
                max_sessions: config.max_sessions,
                max_sessions_per_ip: config.max_sessions_per_ip,
            })),
            stats: Arc::new(Stats::default()),
            gate: Arc::new(Gate::new(config, std::time::Instant::now())),
            log: Arc::new(LogBudget::new(Instant::now())),
            idle_timeout_nanos: AtomicU64::new(nanos(config.idle_timeout)),
            config: Mutex::new(config.clone()),
            clock_settings,
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

    /// The operators' HTTP address, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
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
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Snapshot {
        let (_keep, reloads) = mpsc::channel(1);
        self.run_reloading(shutdown, reloads).await
    }

    /// [`Server::run`], applying each configuration that arrives on
    /// `reloads` (read by the same parser as at start-up, on SIGHUP): what
    /// may change live changes, without dropping a session; a configuration
    /// that failed to load, or that moves a socket, is refused and the
    /// running one stays. systemd hears `RELOADING=1`, then `READY=1`.
    pub async fn run_reloading(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut reloads: mpsc::Receiver<Result<Config, ConfigError>>,
    ) -> Snapshot {
        tokio::pin!(shutdown);
        // The standard protocols run as tasks of their own, told to stop
        // through a watch channel and awaited before the summary.
        let (stop_standard, stopped) = watch::channel(false);
        let mut standard = JoinSet::new();
        if let Some(clock) = self.clock.take() {
            standard.spawn(clock.run(stopped.clone()));
        }
        let observed = self.observed();
        if let Some(listener) = self.metrics.take() {
            let (gate, log) = (Arc::clone(&self.gate), Arc::clone(&self.log));
            standard.spawn(ops::http::serve(
                listener,
                observed,
                gate,
                log,
                stopped.clone(),
            ));
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
            admission: Admission::default(),
            outbox: Outbox::default(),
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
        // Every datagram queued is read at once (one recvmmsg), handled in
        // order, and the replies sent at once (one sendmmsg).
        let mut inbox = Inbox::default();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(loaded) = reloads.recv() => {
                    sys::notify::reloading();
                    match loaded {
                        Ok(config) => self.reload(&config),
                        Err(error) => warn!("reload refused, the running configuration stays: {error}"),
                    }
                    sys::notify::ready();
                }
                () = next_tick(&mut summary) => {
                    log_summary("summary", &self.snapshot());
                }
                () = next_tick(&mut status) => {
                    let now = self.snapshot();
                    sys::notify::status(&format!(
                        "sessions open: {}, requests served: {}",
                        now.sessions_open,
                        now.total_answered()
                    ));
                }
                received = inbox.receive(&self.socket) => match received {
                    Ok(count) => {
                        // The clocks are read once a batch: its datagrams
                        // are handled within microseconds of each other.
                        let read_at = Clocks { wall: SystemTime::now(), monotonic: Instant::now() };
                        for index in 0..count {
                            if let Some((datagram, received)) = inbox.get(index) {
                                // A clock stepped back reads as no wait.
                                let waited = received.kernel_time.map_or(Duration::ZERO, |at| {
                                    read_at.wall.duration_since(at).unwrap_or_default()
                                });
                                receiver.datagram(datagram, received.peer, waited, read_at);
                            }
                        }
                        receiver.flush().await;
                        // Two units of the runtime's cooperative budget per
                        // datagram, as its receive and its send each took one
                        // before batching: the idle timers (and the aborted
                        // ones, whose memory is freed only when the scheduler
                        // gets to them) get their turn as often under a flood.
                        // With one unit, a login flood's peak RSS went from
                        // 26 MB to 33-48 MB.
                        for _ in 0..(2 * count) {
                            tokio::task::consume_budget().await;
                        }
                    }
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
            self.stats.event(Event::EndShutdown);
            debug!(%session, %peer, "session closed by shutdown");
        }
        let snapshot = self.snapshot();
        log_summary("stopped", &snapshot);
        snapshot
    }

    /// The protocol's rules in force.
    fn rules(&self) -> Rules {
        Rules {
            idle_timeout: Duration::from_nanos(self.idle_timeout_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Applies a reloaded configuration, or refuses it (and says why) if it
    /// moves a socket. Sessions are untouched; new limits and the idle
    /// timeout apply from the next datagram on.
    fn reload(&self, new: &Config) {
        let mut config = self
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = config.changes(new);
        let moved: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|key| key.ends_with("bind"))
            .collect();
        if !moved.is_empty() {
            warn!(
                keys = moved.join(", "),
                "reload refused, the running configuration stays: addresses to bind change only at restart"
            );
            return;
        }
        if changed.is_empty() {
            info!("configuration reloaded: nothing changed");
            return;
        }
        self.gate
            .reconfigure(&config, new, std::time::Instant::now());
        self.sessions.set_limits(Limits {
            max_sessions: new.max_sessions,
            max_sessions_per_ip: new.max_sessions_per_ip,
        });
        self.idle_timeout_nanos
            .store(nanos(new.idle_timeout), Ordering::Relaxed);
        if let (Some(sender), Some(settings)) = (&self.clock_settings, new.sntp.settings()) {
            sender.send_replace(settings);
        }
        if new.log.level != config.log.level {
            match logging::set_level(&new.log.level) {
                Ok(true) => {}
                Ok(false) => warn!("log.level not applied: RUST_LOG overrides it"),
                Err(error) => warn!(%error, "log.level not applied"),
            }
        }
        let later: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|key| matches!(*key, "stats_interval" | "log.format"))
            .collect();
        if !later.is_empty() {
            warn!(keys = later.join(", "), "these change only at restart");
        }
        info!(changed = changed.join(", "), "configuration reloaded");
        *config = new.clone();
    }

    /// The read-only view observers get.
    fn observed(&self) -> ops::Observed {
        let mut addresses = Vec::new();
        if let Ok(addr) = self.socket.local_addr() {
            addresses.push(("seed", addr));
        }
        addresses.extend(self.standard_addrs().unwrap_or_default());
        if let Some(addr) = self.metrics_addr() {
            addresses.push(("metrics", addr));
        }
        ops::Observed {
            stats: Arc::clone(&self.stats),
            sessions: Arc::clone(&self.sessions),
            clock: self.served_clock.clone(),
            started: self.started,
            addresses,
            limits: self.limits,
        }
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
        let mut snapshot = self.stats.snapshot(self.sessions.len());
        snapshot.tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        snapshot
    }
}

/// A duration in nanoseconds, saturating (configured durations are at most a day).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A TCP listener on `addr`, for the operators' HTTP.
fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// A non-blocking UDP socket on `addr` with a receive buffer of `buffer` bytes.
fn bind_socket(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        warn!(%error, "cannot size the receive buffer; bursts may be lost");
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
    /// Which requests from peers without a session are answered while the
    /// server is behind.
    admission: Admission,
    /// The replies to the batch being handled, sent together.
    outbox: Outbox,
}

impl Receiver<'_> {
    /// One datagram in, at most one reply queued (and, when a login
    /// displaces a session, that session's notice); its outcome counted once.
    /// `waited` is how long it waited in the socket's queue; `now`, when its
    /// batch was read.
    fn datagram(&mut self, datagram: &[u8], peer: SocketAddr, waited: Duration, now: Clocks) {
        let outcome = self.handle(datagram, peer, waited, now);
        self.server.stats.datagram(Service::Seed, outcome);
    }

    /// Sends the replies queued for the batch, counting them.
    async fn flush(&mut self) {
        let flushed = self.outbox.flush(&self.server.socket).await;
        for _ in 0..flushed.sent {
            self.server.stats.event(Event::Sent);
        }
        for _ in 0..flushed.failed {
            self.server.stats.event(Event::SendError);
        }
    }

    /// What [`Receiver::datagram`] does, returning the datagram's outcome.
    fn handle(
        &mut self,
        datagram: &[u8],
        peer: SocketAddr,
        waited: Duration,
        clocks: Clocks,
    ) -> Outcome {
        let server = self.server;
        let (stats, log, gate) = (&*server.stats, &*server.log, &*server.gate);
        let now = clocks.monotonic;
        if !gate.admits(peer, log) {
            return Outcome::Dropped(DropReason::Denied);
        }
        let request = parse(datagram);
        let admission = &mut self.admission;
        let answerable = |known| {
            if known == Known::Stranger && !admission.admits(waited, now.into_std()) {
                return Err(Unanswered::Shed);
            }
            match gate.within_rate(peer, now.into_std(), log) {
                Verdict::Allow => Ok(()),
                _ => Err(Unanswered::RateLimited),
            }
        };
        let handled =
            server
                .sessions
                .handle(peer, request, now.into_std(), server.rules(), answerable);
        let handled = match handled {
            Ok(handled) => handled,
            // The seed's protocol has no way to say "slow down": drop.
            Err(Unanswered::RateLimited) => return Outcome::Dropped(DropReason::RateLimited),
            Err(Unanswered::Shed) => {
                if let Some(suppressed) = log.allow(LogKind::Shed) {
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
        let session = handled.session;

        if let Err(error) = request {
            stats.event(Event::InvalidDatagram);
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
                stats.event(Event::Login);
                if let Some(id) = session {
                    if let Some(suppressed) = log.allow(LogKind::Login) {
                        info!(session = %id, %peer, suppressed, "login");
                    }
                    self.spawn_idle_timer(peer, id, Instant::from_std(idle_deadline));
                }
            }
            Effect::Keep { .. } => {}
            Effect::End(EndReason::Logout) => {
                stats.event(Event::EndLogout);
                if let Some(suppressed) = log.allow(LogKind::Logout) {
                    info!(session = %OptionalId(session), %peer, suppressed, "logout");
                }
            }
            Effect::End(_) => {
                stats.event(Event::EndInvalidOption);
                if let Some(suppressed) = log.allow(LogKind::InvalidOption) {
                    info!(session = %OptionalId(session), %peer, suppressed, "session ended by an invalid option");
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
        if let Some((displaced, id, notice)) = handled.displaced {
            stats.event(Event::EndDisplaced);
            if let Some(suppressed) = log.allow(LogKind::Displaced) {
                info!(session = %id, peer = %displaced, by = %peer, suppressed, "session that never asked made room for a login");
            }
            self.notify(notice.reply, displaced, now);
        }
        match handled.decision.reply {
            Some(Reply::Refused) => {
                if self.notify(Some(Reply::Refused), peer, now) {
                    Outcome::Answered
                } else {
                    Outcome::Dropped(DropReason::Withheld)
                }
            }
            Some(reply) => {
                if reply == Reply::Time {
                    stats.event(Event::TimeServed);
                    // Its budget is asked only when the line would be written.
                    if tracing::enabled!(tracing::Level::DEBUG) {
                        if let Some(suppressed) = log.allow(LogKind::TimeServed) {
                            debug!(session = %OptionalId(session), %peer, suppressed, "time served");
                        }
                    }
                }
                let bytes = reply.bytes(self.time.at(clocks.wall));
                self.outbox.push(bytes, peer, false);
                Outcome::Answered
            }
            None => Outcome::Dropped(DropReason::Invalid),
        }
    }

    /// Queues a refusal or displacement notice, within the notice budget;
    /// whether it was queued.
    fn notify(&mut self, reply: Option<Reply>, peer: SocketAddr, now: Instant) -> bool {
        let Some(bytes) = reply.as_ref().and_then(Reply::fixed_bytes) else {
            return false;
        };
        if self.notices.allow(now).is_none() {
            return false;
        }
        self.outbox.push(bytes, peer, false);
        true
    }

    fn receive_error(&mut self, error: &io::Error) {
        self.server.stats.event(Event::ReceiveError);
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
                        stats.event(Event::EndIdle);
                        if let Some(suppressed) = log.allow(LogKind::Idle) {
                            info!(session = %id, %peer, suppressed, "session idled out");
                        }
                        if let Some(bytes) = decision.reply.as_ref().and_then(Reply::fixed_bytes) {
                            // Not `send(..).await`: an awaited send would be
                            // part of every timer task's state, and tripled
                            // its size (184 -> 512 bytes per session).
                            match socket.try_send_to(bytes, peer) {
                                Ok(_) => stats.event(Event::Sent),
                                Err(error) => {
                                    stats.event(Event::SendError);
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

/// The wall clock and the monotonic clock, read together.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    wall: SystemTime,
    monotonic: Instant,
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
        Ok(_) => stats.event(Event::Sent),
        Err(error) => {
            stats.event(Event::SendError);
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
