//! Batched datagram I/O for every UDP socket of the daemon: every datagram
//! queued is read with one `recvmmsg` (kernel receive timestamps included),
//! and every reply to them goes out with one `sendmmsg`, so a busy socket
//! costs two kernel crossings per batch instead of two per datagram.
//! Nothing waits for a batch to fill: a batch is whatever is queued when the
//! socket is readable, one datagram or [`BATCH`]. Replies keep their order.
//!
//! Elsewhere than Linux a batch is one datagram (`recv_from`/`send_to`).

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use hora_proto::nts::packet::{self, Unsealed};
use hora_proto::nts::Keys;
use hora_proto::sntp::{self, NtpTimestamp, PACKET_LEN};
use hora_proto::transmit::{TransmitPace, MOST_PER_BATCH};

use tokio::io::Interest;
use tokio::net::UdpSocket;

use super::timestamps::Received;
use super::transmit_stamps::{self, Sent};

/// How often the kernel's transmit timestamps are asked for when no reply
/// needs them: one flush of two or more predicted replies in this many, so
/// the pace is checked against the kernel's times at a cost basic clients
/// don't notice.
pub const SAMPLE_EVERY: u32 = 1024;

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
    static SEND_HEADERS: std::cell::RefCell<Option<Headers>> = const { std::cell::RefCell::new(None) };
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

/// One reply waiting in the [`Outbox`].
#[derive(Debug, Clone)]
struct Reply {
    /// Where its bytes start in the outbox's `bytes`.
    start: usize,
    len: usize,
    peer: SocketAddr,
    /// An SNTP reply whose transmit timestamp (bytes 40..48) is written at
    /// the last moment, just before the batch goes out.
    stamp_transmit: bool,
    /// An NTS reply, sealed with the client's keys once stamped (boxed:
    /// every other reply stays small).
    seal: Option<Box<(Keys, Unsealed)>>,
    /// The kernel's time for it is wanted (interleaved mode's log).
    kernel_stamp: bool,
    /// Its transmit timestamp's prediction: the clock reading of its batch,
    /// its place in it and the time predicted, to check against the
    /// kernel's time.
    predicted: Option<(SystemTime, usize, SystemTime)>,
}

/// The kernel's transmit timestamps, on a socket that takes them (SNTP's).
#[derive(Debug, Default)]
struct Stamps {
    /// The send-only socket beside the serving one that the stamped
    /// flushes go out on, its timestamps always on
    /// ([`transmit_stamps::open_beside`]); without one, the serving
    /// socket's are turned on and off.
    beside: Option<std::net::UdpSocket>,
    /// Whether this flush goes out stamped: on the socket beside, or with
    /// the serving socket's timestamps on.
    on: bool,
    /// Flushes that could have taught the pace since one did.
    since_sample: u32,
    /// The replies the kernel said it sent, read after the last flush.
    sent: Vec<Sent>,
    /// The last flush read back fewer than it sent: read again at the next.
    behind: bool,
    /// Whether the socket is IPv6, once known (its error messages' shape).
    ipv6: Option<bool>,
}

/// The replies to one batch, sent together by [`Outbox::flush`].
pub struct Outbox {
    replies: Vec<Reply>,
    /// Every queued reply's bytes, one after another: a reply costs its
    /// own length, not the longest one's.
    bytes: Vec<u8>,
    /// The kernel's time per SNTP reply, for their transmit timestamps.
    pace: TransmitPace,
    /// Kernel transmit timestamps, where asked for
    /// ([`Outbox::with_transmit_timestamps`]).
    stamps: Option<Stamps>,
    /// The replies' addresses as the kernel takes them, reused.
    #[cfg(target_os = "linux")]
    addresses: Vec<Option<nix::sys::socket::SockaddrStorage>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("replies", &self.replies.len())
            .finish()
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            replies: Vec::with_capacity(BATCH),
            bytes: Vec::with_capacity(BATCH * 256),
            pace: TransmitPace::default(),
            stamps: None,
            #[cfg(target_os = "linux")]
            addresses: Vec::with_capacity(BATCH),
        }
    }
}

/// What a flush did, for the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Replies the kernel took.
    pub sent: u64,
    /// Replies it refused.
    pub failed: u64,
    /// Predicted transmit timestamps the kernel showed were later than
    /// the reply left, and batches whose last stamp was later than the
    /// kernel's return from sending them.
    pub late: u64,
    /// The socket refused transmit timestamps: they are off from now on.
    pub stamps_refused: Option<io::ErrorKind>,
}

impl Outbox {
    /// An outbox for a socket whose replies' kernel transmit times are
    /// wanted: asked for ([`transmit_stamps`]) in the flushes with a reply
    /// queued by [`Outbox::push_kernel_stamped`], and in one flush of
    /// [`SAMPLE_EVERY`] to check the pace's predictions. Those flushes go
    /// out on `beside`, when there is one.
    pub fn with_transmit_timestamps(beside: Option<std::net::UdpSocket>) -> Outbox {
        Outbox {
            stamps: Some(Stamps {
                beside,
                ..Stamps::default()
            }),
            ..Outbox::default()
        }
    }

    /// Queues `bytes` (at most [`REPLY`]) for `peer`. With `stamp_transmit`,
    /// bytes 40..48 are overwritten with the NTP time just before sending.
    pub fn push(&mut self, bytes: &[u8], peer: SocketAddr, stamp_transmit: bool) {
        self.queue(bytes, peer, stamp_transmit, None, false);
    }

    /// Queues an SNTP reply as [`Outbox::push`] does, whose kernel transmit
    /// time is then read back ([`Outbox::sent_stamps`]).
    pub fn push_kernel_stamped(&mut self, bytes: &[u8], peer: SocketAddr, stamp_transmit: bool) {
        self.queue(bytes, peer, stamp_transmit, None, true);
    }

    /// Queues an NTS reply written by `prepare_reply`: stamped just before
    /// the batch goes out as an SNTP reply is, then sealed with `keys`.
    pub fn push_nts(&mut self, bytes: &[u8], peer: SocketAddr, keys: Keys, unsealed: Unsealed) {
        self.queue(bytes, peer, true, Some(Box::new((keys, unsealed))), false);
    }

    /// The replies queued, in order, with their peers (tests).
    #[cfg(test)]
    pub fn queued(&self) -> Vec<(&[u8], SocketAddr)> {
        self.replies
            .iter()
            .map(|r| (&self.bytes[r.start..r.start + r.len], r.peer))
            .collect()
    }

    /// The plain SNTP replies the kernel said it sent, read after the last
    /// flush (with its transmit timestamps on).
    pub fn sent_stamps(&self) -> &[Sent] {
        self.stamps.as_ref().map_or(&[], |stamps| &stamps.sent)
    }

    fn queue(
        &mut self,
        bytes: &[u8],
        peer: SocketAddr,
        stamp_transmit: bool,
        seal: Option<Box<(Keys, Unsealed)>>,
        kernel_stamp: bool,
    ) {
        let len = bytes.len().min(REPLY);
        self.replies.push(Reply {
            start: self.bytes.len(),
            len,
            peer,
            stamp_transmit,
            seal,
            kernel_stamp,
            predicted: None,
        });
        self.bytes.extend_from_slice(&bytes[..len]);
    }

    /// Turns the socket's transmit timestamps on for a flush that wants
    /// them, off for one that does not.
    fn prepare_stamps(&mut self, socket: &UdpSocket, flushed: &mut Flushed) {
        let Some(stamps) = &mut self.stamps else {
            return;
        };
        stamps.sent.clear();
        let predicted = self.replies.iter().filter(|r| r.stamp_transmit).count();
        let sample = predicted >= 2 && stamps.since_sample >= SAMPLE_EVERY;
        if predicted >= 2 {
            stamps.since_sample = if sample { 0 } else { stamps.since_sample + 1 };
        }
        let want = sample || self.replies.iter().any(|r| r.kernel_stamp);
        if stamps.beside.is_some() {
            stamps.on = want;
            return;
        }
        if want != stamps.on {
            match transmit_stamps::set_transmit_timestamps(socket, want) {
                Ok(()) => stamps.on = want,
                Err(error) => {
                    flushed.stamps_refused = Some(error.kind());
                    self.stamps = None;
                }
            }
        }
    }

    /// Reads back the kernel's transmit times of the flush just sent, and
    /// checks the pace's predictions against them.
    fn read_stamps(&mut self, socket: &UdpSocket, flushed: &mut Flushed) {
        let Some(stamps) = &mut self.stamps else {
            return;
        };
        if !stamps.on && !stamps.behind {
            return;
        }
        let ipv6 = *stamps
            .ipv6
            .get_or_insert_with(|| socket.local_addr().is_ok_and(|addr| addr.is_ipv6()));
        let read = match &stamps.beside {
            Some(beside) => {
                transmit_stamps::read_transmit_timestamps(beside, ipv6, &mut stamps.sent)
            }
            None => transmit_stamps::read_transmit_timestamps(socket, ipv6, &mut stamps.sent),
        }
        .unwrap_or(0);
        stamps.behind = stamps.on && (read as u64) < flushed.sent;
        if !self.replies.iter().any(|reply| reply.predicted.is_some()) {
            return;
        }
        // In the order they were sent: each is looked for after the last.
        let mut from = 0;
        for sent in &stamps.sent {
            let found = self.replies[from..].iter().position(|reply| {
                reply.predicted.is_some()
                    && self.bytes.get(reply.start + 32..reply.start + 48)
                        == Some(&sent.reply[32..48])
            });
            let Some(at) = found else { continue };
            from += at + 1;
            if let Some((first, position, predicted)) = self.replies[from - 1].predicted {
                if self.pace.observe_sent(first, position, predicted, sent.at) {
                    flushed.late += 1;
                }
            }
        }
    }

    /// Sends every queued reply, in order, as few kernel crossings as it
    /// takes. SNTP replies go out at most
    /// [`MOST_PER_BATCH`](hora_proto::transmit::MOST_PER_BATCH) at a time,
    /// their transmit timestamps written just before the send, each later
    /// than the batch's clock reading by the kernel's work on the replies
    /// before it ([`hora_proto::transmit`]).
    pub async fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut flushed = Flushed::default();
        if self.replies.is_empty() && !self.stamps.as_ref().is_some_and(|s| s.behind) {
            return flushed;
        }
        self.prepare_stamps(socket, &mut flushed);
        let mut next = 0;
        while next < self.replies.len() {
            let stamped = self.replies[next].stamp_transmit;
            let run = self.replies[next..]
                .iter()
                .position(|r| r.stamp_transmit != stamped)
                .map_or(self.replies.len(), |at| next + at);
            let (upto, first) = if stamped {
                let upto = run.min(next + MOST_PER_BATCH);
                let first = self.pace.batch_start(SystemTime::now());
                for (position, reply) in self.replies[next..upto].iter_mut().enumerate() {
                    let predicted = self.pace.transmit_time(first, position);
                    reply.predicted = Some((first, position, predicted));
                    let transmit =
                        sntp::transmit_flagged(NtpTimestamp::from_system_time(predicted));
                    let bytes = &mut self.bytes[reply.start..reply.start + reply.len];
                    if let Some(field) = bytes.get_mut(40..48) {
                        field[..4].copy_from_slice(&transmit.seconds.to_be_bytes());
                        field[4..].copy_from_slice(&transmit.fraction.to_be_bytes());
                    }
                    if let Some((keys, unsealed)) = reply.seal.as_deref() {
                        if packet::seal_reply(keys, unsealed, bytes).is_none() {
                            // Never sent unsealed: its authenticator zeroed
                            // fails every client's check (it can't happen:
                            // `prepare_reply` sized it).
                            bytes[PACKET_LEN..].fill(0);
                        }
                    }
                }
                (upto, Some(first))
            } else {
                (run, None)
            };
            let sent = match self.send_stamped_beside(next, upto) {
                Some(sent) => Ok(sent),
                None => self.send_range(socket, next, upto).await,
            };
            match sent {
                Ok(0) | Err(_) => {
                    // This reply is refused (an unreachable peer, say):
                    // count it and go on with the next.
                    flushed.failed += 1;
                    next += 1;
                }
                Ok(sent) => {
                    // Only a batch of two or more tells the pace.
                    if let (Some(first), true) = (first, sent > 1) {
                        let elapsed = SystemTime::now().duration_since(first).unwrap_or_default();
                        if self.pace.observe(elapsed, sent) {
                            flushed.late += 1;
                        }
                    }
                    flushed.sent += sent as u64;
                    next += sent;
                }
            }
        }
        self.read_stamps(socket, &mut flushed);
        self.replies.clear();
        self.bytes.clear();
        flushed
    }

    /// Sends replies `from..upto` on the socket beside, if this flush is
    /// stamped and there is one; `None` sends them on the serving socket
    /// (none beside, or its buffer is full).
    #[cfg(target_os = "linux")]
    fn send_stamped_beside(&mut self, from: usize, upto: usize) -> Option<usize> {
        use std::os::fd::AsRawFd;
        let fd = match &self.stamps {
            Some(Stamps {
                beside: Some(beside),
                on: true,
                ..
            }) => beside.as_raw_fd(),
            _ => return None,
        };
        match self.send_on(fd, from, upto) {
            Ok(0) => None,
            Ok(sent) => Some(sent),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => None,
            // Refused (an unreachable peer): the serving socket tells the same.
            Err(_) => None,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn send_stamped_beside(&mut self, _from: usize, _upto: usize) -> Option<usize> {
        None
    }

    /// Sends replies `from..upto`, as many as the kernel takes at once.
    async fn send_range(
        &mut self,
        socket: &UdpSocket,
        from: usize,
        upto: usize,
    ) -> io::Result<usize> {
        if upto == from + 1 {
            // One reply: `sendto`, the kernel's shortest path for it (tried
            // at once; the socket is writable unless its buffer is full).
            let reply = &self.replies[from];
            let bytes = &self.bytes[reply.start..reply.start + reply.len];
            match socket.try_send_to(bytes, reply.peer) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.send_to(bytes, reply.peer).await?;
                }
                result => {
                    result?;
                }
            }
            return Ok(1);
        }
        loop {
            socket.writable().await?;
            match socket.try_io(Interest::WRITABLE, || self.send_now(socket, from, upto)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn send_now(&mut self, socket: &UdpSocket, from: usize, upto: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        self.send_on(socket.as_raw_fd(), from, upto)
    }

    /// Sends replies `from..upto` (at most [`BATCH`]) on `fd` with one
    /// `sendmmsg`, never waiting; how many the kernel took.
    #[cfg(target_os = "linux")]
    fn send_on(&mut self, fd: std::os::fd::RawFd, from: usize, upto: usize) -> io::Result<usize> {
        use std::io::IoSlice;

        use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};

        let Outbox {
            replies,
            addresses,
            bytes,
            ..
        } = self;
        let pending = &replies[from..upto.min(from + BATCH)];
        // On the stack, and a reused vector: no allocation per batch.
        let mut each = pending.iter();
        let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
            [IoSlice::new(
                each.next()
                    .map_or(&[][..], |r| &bytes[r.start..r.start + r.len]),
            )]
        });
        addresses.clear();
        addresses.extend(pending.iter().map(|r| Some(SockaddrStorage::from(r.peer))));
        let none: [ControlMessage<'_>; 0] = [];
        SEND_HEADERS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let headers = cell.get_or_insert_with(|| Headers::preallocate(BATCH, None));
            let sent = sendmmsg(
                fd,
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
    fn send_now(&mut self, socket: &UdpSocket, from: usize, _upto: usize) -> io::Result<usize> {
        let reply = &self.replies[from];
        socket.try_send_to(
            &self.bytes[reply.start..reply.start + reply.len],
            reply.peer,
        )?;
        Ok(1)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::sys::enable_receive_timestamps;

    #[tokio::test]
    async fn kernel_stamped_replies_come_back_with_their_times_and_late_predictions_are_counted() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = client.local_addr().unwrap();
        for beside in [false, true] {
            let mut outbox = Outbox::with_transmit_timestamps(None);
            if beside {
                // The send-only socket needs SO_REUSEPORT on the serving
                // one (transmit_stamps' own test): here, a socket of its own.
                outbox = Outbox::with_transmit_timestamps(Some(
                    std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
                ));
                if let Some(Stamps {
                    beside: Some(b), ..
                }) = &outbox.stamps
                {
                    transmit_stamps::set_transmit_timestamps(b, true).unwrap();
                }
            }
            for round in 0..20u8 {
                for n in 0..8u8 {
                    let mut reply = [0u8; PACKET_LEN];
                    reply[0] = 0x24;
                    reply[32..40].copy_from_slice(&[round, n, 0, 0, 0, 0, 0, 1]);
                    outbox.push_kernel_stamped(&reply, to, true);
                }
                let flushed = outbox.flush(&server).await;
                assert_eq!(
                    (flushed.sent, outbox.sent_stamps().len()),
                    (8, 8),
                    "round {round}"
                );
                // A prediction is an estimate: one later than the kernel's
                // time is counted (and lowers the pace), never missed.
                let mut late = 0;
                for sent in outbox.sent_stamps() {
                    let predicted = NtpTimestamp {
                        seconds: u32::from_be_bytes(sent.reply[40..44].try_into().unwrap()),
                        fraction: u32::from_be_bytes(sent.reply[44..48].try_into().unwrap()),
                    };
                    let kernel = NtpTimestamp::from_system_time(sent.at).to_u64();
                    late += u64::from(predicted.to_u64() > kernel);
                }
                assert!(flushed.late >= late, "beside {beside} round {round}");
                for _ in 0..8 {
                    let mut buffer = [0u8; 64];
                    client.recv_from(&mut buffer).await.unwrap();
                }
            }
            assert!(
                outbox.pace.per_reply() > std::time::Duration::ZERO,
                "learned"
            );
        }
    }

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
        let mut outbox = Outbox::default();
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let count = inbox.receive(&server).await.unwrap();
            for index in 0..count {
                let (datagram, received) = inbox.get(index).unwrap();
                assert_eq!(received.peer, client.local_addr().unwrap());
                assert!(received.kernel_time.is_some());
                seen.push(datagram.to_vec());
                outbox.push(datagram, received.peer, false);
            }
            assert_eq!(outbox.flush(&server).await.failed, 0);
        }
        assert_eq!(seen, (0..5u8).map(|n| vec![n; 3]).collect::<Vec<_>>());
        for n in 0..5u8 {
            let mut buffer = [0u8; 16];
            let (len, _) = client.recv_from(&mut buffer).await.unwrap();
            assert_eq!(&buffer[..len], &[n; 3], "replies in order");
        }
    }
}
