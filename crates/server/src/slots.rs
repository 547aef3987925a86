//! Bounded TCP connections for horad's listeners (the operators' HTTP, the
//! NTS key exchange): at most a number at once, and at most a share of
//! them from one source address, so one address holding connections open
//! can't lock the others out. A connection over either bound is closed at
//! once, never queued; when the listener is full, a newcomer may take the
//! place of the connection quiet longest ([`Held`]). And the thread each
//! such listener runs on ([`spawn_listener`]), and its accept loop
//! ([`accept`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

/// Runs `serve` on `listener` on a new thread named `name`, with a
/// current-thread runtime of its own, so nothing a client of the listener
/// does (a burst of handshakes, a large exposition) can delay a datagram
/// on the serving thread; join the thread to know it has stopped.
pub fn spawn_listener<F, Fut>(
    name: &str,
    listener: std::net::TcpListener,
    serve: F,
) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let label = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener).await,
                    Err(error) => tracing::warn!(%error, "{label}: cannot serve"),
                }
            });
        })
}

/// How long a listener waits before accepting again after the kernel said
/// it is out of file descriptors or memory: retrying at once would spin a
/// core (the advice of tokio's and hyper's documentation), and a few
/// connections closing meanwhile is what lets the next accept succeed.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Who is accepting: the listener's name in logs, its log budget, and the
/// event an accept that must back off counts as.
#[derive(Debug, Clone, Copy)]
pub struct Acceptor<'a> {
    /// The listener's name in logs.
    pub label: &'a str,
    /// The log budget its failures are logged within.
    pub log: &'a crate::log_budget::LogBudget,
    /// The counters.
    pub stats: &'a crate::stats::Stats,
    /// What an accept that backs off counts as.
    pub backoff: crate::stats::Event,
}

/// The next connection on `listener`, or `None` once `shutdown` turns
/// true. A failed accept is logged within its budget and the wait goes
/// on; one that failed for want of file descriptors or memory is counted
/// and waits [`ACCEPT_BACKOFF`] first (the connection stays in the
/// kernel's queue meanwhile).
pub async fn accept(
    listener: &tokio::net::TcpListener,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    acceptor: Acceptor<'_>,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let error = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => error,
            },
        };
        let exhausted = is_exhaustion(&error);
        if let Some(suppressed) = acceptor.log.allow(crate::log_budget::LogKind::ReceiveError) {
            let label = acceptor.label;
            if exhausted {
                tracing::warn!(%error, suppressed, "{label}: accept failed; waiting {} ms", ACCEPT_BACKOFF.as_millis());
            } else {
                tracing::warn!(%error, suppressed, "{label}: accept failed");
            }
        }
        if exhausted {
            acceptor.stats.event(acceptor.backoff);
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => return None,
                () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
            }
        }
    }
}

/// Whether an accept failed for want of a resource that only time gives
/// back: file descriptors (the process's or the system's), or memory.
fn is_exhaustion(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// The slots of one listener.
#[derive(Debug, Clone)]
pub struct Slots {
    permits: Arc<Semaphore>,
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_source: usize,
}

/// Why a connection gets no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSlot {
    /// Its address holds its share already.
    Source,
    /// The listener holds its most.
    Listener,
}

/// A connection's slot, given back when dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    source: SourceSlot,
}

impl Slots {
    /// `most` connections at once, `per_source` of them from one address.
    pub fn new(most: usize, per_source: usize) -> Slots {
        Slots {
            permits: Arc::new(Semaphore::new(most)),
            sources: Arc::new(Mutex::new(HashMap::new())),
            per_source,
        }
    }

    /// A slot for a connection from `ip`, if both bounds allow one.
    pub fn take(&self, ip: IpAddr) -> Result<Slot, NoSlot> {
        let source = SourceSlot::take(&self.sources, ip, self.per_source).ok_or(NoSlot::Source)?;
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| NoSlot::Listener)?;
        Ok(Slot {
            _permit: permit,
            source,
        })
    }
}

impl Slot {
    /// The address the slot is held for.
    pub fn ip(&self) -> IpAddr {
        self.source.ip
    }
}

/// When a connection last did what it is there for (opened, or asked): the
/// listener's clock for picking one to cut, moved by the connection.
pub type Since = Arc<Mutex<Instant>>;

/// The connections a listener serves, by task, each holding its slot until
/// its task is reaped ([`Held::reap`]) or cut ([`Held::cut_longest_since`]).
#[derive(Debug, Default)]
pub struct Held(HashMap<tokio::task::Id, Connection>);

/// One connection being served.
#[derive(Debug)]
struct Connection {
    task: AbortHandle,
    slot: Slot,
    since: Since,
}

impl Held {
    /// Holds `slot` for the connection `task` serves, quiet since `since`.
    pub fn insert(&mut self, task: AbortHandle, slot: Slot, since: Since) {
        self.0.insert(task.id(), Connection { task, slot, since });
    }

    /// Gives back the slots of the connections whose tasks are done.
    pub fn reap(&mut self, connections: &mut JoinSet<()>) {
        while let Some(done) = connections.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(error) => error.id(),
            };
            self.0.remove(&id);
        }
    }

    /// Cuts the connection quiet longest, if it has been quiet at least
    /// `at_least` at `now`, giving back its slot; the address it was
    /// from, if one was cut.
    pub fn cut_longest_since(&mut self, now: Instant, at_least: Duration) -> Option<IpAddr> {
        let (since, id) = self
            .0
            .iter()
            .map(|(id, held)| {
                (
                    *held.since.lock().unwrap_or_else(PoisonError::into_inner),
                    *id,
                )
            })
            .min()?;
        if now.saturating_duration_since(since) < at_least {
            return None;
        }
        let cut = self.0.remove(&id)?;
        cut.task.abort();
        Some(cut.slot.ip())
    }
}

/// One of an address's connections, counted until dropped.
#[derive(Debug)]
struct SourceSlot {
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl SourceSlot {
    /// A slot for `ip`, if it holds fewer than `most`.
    fn take(
        sources: &Arc<Mutex<HashMap<IpAddr, usize>>>,
        ip: IpAddr,
        most: usize,
    ) -> Option<SourceSlot> {
        let mut open = sources.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            sources: Arc::clone(sources),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_and_the_rest_stay_for_others_until_given_back() {
        let slots = Slots::new(4, 2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let held: Vec<Slot> = (0..2).filter_map(|_| slots.take(a).ok()).collect();
        assert_eq!(held.len(), 2);
        assert_eq!(slots.take(a).err(), Some(NoSlot::Source));
        let others: Vec<Slot> = (0..2).filter_map(|_| slots.take(b).ok()).collect();
        assert_eq!(others.len(), 2);
        let c: IpAddr = [127, 0, 0, 3].into();
        assert_eq!(slots.take(c).err(), Some(NoSlot::Listener));
        drop(held);
        assert!(slots.take(a).is_ok());
    }
}
