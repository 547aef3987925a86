//! Budgets on log lines, so that what a peer sends can't flood the log.
//!
//! Every line a peer can cause (a login, an idle expiry, an invalid datagram,
//! a refusal...) is of one [`LogKind`], and each kind has its own budget of
//! lines a second, at every level: a flood of forged logins fills the login
//! kind's budget and no other. The first line allowed after a suppression
//! says how many of its kind were held back (`suppressed=N`).
//!
//! Each worker has budgets of its own, the lines a second shared out among
//! them ([`LogBudget::for_worker`]): a flood spread over the workers then
//! takes no lock another worker takes, and the log still gets at most
//! about [`LINES_PER_SECOND`] of a kind from them all.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How many lines of its kind were held back before one allowed, if any:
/// the line's `suppressed` field, which `tracing` writes only when there
/// were some (`suppressed=0` on every line was noise).
pub type Suppressed = Option<u64>;

/// How many lines of one kind may be logged per second.
pub const LINES_PER_SECOND: u32 = 10;

/// Lets through at most `per_window` events per `window`, and counts the
/// rest so the first event of the next window can say how many were held.
#[derive(Debug)]
pub struct Budget {
    window: Duration,
    per_window: u32,
    window_start: Instant,
    used: u32,
    suppressed: u64,
}

impl Budget {
    /// A budget of `per_window` events every `window`.
    pub fn new(per_window: u32, window: Duration, now: Instant) -> Self {
        Budget {
            window,
            per_window,
            window_start: now,
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether an event may happen at `now`. `Some(n)` allows it, `n`
    /// being how many were suppressed since the last one allowed.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if now.saturating_duration_since(self.window_start) >= self.window {
            self.window_start = now;
            self.used = 0;
        }
        if self.used < self.per_window {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        }
    }
}

/// The kinds of log line a peer can cause, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// A session opened.
    Login,
    /// A session ended by option `2`.
    Logout,
    /// A session ended by an invalid option.
    InvalidOption,
    /// A session idled out.
    Idle,
    /// A session that had not asked made room for a new login.
    Displaced,
    /// A login refused by the session limits.
    Refused,
    /// A datagram that was not a request.
    InvalidDatagram,
    /// A time reply served (debug).
    TimeServed,
    /// A source outside the access lists.
    Denied,
    /// A source over its rate limit.
    RateLimited,
    /// A stranger's request shed while the server was behind.
    Shed,
    /// A datagram a standard protocol does not answer.
    Ignored,
    /// A protocol v2 datagram with a cookie or token that is not good: a
    /// forger's, or a client's from before a restart.
    Forged,
    /// A receive that failed.
    ReceiveError,
    /// A send that failed (debug).
    SendError,
    /// A key exchange's TLS handshake that failed, with its reason (a
    /// client that refused horad's certificate says so here).
    HandshakeFailed,
}

const KINDS: usize = LogKind::HandshakeFailed as usize + 1;

/// One [`Budget`] per [`LogKind`], shared by the tasks of one worker (or of
/// the rest of the daemon).
#[derive(Debug)]
pub struct LogBudget {
    budgets: Mutex<Vec<Budget>>,
}

impl LogBudget {
    /// [`LINES_PER_SECOND`] lines a second of each kind, from `now`.
    pub fn new(now: Instant) -> Self {
        LogBudget::lines_per_second(LINES_PER_SECOND, now)
    }

    /// One worker's budgets, of `workers`: its share of
    /// [`LINES_PER_SECOND`] (one line a second at least).
    pub fn for_worker(workers: usize, now: Instant) -> Self {
        let workers = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
        LogBudget::lines_per_second((LINES_PER_SECOND / workers).max(1), now)
    }

    fn lines_per_second(lines: u32, now: Instant) -> Self {
        let budgets = (0..KINDS)
            .map(|_| Budget::new(lines, Duration::from_secs(1), now))
            .collect();
        LogBudget {
            budgets: Mutex::new(budgets),
        }
    }

    /// Whether a line of `kind` may be logged now: `Some(suppressed)` if so.
    pub fn allow(&self, kind: LogKind) -> Option<Suppressed> {
        let mut budgets = self.budgets.lock().unwrap_or_else(PoisonError::into_inner);
        budgets
            .get_mut(kind as usize)
            .and_then(|budget| budget.allow(Instant::now()))
            .map(|held| (held > 0).then_some(held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_few_per_window_and_counts_the_rest() {
        let mut budget = Budget::new(3, Duration::from_secs(1), Instant::now());
        let allowed: Vec<_> = (0..10).map(|_| budget.allow(Instant::now())).collect();
        assert_eq!(allowed[..3], [Some(0), Some(0), Some(0)]);
        assert!(allowed[3..].iter().all(Option::is_none));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budget.allow(Instant::now()), Some(7));
        assert_eq!(budget.allow(Instant::now()), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn workers_share_out_the_lines_a_second() {
        let allowed = |budget: &LogBudget| {
            (0..100)
                .filter(|_| budget.allow(LogKind::Denied).is_some())
                .count()
        };
        let now = Instant::now();
        assert_eq!(allowed(&LogBudget::new(now)), 10);
        assert_eq!(allowed(&LogBudget::for_worker(1, now)), 10);
        assert_eq!(allowed(&LogBudget::for_worker(2, now)), 5);
        assert_eq!(allowed(&LogBudget::for_worker(64, now)), 1, "one at least");
    }

    #[tokio::test(start_paused = true)]
    async fn each_kind_has_its_own_budget() {
        let log = LogBudget::new(Instant::now());
        let logins = (0..100).filter_map(|_| log.allow(LogKind::Login)).count();
        assert_eq!(logins, LINES_PER_SECOND as usize);
        assert_eq!(
            log.allow(LogKind::Idle),
            Some(None),
            "another kind is untouched, and nothing of it was held back"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(log.allow(LogKind::Login), Some(Some(90)));
        assert_eq!(log.allow(LogKind::Login), Some(None));
    }
}
