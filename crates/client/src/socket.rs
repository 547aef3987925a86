//! The client's UDP socket: which local address it binds, and a bind
//! failure that names the address (the exchange and `hora sntp` both bind
//! one; the command line only says which).

use std::io;
use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;

/// The default local address: any address of the server's family, any port.
pub fn default_bind(server: SocketAddr) -> SocketAddr {
    let any: IpAddr = if server.is_ipv4() {
        [0, 0, 0, 0].into()
    } else {
        [0u16; 8].into()
    };
    SocketAddr::new(any, 0)
}

/// A UDP socket bound to `local`; a failure says which address could not
/// be bound (`--bind`'s, most often), not only the OS's words.
pub async fn bind_udp(local: SocketAddr) -> io::Result<UdpSocket> {
    UdpSocket::bind(local)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {local}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
