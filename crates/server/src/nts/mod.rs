//! Network Time Security's I/O (RFC 8915): the key exchange listener
//! ([`ke`]), its certificate ([`tls`]) and the cookie keys' file
//! ([`keys`]). What the records, cookies and extension fields mean is
//! `hora_proto::nts`'s; the authenticated SNTP request path is
//! [`crate::protocols::sntp`]'s.

/// The key exchange listener.
pub mod ke;
/// The cookie keys' file.
pub mod keys;
/// The key exchange's certificate.
pub mod tls;

use std::sync::Arc;

use crate::config::NtsConfig;

/// What the live view holds of NTS: built from `[nts]` by [`NtsLive::new`]
/// (which reads the certificate and its key: a reload re-reads them, so a
/// renewed certificate serves new connections without a restart).
#[derive(Debug, Clone)]
pub struct NtsLive {
    /// The key exchange's TLS settings, when it is served. Each connection
    /// takes its own `Arc`, so one in flight finishes on the certificate
    /// it started with.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// A digest of the certificate and key files as read: a reload that
    /// finds it changed says so, and serves the new pair.
    pub certificate_digest: Option<u64>,
    /// When the served certificate expires, in Unix seconds.
    pub certificate_expires: Option<i64>,
    /// Whether plain SNTP requests are dropped.
    pub require: bool,
    /// The Server record of the key exchange's answers.
    pub ntp_server: Option<String>,
    /// The Port record of the key exchange's answers.
    pub ntp_port: Option<u16>,
}

impl NtsLive {
    /// The live NTS settings of `config`; `None` when NTS is off.
    pub fn new(config: &NtsConfig) -> Result<Option<NtsLive>, tls::TlsError> {
        if !config.serves() {
            return Ok(None);
        }
        let served = match (&config.certificate_chain, &config.private_key) {
            (Some(chain), Some(key)) if !config.bind.is_empty() => {
                Some(tls::server_config(chain, key, unix_now())?)
            }
            _ => None,
        };
        Ok(Some(NtsLive {
            tls: served.as_ref().map(|served| Arc::clone(&served.config)),
            certificate_digest: served.as_ref().map(|served| served.digest),
            certificate_expires: served.as_ref().map(|served| served.expires),
            require: config.require,
            ntp_server: config.ntp_server.clone(),
            ntp_port: config.ntp_port,
        }))
    }
}

/// The wall clock in Unix seconds, for a certificate's validity.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// Why `[nts]`'s files can't serve, for `horad --check-config`.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The certificate or its key.
    #[error("NTS-KE certificate: {0}")]
    Certificate(#[from] tls::TlsError),
    /// The cookie keys' file.
    #[error("NTS cookie keys: {0}")]
    Keys(#[from] keys::KeyFileError),
}

/// Reads (and never writes) every file `[nts]` names, as start-up would:
/// the certificate and key must pair, the cookie keys' file must parse (it
/// may be missing only where this host would create it).
pub fn check(config: &NtsConfig) -> Result<(), CheckError> {
    NtsLive::new(config)?;
    if let Some(path) = &config.keys {
        keys::KeyFile {
            path: path.clone(),
            rotates: !config.bind.is_empty(),
            rotation: config.key_rotation,
        }
        .check()?;
    }
    Ok(())
}
