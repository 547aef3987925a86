//! `horad`'s command line. Each flag overrides the same key of the
//! configuration file, and most can also come from a `HORAD_*` variable.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, ConfigError, Listen, LogFormat};

/// The file read when neither `--config` nor `HORAD_CONFIG` names one, if it
/// exists. Never a file in the working directory: a daemon started from a
/// writable directory must not take whatever config is there (chronyd,
/// ntpd-rs and nginx read a fixed path too).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hora/config.toml";

/// A flag's help with its key's range, from the key table
/// ([`crate::config::KEYS`], where every range is written once): `TEXT (LO to HI) [default: D]`.
fn ranged(text: &str, key: &str, default: &str) -> String {
    format!(
        "{text} ({}) [default: {default}]",
        crate::config::range(key)
    )
}

/// horad: a UDP time server for the LAN, speaking the seed's login/menu protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "horad", version, about, long_about = None)]
pub struct Args {
    /// Configuration file. Without it, /etc/hora/config.toml is read if it
    /// exists; otherwise the built-in defaults apply (they equal the shipped
    /// config.toml). Never a file in the working directory.
    #[arg(short, long, env = "HORAD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// UDP address to serve the seed's protocol on, IPv4 or IPv6; several
    /// as the flag again or a comma-separated list [default: 127.0.0.1:5005]
    #[arg(long, env = "HORAD_BIND", value_name = "ADDR", value_delimiter = ',')]
    pub bind: Vec<Listen>,

    /// A session silent this long ends, e.g. 10s, 500ms, 2m
    #[arg(long, env = "HORAD_IDLE_TIMEOUT", value_name = "DUR", value_parser = humantime::parse_duration,
        help = ranged("A session silent this long ends, e.g. 10s, 500ms, 2m", "idle_timeout", "10s"))]
    pub idle_timeout: Option<Duration>,

    /// The most sessions open at once
    #[arg(long, env = "HORAD_MAX_SESSIONS", value_name = "N",
        help = ranged("The most sessions open at once", "max_sessions", "1000000"))]
    pub max_sessions: Option<usize>,

    /// The most sessions open at once from one IP address
    #[arg(long, env = "HORAD_MAX_SESSIONS_PER_IP", value_name = "N",
        help = ranged("The most sessions open at once from one IP address", "max_sessions_per_ip", "100"))]
    pub max_sessions_per_ip: Option<usize>,

    /// Workers serving (a thread and a socket per protocol each, every
    /// source address on one); 0 is one per core
    #[arg(long, env = "HORAD_WORKERS", value_name = "N",
        help = ranged("Workers serving (a thread and a socket per protocol each, every source address on one); 0 is one per core", "workers", "0"))]
    pub workers: Option<usize>,

    /// How often to log the counters; 0s logs them only at shutdown
    #[arg(long, env = "HORAD_STATS_INTERVAL", value_name = "DUR", value_parser = humantime::parse_duration,
        help = ranged("How often to log the counters; 0s logs them only at shutdown", "stats_interval", "60s"))]
    pub stats_interval: Option<Duration>,

    /// Log filter, e.g. info, debug, warn; RUST_LOG overrides it [default: info]
    #[arg(long, env = "HORAD_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Serve SNTP (RFC 4330) on this address, e.g. 0.0.0.0:123; several as
    /// --bind takes them [default: off]
    #[arg(
        long,
        env = "HORAD_SNTP_BIND",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub sntp_bind: Vec<Listen>,

    /// Serve SNTP at this stratum even when the kernel says the host clock
    /// is unsynchronized, as chrony's `local stratum N`
    #[arg(long, env = "HORAD_SNTP_LOCAL_STRATUM", value_name = "N",
        help = ranged("Serve SNTP at this stratum even when the kernel says the host clock is unsynchronized, as chrony's `local stratum N`", "sntp.local_stratum", "off"))]
    pub sntp_local_stratum: Option<u8>,

    /// Entries (16 bytes each) in SNTP's interleaved-mode client log; 0
    /// serves basic mode only
    #[arg(long, env = "HORAD_SNTP_CLIENT_LOG", value_name = "N",
        help = ranged("Entries (16 bytes each) in SNTP's interleaved-mode client log; 0 serves basic mode only", "sntp.client_log", "32768"))]
    pub sntp_client_log: Option<usize>,

    /// Serve the Time Protocol (RFC 868) on this address, e.g. 0.0.0.0:37;
    /// several as --bind takes them [default: off]
    #[arg(
        long,
        env = "HORAD_TIME_BIND",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub time_bind: Vec<Listen>,

    /// Serve the Daytime Protocol (RFC 867) on this address, e.g.
    /// 0.0.0.0:13; several as --bind takes them [default: off]
    #[arg(
        long,
        env = "HORAD_DAYTIME_BIND",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub daytime_bind: Vec<Listen>,

    /// Serve /metrics (Prometheus) and /status (JSON) over HTTP on this
    /// address, e.g. 127.0.0.1:9975; several as --bind takes them
    /// [default: off]
    #[arg(
        long,
        env = "HORAD_METRICS_BIND",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub metrics_bind: Vec<Listen>,

    /// Serve the NTS key exchange (RFC 8915, TLS 1.3) on this TCP address,
    /// e.g. 0.0.0.0:4460 (several as --bind takes them); needs the
    /// certificate, its key and the cookie keys [default: off]
    #[arg(
        long,
        env = "HORAD_NTS_BIND",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub nts_bind: Vec<Listen>,

    /// The NTS-KE certificate chain, PEM, leaf first
    #[arg(long, env = "HORAD_NTS_CERTIFICATE_CHAIN", value_name = "PATH")]
    pub nts_certificate_chain: Option<PathBuf>,

    /// The NTS-KE certificate's private key, PEM
    #[arg(long, env = "HORAD_NTS_PRIVATE_KEY", value_name = "PATH")]
    pub nts_private_key: Option<PathBuf>,

    /// The NTS cookie keys' file; with it the SNTP socket answers NTS
    /// requests [default: off]
    #[arg(long, env = "HORAD_NTS_KEYS", value_name = "PATH")]
    pub nts_keys: Option<PathBuf>,

    /// The NTP server the key exchange sends clients to, if another host
    #[arg(long, env = "HORAD_NTS_NTP_SERVER", value_name = "HOST")]
    pub nts_ntp_server: Option<String>,

    /// The NTP port the key exchange sends clients to
    #[arg(long, env = "HORAD_NTS_NTP_PORT", value_name = "PORT")]
    pub nts_ntp_port: Option<u16>,

    /// Answer only NTS-authenticated SNTP requests [default: off]
    #[arg(
        long,
        env = "HORAD_NTS_REQUIRE",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub nts_require: bool,

    /// Turn per-source rate limiting off (for benchmarks) [default: on]
    #[arg(
        long,
        env = "HORAD_NO_RATELIMIT",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_ratelimit: bool,

    /// Only read and validate the configuration, print what it would serve,
    /// and exit: 0 if it is valid, 2 (with file:line:column) if not
    #[arg(long)]
    pub check_config: bool,

    /// Log format [default: text]
    #[arg(long, env = "HORAD_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl Args {
    /// The configuration to run with: the file (or the defaults), then the
    /// flags on top, validated. Also returns the file read, if any.
    pub fn config(&self) -> Result<(Config, Option<PathBuf>), ConfigError> {
        self.config_from(Path::new(DEFAULT_CONFIG_PATH))
    }

    /// [`Args::config`], with `default_path` standing for
    /// [`DEFAULT_CONFIG_PATH`] (tests point it elsewhere). Anything at the
    /// default path is read, so a directory or a FIFO there is refused,
    /// not taken for "no file".
    pub fn config_from(
        &self,
        default_path: &Path,
    ) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match &self.config {
            Some(path) => Some(path.clone()),
            None if default_path.symlink_metadata().is_ok() => Some(default_path.to_owned()),
            None => None,
        };
        let config = self.load(path.as_deref())?;
        Ok((config, path))
    }

    /// The configuration again, for a reload on SIGHUP: from the file read
    /// at start-up (`read_at_start`), which must still be there (a reload
    /// never falls back to the built-in defaults because the file went
    /// away); or, if horad started on the defaults, as at start-up.
    pub fn reload(&self, read_at_start: Option<&Path>) -> Result<Config, ConfigError> {
        self.reload_from(read_at_start, Path::new(DEFAULT_CONFIG_PATH))
    }

    /// [`Args::reload`], with `default_path` standing for
    /// [`DEFAULT_CONFIG_PATH`].
    pub fn reload_from(
        &self,
        read_at_start: Option<&Path>,
        default_path: &Path,
    ) -> Result<Config, ConfigError> {
        match read_at_start {
            Some(path) => self.load(Some(path)),
            None => self.config_from(default_path).map(|(config, _)| config),
        }
    }

    /// The file at `path` (or the defaults), then the flags on top, validated.
    fn load(&self, path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
        // The file's values passed; anything out of range now came from a
        // flag, or from the flag's variable.
        config.check().map_err(|out| {
            let key = crate::config::key(out.key);
            let flag = key.and_then(|key| key.flag).unwrap_or(out.key);
            let variable = key.and_then(|key| key.variable()).unwrap_or_default();
            let on_the_line =
                std::env::args().any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
            let from_variable =
                !on_the_line && !variable.is_empty() && std::env::var_os(&variable).is_some();
            ConfigError::Invalid {
                origin: if from_variable {
                    format!("environment: {variable}")
                } else {
                    "command line".to_owned()
                },
                key: flag,
                problem: out.problem,
            }
        })?;
        Ok(config)
    }

    /// Overrides the file's values with the flags given.
    fn apply(&self, config: &mut Config) {
        let nts = &mut config.nts;
        for (flag, key) in [
            (&self.bind, &mut config.bind),
            (&self.sntp_bind, &mut config.sntp.bind),
            (&self.time_bind, &mut config.time.bind),
            (&self.daytime_bind, &mut config.daytime.bind),
            (&self.metrics_bind, &mut config.metrics.bind),
            (&self.nts_bind, &mut nts.bind),
        ] {
            if !flag.is_empty() {
                *key = flag.clone().into();
            }
        }
        if let Some(timeout) = self.idle_timeout {
            config.idle_timeout = timeout;
        }
        if let Some(max) = self.max_sessions {
            config.max_sessions = max;
        }
        if let Some(max) = self.max_sessions_per_ip {
            config.max_sessions_per_ip = max;
        }
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        if let Some(interval) = self.stats_interval {
            config.stats_interval = interval;
        }
        if let Some(level) = &self.log_level {
            config.log.level.clone_from(level);
        }
        if let Some(format) = self.log_format {
            config.log.format = format;
        }
        if self.no_ratelimit {
            config.ratelimit.enabled = false;
        }
        if let Some(stratum) = self.sntp_local_stratum {
            config.sntp.local_stratum = Some(stratum);
        }
        if let Some(entries) = self.sntp_client_log {
            config.sntp.client_log = entries;
        }
        for (flag, key) in [
            (&self.nts_certificate_chain, &mut nts.certificate_chain),
            (&self.nts_private_key, &mut nts.private_key),
            (&self.nts_keys, &mut nts.keys),
        ] {
            if let Some(path) = flag {
                *key = Some(path.clone());
            }
        }
        if let Some(server) = &self.nts_ntp_server {
            nts.ntp_server = Some(server.clone());
        }
        if let Some(port) = self.nts_ntp_port {
            nts.ntp_port = Some(port);
        }
        if self.nts_require {
            nts.require = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;
    use crate::config::KEYS;

    #[test]
    fn an_address_flag_takes_several_again_or_with_commas() {
        let args = Args::try_parse_from([
            "horad",
            "--config",
            "/dev/null",
            "--sntp-bind",
            "127.0.0.1:1230",
            "--sntp-bind",
            "127.0.0.2:1230",
            "--bind",
            "127.0.0.1:5005,[::1]:5005",
        ])
        .unwrap();
        let (config, _) = args.config().unwrap();
        assert_eq!(
            config.sntp.bind.to_string(),
            "127.0.0.1:1230, 127.0.0.2:1230"
        );
        assert_eq!(config.bind.to_string(), "127.0.0.1:5005, [::1]:5005");
        assert!(config.time.bind.is_empty());
        // Overlapping ones are refused, naming the flag.
        let args = Args::try_parse_from([
            "horad",
            "--config",
            "/dev/null",
            "--time-bind",
            "0.0.0.0:3700,127.0.0.1:3700",
        ])
        .unwrap();
        let error = args.config().unwrap_err().to_string();
        assert!(error.contains("`--time-bind`"), "{error}");
    }

    #[test]
    fn the_key_table_names_exactly_the_flags_that_set_keys() {
        let command = Args::command();
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .filter(|long| !["config", "check-config"].contains(long))
            .map(|long| format!("--{long}"))
            .collect();
        let mut in_table: Vec<String> = KEYS
            .iter()
            .filter_map(|key| key.flag.map(str::to_owned))
            .collect();
        let mut flags = flags;
        flags.sort();
        in_table.sort();
        assert_eq!(flags, in_table);
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let Some(key) = KEYS
                .iter()
                .find(|key| key.flag == Some(format!("--{long}").as_str()))
            else {
                continue;
            };
            // The variable clap reads is the one errors name.
            let env = arg.get_env().and_then(|env| env.to_str());
            assert_eq!(env, key.variable().as_deref(), "--{long}");
        }
    }
}
