//! The in-process daemon every integration test starts: bound from a
//! `Config`, served on the test's runtime, stopped with its final counters.

#![allow(dead_code)] // Each test file uses a different part.

pub mod pki;

use std::net::SocketAddr;
use std::sync::Arc;

use hora_server::config::ConfigError;
use hora_server::live::LiveView;
use hora_server::sessions::SessionStats;
use hora_server::stats::{Snapshot, Stats};
use hora_server::{Config, Server};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The defaults on an ephemeral loopback port, with no summary timer and
/// one worker (its loops on the test's runtime, so a paused clock drives
/// them): what every test starts from.
pub fn loopback_config() -> Config {
    Config {
        bind: loopback().into(),
        stats_interval: std::time::Duration::ZERO,
        workers: 1,
        ..Config::default()
    }
}

/// 127.0.0.1, port 0: an address for any socket a test's daemon serves.
pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A running daemon and the handles a test needs.
pub struct Daemon {
    /// The seed protocol's address.
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub sessions: Arc<SessionStats>,
    /// Protocol v2's sessions.
    pub v2_sessions: Arc<SessionStats>,
    /// The live view the daemon serves with.
    pub live: LiveView,
    /// Where a test hands the daemon a reloaded configuration, as SIGHUP does.
    pub reloads: mpsc::Sender<Result<Config, ConfigError>>,
    standard: Vec<(&'static str, SocketAddr)>,
    metrics: Option<SocketAddr>,
    nts_ke: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Snapshot>,
}

impl Daemon {
    /// Binds `config` and serves it until [`Daemon::stop`].
    pub async fn start(config: Config) -> Daemon {
        // On the test's runtime, so a paused clock drives the HTTP
        // listener's deadlines too.
        let server = Server::bind(&config)
            .await
            .expect("the daemon binds")
            .ops_on_the_serving_runtime();
        let addr = server.local_addr().expect("a bound address");
        let standard = server.standard_addrs().expect("bound addresses");
        let metrics = server.metrics_addr();
        let nts_ke = server.nts_ke_addr();
        let (stats, sessions, live) = (server.stats(), server.sessions(), server.live());
        let v2_sessions = server.v2_sessions();
        let (stop, stopped) = oneshot::channel::<()>();
        let (reloads, reloaded) = mpsc::channel(4);
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(server.run_reloading(shutdown, reloaded));
        Daemon {
            addr,
            stats,
            sessions,
            v2_sessions,
            live,
            reloads,
            standard,
            metrics,
            nts_ke,
            stop: Some(stop),
            task,
        }
    }

    fn standard(&self, name: &str) -> SocketAddr {
        self.standard
            .iter()
            .find(|(protocol, _)| *protocol == name)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("{name} is not served"))
    }

    /// SNTP's address (the config must serve it).
    pub fn sntp(&self) -> SocketAddr {
        self.standard("sntp")
    }

    /// RFC 868 Time's address.
    pub fn time(&self) -> SocketAddr {
        self.standard("time")
    }

    /// RFC 867 Daytime's address.
    pub fn daytime(&self) -> SocketAddr {
        self.standard("daytime")
    }

    /// Roughtime's address.
    pub fn roughtime(&self) -> SocketAddr {
        self.standard("roughtime")
    }

    /// The metrics listener's address.
    pub fn metrics(&self) -> SocketAddr {
        self.metrics.expect("metrics are served")
    }

    /// The NTS key exchange's address.
    pub fn nts_ke(&self) -> SocketAddr {
        self.nts_ke.expect("NTS-KE is served")
    }

    /// Hands the daemon `config` as a reload and waits until the new live
    /// view is published (a reload refused or changing nothing fails the
    /// test after five seconds).
    pub async fn reload(&mut self, config: Config) {
        self.live.borrow_and_update();
        self.reloads
            .send(Ok(config))
            .await
            .expect("the daemon runs");
        tokio::time::timeout(std::time::Duration::from_secs(5), self.live.changed())
            .await
            .expect("the reload applies")
            .expect("a new live view");
    }

    /// The counters now.
    pub fn now(&self) -> Snapshot {
        self.stats.snapshot(self.sessions.len())
    }

    /// Shuts the daemon down; its final counters.
    pub async fn stop(mut self) -> Snapshot {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.expect("the daemon's task ends")
    }
}

/// The next datagram `socket` receives, within five seconds.
pub async fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = [0u8; 2048];
    let (len, _) = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        socket.recv_from(&mut buffer),
    )
    .await
    .expect("an answer")
    .expect("a datagram");
    buffer[..len].to_vec()
}

/// `GET path` over a fresh connection to `addr`: the whole response as
/// text, within a bounded wait.
pub async fn get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connected");
    let request = format!("GET {path} HTTP/1.1\r\nHost: hora\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response);
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("a response")
        .expect("read");
    String::from_utf8_lossy(&response).into_owned()
}

/// `/status` from the HTTP listener at `addr`, as JSON.
pub async fn status(addr: SocketAddr) -> serde_json::Value {
    let response = get(addr, "/status").await;
    let body = response.split("\r\n\r\n").nth(1).expect("a body");
    serde_json::from_str(body).expect("JSON")
}

/// Sends `datagram` to `server` and returns its answer.
pub async fn ask(socket: &UdpSocket, server: SocketAddr, datagram: &[u8]) -> Vec<u8> {
    socket.send_to(datagram, server).await.expect("sent");
    receive(socket).await
}

/// Polls `condition` until it holds, for at most five seconds: for what
/// another thread (the key exchange's, the HTTP listener's) counts after
/// its client has seen the end.
pub async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("the condition never held");
}
