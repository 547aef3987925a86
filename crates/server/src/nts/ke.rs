//! The NTS key exchange listener (RFC 8915, section 4): TCP, TLS 1.3,
//! ALPN `ntske/1`. Each connection: the handshake, the client's request,
//! the keys exported from the TLS session, [`COOKIES_PER_RESPONSE`]
//! cookies sealed with the current cookie key, the answer, close.
//!
//! It must never cost the time service anything: it runs on a thread of
//! its own with its own runtime ([`spawn`]; a handshake's signature is the
//! most CPU a client can ask of horad), the access lists close a denied
//! source before a byte is read, at most [`MAX_CONNECTIONS`] are open
//! ([`MAX_CONNECTIONS_PER_SOURCE`] from one address; one more is closed at
//! once), each has [`DEADLINE`] for all of it, and, while all places are
//! taken, a newcomer takes the place of the connection that has waited
//! longest for its ClientHello (a client sends it a round trip after
//! connecting), or, once every one has sent it, of the one that sent it
//! first; an
//! address whose exchanges keep failing (held open, cut, broken) is closed
//! at once past [`FAILURES`]. So a crowd of addresses holding half-open or
//! trickling connections can't keep a client out. Every
//! connection ends in exactly one counted outcome
//! (`hora_nts_ke_total{result}`).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hora_proto::nts::cookie::{self, CookieKey, MAX_COOKIE_LEN, NONCE_LEN};
use hora_proto::nts::ke::{
    self, ErrorCode, Progress, Response, ALPN, COOKIES_PER_RESPONSE, MAX_MESSAGE,
};
use hora_proto::nts::ring::KeyRing;
use hora_proto::nts::{Algorithm, Keys};
use hora_proto::ratelimit::{RateLimit, RateLimiter};
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::live::LiveView;
use crate::log_budget::{LogBudget, LogKind};
use crate::slots::{accept, Acceptor, Held, NoSlot, Since, Slot, Slots};
use crate::stats::{Event, Stats};

/// Key exchanges at once; when all are taken, a newcomer takes the place
/// of the connection that has waited longest for its ClientHello, or, once
/// every one has sent it, of the one that sent it first.
pub const MAX_CONNECTIONS: usize = 256;
/// Key exchanges at once from one address: a client needs one, a host
/// behind NAT a few; 64 addresses can't fill the listener.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 4;
/// How long one key exchange may take, handshake to close: a LAN client
/// needs milliseconds (chrony's server allows 2 s too); an idle or slow
/// one is cut.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// Failed key exchanges an address may have (cut, timed out, refused as
/// over its address's share, TLS or the request broken): a burst of 8, then
/// one every 8 s; an address over it is closed at once. Only failures are
/// charged (chrony's `ntsratelimit` charges every connection), so a
/// client whose exchanges succeed is never limited however often it asks,
/// and addresses that hold connections open run out of places to take.
pub const FAILURES: RateLimit = RateLimit {
    rate: 1.0 / 8.0,
    burst: 8.0,
};
/// Addresses whose failures are remembered (a fixed table, as the UDP
/// rate limit's: a crowd of addresses can only recycle entries).
const FAILURE_TABLE: usize = 4096;

/// What the listener reads: the live view (access lists, the TLS
/// settings in force), the cookie keys, the counters and log budgets.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The live view.
    pub live: LiveView,
    /// The cookie keys.
    pub keys: watch::Receiver<Arc<KeyRing>>,
    /// The counters.
    pub stats: Arc<Stats>,
    /// The log budgets.
    pub log: Arc<LogBudget>,
    /// The port this host's SNTP socket is bound to, if any: named in the
    /// answer when it is not 123 and `[nts] ntp_port` names none.
    pub sntp_port: Option<u16>,
}

/// Serves `listener` on a new thread, with a runtime of its own, until
/// `shutdown` turns true; join the thread to know it has stopped.
pub fn spawn(
    listener: std::net::TcpListener,
    exchange: Exchange,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    crate::slots::spawn_listener("horad-nts-ke", listener, move |listener| {
        serve(listener, exchange, shutdown)
    })
}

/// Why a key exchange ended without cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The TLS handshake failed: why, in words.
    Tls(String),
    Alpn,
    BadRequest,
    NoAgreement,
    Internal,
}

impl Failure {
    fn event(&self) -> Event {
        match self {
            Failure::Tls(_) => Event::NtsKeTls,
            Failure::Alpn => Event::NtsKeAlpn,
            Failure::BadRequest => Event::NtsKeBadRequest,
            Failure::NoAgreement => Event::NtsKeNoAgreement,
            Failure::Internal => Event::NtsKeInternal,
        }
    }
}

/// Serves `listener` until `shutdown` turns true.
pub async fn serve(listener: TcpListener, exchange: Exchange, mut shutdown: watch::Receiver<bool>) {
    let slots = Slots::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE);
    let failures = Failures::new();
    let mut connections = JoinSet::new();
    let mut held = Held::default();
    let acceptor = Acceptor {
        label: "NTS-KE listener",
        log: &exchange.log,
        stats: &exchange.stats,
        backoff: Event::NtsKeAcceptBackoff,
    };
    loop {
        let Some((stream, peer)) = accept(&listener, &mut shutdown, acceptor).await else {
            break;
        };
        held.reap(&mut connections);
        let live = Arc::clone(&exchange.live.borrow());
        if !live.gate.admits(peer, &exchange.log) {
            exchange.stats.event(Event::NtsKeDenied);
            continue;
        }
        let Some(tls) = live.nts.as_ref().and_then(|nts| nts.tls.clone()) else {
            exchange.stats.event(Event::NtsKeInternal);
            continue;
        };
        if !failures.allows(peer.ip()) {
            exchange.stats.event(Event::NtsKeRateLimited);
            if let Some(suppressed) = exchange.log.allow(LogKind::RateLimited) {
                warn!(%peer, suppressed, "NTS-KE listener: too many failed exchanges from this address; closing a new one");
            }
            continue;
        }
        let Some(slot) = take_slot(&slots, &mut held, &failures, &exchange, peer) else {
            continue;
        };
        let answer = answer(&live, &exchange);
        // Where the connection stands in line to be cut for a newcomer at
        // a full listener, the earliest first: when it opened, until its
        // ClientHello is in (see `handle`). A client sends one a round
        // trip after connecting, so half-open connections go first, and a
        // client under way only once none is left.
        let since = Arc::new(Mutex::new(Instant::now()));
        let greeted = Arc::clone(&since);
        let task_exchange = exchange.clone();
        let task_failures = failures.clone();
        let task = connections.spawn(async move {
            let exchanged = handle(stream, tls, &task_exchange, &answer, &greeted);
            let event = outcome(
                tokio::time::timeout(DEADLINE, exchanged).await,
                &task_exchange,
                peer,
            );
            if event != Event::NtsKeOk {
                task_failures.charge(peer.ip());
            }
            task_exchange.stats.event(event);
        });
        held.insert(task, slot, since);
        // Let the connections run before the next accept: with a queue of
        // connections ready, accepting them all first would cut a client
        // whose ClientHello had come before its task ever read it.
        tokio::task::yield_now().await;
    }
    // Exchanges in flight are cut at shutdown: their clients retry.
    connections.shutdown().await;
}

/// The NTP server and port the answer names: the configured ones, or
/// (unnamed) this host, on its SNTP port when that is not 123.
fn answer(live: &crate::live::Live, exchange: &Exchange) -> Answer {
    let nts = live.nts.as_ref();
    Answer {
        server: nts.and_then(|nts| nts.ntp_server.clone()),
        port: nts
            .and_then(|nts| nts.ntp_port)
            .or(exchange.sntp_port.filter(|port| *port != 123)),
    }
}

/// What an exchange with `peer` came to, as its counter: its cookies
/// counted when it gave some, a failed handshake logged within budget.
fn outcome(
    done: Result<Result<usize, Failure>, tokio::time::error::Elapsed>,
    exchange: &Exchange,
    peer: SocketAddr,
) -> Event {
    match done {
        Ok(Ok(cookies)) => {
            exchange.stats.add(Event::NtsCookie, cookies as u64);
            Event::NtsKeOk
        }
        Ok(Err(Failure::Tls(reason))) => {
            if let Some(suppressed) = exchange.log.allow(LogKind::HandshakeFailed) {
                warn!(%peer, suppressed, "NTS-KE: TLS handshake failed: {reason}");
            }
            Event::NtsKeTls
        }
        Ok(Err(failure)) => {
            debug!(%peer, ?failure, "NTS-KE: no cookies");
            failure.event()
        }
        Err(_) => Event::NtsKeTimeout,
    }
}

/// A place for a connection from `peer`: a free one, else that of the
/// connection first in line to be cut (cut, counted, its address charged).
/// `None` (counted and logged within budget, the address charged) when its
/// address holds its share.
fn take_slot(
    slots: &Slots,
    held: &mut Held,
    failures: &Failures,
    exchange: &Exchange,
    peer: SocketAddr,
) -> Option<Slot> {
    let mut taken = slots.take(peer.ip());
    if taken.as_ref().err() == Some(&NoSlot::Listener) {
        if let Some(cut) = held.cut_longest_since(Instant::now(), Duration::ZERO) {
            exchange.stats.event(Event::NtsKeEvicted);
            failures.charge(cut);
            taken = slots.take(peer.ip());
        }
    }
    match taken {
        Ok(slot) => Some(slot),
        Err(full) => {
            exchange.stats.event(Event::NtsKeBusy);
            // A full listener is not the newcomer's doing.
            if full == NoSlot::Source {
                failures.charge(peer.ip());
            }
            if let Some(suppressed) = exchange.log.allow(LogKind::RateLimited) {
                let most = match full {
                    NoSlot::Source => MAX_CONNECTIONS_PER_SOURCE,
                    NoSlot::Listener => MAX_CONNECTIONS,
                };
                warn!(%peer, suppressed, "NTS-KE listener: {most} connections open{}; closing a new one",
                    if full == NoSlot::Source { " from this address" } else { "" });
            }
            None
        }
    }
}

/// Why a handshake failed, in words: a client's alert that it refused
/// horad's certificate says what to check.
fn handshake_failure(error: &std::io::Error) -> String {
    use rustls::AlertDescription as Alert;
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate),
        )) => format!(
            "the client refused horad's certificate (alert {alert:?}): check that the chain \
             leads to a CA the client trusts, names the host it asks, and is no CA \
             certificate itself"
        ),
        _ => error.to_string(),
    }
}

/// The addresses' failed exchanges, charged against [`FAILURES`]; shared
/// by the listener and its connections' tasks.
#[derive(Debug, Clone)]
struct Failures(Arc<Mutex<RateLimiter>>);

impl Failures {
    fn new() -> Failures {
        let limiter = RateLimiter::new(FAILURES, FAILURE_TABLE, std::time::Instant::now());
        Failures(Arc::new(Mutex::new(limiter)))
    }

    /// Whether `ip` may open another connection.
    fn allows(&self, ip: IpAddr) -> bool {
        self.lock().allows(ip, std::time::Instant::now())
    }

    /// Counts a failed exchange against `ip`.
    fn charge(&self, ip: IpAddr) {
        let _ = self.lock().check(ip, std::time::Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The Server and Port records of the answers.
#[derive(Debug, Clone)]
struct Answer {
    server: Option<String>,
    port: Option<u16>,
}

/// One key exchange; how many cookies it gave.
async fn handle(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    exchange: &Exchange,
    answer: &Answer,
    greeted: &Since,
) -> Result<usize, Failure> {
    let _ = stream.set_nodelay(true);
    let hello = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
        .await
        .map_err(|e| Failure::Tls(handshake_failure(&e)))?;
    // A whole ClientHello came: behind every half-open connection in line
    // (they stand there from when they opened, never a deadline later).
    *greeted.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now() + DEADLINE;
    let mut stream = hello
        .into_stream(tls)
        .await
        .map_err(|e| Failure::Tls(handshake_failure(&e)))?;
    if stream.get_ref().1.alpn_protocol() != Some(ALPN) {
        // rustls refuses another ALPN in the handshake; a client that
        // offered none gets here.
        let _ = stream.shutdown().await;
        return Err(Failure::Alpn);
    }
    let request = match read_request(&mut stream).await {
        Ok(request) => request,
        Err(code) => {
            respond(&mut stream, &Response::Error(code)).await;
            return Err(Failure::BadRequest);
        }
    };
    let algorithm = match Response::choose(&request) {
        Ok(algorithm) => algorithm,
        Err(refusal) => {
            respond(&mut stream, &refusal).await;
            return Err(Failure::NoAgreement);
        }
    };
    let keys = export_keys(&stream, algorithm).ok_or(Failure::Internal)?;
    let ring = Arc::clone(&exchange.keys.borrow());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Some(key) = ring.sealing(now) else {
        respond(
            &mut stream,
            &Response::Error(ErrorCode::InternalServerError),
        )
        .await;
        return Err(Failure::Internal);
    };
    let cookies = seal_cookies(key, &keys).ok_or(Failure::Internal)?;
    let borrowed: Vec<&[u8]> = cookies.iter().map(Vec::as_slice).collect();
    let response = Response::Accept {
        algorithm,
        cookies: &borrowed,
        server: answer.server.as_deref(),
        port: answer.port,
    };
    if !respond(&mut stream, &response).await {
        return Err(Failure::Tls(
            "the connection failed while the answer was sent".to_owned(),
        ));
    }
    Ok(cookies.len())
}

/// Reads the client's request, at most [`MAX_MESSAGE`] bytes of it.
async fn read_request(stream: &mut TlsStream<TcpStream>) -> Result<ke::Request, ErrorCode> {
    let mut bytes = Vec::with_capacity(512);
    let mut chunk = [0u8; 4096];
    loop {
        match ke::read_request(&bytes)? {
            Progress::Complete(request) => return Ok(request),
            Progress::Incomplete => {}
        }
        let read = stream
            .read(&mut chunk)
            .await
            .map_err(|_| ErrorCode::BadRequest)?;
        if read == 0 {
            return Err(ErrorCode::BadRequest);
        }
        let room = (MAX_MESSAGE + 4).saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..read.min(room)]);
    }
}

/// The client's keys, exported from the TLS session.
fn export_keys(stream: &TlsStream<TcpStream>, algorithm: Algorithm) -> Option<Keys> {
    let connection = stream.get_ref().1;
    hora_proto::nts::export_keys(algorithm, |label, context, out| {
        connection
            .export_keying_material(out, label, Some(context))
            .map(|_| ())
    })
    .ok()
}

/// [`COOKIES_PER_RESPONSE`] cookies of `keys`, each with a fresh nonce.
fn seal_cookies(key: &CookieKey, keys: &Keys) -> Option<Vec<Vec<u8>>> {
    let mut rng = rand::rng();
    (0..COOKIES_PER_RESPONSE)
        .map(|_| {
            let mut nonce = [0u8; NONCE_LEN];
            rng.fill_bytes(&mut nonce);
            let mut out = [0u8; MAX_COOKIE_LEN];
            let len = cookie::seal(key, keys, &nonce, &mut out)?;
            Some(out[..len].to_vec())
        })
        .collect()
}

/// Writes `response` and closes; whether it was all sent.
async fn respond(stream: &mut TlsStream<TcpStream>, response: &Response<'_>) -> bool {
    let mut bytes = Vec::with_capacity(1024);
    response.write(&mut bytes);
    let sent = stream.write_all(&bytes).await.is_ok() && stream.flush().await.is_ok();
    let _ = stream.shutdown().await;
    sent
}
