//! The daemon proper: binds every socket (one per protocol per worker, each
//! protocol's in one `SO_REUSEPORT` group steered by source address), then
//! runs each worker's loops ([`crate::workers`]), and the clock-state
//! reader, the reload task and the reports as tasks of its own runtime,
//! the operators' HTTP on a thread of its own; on shutdown, tells every
//! loop to stop, waits for their goodbyes, and returns the final counters.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::clock_state::ClockState;
use crate::config::{Config, ConfigError};
use crate::engine::Shared;
use crate::live::{self, Live, LiveView};
use crate::log_budget::LogBudget;
use crate::nts::{self, keys::KeyFile, keys::KeyFileError, tls::TlsError};
use crate::ops;
use crate::protocols::seed::Seed;
use crate::protocols::sntp::Sntp;
use crate::protocols::time::{Kind, Stateless};
use crate::protocols::v2::{ClockFeed, V2};
use crate::reload;
use crate::sessions::SessionStats;
use crate::stats::{log_summary, Snapshot, Stats};
use crate::sys;
use crate::workers::{self, Loop};
use hora_proto::nts::ring::KeyRing;

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

/// One protocol's sockets, one per worker, in one `SO_REUSEPORT` group
/// (one socket alone with one worker, but SNTP's).
type Group = Vec<std::net::UdpSocket>;

/// A standard protocol, before its loops start.
#[derive(Debug)]
enum Standard {
    /// SNTP, with each worker's send-only socket beside its own, for its
    /// kernel-stamped replies.
    Sntp(Vec<Option<std::net::UdpSocket>>),
    /// Time or Daytime.
    Stateless(Kind),
}

/// NTS's parts, when it is on: the cookie keys (their file and where they
/// are published) and the key exchange's listener, if this host runs it.
#[derive(Debug)]
struct Nts {
    file: KeyFile,
    keys: watch::Sender<Arc<KeyRing>>,
    listener: Option<std::net::TcpListener>,
}

/// Every socket bound, ready to serve.
#[derive(Debug)]
pub struct Server {
    /// NTS, when on.
    nts: Option<Nts>,
    seed: Group,
    standard: Vec<(Group, Standard)>,
    /// The operators' HTTP listener, when configured.
    metrics: Option<std::net::TcpListener>,
    /// Where reloads publish the live view, and where everyone reads it.
    live: (watch::Sender<Arc<Live>>, LiveView),
    stats: Arc<Stats>,
    log: Arc<LogBudget>,
    sessions: Arc<SessionStats>,
    /// Protocol v2's sessions, counted apart from the seed's.
    v2_sessions: Arc<SessionStats>,
    /// The reader of the clock's state that SNTP replies and v2 time
    /// answers describe.
    clock: ClockState,
    started: SystemTime,
    /// Whether the HTTP listener gets a thread of its own (always, but in
    /// tests on paused time: see [`Server::ops_on_the_serving_runtime`]).
    ops_thread: bool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The NTS-KE certificate or key can't serve. (The cause follows in
    /// `{:#}`, as for [`BindError`].)
    #[error("NTS-KE certificate")]
    Certificate(#[from] TlsError),
    /// The NTS cookie keys can't be had.
    #[error("NTS cookie keys")]
    Keys(#[from] KeyFileError),
}

/// The socket could not be bound.
#[derive(Debug, thiserror::Error)]
// The cause is said here, before the hint; `report::one_line` does not say
// it again.
#[error("cannot bind {addr}: {source}{}", privileged_hint(*.addr, .source))]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the OS said.
    pub source: io::Error,
}

/// What an admin needs where a port below 1024 was refused: the
/// capability, and the two lines of the unit that grant it.
fn privileged_hint(addr: SocketAddr, error: &io::Error) -> &'static str {
    if error.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        " (ports below 1024 need CAP_NET_BIND_SERVICE: uncomment the unit's \
         AmbientCapabilities=CAP_NET_BIND_SERVICE and \
         CapabilityBoundingSet=CAP_NET_BIND_SERVICE, or run by hand as root)"
    } else {
        ""
    }
}

impl Server {
    /// Binds every configured address. Nothing is served until [`Server::run`].
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        let wanted = config.workers_wanted();
        let group = |addr: SocketAddr, buffer: usize, shared: bool| {
            bind_group(addr, buffer, wanted, shared).map_err(|source| BindError { addr, source })
        };
        // A certificate no client would take is refused before anything
        // is written (the cookie keys' file) or bound.
        nts::NtsLive::new(&config.nts)?;
        let nts_listener = match (&config.nts.keys, config.nts.bind) {
            (Some(_), Some(addr)) => {
                Some(bind_listener(addr).map_err(|source| BindError { addr, source })?)
            }
            _ => None,
        };
        let mut seed = group(config.bind, RECEIVE_BUFFER_BYTES, false)?;
        // How long each datagram waited tells when the server is behind.
        if let Some(error) = seed
            .iter()
            .find_map(|s| sys::enable_receive_timestamps(s).err())
        {
            warn!(%error, "no kernel receive timestamps on the seed protocol's socket; it never counts as behind");
        }
        let mut sntp = match (config.sntp.bind, config.sntp.settings()) {
            (Some(addr), Some(settings)) => {
                let sockets = group(addr, SNTP_RECEIVE_BUFFER_BYTES, true)?;
                if let Some(error) = sockets
                    .iter()
                    .find_map(|s| sys::enable_receive_timestamps(s).err())
                {
                    warn!(%error, "no kernel receive timestamps on the SNTP socket; the clock is read instead");
                }
                Some((sockets, settings))
            }
            _ => None,
        };
        let metrics = match config.metrics.bind {
            Some(addr) => Some(bind_listener(addr).map_err(|source| BindError { addr, source })?),
            None => None,
        };
        let mut stateless = Vec::new();
        for (bind_addr, kind) in [
            (config.time.bind, Kind::Time),
            (config.daytime.bind, Kind::Daytime),
        ] {
            if let Some(addr) = bind_addr {
                let sockets = group(addr, RECEIVE_BUFFER_BYTES, false)?;
                // Every socket's datagrams carry the same control message:
                // the batch reader's headers are shared by the thread's
                // sockets, and one without a timestamp would leave them no
                // room for the SNTP socket's (`sys::batch`).
                if let Some(error) = sockets
                    .iter()
                    .find_map(|s| sys::enable_receive_timestamps(s).err())
                {
                    warn!(%error, ?kind, "no kernel receive timestamps");
                }
                stateless.push((sockets, kind));
            }
        }
        let workers = {
            let mut groups: Vec<&mut Group> = std::iter::once(&mut seed)
                .chain(sntp.as_mut().map(|(sockets, _)| sockets))
                .chain(stateless.iter_mut().map(|(sockets, _)| sockets))
                .collect();
            steer(&mut groups, wanted)
        };
        let live = live::publish(Live::new(config.clone(), None, workers, Instant::now())?);
        // Last, once nothing else can fail: a key added and written (and
        // logged so) must not come before an exit for a busy port.
        let nts = match &config.nts.keys {
            Some(path) => {
                let file = KeyFile {
                    path: path.clone(),
                    rotates: config.nts.bind.is_some(),
                    rotation: config.nts.key_rotation,
                };
                // Read once before anything serves: a restart keeps every
                // client's cookies good.
                let ring = file.load()?;
                Some(Nts {
                    file,
                    keys: watch::channel(Arc::new(ring)).0,
                    listener: nts_listener,
                })
            }
            None => None,
        };
        let mut standard = Vec::new();
        let clock = ClockState::start(live.1.clone(), config.sntp.clock_settings(), sntp.is_some());
        if let Some((sockets, _)) = sntp {
            let beside = sockets_beside(&sockets, workers);
            standard.push((sockets, Standard::Sntp(beside)));
        }
        standard.extend(
            stateless
                .into_iter()
                .map(|(sockets, kind)| (sockets, Standard::Stateless(kind))),
        );
        Ok(Server {
            nts,
            sessions: Arc::default(),
            v2_sessions: Arc::default(),
            clock,
            seed,
            standard,
            metrics,
            live,
            stats: Arc::new(Stats::new(workers)),
            log: Arc::new(LogBudget::new(tokio::time::Instant::now())),
            started: SystemTime::now(),
            ops_thread: true,
        })
    }

    /// Serves the operators' HTTP as a task on the runtime that runs the
    /// server instead of on a thread of its own: for tests whose paused
    /// clock must drive its deadlines too. horad never does this.
    pub fn ops_on_the_serving_runtime(mut self) -> Server {
        self.ops_thread = false;
        self
    }

    /// The address actually bound (its port when the config said port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        first(&self.seed)?.local_addr()
    }

    /// How many workers serve: `workers` as configured, or 1 where the
    /// kernel can't steer by source address.
    pub fn workers(&self) -> usize {
        self.live.1.borrow().workers
    }

    /// Each standard protocol served, by name (`sntp`, `time`, `daytime`),
    /// with the address actually bound.
    pub fn standard_addrs(&self) -> io::Result<Vec<(&'static str, SocketAddr)>> {
        self.standard
            .iter()
            .map(|(sockets, standard)| {
                let name = match standard {
                    Standard::Sntp(..) => "sntp",
                    Standard::Stateless(Kind::Time) => "time",
                    Standard::Stateless(Kind::Daytime) => "daytime",
                };
                Ok((name, first(sockets)?.local_addr()?))
            })
            .collect()
    }

    /// The NTS key exchange's address, when it is served.
    pub fn nts_ke_addr(&self) -> Option<SocketAddr> {
        self.nts
            .as_ref()
            .and_then(|nts| nts.listener.as_ref())
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The operators' HTTP address, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// Whether per-source rate limiting is on (start-up logs say so).
    pub fn limits_rate(&self) -> bool {
        self.live.1.borrow().gate.limits_rate()
    }

    /// How many sessions are open and how long ended ones lasted, for
    /// observers such as tests.
    pub fn sessions(&self) -> Arc<SessionStats> {
        Arc::clone(&self.sessions)
    }

    /// How many protocol v2 sessions are open, for observers such as tests.
    pub fn v2_sessions(&self) -> Arc<SessionStats> {
        Arc::clone(&self.v2_sessions)
    }

    /// The counters, for observers such as tests.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The live view, for observers such as tests.
    pub fn live(&self) -> LiveView {
        self.live.1.clone()
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
    /// running one stays ([`crate::reload`]).
    pub async fn run_reloading(
        self,
        shutdown: impl Future<Output = ()>,
        reloads: mpsc::Receiver<Result<Config, ConfigError>>,
    ) -> Snapshot {
        let (stop, stopped) = watch::channel(false);
        let observed = self.observed();
        let Server {
            nts,
            seed,
            standard,
            metrics,
            live: (publisher, live),
            stats,
            log,
            sessions,
            v2_sessions,
            clock,
            ops_thread,
            ..
        } = self;
        let own_ports = own_ports(std::iter::once(&seed).chain(standard.iter().map(|(s, _)| s)));
        let mut tasks = JoinSet::new();
        tasks.spawn(reload::serve(
            publisher,
            reloads,
            Arc::clone(&stats),
            stopped.clone(),
        ));
        tasks.spawn(ops::report::serve(
            observed.clone(),
            live.borrow().config.stats_interval,
            stopped.clone(),
        ));
        let ops = metrics.and_then(|listener| {
            let log = Arc::clone(&log);
            spawn_ops(listener, observed, log, ops_thread, &mut tasks, &stopped)
        });
        let keys = nts.as_ref().map(|nts| nts.keys.subscribe());
        let sntp_port = standard
            .iter()
            .find_map(|(sockets, standard)| match standard {
                Standard::Sntp(..) => first(sockets).ok()?.local_addr().ok().map(|a| a.port()),
                Standard::Stateless(_) => None,
            });
        let ke = nts.and_then(|nts| {
            tasks.spawn(nts::keys::serve(
                nts.file,
                nts.keys.clone(),
                stopped.clone(),
            ));
            let exchange = nts::ke::Exchange {
                live: live.clone(),
                keys: nts.keys.subscribe(),
                stats: Arc::clone(&stats),
                log: Arc::clone(&log),
                sntp_port,
            };
            let listener = nts.listener?;
            nts::ke::spawn(listener, exchange, stopped.clone())
                .map_err(|error| warn!(%error, "NTS-KE listener: cannot start its thread"))
                .ok()
        });
        // Worker w's loops: its socket of each protocol, with a protocol
        // of its own.
        let mut loops: Vec<Vec<Loop>> = seed.iter().map(|_| Vec::new()).collect();
        // One worker logs within the daemon's budgets; several have their
        // own (`log_budget`).
        let logs: Vec<Arc<LogBudget>> = match seed.len() {
            1 => vec![Arc::clone(&log)],
            workers => (0..workers)
                .map(|_| Arc::new(LogBudget::for_worker(workers, tokio::time::Instant::now())))
                .collect(),
        };
        let shared = |worker: usize| Shared {
            stats: Arc::clone(&stats),
            log: Arc::clone(logs.get(worker).unwrap_or(&log)),
            worker,
        };
        for (sockets, standard) in standard {
            match standard {
                Standard::Sntp(beside) => {
                    for ((worker, socket), beside) in sockets.into_iter().enumerate().zip(beside) {
                        let sntp = Sntp::new(clock.subscribe(), keys.clone(), beside);
                        let (live, stopped) = (live.clone(), stopped.clone());
                        push(
                            &mut loops,
                            worker,
                            workers::serving(socket, sntp, shared(worker), live, stopped),
                        );
                    }
                }
                Standard::Stateless(kind) => {
                    for (worker, socket) in sockets.into_iter().enumerate() {
                        let protocol = Stateless::new(kind, own_ports.clone());
                        let (live, stopped) = (live.clone(), stopped.clone());
                        push(
                            &mut loops,
                            worker,
                            workers::serving(socket, protocol, shared(worker), live, stopped),
                        );
                    }
                }
            }
        }
        let feed = ClockFeed {
            served: clock.subscribe(),
            kernel: clock.kernel(),
        };
        tasks.spawn(clock.run(stopped.clone()));
        for (worker, socket) in seed.into_iter().enumerate() {
            let v2 = V2::new(&live.borrow(), Arc::clone(&v2_sessions), feed.clone());
            let protocol = Seed::new(&live.borrow(), Arc::clone(&sessions), v2);
            let (live, stopped) = (live.clone(), stopped.clone());
            push(
                &mut loops,
                worker,
                workers::serving(socket, protocol, shared(worker), live, stopped),
            );
        }
        let threads = workers::start(loops, &mut tasks);
        shutdown.await;
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        for thread in threads.into_iter().chain(ops).chain(ke) {
            if tokio::task::spawn_blocking(move || thread.join())
                .await
                .is_err()
            {
                debug!("a listener's thread ended abnormally");
            }
        }
        let snapshot = stats
            .snapshot(sessions.len())
            .with_v2_sessions(v2_sessions.len());
        log_summary("stopped", &snapshot);
        snapshot
    }

    /// The read-only view observers get.
    fn observed(&self) -> ops::Observed {
        let mut addresses = Vec::new();
        if let Ok(addr) = self.local_addr() {
            addresses.push(("seed", addr));
        }
        addresses.extend(self.standard_addrs().unwrap_or_default());
        if let Some(addr) = self.metrics_addr() {
            addresses.push(("metrics", addr));
        }
        if let Some(addr) = self.nts_ke_addr() {
            addresses.push(("nts-ke", addr));
        }
        // Always: v2's time answers carry the clock's state too.
        let clock = Some((self.clock.subscribe(), self.clock.kernel()));
        ops::Observed {
            stats: Arc::clone(&self.stats),
            sessions: Arc::clone(&self.sessions),
            v2_sessions: Arc::clone(&self.v2_sessions),
            clock,
            live: self.live.1.clone(),
            started: self.started,
            addresses,
        }
    }
}

/// Starts the operators' HTTP listener: on a thread of its own (its handle
/// returned, to be joined at shutdown) or, for tests, as one of `tasks`.
fn spawn_ops(
    listener: std::net::TcpListener,
    observed: ops::Observed,
    log: Arc<LogBudget>,
    own_thread: bool,
    tasks: &mut JoinSet<()>,
    stopped: &watch::Receiver<bool>,
) -> Option<std::thread::JoinHandle<()>> {
    if own_thread {
        return ops::http::spawn(listener, observed, log, stopped.clone())
            .map_err(|error| warn!(%error, "metrics listener: cannot start its thread"))
            .ok();
    }
    match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => {
            tasks.spawn(ops::http::serve(listener, observed, log, stopped.clone()));
        }
        Err(error) => warn!(%error, "metrics listener: cannot serve"),
    }
    None
}

/// The ports of every socket the daemon serves: a datagram from one of
/// them (on another host) is another daemon's reply, never a request.
fn own_ports<'a>(groups: impl Iterator<Item = &'a Group>) -> Vec<u16> {
    groups
        .filter_map(|group| first(group).ok()?.local_addr().ok())
        .map(|addr| addr.port())
        .collect()
}

/// A group's first socket: its address is the group's.
fn first(group: &Group) -> io::Result<&std::net::UdpSocket> {
    group
        .first()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
}

/// Adds `one` to worker `worker`'s loops.
fn push(loops: &mut [Vec<Loop>], worker: usize, one: Loop) {
    if let Some(own) = loops.get_mut(worker) {
        own.push(one);
    }
}

/// With more than one worker wanted, attaches the steering program to
/// every group (one socket per worker each) and returns how many workers
/// serve: `wanted`, or 1 if the kernel refused a program, every group then
/// cut to its first socket (one worker is always exact; several steered by
/// the kernel's 4-tuple hash are not). One worker's SNTP group gets its
/// program from [`sockets_beside`].
fn steer(groups: &mut [&mut Group], wanted: usize) -> usize {
    if wanted <= 1 {
        return 1;
    }
    let refused = groups
        .iter()
        .find_map(|group| sys::steer::attach(first(group).ok()?, wanted).err());
    let Some(error) = refused else {
        return wanted;
    };
    warn!(%error, workers = wanted, "the kernel can't steer source addresses to workers (SO_ATTACH_REUSEPORT_CBPF): serving with one worker");
    for group in groups.iter_mut() {
        group.truncate(1);
    }
    1
}

/// The send-only socket beside each of SNTP's sockets, for replies whose
/// kernel transmit time is wanted (`sys::transmit_stamps::open_beside`).
/// With one worker the group's program is attached first (several workers
/// have theirs already); where it or a socket can't be had, none.
fn sockets_beside(sntp: &Group, workers: usize) -> Vec<Option<std::net::UdpSocket>> {
    let why_not = |error: io::Error| {
        debug!(%error, "no send-only socket beside SNTP's: its kernel transmit timestamps are turned on and off on it");
    };
    let steered = match (workers, first(sntp)) {
        (1, Ok(serving)) => sys::steer::attach(serving, 1),
        (_, serving) => serving.map(drop),
    };
    if let Err(error) = steered {
        why_not(error);
        return sntp.iter().map(|_| None).collect();
    }
    sntp.iter()
        .map(|serving| {
            sys::transmit_stamps::open_beside(serving)
                .map_err(why_not)
                .ok()
        })
        .collect()
}

/// Connections the kernel queues for a listener before horad accepts
/// them: Linux's default `somaxconn`. std's 128 overflowed under a flood
/// of connections, and a client whose connection lands on a full queue is
/// dropped or reset by the kernel before horad can tell it from the flood.
const LISTEN_BACKLOG: i32 = 4096;

/// A TCP listener on `addr`, for the operators' HTTP and the key exchange
/// (each served on its own thread's runtime, so not yet registered with
/// any).
fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // As std sets it: a restart binds at once beside connections in
    // TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// `workers` non-blocking UDP sockets on `addr`, each with a receive
/// buffer of `buffer` bytes, in one `SO_REUSEPORT` group; with one worker
/// and `shared` false, one plain socket. `shared`: the group is formed
/// even for one worker, so that the send-only socket for kernel-stamped
/// replies can join it (`sys::transmit_stamps::open_beside`). A plain bind
/// first, closed at once, keeps a port another socket holds an error, as
/// without `SO_REUSEPORT`: a second horad on the port still fails to start.
fn bind_group(addr: SocketAddr, buffer: usize, workers: usize, shared: bool) -> io::Result<Group> {
    if workers <= 1 && !shared {
        return Ok(vec![bind_with(addr, buffer, false)?]);
    }
    if addr.port() != 0 {
        drop(std::net::UdpSocket::bind(addr)?);
    }
    let first = bind_with(addr, buffer, true)?;
    // Port 0: the others join the port the first one got.
    let addr = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..workers {
        group.push(bind_with(addr, buffer, true)?);
    }
    Ok(group)
}

fn bind_with(addr: SocketAddr, buffer: usize, reuse_port: bool) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    #[cfg(target_os = "linux")]
    if reuse_port {
        use nix::sys::socket::{setsockopt, sockopt::ReusePort};
        setsockopt(&socket, ReusePort, &true).map_err(io::Error::from)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reuse_port;
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        warn!(%error, "cannot size the receive buffer; bursts may be lost");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    debug!(bytes = socket.recv_buffer_size()?, "receive buffer");
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_a_port_and_one_refused_program_means_one_worker() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut seed = bind_group(loopback, 1 << 16, 3, false).unwrap();
        let ports: Vec<u16> = seed
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
        assert_eq!(steer(&mut [&mut seed], 3), 3);
        // A group the kernel can't steer (no SO_REUSEPORT: two plain
        // sockets stand for it) turns every group back to one socket.
        let mut plain = vec![
            bind_with(loopback, 1 << 16, false).unwrap(),
            bind_with(loopback, 1 << 16, false).unwrap(),
        ];
        assert_eq!(steer(&mut [&mut seed, &mut plain], 3), 1);
        assert_eq!((seed.len(), plain.len()), (1, 1));
    }

    #[test]
    fn a_port_already_taken_is_refused_even_with_reuseport() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(bind_group(addr, 1 << 16, 2, true).is_err());
    }
}
