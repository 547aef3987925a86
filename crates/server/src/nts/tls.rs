//! The key exchange's TLS settings: TLS 1.3 only, ALPN `ntske/1`, the
//! certificate chain and key from their PEM files, checked before they
//! serve as a client would: every block of the chain a certificate, the
//! leaf within its validity period and no CA, the key the leaf's (rustls
//! compares the key's public half with the leaf's), the key's file readable
//! by no other user (as sshd asks of a host key). A pair no client would
//! accept is refused at start, by `--check-config` and by a reload (which
//! keeps the pair in force), rather than served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hora_proto::nts::ke::ALPN;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the certificate or its key can't serve. One line each, naming the
/// file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (or is no regular file: a FIFO there is
    /// refused unread, as for the configuration).
    #[error(transparent)]
    Read(#[from] crate::config::ConfigError),
    /// The file holds no certificate, or no key, in PEM.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was missing or broken.
        what: String,
    },
    /// A block of the chain is no X.509 certificate.
    #[error("{path}: certificate {index} of the chain: {what}")]
    Certificate {
        /// The chain's file.
        path: PathBuf,
        /// Which block, from 1 (the leaf).
        index: usize,
        /// What is wrong with it.
        what: String,
    },
    /// The leaf is one no client would accept: outside its validity
    /// period, or a CA's.
    #[error("{path}: {problem}")]
    Leaf {
        /// The chain's file.
        path: PathBuf,
        /// What is wrong with it.
        problem: LeafProblem,
    },
    /// The pair is unusable: a key of another certificate, a key type
    /// rustls doesn't take.
    #[error("{chain} and {key}: {}", pair_problem(.refused))]
    Pair {
        /// The certificate chain's file.
        chain: PathBuf,
        /// The key's file.
        key: PathBuf,
        /// What rustls said (in words in the message, not as a cause:
        /// its own text carries Debug names).
        refused: rustls::Error,
    },
}

/// What is wrong with a certificate and key, in words: rustls says a key
/// of another certificate as `keys may not be consistent: KeyMismatch`.
fn pair_problem(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InconsistentKeys(_) => {
            "the private key is not the certificate's (the key of another certificate?)".to_owned()
        }
        other => other.to_string(),
    }
}

/// Why clients would refuse a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafProblem {
    /// Its validity ended.
    #[error("the certificate expired at {0} (Unix seconds); renew it")]
    Expired(i64),
    /// Its validity has not begun.
    #[error("the certificate is not valid before {0} (Unix seconds)")]
    NotYetValid(i64),
    /// It is a CA's certificate (basic constraints CA:TRUE), not a
    /// server's: the chain's file must begin with the server's.
    #[error("the first certificate is a CA's (CA:TRUE); put the server's certificate first")]
    Authority,
}

/// The TLS settings of the key exchange, from a certificate pair that
/// passed every check.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// What rustls serves.
    pub config: Arc<rustls::ServerConfig>,
    /// A digest of the two files as read: a reload compares it to tell a
    /// renewed certificate.
    pub digest: u64,
    /// When the leaf's validity ends, in Unix seconds: in `/metrics` and
    /// `/status`, so an admin can alert before it does.
    pub expires: i64,
}

/// The crypto provider of every TLS connection of horad's and hora's: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The key exchange's settings from the PEM files `chain` (leaf first) and
/// `key`, checked as of `now` (Unix seconds). File I/O: called at start-up
/// and in a reload's plan, off the serving thread.
pub fn server_config(chain: &Path, key: &Path, now: i64) -> Result<ServerTls, TlsError> {
    let pem_error = |path: &Path, what: String| TlsError::Pem {
        path: path.to_owned(),
        what,
    };
    let chain_pem = read_pem(chain)?;
    let certificates = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(chain, error.to_string()))?;
    let expires = check_chain(&certificates, now).map_err(|problem| match problem {
        ChainProblem::Empty => pem_error(chain, "no certificate in PEM".to_owned()),
        ChainProblem::Unreadable { index, what } => TlsError::Certificate {
            path: chain.to_owned(),
            index,
            what,
        },
        ChainProblem::Leaf(problem) => TlsError::Leaf {
            path: chain.to_owned(),
            problem,
        },
    })?;
    let key_pem = crate::config::read_secret(key)?.into_bytes();
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| pem_error(key, format!("no private key in PEM ({error})")))?;
    let pair = |refused| TlsError::Pair {
        chain: chain.to_owned(),
        key: key.to_owned(),
        refused,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(pair)?
        .with_no_client_auth()
        .with_single_cert(certificates, private_key)
        .map_err(pair)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No session tickets or resumption state: each KE is one connection.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let mut digest = std::hash::DefaultHasher::new();
    std::hash::Hash::hash(&(&chain_pem, &key_pem), &mut digest);
    Ok(ServerTls {
        config: Arc::new(config),
        digest: std::hash::Hasher::finish(&digest),
        expires,
    })
}

/// What is wrong with a chain, before the file's name is put to it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ChainProblem {
    Empty,
    Unreadable { index: usize, what: String },
    Leaf(LeafProblem),
}

/// Checks every certificate of `chain` parses (nothing trailing) and that
/// the leaf, the first, serves at `now` (Unix seconds); when the leaf
/// expires.
fn check_chain(chain: &[CertificateDer<'_>], now: i64) -> Result<i64, ChainProblem> {
    let mut leaf = None;
    for (index, der) in chain.iter().enumerate() {
        let unreadable = |what: String| ChainProblem::Unreadable {
            index: index + 1,
            what,
        };
        let certificate = match x509_parser::parse_x509_certificate(der) {
            Ok(([], certificate)) => certificate,
            Ok((rest, _)) => return Err(unreadable(format!("{} bytes after it", rest.len()))),
            Err(error) => return Err(unreadable(format!("not an X.509 certificate ({error})"))),
        };
        if leaf.is_none() {
            let validity = certificate.validity();
            let (from, until) = (
                validity.not_before.timestamp(),
                validity.not_after.timestamp(),
            );
            let problem = if now > until {
                Some(LeafProblem::Expired(until))
            } else if now < from {
                Some(LeafProblem::NotYetValid(from))
            } else if certificate.is_ca() {
                Some(LeafProblem::Authority)
            } else {
                None
            };
            leaf = Some(problem.map_or(Ok(until), Err));
        }
    }
    match leaf {
        None => Err(ChainProblem::Empty),
        Some(checked) => checked.map_err(ChainProblem::Leaf),
    }
}

/// A PEM file's bytes, read as safely as the configuration is.
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    Ok(crate::config::read_file(path)?.into_bytes())
}
