//! A churn soak: sessions opening, being served and ending at a steady rate,
//! by all three of a client's paths (logout, invalid option, idle expiry),
//! for a long time. Run by hand; afterwards the daemon should have no session
//! open, as many tasks as before, and a flat RSS.
//!
//! ```sh
//! target/release/horad --bind 127.0.0.1:5105 --stats-interval 10s 2> horad.log &
//! cargo run --release --example soak -- --server 127.0.0.1:5105 \
//!     --rate 1000 --duration 10m --pid $(pidof horad)
//! grep summary horad.log | tail -1     # sessions_open=0, tasks as at start
//! ```
//!
//! Each session uses a fresh socket on its own loopback address (127.2.0.0
//! and up), so neither the per-IP session limit nor the rate limit applies.
//! Loopback only; bounded in time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use hora_proto::wire::{IDLE_NOTICE, INVALID_OPTION, LOGIN_MENU, SESSION_CLOSED, TIME_PREFIX};
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, timeout, Instant};

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:5005")]
    server: SocketAddr,
    /// Sessions started per second
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// How long to keep starting sessions (at most 1 h)
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// The daemon's idle timeout
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// The daemon's pid, to sample its RSS every 10 s
    #[arg(long)]
    pid: Option<u32>,
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    logouts: AtomicU64,
    invalid: AtomicU64,
    idled: AtomicU64,
    errors: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("the soak only targets loopback addresses");
    }
    let duration = args.duration.min(Duration::from_secs(3600));
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let total = (duration.as_secs_f64() * f64::from(args.rate)) as u64;
    let mut next_sample = started;
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        sleep_until(started + Duration::from_secs_f64(k as f64 / f64::from(args.rate))).await;
        if let Some(pid) = args.pid {
            if Instant::now() >= next_sample {
                next_sample += Duration::from_secs(10);
                println!(
                    "t={:>4}s sessions_started={} rss_kb={}",
                    started.elapsed().as_secs(),
                    counts.started.load(Ordering::Relaxed),
                    rss_kb(pid).unwrap_or(0)
                );
            }
        }
        let (server, counts, idle) = (args.server, Arc::clone(&counts), args.idle_timeout);
        tasks.spawn(async move {
            counts.started.fetch_add(1, Ordering::Relaxed);
            if session(k, server, idle, &counts).await.is_none() {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "soak rate={}/s duration={duration:?} started={} logouts={} invalid_options={} idle_expiries={} errors={} rss_kb_end={}",
        args.rate,
        get(&counts.started),
        get(&counts.logouts),
        get(&counts.invalid),
        get(&counts.idled),
        get(&counts.errors),
        args.pid.and_then(rss_kb).unwrap_or(0),
    );
    Ok(())
}

/// One session: log in, ask the time, end it on path `k % 3`. `None` on any
/// unexpected or missing reply.
async fn session(k: u64, server: SocketAddr, idle: Duration, counts: &Counts) -> Option<()> {
    let ip = Ipv4Addr::from(0x7F02_0000u32 + (k % 0xFFFF) as u32);
    let socket = UdpSocket::bind((ip, 0)).await.ok()?;
    socket.connect(server).await.ok()?;
    let mut buffer = [0u8; 2048];
    let mut ask = async |request: &[u8], wait: Duration| -> Option<Vec<u8>> {
        socket.send(request).await.ok()?;
        let len = timeout(wait, socket.recv(&mut buffer)).await.ok()?.ok()?;
        Some(buffer[..len].to_vec())
    };
    let second = Duration::from_secs(2);
    (ask(b"login", second).await? == LOGIN_MENU.as_bytes()).then_some(())?;
    ask(b"1", second)
        .await?
        .starts_with(TIME_PREFIX.as_bytes())
        .then_some(())?;
    match k % 3 {
        0 => {
            (ask(b"2", second).await? == SESSION_CLOSED.as_bytes()).then_some(())?;
            counts.logouts.fetch_add(1, Ordering::Relaxed);
        }
        1 => {
            (ask(b"9", second).await? == INVALID_OPTION.as_bytes()).then_some(())?;
            counts.invalid.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            let len = timeout(idle + second, socket.recv(&mut buffer))
                .await
                .ok()?
                .ok()?;
            (&buffer[..len] == IDLE_NOTICE.as_bytes()).then_some(())?;
            counts.idled.fetch_add(1, Ordering::Relaxed);
        }
    }
    Some(())
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
