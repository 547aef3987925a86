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
//! A herd is not a flood. A LAN's clients often start together (a classroom
//! logging in at once, hosts booting after a power cut): 10,000 logins from
//! 10,000 addresses inside 50 ms look, to the queue, like the first 50 ms of
//! a flood, and each such client sends its login once (the seed's Python
//! client never resends). So the budget is a token bucket: a reserve of
//! [`STRANGERS_BURST`] admissions that a herd spends at once, refilled at
//! [`STRANGERS_PER_SECOND`]. A flood spends the reserve in its first tens of
//! milliseconds and is then held to the rate; the sessions' answers wait
//! behind the reserve's logins once, not for the flood's whole length.
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
/// second while the server is behind, once the reserve is spent: more than
/// a LAN's people log in, and about 1% of a core.
pub const STRANGERS_PER_SECOND: u32 = 1_000;

/// The reserve of late strangers' requests answered at once: a herd of
/// 10,000 clients logging in together (the default `max_sessions`). At
/// ~4 µs a login it is ~40 ms of work, spent once per flood.
pub const STRANGERS_BURST: u32 = 10_000;

/// The admission of requests from peers without a session: a token bucket
/// ([`STRANGERS_BURST`], refilled at [`STRANGERS_PER_SECOND`]), with `now`
/// passed in. Only late requests take a token; on time, all are answered.
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
    fn a_herd_is_admitted_whole_then_a_flood_is_held_to_the_rate() {
        let start = Instant::now();
        let mut admission = Admission::default();
        // The herd: the whole reserve, late, at once.
        assert_eq!(
            admitted(&mut admission, STRANGERS_BURST, start),
            STRANGERS_BURST as usize
        );
        // A flood going on: nothing more at once...
        assert_eq!(admitted(&mut admission, 100, start), 0);
        // ...then the rate: a second brings a second's worth, no more.
        let later = start + Duration::from_secs(1);
        assert_eq!(
            admitted(&mut admission, 3 * STRANGERS_PER_SECOND, later),
            STRANGERS_PER_SECOND as usize
        );
        assert!(
            admission.admits(Duration::ZERO, later),
            "on time is never shed"
        );
        // A long quiet spell refills the reserve, never past it.
        let quiet = later + Duration::from_secs(3_600);
        assert_eq!(
            admitted(&mut admission, 2 * STRANGERS_BURST, quiet),
            STRANGERS_BURST as usize
        );
    }
}
