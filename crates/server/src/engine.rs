//! The one drive loop every protocol's socket runs ([`drive`]): receive a
//! batch with its kernel timestamps, read the loop's clocks once, turn away
//! what the access lists deny, let the protocol decide each other datagram
//! (exactly one [`Outcome`] each, counted here), send the replies together,
//! and yield. Between batches it picks up a new live view, and it wakes at
//! the protocol's own deadlines (the seed protocol's idle sessions) without
//! a datagram. While batches keep coming, the next is read before anything
//! else is waited for, the shutdown and reload channels looked at with an
//! atomic load: waiting on them takes locks every worker shares. At
//! shutdown the protocol says goodbye through the same outbox.
//!
//! What a protocol decides is [`Protocol`]'s, one file each in
//! [`crate::protocols`]; what is decided is `hora_proto`'s.

use std::sync::Arc;
use std::time::SystemTime;

use hora_proto::outcome::{DropReason, Outcome, Service};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::live::{Live, LiveView};
use crate::log_budget::{LogBudget, LogKind};
use crate::outbox::Outbox;
use crate::stats::{Counters, Event, Stats};
use crate::sys::batch::{Inbox, BATCH};
use crate::sys::transmit_stamps::{Sent, TransmitTimestamps};
use crate::sys::Received;

/// The wall clock and the monotonic clock, read together once a batch: the
/// one clock a loop's decisions see.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    /// The wall clock (time replies, how long a datagram waited).
    pub wall: SystemTime,
    /// The monotonic clock (deadlines, rate limits), tokio's so that tests
    /// on paused time drive it.
    pub monotonic: Instant,
}

impl Clocks {
    /// Both clocks, now.
    pub fn now() -> Clocks {
        Clocks {
            wall: SystemTime::now(),
            monotonic: Instant::now(),
        }
    }

    /// The monotonic reading as `std`'s, as `hora_proto` takes it.
    pub fn instant(&self) -> std::time::Instant {
        self.monotonic.into_std()
    }
}

/// What a protocol's decisions may read: the live view, the counters, the
/// log budgets and the batch's clocks.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The configuration in force.
    pub live: &'a Live,
    /// The worker's counters, for the events a protocol counts beside
    /// outcomes.
    pub stats: &'a Counters,
    /// Which worker decides: whose rate limiter its sources' buckets are in.
    pub worker: usize,
    /// The log budgets.
    pub log: &'a LogBudget,
    /// When the batch was read.
    pub now: Clocks,
}

/// One protocol's request path: what [`drive`] asks of it.
pub trait Protocol {
    /// Whose counters its datagrams count in.
    fn service(&self) -> Service;

    /// Decides one datagram from a source the access lists admit: queues
    /// its answer (and any notice it causes) in `out`, and returns its
    /// outcome, which the loop counts. `None`: it
    /// was deferred ([`Protocol::deferred`]), and the protocol counts its
    /// outcome when it is decided.
    fn datagram(
        &mut self,
        ctx: &Context<'_>,
        datagram: &[u8],
        received: Received,
        out: &mut Outbox,
    ) -> Option<Outcome>;

    /// Every datagram of the batch has been decided: queues in `out` the
    /// answers the protocol held to make together (Roughtime signs a
    /// batch once). Their outcomes were counted as each was decided.
    fn batch_done(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        let _ = (ctx, out);
    }

    /// Whether requests wait to be decided, and if so how long the socket
    /// must stay empty before they are ([`Protocol::deferred`]).
    fn deferred_after_idle(&self) -> Option<std::time::Duration> {
        None
    }

    /// Decides about a chunk of the deferred requests, queuing their
    /// answers in `out` and counting their outcomes: called only once the
    /// socket has stayed empty as long as [`Protocol::deferred_after_idle`]
    /// says, and no deadline is due.
    fn deferred(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        let _ = (ctx, out);
    }

    /// When it next needs the loop without a datagram, if ever.
    fn next_deadline(&self) -> Option<std::time::Instant> {
        None
    }

    /// What has fallen due by `ctx.now`: queues at most about a batch of
    /// notices in `out` (the loop comes back at once for the rest, so a
    /// million deadlines at once don't stall the socket).
    fn due(&mut self, ctx: &Context<'_>, out: &mut Outbox) {
        let _ = (ctx, out);
    }

    /// Whether the kernel's transmit times of its replies are wanted (and
    /// the socket beside its own to send the stamped ones on): its outbox
    /// then reads them back ([`Outbox::with_transmit_timestamps`]) and hands
    /// them to [`Protocol::transmitted`]. Asked once, as the loop starts.
    fn transmit_timestamps(&mut self) -> Option<TransmitTimestamps> {
        None
    }

    /// The kernel says these plain SNTP replies left, and when.
    fn transmitted(&mut self, stats: &Counters, sent: &[Sent]) {
        let _ = (stats, sent);
    }

    /// A new live view is in force.
    fn reconfigure(&mut self, live: &Live) {
        let _ = live;
    }

    /// Shutdown: queues at most about a batch of goodbyes in `out`; whether
    /// more remain (the loop sends these and asks again).
    fn shut_down(&mut self, ctx: &Context<'_>, out: &mut Outbox) -> bool {
        let _ = (ctx, out);
        false
    }
}

/// What every loop shares with the rest of the daemon.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The counters.
    pub stats: Arc<Stats>,
    /// The log budgets.
    pub log: Arc<LogBudget>,
    /// Which worker the loop is (its counters, its rate limiter).
    pub worker: usize,
}

/// Serves `protocol` on `socket` until `shutdown` turns true, then lets it
/// say goodbye. Each time the socket is readable, every datagram queued is
/// read at once, decided in order, and the replies sent at once
/// ([`crate::sys::batch`]).
pub async fn drive<P: Protocol>(
    socket: Arc<UdpSocket>,
    mut protocol: P,
    shared: Shared,
    mut live: LiveView,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut current = Arc::clone(&live.borrow_and_update());
    protocol.reconfigure(&current);
    let mut inbox = Inbox::default();
    let mut outbox = match protocol.transmit_timestamps() {
        Some(wanted) => Outbox::with_transmit_timestamps(wanted.beside),
        None => Outbox::default(),
    };
    let sleep = tokio::time::sleep(std::time::Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed = None;
    // Whether the last turn read a batch: then the next one likely waits
    // already, and is taken first (`take_waiting`).
    let mut busy = false;
    loop {
        if busy {
            match take_waiting(&socket, &mut inbox, &mut protocol, &mut live, &mut shutdown) {
                Waiting::Stop => break,
                Waiting::Reconfigured => {
                    current = Arc::clone(&live.borrow_and_update());
                    protocol.reconfigure(&current);
                    continue;
                }
                Waiting::Batch(count) => {
                    serve_batch(
                        &socket,
                        &mut protocol,
                        &current,
                        &shared,
                        &inbox,
                        count,
                        &mut outbox,
                    )
                    .await;
                    continue;
                }
                Waiting::Failed(error) => {
                    receive_failed(&shared, protocol.service(), &error);
                    busy = false;
                }
                Waiting::Nothing => busy = false,
            }
        }
        let deadline = protocol.next_deadline();
        let idle = protocol.deferred_after_idle();
        if deadline != armed {
            if let Some(at) = deadline {
                sleep.as_mut().reset(Instant::from_std(at));
            }
            armed = deadline;
        }
        tokio::select! {
            biased;
            () = stopping(&mut shutdown) => break,
            Ok(()) = live.changed() => {
                current = Arc::clone(&live.borrow_and_update());
                protocol.reconfigure(&current);
            }
            () = &mut sleep, if armed.is_some() => {
                let ctx = context(&current, &shared, Clocks::now());
                protocol.due(&ctx, &mut outbox);
                flush(&socket, &mut outbox, &shared, &mut protocol).await;
                // Re-armed at the next turn, even at the same instant.
                armed = None;
            }
            received = inbox.receive(&socket) => match received {
                Ok(count) => {
                    serve_batch(&socket, &mut protocol, &current, &shared, &inbox, count, &mut outbox).await;
                    busy = true;
                }
                Err(error) => receive_failed(&shared, protocol.service(), &error),
            },
            // Last: only once the socket has stayed empty that long (the
            // timer starts anew at every turn of the loop; the async block
            // makes none while nothing is deferred).
            () = async { tokio::time::sleep(idle.unwrap_or_default()).await }, if idle.is_some() => {
                let ctx = context(&current, &shared, Clocks::now());
                protocol.deferred(&ctx, &mut outbox);
                flush(&socket, &mut outbox, &shared, &mut protocol).await;
            }
        }
    }
    say_goodbyes(&socket, &mut protocol, &current, &shared, &mut outbox).await;
}

/// At shutdown: the protocol's goodbyes, a chunk a call, each flushed,
/// until none remain.
async fn say_goodbyes<P: Protocol>(
    socket: &UdpSocket,
    protocol: &mut P,
    current: &Live,
    shared: &Shared,
    outbox: &mut Outbox,
) {
    loop {
        let ctx = context(current, shared, Clocks::now());
        let more = protocol.shut_down(&ctx, outbox);
        flush(socket, outbox, shared, protocol).await;
        if !more {
            break;
        }
    }
}

/// What a busy loop found before waiting for anything.
enum Waiting {
    /// Shutdown began.
    Stop,
    /// A new live view is in force.
    Reconfigured,
    /// A batch of this many datagrams, read.
    Batch(usize),
    /// The receive failed (not for want of a datagram).
    Failed(std::io::Error),
    /// Nothing waiting, or a deadline due: time for the full wait.
    Nothing,
}

/// The next batch if one waits already, read without polling the shutdown
/// and reload channels: their futures take locks every worker's loops
/// share, on every turn, while an atomic load tells whether either changed.
/// A protocol deadline that is due, an empty socket or a receive error
/// leave it to the full wait in [`drive`], which handles each.
fn take_waiting<P: Protocol>(
    socket: &UdpSocket,
    inbox: &mut Inbox,
    protocol: &mut P,
    live: &mut LiveView,
    shutdown: &mut watch::Receiver<bool>,
) -> Waiting {
    match shutdown.has_changed() {
        Ok(false) => {}
        Ok(true) if !*shutdown.borrow_and_update() => {}
        // Turned true, or its sender is gone.
        _ => return Waiting::Stop,
    }
    if live.has_changed().unwrap_or(false) {
        return Waiting::Reconfigured;
    }
    let now = Instant::now().into_std();
    if protocol.next_deadline().is_some_and(|at| at <= now) {
        return Waiting::Nothing;
    }
    match inbox.try_receive(socket) {
        Ok(count) => Waiting::Batch(count),
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Waiting::Nothing,
        Err(error) => Waiting::Failed(error),
    }
}

/// Decides a batch of `count` datagrams read into `inbox` and sends the
/// replies together.
async fn serve_batch<P: Protocol>(
    socket: &UdpSocket,
    protocol: &mut P,
    live: &Live,
    shared: &Shared,
    inbox: &Inbox,
    count: usize,
    outbox: &mut Outbox,
) {
    let ctx = context(live, shared, Clocks::now());
    decide_batch(protocol, &ctx, inbox, count, outbox);
    flush(socket, outbox, shared, protocol).await;
    // Two units of the runtime's cooperative budget per datagram, as its
    // receive and its send each took one before batching: a flood on one
    // socket yields to the other loops as often as before.
    for _ in 0..(2 * count) {
        tokio::task::consume_budget().await;
    }
}

/// Counts a failed receive and logs it within its budget.
fn receive_failed(shared: &Shared, service: Service, error: &std::io::Error) {
    shared
        .stats
        .worker(shared.worker)
        .event(Event::ReceiveError);
    if let Some(suppressed) = shared.log.allow(LogKind::ReceiveError) {
        warn!(protocol = service.name(), %error, suppressed, "receive failed");
    }
}

/// Completes when `shutdown` turns true (or its sender is gone).
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held by the caller
    // across its later awaits.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Decides the `count` datagrams of the batch in `inbox`, in order, and
/// counts each outcome once; what the access lists deny never reaches the
/// protocol.
fn decide_batch<P: Protocol>(
    protocol: &mut P,
    ctx: &Context<'_>,
    inbox: &Inbox,
    count: usize,
    outbox: &mut Outbox,
) {
    for index in 0..count {
        let Some((datagram, received)) = inbox.get(index) else {
            continue;
        };
        let outcome = if ctx.live.gate.admits(received.peer, ctx.log) {
            // Its replies leave from the address it was sent to.
            outbox.reply_from(received.local);
            protocol.datagram(ctx, datagram, received, outbox)
        } else {
            Some(Outcome::Dropped(DropReason::Denied))
        };
        if let Some(outcome) = outcome {
            ctx.stats.datagram(protocol.service(), outcome);
        }
    }
    // What the protocol sends later (a deadline's notices) says its own.
    outbox.reply_from(None);
    protocol.batch_done(ctx, outbox);
}

fn context<'a>(live: &'a Live, shared: &'a Shared, now: Clocks) -> Context<'a> {
    Context {
        live,
        stats: shared.stats.worker(shared.worker),
        worker: shared.worker,
        log: &shared.log,
        now,
    }
}

/// Sends what the outbox holds, counting what was sent and what the OS
/// refused (logged within its budget), and hands the protocol the kernel's
/// word on when its replies left.
async fn flush<P: Protocol>(
    socket: &UdpSocket,
    outbox: &mut Outbox,
    shared: &Shared,
    protocol: &mut P,
) {
    let service = protocol.service();
    let flushed = outbox.flush(socket).await;
    let stats = shared.stats.worker(shared.worker);
    if !outbox.sent_stamps().is_empty() {
        protocol.transmitted(stats, outbox.sent_stamps());
    }
    if flushed.late > 0 {
        stats.add(Event::TransmitLate, flushed.late);
    }
    if let Some(error) = flushed.stamps_refused {
        warn!(protocol = service.name(), ?error, "no kernel transmit timestamps: transmit timestamps stay predictions, and interleaved requests get basic replies");
    }
    if flushed.sent > 0 {
        stats.add(Event::Sent, flushed.sent);
    }
    if flushed.failed > 0 {
        stats.add(Event::SendError, flushed.failed);
        if let Some(suppressed) = shared.log.allow(LogKind::SendError) {
            debug!(
                protocol = service.name(),
                failed = flushed.failed,
                suppressed,
                "replies not sent"
            );
        }
    }
}

/// How many notices a protocol queues per call of [`Protocol::due`] or
/// [`Protocol::shut_down`]: a few batches' worth.
pub const NOTICES_PER_TURN: usize = 4 * BATCH;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;

    /// A protocol whose only trait is a deadline.
    struct Due(Option<std::time::Instant>);

    impl Protocol for Due {
        fn service(&self) -> Service {
            Service::Seed
        }

        fn datagram(
            &mut self,
            _: &Context<'_>,
            _: &[u8],
            _: Received,
            _: &mut Outbox,
        ) -> Option<Outcome> {
            Some(Outcome::Answered)
        }

        fn next_deadline(&self) -> Option<std::time::Instant> {
            self.0
        }
    }

    /// A socket with `n` datagrams waiting, seen readable by the runtime.
    async fn socket_with(n: usize) -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..n {
            sender.send_to(b"1", socket.local_addr().unwrap()).unwrap();
        }
        socket.readable().await.unwrap();
        socket
    }

    /// What a busy loop finds on `socket`, its protocol's deadline `at`.
    fn waiting(
        socket: &UdpSocket,
        at: std::time::Instant,
        live: &mut LiveView,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Waiting {
        let mut inbox = Inbox::default();
        take_waiting(socket, &mut inbox, &mut Due(Some(at)), live, shutdown)
    }

    #[tokio::test]
    async fn a_busy_loop_takes_the_waiting_batch_unless_something_else_is_due() {
        let live = || Live::new(Config::default(), None, 1, std::time::Instant::now()).unwrap();
        let (publisher, mut view) = crate::live::publish(live());
        let (stop, mut stopped) = watch::channel(false);
        let later = std::time::Instant::now() + Duration::from_secs(60);
        let socket = socket_with(3).await;
        let found = waiting(&socket, later, &mut view, &mut stopped);
        assert!(matches!(found, Waiting::Batch(3)));
        let found = waiting(&socket, later, &mut view, &mut stopped);
        assert!(matches!(found, Waiting::Nothing));
        // A deadline due comes before a waiting batch (a flood must not
        // keep sessions from idling out)...
        let socket = socket_with(1).await;
        let now = std::time::Instant::now();
        let found = waiting(&socket, now, &mut view, &mut stopped);
        assert!(matches!(found, Waiting::Nothing));
        // ... and so do a new live view and shutdown, seen without a wait.
        publisher.send(Arc::new(live())).unwrap();
        let found = waiting(&socket, later, &mut view, &mut stopped);
        assert!(matches!(found, Waiting::Reconfigured));
        view.borrow_and_update();
        stop.send(true).unwrap();
        let found = waiting(&socket, later, &mut view, &mut stopped);
        assert!(matches!(found, Waiting::Stop));
        // A shutdown channel whose sender is gone stops the loop too.
        drop(stop);
        let (_, mut gone) = watch::channel(false);
        let found = waiting(&socket, later, &mut view, &mut gone);
        assert!(matches!(found, Waiting::Stop));
        // Still waiting: the batch is taken once nothing else is due.
        let (_running, mut stopped) = watch::channel(false);
        let found = waiting(&socket, later, &mut view, &mut stopped);
        assert!(matches!(found, Waiting::Batch(1)));
    }
}
