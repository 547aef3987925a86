//! Happy Eyeballs (RFC 8305) for hora's datagrams: a name's addresses are
//! asked one after another, [`NEXT_ADDRESS_DELAY`] apart (at once after a
//! refusal), without waiting for the earlier ones to give up; the first
//! answer wins and the other attempts are dropped. A name resolving to an
//! IPv6 address a firewall drops and an IPv4 one that answers costs a
//! quarter second, not the whole timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// How long an address is given to answer before the next one of the
/// same name is asked too (RFC 8305's recommended Connection Attempt Delay).
pub const NEXT_ADDRESS_DELAY: Duration = Duration::from_millis(250);

/// How an attempt that gave no answer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens there: the next address at once.
    Refused,
    /// Silence for the time it had.
    Silent,
    /// An error that ends the race (the server answered with no time, the
    /// socket failed).
    Final,
}

/// The first answer of `attempt(server, time left)` over `servers`, within
/// `timeout`. When none answers: the first silent address's error, else
/// the last refusal, else `none` (no address at all).
pub async fn first_answer<T, E, F, Fut>(
    servers: &[SocketAddr],
    timeout: Duration,
    attempt: F,
    failure: impl Fn(&E) -> Failure,
    none: E,
) -> Result<T, E>
where
    F: Fn(SocketAddr, Duration) -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let deadline = Instant::now() + timeout;
    let mut attempts = tokio::task::JoinSet::new();
    let mut next = 0;
    let mut next_at = Instant::now();
    let (mut silent, mut refused) = (None, None);
    loop {
        if next < servers.len() && (attempts.is_empty() || Instant::now() >= next_at) {
            let left = deadline.saturating_duration_since(Instant::now());
            attempts.spawn(attempt(servers[next], left));
            next += 1;
            next_at = Instant::now() + NEXT_ADDRESS_DELAY;
        }
        let more = next < servers.len();
        if attempts.is_empty() && !more {
            return Err(silent.or(refused).unwrap_or(none));
        }
        tokio::select! {
            done = attempts.join_next(), if !attempts.is_empty() => match done {
                Some(Ok(Ok(answer))) => {
                    attempts.abort_all();
                    return Ok(answer);
                }
                Some(Ok(Err(error))) => match failure(&error) {
                    Failure::Refused => {
                        refused = Some(error);
                        next_at = Instant::now();
                    }
                    Failure::Silent => {
                        silent.get_or_insert(error);
                    }
                    Failure::Final => {
                        attempts.abort_all();
                        return Err(error);
                    }
                },
                // An attempt that panicked or was cancelled: as if silent.
                Some(Err(_)) | None => {}
            },
            () = sleep_until(next_at), if more => {}
        }
    }
}
