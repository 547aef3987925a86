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
// state (which must be Send); each thread keeps one set, used only inside a
// synchronous call, allocated once. The kernel leaves each header's control
// length at what it wrote, and nix does not restore it: every socket read
// through them must carry the same control message (each has receive
// timestamps on, `server::bind`), or one datagram without it would leave
// its header no room for the next socket's timestamp.
#[cfg(target_os = "linux")]
type Headers = nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>;

#[cfg(target_os = "linux")]
thread_local! {
    static RECEIVE_HEADERS: std::cell::RefCell<Option<Headers>> = const { std::cell::RefCell::new(None) };
    static SEND_HEADERS: std::cell::RefCell<Option<(Headers, Vec<Option<nix::sys::socket::SockaddrStorage>>)>> = const { std::cell::RefCell::new(None) };
}

/// Buffers for one batch of received datagrams, allocated once per socket.
pub struct Inbox {
    buffers: Vec<[u8; DATAGRAM]>,
    received: Vec<Received>,
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
        use std::time::Duration;

        use nix::sys::socket::{recvmmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};

        let Inbox { buffers, received } = self;
        received.clear();
        RECEIVE_HEADERS.with(|cell| {
            // On the stack: no allocation per batch.
            let mut buffers = buffers.iter_mut();
            let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    buffers.next().map_or(&mut [][..], |b| &mut b[..]),
                )]
            });
            let mut cell = cell.borrow_mut();
            let headers = cell.get_or_insert_with(|| {
                Headers::preallocate(BATCH, Some(nix::cmsg_space!(nix::sys::time::TimeSpec)))
            });
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
                let kernel_time = message.cmsgs().ok().and_then(|mut cmsgs| {
                    cmsgs.find_map(|cmsg| match cmsg {
                        ControlMessageOwned::ScmTimestampns(spec) => {
                            Some(SystemTime::UNIX_EPOCH + Duration::from(spec))
                        }
                        _ => None,
                    })
                });
                // A datagram without an IP source can't be answered: skip it.
                if let Some(peer) = peer {
                    received.push(Received {
                        len: message.bytes,
                        peer,
                        kernel_time,
                    });
                } else {
                    received.push(Received {
                        len: 0,
                        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                        kernel_time: None,
                    });
                }
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
        });
        Ok(1)
    }
}

/// Sends `replies` (each its bytes and where to; at most [`BATCH`]) on
/// `socket` in one call, never waiting: `sendto` for one (the kernel's
/// shortest path for it), `sendmmsg` for more. How many the kernel took;
/// `WouldBlock` when its buffer is full.
pub fn send(socket: &impl AsFd, replies: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
    match replies {
        [] => Ok(0),
        [(bytes, peer)] => {
            socket2::SockRef::from(socket).send_to(bytes, &(*peer).into())?;
            Ok(1)
        }
        more => send_many(socket, more),
    }
}

#[cfg(target_os = "linux")]
fn send_many(socket: &impl AsFd, replies: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};

    let pending = &replies[..replies.len().min(BATCH)];
    // On the stack: no allocation per batch.
    let mut each = pending.iter();
    let slices: [[IoSlice<'_>; 1]; BATCH] =
        std::array::from_fn(|_| [IoSlice::new(each.next().map_or(&[][..], |r| r.0))]);
    let none: [ControlMessage<'_>; 0] = [];
    SEND_HEADERS.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (headers, addresses) = cell
            .get_or_insert_with(|| (Headers::preallocate(BATCH, None), Vec::with_capacity(BATCH)));
        // Only the replies sent: an address is 128 bytes, a full batch's
        // written each call cost the seed's replies 16% more CPU.
        addresses.clear();
        addresses.extend(pending.iter().map(|r| Some(SockaddrStorage::from(r.1))));
        let sent = sendmmsg(
            socket.as_fd().as_raw_fd(),
            headers,
            slices[..pending.len()].iter(),
            &addresses[..],
            none,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?
        .count();
        Ok(sent)
    })
}

#[cfg(not(target_os = "linux"))]
fn send_many(socket: &impl AsFd, replies: &[(&[u8], SocketAddr)]) -> io::Result<usize> {
    send(socket, &replies[..1])
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
            assert_eq!(send(&server, &replies).unwrap(), count);
        }
        assert_eq!(seen, (0..5u8).map(|n| vec![n; 3]).collect::<Vec<_>>());
        for n in 0..5u8 {
            let mut buffer = [0u8; 16];
            let (len, _) = client.recv_from(&mut buffer).await.unwrap();
            assert_eq!(&buffer[..len], &[n; 3], "replies in order");
        }
    }
}
