//! Roughtime (RFC 10049) on its own socket: each request of a batch read
//! at once is checked as it comes ([`hora_proto::roughtime::request`]) and
//! held; when the batch is done, the held requests of each version become
//! one Merkle tree whose root is signed once, and each gets its answer
//! ([`hora_proto::roughtime::response`]). The online key is delegated by
//! the long-term key and replaced halfway through its delegation; the
//! radius is the kernel's maximum error, read once a second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hora_proto::host_clock::HostClock;
use hora_proto::outcome::{DropReason, Outcome, Service};
use hora_proto::ratelimit::Verdict;
use hora_proto::roughtime::keys::{LongTermKey, OnlineKey};
use hora_proto::roughtime::request::{self, Accepted, RequestError};
use hora_proto::roughtime::response::{Responder, Time};
use hora_proto::roughtime::version::Version;
use rand::RngCore as _;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::engine::{Context, Protocol};
use crate::log_budget::LogKind;
use crate::outbox::Outbox;
use crate::stats::Event;
use crate::sys::destination::Local;
use crate::sys::Received;

/// Roughtime on one worker's socket.
#[derive(Debug)]
pub struct Roughtime {
    long_term: Arc<LongTermKey>,
    /// The online key, made at the first batch and replaced halfway.
    online: Option<OnlineKey>,
    /// The kernel's clock state (the radius).
    host: watch::Receiver<HostClock>,
    /// This batch's requests, and where each answer goes.
    accepted: Vec<Accepted>,
    to: Vec<(SocketAddr, Option<Local>)>,
    responder: Responder,
}

impl Roughtime {
    /// Serves with `long_term`'s delegation, the radius from `host`.
    pub fn new(long_term: Arc<LongTermKey>, host: watch::Receiver<HostClock>) -> Roughtime {
        Roughtime {
            long_term,
            online: None,
            host,
            accepted: Vec::new(),
            to: Vec::new(),
            responder: Responder::default(),
        }
    }

    /// Delegates a new online key when none signs at `now`: at the first
    /// batch, halfway through the held one's delegation, or when the clock
    /// stepped back before its start.
    fn rotate_if_due(&mut self, ctx: &Context<'_>, now: SystemTime) {
        let seconds = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if self
            .online
            .as_ref()
            .is_some_and(|key| key.signs_at(seconds))
        {
            return;
        }
        let delegation = ctx.live.config.roughtime.delegation.as_secs();
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        match self
            .long_term
            .delegate(&seed, seconds, seconds + delegation)
        {
            Ok(key) => {
                debug!(
                    mint = key.mint,
                    maxt = key.maxt,
                    "Roughtime online key delegated"
                );
                ctx.stats.event(Event::RoughtimeDelegation);
                self.online = Some(key);
            }
            Err(error) => warn!(%error, "cannot delegate a Roughtime online key"),
        }
    }
}

/// The counter of a request's fate.
fn event_of(result: &Result<Accepted, RequestError>) -> Event {
    match result {
        Ok(accepted) if accepted.profile.version == Version::RFC => Event::RoughtimeRfc,
        Ok(_) => Event::RoughtimeDraft,
        Err(RequestError::Undersized) => Event::RoughtimeUndersized,
        Err(RequestError::Malformed(_) | RequestError::BadTag(_)) => Event::RoughtimeMalformed,
        Err(RequestError::Version) => Event::RoughtimeVersion,
        Err(RequestError::OtherServer) => Event::RoughtimeOtherServer,
    }
}

impl Protocol for Roughtime {
    fn service(&self) -> Service {
        Service::Roughtime
    }

    fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: Received,
        _out: &mut Outbox,
    ) -> Option<Outcome> {
        let peer = received.peer;
        let verdict = ctx
            .live
            .gate
            .within_rate(ctx.worker, peer, ctx.now.instant(), ctx.log);
        if verdict != Verdict::Allow {
            return Some(Outcome::Dropped(DropReason::RateLimited));
        }
        let result = request::parse(datagram, self.long_term.server_hash()).map(|r| r.accept());
        ctx.stats.event(event_of(&result));
        match result {
            Ok(accepted) => {
                self.accepted.push(accepted);
                self.to.push((peer, received.local));
                Some(Outcome::Answered)
            }
            Err(error) => {
                if let Some(suppressed) = ctx.log.allow(LogKind::InvalidDatagram) {
                    warn!(protocol = "roughtime", %peer, len = received.len, %error, suppressed, "invalid Roughtime request dropped");
                }
                Some(Outcome::Dropped(DropReason::Invalid))
            }
        }
    }

    fn batch_done(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        if self.accepted.is_empty() {
            return;
        }
        let max_error = self.host.borrow().max_error;
        let time = Time::at(
            ctx.now.wall,
            max_error,
            ctx.live.config.roughtime.min_radius,
        );
        self.rotate_if_due(ctx, ctx.now.wall);
        let Roughtime {
            online,
            accepted,
            to,
            responder,
            ..
        } = self;
        if let Some(online) = online {
            let signatures = responder.answer(online, accepted, time, |index, packet| {
                if let Some((peer, local)) = to.get(index) {
                    out.push_from(packet, *peer, *local);
                }
            });
            ctx.stats.add(Event::RoughtimeSignature, signatures as u64);
        }
        accepted.clear();
        to.clear();
    }
}
