//! The key exchange's TLS settings: TLS 1.3 only, ALPN `ntske/1`, the
//! certificate chain and key from their PEM files, checked to belong
//! together (rustls compares the key's public half with the leaf's).

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
    /// The pair is unusable: a key of another certificate, a key type
    /// rustls doesn't take.
    #[error("{chain} and {key}: {source}")]
    Pair {
        /// The certificate chain's file.
        chain: PathBuf,
        /// The key's file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

/// The crypto provider of every TLS connection of horad's and hora's: ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The key exchange's settings from the PEM files `chain` (leaf first) and
/// `key`, with a digest of the two files (a reload compares it to tell a
/// renewed certificate). File I/O: called at start-up and in a reload's
/// plan, off the serving thread.
pub fn server_config(
    chain: &Path,
    key: &Path,
) -> Result<(Arc<rustls::ServerConfig>, u64), TlsError> {
    let pem_error = |path: &Path, what: String| TlsError::Pem {
        path: path.to_owned(),
        what,
    };
    let chain_pem = read_pem(chain)?;
    let certificates = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(chain, error.to_string()))?;
    if certificates.is_empty() {
        return Err(pem_error(chain, "no certificate in PEM".to_owned()));
    }
    let key_pem = read_pem(key)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|error| pem_error(key, format!("no private key in PEM ({error})")))?;
    let pair = |source| TlsError::Pair {
        chain: chain.to_owned(),
        key: key.to_owned(),
        source,
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
    Ok((Arc::new(config), std::hash::Hasher::finish(&digest)))
}

/// A PEM file's bytes, read as safely as the configuration is.
fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    Ok(crate::config::read_file(path)?.into_bytes())
}
