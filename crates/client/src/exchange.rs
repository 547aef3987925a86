//! One request and its answer over UDP, with resends and a deadline.
//!
//! UDP loses datagrams; the seed's client simply waited ten seconds and gave
//! up. [`Exchange::request`] resends the request while the answer is late
//! (every request of the protocol is safe to repeat), skips stale answers to
//! earlier resends, and gives up when the server has been silent for the
//! whole timeout. The socket is connected to the server, so the kernel drops
//! datagrams from any other address and reports a refused port.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hora_proto::{parse, ServerMessage};
use tokio::net::UdpSocket;
use tokio::time::{sleep_until, Instant};

pub use crate::race::NEXT_ADDRESS_DELAY;
use crate::race::{self, Failure};

/// The longest reply we read; the server's longest is about 130 bytes.
const RECEIVE_BUFFER: usize = 2048;

/// The first resend waits this long at most; each next one waits twice as long.
const FIRST_RESEND: Duration = Duration::from_secs(1);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The server was silent for the whole timeout.
    #[error("no answer from {server} within {timeout:?}")]
    Timeout {
        /// The server asked.
        server: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
    /// Nothing listens at the server's address (ICMP port unreachable).
    #[error("no server is listening at {server} (connection refused)")]
    Refused {
        /// The server asked.
        server: SocketAddr,
    },
    /// The server's name gave no address to try.
    #[error("the server's name has no address")]
    NoAddress,
    /// The socket failed.
    #[error("network error talking to {server}: {source}")]
    Io {
        /// The server asked.
        server: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

/// A datagram the server sent in answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The datagram's bytes.
    pub bytes: Vec<u8>,
    /// Time from the last send of the request to this answer.
    pub round_trip: Duration,
    /// How many times the request was sent again.
    pub resends: u32,
}

impl Answer {
    /// The answer as the protocol reads it.
    pub fn message(&self) -> ServerMessage<'_> {
        ServerMessage::read(&self.bytes)
    }
}

/// A UDP socket talking to one server.
#[derive(Debug)]
pub struct Exchange {
    socket: UdpSocket,
    server: SocketAddr,
    timeout: Duration,
}

impl Exchange {
    /// Binds `bind` and connects it to `server`; `timeout` is how long a
    /// silent server is waited for.
    pub async fn connect(
        bind: SocketAddr,
        server: SocketAddr,
        timeout: Duration,
    ) -> io::Result<Exchange> {
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(server).await?;
        Ok(Exchange {
            socket,
            server,
            timeout,
        })
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The local address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends `datagram` and waits for its answer, for the configured timeout.
    pub async fn request(&self, datagram: &[u8]) -> Result<Answer, ExchangeError> {
        self.request_within(datagram, self.timeout).await
    }

    /// Sends `datagram` and waits up to `timeout` for an answer, resending
    /// at growing intervals. Answers that cannot be this request's (a late
    /// menu while waiting for the time) are skipped.
    pub async fn request_within(
        &self,
        datagram: &[u8],
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let expected = parse(datagram).ok();
        let mut buffer = [0u8; RECEIVE_BUFFER];
        // Whatever is already queued answers an earlier request.
        while self.socket.try_recv(&mut buffer).is_ok() {}

        let started = Instant::now();
        let deadline = started + timeout;
        let mut interval = FIRST_RESEND.min(timeout / 3);
        let mut sent_at = started;
        let mut next_resend = started + interval;
        let mut resends = 0;
        self.send(datagram).await?;
        loop {
            tokio::select! {
                received = self.socket.recv(&mut buffer) => match received {
                    Ok(len) => {
                        let bytes = &buffer[..len];
                        if ServerMessage::read(bytes).answers(expected) {
                            return Ok(Answer {
                                bytes: bytes.to_vec(),
                                round_trip: sent_at.elapsed(),
                                resends,
                            });
                        }
                    }
                    // Nothing listens there: say so at once (a connected
                    // socket learns of it from the ICMP error right away).
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                        return Err(ExchangeError::Refused { server: self.server });
                    }
                    Err(source) => return Err(ExchangeError::Io { server: self.server, source }),
                },
                () = sleep_until(next_resend), if next_resend < deadline => {
                    resends += 1;
                    sent_at = Instant::now();
                    interval *= 2;
                    next_resend = sent_at + interval;
                    self.send(datagram).await?;
                }
                () = sleep_until(deadline) => {
                    return Err(ExchangeError::Timeout { server: self.server, timeout });
                }
            }
        }
    }

    /// Waits for the server to end the session on its own (an idle
    /// timeout, a shutdown...): the first closing message it sends unasked.
    /// Anything else that arrives unasked (a stale duplicate) is skipped, as
    /// `hora_proto::ServerMessage` reads it. Nothing is sent.
    pub async fn closing_notice(&self) -> Result<Answer, ExchangeError> {
        let mut buffer = [0u8; RECEIVE_BUFFER];
        let started = Instant::now();
        loop {
            match self.socket.recv(&mut buffer).await {
                Ok(len) => {
                    let bytes = &buffer[..len];
                    if matches!(ServerMessage::read(bytes), ServerMessage::Closed { .. }) {
                        return Ok(Answer {
                            bytes: bytes.to_vec(),
                            round_trip: started.elapsed(),
                            resends: 0,
                        });
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(ExchangeError::Refused {
                        server: self.server,
                    })
                }
                Err(source) => {
                    return Err(ExchangeError::Io {
                        server: self.server,
                        source,
                    })
                }
            }
        }
    }

    /// Opens an exchange with `servers` (a name's addresses, IPv6 and IPv4
    /// in the resolver's order) as Happy Eyeballs does (RFC 8305,
    /// [`crate::race`]): the first is asked `first`; while it has not
    /// answered, the next is asked too [`NEXT_ADDRESS_DELAY`] later (at once
    /// when one refuses), and so on;
    /// the first answer wins and the others are dropped. Returns the
    /// exchange with its answer. `bind` defaults to any address of each
    /// server's family. All within `timeout`: silence everywhere is a
    /// timeout (of the first silent address), refusal everywhere a refusal.
    pub async fn open(
        servers: &[SocketAddr],
        bind: Option<SocketAddr>,
        timeout: Duration,
        first: &[u8],
    ) -> Result<(Exchange, Answer), ExchangeError> {
        let first = first.to_vec();
        let attempt = |server: SocketAddr, left: Duration| {
            let local = bind.unwrap_or_else(|| crate::cli::default_bind(server));
            let first = first.clone();
            async move {
                let exchange = Exchange::connect(local, server, timeout)
                    .await
                    .map_err(|source| ExchangeError::Io { server, source })?;
                // A silence is reported against the timeout asked for, not
                // the part of it this address had.
                let answer = exchange
                    .request_within(&first, left)
                    .await
                    .map_err(|error| match error {
                        ExchangeError::Timeout { server, .. } => {
                            ExchangeError::Timeout { server, timeout }
                        }
                        other => other,
                    })?;
                Ok((exchange, answer))
            }
        };
        let failure = |error: &ExchangeError| match error {
            ExchangeError::Refused { .. } => Failure::Refused,
            ExchangeError::Timeout { .. } => Failure::Silent,
            _ => Failure::Final,
        };
        race::first_answer(servers, timeout, attempt, failure, ExchangeError::NoAddress).await
    }

    async fn send(&self, datagram: &[u8]) -> Result<(), ExchangeError> {
        match self.socket.send(datagram).await {
            Ok(_) => Ok(()),
            // A refusal from an earlier datagram can surface on a send; the
            // datagram itself may still go out on the next try.
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(source) => Err(ExchangeError::Io {
                server: self.server,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use hora_proto::wire::{LOGIN_MENU, SESSION_CLOSED};

    use super::*;
    use crate::test_server::{exchange, protocol_script, TestServer};

    #[tokio::test(start_paused = true)]
    async fn resends_after_a_lost_datagram() {
        let mut first = true;
        let mut protocol = protocol_script();
        let server = TestServer::start(Box::new(move |datagram| {
            if std::mem::take(&mut first) {
                return Vec::new(); // lost
            }
            protocol(datagram)
        }))
        .await;
        let started = Instant::now();
        let answer = exchange(server.addr).await.request(b"login").await.unwrap();
        assert_eq!(answer.bytes, LOGIN_MENU.as_bytes());
        assert_eq!(answer.resends, 1);
        assert_eq!(server.received(), [b"login".to_vec(), b"login".to_vec()]);
        let waited = started.elapsed();
        assert!(
            waited >= FIRST_RESEND && waited < FIRST_RESEND * 2,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_server_is_silent_for_the_whole_timeout() {
        let server = TestServer::start(Box::new(|_| Vec::new())).await;
        let started = Instant::now();
        let error = exchange(server.addr).await.request(b"1").await.unwrap_err();
        assert!(matches!(error, ExchangeError::Timeout { .. }), "{error}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(10) && waited < Duration::from_millis(10_010));
        // Sent at 0 s, resent at 1, 3 and 7 s.
        assert_eq!(server.received().len(), 4);
    }

    #[tokio::test]
    async fn ignores_datagrams_from_other_addresses() {
        let server = TestServer::start(protocol_script()).await;
        let client = exchange(server.addr).await;
        let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        intruder
            .send_to(SESSION_CLOSED.as_bytes(), client.local_addr().unwrap())
            .await
            .unwrap();
        let answer = client.request(b"login").await.unwrap();
        assert_eq!(answer.bytes, LOGIN_MENU.as_bytes());
    }

    #[tokio::test]
    async fn skips_stale_duplicate_answers() {
        let mut protocol = protocol_script();
        // Every answer arrives twice, as after a needless resend.
        let server = TestServer::start(Box::new(move |datagram| {
            let replies = protocol(datagram);
            replies.iter().chain(&replies).cloned().collect()
        }))
        .await;
        let client = exchange(server.addr).await;
        assert!(matches!(
            client.request(b"login").await.unwrap().message(),
            ServerMessage::Menu(_)
        ));
        assert!(matches!(
            client.request(b"1").await.unwrap().message(),
            ServerMessage::Time { .. }
        ));
        assert_eq!(
            client.request(b"2").await.unwrap().bytes,
            SESSION_CLOSED.as_bytes()
        );
    }

    #[tokio::test]
    async fn open_passes_over_refusing_addresses_in_order() {
        let closed = UdpSocket::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let server = TestServer::protocol().await;
        let timeout = Duration::from_secs(5);
        let (exchange, login) = Exchange::open(&[closed, server.addr], None, timeout, b"login")
            .await
            .unwrap();
        assert_eq!(exchange.server(), server.addr);
        assert_eq!(login.bytes, LOGIN_MENU.as_bytes());
        let error = Exchange::open(&[closed], None, timeout, b"login")
            .await
            .unwrap_err();
        assert!(matches!(error, ExchangeError::Refused { .. }), "{error}");
        let none = Exchange::open(&[], None, timeout, b"login")
            .await
            .unwrap_err();
        assert!(matches!(none, ExchangeError::NoAddress));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_address_is_overtaken_by_the_next_a_quarter_second_later() {
        // A name's IPv6 address that a firewall drops, then its IPv4 one.
        let silent = TestServer::start(Box::new(|_| Vec::new())).await;
        let server = TestServer::protocol().await;
        let started = Instant::now();
        let timeout = Duration::from_secs(10);
        let (exchange, login) =
            Exchange::open(&[silent.addr, server.addr], None, timeout, b"login")
                .await
                .unwrap();
        assert_eq!(exchange.server(), server.addr);
        assert_eq!(login.bytes, LOGIN_MENU.as_bytes());
        let waited = started.elapsed();
        assert!(
            waited >= NEXT_ADDRESS_DELAY && waited < NEXT_ADDRESS_DELAY + Duration::from_millis(50),
            "answered after {waited:?}, not the whole timeout"
        );
        // Silence everywhere is still a timeout, within the one timeout.
        let other = TestServer::start(Box::new(|_| Vec::new())).await;
        let started = Instant::now();
        let error = Exchange::open(&[silent.addr, other.addr], None, timeout, b"login")
            .await
            .unwrap_err();
        assert!(
            matches!(error, ExchangeError::Timeout { server, .. } if server == silent.addr),
            "{error}"
        );
        assert!(started.elapsed() <= timeout + Duration::from_millis(10));
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_as_refused() {
        let unused = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = unused.local_addr().unwrap();
        drop(unused);
        let client = Exchange::connect(
            "127.0.0.1:0".parse().unwrap(),
            addr,
            Duration::from_millis(300),
        )
        .await
        .unwrap();
        let error = client.request(b"login").await.unwrap_err();
        assert!(matches!(error, ExchangeError::Refused { .. }), "{error}");
        assert!(error.to_string().contains("connection refused"));
    }
}
