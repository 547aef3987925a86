//! What operators see: an optional HTTP listener serving `/metrics`
//! (Prometheus) and `/status` (JSON), both read-only views of the same
//! counters and state the summary log line reads ([`Observed`]).
//!
//! - [`http`]: the listener: bounded connections, timeouts, access lists;
//! - [`metrics`]: the Prometheus exposition of a snapshot;
//! - [`status`]: the JSON document.

pub mod http;
pub mod metrics;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hora_proto::sntp::ServerClock;
use tokio::sync::watch;

use crate::sessions::Sessions;
use crate::stats::{Snapshot, Stats};

/// A read-only view of the daemon for observers. Copies are read at
/// request time; nothing here is ever locked for long by a reader.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The counters.
    pub stats: Arc<Stats>,
    /// The session table (its size).
    pub sessions: Arc<Sessions>,
    /// What SNTP replies say of the clock, when SNTP is served.
    pub clock: Option<watch::Receiver<ServerClock>>,
    /// When the daemon started.
    pub started: SystemTime,
    /// Every address served, by protocol name.
    pub addresses: Vec<(&'static str, SocketAddr)>,
    /// The limits in force.
    pub limits: Limits,
}

/// The limits in force, as `/status` reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A silent session ends after this.
    pub idle_timeout: Duration,
    /// The most sessions at once.
    pub max_sessions: usize,
    /// The most sessions at once from one IP.
    pub max_sessions_per_ip: usize,
    /// Answers a second per source, or `None` without rate limiting.
    pub rate: Option<f64>,
    /// Burst per source.
    pub burst: f64,
}

impl Observed {
    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        self.stats.snapshot(self.sessions.len())
    }

    /// The clock fields SNTP serves now, if SNTP is served.
    pub fn clock(&self) -> Option<ServerClock> {
        self.clock.as_ref().map(|clock| *clock.borrow())
    }
}
