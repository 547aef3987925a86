//! When each SNTP reply of a send call leaves, for its transmit timestamp.
//!
//! A reply's transmit timestamp (t3) should say when the reply left, and
//! must never be later than that: a client reads a stamp later than the
//! reply's arrival as a negative delay, which no filter can take out. The
//! server reads its clock just before each send call (after any wait for
//! the socket), so a reply sent on its own is early by the kernel's work
//! on it, as chronyd's are. Sent with others in one `sendmmsg`, reply `k`
//! leaves only after the kernel has done the same work for the `k` replies
//! before it; one reading for all would make reply `k` early by `k`
//! replies' worth (microseconds each).
//!
//! [`TransmitPace`] stamps reply `k` with the reading plus `k` times the
//! quickest gap the kernel was seen to leave between two replies of one
//! call ([`TransmitPace::observe_gap`], from the kernel's own transmit
//! times, `SO_TIMESTAMPING`). That is a lower bound by construction: reply
//! `k` leaves after the reading by the kernel's work on the first reply
//! (the system call's entry, the first reply's path: never counted) plus
//! `k` gaps, each at least the quickest. Until the kernel's times are
//! known the pace is zero and every reply of a call gets the reading.
//!
//! Two checks lower the pace at once when the machine gets quicker than
//! the window saw: a stamp the kernel's time shows was late
//! ([`TransmitPace::check`]), and a call that returned before its last
//! stamp ([`TransmitPace::returned`]). A late stamp can't be taken back,
//! so the next call starts from the latest stamp given, not before
//! ([`TransmitPace::batch_start`]): a client asking twice never sees its
//! replies' stamps go backwards.
//!
//! An earlier pace was learned from how long each `sendmmsg` took, divided
//! among its replies: a call's fixed cost and the first reply's slower path
//! made that larger than the gap between replies, and ntpperf saw stamps up
//! to 15.6 µs later than the replies arrived (BENCHMARKS.md, "Transmit
//! timestamps by ntpperf").

use std::time::{Duration, SystemTime};

/// The most SNTP replies sent in one call: with a microsecond or two each,
/// a call's stamps span a few microseconds, so a hiccup inside one (an
/// interrupt) misplaces few replies.
pub const MOST_PER_BATCH: usize = 8;

/// Stamped replies waiting up to this many are sent one a call, each
/// stamped from its own clock reading, as chronyd sends every reply: no
/// pace stands in for the kernel's work on the replies before it. Few
/// replies waiting means a server with time to spare, so the calls cost
/// nothing a client sees; a longer queue, a loaded server, goes
/// [`MOST_PER_BATCH`] a call. 8 against 4: ntpperf's basic stddev within 2×
/// chronyd's at 18/20 steps against 14/20, SNTP throughput the same (1.017
/// against 1.010× chronyd); one a call always cost 11% of it.
pub const SINGLY_UP_TO: usize = 8;

/// How many of `waiting` stamped replies the next call sends: one each
/// while few wait ([`SINGLY_UP_TO`]), else up to [`MOST_PER_BATCH`].
pub fn per_call(waiting: usize) -> usize {
    if waiting <= SINGLY_UP_TO {
        1
    } else {
        MOST_PER_BATCH
    }
}

/// The longest gap between two replies believed: a call that took longer
/// was interrupted, and says nothing of the next.
pub const MOST_PER_REPLY: Duration = Duration::from_micros(20);

/// How many gaps one estimate is the quickest of: enough that one odd
/// reading does not set it, few enough to follow a change of load within a
/// few sampled calls.
pub const WINDOW: u32 = 16;

/// What share of the quickest gap measured stamps count (a half). The
/// gaps are measured on the calls the kernel timestamps, and timestamping
/// makes each reply slower (its copy queued for the error queue), so the
/// calls that are not sampled can leave shorter gaps. Stamps counting the
/// whole gap were seen by ntpperf up to 0.43 µs late, and three quarters
/// of it up to 0.78 µs late in a run disturbed by a compile on the same
/// cores (BENCHMARKS.md, "Transmit timestamps by ntpperf"): half a gap a
/// reply is the margin until a bound that needs none is found.
pub const MARGIN: (u64, u64) = (1, 2);

/// The kernel's time between the replies of one send call, as measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransmitPace {
    /// Nanoseconds stamps count between replies: [`MARGIN`] of the
    /// quickest gap of the last complete window (or lower, after a late
    /// stamp); zero before the first.
    per_reply_nanos: u64,
    /// The quickest of the window being measured.
    quickest: Option<u64>,
    /// Gaps measured in it.
    measured: u32,
    /// Whether a whole window was ever measured: the outbox then samples
    /// the kernel's times only now and then, even while a late stamp has
    /// lowered the pace to zero (which made it sample every flush, for
    /// about 5% of NTS throughput).
    learned: bool,
    /// The latest transmit time given: no later call starts before it.
    latest: Option<SystemTime>,
}

impl TransmitPace {
    /// Where a call whose clock was read at `reading` is stamped from: the
    /// reading, or the latest transmit time given if that is later.
    pub fn batch_start(&self, reading: SystemTime) -> SystemTime {
        self.latest.map_or(reading, |latest| reading.max(latest))
    }

    /// The transmit time of reply `position` (from 0) of a call stamped
    /// from `first` ([`batch_start`](Self::batch_start)): `position` gaps
    /// of [`per_reply`](Self::per_reply) after it.
    pub fn transmit_time(&mut self, first: SystemTime, position: usize) -> SystemTime {
        self.transmit_time_read_at(first, position, first)
    }

    /// [`transmit_time`](Self::transmit_time) for a reply whose call read
    /// the clock again at `reading` before writing it (after sealing the
    /// NTS replies ahead of it): the later of the two, as the reply leaves
    /// after both. Sealing takes about as long as the kernel's work on a
    /// reply, so an NTS reply `k` stamped from the call's one reading would
    /// be early by `k` seals.
    pub fn transmit_time_read_at(
        &mut self,
        first: SystemTime,
        position: usize,
        reading: SystemTime,
    ) -> SystemTime {
        let position = u64::try_from(position).unwrap_or(u64::MAX);
        let later = Duration::from_nanos(self.per_reply_nanos.saturating_mul(position));
        let time = first.checked_add(later).unwrap_or(first).max(reading);
        self.latest = Some(self.latest.map_or(time, |latest| latest.max(time)));
        time
    }

    /// A call of `replies` stamped from its start returned `elapsed` after
    /// it: whether its last stamp was later than that (the kernel was done
    /// sooner: the pace is lowered now, below what would have been on time).
    pub fn returned(&mut self, elapsed: Duration, replies: usize) -> bool {
        let Ok(count) = u32::try_from(replies) else {
            return false;
        };
        if count < 2 {
            return false;
        }
        let last = Duration::from_nanos(self.per_reply_nanos.saturating_mul(u64::from(count - 1)));
        let late = last > elapsed;
        if late {
            self.lower_to(elapsed / count);
        }
        late
    }

    /// The kernel's word that two replies sent one after the other by one
    /// call left `gap` apart: a reading of the pace.
    pub fn observe_gap(&mut self, gap: Duration) {
        if gap > MOST_PER_REPLY {
            return;
        }
        let gap = u64::try_from(gap.as_nanos()).unwrap_or(u64::MAX);
        let quickest = self.quickest.map_or(gap, |q| q.min(gap));
        self.measured += 1;
        if self.measured >= WINDOW {
            self.per_reply_nanos = quickest / MARGIN.1 * MARGIN.0;
            self.learned = true;
            self.quickest = None;
            self.measured = 0;
        } else {
            self.quickest = Some(quickest);
        }
    }

    /// Checks the stamp `predicted` of reply `position` (from 0) of a call
    /// stamped from `first` against the kernel's word that it left at
    /// `sent`: whether it was late (then the pace is lowered now, to what
    /// would have been on time).
    pub fn check(
        &mut self,
        first: SystemTime,
        position: usize,
        predicted: SystemTime,
        sent: SystemTime,
    ) -> bool {
        let late = predicted > sent;
        if late {
            if let Ok(count) = u32::try_from(position) {
                let elapsed = sent.duration_since(first).unwrap_or_default();
                self.lower_to(elapsed.checked_div(count).unwrap_or_default());
            }
        }
        late
    }

    /// Lowers the pace to `pace` now (never raises it), and starts the
    /// window anew: the gaps it held were slower.
    fn lower_to(&mut self, pace: Duration) {
        let pace = u64::try_from(pace.as_nanos()).unwrap_or(u64::MAX);
        self.per_reply_nanos = self.per_reply_nanos.min(pace);
        self.quickest = None;
        self.measured = 0;
    }

    /// The gap stamps count per reply: [`MARGIN`] of the quickest gap
    /// measured, or less after a late stamp (`ZERO` before the first
    /// window).
    pub fn per_reply(&self) -> Duration {
        Duration::from_nanos(self.per_reply_nanos)
    }

    /// Whether a window of gaps was ever measured (the pace may since
    /// have been lowered, to zero even).
    pub fn is_known(&self) -> bool {
        self.learned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    fn learned(gap: Duration) -> TransmitPace {
        let mut pace = TransmitPace::default();
        for _ in 0..WINDOW {
            pace.observe_gap(gap);
        }
        pace
    }

    #[test]
    fn a_pace_lowered_to_zero_by_a_late_first_stamp_stays_known() {
        let mut pace = learned(micros(2));
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        // The call's first reply stamped after the kernel sent it: nothing
        // but zero is on time.
        assert!(pace.check(first, 0, first, first - micros(1)));
        assert_eq!(pace.per_reply(), Duration::ZERO);
        assert!(pace.is_known());
    }

    #[test]
    fn few_replies_waiting_go_one_a_call_more_go_together() {
        assert_eq!(per_call(1), 1);
        assert_eq!(per_call(SINGLY_UP_TO), 1);
        assert_eq!(per_call(SINGLY_UP_TO + 1), MOST_PER_BATCH);
        assert_eq!(per_call(1_000), MOST_PER_BATCH);
    }

    #[test]
    fn until_a_window_of_gaps_is_measured_every_reply_gets_the_reading() {
        let mut pace = TransmitPace::default();
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        for _ in 1..WINDOW {
            pace.observe_gap(micros(4));
        }
        assert_eq!(pace.transmit_time(first, 0), first);
        assert_eq!(pace.transmit_time(first, 5), first);
        pace.observe_gap(micros(4));
        // A margin below the quickest gap: 2 µs of 4.
        assert_eq!(pace.transmit_time(first, 5), first + micros(10));
    }

    #[test]
    fn reply_k_is_stamped_k_of_the_quickest_gaps_after_the_reading() {
        let mut pace = TransmitPace::default();
        for n in 0..WINDOW {
            pace.observe_gap(micros(if n == 7 { 4 } else { 8 }));
        }
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        assert_eq!(pace.transmit_time(first, 0), first);
        assert_eq!(pace.transmit_time(first, 1), first + micros(2));
        assert_eq!(pace.transmit_time(first, 7), first + micros(14));
    }

    /// A kernel that takes `fixed` before the first reply of a call leaves
    /// and `gap` between replies: when reply `k` leaves.
    fn leaves(first: SystemTime, fixed: u64, gap: u64, k: usize) -> SystemTime {
        first + Duration::from_nanos(fixed + gap * k as u64)
    }

    #[test]
    fn no_reply_is_stamped_after_it_leaves_whatever_the_calls_sizes_and_first_replys_cost() {
        // The first reply of a call may cost far more than the gap after
        // it (the system call's entry, a cold path): the pace read as a
        // call's time over its replies was then later than the replies
        // (5 µs + 1 µs a reply, read from calls of two: 7 / 3 = 2.3 µs a
        // reply, reply 7 of a call of 8 stamped 4 µs after it left).
        for (fixed, gap) in [(5_000u64, 1_000u64), (0, 3_000), (3_000, 3_000), (500, 800)] {
            let mut pace = TransmitPace::default();
            for round in 0..(4 * WINDOW as usize) {
                // Calls of two teach the pace first, then larger ones come.
                let n = match round {
                    r if r < 2 * WINDOW as usize => 2,
                    r => [8usize, 3, 8, 5, 2, 7][r % 6],
                };
                // Each call reads the clock after the one before returned.
                let first = SystemTime::UNIX_EPOCH + micros(100 * round as u64);
                let start = pace.batch_start(first);
                let stamps: Vec<_> = (0..n).map(|k| pace.transmit_time(start, k)).collect();
                // Back from the call once the last reply left, plus a
                // little; the kernel's times of the sampled ones after.
                let back = leaves(first, fixed, gap, n - 1) + micros(1);
                assert!(!pace.returned(back.duration_since(start).unwrap_or_default(), n));
                for (k, &stamp) in stamps.iter().enumerate() {
                    let sent = leaves(first, fixed, gap, k);
                    assert!(
                        stamp <= sent,
                        "{fixed} ns + {gap} ns a reply, a call of {n}: reply {k}"
                    );
                    assert!(!pace.check(start, k, stamp, sent));
                    if k > 0 {
                        pace.observe_gap(
                            sent.duration_since(leaves(first, fixed, gap, k - 1))
                                .unwrap(),
                        );
                    }
                }
            }
            assert_eq!(pace.per_reply(), Duration::from_nanos(gap / 2));
        }
    }

    #[test]
    fn a_reply_read_for_again_is_stamped_from_the_later_of_the_reading_and_the_pace() {
        let mut pace = learned(micros(4)); // 2 µs a reply
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        // Two seals ahead of reply 2 took 5 µs: its own reading wins.
        let reading = first + micros(5);
        assert_eq!(pace.transmit_time_read_at(first, 2, reading), reading);
        // Quicker seals: the pace's bound is the later one.
        assert_eq!(
            pace.transmit_time_read_at(first, 3, first + micros(1)),
            first + micros(6)
        );
        // And the next call starts from no earlier than either.
        assert_eq!(pace.batch_start(first), first + micros(6));
    }

    #[test]
    fn a_stamp_the_kernel_shows_late_lowers_the_pace_at_once() {
        let first = SystemTime::UNIX_EPOCH + micros(1_000);
        let mut pace = learned(micros(6)); // 3 µs a reply
                                           // The kernel gets quicker: reply 2 stamped +6 µs left at +3.
        let predicted = pace.transmit_time(first, 2);
        assert!(pace.check(first, 2, predicted, first + micros(3)));
        assert_eq!(pace.per_reply(), Duration::from_nanos(1_500));
        assert!(pace.transmit_time(first, 2) <= first + micros(3));
        let predicted = pace.transmit_time(first, 3);
        assert!(!pace.check(first, 3, predicted, first + micros(5)));
        // Slower gaps after it do not raise it before a whole window.
        for _ in 1..WINDOW {
            pace.observe_gap(micros(3));
        }
        assert_eq!(pace.per_reply(), Duration::from_nanos(1_500));
    }

    #[test]
    fn gaps_too_long_to_believe_teach_nothing() {
        let mut pace = TransmitPace::default();
        for _ in 0..WINDOW {
            pace.observe_gap(micros(500));
            assert!(!pace.returned(micros(3), 1));
            assert!(!pace.returned(micros(5), 0));
        }
        assert_eq!(pace, TransmitPace::default());
    }

    #[test]
    fn a_change_of_pace_is_followed_within_a_window() {
        let mut pace = learned(micros(4));
        assert_eq!(pace.per_reply(), micros(2));
        // The kernel gets slower (another load): 8 µs a reply.
        for _ in 0..WINDOW {
            pace.observe_gap(micros(8));
        }
        assert_eq!(pace.per_reply(), micros(4));
    }

    #[test]
    fn a_call_back_sooner_than_its_last_stamp_lowers_the_pace_and_the_next_starts_after_it() {
        let mut pace = learned(micros(6)); // 3 µs a reply
        let first = pace.batch_start(SystemTime::UNIX_EPOCH + micros(1_000));
        let last = pace.transmit_time(first, 7); // first + 21 µs
        assert_eq!(last, first + micros(21));
        // The kernel was done after 16 µs: the last stamp was 5 µs late.
        assert!(pace.returned(micros(16), 8));
        assert_eq!(pace.per_reply(), micros(2)); // 16 / 8
                                                 // The next call read the clock before that last stamp: it starts
                                                 // from the stamp, so stamps never go backwards.
        let next = pace.batch_start(first + micros(19));
        assert_eq!(next, last);
        assert!(pace.transmit_time(next, 1) > last);
        // One read later than every stamp given starts from the reading.
        let later = first + micros(40);
        assert_eq!(pace.batch_start(later), later);
        // A call as quick as its stamps said is not late.
        assert!(!pace.returned(micros(14), 8));
    }
}
