//! A closed-loop load generator for NTS (RFC 8915), loopback only, for
//! comparing horad with chronyd's NTS server (`bench/nts.sh`).
//!
//! `requests`: N clients each do one key exchange (not timed), then each
//! keeps one NTS-authenticated request outstanding for the duration; a
//! reply counts only if it authenticates with the client's key and echoes
//! its request (every reply's cookie goes back into the client's jar).
//! With `--replay`, each client seals 16 requests before the run and sends
//! those same bytes in turn: the server's work per request is the same
//! (cookie opened, request authenticated, reply sealed with a fresh
//! cookie; servers keep no record of cookies used), the client's is a
//! send and a receive, so on a small machine the server, not the load
//! generator, is what runs out of CPU. A reply then counts if it echoes
//! the request's transmit timestamp; the first and every 256th are
//! authenticated in full, and one that fails is a bad reply.
//! `ke`: N clients do key exchanges back to back for the duration; counts
//! the ones that gave cookies. `session`: one key exchange, its
//! client-to-server key and a cookie printed for ntpperf's `-S`
//! (`bench/ntpperf.sh`; the one mode that may ask beyond loopback).
//!
//! ```sh
//! cargo run --release --example nts_load -- --ke 127.0.0.1:4460 --ca ca.pem requests --clients 64
//! cargo run --release --example nts_load -- --ke 127.0.0.1:4460 --ca ca.pem ke --clients 8
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use hora_client::nts::{key_exchange_offering, Session};
use hora_proto::nts::packet;
use hora_proto::nts::Algorithm;
use hora_proto::sntp::{self, NtpTimestamp};
use tokio::net::UdpSocket;
use tokio::sync::Barrier;
use tokio::time::{timeout, Instant};

#[derive(Debug, Parser)]
#[command(about = "NTS load generator (loopback only)")]
struct Args {
    /// The key exchange server (a loopback address)
    #[arg(long)]
    ke: SocketAddr,
    /// The CA that signed its certificate (PEM)
    #[arg(long)]
    ca: PathBuf,
    /// The name its certificate carries
    #[arg(long, default_value = "127.0.0.1")]
    name: String,
    /// The AEAD to offer: 15 (AES-SIV-CMAC-256, what chrony 4.3 clients
    /// use) or 30 (AES-128-GCM-SIV)
    #[arg(long, default_value_t = 15)]
    aead: u16,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Closed loop of authenticated requests after one key exchange each
    Requests {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
        #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
        resend: Duration,
        /// Send 16 requests sealed before the run, in turn (see the module's doc)
        #[arg(long)]
        replay: bool,
    },
    /// Offset and delay, one request every `gap` (after one key exchange):
    /// median and p99 of |offset| and of delay, in microseconds. With
    /// `--plain`, plain SNTP to `--ntp` instead, by the same code
    Probe {
        #[arg(long, default_value_t = 500)]
        count: usize,
        #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
        gap: Duration,
        #[arg(long)]
        plain: bool,
        /// The NTP server for `--plain` (NTS asks where the key exchange says)
        #[arg(long)]
        ntp: Option<SocketAddr>,
    },
    /// One key exchange: prints the client-to-server key and one cookie
    /// in hex as `C2S,COOKIE`, what ntpperf's `-S` takes (bench/ntpperf.sh)
    Session,
    /// Key exchanges back to back
    Ke {
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        duration: Duration,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One key exchange is no load: it may ask a server in a network
    // namespace the benchmark made (bench/ntpperf.sh).
    if !args.ke.ip().is_loopback() && !matches!(args.mode, Mode::Session) {
        bail!("the load generator only targets loopback addresses");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match args.mode {
            Mode::Requests {
                clients,
                duration,
                resend,
                replay,
            } => requests(&args, clients, duration, resend, replay).await,
            Mode::Ke { clients, duration } => exchanges(&args, clients, duration).await,
            Mode::Session => {
                let session = exchange(&args).await?;
                let cookie = session
                    .cookies
                    .first()
                    .context("the server gave no cookie")?;
                let hex =
                    |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
                println!("{},{}", hex(session.keys.c2s()), hex(cookie));
                Ok(())
            }
            Mode::Probe {
                count,
                gap,
                plain,
                ntp,
            } => probe(&args, count, gap, plain, ntp).await,
        }
    })
}

async fn exchange(args: &Args) -> anyhow::Result<Session> {
    let algorithm = Algorithm::from_id(args.aead).context("--aead: 15 or 30")?;
    key_exchange_offering(
        &args.name,
        &[args.ke],
        Some(&args.ca),
        Duration::from_secs(5),
        &[algorithm],
    )
    .await
    .context("key exchange")
}

#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    losses: u64,
    bad: u64,
}

async fn requests(
    args: &Args,
    clients: usize,
    duration: Duration,
    resend: Duration,
    replay: bool,
) -> anyhow::Result<()> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::new();
    let mut server = None;
    for _ in 0..clients {
        let session = exchange(args).await?;
        let ntp = *session.ntp.first().context("no NTP server")?;
        server = Some(ntp);
        let socket = UdpSocket::bind("127.0.0.1:0").await?;
        socket.connect(ntp).await?;
        let barrier = Arc::clone(&barrier);
        let pace = Pace {
            barrier,
            duration,
            resend,
        };
        tasks.push(if replay {
            tokio::spawn(replaying_client(session, socket, pace))
        } else {
            tokio::spawn(client(session, socket, pace))
        });
    }
    barrier.wait().await;
    let mut tally = Tally::default();
    for task in tasks {
        let one = task.await??;
        tally.latencies_us.extend(one.latencies_us);
        tally.losses += one.losses;
        tally.bad += one.bad;
    }
    tally.latencies_us.sort_unstable();
    let n = tally.latencies_us.len();
    let at = |q: f64| {
        tally
            .latencies_us
            .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "mode=nts{} aead={} server={} clients={clients} duration={duration:?} requests={n} rps={:.0} p50_us={} p99_us={} losses={} bad_replies={}",
        if replay { "-replay" } else { "" },
        args.aead,
        server.map(|s| s.to_string()).unwrap_or_default(),
        n as f64 / duration.as_secs_f64(),
        at(0.5),
        at(0.99),
        tally.losses,
        tally.bad
    );
    Ok(())
}

impl Tally {
    /// Counts a request sent at `started` as answered, now.
    fn answered(&mut self, started: Instant) {
        let micros = started.elapsed().as_micros();
        self.latencies_us
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
}

/// Sends `request` until a reply comes, again every `resend` (50 tries):
/// the reply's length in `buffer`; each silence counts as a loss.
async fn ask(
    socket: &UdpSocket,
    request: &[u8],
    resend: Duration,
    buffer: &mut [u8],
    tally: &mut Tally,
) -> anyhow::Result<usize> {
    for _ in 0..50 {
        socket.send(request).await?;
        match timeout(resend, socket.recv(buffer)).await {
            Ok(Ok(len)) => return Ok(len),
            Ok(Err(error)) => return Err(error.into()),
            Err(_) => tally.losses += 1,
        }
    }
    bail!("a client gave up")
}

/// When a client starts, how long it runs, how long it waits for a reply.
struct Pace {
    barrier: Arc<Barrier>,
    duration: Duration,
    resend: Duration,
}

async fn client(mut session: Session, socket: UdpSocket, pace: Pace) -> anyhow::Result<Tally> {
    let Pace {
        barrier,
        duration,
        resend,
    } = pace;
    let mut tally = Tally::default();
    let mut buffer = [0u8; 2048];
    let nonce = vec![0x42u8; session.keys.algorithm.nonce_len()];
    barrier.wait().await;
    let end = Instant::now() + duration;
    let mut serial: u64 = 0;
    while Instant::now() < end {
        serial += 1;
        let mut unique_id = [0u8; 32];
        unique_id[..8].copy_from_slice(&serial.to_be_bytes());
        let Some(cookie) = session.cookies.pop() else {
            bail!("no cookie left")
        };
        let sent = NtpTimestamp::from_system_time(SystemTime::now());
        let request = packet::write_request(
            &sntp::client_request(sent),
            &session.keys,
            &cookie,
            0,
            &unique_id,
            &nonce,
        )
        .context("sealing")?;
        let started = Instant::now();
        let len = ask(&socket, &request, resend, &mut buffer, &mut tally).await?;
        match packet::read_reply(&buffer[..len], &session.keys, &unique_id) {
            Ok(reply) => {
                session.cookies.extend(reply.cookies);
                if session.cookies.is_empty() {
                    session.cookies.push(cookie.clone());
                }
                tally.answered(started);
            }
            Err(_) => tally.bad += 1,
        }
    }
    Ok(tally)
}

/// How many sealed requests a `--replay` client takes turns with.
const REPLAYED: usize = 16;

/// `--replay`'s client: [`REPLAYED`] requests sealed before the run, each
/// with its own transmit timestamp and one of the client's cookies, sent in
/// turn for the whole run.
async fn replaying_client(
    session: Session,
    socket: UdpSocket,
    pace: Pace,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut buffer = [0u8; 2048];
    let nonce = vec![0x42u8; session.keys.algorithm.nonce_len()];
    let unique_id = [0x24u8; 32];
    if session.cookies.is_empty() {
        bail!("no cookie");
    }
    let first = NtpTimestamp::from_system_time(SystemTime::now());
    let mut requests = Vec::with_capacity(REPLAYED);
    for (n, cookie) in session.cookies.iter().cycle().take(REPLAYED).enumerate() {
        // Each its own transmit timestamp, as a client's requests have.
        let sent = NtpTimestamp::from_u64(first.to_u64() + n as u64);
        let request = packet::write_request(
            &sntp::client_request(sent),
            &session.keys,
            cookie,
            0,
            &unique_id,
            &nonce,
        )
        .context("sealing")?;
        requests.push(request);
    }
    pace.barrier.wait().await;
    let end = Instant::now() + pace.duration;
    for request in requests.iter().cycle() {
        if Instant::now() >= end {
            break;
        }
        let started = Instant::now();
        let len = ask(&socket, request, pace.resend, &mut buffer, &mut tally).await?;
        let reply = &buffer[..len];
        let echoes = reply.get(24..32) == request.get(40..48);
        let checked = tally.latencies_us.len() % 256 != 0
            || packet::read_reply(reply, &session.keys, &unique_id).is_ok();
        if echoes && checked {
            tally.answered(started);
        } else {
            tally.bad += 1;
        }
    }
    Ok(tally)
}

async fn exchanges(args: &Args, clients: usize, duration: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + duration;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let algorithm = Algorithm::from_id(args.aead).context("--aead: 15 or 30")?;
    let args = Arc::new((args.name.clone(), args.ke, args.ca.clone()));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (done, failed, args) = (Arc::clone(&done), Arc::clone(&failed), Arc::clone(&args));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                let (name, ke, ca) = &*args;
                match key_exchange_offering(
                    name,
                    &[*ke],
                    Some(ca),
                    Duration::from_secs(5),
                    &[algorithm],
                )
                .await
                {
                    Ok(session) if !session.cookies.is_empty() => {
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    }
                    _ => failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let done = done.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "mode=ke server={} clients={clients} duration={duration:?} exchanges={done} per_s={:.0} failed={}",
        args.1,
        done as f64 / duration.as_secs_f64(),
        failed.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

async fn probe(
    args: &Args,
    count: usize,
    gap: Duration,
    plain: bool,
    ntp: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let mut session = exchange(args).await?;
    let server = match (plain, ntp) {
        (true, Some(ntp)) => ntp,
        (true, None) => bail!("--plain needs --ntp"),
        (false, _) => *session.ntp.first().context("no NTP server")?,
    };
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.connect(server).await?;
    let nonce = vec![0x42u8; session.keys.algorithm.nonce_len()];
    let (mut offsets, mut delays, mut lost) = (Vec::new(), Vec::new(), 0);
    let mut buffer = [0u8; 2048];
    for n in 0..count {
        tokio::time::sleep(gap).await;
        let sent = NtpTimestamp::from_system_time(SystemTime::now());
        let mut unique_id = [0u8; 32];
        unique_id[..8].copy_from_slice(&(n as u64).to_be_bytes());
        let request = if plain {
            sntp::client_request(sent).to_vec()
        } else {
            let cookie = session.cookies.pop().context("no cookie left")?;
            packet::write_request(
                &sntp::client_request(sent),
                &session.keys,
                &cookie,
                0,
                &unique_id,
                &nonce,
            )
            .context("sealing")?
        };
        socket.send(&request).await?;
        let Ok(Ok(len)) = timeout(Duration::from_secs(1), socket.recv(&mut buffer)).await else {
            lost += 1;
            continue;
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs_f64();
        let header = if plain {
            buffer[..len].to_vec()
        } else {
            let reply = packet::read_reply(&buffer[..len], &session.keys, &unique_id)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            session.cookies.extend(reply.cookies);
            reply.header.to_vec()
        };
        let sample = sntp::read_reply(&header, sent, now).map_err(|e| anyhow::anyhow!("{e}"))?;
        offsets.push(sample.offset.abs() * 1e6);
        delays.push(sample.delay * 1e6);
    }
    let stats = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            values
                .get(((values.len() as f64 * q) as usize).min(values.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        (at(0.5), at(0.99))
    };
    let (offset_50, offset_99) = stats(&mut offsets);
    let (delay_50, delay_99) = stats(&mut delays);
    println!(
        "mode=probe {} server={server} median_abs_offset_us={offset_50:.0} median_delay_us={delay_50:.0} p99_abs_offset_us={offset_99:.0} p99_delay_us={delay_99:.0} lost={lost}",
        if plain { "plain" } else { "nts" }
    );
    Ok(())
}
