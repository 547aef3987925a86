//! The daemon proper: binds every socket ([`crate::sockets`]), then runs
//! each worker's loops ([`crate::workers`]), a protocol of its own on each
//! of its sockets, and the clock-state reader, the reload task and the
//! reports as tasks of its own runtime, the operators' HTTP and the key
//! exchange on threads of their own; on shutdown, tells every loop to
//! stop, waits for their goodbyes, and returns the final counters.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::clock_state::{ClockFeed, ClockState};
use crate::config::{Config, ConfigError};
use crate::engine::Shared;
use crate::live::{self, Live, LiveView};
use crate::log_budget::LogBudget;
use crate::nts::{self, keys::KeyFile, keys::KeyFileError, tls::TlsError};
use crate::ops;
use crate::protocols::roughtime::Roughtime;
use crate::protocols::seed::Seed;
use crate::protocols::seed_socket::SeedSocket;
use crate::protocols::sntp::Sntp;
use crate::protocols::time::{Kind, Stateless};
use crate::protocols::v2::V2;
use crate::reload;
use crate::roughtime_key;
use crate::sessions::SessionStats;
use crate::sockets::{self, BindError, Bound, Udp};
use crate::stats::{log_summary, Snapshot, Stats};
use crate::sys::activation::Passed;
use crate::workers::{self, Loop};
use hora_proto::host_clock::HostClock;
use hora_proto::nts::ring::KeyRing;
use hora_proto::roughtime::keys::LongTermKey;

/// NTS's parts, when it is on: the cookie keys (their file and where they
/// are published) and the key exchange's listeners, if this host runs it.
#[derive(Debug)]
struct Nts {
    file: KeyFile,
    keys: watch::Sender<Arc<KeyRing>>,
    listeners: Vec<std::net::TcpListener>,
}

impl Nts {
    /// NTS as `config` has it, its cookie keys read (or made, on the KE
    /// host) once before anything serves: a restart keeps every client's
    /// cookies good.
    fn load(
        config: &Config,
        listeners: Vec<std::net::TcpListener>,
    ) -> Result<Option<Nts>, KeyFileError> {
        let Some(path) = &config.nts.keys else {
            return Ok(None);
        };
        let file = KeyFile {
            path: path.clone(),
            rotates: !config.nts.bind.is_empty(),
            rotation: config.nts.key_rotation,
        };
        let ring = file.load()?;
        Ok(Some(Nts {
            file,
            keys: watch::channel(Arc::new(ring)).0,
            listeners,
        }))
    }
}

impl Nts {
    /// Starts the cookie keys' task (rotation on the KE host, re-reading
    /// elsewhere) as one of `tasks` and, on the KE host, the key exchange
    /// on each of its listeners, each on a thread of its own, whose handles
    /// are returned.
    fn start(
        self,
        exchange: &nts::ke::Exchange,
        tasks: &mut JoinSet<()>,
        stopped: &watch::Receiver<bool>,
    ) -> Vec<std::thread::JoinHandle<()>> {
        tasks.spawn(nts::keys::serve(self.file, self.keys, stopped.clone()));
        self.listeners
            .into_iter()
            .filter_map(|listener| {
                nts::ke::spawn(listener, exchange.clone(), stopped.clone())
                    .map_err(|error| warn!(%error, "NTS-KE listener: cannot start its thread"))
                    .ok()
            })
            .collect()
    }
}

/// Every socket bound, ready to serve.
#[derive(Debug)]
pub struct Server {
    /// NTS, when on.
    nts: Option<Nts>,
    /// Roughtime's long-term key, when Roughtime is served.
    roughtime: Option<Arc<LongTermKey>>,
    /// Every UDP protocol served, the seed's first.
    udp: Vec<Bound>,
    /// The operators' HTTP listeners, when configured.
    metrics: Vec<std::net::TcpListener>,
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
    /// Roughtime's long-term key can't be had.
    #[error("Roughtime key")]
    RoughtimeKey(#[from] roughtime_key::KeyFileError),
    /// systemd passed a socket the configuration does not bind.
    #[error("socket activation: systemd passed {name} {addr}, which the configuration does not bind; bind it there (the {name} listener's bind) or remove it from the socket unit")]
    Unclaimed {
        /// Its `FileDescriptorName=` (`-` when none).
        name: String,
        /// Its address.
        addr: String,
    },
}

impl Server {
    /// Binds every configured address. Nothing is served until [`Server::run`].
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        Server::bind_passed(config, Passed::default()).await
    }

    /// [`Server::bind`], taking the sockets systemd passed for configured
    /// addresses instead of binding them; a passed socket the configuration
    /// does not bind is refused ([`StartError::Unclaimed`]).
    pub async fn bind_passed(config: &Config, mut passed: Passed) -> Result<Server, StartError> {
        // A certificate no client would take is refused before anything
        // is written (the cookie keys' file) or bound.
        nts::NtsLive::new(&config.nts)?;
        let nts_listeners = match &config.nts.keys {
            Some(_) => sockets::bind_listeners(&config.nts.bind, "nts-ke", &mut passed.tcp)?,
            None => Vec::new(),
        };
        let (udp, workers) = sockets::bind_udp(config, config.workers_wanted(), &mut passed.udp)?;
        let metrics = sockets::bind_listeners(&config.metrics.bind, "metrics", &mut passed.tcp)?;
        unclaimed(&passed)?;
        let live = live::publish(Live::new(config.clone(), None, workers, Instant::now())?);
        // Last, once nothing else can fail: a key added and written (and
        // logged so) must not come before an exit for a busy port.
        let nts = Nts::load(config, nts_listeners)?;
        let roughtime = match &config.roughtime.key {
            Some(path) if udp.iter().any(|bound| bound.udp == Udp::Roughtime) => {
                Some(Arc::new(load_roughtime_key(path)?))
            }
            _ => None,
        };
        let serves_sntp = udp.iter().any(|bound| bound.udp == Udp::Sntp);
        let clock = ClockState::start(live.1.clone(), config.sntp.clock_settings(), serves_sntp);
        Ok(Server {
            nts,
            roughtime,
            sessions: Arc::default(),
            v2_sessions: Arc::default(),
            clock,
            udp,
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

    /// The seed protocol's address actually bound (its port when the
    /// config said port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.bound(Udp::Seed)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))?
            .local_addr()
    }

    /// Every address the seed's protocol is served on.
    pub fn seed_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter(|bound| bound.udp == Udp::Seed)
            .filter_map(|bound| bound.local_addr().ok())
            .collect()
    }

    /// The sockets of `udp`, when it is served.
    fn bound(&self, udp: Udp) -> Option<&Bound> {
        self.udp.iter().find(|bound| bound.udp == udp)
    }

    /// How many workers serve: `workers` as configured, or 1 where the
    /// kernel can't steer by source address.
    pub fn workers(&self) -> usize {
        self.live.1.borrow().workers
    }

    /// Each standard protocol served, by name (`sntp`, `time`, `daytime`),
    /// with the address actually bound.
    pub fn standard_addrs(&self) -> io::Result<Vec<(&'static str, SocketAddr)>> {
        self.udp
            .iter()
            .filter(|bound| bound.udp != Udp::Seed)
            .map(|bound| Ok((bound.udp.name(), bound.local_addr()?)))
            .collect()
    }
    /// The NTS key exchange's first address, when it is served.
    pub fn nts_ke_addr(&self) -> Option<SocketAddr> {
        self.nts_ke_addrs().first().copied()
    }

    /// Every address the NTS key exchange is served on.
    pub fn nts_ke_addrs(&self) -> Vec<SocketAddr> {
        let listeners = self.nts.as_ref().map_or(&[][..], |nts| &nts.listeners[..]);
        listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The operators' first HTTP address, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addrs().first().copied()
    }

    /// Every address the operators' HTTP is served on.
    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.metrics
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .collect()
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
        let sntp_port = self.bound(Udp::Sntp).and_then(Bound::port);
        let Server {
            nts,
            roughtime,
            udp,
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
        let mut tasks = JoinSet::new();
        let reload = reload::serve(publisher, reloads, Arc::clone(&stats), stopped.clone());
        tasks.spawn(reload);
        let interval = live.borrow().config.stats_interval;
        let reports = Reports {
            observed,
            log: Arc::clone(&log),
            own_thread: ops_thread,
        };
        let ops = reports.start(metrics, interval, &mut tasks, &stopped);
        let keys = nts.as_ref().map(|nts| nts.keys.subscribe());
        let ke = nts.map_or_else(Vec::new, |nts| {
            let exchange = nts::ke::Exchange {
                live: live.clone(),
                keys: nts.keys.subscribe(),
                stats: Arc::clone(&stats),
                log: Arc::clone(&log),
                sntp_port,
            };
            nts.start(&exchange, &mut tasks, &stopped)
        });
        let workers = live.borrow().workers;
        let parts = LoopParts {
            own_ports: sockets::own_ports(&udp),
            clock: clock.feed(),
            host: clock.host(),
            roughtime,
            keys,
            sessions: Arc::clone(&sessions),
            v2_sessions: Arc::clone(&v2_sessions),
            logs: budgets(workers, &log),
            log: Arc::clone(&log),
            stats: Arc::clone(&stats),
            live,
            stopped: stopped.clone(),
        };
        tasks.spawn(clock.run(stopped.clone()));
        let threads = workers::start(parts.loops(udp), &mut tasks);
        shutdown.await;
        let _ = stop.send(true);
        join(tasks, threads.into_iter().chain(ops).chain(ke)).await;
        let snapshot = stats
            .snapshot(sessions.len())
            .with_v2_sessions(v2_sessions.len());
        log_summary("stopped", &snapshot);
        snapshot
    }

    /// The read-only view observers get.
    fn observed(&self) -> ops::Observed {
        let mut addresses = Vec::new();
        for bound in &self.udp {
            if let Ok(listen) = bound.listen() {
                addresses.push((bound.udp.name(), listen.to_string()));
            }
        }
        for addr in self.metrics_addrs() {
            addresses.push(("metrics", addr.to_string()));
        }
        for addr in self.nts_ke_addrs() {
            addresses.push(("nts-ke", addr.to_string()));
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
            roughtime_key: self.roughtime.as_deref().map(roughtime_key::public_forms),
        }
    }
}

/// Refuses sockets systemd passed that no configured address took: a unit
/// and a configuration that disagree would serve what neither says.
fn unclaimed(passed: &Passed) -> Result<(), StartError> {
    let udp = passed.udp.iter().map(|(name, s)| (name, s.local_addr()));
    let tcp = passed.tcp.iter().map(|(name, s)| (name, s.local_addr()));
    match udp.chain(tcp).next() {
        None => Ok(()),
        Some((name, addr)) => Err(StartError::Unclaimed {
            name: if name.is_empty() {
                "-".to_owned()
            } else {
                name.clone()
            },
            addr: addr.map_or_else(|_| "?".to_owned(), |a| a.to_string()),
        }),
    }
}

/// Waits for every task and thread to end, once told to stop: the loops
/// after their goodbyes.
async fn join(mut tasks: JoinSet<()>, threads: impl Iterator<Item = std::thread::JoinHandle<()>>) {
    while tasks.join_next().await.is_some() {}
    for thread in threads {
        if tokio::task::spawn_blocking(move || thread.join())
            .await
            .is_err()
        {
            debug!("a listener's thread ended abnormally");
        }
    }
}

/// The log budgets of `workers` workers: one worker logs within the
/// daemon's (`log`); several have their own (`log_budget`).
fn budgets(workers: usize, log: &Arc<LogBudget>) -> Vec<Arc<LogBudget>> {
    match workers {
        0 | 1 => vec![Arc::clone(log)],
        workers => (0..workers)
            .map(|_| Arc::new(LogBudget::for_worker(workers, tokio::time::Instant::now())))
            .collect(),
    }
}

/// What every worker's loops are made of, beside their sockets.
struct LoopParts {
    /// The daemon's own ports (the stateless protocols' loop guard).
    own_ports: Vec<u16>,
    /// The clock's state, for SNTP and v2.
    clock: ClockFeed,
    /// The kernel's clock state, for Roughtime's radius.
    host: watch::Receiver<HostClock>,
    /// Roughtime's long-term key, when it is served.
    roughtime: Option<Arc<LongTermKey>>,
    /// NTS's cookie keys, when on.
    keys: Option<watch::Receiver<Arc<KeyRing>>>,
    sessions: Arc<SessionStats>,
    v2_sessions: Arc<SessionStats>,
    /// Each worker's log budget.
    logs: Vec<Arc<LogBudget>>,
    /// The daemon's log budget.
    log: Arc<LogBudget>,
    stats: Arc<Stats>,
    live: LiveView,
    stopped: watch::Receiver<bool>,
}

impl LoopParts {
    /// Each worker's loops: its socket of each protocol, with a protocol
    /// of its own on it.
    fn loops(&self, udp: Vec<Bound>) -> Vec<Vec<Loop>> {
        let mut loops: Vec<Vec<Loop>> = self.logs.iter().map(|_| Vec::new()).collect();
        for bound in udp {
            let sockets = bound.sockets.into_iter().zip(bound.beside);
            for (worker, ((socket, beside), own)) in sockets.zip(loops.iter_mut()).enumerate() {
                own.extend(self.serving(bound.udp, socket, beside, worker));
            }
        }
        loops
    }

    /// Worker `worker`'s loop of `udp` on `socket` (none for Roughtime
    /// without its key, which start-up never lets happen).
    fn serving(
        &self,
        udp: Udp,
        socket: std::net::UdpSocket,
        beside: Option<std::net::UdpSocket>,
        worker: usize,
    ) -> Option<Loop> {
        let shared = Shared {
            stats: Arc::clone(&self.stats),
            log: Arc::clone(self.logs.get(worker).unwrap_or(&self.log)),
            worker,
        };
        let (live, stopped) = (self.live.clone(), self.stopped.clone());
        match udp {
            Udp::Seed => {
                let v2 = V2::new(
                    &live.borrow(),
                    Arc::clone(&self.v2_sessions),
                    self.clock.clone(),
                );
                let seed = Seed::new(&live.borrow(), Arc::clone(&self.sessions));
                let both = SeedSocket::new(seed, v2);
                Some(workers::serving(socket, both, shared, live, stopped))
            }
            Udp::Sntp => {
                let sntp = Sntp::new(self.clock.served.clone(), self.keys.clone(), beside);
                Some(workers::serving(socket, sntp, shared, live, stopped))
            }
            Udp::Roughtime => {
                let key = Arc::clone(self.roughtime.as_ref()?);
                let roughtime = Roughtime::new(key, self.host.clone());
                Some(workers::serving(socket, roughtime, shared, live, stopped))
            }
            Udp::Time | Udp::Daytime => {
                let kind = if udp == Udp::Time {
                    Kind::Time
                } else {
                    Kind::Daytime
                };
                let stateless = Stateless::new(kind, self.own_ports.clone());
                Some(workers::serving(socket, stateless, shared, live, stopped))
            }
        }
    }
}

/// What the reports need: the summary line's timer and the operators'
/// HTTP listeners.
struct Reports {
    observed: ops::Observed,
    log: Arc<LogBudget>,
    /// Whether each HTTP listener gets a thread of its own.
    own_thread: bool,
}

impl Reports {
    /// Starts the summary line every `interval` and an HTTP server on each
    /// of `metrics`; the handles of the threads to join.
    fn start(
        self,
        metrics: Vec<std::net::TcpListener>,
        interval: std::time::Duration,
        tasks: &mut JoinSet<()>,
        stopped: &watch::Receiver<bool>,
    ) -> Vec<std::thread::JoinHandle<()>> {
        let Reports {
            observed,
            log,
            own_thread,
        } = self;
        tasks.spawn(ops::report::serve(
            observed.clone(),
            interval,
            stopped.clone(),
        ));
        let each = metrics.into_iter().filter_map(|listener| {
            let (observed, log) = (observed.clone(), Arc::clone(&log));
            spawn_ops(listener, observed, log, own_thread, tasks, stopped)
        });
        each.collect()
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

/// Roughtime's long-term key from `path`, made there if absent; its public
/// key logged, as clients need it.
fn load_roughtime_key(path: &std::path::Path) -> Result<LongTermKey, roughtime_key::KeyFileError> {
    let (key, made) = roughtime_key::load_or_create(path)?;
    let (base64, _) = roughtime_key::public_forms(&key);
    let path = path.display();
    if made {
        info!(%path, public_key = %base64, "Roughtime long-term key made; give clients its public key");
    } else {
        info!(%path, public_key = %base64, "Roughtime long-term key read");
    }
    Ok(key)
}
