//! What a server that has fallen behind still answers.
//!
//! One receive loop on one core answers a login with a session and a reply,
//! the costliest thing it does. When datagrams arrive faster than it can
//! answer them (a flood of logins from forged sources, which cost a forger
//! nothing on a LAN), the socket's queue grows and every datagram in it, the
//! sessions' own requests included, waits behind the flood: tens of
//! milliseconds, then lost when the queue overflows.
//!
//! The kernel's receive timestamp tells how long each datagram waited. Past
//! [`LATE_AFTER`], the server is behind, and it spends its time on the
//! sessions it has: their requests are answered as always, while requests
//! from peers without a session (a `login`, a number) are answered only
//! within [`STRANGERS_PER_SECOND`]; the rest are shed, unanswered, and
//! counted. Shedding costs little more than reading, so the queue drains and
//! the server settles near [`LATE_AFTER`] behind, answering as many new peers
//! as it can spare time for. The budget means a new peer is never locked out
//! while the server is busy with real sessions (a closed-loop load keeps any
//! queue deep), and its client resends (hora after a second).
//!
//! The wait is the wall clock's (the kernel stamps with it): a step of the
//! clock between a datagram's arrival and its reading makes that batch look
//! late or on time, and the budget keeps new peers admitted meanwhile.
//!
//! A herd is not a flood, but the queue can't tell them apart. A LAN's
//! clients often start together (a classroom logging in at once, hosts
//! booting after a power cut): 10,000 logins from 10,000 addresses inside
//! 50 ms look, to the queue, like the first 50 ms of a flood, and each such
//! client sends its login once (the seed's Python client never resends).
//! Answering them all at once would make the sessions' answers wait behind
//! them (tens of milliseconds); shedding them loses clients that never try
//! again. So a late stranger's request beyond the budget is neither answered
//! nor lost at once: it waits in a [`Backlog`] in user space (at most
//! [`BACKLOG`] of them, each for at most [`BACKLOG_AGE`]), and the server
//! answers it, [`BACKLOG_CHUNK`] at a time, when its socket has stayed
//! empty for [`BACKLOG_AFTER_IDLE`]: when it has time to spare. Reading a
//! datagram into the backlog costs about what shedding it did, so the queue
//! drains as fast as before and the sessions wait behind no login; the
//! herd is served moments later. Only what overflows the backlog, or waits
//! in it too long (a flood that never leaves the socket idle), is shed: a
//! server kept behind by a shortage of CPU (a flood from other cores) is
//! never idle, and must not spend what it has on logins.
//!
//! Shedding by age, not by count, is what the kernel's first-in first-out
//! queue allows: no user-space policy can read a session's datagram before
//! the flood queued ahead of it, but every datagram read can be cheap.

use std::time::{Duration, Instant};

/// How long a datagram may wait in the socket's queue before the server
/// counts as behind: a few hundred datagrams' worth of work, where an idle
/// server reads within microseconds.
pub const LATE_AFTER: Duration = Duration::from_millis(2);

/// How many requests from peers without a session are still answered at
/// once each second while the server is behind: more than a LAN's people
/// log in, and about 1% of a core.
pub const STRANGERS_PER_SECOND: u32 = 1_000;

/// The most late strangers' requests answered at once in a burst: a
/// second's budget.
pub const STRANGERS_BURST: u32 = STRANGERS_PER_SECOND;

/// The most late strangers' requests waiting in the [`Backlog`]: a herd of
/// 10,000 clients logging in together (the default `max_sessions`), about
/// 560 KB.
pub const BACKLOG: usize = 10_000;

/// The longest a request waits in the [`Backlog`]: past it, the server has
/// had no spare moment for a second, and hora has resent its login anyway.
pub const BACKLOG_AGE: Duration = Duration::from_secs(1);

/// The admission of requests from peers without a session: a token bucket
/// ([`STRANGERS_BURST`], refilled at [`STRANGERS_PER_SECOND`]), with `now`
/// passed in. Only late requests take a token; on time, all are answered.
/// A late request it turns away goes to the [`Backlog`].
#[derive(Debug, Clone)]
pub struct Admission {
    tokens: f64,
    /// When the tokens were last counted.
    counted: Option<Instant>,
}

impl Default for Admission {
    /// The reserve full.
    fn default() -> Self {
        Admission {
            tokens: f64::from(STRANGERS_BURST),
            counted: None,
        }
    }
}

impl Admission {
    /// Whether a request from a peer without a session, one the protocol
    /// would answer, that waited `waited` in the socket's queue, is answered
    /// at `now`: always when on time; when late, while tokens last.
    pub fn admits(&mut self, waited: Duration, now: Instant) -> bool {
        if waited <= LATE_AFTER {
            return true;
        }
        if let Some(counted) = self.counted {
            let refill = now.saturating_duration_since(counted).as_secs_f64()
                * f64::from(STRANGERS_PER_SECOND);
            self.tokens = (self.tokens + refill).min(f64::from(STRANGERS_BURST));
        }
        self.counted = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// How long the socket must stay empty before the [`Backlog`] is served:
/// the server has time to spare. A flood of a thousand datagrams a second
/// or more never leaves it so long.
pub const BACKLOG_AFTER_IDLE: Duration = Duration::from_millis(1);

/// How many backlog requests are answered per idle moment: about a
/// millisecond of work, all a session's request can wait behind.
pub const BACKLOG_CHUNK: usize = 256;

/// Late strangers' requests waiting for the server to have time to spare,
/// oldest first: at most [`BACKLOG`], each for at most [`BACKLOG_AGE`].
/// `T` is what the server keeps of a request.
#[derive(Debug, Clone)]
pub struct Backlog<T> {
    waiting: std::collections::VecDeque<(Instant, T)>,
}

impl<T> Default for Backlog<T> {
    fn default() -> Self {
        Backlog {
            waiting: std::collections::VecDeque::new(),
        }
    }
}

impl<T> Backlog<T> {
    /// Queues `request`, read at `now`; `false` (the caller sheds it) if
    /// the backlog is full.
    pub fn push(&mut self, request: T, now: Instant) -> bool {
        if self.waiting.len() >= BACKLOG {
            return false;
        }
        self.waiting.push_back((now, request));
        true
    }

    /// The oldest request still young enough at `now`, if any, and how many
    /// older ones were dropped to reach it (the caller sheds them).
    pub fn pop(&mut self, now: Instant) -> (Option<T>, usize) {
        let mut aged = 0;
        while let Some((read, request)) = self.waiting.pop_front() {
            if now.saturating_duration_since(read) <= BACKLOG_AGE {
                return (Some(request), aged);
            }
            aged += 1;
        }
        (None, aged)
    }

    /// Empties it (shutdown); how many were waiting.
    pub fn clear(&mut self) -> usize {
        let waiting = self.waiting.len();
        self.waiting.clear();
        waiting
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATE: Duration = Duration::from_millis(3);

    fn admitted(admission: &mut Admission, asked: u32, now: Instant) -> usize {
        (0..asked).filter(|_| admission.admits(LATE, now)).count()
    }

    #[test]
    fn on_time_is_always_admitted_and_spends_nothing() {
        let now = Instant::now();
        let mut admission = Admission::default();
        let on_time = (0..10 * STRANGERS_BURST)
            .filter(|_| admission.admits(LATE_AFTER, now))
            .count();
        assert_eq!(on_time, 10 * STRANGERS_BURST as usize);
        assert_eq!(
            admitted(&mut admission, STRANGERS_BURST + 1, now),
            STRANGERS_BURST as usize
        );
    }

    #[test]
    fn late_strangers_are_admitted_within_the_budget_then_held_to_the_rate() {
        let start = Instant::now();
        let mut admission = Admission::default();
        assert_eq!(
            admitted(&mut admission, 3 * STRANGERS_BURST, start),
            STRANGERS_BURST as usize
        );
        // A second brings a second's worth, no more.
        let later = start + Duration::from_secs(1);
        assert_eq!(
            admitted(&mut admission, 3 * STRANGERS_PER_SECOND, later),
            STRANGERS_PER_SECOND as usize
        );
        assert!(
            admission.admits(Duration::ZERO, later),
            "on time is never shed"
        );
        // A long quiet spell refills the budget, never past it.
        let quiet = later + Duration::from_secs(3_600);
        assert_eq!(
            admitted(&mut admission, 2 * STRANGERS_BURST, quiet),
            STRANGERS_BURST as usize
        );
    }

    #[test]
    fn the_backlog_holds_a_herd_in_order_and_no_more() {
        let now = Instant::now();
        let mut backlog = Backlog::default();
        for n in 0..BACKLOG {
            assert!(backlog.push(n, now));
        }
        assert!(!backlog.push(BACKLOG, now), "full: the caller sheds it");
        assert_eq!(backlog.pop(now), (Some(0), 0));
        assert_eq!(backlog.pop(now + BACKLOG_AGE), (Some(1), 0));
        assert_eq!(backlog.len(), BACKLOG - 2);
        assert_eq!(backlog.clear(), BACKLOG - 2);
        assert!(backlog.is_empty());
    }

    #[test]
    fn requests_that_waited_too_long_in_the_backlog_are_dropped_and_counted() {
        let start = Instant::now();
        let mut backlog = Backlog::default();
        backlog.push("old", start);
        backlog.push("older too", start + Duration::from_millis(10));
        backlog.push("young", start + BACKLOG_AGE);
        let late = start + BACKLOG_AGE + Duration::from_millis(11);
        assert_eq!(backlog.pop(late), (Some("young"), 2));
        assert_eq!(backlog.pop(late), (None, 0));
    }
}
