//! NTS (RFC 8915) against the in-process daemon: the key exchange over
//! real TLS on loopback, authenticated SNTP with hora's client half, and
//! every bad input a client can send, each ending in its counted outcome
//! with the UDP service unaffected.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hora_client::nts::{key_exchange, Authenticated, Session};
use hora_client::sntp::query_with;
use hora_proto::nts::ke::ALPN;
use hora_proto::nts::packet::{self, ReplyError};
use hora_proto::outcome::{DropReason, Service};
use hora_proto::sntp::{self, NtpTimestamp};
use hora_proto::wire::LOGIN_MENU;
use hora_server::stats::Event;
use hora_server::Config;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use common::pki::{self, Pki};
use common::{ask, until, Daemon};

/// NTS on: the key exchange and SNTP on loopback, serving this clock
/// (`local_stratum`), cookie keys in `dir`.
fn nts_config(dir: &Path, pki: &Pki) -> Config {
    let mut config = common::loopback_config();
    config.sntp.bind = common::loopback().into();
    config.sntp.local_stratum = Some(10);
    config.nts.bind = common::loopback().into();
    config.nts.certificate_chain = Some(pki.chain.clone());
    config.nts.private_key = Some(pki.key.clone());
    config.nts.keys = Some(dir.join("nts-keys"));
    // The tests send many requests from one address.
    config.ratelimit.enabled = false;
    config
}

async fn start(dir: &Path) -> (Daemon, Pki) {
    let pki = pki::make(dir, "a");
    let daemon = Daemon::start(nts_config(dir, &pki)).await;
    (daemon, pki)
}

/// The key exchange with hora's client half, trusting `ca`.
async fn exchange(daemon: &Daemon, ca: &Path) -> Result<Session, hora_client::sntp::SntpError> {
    key_exchange(
        "127.0.0.1",
        &[daemon.nts_ke()],
        Some(ca),
        Duration::from_secs(5),
    )
    .await
}

/// An NTS request with `session`'s first cookie; its unique identifier.
fn request(session: &mut Session) -> (Vec<u8>, [u8; 32], NtpTimestamp) {
    request_numbered(session, 0x5A)
}

/// [`request`], its identifier and nonce made of `n`.
fn request_numbered(session: &mut Session, n: u8) -> (Vec<u8>, [u8; 32], NtpTimestamp) {
    let sent = NtpTimestamp::from_system_time(SystemTime::now());
    let unique_id = [n; 32];
    let nonce = vec![n; session.keys.algorithm.nonce_len()];
    let cookie = session.cookies.pop().unwrap();
    let bytes = packet::write_request(
        &sntp::client_request(sent),
        &session.keys,
        &cookie,
        0,
        &unique_id,
        &nonce,
    )
    .unwrap();
    (bytes, unique_id, sent)
}

#[tokio::test]
async fn a_key_exchange_gives_eight_cookies_and_they_authenticate_time() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let session = exchange(&daemon, &pki.ca).await.unwrap();
    assert_eq!(session.cookies.len(), 8);
    assert_eq!(
        session.ntp,
        vec![daemon.sntp()],
        "the answer names the SNTP port"
    );
    let ntp = session.ntp.clone();
    let mut dialect = Authenticated::new(session);
    let measured = query_with(&mut dialect, &ntp, None, Duration::from_secs(5), 3)
        .await
        .unwrap();
    assert!(measured.authenticated.is_some());
    assert!(measured.best.offset.abs() < 0.01, "{measured:?}");
    let now = daemon.now();
    assert_eq!(now.event(Event::NtsKeOk), 1);
    assert_eq!(now.event(Event::NtsAnswered), 3);
    assert!(now.event(Event::NtsCookie) >= 8 + 3);
    // Plain SNTP keeps working beside it.
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let plain = ask(
        &client,
        daemon.sntp(),
        &sntp::client_request(NtpTimestamp::default()),
    )
    .await;
    assert_eq!(plain.len(), 48);
}

/// On a host with several addresses and wildcard listeners, a client sent
/// by the key exchange to NTP reaches the address it asked the key
/// exchange at: the answer names no server (RFC 8915, 4.1.7: then the
/// client uses the key exchange's address; a Server record naming the
/// connection's local address would send a client behind a port forward
/// to an address it can't reach), and that address answers, from itself.
#[tokio::test]
async fn on_a_wildcard_the_key_exchange_sends_the_client_to_the_address_it_asked() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::make(dir.path(), "a");
    let mut config = nts_config(dir.path(), &pki);
    config.sntp.bind = "0.0.0.0:0".parse().unwrap();
    config.nts.bind = "0.0.0.0:0".parse().unwrap();
    let daemon = Daemon::start(config).await;
    let asked = SocketAddr::from(([127, 0, 0, 3], daemon.nts_ke().port()));
    let session = key_exchange("127.0.0.1", &[asked], Some(&pki.ca), Duration::from_secs(5))
        .await
        .unwrap();
    let sntp = SocketAddr::from(([127, 0, 0, 3], daemon.sntp().port()));
    assert_eq!(session.ntp, vec![sntp], "the address asked, SNTP's port");
    let ntp = session.ntp.clone();
    let mut dialect = Authenticated::new(session);
    let measured = query_with(&mut dialect, &ntp, None, Duration::from_secs(5), 1)
        .await
        .unwrap();
    assert!(measured.authenticated.is_some());
}

#[tokio::test]
async fn a_client_trusting_another_ca_gets_no_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _) = start(dir.path()).await;
    let other = pki::make(dir.path(), "other");
    let refused = exchange(&daemon, &other.ca).await;
    assert!(refused.is_err());
    until(|| daemon.now().event(Event::NtsKeTls) == 1).await;
    assert_eq!(daemon.now().event(Event::NtsKeOk), 0);
}

#[tokio::test]
async fn forged_or_unknown_cookie_requests_get_a_nak_or_nothing_never_time() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let mut session = exchange(&daemon, &pki.ca).await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A flipped bit in the authenticator's tag: a NAK, no time.
    let (mut forged, unique_id, _) = request(&mut session);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let nak = ask(&client, daemon.sntp(), &forged).await;
    assert_eq!(
        packet::read_reply(&nak, &session.keys, &unique_id),
        Err(ReplyError::Nak)
    );
    assert_eq!(&nak[16..24], &[0; 8], "no reference time");
    assert_eq!(&nak[32..48], &[0; 16], "no receive or transmit time");
    // A cookie no key of the server's opens: a NAK.
    let (mut unknown, unique_id, _) = request(&mut session);
    let cookie_at = 48 + 36 + 4;
    unknown[cookie_at] ^= 0xFF; // The key id.
    let nak = ask(&client, daemon.sntp(), &unknown).await;
    assert_eq!(
        packet::read_reply(&nak, &session.keys, &unique_id),
        Err(ReplyError::Nak)
    );
    // Cut inside the authenticator: nothing at all. The next request is
    // answered first, so nothing came for the cut one (same socket, in order).
    let (whole, _, _) = request(&mut session);
    client
        .send_to(&whole[..whole.len() - 6], daemon.sntp())
        .await
        .unwrap();
    let (next, next_id, _) = request(&mut session);
    let reply = ask(&client, daemon.sntp(), &next).await;
    assert!(
        packet::read_reply(&reply, &session.keys, &next_id).is_ok(),
        "the next is answered"
    );
    let now = daemon.now();
    assert_eq!(now.event(Event::NtsNak), 2);
    assert_eq!(now.event(Event::NtsMalformed), 1);
    assert_eq!(now.event(Event::NtsAnswered), 1);
    assert_eq!(now.dropped(Service::Sntp, DropReason::Unauthenticated), 1);
}

#[tokio::test]
async fn with_require_a_plain_request_is_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::make(dir.path(), "a");
    let mut config = nts_config(dir.path(), &pki);
    config.nts.require = true;
    let daemon = Daemon::start(config).await;
    let mut session = exchange(&daemon, &pki.ca).await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(
            &sntp::client_request(NtpTimestamp::default()),
            daemon.sntp(),
        )
        .await
        .unwrap();
    let (bytes, unique_id, _) = request(&mut session);
    let reply = ask(&client, daemon.sntp(), &bytes).await;
    assert!(
        packet::read_reply(&reply, &session.keys, &unique_id).is_ok(),
        "the first answer is the NTS one's"
    );
    assert_eq!(
        daemon
            .now()
            .dropped(Service::Sntp, DropReason::Unauthenticated),
        1
    );
}

#[tokio::test]
async fn cookies_from_before_a_restart_authenticate_after_it_and_on_a_host_sharing_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let mut session = exchange(&daemon, &pki.ca).await.unwrap();
    let config = nts_config(dir.path(), &pki);
    daemon.stop().await;
    // The same host restarted, and an NTP-only host of the fleet (no key
    // exchange, the same key file): no new key exchange with either.
    let mut fleet_host = config.clone();
    fleet_host.nts.bind = Default::default();
    for config in [config, fleet_host] {
        let daemon = Daemon::start(config).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (bytes, unique_id, sent) = request(&mut session);
        let reply = ask(&client, daemon.sntp(), &bytes).await;
        let reply = packet::read_reply(&reply, &session.keys, &unique_id).unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let sample = sntp::read_reply(&reply.header, sent, now).unwrap();
        assert!(sample.offset.abs() < 0.01);
        assert_eq!(reply.cookies.len(), 1);
        assert_eq!(daemon.now().event(Event::NtsKeOk), 0);
        daemon.stop().await;
    }
}

/// A TLS client trusting `ca`, offering `alpn`, with TLS 1.2 only if asked.
fn tls_client(ca: &Path, alpn: &[&[u8]], tls12_only: bool) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A connection to `addr` from a loopback address no other call used
/// (127.0.3.1 on): each bad input is its own client, so the key exchange's
/// limit on an address's failures never closes the next.
async fn connect_afresh(addr: SocketAddr) -> TcpStream {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((
            std::net::Ipv4Addr::from(0x7F03_0000 + n),
            0,
        )))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Sends `request` over TLS (ALPN `ntske/1`) and reads the answer to its end.
async fn raw_exchange(addr: SocketAddr, ca: &Path, request: &[u8]) -> Vec<u8> {
    let tcp = connect_afresh(addr).await;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tls_client(ca, &[ALPN], false)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    answer
}

fn record(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = kind.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// `start`, then a record claiming 20,000 bytes: the message reaches the
/// 16 KiB limit (exactly, so the server reads every byte sent) unfinished.
fn oversized(start: &[u8]) -> Vec<u8> {
    let mut bytes = start.to_vec();
    bytes.extend_from_slice(&[0x03, 0xE8, 0x4E, 0x20]);
    bytes.resize(hora_proto::nts::ke::MAX_MESSAGE, 0);
    bytes
}

const NEXT_PROTOCOL: u16 = 0x8001;
const AEAD: u16 = 0x8004;
const END: u16 = 0x8000;

#[tokio::test]
async fn every_bad_key_exchange_ends_in_its_counted_outcome_and_udp_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let ke = daemon.nts_ke();
    let seed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        ask(&seed, daemon.addr, b"login").await,
        LOGIN_MENU.as_bytes()
    );

    // Garbage where a TLS ClientHello belongs.
    let mut tcp = connect_afresh(ke).await;
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let _ = tcp.read_to_end(&mut Vec::new()).await;
    until(|| daemon.now().event(Event::NtsKeTls) == 1).await;

    // TLS 1.2 only, another ALPN, and no ALPN at all.
    let name = ServerName::try_from("127.0.0.1").unwrap();
    for (alpn, tls12, event, count) in [
        (&[ALPN][..], true, Event::NtsKeTls, 2),
        (&[&b"http/1.1"[..]][..], false, Event::NtsKeTls, 3),
        (&[][..], false, Event::NtsKeAlpn, 1),
    ] {
        let tcp = connect_afresh(ke).await;
        if let Ok(mut tls) = tls_client(&pki.ca, alpn, tls12)
            .connect(name.clone(), tcp)
            .await
        {
            let _ = tls.read_to_end(&mut Vec::new()).await;
        }
        until(|| daemon.now().event(event) == count).await;
    }

    // Records: each malformed request gets its Error record and is counted.
    let np = record(NEXT_PROTOCOL, &[0, 0]);
    let aead = record(AEAD, &[0, 15]);
    let end = record(END, &[]);
    let error = |code: u8| [record(0x8002, &[0, code]), record(END, &[])].concat();
    let rows: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        (
            "duplicate next protocol",
            [np.clone(), np.clone(), aead.clone(), end.clone()].concat(),
            error(1),
        ),
        (
            "unknown critical record",
            [np.clone(), aead.clone(), record(0x8077, &[]), end.clone()].concat(),
            error(0),
        ),
        (
            "oversized",
            oversized(&[np.clone(), aead.clone()].concat()),
            error(1),
        ),
    ];
    for (n, (name, request, expected)) in rows.into_iter().enumerate() {
        let answer = raw_exchange(ke, &pki.ca, &request).await;
        assert_eq!(answer, expected, "{name}");
        until(|| daemon.now().event(Event::NtsKeBadRequest) == n as u64 + 1).await;
    }
    // Truncated: the client stops before End of Message.
    let tcp = connect_afresh(ke).await;
    let mut tls = tls_client(&pki.ca, &[ALPN], false)
        .connect(name.clone(), tcp)
        .await
        .unwrap();
    tls.write_all(&np).await.unwrap();
    tls.shutdown().await.unwrap();
    let _ = tls.read_to_end(&mut Vec::new()).await;
    until(|| daemon.now().event(Event::NtsKeBadRequest) == 4).await;
    // No protocol horad speaks: an empty Next Protocol record.
    let answer = raw_exchange(
        ke,
        &pki.ca,
        &[record(NEXT_PROTOCOL, &[0, 9]), aead.clone(), end.clone()].concat(),
    )
    .await;
    assert_eq!(answer, [record(NEXT_PROTOCOL, &[]), end.clone()].concat());
    until(|| daemon.now().event(Event::NtsKeNoAgreement) == 1).await;

    // The UDP service never noticed.
    assert_eq!(
        ask(&seed, daemon.addr, b"2").await,
        hora_proto::wire::SESSION_CLOSED.as_bytes()
    );
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        ask(
            &client,
            daemon.sntp(),
            &sntp::client_request(NtpTimestamp::default())
        )
        .await
        .len(),
        48
    );
    assert_eq!(daemon.now().event(Event::NtsKeOk), 0);
}

#[tokio::test]
async fn a_thousand_idle_connections_are_bounded_and_cut_while_another_address_gets_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let ke = daemon.nts_ke();
    let mut idle = Vec::new();
    let opening = std::time::Instant::now();
    for _ in 0..1_000 {
        idle.push(TcpStream::connect(ke).await.unwrap());
    }
    let opened_in = opening.elapsed();
    let per_source = hora_server::nts::ke::MAX_CONNECTIONS_PER_SOURCE as u64;
    // Another address exchanges keys meanwhile.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(ke).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tls_client(&pki.ca, &[ALPN], false)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(
        &[
            record(NEXT_PROTOCOL, &[0, 0]),
            record(AEAD, &[0, 15]),
            record(END, &[]),
        ]
        .concat(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.len() > 8 * 104,
        "cookies came: {} bytes",
        answer.len()
    );
    until(|| daemon.now().event(Event::NtsKeOk) == 1).await;
    // Each idle connection ends in one outcome: closed at once (its
    // address held its 4 places, `busy`, and once those refusals spent its
    // 8 failures, `rate_limited`) or cut at the 2 s deadline. Only 4 at a
    // time held a place: the cut ones are 4 per deadline that passed while
    // they were being opened (none, unless this machine is slow), plus 4.
    let ended = || {
        let now = daemon.now();
        now.event(Event::NtsKeBusy)
            + now.event(Event::NtsKeTimeout)
            + now.event(Event::NtsKeRateLimited)
    };
    until(|| ended() == 1_000).await;
    let deadlines = 2 + opened_in.as_secs() / hora_server::nts::ke::DEADLINE.as_secs();
    let now = daemon.now();
    let cut = now.event(Event::NtsKeTimeout);
    assert!(
        cut >= per_source && cut <= per_source * deadlines,
        "{cut} cut, opened in {opened_in:?}"
    );
    let burst = hora_server::nts::ke::FAILURES.burst as u64;
    assert!(
        now.event(Event::NtsKeBusy) >= burst
            && now.event(Event::NtsKeRateLimited) >= 1_000 - burst - per_source * deadlines * 2,
        "{now:?}"
    );
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    assert_eq!(
        ask(
            &client,
            daemon.sntp(),
            &sntp::client_request(NtpTimestamp::default())
        )
        .await
        .len(),
        48
    );
    drop(idle);
}

#[tokio::test]
async fn the_access_lists_close_a_denied_source_before_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::make(dir.path(), "a");
    let mut config = nts_config(dir.path(), &pki);
    config.access.deny = vec!["127.0.0.3/32".parse().unwrap()];
    let daemon = Daemon::start(config).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.3:0".parse().unwrap()).unwrap();
    let tcp = socket.connect(daemon.nts_ke()).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    assert!(tls_client(&pki.ca, &[ALPN], false)
        .connect(name, tcp)
        .await
        .is_err());
    until(|| daemon.now().event(Event::NtsKeDenied) == 1).await;
    assert_eq!(
        daemon.now().event(Event::NtsKeTls),
        0,
        "no handshake was tried"
    );
    // Another address is served.
    assert!(exchange(&daemon, &pki.ca).await.is_ok());
}

#[tokio::test]
async fn nts_replies_sent_together_are_stamped_as_they_leave_and_each_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let mut session = exchange(&daemon, &pki.ca).await.unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Eight at once (the cookies of one key exchange): one batch, or a few.
    let mut ids = Vec::new();
    for n in 0..8u8 {
        let (bytes, unique_id, sent) = request_numbered(&mut session, n);
        client.send_to(&bytes, daemon.sntp()).await.unwrap();
        ids.push((unique_id, sent));
    }
    let mut last_transmit = 0.0;
    for (unique_id, sent) in ids {
        let reply = common::receive(&client).await;
        let read_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let reply =
            packet::read_reply(&reply, &session.keys, &unique_id).expect("authenticated, in order");
        let sample = sntp::read_reply(&reply.header, sent, read_at).unwrap();
        let stamp = |at: usize| {
            let seconds = u32::from_be_bytes(reply.header[at..at + 4].try_into().unwrap());
            let fraction = u32::from_be_bytes(reply.header[at + 4..at + 8].try_into().unwrap());
            NtpTimestamp { seconds, fraction }.to_unix_seconds(read_at)
        };
        let (received, transmitted) = (stamp(32), stamp(40));
        assert!(
            transmitted >= received,
            "T3 {transmitted} before T2 {received}"
        );
        assert!(
            transmitted <= read_at,
            "T3 {transmitted} after the client read it at {read_at}"
        );
        assert!(transmitted >= last_transmit, "stamped in sending order");
        last_transmit = transmitted;
        assert!(sample.offset.abs() < 0.01);
    }
}

#[tokio::test]
async fn status_and_metrics_show_the_nts_settings_in_force_and_when_the_certificate_expires() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::make_valid(dir.path(), "a", Some((2020, 2040)));
    let mut config = nts_config(dir.path(), &pki);
    config.metrics.bind = common::loopback().into();
    config.nts.require = true;
    let daemon = Daemon::start(config).await;
    let status = common::status(daemon.metrics()).await;
    let nts = &status["nts"];
    assert_eq!(nts["require"], true, "{nts}");
    assert_eq!(
        nts["key_exchange"],
        serde_json::json!(["127.0.0.1:0"]),
        "{nts}"
    );
    assert_eq!(nts["key_rotation_s"], 86_400, "{nts}");
    assert_eq!(
        status["addresses"]["nts-ke"],
        serde_json::json!([daemon.nts_ke().to_string()]),
        "{status}"
    );
    assert_eq!(
        nts["certificate_expires"], "2040-01-01T00:00:00+00:00",
        "{nts}"
    );
    let mut stream = TcpStream::connect(daemon.metrics()).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: hora\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    // 2040-01-01 in Unix seconds.
    assert!(
        response.contains("\nhora_nts_certificate_expiry_timestamp_seconds 2208988800"),
        "{response}"
    );
}

/// The three certificates no client would take: each reload to one is
/// refused, and the next key exchange succeeds on the pair in force.
#[tokio::test]
async fn a_reload_to_an_expired_not_yet_valid_or_broken_certificate_is_refused_and_the_old_one_serves(
) {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    for (refused, (bad, why)) in pki::unservable(dir.path()).into_iter().enumerate() {
        let config = nts_config(dir.path(), &bad);
        let messages = hora_server::nts::check(&config.nts)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(messages.contains(why), "{messages}");
        daemon.reloads.send(Ok(config)).await.unwrap();
        until(|| daemon.now().event(Event::ReloadRefused) == refused as u64 + 1).await;
        assert!(exchange(&daemon, &pki.ca).await.is_ok(), "after {messages}");
    }
    assert_eq!(daemon.now().event(Event::ReloadApplied), 0);
}

/// How a flood's connections hold their places.
#[derive(Debug, Clone, Copy)]
enum Attack {
    /// The first bytes of a ClientHello, never the rest.
    HalfOpen,
    /// The whole handshake, then the request a byte a second.
    Trickle,
}

/// Holds a connection to `ke` from `from` as a slow client would: the TLS
/// handshake, then the request a byte a second; another whenever the
/// server cuts it, until `stop`; how many it opened.
async fn trickle(
    ke: SocketAddr,
    from: std::net::IpAddr,
    ca: std::path::PathBuf,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let request = [
        record(NEXT_PROTOCOL, &[0, 0]),
        record(AEAD, &[0, 15]),
        record(END, &[]),
    ]
    .concat();
    let connector = tls_client(&ca, &[ALPN], false);
    let mut opened = 0;
    while !*stop.borrow() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let Ok(tcp) = socket.connect(ke).await else {
            tokio::task::yield_now().await;
            continue;
        };
        opened += 1;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let Ok(mut tls) = connector.connect(name, tcp).await else {
            continue;
        };
        for byte in &request {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return opened,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
                break;
            }
        }
    }
    opened
}

/// Holds a connection to `ke` from `from`, sending the first bytes of a
/// ClientHello and never the rest, and opens another whenever the server
/// cuts it, until `stop`; how many it opened.
async fn hold_half_open(
    ke: SocketAddr,
    from: std::net::IpAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let mut opened = 0;
    while !*stop.borrow() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let Ok(mut tcp) = socket.connect(ke).await else {
            tokio::task::yield_now().await;
            continue;
        };
        opened += 1;
        // A handshake record of 512 bytes, of which one comes.
        let _ = tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await;
        let mut byte = [0u8; 1];
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => {}
            _ = tcp.read(&mut byte) => {}
        }
    }
    opened
}

/// `per_address` half-open connections from each of `addresses` (from
/// 127.1.0.0 up), reconnecting when cut, while 40 key exchanges run one
/// after another from 127.0.0.1; how many of the 40 got cookies, and the
/// connections the flood opened.
async fn exchanges_under_a_flood(
    addresses: u32,
    per_address: usize,
    attack: Attack,
) -> (usize, u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, most) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, most, most).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (daemon, pki) = start(dir.path()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The flood on a thread and runtime of its own, as another host's: on
    // the test's runtime its tasks would keep the client from sending its
    // ClientHello, which no server can help.
    let ke = daemon.nts_ke();
    let ca = pki.ca.clone();
    let flood = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let mut flood = tokio::task::JoinSet::new();
            for address in 0..addresses {
                let from = std::net::Ipv4Addr::from(0x7F01_0000 + address).into();
                for _ in 0..per_address {
                    match attack {
                        Attack::HalfOpen => flood.spawn(hold_half_open(ke, from, stopped.clone())),
                        Attack::Trickle => {
                            flood.spawn(trickle(ke, from, ca.clone(), stopped.clone()))
                        }
                    };
                }
            }
            flood.join_all().await.into_iter().sum::<u64>()
        })
    });
    // The flood is on once the listener closes or cuts one of its
    // connections: an address over its places, or all places taken.
    until(|| {
        let now = daemon.now();
        now.event(Event::NtsKeBusy) + now.event(Event::NtsKeEvicted) > 0
    })
    .await;
    let mut succeeded = 0;
    for _ in 0..40 {
        let session = key_exchange(
            "127.0.0.1",
            &[daemon.nts_ke()],
            Some(&pki.ca),
            Duration::from_secs(2),
        )
        .await;
        if let Err(error) = &session {
            eprintln!("a key exchange failed: {error}");
        }
        succeeded += usize::from(session.is_ok());
    }
    stop.send(true).unwrap();
    let opened = tokio::task::spawn_blocking(move || flood.join().unwrap())
        .await
        .unwrap();
    let now = daemon.now();
    eprintln!(
        "{succeeded} of 40; the flood opened {opened}; the listener: {:?}",
        [
            Event::NtsKeOk,
            Event::NtsKeBusy,
            Event::NtsKeEvicted,
            Event::NtsKeRateLimited,
            Event::NtsKeTimeout,
            Event::NtsKeTls,
        ]
        .map(|event| (event.name(), now.event(event)))
    );
    (succeeded, opened)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_addresses_holding_300_half_open_connections_keep_no_client_out() {
    let (succeeded, opened) = exchanges_under_a_flood(20, 15, Attack::HalfOpen).await;
    assert!(opened >= 300, "{opened} opened");
    assert!(succeeded >= 36, "{succeeded} of 40 key exchanges succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_addresses_holding_half_open_connections_keep_no_client_out() {
    let (succeeded, opened) = exchanges_under_a_flood(2_000, 1, Attack::HalfOpen).await;
    assert!(opened >= 2_000, "{opened} opened");
    assert!(succeeded >= 36, "{succeeded} of 40 key exchanges succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_connections_trickling_their_requests_are_cut_and_keep_no_client_out() {
    let (succeeded, opened) = exchanges_under_a_flood(100, 4, Attack::Trickle).await;
    assert!(opened >= 400, "{opened} opened");
    assert!(succeeded >= 36, "{succeeded} of 40 key exchanges succeeded");
}
