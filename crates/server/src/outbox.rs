//! The replies of one batch, and the transmit time they carry: every
//! protocol queues its replies here ([`Outbox`]), and [`Outbox::flush`]
//! sends them in order, as few kernel crossings as it takes
//! ([`crate::sys::batch::send`]).
//!
//! A reply whose transmit timestamp is written at the last moment (SNTP's,
//! NTS's, protocol v2's time answers: the field `hora_proto::sntp`'s
//! `TRANSMIT_FIELD` names) is stamped inside each send attempt, from a
//! clock reading taken after any wait for the socket, and an NTS reply is
//! sealed after it: a reply that waited for a full buffer, or that the
//! kernel took in a later call than the one before it, is stamped when it
//! goes, not when it was first tried. While few wait, each goes in a call
//! of its own, from a reading of its own; more go up to
//! [`MOST_PER_BATCH`](hora_proto::transmit::MOST_PER_BATCH) a call, reply
//! `k` stamped `k` of the kernel's quickest gaps after the reading
//! ([`hora_proto::transmit::per_call`]), or later where the NTS replies
//! sealed ahead of it took longer: it reads the clock again.
//!
//! The kernel's transmit times (`SO_TIMESTAMPING`, [`crate::sys::transmit_stamps`])
//! are asked for in the flushes that need them (interleaved mode's replies)
//! and, to teach the pace and check its stamps, in flushes that can: enough
//! plain SNTP replies to go two or more a call (the only replies read back),
//! every such flush until the pace is learned, then one in [`SAMPLE_EVERY`].

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use hora_proto::nts::packet::{self, Unsealed};
use hora_proto::nts::Keys;
use hora_proto::sntp::{self, PACKET_LEN};
use hora_proto::transmit::{self, TransmitPace};
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::sys::batch::{self, BATCH};
use crate::sys::destination::Local;
use crate::sys::transmit_stamps::{self, Sent};

pub use crate::sys::batch::REPLY;

/// How often the kernel's transmit timestamps are asked for when no reply
/// needs them, once the pace is known: one flush of two or more stamped
/// replies in this many, so the pace is followed and checked at a cost
/// basic clients don't notice (until it is known, every such flush).
pub const SAMPLE_EVERY: u32 = 1024;

/// One reply waiting in the [`Outbox`].
#[derive(Debug)]
struct Reply {
    /// Where its bytes start in the outbox's `bytes`.
    start: usize,
    len: usize,
    peer: SocketAddr,
    /// The address it leaves from, where the socket is bound to a wildcard
    /// one (the address the client asked, [`crate::sys::destination`]).
    from: Option<Local>,
    /// Its transmit timestamp is written just before it is sent.
    stamp_transmit: bool,
    /// An NTS reply, sealed with the client's keys once stamped (boxed:
    /// every other reply stays small). Sealing is done once: a sealed
    /// reply that has to wait keeps its (earlier) stamp.
    seal: Option<Box<(Keys, Unsealed)>>,
    sealed: bool,
    /// The kernel's time for it is wanted (interleaved mode's log).
    kernel_stamp: bool,
    /// Its stamp: the reading its call was stamped from, its place in the
    /// call and the time written, to check against the kernel's time.
    stamped: Option<(SystemTime, usize, SystemTime)>,
}

/// The kernel's transmit timestamps, on a socket that takes them (SNTP's).
#[derive(Debug, Default)]
struct KernelTimes {
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
    /// The kernel's time between replies, for their transmit timestamps.
    pace: TransmitPace,
    /// Kernel transmit timestamps, where asked for
    /// ([`Outbox::with_transmit_timestamps`]).
    kernel: Option<KernelTimes>,
    /// Where the replies now pushed leave from ([`Outbox::reply_from`]).
    from: Option<Local>,
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
            kernel: None,
            from: None,
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
    /// Transmit timestamps the kernel showed were later than the reply
    /// left, and calls whose last stamp was later than the kernel's return
    /// from sending them.
    pub late: u64,
    /// The socket refused transmit timestamps: they are off from now on.
    pub stamps_refused: Option<io::ErrorKind>,
}

impl Outbox {
    /// An outbox for a socket whose replies' kernel transmit times are
    /// wanted: asked for ([`transmit_stamps`]) in the flushes with a reply
    /// queued by [`Outbox::push_kernel_stamped`], and in one flush of
    /// [`SAMPLE_EVERY`] to learn and check the pace. Those flushes go out
    /// on `beside`, when there is one.
    pub fn with_transmit_timestamps(beside: Option<std::net::UdpSocket>) -> Outbox {
        Outbox {
            kernel: Some(KernelTimes {
                beside,
                ..KernelTimes::default()
            }),
            ..Outbox::default()
        }
    }

    /// The replies pushed from now on leave from `local`: the address the
    /// datagram they answer was sent to (`None`: wherever the kernel's
    /// route back says, as a socket bound to one address always does).
    pub fn reply_from(&mut self, local: Option<Local>) {
        self.from = local;
    }

    /// Where the replies now pushed leave from ([`Outbox::reply_from`]).
    pub fn source(&self) -> Option<Local> {
        self.from
    }

    /// Queues a notice for `peer` from `local` (a session's own address),
    /// whatever [`Outbox::reply_from`] last said.
    pub fn push_from(&mut self, bytes: &[u8], peer: SocketAddr, local: Option<Local>) {
        let before = std::mem::replace(&mut self.from, local);
        self.queue(bytes, peer, false, None, false);
        self.from = before;
    }

    /// Queues `bytes` (at most [`REPLY`]) for `peer`. With `stamp_transmit`,
    /// its transmit timestamp (`sntp::TRANSMIT_FIELD`) is written just
    /// before it is sent.
    pub fn push(&mut self, bytes: &[u8], peer: SocketAddr, stamp_transmit: bool) {
        self.queue(bytes, peer, stamp_transmit, None, false);
    }

    /// Queues an SNTP reply as [`Outbox::push`] does, whose kernel transmit
    /// time is then read back ([`Outbox::sent_stamps`]).
    pub fn push_kernel_stamped(&mut self, bytes: &[u8], peer: SocketAddr, stamp_transmit: bool) {
        self.queue(bytes, peer, stamp_transmit, None, true);
    }

    /// Queues an NTS reply written by `prepare_reply`: stamped just before
    /// it is sent as an SNTP reply is, then sealed with `keys`.
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
        self.kernel.as_ref().map_or(&[], |kernel| &kernel.sent)
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
            from: self.from,
            stamp_transmit,
            seal,
            sealed: false,
            kernel_stamp,
            stamped: None,
        });
        self.bytes.extend_from_slice(&bytes[..len]);
    }

    /// Sends every queued reply, in order, as few kernel crossings as it
    /// takes; replies whose transmit timestamp is written last go as many a
    /// call as [`transmit::per_call`] says (one each while few wait),
    /// stamped inside each attempt.
    pub async fn flush(&mut self, socket: &UdpSocket) -> Flushed {
        let mut flushed = Flushed::default();
        if self.replies.is_empty() && !self.kernel.as_ref().is_some_and(|k| k.behind) {
            return flushed;
        }
        self.prepare_kernel_times(socket, &mut flushed);
        let mut next = 0;
        while next < self.replies.len() {
            let (stamped, from) = (self.replies[next].stamp_transmit, self.replies[next].from);
            // A call sends replies of one kind from one source.
            let run = self.replies[next..]
                .iter()
                .position(|r| r.stamp_transmit != stamped || r.from != from)
                .map_or(self.replies.len(), |at| next + at);
            let most = if stamped {
                transmit::per_call(run - next)
            } else {
                BATCH
            };
            let upto = run.min(next + most);
            match self.send_range(socket, next, upto).await {
                Ok(0) | Err(_) => {
                    // This reply is refused (an unreachable peer, say):
                    // count it and go on with the next.
                    flushed.failed += 1;
                    next += 1;
                }
                Ok(sent) => {
                    if stamped {
                        self.returned(next, sent, &mut flushed);
                    }
                    flushed.sent += sent as u64;
                    next += sent;
                }
            }
        }
        self.read_kernel_times(socket, &mut flushed);
        self.replies.clear();
        self.bytes.clear();
        flushed
    }

    /// Sends replies `from..upto`, stamped inside the attempt that sends
    /// them: on the socket beside when this flush is stamped and there is
    /// one, else on the serving socket, waiting while its buffer is full.
    async fn send_range(
        &mut self,
        socket: &UdpSocket,
        from: usize,
        upto: usize,
    ) -> io::Result<usize> {
        if let Some(beside) = self.take_stamped_beside() {
            let result = self.attempt(&beside, from, upto);
            if let Some(kernel) = &mut self.kernel {
                kernel.beside = Some(beside);
            }
            match result {
                Ok(sent) if sent > 0 => return Ok(sent),
                // Full, or refused: the serving socket tells the same.
                _ => {}
            }
        }
        loop {
            match socket.try_io(Interest::WRITABLE, || self.attempt(socket, from, upto)) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    socket.writable().await?;
                }
                result => return result,
            }
        }
    }

    /// The socket beside, when this flush goes out stamped on it: taken
    /// for the call, and put back after it.
    fn take_stamped_beside(&mut self) -> Option<std::net::UdpSocket> {
        let kernel = self.kernel.as_mut().filter(|kernel| kernel.on)?;
        kernel.beside.take()
    }

    /// One send call of replies `from..upto` on `socket`, never waiting:
    /// those whose transmit timestamp is written last are stamped from a
    /// clock reading taken now, then sealed where they are NTS replies.
    fn attempt(
        &mut self,
        socket: &impl std::os::fd::AsFd,
        from: usize,
        upto: usize,
    ) -> io::Result<usize> {
        if self.replies[from].stamp_transmit {
            self.stamp(from, upto);
        }
        let bytes = &self.bytes;
        let mut each = self.replies[from..upto].iter();
        let pending: [(&[u8], SocketAddr); BATCH] = std::array::from_fn(|_| {
            each.next()
                .map_or((&[][..], SocketAddr::from(([0, 0, 0, 0], 0))), |r| {
                    (&bytes[r.start..r.start + r.len], r.peer)
                })
        });
        let source = self.replies[from].from;
        batch::send(socket, &pending[..(upto - from).min(BATCH)], source)
    }

    /// Stamps replies `from..upto` (all stamped last) as one call sent
    /// now: reply `k` from the reading plus `k` of the pace's gaps; then
    /// seals the NTS ones, once.
    fn stamp(&mut self, from: usize, upto: usize) {
        let first = self.pace.batch_start(SystemTime::now());
        let mut sealed_ahead = false;
        for (position, reply) in self.replies[from..upto].iter_mut().enumerate() {
            if reply.sealed {
                continue;
            }
            // A reply behind sealed ones leaves after their sealing too:
            // read the clock again (tens of nanoseconds; a seal is ~1 µs).
            let reading = if sealed_ahead {
                SystemTime::now()
            } else {
                first
            };
            let time = self.pace.transmit_time_read_at(first, position, reading);
            reply.stamped = Some((first, position, time));
            let bytes = &mut self.bytes[reply.start..reply.start + reply.len];
            sntp::write_transmit(bytes, time);
            if let Some((keys, unsealed)) = reply.seal.as_deref() {
                reply.sealed = true;
                sealed_ahead = true;
                if packet::seal_reply(keys, unsealed, bytes).is_none() {
                    // Never sent unsealed: its authenticator zeroed fails
                    // every client's check (it can't happen:
                    // `prepare_reply` sized it).
                    let header = PACKET_LEN.min(bytes.len());
                    bytes[header..].fill(0);
                }
            }
        }
    }

    /// A call took `sent` stamped replies from `from`: whether the kernel
    /// was back sooner than the last one's stamp (then the pace is lowered
    /// now, and the stamp counted late).
    fn returned(&mut self, from: usize, sent: usize, flushed: &mut Flushed) {
        let Some((first, _, _)) = self.replies[from].stamped else {
            return;
        };
        let elapsed = SystemTime::now().duration_since(first).unwrap_or_default();
        if self.pace.returned(elapsed, sent) {
            flushed.late += 1;
        }
    }

    /// Turns the socket's transmit timestamps on for a flush that wants
    /// them, off for one that does not.
    fn prepare_kernel_times(&mut self, socket: &UdpSocket, flushed: &mut Flushed) {
        let Some(kernel) = &mut self.kernel else {
            return;
        };
        kernel.sent.clear();
        // Only plain SNTP replies are known again in the kernel's error
        // queue (`transmit_stamps` reads 48-byte replies back): a flush of
        // NTS replies alone can teach nothing, and sampling every one of
        // them while the pace was unknown cost NTS an eighth of its
        // throughput.
        let stamped = self
            .replies
            .iter()
            .filter(|r| r.stamp_transmit && r.seal.is_none() && r.len == PACKET_LEN)
            .count();
        // And only flushes whose replies go two or more a call: gaps are
        // between replies of one call. Every such flush until the pace is
        // known (a few, once), then one in SAMPLE_EVERY.
        let teaches = transmit::per_call(stamped) >= 2;
        let due = kernel.since_sample >= SAMPLE_EVERY || !self.pace.is_known();
        let sample = teaches && due;
        if teaches {
            kernel.since_sample = if sample { 0 } else { kernel.since_sample + 1 };
        }
        let want = sample || self.replies.iter().any(|r| r.kernel_stamp);
        if kernel.beside.is_some() {
            kernel.on = want;
            return;
        }
        if want != kernel.on {
            match transmit_stamps::set_transmit_timestamps(socket, want) {
                Ok(()) => kernel.on = want,
                Err(error) => {
                    flushed.stamps_refused = Some(error.kind());
                    self.kernel = None;
                }
            }
        }
    }

    /// Reads back the kernel's transmit times of the flush just sent:
    /// each stamp is checked against its reply's time, and two replies of
    /// one call sent one after the other tell the pace the gap between.
    fn read_kernel_times(&mut self, socket: &UdpSocket, flushed: &mut Flushed) {
        let Some(kernel) = &mut self.kernel else {
            return;
        };
        if !kernel.on && !kernel.behind {
            return;
        }
        let ipv6 = *kernel
            .ipv6
            .get_or_insert_with(|| socket.local_addr().is_ok_and(|addr| addr.is_ipv6()));
        let read = match &kernel.beside {
            Some(beside) => {
                transmit_stamps::read_transmit_timestamps(beside, ipv6, &mut kernel.sent)
            }
            None => transmit_stamps::read_transmit_timestamps(socket, ipv6, &mut kernel.sent),
        }
        .unwrap_or(0);
        kernel.behind = kernel.on && (read as u64) < flushed.sent;
        // In the order they were sent: each is looked for after the last.
        let mut from = 0;
        let mut before: Option<((SystemTime, usize), SystemTime)> = None;
        for sent in &kernel.sent {
            // A reply is known by its receive and transmit timestamps.
            let key = sntp::RECEIVE_FIELD.start..sntp::TRANSMIT_FIELD.end;
            let found = self.replies[from..].iter().position(|reply| {
                reply.stamped.is_some()
                    && self
                        .bytes
                        .get(reply.start + key.start..reply.start + key.end)
                        == sent.reply.get(key.clone())
            });
            let Some(at) = found else { continue };
            from += at + 1;
            let Some((first, position, time)) = self.replies[from - 1].stamped else {
                continue;
            };
            if self.pace.check(first, position, time, sent.at) {
                flushed.late += 1;
            }
            if let Some(((call, previous), left)) = before {
                if call == first && previous + 1 == position {
                    self.pace
                        .observe_gap(sent.at.duration_since(left).unwrap_or_default());
                }
            }
            before = Some(((first, position), sent.at));
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use hora_proto::sntp::NtpTimestamp;

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
                if let Some(KernelTimes {
                    beside: Some(b), ..
                }) = &outbox.kernel
                {
                    transmit_stamps::set_transmit_timestamps(b, true).unwrap();
                }
            }
            // More than go one a call: two calls of eight, whose gaps teach.
            let replies = 2 * hora_proto::transmit::MOST_PER_BATCH;
            assert!(replies > hora_proto::transmit::SINGLY_UP_TO);
            for round in 0..20u8 {
                for n in 0..replies as u8 {
                    let mut reply = [0u8; PACKET_LEN];
                    reply[0] = 0x24;
                    reply[32..40].copy_from_slice(&[round, n, 0, 0, 0, 0, 0, 1]);
                    outbox.push_kernel_stamped(&reply, to, true);
                }
                let flushed = outbox.flush(&server).await;
                assert_eq!(
                    (flushed.sent, outbox.sent_stamps().len()),
                    (replies as u64, replies),
                    "round {round}"
                );
                // A prediction is an estimate: one later than the kernel's
                // time is counted (and lowers the pace), never missed.
                let mut late = 0;
                for sent in outbox.sent_stamps() {
                    let predicted = sntp::transmit_of(&sent.reply).unwrap();
                    let kernel = NtpTimestamp::from_system_time(sent.at).to_u64();
                    late += u64::from(predicted.to_u64() > kernel);
                }
                assert!(flushed.late >= late, "beside {beside} round {round}");
                for _ in 0..replies {
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
    async fn replies_go_in_order_and_stamped_ones_carry_a_time_no_later_than_they_arrive() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = client.local_addr().unwrap();
        let mut outbox = Outbox::default();
        // Plain, stamped and plain again: three calls, in order.
        for n in 0..20u8 {
            let mut reply = [n; PACKET_LEN];
            reply[sntp::TRANSMIT_FIELD].fill(0);
            outbox.push(&reply, to, (5..15).contains(&n));
        }
        let before = NtpTimestamp::from_system_time(SystemTime::now()).to_u64();
        assert_eq!(outbox.flush(&server).await.sent, 20);
        for n in 0..20u8 {
            let mut buffer = [0u8; 64];
            let (len, _) = client.recv_from(&mut buffer).await.unwrap();
            let arrived = NtpTimestamp::from_system_time(SystemTime::now()).to_u64();
            assert_eq!((len, buffer[0]), (PACKET_LEN, n), "in order");
            let transmit = sntp::transmit_of(&buffer[..len]).unwrap().to_u64();
            if (5..15).contains(&n) {
                assert!(before <= transmit && transmit <= arrived, "reply {n}");
            } else {
                assert_eq!(transmit, 0, "reply {n} untouched");
            }
        }
    }

    /// A pace far slower than the machine would stamp replies of one call
    /// later than the kernel sent them; a few replies waiting go one a
    /// call, each stamped from its own reading, so no pace touches them
    /// (the kernel's transmit times say so).
    #[tokio::test]
    async fn a_few_replies_waiting_are_each_stamped_from_their_own_reading() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = client.local_addr().unwrap();
        let mut outbox = Outbox::with_transmit_timestamps(None);
        for _ in 0..hora_proto::transmit::WINDOW {
            outbox
                .pace
                .observe_gap(hora_proto::transmit::MOST_PER_REPLY);
        }
        assert!(outbox.pace.is_known());
        let waiting = 4;
        assert!(waiting <= hora_proto::transmit::SINGLY_UP_TO);
        for n in 0..waiting {
            let mut reply = [0u8; PACKET_LEN];
            reply[0] = 0x24;
            reply[32..40].copy_from_slice(&[n as u8, 0, 0, 0, 0, 0, 0, 1]);
            outbox.push_kernel_stamped(&reply, to, true);
        }
        let flushed = outbox.flush(&server).await;
        assert_eq!((flushed.sent, flushed.late), (waiting as u64, 0));
        assert_eq!(outbox.sent_stamps().len(), waiting);
        let mut stamps = Vec::new();
        for sent in outbox.sent_stamps() {
            let stamp = sntp::transmit_of(&sent.reply).unwrap().to_u64();
            let kernel = NtpTimestamp::from_system_time(sent.at).to_u64();
            assert!(stamp <= kernel, "{stamp:x} after {kernel:x}");
            stamps.push(stamp);
        }
        // One call would have stamped them a pace apart to the tick.
        let pace = outbox.pace.per_reply().as_secs_f64() * 2f64.powi(32);
        assert!(
            stamps
                .windows(2)
                .any(|pair| ((pair[1] - pair[0]) as f64 - pace).abs() > 100.0),
            "{stamps:x?} are a pace ({pace} NTP units) apart: one call"
        );
    }

    /// An NTS reply sealed after others in one call leaves after their
    /// seals too (about a microsecond each): each is stamped from a
    /// reading taken after the seals ahead of it, not from the call's
    /// first (which made reply `k` early by `k` seals), and still
    /// authenticates with the stamp it carries.
    #[tokio::test]
    async fn nts_replies_of_one_call_are_stamped_after_the_seals_ahead_of_them() {
        use hora_proto::nts::cookie::{self, CookieKey, KEY_LEN, MAX_COOKIE_LEN, NONCE_LEN};
        use hora_proto::nts::packet::{self, Parsed, MAX_PACKET};
        use hora_proto::nts::Algorithm;

        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = client.local_addr().unwrap();
        let algorithm = Algorithm::AesSivCmac256;
        let len = algorithm.key_len();
        let keys = Keys::new(algorithm, &vec![0xC2; len], &vec![0x2C; len]).unwrap();
        let server_key = CookieKey {
            id: 1,
            key: [1; KEY_LEN],
        };
        let mut cookie = [0u8; MAX_COOKIE_LEN];
        let cookie_len = cookie::seal(&server_key, &keys, &[4; NONCE_LEN], &mut cookie).unwrap();
        let unique_id = [0x55; 32];
        let mut header = [0u8; PACKET_LEN];
        header[0] = 4 << 3 | 3;
        let request = packet::write_request(
            &header,
            &keys,
            &cookie[..cookie_len],
            0,
            &unique_id,
            &[0x11; 16],
        )
        .unwrap();
        let Ok(Parsed::Nts(parsed)) = packet::read_request(&request) else {
            panic!("not an NTS request")
        };
        let authenticated =
            packet::authenticate(&parsed, std::slice::from_ref(&server_key)).unwrap();
        // More than go one a call: a call of eight, then one each.
        let replies = hora_proto::transmit::SINGLY_UP_TO + 4;
        let mut outbox = Outbox::default();
        for _ in 0..replies {
            let mut out = [0u8; MAX_PACKET];
            let mut reply_header = [0u8; PACKET_LEN];
            reply_header[0] = 4 << 3 | 4;
            let unsealed = packet::prepare_reply(
                &parsed,
                &authenticated,
                &reply_header,
                &[0x33; 16],
                |k, room| cookie::seal(&server_key, k, &[8; NONCE_LEN], room),
                &mut out,
            )
            .unwrap();
            let bytes = &out[..unsealed.len];
            outbox.push_nts(bytes, to, authenticated.keys.clone(), unsealed);
        }
        assert_eq!(outbox.flush(&server).await.sent, replies as u64);
        let mut stamps = Vec::new();
        for n in 0..replies {
            let mut buffer = [0u8; MAX_PACKET];
            let (len, _) = client.recv_from(&mut buffer).await.unwrap();
            let arrived = NtpTimestamp::from_system_time(SystemTime::now()).to_u64();
            let reply = packet::read_reply(&buffer[..len], &keys, &unique_id)
                .unwrap_or_else(|e| panic!("reply {n}: {e}"));
            let stamp = sntp::transmit_of(&reply.header).unwrap().to_u64();
            assert!(stamp <= arrived, "reply {n} stamped after it arrived");
            stamps.push(stamp);
        }
        let call = &stamps[..hora_proto::transmit::MOST_PER_BATCH];
        assert!(
            call.windows(2).all(|pair| pair[0] < pair[1]),
            "{call:x?}: one reading for the call"
        );
    }

    /// Only plain SNTP replies are read back from the error queue, and
    /// only replies of one call tell a gap, so only flushes of enough
    /// plain replies to go together are sampled while the pace is unknown:
    /// NTS replies (longer) alone, or a few replies sent one a call, never
    /// turn the kernel's transmit times on.
    #[tokio::test]
    async fn only_flushes_that_can_teach_the_pace_are_sampled() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = client.local_addr().unwrap();
        let mut outbox = Outbox::with_transmit_timestamps(None);
        let together = hora_proto::transmit::SINGLY_UP_TO + 1;
        for (len, count, sampled) in [
            (PACKET_LEN + 52, together, false),
            (PACKET_LEN, together - 1, false),
            (PACKET_LEN, together, true),
        ] {
            for _ in 0..count {
                outbox.push(&vec![0x24; len], to, true);
            }
            assert_eq!(outbox.flush(&server).await.sent, count as u64);
            assert!(!outbox.pace.is_known());
            assert_eq!(
                outbox.kernel.as_ref().map(|kernel| kernel.on),
                Some(sampled),
                "{count} {len}-byte replies"
            );
            for _ in 0..count {
                let mut buffer = [0u8; 128];
                client.recv_from(&mut buffer).await.unwrap();
            }
        }
    }
}
