//! NTS-authenticated SNTP (RFC 8915, section 5) on the SNTP socket: an
//! NTS request's cookie opened with the keys held, its authenticator
//! checked, and the reply sealed with fresh cookies; a cookie that does
//! not open, or a request that does not authenticate, gets a NTSN
//! kiss-o'-death and never the time. What each field means is
//! `hora_proto::nts::packet`'s; [`crate::protocols::sntp`] sends NTS
//! requests here.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hora_proto::nts::cookie::{self, CookieCipher, NONCE_LEN};
use hora_proto::nts::packet::{self, Request, MAX_PACKET};
use hora_proto::nts::ring::KeyRing;
use hora_proto::outcome::{DropReason, Outcome};
use hora_proto::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
use rand::RngCore as _;
use tokio::sync::watch;
use tracing::debug;

use crate::engine::Context;
use crate::log_budget::LogKind;
use crate::outbox::Outbox;
use crate::stats::Event;
use crate::sys::Received;

/// The cookie keys as the SNTP loop holds them: each keyed once (not per
/// request), set up anew when the key file's task publishes new ones.
#[derive(Debug)]
pub struct HeldKeys {
    published: watch::Receiver<Arc<KeyRing>>,
    held: Arc<KeyRing>,
    ciphers: Vec<CookieCipher>,
}

impl HeldKeys {
    /// Holds what `published` publishes.
    pub fn new(mut published: watch::Receiver<Arc<KeyRing>>) -> HeldKeys {
        let held = Arc::clone(&published.borrow_and_update());
        let ciphers = ciphers(&held);
        HeldKeys {
            published,
            held,
            ciphers,
        }
    }

    /// Takes up new keys if any were published (an atomic load if not).
    fn refresh(&mut self) {
        if self.published.has_changed().unwrap_or(false) {
            self.held = Arc::clone(&self.published.borrow_and_update());
            self.ciphers = ciphers(&self.held);
        }
    }
}

fn ciphers(ring: &KeyRing) -> Vec<CookieCipher> {
    ring.opening()
        .iter()
        .filter_map(CookieCipher::new)
        .collect()
}

/// Answers a request whose cookie did not open or that did not
/// authenticate with a NTSN kiss (RFC 8915, 5.7), logged within budget.
fn nak(
    ctx: &Context<'_>,
    request: &Request<'_>,
    peer: std::net::SocketAddr,
    reject: &dyn std::fmt::Display,
    out: &mut Outbox,
) -> Outcome {
    if let Some(suppressed) = ctx.log.allow(LogKind::Ignored) {
        debug!(protocol = "nts", %peer, suppressed, "NTSN: {reject}");
    }
    let mut reply = [0u8; MAX_PACKET];
    let len = packet::write_nak(request, &mut reply);
    out.push(&reply[..len], peer, false);
    ctx.stats.event(Event::NtsNak);
    Outcome::Answered
}

/// Answers the NTS `request` from `received.peer`, received at
/// `received_at`: authenticated time, or a NTSN kiss.
pub fn answer(
    keys: &mut HeldKeys,
    ctx: &Context<'_>,
    request: &Request<'_>,
    clock: &ServerClock,
    received_at: SystemTime,
    received: &Received,
    out: &mut Outbox,
) -> Outcome {
    let peer = received.peer;
    keys.refresh();
    let mut reply = [0u8; MAX_PACKET];
    let authenticated = match packet::authenticate_with(request, &mut keys.ciphers) {
        Ok(authenticated) => authenticated,
        Err(reject) => return nak(ctx, request, peer, &reject, out),
    };
    let now = ctx
        .now
        .wall
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sealing = keys.held.sealing(now).map(|key| key.id);
    let Some(key) = keys
        .ciphers
        .iter_mut()
        .find(|cipher| Some(cipher.id) == sealing)
    else {
        return Outcome::Dropped(DropReason::Unauthenticated);
    };
    // The transmit timestamp is authenticated: the outbox writes it just
    // before the batch leaves, then seals the reply.
    let mut header = [0u8; PACKET_LEN];
    let received_stamp = NtpTimestamp::from_system_time(received_at);
    sntp::write_reply(
        &request.header,
        clock,
        received_stamp,
        received_stamp,
        &mut header,
    );
    let mut rng = rand::rng();
    let mut nonce = [0u8; 16];
    let nonce = &mut nonce[..authenticated.keys.algorithm.nonce_len()];
    rng.fill_bytes(nonce);
    let prepared = packet::prepare_reply(
        request,
        &authenticated,
        &header,
        nonce,
        |keys, room| {
            let mut cookie_nonce = [0u8; NONCE_LEN];
            rng.fill_bytes(&mut cookie_nonce);
            cookie::seal_with(key, keys, &cookie_nonce, room)
        },
        &mut reply,
    );
    match prepared {
        Some(unsealed) => {
            out.push_nts(&reply[..unsealed.len], peer, authenticated.keys, unsealed);
            ctx.stats.event(Event::NtsAnswered);
            ctx.stats.add(Event::NtsCookie, unsealed.cookies as u64);
            Outcome::Answered
        }
        None => Outcome::Dropped(DropReason::Unauthenticated),
    }
}
