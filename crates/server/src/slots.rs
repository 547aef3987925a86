//! Bounded TCP connections for horad's listeners (the operators' HTTP, the
//! NTS key exchange): at most a number at once, and at most a share of
//! them from one source address, so one address holding connections open
//! can't lock the others out. A connection over either bound is closed at
//! once, never queued. And the thread each such listener runs on
//! ([`spawn_listener`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// The next connection on `listener`, or `None` once `shutdown` turns
/// true. A failed accept (out of file descriptors, say) is logged within
/// its budget, as `label`'s, and the wait goes on.
pub async fn accept(
    listener: &tokio::net::TcpListener,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
    log: &crate::log_budget::LogBudget,
    label: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    if let Some(suppressed) = log.allow(crate::log_budget::LogKind::ReceiveError) {
                        tracing::warn!(%error, suppressed, "{label}: accept failed");
                    }
                }
            },
        }
    }
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
    _source: SourceSlot,
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
            _source: source,
        })
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
