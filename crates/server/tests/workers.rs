//! Several workers over real loopback sockets, in-process: every source
//! address meets one worker, whatever its ports; the limits stay exact
//! across workers; a reload and a shutdown reach every worker. These run
//! on real time: the workers' own runtimes don't follow a paused clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hora_proto::outcome::DropReason;
use hora_proto::wire::{IDLE_NOTICE, LOGIN_MENU, REFUSED, SESSION_CLOSED, SHUTDOWN_NOTICE};
use hora_proto::ServerMessage;
use hora_server::stats::Event;
use hora_server::sys::steer::worker_of;
use hora_server::Config;
use tokio::net::UdpSocket;

use common::{ask, receive, Daemon};

/// Two workers on an ephemeral port, without rate limiting (these tests
/// send bursts from one address on purpose).
fn config() -> Config {
    let mut config = common::loopback_config();
    config.workers = 2;
    config.ratelimit.enabled = false;
    config
}

/// The `n`th of a run of loopback addresses, 127.0.x.y, y never 0 or 255.
fn address(n: usize) -> IpAddr {
    let n = u32::try_from(n).unwrap();
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        1 + (n / 250) as u8,
        1 + (n % 250) as u8,
    ))
}

async fn peer(ip: IpAddr) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.unwrap()
}

fn assert_time_reply(reply: &[u8]) {
    assert!(
        matches!(
            ServerMessage::read(reply),
            ServerMessage::Time {
                server_time: Some(_),
                ..
            }
        ),
        "not a time reply: {}",
        String::from_utf8_lossy(reply)
    );
}

/// Logs in and asks the time once, so the session counts as one that
/// asked (none at a limit may displace it); whether the login got the menu.
async fn log_in_and_ask(socket: &UdpSocket, server: SocketAddr) -> bool {
    let menu = ask(socket, server, b"login").await == LOGIN_MENU.as_bytes();
    if menu {
        assert_time_reply(&ask(socket, server, b"1").await);
    }
    menu
}

#[tokio::test]
async fn a_thousand_addresses_are_served_and_each_meets_one_worker_from_every_port() {
    let daemon = Daemon::start(config()).await;
    assert_eq!(daemon.now().workers_received().len(), 2);
    let mut met = [0usize; 2];
    for n in 0..1000 {
        let ip = address(n);
        let before = daemon.now().workers_received().to_vec();
        // Two ports, two sessions: the kernel's own 4-tuple hash would
        // send some addresses' two ports to two workers.
        for socket in [peer(ip).await, peer(ip).await] {
            assert!(log_in_and_ask(&socket, daemon.addr).await, "{ip}");
            assert_eq!(
                ask(&socket, daemon.addr, b"2").await,
                SESSION_CLOSED.as_bytes()
            );
        }
        let after = daemon.now().workers_received().to_vec();
        let worker = worker_of(ip, 2);
        assert_eq!(
            after[worker] - before[worker],
            6,
            "{ip}: all six at worker {worker}"
        );
        assert_eq!(
            after[1 - worker],
            before[1 - worker],
            "{ip}: none at the other"
        );
        met[worker] += 1;
    }
    // The hash spreads the addresses over both.
    assert!(met.iter().all(|&m| (350..=650).contains(&m)), "{met:?}");
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::Login), 2000);
    assert_eq!(stats.event(Event::EndLogout), 2000);
    assert_eq!(stats.sessions_open, 0);
}

#[tokio::test]
async fn the_per_ip_limit_is_exact_across_workers() {
    let daemon = Daemon::start(Config {
        max_sessions_per_ip: 4,
        ..config()
    })
    .await;
    // Addresses on both workers.
    let ips: Vec<IpAddr> = (0..40).map(address).collect();
    assert!((0..2).all(|w| ips.iter().any(|&ip| worker_of(ip, 2) == w)));
    let mut held = Vec::new();
    for &ip in &ips[..6] {
        let mut menus = 0;
        for _ in 0..6 {
            let socket = peer(ip).await;
            menus += usize::from(log_in_and_ask(&socket, daemon.addr).await);
            held.push(socket);
        }
        assert_eq!(menus, 4, "{ip} (worker {})", worker_of(ip, 2));
    }
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::RefusalPerIp), 12);
    assert_eq!(stats.event(Event::Login), 24);
}

#[tokio::test]
async fn max_sessions_counts_every_workers_sessions_together() {
    let daemon = Daemon::start(Config {
        max_sessions: 10,
        ..config()
    })
    .await;
    let mut menus = 0;
    let mut held = Vec::new();
    let mut workers = [0usize; 2];
    for n in 0..20 {
        let socket = peer(address(n)).await;
        if log_in_and_ask(&socket, daemon.addr).await {
            menus += 1;
            workers[worker_of(address(n), 2)] += 1;
        }
        held.push(socket);
    }
    assert_eq!(menus, 10);
    assert!(workers.iter().all(|&w| w > 0), "{workers:?}");
    assert_eq!(daemon.sessions.len(), 10);
    // A logout on either worker frees a place for a login on the other.
    let (quit, _) = held
        .iter()
        .zip(0..)
        .find(|(_, n)| worker_of(address(*n), 2) == 0)
        .unwrap();
    assert_eq!(
        ask(quit, daemon.addr, b"2").await,
        SESSION_CLOSED.as_bytes()
    );
    let newcomer = (20..)
        .map(address)
        .find(|&ip| worker_of(ip, 2) == 1)
        .unwrap();
    assert!(log_in_and_ask(&peer(newcomer).await, daemon.addr).await);
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::RefusalTable), 10);
    assert_eq!(stats.event(Event::Login), 11);
}

#[tokio::test]
async fn a_reload_applies_to_every_worker() {
    let mut daemon = Daemon::start(config()).await;
    let on = |worker| {
        (0..)
            .map(address)
            .find(move |&ip| worker_of(ip, 2) == worker)
            .unwrap()
    };
    let (a, b) = (on(0), on(1));
    let (first_a, first_b) = (peer(a).await, peer(b).await);
    assert!(log_in_and_ask(&first_a, daemon.addr).await);
    assert!(log_in_and_ask(&first_b, daemon.addr).await);
    daemon
        .reload(Config {
            max_sessions_per_ip: 1,
            ..config()
        })
        .await;
    for ip in [a, b] {
        let second = peer(ip).await;
        assert_eq!(
            ask(&second, daemon.addr, b"login").await,
            REFUSED.as_bytes(),
            "{ip} (worker {})",
            worker_of(ip, 2)
        );
    }
    // The sessions already open stay.
    assert_time_reply(&ask(&first_a, daemon.addr, b"1").await);
    assert_time_reply(&ask(&first_b, daemon.addr, b"1").await);
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::RefusalPerIp), 2);
    assert_eq!(stats.event(Event::ReloadApplied), 1);
}

#[tokio::test]
async fn every_session_on_every_worker_is_told_at_shutdown() {
    let daemon = Daemon::start(config()).await;
    let mut peers = Vec::new();
    for n in 0..40 {
        let socket = peer(address(n)).await;
        assert_eq!(
            ask(&socket, daemon.addr, b"login").await,
            LOGIN_MENU.as_bytes()
        );
        peers.push(socket);
    }
    let stats = daemon.stop().await;
    for socket in &peers {
        assert_eq!(receive(socket).await, SHUTDOWN_NOTICE.as_bytes());
    }
    assert_eq!(stats.event(Event::EndShutdown), 40);
    assert_eq!(stats.sessions_open, 0);
    assert!(stats.workers_received().iter().all(|&r| r > 0));
}

#[tokio::test]
async fn sntp_on_two_workers_answers_every_address_from_its_own_address() {
    let mut config = config();
    config.sntp.bind = common::loopback().into();
    config.sntp.local_stratum = Some(10);
    let daemon = Daemon::start(config).await;
    let server = daemon.sntp();
    let mut request = [0u8; 48];
    request[0] = 0x23; // NTP v4, client
    for n in 0..100 {
        let socket = peer(address(n)).await;
        request[40..48].copy_from_slice(&(n as u64).to_be_bytes());
        socket.send_to(&request, server).await.unwrap();
        let mut reply = [0u8; 64];
        let (len, from) = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.recv_from(&mut reply),
        )
        .await
        .expect("an SNTP reply")
        .unwrap();
        assert_eq!((len, from), (48, server));
        assert_eq!(reply[0] & 0x07, 4, "server mode");
        assert_eq!(&reply[24..32], &request[40..48], "origin echoed");
    }
    let stats = daemon.stop().await;
    assert_eq!(stats.answered(hora_proto::outcome::Service::Sntp), 100);
    assert!(stats.workers_received().iter().all(|&r| r > 0));
}

#[tokio::test]
async fn metrics_and_status_count_each_workers_datagrams() {
    let mut config = config();
    config.metrics.bind = common::loopback().into();
    let daemon = Daemon::start(config).await;
    let mut expected = [0u64; 2];
    for n in 0..30 {
        let socket = peer(address(n)).await;
        assert!(log_in_and_ask(&socket, daemon.addr).await);
        expected[worker_of(address(n), 2)] += 2;
    }
    let metrics = common::get(daemon.metrics(), "/metrics").await;
    for (worker, count) in expected.iter().enumerate() {
        let series = format!("hora_worker_received_total{{worker=\"{worker}\"}} {count}\n");
        assert!(metrics.contains(&series), "{series} in:\n{metrics}");
    }
    let status = common::get(daemon.metrics(), "/status").await;
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["workers"]["count"], 2);
    assert_eq!(json["workers"]["configured"], 2);
    assert_eq!(json["workers"]["received"], serde_json::json!(expected));
    assert_eq!(json["sessions_open"], 30);
    daemon.stop().await;
}

/// Sends `1` from `socket` in bursts of 64, never waiting for an answer
/// (those are read and dropped), until `stop` is set: a worker whose
/// socket never empties.
async fn stream(socket: UdpSocket, server: SocketAddr, stop: Arc<AtomicBool>) {
    let mut buffer = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            let _ = socket.try_send_to(b"1", server);
        }
        while socket.try_recv_from(&mut buffer).is_ok() {}
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_stream_that_never_lets_up_sessions_still_idle_out_and_reloads_apply() {
    let mut daemon = Daemon::start(Config {
        idle_timeout: std::time::Duration::from_millis(300),
        ..config()
    })
    .await;
    // Every peer on one address: one worker.
    let ip = address(0);
    let silent = peer(ip).await;
    assert_eq!(
        ask(&silent, daemon.addr, b"login").await,
        LOGIN_MENU.as_bytes()
    );
    let busy = peer(ip).await;
    assert!(log_in_and_ask(&busy, daemon.addr).await);
    let stop = Arc::new(AtomicBool::new(false));
    let streaming = tokio::spawn(stream(busy, daemon.addr, Arc::clone(&stop)));
    assert_eq!(
        receive(&silent).await,
        IDLE_NOTICE.as_bytes(),
        "the silent session idled out"
    );
    // A reload denying the streaming address applies while it streams.
    let mut denying = config();
    denying.idle_timeout = std::time::Duration::from_millis(300);
    denying.access.deny = vec![format!("{ip}/32").parse().unwrap()];
    daemon.reload(denying).await;
    common::until(|| daemon.now().dropped_for(DropReason::Denied) > 100).await;
    stop.store(true, Ordering::Relaxed);
    streaming.await.unwrap();
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::EndIdle), 1);
    assert!(
        stats.event(Event::TimeServed) > 1000,
        "the stream was served"
    );
}
