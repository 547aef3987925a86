//! Keeping two servers from answering each other for ever.
//!
//! UDP sources can be forged. A datagram forged "from" one server's socket
//! to another's makes the second answer the first; if the first answers that
//! answer, the two talk until something drops a datagram (inetd's built-in
//! echo and chargen services were the classic case). Each of horad's
//! protocols therefore stops at the first reply:
//!
//! - SNTP answers only mode-3 client requests, and a reply is mode 4
//!   ([`crate::sntp::parse_request`]);
//! - the seed's protocol answers a peer without a session only when it sends
//!   a request of the protocol (`login` or a menu option), never other text
//!   ([`crate::session::decide`]); none of the server's own messages is one;
//! - RFC 868 Time and RFC 867 Daytime answer any datagram, so they use
//!   [`stateless_may_answer`]: never a datagram shaped like a time server's
//!   reply ([`is_server_reply`]), and never a source port of a service that
//!   answers unasked, as FreeBSD's inetd refuses them.

use crate::wire::SESSION_CLOSED;

/// Source ports of the classic services that answer any datagram: echo (7),
/// daytime (13), chargen (19) and time (37). A request from one of them can
/// only be forged, and answering it would start a loop.
pub const UNASKED_PORTS: [u16; 4] = [7, 13, 19, 37];

/// The marker of both menus the seed's server sends.
const MENU_MARKER: &str = "ESCOLHA UMA OPCAO";

/// The length of an RFC 868 reply.
const RFC868_REPLY_LEN: usize = 4;

/// The length of an NTP header.
const NTP_HEADER_LEN: usize = 48;

/// Whether `datagram` has the shape of what a time server sends: an RFC 868
/// reply (exactly 4 bytes), an NTP packet that is not a client request, any
/// message of the seed's server (a menu, a time, a closing text), or a line
/// carrying a time of day (a daytime reply of any format: RFC 2822,
/// `ctime`, ...). Clients send none of these; an empty datagram, a newline or
/// a word is never one.
pub fn is_server_reply(datagram: &[u8]) -> bool {
    if datagram.len() == RFC868_REPLY_LEN {
        return true;
    }
    if datagram.len() >= NTP_HEADER_LEN && datagram[0] & 0b111 != 3 {
        return true;
    }
    let Ok(text) = std::str::from_utf8(datagram) else {
        return false;
    };
    text.contains(SESSION_CLOSED) || text.contains(MENU_MARKER) || has_time_of_day(text)
}

/// Whether an RFC 868 or RFC 867 server should answer `datagram` from
/// `source_port`. `own_ports` are the ports of the daemon's own sockets: a
/// datagram from one of them, on another host, is another daemon's reply.
pub fn stateless_may_answer(source_port: u16, own_ports: &[u16], datagram: &[u8]) -> bool {
    !(UNASKED_PORTS.contains(&source_port)
        || own_ports.contains(&source_port)
        || is_server_reply(datagram))
}

/// Whether `text` holds `H:MM` or `HH:MM` (digits around a colon), as every
/// daytime format does.
fn has_time_of_day(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(4).any(|w| {
        w[0].is_ascii_digit() && w[1] == b':' && w[2].is_ascii_digit() && w[3].is_ascii_digit()
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use chrono::{FixedOffset, TimeZone};

    use super::*;
    use crate::clock::TimeReply;
    use crate::sntp::{self, NtpTimestamp, ServerClock, PACKET_LEN};
    use crate::wire::Reply;
    use crate::{daytime, rfc868};

    /// Every datagram any of horad's protocols ever sends.
    fn every_reply_horad_sends() -> Vec<Vec<u8>> {
        let local = chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap();
        let time = TimeReply::render(local);
        let mut replies: Vec<Vec<u8>> = [
            Reply::Menu,
            Reply::Time,
            Reply::Closed,
            Reply::InvalidOption,
            Reply::NoSession,
            Reply::IdleNotice,
            Reply::Refused,
            Reply::ShutdownNotice,
        ]
        .iter()
        .map(|reply| reply.bytes(&time).to_vec())
        .collect();
        let mut request = [0u8; PACKET_LEN];
        request[0] = 4 << 3 | 3;
        let request = sntp::parse_request(&request).unwrap();
        let mut reply = [0u8; PACKET_LEN];
        sntp::write_reply(
            &request,
            &ServerClock::default(),
            NtpTimestamp::default(),
            NtpTimestamp::default(),
            &mut reply,
        );
        replies.push(reply.to_vec());
        sntp::write_kiss_of_death(&request, sntp::KISS_RATE, &mut reply);
        replies.push(reply.to_vec());
        replies.push(rfc868::reply(UNIX_EPOCH + Duration::from_secs(1_795_000_000)).to_vec());
        replies.push(rfc868::reply(UNIX_EPOCH).to_vec());
        let brt = FixedOffset::west_opt(3 * 3600).unwrap();
        let now = brt.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        replies.push(daytime::reply(&now).into_bytes());
        replies
    }

    #[test]
    fn every_reply_of_horad_is_recognised() {
        for reply in every_reply_horad_sends() {
            assert!(
                is_server_reply(&reply),
                "{:?}",
                String::from_utf8_lossy(&reply)
            );
            assert!(!stateless_may_answer(40_000, &[], &reply));
        }
    }

    #[test]
    fn other_daytime_servers_lines_are_recognised() {
        for line in [
            "Thu Nov 26 12:27:22 2026\r\n",
            "Thursday, November 26, 2026 12:27:22-UTC\n",
            "61000 26-11-26 12:27:22 00 0 0 0.0 UTC(NIST) *\n",
        ] {
            assert!(is_server_reply(line.as_bytes()), "{line:?}");
        }
    }

    #[test]
    fn what_clients_send_is_answered() {
        // rdate -u and socat send an empty datagram or a newline; people type a word.
        for request in [&b""[..], b"\n", b"\r\n", b"time\n", b"hello", b"x"] {
            assert!(!is_server_reply(request), "{request:?}");
            assert!(stateless_may_answer(40_000, &[5005, 3700], request));
        }
        let mut ntp_request = [0u8; PACKET_LEN];
        ntp_request[0] = 4 << 3 | 3;
        assert!(!is_server_reply(&ntp_request), "an NTP client request");
    }

    #[test]
    fn ports_of_services_that_answer_unasked_are_never_answered() {
        for port in [7, 13, 19, 37] {
            assert!(!stateless_may_answer(port, &[], b""), "port {port}");
        }
        assert!(!stateless_may_answer(3700, &[5005, 3700], b""), "own port");
        assert!(stateless_may_answer(123, &[5005, 3700], b""), "NTP clients");
    }

    #[test]
    fn the_seeds_protocol_answers_none_of_horads_replies_without_a_session() {
        use crate::{decide, PeerState, Rules};
        let now = std::time::Instant::now();
        for reply in every_reply_horad_sends() {
            let decision = decide(
                PeerState::NoSession { may_open: true },
                crate::parse(&reply),
                now,
                Rules::default(),
            );
            assert_eq!(
                decision.reply,
                None,
                "{:?}",
                String::from_utf8_lossy(&reply)
            );
        }
    }
}
