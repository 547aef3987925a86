//! Who may talk to the server: allow and deny lists of networks, as chrony's
//! `allow`/`deny` directives.
//!
//! The deny list wins over the allow list; an address on neither is denied.
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket
//! reports for IPv4 peers) are judged as the IPv4 address they carry, and
//! so are IPv4-mapped entries (`::ffff:10.0.0.0/104` is `10.0.0.0/8`, as
//! chrony reads them). Each list is a prefix trie (`prefix-trie`), so a
//! look-up walks at most one node per prefix length, however many entries
//! there are.

use std::net::IpAddr;

pub use ipnet::IpNet;
use ipnet::Ipv4Net;
use prefix_trie::joint::JointPrefixSet;

/// The networks a LAN daemon serves by default: loopback, the private IPv4
/// ranges (RFC 1918), IPv4 link-local, IPv6 unique-local and link-local.
pub const LAN_NETWORKS: [&str; 8] = [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
];

/// Allow and deny lists of networks.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessList {
    allow: JointPrefixSet<IpNet>,
    deny: JointPrefixSet<IpNet>,
}

impl AccessList {
    /// Lists from the configuration ([`canonical`] entries).
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        let set = |nets: Vec<IpNet>| {
            let mut set = JointPrefixSet::new();
            for net in nets {
                set.insert(canonical(net));
            }
            set
        };
        AccessList {
            allow: set(allow),
            deny: set(deny),
        }
    }

    /// Whether datagrams from `ip` may be answered.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let host = IpNet::from(ip.to_canonical());
        !self.deny.is_covered(&host) && self.allow.is_covered(&host)
    }
}

/// An entry as it is matched: an IPv4-mapped IPv6 network (inside
/// `::ffff:0:0/96`) as the IPv4 network it carries, and any host bits
/// cleared (`10.0.0.1/8` is `10.0.0.0/8`; the configuration refuses such
/// entries, this only keeps the trie sound).
pub fn canonical(net: IpNet) -> IpNet {
    let mapped = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => v6
            .addr()
            .to_ipv4_mapped()
            .and_then(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96).ok())
            .map(IpNet::V4),
        _ => None,
    };
    mapped.unwrap_or(net).trunc()
}

/// Whether `net` has bits set past its prefix length (`10.0.0.1/8`): most
/// likely a typo for a host (`/32`) or for the network address.
pub fn has_host_bits(net: &IpNet) -> bool {
    net.trunc() != *net
}

impl Default for AccessList {
    /// [`LAN_NETWORKS`] allowed, nothing denied.
    fn default() -> Self {
        let allow = LAN_NETWORKS
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect();
        AccessList::new(allow, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_serves_the_lan_and_nothing_else() {
        let lan = AccessList::default();
        for allowed in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.10",
            "169.254.1.1",
            "fd12:3456::1",
            "fe80::1",
            "::ffff:192.168.1.10",
        ] {
            assert!(lan.permits(ip(allowed)), "{allowed}");
        }
        for denied in [
            "8.8.8.8",
            "172.32.0.1",
            "192.169.0.1",
            "2001:db8::1",
            "::ffff:8.8.8.8",
            "0.0.0.0",
        ] {
            assert!(!lan.permits(ip(denied)), "{denied}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let list = AccessList::new(
            vec!["10.0.0.0/8".parse().unwrap()],
            vec!["10.0.5.0/24".parse().unwrap()],
        );
        assert!(list.permits(ip("10.0.4.1")));
        assert!(!list.permits(ip("10.0.5.1")));
        assert!(!list.permits(ip("::ffff:10.0.5.1")));
    }

    #[test]
    fn an_ipv4_mapped_entry_matches_its_ipv4_sources() {
        let list = AccessList::new(
            vec!["127.0.0.0/8".parse().unwrap()],
            vec!["::ffff:127.0.0.0/104".parse().unwrap()],
        );
        assert!(!list.permits(ip("127.0.0.1")));
        assert!(!list.permits(ip("::ffff:127.0.0.1")));
        assert_eq!(
            canonical("::ffff:10.1.0.0/112".parse().unwrap()),
            "10.1.0.0/16".parse::<IpNet>().unwrap()
        );
        // Not mapped: left as it is.
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }

    #[test]
    fn host_bits_are_told_and_cleared() {
        let typo: IpNet = "10.0.0.1/8".parse().unwrap();
        assert!(has_host_bits(&typo));
        assert!(!has_host_bits(&"10.0.0.0/8".parse().unwrap()));
        assert!(!has_host_bits(&"10.0.0.1/32".parse().unwrap()));
        assert!(AccessList::new(vec![typo], Vec::new()).permits(ip("10.9.9.9")));
    }

    #[test]
    fn a_hundred_thousand_hosts_are_each_found_and_no_other() {
        let hosts: Vec<IpNet> = (0..100_000u32)
            .map(|n| IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 3 * n))))
            .collect();
        let list = AccessList::new(vec!["10.0.0.0/8".parse().unwrap()], hosts);
        for n in (0..100_000u32).step_by(997) {
            let base = 0x0a00_0000 + 3 * n;
            assert!(!list.permits(IpAddr::from(std::net::Ipv4Addr::from(base))));
            assert!(list.permits(IpAddr::from(std::net::Ipv4Addr::from(base + 1))));
        }
    }

    #[test]
    fn an_empty_allow_list_denies_everyone() {
        assert!(!AccessList::new(Vec::new(), Vec::new()).permits(ip("127.0.0.1")));
    }
}
