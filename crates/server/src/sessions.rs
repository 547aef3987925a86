//! The session table: one entry per peer `SocketAddr`, with the limits.
//!
//! The table is shared by the receive loop and the idle timers, behind one
//! mutex held only for a map operation. Every path that ends a session goes
//! through [`Sessions::remove`], which drops the map entry, the per-IP count
//! and the idle timer together, so an ended session leaves nothing behind.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use hora_proto::{
    decide, expire, shut_down, Decision, Effect, ParseError, PeerState, Request, Rules,
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
}

#[derive(Debug, Default)]
struct Table {
    by_peer: HashMap<SocketAddr, Entry>,
    per_ip: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// The open sessions and the limits on them.
#[derive(Debug)]
pub struct Sessions {
    table: Mutex<Table>,
    limits: Limits,
}

/// What a request did, for the receive loop to carry out and log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// The state machine's decision.
    pub decision: Decision,
    /// The peer's session, if it had or now has one.
    pub session: Option<SessionId>,
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
            limits,
        }
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
    /// decision to the table: opens, moves the deadline of, or ends the
    /// peer's session. A newly opened session has no timer yet: the caller
    /// spawns one and hands it over with [`Sessions::set_timer`].
    pub fn handle(
        &self,
        peer: SocketAddr,
        request: Result<Request, ParseError>,
        now: Instant,
        rules: Rules,
    ) -> Handled {
        let mut table = self.lock();
        let state = match table.by_peer.get(&peer) {
            Some(_) => PeerState::LoggedIn,
            None => PeerState::NoSession {
                may_open: self.has_room(&table, peer.ip()),
            },
        };
        let decision = decide(state, request, now, rules);
        let session = match decision.effect {
            Effect::Open { idle_deadline } => {
                table.next_id += 1;
                let id = SessionId(table.next_id);
                table.by_peer.insert(
                    peer,
                    Entry {
                        id,
                        idle_deadline,
                        timer: None,
                    },
                );
                *table.per_ip.entry(peer.ip()).or_insert(0) += 1;
                Some(id)
            }
            Effect::Keep { idle_deadline } => table.by_peer.get_mut(&peer).map(|entry| {
                entry.idle_deadline = idle_deadline;
                entry.id
            }),
            Effect::End(_) => remove(&mut table, peer).map(|entry| entry.id),
            Effect::Refuse | Effect::Nothing => None,
        };
        Handled { decision, session }
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
        table.per_ip.clear();
        table
            .by_peer
            .drain()
            .map(|(peer, entry)| {
                if let Some(timer) = entry.timer {
                    timer.abort();
                }
                (peer, entry.id, shut_down())
            })
            .collect()
    }

    /// Whether a new session from `ip` fits in the limits.
    fn has_room(&self, table: &Table, ip: IpAddr) -> bool {
        table.by_peer.len() < self.limits.max_sessions
            && table.per_ip.get(&ip).copied().unwrap_or(0) < self.limits.max_sessions_per_ip
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave the table half-updated
        // in a way that matters more than stopping the daemon would.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes `peer`'s session: entry, per-IP count and timer.
fn remove(table: &mut Table, peer: SocketAddr) -> Option<Entry> {
    let entry = table.by_peer.remove(&peer)?;
    if let Some(count) = table.per_ip.get_mut(&peer.ip()) {
        *count -= 1;
        if *count == 0 {
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

    #[test]
    fn login_opens_and_logout_removes_the_entry() {
        let table = sessions(10, 10);
        let now = Instant::now();
        let a = peer([127, 0, 0, 1], 1000);
        let opened = table.handle(a, Ok(Request::Login), now, RULES);
        assert!(opened.session.is_some());
        assert_eq!(table.len(), 1);
        let closed = table.handle(a, Ok(Request::Logout), now, RULES);
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
        table.handle(a, Ok(Request::Login), now, RULES);
        table.handle(b, Ok(Request::Login), now, RULES);
        let bad = table.handle(a, Err(ParseError::UnknownOption), now, RULES);
        assert_eq!(bad.decision.reply, Some(Reply::InvalidOption));
        assert_eq!(table.len(), 1);
        let time = table.handle(b, Ok(Request::Time), now, RULES);
        assert_eq!(time.decision.reply, Some(Reply::Time));
    }

    #[test]
    fn limits_refuse_new_logins_and_keep_existing_sessions() {
        let table = sessions(3, 2);
        let now = Instant::now();
        let one = [10, 0, 0, 1];
        let login = |p| {
            table
                .handle(p, Ok(Request::Login), now, RULES)
                .decision
                .effect
        };
        assert!(matches!(login(peer(one, 1)), Effect::Open { .. }));
        assert!(matches!(login(peer(one, 2)), Effect::Open { .. }));
        assert_eq!(login(peer(one, 3)), Effect::Refuse, "per-IP limit");
        assert!(matches!(login(peer([10, 0, 0, 2], 1)), Effect::Open { .. }));
        assert_eq!(
            login(peer([10, 0, 0, 3], 1)),
            Effect::Refuse,
            "global limit"
        );
        // A session already open may log in again (a resent login).
        assert!(matches!(login(peer(one, 1)), Effect::Keep { .. }));
        assert_eq!(table.len(), 3);
        // Ending one makes room again.
        table.handle(peer(one, 1), Ok(Request::Logout), now, RULES);
        assert!(matches!(login(peer(one, 3)), Effect::Open { .. }));
    }

    #[test]
    fn idle_check_expires_only_at_the_current_deadline() {
        let table = sessions(10, 10);
        let start = Instant::now();
        let a = peer([127, 0, 0, 1], 1);
        let id = table
            .handle(a, Ok(Request::Login), start, RULES)
            .session
            .unwrap();
        let first_deadline = start + RULES.idle_timeout;
        // Activity at +4s moves the deadline to +14s.
        table.handle(a, Ok(Request::Time), start + Duration::from_secs(4), RULES);
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
        let old = table
            .handle(a, Ok(Request::Login), now, RULES)
            .session
            .unwrap();
        table.handle(a, Ok(Request::Logout), now, RULES);
        table.handle(a, Ok(Request::Login), now, RULES);
        assert_eq!(
            table.check_idle(a, old, now + Duration::from_secs(60)),
            TimerCheck::Gone
        );
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn close_all_empties_the_table() {
        let table = sessions(10, 10);
        let now = Instant::now();
        for port in 1..=5 {
            table.handle(peer([127, 0, 0, 1], port), Ok(Request::Login), now, RULES);
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
