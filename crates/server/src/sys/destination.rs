//! Which of the host's addresses a datagram was sent to, on a socket bound
//! to a wildcard address (`0.0.0.0`, `[::]`): the kernel says it with each
//! datagram (`IP_PKTINFO`, `IPV6_RECVPKTINFO`), and a reply sent with it
//! leaves from that address, as chronyd's do. Without it the kernel picks
//! the source of the route back, and on a host with several addresses a
//! client that asked another one (and whose socket is connected to it, as
//! most NTP clients' are) never hears the reply.
//!
//! Asked only where it teaches something: a socket bound to one address
//! already answers from it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;

/// Where a datagram came in: the local address it was sent to and the
/// interface it arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Local {
    /// The address the client sent to (IPv4-mapped on a dual-stack IPv6
    /// socket).
    pub ip: IpAddr,
    /// The interface's index.
    pub interface: u32,
}

/// Whether a socket bound to `bound` needs to be told each datagram's
/// destination: it is bound to a wildcard address.
pub fn wanted(bound: SocketAddr) -> bool {
    bound.ip().is_unspecified()
}

/// Asks the kernel for each datagram's destination on `socket`, bound to
/// `bound` (an IPv4 or IPv6 socket alike).
pub fn enable(socket: &impl AsFd, bound: SocketAddr) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        match bound {
            SocketAddr::V4(_) => setsockopt(socket, sockopt::Ipv4PacketInfo, &true),
            SocketAddr::V6(_) => setsockopt(socket, sockopt::Ipv6RecvPacketInfo, &true),
        }
        .map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, bound);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// The index of the interface named `name` (an IPv6 link-local address's
/// scope).
pub fn interface_index(name: &str) -> io::Result<u32> {
    #[cfg(target_os = "linux")]
    {
        nix::net::if_::if_nametoindex(name).map_err(|_| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface named {name}"),
            )
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = name;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// The destination an `IP_PKTINFO` control message names.
#[cfg(target_os = "linux")]
pub fn from_v4(info: &libc::in_pktinfo) -> Local {
    Local {
        ip: IpAddr::from(u32::from_be(info.ipi_addr.s_addr).to_be_bytes()),
        interface: u32::try_from(info.ipi_ifindex).unwrap_or(0),
    }
}

/// The destination an `IPV6_PKTINFO` control message names.
#[cfg(target_os = "linux")]
pub fn from_v6(info: &libc::in6_pktinfo) -> Local {
    Local {
        ip: IpAddr::from(info.ipi6_addr.s6_addr),
        interface: info.ipi6_ifindex,
    }
}

/// The control message that sends a reply from `local`, for an IPv4
/// socket: the source address alone (the route back picks the interface).
#[cfg(target_os = "linux")]
pub fn to_v4(local: Local) -> Option<libc::in_pktinfo> {
    let IpAddr::V4(ip) = local.ip else {
        return None;
    };
    Some(libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    })
}

/// The control message that sends a reply from `local`, for an IPv6
/// socket: the address and the interface it came in on (a link-local
/// client is reached only through it).
#[cfg(target_os = "linux")]
pub fn to_v6(local: Local) -> libc::in6_pktinfo {
    let ip = match local.ip {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
    };
    libc::in6_pktinfo {
        ipi6_addr: libc::in6_addr {
            s6_addr: ip.octets(),
        },
        ipi6_ifindex: local.interface,
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_destination_reads_back_as_it_is_written() {
        let v4 = Local {
            ip: "192.0.2.7".parse().unwrap(),
            interface: 0,
        };
        let info = to_v4(v4).unwrap();
        let read = Local {
            ip: IpAddr::from(u32::from_be(info.ipi_spec_dst.s_addr).to_be_bytes()),
            interface: 0,
        };
        assert_eq!(read, v4);
        let v6 = Local {
            ip: "fe80::1".parse().unwrap(),
            interface: 3,
        };
        assert_eq!(from_v6(&to_v6(v6)), v6);
        assert!(wanted("0.0.0.0:123".parse().unwrap()));
        assert!(wanted("[::]:123".parse().unwrap()));
        assert!(!wanted("192.0.2.7:123".parse().unwrap()));
    }
}
