//! `hora sntp --nts`: the key exchange over TLS 1.3 (RFC 8915, section 4),
//! then SNTP requests authenticated with the keys and cookies it gave
//! ([`Authenticated`], a [`Dialect`]). Every byte's meaning is
//! `hora_proto::nts`'s, the code horad serves with, so the two halves test
//! each other; this module owns the TCP and TLS connection, the trusted
//! certificates and the randomness.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hora_proto::nts::ke::{self, Progress, ALPN};
use hora_proto::nts::packet::{self, ReplyError};
use hora_proto::nts::{Algorithm, Keys};
use hora_proto::sntp::{NtpTimestamp, PACKET_LEN};
use rand::RngCore as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::sntp::{Dialect, SntpError};

pub mod error;

pub use error::NtsError;

/// NTP's port, where the key exchange names none.
const NTP_PORT: u16 = 123;

/// A failed TLS handshake in words: the certificate problems people meet
/// (a self-signed `CA:TRUE` certificate as `openssl req -x509` makes, an
/// issuer not trusted, a name not in the certificate, the clocks) said as
/// what to do, never as rustls' Debug names.
fn handshake_failure(error: &std::io::Error, host: &str) -> String {
    use rustls::CertificateError as Certificate;
    let Some(rustls::Error::InvalidCertificate(refused)) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return error.to_string();
    };
    match refused {
        Certificate::Other(other)
            if matches!(
                other.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as \
             `openssl req -x509` makes one), which hora and other rustls/webpki clients \
             (ntpd-rs) refuse as a server's own: have a private CA sign a CA:FALSE \
             certificate for the server (README, \"NTS\")"
                .to_owned()
        }
        Certificate::UnknownIssuer => {
            "the server's certificate is not signed by a CA hora trusts: give its CA with --ca FILE"
                .to_owned()
        }
        Certificate::NotValidForName | Certificate::NotValidForNameContext { .. } => {
            format!("the server's certificate does not name `{host}`: ask by a name or address in its subjectAltName")
        }
        Certificate::Expired | Certificate::ExpiredContext { .. } => {
            "the server's certificate has expired (or this machine's clock is wrong)".to_owned()
        }
        Certificate::NotValidYet | Certificate::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (or this machine's clock is wrong)"
                .to_owned()
        }
        other => format!("the server's certificate was refused: {other}"),
    }
}

/// What a key exchange gave: the keys, the cookies, and where to ask.
#[derive(Debug)]
pub struct Session {
    /// The keys.
    pub keys: Keys,
    /// The cookies, one spent per request.
    pub cookies: Vec<Vec<u8>>,
    /// The NTP server's addresses.
    pub ntp: Vec<SocketAddr>,
}

/// The TLS settings: TLS 1.3, ALPN `ntske/1`, trusting `ca` (PEM) or,
/// without it, the system's CAs.
fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, NtsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let trust = |what: String| NtsError::Trust {
                path: path.to_owned(),
                what,
            };
            let pem = std::fs::read(path).map_err(|e| trust(e.to_string()))?;
            for certificate in CertificateDer::pem_slice_iter(&pem) {
                let certificate = certificate.map_err(|e| trust(e.to_string()))?;
                roots.add(certificate).map_err(|e| trust(e.to_string()))?;
            }
        }
        None => {
            for certificate in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(certificate);
            }
        }
    }
    if roots.is_empty() {
        return Err(NtsError::NoTrust);
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .map_err(|e| NtsError::Name(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The key exchange with `host` (the name its certificate must carry) at
/// the first of `addrs` that takes the connection, within `timeout`.
pub async fn key_exchange(
    host: &str,
    addrs: &[SocketAddr],
    ca: Option<&Path>,
    timeout: Duration,
) -> Result<Session, SntpError> {
    key_exchange_offering(host, addrs, ca, timeout, &Algorithm::PREFERRED).await
}

/// [`key_exchange`], offering only `algorithms` (in that order): for
/// benchmarks and tests of one AEAD.
pub async fn key_exchange_offering(
    host: &str,
    addrs: &[SocketAddr],
    ca: Option<&Path>,
    timeout: Duration,
    algorithms: &[Algorithm],
) -> Result<Session, SntpError> {
    let config = client_config(ca)?;
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| NtsError::Name(host.to_owned()))?;
    let mut last = None;
    for &server in addrs {
        let attempt = tokio::time::timeout(
            timeout,
            exchange(Arc::clone(&config), name.clone(), host, server, algorithms),
        );
        match attempt.await {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(error)) => last = Some(error),
            Err(_) => {
                last = Some(NtsError::Exchange {
                    server,
                    what: format!("no answer within {timeout:?}"),
                })
            }
        }
    }
    Err(last.map_or(SntpError::NoAddress, SntpError::from))
}

async fn exchange(
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    host: &str,
    server: SocketAddr,
    algorithms: &[Algorithm],
) -> Result<Session, NtsError> {
    let failed = |what: String| NtsError::Exchange { server, what };
    let tcp = TcpStream::connect(server)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| failed(handshake_failure(&e, host)))?;
    let mut request = Vec::new();
    ke::write_request(algorithms, &mut request);
    tls.write_all(&request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    tls.flush().await.map_err(|e| failed(e.to_string()))?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let answer = loop {
        match ke::read_response(&bytes).map_err(|source| NtsError::Answer { server, source })? {
            Progress::Complete(answer) => break answer,
            Progress::Incomplete => {}
        }
        let read = tls
            .read(&mut chunk)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if read == 0 {
            return Err(failed(
                "the server closed before its answer ended".to_owned(),
            ));
        }
        bytes.extend_from_slice(&chunk[..read]);
    };
    let connection = tls.get_ref().1;
    let keys = hora_proto::nts::export_keys(answer.algorithm, |label, context, out| {
        connection
            .export_keying_material(out, label, Some(context))
            .map(|_| ())
    })
    .map_err(|e| failed(e.to_string()))?;
    let _ = tls.shutdown().await;
    let ntp_host = answer.server.clone().unwrap_or_else(|| host.to_owned());
    let port = answer.port.unwrap_or(NTP_PORT);
    let ntp = match (answer.server.as_deref(), server) {
        // No Server record: the key exchange's own address.
        (None, server) => vec![SocketAddr::new(server.ip(), port)],
        (Some(_), _) => {
            tokio::net::lookup_host((ntp_host.trim_start_matches('[').trim_end_matches(']'), port))
                .await
                .map(Iterator::collect)
                .map_err(|_| NtsError::NtpServer(ntp_host.clone()))?
        }
    };
    if ntp.is_empty() {
        return Err(NtsError::NtpServer(ntp_host));
    }
    Ok(Session {
        keys,
        cookies: answer.cookies,
        ntp,
    })
}

/// NTS-authenticated requests: each spends a cookie and asks for as many
/// back, so the jar never runs dry; only a reply that authenticates with
/// the session's key is read.
#[derive(Debug)]
pub struct Authenticated {
    session: Session,
    unique_id: [u8; 32],
}

impl Authenticated {
    /// Requests with `session`'s keys and cookies.
    pub fn new(session: Session) -> Authenticated {
        Authenticated {
            session,
            unique_id: [0; 32],
        }
    }
}

impl Dialect for Authenticated {
    fn request(&mut self, sent: NtpTimestamp) -> Result<Vec<u8>, SntpError> {
        let cookie = self.session.cookies.pop().ok_or(NtsError::NoCookie)?;
        let mut rng = rand::rng();
        rng.fill_bytes(&mut self.unique_id);
        let algorithm = self.session.keys.algorithm;
        let mut nonce = vec![0u8; algorithm.nonce_len()];
        rng.fill_bytes(&mut nonce);
        // Keep the jar at 8: ask for one more per cookie missing.
        let placeholders = 7usize.saturating_sub(self.session.cookies.len()).min(2);
        let header = hora_proto::sntp::client_request(sent);
        packet::write_request(
            &header,
            &self.session.keys,
            &cookie,
            placeholders,
            &self.unique_id,
            &nonce,
        )
        .ok_or_else(|| SntpError::from(NtsError::Reply(ReplyError::Unauthenticated)))
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<Option<[u8; PACKET_LEN]>, SntpError> {
        match packet::read_reply(datagram, &self.session.keys, &self.unique_id) {
            Ok(reply) => {
                self.session.cookies.extend(reply.cookies);
                Ok(Some(reply.header))
            }
            // A stale reply, or a forgery: keep waiting for ours.
            Err(ReplyError::NotOurs | ReplyError::Unauthenticated) => Ok(None),
            Err(error @ ReplyError::Nak) => Err(NtsError::Reply(error).into()),
        }
    }

    fn authenticated(&self) -> Option<Algorithm> {
        Some(self.session.keys.algorithm)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // A panic is a failed test.
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use rustls::pki_types::PrivateKeyDer;

    /// Why a key exchange with a loopback server whose certificate is
    /// `params`, signed by itself and trusted as a CA, fails.
    async fn refused(params: CertificateParams) -> String {
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let pem = certificate.pem();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        config.alpn_protocols = vec![ALPN.to_vec()];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            // Bounded: the one connection the test makes.
            if let Ok((stream, _)) = listener.accept().await {
                let _ = acceptor.accept(stream).await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("cert.pem");
        std::fs::write(&ca, pem).unwrap();
        key_exchange("127.0.0.1", &[addr], Some(&ca), Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string()
    }

    /// The certificate `openssl req -x509 -newkey …` makes is marked
    /// `CA:TRUE`; chronyd serves it and webpki refuses it as a server's
    /// own. hora says so in words and says what to do.
    #[tokio::test]
    async fn a_ca_certificate_serving_as_the_servers_own_is_refused_in_words() {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let error = refused(params).await;
        assert!(
            error.contains("the server's certificate is a CA certificate")
                && error.contains("CA:FALSE"),
            "{error}"
        );
        assert!(!error.contains("OtherError"), "{error}");
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_refused_in_words() {
        let params = CertificateParams::new(vec!["other.example".to_owned()]).unwrap();
        let error = refused(params).await;
        assert!(
            error.contains("the server's certificate does not name `127.0.0.1`"),
            "{error}"
        );
    }
}
