//! Where each worker's loops run. A worker is one socket per protocol (the
//! kernel steers each source address to one worker: [`crate::sys::steer`])
//! and the loops that serve them ([`crate::engine::drive`]); it shares
//! nothing with the other workers on its request path but atomics it alone
//! writes (its counters) and the live view it reads.
//!
//! With one worker, its loops are tasks of the runtime that runs the
//! server: one thread serves everything, as on one core it measured best
//! (BENCHMARKS.md). With more, each worker has a thread of its own with a
//! current-thread runtime, not a task of a multi-thread runtime: its loops
//! never move between cores, and no work-stealing hand-off sits between a
//! datagram and its reply. The HTTP listener, the key exchange, the
//! clock-state reader and reloads stay on their own threads and the
//! server's runtime, off the workers'.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::warn;

use crate::engine::{self, Protocol, Shared};
use crate::live::LiveView;

/// One protocol's loop on one worker, not yet started.
pub type Loop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The loop serving `protocol` on `socket`: the socket joins the runtime
/// that runs the loop when it starts.
pub fn serving<P>(
    socket: std::net::UdpSocket,
    protocol: P,
    shared: Shared,
    live: LiveView,
    shutdown: watch::Receiver<bool>,
) -> Loop
where
    P: Protocol + Send + 'static,
{
    Box::pin(async move {
        match UdpSocket::from_std(socket) {
            Ok(socket) => engine::drive(Arc::new(socket), protocol, shared, live, shutdown).await,
            Err(error) => warn!(
                protocol = protocol.service().name(),
                worker = shared.worker,
                %error,
                "cannot serve a socket"
            ),
        }
    })
}

/// Starts every worker's loops (`loops[w]`: worker `w`'s): one worker's as
/// `tasks`, more on their own threads, whose handles are returned, to be
/// joined once the loops have said goodbye. A worker whose thread can't
/// start serves on the calling runtime instead, with a warning: its
/// addresses still get answers.
pub fn start(loops: Vec<Vec<Loop>>, tasks: &mut JoinSet<()>) -> Vec<std::thread::JoinHandle<()>> {
    if loops.len() <= 1 {
        for one in loops.into_iter().flatten() {
            tasks.spawn(one);
        }
        return Vec::new();
    }
    let mut threads = Vec::new();
    for (worker, own) in loops.into_iter().enumerate() {
        match spawn(worker, own) {
            Ok(thread) => threads.push(thread),
            Err((error, own)) => {
                warn!(worker, %error, "cannot start a worker's thread; it serves on the main thread");
                for one in own {
                    tasks.spawn(one);
                }
            }
        }
    }
    threads
}

/// Worker `worker`'s thread, running `loops` to their end; or why not,
/// with the loops back.
fn spawn(
    worker: usize,
    loops: Vec<Loop>,
) -> Result<std::thread::JoinHandle<()>, (std::io::Error, Vec<Loop>)> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return Err((error, loops)),
    };
    // The loops cross over only once the thread runs, so a thread that
    // can't start leaves them here.
    let (give, take) = std::sync::mpsc::channel::<Vec<Loop>>();
    let thread = std::thread::Builder::new()
        .name(format!("horad-worker-{worker}"))
        .spawn(move || {
            let Ok(loops) = take.recv() else { return };
            runtime.block_on(async move {
                let mut tasks = JoinSet::new();
                for one in loops {
                    tasks.spawn(one);
                }
                while tasks.join_next().await.is_some() {}
            });
        });
    match thread {
        Ok(thread) => match give.send(loops) {
            Ok(()) => Ok(thread),
            Err(returned) => Err((std::io::Error::other("worker thread ended"), returned.0)),
        },
        Err(error) => Err((error, loops)),
    }
}
