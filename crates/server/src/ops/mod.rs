//! What operators see: an optional HTTP listener serving `/metrics`
//! (Prometheus) and `/status` (JSON), both read-only views of the same
//! counters and state the summary log line reads ([`Observed`]).
//!
//! - [`http`]: the listener: bounded connections, timeouts, access lists;
//! - [`metrics`]: the Prometheus exposition of a snapshot;
//! - [`status`]: the JSON document;
//! - [`report`]: the summary log line and systemd's status line.

pub mod http;
pub mod metrics;
pub mod report;
pub mod status;

use std::sync::Arc;
use std::time::SystemTime;

use hora_proto::sntp::ServerClock;
use tokio::sync::watch;

use crate::live::LiveView;
use crate::sessions::SessionStats;
use crate::stats::{Snapshot, Stats};

/// A read-only view of the daemon for observers. Copies are read at
/// request time; nothing here is ever locked for long by a reader, and
/// nothing a serving loop needs is held while a reply is encoded.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The counters.
    pub stats: Arc<Stats>,
    /// The session table's size and durations.
    pub sessions: Arc<SessionStats>,
    /// Protocol v2's sessions (counted apart).
    pub v2_sessions: Arc<SessionStats>,
    /// What SNTP replies (and v2's time answers) say of the clock, and
    /// whether the kernel says it is synchronized (`None` only where a
    /// test builds a view without a clock).
    pub clock: Option<(watch::Receiver<ServerClock>, watch::Receiver<bool>)>,
    /// The configuration in force (the live view the loops read).
    pub live: LiveView,
    /// When the daemon started.
    pub started: SystemTime,
    /// Every address served, by protocol name, as the configuration
    /// writes it (with its interface, if any).
    pub addresses: Vec<(&'static str, String)>,
    /// Roughtime's public key (base64, hex), when Roughtime is served.
    pub roughtime_key: Option<(String, String)>,
}

impl Observed {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        self.stats
            .snapshot(self.sessions.len())
            .with_v2_sessions(self.v2_sessions.len())
    }

    /// The clock fields SNTP serves now, if SNTP is served.
    pub fn clock(&self) -> Option<ServerClock> {
        self.clock.as_ref().map(|(clock, _)| *clock.borrow())
    }

    /// Whether the kernel says the clock is synchronized, if SNTP is served.
    pub fn kernel_synchronized(&self) -> Option<bool> {
        self.clock.as_ref().map(|(_, kernel)| *kernel.borrow())
    }
}
