//! `hora`'s command line.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The seed's server port, used when `--server` names only a host.
pub const DEFAULT_PORT: u16 = 5005;

/// NTP's port, for `hora sntp` when `--server` names only a host.
pub const NTP_PORT: u16 = 123;

/// The port Roughtime servers use, for `hora roughtime` when `--server`
/// names only a host.
pub const ROUGHTIME_PORT: u16 = 2002;

/// The NTS key exchange's port, for `hora sntp --nts`.
pub const NTS_KE_PORT: u16 = 4460;

/// The server asked when `--server` is not given.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// hora: ask a hora (or the seed's) time server for its date and time, or
/// any NTP server how far this machine's clock is from its own.
///
/// Without a command it runs the seed's interactive menu (over protocol v2
/// where the server speaks it: see --protocol); a closing message
/// the server sends on its own (idle timeout, shutdown) is shown at once.
/// The seed's own Python server answers only to port 5010: use `--bind
/// 127.0.0.1:5010`. Options go before or after the command. A name with
/// several addresses (IPv6 and IPv4) is raced as Happy Eyeballs does: the
/// next address is asked too 250 ms after the last, the first answer wins.
/// Exit status: 0 when the session ended normally or a time was obtained;
/// 1 when the server was silent, refused, ended the session on an invalid
/// option, idled it out, shut down, or gave no valid time, or the server's
/// name did not resolve; 2 for a bad command line or server address.
#[derive(Debug, Parser)]
#[command(name = "hora", version, about, long_about)]
pub struct Args {
    /// Server: HOST:PORT, or HOST for port 5005 (123 for `sntp`, 4460 for
    /// `sntp --nts`: the key exchange's, 2002 for `roughtime`) [default: 127.0.0.1]
    #[arg(
        short,
        long,
        env = "HORA_SERVER",
        global = true,
        value_name = "HOST[:PORT]"
    )]
    pub server: Option<String>,

    /// Local address to send from [default: an ephemeral port]
    #[arg(short, long, value_name = "ADDR", global = true)]
    pub bind: Option<SocketAddr>,

    /// How long to wait for a silent server, e.g. 10s, 500ms
    #[arg(short, long, value_name = "DUR", default_value = "10s", global = true, value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Session protocol for the menu and `time`: v2 (sessions a forger
    /// can't fake, the time with this clock's offset), the seed's, or
    /// auto: v2 where the server speaks it, else the seed's at once (the
    /// seed's own server, an older horad)
    #[arg(long, value_enum, default_value = "auto", env = "HORA_PROTOCOL")]
    pub protocol: crate::exchange::Protocol,

    /// What to do; without one, the interactive menu.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `hora`'s one-shot commands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print the server's time on one line (ISO 8601, server's local time) and exit
    Time {
        /// Print a JSON object: server, protocol, server_time,
        /// server_time_text, rtt_ms; over v2 also offset_s, delay_s, clock
        /// and leap
        #[arg(long)]
        json: bool,
        /// Session protocol, as the top-level --protocol (which `sntp`,
        /// speaking NTP, does not take)
        #[arg(long, value_enum, value_name = "PROTOCOL")]
        protocol: Option<crate::exchange::Protocol>,
    },
    /// Ask an SNTP/NTP server (horad's SNTP socket, chronyd, a router) and
    /// print what `ntpdate -q` prints: its time, this clock's offset from
    /// it, the round-trip delay, its stratum, leap indicator and reference
    Sntp {
        /// Print one JSON object: server, server_time, offset_s, delay_s,
        /// stratum, leap, reference_id, samples
        #[arg(long)]
        json: bool,
        /// Samples to take; the one with the least delay is reported
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
        count: u32,
        /// Authenticate with NTS (RFC 8915): the key exchange at --server
        /// (port 4460 unless given; its certificate must name the host),
        /// then authenticated requests to the NTP server it names. Only
        /// an authenticated reply is taken
        #[arg(long)]
        nts: bool,
        /// With --nts: trust this CA (PEM) instead of the system's
        #[arg(long, value_name = "FILE", requires = "nts")]
        ca: Option<std::path::PathBuf>,
    },
    /// Ask a Roughtime server (RFC 10049; horad's [roughtime] socket,
    /// port 2002 unless given) for a signed time, check it with the
    /// server's public key, and print the time, the radius and what
    /// verified. A response that fails a check is refused (exit 1)
    Roughtime {
        /// The server's long-term public key, base64 or hex (`horad
        /// --roughtime-public-key` prints it)
        #[arg(long, short = 'k', value_name = "PUBKEY", value_parser = crate::roughtime::parse_key)]
        key: [u8; 32],
        /// Print one JSON object: server, version, midpoint, midpoint_text,
        /// radius_s, signature_verified, delegation_verified, delegation,
        /// offset_s, rtt_ms
        #[arg(long)]
        json: bool,
    },
}

impl Args {
    /// The session protocol of the menu or `time`: `time --protocol`, else
    /// the top level's (or `HORA_PROTOCOL`'s).
    pub fn session_protocol(&self) -> crate::exchange::Protocol {
        match &self.command {
            Some(Command::Time {
                protocol: Some(protocol),
                ..
            }) => *protocol,
            _ => self.protocol,
        }
    }

    /// The port `--server` means when it names only a host.
    pub fn default_port(&self) -> u16 {
        match self.command {
            Some(Command::Sntp { nts: true, .. }) => NTS_KE_PORT,
            Some(Command::Sntp { .. }) => NTP_PORT,
            Some(Command::Roughtime { .. }) => ROUGHTIME_PORT,
            _ => DEFAULT_PORT,
        }
    }
}

/// Why the server's address is unusable: the command line's fault (exit
/// 2), or a name the resolver could not turn into addresses, which may be
/// the network's (exit 1, as any other failure to reach the server).
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    /// Not an address or a host name at all (a port out of range, a
    /// character no host name has).
    #[error("bad server address `{given}`: {problem}")]
    Malformed {
        /// What `--server` said.
        given: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A host name that did not resolve (no such name, or no resolver
    /// reachable: `Temporary failure in name resolution`).
    #[error("cannot resolve `{given}`: {problem}")]
    Unresolved {
        /// What `--server` said.
        given: String,
        /// What the resolver said.
        problem: String,
    },
}

impl AddressError {
    /// What `--server` said.
    pub fn given(&self) -> &str {
        match self {
            AddressError::Malformed { given, .. } | AddressError::Unresolved { given, .. } => given,
        }
    }

    /// Whether the command line itself is at fault (exit status 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, AddressError::Malformed { .. })
    }
}

/// Whether `name` can be a host name at all (RFC 1123's letters, digits,
/// hyphens and dots; underscores as resolvers take them).
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Turns `--server` into the addresses to try, in the resolver's order:
/// `IP:PORT`, `[IPv6]:PORT`, a bare IP (`default_port`), or a host name
/// looked up with the system resolver (every address it gives, IPv6 and
/// IPv4 alike).
pub async fn resolve_servers(
    given: Option<&str>,
    default_port: u16,
) -> Result<Vec<SocketAddr>, AddressError> {
    let given = given.unwrap_or(DEFAULT_HOST);
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let bare = given.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, default_port)]);
    }
    let malformed = |problem: &str| AddressError::Malformed {
        given: given.to_owned(),
        problem: problem.to_owned(),
    };
    let unresolved = |problem: String| AddressError::Unresolved {
        given: given.to_owned(),
        problem,
    };
    let (host, port) = match given.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| malformed("the port is not a number from 0 to 65535"))?;
            (host, port)
        }
        None => (given, default_port),
    };
    if !is_host_name(host) {
        return Err(malformed("not an IP address or a host name"));
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map(Iterator::collect)
        .map_err(|e| unresolved(e.to_string()))?;
    if found.is_empty() {
        return Err(unresolved("the name has no address".to_owned()));
    }
    Ok(found)
}

/// The host part of `--server` (what a TLS certificate must name): the
/// address or name without its port and brackets.
pub fn host_of(given: Option<&str>) -> String {
    let given = given.unwrap_or(DEFAULT_HOST);
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return addr.ip().to_string();
    }
    if given.parse::<IpAddr>().is_ok() {
        return given.to_owned();
    }
    let bare = given.trim_start_matches('[');
    if let Some((host, _)) = bare.split_once(']') {
        return host.to_owned();
    }
    match given.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host.to_owned(),
        _ => given.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[tokio::test]
    async fn reads_server_addresses() {
        for (given, expected) in [
            ("127.0.0.1:5005", "127.0.0.1:5005"),
            ("127.0.0.1", "127.0.0.1:5005"),
            ("[::1]:6000", "[::1]:6000"),
            ("::1", "[::1]:5005"),
            ("[::1]", "[::1]:5005"),
        ] {
            assert_eq!(
                resolve_servers(Some(given), DEFAULT_PORT).await.unwrap(),
                [expected.parse::<SocketAddr>().unwrap()],
                "{given}"
            );
        }
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let addrs = resolve_servers(Some("localhost"), DEFAULT_PORT)
            .await
            .unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == DEFAULT_PORT));
        assert_eq!(
            resolve_servers(None, NTP_PORT).await.unwrap(),
            ["127.0.0.1:123".parse::<SocketAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn a_bad_address_is_one_clear_error() {
        let error = resolve_servers(Some("127.0.0.1:99999"), DEFAULT_PORT)
            .await
            .unwrap_err();
        assert!(error
            .to_string()
            .starts_with("bad server address `127.0.0.1:99999`: "));
    }

    #[test]
    fn parses_the_one_shot_command() {
        let args = Args::try_parse_from(["hora", "--timeout", "2s", "time", "--json"]).unwrap();
        assert_eq!(args.timeout, Duration::from_secs(2));
        assert!(matches!(
            args.command,
            Some(Command::Time { json: true, .. })
        ));
    }

    /// `--protocol` chooses the session protocol of the menu and `time`,
    /// before or after `time`; `sntp` speaks NTP and does not take it.
    #[test]
    fn the_session_protocol_goes_with_the_menu_and_time_not_sntp() {
        use crate::exchange::Protocol;
        for argv in [
            &["hora", "--protocol", "seed", "time"][..],
            &["hora", "time", "--protocol", "seed"],
        ] {
            let args = Args::try_parse_from(argv).unwrap();
            assert_eq!(args.session_protocol(), Protocol::Seed, "{argv:?}");
        }
        let menu = Args::try_parse_from(["hora", "--protocol", "v2"]).unwrap();
        assert_eq!(menu.session_protocol(), Protocol::V2);
        assert!(Args::try_parse_from(["hora", "sntp", "--protocol", "seed"]).is_err());
        let mut sntp_help = Vec::new();
        let mut command = Args::command();
        command.build();
        let sntp = command.find_subcommand_mut("sntp").unwrap();
        sntp.write_long_help(&mut sntp_help).unwrap();
        let help = String::from_utf8(sntp_help).unwrap();
        assert!(!help.contains("--protocol"), "{help}");
        assert!(
            help.contains("4460"),
            "-s says the key exchange's port: {help}"
        );
    }

    #[test]
    fn options_go_before_or_after_the_command() {
        for argv in [
            &["hora", "--server", "10.0.0.1:7", "-t", "3s", "time"][..],
            &["hora", "time", "--server", "10.0.0.1:7", "-t", "3s"],
            &["hora", "-s", "10.0.0.1:7", "time", "--timeout", "3s"],
        ] {
            let args = Args::try_parse_from(argv).unwrap();
            assert_eq!(args.server.as_deref(), Some("10.0.0.1:7"), "{argv:?}");
            assert_eq!(args.timeout, Duration::from_secs(3), "{argv:?}");
            assert!(matches!(
                args.command,
                Some(Command::Time { json: false, .. })
            ));
        }
        let sntp =
            Args::try_parse_from(["hora", "sntp", "--server", "ntp.lan", "--count", "4"]).unwrap();
        assert!(matches!(
            sntp.command,
            Some(Command::Sntp {
                json: false,
                count: 4,
                nts: false,
                ca: None,
            })
        ));
        assert_eq!(sntp.default_port(), NTP_PORT);
        assert!(Args::try_parse_from(["hora", "sntp", "--count", "0"]).is_err());
    }
}
