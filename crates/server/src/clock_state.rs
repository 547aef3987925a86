//! The host clock's state as SNTP serves it: read from the kernel at
//! start-up and then once a second (never per request), turned into reply
//! fields by `hora_proto::host_clock::served_clock`, and handed to the SNTP
//! loop through a `watch` channel. The admin's settings come from the live
//! view ([`crate::live`]), so a reload changes the fields at once. A change
//! worth knowing (synchronized or not, a leap second pending) is logged.

use std::time::Duration;

use hora_proto::host_clock::{served_clock, ClockSettings, HostClock, Leap};
use hora_proto::sntp::ServerClock;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::live::LiveView;
use crate::sys;

/// How often the kernel is asked.
const PERIOD: Duration = Duration::from_secs(1);

/// The reader of the kernel's clock state, and the sending end of what
/// every SNTP reply says of the clock.
#[derive(Debug)]
pub struct ClockState {
    live: LiveView,
    settings: ClockSettings,
    host: HostClock,
    served: watch::Sender<ServerClock>,
    /// Whether the kernel says the clock is synchronized (`/status`: what
    /// replies say can differ, with `local_stratum`).
    kernel: watch::Sender<bool>,
    /// The kernel's state itself (Roughtime's radius is its maximum error).
    state: watch::Sender<HostClock>,
    /// Whether its changes are logged: when SNTP is served (protocol v2's
    /// answers, which read it too, say the clock's state in each answer).
    announce: bool,
}

impl ClockState {
    /// Reads the kernel's state now and, if `announce` (SNTP is served),
    /// logs it: the first reply is right. The settings are the live view's
    /// `[sntp]` ones (`fallback` if it has none); a reload changes them,
    /// and the fields follow at once.
    pub fn start(mut live: LiveView, fallback: ClockSettings, announce: bool) -> ClockState {
        let host = read_logging_failure(announce);
        let settings = live.borrow_and_update().clock.unwrap_or(fallback);
        if announce {
            log_state(&host, &settings);
        }
        let (served, _) = watch::channel(served_clock(&host, &settings));
        let (kernel, _) = watch::channel(host.synchronized);
        let (state, _) = watch::channel(host);
        ClockState {
            live,
            settings,
            host,
            served,
            kernel,
            state,
            announce,
        }
    }

    /// A receiver of the fields every reply carries.
    pub fn subscribe(&self) -> watch::Receiver<ServerClock> {
        self.served.subscribe()
    }

    /// A receiver of whether the kernel says the clock is synchronized.
    pub fn kernel(&self) -> watch::Receiver<bool> {
        self.kernel.subscribe()
    }

    /// A receiver of the kernel's state, read once a second.
    pub fn host(&self) -> watch::Receiver<HostClock> {
        self.state.subscribe()
    }

    /// Both, for protocol v2's time answers.
    pub fn feed(&self) -> ClockFeed {
        ClockFeed {
            served: self.subscribe(),
            kernel: self.kernel(),
        }
    }

    /// Reads the kernel's state once a second until `shutdown` turns true.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        // Until the daemon drops the sender of the live view (it never does
        // while it serves).
        let mut settable = true;
        loop {
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return,
                changed = self.live.changed(), if settable => {
                    settable = changed.is_ok();
                    if let Some(settings) = self.live.borrow_and_update().clock {
                        self.settings = settings;
                    }
                    self.publish();
                }
                _ = tick.tick() => self.refresh(),
            }
        }
    }

    fn refresh(&mut self) {
        let host = read_logging_failure(false);
        if self.announce && host.differs_in_kind(&self.host) {
            log_state(&host, &self.settings);
        }
        self.host = host;
        self.kernel.send_if_modified(|synchronized| {
            std::mem::replace(synchronized, host.synchronized) != host.synchronized
        });
        self.state.send_replace(host);
        self.publish();
    }

    /// Sends what replies should say now, if it changed.
    fn publish(&mut self) {
        let fields = served_clock(&self.host, &self.settings);
        self.served.send_if_modified(|served| {
            let changed = *served != fields;
            *served = fields;
            changed
        });
    }
}

/// The kernel's state, or [`HostClock::UNKNOWN`] if it can't be read (said
/// once, at start-up).
fn read_logging_failure(first: bool) -> HostClock {
    sys::host_clock().unwrap_or_else(|error| {
        if first {
            warn!(%error, "cannot read the host clock's state; SNTP replies say it is unsynchronized");
        }
        HostClock::UNKNOWN
    })
}

fn log_state(host: &HostClock, settings: &ClockSettings) {
    let served = served_clock(host, settings);
    let leap = match host.leap {
        Leap::None => "none",
        Leap::Insert => "insert",
        Leap::Delete => "delete",
    };
    let max_error_ms = host.max_error.as_secs_f64() * 1e3;
    match (host.synchronized, settings.local_stratum) {
        (true, _) => info!(
            synchronized = true, leap, max_error_ms, stratum = served.stratum,
            "host clock synchronized; SNTP serves it at stratum {}", served.stratum
        ),
        (false, Some(local)) => info!(
            synchronized = false, leap, stratum = local,
            "host clock not synchronized; SNTP serves it as a local clock at stratum {local} (local_stratum)"
        ),
        (false, None) => warn!(
            synchronized = false, leap,
            "host clock not synchronized; SNTP replies say so (leap indicator 3) and clients will not use them; set [sntp] local_stratum to serve it anyway"
        ),
    }
}
/// What a v2 time answer says of the clock: SNTP's fields, and whether
/// the kernel says it is synchronized (read here, once a second).
#[derive(Debug, Clone)]
pub struct ClockFeed {
    /// What SNTP replies say of the clock.
    pub served: watch::Receiver<ServerClock>,
    /// Whether the kernel says the clock is synchronized.
    pub kernel: watch::Receiver<bool>,
}

impl ClockFeed {
    /// A clock that never changes from `served` (tests).
    #[cfg(test)]
    pub fn fixed(served: ServerClock, kernel: bool) -> ClockFeed {
        ClockFeed {
            served: watch::channel(served).1,
            kernel: watch::channel(kernel).1,
        }
    }
}
