//! SNTP server mode (RFC 4330, with RFC 5905's server rules), with no I/O.
//!
//! A server answers a well-formed mode-3 (client) request with a 48-byte
//! mode-4 (server) reply: same version, the client's transmit timestamp as
//! origin, and the receive and transmit timestamps it is given. Anything else
//! — a reply, a broadcast, a control message, a short datagram, version 0 or
//! 5–7 — gets no answer at all, so horad never answers a reply with a reply,
//! and a reply is never larger than its request.
//!
//! hora serves the host's clock; it does not discipline it. The stratum,
//! reference id and the rest are whatever the admin configures, by default
//! what chrony sends for `local stratum 10`.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The length of an SNTP packet without extensions; every reply's length.
pub const PACKET_LEN: usize = 48;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

const MODE_CLIENT: u8 = 3;
const MODE_SERVER: u8 = 4;

/// A 64-bit NTP timestamp: seconds since 1900 (modulo 2^32, the era) and a
/// 32-bit binary fraction (about 0.23 ns per unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NtpTimestamp {
    /// Seconds since 1900-01-01 00:00:00 UTC, modulo 2^32.
    pub seconds: u32,
    /// Fractions of a second, in units of 2^-32 s.
    pub fraction: u32,
}

impl NtpTimestamp {
    /// The timestamp of a wall-clock time. Times before 1970 read as 1970.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since_unix = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        NtpTimestamp::from_unix(since_unix)
    }

    /// The timestamp of a duration since the Unix epoch.
    pub fn from_unix(since_unix: Duration) -> Self {
        // Wrapping into the era is what NTP does; truncation is intended.
        let seconds = (since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xFFFF_FFFF) as u32;
        let fraction = ((u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000) as u32;
        NtpTimestamp { seconds, fraction }
    }

    fn write(self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.to_u64().to_be_bytes());
    }

    /// The timestamp as one 64-bit number, seconds in the high half.
    pub fn to_u64(self) -> u64 {
        u64::from(self.seconds) << 32 | u64::from(self.fraction)
    }

    /// The timestamp of a 64-bit number, seconds in the high half.
    pub fn from_u64(value: u64) -> Self {
        NtpTimestamp {
            seconds: (value >> 32) as u32,
            fraction: value as u32,
        }
    }
}

/// How the server describes its clock in every reply (the admin's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerClock {
    /// 0–3: no warning, last minute has 61 s, last minute has 59 s, unsynchronized.
    pub leap_indicator: u8,
    /// 1 (primary) to 15; 16 means unsynchronized.
    pub stratum: u8,
    /// The clock's precision as a power of two seconds (-26 ≈ 15 ns).
    pub precision: i8,
    /// Round-trip delay to the reference clock.
    pub root_delay: Duration,
    /// Dispersion to the reference clock.
    pub root_dispersion: Duration,
    /// Four bytes naming the reference: an IPv4 address or ASCII.
    pub reference_id: [u8; 4],
}

impl Default for ServerClock {
    /// What chronyd 4.x sends for `local stratum 10` (read with ntplib on
    /// the project's machine: stratum 10, reference id 127.127.1.1,
    /// precision -26, root delay and dispersion 0, leap 0).
    fn default() -> Self {
        ServerClock {
            leap_indicator: 0,
            stratum: 10,
            precision: -26,
            root_delay: Duration::ZERO,
            root_dispersion: Duration::ZERO,
            reference_id: Ipv4Addr::new(127, 127, 1, 1).octets(),
        }
    }
}

/// The parts of a client request a reply needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRequest {
    /// The request's version (1–4), echoed in the reply.
    pub version: u8,
    /// The client's poll exponent, echoed as chrony does.
    pub poll: i8,
    /// The client's transmit timestamp, raw: the reply's origin timestamp.
    pub transmit: [u8; 8],
    /// Its origin timestamp, raw: in interleaved mode, the receive
    /// timestamp of the earlier reply whose transmit time it asks for.
    pub origin: [u8; 8],
    /// Its receive timestamp, raw: in interleaved mode, when the client got
    /// that earlier reply (the interleaved reply's origin).
    pub receive: [u8; 8],
}

impl ClientRequest {
    /// The receive timestamp (64-bit NTP) of the earlier reply of ours this
    /// request names, when it is formed in interleaved mode (RFC 9769, as
    /// chrony reads it): version 4, an origin with the low bit set (as our
    /// receive timestamps have, [`write_reply`]), and receive and transmit
    /// fields that differ (a basic request has them equal, or zero).
    pub fn interleaved_origin(&self) -> Option<u64> {
        let origin = u64::from_be_bytes(self.origin);
        (self.version == 4 && origin & 1 == 1 && self.receive != self.transmit).then_some(origin)
    }
}

/// Why a datagram is not an SNTP client request. None of these is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SntpError {
    /// Shorter than the 48-byte header.
    #[error("datagram of {0} bytes is shorter than an NTP header")]
    TooShort(usize),
    /// Not mode 3 (client): a reply, broadcast, symmetric or control message.
    #[error("NTP mode {0} is not a client request")]
    NotClientMode(u8),
    /// Version 0 or 5–7.
    #[error("NTP version {0} is not supported")]
    BadVersion(u8),
}

/// Reads a datagram as an SNTP client request.
///
/// Versions 1 to 4 are answered (as chronyd answers them); a request longer
/// than 48 bytes (extension fields, a MAC) is answered unauthenticated with
/// the 48-byte header, which a client that wanted authentication rejects.
pub fn parse_request(datagram: &[u8]) -> Result<ClientRequest, SntpError> {
    if datagram.len() < PACKET_LEN {
        return Err(SntpError::TooShort(datagram.len()));
    }
    let version = (datagram[0] >> 3) & 0b111;
    let mode = datagram[0] & 0b111;
    if mode != MODE_CLIENT {
        return Err(SntpError::NotClientMode(mode));
    }
    if !(1..=4).contains(&version) {
        return Err(SntpError::BadVersion(version));
    }
    let field = |at: usize| {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&datagram[at..at + 8]);
        raw
    };
    Ok(ClientRequest {
        version,
        poll: datagram[2] as i8,
        transmit: field(40),
        origin: field(24),
        receive: field(32),
    })
}

/// Writes the reply to `request` into `out`.
///
/// `received` is when the request arrived and `transmitted` when the reply
/// leaves; both come from the caller's clock. The reference timestamp is the
/// receive time: the host's clock is the reference, and it is current.
///
/// As chrony does, the receive timestamp's lowest bit (2^-32 s) is set and
/// the transmit timestamp's cleared ([`receive_flagged`], [`transmit_flagged`]):
/// an origin with that bit set names one of our receive timestamps, never a
/// transmit timestamp echoed by a basic client.
pub fn write_reply(
    request: &ClientRequest,
    clock: &ServerClock,
    received: NtpTimestamp,
    transmitted: NtpTimestamp,
    out: &mut [u8; PACKET_LEN],
) {
    write_header(request, clock, received, out);
    out[24..32].copy_from_slice(&request.transmit);
    transmit_flagged(transmitted).write(&mut out[40..48]);
}

/// Writes the interleaved reply (RFC 9769) to `request`, which named an
/// earlier reply that left at `earlier_transmit` (64-bit NTP, the kernel's
/// time): its origin is the request's receive field, its transmit timestamp
/// that time, and its receive timestamp this request's `received`.
pub fn write_interleaved_reply(
    request: &ClientRequest,
    clock: &ServerClock,
    received: NtpTimestamp,
    earlier_transmit: u64,
    out: &mut [u8; PACKET_LEN],
) {
    write_header(request, clock, received, out);
    out[24..32].copy_from_slice(&request.receive);
    out[TRANSMIT_FIELD].copy_from_slice(&(earlier_transmit & !1).to_be_bytes());
}

/// `time` as a reply's receive timestamp: its lowest bit set.
pub fn receive_flagged(time: NtpTimestamp) -> NtpTimestamp {
    NtpTimestamp {
        fraction: time.fraction | 1,
        ..time
    }
}

/// `time` as a reply's transmit timestamp: its lowest bit clear.
pub fn transmit_flagged(time: NtpTimestamp) -> NtpTimestamp {
    NtpTimestamp {
        fraction: time.fraction & !1,
        ..time
    }
}

/// Where a reply's receive timestamp lies: the key of interleaved mode's
/// log, by which a reply the kernel says it sent is known again.
pub const RECEIVE_FIELD: std::ops::Range<usize> = 32..40;

/// Where a reply's transmit timestamp lies: written last, just before the
/// reply leaves ([`write_transmit`]). Protocol v2's time answers carry
/// theirs at the same place, so one writer serves both.
pub const TRANSMIT_FIELD: std::ops::Range<usize> = 40..48;

/// Writes `time` as `reply`'s transmit timestamp ([`TRANSMIT_FIELD`],
/// flagged as [`transmit_flagged`] says); nothing if the reply is shorter.
pub fn write_transmit(reply: &mut [u8], time: SystemTime) {
    if let Some(field) = reply.get_mut(TRANSMIT_FIELD) {
        transmit_flagged(NtpTimestamp::from_system_time(time)).write(field);
    }
}

/// `reply`'s transmit timestamp ([`TRANSMIT_FIELD`]) as written, if it
/// is long enough.
pub fn transmit_of(reply: &[u8]) -> Option<NtpTimestamp> {
    let field = reply.get(TRANSMIT_FIELD)?;
    let bytes: [u8; 8] = field.try_into().ok()?;
    Some(NtpTimestamp::from_u64(u64::from_be_bytes(bytes)))
}

/// Everything of a reply but its origin and transmit timestamps.
fn write_header(
    request: &ClientRequest,
    clock: &ServerClock,
    received: NtpTimestamp,
    out: &mut [u8; PACKET_LEN],
) {
    out[0] = (clock.leap_indicator & 0b11) << 6 | request.version << 3 | MODE_SERVER;
    out[1] = clock.stratum;
    out[2] = request.poll as u8;
    out[3] = clock.precision as u8;
    out[4..8].copy_from_slice(&ntp_short(clock.root_delay).to_be_bytes());
    out[8..12].copy_from_slice(&ntp_short(clock.root_dispersion).to_be_bytes());
    out[12..16].copy_from_slice(&clock.reference_id);
    received.write(&mut out[16..24]);
    receive_flagged(received).write(&mut out[RECEIVE_FIELD]);
}

/// The kiss code of a rate-limited client.
pub const KISS_RATE: [u8; 4] = *b"RATE";

/// Writes a kiss-o'-death reply to `request` (RFC 5905, section 7.4): stratum
/// 0, leap indicator 3, the kiss `code` as reference id, the request's
/// transmit timestamp as origin (so the client takes it as the answer) and no
/// time at all. A client that gets `RATE` must slow down.
pub fn write_kiss_of_death(request: &ClientRequest, code: [u8; 4], out: &mut [u8; PACKET_LEN]) {
    *out = [0; PACKET_LEN];
    out[0] = 3 << 6 | request.version << 3 | MODE_SERVER;
    out[2] = request.poll as u8;
    out[12..16].copy_from_slice(&code);
    out[24..32].copy_from_slice(&request.transmit);
}

/// A duration as NTP's 16.16 fixed-point seconds, saturating.
fn ntp_short(duration: Duration) -> u32 {
    let units = duration.as_nanos() * 65_536 / 1_000_000_000;
    u32::try_from(units).unwrap_or(u32::MAX)
}

/// Reads a reference id as the config writes it: a dotted IPv4 address
/// (`127.127.1.1`) or up to four ASCII characters (`LOCL`, `GPS`).
pub fn parse_reference_id(text: &str) -> Option<[u8; 4]> {
    if let Ok(ip) = text.parse::<Ipv4Addr>() {
        return Some(ip.octets());
    }
    if text.is_empty() || text.len() > 4 || !text.is_ascii() {
        return None;
    }
    let mut id = [0u8; 4];
    id[..text.len()].copy_from_slice(text.as_bytes());
    Some(id)
}

/// A client request (version 4, mode 3) whose transmit timestamp is
/// `transmit`: the reply's origin timestamp must equal it.
pub fn client_request(transmit: NtpTimestamp) -> [u8; PACKET_LEN] {
    let mut packet = [0u8; PACKET_LEN];
    packet[0] = 4 << 3 | MODE_CLIENT;
    transmit.write(&mut packet[40..48]);
    packet
}

impl NtpTimestamp {
    /// Seconds since the Unix epoch, reading the 32-bit seconds in the era
    /// that puts them within 68 years of `near` (the client's own clock).
    pub fn to_unix_seconds(self, near: f64) -> f64 {
        let era_seconds = 4_294_967_296.0;
        let seconds = f64::from(self.seconds) - NTP_UNIX_OFFSET as f64
            + f64::from(self.fraction) / era_seconds;
        let eras = ((near - seconds) / era_seconds).round();
        seconds + eras * era_seconds
    }

    fn read(bytes: &[u8]) -> Self {
        let word = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        NtpTimestamp {
            seconds: word(0),
            fraction: word(4),
        }
    }
}

/// One measurement of a server's clock against ours, from a reply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// How far the server's clock is ahead of ours, in seconds (ntpdate's
    /// and RFC 5905's offset: `((t2 - t1) + (t3 - t4)) / 2`).
    pub offset: f64,
    /// The round trip minus the server's own time, in seconds.
    pub delay: f64,
    /// The server's stratum (1–15).
    pub stratum: u8,
    /// The leap indicator: 0 none, 1 a 61-second minute, 2 a 59-second one.
    pub leap: u8,
    /// The server's reference id, raw.
    pub reference_id: [u8; 4],
    /// The server's transmit time, seconds since the Unix epoch.
    pub server_time: f64,
}

/// Why a reply gives no time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not a 48-byte-or-longer mode-4 packet.
    #[error("not an NTP server reply")]
    NotAReply,
    /// Its origin is not our request's transmit timestamp: a stale or forged
    /// reply, to be ignored while waiting for the real one.
    #[error("a reply to another request")]
    NotOurs,
    /// A kiss-o'-death (stratum 0): the code says why (`RATE`, `DENY`, ...).
    #[error("kiss-o'-death {}", String::from_utf8_lossy(.0).trim_end_matches('\0'))]
    KissOfDeath([u8; 4]),
    /// Leap indicator 3 (or stratum 0 without a kiss code): the server says
    /// its clock is not synchronized.
    #[error("the server's clock is not synchronized (leap indicator 3)")]
    Unsynchronized,
}

/// Reads `reply` to the request sent at `sent` (our transmit timestamp, t1),
/// received at `received` (t4), both on our clock.
///
/// The order of checks is RFC 4330's: a reply to another request is
/// ignored; a kiss-o'-death (stratum 0) and an unsynchronized server (LI 3)
/// give no time, and are never read as one.
pub fn read_reply(reply: &[u8], sent: NtpTimestamp, received: f64) -> Result<Sample, ReplyError> {
    if reply.len() < PACKET_LEN || reply[0] & 0b111 != MODE_SERVER {
        return Err(ReplyError::NotAReply);
    }
    if NtpTimestamp::read(&reply[24..32]) != sent {
        return Err(ReplyError::NotOurs);
    }
    let mut reference_id = [0u8; 4];
    reference_id.copy_from_slice(&reply[12..16]);
    let stratum = reply[1];
    let leap = reply[0] >> 6;
    if stratum == 0 {
        // A kiss code is ASCII (`RATE`, `DENY`); chronyd and horad send
        // stratum 0 with a zero reference id when unsynchronized.
        return Err(if reference_id.iter().all(u8::is_ascii_alphanumeric) {
            ReplyError::KissOfDeath(reference_id)
        } else {
            ReplyError::Unsynchronized
        });
    }
    if leap == 3 {
        return Err(ReplyError::Unsynchronized);
    }
    let t1 = sent.to_unix_seconds(received);
    let t2 = NtpTimestamp::read(&reply[32..40]).to_unix_seconds(received);
    let t3 = NtpTimestamp::read(&reply[40..48]).to_unix_seconds(received);
    let t4 = received;
    Ok(Sample {
        offset: ((t2 - t1) + (t3 - t4)) / 2.0,
        delay: (t4 - t1) - (t3 - t2),
        stratum,
        leap,
        reference_id,
        server_time: t3,
    })
}

/// What a leap indicator says, in a word (`/status`'s `leap`): a second
/// to insert or delete at the end of the day, none, or (3) a clock not
/// synchronized.
pub fn leap_name(indicator: u8) -> &'static str {
    match indicator {
        0 => "none",
        1 => "insert",
        2 => "delete",
        _ => "unsynchronized",
    }
}

/// A reference id as people read it: four ASCII letters for a primary
/// server (stratum 1: `GPS`, `PPS`), else the IPv4 address it is.
pub fn reference_id_text(id: [u8; 4], stratum: u8) -> String {
    if stratum <= 1 && id.iter().all(|b| b.is_ascii_graphic() || *b == 0) {
        return String::from_utf8_lossy(&id)
            .trim_end_matches('\0')
            .to_owned();
    }
    Ipv4Addr::from(id).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(first_byte: u8) -> [u8; PACKET_LEN] {
        let mut packet = [0u8; PACKET_LEN];
        packet[0] = first_byte;
        packet[2] = 6; // poll 64 s
        packet[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        packet
    }

    const V4_CLIENT: u8 = 4 << 3 | 3;
    const V3_CLIENT: u8 = 3 << 3 | 3;

    #[test]
    fn answers_client_requests_of_versions_1_to_4_only() {
        for version in 0..8u8 {
            let parsed = parse_request(&request(version << 3 | 3));
            if (1..=4).contains(&version) {
                assert_eq!(parsed.map(|r| r.version), Ok(version));
            } else {
                assert_eq!(parsed, Err(SntpError::BadVersion(version)));
            }
        }
    }

    #[test]
    fn ignores_every_mode_but_client() {
        for mode in [0u8, 1, 2, 4, 5, 6, 7] {
            assert_eq!(
                parse_request(&request(4 << 3 | mode)),
                Err(SntpError::NotClientMode(mode))
            );
        }
    }

    #[test]
    fn ignores_short_datagrams_and_accepts_extensions() {
        assert_eq!(parse_request(&[]), Err(SntpError::TooShort(0)));
        assert_eq!(
            parse_request(&request(V4_CLIENT)[..47]),
            Err(SntpError::TooShort(47))
        );
        let mut long = request(V4_CLIENT).to_vec();
        long.extend_from_slice(&[0; 20]);
        assert!(parse_request(&long).is_ok());
    }

    #[test]
    fn writes_a_mode_4_reply_echoing_version_poll_and_origin() {
        let parsed = parse_request(&request(V3_CLIENT)).unwrap();
        let received = NtpTimestamp {
            seconds: 0xE000_0001,
            fraction: 0x8000_0000,
        };
        let transmitted = NtpTimestamp {
            seconds: 0xE000_0001,
            fraction: 0x8000_1000,
        };
        let mut out = [0xAA; PACKET_LEN];
        write_reply(
            &parsed,
            &ServerClock::default(),
            received,
            transmitted,
            &mut out,
        );
        assert_eq!(out[0], 3 << 3 | 4, "LI 0, version 3, mode 4");
        assert_eq!(out[1], 10, "stratum");
        assert_eq!(out[2], 6, "poll echoed");
        assert_eq!(out[3] as i8, -26, "precision");
        assert_eq!(&out[4..12], &[0; 8], "root delay and dispersion");
        assert_eq!(&out[12..16], &[127, 127, 1, 1], "reference id");
        assert_eq!(
            &out[16..24],
            &[0xE0, 0, 0, 1, 0x80, 0, 0, 0],
            "reference = receive"
        );
        assert_eq!(
            &out[24..32],
            &[1, 2, 3, 4, 5, 6, 7, 8],
            "origin = client's transmit"
        );
        assert_eq!(
            &out[32..40],
            &[0xE0, 0, 0, 1, 0x80, 0, 0, 1],
            "receive, its lowest bit set"
        );
        assert_eq!(&out[40..48], &[0xE0, 0, 0, 1, 0x80, 0, 0x10, 0], "transmit");
        assert!(parse_request(&out).is_err(), "a reply is never answered");
    }

    fn interleaved_request(origin: u64, receive: u64, transmit: u64) -> ClientRequest {
        let mut packet = request(V4_CLIENT);
        packet[24..32].copy_from_slice(&origin.to_be_bytes());
        packet[32..40].copy_from_slice(&receive.to_be_bytes());
        packet[40..48].copy_from_slice(&transmit.to_be_bytes());
        parse_request(&packet).unwrap()
    }

    #[test]
    fn an_interleaved_request_names_a_flagged_receive_timestamp() {
        assert_eq!(
            interleaved_request(0xE0_0001, 5, 6).interleaved_origin(),
            Some(0xE0_0001)
        );
        // chronyd in basic mode sends origin and receive zero; a basic
        // client echoing our transmit timestamp has the bit clear.
        assert_eq!(interleaved_request(0, 0, 6).interleaved_origin(), None);
        assert_eq!(
            interleaved_request(0xE0_0002, 5, 6).interleaved_origin(),
            None
        );
        assert_eq!(
            interleaved_request(0xE0_0001, 6, 6).interleaved_origin(),
            None,
            "receive equal to transmit: basic"
        );
        let mut v3 = request(3 << 3 | 3);
        v3[24..32].copy_from_slice(&0xE0_0001u64.to_be_bytes());
        v3[40] = 1;
        assert_eq!(parse_request(&v3).unwrap().interleaved_origin(), None);
    }

    #[test]
    fn an_interleaved_reply_carries_the_earlier_replys_transmit_time() {
        let request = interleaved_request(0xE000_0001_0000_0001, 0xABCD, 0x1234);
        let received = NtpTimestamp::from_u64(0xE000_0002_0000_0000);
        let mut out = [0; PACKET_LEN];
        write_interleaved_reply(
            &request,
            &ServerClock::default(),
            received,
            0xE000_0001_0000_7777,
            &mut out,
        );
        assert_eq!(out[0] & 0b111, 4);
        assert_eq!(
            &out[24..32],
            &0xABCDu64.to_be_bytes(),
            "origin = receive field"
        );
        assert_eq!(&out[32..40], &0xE000_0002_0000_0001u64.to_be_bytes());
        assert_eq!(
            &out[40..48],
            &0xE000_0001_0000_7776u64.to_be_bytes(),
            "the earlier transmit time, its lowest bit clear"
        );
    }

    #[test]
    fn configured_clock_fields_are_written() {
        let parsed = parse_request(&request(V4_CLIENT)).unwrap();
        let clock = ServerClock {
            leap_indicator: 3,
            stratum: 16,
            precision: -20,
            root_delay: Duration::from_millis(1500),
            root_dispersion: Duration::from_secs(70_000),
            reference_id: *b"LOCL",
        };
        let mut out = [0; PACKET_LEN];
        write_reply(
            &parsed,
            &clock,
            NtpTimestamp::default(),
            NtpTimestamp::default(),
            &mut out,
        );
        assert_eq!(out[0], 3 << 6 | 4 << 3 | 4);
        assert_eq!(out[1], 16);
        assert_eq!(out[3] as i8, -20);
        assert_eq!(&out[4..8], &0x0001_8000u32.to_be_bytes(), "1.5 s in 16.16");
        assert_eq!(&out[8..12], &u32::MAX.to_be_bytes(), "saturates");
        assert_eq!(&out[12..16], b"LOCL");
    }

    #[test]
    fn timestamps_count_from_1900_with_sub_microsecond_fractions() {
        let epoch = NtpTimestamp::from_unix(Duration::ZERO);
        assert_eq!(epoch.seconds, 2_208_988_800);
        assert_eq!(epoch.fraction, 0);
        let half = NtpTimestamp::from_unix(Duration::new(1, 500_000_000));
        assert_eq!(half.seconds, 2_208_988_801);
        assert_eq!(half.fraction, 0x8000_0000);
        let one_ns = NtpTimestamp::from_unix(Duration::new(0, 1));
        assert_eq!(one_ns.fraction, 4, "2^32 / 1e9 = 4.29 units per ns");
        // 2036-02-07 06:28:16 UTC starts NTP era 1: seconds wrap to 0.
        let era1 = NtpTimestamp::from_unix(Duration::from_secs((1u64 << 32) - NTP_UNIX_OFFSET));
        assert_eq!(era1.seconds, 0);
    }

    #[test]
    fn a_kiss_of_death_carries_its_code_and_no_time() {
        let parsed = parse_request(&request(V4_CLIENT)).unwrap();
        let mut out = [0xAA; PACKET_LEN];
        write_kiss_of_death(&parsed, KISS_RATE, &mut out);
        assert_eq!(out[0], 3 << 6 | 4 << 3 | 4, "LI 3, version 4, mode 4");
        assert_eq!(out[1], 0, "stratum 0: a kiss");
        assert_eq!(&out[12..16], b"RATE");
        assert_eq!(&out[24..32], &[1, 2, 3, 4, 5, 6, 7, 8], "origin");
        assert_eq!(&out[32..48], &[0; 16], "no receive or transmit time");
    }

    fn server_reply(
        request: &[u8; PACKET_LEN],
        clock: &ServerClock,
        t2: f64,
        t3: f64,
    ) -> [u8; PACKET_LEN] {
        let parsed = parse_request(request).unwrap();
        let stamp = |t: f64| NtpTimestamp::from_unix(Duration::from_secs_f64(t));
        let mut out = [0u8; PACKET_LEN];
        write_reply(&parsed, clock, stamp(t2), stamp(t3), &mut out);
        out
    }

    #[test]
    fn a_client_measures_offset_and_delay_as_rfc_5905_says() {
        // Sent at 1000.0 by our clock, received at 1000.0 + 0.1; the server,
        // 5 s ahead, took it at 1005.04 and answered at 1005.05.
        let t1 = NtpTimestamp::from_unix(Duration::from_secs(1_800_000_000));
        let base = 1_800_000_000.0;
        let request = client_request(t1);
        let reply = server_reply(&request, &ServerClock::default(), base + 5.04, base + 5.05);
        let sample = read_reply(&reply, t1, base + 0.1).unwrap();
        assert!((sample.offset - 4.995).abs() < 1e-6, "{}", sample.offset);
        assert!((sample.delay - 0.09).abs() < 1e-6, "{}", sample.delay);
        assert_eq!(sample.stratum, 10);
        assert_eq!(sample.leap, 0);
        assert_eq!(reference_id_text(sample.reference_id, 10), "127.127.1.1");
        assert!((sample.server_time - (base + 5.05)).abs() < 1e-6);
    }

    #[test]
    fn a_reply_that_gives_no_time_is_never_read_as_one() {
        let t1 = NtpTimestamp::from_unix(Duration::from_secs(1_800_000_000));
        let request = client_request(t1);
        let now = 1_800_000_000.0;
        let parsed = parse_request(&request).unwrap();
        let mut kiss = [0u8; PACKET_LEN];
        write_kiss_of_death(&parsed, KISS_RATE, &mut kiss);
        assert_eq!(
            read_reply(&kiss, t1, now),
            Err(ReplyError::KissOfDeath(*b"RATE"))
        );
        assert_eq!(
            ReplyError::KissOfDeath(*b"RATE").to_string(),
            "kiss-o'-death RATE"
        );
        let alarm = ServerClock {
            leap_indicator: 3,
            stratum: 0,
            reference_id: [0; 4],
            ..ServerClock::default()
        };
        let unsynchronized = server_reply(&request, &alarm, now, now);
        assert_eq!(
            read_reply(&unsynchronized, t1, now),
            Err(ReplyError::Unsynchronized),
            "what chronyd and horad send when unsynchronized"
        );
        let leap3 = server_reply(
            &request,
            &ServerClock {
                leap_indicator: 3,
                ..ServerClock::default()
            },
            now,
            now,
        );
        assert_eq!(read_reply(&leap3, t1, now), Err(ReplyError::Unsynchronized));
        let other = client_request(NtpTimestamp::from_unix(Duration::from_secs(5)));
        let stale = server_reply(&other, &ServerClock::default(), now, now);
        assert_eq!(read_reply(&stale, t1, now), Err(ReplyError::NotOurs));
        assert_eq!(read_reply(&request, t1, now), Err(ReplyError::NotAReply));
        assert_eq!(
            read_reply(&stale[..40], t1, now),
            Err(ReplyError::NotAReply)
        );
    }

    #[test]
    fn timestamps_are_read_in_the_era_nearest_our_clock() {
        // 2036-02-07 06:28:16 UTC, where NTP's seconds wrap to 0.
        let wrap = (1u64 << 32) - NTP_UNIX_OFFSET;
        let after = NtpTimestamp::from_unix(Duration::from_secs(wrap + 10));
        assert_eq!(after.seconds, 10);
        assert_eq!(after.to_unix_seconds(wrap as f64), (wrap + 10) as f64);
        let before = NtpTimestamp::from_unix(Duration::from_secs(wrap - 10));
        assert_eq!(before.to_unix_seconds(wrap as f64), (wrap - 10) as f64);
    }

    #[test]
    fn reads_reference_ids() {
        assert_eq!(parse_reference_id("127.127.1.1"), Some([127, 127, 1, 1]));
        assert_eq!(parse_reference_id("LOCL"), Some(*b"LOCL"));
        assert_eq!(parse_reference_id("GPS"), Some(*b"GPS\0"));
        assert_eq!(parse_reference_id(""), None);
        assert_eq!(parse_reference_id("TOOLONG"), None);
        assert_eq!(parse_reference_id("ñ"), None);
    }
}
