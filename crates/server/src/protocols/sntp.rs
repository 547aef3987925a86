//! SNTP server mode (RFC 4330) on its socket: each request answered with
//! the kernel's receive timestamp and the clock's state, its transmit
//! timestamp written by the outbox just before the reply leaves; a source
//! over its rate limit now and then gets a `RATE` kiss-o'-death. What to
//! answer is `hora_proto::sntp`'s.

use std::time::SystemTime;

use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::ratelimit::Verdict;
use hora_proto::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
use tokio::sync::watch;
use tracing::warn;

use crate::engine::{Context, Protocol};
use crate::log_budget::LogKind;
use crate::stats::Event;
use crate::sys::batch::Outbox;
use crate::sys::Received;

/// The SNTP protocol's state.
#[derive(Debug)]
pub struct Sntp {
    /// What replies say of the clock (`crate::clock_state`).
    clock: watch::Receiver<ServerClock>,
    /// Whether a missing kernel timestamp was already said (once).
    warned_no_timestamp: bool,
}

impl Sntp {
    /// Serves the clock as `clock` describes it.
    pub fn new(clock: watch::Receiver<ServerClock>) -> Sntp {
        Sntp {
            clock,
            warned_no_timestamp: false,
        }
    }

    /// The receive timestamp: the kernel's, taken when the datagram
    /// arrived (the time it then waited in the socket's queue is the
    /// server's, not the network's), else the clock's, counted.
    fn receive_time(&mut self, ctx: &Context<'_>, received: &Received) -> SystemTime {
        if let Some(time) = received.kernel_time {
            ctx.stats.event(Event::KernelTimestamp);
            return time;
        }
        ctx.stats.event(Event::ClockTimestamp);
        if !std::mem::replace(&mut self.warned_no_timestamp, true) {
            warn!(peer = %received.peer, "no kernel receive timestamp; reading the clock instead (counted as clock_timestamps)");
        }
        SystemTime::now()
    }
}

impl Protocol for Sntp {
    fn service(&self) -> Service {
        Service::Sntp
    }

    fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: Received,
        out: &mut Outbox,
    ) -> Option<Outcome> {
        let peer = received.peer;
        // Decide first whether the datagram would be answered: only then
        // does it cost its source a token.
        let request = match sntp::parse_request(datagram) {
            Ok(request) => request,
            Err(error) => {
                if let Some(suppressed) = ctx.log.allow(LogKind::Ignored) {
                    warn!(protocol = "sntp", %peer, len = received.len, suppressed, "ignored: {error}");
                }
                return Some(Outcome::Dropped(DropReason::Invalid));
            }
        };
        let verdict = ctx.live.gate.within_rate(peer, ctx.now.instant(), ctx.log);
        if verdict != Verdict::Allow {
            // SNTP can tell a client to slow down; do so now and then, as
            // chrony does, and otherwise stay silent. Either way the
            // request itself is not answered.
            if verdict.occasionally() {
                let mut reply = [0u8; PACKET_LEN];
                sntp::write_kiss_of_death(&request, sntp::KISS_RATE, &mut reply);
                ctx.stats.event(Event::KissOfDeath);
                out.push(&reply, peer, false);
            }
            return Some(Outcome::Dropped(DropReason::RateLimited));
        }
        let stamp = NtpTimestamp::from_system_time(self.receive_time(ctx, &received));
        let fields = *self.clock.borrow_and_update();
        let mut reply = [0u8; PACKET_LEN];
        // The transmit timestamp is written by the outbox just before the
        // batch is sent: as late as possible.
        sntp::write_reply(&request, &fields, stamp, stamp, &mut reply);
        out.push(&reply, peer, true);
        Some(Outcome::Answered)
    }
}
