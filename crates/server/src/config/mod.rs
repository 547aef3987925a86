//! The daemon's configuration: `config.toml`, validated once at start-up.
//!
//! [`Config::default`] equals the commented `config.toml` at the root of the
//! repository (a test checks it), so a daemon started without a file behaves
//! exactly as one started with it.
//!
//! Its rooms: this file, the types and their defaults; [`keys`], the table
//! of keys (flag, range, what a reload does); [`read`], reading a file
//! safely and parsing it; [`check`], the values that parse but can't work;
//! [`describe`], what a configuration serves, in words.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hora_proto::access::{IpNet, LAN_NETWORKS};
use hora_proto::host_clock::ClockSettings;
use hora_proto::sntp::{parse_reference_id, ServerClock};
use serde::Deserialize;

pub mod check;
pub mod describe;
pub mod keys;
pub mod read;

pub use crate::logging::{LogConfig, LogFormat};
pub use keys::{key, range, Flag, Key, Reload, Takes, KEYS};
pub use read::{others_may, read_file, read_secret, MAX_FILE_BYTES};

/// Everything `horad` can be told, from the file and then the command line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The UDP addresses to serve the seed's protocol on (IPv4 or IPv6):
    /// one, or a list; at least one.
    #[serde(deserialize_with = "read::text::addresses")]
    pub bind: Addresses,
    /// How long a session may stay silent before it ends.
    #[serde(deserialize_with = "read::text::duration")]
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
    #[serde(deserialize_with = "read::text::duration")]
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
    /// Roughtime (RFC 10049) on its own socket; off unless `bind` is set.
    pub roughtime: RoughtimeConfig,
}

/// Where a listener serves: one address (`bind = "0.0.0.0:123"`) or a list
/// (`bind = ["192.168.1.1:123", "10.0.0.1:123", "[fd00::1]:123"]`), each
/// bound with a socket (a group per worker) of its own, so a host on
/// several networks serves each from its own address. None: off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addresses(Vec<Listen>);

/// One address to listen on, and the interface it is tied to, if any:
/// `0.0.0.0:123%eth1` answers only what arrives on eth1 (`SO_BINDTODEVICE`,
/// as chrony's `binddevice`), `[fe80::1%eth1]:123` is a link-local address
/// and its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The address and port.
    pub addr: SocketAddr,
    /// The interface's name.
    pub interface: Option<String>,
}

impl Addresses {
    /// Each address, in the order given.
    pub fn iter(&self) -> impl Iterator<Item = &Listen> + '_ {
        self.0.iter()
    }

    /// Whether there is none: the listener is off.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<SocketAddr> for Addresses {
    fn from(addr: SocketAddr) -> Addresses {
        Addresses::from(vec![addr])
    }
}

impl From<Vec<SocketAddr>> for Addresses {
    fn from(list: Vec<SocketAddr>) -> Addresses {
        let each = list.into_iter().map(|addr| Listen {
            addr,
            interface: None,
        });
        Addresses(each.collect())
    }
}

impl From<Vec<Listen>> for Addresses {
    fn from(list: Vec<Listen>) -> Addresses {
        Addresses(list)
    }
}

impl std::str::FromStr for Addresses {
    type Err = String;

    /// `IP:PORT`, or several separated by commas.
    fn from_str(text: &str) -> Result<Addresses, String> {
        let list: Result<Vec<Listen>, _> = text.split(',').map(|a| a.trim().parse()).collect();
        list.map(Addresses)
    }
}

impl std::fmt::Display for Addresses {
    /// `a, b`, as `--check-config` and the logs say them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, listen) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{listen}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Listen {
    type Err = String;

    /// `IP:PORT`, `IP:PORT%IFACE`, `[IPV6%IFACE]:PORT` (a link-local
    /// address and its interface; a numeric scope, `[fe80::1%2]:123`, is
    /// taken as the kernel's index). The error says how to write it.
    fn from_str(text: &str) -> Result<Listen, String> {
        let (address, interface) = split_interface(text);
        let addr: SocketAddr = address.parse().map_err(|_| {
            let bare = address.trim_start_matches('[').trim_end_matches(']');
            if bare.parse::<std::net::IpAddr>().is_ok() {
                format!("`{text}` has no port: write IP:PORT, e.g. \"127.0.0.1:5005\" or \"[::1]:5005\"")
            } else {
                format!("`{text}` is not IP:PORT (e.g. \"127.0.0.1:5005\", \"[::]:123\", \"0.0.0.0:123%eth1\"; a host name is not taken)")
            }
        })?;
        if let Some(name) = interface {
            let usable = !name.is_empty()
                && name.len() < 16
                && !name.contains(|c: char| c == '/' || c == '%' || c.is_whitespace());
            if !usable {
                return Err(format!(
                    "`{text}`: `{name}` is not an interface name (1 to 15 characters, no `/` or spaces)"
                ));
            }
        }
        Ok(Listen {
            addr,
            interface: interface.map(str::to_owned),
        })
    }
}

/// `text` without its interface, and the interface's name: `IP:PORT%IFACE`
/// or `[IPV6%IFACE]:PORT`. A numeric IPv6 scope stays in the address (the
/// standard parser takes it).
fn split_interface(text: &str) -> (String, Option<&str>) {
    if let Some(inside) = text.strip_prefix('[') {
        if let Some((host, rest)) = inside.split_once(']') {
            if let Some((ip, name)) = host.split_once('%') {
                if !name.bytes().all(|b| b.is_ascii_digit()) {
                    return (format!("[{ip}]{rest}"), Some(name));
                }
            }
        }
        return (text.to_owned(), None);
    }
    match text.rsplit_once('%') {
        Some((address, name)) => (address.to_owned(), Some(name)),
        None => (text.to_owned(), None),
    }
}

impl std::fmt::Display for Listen {
    /// As it is written: `[fe80::1%eth1]:123`, `0.0.0.0:123%eth1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.interface, self.addr) {
            (None, addr) => write!(f, "{addr}"),
            (Some(name), SocketAddr::V6(v6)) => write!(f, "[{}%{name}]:{}", v6.ip(), v6.port()),
            (Some(name), SocketAddr::V4(v4)) => write!(f, "{v4}%{name}"),
        }
    }
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
    #[serde(deserialize_with = "read::text::addresses")]
    pub bind: Addresses,
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
    #[serde(deserialize_with = "read::text::duration")]
    pub key_rotation: Duration,
}

impl Default for NtsConfig {
    /// Off; keys rotate daily once it is on.
    fn default() -> Self {
        NtsConfig {
            bind: Addresses::default(),
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

/// The `[roughtime]` table: where to serve Roughtime, its long-term key,
/// how long an online key is delegated, and the least radius answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoughtimeConfig {
    /// Where to serve it; absent means off. Roughtime servers use port 2002.
    #[serde(deserialize_with = "read::text::addresses")]
    pub bind: Addresses,
    /// The long-term key's file: an Ed25519 seed, mode 0600, made when absent.
    pub key: Option<PathBuf>,
    /// How long an online key's delegation lasts; a new one is made halfway.
    #[serde(deserialize_with = "read::text::duration")]
    pub delegation: Duration,
    /// The least radius a response gives, whatever the kernel's estimate.
    #[serde(deserialize_with = "read::text::duration")]
    pub min_radius: Duration,
}

impl Default for RoughtimeConfig {
    /// Off; a day's delegation, a radius of at least a second.
    fn default() -> Self {
        RoughtimeConfig {
            bind: Addresses::default(),
            key: None,
            delegation: Duration::from_secs(24 * 3600),
            min_radius: Duration::from_secs(1),
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
    #[serde(deserialize_with = "read::text::addresses")]
    pub bind: Addresses,
}

/// The `[sntp]` table: where to serve, and how to describe the clock. The
/// leap indicator, and whether the clock is served at all as synchronized,
/// come from the kernel ([`hora_proto::host_clock`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SntpConfig {
    /// Where to serve SNTP; absent means off. Its standard port is 123.
    #[serde(deserialize_with = "read::text::addresses")]
    pub bind: Addresses,
    /// The stratum served while the kernel says the clock is synchronized:
    /// one above the host's own source's, 1 to 15 (16: never trust me).
    pub stratum: u8,
    /// An IPv4 address or up to four ASCII characters.
    pub reference_id: String,
    /// log2 of the clock's precision in seconds.
    pub precision: i8,
    /// Round-trip delay to the reference clock.
    #[serde(deserialize_with = "read::text::duration")]
    pub root_delay: Duration,
    /// The root dispersion served as a local clock (`local_stratum`); while
    /// synchronized, the kernel's maximum error is served instead.
    #[serde(deserialize_with = "read::text::duration")]
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
pub(crate) const MAX_CLIENT_LOG: usize = 1 << 24;

impl Default for SntpConfig {
    /// Off; when on, describing a synchronized clock with chrony's `local
    /// stratum 10` fields.
    fn default() -> Self {
        let clock = ServerClock::default();
        SntpConfig {
            bind: Addresses::default(),
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

impl Default for Config {
    /// The seed's address, port and timeout; limits sized for a LAN.
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 5005)).into(),
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
            roughtime: RoughtimeConfig::default(),
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

impl Config {
    /// How many workers `workers` asks for: itself, or with 0 the cores
    /// this process may run on (1 if the OS won't say).
    pub fn workers_wanted(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
        .min(crate::sys::steer::MAX_WORKERS)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// `text` as the file `config.toml`.
    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("config.toml"))
    }

    #[test]
    fn the_shipped_config_toml_equals_the_built_in_defaults() {
        let shipped = include_str!("../../../../config.toml");
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
    fn reads_the_standard_protocol_tables() {
        let config = parse(
            "[sntp]\nbind = \"127.0.0.1:123\"\nstratum = 3\nreference_id = \"GPS\"\n\
             precision = -20\nroot_delay = \"1ms\"\nroot_dispersion = \"2ms\"\nlocal_stratum = 9\n\
             [time]\nbind = \"[::1]:37\"\n[daytime]\nbind = \"0.0.0.0:13\"\n",
        )
        .unwrap();
        assert_eq!(config.sntp.bind, "127.0.0.1:123".parse().unwrap());
        let clock = config.sntp.settings().unwrap();
        assert_eq!(clock.stratum, 3);
        assert_eq!(clock.reference_id, *b"GPS\0");
        assert_eq!(clock.precision, -20);
        assert_eq!(clock.root_delay, Duration::from_millis(1));
        assert_eq!(clock.root_dispersion, Duration::from_millis(2));
        assert_eq!(clock.local_stratum, Some(9));
        assert_eq!(config.time.bind, "[::1]:37".parse().unwrap());
        assert_eq!(config.daytime.bind, "0.0.0.0:13".parse().unwrap());
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
    fn a_listener_takes_one_address_or_a_list() {
        let config = parse(
            "bind = [\"127.0.0.1:5005\", \"[::1]:5005\"]\n[sntp]\nbind = []\n\
             [time]\nbind = [\"10.0.0.1:37\"]\n[daytime]\nbind = \"10.0.0.1:13\"\n",
        )
        .unwrap();
        let seed: Vec<String> = config.bind.iter().map(|a| a.to_string()).collect();
        assert_eq!(seed, ["127.0.0.1:5005", "[::1]:5005"]);
        assert!(config.sntp.bind.is_empty(), "an empty list is off");
        assert_eq!(config.time.bind, "10.0.0.1:37".parse().unwrap());
        assert_eq!(config.daytime.bind, "10.0.0.1:13".parse().unwrap());
        assert_eq!(config.bind.to_string(), "127.0.0.1:5005, [::1]:5005");
        assert!(config.validate("config.toml").is_ok(), "no two overlap");
        // A bad entry of a list is named, at its line.
        let error = parse("[sntp]\nbind = [\"10.0.0.1:123\", \"10.0.0.2\"]\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("config.toml:2:"), "{error}");
        assert!(error.contains("`10.0.0.2` has no port"), "{error}");
        let error = parse("bind = 5005\n").unwrap_err().to_string();
        assert!(error.contains("\"IP:PORT\" or a list of them"), "{error}");
    }

    #[test]
    fn an_address_may_name_its_interface() {
        let config = parse(
            "bind = [\"0.0.0.0:5005%eth1\", \"0.0.0.0:5005%eth2\"]\n\
             [sntp]\nbind = [\"[fe80::1%eth1]:123\", \"[fe80::2%2]:123\"]\n",
        )
        .unwrap();
        let seed: Vec<String> = config.bind.iter().map(ToString::to_string).collect();
        assert_eq!(seed, ["0.0.0.0:5005%eth1", "0.0.0.0:5005%eth2"]);
        let sntp: Vec<&Listen> = config.sntp.bind.iter().collect();
        assert_eq!(sntp[0].interface.as_deref(), Some("eth1"));
        assert_eq!(sntp[0].to_string(), "[fe80::1%eth1]:123");
        // A numeric scope is the kernel's index, kept in the address.
        assert_eq!(sntp[1].interface, None);
        assert!(matches!(sntp[1].addr, SocketAddr::V6(v6) if v6.scope_id() == 2));
        // Two interfaces are apart: one wildcard port on each is no overlap.
        assert!(config.validate("config.toml").is_ok());
        for (bad, says) in [
            ("0.0.0.0:123%", "is not an interface name"),
            ("0.0.0.0:123%a/b", "is not an interface name"),
            (
                "0.0.0.0:123%averyveryverylongname",
                "is not an interface name",
            ),
            ("[fe80::1%eth1]", "has no port"),
        ] {
            let error = bad.parse::<Listen>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn the_standard_protocols_are_off_by_default() {
        let config = Config::default();
        assert!(config.sntp.bind.is_empty());
        assert!(config.time.bind.is_empty());
        assert!(config.daytime.bind.is_empty());
        let settings = config.sntp.settings().unwrap();
        assert_eq!(settings.local_stratum, None, "local stratum is opt-in");
        assert_eq!(settings.stratum, ServerClock::default().stratum);
    }
}
