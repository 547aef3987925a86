//! The values that parse but can't work: each key against its range
//! (written once, in the key table), the rules between keys, and sockets
//! that would collide. Refused before anything serves, so `--check-config`
//! and a reload catch them.

use std::time::Duration;

use hora_proto::access::has_host_bits;

use super::keys::range;
use super::{Addresses, Config, ConfigError, Listen, OutOfRange, MAX_CLIENT_LOG};

/// "must be RANGE" for `key`, with `note` after it where there is one.
fn must_be(key: &'static str, note: &str) -> OutOfRange {
    let range = range(key);
    let problem = if note.is_empty() {
        format!("must be {range}")
    } else {
        format!("must be {range} ({note})")
    };
    OutOfRange { key, problem }
}

/// Refuses `key`'s value: it `problem`.
fn out(key: &'static str, problem: &str) -> Result<(), OutOfRange> {
    Err(OutOfRange {
        key,
        problem: problem.to_owned(),
    })
}

/// Refuses `key`'s value as out of its range ([`must_be`]).
fn bound(key: &'static str, note: &str) -> Result<(), OutOfRange> {
    Err(must_be(key, note))
}

/// The longest idle timeout and summary interval: a day. With it, no deadline
/// computed from a configured duration can overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The most sessions, and the most rate-limit buckets: bounds on memory
/// (about 800 B a session at the most, 32 B a bucket: BENCHMARKS.md).
const MAX_SESSIONS: usize = 4_000_000;
const MAX_TABLE_SIZE: usize = 1 << 20;
/// The largest rate and burst: a million datagrams a second is beyond what
/// the daemon can answer, so a larger value can only be a typo.
const MAX_RATE: f64 = 1e6;
/// The smallest rate: a bucket refills one token in 1,000 s. Below it
/// (`1e-300`) a source that spent its burst is never answered again.
const MIN_RATE: f64 = 1e-3;
/// NTP's largest dispersion (RFC 5905's MAXDISP), a bound on the root fields.
const MAX_ROOT: Duration = Duration::from_secs(16);

impl Config {
    /// Checks the values that parse but cannot work; `origin` names where
    /// they came from in the error.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        self.check().map_err(|out| ConfigError::Invalid {
            origin: origin.to_owned(),
            key: out.key,
            problem: out.problem,
        })
    }

    /// Every value against its documented range (the shipped `config.toml`
    /// states each one).
    pub fn check(&self) -> Result<(), OutOfRange> {
        if self.idle_timeout < Duration::from_millis(10) || self.idle_timeout > MAX_DURATION {
            return bound("idle_timeout", "");
        }
        if !(1..=MAX_SESSIONS).contains(&self.max_sessions) {
            return bound("max_sessions", "");
        }
        if !(1..=MAX_SESSIONS).contains(&self.max_sessions_per_ip) {
            return bound("max_sessions_per_ip", "");
        }
        if self.workers > crate::sys::steer::MAX_WORKERS {
            return bound("workers", "0: one per core");
        }
        let interval = self.stats_interval;
        if !interval.is_zero() && (interval < Duration::from_secs(1) || interval > MAX_DURATION) {
            return bound("stats_interval", "or 0s: off");
        }
        self.check_sntp()?;
        self.check_rate_limit()?;
        self.check_access()?;
        self.check_nts()?;
        self.check_roughtime()?;
        self.check_binds()?;
        if crate::logging::check_filter(&self.log.level).is_err() {
            return out(
                "log.level",
                "is not a level (error, warn, info, debug, trace, off) or TARGET=LEVEL for one of horad's targets (horad, hora_server, hora_proto) or the crates beneath them that log (tokio, hyper, mio)",
            );
        }
        Ok(())
    }

    /// The `[sntp]` table's clock fields.
    fn check_sntp(&self) -> Result<(), OutOfRange> {
        if !(1..=16).contains(&self.sntp.stratum) {
            return bound("sntp.stratum", "");
        }
        if self
            .sntp
            .local_stratum
            .is_some_and(|n| !(1..=15).contains(&n))
        {
            return bound("sntp.local_stratum", "");
        }
        if self.sntp.client_log > MAX_CLIENT_LOG {
            return bound("sntp.client_log", "entries; 0: off");
        }
        if !(-32..=0).contains(&self.sntp.precision) {
            return bound("sntp.precision", "");
        }
        if self.sntp.root_delay > MAX_ROOT {
            return bound("sntp.root_delay", "");
        }
        if self.sntp.root_dispersion > MAX_ROOT {
            return bound("sntp.root_dispersion", "");
        }
        if self.sntp.settings().is_none() {
            return out(
                "sntp.reference_id",
                "must be an IPv4 address or 1 to 4 ASCII characters",
            );
        }
        Ok(())
    }

    /// The `[ratelimit]` table.
    fn check_rate_limit(&self) -> Result<(), OutOfRange> {
        let limit = &self.ratelimit;
        if !(MIN_RATE..=MAX_RATE).contains(&limit.rate) {
            return bound(
                "ratelimit.rate",
                "a token in 1,000 s at the least: a smaller rate never refills a bucket",
            );
        }
        if !(1.0..=MAX_RATE).contains(&limit.burst) {
            return bound("ratelimit.burst", "");
        }
        if !(1..=MAX_TABLE_SIZE).contains(&limit.table_size) {
            return bound("ratelimit.table_size", "");
        }
        Ok(())
    }

    /// The `[access]` lists.
    fn check_access(&self) -> Result<(), OutOfRange> {
        // Refused, not warned about: a typo in an access list silently
        // changes who is answered, and --check-config and a reload catch it
        // before it serves.
        if self.access.allow.is_empty() {
            return out(
                "access.allow",
                "is empty: it would answer no one (to serve no one, stop horad)",
            );
        }
        for (key, list) in [
            ("access.allow", &self.access.allow),
            ("access.deny", &self.access.deny),
        ] {
            if list.iter().any(has_host_bits) {
                return out(
                    key,
                    "has an entry with host bits set: write its network address (10.0.0.0/8, not 10.0.0.1/8) or a host as /32",
                );
            }
        }
        Ok(())
    }
}

/// Whether two sockets of one kind (UDP, or TCP) on `a` and `b` can't both
/// be bound: the same port (not 0) on the same address, or on the
/// wildcard address of the family and any address of it.
fn binds_overlap(a: &Listen, b: &Listen) -> bool {
    let (one, other) = (a.addr, b.addr);
    // Two interfaces are apart: each socket takes only its own's.
    let same_interface = match (&a.interface, &b.interface) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    };
    one.port() != 0
        && one.port() == other.port()
        && one.is_ipv4() == other.is_ipv4()
        && (one.ip() == other.ip() || one.ip().is_unspecified() || other.ip().is_unspecified())
        && same_interface
}

impl Config {
    /// Sockets that would collide at start-up (`cannot bind ...: Address
    /// already in use`, every restart again): refused here instead, so
    /// `--check-config` catches them.
    fn check_binds<'a>(&'a self) -> Result<(), OutOfRange> {
        if self.bind.is_empty() {
            return out(
                "bind",
                "names no address: the seed's protocol always serves (give at least one)",
            );
        }
        let each = |list: &[(&'static str, &'a Addresses)]| -> Vec<(&'static str, &'a Listen)> {
            list.iter()
                .flat_map(|(key, binds)| binds.iter().map(move |addr| (*key, addr)))
                .collect()
        };
        let udp = each(&[
            ("bind", &self.bind),
            ("sntp.bind", &self.sntp.bind),
            ("time.bind", &self.time.bind),
            ("daytime.bind", &self.daytime.bind),
            ("roughtime.bind", &self.roughtime.bind),
        ]);
        let tcp = each(&[
            ("metrics.bind", &self.metrics.bind),
            ("nts.bind", &self.nts.bind),
        ]);
        for sockets in [&udp[..], &tcp[..]] {
            for (i, (_, first)) in sockets.iter().enumerate() {
                for (key, second) in &sockets[i + 1..] {
                    if binds_overlap(first, second) {
                        return out(
                            key,
                            "has the same address and port as another socket of horad's, or a wildcard address on a port a specific one has, on one interface (it could not be bound)",
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// The `[roughtime]` table: a key file where it serves, and its durations.
    fn check_roughtime(&self) -> Result<(), OutOfRange> {
        let roughtime = &self.roughtime;
        if !roughtime.bind.is_empty() && roughtime.key.is_none() {
            return out("roughtime.key", "must be set when roughtime.bind is");
        }
        let delegation = Duration::from_secs(600)..=Duration::from_secs(30 * 86_400);
        if !delegation.contains(&roughtime.delegation) {
            return bound("roughtime.delegation", "");
        }
        let radius = Duration::from_secs(1)..=MAX_DURATION;
        if !radius.contains(&roughtime.min_radius) {
            return bound("roughtime.min_radius", "");
        }
        Ok(())
    }

    /// The `[nts]` table's rules: the key exchange needs its certificate,
    /// key and cookie keys; NTS needs the SNTP socket it is served on.
    fn check_nts(&self) -> Result<(), OutOfRange> {
        let nts = &self.nts;
        if !nts.bind.is_empty() {
            if nts.certificate_chain.is_none() {
                return out("nts.certificate_chain", "must be set when nts.bind is");
            }
            if nts.private_key.is_none() {
                return out("nts.private_key", "must be set when nts.bind is");
            }
            if nts.keys.is_none() {
                return out("nts.keys", "must be set when nts.bind is");
            }
        }
        if nts.require && nts.keys.is_none() {
            return out("nts.require", "needs nts.keys: it would answer no one");
        }
        if nts.keys.is_some() && nts.bind.is_empty() && self.sntp.bind.is_empty() {
            return out(
                "nts.keys",
                "needs sntp.bind or nts.bind: nothing would use it",
            );
        }
        if nts.ntp_server.as_ref().is_some_and(|name| {
            name.is_empty()
                || name.len() > 255
                || !name.is_ascii()
                || name.contains(char::is_whitespace)
        }) {
            return out(
                "nts.ntp_server",
                "must be a host name or address of 1 to 255 ASCII characters",
            );
        }
        if nts.ntp_port == Some(0) {
            return out("nts.ntp_port", "must be 1 to 65535");
        }
        if nts.key_rotation < Duration::from_secs(120) || nts.key_rotation > 30 * MAX_DURATION {
            return bound("nts.key_rotation", "");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;

    #[test]
    fn unusable_values_are_refused() {
        for (toml, key) in [
            ("[sntp]\nstratum = 0", "sntp.stratum"),
            ("bind = \"127.0.0.1:5005\"\n[sntp]\nbind = \"127.0.0.1:5005\"", "sntp.bind"),
            ("bind = \"0.0.0.0:5005\"\n[time]\nbind = \"127.0.0.1:5005\"", "time.bind"),
            ("[metrics]\nbind = \"127.0.0.1:4460\"\n[nts]\nbind = \"0.0.0.0:4460\"\ncertificate_chain = \"c\"\nprivate_key = \"k\"\nkeys = \"n\"", "nts.bind"),
            ("bind = []", "bind"),
            ("bind = [\"0.0.0.0:5005%eth1\", \"10.0.0.1:5005\"]", "bind"),
            ("bind = [\"0.0.0.0:5005%eth1\", \"0.0.0.0:5005%eth1\"]", "bind"),
            ("[sntp]\nbind = [\"10.0.0.1:123\", \"10.0.0.1:123\"]", "sntp.bind"),
            ("[sntp]\nbind = [\"10.0.0.1:123\", \"0.0.0.0:123\"]", "sntp.bind"),
            ("[time]\nbind = [\"10.0.0.1:5005\"]\n[daytime]\nbind = [\"10.0.0.2:13\", \"10.0.0.1:5005\"]", "daytime.bind"),
            ("[metrics]\nbind = [\"127.0.0.1:9975\", \"[::1]:9975\", \"[::]:9975\"]", "metrics.bind"),
            ("[ratelimit]\nrate = 0.0", "ratelimit.rate"),
            ("[ratelimit]\nburst = 0.5", "ratelimit.burst"),
            ("[ratelimit]\ntable_size = 0", "ratelimit.table_size"),
            ("[sntp]\nstratum = 17", "sntp.stratum"),
            ("[sntp]\nlocal_stratum = 16", "sntp.local_stratum"),
            ("[sntp]\nlocal_stratum = 0", "sntp.local_stratum"),
            ("[sntp]\nreference_id = \"TOOLONG\"", "sntp.reference_id"),
            ("idle_timeout = \"0s\"", "idle_timeout"),
            ("max_sessions = 0", "max_sessions"),
            ("max_sessions_per_ip = 0", "max_sessions_per_ip"),
            ("[log]\nlevel = \"=[\"", "log.level"),
            ("idle_timeout = \"18446744073709551615s\"", "idle_timeout"),
            ("idle_timeout = \"1ms\"", "idle_timeout"),
            ("stats_interval = \"1ns\"", "stats_interval"),
            (
                "stats_interval = \"18446744073709551615s\"",
                "stats_interval",
            ),
            ("max_sessions = 4000001", "max_sessions"),
            ("[ratelimit]\ntable_size = 16777216", "ratelimit.table_size"),
            ("[ratelimit]\nrate = 1e9", "ratelimit.rate"),
            ("[ratelimit]\nrate = 1e-300", "ratelimit.rate"),
            ("[ratelimit]\nburst = 1e9", "ratelimit.burst"),
            ("[sntp]\nprecision = 5", "sntp.precision"),
            ("[sntp]\nclient_log = 16777217", "sntp.client_log"),
            ("[sntp]\nroot_dispersion = \"17s\"", "sntp.root_dispersion"),
            ("[access]\nallow = []", "access.allow"),
            ("[access]\nallow = [\"10.0.0.1/8\"]", "access.allow"),
            ("[access]\ndeny = [\"192.168.1.1/24\"]", "access.deny"),
        ] {
            let error = parse(toml).unwrap().validate("config.toml").unwrap_err();
            assert!(error.to_string().contains(key), "{error}");
        }
    }
}
