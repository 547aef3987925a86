//! The daemon's counters: plain atomics bumped where each decision is made,
//! read at once into a [`Snapshot`] by every report (the summary log line,
//! `/metrics`, `/status`, systemd's status line), which all walk the same
//! lists:
//!
//! - one [`Outcome`] per datagram received, per [`Service`]: answered, or
//!   dropped for one [`DropReason`], so received = answered + dropped;
//! - [`Event`]s that are not datagram outcomes (a login, a session's end, a
//!   kiss-o'-death, a send error...), each with its metric name and help.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use hora_proto::outcome::{DropReason, Outcome, Service};

const SERVICES: usize = Service::ALL.len();
const OUTCOMES: usize = 1 + DropReason::ALL.len();

/// A Prometheus metric family: its name and help, written once however
/// many events count into it under labels of their own.
struct Family {
    name: &'static str,
    help: &'static str,
}

/// Declares the families, `CONST = "name", "help";` each.
macro_rules! families {
    ($($family:ident = $name:literal, $help:literal;)*) => {
        $(pub(super) const $family: Family = Family { name: $name, help: $help };)*
    };
}

/// The metric families of [`Event`]s (the datagram outcomes' are
/// `ops::metrics`'s own).
mod family {
    use super::Family;

    families! {
    LOGINS = "hora_logins_total", "Sessions opened by a login.";
    LOGINS_REFUSED = "hora_logins_refused_total", "Logins refused, by the limit they met (per_ip, table): every session in the way had asked for the time.";
    LOGINS_DISPLACING = "hora_logins_displacing_total", "Logins at a limit (per_ip, table) that took the place of a session that never asked.";
    SESSIONS_ENDED = "hora_sessions_ended_total", "Sessions ended, by reason.";
    TIME_REPLIES = "hora_time_replies_total", "Time replies of the seed's protocol (option 1).";
    NO_SESSION_REPLIES = "hora_no_session_replies_total", "Replies to an option from a peer without a session.";
    INVALID_DATAGRAMS = "hora_invalid_datagrams_total", "Seed-protocol datagrams that were not a request, from any peer.";
    V2_CHALLENGES = "hora_v2_challenges_total", "Protocol v2 logins answered with a stateless cookie challenge.";
    V2_LOGINS = "hora_v2_logins_total", "Protocol v2 sessions opened (a confirmation returned a good cookie).";
    V2_LOGINS_REFUSED = "hora_v2_logins_refused_total", "Protocol v2 confirmations refused at max_sessions or max_sessions_per_ip (v2 sessions count apart from the seed's).";
    V2_COOKIES_REFUSED = "hora_v2_cookies_refused_total", "Protocol v2 confirmations dropped: the cookie was not this server's for that address and nonce, or too old.";
    V2_TOKENS_WRONG = "hora_v2_tokens_wrong_total", "Protocol v2 requests dropped: the token was not the session's of that address.";
    V2_TIME_REPLIES = "hora_v2_time_replies_total", "Time answers of protocol v2 (option 1).";
    SNTP_KISS_OF_DEATH = "hora_sntp_kiss_of_death_total", "SNTP RATE kiss-o'-death replies sent to rate-limited clients.";
    SNTP_INTERLEAVED_REQUESTS = "hora_sntp_interleaved_requests_total", "SNTP requests in interleaved mode (RFC 9769), by how they were answered: interleaved (with the earlier reply's kernel transmit time), basic_no_transmit_time (the earlier reply is logged but the kernel never said when it left), basic_not_logged (not in the client log: evicted, used, or never ours).";
    SNTP_KERNEL_TRANSMIT_TIMESTAMPS = "hora_sntp_kernel_transmit_timestamps_total", "Kernel transmit timestamps of plain SNTP replies read back from the socket's error queue (asked for replies to interleaved-mode requests, and one batch in 1,024 to check the predictions).";
    SNTP_TRANSMIT_PREDICTIONS_LATE = "hora_sntp_transmit_predictions_late_total", "Predicted SNTP transmit timestamps that the kernel's showed were later than the reply left, and batches sent sooner than their last stamp said (each lowers the prediction's pace at once).";
    SNTP_RECEIVE_TIMESTAMPS = "hora_sntp_receive_timestamps_total", "SNTP receive timestamps, by where they came from.";
    DATAGRAMS_SENT = "hora_datagrams_sent_total", "Datagrams sent: replies and notices, on every socket.";
    SEND_ERRORS = "hora_send_errors_total", "Replies the OS would not send.";
    RECEIVE_ERRORS = "hora_receive_errors_total", "Receives that failed.";
    RELOADS = "hora_reloads_total", "Reloads (SIGHUP), by result: applied, unchanged, refused.";
    NTS_KE = "hora_nts_ke_total", "Key exchanges (NTS-KE), by result: ok, or why not.";
    ACCEPT_BACKOFFS = "hora_accept_backoffs_total", "Accepts that failed for want of file descriptors or memory, each followed by a wait before the next, by listener.";
    NTS_REQUESTS = "hora_nts_requests_total", "NTS-authenticated SNTP requests, by result: answered, nak (a NTSN kiss: the cookie did not open or the request did not authenticate), malformed (dropped).";
    NTS_COOKIES_ISSUED = "hora_nts_cookies_issued_total", "NTS cookies issued, by the key exchange and in NTS replies.";
    ROUGHTIME_REQUESTS = "hora_roughtime_requests_total", "Roughtime requests answered, by the version answered in: rfc (RFC 10049 version 1) or draft (drafts 08 to 19).";
    ROUGHTIME_DROPPED = "hora_roughtime_dropped_total", "Roughtime requests dropped as invalid, by reason: undersized (under 1024 bytes), malformed, version (none offered is answered here), other_server (SRV names another key).";
    ROUGHTIME_SIGNATURES = "hora_roughtime_signatures_total", "Roughtime responses signed (SREP): one per batch read and version, each answering up to 64 requests.";
    ROUGHTIME_DELEGATIONS = "hora_roughtime_delegations_total", "Roughtime online keys delegated by the long-term key.";
    }
}

/// Declares [`Event`] from one list: variant, name in logs, metric family
/// (with at most one label). Every report is generated from it.
macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident => $name:ident, $family:ident, [$($label:literal = $value:literal)?];)*) => {
        /// Something that happened, counted beside the datagram outcomes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Event {
            $($(#[$doc])* $variant,)*
        }

        impl Event {
            /// Every event, in the order reports list them.
            pub const ALL: &'static [Event] = &[$(Event::$variant),*];

            /// Its name in the summary line and `/status`.
            pub fn name(self) -> &'static str {
                match self { $(Event::$variant => stringify!($name),)* }
            }

            /// Its Prometheus metric: name, label (if any), help.
            pub fn metric(self) -> (&'static str, Option<(&'static str, &'static str)>, &'static str) {
                match self {
                    $(Event::$variant => (
                        family::$family.name,
                        None$(.or(Some(($label, $value))))?,
                        family::$family.help,
                    ),)*
                }
            }
        }

        /// Logs the summary with every counter as a numeric field (so a JSON
        /// log carries numbers, not one string).
        pub fn log_summary(message: &'static str, s: &Snapshot) {
            tracing::info!(
                sessions_open = s.sessions_open,
                v2_sessions_open = s.v2_sessions_open,
                received = s.total_received(),
                answered = s.total_answered(),
                dropped = s.total_dropped(),
                // Why, summed over the protocols (`hora_dropped_total` has
                // them per protocol).
                denied = s.dropped_for(DropReason::Denied),
                rate_limited = s.dropped_for(DropReason::RateLimited),
                invalid = s.dropped_for(DropReason::Invalid),
                loop_guarded = s.dropped_for(DropReason::Loop),
                withheld = s.dropped_for(DropReason::Withheld),
                overloaded = s.dropped_for(DropReason::Overloaded),
                unauthenticated = s.dropped_for(DropReason::Unauthenticated),
                $($name = s.event(Event::$variant),)*
                "{message}"
            );
        }
    };
}

events! {
    /// A session opened.
    Login => logins, LOGINS, [];
    /// A login refused at `max_sessions_per_ip` (every session of its
    /// address had asked).
    RefusalPerIp => refusals_per_ip, LOGINS_REFUSED, ["limit" = "per_ip"];
    /// A login refused at `max_sessions` (every session had asked).
    RefusalTable => refusals_table, LOGINS_REFUSED, ["limit" = "table"];
    /// A login at `max_sessions_per_ip` that took the place of a session
    /// of its address that never asked.
    DisplacingPerIp => displacing_per_ip, LOGINS_DISPLACING, ["limit" = "per_ip"];
    /// A login at `max_sessions` that took the place of a session that
    /// never asked.
    DisplacingTable => displacing_table, LOGINS_DISPLACING, ["limit" = "table"];
    /// A session ended by option 2.
    EndLogout => ended_logout, SESSIONS_ENDED, ["reason" = "logout"];
    /// A session ended by an invalid option.
    EndInvalidOption => ended_invalid_option, SESSIONS_ENDED, ["reason" = "invalid_option"];
    /// A session idled out.
    EndIdle => ended_idle, SESSIONS_ENDED, ["reason" = "idle"];
    /// A session ended by shutdown.
    EndShutdown => ended_shutdown, SESSIONS_ENDED, ["reason" = "shutdown"];
    /// A session that never asked made room for a login.
    EndDisplaced => ended_displaced, SESSIONS_ENDED, ["reason" = "displaced"];
    /// A time reply of the seed's protocol.
    TimeServed => time_served, TIME_REPLIES, [];
    /// A `Sessao inexistente` reply to a peer without a session.
    NoSession => no_session, NO_SESSION_REPLIES, [];
    /// A datagram of the seed's protocol that was not a request (any peer).
    InvalidDatagram => invalid_datagrams, INVALID_DATAGRAMS, [];
    /// A protocol v2 login answered with a challenge (no state kept).
    V2Challenge => v2_challenges, V2_CHALLENGES, [];
    /// A protocol v2 session opened: its address proven by a good cookie.
    V2Login => v2_logins, V2_LOGINS, [];
    /// A protocol v2 confirmation refused at a limit (every v2 session in
    /// the way is proven).
    V2Refused => v2_refused, V2_LOGINS_REFUSED, [];
    /// A protocol v2 confirmation whose cookie did not check: dropped.
    V2CookieRefused => v2_cookies_refused, V2_COOKIES_REFUSED, [];
    /// A protocol v2 request whose token is not its session's: dropped.
    V2TokenWrong => v2_tokens_wrong, V2_TOKENS_WRONG, [];
    /// A time answer of protocol v2.
    V2TimeServed => v2_time_served, V2_TIME_REPLIES, [];
    /// An SNTP `RATE` kiss-o'-death sent.
    KissOfDeath => kisses_of_death, SNTP_KISS_OF_DEATH, [];
    /// An interleaved-mode SNTP request answered in interleaved mode.
    InterleavedAnswered => interleaved_answered, SNTP_INTERLEAVED_REQUESTS, ["answer" = "interleaved"];
    /// One whose earlier reply is logged without the kernel's time.
    InterleavedMissingTransmit => interleaved_missing_transmit, SNTP_INTERLEAVED_REQUESTS, ["answer" = "basic_no_transmit_time"];
    /// One whose earlier reply is not in the log.
    InterleavedNotLogged => interleaved_not_logged, SNTP_INTERLEAVED_REQUESTS, ["answer" = "basic_not_logged"];
    /// A kernel transmit timestamp of a plain SNTP reply read back.
    KernelTransmit => kernel_transmit_timestamps, SNTP_KERNEL_TRANSMIT_TIMESTAMPS, [];
    /// A predicted transmit timestamp later than the kernel's.
    TransmitLate => transmit_predictions_late, SNTP_TRANSMIT_PREDICTIONS_LATE, [];
    /// An SNTP receive timestamp from the kernel.
    KernelTimestamp => kernel_timestamps, SNTP_RECEIVE_TIMESTAMPS, ["source" = "kernel"];
    /// An SNTP receive timestamp read from the clock (no kernel timestamp).
    ClockTimestamp => clock_timestamps, SNTP_RECEIVE_TIMESTAMPS, ["source" = "clock"];
    /// A datagram sent: a reply or a notice.
    Sent => sent, DATAGRAMS_SENT, [];
    /// A send the OS refused.
    SendError => send_errors, SEND_ERRORS, [];
    /// A receive that failed.
    ReceiveError => receive_errors, RECEIVE_ERRORS, [];
    /// A reload (SIGHUP) that applied a changed configuration.
    ReloadApplied => reloads_applied, RELOADS, ["result" = "applied"];
    /// A reload whose configuration changed nothing that applies live.
    ReloadUnchanged => reloads_unchanged, RELOADS, ["result" = "unchanged"];
    /// A reload refused: the running configuration stays.
    ReloadRefused => reloads_refused, RELOADS, ["result" = "refused"];
    /// A key exchange that gave a client its keys and cookies.
    NtsKeOk => nts_ke_ok, NTS_KE, ["result" = "ok"];
    /// A key exchange whose TLS handshake failed (not TLS 1.3, garbage).
    NtsKeTls => nts_ke_tls_failed, NTS_KE, ["result" = "tls_failed"];
    /// A key exchange whose client did not ask for ALPN `ntske/1`.
    NtsKeAlpn => nts_ke_no_alpn, NTS_KE, ["result" = "no_alpn"];
    /// A key exchange request that broke RFC 8915 (an Error record sent).
    NtsKeBadRequest => nts_ke_bad_request, NTS_KE, ["result" = "bad_request"];
    /// A key exchange that agreed on no protocol or algorithm.
    NtsKeNoAgreement => nts_ke_no_agreement, NTS_KE, ["result" = "no_agreement"];
    /// A key exchange cut at its deadline (a slow or idle client).
    NtsKeTimeout => nts_ke_timeout, NTS_KE, ["result" = "timeout"];
    /// A connection closed at once: too many open (from its address).
    NtsKeBusy => nts_ke_busy, NTS_KE, ["result" = "busy"];
    /// A key exchange cut for a newcomer while the listener was full, after
    /// running its deadline when full.
    NtsKeEvicted => nts_ke_evicted, NTS_KE, ["result" = "evicted"];
    /// A connection closed at once: its address failed too many exchanges.
    NtsKeRateLimited => nts_ke_rate_limited, NTS_KE, ["result" = "rate_limited"];
    /// A connection from outside the access lists, closed at once.
    NtsKeDenied => nts_ke_denied, NTS_KE, ["result" = "denied"];
    /// A key exchange the server could not finish (no cookie key, I/O).
    NtsKeInternal => nts_ke_internal_error, NTS_KE, ["result" = "internal_error"];
    /// The key exchange's listener out of file descriptors or memory:
    /// it waited before accepting again.
    NtsKeAcceptBackoff => nts_ke_accept_backoffs, ACCEPT_BACKOFFS, ["listener" = "nts_ke"];
    /// The operators' HTTP listener out of file descriptors or memory.
    HttpAcceptBackoff => http_accept_backoffs, ACCEPT_BACKOFFS, ["listener" = "http"];
    /// An NTS request answered with authenticated time.
    NtsAnswered => nts_answered, NTS_REQUESTS, ["result" = "answered"];
    /// An NTS request answered with a NTSN kiss-o'-death.
    NtsNak => nts_naks, NTS_REQUESTS, ["result" = "nak"];
    /// An NTS request that could not be read, dropped.
    NtsMalformed => nts_malformed, NTS_REQUESTS, ["result" = "malformed"];
    /// A cookie sealed for a client, by the key exchange or in a reply.
    NtsCookie => nts_cookies_issued, NTS_COOKIES_ISSUED, [];
    /// A Roughtime request answered in RFC 10049's version 1.
    RoughtimeRfc => roughtime_rfc, ROUGHTIME_REQUESTS, ["version" = "rfc"];
    /// A Roughtime request answered in a draft's version.
    RoughtimeDraft => roughtime_draft, ROUGHTIME_REQUESTS, ["version" = "draft"];
    /// A Roughtime request under 1024 bytes, dropped.
    RoughtimeUndersized => roughtime_undersized, ROUGHTIME_DROPPED, ["reason" = "undersized"];
    /// A Roughtime request that is no message of the protocol, dropped.
    RoughtimeMalformed => roughtime_malformed, ROUGHTIME_DROPPED, ["reason" = "malformed"];
    /// A Roughtime request offering no version answered here, dropped.
    RoughtimeVersion => roughtime_no_version, ROUGHTIME_DROPPED, ["reason" = "version"];
    /// A Roughtime request for another server's key, dropped.
    RoughtimeOtherServer => roughtime_other_server, ROUGHTIME_DROPPED, ["reason" = "other_server"];
    /// A Roughtime response signed (a batch's, of one version).
    RoughtimeSignature => roughtime_signatures, ROUGHTIME_SIGNATURES, [];
    /// A Roughtime online key delegated.
    RoughtimeDelegation => roughtime_delegations, ROUGHTIME_DELEGATIONS, [];
}

/// One set of counters: plain atomics, relaxed ordering being enough for
/// counting. Each worker writes its own ([`Stats::worker`]), so no two
/// cores write the same cache line per datagram; the key exchange, reloads
/// and the rest of the daemon write one more set.
#[derive(Debug)]
#[repr(align(128))]
pub struct Counters {
    datagrams: [[AtomicU64; OUTCOMES]; SERVICES],
    events: [AtomicU64; EVENTS],
}

const EVENTS: usize = Event::ALL.len();

impl Default for Counters {
    fn default() -> Self {
        Counters {
            datagrams: Default::default(),
            events: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Answered => 0,
        Outcome::Dropped(reason) => 1 + reason as usize,
    }
}

impl Counters {
    /// Counts what became of one datagram: call it once per datagram.
    pub fn datagram(&self, service: Service, outcome: Outcome) {
        self.datagrams[service as usize][outcome_index(outcome)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` of one event.
    pub fn add(&self, event: Event, n: u64) {
        if let Some(counter) = self.events.get(event as usize) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts one event.
    pub fn event(&self, event: Event) {
        self.add(event, 1);
    }

    /// Datagrams received: every outcome of every service.
    fn received(&self) -> u64 {
        self.datagrams
            .iter()
            .flatten()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum()
    }
}

/// The daemon's counters, from start-up: a set per worker and one for the
/// rest, summed by every report.
#[derive(Debug)]
pub struct Stats {
    /// The workers' sets, then the rest's.
    sets: Box<[Counters]>,
}

impl Default for Stats {
    /// The counters of a daemon with one worker.
    fn default() -> Self {
        Stats::new(1)
    }
}

impl Stats {
    /// Counters for `workers` workers (at least one) and the rest.
    pub fn new(workers: usize) -> Stats {
        Stats {
            sets: (0..=workers.max(1)).map(|_| Counters::default()).collect(),
        }
    }

    /// The set worker `index` writes (the last worker's, past the end).
    pub fn worker(&self, index: usize) -> &Counters {
        &self.sets[index.min(self.sets.len() - 2)]
    }

    /// How many workers count here.
    pub fn workers(&self) -> usize {
        self.sets.len() - 1
    }

    fn rest(&self) -> &Counters {
        &self.sets[self.sets.len() - 1]
    }

    /// Counts what became of one datagram outside the workers.
    pub fn datagram(&self, service: Service, outcome: Outcome) {
        self.rest().datagram(service, outcome);
    }

    /// Counts `n` of one event outside the workers.
    pub fn add(&self, event: Event, n: u64) {
        self.rest().add(event, n);
    }

    /// Counts one event outside the workers (a key exchange, a reload).
    pub fn event(&self, event: Event) {
        self.rest().event(event);
    }

    /// The counters now, summed over every set, with the number of open
    /// sessions of the seed's protocol (v2's: [`Snapshot::with_v2_sessions`]).
    pub fn snapshot(&self, sessions_open: usize) -> Snapshot {
        let mut datagrams = [[0; OUTCOMES]; SERVICES];
        let mut events = vec![0; EVENTS];
        for set in self.sets.iter() {
            for (row, counters) in datagrams.iter_mut().zip(&set.datagrams) {
                for (value, counter) in row.iter_mut().zip(counters) {
                    *value += counter.load(Ordering::Relaxed);
                }
            }
            for (value, counter) in events.iter_mut().zip(&set.events) {
                *value += counter.load(Ordering::Relaxed);
            }
        }
        Snapshot {
            sessions_open,
            v2_sessions_open: 0,
            datagrams,
            events,
            workers_received: self.sets[..self.workers()]
                .iter()
                .map(Counters::received)
                .collect(),
        }
    }
}

/// The counters at one moment, for every report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Sessions of the seed's protocol open.
    pub sessions_open: usize,
    /// Protocol v2's sessions open (a table of their own, under the same
    /// limits): every report names both.
    pub v2_sessions_open: usize,
    datagrams: [[u64; OUTCOMES]; SERVICES],
    events: Vec<u64>,
    /// Datagrams each worker received, by worker.
    workers_received: Vec<u64>,
}

impl Snapshot {
    /// The snapshot with protocol v2's open sessions counted.
    pub fn with_v2_sessions(mut self, open: usize) -> Snapshot {
        self.v2_sessions_open = open;
        self
    }

    /// Datagrams of `service` answered.
    pub fn answered(&self, service: Service) -> u64 {
        self.datagrams[service as usize][0]
    }

    /// Datagrams of `service` dropped for `reason`.
    pub fn dropped(&self, service: Service, reason: DropReason) -> u64 {
        self.datagrams[service as usize][outcome_index(Outcome::Dropped(reason))]
    }

    /// Datagrams of `service` received: answered plus dropped.
    pub fn received(&self, service: Service) -> u64 {
        self.datagrams[service as usize].iter().sum()
    }

    /// Datagrams answered, over every service.
    pub fn total_answered(&self) -> u64 {
        Service::ALL.iter().map(|&s| self.answered(s)).sum()
    }

    /// Datagrams dropped for `reason`, over every service.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        Service::ALL.iter().map(|&s| self.dropped(s, reason)).sum()
    }

    /// Datagrams dropped, for any reason, over every service.
    pub fn total_dropped(&self) -> u64 {
        DropReason::ALL.iter().map(|&r| self.dropped_for(r)).sum()
    }

    /// Datagrams received, over every service.
    pub fn total_received(&self) -> u64 {
        Service::ALL.iter().map(|&s| self.received(s)).sum()
    }

    /// Datagrams each worker received (every protocol's), by worker: how
    /// evenly the source addresses spread over them.
    pub fn workers_received(&self) -> &[u64] {
        &self.workers_received
    }

    /// How many times `event` happened.
    pub fn event(&self, event: Event) -> u64 {
        self.events.get(event as usize).copied().unwrap_or(0)
    }

    /// Every counter as `(name, value)`, in report order: the summary
    /// line's and `/status`'s list.
    pub fn fields(&self) -> Vec<(String, u64)> {
        let mut fields = vec![
            ("sessions_open".to_owned(), self.sessions_open as u64),
            ("v2_sessions_open".to_owned(), self.v2_sessions_open as u64),
        ];
        for service in Service::ALL {
            let name = service.name();
            fields.push((format!("{name}_received"), self.received(service)));
            fields.push((format!("{name}_answered"), self.answered(service)));
        }
        for reason in DropReason::ALL {
            fields.push((
                format!("dropped_{}", reason.name()),
                self.dropped_for(reason),
            ));
        }
        for &event in Event::ALL {
            fields.push((event.name().to_owned(), self.event(event)));
        }
        fields
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (name, value)) in self.fields().iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_is_answered_plus_every_drop() {
        let stats = Stats::default();
        stats.datagram(Service::Seed, Outcome::Answered);
        stats.datagram(Service::Seed, Outcome::Dropped(DropReason::Invalid));
        stats.datagram(Service::Sntp, Outcome::Dropped(DropReason::RateLimited));
        stats.datagram(Service::Time, Outcome::Dropped(DropReason::Loop));
        stats.event(Event::Login);
        let now = stats.snapshot(1);
        assert_eq!(now.received(Service::Seed), 2);
        assert_eq!(now.total_received(), 4);
        assert_eq!(
            now.total_received(),
            now.total_answered() + now.total_dropped()
        );
        assert_eq!(now.dropped_for(DropReason::Loop), 1);
        assert_eq!(now.event(Event::Login), 1);
        assert_eq!(now.workers_received(), [0], "counted outside the worker");
        let line = now.to_string();
        assert!(
            line.starts_with("sessions_open=1 v2_sessions_open=0 seed_received=2 seed_answered=1 "),
            "{line}"
        );
        assert!(
            line.contains(" dropped_invalid=1 ") && line.contains(" logins=1 "),
            "{line}"
        );
    }

    #[test]
    fn every_worker_counts_apart_and_reports_sum_them() {
        let stats = Stats::new(2);
        stats.worker(0).datagram(Service::Seed, Outcome::Answered);
        stats.worker(1).datagram(Service::Sntp, Outcome::Answered);
        stats
            .worker(1)
            .datagram(Service::Sntp, Outcome::Dropped(DropReason::Invalid));
        stats.worker(1).event(Event::KernelTimestamp);
        stats.event(Event::NtsKeOk);
        let now = stats.snapshot(0);
        assert_eq!(now.workers_received(), [1, 2]);
        assert_eq!(now.total_received(), 3);
        assert_eq!(now.answered(Service::Sntp), 1);
        assert_eq!(now.event(Event::KernelTimestamp), 1);
        assert_eq!(now.event(Event::NtsKeOk), 1);
        assert_eq!(stats.workers(), 2);
    }

    #[test]
    fn every_event_has_a_metric_named_as_prometheus_wants() {
        for &event in Event::ALL {
            let (metric, label, help) = event.metric();
            assert!(
                metric.starts_with("hora_") && metric.ends_with("_total"),
                "{metric}"
            );
            assert!(!help.is_empty());
            if let Some((key, value)) = label {
                assert!(!key.is_empty() && !value.is_empty());
            }
        }
    }

    /// A `Write` into a shared buffer, for a subscriber in a test.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The summary line names its fields one by one (a log field's name is
    /// fixed at compile time): each drop reason must have one.
    #[test]
    fn the_summary_line_has_a_field_for_every_drop_reason() {
        let stats = Stats::default();
        // Reason i dropped 2^i datagrams: a count no other field has.
        for (i, &reason) in DropReason::ALL.iter().enumerate() {
            for _ in 0..1u64 << i {
                stats.datagram(Service::Sntp, Outcome::Dropped(reason));
            }
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            log_summary("summary", &stats.snapshot(0));
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let fields = line["fields"].as_object().unwrap();
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert!(
                fields.values().any(|value| value.as_u64() == Some(1 << i)),
                "{reason:?} has no field in {fields:?}"
            );
        }
    }
}
