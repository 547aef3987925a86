//! The reports that run on a timer: the summary log line every
//! `stats_interval` (and the last one at shutdown, by the server), and
//! under systemd a one-line status for `systemctl status`. Both read the
//! same snapshot `/metrics` reads.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::Observed;
use crate::stats::log_summary;
use crate::sys;

/// How often the status line systemd shows is updated.
const STATUS_PERIOD: Duration = Duration::from_secs(10);

/// Logs the summary every `interval` (never if zero) and, with
/// `NOTIFY_SOCKET` set, tells systemd a status line, until `shutdown`.
pub async fn serve(observed: Observed, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut summary = (!interval.is_zero()).then(|| every(interval, Instant::now() + interval));
    let mut status =
        std::env::var_os("NOTIFY_SOCKET").map(|_| every(STATUS_PERIOD, Instant::now()));
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            () = next_tick(&mut summary) => log_summary("summary", &observed.snapshot()),
            () = next_tick(&mut status) => {
                let now = observed.snapshot();
                sys::notify::status(&format!(
                    "sessions open: {} (seed) + {} (v2), requests served: {}",
                    now.sessions_open,
                    now.v2_sessions_open,
                    now.total_answered()
                ));
            }
        }
    }
}

fn every(period: Duration, first: Instant) -> Interval {
    let mut interval = tokio::time::interval_at(first, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// The next tick of an optional interval; never, without one.
async fn next_tick(interval: &mut Option<Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
