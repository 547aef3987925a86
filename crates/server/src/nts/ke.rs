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
//! once), and each has [`DEADLINE`] for all of it. Every connection ends
//! in exactly one counted outcome (`hora_nts_ke_total{result}`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hora_proto::nts::cookie::{self, CookieKey, MAX_COOKIE_LEN, NONCE_LEN};
use hora_proto::nts::ke::{
    self, ErrorCode, Progress, Response, ALPN, COOKIES_PER_RESPONSE, MAX_MESSAGE,
};
use hora_proto::nts::ring::KeyRing;
use hora_proto::nts::{Algorithm, Keys};
use rand::RngCore as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::live::LiveView;
use crate::log_budget::{LogBudget, LogKind};
use crate::slots::{accept, NoSlot, Slots};
use crate::stats::{Event, Stats};

/// Key exchanges at once; one more is closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Key exchanges at once from one address.
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 16;
/// How long one key exchange may take, handshake to close: a LAN client
/// needs milliseconds (chrony's server allows 2 s too); an idle or slow
/// one is cut.
pub const DEADLINE: Duration = Duration::from_secs(2);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Tls,
    Alpn,
    BadRequest,
    NoAgreement,
    Internal,
}

impl Failure {
    fn event(self) -> Event {
        match self {
            Failure::Tls => Event::NtsKeTls,
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
    let mut connections = JoinSet::new();
    loop {
        let Some((stream, peer)) =
            accept(&listener, &mut shutdown, &exchange.log, "NTS-KE listener").await
        else {
            break;
        };
        while connections.try_join_next().is_some() {}
        let live = Arc::clone(&exchange.live.borrow());
        if !live.gate.admits(peer, &exchange.log) {
            exchange.stats.event(Event::NtsKeDenied);
            continue;
        }
        let Some(tls) = live.nts.as_ref().and_then(|nts| nts.tls.clone()) else {
            exchange.stats.event(Event::NtsKeInternal);
            continue;
        };
        let slot = match slots.take(peer.ip()) {
            Ok(slot) => slot,
            Err(full) => {
                exchange.stats.event(Event::NtsKeBusy);
                if let Some(suppressed) = exchange.log.allow(LogKind::RateLimited) {
                    let most = match full {
                        NoSlot::Source => MAX_CONNECTIONS_PER_SOURCE,
                        NoSlot::Listener => MAX_CONNECTIONS,
                    };
                    warn!(%peer, suppressed, "NTS-KE listener: {most} connections open{}; closing a new one",
                        if full == NoSlot::Source { " from this address" } else { "" });
                }
                continue;
            }
        };
        let answer = Answer {
            server: live.nts.as_ref().and_then(|nts| nts.ntp_server.clone()),
            port: live
                .nts
                .as_ref()
                .and_then(|nts| nts.ntp_port)
                .or(exchange.sntp_port.filter(|port| *port != 123)),
        };
        let exchange = exchange.clone();
        connections.spawn(async move {
            let _slot = slot;
            let done =
                tokio::time::timeout(DEADLINE, handle(stream, tls, &exchange, &answer)).await;
            let event = match done {
                Ok(Ok(cookies)) => {
                    exchange.stats.add(Event::NtsCookie, cookies as u64);
                    Event::NtsKeOk
                }
                Ok(Err(failure)) => {
                    debug!(%peer, ?failure, "NTS-KE: no cookies");
                    failure.event()
                }
                Err(_) => Event::NtsKeTimeout,
            };
            exchange.stats.event(event);
        });
    }
    // Exchanges in flight are cut at shutdown: their clients retry.
    connections.shutdown().await;
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
) -> Result<usize, Failure> {
    let _ = stream.set_nodelay(true);
    let mut stream = tokio_rustls::TlsAcceptor::from(tls)
        .accept(stream)
        .await
        .map_err(|_| Failure::Tls)?;
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
        return Err(Failure::Tls);
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
