//! When each SNTP reply of a batch leaves, for its transmit timestamp.
//!
//! A reply's transmit timestamp (t3) should say when the reply left. Sent on
//! its own, it is read from the clock just before the `sendto` and is early
//! by that one call (the kernel's work on the reply: on loopback, its whole
//! delivery). Sent with others in one `sendmmsg`, reply `k` leaves only after
//! the kernel has done the same work for the `k` replies before it; one clock
//! reading for the whole batch would make reply `k` early by `k` replies'
//! worth (microseconds each), and a client's offset early by half that.
//!
//! [`TransmitPace`] measures how long the kernel takes per reply and stamps
//! reply `k` with the batch's clock reading plus `k` times that, so each
//! reply is early by about one reply's work, as a reply sent on its own is.
//! ntpd did the same for the time its MAC took (`authdelay`).
//!
//! It must never stamp a reply later than it leaves. A batch of `n` replies
//! takes `f + n * c` from the clock reading to the kernel's return (`c` the
//! work per reply, `f` the batch's fixed cost: stamping, the system call's
//! entry and exit); each batch is read as `(f + n * c) / (n + 1)`, which is
//! at most `c` whenever `f <= c` (on Linux a fraction of a microsecond
//! against a few). Reply `k` then gets at most `first + k * c`, before it
//! leaves at `first + (k + 1) * c` or later. The estimate is the quickest of
//! the last [`WINDOW`] batches, and zero until that many are measured: a
//! batch the kernel was interrupted in, or the first ones of a cold start,
//! read long and are not believed.
//!
//! Where the kernel reports when each reply left (`SO_TIMESTAMPING`), those
//! times teach it too ([`TransmitPace::observe_sent`]): reply `k` leaving at
//! `t` after the reading `first` reads as `(t - first) / (k + 1)`, by the same
//! bound never later than it leaves; and a prediction the kernel shows was
//! late lowers the estimate at once, not at the end of the window. So does a
//! batch the kernel sent sooner than its last stamp said (its return is
//! after its last reply left). Such a batch can't be unstamped, so the next
//! batch starts from its last stamp, not before ([`TransmitPace::batch_start`]):
//! a client asking twice never sees its replies' stamps go backwards.

use std::time::{Duration, SystemTime};

/// The most SNTP replies sent in one batch: with a few microseconds each, a
/// batch's estimate spans at most tens of microseconds, so a hiccup inside
/// one (an interrupt) misplaces few replies.
pub const MOST_PER_BATCH: usize = 8;

/// The longest per-reply time believed: a batch that took longer was
/// interrupted, and its time says nothing of the next.
pub const MOST_PER_REPLY: Duration = Duration::from_micros(20);

/// How many batches one estimate is the quickest of: enough that a run of
/// slow ones (a cold start, interrupts) does not set it, few enough to follow
/// a change of load within milliseconds.
pub const WINDOW: u32 = 16;

/// The kernel's time per reply, as measured on the batches sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransmitPace {
    /// Nanoseconds per reply, the quickest of the last complete window;
    /// zero before the first.
    per_reply_nanos: u64,
    /// The quickest of the window being measured.
    quickest: Option<u64>,
    /// Batches measured in it.
    measured: u32,
    /// The latest transmit time given: no later batch starts before it.
    latest: Option<SystemTime>,
}

impl TransmitPace {
    /// Where a batch whose clock was read at `reading` is stamped from: the
    /// reading, or the latest transmit time given if that is later.
    pub fn batch_start(&self, reading: SystemTime) -> SystemTime {
        self.latest.map_or(reading, |latest| reading.max(latest))
    }

    /// The transmit time of reply `position` (from 0) of a batch stamped
    /// from `first` ([`batch_start`](Self::batch_start)).
    pub fn transmit_time(&mut self, first: SystemTime, position: usize) -> SystemTime {
        let position = u64::try_from(position).unwrap_or(u64::MAX);
        let later = Duration::from_nanos(self.per_reply_nanos.saturating_mul(position));
        let time = first.checked_add(later).unwrap_or(first);
        self.latest = Some(self.latest.map_or(time, |latest| latest.max(time)));
        time
    }

    /// Learns from a batch of `replies` that took `elapsed` from its start
    /// to the kernel's return; whether its last stamp was later than that
    /// (then the estimate is lowered now). Single replies teach nothing, nor
    /// do batches slower than [`MOST_PER_REPLY`] a reply.
    pub fn observe(&mut self, elapsed: Duration, replies: usize) -> bool {
        let Ok(count) = u32::try_from(replies) else {
            return false;
        };
        if count < 2 {
            return false;
        }
        let last = Duration::from_nanos(self.per_reply_nanos.saturating_mul(u64::from(count - 1)));
        let late = last > elapsed;
        let sample = elapsed / (count + 1);
        if late {
            self.per_reply_nanos = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        }
        if sample <= MOST_PER_REPLY {
            self.sample(sample);
        }
        late
    }

    /// Learns from the kernel's word that reply `position` (from 0) of a
    /// batch whose clock was read at `first`, stamped `predicted`, left at
    /// `sent`; whether the prediction was later than that (then the
    /// estimate is lowered now).
    pub fn observe_sent(
        &mut self,
        first: SystemTime,
        position: usize,
        predicted: SystemTime,
        sent: SystemTime,
    ) -> bool {
        let late = predicted > sent;
        let elapsed = sent.duration_since(first).unwrap_or_default();
        let Ok(count) = u32::try_from(position + 1) else {
            return late;
        };
        let sample = elapsed / count;
        if late {
            self.per_reply_nanos = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        }
        if sample <= MOST_PER_REPLY {
            self.sample(sample);
        }
        late
    }

    /// One reading of the time per reply, into the window.
    fn sample(&mut self, sample: Duration) {
        let sample = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        let quickest = self.quickest.map_or(sample, |q| q.min(sample));
        self.measured += 1;
        if self.measured >= WINDOW {
            self.per_reply_nanos = quickest;
            self.quickest = None;
            self.measured = 0;
        } else {
            self.quickest = Some(quickest);
        }
    }

    /// The current estimate per reply (`ZERO` before the first window).
    pub fn per_reply(&self) -> Duration {
        Duration::from_nanos(self.per_reply_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn learned(elapsed: Duration, replies: usize) -> TransmitPace {
        let mut pace = TransmitPace::default();
        for _ in 0..WINDOW {
            pace.observe(elapsed, replies);
        }
        pace
    }

    #[test]
    fn until_a_window_is_measured_every_reply_gets_the_clock_reading() {
        let mut pace = TransmitPace::default();
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        for _ in 1..WINDOW {
            pace.observe(micros(15), 4);
        }
        assert_eq!(pace.transmit_time(first, 0), first);
        assert_eq!(pace.transmit_time(first, 5), first);
        pace.observe(micros(15), 4);
        assert_eq!(pace.transmit_time(first, 5), first + micros(15));
    }

    #[test]
    fn reply_k_is_stamped_k_replies_of_kernel_work_after_the_reading() {
        let mut pace = learned(micros(15), 4); // read as 15 / 5 = 3 µs a reply
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        assert_eq!(pace.transmit_time(first, 0), first);
        assert_eq!(pace.transmit_time(first, 1), first + micros(3));
        assert_eq!(pace.transmit_time(first, 7), first + micros(21));
    }

    #[test]
    fn no_reply_is_stamped_after_it_leaves_whatever_the_batch_sizes() {
        // Reply k of a batch leaves at first + fixed + each * (k + 1); a
        // fixed cost up to one reply's work.
        let first = SystemTime::UNIX_EPOCH;
        for (fixed, each) in [(0u64, 3_000u64), (1_000, 3_000), (3_000, 3_000), (500, 800)] {
            let mut pace = TransmitPace::default();
            for round in 0..(3 * WINDOW as usize) {
                let n = [2usize, 8, 3, 8, 5, 2, 2, 7][round % 8];
                pace.observe(Duration::from_nanos(fixed + each * n as u64), n);
                for k in 0..MOST_PER_BATCH {
                    let leaves = first + Duration::from_nanos(fixed + each * (k as u64 + 1));
                    assert!(
                        pace.transmit_time(first, k) <= leaves,
                        "fixed {fixed} ns, {each} ns each, after a batch of {n}: reply {k}"
                    );
                }
            }
            assert!(pace.per_reply() > Duration::ZERO);
        }
    }

    #[test]
    fn the_kernels_transmit_times_teach_the_pace_and_a_late_prediction_lowers_it_at_once() {
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        let mut pace = TransmitPace::default();
        // Reply k of each batch leaves 3 µs after the one before it.
        for _ in 0..WINDOW {
            for k in 0..4 {
                let sent = first + micros(3 * (k as u64 + 1));
                let predicted = pace.transmit_time(first, k);
                assert!(!pace.observe_sent(first, k, predicted, sent), "never late");
            }
        }
        assert_eq!(pace.per_reply(), micros(3));
        // The kernel gets quicker: 1 µs a reply. Reply 2 predicted at +6 µs
        // left at +3: late, and the estimate drops at once.
        let predicted = pace.transmit_time(first, 2);
        assert!(pace.observe_sent(first, 2, predicted, first + micros(3)));
        assert_eq!(pace.per_reply(), micros(1));
        assert!(pace.transmit_time(first, 2) <= first + micros(3));
        let predicted = pace.transmit_time(first, 3);
        assert!(!pace.observe_sent(first, 3, predicted, first + micros(4)));
    }

    #[test]
    fn single_replies_and_batches_too_slow_to_believe_teach_nothing() {
        let mut pace = TransmitPace::default();
        for _ in 0..WINDOW {
            pace.observe(micros(3), 1);
            pace.observe(micros(500), 4);
            pace.observe(micros(5), 0);
        }
        assert_eq!(pace, TransmitPace::default());
    }

    #[test]
    fn slow_batches_do_not_set_the_estimate_and_a_change_of_pace_is_followed() {
        let mut pace = TransmitPace::default();
        // A cold start: the first batches slow, then 2 µs a reply.
        for n in 0..WINDOW {
            let slow = n < WINDOW / 2;
            pace.observe(if slow { micros(45) } else { micros(6) }, 2);
        }
        assert_eq!(pace.per_reply(), micros(2));
        // The kernel gets slower (another load): 4 µs a reply.
        for _ in 0..WINDOW {
            pace.observe(micros(12), 2);
        }
        assert_eq!(pace.per_reply(), micros(4));
    }

    #[test]
    fn a_batch_sent_sooner_than_its_last_stamp_lowers_the_pace_and_the_next_starts_after_it() {
        let mut pace = learned(micros(15), 4); // 3 µs a reply
        let first = pace.batch_start(SystemTime::UNIX_EPOCH + micros(1_000));
        let last = pace.transmit_time(first, 7); // first + 21 µs
        assert_eq!(last, first + micros(21));
        // The kernel was done after 18 µs: the last stamp was 3 µs late.
        assert!(pace.observe(micros(18), 8));
        assert_eq!(pace.per_reply(), micros(2)); // 18 / 9
                                                 // The next batch read the clock before that last stamp: it starts
                                                 // from the stamp, so stamps never go backwards.
        let next = pace.batch_start(first + micros(19));
        assert_eq!(next, last);
        assert!(pace.transmit_time(next, 1) > last);
        // One read later than every stamp given starts from the reading.
        let later = first + micros(40);
        assert_eq!(pace.batch_start(later), later);
        // A batch as quick as its stamps said is not late.
        assert!(!pace.observe(micros(14), 8));
    }
}
