//! The daemon's configuration: `config.toml`, validated once at start-up.
//!
//! [`Config::default`] equals the commented `config.toml` at the root of the
//! repository (a test checks it), so a daemon started without a file behaves
//! exactly as one started with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hora_proto::access::{has_host_bits, IpNet, LAN_NETWORKS};
use hora_proto::host_clock::ClockSettings;
use hora_proto::sntp::{parse_reference_id, ServerClock};
use serde::Deserialize;

/// Everything `horad` can be told, from the file and then the command line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The UDP address to serve the seed's protocol on (IPv4 or IPv6).
    #[serde(deserialize_with = "text::address")]
    pub bind: SocketAddr,
    /// How long a session may stay silent before it ends.
    #[serde(deserialize_with = "text::duration")]
    pub idle_timeout: Duration,
    /// The most sessions open at once; a `login` beyond it is refused.
    pub max_sessions: usize,
    /// The most sessions open at once from one source IP address.
    pub max_sessions_per_ip: usize,
    /// How many workers serve, each with its own thread and its own socket
    /// per protocol, every source address on one of them; 0 means one per
    /// core available to the process.
    pub workers: usize,
    /// How often the counters are logged; `0s` logs them only at shutdown.
    #[serde(deserialize_with = "text::duration")]
    pub stats_interval: Duration,
    /// How the daemon logs.
    pub log: LogConfig,
    /// SNTP (RFC 4330) on its own socket; off unless `bind` is set.
    pub sntp: SntpConfig,
    /// The Time Protocol (RFC 868) on its own socket; off unless `bind` is set.
    pub time: ServiceConfig,
    /// The Daytime Protocol (RFC 867) on its own socket; off unless `bind` is set.
    pub daytime: ServiceConfig,
    /// Which source networks are answered.
    pub access: AccessConfig,
    /// How often one source IP is answered.
    pub ratelimit: RateLimitConfig,
    /// The HTTP listener for operators (`/metrics`, `/status`); off unless
    /// `bind` is set.
    pub metrics: ServiceConfig,
    /// Network Time Security (RFC 8915): the key exchange listener, and
    /// authenticated SNTP on the `[sntp]` socket; off unless `keys` is set.
    pub nts: NtsConfig,
}

/// The `[nts]` table. With `keys` alone, the SNTP socket answers NTS
/// requests whose cookies those keys open (an NTP host of a fleet); with
/// `bind`, `certificate_chain` and `private_key` too, horad also runs the
/// key exchange, and rotates the keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtsConfig {
    /// The NTS-KE listener (TCP, TLS 1.3); absent means off. Its standard
    /// port is 4460.
    #[serde(deserialize_with = "text::optional_address")]
    pub bind: Option<SocketAddr>,
    /// The server's certificate chain, PEM, leaf first. Re-read on SIGHUP.
    pub certificate_chain: Option<PathBuf>,
    /// The certificate's private key, PEM. Re-read on SIGHUP.
    pub private_key: Option<PathBuf>,
    /// The cookie keys' file (mode 0600). The KE host writes it; every
    /// host reads it at start and re-reads it as it changes.
    pub keys: Option<PathBuf>,
    /// The NTP server named in the key exchange's answer, when it is
    /// another host (a KE host in front of NTP hosts).
    pub ntp_server: Option<String>,
    /// The NTP port named in the key exchange's answer.
    pub ntp_port: Option<u16>,
    /// Answer only NTS requests on the SNTP socket (ntpd-rs's
    /// `require-nts`): plain ones are dropped and counted.
    pub require: bool,
    /// How often the KE host makes a new cookie key; the last 7 are kept.
    #[serde(deserialize_with = "text::duration")]
    pub key_rotation: Duration,
}

impl Default for NtsConfig {
    /// Off; keys rotate daily once it is on.
    fn default() -> Self {
        NtsConfig {
            bind: None,
            certificate_chain: None,
            private_key: None,
            keys: None,
            ntp_server: None,
            ntp_port: None,
            require: false,
            key_rotation: Duration::from_secs(24 * 3600),
        }
    }
}

impl NtsConfig {
    /// Whether the SNTP socket answers NTS requests.
    pub fn serves(&self) -> bool {
        self.keys.is_some()
    }
}

/// The `[access]` table: networks answered, as chrony's `allow`/`deny`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessConfig {
    /// Networks answered (CIDR, IPv4 or IPv6).
    pub allow: Vec<IpNet>,
    /// Networks never answered, even inside an allowed one.
    pub deny: Vec<IpNet>,
}

impl Default for AccessConfig {
    /// A LAN daemon's: loopback, RFC 1918, link-local, IPv6 ULA.
    fn default() -> Self {
        AccessConfig {
            allow: LAN_NETWORKS.iter().filter_map(|n| n.parse().ok()).collect(),
            deny: Vec::new(),
        }
    }
}

/// The `[ratelimit]` table: a token bucket per source IP, over every protocol.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off only for benchmarks (which then say so).
    pub enabled: bool,
    /// Datagrams per second one source IP may send, sustained.
    pub rate: f64,
    /// Datagrams one source IP may send at once after a quiet spell.
    pub burst: f64,
    /// Buckets in the fixed table (32 bytes each, in sets of 8): a source
    /// its set has no room for takes the set's least recently seen bucket
    /// as it stands (see [`hora_proto::ratelimit`]).
    pub table_size: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            rate: 20.0,
            burst: 40.0,
            table_size: 16_384,
        }
    }
}

/// A standard protocol's table: `[time]`, `[daytime]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where to serve it; absent means off.
    #[serde(deserialize_with = "text::optional_address")]
    pub bind: Option<SocketAddr>,
}

/// The `[sntp]` table: where to serve, and how to describe the clock. The
/// leap indicator, and whether the clock is served at all as synchronized,
/// come from the kernel ([`hora_proto::host_clock`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SntpConfig {
    /// Where to serve SNTP; absent means off. Its standard port is 123.
    #[serde(deserialize_with = "text::optional_address")]
    pub bind: Option<SocketAddr>,
    /// The stratum served while the kernel says the clock is synchronized:
    /// one above the host's own source's, 1 to 15 (16: never trust me).
    pub stratum: u8,
    /// An IPv4 address or up to four ASCII characters.
    pub reference_id: String,
    /// log2 of the clock's precision in seconds.
    pub precision: i8,
    /// Round-trip delay to the reference clock.
    #[serde(deserialize_with = "text::duration")]
    pub root_delay: Duration,
    /// The root dispersion served as a local clock (`local_stratum`); while
    /// synchronized, the kernel's maximum error is served instead.
    #[serde(deserialize_with = "text::duration")]
    pub root_dispersion: Duration,
    /// chrony's `local stratum N`: serve this host's clock at stratum N even
    /// when the kernel says nothing synchronizes it. Off by default.
    pub local_stratum: Option<u8>,
    /// Entries in interleaved mode's client log (16 bytes each, taken on
    /// the first interleaved request); 0 serves basic mode only.
    pub client_log: usize,
}

/// The client log's default size: 32,768 entries, 512 KiB, chrony's
/// `clientloglimit` default.
pub const CLIENT_LOG: usize = 32_768;

/// The largest client log: 16,777,216 entries, 256 MiB.
const MAX_CLIENT_LOG: usize = 1 << 24;

impl Default for SntpConfig {
    /// Off; when on, describing a synchronized clock with chrony's `local
    /// stratum 10` fields.
    fn default() -> Self {
        let clock = ServerClock::default();
        SntpConfig {
            bind: None,
            stratum: clock.stratum,
            reference_id: "127.127.1.1".to_owned(),
            precision: clock.precision,
            root_delay: clock.root_delay,
            root_dispersion: clock.root_dispersion,
            local_stratum: None,
            client_log: CLIENT_LOG,
        }
    }
}

impl SntpConfig {
    /// The settings every reply is built from, with the kernel's state;
    /// `None` if the reference id is unusable (validation rejects that first).
    pub fn settings(&self) -> Option<ClockSettings> {
        parse_reference_id(&self.reference_id).map(|_| self.clock_settings())
    }

    /// [`SntpConfig::settings`], with the default reference id where this
    /// one is unusable (validation refuses such a configuration first):
    /// what protocol v2's time answers describe even when SNTP is off.
    pub fn clock_settings(&self) -> ClockSettings {
        let reference_id = parse_reference_id(&self.reference_id)
            .unwrap_or(std::net::Ipv4Addr::new(127, 127, 1, 1).octets());
        ClockSettings {
            stratum: self.stratum,
            reference_id,
            precision: self.precision,
            root_delay: self.root_delay,
            root_dispersion: self.root_dispersion,
            local_stratum: self.local_stratum,
        }
    }
}

/// The `[log]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `debug`, `horad=debug,warn`); `RUST_LOG`
    /// overrides it.
    pub level: String,
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
}

/// The two log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

impl Default for Config {
    /// The seed's address, port and timeout; limits sized for a LAN.
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 5005)),
            idle_timeout: Duration::from_secs(10),
            max_sessions: 1_000_000,
            max_sessions_per_ip: 100,
            workers: 0,
            stats_interval: Duration::from_secs(60),
            log: LogConfig::default(),
            sntp: SntpConfig::default(),
            time: ServiceConfig::default(),
            daytime: ServiceConfig::default(),
            access: AccessConfig::default(),
            ratelimit: RateLimitConfig::default(),
            metrics: ServiceConfig::default(),
            nts: NtsConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Why a configuration could not be used. Each reads as one line that names
/// the file, the position and the key where it can.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Something other than a regular file is at the path (a FIFO, a
    /// directory, a device): it is not read, so it can't block or flood.
    #[error("{path}: is {kind}, not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is: "a directory", "a FIFO", ...
        kind: &'static str,
    },
    /// A secret (a private key, the cookie keys) any user may read: refused,
    /// as sshd refuses such a host key.
    #[error("{path}: mode {mode:04o} lets any user read this secret; chmod o-rwx it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The file is larger than any configuration horad reads.
    #[error("{path}: {size} bytes, more than the {MAX_FILE_BYTES} a configuration may have")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The file is not valid TOML, or has an unknown key or a bad value.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        column: usize,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A value is well-formed but out of its range or unusable.
    #[error("{origin}: `{key}` {problem}")]
    Invalid {
        /// Where the value came from: `file:line:column`, or "command line".
        origin: String,
        /// The key, or the flag that set it.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
}

/// A value out of its range: its key and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// The key, dotted (`ratelimit.rate`).
    pub key: &'static str,
    /// What the value must be, as the documentation states it.
    pub problem: String,
}

/// Every bounded key's range, written once: the checks say it from here,
/// and tests hold `config.toml`'s comments (hence hora-config(5), made from
/// them) and `horad --help` to it.
pub const RANGES: [(&str, &str); 15] = [
    ("idle_timeout", "10ms to 1day"),
    ("max_sessions", "1 to 4000000"),
    ("max_sessions_per_ip", "1 to 4000000"),
    ("workers", "0 to 1024"),
    ("stats_interval", "1s to 1day"),
    ("sntp.stratum", "1 to 16"),
    ("sntp.local_stratum", "1 to 15"),
    ("sntp.client_log", "0 to 16777216"),
    ("sntp.precision", "-32 to 0"),
    ("sntp.root_delay", "0s to 16s"),
    ("sntp.root_dispersion", "0s to 16s"),
    ("ratelimit.rate", "0.001 to 1000000"),
    ("ratelimit.burst", "1 to 1000000"),
    ("ratelimit.table_size", "1 to 1048576"),
    ("nts.key_rotation", "2min to 30days"),
];

/// `key`'s range from [`RANGES`] (empty for a key without one).
pub fn range(key: &str) -> &'static str {
    RANGES
        .iter()
        .find(|(name, _)| *name == key)
        .map_or("", |(_, range)| range)
}

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

/// The largest configuration file read: 16 MiB holds an access list of
/// several hundred thousand entries (100,000 deny entries take 1.7 MB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The text of the configuration file at `path`, if it is a regular file of
/// at most [`MAX_FILE_BYTES`]. It is opened without blocking (a FIFO put
/// there opens at once and is then refused, unread) and checked on the open
/// file, so it can't change between the check and the read. `/dev/null`
/// reads as an empty file (the defaults: `--config /dev/null` is the usual
/// way to say "no file"). It still does file I/O: the daemon calls it off
/// its serving thread.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    #[cfg(unix)]
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};

    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NONBLOCK);
    let file = options.open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    let kind = metadata.file_type();
    if path == Path::new("/dev/null") {
        return Ok(String::new());
    }
    if !kind.is_file() {
        #[cfg(unix)]
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        #[cfg(not(unix))]
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a file"
        };
        return Err(ConfigError::NotAFile {
            path: path.to_owned(),
            kind: what,
        });
    }
    let too_large = |size| ConfigError::TooLarge {
        path: path.to_owned(),
        size,
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large(metadata.len()));
    }
    // It may still grow while read: read one byte past the cap to know.
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// Reads a secret (a private key, the cookie keys) as [`read_file`] does,
/// refusing one any user may read: whoever could read it could
/// impersonate the server or forge its cookies.
pub fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let text = read_file(path)?;
    match others_may(path, 0o004) {
        Some(mode) => Err(ConfigError::Exposed {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(text),
    }
}

/// The mode of the regular file at `path` (symlinks followed), when it
/// grants other users any of `bits` (0o002: write, 0o004: read); `None`
/// when it grants none, is no regular file (`/dev/null`), or can't be read.
pub fn others_may(path: &Path, bits: u32) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(path).ok()?;
    let mode = metadata.permissions().mode();
    (metadata.is_file() && mode & bits != 0).then_some(mode & 0o7777)
}

impl Config {
    /// Reads and validates a configuration file ([`read_file`]).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_file(path)?;
        let config = Config::from_toml(&text, path)?;
        config.check().map_err(|out| {
            let origin = match locate_key(&text, out.key) {
                Some((line, column)) => format!("{}:{line}:{column}", path.display()),
                None => path.display().to_string(),
            };
            ConfigError::Invalid {
                origin,
                key: out.key,
                problem: out.problem,
            }
        })?;
        Ok(config)
    }

    /// Parses TOML text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: error.message().trim().to_owned(),
            }
        })
    }

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
        let out = |key, problem: &str| {
            Err(OutOfRange {
                key,
                problem: problem.to_owned(),
            })
        };
        let bound = |key, note| Err(must_be(key, note));
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
        self.check_nts()?;
        self.check_binds()?;
        if crate::logging::check_filter(&self.log.level).is_err() {
            return out(
                "log.level",
                "is not a level (error, warn, info, debug, trace, off) or TARGET=LEVEL for one of horad's targets (horad, hora_server, hora_proto) or the crates beneath them that log (tokio, hyper, mio)",
            );
        }
        Ok(())
    }
}

/// Whether two sockets of one kind (UDP, or TCP) on `a` and `b` can't both
/// be bound: the same port (not 0) on the same address, or on the
/// wildcard address of the family and any address of it.
fn binds_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl Config {
    /// Sockets that would collide at start-up (`cannot bind ...: Address
    /// already in use`, every restart again): refused here instead, so
    /// `--check-config` catches them.
    fn check_binds(&self) -> Result<(), OutOfRange> {
        let udp = [
            ("bind", Some(self.bind)),
            ("sntp.bind", self.sntp.bind),
            ("time.bind", self.time.bind),
            ("daytime.bind", self.daytime.bind),
        ];
        let tcp = [
            ("metrics.bind", self.metrics.bind),
            ("nts.bind", self.nts.bind),
        ];
        for sockets in [&udp[..], &tcp[..]] {
            for (i, (_, first)) in sockets.iter().enumerate() {
                for (key, second) in &sockets[i + 1..] {
                    if let (Some(a), Some(b)) = (first, second) {
                        if binds_overlap(*a, *b) {
                            return Err(OutOfRange {
                                key,
                                problem: "is the same address and port as another socket of horad's (it could not be bound)".to_owned(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The `[nts]` table's rules: the key exchange needs its certificate,
    /// key and cookie keys; NTS needs the SNTP socket it is served on.
    fn check_nts(&self) -> Result<(), OutOfRange> {
        let out = |key, problem: &str| {
            Err(OutOfRange {
                key,
                problem: problem.to_owned(),
            })
        };
        let nts = &self.nts;
        if nts.bind.is_some() {
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
        if nts.keys.is_some() && nts.bind.is_none() && self.sntp.bind.is_none() {
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
            return Err(must_be("nts.key_rotation", ""));
        }
        Ok(())
    }
}

/// The file's addresses and durations, read with messages that say what
/// is wrong and how to write it (and, for durations, the same words as the
/// command line's).
mod text {
    use std::net::{IpAddr, SocketAddr};
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer};

    /// `IP:PORT`.
    pub fn address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
        parse_address(&String::deserialize(deserializer)?).map_err(D::Error::custom)
    }

    /// `IP:PORT`, when given.
    pub fn optional_address<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| parse_address(&text))
            .transpose()
            .map_err(D::Error::custom)
    }

    fn parse_address(text: &str) -> Result<SocketAddr, String> {
        text.parse().map_err(|_| {
            let bare = text.trim_start_matches('[').trim_end_matches(']');
            if bare.parse::<IpAddr>().is_ok() {
                format!("`{text}` has no port: write IP:PORT, e.g. \"127.0.0.1:5005\" or \"[::1]:5005\"")
            } else {
                format!("`{text}` is not IP:PORT (e.g. \"127.0.0.1:5005\", \"[::]:123\"; a host name is not taken)")
            }
        })
    }

    /// A duration as humantime writes it (`10s`, `500ms`, `1day`).
    pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|error| D::Error::custom(format!("`{text}`: {error}")))
    }
}

/// Where `key` (dotted: `ratelimit.rate`) is set in a TOML text, as a
/// 1-based line and column; `None` if it is not written as `key = ...`
/// under its table header (an inline table, say).
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = "";
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header.split(']').next().unwrap_or("").trim();
            continue;
        }
        let is_key = trimmed
            .strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if current == table && is_key {
            return Some((index + 1, line.len() - trimmed.len() + 1));
        }
    }
    None
}

impl Config {
    /// The keys whose values differ in `new`, for a reload's log line (and
    /// its refusal, when one is an address to bind). Every field is named
    /// here without `..`, so a key added to [`Config`] and forgotten here
    /// does not compile, rather than reloading as "nothing changed".
    pub fn changes(&self, new: &Config) -> Vec<&'static str> {
        let Config {
            bind,
            idle_timeout,
            max_sessions,
            max_sessions_per_ip,
            workers,
            stats_interval,
            log: LogConfig { level, format },
            sntp:
                SntpConfig {
                    bind: sntp_bind,
                    stratum,
                    reference_id,
                    precision,
                    root_delay,
                    root_dispersion,
                    local_stratum,
                    client_log,
                },
            time: ServiceConfig { bind: time_bind },
            daytime: ServiceConfig { bind: daytime_bind },
            access: AccessConfig { allow, deny },
            ratelimit:
                RateLimitConfig {
                    enabled,
                    rate,
                    burst,
                    table_size,
                },
            metrics: ServiceConfig { bind: metrics_bind },
            nts:
                NtsConfig {
                    bind: nts_bind,
                    certificate_chain,
                    private_key,
                    keys,
                    ntp_server,
                    ntp_port,
                    require,
                    key_rotation,
                },
        } = self;
        let nts = &new.nts;
        let sntp = &new.sntp;
        let limit = &new.ratelimit;
        [
            ("bind", *bind != new.bind),
            ("sntp.bind", *sntp_bind != sntp.bind),
            ("time.bind", *time_bind != new.time.bind),
            ("daytime.bind", *daytime_bind != new.daytime.bind),
            ("metrics.bind", *metrics_bind != new.metrics.bind),
            ("nts.bind", *nts_bind != nts.bind),
            (
                "nts.certificate_chain",
                *certificate_chain != nts.certificate_chain,
            ),
            ("nts.private_key", *private_key != nts.private_key),
            ("nts.keys", *keys != nts.keys),
            ("nts.ntp_server", *ntp_server != nts.ntp_server),
            ("nts.ntp_port", *ntp_port != nts.ntp_port),
            ("nts.require", *require != nts.require),
            ("nts.key_rotation", *key_rotation != nts.key_rotation),
            ("idle_timeout", *idle_timeout != new.idle_timeout),
            ("max_sessions", *max_sessions != new.max_sessions),
            (
                "max_sessions_per_ip",
                *max_sessions_per_ip != new.max_sessions_per_ip,
            ),
            ("workers", *workers != new.workers),
            ("stats_interval", *stats_interval != new.stats_interval),
            ("sntp.client_log", *client_log != sntp.client_log),
            ("log.level", *level != new.log.level),
            ("log.format", *format != new.log.format),
            ("access.allow", *allow != new.access.allow),
            ("access.deny", *deny != new.access.deny),
            (
                "ratelimit",
                (*enabled, *rate, *burst, *table_size)
                    != (limit.enabled, limit.rate, limit.burst, limit.table_size),
            ),
            (
                "sntp",
                (
                    stratum,
                    reference_id,
                    precision,
                    root_delay,
                    root_dispersion,
                    local_stratum,
                ) != (
                    &sntp.stratum,
                    &sntp.reference_id,
                    &sntp.precision,
                    &sntp.root_delay,
                    &sntp.root_dispersion,
                    &sntp.local_stratum,
                ),
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }

    /// The keys a reload applies only at restart (they shape what start-up
    /// built: the summary timer, the log subscriber): a reload reports them
    /// once as not applied and keeps them as they were.
    pub const RESTART_ONLY: [&'static str; 5] = [
        "workers",
        "stats_interval",
        "log.format",
        "nts.keys",
        "nts.key_rotation",
    ];

    /// `new`, with the keys that change only at restart
    /// ([`Config::RESTART_ONLY`]) as they are in `self`.
    pub fn keeping_restart_only(&self, mut new: Config) -> Config {
        new.workers = self.workers;
        new.stats_interval = self.stats_interval;
        new.log.format = self.log.format;
        new.nts.keys.clone_from(&self.nts.keys);
        new.nts.key_rotation = self.nts.key_rotation;
        new
    }

    /// How many workers `workers` asks for: itself, or with 0 the cores
    /// this process may run on (1 if the OS won't say).
    pub fn workers_wanted(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .min(crate::sys::steer::MAX_WORKERS)
    }

    /// What this configuration serves, one line a part, for
    /// `horad --check-config`.
    pub fn describe(&self) -> String {
        let off = |bind: Option<SocketAddr>| bind.map_or("off".to_owned(), |a| format!("udp {a}"));
        let nets = |list: &[IpNet]| {
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let sntp = match self.sntp.bind {
            None => "off".to_owned(),
            Some(addr) => format!(
                "udp {addr}, stratum {} when the kernel says synchronized, {}; {}",
                self.sntp.stratum,
                self.sntp
                    .local_stratum
                    .map_or("leap indicator 3 when not".to_owned(), |n| format!(
                        "local stratum {n} when not"
                    )),
                match self.sntp.client_log {
                    0 => "basic mode only".to_owned(),
                    n => format!(
                        "interleaved mode, client log of {n} replies ({} KiB)",
                        n * hora_proto::interleave::ENTRY_BYTES / 1024
                    ),
                }
            ),
        };
        let nts = &self.nts;
        let nts = match (&nts.keys, nts.bind) {
            (None, _) => "off".to_owned(),
            (Some(keys), bind) => format!(
                "{}; cookie keys {} ({}){}",
                bind.map_or(
                    "authenticated SNTP only (no key exchange here)".to_owned(),
                    |a| { format!("key exchange tcp {a} (TLS 1.3), authenticated SNTP") }
                ),
                keys.display(),
                if bind.is_some() {
                    format!(
                        "rotated every {}",
                        humantime::format_duration(nts.key_rotation)
                    )
                } else {
                    "read only".to_owned()
                },
                if nts.require {
                    "; plain SNTP dropped"
                } else {
                    ""
                },
            ),
        };
        let metrics = match self.metrics.bind {
            None => "off".to_owned(),
            Some(addr) => format!("http://{addr}/metrics and /status"),
        };
        let limit = &self.ratelimit;
        let rate = if limit.enabled {
            format!(
                "{}/s per source, bursts of {}, {} buckets",
                limit.rate, limit.burst, limit.table_size
            )
        } else {
            "off".to_owned()
        };
        let stats = if self.stats_interval.is_zero() {
            "at shutdown only".to_owned()
        } else {
            format!("every {}", humantime::format_duration(self.stats_interval))
        };
        let workers = match self.workers {
            0 => format!("{} (one per core)", self.workers_wanted()),
            n => n.to_string(),
        };
        format!(
            "seed protocol: udp {}, idle timeout {}, {} sessions ({} per IP)\n\
             workers: {workers}, each source address served by one\n\
             sntp: {sntp}\n\
             nts: {nts}\n\
             time (RFC 868): {}\n\
             daytime (RFC 867): {}\n\
             access: allow {}; deny {}\n\
             rate limit: {rate}\n\
             metrics: {metrics}\n\
             log: level {}, {}, summary {stats}\n",
            self.bind,
            humantime::format_duration(self.idle_timeout),
            self.max_sessions,
            self.max_sessions_per_ip,
            off(self.time.bind),
            off(self.daytime.bind),
            nets(&self.access.allow),
            nets(&self.access.deny),
            self.log.level,
            match self.log.format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            },
        )
    }
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("config.toml"))
    }

    #[test]
    fn every_range_in_the_shipped_config_toml_is_the_one_the_checks_use() {
        let shipped = include_str!("../../../config.toml");
        for (key, range) in RANGES {
            let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
            let lines: Vec<&str> = shipped.lines().collect();
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
                .unwrap_or_else(|| panic!("{key} not in config.toml"));
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
                comment.contains(range),
                "{key}: config.toml says {comment:?}, not {range}"
            );
            assert!(must_be(key, "").problem.contains(range));
        }
    }

    #[test]
    fn the_shipped_config_toml_equals_the_built_in_defaults() {
        let shipped = include_str!("../../../config.toml");
        assert_eq!(parse(shipped).unwrap(), Config::default());
    }

    #[test]
    fn an_empty_file_means_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn reads_every_key() {
        let config = parse(
            "bind = \"[::1]:6000\"\nidle_timeout = \"500ms\"\nmax_sessions = 5\n\
             max_sessions_per_ip = 2\nstats_interval = \"2m\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n",
        )
        .unwrap();
        assert_eq!(config.bind, "[::1]:6000".parse().unwrap());
        assert_eq!(config.idle_timeout, Duration::from_millis(500));
        assert_eq!(config.max_sessions, 5);
        assert_eq!(config.max_sessions_per_ip, 2);
        assert_eq!(config.stats_interval, Duration::from_secs(120));
        assert_eq!(config.log.level, "debug");
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn an_unknown_key_names_the_file_line_and_key() {
        let error = parse("idle_timeout = \"10s\"\nbnd = \"127.0.0.1:5005\"\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("config.toml:2:1: "), "{text}");
        assert!(text.contains("unknown field `bnd`"), "{text}");
    }

    #[test]
    fn an_address_without_a_port_or_a_duration_without_a_unit_says_how_to_write_it() {
        let error = parse("bind = \"127.0.0.1\"").unwrap_err().to_string();
        assert!(error.contains("has no port: write IP:PORT"), "{error}");
        let error = parse("[sntp]\nbind = \"ntp.lan:123\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not IP:PORT"), "{error}");
        let error = parse("idle_timeout = \"10\"").unwrap_err().to_string();
        // The words the command line uses (humantime's).
        assert!(error.contains("time unit needed"), "{error}");
    }

    #[test]
    fn bad_values_name_the_position() {
        for (toml, line, needle) in [
            ("bind = \"localhost\"\n", 1, "is not IP:PORT"),
            ("\n\nidle_timeout = \"ten seconds\"\n", 3, ""),
            ("max_sessions = -1\n", 1, ""),
            ("[log]\nformat = \"xml\"\n", 2, "xml"),
            ("bind = \n", 1, ""),
        ] {
            let text = parse(toml).unwrap_err().to_string();
            assert!(
                text.starts_with(&format!("config.toml:{line}:")),
                "{toml:?} gave {text}"
            );
            assert!(text.contains(needle), "{toml:?} gave {text}");
            assert!(!text.contains('\n'), "one line: {text:?}");
        }
    }

    #[test]
    fn reads_the_standard_protocol_tables() {
        let config = parse(
            "[sntp]\nbind = \"127.0.0.1:123\"\nstratum = 3\nreference_id = \"GPS\"\n\
             precision = -20\nroot_delay = \"1ms\"\nroot_dispersion = \"2ms\"\nlocal_stratum = 9\n\
             [time]\nbind = \"[::1]:37\"\n[daytime]\nbind = \"0.0.0.0:13\"\n",
        )
        .unwrap();
        assert_eq!(config.sntp.bind, Some("127.0.0.1:123".parse().unwrap()));
        let clock = config.sntp.settings().unwrap();
        assert_eq!(clock.stratum, 3);
        assert_eq!(clock.reference_id, *b"GPS\0");
        assert_eq!(clock.precision, -20);
        assert_eq!(clock.root_delay, Duration::from_millis(1));
        assert_eq!(clock.root_dispersion, Duration::from_millis(2));
        assert_eq!(clock.local_stratum, Some(9));
        assert_eq!(config.time.bind, Some("[::1]:37".parse().unwrap()));
        assert_eq!(config.daytime.bind, Some("0.0.0.0:13".parse().unwrap()));
    }

    #[test]
    fn reads_access_lists_and_rate_limits() {
        let config = parse(
            "[access]\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.9.0.0/16\"]\n\
             [ratelimit]\nenabled = false\nrate = 5.0\nburst = 10.0\ntable_size = 64\n",
        )
        .unwrap();
        assert_eq!(config.access.allow.len(), 2);
        assert_eq!(
            config.access.deny,
            ["10.9.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert!(!config.ratelimit.enabled);
        assert_eq!(config.ratelimit.table_size, 64);
        let error = parse("[access]\nallow = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("config.toml:2:"), "{error}");
    }

    #[test]
    fn the_standard_protocols_are_off_by_default() {
        let config = Config::default();
        assert_eq!(config.sntp.bind, None);
        assert_eq!(config.time.bind, None);
        assert_eq!(config.daytime.bind, None);
        let settings = config.sntp.settings().unwrap();
        assert_eq!(settings.local_stratum, None, "local stratum is opt-in");
        assert_eq!(settings.stratum, ServerClock::default().stratum);
    }

    #[test]
    fn unusable_values_are_refused() {
        for (toml, key) in [
            ("[sntp]\nstratum = 0", "sntp.stratum"),
            ("bind = \"127.0.0.1:5005\"\n[sntp]\nbind = \"127.0.0.1:5005\"", "sntp.bind"),
            ("bind = \"0.0.0.0:5005\"\n[time]\nbind = \"127.0.0.1:5005\"", "time.bind"),
            ("[metrics]\nbind = \"127.0.0.1:4460\"\n[nts]\nbind = \"0.0.0.0:4460\"\ncertificate_chain = \"c\"\nprivate_key = \"k\"\nkeys = \"n\"", "nts.bind"),
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

    #[test]
    fn a_value_out_of_range_in_a_file_names_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hora.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:0\"\n\n[ratelimit]\nrate = 5.0\n  table_size = 16777216\n",
        )
        .unwrap();
        let error = Config::from_file(&path).unwrap_err().to_string();
        let expected = format!(
            "{}:5:3: `ratelimit.table_size` must be 1 to 1048576",
            path.display()
        );
        assert_eq!(error, expected);
    }

    #[test]
    fn finds_keys_under_their_tables() {
        let text = "rate = 1\n[sntp]\nstratum = 3\n[ratelimit]\n rate = 2\n";
        assert_eq!(locate_key(text, "ratelimit.rate"), Some((5, 2)));
        assert_eq!(locate_key(text, "sntp.stratum"), Some((3, 1)));
        assert_eq!(locate_key(text, "rate"), Some((1, 1)));
        assert_eq!(locate_key(text, "sntp.precision"), None);
    }

    #[test]
    fn only_a_regular_file_of_a_sane_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let error = Config::from_file(dir.path()).unwrap_err().to_string();
        assert!(
            error.ends_with("is a directory, not a regular file"),
            "{error}"
        );
        // A FIFO is refused at once: nothing blocks waiting for a writer.
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = Config::from_file(&fifo).unwrap_err().to_string();
        assert!(error.ends_with("is a FIFO, not a regular file"), "{error}");
        let error = Config::from_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("is a device, not a regular file"),
            "{error}"
        );
        let large = dir.path().join("large.toml");
        let file = std::fs::File::create(&large).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let error = Config::from_file(&large).unwrap_err().to_string();
        assert!(
            error.contains("16777217 bytes, more than the 16777216"),
            "{error}"
        );
    }

    #[test]
    fn changes_name_every_key_that_differs() {
        let old = Config::default();
        assert!(old.changes(&old).is_empty());
        let mut new = old.clone();
        new.idle_timeout = Duration::from_secs(30);
        new.max_sessions = 15_000;
        new.sntp.precision = -20;
        new.ratelimit.table_size = 64;
        new.metrics.bind = Some("127.0.0.1:0".parse().unwrap());
        assert_eq!(
            old.changes(&new),
            [
                "metrics.bind",
                "idle_timeout",
                "max_sessions",
                "ratelimit",
                "sntp"
            ]
        );
        new.stats_interval = Duration::ZERO;
        new.log.format = LogFormat::Json;
        let kept = old.keeping_restart_only(new);
        assert_eq!(kept.stats_interval, old.stats_interval);
        assert_eq!(kept.log.format, old.log.format);
        assert!(!old
            .changes(&kept)
            .iter()
            .any(|key| Config::RESTART_ONLY.contains(key)));
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let error = Config::from_file(Path::new("/nonexistent/hora.toml")).unwrap_err();
        assert!(error.to_string().starts_with("/nonexistent/hora.toml: "));
    }
}
