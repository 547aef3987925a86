//! The live view: everything the serving loops and the observers read of
//! the configuration, built from a [`Config`] by one function
//! ([`Live::new`]) and published through one `tokio::sync::watch` channel
//! ([`publish`], [`LiveView`]). A reload builds a new view and publishes it;
//! each loop picks it up between two batches and keeps its own `Arc` of it,
//! so the request path reads plain fields, with no lock and no copy of a
//! setting that could go stale. `/status` reads the same view, so it shows
//! what is in force.

use std::sync::Arc;
use std::time::Instant;

use hora_proto::host_clock::ClockSettings;
use hora_proto::Rules;
use tokio::sync::watch;

use crate::config::Config;
use crate::gate::Gate;
use crate::nts::tls::TlsError;
use crate::nts::NtsLive;
use crate::sessions::Limits;

/// The configuration in force and what is built from it.
#[derive(Debug)]
pub struct Live {
    /// The configuration as applied: keys that change only at restart keep
    /// their values from start-up.
    pub config: Config,
    /// The access lists and the rate limiter.
    pub gate: Gate,
    /// How answers describe the clock: SNTP's replies, and protocol v2's
    /// time answers, which carry its state with SNTP off too (`None` only
    /// where the `[sntp]` settings are unusable, which the checks refuse).
    pub clock: Option<ClockSettings>,
    /// NTS's live settings (the key exchange's certificate among them),
    /// when NTS is on.
    pub nts: Option<NtsLive>,
    /// How many workers serve (fixed at start-up: `workers` resolved, or 1
    /// where steering by source address is not to be had).
    pub workers: usize,
}

/// Where the loops and the observers read the live view.
pub type LiveView = watch::Receiver<Arc<Live>>;

impl Live {
    /// The view of `config` served by `workers` workers. `previous` (the
    /// view it replaces, on a reload) lends what must survive a reload: the
    /// rate limiters' buckets, when their settings did not change. Reads
    /// the key exchange's certificate and key when NTS-KE is on (file I/O:
    /// off the serving thread), and fails if they can't serve.
    pub fn new(
        config: Config,
        previous: Option<&Live>,
        workers: usize,
        now: Instant,
    ) -> Result<Live, TlsError> {
        let nts = NtsLive::new(&config.nts)?;
        let workers = workers.max(1);
        let gate = Gate::new(&config, previous.map(|live| &live.gate), workers, now);
        // Not only with SNTP bound: a reload of `local_stratum` with SNTP
        // off was reported applied and never reached v2's answers.
        let clock = config.sntp.settings();
        Ok(Live {
            config,
            gate,
            clock,
            nts,
            workers,
        })
    }

    /// The seed protocol's rules in force.
    pub fn rules(&self) -> Rules {
        Rules {
            idle_timeout: self.config.idle_timeout,
        }
    }

    /// The session limits in force.
    pub fn limits(&self) -> Limits {
        Limits {
            max_sessions: self.config.max_sessions,
            max_sessions_per_ip: self.config.max_sessions_per_ip,
        }
    }
}

/// A channel publishing `live`: the sender for reloads, a receiver for
/// everyone else (more with [`watch::Sender::subscribe`]).
pub fn publish(live: Live) -> (watch::Sender<Arc<Live>>, LiveView) {
    watch::channel(Arc::new(live))
}
