//! `hora`'s command line.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::{Parser, Subcommand};

/// The seed's server port, used when `--server` names only a host.
pub const DEFAULT_PORT: u16 = 5005;

/// hora: ask a hora (or the seed's) time server for its date and time.
///
/// Without a command it runs the seed's interactive menu. The seed's own
/// Python server answers only to port 5010: use `--bind 127.0.0.1:5010`.
#[derive(Debug, Parser)]
#[command(name = "hora", version, about, long_about)]
pub struct Args {
    /// Server address: HOST:PORT, or HOST for port 5005
    #[arg(short, long, env = "HORA_SERVER", default_value = "127.0.0.1:5005")]
    pub server: String,

    /// Local address to send from [default: an ephemeral port]
    #[arg(short, long, value_name = "ADDR")]
    pub bind: Option<SocketAddr>,

    /// How long to wait for a silent server, e.g. 10s, 500ms
    #[arg(short, long, value_name = "DUR", default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// What to do; without one, the interactive menu.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// `hora`'s one-shot commands.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum Command {
    /// Print the server's time on one line (ISO 8601, server's local time) and exit
    Time {
        /// Print a JSON object: server, server_time, server_time_text, rtt_ms
        #[arg(long)]
        json: bool,
    },
}

/// Why the server's address is unusable.
#[derive(Debug, thiserror::Error)]
#[error("bad server address `{given}`: {problem}")]
pub struct AddressError {
    given: String,
    problem: String,
}

/// Turns `--server` into an address: `IP:PORT`, `[IPv6]:PORT`, a bare IP
/// (port 5005), or a host name looked up with the system resolver.
pub async fn resolve_server(given: &str) -> Result<SocketAddr, AddressError> {
    if let Ok(addr) = given.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = given.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT));
    }
    let error = |problem: String| AddressError {
        given: given.to_owned(),
        problem,
    };
    let found: Vec<SocketAddr> = if given.contains(':') {
        tokio::net::lookup_host(given).await.map(Iterator::collect)
    } else {
        tokio::net::lookup_host((given, DEFAULT_PORT))
            .await
            .map(Iterator::collect)
    }
    .map_err(|e| error(e.to_string()))?;
    found
        .into_iter()
        .next()
        .ok_or_else(|| error("the name has no address".to_owned()))
}

/// The default local address: any address of the server's family, any port.
pub fn default_bind(server: SocketAddr) -> SocketAddr {
    let any: IpAddr = if server.is_ipv4() {
        [0, 0, 0, 0].into()
    } else {
        [0u16; 8].into()
    };
    SocketAddr::new(any, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                resolve_server(given).await.unwrap(),
                expected.parse::<SocketAddr>().unwrap(),
                "{given}"
            );
        }
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let addr = resolve_server("localhost").await.unwrap();
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), DEFAULT_PORT);
    }

    #[tokio::test]
    async fn a_bad_address_is_one_clear_error() {
        let error = resolve_server("127.0.0.1:99999").await.unwrap_err();
        assert!(error
            .to_string()
            .starts_with("bad server address `127.0.0.1:99999`: "));
    }

    #[test]
    fn binds_the_servers_family() {
        assert_eq!(
            default_bind("127.0.0.1:5005".parse().unwrap()).to_string(),
            "0.0.0.0:0"
        );
        assert_eq!(
            default_bind("[::1]:5005".parse().unwrap()).to_string(),
            "[::]:0"
        );
    }

    #[test]
    fn parses_the_one_shot_command() {
        let args = Args::try_parse_from(["hora", "--timeout", "2s", "time", "--json"]).unwrap();
        assert_eq!(args.timeout, Duration::from_secs(2));
        assert!(matches!(args.command, Some(Command::Time { json: true })));
    }
}
