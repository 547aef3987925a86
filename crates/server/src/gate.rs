//! The gate between a datagram and its answer, shared by every socket: the
//! access lists, before any protocol sees the datagram, and the per-source
//! rate limit, taken only once a protocol has decided to answer (ntpd-rs's
//! order: deny, allow, rate limit, answer). Each worker has its own rate
//! limiter: a source address always reaches the same worker
//! ([`crate::sys::steer`]), so its bucket is that worker's alone, and no
//! two threads ever take the same lock. A datagram that gets no answer
//! (garbage, a forged reply) costs its source no token, so garbage forged
//! from a client's address can't spend that client's budget.
//!
//! A gate is part of the live view ([`crate::live::Live`]): a reload builds
//! a new one, keeping the rate limiter's buckets when its settings did not
//! change.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use hora_proto::access::AccessList;
use hora_proto::ratelimit::{RateLimit, RateLimiter, Verdict};
use tracing::info;

use crate::config::{Config, RateLimitConfig};
use crate::log_budget::{LogBudget, LogKind};

/// The access lists and the rate limiter in force.
#[derive(Debug)]
pub struct Gate {
    access: AccessList,
    /// The buckets, one table per worker, shared by that worker's
    /// protocols (a source's rate is over every protocol together); `None`
    /// with rate limiting off.
    limiters: Option<Arc<[Own<Mutex<RateLimiter>>]>>,
    /// The settings the limiter was made with, to know whether a reload
    /// may keep its buckets.
    limit: RateLimitConfig,
}

/// A worker's own lock, on a cache line of its own: two workers' locks
/// side by side would make each worker's lock bounce between their cores.
#[derive(Debug)]
#[repr(align(128))]
struct Own<T>(T);

impl Gate {
    /// The gate `config` describes, for `workers` workers (each with a
    /// limiter of `table_size / workers` buckets: the table's memory is
    /// the configured one, whatever the workers). The rate limiters of
    /// `previous` are kept (with their buckets) when their settings are the
    /// same; otherwise new ones start, every bucket full as of `now`.
    pub fn new(config: &Config, previous: Option<&Gate>, workers: usize, now: Instant) -> Self {
        let limit = config.ratelimit.clone();
        let workers = workers.max(1);
        let limiters = match previous {
            Some(previous)
                if previous.limit == limit
                    && previous.limiters.as_ref().map(|l| l.len()) == Some(workers) =>
            {
                previous.limiters.clone()
            }
            _ => limit.enabled.then(|| {
                let rate = RateLimit {
                    rate: limit.rate,
                    burst: limit.burst,
                };
                let buckets = limit.table_size.div_ceil(workers);
                (0..workers)
                    .map(|_| Own(Mutex::new(RateLimiter::new(rate, buckets, now))))
                    .collect()
            }),
        };
        Gate {
            access: AccessList::new(config.access.allow.clone(), config.access.deny.clone()),
            limiters,
            limit,
        }
    }

    /// Whether datagrams from `ip` may be answered at all.
    pub fn permits(&self, ip: IpAddr) -> bool {
        self.access.permits(ip)
    }

    /// Takes a token from `ip`'s bucket, in `worker`'s table, for an
    /// answer at `now`.
    pub fn take_token(&self, worker: usize, ip: IpAddr, now: Instant) -> Verdict {
        let Some(limiters) = &self.limiters else {
            return Verdict::Allow;
        };
        match limiters.get(worker).or(limiters.last()) {
            None => Verdict::Allow,
            Some(Own(limiter)) => limiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .check(ip, now),
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
    pub fn within_rate(
        &self,
        worker: usize,
        peer: SocketAddr,
        now: Instant,
        log: &LogBudget,
    ) -> Verdict {
        let verdict = self.take_token(worker, peer.ip(), now);
        if verdict != Verdict::Allow {
            if let Some(suppressed) = log.allow(LogKind::RateLimited) {
                info!(%peer, suppressed, "source over its rate limit: dropped");
            }
        }
        verdict
    }

    /// Whether rate limiting is on.
    pub fn limits_rate(&self) -> bool {
        self.limiters.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_keeps_the_buckets_unless_their_settings_change() {
        let now = Instant::now();
        let mut config = Config::default();
        config.ratelimit.burst = 2.0;
        let first = Gate::new(&config, None, 1, now);
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..2 {
            assert_eq!(first.take_token(0, ip, now), Verdict::Allow);
        }
        assert_ne!(first.take_token(0, ip, now), Verdict::Allow, "bucket empty");
        // Another access list, the same rate limit: the bucket stays empty.
        config.access.deny = vec!["10.0.0.0/8".parse().unwrap()];
        let kept = Gate::new(&config, Some(&first), 1, now);
        assert_ne!(kept.take_token(0, ip, now), Verdict::Allow);
        assert!(!kept.permits(IpAddr::from([10, 1, 2, 3])));
        // A new burst: a new table, every bucket full.
        config.ratelimit.burst = 3.0;
        let fresh = Gate::new(&config, Some(&kept), 1, now);
        assert_eq!(fresh.take_token(0, ip, now), Verdict::Allow);
    }

    #[test]
    fn each_worker_has_its_own_buckets() {
        let now = Instant::now();
        let mut config = Config::default();
        config.ratelimit.burst = 1.0;
        let gate = Gate::new(&config, None, 2, now);
        let ip = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(gate.take_token(0, ip, now), Verdict::Allow);
        assert_ne!(gate.take_token(0, ip, now), Verdict::Allow);
        // Steering sends an address to one worker only; another worker's
        // table never saw it.
        assert_eq!(gate.take_token(1, ip, now), Verdict::Allow);
    }
}
