//! The operators' HTTP listener (hyper, HTTP/1.1): `GET /metrics` and
//! `GET /status`; 404 for another path, 405 for another method.
//!
//! It must never cost the time service anything, whatever a client sends:
//! at most [`MAX_CONNECTIONS`] at once and [`MAX_CONNECTIONS_PER_SOURCE`]
//! from one address (a connection over either is closed at once, not
//! queued; when the listener is full, a newcomer takes the place of the
//! connection idle longest if that one has been idle [`IDLE_WHEN_FULL`]),
//! a deadline for the request's headers and one for the
//! whole connection, a cap on the header size, and the daemon's access lists
//! (a source they deny is closed before a byte is read). It runs on a
//! thread of its own with its own runtime ([`spawn`]), so neither a burst
//! of pipelined scrapes nor the encoding of a large exposition can delay a
//! datagram on the serving thread; a scrape only reads atomics and the
//! live view.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{metrics, status, Observed};
use crate::log_budget::{LogBudget, LogKind};
use crate::slots::{accept, Acceptor, Held, NoSlot, Slots};
use crate::stats::Event;

/// Connections served at once; one more is closed at once.
pub const MAX_CONNECTIONS: usize = 8;

/// Connections one source address may hold at once: half the listener, so
/// that one address (a stuck scraper, or someone holding connections open)
/// can't take every slot from the others.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = MAX_CONNECTIONS / 2;

/// How long a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection must have gone without a request (since it opened,
/// or since its last) to be cut for a newcomer when the listener is full:
/// far less than [`HEADER_TIMEOUT`], so connections held open idle can't
/// keep a scraper out for long, and far more than a scrape takes.
pub const IDLE_WHEN_FULL: Duration = Duration::from_secs(1);

/// How long one connection may last, keep-alive included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// The most bytes of request head hyper buffers (its minimum); a larger head
/// is refused.
pub const MAX_HEAD_BYTES: usize = 8192;

/// Serves `listener` on a new thread, with a runtime of its own, until
/// `shutdown` turns true; join the thread to know it has stopped.
pub fn spawn(
    listener: std::net::TcpListener,
    observed: Observed,
    log: Arc<LogBudget>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::slots::spawn_listener("horad-ops", listener, move |listener| {
        serve(listener, observed, log, shutdown)
    })
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    observed: Observed,
    log: Arc<LogBudget>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Slots::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE);
    let observed = Arc::new(observed);
    let mut connections = JoinSet::new();
    let mut held = Held::default();
    loop {
        let acceptor = Acceptor {
            label: "metrics listener",
            log: &log,
            stats: &observed.stats,
            backoff: Event::HttpAcceptBackoff,
        };
        let Some((stream, peer)) = accept(&listener, &mut shutdown, acceptor).await else {
            break;
        };
        held.reap(&mut connections);
        if !observed.live.borrow().gate.permits(peer.ip()) {
            if let Some(suppressed) = log.allow(LogKind::Denied) {
                debug!(%peer, suppressed, "metrics listener: source not allowed");
            }
            continue;
        }
        let mut taken = slots.take(peer.ip());
        if taken.as_ref().err() == Some(&NoSlot::Listener)
            && held
                .cut_longest_since(Instant::now(), IDLE_WHEN_FULL)
                .is_some()
        {
            debug!(%peer, "metrics listener: full; cut the connection idle longest for a new one");
            taken = slots.take(peer.ip());
        }
        let slot = match taken {
            Ok(slot) => slot,
            Err(full) => {
                if let Some(suppressed) = log.allow(LogKind::RateLimited) {
                    match full {
                        NoSlot::Source => {
                            warn!(%peer, suppressed, "metrics listener: {MAX_CONNECTIONS_PER_SOURCE} connections open from this address; closing a new one")
                        }
                        NoSlot::Listener => {
                            warn!(%peer, suppressed, "metrics listener: {MAX_CONNECTIONS} connections open; closing a new one")
                        }
                    }
                }
                continue;
            }
        };
        let observed = Arc::clone(&observed);
        let last_request = Arc::new(Mutex::new(Instant::now()));
        let asked = Arc::clone(&last_request);
        let task = connections.spawn(connection(stream, peer, observed, asked));
        held.insert(task, slot, last_request);
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// One connection, served until its client closes it or its deadline;
/// `asked` is set at each request (the connection idle longest is cut
/// first at a full listener).
async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    observed: Arc<Observed>,
    asked: Arc<Mutex<Instant>>,
) {
    let service = hyper::service::service_fn(move |request| {
        *asked.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let response = respond(&observed, &request);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => debug!(%peer, %error, "metrics listener: connection failed"),
        Err(_) => debug!(%peer, "metrics listener: connection timed out"),
    }
}

/// The answer to one request.
fn respond<B>(observed: &Observed, request: &Request<B>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    let known = matches!(path, "/metrics" | "/status");
    if !known {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /status\n",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let (body, content_type) = if path == "/status" {
        (
            format!("{:#}\n", status::document(observed)),
            "application/json",
        )
    } else {
        let openmetrics = request
            .headers()
            .get(ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("application/openmetrics-text"));
        match metrics::render(observed, openmetrics) {
            Ok(text) if openmetrics => (text, metrics::OPENMETRICS_TEXT),
            Ok(text) => (text, metrics::PROMETHEUS_TEXT),
            Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode\n"),
        }
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
