//! Batched datagram I/O for every UDP socket of the daemon: every datagram
//! queued is read with one `recvmmsg` (kernel receive timestamps included,
//! [`Inbox`]), and replies go out with one `sendmmsg` ([`send`]), so a busy
//! socket costs two kernel crossings per batch instead of two per datagram.
//! Nothing waits for a batch to fill: a batch is whatever is queued when the
//! socket is readable, one datagram or [`BATCH`]. Bytes in, bytes out: what
//! the replies say, and when they are stamped, is `crate::outbox`'s.
//!
//! Elsewhere than Linux a batch is one datagram (`recv_from`/`send_to`).

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use std::os::fd::AsFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::destination::{self, Local};
use super::timestamps::Received;

/// The most datagrams read, and replies sent, in one kernel crossing.
pub const BATCH: usize = 32;

/// Room for one datagram: big enough to tell a too-long datagram from a
/// full one (the standard protocols' requests are short).
const DATAGRAM: usize = 1500;

/// The most bytes of one reply: the seed's time reply is 147 (148 past the
/// year 9999), an SNTP reply 48, a daytime line 33, an NTS reply up to its
/// request's length (at most a datagram).
pub const REPLY: usize = DATAGRAM;

// nix's message headers hold raw pointers, so they can't live in a task's
// state (which must be Send); each thread keeps its sets, used only inside
// a synchronous call, allocated once. The kernel leaves each header's name
// and control lengths at what it last wrote, and nix does not restore
// them: a set is shared only by sockets whose datagrams carry the same
// address family and control messages ([`Shape`]; every socket has receive
// timestamps on, `sockets::bind_udp`), or one datagram would leave its
// header too short for the next one's (an IPv6 source after an IPv4 one
// was cut, and the datagram dropped).
#[cfg(target_os = "linux")]
type Headers = nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>;

#[cfg(target_os = "linux")]
type SendHeaders = (Headers, Vec<Option<nix::sys::socket::SockaddrStorage>>);

#[cfg(target_os = "linux")]
thread_local! {
    static RECEIVE_HEADERS: [std::cell::RefCell<Option<Headers>>; 4] =
        const { [const { std::cell::RefCell::new(None) }; 4] };
    /// Replies without a source (none), from an IPv4 source, an IPv6 one.
    static SEND_HEADERS: [std::cell::RefCell<Option<SendHeaders>>; 3] =
        const { [const { std::cell::RefCell::new(None) }; 3] };
}

/// What a socket's datagrams carry besides their bytes: an IPv4 or IPv6
/// source, and their destination or not ([`super::destination`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    ipv6: bool,
    destination: bool,
}

impl Shape {
    /// The shape of `socket`'s datagrams, from the address it is bound to.
    fn of(socket: &UdpSocket) -> Shape {
        socket.local_addr().map_or(
            Shape {
                ipv6: false,
                destination: false,
            },
            |bound| Shape {
                ipv6: bound.is_ipv6(),
                destination: super::destination::wanted(bound),
            },
        )
    }

    /// Its set of headers among a thread's.
    fn index(self) -> usize {
        usize::from(self.ipv6) * 2 + usize::from(self.destination)
    }

    /// Room for its control messages.
    #[cfg(target_os = "linux")]
    fn control_space(self) -> Vec<u8> {
        use nix::sys::time::TimeSpec;
        match (self.destination, self.ipv6) {
            (false, _) => nix::cmsg_space!(TimeSpec),
            (true, false) => nix::cmsg_space!(TimeSpec, libc::in_pktinfo),
            (true, true) => nix::cmsg_space!(TimeSpec, libc::in6_pktinfo),
        }
    }
}

/// Buffers for one batch of received datagrams, allocated once per socket.
pub struct Inbox {
    buffers: Vec<[u8; DATAGRAM]>,
    received: Vec<Received>,
    /// What its socket's datagrams carry, once read.
    shape: Option<Shape>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("received", &self.received.len())
            .finish()
    }
}

impl Default for Inbox {
    fn default() -> Self {
        Inbox {
            buffers: vec![[0; DATAGRAM]; BATCH],
            received: Vec::with_capacity(BATCH),
            shape: None,
        }
    }
}

impl Inbox {
    /// Waits until `socket` is readable, then reads every datagram queued
    /// (up to [`BATCH`]); how many.
    pub async fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        loop {
            socket.readable().await?;
            match socket.try_io(Interest::READABLE, || self.receive_now(socket)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    /// Reads every datagram queued now (up to [`BATCH`]), without waiting:
    /// `WouldBlock` when none is (or the runtime has not seen the socket
    /// readable since it last was empty).
    pub fn try_receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        socket.try_io(Interest::READABLE, || self.receive_now(socket))
    }

    /// Datagram `index` of the last batch, with where and when it came.
    pub fn get(&self, index: usize) -> Option<(&[u8], Received)> {
        let received = *self.received.get(index)?;
        let buffer = self.buffers.get(index)?;
        Some((&buffer[..received.len.min(DATAGRAM)], received))
    }

    #[cfg(target_os = "linux")]
    fn receive_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{recvmmsg, MsgFlags, SockaddrStorage};

        let shape = *self.shape.get_or_insert_with(|| Shape::of(socket));
        let Inbox {
            buffers, received, ..
        } = self;
        received.clear();
        RECEIVE_HEADERS.with(|sets| {
            // On the stack: no allocation per batch.
            let mut buffers = buffers.iter_mut();
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    buffers.next().map_or(&mut [][..], |b| &mut b[..]),
                )]
            });
            let mut cell = sets[shape.index()].borrow_mut();
            let headers = cell
                .get_or_insert_with(|| Headers::preallocate(BATCH, Some(shape.control_space())));
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            for message in results {
                let peer = message.address.and_then(|address: SockaddrStorage| {
                    address
                        .as_sockaddr_in()
                        .map(|v4| SocketAddr::V4((*v4).into()))
                        .or_else(|| {
                            address
                                .as_sockaddr_in6()
                                .map(|v6| SocketAddr::V6((*v6).into()))
                        })
                });
                let (kernel_time, local) = control(message.cmsgs().into_iter().flatten());
                // A datagram without an IP source can't be answered: skip it.
                received.push(match peer {
                    Some(peer) => Received {
                        len: message.bytes,
                        peer,
                        kernel_time,
                        local,
                    },
                    None => Received {
                        len: 0,
                        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                        kernel_time: None,
                        local: None,
                    },
                });
            }
            Ok(received.len())
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn receive_now(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received.clear();
        let (len, peer) = socket.try_recv_from(&mut self.buffers[0])?;
        self.received.push(Received {
            len,
            peer,
            kernel_time: None,
            local: None,
        });
        Ok(1)
    }
}

/// What a datagram's control messages say: when the kernel received it,
/// and the address it was sent to (on a wildcard socket).
#[cfg(target_os = "linux")]
fn control(
    cmsgs: impl Iterator<Item = nix::sys::socket::ControlMessageOwned>,
) -> (Option<SystemTime>, Option<Local>) {
    use nix::sys::socket::ControlMessageOwned;
    let (mut kernel_time, mut local) = (None, None);
    for cmsg in cmsgs {
        match cmsg {
            ControlMessageOwned::ScmTimestampns(spec) => {
                let since = std::time::Duration::from(spec);
                kernel_time = Some(SystemTime::UNIX_EPOCH + since);
            }
            ControlMessageOwned::Ipv4PacketInfo(info) => {
                local = Some(destination::from_v4(&info));
            }
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                local = Some(destination::from_v6(&info));
            }
            _ => {}
        }
    }
    (kernel_time, local)
}

/// Sends `replies` (each its bytes and where to; at most [`BATCH`]) on
/// `socket` in one call, never waiting, each from `from` where given (a
/// wildcard socket's answer from the address it was asked on,
/// [`destination`]): `sendto`/`sendmsg` for one (the kernel's shortest
/// path for it), `sendmmsg` for more. How many the kernel took;
/// `WouldBlock` when its buffer is full.
pub fn send(
    socket: &impl AsFd,
    replies: &[(&[u8], SocketAddr)],
    from: Option<Local>,
) -> io::Result<usize> {
    match (replies, from) {
        ([], _) => Ok(0),
        ([(bytes, peer)], None) => {
            socket2::SockRef::from(socket).send_to(bytes, &(*peer).into())?;
            Ok(1)
        }
        (more, from) => send_many(socket, more, from),
    }
}

#[cfg(target_os = "linux")]
fn send_many(
    socket: &impl AsFd,
    replies: &[(&[u8], SocketAddr)],
    from: Option<Local>,
) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};

    let pending = &replies[..replies.len().min(BATCH)];
    // On the stack: no allocation per batch.
    let mut each = pending.iter();
    let slices: [[IoSlice<'_>; 1]; BATCH] =
        std::array::from_fn(|_| [IoSlice::new(each.next().map_or(&[][..], |r| r.0))]);
    let ipv6 = pending.first().is_some_and(|r| r.1.is_ipv6());
    let v4 = from.and_then(destination::to_v4);
    let v6 = from.map(destination::to_v6);
    let (set, cmsg) = match (from, ipv6) {
        (None, _) => (0, None),
        (Some(_), false) => match &v4 {
            Some(info) => (1, Some(ControlMessage::Ipv4PacketInfo(info))),
            None => (0, None),
        },
        (Some(_), true) => (2, v6.as_ref().map(ControlMessage::Ipv6PacketInfo)),
    };
    let cmsgs = cmsg.as_slice();
    SEND_HEADERS.with(|sets| {
        let mut cell = sets[set].borrow_mut();
        let (headers, addresses) = cell.get_or_insert_with(|| {
            let space = match set {
                1 => Some(nix::cmsg_space!(libc::in_pktinfo)),
                2 => Some(nix::cmsg_space!(libc::in6_pktinfo)),
                _ => None,
            };
            (
                Headers::preallocate(BATCH, space),
                Vec::with_capacity(BATCH),
            )
        });
        // Only the replies sent: an address is 128 bytes, a full batch's
        // written each call cost the seed's replies 16% more CPU.
        addresses.clear();
        addresses.extend(pending.iter().map(|r| Some(SockaddrStorage::from(r.1))));
        let sent = sendmmsg(
            socket.as_fd().as_raw_fd(),
            headers,
            slices[..pending.len()].iter(),
            &addresses[..],
            cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?
        .count();
        Ok(sent)
    })
}

#[cfg(not(target_os = "linux"))]
fn send_many(
    socket: &impl AsFd,
    replies: &[(&[u8], SocketAddr)],
    _from: Option<Local>,
) -> io::Result<usize> {
    send(socket, &replies[..1], None)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::sys::enable_receive_timestamps;

    #[tokio::test]
    async fn a_batch_reads_every_queued_datagram_and_answers_each_in_order() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable_receive_timestamps(&server).unwrap();
        let addr = server.local_addr().unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for n in 0..5u8 {
            client.send_to(&[n; 3], addr).await.unwrap();
        }
        let mut inbox = Inbox::default();
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let count = inbox.receive(&server).await.unwrap();
            let mut replies = Vec::new();
            for index in 0..count {
                let (datagram, received) = inbox.get(index).unwrap();
                assert_eq!(received.peer, client.local_addr().unwrap());
                assert!(received.kernel_time.is_some());
                seen.push(datagram.to_vec());
                replies.push((datagram, received.peer));
            }
            assert_eq!(send(&server, &replies, None).unwrap(), count);
        }
        assert_eq!(seen, (0..5u8).map(|n| vec![n; 3]).collect::<Vec<_>>());
        for n in 0..5u8 {
            let mut buffer = [0u8; 16];
            let (len, _) = client.recv_from(&mut buffer).await.unwrap();
            assert_eq!(&buffer[..len], &[n; 3], "replies in order");
        }
    }
}
