//! The daemon over real loopback sockets, in-process: many peers at once,
//! sessions ending on every path, limits and shutdown. Time-driven tests run
//! on tokio's paused clock, so a 10 s idle timeout takes no real time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use hora_proto::outcome::DropReason;
use hora_proto::wire::{
    IDLE_NOTICE, INVALID_OPTION, LOGIN_MENU, NO_SESSION, REFUSED, SESSION_CLOSED, SHUTDOWN_NOTICE,
};
use hora_proto::ServerMessage;
use hora_server::stats::Event;
use hora_server::Config;
use tokio::net::UdpSocket;
use tokio::time::{timeout, Instant};

use common::Daemon;

/// The defaults on an ephemeral port, without rate limiting: these tests
/// send bursts from one address on purpose. The gate has tests of its own.
fn config() -> Config {
    let mut config = common::loopback_config();
    config.ratelimit.enabled = false;
    config
}

/// A peer with its own socket, so its own session.
struct Peer {
    socket: UdpSocket,
    server: SocketAddr,
}

impl Peer {
    async fn new(server: SocketAddr) -> Peer {
        Peer::on("127.0.0.1", server).await
    }

    async fn on(ip: &str, server: SocketAddr) -> Peer {
        let socket = UdpSocket::bind((ip, 0)).await.unwrap();
        Peer { socket, server }
    }

    async fn send(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.server).await.unwrap();
    }

    /// The next datagram from the server, within a bounded wait.
    async fn receive(&self) -> Vec<u8> {
        let mut buffer = [0u8; 2048];
        let (len, from) = timeout(Duration::from_secs(60), self.socket.recv_from(&mut buffer))
            .await
            .expect("the server answers")
            .unwrap();
        assert_eq!(from, self.server, "replies come from the server's address");
        buffer[..len].to_vec()
    }

    async fn ask(&self, datagram: &[u8]) -> Vec<u8> {
        self.send(datagram).await;
        self.receive().await
    }

    /// As a real UDP client does: drops stale replies, and resends when the
    /// reply is late (loopback drops datagrams too, when a receive buffer
    /// overflows under a burst). Only for requests that are safe to repeat.
    async fn ask_resending(&self, datagram: &[u8]) -> Vec<u8> {
        let mut buffer = [0u8; 2048];
        while self.socket.try_recv_from(&mut buffer).is_ok() {}
        for _ in 0..10 {
            self.send(datagram).await;
            if let Ok(received) = timeout(
                Duration::from_millis(500),
                self.socket.recv_from(&mut buffer),
            )
            .await
            {
                let (len, from) = received.unwrap();
                assert_eq!(from, self.server);
                return buffer[..len].to_vec();
            }
        }
        panic!("no reply to {datagram:?} after 10 tries");
    }
}

fn assert_time_reply(reply: &[u8]) {
    match ServerMessage::read(reply) {
        ServerMessage::Time {
            server_time: Some(_),
            text,
        } => assert!(text.ends_with(hora_proto::wire::TIME_MENU)),
        other => panic!("not a time reply: {other:?}"),
    }
}

/// Lets aborted and finished tasks be reaped, then counts the live ones.
async fn settled_task_count(expected: usize) -> usize {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..100 {
        if metrics.num_alive_tasks() == expected {
            break;
        }
        tokio::task::yield_now().await;
    }
    metrics.num_alive_tasks()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_are_served_byte_for_byte() {
    let daemon = Daemon::start(Config {
        max_sessions_per_ip: 1000,
        ..config()
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..200 {
        let server = daemon.addr;
        clients.push(tokio::spawn(async move {
            let peer = Peer::new(server).await;
            assert_eq!(peer.ask_resending(b"login").await, LOGIN_MENU.as_bytes());
            for _ in 0..3 {
                assert_time_reply(&peer.ask_resending(b"1").await);
            }
            assert_eq!(peer.ask_resending(b"2").await, SESSION_CLOSED.as_bytes());
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(daemon.sessions.len(), 0, "every session left the map");
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::Login), 200);
    assert!(
        stats.event(Event::TimeServed) >= 600,
        "a resend may ask twice"
    );
    assert_eq!(stats.event(Event::EndLogout), 200);
    assert_eq!(stats.total_dropped(), 0);
}

#[tokio::test]
async fn invalid_option_ends_only_that_session() {
    let daemon = Daemon::start(config()).await;
    let (good, bad) = (Peer::new(daemon.addr).await, Peer::new(daemon.addr).await);
    good.ask(b"login").await;
    bad.ask(b"login").await;
    assert_eq!(bad.ask(b"3").await, INVALID_OPTION.as_bytes());
    assert_eq!(daemon.sessions.len(), 1);
    assert_time_reply(&good.ask(b"1").await);
    // The ended peer has no session now; a time request says so.
    assert_eq!(bad.ask(b"1").await, NO_SESSION.as_bytes());
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::EndInvalidOption), 1);
    assert_eq!(stats.event(Event::NoSession), 1);
}

#[tokio::test]
async fn garbage_of_every_kind_gets_the_documented_answer() {
    let daemon = Daemon::start(config()).await;
    let peer = Peer::new(daemon.addr).await;
    // No session: a number is told there is none; other text and binary
    // are dropped (they may be another server's reply: no loops).
    assert_eq!(peer.ask(b"3").await, NO_SESSION.as_bytes());
    peer.send(b"oi").await;
    peer.send(&[0xff; 10]).await;
    peer.send(&[b'x'; 5000]).await;
    // A logout without a session is harmless.
    assert_eq!(peer.ask(b"2").await, SESSION_CLOSED.as_bytes());
    // In a session, an oversized datagram is an invalid option.
    peer.ask(b"login").await;
    assert_eq!(peer.ask(&[b'1'; 1025]).await, INVALID_OPTION.as_bytes());
    let stats = daemon.stop().await;
    assert_eq!(
        stats.total_dropped(),
        3,
        "the text and the two binary datagrams"
    );
    assert_eq!(stats.event(Event::InvalidDatagram), 5);
}

#[tokio::test]
async fn a_repeated_login_keeps_the_session() {
    let daemon = Daemon::start(config()).await;
    let peer = Peer::new(daemon.addr).await;
    assert_eq!(peer.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_eq!(peer.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_eq!(daemon.sessions.len(), 1);
    assert_eq!(daemon.stop().await.event(Event::Login), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_expiry_sends_the_notice_exactly_at_the_deadline() {
    let daemon = Daemon::start(config()).await;
    let peer = Peer::new(daemon.addr).await;
    peer.ask(b"login").await;
    let logged_in = Instant::now();
    assert_eq!(peer.receive().await, IDLE_NOTICE.as_bytes());
    let waited = logged_in.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited <= Duration::from_millis(10_001),
        "expired after {waited:?}"
    );
    assert_eq!(daemon.sessions.len(), 0);
    assert_eq!(daemon.stop().await.event(Event::EndIdle), 1);
}

#[tokio::test(start_paused = true)]
async fn activity_moves_the_idle_deadline() {
    let daemon = Daemon::start(config()).await;
    let peer = Peer::new(daemon.addr).await;
    peer.ask(b"login").await;
    let logged_in = Instant::now();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_time_reply(&peer.ask(b"1").await);
    assert_eq!(daemon.sessions.len(), 1, "still open at 9 s");
    assert_eq!(peer.receive().await, IDLE_NOTICE.as_bytes());
    let waited = logged_in.elapsed();
    assert!(
        waited >= Duration::from_secs(19) && waited <= Duration::from_millis(19_001),
        "expired after {waited:?}"
    );
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sessions_cost_no_task_and_ended_ones_leave_nothing_behind() {
    let daemon = Daemon::start(config()).await;
    let baseline = settled_task_count(usize::MAX).await;
    let peers = [
        Peer::new(daemon.addr).await,
        Peer::new(daemon.addr).await,
        Peer::new(daemon.addr).await,
    ];
    for peer in &peers {
        peer.ask(b"login").await;
    }
    // The seed loop owns the idle deadlines: a login spawns nothing.
    assert_eq!(daemon.sessions.len(), 3);
    assert_eq!(
        settled_task_count(baseline).await,
        baseline,
        "no task per session"
    );
    peers[0].ask(b"2").await; // logout
    peers[1].ask(b"9").await; // invalid option
    peers[2].receive().await; // idle expiry
    assert_eq!(settled_task_count(baseline).await, baseline);
    assert_eq!(daemon.sessions.len(), 0);
    assert_eq!(daemon.sessions.durations().count(), 3);
    daemon.stop().await;
}

#[tokio::test]
async fn the_per_ip_limit_refuses_cleanly() {
    let daemon = Daemon::start(Config {
        max_sessions_per_ip: 2,
        ..config()
    })
    .await;
    let peers = [
        Peer::new(daemon.addr).await,
        Peer::new(daemon.addr).await,
        Peer::new(daemon.addr).await,
    ];
    for peer in &peers[..2] {
        assert_eq!(peer.ask(b"login").await, LOGIN_MENU.as_bytes());
        assert_time_reply(&peer.ask(b"1").await);
    }
    assert_eq!(peers[2].ask(b"login").await, REFUSED.as_bytes());
    // Another address on the loopback network is not limited by the first.
    let other = Peer::on("127.0.0.2", daemon.addr).await;
    assert_eq!(other.ask(b"login").await, LOGIN_MENU.as_bytes());
    // The sessions already there are unaffected.
    assert_time_reply(&peers[0].ask(b"1").await);
    assert_time_reply(&peers[1].ask(b"1").await);
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::RefusalPerIp), 1);
    assert_eq!(stats.event(Event::RefusalTable), 0);
}

#[tokio::test]
async fn the_global_limit_refuses_cleanly() {
    let daemon = Daemon::start(Config {
        max_sessions: 2,
        ..config()
    })
    .await;
    let a = Peer::on("127.0.0.1", daemon.addr).await;
    let b = Peer::on("127.0.0.2", daemon.addr).await;
    let c = Peer::on("127.0.0.3", daemon.addr).await;
    for peer in [&a, &b] {
        peer.ask(b"login").await;
        assert_time_reply(&peer.ask(b"1").await);
    }
    assert_eq!(c.ask(b"login").await, REFUSED.as_bytes());
    assert_time_reply(&a.ask(b"1").await);
    // A logout makes room.
    a.ask(b"2").await;
    assert_eq!(c.ask(b"login").await, LOGIN_MENU.as_bytes());
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::RefusalTable), 1);
    assert_eq!(stats.event(Event::RefusalPerIp), 0);
}

#[tokio::test]
async fn a_login_at_the_limit_displaces_the_oldest_session_that_never_asked() {
    let daemon = Daemon::start(Config {
        max_sessions_per_ip: 2,
        ..config()
    })
    .await;
    let silent = Peer::new(daemon.addr).await;
    let asking = Peer::new(daemon.addr).await;
    let newcomer = Peer::new(daemon.addr).await;
    assert_eq!(silent.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_eq!(asking.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_time_reply(&asking.ask(b"1").await);
    // The newcomer gets a session; the one that never asked is told the
    // server is full, and its session is gone.
    assert_eq!(newcomer.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_eq!(silent.receive().await, REFUSED.as_bytes());
    assert_eq!(silent.ask(b"1").await, NO_SESSION.as_bytes());
    assert_time_reply(&asking.ask(b"1").await);
    assert_time_reply(&newcomer.ask(b"1").await);
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::EndDisplaced), 1);
    assert_eq!(stats.event(Event::DisplacingPerIp), 1);
    assert_eq!(stats.event(Event::DisplacingTable), 0);
    assert_eq!(stats.event(Event::RefusalPerIp), 0);
}

#[tokio::test]
async fn shutdown_notifies_every_session() {
    let daemon = Daemon::start(config()).await;
    let mut peers = Vec::new();
    for _ in 0..20 {
        let peer = Peer::new(daemon.addr).await;
        peer.ask(b"login").await;
        peers.push(peer);
    }
    let stats = daemon.stop().await;
    for peer in &peers {
        assert_eq!(peer.receive().await, SHUTDOWN_NOTICE.as_bytes());
    }
    assert_eq!(stats.event(Event::EndShutdown), 20);
    assert_eq!(stats.sessions_open, 0);
}

#[tokio::test]
async fn serves_ipv6() {
    let Ok(probe) = UdpSocket::bind("[::1]:0").await else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    drop(probe);
    let daemon = Daemon::start(Config {
        bind: "[::1]:0".parse().unwrap(),
        ..config()
    })
    .await;
    let peer = Peer::on("::1", daemon.addr).await;
    assert_eq!(peer.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_time_reply(&peer.ask(b"1").await);
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_source_over_the_rate_limit_is_dropped_and_others_are_served() {
    let mut limited = config();
    limited.ratelimit.enabled = true;
    limited.ratelimit.rate = 1.0;
    limited.ratelimit.burst = 3.0;
    let daemon = Daemon::start(limited).await;
    let noisy = Peer::on("127.0.0.1", daemon.addr).await;
    let calm = Peer::on("127.0.0.2", daemon.addr).await;
    assert_eq!(noisy.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_time_reply(&noisy.ask(b"1").await);
    assert_time_reply(&noisy.ask(b"1").await);
    // The burst of 3 is spent: these are dropped, not answered.
    for _ in 0..5 {
        noisy.send(b"1").await;
    }
    assert_eq!(calm.ask(b"login").await, LOGIN_MENU.as_bytes());
    // A second later the noisy source has a token again, and its session
    // is still there: dropping a datagram never ends a session.
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_time_reply(&noisy.ask(b"1").await);
    assert_eq!(daemon.sessions.len(), 2);
    let stats = daemon.stop().await;
    assert_eq!(stats.dropped_for(DropReason::RateLimited), 5);
    assert_eq!(stats.event(Event::TimeServed), 3);
}

#[tokio::test]
async fn sources_outside_the_access_lists_get_nothing() {
    let mut restricted = config();
    restricted.access.allow = vec!["127.0.0.0/8".parse().unwrap()];
    restricted.access.deny = vec!["127.0.0.3/32".parse().unwrap()];
    let daemon = Daemon::start(restricted).await;
    let denied = Peer::on("127.0.0.3", daemon.addr).await;
    let allowed = Peer::on("127.0.0.4", daemon.addr).await;
    denied.send(b"login").await;
    assert_eq!(allowed.ask(b"login").await, LOGIN_MENU.as_bytes());
    assert_eq!(daemon.sessions.len(), 1, "the denied login opened nothing");
    let stats = daemon.stop().await;
    assert_eq!(stats.dropped_for(DropReason::Denied), 1);
    // Nothing was ever sent to the denied peer (not even a shutdown notice:
    // it had no session).
    let mut buffer = [0u8; 64];
    assert!(denied.socket.try_recv_from(&mut buffer).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_many_sources_leaves_good_sessions_alone() {
    // The bounded version of examples/flood.rs: 2,000 sources on their own
    // loopback addresses, each logging in and sending garbage (one in four
    // only logs in and holds a session), against a table of 100 sessions.
    let mut limited = config();
    limited.max_sessions = 100;
    limited.ratelimit.enabled = true;
    let daemon = Daemon::start(limited).await;
    let mut good = Vec::new();
    for i in 0..10u8 {
        let peer = Peer::on(&format!("127.0.0.{}", 10 + i), daemon.addr).await;
        assert_eq!(peer.ask(b"login").await, LOGIN_MENU.as_bytes());
        // A session that has asked is never displaced by new logins.
        assert_time_reply(&peer.ask(b"1").await);
        good.push(peer);
    }
    for batch in 0..20u32 {
        for k in 0..100u32 {
            let n = batch * 100 + k;
            let ip = std::net::Ipv4Addr::from(0x7F01_0000 + n);
            let source = UdpSocket::bind((ip, 0)).await.unwrap();
            let datagrams: &[&[u8]] = if n % 4 == 0 {
                &[b"login"]
            } else {
                &[b"login", b"3", b"\xff\xfe", &[b'x'; 1500], b""]
            };
            for datagram in datagrams {
                source.send_to(datagram, daemon.addr).await.unwrap();
            }
        }
        // Between batches every good client still gets its answer.
        for peer in &good {
            assert_time_reply(&peer.ask_resending(b"1").await);
        }
        assert!(
            daemon.sessions.len() <= 100,
            "the table stays within its limit"
        );
    }
    // Each login past the limit displaced a holder that never asked; the
    // holders of the last batches are still there, and the good sessions.
    assert!(daemon.sessions.len() > 10, "the holders hold sessions");
    let stats = daemon.stop().await;
    assert!(
        stats.event(Event::EndDisplaced) > 0,
        "logins beyond the limit displaced sessions that never asked"
    );
    assert_eq!(
        stats.event(Event::RefusalPerIp) + stats.event(Event::RefusalTable),
        0,
        "there was always one to displace"
    );
    assert!(
        stats.event(Event::TimeServed) >= 200,
        "every good request answered"
    );
}

#[tokio::test(start_paused = true)]
async fn a_reload_applies_the_idle_timeout_and_limits_to_the_next_datagram() {
    let mut daemon = Daemon::start(config()).await;
    let before = Peer::new(daemon.addr).await;
    before.ask(b"login").await;
    before.ask(b"1").await;
    let mut reloaded = config();
    reloaded.idle_timeout = Duration::from_secs(30);
    reloaded.max_sessions = 2;
    daemon.reload(reloaded).await;
    // A new session idles out at 30 s, not 10.
    let after = Peer::new(daemon.addr).await;
    after.ask(b"login").await;
    after.ask(b"1").await;
    let asked = Instant::now();
    // The limit of two holds now: both sessions have asked.
    let third = Peer::new(daemon.addr).await;
    assert_eq!(third.ask(b"login").await, REFUSED.as_bytes());
    // The session opened before the reload keeps the deadline it had.
    assert_eq!(before.receive().await, IDLE_NOTICE.as_bytes());
    assert_eq!(after.receive().await, IDLE_NOTICE.as_bytes());
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(30) && waited <= Duration::from_millis(30_001),
        "expired after {waited:?}"
    );
    daemon.stop().await;
}
