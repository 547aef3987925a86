//! Interleaved mode's client log (RFC 9769, as chrony serves it), with no
//! I/O and no clock.
//!
//! In basic mode a reply's transmit timestamp is written before the reply
//! leaves, so it can only be a prediction. In interleaved mode a client
//! names, in its request's origin field, the receive timestamp of an
//! earlier reply of ours; we answer with that earlier reply's true transmit
//! time, which the kernel told us after it left.
//!
//! The log remembers, for each reply to a request that looked interleaved,
//! its receive timestamp (the key the client will echo) and, once the kernel
//! reports it, when it left. It is keyed by the timestamp, not by the
//! client's address, so clients behind one NAT work, and it is a ring of
//! fixed capacity ordered by receive time, as chrony's: 16 bytes an entry,
//! allocated on first use, never more. A forger can push entries through
//! it (evicting real clients', who then get basic replies until they are
//! logged again) but never grow it, and can only get back the transmit time
//! of a reply whose receive timestamp it already knows. Each entry answers
//! one interleaved request: a replayed request gets a basic reply.

/// The bytes one entry takes (its receive timestamp, its transmit time as an
/// offset from it, its flags).
pub const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// How far before the newest entry a receive timestamp may be and still be
/// logged in its place, in NTP units (2^-32 s): one second, as chrony. An
/// older one means the clock stepped back, and the entries "in the future"
/// are dropped.
const FUTURE_LIMIT: u64 = 1 << 32;

/// The most entries moved to insert one out of order (datagrams stamped on
/// several CPUs); further back, the closest older entry is replaced.
const INSERT_LIMIT: usize = 64;

/// The entry answered an interleaved request already, or its receive
/// timestamp was logged twice: it answers nothing more.
const DISABLED: u8 = 1;
/// The kernel's transmit time is known.
const VALID_TRANSMIT: u8 = 2;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    /// The receive timestamp the reply carried, as the 64-bit NTP value.
    receive: u64,
    /// When the reply left, minus `receive`, in NTP units (about ±0.5 s).
    transmit_offset: i32,
    flags: u8,
}

/// What the log knows of the reply an interleaved request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// It left at this NTP time (64-bit), as the kernel said: answer in
    /// interleaved mode. The entry is now used.
    Sent(u64),
    /// It is logged but the kernel never said when it left (or not yet):
    /// answer in basic mode.
    NoTransmitTime,
    /// No such reply is logged (evicted, used, or never ours).
    Unknown,
}

/// The ring of replies that interleaved requests may name.
#[derive(Debug, Clone)]
pub struct ClientLog {
    /// Allocated on the first entry, to `capacity`.
    entries: Vec<Entry>,
    capacity: usize,
    /// Where the oldest entry is.
    first: usize,
    /// How many entries are live.
    len: usize,
}

/// `a - b` on NTP's 64-bit circle: adjacent eras compare as neighbours.
fn difference(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

impl ClientLog {
    /// A log of at most `capacity` entries (`capacity` × [`ENTRY_BYTES`]
    /// bytes once used); 0 logs nothing, so every reply is basic.
    pub fn new(capacity: usize) -> ClientLog {
        ClientLog {
            entries: Vec::new(),
            capacity,
            first: 0,
            len: 0,
        }
    }

    /// The most entries it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entries it holds now.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes it takes (0 until its first entry).
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * ENTRY_BYTES
    }

    fn slot(&self, index: usize) -> usize {
        // `first` and `index` are both below the capacity.
        let slot = self.first + index;
        if slot >= self.capacity {
            slot - self.capacity
        } else {
            slot
        }
    }

    fn at(&self, index: usize) -> Entry {
        self.entries[self.slot(index)]
    }

    fn at_mut(&mut self, index: usize) -> &mut Entry {
        let slot = self.slot(index);
        &mut self.entries[slot]
    }

    /// `Ok(index)` of the entry for `receive`, or `Err(index)` where it
    /// would go to keep the order. The entries asked for are nearly always
    /// recent (a reply just sent, a client's last one), so the search gallops
    /// back from the newest: a few steps, over entries still in cache.
    fn find(&self, receive: u64) -> Result<usize, usize> {
        let mut high = self.len;
        let mut step = 1;
        let mut low = loop {
            if high == 0 {
                break 0;
            }
            let probe = high.saturating_sub(step);
            match difference(self.at(probe).receive, receive) {
                0 => return Ok(probe),
                d if d < 0 => break probe + 1,
                _ => {
                    high = probe;
                    step *= 2;
                }
            }
        };
        low = low.min(high);
        while low < high {
            let middle = low + (high - low) / 2;
            let at = self.at(middle).receive;
            match difference(at, receive) {
                0 => return Ok(middle),
                d if d < 0 => low = middle + 1,
                _ => high = middle,
            }
        }
        Err(low)
    }

    /// Logs a reply about to be sent with receive timestamp `receive`, its
    /// transmit time to come ([`ClientLog::sent`]). A receive timestamp
    /// logged twice answers nothing (it could name either reply).
    pub fn log(&mut self, receive: u64) {
        if self.capacity == 0 || receive == 0 {
            return;
        }
        if self.entries.is_empty() {
            self.entries = vec![Entry::default(); self.capacity];
        }
        let mut index = match self.find(receive) {
            Ok(index) => {
                self.at_mut(index).flags |= DISABLED;
                return;
            }
            Err(index) => index,
        };
        if index < self.len {
            // Older than the newest: after a step back, forget what now
            // lies in the future; else insert it if it is nearly the newest,
            // or overwrite the closest older entry (the order holds).
            while index < self.len
                && difference(self.at(self.len - 1).receive, receive) > FUTURE_LIMIT as i64
            {
                self.len -= 1;
            }
            if index + INSERT_LIMIT < self.len {
                let index = index.saturating_sub(1);
                *self.at_mut(index) = Entry {
                    receive,
                    ..Entry::default()
                };
                return;
            }
        }
        if self.len == self.capacity {
            // Full: the oldest goes.
            self.first = (self.first + 1) % self.capacity;
            self.len -= 1;
            index = index.saturating_sub(1);
        }
        self.len += 1;
        for moved in (index + 1..self.len).rev() {
            let previous = self.at(moved - 1);
            *self.at_mut(moved) = previous;
        }
        *self.at_mut(index) = Entry {
            receive,
            ..Entry::default()
        };
    }

    /// The kernel says the reply with receive timestamp `receive` left at
    /// `transmit` (both 64-bit NTP). Whether that reply is logged.
    pub fn sent(&mut self, receive: u64, transmit: u64) -> bool {
        let Ok(index) = self.find(receive) else {
            return false;
        };
        let entry = self.at_mut(index);
        match i32::try_from(difference(transmit, receive)) {
            Ok(offset) => {
                entry.transmit_offset = offset;
                entry.flags |= VALID_TRANSMIT;
            }
            Err(_) => entry.flags &= !VALID_TRANSMIT,
        }
        true
    }

    /// What an interleaved request naming `receive` (its origin field) is
    /// answered from; a logged entry is used up by it.
    pub fn take(&mut self, receive: u64) -> Earlier {
        let Ok(index) = self.find(receive) else {
            return Earlier::Unknown;
        };
        let entry = self.at_mut(index);
        if entry.flags & DISABLED != 0 {
            return Earlier::Unknown;
        }
        entry.flags |= DISABLED;
        if entry.flags & VALID_TRANSMIT == 0 {
            return Earlier::NoTransmitTime;
        }
        Earlier::Sent(receive.wrapping_add_signed(i64::from(entry.transmit_offset)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1 << 32;
    const MICRO: u64 = SECOND / 1_000_000;

    fn at(seconds: u64) -> u64 {
        (3_000_000_000 << 32) + seconds * SECOND
    }

    #[test]
    fn an_entry_is_sixteen_bytes() {
        assert_eq!(ENTRY_BYTES, 16);
    }

    #[test]
    fn a_logged_reply_answers_one_interleaved_request_with_its_transmit_time() {
        let mut log = ClientLog::new(8);
        let receive = at(10) | 1;
        log.log(receive);
        assert!(log.sent(receive, receive + 7 * MICRO));
        assert_eq!(log.take(receive), Earlier::Sent(receive + 7 * MICRO));
        assert_eq!(log.take(receive), Earlier::Unknown, "used once");
    }

    #[test]
    fn without_the_kernels_time_the_request_gets_a_basic_reply() {
        let mut log = ClientLog::new(8);
        log.log(at(1));
        assert_eq!(log.take(at(1)), Earlier::NoTransmitTime);
        assert_eq!(log.take(at(2)), Earlier::Unknown);
        assert!(
            !log.sent(at(2), at(2)),
            "an unlogged reply's time is dropped"
        );
    }

    #[test]
    fn a_receive_timestamp_logged_twice_answers_nothing() {
        let mut log = ClientLog::new(8);
        log.log(at(1));
        log.log(at(1));
        log.sent(at(1), at(1) + MICRO);
        assert_eq!(log.take(at(1)), Earlier::Unknown);
    }

    #[test]
    fn a_full_log_forgets_its_oldest_and_never_grows() {
        let mut log = ClientLog::new(4);
        for n in 0..1_000 {
            log.log(at(n));
            assert!(log.len() <= 4);
        }
        assert_eq!(log.bytes(), 4 * ENTRY_BYTES);
        assert_eq!(log.take(at(995)), Earlier::Unknown);
        for n in 996..1_000 {
            assert_eq!(log.take(at(n)), Earlier::NoTransmitTime, "{n}");
        }
    }

    #[test]
    fn out_of_order_receive_times_are_inserted_in_order() {
        let mut log = ClientLog::new(16);
        for n in [1, 3, 2, 5, 4] {
            log.log(at(0) + n * MICRO);
            log.sent(at(0) + n * MICRO, at(0) + n * MICRO + 100 * n);
        }
        let order: Vec<u64> = (0..log.len()).map(|i| log.at(i).receive).collect();
        assert_eq!(
            order,
            (1..=5).map(|n| at(0) + n * MICRO).collect::<Vec<_>>()
        );
        for n in 1..=5 {
            let receive = at(0) + n * MICRO;
            assert_eq!(log.take(receive), Earlier::Sent(receive + 100 * n));
        }
    }

    #[test]
    fn out_of_order_in_a_full_log_keeps_the_order() {
        let mut log = ClientLog::new(3);
        for n in [10, 20, 30, 25, 15, 40] {
            log.log(at(0) + n);
            let keys: Vec<u64> = (0..log.len()).map(|i| log.at(i).receive).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        }
        assert_eq!(log.len(), 3);
    }

    #[test]
    fn after_the_clock_steps_back_the_entries_in_the_future_go() {
        let mut log = ClientLog::new(8);
        log.log(at(100));
        log.log(at(101));
        log.log(at(50));
        assert_eq!(log.len(), 1);
        assert_eq!(log.take(at(100)), Earlier::Unknown);
        assert_eq!(log.take(at(50)), Earlier::NoTransmitTime);
    }

    #[test]
    fn far_out_of_order_overwrites_the_closest_older_entry() {
        let mut log = ClientLog::new(256);
        for n in 0..200 {
            log.log(at(0) + 10 * n);
        }
        log.log(at(0) + 10 * 50 + 5);
        assert_eq!(log.len(), 200);
        assert_eq!(log.take(at(0) + 500), Earlier::Unknown, "overwritten");
        assert_eq!(log.take(at(0) + 505), Earlier::NoTransmitTime);
        assert_eq!(log.take(at(0) + 510), Earlier::NoTransmitTime);
    }

    #[test]
    fn the_era_boundary_is_crossed_in_order() {
        let mut log = ClientLog::new(4);
        let last = u64::MAX - SECOND / 2;
        log.log(last);
        log.log(last.wrapping_add(SECOND));
        assert_eq!(log.len(), 2);
        log.sent(last.wrapping_add(SECOND), 5);
        assert_eq!(log.take(last.wrapping_add(SECOND)), Earlier::Sent(5));
        assert_eq!(log.take(last), Earlier::NoTransmitTime);
    }

    #[test]
    fn a_transmit_time_too_far_from_its_receive_time_is_not_believed() {
        let mut log = ClientLog::new(4);
        log.log(at(5));
        log.sent(at(5), at(7));
        assert_eq!(log.take(at(5)), Earlier::NoTransmitTime);
    }

    #[test]
    fn an_off_log_logs_nothing_and_takes_no_memory() {
        let mut log = ClientLog::new(0);
        log.log(at(1));
        assert_eq!(log.len(), 0);
        assert_eq!(log.bytes(), 0);
        assert_eq!(log.take(at(1)), Earlier::Unknown);
        assert_eq!(ClientLog::new(1_000).bytes(), 0, "allocated on first use");
    }
}
