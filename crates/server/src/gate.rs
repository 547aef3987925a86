//! The gate every datagram passes before any protocol sees it: the access
//! lists, then the per-source rate limit (ntpd-rs's order: deny, allow, rate
//! limit, answer). Shared by every socket the daemon serves.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use hora_proto::access::AccessList;
use hora_proto::ratelimit::{RateLimit, RateLimiter, Verdict};

use std::net::SocketAddr;

use tracing::debug;

use crate::config::Config;
use crate::stats::Stats;

/// Whether a datagram may go on to its protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Handle it.
    Admit,
    /// Its source is not allowed: drop it.
    Denied,
    /// Its source is over the rate limit: drop it (or, occasionally, say so).
    Limited(Verdict),
}

/// The access lists and the rate limiter.
#[derive(Debug)]
pub struct Gate {
    access: AccessList,
    limiter: Option<Mutex<RateLimiter>>,
}

impl Gate {
    /// The gate the configuration describes, its buckets full as of `now`.
    pub fn new(config: &Config, now: Instant) -> Self {
        let access = AccessList::new(config.access.allow.clone(), config.access.deny.clone());
        let limit = &config.ratelimit;
        let limiter = limit.enabled.then(|| {
            let rate = RateLimit {
                rate: limit.rate,
                burst: limit.burst,
            };
            Mutex::new(RateLimiter::new(rate, limit.table_size, now))
        });
        Gate { access, limiter }
    }

    /// Judges a datagram from `ip` arriving at `now`.
    pub fn admit(&self, ip: std::net::IpAddr, now: Instant) -> Admission {
        if !self.access.permits(ip) {
            return Admission::Denied;
        }
        let Some(limiter) = &self.limiter else {
            return Admission::Admit;
        };
        let verdict = limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check(ip, now);
        match verdict {
            Verdict::Allow => Admission::Admit,
            limited => Admission::Limited(limited),
        }
    }

    /// [`Gate::admit`], counting and logging what it stops (at debug: a
    /// flood must not become a log flood). The caller decides whether a
    /// stopped datagram is dropped or, occasionally, told to slow down.
    pub fn judge(&self, peer: SocketAddr, now: Instant, stats: &Stats) -> Admission {
        let admission = self.admit(peer.ip(), now);
        match admission {
            Admission::Admit => {}
            Admission::Denied => {
                Stats::bump(&stats.denied);
                debug!(%peer, "source not allowed");
            }
            Admission::Limited(_) => {
                Stats::bump(&stats.rate_limited);
                debug!(%peer, "over the rate limit");
            }
        }
        admission
    }

    /// Whether rate limiting is on.
    pub fn limits_rate(&self) -> bool {
        self.limiter.is_some()
    }
}
