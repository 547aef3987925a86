//! The gate between a datagram and its answer, shared by every socket: the
//! access lists, before any protocol sees the datagram, and the per-source
//! rate limit, taken only once a protocol has decided to answer (ntpd-rs's
//! order: deny, allow, rate limit, answer). A datagram that gets no answer
//! (garbage, a forged reply) costs its source no token, so garbage forged
//! from a client's address can't spend that client's budget.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use hora_proto::access::AccessList;
use hora_proto::ratelimit::{RateLimit, RateLimiter, Verdict};
use tracing::info;

use crate::config::Config;
use crate::log_budget::{LogBudget, LogKind};
use crate::stats::Stats;

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

    /// Whether datagrams from `ip` may be answered at all.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.access.permits(ip)
    }

    /// Takes a token from `ip`'s bucket for an answer at `now`.
    pub fn take_token(&self, ip: IpAddr, now: Instant) -> Verdict {
        match &self.limiter {
            None => Verdict::Allow,
            Some(limiter) => limiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .check(ip, now),
        }
    }

    /// [`Gate::permits`], counting and logging (under the log budget) a
    /// source it turns away.
    pub fn admits(&self, peer: SocketAddr, stats: &Stats, log: &LogBudget) -> bool {
        let permitted = self.permits(peer.ip());
        if !permitted {
            Stats::bump(&stats.denied);
            if let Some(suppressed) = log.allow(LogKind::Denied) {
                info!(%peer, suppressed, "source not allowed: dropped");
            }
        }
        permitted
    }

    /// [`Gate::take_token`], counting and logging (under the log budget) an
    /// answer it holds back. The caller drops the datagram or, now and
    /// then, tells the source to slow down.
    pub fn within_rate(
        &self,
        peer: SocketAddr,
        now: Instant,
        stats: &Stats,
        log: &LogBudget,
    ) -> Verdict {
        let verdict = self.take_token(peer.ip(), now);
        if verdict != Verdict::Allow {
            Stats::bump(&stats.rate_limited);
            if let Some(suppressed) = log.allow(LogKind::RateLimited) {
                info!(%peer, suppressed, "source over its rate limit: dropped");
            }
        }
        verdict
    }

    /// Whether rate limiting is on.
    pub fn limits_rate(&self) -> bool {
        self.limiter.is_some()
    }
}
