//! Why NTS gave no authenticated time: in a file of its own, so that the
//! SNTP exchange, which reports it, needs nothing else of NTS.

use std::net::SocketAddr;
use std::path::PathBuf;

use hora_proto::nts::ke::AnswerError;
use hora_proto::nts::packet::ReplyError;

/// Why NTS gave no authenticated time.
#[derive(Debug, thiserror::Error)]
pub enum NtsError {
    /// The trusted certificates could not be read.
    #[error("{path}: {what}")]
    Trust {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        what: String,
    },
    /// No trusted certificate at all (no `--ca`, and the system has none).
    #[error("no trusted certificates: give the server's CA with --ca FILE")]
    NoTrust,
    /// The host name is no TLS server name.
    #[error("`{0}` is not a host name or address TLS can verify")]
    Name(String),
    /// TCP or TLS failed (the certificate not trusted, among others).
    #[error("key exchange with {server}: {what}")]
    Exchange {
        /// The key exchange server.
        server: SocketAddr,
        /// What failed.
        what: String,
    },
    /// The server's answer can't be used.
    #[error("key exchange with {server}: {source}")]
    Answer {
        /// The key exchange server.
        server: SocketAddr,
        /// What was wrong with it.
        source: AnswerError,
    },
    /// The NTP server named by the key exchange has no address.
    #[error("the NTP server `{0}` the key exchange named has no address")]
    NtpServer(String),
    /// A reply that failed to authenticate, or a NTSN kiss.
    #[error("NTS: {0}")]
    Reply(ReplyError),
    /// Every cookie is spent.
    #[error("NTS: no cookie left")]
    NoCookie,
}
