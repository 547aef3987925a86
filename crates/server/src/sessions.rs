//! The session table: one entry per peer `SocketAddr`, with the limits.
//!
//! The table is shared by the receive loop and the idle timers, behind one
//! mutex held only for a map operation. Every path that ends a session goes
//! through [`remove`], which drops the map entry, the per-IP count and the
//! idle timer together, so an ended session leaves nothing behind.
//!
//! When a limit is reached, a new login may take the place of a session that
//! has not asked for the time since its login (what a forged login leaves),
//! the oldest first ([`hora_proto::displace`]). Such sessions wait in login
//! order in two queues, one for the whole table and one per IP; an entry that
//! has since asked or ended is skipped when met, and the queues are compacted
//! when stale entries outnumber live ones, so each login costs O(1) amortized.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use hora_proto::{
    answers_stranger, decide, displace, establishes, expire, shut_down, Decision, Effect,
    ParseError, PeerState, Request, Rules,
};
use tokio::task::AbortHandle;

/// A short id for a session, for logs: peers come and go on the same address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{:x}", self.0)
    }
}

/// The session limits from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most sessions at once.
    pub max_sessions: usize,
    /// The most sessions at once from one IP address.
    pub max_sessions_per_ip: usize,
}

/// One open session.
#[derive(Debug)]
struct Entry {
    id: SessionId,
    idle_deadline: Instant,
    timer: Option<AbortHandle>,
    /// Whether the peer has asked for the time ([`establishes`]): such a
    /// session is never displaced.
    established: bool,
    /// When it opened, for the duration histogram.
    opened: Instant,
}

/// Upper bounds (seconds) of the session-duration histogram's buckets; the
/// last bucket, past them, is `+Inf`. The seed's idle timeout is 10 s.
pub const DURATION_BUCKETS: [f64; 8] = [1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0];

/// How long ended sessions lasted: a count per bucket, and the sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Durations {
    /// Sessions per bucket of [`DURATION_BUCKETS`], then past the last.
    pub counts: [u64; DURATION_BUCKETS.len() + 1],
    /// The sum of the durations, in seconds.
    pub sum: f64,
}

impl Durations {
    fn record(&mut self, lasted: std::time::Duration) {
        let seconds = lasted.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    /// Sessions ended.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A session that had not asked when it was queued: `(peer, id)`.
type Candidate = (SocketAddr, SessionId);

/// The sessions from one IP address.
#[derive(Debug, Default)]
struct PerIp {
    count: usize,
    unestablished: VecDeque<Candidate>,
}

#[derive(Debug, Default)]
struct Table {
    by_peer: HashMap<SocketAddr, Entry>,
    per_ip: HashMap<IpAddr, PerIp>,
    unestablished: VecDeque<Candidate>,
    next_id: u64,
    durations: Durations,
}

/// The open sessions and the limits on them.
#[derive(Debug)]
pub struct Sessions {
    table: Mutex<Table>,
    limits: Mutex<Limits>,
}

/// What a request did, for the receive loop to carry out and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// The state machine's decision.
    pub decision: Decision,
    /// The peer's session, if it had or now has one.
    pub session: Option<SessionId>,
    /// The session that made room for this login, if one had to: its peer,
    /// its id and what to tell it.
    pub displaced: Option<(SocketAddr, SessionId, Decision)>,
}

/// Whether the peer of a datagram has a session, for the checks that
/// treat strangers differently (see `hora_proto::overload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The peer has an open session.
    Session,
    /// The peer has none: its request would open one, or be told it has none.
    Stranger,
}

/// Why a datagram the protocol would answer got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Its peer has no session and the server is behind.
    Shed,
    /// Its source is over its rate limit.
    RateLimited,
}

/// What an idle timer finds when it wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerCheck {
    /// The session idled out and was removed; send the peer this decision's reply.
    Expired(Decision),
    /// The peer spoke since; sleep again until this deadline.
    Later(Instant),
    /// The session already ended another way; the timer has nothing to do.
    Gone,
}

impl Sessions {
    /// An empty table with these limits.
    pub fn new(limits: Limits) -> Self {
        Sessions {
            table: Mutex::new(Table::default()),
            limits: Mutex::new(limits),
        }
    }

    /// New limits (a reload): they apply to logins from now on; no open
    /// session is ended because a limit shrank.
    pub fn set_limits(&self, limits: Limits) {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner) = limits;
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.lock().by_peer.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs a datagram from `peer` through the state machine and applies the
    /// decision to the table: opens (displacing an unestablished session if
    /// a limit is reached), moves the deadline of, or ends the peer's
    /// session. A newly opened session has no timer yet: the caller spawns
    /// one and hands it over with [`Sessions::set_timer`].
    ///
    /// `answerable` is asked only when the decision has a reply (a datagram
    /// that gets no answer costs nothing), told whether the peer has a
    /// session: the overload shedding and the rate limit. If it says no,
    /// nothing changes and its reason is returned.
    pub fn handle(
        &self,
        peer: SocketAddr,
        request: Result<Request, ParseError>,
        now: Instant,
        rules: Rules,
        answerable: impl FnOnce(Known) -> Result<(), Unanswered>,
    ) -> Result<Handled, Unanswered> {
        let mut table = self.lock();
        // A session's request: one look-up, and the common case (it keeps
        // the session) is done under it.
        if let Some(entry) = table.by_peer.get_mut(&peer) {
            let decision = decide(PeerState::LoggedIn, request, now, rules);
            if decision.reply.is_some() {
                answerable(Known::Session)?;
            }
            let session = match decision.effect {
                Effect::Keep { idle_deadline } => {
                    entry.idle_deadline = idle_deadline;
                    entry.established |= establishes(&request);
                    entry.id
                }
                _ => {
                    let id = entry.id;
                    if let Effect::End(_) = decision.effect {
                        remove(&mut table, peer);
                    }
                    id
                }
            };
            return Ok(Handled {
                decision,
                session: Some(session),
                displaced: None,
            });
        }
        // The checks come before the look for room, so a shed login costs
        // little.
        if answers_stranger(&request) {
            answerable(Known::Stranger)?;
        }
        let room = self.room(&mut table, peer.ip());
        let state = PeerState::NoSession {
            may_open: room != Room::None,
        };
        let decision = decide(state, request, now, rules);
        let mut displaced = None;
        let session = match decision.effect {
            Effect::Open { idle_deadline } => {
                if let Room::Displacing(candidate) = room {
                    remove(&mut table, candidate.0);
                    displaced = Some((candidate.0, candidate.1, displace()));
                }
                table.next_id += 1;
                let id = SessionId(table.next_id);
                table.by_peer.insert(
                    peer,
                    Entry {
                        id,
                        idle_deadline,
                        timer: None,
                        established: false,
                        opened: now,
                    },
                );
                table.queue_unestablished(peer, id);
                Some(id)
            }
            // A peer without a session neither keeps nor ends one.
            Effect::Keep { .. } | Effect::End(_) | Effect::Refuse | Effect::Nothing => None,
        };
        Ok(Handled {
            decision,
            session,
            displaced,
        })
    }

    /// Gives session `id` of `peer` its idle timer, so that ending the
    /// session stops it. If the session is already gone, the timer is
    /// stopped at once.
    pub fn set_timer(&self, peer: SocketAddr, id: SessionId, timer: AbortHandle) {
        let mut table = self.lock();
        match table.by_peer.get_mut(&peer) {
            Some(entry) if entry.id == id => entry.timer = Some(timer),
            _ => timer.abort(),
        }
    }

    /// Called by session `id`'s idle timer when it wakes at `now`: ends the
    /// session if its deadline has passed.
    pub fn check_idle(&self, peer: SocketAddr, id: SessionId, now: Instant) -> TimerCheck {
        let mut table = self.lock();
        let Some(entry) = table.by_peer.get_mut(&peer).filter(|entry| entry.id == id) else {
            return TimerCheck::Gone;
        };
        match expire(entry.idle_deadline, now) {
            None => TimerCheck::Later(entry.idle_deadline),
            Some(decision) => {
                // The timer is the caller itself: it must not be aborted here.
                entry.timer = None;
                remove(&mut table, peer);
                TimerCheck::Expired(decision)
            }
        }
    }

    /// Ends every session for shutdown, stopping their timers. Returns each
    /// peer with its session and the decision (the shutdown notice) to send.
    pub fn close_all(&self) -> Vec<(SocketAddr, SessionId, Decision)> {
        let mut table = self.lock();
        let Table {
            by_peer,
            per_ip,
            unestablished,
            durations,
            ..
        } = &mut *table;
        per_ip.clear();
        unestablished.clear();
        by_peer
            .drain()
            .map(|(peer, entry)| {
                if let Some(timer) = entry.timer {
                    timer.abort();
                }
                durations.record(entry.opened.elapsed());
                (peer, entry.id, shut_down())
            })
            .collect()
    }

    /// How long the sessions ended so far lasted.
    pub fn durations(&self) -> Durations {
        self.lock().durations.clone()
    }

    /// Whether a new session from `ip` fits in the limits, and if only by
    /// displacing one, which. The per-IP limit is looked at first: a session
    /// from the same IP frees a place under both limits.
    fn room(&self, table: &mut Table, ip: IpAddr) -> Room {
        let limits = *self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        let ip_full = table.per_ip.get(&ip).map_or(0, |p| p.count) >= limits.max_sessions_per_ip;
        let table_full = table.by_peer.len() >= limits.max_sessions;
        let candidate = if ip_full {
            let Table {
                by_peer, per_ip, ..
            } = table;
            per_ip
                .get_mut(&ip)
                .and_then(|p| oldest_unestablished(&mut p.unestablished, by_peer))
        } else if table_full {
            let Table {
                by_peer,
                unestablished,
                ..
            } = table;
            oldest_unestablished(unestablished, by_peer)
        } else {
            return Room::Free;
        };
        candidate.map_or(Room::None, Room::Displacing)
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated
        // in a way that matters more than stopping the daemon would.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a login fits, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Under both limits.
    Free,
    /// At a limit, but this unestablished session can make room.
    Displacing(Candidate),
    /// At a limit, and every session in the way has asked for the time.
    None,
}

impl Table {
    /// Queues a new session as unestablished, in both queues, compacting
    /// a queue whose stale entries outnumber its live ones.
    fn queue_unestablished(&mut self, peer: SocketAddr, id: SessionId) {
        let Table {
            by_peer,
            per_ip,
            unestablished,
            ..
        } = self;
        let ip = per_ip.entry(peer.ip()).or_default();
        ip.count += 1;
        ip.unestablished.push_back((peer, id));
        if ip.unestablished.len() > 2 * ip.count + 8 {
            ip.unestablished.retain(|c| is_unestablished(c, by_peer));
        }
        unestablished.push_back((peer, id));
        if unestablished.len() > 2 * by_peer.len() + 64 {
            unestablished.retain(|c| is_unestablished(c, by_peer));
        }
    }
}

/// Whether `candidate` is still open and has not asked for the time.
fn is_unestablished(candidate: &Candidate, by_peer: &HashMap<SocketAddr, Entry>) -> bool {
    by_peer
        .get(&candidate.0)
        .is_some_and(|entry| entry.id == candidate.1 && !entry.established)
}

/// The oldest queued session that is still open and unestablished, dropping
/// the stale entries in front of it.
fn oldest_unestablished(
    queue: &mut VecDeque<Candidate>,
    by_peer: &HashMap<SocketAddr, Entry>,
) -> Option<Candidate> {
    while let Some(candidate) = queue.front() {
        if is_unestablished(candidate, by_peer) {
            return Some(*candidate);
        }
        queue.pop_front();
    }
    None
}

/// Removes `peer`'s session: entry, per-IP count and timer, and records how
/// long it lasted. Its place in the unestablished queues goes stale and is
/// dropped when met.
fn remove(table: &mut Table, peer: SocketAddr) -> Option<Entry> {
    let entry = table.by_peer.remove(&peer)?;
    table.durations.record(entry.opened.elapsed());
    if let Some(ip) = table.per_ip.get_mut(&peer.ip()) {
        ip.count = ip.count.saturating_sub(1);
        if ip.count == 0 {
            table.per_ip.remove(&peer.ip());
        }
    }
    if let Some(timer) = &entry.timer {
        timer.abort();
    }
    Some(entry)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hora_proto::{EndReason, Reply};

    use super::*;

    fn sessions(max_sessions: usize, max_sessions_per_ip: usize) -> Sessions {
        Sessions::new(Limits {
            max_sessions,
            max_sessions_per_ip,
        })
    }

    fn peer(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    const RULES: Rules = Rules {
        idle_timeout: Duration::from_secs(10),
    };

    /// A datagram handled with the rate limit letting everything through.
    fn handle(
        table: &Sessions,
        peer: SocketAddr,
        request: Result<Request, ParseError>,
        now: Instant,
    ) -> Handled {
        table
            .handle(peer, request, now, RULES, |_| Ok(()))
            .expect("not rate limited")
    }

    #[test]
    fn login_opens_and_logout_removes_the_entry() {
        let table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1000);
        let opened = handle(&table, a, Ok(Request::Login), now);
        assert!(opened.session.is_some());
        assert_eq!(table.len(), 1);
        let closed = handle(&table, a, Ok(Request::Logout), now);
        assert_eq!(closed.session, opened.session);
        assert_eq!(closed.decision.effect, Effect::End(EndReason::Logout));
        assert!(table.is_empty());
        assert!(table.lock().per_ip.is_empty());
    }

    #[test]
    fn invalid_option_ends_only_that_session() {
        let table = sessions(10, 10);
        let now = Instant::now();
        let (a, b) = (peer([127, 0, 0, 1], 1), peer([127, 0, 0, 1], 2));
        handle(&table, a, Ok(Request::Login), now);
        handle(&table, b, Ok(Request::Login), now);
        let bad = handle(&table, a, Err(ParseError::UnknownOption), now);
        assert_eq!(bad.decision.reply, Some(Reply::InvalidOption));
        assert_eq!(table.len(), 1);
        let time = handle(&table, b, Ok(Request::Time), now);
        assert_eq!(time.decision.reply, Some(Reply::Time));
    }

    #[test]
    fn limits_refuse_new_logins_when_every_session_has_asked() {
        let table = sessions(3, 2);
        let now = Instant::now();
        let one = [10, 0, 0, 1];
        let login = |p| handle(&table, p, Ok(Request::Login), now).decision.effect;
        let ask = |p| handle(&table, p, Ok(Request::Time), now);
        assert!(matches!(login(peer(one, 1)), Effect::Open { .. }));
        assert!(matches!(login(peer(one, 2)), Effect::Open { .. }));
        ask(peer(one, 1));
        ask(peer(one, 2));
        assert_eq!(login(peer(one, 3)), Effect::Refuse, "per-IP limit");
        assert!(matches!(login(peer([10, 0, 0, 2], 1)), Effect::Open { .. }));
        ask(peer([10, 0, 0, 2], 1));
        assert_eq!(
            login(peer([10, 0, 0, 3], 1)),
            Effect::Refuse,
            "global limit"
        );
        // A session already open may log in again (a resent login).
        assert!(matches!(login(peer(one, 1)), Effect::Keep { .. }));
        assert_eq!(table.len(), 3);
        // Ending one makes room again.
        handle(&table, peer(one, 1), Ok(Request::Logout), now);
        assert!(matches!(login(peer(one, 3)), Effect::Open { .. }));
    }

    #[test]
    fn at_the_per_ip_limit_the_oldest_session_that_never_asked_makes_room() {
        let table = sessions(100, 3);
        let now = Instant::now();
        let ip = [10, 0, 0, 1];
        let ids: Vec<_> = (1..=3)
            .map(|port| handle(&table, peer(ip, port), Ok(Request::Login), now).session)
            .collect();
        // The first one asks: it is someone's, and stays.
        handle(&table, peer(ip, 1), Ok(Request::Time), now);
        let fourth = handle(&table, peer(ip, 4), Ok(Request::Login), now);
        assert!(matches!(fourth.decision.effect, Effect::Open { .. }));
        let (gone, gone_id, notice) = fourth.displaced.expect("one made room");
        assert_eq!((gone, Some(gone_id)), (peer(ip, 2), ids[1]));
        assert_eq!(notice.reply, Some(Reply::Refused));
        assert_eq!(notice.effect, Effect::End(EndReason::Displaced));
        assert_eq!(table.len(), 3);
        // Port 2's session is gone: its next option finds none.
        let late = handle(&table, peer(ip, 2), Ok(Request::Time), now);
        assert_eq!(late.decision.reply, Some(Reply::NoSession));
        // Ports 3 then 4 go next; port 1 never does.
        for (port, expected) in [(5, 3), (6, 4)] {
            let handled = handle(&table, peer(ip, port), Ok(Request::Login), now);
            assert_eq!(handled.displaced.map(|d| d.0), Some(peer(ip, expected)));
        }
        handle(&table, peer(ip, 5), Ok(Request::Time), now);
        handle(&table, peer(ip, 6), Ok(Request::Time), now);
        let refused = handle(&table, peer(ip, 7), Ok(Request::Login), now);
        assert_eq!(refused.decision.effect, Effect::Refuse);
        assert_eq!(refused.displaced, None);
        assert_eq!(
            handle(&table, peer(ip, 1), Ok(Request::Time), now)
                .decision
                .reply,
            Some(Reply::Time)
        );
    }

    #[test]
    fn at_the_global_limit_the_oldest_session_that_never_asked_makes_room() {
        let table = sessions(3, 10);
        let now = Instant::now();
        let real = peer([10, 0, 0, 1], 1);
        handle(&table, real, Ok(Request::Login), now);
        handle(&table, real, Ok(Request::Time), now);
        handle(&table, peer([10, 0, 0, 2], 1), Ok(Request::Login), now);
        handle(&table, peer([10, 0, 0, 3], 1), Ok(Request::Login), now);
        // A flood of forged logins from many addresses: each new one pushes
        // out the oldest forged one; the real session stays.
        for n in 4..=200u8 {
            let handled = handle(&table, peer([10, 0, 1, n], 1), Ok(Request::Login), now);
            assert!(
                matches!(handled.decision.effect, Effect::Open { .. }),
                "{n}"
            );
            assert!(handled.displaced.is_some());
            assert_eq!(table.len(), 3);
        }
        let time = handle(&table, real, Ok(Request::Time), now);
        assert_eq!(time.decision.reply, Some(Reply::Time));
        // The queues hold no more than a few stale entries.
        let locked = table.lock();
        assert!(locked.unestablished.len() <= 2 * 3 + 64);
    }

    #[test]
    fn the_queues_stay_small_however_many_sessions_come_and_go() {
        let table = sessions(1000, 1000);
        let now = Instant::now();
        for round in 0..20_000u32 {
            let p = peer([10, 0, 0, 1], (round % 50) as u16 + 1);
            handle(&table, p, Ok(Request::Login), now);
            handle(&table, p, Ok(Request::Time), now);
            handle(&table, p, Ok(Request::Logout), now);
        }
        let locked = table.lock();
        assert!(locked.by_peer.is_empty());
        assert!(locked.per_ip.is_empty());
        assert!(
            locked.unestablished.len() <= 64,
            "{}",
            locked.unestablished.len()
        );
    }

    #[test]
    fn a_datagram_left_unanswered_changes_nothing() {
        let table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        for reason in [Unanswered::RateLimited, Unanswered::Shed] {
            assert_eq!(
                table.handle(a, Ok(Request::Login), now, RULES, |_| Err(reason)),
                Err(reason)
            );
            assert!(table.is_empty());
        }
        // Garbage from a peer without a session gets no answer: the checks
        // are not even asked.
        let garbage = table.handle(a, Err(ParseError::NotANumber), now, RULES, |_| {
            panic!("asked the checks for a datagram that gets no answer")
        });
        assert_eq!(garbage.map(|h| h.decision.reply), Ok(None));
    }

    #[test]
    fn a_shed_login_at_the_limit_displaces_no_one() {
        let table = sessions(1, 1);
        let now = Instant::now();
        let (a, b) = (peer([127, 0, 0, 1], 1), peer([127, 0, 0, 2], 2));
        handle(&table, a, Ok(Request::Login), now);
        assert_eq!(
            table.handle(b, Ok(Request::Login), now, RULES, |_| Err(Unanswered::Shed)),
            Err(Unanswered::Shed)
        );
        assert_eq!(table.len(), 1);
        // The session that never asked is still there: a session's request
        // from it is answered, not told it has none.
        let time = handle(&table, a, Ok(Request::Time), now);
        assert_eq!(time.decision.reply, Some(Reply::Time));
    }

    #[test]
    fn the_checks_are_told_whether_the_peer_has_a_session() {
        let table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        let mut told = Vec::new();
        for request in [Ok(Request::Login), Ok(Request::Time)] {
            table
                .handle(a, request, now, RULES, |known| {
                    told.push(known);
                    Ok(())
                })
                .unwrap();
        }
        // A session's request goes on even when strangers are shed.
        let time = table.handle(a, Ok(Request::Time), now, RULES, |known| match known {
            Known::Session => Ok(()),
            Known::Stranger => Err(Unanswered::Shed),
        });
        assert_eq!(time.map(|h| h.decision.reply), Ok(Some(Reply::Time)));
        assert_eq!(told, [Known::Stranger, Known::Session]);
    }

    #[test]
    fn idle_check_expires_only_at_the_current_deadline() {
        let table = sessions(10, 10);
        let start = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        let id = handle(&table, a, Ok(Request::Login), start)
            .session
            .unwrap();
        let first_deadline = start + RULES.idle_timeout;
        // Activity at +4s moves the deadline to +14s.
        handle(&table, a, Ok(Request::Time), start + Duration::from_secs(4));
        assert_eq!(
            table.check_idle(a, id, first_deadline),
            TimerCheck::Later(start + Duration::from_secs(14))
        );
        let expired = table.check_idle(a, id, start + Duration::from_secs(14));
        assert!(matches!(expired, TimerCheck::Expired(d) if d.reply == Some(Reply::IdleNotice)));
        assert!(table.is_empty());
        assert_eq!(
            table.check_idle(a, id, start + Duration::from_secs(20)),
            TimerCheck::Gone
        );
    }

    #[test]
    fn a_stale_timer_does_not_end_a_newer_session_on_the_same_address() {
        let table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        let old = handle(&table, a, Ok(Request::Login), now).session.unwrap();
        handle(&table, a, Ok(Request::Logout), now);
        handle(&table, a, Ok(Request::Login), now);
        assert_eq!(
            table.check_idle(a, old, now + Duration::from_secs(60)),
            TimerCheck::Gone
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn every_ended_session_is_in_the_duration_histogram() {
        let table = sessions(10, 10);
        let now = Instant::now();
        for port in 1..=3 {
            handle(&table, peer([127, 0, 0, 1], port), Ok(Request::Login), now);
        }
        handle(&table, peer([127, 0, 0, 1], 1), Ok(Request::Logout), now);
        handle(
            &table,
            peer([127, 0, 0, 1], 2),
            Err(ParseError::UnknownOption),
            now,
        );
        assert_eq!(table.durations().count(), 2);
        table.close_all();
        let durations = table.durations();
        assert_eq!(durations.count(), 3);
        assert_eq!(durations.counts[0], 3, "all under a second");
        let mut long = Durations::default();
        long.record(std::time::Duration::from_secs(7_200));
        assert_eq!(
            long.counts[DURATION_BUCKETS.len()],
            1,
            "past the last bound"
        );
        assert_eq!(long.sum, 7_200.0);
    }

    #[test]
    fn close_all_empties_the_table() {
        let table = sessions(10, 10);
        let now = Instant::now();
        for port in 1..=5 {
            handle(&table, peer([127, 0, 0, 1], port), Ok(Request::Login), now);
        }
        let closed = table.close_all();
        assert_eq!(closed.len(), 5);
        assert!(closed
            .iter()
            .all(|(_, _, d)| d.reply == Some(Reply::ShutdownNotice)));
        assert!(table.is_empty());
        assert!(table.lock().per_ip.is_empty());
    }
}
