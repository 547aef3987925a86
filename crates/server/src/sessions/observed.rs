//! What observers read of the session tables (tests, `/metrics`, `/status`,
//! the summary line): how many sessions are open, how long ended ones
//! lasted and how late idle notices left, as atomics the tables update as
//! they change, shared by every worker's table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the session-duration histogram's buckets; the
/// last bucket, past them, is `+Inf`. The seed's idle timeout is 10 s.
pub const DURATION_BUCKETS: [f64; 8] = [1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// How long ended sessions lasted: a count per bucket, and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durations {
    /// Sessions per bucket of [`DURATION_BUCKETS`], then past the last.
    pub counts: [u64; BUCKETS],
    /// The sum of the durations, in seconds.
    pub sum: f64,
}

impl Durations {
    /// Sessions ended.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Upper bounds (seconds) of the buckets of how late idle sessions were
/// ended after their deadline (then `+Inf`): the loop's own delay, which the
/// timer structure must keep far below the seed's 10 s.
pub const LATENESS_BUCKETS: [f64; 4] = [0.001, 0.01, 0.1, 1.0];

const LATENESS: usize = LATENESS_BUCKETS.len() + 1;

/// A histogram of durations as atomics: a count per bucket (the last past
/// every bound) and the sum, written by the loop, read by observers.
#[derive(Debug)]
struct AtomicHistogram<const N: usize> {
    counts: [AtomicU64; N],
    sum_nanos: AtomicU64,
}

impl<const N: usize> Default for AtomicHistogram<N> {
    fn default() -> Self {
        AtomicHistogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl<const N: usize> AtomicHistogram<N> {
    /// Counts `value` in the first bucket of `bounds` (seconds) it fits.
    fn observe(&self, bounds: &[f64], value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(bounds.len())
            .min(N - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The counts per bucket and the sum in seconds, now.
    fn read(&self) -> ([u64; N], f64) {
        let counts = std::array::from_fn(|bucket| self.counts[bucket].load(Ordering::Relaxed));
        let sum = Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed));
        (counts, sum.as_secs_f64())
    }
}

/// What observers read of the table while the loop owns it: the sessions
/// open, how long the ended ones lasted, and how late idle ones were ended,
/// as atomics.
#[derive(Debug, Default)]
pub struct SessionStats {
    open: AtomicU64,
    durations: AtomicHistogram<BUCKETS>,
    late: AtomicHistogram<LATENESS>,
}

impl SessionStats {
    /// Takes a place for a new session if fewer than `max` are open.
    pub(super) fn reserve(&self, max: usize) -> bool {
        let max = u64::try_from(max).unwrap_or(u64::MAX);
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < max).then_some(open + 1)
            })
            .is_ok()
    }

    /// Gives back `n` places.
    pub(super) fn release(&self, n: usize) {
        self.open.fetch_sub(n as u64, Ordering::Relaxed);
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        usize::try_from(self.open.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long the sessions ended so far lasted.
    pub fn durations(&self) -> Durations {
        let (counts, sum) = self.durations.read();
        Durations { counts, sum }
    }

    /// How late after their deadlines idle sessions were ended: a count
    /// per bucket of [`LATENESS_BUCKETS`] (then past the last), and the sum
    /// in seconds.
    pub fn lateness(&self) -> ([u64; LATENESS], f64) {
        self.late.read()
    }

    pub(super) fn record_late(&self, late: Duration) {
        self.late.observe(&LATENESS_BUCKETS, late);
    }

    pub(super) fn record(&self, lasted: Duration) {
        self.durations.observe(&DURATION_BUCKETS, lasted);
    }
}
