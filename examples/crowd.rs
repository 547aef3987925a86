//! One source asking far over its rate limit while a crowd of other sources
//! asks once each: how many of its requests a daemon answers, against the
//! `rate × seconds + burst` its limit allows (RELIABILITY.md, "A rate limit
//! no crowd can loosen"). Loopback only; bounded in sources and time.
//!
//! ```sh
//! target/release/horad --config /dev/null --bind 127.0.0.1:5105 --sntp-bind 127.0.0.1:5123 \
//!     --sntp-local-stratum 10 &
//! cargo run --release --example crowd -- --server 127.0.0.1:5123 --protocol sntp \
//!     --crowd 250000 --duration 10s
//! ```
//!
//! The source (127.0.0.8) sends `--rate` requests a second for the
//! duration (on the seed protocol it logs in first, then asks `1`), on a
//! thread of its own; the crowd (127.64.0.0 and up, a fresh socket each, as
//! forged sources would be) sends one request each, spread evenly over the
//! same time, on another: an SNTP request (`--protocol sntp`) or a `login`
//! (`seed`). The limit's settings are the daemon's defaults unless given.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use hora_proto::wire::TIME_PREFIX;

#[derive(Debug, Parser)]
struct Args {
    /// The daemon's socket for `--protocol` (a loopback address)
    #[arg(long)]
    server: SocketAddr,
    /// What the source and the crowd speak
    #[arg(long, value_enum)]
    protocol: Protocol,
    /// The source's requests a second
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// How long the source asks and the crowd is spread over
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Other sources, each asking once (at most 4,000,000)
    #[arg(long, default_value_t = 250_000)]
    crowd: u32,
    /// The daemon's `[ratelimit] rate`, for the bound
    #[arg(long, default_value_t = 20.0)]
    limit_rate: f64,
    /// The daemon's `[ratelimit] burst`, for the bound
    #[arg(long, default_value_t = 40.0)]
    limit_burst: f64,
}

/// The protocol asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Protocol {
    Sntp,
    Seed,
}

impl Protocol {
    /// What a crowd member sends, and what the source sends once first.
    fn first(self) -> Vec<u8> {
        match self {
            Protocol::Sntp => sntp_request().to_vec(),
            Protocol::Seed => b"login".to_vec(),
        }
    }

    /// What the source sends every time.
    fn ask(self) -> Vec<u8> {
        match self {
            Protocol::Sntp => sntp_request().to_vec(),
            Protocol::Seed => b"1".to_vec(),
        }
    }

    /// Whether a datagram the source got is an answer (not a RATE kiss, a
    /// menu or a notice).
    fn is_answer(self, reply: &[u8]) -> bool {
        match self {
            Protocol::Sntp => reply.len() >= 48 && reply[1] != 0,
            Protocol::Seed => reply.starts_with(TIME_PREFIX.as_bytes()),
        }
    }
}

fn sntp_request() -> [u8; 48] {
    let mut request = [0u8; 48];
    request[0] = 0x23; // Version 4, client.
    request
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("only loopback addresses are asked");
    }
    if args.crowd > 4_000_000 || args.duration > Duration::from_secs(600) || args.rate == 0 {
        bail!("at most 4,000,000 others and 600 s, and a rate of 1 or more");
    }
    let source = UdpSocket::bind("127.0.0.8:0")?;
    source.set_read_timeout(Some(Duration::from_millis(1)))?;
    if args.protocol == Protocol::Seed {
        source.send_to(&args.protocol.first(), args.server)?;
        let mut menu = [0u8; 2048];
        source
            .set_read_timeout(Some(Duration::from_secs(2)))
            .and_then(|()| source.recv(&mut menu))
            .context("the source's login got no menu")?;
        source.set_read_timeout(Some(Duration::from_millis(1)))?;
    }
    let running = Arc::new(AtomicBool::new(true));
    let crowd = {
        let (running, first) = (running.clone(), args.protocol.first());
        let (server, others, duration) = (args.server, args.crowd, args.duration);
        std::thread::spawn(move || ask_once_each(server, &first, others, duration, &running))
    };
    let start = Instant::now();
    let (mut asked, mut answered, mut buffer) = (0u64, 0u64, [0u8; 2048]);
    let ask = args.protocol.ask();
    while start.elapsed() < args.duration {
        let due = start + Duration::from_secs(asked) / args.rate;
        if Instant::now() >= due {
            source.send_to(&ask, args.server)?;
            asked += 1;
        }
        if let Ok(len) = source.recv(&mut buffer) {
            answered += u64::from(args.protocol.is_answer(&buffer[..len]));
        }
    }
    // Answers still on their way.
    let late = Instant::now() + Duration::from_millis(200);
    while Instant::now() < late {
        if let Ok(len) = source.recv(&mut buffer) {
            answered += u64::from(args.protocol.is_answer(&buffer[..len]));
        }
    }
    running.store(false, Ordering::Relaxed);
    let sent = crowd
        .join()
        .map_err(|_| anyhow::anyhow!("the crowd panicked"))??;
    let seconds = args.duration.as_secs_f64();
    let bound = args.limit_rate * seconds + args.limit_burst;
    println!(
        "source: {asked} asked, {answered} answered ({:.1}/s) in {seconds:.1} s; \
         rate x seconds + burst = {bound:.0}, answered/bound = {:.3}; crowd: {sent} sources",
        answered as f64 / seconds,
        answered as f64 / bound,
    );
    Ok(())
}

/// Sends `first` once from each of `others` fresh sources, evenly over
/// `duration`; how many were sent.
fn ask_once_each(
    server: SocketAddr,
    first: &[u8],
    others: u32,
    duration: Duration,
    running: &AtomicBool,
) -> anyhow::Result<u32> {
    let start = Instant::now();
    let mut sent = 0;
    while sent < others && running.load(Ordering::Relaxed) {
        let due = start + duration.mul_f64(f64::from(sent) / f64::from(others));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait.min(Duration::from_millis(1)));
            continue;
        }
        let ip = Ipv4Addr::from(0x7F40_0000 + sent);
        let socket = UdpSocket::bind((ip, 0)).with_context(|| format!("bind {ip}"))?;
        // A full send buffer is a datagram lost, as on a real LAN.
        let _ = socket.send_to(first, server);
        sent += 1;
    }
    Ok(sent)
}
