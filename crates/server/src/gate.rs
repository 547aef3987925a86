//! The gate between a datagram and its answer, shared by every socket: the
//! access lists, before any protocol sees the datagram, and the per-source
//! rate limit, taken only once a protocol has decided to answer (ntpd-rs's
//! order: deny, allow, rate limit, answer). A datagram that gets no answer
//! (garbage, a forged reply) costs its source no token, so garbage forged
//! from a client's address can't spend that client's budget.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Instant;

use hora_proto::access::AccessList;
use hora_proto::ratelimit::{RateLimit, RateLimiter, Verdict};
use tracing::info;

use crate::config::Config;
use crate::log_budget::{LogBudget, LogKind};

/// The access lists and the rate limiter. A reload swaps either in place
/// ([`Gate::reconfigure`]); every socket sees the new rules at its next
/// datagram.
#[derive(Debug)]
pub struct Gate {
    access: RwLock<AccessList>,
    limiter: Mutex<Option<RateLimiter>>,
}

fn access_list(config: &Config) -> AccessList {
    AccessList::new(config.access.allow.clone(), config.access.deny.clone())
}

fn rate_limiter(config: &Config, now: Instant) -> Option<RateLimiter> {
    let limit = &config.ratelimit;
    limit.enabled.then(|| {
        let rate = RateLimit {
            rate: limit.rate,
            burst: limit.burst,
        };
        RateLimiter::new(rate, limit.table_size, now)
    })
}

impl Gate {
    /// The gate the configuration describes, its buckets full as of `now`.
    pub fn new(config: &Config, now: Instant) -> Self {
        Gate {
            access: RwLock::new(access_list(config)),
            limiter: Mutex::new(rate_limiter(config, now)),
        }
    }

    /// Applies a reloaded configuration: the access lists always, the rate
    /// limiter only if its settings changed (a new table, every bucket full).
    pub fn reconfigure(&self, old: &Config, new: &Config, now: Instant) {
        *self.access.write().unwrap_or_else(PoisonError::into_inner) = access_list(new);
        if old.ratelimit != new.ratelimit {
            *self.limiter.lock().unwrap_or_else(PoisonError::into_inner) = rate_limiter(new, now);
        }
    }

    /// Whether datagrams from `ip` may be answered at all.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.access
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .permits(ip)
    }

    /// Takes a token from `ip`'s bucket for an answer at `now`.
    pub fn take_token(&self, ip: IpAddr, now: Instant) -> Verdict {
        match &mut *self.limiter.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Verdict::Allow,
            Some(limiter) => limiter.check(ip, now),
        }
    }

    /// [`Gate::permits`], logging (under the log budget) a source it turns
    /// away; the caller counts the datagram as dropped, denied.
    pub fn admits(&self, peer: SocketAddr, log: &LogBudget) -> bool {
        let permitted = self.permits(peer.ip());
        if !permitted {
            if let Some(suppressed) = log.allow(LogKind::Denied) {
                info!(%peer, suppressed, "source not allowed: dropped");
            }
        }
        permitted
    }

    /// [`Gate::take_token`], logging (under the log budget) an answer it
    /// holds back. The caller drops the datagram (counted as rate limited)
    /// or, now and then, tells the source to slow down.
    pub fn within_rate(&self, peer: SocketAddr, now: Instant, log: &LogBudget) -> Verdict {
        let verdict = self.take_token(peer.ip(), now);
        if verdict != Verdict::Allow {
            if let Some(suppressed) = log.allow(LogKind::RateLimited) {
                info!(%peer, suppressed, "source over its rate limit: dropped");
            }
        }
        verdict
    }

    /// Whether rate limiting is on.
    pub fn limits_rate(&self) -> bool {
        self.limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}
