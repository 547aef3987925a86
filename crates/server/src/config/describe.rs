//! What a configuration serves, one line a part, in words: what
//! `horad --check-config` prints.

use hora_proto::access::IpNet;

use super::{
    Addresses, Config, LogFormat, NtsConfig, RateLimitConfig, RoughtimeConfig, SntpConfig,
};

impl Config {
    /// What this configuration serves, one line a part, for
    /// `horad --check-config`.
    pub fn describe(&self) -> String {
        let workers = match self.workers {
            0 => format!("{} (one per core)", self.workers_wanted()),
            n => n.to_string(),
        };
        let stats = if self.stats_interval.is_zero() {
            "at shutdown only".to_owned()
        } else {
            format!("every {}", humantime::format_duration(self.stats_interval))
        };
        let format = match self.log.format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        };
        let metrics = if self.metrics.bind.is_empty() {
            "off".to_owned()
        } else {
            let each = self
                .metrics
                .bind
                .iter()
                .map(|a| format!("http://{a}/metrics"));
            format!("{} and /status", each.collect::<Vec<_>>().join(", "))
        };
        format!(
            "seed protocol: {}, idle timeout {}, {} sessions ({} per IP)\n\
             workers: {workers}, each source address served by one\n\
             sntp: {}\n\
             nts: {}\n\
             time (RFC 868): {}\n\
             daytime (RFC 867): {}\n\
             roughtime (RFC 10049): {}\n\
             access: allow {}; deny {}\n\
             rate limit: {}\n\
             metrics: {metrics}\n\
             log: level {}, {format}, summary {stats}\n",
            udp(&self.bind),
            humantime::format_duration(self.idle_timeout),
            self.max_sessions,
            self.max_sessions_per_ip,
            sntp(&self.sntp),
            nts(&self.nts),
            udp(&self.time.bind),
            udp(&self.daytime.bind),
            roughtime(&self.roughtime),
            networks(&self.access.allow),
            networks(&self.access.deny),
            rate_limit(&self.ratelimit),
            self.log.level,
        )
    }
}

/// A UDP listener: `udp ADDR`, one for each address, or `off`.
fn udp(binds: &Addresses) -> String {
    listeners("udp", binds)
}

/// `KIND ADDR` for each address, or `off`.
fn listeners(kind: &str, binds: &Addresses) -> String {
    if binds.is_empty() {
        return "off".to_owned();
    }
    let each: Vec<String> = binds.iter().map(|addr| format!("{kind} {addr}")).collect();
    each.join(", ")
}

/// Roughtime's sockets, key file, delegation and least radius, or `off`.
fn roughtime(roughtime: &RoughtimeConfig) -> String {
    if roughtime.bind.is_empty() {
        return "off".to_owned();
    }
    let key = roughtime
        .key
        .as_ref()
        .map_or_else(String::new, |path| path.display().to_string());
    format!(
        "{}, long-term key {key} (made if absent), online keys delegated for {}, radius at least {}",
        udp(&roughtime.bind),
        humantime::format_duration(roughtime.delegation),
        humantime::format_duration(roughtime.min_radius),
    )
}

/// An access list, comma-separated, or `none`.
fn networks(list: &[IpNet]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    let list: Vec<String> = list.iter().map(ToString::to_string).collect();
    list.join(", ")
}

/// SNTP's socket, the clock it serves and its modes.
fn sntp(sntp: &SntpConfig) -> String {
    if sntp.bind.is_empty() {
        return "off".to_owned();
    }
    let unsynchronized = sntp
        .local_stratum
        .map_or("leap indicator 3 when not".to_owned(), |n| {
            format!("local stratum {n} when not")
        });
    let modes = match sntp.client_log {
        0 => "basic mode only".to_owned(),
        n => format!(
            "interleaved mode, client log of {n} replies ({} KiB)",
            n * hora_proto::interleave::ENTRY_BYTES / 1024
        ),
    };
    format!(
        "{}, stratum {} when the kernel says synchronized, {unsynchronized}; {modes}",
        udp(&sntp.bind),
        sntp.stratum
    )
}

/// NTS: the key exchange (or none here), the cookie keys and who writes
/// them, and whether plain SNTP is dropped.
fn nts(nts: &NtsConfig) -> String {
    let Some(keys) = &nts.keys else {
        return "off".to_owned();
    };
    let (served, keys_are) = if nts.bind.is_empty() {
        (
            "authenticated SNTP only (no key exchange here)".to_owned(),
            "read only".to_owned(),
        )
    } else {
        (
            format!(
                "key exchange {} (TLS 1.3), authenticated SNTP",
                listeners("tcp", &nts.bind)
            ),
            format!(
                "rotated every {}",
                humantime::format_duration(nts.key_rotation)
            ),
        )
    };
    let plain = if nts.require {
        "; plain SNTP dropped"
    } else {
        ""
    };
    format!(
        "{served}; cookie keys {} ({keys_are}){plain}",
        keys.display()
    )
}

/// The rate limit per source, or `off`.
fn rate_limit(limit: &RateLimitConfig) -> String {
    if !limit.enabled {
        return "off".to_owned();
    }
    format!(
        "{}/s per source, bursts of {}, {} buckets",
        limit.rate, limit.burst, limit.table_size
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nts_says_who_writes_the_keys_and_what_is_dropped() {
        let mut config = NtsConfig {
            keys: Some("/var/lib/hora/nts-keys".into()),
            require: true,
            ..NtsConfig::default()
        };
        assert_eq!(
            nts(&config),
            "authenticated SNTP only (no key exchange here); cookie keys /var/lib/hora/nts-keys (read only); plain SNTP dropped"
        );
        config.bind = "127.0.0.1:4460"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        config.require = false;
        assert_eq!(
            nts(&config),
            "key exchange tcp 127.0.0.1:4460 (TLS 1.3), authenticated SNTP; cookie keys /var/lib/hora/nts-keys (rotated every 1day)"
        );
        assert_eq!(nts(&NtsConfig::default()), "off");
    }
}
