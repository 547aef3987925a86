//! The stateless cookie a login is answered with (return routability, as
//! WireGuard's cookie reply and QUIC's Retry token do it): a MAC, under a
//! key only the server holds, of the peer's address and port, the login's
//! nonce and the time epoch. The server keeps nothing for a login; a
//! confirmation carrying a cookie that checks proves its sender got the
//! challenge sent to that address. A forger who never sees the server's
//! answers can't make one, so it opens nothing.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aes::Aes128Enc;
use cmac::digest::KeyInit;
use cmac::{Cmac, Mac as _};

use super::wire::{array, Cookie, Nonce};

/// How long an epoch lasts: a cookie is good in the epoch it was issued
/// in and the next, so for one to two of them.
pub const EPOCH: Duration = Duration::from_secs(60);

/// The server's cookie key (AES-128-CMAC), and when its epochs began.
#[derive(Clone)]
pub struct CookieKey {
    mac: Cmac<Aes128Enc>,
    started: Instant,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(..)")
    }
}

impl CookieKey {
    /// A key from 16 random bytes (the server's, never sent), its first
    /// epoch starting at `now`.
    pub fn new(key: [u8; 16], now: Instant) -> CookieKey {
        CookieKey {
            mac: <Cmac<Aes128Enc> as KeyInit>::new(&key.into()),
            started: now,
        }
    }

    /// The cookie for a login from `peer` with `nonce`, at `now`.
    pub fn issue(&self, peer: SocketAddr, nonce: &Nonce, now: Instant) -> Cookie {
        let epoch = self.epoch(now);
        let mut cookie = [0u8; 20];
        cookie[..4].copy_from_slice(&epoch.to_be_bytes());
        cookie[4..].copy_from_slice(&self.tag(peer, nonce, epoch));
        Cookie(cookie)
    }

    /// Whether `cookie` is one this key issued to `peer` for `nonce` in
    /// this epoch or the one before.
    pub fn check(&self, peer: SocketAddr, nonce: &Nonce, cookie: &Cookie, now: Instant) -> bool {
        let epoch = u32::from_be_bytes(array(&cookie.0[..4]));
        let current = self.epoch(now);
        if epoch != current && Some(epoch) != current.checked_sub(1) {
            return false;
        }
        let mut mac = self.mac.clone();
        feed(&mut mac, peer, nonce, epoch);
        mac.verify_slice(&cookie.0[4..]).is_ok()
    }

    fn epoch(&self, now: Instant) -> u32 {
        let since = now.saturating_duration_since(self.started).as_secs() / EPOCH.as_secs();
        u32::try_from(since).unwrap_or(u32::MAX)
    }

    fn tag(&self, peer: SocketAddr, nonce: &Nonce, epoch: u32) -> [u8; 16] {
        let mut mac = self.mac.clone();
        feed(&mut mac, peer, nonce, epoch);
        mac.finalize().into_bytes().into()
    }
}

/// The MAC's input: the epoch, the address (IPv4 as IPv4-mapped IPv6, so
/// one address has one form), the port, the nonce.
fn feed(mac: &mut Cmac<Aes128Enc>, peer: SocketAddr, nonce: &Nonce, epoch: u32) {
    let ip = match peer.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    mac.update(&epoch.to_be_bytes());
    mac.update(&ip.octets());
    mac.update(&peer.port().to_be_bytes());
    mac.update(&nonce.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: Nonce = Nonce([3; 16]);

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn a_cookie_checks_for_its_address_port_and_nonce_only() {
        let now = Instant::now();
        let key = CookieKey::new([1; 16], now);
        let cookie = key.issue(peer(1000), &NONCE, now);
        assert!(key.check(peer(1000), &NONCE, &cookie, now));
        assert!(!key.check(peer(1001), &NONCE, &cookie, now));
        let other_ip = SocketAddr::from(([192, 0, 2, 2], 1000));
        assert!(!key.check(other_ip, &NONCE, &cookie, now));
        assert!(!key.check(peer(1000), &Nonce([4; 16]), &cookie, now));
        let mut tampered = cookie;
        tampered.0[19] ^= 1;
        assert!(!key.check(peer(1000), &NONCE, &tampered, now));
        let other_key = CookieKey::new([2; 16], now);
        assert!(!other_key.check(peer(1000), &NONCE, &cookie, now));
    }

    #[test]
    fn a_cookie_is_good_for_its_epoch_and_the_next_only() {
        let start = Instant::now();
        let key = CookieKey::new([1; 16], start);
        let cookie = key.issue(peer(1), &NONCE, start + EPOCH / 2);
        assert!(key.check(peer(1), &NONCE, &cookie, start + EPOCH + EPOCH / 2));
        assert!(!key.check(peer(1), &NONCE, &cookie, start + 2 * EPOCH));
        // Its epoch can't be moved forward: the MAC covers it.
        let mut later = cookie;
        later.0[..4].copy_from_slice(&2u32.to_be_bytes());
        assert!(!key.check(peer(1), &NONCE, &later, start + 2 * EPOCH));
    }
}
