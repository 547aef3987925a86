//! A flood of logins and garbage from many loopback sources, while a few
//! well-behaved clients keep asking the time. Run by hand, against a daemon
//! with its default limits:
//!
//! ```sh
//! target/release/horad --bind 127.0.0.1:5105 &
//! cargo run --release --example flood -- --server 127.0.0.1:5105 \
//!     --sources 100000 --pid $(pidof horad)
//! ```
//!
//! The flood is paced (`--rate`, datagrams a second in all); `--rate 0`
//! floods as fast as the generator can on `--flood-threads` cores (1 by
//! default, leaving the other core of this 2-core machine to the daemon).
//! The good clients run on a thread of their own, so their latency is the
//! daemon's, not the generator's.
//!
//! Each flood source is a fresh socket on its own address in 127.1.0.0 and
//! up (so a distinct `SocketAddr`, as a forged source would be): it sends
//! `login`, then garbage (an unknown option, non-UTF-8, an oversized
//! datagram, an empty one), and closes. Sessions it opens stay until their
//! idle timeout, so the daemon's session limit is what bounds its memory.
//! The good clients (127.0.0.10 and up) ask the time every 100 ms (under the default rate limit) and
//! report every answer missed and their latency. Loopback only; bounded in
//! sources and time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use hora_proto::wire::{LOGIN_MENU, TIME_PREFIX};
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:5005")]
    server: SocketAddr,
    /// Distinct flood sources, in all (at most 1,000,000)
    #[arg(long, default_value_t = 100_000)]
    sources: u32,
    /// Flood sources open at once
    #[arg(long, default_value_t = 500)]
    concurrent: u32,
    /// Flood datagrams per second, in all (0: as fast as possible)
    #[arg(long, default_value_t = 50_000)]
    rate: u32,
    /// Well-behaved clients
    #[arg(long, default_value_t = 10)]
    good: u8,
    /// The daemon's pid, to sample its RSS
    #[arg(long)]
    pid: Option<u32>,
    /// Threads sending the flood: 1, as fast as one core can, leaves the
    /// other core to the daemon, as a forger's own machine would
    #[arg(long, default_value_t = 1)]
    flood_threads: usize,
    /// What each source sends: `mixed` (one in four only logs in, the others
    /// log in and send garbage), `logins` (one login each), `garbage` (no
    /// request at all: nothing is answered)
    #[arg(long, value_enum, default_value = "mixed")]
    mix: Mix,
}

/// What the flood sources send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mix {
    Mixed,
    Logins,
    Garbage,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("the flood only targets loopback addresses");
    }
    let flooding = Arc::new(AtomicBool::new(true));
    // The good clients and the RSS sampler run on a thread and runtime of
    // their own: on the flood's runtime their answers would wait behind
    // hundreds of flood tasks, and their latency would be the generator's.
    let observers = {
        let (good, server, pid, flooding) =
            (args.good, args.server, args.pid, Arc::clone(&flooding));
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(observe(good, server, pid, flooding)))
        })
    };
    let flood = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.flood_threads.max(1))
        .enable_all()
        .build()?;
    let (sent, flood_time) = flood.block_on(flood_all(&args, Arc::clone(&flooding)))?;
    let Ok(observed) = observers.join() else {
        bail!("the good clients' thread panicked");
    };
    let (mut latencies, asked, missed, lost, peak_rss) = observed??;
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "flood sources={} datagrams={sent} in {:.1}s ({:.0}/s); good clients={} asked={asked} \
         missed={missed} lost_sessions={lost} p50_us={} p99_us={} max_us={} peak_rss_kb={peak_rss}",
        args.sources.min(1_000_000),
        flood_time.as_secs_f64(),
        sent as f64 / flood_time.as_secs_f64(),
        args.good,
        pick(0.5),
        pick(0.99),
        latencies.last().copied().unwrap_or(0),
    );
    Ok(())
}

/// What the good clients saw: every latency (µs), requests asked, answers
/// missed, sessions lost, and the daemon's peak RSS (kB).
type Observed = (Vec<u32>, u64, u64, u64, u64);

/// Runs the good clients and the RSS sampler until the flood ends.
async fn observe(
    good: u8,
    server: SocketAddr,
    pid: Option<u32>,
    flooding: Arc<AtomicBool>,
) -> anyhow::Result<Observed> {
    let mut clients = Vec::new();
    for i in 0..good {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10 + i));
        let flooding = Arc::clone(&flooding);
        clients.push(tokio::spawn(async move {
            good_client(ip, server, flooding).await
        }));
    }
    let mut peak_rss = 0;
    while flooding.load(Ordering::Relaxed) {
        if let Some(kb) = pid.and_then(rss_kb) {
            peak_rss = peak_rss.max(kb);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut latencies = Vec::new();
    let (mut asked, mut missed, mut lost) = (0u64, 0u64, 0u64);
    for client in clients {
        let report = client.await?;
        latencies.extend(report.latencies_us);
        asked += report.asked;
        missed += report.missed;
        lost += u64::from(report.lost_session);
    }
    Ok((latencies, asked, missed, lost, peak_rss))
}

/// Sends the whole flood; how many datagrams, in how long. Clears
/// `flooding` when done.
async fn flood_all(args: &Args, flooding: Arc<AtomicBool>) -> anyhow::Result<(u64, Duration)> {
    let sources = args.sources.min(1_000_000);
    let sent = Arc::new(AtomicU64::new(0));

    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrent {
        let (next, sent, server) = (Arc::clone(&next), Arc::clone(&sent), args.server);
        let (rate, mix) = (args.rate, args.mix);
        workers.push(tokio::spawn(async move {
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= u64::from(sources) {
                    return;
                }
                if rate > 0 {
                    let per_source = match mix {
                        Mix::Logins => 1.0,
                        Mix::Garbage | Mix::Mixed => 4.0,
                    };
                    let due =
                        started + Duration::from_secs_f64(k as f64 * per_source / f64::from(rate));
                    tokio::time::sleep_until(due).await;
                }
                let ip = Ipv4Addr::from(0x7F01_0000u32 + k as u32);
                let Ok(socket) = UdpSocket::bind((ip, 0)).await else {
                    continue;
                };
                // One source in four only logs in: its session lives until
                // the idle timeout, filling the session table. The others
                // log in and send garbage, which ends their sessions.
                let garbage: &[&[u8]] = match mix {
                    Mix::Logins => &[b"login"],
                    Mix::Garbage => &[b"\xff\xfe", &[b'x'; 1500], b"", b"oi"],
                    Mix::Mixed if k % 4 == 0 => &[b"login"],
                    Mix::Mixed => &[b"login", b"3", b"\xff\xfe", &[b'x'; 1500], b""],
                };
                for datagram in garbage {
                    if socket.send_to(datagram, server).await.is_ok() {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    flooding.store(false, Ordering::Relaxed);
    Ok((sent.load(Ordering::Relaxed), started.elapsed()))
}

#[derive(Default)]
struct GoodReport {
    latencies_us: Vec<u32>,
    asked: u64,
    missed: u64,
    lost_session: bool,
}

/// Logs in, then asks the time every 100 ms while the flood lasts.
async fn good_client(ip: IpAddr, server: SocketAddr, flooding: Arc<AtomicBool>) -> GoodReport {
    let mut report = GoodReport::default();
    let Ok(socket) = UdpSocket::bind((ip, 0)).await else {
        report.lost_session = true;
        return report;
    };
    let mut buffer = [0u8; 2048];
    let _ = socket.connect(server).await;
    let _ = socket.send(b"login").await;
    match timeout(Duration::from_secs(1), socket.recv(&mut buffer)).await {
        Ok(Ok(len)) if &buffer[..len] == LOGIN_MENU.as_bytes() => {}
        _ => {
            report.lost_session = true;
            return report;
        }
    }
    while flooding.load(Ordering::Relaxed) {
        report.asked += 1;
        let sent = Instant::now();
        let _ = socket.send(b"1").await;
        match timeout(Duration::from_secs(1), socket.recv(&mut buffer)).await {
            Ok(Ok(len)) if buffer[..len].starts_with(TIME_PREFIX.as_bytes()) => {
                let micros = sent.elapsed().as_micros();
                report
                    .latencies_us
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok(Ok(_)) => {
                report.lost_session = true;
                break;
            }
            _ => report.missed += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = socket.send(b"2").await;
    report
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
