//! Kernel transmit timestamps: `SO_TIMESTAMPING` (software, taken as each
//! reply enters the network driver) on the SNTP socket, turned on only for
//! the batches that need them ([`set_transmit_timestamps`]) and read back
//! from the socket's error queue ([`read_transmit_timestamps`]).
//!
//! Each timestamp comes back with the frame it stamps, as chrony reads them
//! (no `SOF_TIMESTAMPING_OPT_TSONLY`), so it is matched to its reply by what
//! the reply says, not by a counter that a failed send could put out of
//! step: a plain SNTP reply is the frame's last 48 bytes, its receive
//! timestamp the key of interleaved mode's log. Frames of other lengths (NTS
//! replies) are skipped.
//!
//! The stamped replies go out on a send-only socket beside the serving one
//! ([`open_beside`]) where the kernel allows it: the serving socket is in
//! the runtime's epoll, so every stamp queued on it, and every reply's
//! freed buffer, woke epoll's callback between the reply's timestamp and
//! its delivery (measured: 5% of the serving thread's time with interleaved
//! clients, and their delay); the socket beside has no waiter to wake.

use std::io;
use std::os::fd::AsFd;
use std::time::SystemTime;

use hora_proto::sntp::PACKET_LEN;

/// A socket's wish for its replies' kernel transmit times
/// ([`crate::engine::Protocol::transmit_timestamps`]).
#[derive(Debug)]
pub struct TransmitTimestamps {
    /// The send-only socket beside the serving one ([`open_beside`]), if
    /// it could be opened.
    pub beside: Option<std::net::UdpSocket>,
}

/// One reply the kernel says it sent, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The SNTP reply as it left.
    pub reply: [u8; PACKET_LEN],
    /// When it entered the network driver, on the host's clock.
    pub at: SystemTime,
}

/// The most timestamps read in one call: the error queue is drained after
/// every batch that asked for them, so this is a few batches' worth.
#[cfg(target_os = "linux")]
const MOST_PER_READ: usize = 4 * super::batch::BATCH;

/// Room for one looped-back frame: an Ethernet, IPv6 and UDP header and an
/// SNTP reply fit; a longer frame (an NTS reply) is truncated and skipped.
#[cfg(target_os = "linux")]
const FRAME: usize = 256;

#[cfg(target_os = "linux")]
type Headers = nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>;

#[cfg(target_os = "linux")]
thread_local! {
    // As `batch`'s headers, and apart from them, one set per address
    // family: the kernel leaves each header's control length at what it
    // last wrote, and an IPv6 socket's error messages carry a longer one
    // (`IPV6_RECVERR`) than an IPv4 socket's; within a family they are all
    // alike, so their room stays enough.
    static HEADERS_V4: std::cell::RefCell<Option<Headers>> = const { std::cell::RefCell::new(None) };
    static HEADERS_V6: std::cell::RefCell<Option<Headers>> = const { std::cell::RefCell::new(None) };
}

/// Whether the kernel refused `SOF_TIMESTAMPING_OPT_RX_FILTER` (before Linux
/// 6.12): then received datagrams carry a second timestamp, which `batch`
/// has no room for and ignores.
#[cfg(target_os = "linux")]
static NO_RX_FILTER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opens the send-only socket beside `serving`, which was bound with
/// `SO_REUSEPORT` ([`crate::server`]): the same address and port (so
/// clients see their replies come from where they asked), its transmit
/// timestamps on, never read but for its error queue. It joins the group
/// after the serving sockets, so the group's program
/// ([`crate::sys::steer::attach`]) never steers a datagram to it; the
/// caller attaches one before it opens this.
pub fn open_beside(serving: &impl AsFd) -> io::Result<std::net::UdpSocket> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::setsockopt;
        use nix::sys::socket::sockopt::ReusePort;
        use socket2::{Domain, Protocol, SockRef, Socket, Type};

        let serving = SockRef::from(serving);
        let addr = serving
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(serving.only_v6()?)?;
        }
        // Tied to the serving socket's interface, if it is: else it would
        // form a group of its own, which the kernel may pick first for
        // every datagram, and they would never be read.
        if let Some(device) = serving.device()? {
            socket.bind_device(Some(&device))?;
        }
        setsockopt(&socket, ReusePort, &true).map_err(io::Error::from)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = std::net::UdpSocket::from(socket);
        set_transmit_timestamps(&socket, true)?;
        Ok(socket)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = serving;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Turns the kernel's software transmit timestamps on `socket` on or off.
pub fn set_transmit_timestamps(socket: &impl AsFd, on: bool) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::sync::atomic::Ordering;

        use nix::sys::socket::{setsockopt, sockopt::Timestamping, TimestampingFlag};

        if !on {
            return setsockopt(socket, Timestamping, &TimestampingFlag::empty())
                .map_err(io::Error::from);
        }
        let flags = TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE
            | TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE;
        if !NO_RX_FILTER.load(Ordering::Relaxed) {
            let filtered =
                flags | TimestampingFlag::from_bits_retain(libc::SOF_TIMESTAMPING_OPT_RX_FILTER);
            match setsockopt(socket, Timestamping, &filtered) {
                Err(nix::errno::Errno::EINVAL) => NO_RX_FILTER.store(true, Ordering::Relaxed),
                result => return result.map_err(io::Error::from),
            }
        }
        setsockopt(socket, Timestamping, &flags).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, on);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Reads the transmit timestamps waiting in `socket`'s error queue (never
/// waits) into `out`; how many messages it took off the queue, stamps of
/// plain SNTP replies or not. `ipv6`: the socket's family.
pub fn read_transmit_timestamps(
    socket: &impl AsFd,
    ipv6: bool,
    out: &mut Vec<Sent>,
) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let mut taken = 0;
        while taken < MOST_PER_READ {
            let read = read_some(socket, ipv6, out)?;
            taken += read;
            if read < super::batch::BATCH {
                break;
            }
        }
        Ok(taken)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, ipv6, out);
        Ok(0)
    }
}

/// One `recvmmsg` on the error queue; an empty queue reads as 0.
#[cfg(target_os = "linux")]
fn read_some(socket: &impl AsFd, ipv6: bool, out: &mut Vec<Sent>) -> io::Result<usize> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use nix::sys::socket::{recvmmsg, ControlMessageOwned, MsgFlags};

    const BATCH: usize = super::batch::BATCH;
    let mut frames = [[0u8; FRAME]; BATCH];
    // What each message read was: its length and timestamp, if whole.
    let mut stamped: [Option<(usize, SystemTime)>; BATCH] = [None; BATCH];
    let headers = if ipv6 { &HEADERS_V6 } else { &HEADERS_V4 };
    let taken = headers.with(|cell| {
        let mut frames = frames.iter_mut();
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSliceMut::new(
                frames.next().map_or(&mut [][..], |f| &mut f[..]),
            )]
        });
        let mut cell = cell.borrow_mut();
        let headers = cell.get_or_insert_with(|| {
            Headers::preallocate(
                BATCH,
                Some(nix::cmsg_space!(
                    [nix::sys::time::TimeSpec; 3],
                    libc::sock_extended_err,
                    libc::sockaddr_in6
                )),
            )
        });
        let results = match recvmmsg(
            socket.as_fd().as_raw_fd(),
            headers,
            slices.iter_mut(),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(results) => results,
            Err(nix::errno::Errno::EAGAIN) => return Ok(0),
            Err(error) => return Err(io::Error::from(error)),
        };
        let mut taken = 0;
        for (message, slot) in results.zip(stamped.iter_mut()) {
            taken += 1;
            let at = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampsns(stamps) => {
                        Some(SystemTime::UNIX_EPOCH + Duration::from(stamps.system))
                    }
                    _ => None,
                })
            });
            let whole = !message.flags.contains(MsgFlags::MSG_TRUNC);
            *slot = at.filter(|_| whole).map(|at| (message.bytes, at));
        }
        Ok(taken)
    })?;
    for (frame, stamp) in frames.iter().zip(stamped) {
        let Some((len, at)) = stamp else { continue };
        if let Some(reply) = sntp_reply(&frame[..len.min(FRAME)]) {
            out.push(Sent { reply, at });
        }
    }
    Ok(taken)
}

/// The plain SNTP reply a looped-back frame ends with: its last 48 bytes,
/// when the UDP header before them gives a length of 8 + 48.
fn sntp_reply(frame: &[u8]) -> Option<[u8; PACKET_LEN]> {
    let udp = frame.len().checked_sub(8 + PACKET_LEN)?;
    let length = u16::from_be_bytes([frame[udp + 4], frame[udp + 5]]);
    if usize::from(length) != 8 + PACKET_LEN {
        return None;
    }
    let mut reply = [0u8; PACKET_LEN];
    reply.copy_from_slice(&frame[udp + 8..]);
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UdpSocket;

    #[test]
    fn the_reply_is_the_tail_of_a_frame_whose_udp_length_says_so() {
        let mut frame = vec![0u8; 14 + 20];
        frame.extend_from_slice(&[0x00, 0x7B, 0xC0, 0x00, 0x00, 56, 0, 0]);
        frame.extend_from_slice(&[0x24; PACKET_LEN]);
        assert_eq!(sntp_reply(&frame), Some([0x24; PACKET_LEN]));
        frame[14 + 20 + 5] = 57;
        assert_eq!(sntp_reply(&frame), None, "not a 48-byte payload");
        assert_eq!(sntp_reply(&frame[..40]), None, "too short");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_socket_beside_receives_nothing_and_its_replies_come_from_the_serving_address() {
        for loopback in ["127.0.0.1", "[::1]"] {
            beside_on(loopback).await;
        }
    }

    #[cfg(target_os = "linux")]
    async fn beside_on(loopback: &str) {
        use nix::sys::socket::{setsockopt, sockopt::ReusePort};
        let addr: std::net::SocketAddr = format!("{loopback}:0").parse().unwrap();
        let shared = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            None,
        )
        .unwrap();
        setsockopt(&shared, ReusePort, &true).unwrap();
        shared.set_nonblocking(true).unwrap();
        shared.bind(&addr.into()).unwrap();
        let serving = UdpSocket::from_std(shared.into()).unwrap();
        crate::sys::steer::attach(&serving, 1).unwrap();
        let beside = open_beside(&serving).unwrap();
        let client = UdpSocket::bind(addr).await.unwrap();
        // From many source ports: a 4-tuple hash would spread them.
        let mut senders = Vec::new();
        for n in 0..64u8 {
            let sender = std::net::UdpSocket::bind(addr).unwrap();
            sender.send_to(&[n], serving.local_addr().unwrap()).unwrap();
            senders.push(sender);
        }
        let mut buffer = [0u8; 8];
        for _ in 0..64 {
            serving.recv_from(&mut buffer).await.unwrap();
        }
        assert_eq!(
            beside.recv_from(&mut buffer).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "{loopback}: every datagram went to the serving socket"
        );
        beside
            .send_to(&[5; PACKET_LEN], client.local_addr().unwrap())
            .unwrap();
        let (_, from) = client.recv_from(&mut buffer).await.unwrap();
        assert_eq!(from, serving.local_addr().unwrap());
        let mut sent = Vec::new();
        let taken = read_transmit_timestamps(&beside, addr.is_ipv6(), &mut sent).unwrap();
        assert_eq!((taken, sent.len()), (1, 1), "{loopback}: stamped");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_reply_sent_with_timestamps_on_comes_back_stamped_and_off_does_not() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = client.local_addr().unwrap();
        set_transmit_timestamps(&server, true).unwrap();
        let before = SystemTime::now();
        server.send_to(&[7; PACKET_LEN], to).await.unwrap();
        server.send_to(&[8; 40], to).await.unwrap();
        let after = SystemTime::now();
        let mut sent = Vec::new();
        assert_eq!(
            read_transmit_timestamps(&server, false, &mut sent).unwrap(),
            2
        );
        assert_eq!(sent.len(), 1, "the 40-byte datagram is no SNTP reply");
        assert_eq!(sent[0].reply, [7; PACKET_LEN]);
        assert!(before <= sent[0].at && sent[0].at <= after);
        set_transmit_timestamps(&server, false).unwrap();
        server.send_to(&[9; PACKET_LEN], to).await.unwrap();
        sent.clear();
        assert_eq!(
            read_transmit_timestamps(&server, false, &mut sent).unwrap(),
            0
        );
        assert!(sent.is_empty());
    }
}
