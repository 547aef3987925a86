//! The table of configuration keys: each key's dotted name, its flag (and
//! so its `HORAD_*` variable), its range, and what a reload does with a new
//! value. What must name every key reads this table: the errors that name
//! a flag, the ranges in `horad --help` and in the checks, a reload's
//! decisions, hora-config(5) and horad(8). A key is added with one row
//! here, its field in [`Config`] and the code that uses its value.

use super::Config;

/// What a reload (SIGHUP) does with a key whose value changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// Applied at once, without dropping a session.
    Live,
    /// Kept as it was until a restart, reported once as not applied: it
    /// shaped what start-up built (the workers, the summary timer, the log
    /// subscriber, the cookie keys' task).
    Restart,
    /// An address to bind: the whole reload is refused (sockets are bound
    /// only at start-up) and the running configuration stays.
    Refused,
}

impl Reload {
    /// What a reload does, in the words of hora-config(5).
    pub fn words(self) -> &'static str {
        match self {
            Reload::Live => "applied at once",
            Reload::Restart => "kept as it was until a restart",
            Reload::Refused => "refused: sockets are bound only at start-up",
        }
    }
}

/// One configuration key: a row of [`KEYS`].
#[derive(Debug)]
pub struct Key {
    /// Dotted, as errors and logs name it: `ratelimit.rate`.
    pub name: &'static str,
    /// The command-line flag that sets it, if one does.
    pub flag: Option<&'static str>,
    /// Its range as the documentation states it (`1 to 15`); empty for a
    /// key without one.
    pub range: &'static str,
    /// What a reload does with a new value.
    pub reload: Reload,
    /// Whether the key differs between two configurations.
    differs: fn(&Config, &Config) -> bool,
    /// Copies the key's value from the second configuration to the first.
    keep: fn(&mut Config, &Config),
}

impl Key {
    /// The `HORAD_*` variable that sets it, from its flag
    /// (`--log-level`: `HORAD_LOG_LEVEL`).
    pub fn variable(&self) -> Option<String> {
        self.flag.map(|flag| {
            format!(
                "HORAD_{}",
                flag.trim_start_matches("--")
                    .replace('-', "_")
                    .to_ascii_uppercase()
            )
        })
    }
}

/// `Some(flag)`, or `None` for `""`: rows stay one line each.
const fn flag(text: &'static str) -> Option<&'static str> {
    if text.is_empty() {
        None
    } else {
        Some(text)
    }
}

/// Rows of `KEY.PATH => "--flag", "range", Reload;`: the field path is the
/// key's dotted name, so the two can't disagree.
macro_rules! keys {
    ($($first:ident $(. $rest:ident)* => $flag:literal, $range:literal, $reload:ident;)*) => {
        /// Every key of the configuration file, in the file's order.
        pub const KEYS: &[Key] = &[$(Key {
            name: concat!(stringify!($first) $(, ".", stringify!($rest))*),
            flag: flag($flag),
            range: $range,
            reload: Reload::$reload,
            differs: |old: &Config, new: &Config| old.$first$(.$rest)* != new.$first$(.$rest)*,
            keep: |new: &mut Config, old: &Config| {
                new.$first$(.$rest)*.clone_from(&old.$first$(.$rest)*)
            },
        },)*];
    };
}

keys! {
    bind => "--bind", "", Refused;
    idle_timeout => "--idle-timeout", "10ms to 1day", Live;
    max_sessions => "--max-sessions", "1 to 4000000", Live;
    max_sessions_per_ip => "--max-sessions-per-ip", "1 to 4000000", Live;
    workers => "--workers", "0 to 1024", Restart;
    stats_interval => "--stats-interval", "1s to 1day", Restart;
    log.level => "--log-level", "", Live;
    log.format => "--log-format", "", Restart;
    sntp.bind => "--sntp-bind", "", Refused;
    sntp.stratum => "", "1 to 16", Live;
    sntp.reference_id => "", "", Live;
    sntp.precision => "", "-32 to 0", Live;
    sntp.root_delay => "", "0s to 16s", Live;
    sntp.root_dispersion => "", "0s to 16s", Live;
    sntp.local_stratum => "--sntp-local-stratum", "1 to 15", Live;
    sntp.client_log => "--sntp-client-log", "0 to 16777216", Live;
    time.bind => "--time-bind", "", Refused;
    daytime.bind => "--daytime-bind", "", Refused;
    metrics.bind => "--metrics-bind", "", Refused;
    nts.bind => "--nts-bind", "", Refused;
    nts.certificate_chain => "--nts-certificate-chain", "", Live;
    nts.private_key => "--nts-private-key", "", Live;
    nts.keys => "--nts-keys", "", Restart;
    nts.ntp_server => "--nts-ntp-server", "", Live;
    nts.ntp_port => "--nts-ntp-port", "", Live;
    nts.require => "--nts-require", "", Live;
    nts.key_rotation => "", "2min to 30days", Restart;
    access.allow => "", "", Live;
    access.deny => "", "", Live;
    ratelimit.enabled => "--no-ratelimit", "", Live;
    ratelimit.rate => "", "0.001 to 1000000", Live;
    ratelimit.burst => "", "1 to 1000000", Live;
    ratelimit.table_size => "", "1 to 1048576", Live;
}

/// The key named `name` (dotted), if there is one.
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

/// `name`'s range (empty for a key without one).
pub fn range(name: &str) -> &'static str {
    key(name).map_or("", |key| key.range)
}

/// The keys whose changes a reload treats as `reload`, by name.
pub fn names(reload: Reload) -> impl Iterator<Item = &'static str> {
    KEYS.iter()
        .filter(move |key| key.reload == reload)
        .map(|key| key.name)
}

impl Config {
    /// The keys whose values differ in `new`, in the file's order.
    pub fn changes(&self, new: &Config) -> Vec<&'static Key> {
        KEYS.iter().filter(|key| (key.differs)(self, new)).collect()
    }

    /// `new`, with the keys that change only at restart ([`Reload::Restart`])
    /// as they are in `self`.
    pub fn keeping_restart_only(&self, mut new: Config) -> Config {
        for key in KEYS.iter().filter(|key| key.reload == Reload::Restart) {
            (key.keep)(&mut new, self);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{
        AccessConfig, LogConfig, LogFormat, NtsConfig, RateLimitConfig, ServiceConfig, SntpConfig,
    };

    /// How many keys [`Config`] has. Every field is named, without `..`:
    /// a field added to `Config` does not compile here until it is counted,
    /// and then the test below wants its row.
    fn fields_of(config: &Config) -> usize {
        let Config {
            bind: _,
            idle_timeout: _,
            max_sessions: _,
            max_sessions_per_ip: _,
            workers: _,
            stats_interval: _,
            log: LogConfig {
                level: _,
                format: _,
            },
            sntp:
                SntpConfig {
                    bind: _,
                    stratum: _,
                    reference_id: _,
                    precision: _,
                    root_delay: _,
                    root_dispersion: _,
                    local_stratum: _,
                    client_log: _,
                },
            time: ServiceConfig { bind: _ },
            daytime: ServiceConfig { bind: _ },
            access: AccessConfig { allow: _, deny: _ },
            ratelimit:
                RateLimitConfig {
                    enabled: _,
                    rate: _,
                    burst: _,
                    table_size: _,
                },
            metrics: ServiceConfig { bind: _ },
            nts:
                NtsConfig {
                    bind: _,
                    certificate_chain: _,
                    private_key: _,
                    keys: _,
                    ntp_server: _,
                    ntp_port: _,
                    require: _,
                    key_rotation: _,
                },
        } = config;
        33
    }

    #[test]
    fn every_field_of_the_configuration_has_one_row() {
        assert_eq!(KEYS.len(), fields_of(&Config::default()));
        for (i, key) in KEYS.iter().enumerate() {
            assert!(
                KEYS[i + 1..].iter().all(|other| other.name != key.name),
                "{} twice",
                key.name
            );
        }
    }

    #[test]
    fn every_row_tells_its_own_field_apart() {
        // Each row's `differs` sees its field and no other: a change to
        // one key's value is reported as that key alone.
        let old = Config::default();
        let mut new = old.clone();
        new.sntp.precision = -20;
        new.ratelimit.table_size = 64;
        new.metrics.bind = "127.0.0.1:0".parse().unwrap();
        new.nts.key_rotation = Duration::from_secs(3600);
        let names: Vec<&str> = old.changes(&new).iter().map(|key| key.name).collect();
        assert_eq!(
            names,
            [
                "sntp.precision",
                "metrics.bind",
                "nts.key_rotation",
                "ratelimit.table_size"
            ]
        );
        assert!(old.changes(&old).is_empty());
    }

    #[test]
    fn a_reload_keeps_exactly_the_restart_only_keys() {
        let old = Config::default();
        let mut new = old.clone();
        new.workers = 3;
        new.stats_interval = Duration::ZERO;
        new.log.format = LogFormat::Json;
        new.nts.keys = Some("/tmp/keys".into());
        new.nts.key_rotation = Duration::from_secs(3600);
        new.idle_timeout = Duration::from_secs(30);
        let kept = old.keeping_restart_only(new);
        let names: Vec<&str> = old.changes(&kept).iter().map(|key| key.name).collect();
        assert_eq!(names, ["idle_timeout"]);
        assert_eq!(
            names_of(Reload::Restart),
            [
                "workers",
                "stats_interval",
                "log.format",
                "nts.keys",
                "nts.key_rotation"
            ]
        );
    }

    fn names_of(reload: Reload) -> Vec<&'static str> {
        names(reload).collect()
    }

    #[test]
    fn every_address_to_bind_refuses_a_reload() {
        let binds: Vec<&str> = KEYS
            .iter()
            .filter(|key| key.name.ends_with("bind"))
            .map(|key| key.name)
            .collect();
        assert_eq!(names_of(Reload::Refused), binds);
    }

    #[test]
    fn a_flag_names_its_variable() {
        let key = key("sntp.local_stratum").unwrap();
        assert_eq!(key.variable().as_deref(), Some("HORAD_SNTP_LOCAL_STRATUM"));
        assert_eq!(super::key("access.allow").unwrap().variable(), None);
        assert_eq!(range("sntp.local_stratum"), "1 to 15");
        assert_eq!(range("no.such.key"), "");
    }

    #[test]
    fn every_key_and_its_range_is_in_the_shipped_config_toml() {
        let shipped = include_str!("../../../../config.toml");
        let lines: Vec<&str> = shipped.lines().collect();
        for key in KEYS {
            let (table, name) = key.name.rsplit_once('.').unwrap_or(("", key.name));
            // The key's line in its table, set or commented out.
            let mut current = "";
            let at = lines
                .iter()
                .position(|line| {
                    if let Some(header) = line.strip_prefix('[') {
                        current = header.trim_end_matches(']');
                    }
                    let bare = line.trim_start_matches("# ");
                    current == table && bare.starts_with(&format!("{name} = "))
                })
                .unwrap_or_else(|| panic!("{} not in config.toml", key.name));
            if key.range.is_empty() {
                continue;
            }
            // Its comment: the lines above it, past the keys it shares one
            // with, up to a blank line or a table.
            let mut above = at;
            while above > 0 && lines[above - 1].contains(" = ") {
                above -= 1;
            }
            let mut comment = Vec::new();
            while above > 0 && lines[above - 1].starts_with('#') {
                above -= 1;
                comment.push(lines[above].trim_start_matches('#').trim());
            }
            comment.reverse();
            let comment = comment.join(" ");
            assert!(
                comment.contains(key.range),
                "{}: config.toml says {comment:?}, not {}",
                key.name,
                key.range
            );
        }
    }
}
