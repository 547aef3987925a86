//! The session table: one entry per peer `SocketAddr`, with the limits and
//! every session's idle deadline.
//!
//! The table belongs to the seed protocol's loop alone ([`crate::protocols::seed`]):
//! no lock, no task per session. Idle deadlines wait in one min-heap; the
//! loop sleeps until its earliest ([`Sessions::next_deadline`]) and then
//! takes what is due ([`Sessions::expire_due`]). A session that spoke since
//! its heap entry was made is pushed again at its real deadline when that
//! entry comes up, so each session has one heap entry and activity costs
//! nothing there; an ended session's entry stays until it comes up, and the
//! heap is rebuilt from the table when such entries outnumber live ones. Every path that ends a session goes through [`remove`],
//! which drops the map entry and the per-IP count together and records the
//! session's duration, so an ended session leaves nothing behind.
//!
//! When a limit is reached, a new login may take the place of a session that
//! has not asked for the time since its login (what a forged login leaves),
//! the oldest first ([`hora_proto::displace`]). Such sessions wait in login
//! order in two queues, one for the whole table and one per IP; an entry that
//! has since asked or ended is skipped when met, and the queues are compacted
//! when stale entries outnumber live ones, so each login costs O(1) amortized.
//!
//! Observers (tests, `/metrics`, `/status`, the summary line) read the
//! number of open sessions and the duration histogram from
//! [`SessionStats`]: atomics the table updates as it changes.
//!
//! With several workers, each has a table of its own (an address's
//! datagrams all reach one worker, so `max_sessions_per_ip` is exact by
//! construction) and they share one [`SessionStats`], whose count of open
//! sessions is `max_sessions`'s: a login takes a place in it with one
//! compare-and-swap before its session opens, so the tables together never
//! hold more. At the limit a login may displace only a session of its own
//! worker's table that never asked.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use hora_proto::v2::Token;

use crate::sys::destination::Local;

mod observed;
mod told;

use hora_proto::{
    answers_stranger, decide, displace, establishes, expire, shut_down, Effect, ParseError,
    PeerState, Request, Rules,
};
pub use observed::{Durations, SessionStats, DURATION_BUCKETS, LATENESS_BUCKETS};
pub use told::{Ended, Handled, Known, Limit, Unanswered};

/// A short id for a session, for logs: peers come and go on the same
/// address. A seed session's reads `s1`, a protocol v2 session's `v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

/// The bit that marks a protocol v2 session's id.
const PROVEN_ID: u64 = 1 << 63;

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 & PROVEN_ID {
            0 => write!(f, "s{:x}", self.0),
            _ => write!(f, "v{:x}", self.0 & !PROVEN_ID),
        }
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
    /// Whether the peer has asked for the time ([`establishes`]): such a
    /// session is never displaced.
    established: bool,
    /// When it opened, for the duration histogram.
    opened: Instant,
    /// A proven (protocol v2) session's token ([`Sessions::prove`]).
    token: Option<Token>,
    /// The address its notices leave from, on a wildcard socket
    /// ([`Sessions::reply_from`]): an index into the table's `locals`, 0
    /// for none. Two bytes in the entry's padding: a session costs the
    /// same.
    local: u16,
}

/// A session that had not asked when it was queued: `(peer, id)`.
type Candidate = (SocketAddr, SessionId);

/// The sessions from one IP address.
#[derive(Debug, Default)]
struct PerIp {
    count: usize,
    unestablished: VecDeque<Candidate>,
}

/// The open sessions, the limits on them and their idle deadlines.
#[derive(Debug)]
pub struct Sessions {
    by_peer: HashMap<SocketAddr, Entry>,
    per_ip: HashMap<IpAddr, PerIp>,
    unestablished: VecDeque<Candidate>,
    /// One entry per open session: a deadline it had (its real one is in
    /// its [`Entry`], the same or later).
    deadlines: BinaryHeap<Reverse<(Instant, Candidate)>>,
    next_id: u64,
    limits: Limits,
    observed: Arc<SessionStats>,
    /// The local addresses sessions were opened on (a wildcard socket's:
    /// a handful, one per address of the host), each entry's `local` an
    /// index into it, plus one.
    locals: Vec<Local>,
}

impl Sessions {
    /// An empty table with these limits.
    pub fn new(limits: Limits) -> Self {
        Sessions::sharing(limits, Arc::default())
    }

    /// An empty table with these limits that counts its sessions in
    /// `observed`, with every other table sharing it: `max_sessions` is
    /// over them all.
    pub fn sharing(limits: Limits, observed: Arc<SessionStats>) -> Self {
        Sessions {
            by_peer: HashMap::new(),
            per_ip: HashMap::new(),
            unestablished: VecDeque::new(),
            deadlines: BinaryHeap::new(),
            next_id: 0,
            limits,
            observed,
            locals: Vec::new(),
        }
    }

    /// `peer`'s session (just opened) is answered from `local`: its
    /// notices (idle, shutdown, displaced) leave from the address its
    /// client asked, as every reply does.
    pub fn reply_from(&mut self, peer: SocketAddr, local: Option<Local>) {
        let Some(local) = local else { return };
        let index = match self.locals.iter().position(|known| *known == local) {
            Some(at) => at,
            // More distinct addresses than a host has: the rest go from
            // the route's source.
            None if self.locals.len() < usize::from(u16::MAX - 1) => {
                self.locals.push(local);
                self.locals.len() - 1
            }
            None => return,
        };
        if let Some(entry) = self.by_peer.get_mut(&peer) {
            entry.local = u16::try_from(index + 1).unwrap_or(0);
        }
    }

    /// The address of the table's `locals` an entry's `local` names.
    fn local(&self, index: u16) -> Option<Local> {
        let at = usize::from(index).checked_sub(1)?;
        self.locals.get(at).copied()
    }

    /// What observers read: the sessions open and their durations.
    pub fn observer(&self) -> Arc<SessionStats> {
        Arc::clone(&self.observed)
    }

    /// New limits (a reload): they apply to logins from now on; no open
    /// session is ended because a limit shrank.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.by_peer.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.by_peer.is_empty()
    }

    /// Runs a datagram from `peer` through the state machine and applies the
    /// decision to the table: opens (displacing an unestablished session if
    /// a limit is reached), moves the deadline of, or ends the peer's
    /// session.
    ///
    /// `answerable` is asked only when the decision has a reply (a datagram
    /// that gets no answer costs nothing), told whether the peer has a
    /// session: the overload shedding and the rate limit. If it says no,
    /// nothing changes and its reason is returned.
    pub fn handle(
        &mut self,
        peer: SocketAddr,
        request: Result<Request, ParseError>,
        now: Instant,
        rules: Rules,
        answerable: impl FnOnce(Known) -> Result<(), Unanswered>,
    ) -> Result<Handled, Unanswered> {
        // A session's request: one look-up, and the common case (it keeps
        // the session) is done under it.
        if let Some(entry) = self.by_peer.get_mut(&peer) {
            let decision = decide(PeerState::LoggedIn, request, now, rules);
            if decision.reply.is_some() {
                answerable(Known::Session)?;
            }
            let id = entry.id;
            match decision.effect {
                Effect::Keep { idle_deadline } => {
                    entry.idle_deadline = idle_deadline;
                    entry.established |= establishes(&request);
                }
                Effect::End(_) => {
                    self.remove(peer, now);
                }
                Effect::Open { .. } | Effect::Refuse | Effect::Nothing => {}
            }
            return Ok(Handled {
                decision,
                session: Some(id),
                displaced: None,
                limit: None,
            });
        }
        self.stranger(peer, request, now, rules, answerable)
    }

    /// [`Sessions::handle`] for a peer without a session: a login that may
    /// open one (taking a free place or an unestablished session's), or
    /// anything else, which opens nothing.
    fn stranger(
        &mut self,
        peer: SocketAddr,
        request: Result<Request, ParseError>,
        now: Instant,
        rules: Rules,
        answerable: impl FnOnce(Known) -> Result<(), Unanswered>,
    ) -> Result<Handled, Unanswered> {
        // The checks come before the look for room, so a shed login costs
        // little.
        if answers_stranger(&request) {
            answerable(Known::Stranger)?;
        }
        // Only a login looks for room (and takes a place if there is one).
        let room = if matches!(request, Ok(Request::Login)) {
            self.room(peer.ip())
        } else {
            Room::None(Limit::Table)
        };
        let state = PeerState::NoSession {
            may_open: !matches!(room, Room::None(_)),
        };
        let decision = decide(state, request, now, rules);
        let Effect::Open { idle_deadline } = decision.effect else {
            if matches!(room, Room::Free) {
                self.observed.release(1);
            }
            // A peer without a session neither keeps nor ends one.
            let limit = match (decision.effect, room) {
                (Effect::Refuse, Room::None(limit)) => Some(limit),
                _ => None,
            };
            return Ok(Handled {
                decision,
                session: None,
                displaced: None,
                limit,
            });
        };
        let (displaced, limit) = match room {
            Room::Displacing((gone, gone_id), limit) => {
                // Its place is the new session's.
                let local = self.by_peer.get(&gone).and_then(|e| self.local(e.local));
                self.take_out(gone, now);
                (Some((gone, gone_id, displace(), local)), Some(limit))
            }
            Room::Free | Room::None(_) => (None, None),
        };
        let id = self.open(peer, idle_deadline, now);
        Ok(Handled {
            decision,
            session: Some(id),
            displaced,
            limit,
        })
    }

    /// An empty table for protocol v2's proven sessions (their ids read
    /// `v1`, `v2`...), counting them in `observed`.
    pub fn proven(limits: Limits, observed: Arc<SessionStats>) -> Self {
        Sessions {
            next_id: PROVEN_ID,
            ..Sessions::sharing(limits, observed)
        }
    }

    /// The token of `peer`'s session, if it has a proven one.
    pub fn token(&self, peer: SocketAddr) -> Option<Token> {
        self.by_peer.get(&peer).and_then(|entry| entry.token)
    }

    /// Makes `peer`'s session (just opened) a proven one: it holds `token`,
    /// and having proven its address it is never displaced.
    pub fn prove(&mut self, peer: SocketAddr, token: Token) {
        if let Some(entry) = self.by_peer.get_mut(&peer) {
            entry.token = Some(token);
            entry.established = true;
        }
    }

    /// The earliest idle deadline waiting, if any session is open: when the
    /// loop must next call [`Sessions::expire_due`]. It may be early (the
    /// session spoke since); never late.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }

    /// Ends one session whose idle deadline has passed at `now`, if there
    /// is one: its peer, id and decision (the idle notice). Call it until
    /// it returns `None`.
    pub fn expire_due(&mut self, now: Instant) -> Option<Ended> {
        while let Some(Reverse((deadline, (peer, id)))) = self.deadlines.peek().copied() {
            if deadline > now {
                return None;
            }
            self.deadlines.pop();
            let Some(entry) = self.by_peer.get(&peer).filter(|entry| entry.id == id) else {
                // Ended another way since.
                continue;
            };
            match expire(entry.idle_deadline, now) {
                None => {
                    let later = entry.idle_deadline;
                    self.deadlines.push(Reverse((later, (peer, id))));
                }
                Some(decision) => {
                    let late = now.saturating_duration_since(entry.idle_deadline);
                    let (token, local) = (entry.token, self.local(entry.local));
                    self.observed.record_late(late);
                    self.remove(peer, now);
                    return Some(Ended {
                        peer,
                        id,
                        decision,
                        token,
                        local,
                    });
                }
            }
        }
        None
    }

    /// Ends every session for shutdown at `now`. Returns each peer with its
    /// session and the decision (the shutdown notice) to send.
    pub fn close_all(&mut self, now: Instant) -> Vec<Ended> {
        self.per_ip.clear();
        self.unestablished.clear();
        self.deadlines.clear();
        self.observed.release(self.by_peer.len());
        let (observed, locals) = (&self.observed, &self.locals);
        let closed = self
            .by_peer
            .drain()
            .map(|(peer, entry)| {
                observed.record(now.saturating_duration_since(entry.opened));
                let at = usize::from(entry.local).checked_sub(1);
                Ended {
                    peer,
                    id: entry.id,
                    decision: shut_down(),
                    token: entry.token,
                    local: at.and_then(|at| locals.get(at).copied()),
                }
            })
            .collect();
        closed
    }

    /// Opens a session for `peer`, queued as unestablished, in the place
    /// [`Sessions::room`] took (or a displaced session left).
    fn open(&mut self, peer: SocketAddr, idle_deadline: Instant, now: Instant) -> SessionId {
        self.next_id += 1;
        let id = SessionId(self.next_id);
        self.by_peer.insert(
            peer,
            Entry {
                id,
                idle_deadline,
                established: false,
                opened: now,
                token: None,
                local: 0,
            },
        );
        self.deadlines.push(Reverse((idle_deadline, (peer, id))));
        if self.deadlines.len() > 2 * self.by_peer.len() + 64 {
            // Ended sessions' entries outnumber the live ones (a flood of
            // logins displacing each other): rebuild from the live ones, so
            // the heap stays within twice the table.
            self.deadlines = self.live_deadlines();
        }
        self.queue_unestablished(peer, id);
        id
    }

    /// Whether a new session from `ip` fits in the limits, and if only by
    /// displacing one, which. The per-IP limit is looked at first: a session
    /// from the same IP frees a place under both limits. [`Room::Free`]
    /// has taken a place under `max_sessions` (shared by every worker's
    /// table): the caller opens a session in it or gives it back.
    fn room(&mut self, ip: IpAddr) -> Room {
        let limits = self.limits;
        let ip_full = self.per_ip.get(&ip).map_or(0, |p| p.count) >= limits.max_sessions_per_ip;
        let table_full = !ip_full && !self.observed.reserve(limits.max_sessions);
        let by_peer = &self.by_peer;
        let (candidate, limit) = if ip_full {
            let queue = self.per_ip.get_mut(&ip);
            let candidate = queue.and_then(|p| oldest_unestablished(&mut p.unestablished, by_peer));
            (candidate, Limit::PerIp)
        } else if table_full {
            let candidate = oldest_unestablished(&mut self.unestablished, by_peer);
            (candidate, Limit::Table)
        } else {
            return Room::Free;
        };
        match candidate {
            Some(candidate) => Room::Displacing(candidate, limit),
            None => Room::None(limit),
        }
    }

    /// Queues a new session as unestablished, in both queues, compacting
    /// a queue whose stale entries outnumber its live ones.
    fn queue_unestablished(&mut self, peer: SocketAddr, id: SessionId) {
        let by_peer = &self.by_peer;
        let ip = self.per_ip.entry(peer.ip()).or_default();
        ip.count += 1;
        ip.unestablished.push_back((peer, id));
        if ip.unestablished.len() > 2 * ip.count + 8 {
            ip.unestablished.retain(|c| is_unestablished(c, by_peer));
        }
        self.unestablished.push_back((peer, id));
        if self.unestablished.len() > 2 * by_peer.len() + 64 {
            self.unestablished.retain(|c| is_unestablished(c, by_peer));
        }
    }

    /// Removes `peer`'s session and gives its place back.
    fn remove(&mut self, peer: SocketAddr, now: Instant) {
        if self.take_out(peer, now) {
            self.observed.release(1);
        }
    }

    /// Removes `peer`'s session, if it has one: entry and per-IP count, and
    /// records how long it lasted; its place under `max_sessions` stays
    /// taken (a displacing login's). Its places in the unestablished queues
    /// and the deadline heap go stale and are dropped when met.
    fn take_out(&mut self, peer: SocketAddr, now: Instant) -> bool {
        let Some(entry) = self.by_peer.remove(&peer) else {
            return false;
        };
        self.observed
            .record(now.saturating_duration_since(entry.opened));
        if let Some(ip) = self.per_ip.get_mut(&peer.ip()) {
            ip.count = ip.count.saturating_sub(1);
            if ip.count == 0 {
                self.per_ip.remove(&peer.ip());
            }
        }
        if self.by_peer.capacity() > SHRINK_ABOVE
            && self.by_peer.len() * 8 < self.by_peer.capacity()
        {
            self.shrink();
        }
        true
    }

    /// Gives back the memory a table eight times emptier than its peak
    /// holds (after a flood of logins, say): the map, the per-IP map, the
    /// queues and the heap are rebuilt at twice their live size, and the
    /// allocator hands what they freed back to the OS. Each
    /// rebuild costs O(live sessions) and comes after the table lost 3/4 of
    /// its entries at least, so O(1) amortized per session ended.
    fn shrink(&mut self) {
        let live = self.by_peer.len();
        self.by_peer.shrink_to(2 * live);
        self.per_ip.shrink_to(2 * self.per_ip.len());
        let by_peer = &self.by_peer;
        self.unestablished.retain(|c| is_unestablished(c, by_peer));
        self.unestablished.shrink_to(2 * self.unestablished.len());
        for ip in self.per_ip.values_mut() {
            ip.unestablished.retain(|c| is_unestablished(c, by_peer));
            ip.unestablished.shrink_to_fit();
        }
        self.deadlines = self.live_deadlines();
        crate::sys::memory::give_back_free_memory();
    }

    /// One heap entry per live session, at its real deadline.
    fn live_deadlines(&self) -> BinaryHeap<Reverse<(Instant, Candidate)>> {
        let mut deadlines = BinaryHeap::with_capacity(2 * self.by_peer.len());
        deadlines.extend(
            self.by_peer
                .iter()
                .map(|(peer, entry)| Reverse((entry.idle_deadline, (*peer, entry.id)))),
        );
        deadlines
    }
}

/// The least capacity (sessions) at which an emptied table gives memory
/// back ([`Sessions::shrink`]): below it, keeping it is cheaper.
const SHRINK_ABOVE: usize = 4096;

/// Whether a login fits, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    /// Under both limits.
    Free,
    /// At a limit, but this unestablished session can make room.
    Displacing(Candidate, Limit),
    /// At a limit, and every session in the way has asked for the time.
    None(Limit),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hora_proto::{EndReason, Reply};

    use super::*;

    /// BENCHMARKS.md ("Memory per held session") and config.toml state
    /// the bytes a held session costs from these sizes: a change to them
    /// must change those numbers too.
    #[test]
    fn the_sizes_the_memory_accounting_counts() {
        use std::mem::size_of;
        assert_eq!(size_of::<(SocketAddr, Entry)>(), 96, "a map bucket");
        assert_eq!(size_of::<Candidate>(), 40, "a queue entry");
        assert_eq!(
            size_of::<Reverse<(Instant, Candidate)>>(),
            56,
            "a heap entry"
        );
        assert_eq!(size_of::<(IpAddr, PerIp)>(), 64, "a per-address bucket");
    }

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
        table: &mut Sessions,
        peer: SocketAddr,
        request: Result<Request, ParseError>,
        now: Instant,
    ) -> Handled {
        table
            .handle(peer, request, now, RULES, |_| Ok(()))
            .expect("not rate limited")
    }

    #[test]
    fn a_table_emptied_after_a_flood_gives_its_memory_back() {
        let now = Instant::now();
        let mut table = sessions(200_000, 100);
        let peers: Vec<SocketAddr> = (0..100_000u32)
            .map(|n| SocketAddr::from(((0x0A00_0000 + n).to_be_bytes(), 5005)))
            .collect();
        for &peer in &peers {
            handle(&mut table, peer, Ok(Request::Login), now);
        }
        let peak = table.by_peer.capacity();
        assert!(peak >= 100_000);
        // All but 100 idle out; the heap, the queues and the maps shrink.
        let later = now + Duration::from_secs(11);
        for &peer in &peers[100..] {
            handle(&mut table, peer, Ok(Request::Logout), later);
        }
        assert_eq!(table.len(), 100);
        assert!(
            table.by_peer.capacity() <= 16_384,
            "{}",
            table.by_peer.capacity()
        );
        assert!(table.per_ip.capacity() <= 16_384);
        assert!(table.unestablished.capacity() <= 16_384);
        assert!(table.deadlines.capacity() <= 16_384);
        // The sessions left are whole: each idles out, once.
        let mut expired = 0;
        while table.expire_due(later + Duration::from_secs(11)).is_some() {
            expired += 1;
        }
        assert_eq!(expired, 100);
        assert!(table.is_empty());
    }

    #[test]
    fn login_opens_and_logout_removes_the_entry() {
        let mut table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1000);
        let opened = handle(&mut table, a, Ok(Request::Login), now);
        assert!(opened.session.is_some());
        assert_eq!(table.len(), 1);
        let closed = handle(&mut table, a, Ok(Request::Logout), now);
        assert_eq!(closed.session, opened.session);
        assert_eq!(closed.decision.effect, Effect::End(EndReason::Logout));
        assert!(table.is_empty());
        assert!(table.per_ip.is_empty());
    }

    #[test]
    fn invalid_option_ends_only_that_session() {
        let mut table = sessions(10, 10);
        let now = Instant::now();
        let (a, b) = (peer([127, 0, 0, 1], 1), peer([127, 0, 0, 1], 2));
        handle(&mut table, a, Ok(Request::Login), now);
        handle(&mut table, b, Ok(Request::Login), now);
        let bad = handle(&mut table, a, Err(ParseError::UnknownOption), now);
        assert_eq!(bad.decision.reply, Some(Reply::InvalidOption));
        assert_eq!(table.len(), 1);
        let time = handle(&mut table, b, Ok(Request::Time), now);
        assert_eq!(time.decision.reply, Some(Reply::Time));
    }

    #[test]
    fn limits_refuse_new_logins_when_every_session_has_asked() {
        let mut table = sessions(3, 2);
        let now = Instant::now();
        let one = [10, 0, 0, 1];
        let login = |t: &mut Sessions, p| handle(t, p, Ok(Request::Login), now).decision.effect;
        let ask = |t: &mut Sessions, p| handle(t, p, Ok(Request::Time), now);
        let t = &mut table;
        assert!(matches!(login(t, peer(one, 1)), Effect::Open { .. }));
        assert!(matches!(login(t, peer(one, 2)), Effect::Open { .. }));
        ask(t, peer(one, 1));
        ask(t, peer(one, 2));
        assert_eq!(login(t, peer(one, 3)), Effect::Refuse, "per-IP limit");
        assert!(matches!(
            login(t, peer([10, 0, 0, 2], 1)),
            Effect::Open { .. }
        ));
        ask(t, peer([10, 0, 0, 2], 1));
        assert_eq!(
            login(t, peer([10, 0, 0, 3], 1)),
            Effect::Refuse,
            "global limit"
        );
        // A session already open may log in again (a resent login).
        assert!(matches!(login(t, peer(one, 1)), Effect::Keep { .. }));
        assert_eq!(t.len(), 3);
        // Ending one makes room again.
        handle(t, peer(one, 1), Ok(Request::Logout), now);
        assert!(matches!(login(t, peer(one, 3)), Effect::Open { .. }));
    }

    #[test]
    fn at_the_per_ip_limit_the_oldest_session_that_never_asked_makes_room() {
        let mut table = sessions(100, 3);
        let now = Instant::now();
        let ip = [10, 0, 0, 1];
        let ids: Vec<_> = (1..=3)
            .map(|port| handle(&mut table, peer(ip, port), Ok(Request::Login), now).session)
            .collect();
        // The first one asks: it is someone's, and stays.
        handle(&mut table, peer(ip, 1), Ok(Request::Time), now);
        let fourth = handle(&mut table, peer(ip, 4), Ok(Request::Login), now);
        assert!(matches!(fourth.decision.effect, Effect::Open { .. }));
        let (gone, gone_id, notice, _) = fourth.displaced.expect("one made room");
        assert_eq!((gone, Some(gone_id)), (peer(ip, 2), ids[1]));
        assert_eq!(notice.reply, Some(Reply::Refused));
        assert_eq!(notice.effect, Effect::End(EndReason::Displaced));
        assert_eq!(table.len(), 3);
        // Port 2's session is gone: its next option finds none.
        let late = handle(&mut table, peer(ip, 2), Ok(Request::Time), now);
        assert_eq!(late.decision.reply, Some(Reply::NoSession));
        // Ports 3 then 4 go next; port 1 never does.
        for (port, expected) in [(5, 3), (6, 4)] {
            let handled = handle(&mut table, peer(ip, port), Ok(Request::Login), now);
            assert_eq!(handled.displaced.map(|d| d.0), Some(peer(ip, expected)));
        }
        handle(&mut table, peer(ip, 5), Ok(Request::Time), now);
        handle(&mut table, peer(ip, 6), Ok(Request::Time), now);
        let refused = handle(&mut table, peer(ip, 7), Ok(Request::Login), now);
        assert_eq!(refused.decision.effect, Effect::Refuse);
        assert_eq!(refused.displaced, None);
        assert_eq!(
            handle(&mut table, peer(ip, 1), Ok(Request::Time), now)
                .decision
                .reply,
            Some(Reply::Time)
        );
    }

    #[test]
    fn at_the_global_limit_the_oldest_session_that_never_asked_makes_room() {
        let mut table = sessions(3, 10);
        let now = Instant::now();
        let real = peer([10, 0, 0, 1], 1);
        handle(&mut table, real, Ok(Request::Login), now);
        handle(&mut table, real, Ok(Request::Time), now);
        handle(&mut table, peer([10, 0, 0, 2], 1), Ok(Request::Login), now);
        handle(&mut table, peer([10, 0, 0, 3], 1), Ok(Request::Login), now);
        // A flood of forged logins from many addresses: each new one pushes
        // out the oldest forged one; the real session stays.
        for n in 4..=200u8 {
            let handled = handle(&mut table, peer([10, 0, 1, n], 1), Ok(Request::Login), now);
            assert!(
                matches!(handled.decision.effect, Effect::Open { .. }),
                "{n}"
            );
            assert!(handled.displaced.is_some());
            assert_eq!(table.len(), 3);
        }
        let time = handle(&mut table, real, Ok(Request::Time), now);
        assert_eq!(time.decision.reply, Some(Reply::Time));
        // The queues and the heap hold no more than a few stale entries.
        let locked = &table;
        assert!(locked.unestablished.len() <= 2 * 3 + 64);
        assert!(
            locked.deadlines.len() <= 2 * 3 + 64,
            "{}",
            locked.deadlines.len()
        );
    }

    #[test]
    fn the_queues_stay_small_however_many_sessions_come_and_go() {
        let mut table = sessions(1000, 1000);
        let now = Instant::now();
        for round in 0..20_000u32 {
            let p = peer([10, 0, 0, 1], (round % 50) as u16 + 1);
            handle(&mut table, p, Ok(Request::Login), now);
            handle(&mut table, p, Ok(Request::Time), now);
            handle(&mut table, p, Ok(Request::Logout), now);
        }
        let locked = &table;
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
        let mut table = sessions(10, 10);
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
        let mut table = sessions(1, 1);
        let now = Instant::now();
        let (a, b) = (peer([127, 0, 0, 1], 1), peer([127, 0, 0, 2], 2));
        handle(&mut table, a, Ok(Request::Login), now);
        assert_eq!(
            table.handle(b, Ok(Request::Login), now, RULES, |_| Err(Unanswered::Shed)),
            Err(Unanswered::Shed)
        );
        assert_eq!(table.len(), 1);
        // The session that never asked is still there: a session's request
        // from it is answered, not told it has none.
        let time = handle(&mut table, a, Ok(Request::Time), now);
        assert_eq!(time.decision.reply, Some(Reply::Time));
    }

    #[test]
    fn the_checks_are_told_whether_the_peer_has_a_session() {
        let mut table = sessions(10, 10);
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
    fn a_session_expires_only_at_its_current_deadline() {
        let mut table = sessions(10, 10);
        let start = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        let id = handle(&mut table, a, Ok(Request::Login), start)
            .session
            .unwrap();
        let first_deadline = start + RULES.idle_timeout;
        assert_eq!(table.next_deadline(), Some(first_deadline));
        // Activity at +4s moves the deadline to +14s: at +10s nothing is
        // due, and the loop is told to come back at +14s.
        handle(
            &mut table,
            a,
            Ok(Request::Time),
            start + Duration::from_secs(4),
        );
        assert_eq!(table.expire_due(first_deadline), None);
        assert_eq!(table.next_deadline(), Some(start + Duration::from_secs(14)));
        let ended = table
            .expire_due(start + Duration::from_secs(14))
            .expect("due at +14s");
        assert_eq!((ended.peer, ended.id), (a, id));
        assert_eq!(ended.decision.reply, Some(Reply::IdleNotice));
        assert_eq!(ended.token, None);
        assert!(table.is_empty());
        assert_eq!(table.next_deadline(), None);
        assert_eq!(table.observer().lateness(), ([1, 0, 0, 0, 0], 0.0));
        assert_eq!(table.expire_due(start + Duration::from_secs(20)), None);
    }

    #[test]
    fn an_old_deadline_does_not_end_a_newer_session_on_the_same_address() {
        let mut table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        handle(&mut table, a, Ok(Request::Login), now);
        handle(&mut table, a, Ok(Request::Logout), now);
        let later = now + Duration::from_secs(5);
        let newer = handle(&mut table, a, Ok(Request::Login), later).session;
        // The first session's deadline (+10s) comes up and finds a newer
        // session there, due only at +15s.
        assert_eq!(table.expire_due(now + Duration::from_secs(10)), None);
        assert_eq!(table.len(), 1);
        let expired = table.expire_due(later + RULES.idle_timeout);
        assert_eq!(expired.map(|ended| Some(ended.id)), Some(newer));
    }

    #[test]
    fn many_sessions_expire_in_deadline_order_each_once() {
        let mut table = sessions(1000, 1000);
        let start = Instant::now();
        for port in 1..=100u16 {
            let at = start + Duration::from_millis(u64::from(port));
            handle(
                &mut table,
                peer([127, 0, 0, 1], port),
                Ok(Request::Login),
                at,
            );
        }
        // The even ports speak at +5s: they are due 5 s later than the odd.
        for port in (2..=100u16).step_by(2) {
            let at = start + Duration::from_secs(5);
            handle(
                &mut table,
                peer([127, 0, 0, 1], port),
                Ok(Request::Time),
                at,
            );
        }
        let mut ended = Vec::new();
        let end = start + Duration::from_secs(30);
        while let Some(due) = table.next_deadline().filter(|due| *due <= end) {
            while let Some(gone) = table.expire_due(due) {
                ended.push((gone.peer.port(), due));
            }
        }
        assert_eq!(ended.len(), 100);
        let odd: Vec<u16> = ended.iter().take(50).map(|(port, _)| *port).collect();
        assert_eq!(odd, (1..=100).step_by(2).collect::<Vec<u16>>());
        assert!(ended.windows(2).all(|pair| pair[0].1 <= pair[1].1));
        assert!(table.is_empty() && table.deadlines.is_empty());
    }

    #[test]
    fn every_ended_session_is_in_the_duration_histogram() {
        let mut table = sessions(10, 10);
        let now = Instant::now();
        for port in 1..=3 {
            handle(
                &mut table,
                peer([127, 0, 0, 1], port),
                Ok(Request::Login),
                now,
            );
        }
        handle(
            &mut table,
            peer([127, 0, 0, 1], 1),
            Ok(Request::Logout),
            now,
        );
        handle(
            &mut table,
            peer([127, 0, 0, 1], 2),
            Err(ParseError::UnknownOption),
            now,
        );
        assert_eq!(table.observer().durations().count(), 2);
        table.close_all(Instant::now());
        let durations = table.observer().durations();
        assert_eq!(durations.count(), 3);
        assert_eq!(durations.counts[0], 3, "all under a second");
        let long = SessionStats::default();
        long.record(Duration::from_secs(7_200));
        let long = long.durations();
        assert_eq!(
            long.counts[DURATION_BUCKETS.len()],
            1,
            "past the last bound"
        );
        assert_eq!(long.sum, 7_200.0);
    }

    #[test]
    fn a_proven_session_holds_its_token_and_is_never_displaced() {
        let mut table = sessions(1, 1);
        let now = Instant::now();
        let (a, b) = (peer([127, 0, 0, 1], 1), peer([127, 0, 0, 1], 2));
        handle(&mut table, a, Ok(Request::Login), now);
        assert_eq!(table.token(a), None);
        let token = Token([7; 16]);
        table.prove(a, token);
        assert_eq!(table.token(a), Some(token));
        // Never asked for the time, yet proven: a login doesn't displace it.
        let other = handle(&mut table, b, Ok(Request::Login), now);
        assert_eq!(other.decision.reply, Some(Reply::Refused));
        assert_eq!(table.token(a), Some(token));
        let closed = table.close_all(now);
        assert_eq!(
            closed.iter().map(|e| e.token).collect::<Vec<_>>(),
            [Some(token)]
        );
    }

    #[test]
    fn close_all_empties_the_table() {
        let mut table = sessions(10, 10);
        let now = Instant::now();
        for port in 1..=5 {
            handle(
                &mut table,
                peer([127, 0, 0, 1], port),
                Ok(Request::Login),
                now,
            );
        }
        let closed = table.close_all(Instant::now());
        assert_eq!(closed.len(), 5);
        assert!(closed
            .iter()
            .all(|ended| ended.decision.reply == Some(Reply::ShutdownNotice)));
        assert!(table.is_empty());
        assert!(table.per_ip.is_empty());
    }
}
