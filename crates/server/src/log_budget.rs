//! A cap on warning lines, so that a flood of bad datagrams does not become a
//! flood of log lines.

use std::time::Duration;

use tokio::time::Instant;

/// Lets through at most `per_window` warnings per `window`, and counts the
/// rest so the first warning of the next window can say how many were held.
#[derive(Debug)]
pub struct WarnBudget {
    window: Duration,
    per_window: u32,
    window_start: Instant,
    used: u32,
    suppressed: u64,
}

impl WarnBudget {
    /// A budget of `per_window` lines every `window`.
    pub fn new(per_window: u32, window: Duration, now: Instant) -> Self {
        WarnBudget {
            window,
            per_window,
            window_start: now,
            used: 0,
            suppressed: 0,
        }
    }

    /// Whether a warning may be logged at `now`. `Some(n)` allows it, `n`
    /// being how many were suppressed since the last one allowed.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if now.duration_since(self.window_start) >= self.window {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn allows_a_few_per_window_and_counts_the_rest() {
        let mut budget = WarnBudget::new(3, Duration::from_secs(1), Instant::now());
        let allowed: Vec<_> = (0..10).map(|_| budget.allow(Instant::now())).collect();
        assert_eq!(allowed[..3], [Some(0), Some(0), Some(0)]);
        assert!(allowed[3..].iter().all(Option::is_none));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budget.allow(Instant::now()), Some(7));
        assert_eq!(budget.allow(Instant::now()), Some(0));
    }
}
