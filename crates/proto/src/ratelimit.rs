//! Per-source-IP rate limiting with bounded memory, as chrony's `ratelimit`.
//!
//! A token bucket per source address, kept in a fixed table indexed by a
//! keyed hash of the address (the idea of chrony's client log and ntpd-rs's
//! `TimestampedCache`): a flood of forged sources can only recycle slots, never
//! grow the table. When two addresses share a slot the newcomer takes it with
//! a full bucket, so a collision can only make the limiter more lenient.
//! Time is passed in.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Token-bucket settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Datagrams per second a source may send, sustained.
    pub rate: f64,
    /// Datagrams a source may send at once after being quiet.
    pub burst: f64,
}

/// What the limiter says of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: handle it.
    Allow,
    /// Over the limit: drop it. `limited` counts this source's datagrams
    /// dropped in a row (1 for the first), so a caller can answer only
    /// occasionally (see [`Verdict::occasionally`]).
    Limit {
        /// Datagrams dropped in a row for this source, this one included.
        limited: u32,
    },
}

impl Verdict {
    /// Whether this drop is one of the occasional ones worth answering with a
    /// notice (an SNTP "RATE" kiss-o'-death): the first, then one in eight.
    pub fn occasionally(&self) -> bool {
        matches!(self, Verdict::Limit { limited } if limited % 8 == 1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ip: IpAddr,
    tokens: f32,
    limited: u32,
    last: Instant,
}

/// The limiter: a fixed number of token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    slots: Box<[Slot]>,
    keys: RandomState,
    limit: RateLimit,
}

impl RateLimiter {
    /// A table of `slots` buckets (at least 1), all full, as of `now`.
    pub fn new(limit: RateLimit, slots: usize, now: Instant) -> Self {
        let empty = Slot {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            tokens: limit.burst as f32,
            limited: 0,
            last: now,
        };
        RateLimiter {
            slots: vec![empty; slots.max(1)].into_boxed_slice(),
            keys: RandomState::new(),
            limit,
        }
    }

    /// Takes a token for a datagram from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        let ip = ip.to_canonical();
        let index = (self.keys.hash_one(ip) % self.slots.len() as u64) as usize;
        let limit = self.limit;
        let slot = &mut self.slots[index];
        if slot.ip != ip {
            *slot = Slot {
                ip,
                tokens: limit.burst as f32,
                limited: 0,
                last: now,
            };
        }
        let earned = now.saturating_duration_since(slot.last).as_secs_f64() * limit.rate;
        slot.tokens = (f64::from(slot.tokens) + earned).min(limit.burst) as f32;
        slot.last = now;
        if slot.tokens >= 1.0 {
            slot.tokens -= 1.0;
            slot.limited = 0;
            Verdict::Allow
        } else {
            slot.limited = slot.limited.saturating_add(1);
            Verdict::Limit {
                limited: slot.limited,
            }
        }
    }

    /// The table's size in bytes, for the documentation's memory bound.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

/// How long a source must stay quiet to earn back a full burst.
pub fn refill_time(limit: RateLimit) -> Duration {
    Duration::from_secs_f64(limit.burst / limit.rate.max(f64::MIN_POSITIVE))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        rate: 10.0,
        burst: 20.0,
    };

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 0, last])
    }

    fn allowed(limiter: &mut RateLimiter, ip: IpAddr, now: Instant, n: usize) -> usize {
        (0..n)
            .filter(|_| limiter.check(ip, now) == Verdict::Allow)
            .count()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 1024, start);
        assert_eq!(allowed(&mut limiter, ip(1), start, 100), 20, "the burst");
        let later = start + Duration::from_secs(1);
        assert_eq!(
            allowed(&mut limiter, ip(1), later, 100),
            10,
            "one second of rate"
        );
    }

    #[test]
    fn a_person_asking_a_few_times_a_second_is_never_limited() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 1024, start);
        for tick in 0..600 {
            let now = start + Duration::from_millis(200 * tick);
            assert_eq!(limiter.check(ip(2), now), Verdict::Allow, "at {tick}");
        }
    }

    #[test]
    fn sources_are_limited_separately() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 4096, start);
        allowed(&mut limiter, ip(1), start, 1000);
        assert_eq!(limiter.check(ip(1), start), Verdict::Limit { limited: 981 });
        assert_eq!(limiter.check(ip(3), start), Verdict::Allow);
    }

    #[test]
    fn drops_are_answered_only_occasionally() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 16, start);
        allowed(&mut limiter, ip(1), start, 20);
        let answered = (0..80)
            .filter(|_| limiter.check(ip(1), start).occasionally())
            .count();
        assert_eq!(answered, 10, "1 in 8 of 80 drops");
    }

    #[test]
    fn memory_is_fixed_whatever_the_number_of_sources() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 256, start);
        let before = limiter.memory_bytes();
        for n in 0..100_000u32 {
            limiter.check(IpAddr::from(n.to_be_bytes()), start);
        }
        assert_eq!(limiter.memory_bytes(), before);
        assert!(before <= 256 * 48, "{before}");
    }

    #[test]
    fn ipv4_mapped_addresses_share_the_ipv4_bucket() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 1024, start);
        allowed(&mut limiter, "10.0.0.1".parse().unwrap(), start, 20);
        assert!(matches!(
            limiter.check("::ffff:10.0.0.1".parse().unwrap(), start),
            Verdict::Limit { .. }
        ));
    }

    #[test]
    fn refill_time_is_burst_over_rate() {
        assert_eq!(refill_time(LIMIT), Duration::from_secs(2));
    }
}
