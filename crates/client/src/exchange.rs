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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hora_proto::v2::client::{read_server, Offset, ServerDatagram};
use hora_proto::v2::wire::{confirm, login, option_of, request};
use hora_proto::v2::{Cookie, Nonce, Token};
use hora_proto::{parse, Reply, ServerMessage};
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
        /// The refusal came only after the request had gone unanswered
        /// and was sent again: something was there, and went (the seed's
        /// own server dies on a second `login`).
        after_silence: bool,
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
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The datagram's text, as the seed's protocol sends it (in protocol
    /// v2, the answer's text field: the same bytes).
    pub bytes: Vec<u8>,
    /// Time from the last send of the request to this answer.
    pub round_trip: Duration,
    /// How many times the request was sent again.
    pub resends: u32,
    /// In protocol v2, a time answer's offset and delay, as NTP computes
    /// them from its timestamps.
    pub offset: Option<Offset>,
}

impl Answer {
    /// The answer as the protocol reads it.
    pub fn message(&self) -> ServerMessage<'_> {
        ServerMessage::read(&self.bytes)
    }
}

/// Which session protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// The seed's text protocol only.
    Seed,
    /// hora's protocol v2 only (not for the seed's server, which quits on
    /// a first datagram but `login`).
    V2,
    /// The seed's `login`, then v2 if the server answers it (else on in
    /// the seed's, at once).
    Auto,
}

/// How long `auto` waits for the answer to its v2 login once the seed's
/// `login` was answered: a server that answered that answers this as fast
/// (a challenge, or the seed's time); one that doesn't is asked no more.
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The ids a v2 request may use, one per send: more than any timeout's
/// resends.
const IDS_PER_REQUEST: u64 = 64;

/// A v2 session's state on the client.
#[derive(Debug)]
struct V2Link {
    token: Token,
    next_id: AtomicU64,
}

/// A UDP socket talking to one server.
#[derive(Debug)]
pub struct Exchange {
    socket: UdpSocket,
    server: SocketAddr,
    timeout: Duration,
    /// Protocol v2's session, once its handshake gave a token.
    v2: Option<V2Link>,
}

/// What [`Exchange::converse`] got: the value `accept` took, and when.
struct Got<T> {
    value: T,
    round_trip: Duration,
    resends: u32,
    /// When the answered send left and the answer came, on the wall clock.
    sent: SystemTime,
    received: SystemTime,
}

impl Exchange {
    /// Binds `bind` and connects it to `server`; `timeout` is how long a
    /// silent server is waited for.
    pub async fn connect(
        bind: SocketAddr,
        server: SocketAddr,
        timeout: Duration,
    ) -> io::Result<Exchange> {
        let socket = crate::socket::bind_udp(bind).await?;
        socket.connect(server).await?;
        Ok(Exchange {
            socket,
            server,
            timeout,
            v2: None,
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

    /// Which protocol the session speaks: v2 once its handshake is done.
    pub fn protocol(&self) -> &'static str {
        if self.v2.is_some() {
            "v2"
        } else {
            "seed"
        }
    }

    /// Sends `datagram` and waits for its answer, for the configured timeout.
    pub async fn request(&self, datagram: &[u8]) -> Result<Answer, ExchangeError> {
        self.request_within(datagram, self.timeout).await
    }

    /// Sends `datagram` (the seed's text: `login`, `1`, `2`, what the user
    /// typed) and waits up to `timeout` for an answer, resending at growing
    /// intervals. Answers that cannot be this request's (a late menu while
    /// waiting for the time) are skipped. In a v2 session the text is sent
    /// as its menu option, each send with an id of its own.
    pub async fn request_within(
        &self,
        datagram: &[u8],
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let Some(link) = &self.v2 else {
            let expected = parse(datagram).ok();
            let got = self
                .converse(
                    timeout,
                    |_| datagram.to_vec(),
                    |bytes| {
                        ServerMessage::read(bytes)
                            .answers(expected)
                            .then(|| (bytes.to_vec(), None))
                    },
                )
                .await?;
            return Ok(Answer {
                bytes: got.value,
                round_trip: got.round_trip,
                resends: got.resends,
                offset: None,
            });
        };
        let option = option_of(parse(datagram));
        let first = link.next_id.fetch_add(IDS_PER_REQUEST, Ordering::Relaxed);
        let token = link.token;
        let got = self
            .converse(
                timeout,
                |send| request(option, &token, first + u64::from(send)).to_vec(),
                |bytes| match read_server(bytes) {
                    Ok(ServerDatagram::Answer(answer))
                        if answer.token == token
                            && (first..first + IDS_PER_REQUEST).contains(&answer.id) =>
                    {
                        Some((bytes.to_vec(), u32::try_from(answer.id - first).ok()))
                    }
                    _ => None,
                },
            )
            .await?;
        let Ok(ServerDatagram::Answer(answer)) = read_server(&got.value) else {
            return Err(ExchangeError::Timeout {
                server: self.server,
                timeout,
            });
        };
        Ok(Answer {
            bytes: answer.text.to_vec(),
            round_trip: got.round_trip,
            resends: got.resends,
            offset: answer.sample(unix_seconds(got.sent), unix_seconds(got.received)),
        })
    }

    /// Sends `datagram(k)` for the `k`-th send (0, then each resend) at
    /// growing intervals until `accept` takes a datagram (saying which
    /// send it answers; `None`: the last), or `timeout` passes.
    async fn converse<T>(
        &self,
        timeout: Duration,
        mut datagram: impl FnMut(u32) -> Vec<u8>,
        mut accept: impl FnMut(&[u8]) -> Option<(T, Option<u32>)>,
    ) -> Result<Got<T>, ExchangeError> {
        let mut buffer = [0u8; RECEIVE_BUFFER];
        // Whatever is already queued answers an earlier request.
        while self.socket.try_recv(&mut buffer).is_ok() {}

        let started = Instant::now();
        let deadline = started + timeout;
        let mut interval = FIRST_RESEND.min(timeout / 3);
        let mut sends = vec![(started, SystemTime::now())];
        let mut next_resend = started + interval;
        self.send(&datagram(0)).await?;
        loop {
            tokio::select! {
                received = self.socket.recv(&mut buffer) => match received {
                    Ok(len) => {
                        let Some((value, send)) = accept(&buffer[..len]) else {
                            continue;
                        };
                        let last = sends.len() - 1;
                        let (at, sent) = sends[send.map_or(last, |s| (s as usize).min(last))];
                        return Ok(Got {
                            value,
                            round_trip: at.elapsed(),
                            resends: last as u32,
                            sent,
                            received: SystemTime::now(),
                        });
                    }
                    // Nothing listens there: say so at once (a connected
                    // socket learns of it from the ICMP error right away).
                    Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                        return Err(ExchangeError::Refused {
                            server: self.server,
                            after_silence: sends.len() > 1,
                        });
                    }
                    Err(source) => return Err(ExchangeError::Io { server: self.server, source }),
                },
                () = sleep_until(next_resend), if next_resend < deadline => {
                    let resend = datagram(sends.len() as u32);
                    let now = Instant::now();
                    sends.push((now, SystemTime::now()));
                    interval *= 2;
                    next_resend = now + interval;
                    self.send(&resend).await?;
                }
                () = sleep_until(deadline) => {
                    return Err(ExchangeError::Timeout { server: self.server, timeout });
                }
            }
        }
    }

    /// Protocol v2's handshake: a login (whose challenge is waited for up
    /// to `challenge_wait`), then the cookie back ([`Exchange::confirm`]).
    async fn handshake(&mut self, challenge_wait: Duration) -> Result<Answer, ExchangeError> {
        let nonce = Nonce(rand::random());
        let challenge = self
            .converse(
                challenge_wait,
                |_| login(&nonce).to_vec(),
                |bytes| match read_server(bytes) {
                    Ok(ServerDatagram::Challenge {
                        nonce: echoed,
                        cookie,
                    }) if echoed == nonce => Some((cookie, None)),
                    _ => None,
                },
            )
            .await?;
        self.confirm(&nonce, &challenge.value).await
    }

    /// After the seed's `login` was answered (`seed`: the menu, or a
    /// refusal), asks in v2 too: a v2 login, which the seed's rules read as
    /// option 1. A challenge, then a welcome with the menu, opens a v2
    /// session (the seed's, if one opened, is logged out) and the welcome
    /// is returned; the time (the seed's server, an older horad), silence
    /// for [`PROBE_WAIT`], or a v2 refusal while the seed's login got the
    /// menu leave the exchange in the seed's protocol: `None`.
    pub async fn upgrade(&mut self, seed: &Answer) -> Result<Option<Answer>, ExchangeError> {
        let nonce = Nonce(rand::random());
        let probe = self
            .converse(
                PROBE_WAIT.min(self.timeout),
                |_| login(&nonce).to_vec(),
                |bytes| match read_server(bytes) {
                    Ok(ServerDatagram::Challenge {
                        nonce: echoed,
                        cookie,
                    }) if echoed == nonce => Some((Some(cookie), None)),
                    Ok(_) => None,
                    // The seed's answer to option 1 (or, to a peer without a
                    // session, that it has none).
                    Err(_) => match ServerMessage::read(bytes) {
                        ServerMessage::Menu(_) => None,
                        _ => Some((None, None)),
                    },
                },
            )
            .await;
        let cookie = match probe {
            Ok(Got {
                value: Some(cookie),
                ..
            }) => cookie,
            Ok(_) | Err(ExchangeError::Timeout { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let in_seed = matches!(seed.message(), ServerMessage::Menu(_));
        let welcome = self.confirm(&nonce, &cookie).await?;
        if self.v2.is_none() && in_seed {
            // Refused in v2, logged in the seed's way: go on there.
            return Ok(None);
        }
        if in_seed {
            // Its answer is skipped as any non-v2 datagram is.
            self.send(b"2").await?;
        }
        Ok(Some(welcome))
    }

    /// Returns the challenge's cookie: the welcome's menu is the answer; a
    /// welcome that refuses leaves the exchange without a session.
    async fn confirm(&mut self, nonce: &Nonce, cookie: &Cookie) -> Result<Answer, ExchangeError> {
        let welcome = self
            .converse(
                self.timeout,
                |_| confirm(nonce, cookie).to_vec(),
                |bytes| match read_server(bytes) {
                    Ok(ServerDatagram::Welcome(welcome)) if welcome.nonce == *nonce => {
                        Some(((welcome.reply, welcome.token, welcome.text.to_vec()), None))
                    }
                    _ => None,
                },
            )
            .await?;
        let (reply, token, text) = welcome.value;
        if reply == Reply::Menu {
            self.v2 = Some(V2Link {
                token,
                next_id: AtomicU64::new(1),
            });
        }
        Ok(Answer {
            bytes: text,
            round_trip: welcome.round_trip,
            resends: welcome.resends,
            offset: None,
        })
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
                    let Some(text) = self.notice_text(&buffer[..len]) else {
                        continue;
                    };
                    if matches!(ServerMessage::read(text), ServerMessage::Closed { .. }) {
                        return Ok(Answer {
                            bytes: text.to_vec(),
                            round_trip: started.elapsed(),
                            resends: 0,
                            offset: None,
                        });
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
                    return Err(ExchangeError::Refused {
                        server: self.server,
                        after_silence: false,
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

    /// The text of a datagram the server sent unasked: the whole datagram
    /// in the seed's protocol; in v2, the text of an answer carrying the
    /// session's token (anything else is a forger's, or stale).
    fn notice_text<'a>(&self, datagram: &'a [u8]) -> Option<&'a [u8]> {
        let Some(link) = &self.v2 else {
            return Some(datagram);
        };
        match read_server(datagram) {
            Ok(ServerDatagram::Answer(answer)) if answer.token == link.token => Some(answer.text),
            _ => None,
        }
    }

    /// Opens a session with `servers` in `protocol`: the seed's `login`
    /// ([`Exchange::open`]), v2's handshake ([`Exchange::open_v2`]), or
    /// with `auto` the seed's `login` first, then v2's
    /// ([`Exchange::upgrade`]): the seed's own server quits on any first
    /// datagram but `login`, so `auto` never sends it one.
    pub async fn open_session(
        servers: &[SocketAddr],
        bind: Option<SocketAddr>,
        timeout: Duration,
        protocol: Protocol,
    ) -> Result<(Exchange, Answer), ExchangeError> {
        match protocol {
            Protocol::Seed => Exchange::open(servers, bind, timeout, b"login").await,
            Protocol::V2 => Exchange::open_v2(servers, bind, timeout, timeout).await,
            Protocol::Auto => {
                let (mut exchange, seed) = Exchange::open(servers, bind, timeout, b"login").await?;
                match exchange.upgrade(&seed).await? {
                    Some(welcome) => Ok((exchange, welcome)),
                    None => Ok((exchange, seed)),
                }
            }
        }
    }

    /// Opens a v2 session with `servers`, raced as [`Exchange::open`]
    /// races them, each address's challenge waited for up to
    /// `challenge_wait`.
    pub async fn open_v2(
        servers: &[SocketAddr],
        bind: Option<SocketAddr>,
        timeout: Duration,
        challenge_wait: Duration,
    ) -> Result<(Exchange, Answer), ExchangeError> {
        let attempt = |server: SocketAddr, left: Duration| {
            let local = bind.unwrap_or_else(|| crate::socket::default_bind(server));
            async move {
                let mut exchange = Exchange::connect(local, server, left)
                    .await
                    .map_err(|source| ExchangeError::Io { server, source })?;
                let answer = exchange.handshake(challenge_wait.min(left)).await?;
                exchange.timeout = timeout;
                Ok((exchange, answer))
            }
        };
        let failure = |error: &ExchangeError| match error {
            ExchangeError::Refused { .. } => Failure::Refused,
            ExchangeError::Timeout { .. } => Failure::Silent,
            _ => Failure::Final,
        };
        let wait = challenge_wait.min(timeout);
        race::first_answer(servers, timeout, attempt, failure, ExchangeError::NoAddress)
            .await
            .map_err(|error| match error {
                ExchangeError::Timeout { server, .. } => ExchangeError::Timeout {
                    server,
                    timeout: wait,
                },
                other => other,
            })
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
            let local = bind.unwrap_or_else(|| crate::socket::default_bind(server));
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

/// Seconds since the Unix epoch of a wall-clock time.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
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

    /// A server that speaks v2 too, for one peer: the seed's rules, and v2's
    /// handshake and answers (its cookie any 20 bytes; `refuse`: every
    /// confirmation refused).
    fn v2_script(refuse: bool) -> crate::test_server::Script {
        use hora_proto::v2::wire::{self, write_answer, write_challenge, write_welcome};
        use hora_proto::v2::{parse_client, ClientMessage};
        let mut seed = protocol_script();
        let token = Token([5; 16]);
        Box::new(move |datagram| {
            let mut out = [0u8; wire::REQUEST_LEN];
            match parse_client(datagram) {
                Ok(ClientMessage::Login { nonce }) => {
                    vec![write_challenge(&nonce, &Cookie([1; 20])).to_vec()]
                }
                Ok(ClientMessage::Confirm { nonce, .. }) => {
                    let reply = if refuse { Reply::Refused } else { Reply::Menu };
                    let len =
                        write_welcome(reply, &nonce, &token, Duration::from_secs(10), &mut out);
                    vec![out[..len].to_vec()]
                }
                Ok(ClientMessage::Request { id, .. }) => {
                    let text = hora_proto::wire::SESSION_CLOSED.as_bytes();
                    let len = write_answer(Reply::Closed, text, &token, id, None, &mut out);
                    vec![out[..len].to_vec()]
                }
                Err(_) => seed(datagram),
            }
        })
    }

    /// An exchange with `server` after the seed's `login`, and its answer.
    async fn logged_in(server: &TestServer) -> (Exchange, Answer) {
        Exchange::open(&[server.addr], None, Duration::from_secs(5), b"login")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn auto_goes_on_in_the_seeds_protocol_when_its_v2_login_gets_the_time() {
        let server = TestServer::protocol().await;
        let (mut exchange, login) = logged_in(&server).await;
        assert_eq!(exchange.upgrade(&login).await.unwrap(), None);
        assert_eq!(exchange.protocol(), "seed");
        let received = server.received();
        assert_eq!(received.len(), 2, "login, then the v2 login: no more");
        assert_eq!(parse(&received[1]), Ok(hora_proto::Request::Time));
        // The seed's session goes on.
        let time = exchange.request(b"1").await.unwrap();
        assert!(matches!(time.message(), ServerMessage::Time { .. }));
    }

    #[tokio::test]
    async fn auto_moves_to_v2_and_logs_the_seeds_session_out() {
        let server = TestServer::start(v2_script(false)).await;
        let (mut exchange, login) = logged_in(&server).await;
        let welcome = exchange.upgrade(&login).await.unwrap().unwrap();
        assert_eq!(welcome.bytes, LOGIN_MENU.as_bytes());
        assert_eq!(exchange.protocol(), "v2");
        let closed = exchange.request(b"2").await.unwrap();
        assert_eq!(closed.bytes, SESSION_CLOSED.as_bytes());
        let received = server.received();
        assert_eq!(
            received[3], b"2",
            "the seed's session logged out after the welcome"
        );
    }

    #[tokio::test]
    async fn auto_stays_in_the_seeds_session_when_v2_refuses() {
        let server = TestServer::start(v2_script(true)).await;
        let (mut exchange, login) = logged_in(&server).await;
        assert_eq!(exchange.upgrade(&login).await.unwrap(), None);
        assert_eq!(exchange.protocol(), "seed");
        assert!(!server.received().iter().any(|d| d == b"2"));
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
