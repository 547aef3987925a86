//! The standard time protocols: one socket and one receive loop each, sharing
//! the daemon's runtime, counters, logs and shutdown. What to answer is
//! `hora_proto`'s; this module only reads the clock at the right moments.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hora_proto::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
use hora_proto::{daytime, rfc868};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::gate::{Admission, Gate};
use crate::stats::Stats;
use crate::warn_budget::WarnBudget;

/// Which standard protocol a socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SNTP server mode, describing the clock as configured.
    Sntp(ServerClock),
    /// RFC 868: 32-bit seconds since 1900.
    Time,
    /// RFC 867: one line of text.
    Daytime,
}

impl Protocol {
    /// The protocol's name in logs.
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Sntp(_) => "sntp",
            Protocol::Time => "time",
            Protocol::Daytime => "daytime",
        }
    }
}

/// Answers `protocol` on `socket` until `shutdown` turns true.
pub async fn serve(
    socket: UdpSocket,
    protocol: Protocol,
    stats: Arc<Stats>,
    gate: Arc<Gate>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warnings = WarnBudget::new(5, Duration::from_secs(1), Instant::now());
    // Big enough to tell a too-long datagram from a full one; SNTP only
    // reads the header.
    let mut buffer = [0u8; 1500];
    loop {
        let (len, peer) = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    Stats::bump(&stats.dropped);
                    if let Some(suppressed) = warnings.allow(Instant::now()) {
                        warn!(protocol = protocol.name(), %error, suppressed, "receive failed");
                    }
                    continue;
                }
            },
        };
        match gate.judge(peer, std::time::Instant::now(), &stats) {
            Admission::Admit => {}
            Admission::Denied => {
                Stats::bump(&stats.dropped);
                continue;
            }
            Admission::Limited(verdict) => {
                // SNTP can tell a client to slow down; do so now and then,
                // as chrony does, and otherwise stay silent.
                let kiss = match protocol {
                    Protocol::Sntp(_) if verdict.occasionally() => {
                        sntp::parse_request(&buffer[..len]).ok()
                    }
                    _ => None,
                };
                match kiss {
                    Some(request) => {
                        let mut reply = [0u8; PACKET_LEN];
                        sntp::write_kiss_of_death(&request, sntp::KISS_RATE, &mut reply);
                        Stats::bump(&stats.kiss_of_death);
                        send(&socket, &stats, &reply, peer).await;
                    }
                    None => Stats::bump(&stats.dropped),
                }
                continue;
            }
        }
        match protocol {
            Protocol::Sntp(clock) => {
                // The receive timestamp: as soon after arrival as we can.
                let received = NtpTimestamp::from_system_time(SystemTime::now());
                match sntp::parse_request(&buffer[..len]) {
                    Ok(request) => {
                        let mut reply = [0u8; PACKET_LEN];
                        let transmitted = NtpTimestamp::from_system_time(SystemTime::now());
                        sntp::write_reply(&request, &clock, received, transmitted, &mut reply);
                        Stats::bump(&stats.sntp_requests);
                        send(&socket, &stats, &reply, peer).await;
                    }
                    Err(error) => {
                        Stats::bump(&stats.ntp_ignored);
                        Stats::bump(&stats.dropped);
                        if let Some(suppressed) = warnings.allow(Instant::now()) {
                            warn!(%peer, len, suppressed, "ignored on sntp: {error}");
                        }
                    }
                }
            }
            Protocol::Time => {
                Stats::bump(&stats.rfc868_requests);
                send(&socket, &stats, &rfc868::reply(SystemTime::now()), peer).await;
            }
            Protocol::Daytime => {
                Stats::bump(&stats.daytime_requests);
                let line = daytime::reply(&chrono::Local::now());
                send(&socket, &stats, line.as_bytes(), peer).await;
            }
        }
    }
}

async fn send(socket: &UdpSocket, stats: &Stats, bytes: &[u8], peer: SocketAddr) {
    if let Err(error) = socket.send_to(bytes, peer).await {
        Stats::bump(&stats.send_errors);
        debug!(%peer, %error, "send failed");
    }
}
