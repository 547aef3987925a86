//! `hora roughtime`: ask a Roughtime server (RFC 10049) for a signed time
//! and check it with the server's public key alone: the delegation, the
//! signature, the request's place in the signed tree. The request and the
//! checks are `hora_proto::roughtime::client`'s (the server's half is
//! tested against them); this module owns the socket and the clock.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hora_proto::roughtime::client::{self, Verified, VerifyError};
use hora_proto::roughtime::version::Version;
use rand::RngCore as _;
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::race::{self, Failure};
use crate::socket::{bind_udp, default_bind};

/// How long one try waits before the request is sent again.
const TRY_WAIT: Duration = Duration::from_secs(1);

/// The largest response read (a full Ethernet payload).
const RESPONSE_MAX: usize = 1472;

/// The versions offered, ascending: RFC 10049's, then the drafts still in
/// use (a server answers version 1 if it can).
pub fn offered() -> Vec<Version> {
    Version::supported().collect()
}

/// A public key as clients are given one: base64 (44 characters) or hex
/// (64 digits).
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|error| error.to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|error| format!("neither base64 nor 64 hex digits: {error}"))?
    };
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("an Ed25519 public key is 32 bytes, not {}", bytes.len()))
}

/// A verified answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    /// The server that answered.
    pub server: SocketAddr,
    /// What the response says, every check passed.
    pub verified: Verified,
    /// The round trip.
    pub rtt: Duration,
    /// This clock at the middle of the round trip.
    pub local: SystemTime,
}

/// Why no verified time.
#[derive(Debug, thiserror::Error)]
pub enum RoughtimeError {
    /// Nothing answered within the timeout.
    #[error("{server}: no Roughtime answer within {timeout:?} (a server drops a request naming another key)")]
    Timeout {
        /// The server asked.
        server: SocketAddr,
        /// How long it was given.
        timeout: Duration,
    },
    /// Nothing listens there.
    #[error("{0}: refused (no Roughtime server there)")]
    Refused(SocketAddr),
    /// The answer failed a check: its time is not to be believed.
    #[error("{server}: the Roughtime response failed verification: {reason}")]
    Unverified {
        /// The server.
        server: SocketAddr,
        /// The check it failed.
        reason: VerifyError,
    },
    /// The socket failed.
    #[error("{server}: {source}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// The name resolved to no address.
    #[error("no address to ask")]
    NoAddress,
}

/// Asks the first of `servers` to answer, within `timeout`, checking the
/// answer with `key`.
pub async fn query(
    servers: &[SocketAddr],
    bind: Option<SocketAddr>,
    timeout: Duration,
    key: [u8; 32],
) -> Result<Measurement, RoughtimeError> {
    let attempt = move |server: SocketAddr, left: Duration| async move {
        query_one(server, bind, left, &key)
            .await
            .map_err(|error| match error {
                RoughtimeError::Timeout { server, .. } => {
                    RoughtimeError::Timeout { server, timeout }
                }
                other => other,
            })
    };
    let failure = |error: &RoughtimeError| match error {
        RoughtimeError::Refused(_) => Failure::Refused,
        RoughtimeError::Timeout { .. } => Failure::Silent,
        _ => Failure::Final,
    };
    race::first_answer(
        servers,
        timeout,
        attempt,
        failure,
        RoughtimeError::NoAddress,
    )
    .await
}

async fn query_one(
    server: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
    key: &[u8; 32],
) -> Result<Measurement, RoughtimeError> {
    let io = |source| RoughtimeError::Io { server, source };
    let socket = bind_udp(bind.unwrap_or_else(|| default_bind(server)))
        .await
        .map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let request = client::request(&nonce, &offered(), Some(key));
    exchange(&socket, server, &request, timeout, key).await
}

/// Sends `request` every second until a response verifies or `timeout`.
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    timeout: Duration,
    key: &[u8; 32],
) -> Result<Measurement, RoughtimeError> {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; RESPONSE_MAX];
    loop {
        let sent = (Instant::now(), SystemTime::now());
        match socket.send(request).await {
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(RoughtimeError::Refused(server))
            }
            Err(source) => return Err(RoughtimeError::Io { server, source }),
            Ok(_) => {}
        }
        let try_until = deadline.min(Instant::now() + TRY_WAIT);
        let len = match timeout_at(try_until, socket.recv(&mut buffer)).await {
            Err(_) if Instant::now() >= deadline => {
                return Err(RoughtimeError::Timeout { server, timeout })
            }
            Err(_) => continue,
            Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(RoughtimeError::Refused(server))
            }
            Ok(Err(source)) => return Err(RoughtimeError::Io { server, source }),
            Ok(Ok(len)) => len,
        };
        let rtt = sent.0.elapsed();
        let verified = client::verify(request, &buffer[..len], key)
            .map_err(|reason| RoughtimeError::Unverified { server, reason })?;
        return Ok(Measurement {
            server,
            verified,
            rtt,
            local: sent.1 + rtt / 2,
        });
    }
}

fn text_of(unix: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(unix);
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Measurement {
    /// This clock's offset from the server's midpoint, seconds.
    pub fn offset(&self) -> f64 {
        let local = self
            .local
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        local - self.verified.midpoint as f64
    }

    /// What a person reads.
    pub fn lines(&self) -> String {
        let v = &self.verified;
        format!(
            "{} +/- {} s (Roughtime {}, {})\nsignature: verified; delegation: verified ({} to {})\noffset: {:+.3} s (this clock minus the server's), within the radius: {}\n",
            text_of(v.midpoint),
            v.radius,
            v.version.name(),
            self.server,
            text_of(v.mint),
            text_of(v.maxt),
            self.offset(),
            if self.offset().abs() <= f64::from(v.radius) { "yes" } else { "no" },
        )
    }

    /// What a script reads.
    pub fn json(&self) -> serde_json::Value {
        let v = &self.verified;
        serde_json::json!({
            "server": self.server.to_string(),
            "version": v.version.name(),
            "midpoint": v.midpoint,
            "midpoint_text": text_of(v.midpoint),
            "radius_s": v.radius,
            "signature_verified": true,
            "delegation_verified": true,
            "delegation": { "from": text_of(v.mint), "until": text_of(v.maxt) },
            "offset_s": (self.offset() * 1e3).round() / 1e3,
            "rtt_ms": (self.rtt.as_secs_f64() * 1e6).round() / 1e3,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_base64_or_hex() {
        let hex = "340a6e249be3c5ba6acc1b2db7306d6e0071fdef68eb7c9accdf2b2a9d3e189f";
        let base64 = "NApuJJvjxbpqzBsttzBtbgBx/e9o63yazN8rKp0+GJ8=";
        assert_eq!(parse_key(hex), parse_key(base64));
        assert_eq!(parse_key(hex).map(|key| key[0]), Ok(0x34));
        assert!(parse_key("AAAA").unwrap_err().contains("32 bytes"));
        assert!(parse_key("not a key!").unwrap_err().contains("neither"));
    }
}
