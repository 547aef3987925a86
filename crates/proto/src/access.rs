//! Who may talk to the server: allow and deny lists of networks, as chrony's
//! `allow`/`deny` directives.
//!
//! The deny list wins over the allow list; an address on neither is denied.
//! IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket
//! reports for IPv4 peers) are judged as the IPv4 address they carry.

use std::net::IpAddr;

pub use ipnet::IpNet;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl AccessList {
    /// Lists from the configuration.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        AccessList { allow, deny }
    }

    /// Whether datagrams from `ip` may be answered.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        !self.deny.iter().any(|net| net.contains(&ip))
            && self.allow.iter().any(|net| net.contains(&ip))
    }
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
    fn an_empty_allow_list_denies_everyone() {
        assert!(!AccessList::new(Vec::new(), Vec::new()).permits(ip("127.0.0.1")));
    }
}
