//! The table of configuration keys: each key's dotted name, its flag (and
//! so its `HORAD_*` variable, its help and how its text is read), its
//! range, and what a reload does with a new value. What must name every
//! key reads this table: horad's flags themselves (`cli::KeyFlags` makes
//! clap's arguments from the rows), the errors that name a flag, the
//! ranges in `--help` and in the checks, a reload's decisions,
//! hora-config(5) and horad(8). A key is added with one row here, its
//! field in [`Config`] (and `config.toml`'s words for it) and the code
//! that uses its value.

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
    /// How the flag reads, for `--help` and the man page.
    pub cli: Option<Flag>,
    /// Its range as the documentation states it (`1 to 15`); empty for a
    /// key without one.
    pub range: &'static str,
    /// What a reload does with a new value.
    pub reload: Reload,
    /// Sets the key from its flag's text (the flag's value; nothing for a
    /// switch): the error says why the text is no value.
    pub set: fn(&mut Config, &str) -> Result<(), String>,
    /// Whether the key differs between two configurations.
    differs: fn(&Config, &Config) -> bool,
    /// Copies the key's value from the second configuration to the first.
    keep: fn(&mut Config, &Config),
}

/// How a key's flag reads on the command line.
#[derive(Debug)]
pub struct Flag {
    /// What `--help` calls its value (`DUR`, `ADDR`); empty for a switch.
    pub value_name: &'static str,
    /// What it does, in `--help`'s words.
    pub help: &'static str,
    /// The default `--help` states, if it states one.
    pub default: &'static str,
    /// A switch, one value, or a list.
    pub takes: Takes,
}

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// Nothing: its presence (or its variable's `1`/`true`) sets it.
    Switch,
    /// One value.
    One,
    /// Values, the flag again or comma-separated.
    List,
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

/// How a row's field is set from a flag's text (`$how` in [`keys!`]).
mod set {
    use std::fmt::Display;
    use std::str::FromStr;
    use std::time::Duration;

    use crate::config::LogFormat;

    /// Any value with a `FromStr`.
    pub fn parse<T: FromStr>(field: &mut T, text: &str) -> Result<(), String>
    where
        T::Err: Display,
    {
        *field = text.parse().map_err(|error: T::Err| error.to_string())?;
        Ok(())
    }

    /// An optional value, given.
    pub fn some<T: FromStr>(field: &mut Option<T>, text: &str) -> Result<(), String>
    where
        T::Err: Display,
    {
        *field = Some(text.parse().map_err(|error: T::Err| error.to_string())?);
        Ok(())
    }

    /// A duration as humantime writes it, as the file's are.
    pub fn duration(field: &mut Duration, text: &str) -> Result<(), String> {
        *field = humantime::parse_duration(text).map_err(|error| error.to_string())?;
        Ok(())
    }

    /// Addresses, comma-separated ([`crate::config::Addresses`]).
    pub use parse as list;

    /// A log format by name.
    pub fn format(field: &mut LogFormat, text: &str) -> Result<(), String> {
        *field = <LogFormat as clap::ValueEnum>::from_str(text, true)
            .map_err(|_| format!("`{text}` is not a log format: text or json"))?;
        Ok(())
    }

    /// A switch that turns the key on.
    pub fn yes(field: &mut bool, _: &str) -> Result<(), String> {
        *field = true;
        Ok(())
    }

    /// A switch that turns the key off.
    pub fn no(field: &mut bool, _: &str) -> Result<(), String> {
        *field = false;
        Ok(())
    }

    /// A key no flag sets.
    pub fn none<T>(_: &mut T, _: &str) -> Result<(), String> {
        Ok(())
    }
}

/// What a row's `$how` takes on the command line.
macro_rules! takes {
    (yes) => {
        Takes::Switch
    };
    (no) => {
        Takes::Switch
    };
    (list) => {
        Takes::List
    };
    ($other:ident) => {
        Takes::One
    };
}

/// `Some` of what is given, `None` of nothing.
macro_rules! optional {
    () => {
        None
    };
    ($($given:tt)+) => {
        Some($($given)+)
    };
}

/// Rows of `KEY.PATH => HOW [FLAG, VALUE, HELP, DEFAULT], "range", Reload;`
/// (`[]` for a key without a flag): the field path is the key's dotted
/// name, so the two can't disagree, and `HOW` ([`set`]) reads the flag's
/// text into that field.
macro_rules! keys {
    ($($first:ident $(. $rest:ident)* => $how:ident [$($long:literal, $value:literal, $help:literal, $default:literal)?], $range:literal, $reload:ident;)*) => {
        /// Every key of the configuration file, in the file's order.
        pub const KEYS: &[Key] = &[$(Key {
            name: concat!(stringify!($first) $(, ".", stringify!($rest))*),
            flag: optional!($($long)?),
            cli: optional!($(Flag {
                value_name: $value,
                help: $help,
                default: $default,
                takes: takes!($how),
            })?),
            range: $range,
            reload: Reload::$reload,
            set: |config: &mut Config, text: &str| set::$how(&mut config.$first$(.$rest)*, text),
            differs: |old: &Config, new: &Config| old.$first$(.$rest)* != new.$first$(.$rest)*,
            keep: |new: &mut Config, old: &Config| {
                new.$first$(.$rest)*.clone_from(&old.$first$(.$rest)*)
            },
        },)*];
    };
}

keys! {
    bind => list ["--bind", "ADDR", "UDP address to serve the seed's protocol on, IPv4 or IPv6; several as the flag again or a comma-separated list", "127.0.0.1:5005"], "", Refused;
    idle_timeout => duration ["--idle-timeout", "DUR", "A session silent this long ends, e.g. 10s, 500ms, 2m", "10s"], "10ms to 1day", Live;
    max_sessions => parse ["--max-sessions", "N", "The most sessions open at once", "1000000"], "1 to 4000000", Live;
    max_sessions_per_ip => parse ["--max-sessions-per-ip", "N", "The most sessions open at once from one IP address", "100"], "1 to 4000000", Live;
    workers => parse ["--workers", "N", "Workers serving (a thread and a socket per protocol each, every source address on one); 0 is one per core", "0"], "0 to 1024", Restart;
    stats_interval => duration ["--stats-interval", "DUR", "How often to log the counters; 0s logs them only at shutdown", "60s"], "1s to 1day", Restart;
    log.level => parse ["--log-level", "FILTER", "Log filter, e.g. info, debug, warn; RUST_LOG overrides it", "info"], "", Live;
    log.format => format ["--log-format", "FORMAT", "Log format: text or json", "text"], "", Restart;
    sntp.bind => list ["--sntp-bind", "ADDR", "Serve SNTP (RFC 4330) on this address, e.g. 0.0.0.0:123; several as --bind takes them", "off"], "", Refused;
    sntp.stratum => none [], "1 to 16", Live;
    sntp.reference_id => none [], "", Live;
    sntp.precision => none [], "-32 to 0", Live;
    sntp.root_delay => none [], "0s to 16s", Live;
    sntp.root_dispersion => none [], "0s to 16s", Live;
    sntp.local_stratum => some ["--sntp-local-stratum", "N", "Serve SNTP at this stratum even when the kernel says the host clock is unsynchronized, as chrony's `local stratum N`", "off"], "1 to 15", Live;
    sntp.client_log => parse ["--sntp-client-log", "N", "Entries (16 bytes each) in SNTP's interleaved-mode client log; 0 serves basic mode only", "32768"], "0 to 16777216", Live;
    time.bind => list ["--time-bind", "ADDR", "Serve the Time Protocol (RFC 868) on this address, e.g. 0.0.0.0:37; several as --bind takes them", "off"], "", Refused;
    daytime.bind => list ["--daytime-bind", "ADDR", "Serve the Daytime Protocol (RFC 867) on this address, e.g. 0.0.0.0:13; several as --bind takes them", "off"], "", Refused;
    metrics.bind => list ["--metrics-bind", "ADDR", "Serve /metrics (Prometheus) and /status (JSON) over HTTP on this address, e.g. 127.0.0.1:9975; several as --bind takes them", "off"], "", Refused;
    nts.bind => list ["--nts-bind", "ADDR", "Serve the NTS key exchange (RFC 8915, TLS 1.3) on this TCP address, e.g. 0.0.0.0:4460 (several as --bind takes them); needs the certificate, its key and the cookie keys", "off"], "", Refused;
    nts.certificate_chain => some ["--nts-certificate-chain", "PATH", "The NTS-KE certificate chain, PEM, leaf first", ""], "", Live;
    nts.private_key => some ["--nts-private-key", "PATH", "The NTS-KE certificate's private key, PEM", ""], "", Live;
    nts.keys => some ["--nts-keys", "PATH", "The NTS cookie keys' file; with it the SNTP socket answers NTS requests", "off"], "", Restart;
    nts.ntp_server => some ["--nts-ntp-server", "HOST", "The NTP server the key exchange sends clients to, if another host", ""], "", Live;
    nts.ntp_port => some ["--nts-ntp-port", "PORT", "The NTP port the key exchange sends clients to", ""], "", Live;
    nts.require => yes ["--nts-require", "", "Answer only NTS-authenticated SNTP requests", "off"], "", Live;
    nts.key_rotation => none [], "2min to 30days", Restart;
    roughtime.bind => list ["--roughtime-bind", "ADDR", "Serve Roughtime (RFC 10049) on this address, e.g. 0.0.0.0:2002; several as --bind takes them; needs the key file", "off"], "", Refused;
    roughtime.key => some ["--roughtime-key", "PATH", "The Roughtime long-term key's file (an Ed25519 seed, mode 0600, made when absent)", ""], "", Restart;
    roughtime.delegation => duration ["--roughtime-delegation", "DUR", "How long an online Roughtime key is delegated; a new one is made halfway", "1day"], "10min to 30days", Restart;
    roughtime.min_radius => duration ["--roughtime-min-radius", "DUR", "The least radius a Roughtime response gives, whatever the kernel's maximum error", "1s"], "1s to 1day", Live;
    access.allow => none [], "", Live;
    access.deny => none [], "", Live;
    ratelimit.enabled => no ["--no-ratelimit", "", "Turn per-source rate limiting off (for benchmarks)", "on"], "", Live;
    ratelimit.rate => none [], "0.001 to 1000000", Live;
    ratelimit.burst => none [], "1 to 1000000", Live;
    ratelimit.table_size => none [], "1 to 1048576", Live;
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
        AccessConfig, LogConfig, LogFormat, NtsConfig, RateLimitConfig, RoughtimeConfig,
        ServiceConfig, SntpConfig,
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
            roughtime:
                RoughtimeConfig {
                    bind: _,
                    key: _,
                    delegation: _,
                    min_radius: _,
                },
        } = config;
        37
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
                "nts.key_rotation",
                "roughtime.key",
                "roughtime.delegation"
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
