//! The Time Protocol (RFC 868) over UDP: any datagram is answered with the
//! time as 32-bit big-endian seconds since 1900-01-01 00:00 UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::sntp::NTP_UNIX_OFFSET;

/// The 4-byte reply for `now`. The count wraps in 2036 as the RFC's does;
/// a clock set before 1970 reads as 1970.
pub fn reply(now: SystemTime) -> [u8; 4] {
    let unix = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // Wrapping modulo 2^32 is the protocol's own rule.
    let since_1900 = (unix.wrapping_add(NTP_UNIX_OFFSET) & 0xFFFF_FFFF) as u32;
    since_1900.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_seconds_since_1900_big_endian() {
        // RFC 868's own examples.
        assert_eq!(reply(UNIX_EPOCH), 2_208_988_800u32.to_be_bytes());
        let y2k = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(u32::from_be_bytes(reply(y2k)), 3_155_673_600);
        assert_eq!(
            reply(UNIX_EPOCH + Duration::from_millis(1_999)),
            2_208_988_801u32.to_be_bytes()
        );
    }
}
