//! Reloads (SIGHUP): a configuration read again by the start-up parser
//! arrives here, is compared with the one in force and, if it may be
//! applied, built into a new live view ([`crate::live`]) and published; the
//! loops pick it up between two batches. Reading the file and building the
//! view happen off the serving thread (the file by the caller, the view on
//! a blocking thread here), so a slow disk, a FIFO or a large access list
//! never delays a datagram.
//!
//! What a reload says, once each: refused (with why, the running
//! configuration stays), nothing changed, or the keys applied; keys that
//! change only at restart are reported as not applied, and stay as they
//! were in the live view, so `/status` shows what is in force.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::config::{Config, ConfigError, Reload};
use crate::live::Live;
use crate::logging;
use crate::stats::{Event, Stats};
use crate::sys;

/// What a reloaded configuration leads to.
#[derive(Debug)]
pub enum Plan {
    /// Not applied; the running configuration stays.
    Refused(Refusal),
    /// Applied: the keys it changed, and those it could not change.
    Apply {
        /// The new live view.
        live: Box<Live>,
        /// The keys applied (may be empty: nothing changed).
        changed: Vec<&'static str>,
        /// The keys that differ but change only at restart.
        restart_only: Vec<&'static str>,
        /// Whether `log.level` changed (the subscriber's filter is reloaded).
        log_level: bool,
    },
}

/// Why a reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The file could not be read, or is not a valid configuration.
    #[error("{0}")]
    Load(#[from] ConfigError),
    /// It moves a socket: addresses are bound only at start-up.
    #[error("addresses to bind change only at restart ({})", .0.join(", "))]
    Moves(Vec<&'static str>),
    /// The key exchange's certificate or key can't serve: the pair in
    /// force keeps serving.
    #[error("NTS-KE certificate: {0}")]
    Certificate(#[from] crate::nts::tls::TlsError),
}

/// Decides what `loaded` does to the view in force, `current`, and builds
/// the new view if it applies.
pub fn plan(current: &Live, loaded: Result<Config, ConfigError>, now: Instant) -> Plan {
    let new = match loaded {
        Ok(new) => new,
        Err(error) => return Plan::Refused(error.into()),
    };
    let old = &current.config;
    let differ = old.changes(&new);
    let named = |reload: Reload| -> Vec<&'static str> {
        differ
            .iter()
            .filter(|key| key.reload == reload)
            .map(|key| key.name)
            .collect()
    };
    let moved = named(Reload::Refused);
    if !moved.is_empty() {
        return Plan::Refused(Refusal::Moves(moved));
    }
    let (restart_only, changed) = (named(Reload::Restart), named(Reload::Live));
    let log_level = changed.contains(&"log.level");
    let new = old.keeping_restart_only(new);
    let live = match Live::new(new, Some(current), current.workers, now) {
        Ok(live) => live,
        Err(error) => return Plan::Refused(error.into()),
    };
    // The same paths may hold a renewed certificate (certbot's deploy
    // hook, then SIGHUP): that is a change too.
    let digest = |live: &Live| live.nts.as_ref().and_then(|nts| nts.certificate_digest);
    let mut changed = changed;
    if digest(&live) != digest(current)
        && !changed
            .iter()
            .any(|key| key.starts_with("nts.certificate") || *key == "nts.private_key")
    {
        changed.push("nts certificate files");
    }
    Plan::Apply {
        live: Box::new(live),
        changed,
        restart_only,
        log_level,
    }
}

/// Applies each configuration that arrives on `reloads` to the view that
/// `live` publishes, until the channel closes or `shutdown` turns true.
/// systemd hears `RELOADING=1`, then `READY=1`.
pub async fn serve(
    live: watch::Sender<Arc<Live>>,
    mut reloads: mpsc::Receiver<Result<Config, ConfigError>>,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let loaded = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            loaded = reloads.recv() => match loaded {
                Some(loaded) => loaded,
                None => return,
            },
        };
        sys::notify::reloading();
        let current = Arc::clone(&live.borrow());
        let planned =
            tokio::task::spawn_blocking(move || plan(&current, loaded, Instant::now())).await;
        match planned {
            Ok(plan) => stats.event(apply(&live, plan)),
            Err(error) => {
                stats.event(Event::ReloadRefused);
                warn!(%error, "reload failed, the running configuration stays");
            }
        }
        sys::notify::ready();
    }
}

/// Carries out a plan: publishes the view, logs what it did, once; what
/// to count.
fn apply(live: &watch::Sender<Arc<Live>>, plan: Plan) -> Event {
    let (new, changed, restart_only, log_level) = match plan {
        Plan::Refused(why) => {
            warn!("reload refused, the running configuration stays: {why}");
            return Event::ReloadRefused;
        }
        Plan::Apply {
            live,
            changed,
            restart_only,
            log_level,
        } => (live, changed, restart_only, log_level),
    };
    if changed.is_empty() {
        if restart_only.is_empty() {
            info!("configuration reloaded: nothing changed");
        } else {
            // Not "nothing changed": the file did, and the admin must know
            // a restart is what applies it.
            warn!(
                restart_only = restart_only.join(", "),
                "configuration reloaded: nothing applied; {} changed and take effect only at a restart",
                restart_only.join(", ")
            );
        }
        return Event::ReloadUnchanged;
    }
    if !restart_only.is_empty() {
        warn!(
            keys = restart_only.join(", "),
            "not applied: these change only at restart"
        );
    }
    if log_level {
        match logging::set_level(&new.config.log.level) {
            Ok(true) => {}
            Ok(false) => warn!("log.level not applied: RUST_LOG overrides it"),
            Err(error) => warn!(%error, "log.level not applied"),
        }
    }
    live.send_replace(Arc::from(new));
    info!(changed = changed.join(", "), "configuration reloaded");
    Event::ReloadApplied
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn current() -> Live {
        Live::new(Config::default(), None, 1, Instant::now()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_moved_socket_refuses_the_whole_reload() {
        let new = Config {
            idle_timeout: Duration::from_secs(30),
            bind: "127.0.0.1:1".parse().unwrap(),
            ..Config::default()
        };
        let plan = plan(&current(), Ok(new), Instant::now());
        assert!(matches!(plan, Plan::Refused(Refusal::Moves(ref keys)) if keys == &["bind"]));
    }

    #[test]
    fn restart_only_keys_are_reported_once_and_kept_as_they_were() {
        let new = Config {
            idle_timeout: Duration::from_secs(30),
            stats_interval: Duration::from_secs(5),
            ..Config::default()
        };
        let Plan::Apply {
            live,
            changed,
            restart_only,
            log_level,
        } = plan(&current(), Ok(new), Instant::now())
        else {
            panic!("applied");
        };
        assert_eq!(changed, ["idle_timeout"]);
        assert_eq!(restart_only, ["stats_interval"]);
        assert!(!log_level);
        assert_eq!(live.rules().idle_timeout, Duration::from_secs(30));
        assert_eq!(live.config.stats_interval, Config::default().stats_interval);
    }

    #[test]
    fn only_a_restart_only_key_changes_nothing_live() {
        let mut new = Config::default();
        new.log.format = crate::config::LogFormat::Json;
        let Plan::Apply {
            changed,
            restart_only,
            ..
        } = plan(&current(), Ok(new), Instant::now())
        else {
            panic!("applied");
        };
        assert!(changed.is_empty());
        assert_eq!(restart_only, ["log.format"]);
    }
}
