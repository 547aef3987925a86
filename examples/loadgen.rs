//! A closed-loop load generator for hora's protocol, loopback only.
//!
//! `load`: N sessions, each its own UDP socket (so its own `SocketAddr`),
//! log in; then each keeps one time request outstanding for the duration,
//! checking every reply byte for byte, resending after a loss; then all log
//! out. Prints requests/s, latency percentiles, losses and bad replies.
//!
//! `ntp`: the same closed loop over SNTP: N client sockets, each with one
//! 48-byte mode-3 request outstanding; a reply counts if it is mode 4 and
//! echoes the request's transmit timestamp. For comparing with chronyd.
//!
//! `roughtime`: the same closed loop over Roughtime (RFC 10049): each
//! client keeps one 1024-byte version-1 request outstanding; a reply counts
//! if it parses and echoes the request's nonce, and one in `--verify-every`
//! is checked whole (delegation, tree, signature) with `--key`, the
//! others being left unverified so that the generator's own Ed25519 checks
//! do not bound the rate. For comparing with roughenough's server.
//!
//! `garbage`: one socket sends datagrams that are no request of any
//! protocol (20 bytes of text) as fast as it can, or at `--rate`, for the
//! duration, expecting nothing back: a flood for measuring what it does to
//! the clients a server does answer (BENCHMARKS.md, SNTP under a flood).
//!
//! `hold`: N sessions log in and stay silent until the server idles them
//! out; prints how late the idle notices came. Run it to measure the
//! daemon's memory per session (RSS while held) and its expiry at scale.
//! One process holds at most ~19,000 sessions (its open-file limit); run
//! several with different `--ip` for more.
//!
//! ```sh
//! cargo run --release --example loadgen -- --server 127.0.0.1:5005 load --sessions 64 --duration 10s
//! cargo run --release --example loadgen -- --server 127.0.0.1:5005 load --sessions 64 --v2
//! cargo run --release --example loadgen -- --server 127.0.0.1:5005 hold --sessions 15000 --ip 127.0.1.1
//! ```
//! Point it at a daemon whose limits allow the sessions, e.g.
//! `horad --max-sessions 200000 --max-sessions-per-ip 200000`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use hora_proto::v2::client::{read_server, ServerDatagram};
use hora_proto::v2::wire as v2_wire;
use hora_proto::v2::{Nonce, Token};
use hora_proto::wire::{
    IDLE_NOTICE, LOGIN_MENU, SESSION_CLOSED, TIME_FORMAT, TIME_MENU, TIME_PREFIX,
};
use tokio::net::UdpSocket;
use tokio::sync::{Barrier, Semaphore};
use tokio::time::{timeout, Instant};

/// The most sessions one run may use, and the longest it may last.
const MAX_SESSIONS: usize = 20_000;
const MAX_DURATION: Duration = Duration::from_secs(600);
/// Tries per request before a session counts as lost.
const MAX_TRIES: u32 = 50;

#[derive(Debug, Parser)]
#[command(about = "Load generator for hora (loopback only)")]
struct Args {
    /// The server to load (a loopback address)
    #[arg(long, default_value = "127.0.0.1:5005")]
    server: SocketAddr,
    /// Runtime worker threads (1: a single-threaded runtime)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `load` and `ntp`: spread the sessions over this many source
    /// addresses from `--ip` on (127.0.0.1, 127.0.0.2, ...), as many hosts
    /// would: horad steers each address to one worker
    #[arg(long, default_value_t = 1)]
    addresses: u32,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Closed loop: each session keeps one time request outstanding
    Load {
        #[arg(long, default_value_t = 64)]
        sessions: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Resend a request not answered within this
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        resend: Duration,
        /// Source address of the sessions (a loopback address)
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// Speak protocol v2 (handshake, token, request ids; each answer
        /// checked for its token, id and the seed's time text)
        #[arg(long)]
        v2: bool,
    },
    /// SNTP closed loop: each client socket keeps one 48-byte request
    /// outstanding; replies must be mode 4 and echo our transmit timestamp
    Ntp {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        resend: Duration,
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// Ask in interleaved mode (RFC 9769), as chronyd's `xleave`: each
        /// request names the last reply's receive timestamp, and a reply
        /// echoing our receive field (not our transmit) is interleaved
        #[arg(long)]
        interleaved: bool,
    },
    /// Roughtime closed loop: each client socket keeps one version-1
    /// request outstanding; replies must echo its nonce
    Roughtime {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        resend: Duration,
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// The server's public key (base64 or hex): checks one reply in
        /// `--verify-every` whole
        #[arg(long, value_parser = hora_client::roughtime::parse_key)]
        key: Option<[u8; 32]>,
        /// With --key: verify one reply in this many
        #[arg(long, default_value_t = 64)]
        verify_every: u64,
    },
    /// Send garbage (no request of any protocol) for the duration
    Garbage {
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Datagrams a second (0: as fast as possible)
        #[arg(long, default_value_t = 0)]
        rate: u32,
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
    },
    /// A herd: N clients, each on its own loopback address (127.1.0.1,
    /// 127.1.0.2, ...), each sending `login` once, as the seed's Python
    /// client does (it never resends), all at once at full speed from one
    /// thread; then counts the menus that came back within `--wait`
    Herd {
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// Forged protocol v2 logins: from `--sources` loopback addresses
    /// (127.2.0.1, ...), at `--rate` a second, never confirmed; every
    /// answer read and counted, bytes in and out
    V2Logins {
        #[arg(long, default_value_t = 4096)]
        sources: usize,
        #[arg(long, default_value_t = 100_000)]
        rate: u32,
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
    /// Log in and stay silent until the server idles the sessions out
    Hold {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// The server's idle timeout
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        idle_timeout: Duration,
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        resend: Duration,
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("the load generator only targets loopback addresses");
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        match args.mode {
            Mode::Load {
                sessions,
                duration,
                resend,
                ip,
                v2,
            } => {
                load(
                    args.server,
                    check(sessions, ip)?,
                    duration.min(MAX_DURATION),
                    resend,
                    Sources::new(ip, args.addresses)?,
                    v2,
                )
                .await
            }
            Mode::Ntp {
                clients,
                duration,
                resend,
                ip,
                interleaved,
            } => {
                ntp(
                    args.server,
                    check(clients, ip)?,
                    duration.min(MAX_DURATION),
                    resend,
                    Sources::new(ip, args.addresses)?,
                    interleaved,
                )
                .await
            }
            Mode::Roughtime {
                clients,
                duration,
                resend,
                ip,
                key,
                verify_every,
            } => {
                roughtime(
                    args.server,
                    check(clients, ip)?,
                    duration.min(MAX_DURATION),
                    resend,
                    Sources::new(ip, args.addresses)?,
                    key,
                    verify_every,
                )
                .await
            }
            Mode::Garbage { duration, rate, ip } => {
                garbage(
                    args.server,
                    check(1, ip)?,
                    duration.min(MAX_DURATION),
                    rate,
                    ip,
                )
                .await
            }
            Mode::Hold {
                sessions,
                idle_timeout,
                resend,
                ip,
            } => hold(args.server, check(sessions, ip)?, idle_timeout, resend, ip).await,
            Mode::V2Logins {
                sources,
                rate,
                duration,
            } => v2_logins(
                args.server,
                check(sources, IpAddr::from([127, 2, 0, 1]))?,
                rate,
                duration.min(MAX_DURATION),
            ),
            Mode::Herd { clients, wait } => herd(
                args.server,
                check(clients, IpAddr::from([127, 1, 0, 1]))?,
                wait,
            ),
        }
    })
}

/// The herd (see [`Mode::Herd`]): plain non-blocking sockets, one send each
/// in one tight loop, then every socket read until all have their menu or
/// `wait` is over.
fn herd(server: SocketAddr, clients: usize, wait: Duration) -> anyhow::Result<()> {
    let sockets = (0..clients)
        .map(|n| {
            let ip = [127, 1, (n / 250) as u8, (n % 250 + 1) as u8];
            let socket = std::net::UdpSocket::bind(SocketAddr::from((ip, 0)))
                .with_context(|| format!("cannot bind {ip:?}"))?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    for socket in &sockets {
        socket.send_to(b"login", server)?;
    }
    let sent_in = started.elapsed();
    let mut menus = vec![false; clients];
    let (mut got, mut other) = (0usize, 0u64);
    let mut buffer = [0u8; 2048];
    while got < clients && started.elapsed() < wait {
        for (socket, menu) in sockets.iter().zip(menus.iter_mut()) {
            while let Ok(len) = socket.recv(&mut buffer) {
                if &buffer[..len] == LOGIN_MENU.as_bytes() && !*menu {
                    *menu = true;
                    got += 1;
                } else {
                    other += 1;
                }
            }
        }
    }
    println!(
        "mode=herd clients={clients} sent_in_ms={:.1} send_rate={:.0} menus={got} other_replies={other} done_in_ms={:.1}",
        sent_in.as_secs_f64() * 1e3,
        clients as f64 / sent_in.as_secs_f64(),
        started.elapsed().as_secs_f64() * 1e3,
    );
    Ok(())
}

/// Forged v2 logins (see [`Mode::V2Logins`]): plain non-blocking sockets,
/// each sending in turn, paced in batches; the answers drained as they
/// come. Prints what was sent and received, in datagrams and bytes.
fn v2_logins(
    server: SocketAddr,
    sources: usize,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<()> {
    let sockets = (0..sources)
        .map(|n| {
            let ip = [127, 2, (n / 250) as u8, (n % 250 + 1) as u8];
            let socket = std::net::UdpSocket::bind(SocketAddr::from((ip, 0)))
                .with_context(|| format!("cannot bind {ip:?}"))?;
            socket.set_nonblocking(true)?;
            socket.connect(server)?;
            Ok(socket)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    let (mut sent, mut sent_bytes, mut failed) = (0u64, 0u64, 0u64);
    let (mut answers, mut answer_bytes, mut larger) = (0u64, 0u64, 0u64);
    let mut buffer = [0u8; 2048];
    let mut next = 0usize;
    while started.elapsed() < duration {
        for _ in 0..256 {
            let mut nonce = [0u8; 16];
            nonce[..8].copy_from_slice(&sent.to_be_bytes());
            let login = v2_wire::login(&Nonce(nonce));
            match sockets[next].send(&login) {
                Ok(len) => {
                    sent += 1;
                    sent_bytes += len as u64;
                }
                Err(_) => failed += 1,
            }
            next = (next + 1) % sockets.len();
        }
        for socket in &sockets[next.saturating_sub(256)..next.max(1)] {
            while let Ok(len) = socket.recv(&mut buffer) {
                answers += 1;
                answer_bytes += len as u64;
                larger += u64::from(len > v2_wire::REQUEST_LEN);
            }
        }
        if rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / f64::from(rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // What is still in flight.
    std::thread::sleep(Duration::from_millis(200));
    for socket in &sockets {
        while let Ok(len) = socket.recv(&mut buffer) {
            answers += 1;
            answer_bytes += len as u64;
            larger += u64::from(len > v2_wire::REQUEST_LEN);
        }
    }
    println!(
        "mode=v2-logins sources={sources} sent={sent} send_failures={failed} rate={:.0}/s request_bytes={sent_bytes} answers={answers} answer_bytes={answer_bytes} amplification={:.3} answers_larger_than_a_request={larger}",
        sent as f64 / elapsed,
        answer_bytes as f64 / sent_bytes.max(1) as f64,
    );
    Ok(())
}

fn check(sessions: usize, ip: IpAddr) -> anyhow::Result<usize> {
    if !ip.is_loopback() {
        bail!("--ip must be a loopback address");
    }
    if sessions == 0 || sessions > MAX_SESSIONS {
        bail!("--sessions must be 1..={MAX_SESSIONS}");
    }
    Ok(sessions)
}

/// The source addresses sessions are spread over: `count` from `first` on.
#[derive(Debug, Clone, Copy)]
struct Sources {
    first: IpAddr,
    count: u32,
}

impl Sources {
    fn new(first: IpAddr, count: u32) -> anyhow::Result<Sources> {
        match first {
            IpAddr::V4(v4)
                if u32::from(v4)
                    .checked_add(count)
                    .is_some_and(|end| end >> 24 == 127) => {}
            IpAddr::V6(_) if count == 1 => {}
            _ => bail!("--addresses: {count} addresses from {first} are not all loopback"),
        }
        if count == 0 {
            bail!("--addresses must be at least 1");
        }
        Ok(Sources { first, count })
    }

    /// Session `n`'s source address.
    fn nth(self, n: usize) -> IpAddr {
        match self.first {
            IpAddr::V4(v4) => {
                let offset = u32::try_from(n).unwrap_or(0) % self.count;
                IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) + offset))
            }
            v6 => v6,
        }
    }
}

/// What one session saw.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    losses: u64,
    bad: u64,
    lost_session: bool,
    /// SNTP replies in interleaved mode.
    interleaved: u64,
}

async fn load(
    server: SocketAddr,
    sessions: usize,
    duration: Duration,
    resend: Duration,
    sources: Sources,
    v2: bool,
) -> anyhow::Result<()> {
    let barrier = Arc::new(Barrier::new(sessions + 1));
    let logins = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let socket = connected_socket(sources.nth(n), server).await?;
        let (barrier, logins) = (Arc::clone(&barrier), Arc::clone(&logins));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let permit = logins.acquire().await;
            let session = if v2 {
                v2_log_in(&socket, n, resend, &mut tally).await
            } else {
                let menu = ask(&socket, b"login", resend, &mut tally).await;
                if menu.as_deref() != Some(LOGIN_MENU.as_bytes()) {
                    tally.bad += u64::from(menu.is_some());
                    tally.lost_session = true;
                }
                Session::Seed
            };
            drop(permit);
            tally.lost_session |= session == Session::Lost;
            barrier.wait().await;
            let end = Instant::now() + duration;
            let mut id = 0;
            while !tally.lost_session && Instant::now() < end {
                let sent = Instant::now();
                id += 1;
                match session.ask(&socket, 1, id, resend, &mut tally).await {
                    Some(reply) if is_time_reply(&reply) => {
                        let micros = sent.elapsed().as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                    }
                    Some(_) => {
                        tally.bad += 1;
                        tally.lost_session = true;
                    }
                    None => tally.lost_session = true,
                }
            }
            if !tally.lost_session {
                let bye = session.ask(&socket, 2, id + 1, resend, &mut tally).await;
                if bye.as_deref() != Some(SESSION_CLOSED.as_bytes()) {
                    tally.bad += 1;
                }
            }
            tally
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let report = Report::collect(tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let protocol = if v2 { "v2" } else { "seed" };
    println!(
        "mode=load protocol={protocol} server={server} sessions={sessions} {}",
        report.line(duration, "lost_sessions")
    );
    eprintln!("(wall time including logout: {elapsed:.2}s)");
    Ok(())
}

async fn garbage(
    server: SocketAddr,
    _one: usize,
    duration: Duration,
    rate: u32,
    ip: IpAddr,
) -> anyhow::Result<()> {
    let socket = connected_socket(ip, server).await?;
    let datagram = b"not a request at all";
    let started = Instant::now();
    let end = started + duration;
    let mut sent: u64 = 0;
    let mut failed: u64 = 0;
    while Instant::now() < end {
        // In batches of 64 between clock reads and pacing.
        for _ in 0..64 {
            match socket.try_send(datagram) {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
        if rate > 0 {
            let due = started + Duration::from_secs_f64(sent as f64 / f64::from(rate));
            tokio::time::sleep_until(due).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "mode=garbage server={server} sent={sent} send_failures={failed} in {elapsed:.1}s ({:.0}/s)",
        sent as f64 / elapsed
    );
    Ok(())
}

/// A client of a closed loop: makes each request and judges each reply.
trait Asker: Send + 'static {
    /// Request number `serial`.
    fn request(&mut self, serial: u64) -> &[u8];
    /// Whether `reply` answers the request made last (counting what it
    /// teaches in `tally`).
    fn answers(&mut self, serial: u64, reply: &[u8], tally: &mut Tally) -> bool;
}

/// `clients` closed-loop clients, each from its own socket, each keeping
/// one request outstanding for `duration` (resent after `resend`, at most
/// `MAX_TRIES` times); the report of them all.
async fn closed_loop<A: Asker>(
    server: SocketAddr,
    clients: usize,
    duration: Duration,
    resend: Duration,
    sources: Sources,
    make: impl Fn(usize) -> A,
) -> anyhow::Result<Report> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for n in 0..clients {
        let socket = connected_socket(sources.nth(n), server).await?;
        let barrier = Arc::clone(&barrier);
        let mut asker = make(n);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut buffer = [0u8; 2048];
            barrier.wait().await;
            let end = Instant::now() + duration;
            let mut serial: u64 = 0;
            'requests: while Instant::now() < end {
                serial += 1;
                let sent = Instant::now();
                for _ in 0..MAX_TRIES {
                    if socket.send(asker.request(serial)).await.is_err() {
                        tally.lost_session = true;
                        break 'requests;
                    }
                    match timeout(resend, socket.recv(&mut buffer)).await {
                        Ok(Ok(len)) => {
                            if asker.answers(serial, &buffer[..len], &mut tally) {
                                let micros = sent.elapsed().as_micros();
                                tally
                                    .latencies_us
                                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                            } else {
                                tally.bad += 1;
                            }
                            continue 'requests;
                        }
                        Ok(Err(_)) => {
                            tally.lost_session = true;
                            break 'requests;
                        }
                        Err(_) => tally.losses += 1,
                    }
                }
                tally.lost_session = true;
                break;
            }
            tally
        }));
    }
    barrier.wait().await;
    Report::collect(tasks).await
}

/// An SNTP client: 48-byte mode-3 requests; a reply counts if it is mode 4
/// and echoes the transmit timestamp (or, interleaved, the receive one).
struct NtpAsker {
    request: [u8; 48],
    interleaved: bool,
}

impl Asker for NtpAsker {
    fn request(&mut self, serial: u64) -> &[u8] {
        self.request[0] = 4 << 3 | 3; // version 4, client
        self.request[40..48].copy_from_slice(&serial.to_be_bytes());
        if self.interleaved {
            // Our "receive time" of the last reply: any value other than
            // our transmit field will do.
            self.request[32..40].copy_from_slice(&(serial | 1 << 63).to_be_bytes());
        }
        &self.request
    }

    fn answers(&mut self, _serial: u64, reply: &[u8], tally: &mut Tally) -> bool {
        let ours = reply.get(24..32) == Some(&self.request[40..48]);
        let xleave = self.interleaved && reply.get(24..32) == Some(&self.request[32..40]);
        if reply.len() != 48 || reply[0] & 0b111 != 4 || !(ours || xleave) {
            return false;
        }
        tally.interleaved += u64::from(xleave);
        if self.interleaved {
            self.request[24..32].copy_from_slice(&reply[32..40]);
        }
        true
    }
}

async fn ntp(
    server: SocketAddr,
    clients: usize,
    duration: Duration,
    resend: Duration,
    sources: Sources,
    interleaved: bool,
) -> anyhow::Result<()> {
    let make = |_| NtpAsker {
        request: [0; 48],
        interleaved,
    };
    let report = closed_loop(server, clients, duration, resend, sources, make).await?;
    println!(
        "mode=ntp server={server} clients={clients} {} interleaved_replies={}",
        report.line(duration, "failed_clients"),
        report.interleaved
    );
    Ok(())
}

/// A Roughtime client: version-1 requests of 1,024 bytes, their nonce the
/// client's number and the serial; one reply in `every` checked whole with
/// `key`, the others for their nonce.
struct RoughtimeAsker {
    client: u64,
    key: Option<[u8; 32]>,
    every: u64,
    request: Vec<u8>,
}

impl Asker for RoughtimeAsker {
    fn request(&mut self, serial: u64) -> &[u8] {
        use hora_proto::roughtime::{client, version::Version};
        let mut nonce = [0u8; 32];
        nonce[..8].copy_from_slice(&self.client.to_le_bytes());
        nonce[8..16].copy_from_slice(&serial.to_le_bytes());
        self.request = client::request(&nonce, &[Version::RFC], self.key.as_ref());
        &self.request
    }

    fn answers(&mut self, serial: u64, reply: &[u8], _tally: &mut Tally) -> bool {
        use hora_proto::roughtime::{client, wire};
        if let Some(key) = self.key.filter(|_| serial % self.every == 0) {
            return client::verify(&self.request, reply, &key).is_ok();
        }
        let nonce = |packet: &[u8]| {
            let message = wire::Message::parse(wire::unframe(packet).ok()?).ok()?;
            message.get(wire::Tag::NONC).map(<[u8]>::to_vec)
        };
        nonce(reply).is_some() && nonce(reply) == nonce(&self.request)
    }
}

async fn roughtime(
    server: SocketAddr,
    clients: usize,
    duration: Duration,
    resend: Duration,
    sources: Sources,
    key: Option<[u8; 32]>,
    every: u64,
) -> anyhow::Result<()> {
    let make = |n: usize| RoughtimeAsker {
        client: n as u64,
        key,
        every: every.max(1),
        request: Vec::new(),
    };
    let report = closed_loop(server, clients, duration, resend, sources, make).await?;
    println!(
        "mode=roughtime server={server} clients={clients} {}",
        report.line(duration, "failed_clients")
    );
    Ok(())
}

async fn hold(
    server: SocketAddr,
    sessions: usize,
    idle_timeout: Duration,
    resend: Duration,
    ip: IpAddr,
) -> anyhow::Result<()> {
    let logins = Arc::new(Semaphore::new(256));
    let logged_in = Arc::new(Barrier::new(sessions + 1));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sessions);
    for _ in 0..sessions {
        let socket = connected_socket(ip, server).await?;
        let (logins, logged_in) = (Arc::clone(&logins), Arc::clone(&logged_in));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let permit = logins.acquire().await;
            let menu = ask(&socket, b"login", resend, &mut tally).await;
            let login_at = Instant::now();
            drop(permit);
            logged_in.wait().await;
            if menu.as_deref() != Some(LOGIN_MENU.as_bytes()) {
                return (None, tally);
            }
            let mut buffer = [0u8; 2048];
            let notice = timeout(
                idle_timeout + Duration::from_secs(60),
                socket.recv(&mut buffer),
            )
            .await;
            match notice {
                Ok(Ok(len)) if &buffer[..len] == IDLE_NOTICE.as_bytes() => {
                    // Positive: after the deadline the client can see.
                    let late = Instant::now().duration_since(login_at + idle_timeout);
                    (Some(late), tally)
                }
                _ => {
                    tally.bad += 1;
                    (None, tally)
                }
            }
        }));
    }
    logged_in.wait().await;
    println!(
        "held sessions={sessions} logged_in_in={:.2}s (measure the daemon's RSS now)",
        started.elapsed().as_secs_f64()
    );
    let mut lateness_ms = Vec::new();
    let (mut losses, mut failed) = (0, 0);
    for task in tasks {
        let (late, tally) = task.await?;
        losses += tally.losses;
        match late {
            Some(late) => lateness_ms.push(u32::try_from(late.as_millis()).unwrap_or(u32::MAX)),
            None => failed += 1,
        }
    }
    lateness_ms.sort_unstable();
    println!(
        "mode=hold sessions={sessions} expired={} failed={failed} login_losses={losses} \
         notice_late_ms_p50={} p99={} max={}",
        lateness_ms.len(),
        percentile(&lateness_ms, 0.50),
        percentile(&lateness_ms, 0.99),
        lateness_ms.last().copied().unwrap_or(0),
    );
    Ok(())
}

/// A socket of its own (so its own `SocketAddr`) on `ip`, connected to the server.
async fn connected_socket(ip: IpAddr, server: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind((ip, 0))
        .await
        .context("bind (open-file limit?)")?;
    socket.connect(server).await?;
    Ok(socket)
}

/// Every client's tally, merged.
struct Report {
    latencies_us: Vec<u32>,
    losses: u64,
    bad: u64,
    lost: u64,
    interleaved: u64,
}

impl Report {
    async fn collect(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> anyhow::Result<Report> {
        let mut report = Report {
            latencies_us: Vec::new(),
            losses: 0,
            bad: 0,
            lost: 0,
            interleaved: 0,
        };
        for task in tasks {
            let tally = task.await?;
            report.latencies_us.extend(tally.latencies_us);
            report.losses += tally.losses;
            report.bad += tally.bad;
            report.lost += u64::from(tally.lost_session);
            report.interleaved += tally.interleaved;
        }
        report.latencies_us.sort_unstable();
        Ok(report)
    }

    /// The measurement line; `lost_name` names the clients that gave up.
    fn line(&self, duration: Duration, lost_name: &str) -> String {
        let requests = self.latencies_us.len();
        format!(
            "duration={duration:?} requests={requests} rps={:.0} p50_us={} p99_us={} p999_us={} \
             losses={} bad_replies={} {lost_name}={}",
            requests as f64 / duration.as_secs_f64().max(1e-9),
            percentile(&self.latencies_us, 0.50),
            percentile(&self.latencies_us, 0.99),
            percentile(&self.latencies_us, 0.999),
            self.losses,
            self.bad,
            self.lost,
        )
    }
}

/// Sends `request` and returns the first reply, resending after `resend`.
/// `None` after [`MAX_TRIES`] or a socket error: the session is lost.
async fn ask(
    socket: &UdpSocket,
    request: &[u8],
    resend: Duration,
    tally: &mut Tally,
) -> Option<Vec<u8>> {
    let mut buffer = [0u8; 2048];
    for _ in 0..MAX_TRIES {
        socket.send(request).await.ok()?;
        match timeout(resend, socket.recv(&mut buffer)).await {
            Ok(Ok(len)) => return Some(buffer[..len].to_vec()),
            Ok(Err(_)) => return None,
            Err(_) => tally.losses += 1,
        }
    }
    None
}

/// A load session: the seed's, or protocol v2's with its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Session {
    Seed,
    V2(Token),
    Lost,
}

/// Protocol v2's handshake (session `n`'s nonce): the session.
async fn v2_log_in(socket: &UdpSocket, n: usize, resend: Duration, tally: &mut Tally) -> Session {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&(n as u64).to_be_bytes());
    let nonce = Nonce(nonce);
    let Some(challenge) = ask(socket, &v2_wire::login(&nonce), resend, tally).await else {
        return Session::Lost;
    };
    let Ok(ServerDatagram::Challenge { cookie, .. }) = read_server(&challenge) else {
        tally.bad += 1;
        return Session::Lost;
    };
    let Some(welcome) = ask(socket, &v2_wire::confirm(&nonce, &cookie), resend, tally).await else {
        return Session::Lost;
    };
    match read_server(&welcome) {
        Ok(ServerDatagram::Welcome(w)) if w.nonce == nonce && w.text == LOGIN_MENU.as_bytes() => {
            Session::V2(w.token)
        }
        _ => {
            tally.bad += 1;
            Session::Lost
        }
    }
}

impl Session {
    /// Sends `option` (request `id` in v2): the reply's text, `None` if
    /// lost or (v2) not this session's answer to this request.
    async fn ask(
        &self,
        socket: &UdpSocket,
        option: u8,
        id: u64,
        resend: Duration,
        tally: &mut Tally,
    ) -> Option<Vec<u8>> {
        let Session::V2(token) = self else {
            let seed: &[u8] = if option == 1 { b"1" } else { b"2" };
            return ask(socket, seed, resend, tally).await;
        };
        let reply = ask(socket, &v2_wire::request(option, token, id), resend, tally).await?;
        match read_server(&reply) {
            Ok(ServerDatagram::Answer(a)) if a.token == *token && a.id == id => {
                Some(a.text.to_vec())
            }
            _ => None,
        }
    }
}

/// Byte for byte: the prefix, a well-formed date and time, the time menu.
fn is_time_reply(reply: &[u8]) -> bool {
    let Some(rest) = reply.strip_prefix(TIME_PREFIX.as_bytes()) else {
        return false;
    };
    let Some(stamp) = rest.strip_suffix(TIME_MENU.as_bytes()) else {
        return false;
    };
    std::str::from_utf8(stamp)
        .ok()
        .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, TIME_FORMAT).ok())
        .is_some()
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
