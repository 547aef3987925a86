//! The daemon's counters: plain atomics bumped where each decision is made,
//! and reported in one place ([`Snapshot`]'s `Display`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters kept from start-up. Shared by the receive loop and the idle
/// timers, so each is an atomic; relaxed ordering is enough for counting.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions opened by a `login`.
    pub logins: AtomicU64,
    /// Time replies sent.
    pub time_requests: AtomicU64,
    /// Sessions ended by option `2`.
    pub logouts: AtomicU64,
    /// Sessions ended by an invalid option.
    pub invalid_options: AtomicU64,
    /// Sessions ended by their idle timeout.
    pub idle_expiries: AtomicU64,
    /// Sessions ended by shutdown.
    pub shutdown_closes: AtomicU64,
    /// Datagrams that were not a request (from any peer).
    pub invalid_datagrams: AtomicU64,
    /// Logins refused by the session limits.
    pub refusals: AtomicU64,
    /// Requests from peers without a session.
    pub no_session: AtomicU64,
    /// Datagrams received and not answered.
    pub dropped: AtomicU64,
    /// Datagrams sent: replies and notices, on every socket.
    pub replies: AtomicU64,
    /// Replies the OS would not send.
    pub send_errors: AtomicU64,
    /// SNTP requests answered.
    pub sntp_requests: AtomicU64,
    /// SNTP replies whose receive timestamp is the kernel's (`SO_TIMESTAMPNS`).
    pub kernel_timestamps: AtomicU64,
    /// SNTP replies whose receive timestamp was read from the clock, the
    /// kernel having given none.
    pub clock_timestamps: AtomicU64,
    /// Datagrams on the SNTP socket that were not client requests.
    pub ntp_ignored: AtomicU64,
    /// RFC 868 Time requests answered.
    pub rfc868_requests: AtomicU64,
    /// RFC 867 Daytime requests answered.
    pub daytime_requests: AtomicU64,
    /// Datagrams from sources outside the access lists (dropped).
    pub denied: AtomicU64,
    /// Datagrams over a source's rate limit (dropped, or kissed).
    pub rate_limited: AtomicU64,
    /// SNTP "RATE" kiss-o'-death replies sent to rate-limited clients.
    pub kiss_of_death: AtomicU64,
    /// Sessions that had not asked for the time, ended to make room for a login.
    pub displaced: AtomicU64,
    /// Datagrams on the Time and Daytime sockets shaped like a server's
    /// reply, or from a port of a service that answers unasked: never
    /// answered, so two servers can't answer each other for ever.
    pub ignored_replies: AtomicU64,
    /// Refusal and displacement notices not sent: over the notice budget.
    pub notices_withheld: AtomicU64,
}

impl Stats {
    /// Adds one to a counter.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now, with the number of open sessions.
    pub fn snapshot(&self, sessions_open: usize) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            sessions_open,
            tasks: 0,
            logins: get(&self.logins),
            time_requests: get(&self.time_requests),
            logouts: get(&self.logouts),
            invalid_options: get(&self.invalid_options),
            idle_expiries: get(&self.idle_expiries),
            shutdown_closes: get(&self.shutdown_closes),
            invalid_datagrams: get(&self.invalid_datagrams),
            refusals: get(&self.refusals),
            no_session: get(&self.no_session),
            dropped: get(&self.dropped),
            replies: get(&self.replies),
            send_errors: get(&self.send_errors),
            sntp_requests: get(&self.sntp_requests),
            kernel_timestamps: get(&self.kernel_timestamps),
            clock_timestamps: get(&self.clock_timestamps),
            ntp_ignored: get(&self.ntp_ignored),
            rfc868_requests: get(&self.rfc868_requests),
            daytime_requests: get(&self.daytime_requests),
            denied: get(&self.denied),
            rate_limited: get(&self.rate_limited),
            kiss_of_death: get(&self.kiss_of_death),
            displaced: get(&self.displaced),
            ignored_replies: get(&self.ignored_replies),
            notices_withheld: get(&self.notices_withheld),
        }
    }
}

/// The counters at one moment, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // Each field is the `Stats` counter of the same name.
pub struct Snapshot {
    pub sessions_open: usize,
    /// Tasks alive in the daemon's runtime (receive loops and idle timers).
    pub tasks: usize,
    pub logins: u64,
    pub time_requests: u64,
    pub logouts: u64,
    pub invalid_options: u64,
    pub idle_expiries: u64,
    pub shutdown_closes: u64,
    pub invalid_datagrams: u64,
    pub refusals: u64,
    pub no_session: u64,
    pub dropped: u64,
    pub replies: u64,
    pub send_errors: u64,
    pub sntp_requests: u64,
    pub kernel_timestamps: u64,
    pub clock_timestamps: u64,
    pub ntp_ignored: u64,
    pub rfc868_requests: u64,
    pub daytime_requests: u64,
    pub denied: u64,
    pub rate_limited: u64,
    pub kiss_of_death: u64,
    pub displaced: u64,
    pub ignored_replies: u64,
    pub notices_withheld: u64,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sessions_open={} tasks={} logins={} time_requests={} logouts={} invalid_options={} \
             idle_expiries={} shutdown_closes={} invalid_datagrams={} refusals={} \
             no_session={} dropped={} replies={} send_errors={} sntp_requests={} kernel_timestamps={} clock_timestamps={} ntp_ignored={} \
             rfc868_requests={} daytime_requests={} denied={} rate_limited={} kiss_of_death={} \
             displaced={} ignored_replies={} notices_withheld={}",
            self.sessions_open,
            self.tasks,
            self.logins,
            self.time_requests,
            self.logouts,
            self.invalid_options,
            self.idle_expiries,
            self.shutdown_closes,
            self.invalid_datagrams,
            self.refusals,
            self.no_session,
            self.dropped,
            self.replies,
            self.send_errors,
            self.sntp_requests,
            self.kernel_timestamps,
            self.clock_timestamps,
            self.ntp_ignored,
            self.rfc868_requests,
            self.daytime_requests,
            self.denied,
            self.rate_limited,
            self.kiss_of_death,
            self.displaced,
            self.ignored_replies,
            self.notices_withheld
        )
    }
}
