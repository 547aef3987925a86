//! SNTP server mode (RFC 4330) on its socket: each request answered with
//! the kernel's receive timestamp and the clock's state, its transmit
//! timestamp written by the outbox just before the reply leaves; a source
//! over its rate limit now and then gets a `RATE` kiss-o'-death. With NTS
//! on, an NTS request goes to [`crate::protocols::nts`] (and, with `[nts]
//! require`, a plain one is dropped). What to answer is `hora_proto::sntp`'s
//! and `hora_proto::nts`'s.
//!
//! Interleaved mode (RFC 9769): a plain request naming one of our earlier
//! replies gets that reply's kernel transmit time, from the client log
//! (`hora_proto::interleave`); each such reply is logged in turn, and the
//! outbox reads back when it left ([`Protocol::transmitted`]).

use std::sync::Arc;
use std::time::SystemTime;

use hora_proto::interleave::{ClientLog, Earlier};
use hora_proto::nts::packet::{self, PacketError, Parsed};
use hora_proto::nts::ring::KeyRing;
use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::ratelimit::Verdict;
use hora_proto::sntp::{self, ClientRequest, NtpTimestamp, ServerClock, PACKET_LEN};
use tokio::sync::watch;
use tracing::warn;

use crate::engine::{Context, Protocol};
use crate::live::Live;
use crate::log_budget::LogKind;
use crate::outbox::Outbox;
use crate::protocols::nts::{self, HeldKeys};
use crate::stats::{Counters, Event};
use crate::sys::transmit_stamps::{Sent, TransmitTimestamps};
use crate::sys::Received;

/// The SNTP protocol's state.
#[derive(Debug)]
pub struct Sntp {
    /// What replies say of the clock (`crate::clock_state`).
    clock: watch::Receiver<ServerClock>,
    /// The last of it read: a request reads this copy, and the channel
    /// only when it changed (its read lock is shared by every worker).
    fields: ServerClock,
    /// Whether a missing kernel timestamp was already said (once).
    warned_no_timestamp: bool,
    /// The cookie keys, when NTS is on.
    nts: Option<HeldKeys>,
    /// Interleaved mode's log of replies and when they left.
    log: ClientLog,
    /// What its loop takes at start: kernel transmit timestamps wanted.
    transmit: Option<TransmitTimestamps>,
}

impl Sntp {
    /// Serves the clock as `clock` describes it; NTS too when `keys` are
    /// given. Replies whose kernel transmit time is wanted go out on
    /// `beside` when given ([`crate::sys::transmit_stamps::open_beside`]).
    pub fn new(
        clock: watch::Receiver<ServerClock>,
        keys: Option<watch::Receiver<Arc<KeyRing>>>,
        beside: Option<std::net::UdpSocket>,
    ) -> Sntp {
        let fields = *clock.borrow();
        Sntp {
            fields,
            clock,
            warned_no_timestamp: false,
            nts: keys.map(HeldKeys::new),
            log: ClientLog::new(0),
            transmit: Some(TransmitTimestamps { beside }),
        }
    }

    /// The reply to a plain request that arrived at `received`: basic, or
    /// interleaved when it names a logged reply whose kernel time is known.
    /// A request in interleaved mode has its own reply logged, with the
    /// kernel asked when it leaves.
    fn answer_plain(
        &mut self,
        ctx: &Context<'_>,
        request: &ClientRequest,
        fields: &ServerClock,
        received: NtpTimestamp,
        peer: std::net::SocketAddr,
        out: &mut Outbox,
    ) {
        let mut reply = [0u8; PACKET_LEN];
        let Some(origin) = request
            .interleaved_origin()
            .filter(|_| self.log.capacity() > 0)
        else {
            // The transmit timestamp is written by the outbox just before
            // the batch is sent: as late as possible.
            sntp::write_reply(request, fields, received, received, &mut reply);
            out.push(&reply, peer, true);
            return;
        };
        match self.log.take(origin) {
            Earlier::Sent(transmit) => {
                ctx.stats.event(Event::InterleavedAnswered);
                sntp::write_interleaved_reply(request, fields, received, transmit, &mut reply);
                out.push_kernel_stamped(&reply, peer, false);
            }
            earlier => {
                ctx.stats.event(if earlier == Earlier::NoTransmitTime {
                    Event::InterleavedMissingTransmit
                } else {
                    Event::InterleavedNotLogged
                });
                sntp::write_reply(request, fields, received, received, &mut reply);
                out.push_kernel_stamped(&reply, peer, true);
            }
        }
        self.log.log(sntp::receive_flagged(received).to_u64());
    }

    /// Reads a datagram: a plain request, an NTS one (only when NTS is on;
    /// else its fields are ignored and it is answered plain, as before), or
    /// neither (the outcome to count).
    fn read<'a>(
        &self,
        ctx: &Context<'_>,
        datagram: &'a [u8],
        received: &Received,
    ) -> Result<Parsed<'a>, Outcome> {
        let ignored = |error: &dyn std::fmt::Display| {
            if let Some(suppressed) = ctx.log.allow(LogKind::Ignored) {
                warn!(protocol = "sntp", peer = %received.peer, len = received.len, suppressed, "ignored: {error}");
            }
        };
        if self.nts.is_none() {
            return sntp::parse_request(datagram)
                .map(Parsed::Plain)
                .map_err(|error| {
                    ignored(&error);
                    Outcome::Dropped(DropReason::Invalid)
                });
        }
        match packet::read_request(datagram) {
            Ok(Parsed::Plain(_)) if ctx.live.nts.as_ref().is_some_and(|nts| nts.require) => {
                Err(Outcome::Dropped(DropReason::Unauthenticated))
            }
            Ok(parsed) => Ok(parsed),
            Err(PacketError::Sntp(error)) => {
                ignored(&error);
                Err(Outcome::Dropped(DropReason::Invalid))
            }
            Err(error @ PacketError::Malformed(_)) => {
                ignored(&error);
                ctx.stats.event(Event::NtsMalformed);
                Err(Outcome::Dropped(DropReason::Unauthenticated))
            }
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
        let parsed = match self.read(ctx, datagram, &received) {
            Ok(parsed) => parsed,
            Err(outcome) => return Some(outcome),
        };
        let request = match &parsed {
            Parsed::Plain(request) => *request,
            Parsed::Nts(request) => request.header,
        };
        let verdict = ctx
            .live
            .gate
            .within_rate(ctx.worker, peer, ctx.now.instant(), ctx.log);
        if verdict != Verdict::Allow && matches!(parsed, Parsed::Nts(_)) {
            // An unauthenticated RATE kiss means nothing to an NTS client
            // (RFC 8915, 5.7): silence.
            return Some(Outcome::Dropped(DropReason::RateLimited));
        }
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
        let received_at = self.receive_time(ctx, &received);
        if self.clock.has_changed().unwrap_or(false) {
            self.fields = *self.clock.borrow_and_update();
        }
        let fields = self.fields;
        if let (Parsed::Nts(request), Some(keys)) = (&parsed, &mut self.nts) {
            return Some(nts::answer(
                keys,
                ctx,
                request,
                &fields,
                received_at,
                &received,
                out,
            ));
        }
        let stamp = NtpTimestamp::from_system_time(received_at);
        self.answer_plain(ctx, &request, &fields, stamp, peer, out);
        Some(Outcome::Answered)
    }

    fn transmit_timestamps(&mut self) -> Option<TransmitTimestamps> {
        self.transmit.take()
    }

    fn transmitted(&mut self, stats: &Counters, sent: &[Sent]) {
        for reply in sent {
            stats.event(Event::KernelTransmit);
            let receive = u64::from_be_bytes(
                reply.reply[sntp::RECEIVE_FIELD]
                    .try_into()
                    .unwrap_or_default(),
            );
            let transmit = NtpTimestamp::from_system_time(reply.at).to_u64();
            self.log.sent(receive, transmit);
        }
    }

    fn reconfigure(&mut self, live: &Live) {
        // Each worker logs its own sources' replies: the configured
        // entries are over them all.
        let entries = live.config.sntp.client_log.div_ceil(live.workers.max(1));
        if entries != self.log.capacity() {
            self.log = ClientLog::new(entries);
        }
    }
}
