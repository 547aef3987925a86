//! `hora sntp`: ask any SNTP/NTP server (horad's SNTP socket, chronyd, a
//! router) how far this machine's clock is from its own, as `ntpdate -q`
//! does. What a reply means is `hora_proto::sntp`'s; this module owns the
//! socket, the clock readings and the choice among samples.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hora_proto::nts::Algorithm;
use hora_proto::sntp::{self, NtpTimestamp, ReplyError, Sample, PACKET_LEN};
use tokio::net::UdpSocket;
use tokio::time::{timeout_at, Instant};

use crate::one_shot::rounded;
use crate::race::{self, Failure};
use crate::socket::{bind_udp, default_bind};

/// How long one try waits before the request is sent again.
const TRY_WAIT: Duration = Duration::from_secs(1);

/// How long to wait between samples, when several are asked for.
const SAMPLE_GAP: Duration = Duration::from_millis(250);

/// The best sample from a server, and how many were taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// The server that answered.
    pub server: SocketAddr,
    /// The sample with the least delay (ntpdate's choice).
    pub best: Sample,
    /// How many samples were taken.
    pub samples: u32,
    /// The AEAD that authenticated every sample, when asked with NTS.
    pub authenticated: Option<Algorithm>,
}

/// How a sample's request is made and its reply read: plain SNTP, or NTS
/// ([`crate::nts::Authenticated`]).
pub trait Dialect: Send {
    /// The request to send, its transmit timestamp `sent`.
    fn request(&mut self, sent: NtpTimestamp) -> Result<Vec<u8>, SntpError>;

    /// The 48-byte header to read as the reply, if `datagram` is the reply
    /// to the last request (`Ok(None)`: not ours, keep waiting).
    fn accept(&mut self, datagram: &[u8]) -> Result<Option<[u8; PACKET_LEN]>, SntpError>;

    /// The AEAD that authenticates, if any.
    fn authenticated(&self) -> Option<Algorithm> {
        None
    }
}

/// Plain SNTP: no authentication.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Dialect for Plain {
    fn request(&mut self, sent: NtpTimestamp) -> Result<Vec<u8>, SntpError> {
        Ok(sntp::client_request(sent).to_vec())
    }

    fn accept(&mut self, datagram: &[u8]) -> Result<Option<[u8; PACKET_LEN]>, SntpError> {
        Ok(datagram
            .get(..PACKET_LEN)
            .and_then(|header| header.try_into().ok()))
    }
}

/// Why no time was obtained.
#[derive(Debug, thiserror::Error)]
pub enum SntpError {
    /// The server answered, but with no time: a kiss-o'-death or an
    /// unsynchronized clock. Reported as such, never as a time.
    #[error("{server}: {reason}: no time")]
    NoTime {
        /// The server.
        server: SocketAddr,
        /// What its reply said.
        reason: ReplyError,
    },
    /// Silence for the whole timeout.
    #[error("no answer from {server} within {timeout:?}")]
    Timeout {
        /// The server.
        server: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
    /// Nothing listens at any of the addresses.
    #[error("no server is listening at {0} (connection refused)")]
    Refused(SocketAddr),
    /// The server's name gave no address.
    #[error("the server's name has no address")]
    NoAddress,
    /// The NTS key exchange or an authenticated reply failed.
    #[error(transparent)]
    Nts(#[from] crate::nts::error::NtsError),
    /// The socket failed.
    #[error("network error talking to {server}: {source}")]
    Io {
        /// The server.
        server: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

/// Takes `count` samples from the first of `servers` to answer (a name's
/// addresses raced as Happy Eyeballs does), each waited for up to
/// `timeout`, and returns the one with the least delay. A kiss-o'-death or
/// an unsynchronized reply ends the query at once.
pub async fn query(
    servers: &[SocketAddr],
    bind: Option<SocketAddr>,
    timeout: Duration,
    count: u32,
) -> Result<Measurement, SntpError> {
    // A name's addresses raced as Happy Eyeballs does (`crate::race`).
    let attempt = |server: SocketAddr, left: Duration| async move {
        query_one(&mut Plain, server, bind, left, count)
            .await
            .map_err(|error| match error {
                // Against the timeout asked for, not this address's part.
                SntpError::Timeout { server, .. } => SntpError::Timeout { server, timeout },
                other => other,
            })
    };
    let failure = |error: &SntpError| match error {
        SntpError::Refused(_) => Failure::Refused,
        SntpError::Timeout { .. } => Failure::Silent,
        _ => Failure::Final,
    };
    race::first_answer(servers, timeout, attempt, failure, SntpError::NoAddress).await
}

/// [`query`], each request made and each reply read by `dialect`.
pub async fn query_with(
    dialect: &mut dyn Dialect,
    servers: &[SocketAddr],
    bind: Option<SocketAddr>,
    timeout: Duration,
    count: u32,
) -> Result<Measurement, SntpError> {
    let mut refused = None;
    for &server in servers {
        match query_one(dialect, server, bind, timeout, count).await {
            Err(SntpError::Refused(server)) => refused = Some(server),
            other => return other,
        }
    }
    Err(refused.map_or(SntpError::NoAddress, SntpError::Refused))
}

async fn query_one(
    dialect: &mut dyn Dialect,
    server: SocketAddr,
    bind: Option<SocketAddr>,
    timeout: Duration,
    count: u32,
) -> Result<Measurement, SntpError> {
    let io = |source| SntpError::Io { server, source };
    let socket = bind_udp(bind.unwrap_or_else(|| default_bind(server)))
        .await
        .map_err(io)?;
    socket.connect(server).await.map_err(io)?;
    let mut best: Option<Sample> = None;
    for index in 0..count {
        if index > 0 {
            tokio::time::sleep(SAMPLE_GAP).await;
        }
        let sample = sample(dialect, &socket, server, timeout).await?;
        if best.is_none_or(|b| sample.delay < b.delay) {
            best = Some(sample);
        }
    }
    best.map(|best| Measurement {
        server,
        best,
        samples: count,
        authenticated: dialect.authenticated(),
    })
    .ok_or(SntpError::Timeout { server, timeout })
}

/// One request and its reply, sent again every second until `timeout`.
async fn sample(
    dialect: &mut dyn Dialect,
    socket: &UdpSocket,
    server: SocketAddr,
    timeout: Duration,
) -> Result<Sample, SntpError> {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0u8; 1024];
    loop {
        let sent = NtpTimestamp::from_system_time(SystemTime::now());
        let request = dialect.request(sent)?;
        match socket.send(&request).await {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(SntpError::Refused(server))
            }
            Err(source) => return Err(SntpError::Io { server, source }),
        }
        let try_until = deadline.min(Instant::now() + TRY_WAIT);
        loop {
            let received = match timeout_at(try_until, socket.recv(&mut buffer)).await {
                Err(_) if Instant::now() >= deadline => {
                    return Err(SntpError::Timeout { server, timeout })
                }
                Err(_) => break, // Send again.
                Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(SntpError::Refused(server))
                }
                Ok(Err(source)) => return Err(SntpError::Io { server, source }),
                Ok(Ok(len)) => len,
            };
            let now = unix_seconds(SystemTime::now());
            let Some(header) = dialect.accept(&buffer[..received])? else {
                continue;
            };
            match sntp::read_reply(&header, sent, now) {
                Ok(sample) => return Ok(sample),
                // Stale or not a reply: keep waiting for ours.
                Err(ReplyError::NotOurs | ReplyError::NotAReply) => {}
                Err(reason) => return Err(SntpError::NoTime { server, reason }),
            }
        }
    }
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

impl Measurement {
    /// The server's time as RFC 3339 UTC with microseconds.
    pub fn server_time(&self) -> String {
        let micros = (self.best.server_time * 1e6).round() as i64;
        chrono::DateTime::from_timestamp_micros(micros).map_or_else(
            || "invalid".to_owned(),
            |time| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        )
    }

    /// What `ntpdate -q` prints, and a line more (two with NTS).
    pub fn lines(&self) -> String {
        let best = &self.best;
        let authenticated = match self.authenticated {
            Some(algorithm) => format!("authenticated: NTS, {}\n", algorithm.name()),
            None => String::new(),
        };
        format!(
            "server {}, stratum {}, offset {:+.6}, delay {:.6}\n\
             {}  leap {} ({})  reference {}\n{authenticated}",
            self.server,
            best.stratum,
            best.offset,
            best.delay,
            self.server_time(),
            best.leap,
            match best.leap {
                1 => "61-second minute today",
                2 => "59-second minute today",
                _ => "none",
            },
            sntp::reference_id_text(best.reference_id, best.stratum),
        )
    }

    /// One flat JSON object, numbers to the microsecond.
    pub fn json(&self) -> serde_json::Value {
        let best = &self.best;
        serde_json::json!({
            "server": self.server.to_string(),
            "server_time": self.server_time(),
            "offset_s": rounded(best.offset, 6),
            "delay_s": rounded(best.delay, 6),
            "stratum": best.stratum,
            "leap": best.leap,
            "reference_id": sntp::reference_id_text(best.reference_id, best.stratum),
            "samples": self.samples,
            "nts": self.authenticated.map(Algorithm::name),
        })
    }
}

#[cfg(test)]
mod tests {
    use hora_proto::sntp::{
        parse_request, write_kiss_of_death, write_reply, ServerClock, KISS_RATE,
    };

    use super::*;

    /// An SNTP server on loopback that answers each request with `answer`.
    async fn server(answer: fn(&[u8], &mut [u8; 48]) -> bool) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 128];
            while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
                let mut reply = [0u8; 48];
                if answer(&buffer[..len], &mut reply) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        addr
    }

    fn honest(request: &[u8], reply: &mut [u8; 48]) -> bool {
        let request = parse_request(request).unwrap();
        let now = NtpTimestamp::from_system_time(SystemTime::now());
        write_reply(&request, &ServerClock::default(), now, now, reply);
        true
    }

    #[tokio::test]
    async fn measures_a_server_that_serves_this_clock() {
        let addr = server(honest).await;
        let measured = query(&[addr], None, Duration::from_secs(5), 3)
            .await
            .unwrap();
        assert_eq!(measured.server, addr);
        assert_eq!(measured.samples, 3);
        assert!(measured.best.offset.abs() < 0.01, "{measured:?}");
        assert!(measured.best.delay >= 0.0 && measured.best.delay < 0.01);
        let json = measured.json();
        assert_eq!(json["stratum"], 10);
        assert_eq!(json["leap"], 0);
        assert_eq!(json["reference_id"], "127.127.1.1");
        assert!(json["server_time"].as_str().unwrap().ends_with('Z'));
        assert!(measured
            .lines()
            .starts_with(&format!("server {addr}, stratum 10, offset ")));
    }

    #[tokio::test]
    async fn a_kiss_of_death_is_reported_never_a_time() {
        let addr = server(|request, reply| {
            write_kiss_of_death(&parse_request(request).unwrap(), KISS_RATE, reply);
            true
        })
        .await;
        let error = query(&[addr], None, Duration::from_secs(5), 1)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{addr}: kiss-o'-death RATE: no time")
        );
    }

    #[tokio::test]
    async fn an_unsynchronized_server_is_reported_never_a_time() {
        let addr = server(|request, reply| {
            let request = parse_request(request).unwrap();
            let clock = ServerClock {
                leap_indicator: 3,
                stratum: 0,
                reference_id: [0; 4],
                ..ServerClock::default()
            };
            let now = NtpTimestamp::from_system_time(SystemTime::now());
            write_reply(&request, &clock, now, now, reply);
            true
        })
        .await;
        let error = query(&[addr], None, Duration::from_secs(5), 1)
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            SntpError::NoTime {
                reason: ReplyError::Unsynchronized,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_refusing_address_is_passed_over_for_the_next() {
        let closed = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let addr = server(honest).await;
        let measured = query(&[closed, addr], None, Duration::from_secs(5), 1)
            .await
            .unwrap();
        assert_eq!(measured.server, addr);
        let error = query(&[closed], None, Duration::from_secs(5), 1)
            .await
            .unwrap_err();
        assert!(matches!(error, SntpError::Refused(_)), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_a_timeout() {
        let addr = server(|_, _| false).await;
        let error = query(&[addr], None, Duration::from_secs(3), 1)
            .await
            .unwrap_err();
        assert!(matches!(error, SntpError::Timeout { .. }), "{error}");
    }
}
