//! Per-source-IP rate limiting with bounded memory, as chrony's `ratelimit`,
//! that a crowd of other sources can't loosen.
//!
//! A token bucket per source address, kept in a fixed table: a keyed hash of
//! the address picks one set of [`WAYS`] entries, and the address has an
//! entry in that set or none (the idea of chrony's client log and of a CPU
//! cache). A flood of forged sources can only recycle entries, never grow
//! the table.
//!
//! A source the set has no entry for takes the set's least recently seen
//! entry **with its bucket as it stands** (refilled at `rate` since its last
//! datagram, never past `burst`): a bucket only ever gains `rate` tokens a
//! second and holds at most `burst`, whoever uses it. So:
//! - a source that keeps its entry gets at most `rate × seconds + burst`
//!   answers, however many other sources ask: an entry seen in the last
//!   instants is the last of its set to go, and losing it takes [`WAYS`] new
//!   sources landing in its set between two of its datagrams;
//! - two sources sharing one entry (`table_size = 1`) share one bucket: both
//!   are limited, together, never handed a fresh burst by the other;
//! - a newcomer gets what the entry it takes has earned: a full burst if that
//!   entry has been quiet for `burst / rate` seconds (the common case, and
//!   what a one-shot flood leaves behind), less if it was just drained.
//!
//! Time is passed in.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Entries per set: how many sources that hash alike keep their own buckets.
/// Eight entries of 32 bytes are four cache lines, scanned in a few ns.
pub const WAYS: usize = 8;

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

/// One source's bucket: 32 bytes.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The source, as an IPv6 address's bits (IPv4 as IPv4-mapped); 0 (`::`,
    /// never a source) for an entry no source has used yet.
    source: u128,
    /// When the bucket was last refilled: microseconds since the limiter's
    /// epoch. Also the entry's age, for picking the one to give away.
    last: u64,
    tokens: f32,
    limited: u32,
}

/// The limiter: a fixed number of token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    entries: Box<[Entry]>,
    /// Entries per set: [`WAYS`], or fewer for a smaller table.
    ways: usize,
    keys: RandomState,
    limit: RateLimit,
    epoch: Instant,
}

impl RateLimiter {
    /// A table of `entries` buckets (at least 1; rounded down to a multiple
    /// of [`WAYS`] above it), all full, as of `now`.
    pub fn new(limit: RateLimit, entries: usize, now: Instant) -> Self {
        let ways = entries.clamp(1, WAYS);
        let empty = Entry {
            source: 0,
            last: 0,
            tokens: limit.burst as f32,
            limited: 0,
        };
        RateLimiter {
            entries: vec![empty; entries.max(1) / ways * ways].into_boxed_slice(),
            ways,
            keys: RandomState::new(),
            limit,
            epoch: now,
        }
    }

    /// Takes a token for a datagram from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if now < self.epoch {
            self.rebase(now);
        }
        let now = self.micros(now);
        let source = source_bits(ip);
        let set = self.set_of(source);
        let set = &mut self.entries[set];
        let entry = match set.iter().position(|entry| entry.source == source) {
            Some(index) => &mut set[index],
            None => {
                // An unused entry, else the least recently seen, bucket
                // and all.
                let oldest = set
                    .iter_mut()
                    .min_by_key(|entry| (entry.source != 0, entry.last));
                let Some(entry) = oldest else {
                    return Verdict::Allow; // Unreachable: a set has an entry.
                };
                entry.source = source;
                entry.limited = 0;
                entry
            }
        };
        let earned = now.saturating_sub(entry.last) as f64 * 1e-6 * self.limit.rate;
        entry.tokens = (f64::from(entry.tokens) + earned).min(self.limit.burst) as f32;
        entry.last = now;
        if entry.tokens >= 1.0 {
            entry.tokens -= 1.0;
            entry.limited = 0;
            Verdict::Allow
        } else {
            entry.limited = entry.limited.saturating_add(1);
            Verdict::Limit {
                limited: entry.limited,
            }
        }
    }

    /// Whether `ip` has a token at `now`, taking none: for a caller that
    /// charges a source only for what went wrong ([`RateLimiter::check`]
    /// when it did), so a source that never fails is never limited.
    pub fn allows(&self, ip: IpAddr, now: Instant) -> bool {
        self.tokens(ip, now) >= 1.0
    }

    /// The tokens `ip`'s bucket holds at `now`, taking none: `burst` for a
    /// source with no entry.
    pub fn tokens(&self, ip: IpAddr, now: Instant) -> f64 {
        let source = source_bits(ip);
        let Some(entry) = self.entries[self.set_of(source)]
            .iter()
            .find(|entry| entry.source == source)
        else {
            return self.limit.burst;
        };
        let earned = self.micros(now).saturating_sub(entry.last) as f64 * 1e-6 * self.limit.rate;
        (f64::from(entry.tokens) + earned).min(self.limit.burst)
    }

    /// The entries of the set `source` hashes to.
    fn set_of(&self, source: u128) -> std::ops::Range<usize> {
        let sets = self.entries.len() / self.ways;
        let first = (self.keys.hash_one(source) % sets as u64) as usize * self.ways;
        first..first + self.ways
    }

    /// `now` in microseconds since the epoch.
    fn micros(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Moves the epoch back to `now`, earlier than it (a caller whose
    /// clock reads earlier than the one the table was made with: a paused
    /// test clock), keeping every bucket's age. Once per such clock.
    fn rebase(&mut self, now: Instant) {
        let shift = u64::try_from(self.epoch.duration_since(now).as_micros()).unwrap_or(u64::MAX);
        for entry in self.entries.iter_mut() {
            entry.last = entry.last.saturating_add(shift);
        }
        self.epoch = now;
    }

    /// The table's size in bytes, for the documentation's memory bound.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.entries)
    }
}

/// A source address as an IPv6 address's bits (IPv4 as IPv4-mapped).
fn source_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
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
    fn allows_takes_no_token_and_says_what_check_would() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 1024, start);
        assert!(limiter.allows(ip(1), start), "a stranger has a full bucket");
        assert_eq!(limiter.tokens(ip(1), start), 20.0);
        assert_eq!(allowed(&mut limiter, ip(1), start, 19), 19);
        assert!(limiter.allows(ip(1), start));
        assert!(limiter.allows(ip(1), start), "asking took nothing");
        assert_eq!(allowed(&mut limiter, ip(1), start, 1), 1);
        assert!(!limiter.allows(ip(1), start), "the burst is spent");
        assert!(limiter.allows(ip(1), start + Duration::from_millis(150)));
    }

    #[test]
    fn sources_are_limited_separately() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 4096, start);
        allowed(&mut limiter, ip(1), start, 1000);
        assert_eq!(limiter.check(ip(1), start), Verdict::Limit { limited: 981 });
        assert_eq!(limiter.check(ip(3), start), Verdict::Allow);
    }

    /// The leak this table was made against: a source asking 200 times a
    /// second while 250,000 others ask once each, at the defaults' table
    /// size (the old one-entry-per-slot table, which gave a newcomer a full
    /// burst, let it through 126.7 times a second at a rate of 20).
    #[test]
    fn a_source_stays_within_its_bound_however_many_others_ask() {
        let limit = RateLimit {
            rate: 20.0,
            burst: 40.0,
        };
        let start = Instant::now();
        let mut limiter = RateLimiter::new(limit, 16_384, start);
        let heavy = ip(1);
        let (mut answered, mut other) = (0u32, 0u32);
        // Ten seconds: the source every 5 ms, 125 others between.
        for tick in 0..2_000u32 {
            let now = start + Duration::from_millis(5 * u64::from(tick));
            if limiter.check(heavy, now) == Verdict::Allow {
                answered += 1;
            }
            for _ in 0..125 {
                other += 1;
                let stranger = IpAddr::from((0x0A00_0000 + other).to_be_bytes());
                assert_eq!(limiter.check(stranger, now), Verdict::Allow, "{other}");
            }
        }
        assert_eq!(other, 250_000);
        // rate × seconds + burst: 20 × 10 + 40.
        assert!((200..=240).contains(&answered), "{answered} answered");
    }

    #[test]
    fn two_sources_sharing_one_entry_share_its_bucket() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 1, start);
        let mut answered = [0u32; 2];
        // Ten seconds, each asking 100 times a second, alternately.
        for tick in 0..2_000u32 {
            let now = start + Duration::from_millis(5 * u64::from(tick));
            let which = (tick % 2) as usize;
            if limiter.check(ip(1 + which as u8), now) == Verdict::Allow {
                answered[which] += 1;
            }
        }
        let together = answered[0] + answered[1];
        assert!(
            (100..=120).contains(&together),
            "{answered:?}: 10 × 10 + 20"
        );
        assert!(
            answered.iter().all(|&n| n <= 120),
            "{answered:?} of 1,000 each"
        );
    }

    #[test]
    fn a_newcomer_takes_an_entry_with_the_bucket_it_has_earned() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(LIMIT, 1, start);
        allowed(&mut limiter, ip(1), start, 20);
        assert_ne!(limiter.check(ip(2), start), Verdict::Allow, "just drained");
        let refilled = start + refill_time(LIMIT);
        assert_eq!(allowed(&mut limiter, ip(2), refilled, 100), 20);
    }

    #[test]
    fn a_recently_seen_source_keeps_its_entry() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        // One set of WAYS entries.
        let mut limiter = RateLimiter::new(LIMIT, WAYS, start);
        allowed(&mut limiter, ip(0), at(0), 20);
        for other in 1..WAYS as u8 {
            limiter.check(ip(other), at(1));
        }
        assert_ne!(limiter.check(ip(0), at(2)), Verdict::Allow);
        // A newcomer takes the entry seen longest ago: another's, not the
        // drained one, which stays drained.
        assert_eq!(limiter.check(ip(100), at(3)), Verdict::Allow);
        assert_ne!(limiter.check(ip(0), at(4)), Verdict::Allow);
    }

    #[test]
    fn a_clock_earlier_than_the_tables_still_refills() {
        let made = Instant::now() + Duration::from_secs(60);
        let mut limiter = RateLimiter::new(LIMIT, 16, made);
        let start = Instant::now();
        allowed(&mut limiter, ip(1), start, 20);
        assert_ne!(limiter.check(ip(1), start), Verdict::Allow);
        let later = start + Duration::from_secs(1);
        assert_eq!(allowed(&mut limiter, ip(1), later, 100), 10);
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
        assert_eq!(before, 256 * 32);
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
