//! The standard time protocols: one socket and one receive loop each, sharing
//! the daemon's runtime, counters, logs and shutdown. What to answer is
//! `hora_proto`'s; this module only reads the clock at the right moments.

use std::sync::Arc;
use std::time::SystemTime;

use hora_proto::loop_guard::stateless_may_answer;
use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::ratelimit::Verdict;
use hora_proto::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
use hora_proto::{daytime, rfc868};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::gate::Gate;
use crate::log_budget::{LogBudget, LogKind};
use crate::stats::{Event, Stats};
use crate::sys::batch::{Inbox, Outbox};
use crate::sys::Received;

/// Which standard protocol a socket serves.
#[derive(Debug, Clone)]
pub enum Protocol {
    /// SNTP server mode, describing the clock as the kernel's state and the
    /// settings say (`crate::clock_state`).
    Sntp(watch::Receiver<ServerClock>),
    /// RFC 868: 32-bit seconds since 1900.
    Time,
    /// RFC 867: one line of text.
    Daytime,
}

impl Protocol {
    /// The protocol's name in logs.
    pub fn name(&self) -> &'static str {
        self.service().name()
    }

    /// The service it is, for the counters.
    pub fn service(&self) -> Service {
        match self {
            Protocol::Sntp(_) => Service::Sntp,
            Protocol::Time => Service::Time,
            Protocol::Daytime => Service::Daytime,
        }
    }
}

/// What every standard protocol's loop shares with the rest of the daemon.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The counters.
    pub stats: Arc<Stats>,
    /// Access lists and rate limits.
    pub gate: Arc<Gate>,
    /// The log budgets.
    pub log: Arc<LogBudget>,
    /// The ports of the daemon's own sockets (see [`stateless_may_answer`]).
    pub own_ports: Vec<u16>,
}

/// Answers `protocol` on `socket` until `shutdown` turns true: each time the
/// socket is readable, every datagram queued is read at once, answered in
/// order, and the replies sent at once ([`crate::sys::batch`]).
pub async fn serve(
    socket: UdpSocket,
    mut protocol: Protocol,
    shared: Shared,
    mut shutdown: watch::Receiver<bool>,
) {
    let (stats, log) = (&*shared.stats, &*shared.log);
    let name = protocol.name();
    let mut inbox = Inbox::default();
    let mut outbox = Outbox::default();
    let mut warned_no_timestamp = false;
    loop {
        let received = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            received = inbox.receive(&socket) => received,
        };
        let count = match received {
            Ok(count) => count,
            Err(error) => {
                stats.event(Event::ReceiveError);
                if let Some(suppressed) = log.allow(LogKind::ReceiveError) {
                    warn!(protocol = name, %error, suppressed, "receive failed");
                }
                continue;
            }
        };
        for index in 0..count {
            let Some((datagram, received)) = inbox.get(index) else {
                continue;
            };
            let outcome = answer(
                &mut protocol,
                &shared,
                datagram,
                received,
                &mut outbox,
                &mut warned_no_timestamp,
            );
            stats.datagram(protocol.service(), outcome);
        }
        let flushed = outbox.flush(&socket).await;
        for _ in 0..flushed.sent {
            stats.event(Event::Sent);
        }
        for _ in 0..flushed.failed {
            stats.event(Event::SendError);
        }
        if flushed.failed > 0 {
            if let Some(suppressed) = log.allow(LogKind::SendError) {
                debug!(
                    protocol = name,
                    failed = flushed.failed,
                    suppressed,
                    "replies not sent"
                );
            }
        }
        // Two units of the runtime's cooperative budget per datagram, as its
        // receive and send took before batching: a flood on this socket
        // yields to the other loops and the idle timers as often as before.
        for _ in 0..(2 * count) {
            tokio::task::consume_budget().await;
        }
    }
}

/// Decides the answer to one datagram and queues it in `outbox`; returns
/// the datagram's outcome.
fn answer(
    protocol: &mut Protocol,
    shared: &Shared,
    datagram: &[u8],
    received: Received,
    outbox: &mut Outbox,
    warned_no_timestamp: &mut bool,
) -> Outcome {
    let Shared {
        stats,
        gate,
        log,
        own_ports,
    } = shared;
    let Received {
        len,
        peer,
        kernel_time,
    } = received;
    let name = protocol.name();
    if !gate.admits(peer, log) {
        return Outcome::Dropped(DropReason::Denied);
    }
    // Decide first whether the datagram would be answered: only then does
    // it cost its source a token.
    let ignored = match protocol {
        Protocol::Sntp(_) => match sntp::parse_request(datagram) {
            Ok(request) => Ok(Some(request)),
            Err(error) => Err((DropReason::Invalid, error.to_string())),
        },
        Protocol::Time | Protocol::Daytime => {
            if stateless_may_answer(peer.port(), own_ports, datagram) {
                Ok(None)
            } else {
                Err((
                    DropReason::Loop,
                    "a server's reply, or from a port that answers unasked".to_owned(),
                ))
            }
        }
    };
    let sntp_request = match ignored {
        Ok(request) => request,
        Err((reason, text)) => {
            if let Some(suppressed) = log.allow(LogKind::Ignored) {
                warn!(protocol = name, %peer, len, suppressed, "ignored: {text}");
            }
            return Outcome::Dropped(reason);
        }
    };
    let verdict = gate.within_rate(peer, std::time::Instant::now(), log);
    if verdict != Verdict::Allow {
        // SNTP can tell a client to slow down; do so now and then, as chrony
        // does, and otherwise stay silent. Either way the request itself is
        // not answered.
        if let (Some(request), true) = (sntp_request, verdict.occasionally()) {
            let mut reply = [0u8; PACKET_LEN];
            sntp::write_kiss_of_death(&request, sntp::KISS_RATE, &mut reply);
            stats.event(Event::KissOfDeath);
            outbox.push(&reply, peer, false);
        }
        return Outcome::Dropped(DropReason::RateLimited);
    }
    match (protocol, sntp_request) {
        (Protocol::Sntp(clock), Some(request)) => {
            // The receive timestamp is the kernel's, taken when the datagram
            // arrived: the time it then waited in the socket's queue is the
            // server's, not the network's.
            let received = match kernel_time {
                Some(time) => {
                    stats.event(Event::KernelTimestamp);
                    time
                }
                None => {
                    stats.event(Event::ClockTimestamp);
                    if !std::mem::replace(warned_no_timestamp, true) {
                        warn!(%peer, "no kernel receive timestamp; reading the clock instead (counted as clock_timestamps)");
                    }
                    SystemTime::now()
                }
            };
            let fields = *clock.borrow_and_update();
            let mut reply = [0u8; PACKET_LEN];
            let stamp = NtpTimestamp::from_system_time(received);
            // The transmit timestamp is written by the outbox just before
            // the batch is sent: as late as possible.
            sntp::write_reply(&request, &fields, stamp, stamp, &mut reply);
            outbox.push(&reply, peer, true);
        }
        (Protocol::Time, _) => outbox.push(&rfc868::reply(SystemTime::now()), peer, false),
        (Protocol::Daytime, _) => {
            let line = daytime::reply(&chrono::Local::now());
            outbox.push(line.as_bytes(), peer, false);
        }
        // A parsed SNTP request always comes with the SNTP protocol.
        (Protocol::Sntp(_), None) => return Outcome::Dropped(DropReason::Invalid),
    }
    Outcome::Answered
}
