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
//! Shedding by age, not by count, is what the kernel's first-in first-out
//! queue allows: no user-space policy can read a session's datagram before
//! the flood queued ahead of it, but every datagram read can be cheap.

use std::time::{Duration, Instant};

/// How long a datagram may wait in the socket's queue before the server
/// counts as behind: a few hundred datagrams' worth of work, where an idle
/// server reads within microseconds.
pub const LATE_AFTER: Duration = Duration::from_millis(2);

/// How many requests from peers without a session are still answered each
/// second while the server is behind: more than a LAN's people log in, and
/// about 1% of a core (a login costs ~12 µs).
pub const STRANGERS_PER_SECOND: u32 = 1_000;

/// The admission of requests from peers without a session: a budget per
/// second, with `now` passed in. A second's window opens with the first late
/// request after the last one closed.
#[derive(Debug, Clone, Default)]
pub struct Admission {
    window: Option<Instant>,
    admitted: u32,
}

impl Admission {
    /// Whether a request from a peer without a session, one the protocol
    /// would answer, that waited `waited` in the socket's queue, is answered
    /// at `now`: always when on time; when late, within the budget.
    pub fn admits(&mut self, waited: Duration, now: Instant) -> bool {
        if waited <= LATE_AFTER {
            return true;
        }
        let open = self
            .window
            .is_some_and(|start| now.saturating_duration_since(start) < Duration::from_secs(1));
        if !open {
            self.window = Some(now);
            self.admitted = 0;
        }
        if self.admitted < STRANGERS_PER_SECOND {
            self.admitted += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LATE: Duration = Duration::from_millis(3);

    #[test]
    fn on_time_is_always_admitted() {
        let now = Instant::now();
        let mut admission = Admission::default();
        let admitted = (0..10 * STRANGERS_PER_SECOND)
            .filter(|_| admission.admits(LATE_AFTER, now))
            .count();
        assert_eq!(admitted, 10 * STRANGERS_PER_SECOND as usize);
    }

    #[test]
    fn late_is_admitted_within_the_budget_each_second() {
        let start = Instant::now();
        let mut admission = Admission::default();
        let admitted = |admission: &mut Admission, now| {
            (0..3 * STRANGERS_PER_SECOND)
                .filter(|_| admission.admits(LATE, now))
                .count()
        };
        assert_eq!(
            admitted(&mut admission, start),
            STRANGERS_PER_SECOND as usize
        );
        let almost = start + Duration::from_millis(999);
        assert_eq!(admitted(&mut admission, almost), 0);
        assert!(
            admission.admits(Duration::ZERO, almost),
            "on time is never shed"
        );
        let next = start + Duration::from_secs(1);
        assert_eq!(
            admitted(&mut admission, next),
            STRANGERS_PER_SECOND as usize
        );
    }
}
