//! systemd readiness (`Type=notify`): `READY=1` once every socket is bound,
//! `STOPPING=1` when shutdown starts, `RELOADING=1` around a reload, and a
//! short `STATUS=` now and then. Outside systemd (no `NOTIFY_SOCKET`) each
//! call does nothing. A failure to notify is logged, never fatal.

use sd_notify::NotifyState;
use tracing::debug;

fn notify(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        debug!(%error, "cannot notify systemd");
    }
}

/// Every socket is bound: the service is up.
pub fn ready() {
    notify(&[NotifyState::Ready]);
}

/// A reload has begun; [`ready`] says it is done.
pub fn reloading() {
    notify(&[NotifyState::Reloading]);
}

/// Shutdown has begun.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

/// A one-line status for `systemctl status`.
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}
