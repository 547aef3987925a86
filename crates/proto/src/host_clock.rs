//! What SNTP replies say about the host clock: the kernel's view of it,
//! combined with the admin's settings, as one pure function ([`served_clock`]).
//!
//! horad serves the host's clock; it does not discipline it. Whether that
//! clock deserves trust is known to the kernel, which the host's NTP daemon
//! (chronyd, ntpd, systemd-timesyncd) keeps informed through `adjtimex`: the
//! `STA_UNSYNC` flag, a pending leap second, and the maximum error. A server
//! that said "trust me" (leap indicator 0, a stratum) whatever the kernel says
//! would lead every client astray on a host nothing synchronizes; so horad
//! says what chronyd says in each case.

use std::time::Duration;

use crate::sntp::ServerClock;

/// A leap second the kernel will apply at the end of the current UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Leap {
    /// None pending.
    #[default]
    None,
    /// The last minute of the day has 61 seconds (`STA_INS`).
    Insert,
    /// The last minute of the day has 59 seconds (`STA_DEL`).
    Delete,
}

/// The kernel's state of the host clock (what `ntp_adjtime` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostClock {
    /// Whether something synchronizes the clock: not `STA_UNSYNC`, and the
    /// clock state is not `TIME_ERROR`.
    pub synchronized: bool,
    /// A leap second pending at the end of the day.
    pub leap: Leap,
    /// The kernel's maximum error of the clock (`maxerror`): the NTP daemon
    /// sets it from its source's root distance, and the kernel grows it by
    /// 500 ppm while nothing updates it.
    pub max_error: Duration,
}

impl HostClock {
    /// What to assume when the kernel's state cannot be read: nothing vouches
    /// for the clock.
    pub const UNKNOWN: HostClock = HostClock {
        synchronized: false,
        leap: Leap::None,
        max_error: Duration::from_secs(16),
    };

    /// Whether `other` differs in what a log line should announce: being
    /// synchronized, or a pending leap second (not the ever-changing error).
    pub fn differs_in_kind(&self, other: &HostClock) -> bool {
        self.synchronized != other.synchronized || self.leap != other.leap
    }
}

/// The admin's settings for SNTP replies (the `[sntp]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSettings {
    /// The stratum served while the host clock is synchronized.
    pub stratum: u8,
    /// The reference id served with it.
    pub reference_id: [u8; 4],
    /// The clock's precision, log2 seconds.
    pub precision: i8,
    /// The root delay served while synchronized or local.
    pub root_delay: Duration,
    /// The root dispersion served as a local clock (see `local_stratum`).
    pub root_dispersion: Duration,
    /// chrony's `local stratum N`: serve the clock at this stratum even when
    /// the kernel says it is unsynchronized. `None`: don't.
    pub local_stratum: Option<u8>,
}

/// What chronyd sends when it is not synchronized and has no `local`
/// directive: leap indicator 3 ("alarm"), stratum 0, reference id 0, root
/// delay and dispersion of one second each. Clients take no sample from it.
fn unsynchronized(precision: i8) -> ServerClock {
    ServerClock {
        leap_indicator: 3,
        stratum: 0,
        precision,
        root_delay: Duration::from_secs(1),
        root_dispersion: Duration::from_secs(1),
        reference_id: [0; 4],
    }
}

/// The header fields every SNTP reply carries, from the kernel's state and
/// the settings:
///
/// | host clock | `local_stratum` | LI | stratum | reference id | root dispersion |
/// |---|---|---|---|---|---|
/// | synchronized | any | pending leap (1, 2) or 0 | `stratum` | `reference_id` | the kernel's `maxerror` |
/// | unsynchronized | `N` | pending leap or 0 | `N` | `reference_id` | `root_dispersion` |
/// | unsynchronized | off | 3 | 0 | 0 | 1 s (root delay 1 s too) |
///
/// Root dispersion from `maxerror`: the host's NTP daemon sets `maxerror`
/// to its own root distance and the kernel adds 500 ppm of drift for every
/// second without an update, so it is the host's own bound on how wrong its
/// clock may be; passing it on lets a client bound its error from horad's
/// reply as the host's daemon bounds its own.
pub fn served_clock(host: &HostClock, settings: &ClockSettings) -> ServerClock {
    let leap_indicator = match host.leap {
        Leap::None => 0,
        Leap::Insert => 1,
        Leap::Delete => 2,
    };
    let served = |stratum, root_dispersion| ServerClock {
        leap_indicator,
        stratum,
        precision: settings.precision,
        root_delay: settings.root_delay,
        root_dispersion,
        reference_id: settings.reference_id,
    };
    match (host.synchronized, settings.local_stratum) {
        (true, _) => served(settings.stratum, host.max_error),
        (false, Some(local)) => served(local, settings.root_dispersion),
        (false, None) => unsynchronized(settings.precision),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: ClockSettings = ClockSettings {
        stratum: 3,
        reference_id: *b"GPS\0",
        precision: -24,
        root_delay: Duration::from_millis(2),
        root_dispersion: Duration::from_millis(5),
        local_stratum: None,
    };

    fn host(synchronized: bool, leap: Leap) -> HostClock {
        HostClock {
            synchronized,
            leap,
            max_error: Duration::from_micros(1_500),
        }
    }

    #[test]
    fn a_synchronized_clock_is_served_as_configured_with_the_kernels_error() {
        let clock = served_clock(&host(true, Leap::None), &SETTINGS);
        assert_eq!(
            clock,
            ServerClock {
                leap_indicator: 0,
                stratum: 3,
                precision: -24,
                root_delay: Duration::from_millis(2),
                root_dispersion: Duration::from_micros(1_500),
                reference_id: *b"GPS\0",
            }
        );
    }

    #[test]
    fn a_pending_leap_second_is_announced() {
        for settings in [
            SETTINGS,
            ClockSettings {
                local_stratum: Some(10),
                ..SETTINGS
            },
        ] {
            for synchronized in [true, false] {
                if !synchronized && settings.local_stratum.is_none() {
                    continue;
                }
                let insert = served_clock(&host(synchronized, Leap::Insert), &settings);
                let delete = served_clock(&host(synchronized, Leap::Delete), &settings);
                assert_eq!(insert.leap_indicator, 1);
                assert_eq!(delete.leap_indicator, 2);
            }
        }
    }

    #[test]
    fn an_unsynchronized_clock_is_served_as_chrony_serves_one() {
        for leap in [Leap::None, Leap::Insert, Leap::Delete] {
            let clock = served_clock(&host(false, leap), &SETTINGS);
            assert_eq!(clock.leap_indicator, 3, "alarm");
            assert_eq!(clock.stratum, 0);
            assert_eq!(clock.reference_id, [0; 4]);
            assert_eq!(clock.root_delay, Duration::from_secs(1));
            assert_eq!(clock.root_dispersion, Duration::from_secs(1));
        }
        let unknown = served_clock(&HostClock::UNKNOWN, &SETTINGS);
        assert_eq!(unknown.leap_indicator, 3);
    }

    #[test]
    fn local_stratum_serves_an_unsynchronized_clock_when_the_admin_opts_in() {
        let local = ClockSettings {
            local_stratum: Some(10),
            reference_id: [127, 127, 1, 1],
            ..SETTINGS
        };
        let clock = served_clock(&host(false, Leap::None), &local);
        assert_eq!(clock.leap_indicator, 0);
        assert_eq!(clock.stratum, 10);
        assert_eq!(clock.reference_id, [127, 127, 1, 1]);
        assert_eq!(clock.root_dispersion, Duration::from_millis(5));
        // Synchronized, the configured stratum and the kernel's error win.
        let synced = served_clock(&host(true, Leap::None), &local);
        assert_eq!(synced.stratum, 3);
        assert_eq!(synced.root_dispersion, Duration::from_micros(1_500));
    }

    #[test]
    fn only_synchronization_and_leaps_are_changes_worth_a_log_line() {
        let a = host(true, Leap::None);
        let b = HostClock {
            max_error: Duration::from_millis(9),
            ..a
        };
        assert!(!a.differs_in_kind(&b));
        assert!(a.differs_in_kind(&host(false, Leap::None)));
        assert!(a.differs_in_kind(&host(true, Leap::Insert)));
    }
}
