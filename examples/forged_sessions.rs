//! Forged seed sessions that hold the session table: each forged source
//! (its own address in 127.80.0.0 and up) sends `login`, then `1`, then `1`
//! again and again, never reading an answer (a forger off the path sees
//! none), while a real client logs in every 100 ms and counts the menus and
//! the refusals (RELIABILITY.md, "Forged sessions against the table").
//! Loopback only; bounded in sources and time. Needs a raw socket (root).
//!
//! ```sh
//! target/release/horad --config /dev/null --bind 127.0.0.1:5109 --metrics-bind 127.0.0.1:9979 &
//! sudo target/release/examples/forged_sessions --server 127.0.0.1:5109 \
//!     --sessions 12000 --rate 1500 --duration 60s
//! ```
//!
//! The forged datagrams form one stream: each session's `login` with its `1`
//! right behind (so it is established at once, never displaced), at
//! `--fill-rate` a second, then `1` from each session in turn, round after
//! round, at `--rate`. Each
//! session is refreshed every `sessions / rate` seconds; under the daemon's
//! idle timeout the sessions stay open
//! (and, having asked for the time, are never displaced), so to hold a
//! table of `max_sessions` a forger needs `sessions >= max_sessions` and
//! `rate > max_sessions / idle_timeout`. The real client keeps each of its
//! sessions (a new one each time, as a new user would), so they idle out.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use hora_proto::wire::{LOGIN_MENU, REFUSED, TIME_PREFIX};
use socket2::{Domain, Protocol, Socket, Type};

#[derive(Debug, Parser)]
struct Args {
    /// The daemon's seed socket (a loopback IPv4 address)
    #[arg(long)]
    server: SocketAddrV4,
    /// Forged sessions, each from its own address (at most 4,000,000)
    #[arg(long, default_value_t = 12_000)]
    sessions: u32,
    /// Forged datagrams a second once every session is open: the refreshes
    #[arg(long, default_value_t = 1_500)]
    rate: u32,
    /// Forged datagrams a second while the sessions open (two each)
    #[arg(long, default_value_t = 20_000)]
    fill_rate: u32,
    /// How long the forgery runs (at most 600 s)
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How often the real client logs in
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    every: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.server.ip().is_loopback() {
        bail!("only loopback addresses are forged to");
    }
    if args.sessions == 0 || args.sessions > 4_000_000 || args.rate == 0 || args.fill_rate == 0 {
        bail!("1 to 4,000,000 sessions and a rate of 1 or more");
    }
    if args.duration > Duration::from_secs(600) {
        bail!("at most 600 s");
    }
    // IPPROTO_RAW: this program writes the IPv4 header (the kernel fills in
    // its length, id and checksum), so any source address will do.
    let raw = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(255)))
        .context("a raw socket (run as root)")?;
    let running = Arc::new(AtomicBool::new(true));
    let probe = {
        let (running, server, every) = (running.clone(), args.server, args.every);
        std::thread::spawn(move || log_in_now_and_then(server, every, &running))
    };
    let start = Instant::now();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut packet = Vec::with_capacity(64);
    while start.elapsed() < args.duration {
        let due = due(&args, start.elapsed().as_secs_f64());
        if sent >= due {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let upto = due.min(sent + 1_000);
        for k in sent..upto {
            let (session, payload) = datagram(k, args.sessions);
            let from = SocketAddrV4::new(Ipv4Addr::from(0x7F50_0000 + session), 40_000);
            forged(&mut packet, from, args.server, payload);
            let to = SocketAddr::V4(SocketAddrV4::new(*args.server.ip(), 0));
            if raw.send_to(&packet, &to.into()).is_err() {
                failed += 1;
            }
        }
        sent = upto;
    }
    let seconds = start.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let (menus, refused, silent) = probe
        .join()
        .map_err(|_| anyhow::anyhow!("the real client panicked"))??;
    println!(
        "forged: {sent} datagrams in {seconds:.1} s ({:.0}/s, {failed} not sent), {} sessions \
         refreshed every {:.1} s; real logins: {menus} served (menu, then the time), {refused} refused, {silent} unanswered",
        sent as f64 / seconds,
        args.sessions,
        f64::from(args.sessions) / f64::from(args.rate),
    );
    Ok(())
}

/// How many of the stream's datagrams are due `seconds` into the run: the
/// opening ones at the fill rate, then the refreshes at the rate.
fn due(args: &Args, seconds: f64) -> u64 {
    let opening = 2.0 * f64::from(args.sessions);
    let fill_time = opening / f64::from(args.fill_rate);
    if seconds < fill_time {
        (seconds * f64::from(args.fill_rate)) as u64
    } else {
        (opening + (seconds - fill_time) * f64::from(args.rate)) as u64
    }
}

/// The forged stream's datagram `k`: the session it comes from and what
/// it says. First each session's `login` and, right behind it, its `1`;
/// then `1` from each in turn.
fn datagram(k: u64, sessions: u32) -> (u32, &'static [u8]) {
    let sessions = u64::from(sessions);
    if k < 2 * sessions {
        let payload: &[u8] = if k % 2 == 0 { b"login" } else { b"1" };
        ((k / 2) as u32, payload)
    } else {
        (((k - 2 * sessions) % sessions) as u32, b"1")
    }
}

/// An IPv4 datagram from `from` to `to` carrying `payload`, in `packet`.
fn forged(packet: &mut Vec<u8>, from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) {
    packet.clear();
    // IPv4: version 4, 5 words; length, id and checksum left to the kernel.
    packet.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0]);
    packet.extend_from_slice(&from.ip().octets());
    packet.extend_from_slice(&to.ip().octets());
    packet.extend_from_slice(&from.port().to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    let udp_len = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    packet.extend_from_slice(&udp_len.to_be_bytes());
    packet.extend_from_slice(&[0, 0]); // No UDP checksum: allowed over IPv4.
    packet.extend_from_slice(payload);
}

/// A real client (127.0.0.50) logging in every `every` until `running`
/// turns false, from a new port each time, asking the time once: how many
/// logins got the menu and then the time, how many "Servidor lotado", how
/// many nothing within a second.
fn log_in_now_and_then(
    server: SocketAddrV4,
    every: Duration,
    running: &AtomicBool,
) -> anyhow::Result<(u32, u32, u32)> {
    let (mut menus, mut refused, mut silent) = (0, 0, 0);
    let mut buffer = [0u8; 2048];
    while running.load(Ordering::Relaxed) {
        let next = Instant::now() + every;
        let client = UdpSocket::bind("127.0.0.50:0")?;
        client.set_read_timeout(Some(Duration::from_secs(1)))?;
        client.send_to(b"login", server)?;
        match client.recv(&mut buffer) {
            Ok(len) if &buffer[..len] == LOGIN_MENU.as_bytes() => {
                // A user asks the time, as the menu offers.
                client.send_to(b"1", server)?;
                match client.recv(&mut buffer) {
                    Ok(len) if buffer[..len].starts_with(TIME_PREFIX.as_bytes()) => menus += 1,
                    _ => silent += 1,
                }
            }
            Ok(len) if &buffer[..len] == REFUSED.as_bytes() => refused += 1,
            _ => silent += 1,
        }
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok((menus, refused, silent))
}
