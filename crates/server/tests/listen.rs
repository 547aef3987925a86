//! Where horad listens: every address of a listener's list gets sockets of
//! its own, and answers from itself, to clients that connected their UDP
//! socket to it (as chronyd, ntpdate and most NTP clients do: a reply from
//! any other address never reaches them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use hora_proto::wire::LOGIN_MENU;
use hora_server::Server;
use tokio::net::UdpSocket;

/// A client socket connected to `server`: it hears only from that address.
async fn connected(server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket
}

/// `datagram` to `server` on a connected socket, and its answer.
async fn ask_connected(server: SocketAddr, datagram: &[u8]) -> Vec<u8> {
    let socket = connected(server).await;
    socket.send(datagram).await.unwrap();
    let mut buffer = [0u8; 2048];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buffer))
        .await
        .expect("an answer from the address asked")
        .unwrap();
    buffer[..len].to_vec()
}

#[tokio::test]
async fn every_address_of_a_list_is_served_and_answers_from_itself() {
    let mut config = common::loopback_config();
    config.bind = "127.0.0.2:0,127.0.0.3:0".parse().unwrap();
    config.sntp.bind = "127.0.0.2:0,127.0.0.3:0".parse().unwrap();
    config.sntp.local_stratum = Some(10);
    config.daytime.bind = "127.0.0.4:0,[::1]:0".parse().unwrap();
    config.metrics.bind = "127.0.0.2:0,127.0.0.3:0".parse().unwrap();
    let server = Server::bind(&config).await.unwrap();
    let seed = server.seed_addrs();
    let standard = server.standard_addrs().unwrap();
    let metrics = server.metrics_addrs();
    let of = |name: &str| -> Vec<SocketAddr> {
        let each = standard.iter().filter(|(protocol, _)| *protocol == name);
        each.map(|(_, addr)| *addr).collect()
    };
    let ips = |list: &[SocketAddr]| -> Vec<String> {
        list.iter().map(|addr| addr.ip().to_string()).collect()
    };
    assert_eq!(ips(&seed), ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(ips(&of("sntp")), ["127.0.0.2", "127.0.0.3"]);
    assert_eq!(ips(&of("daytime")), ["127.0.0.4", "::1"]);
    assert_eq!(ips(&metrics), ["127.0.0.2", "127.0.0.3"]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.ops_on_the_serving_runtime().run(async move {
        let _ = stopped.await;
    }));
    for addr in &seed {
        assert_eq!(ask_connected(*addr, b"login").await, LOGIN_MENU.as_bytes());
    }
    let mut request = [0u8; 48];
    request[0] = 4 << 3 | 3;
    for addr in of("sntp") {
        let reply = ask_connected(addr, &request).await;
        assert_eq!((reply.len(), reply[0] & 7), (48, 4), "a server reply");
    }
    let v4 = of("daytime")[0];
    assert!(ask_connected(v4, b"").await.ends_with(b"\r\n"));
    // /status on the second HTTP address lists every address bound.
    let status = common::status(metrics[1]).await;
    let listed = |name: &str| -> Vec<String> {
        let list = status["addresses"][name].as_array().expect("a list");
        list.iter()
            .map(|addr| addr.as_str().unwrap().to_owned())
            .collect()
    };
    let texts =
        |list: &[SocketAddr]| -> Vec<String> { list.iter().map(ToString::to_string).collect() };
    assert_eq!(listed("seed"), texts(&seed));
    assert_eq!(listed("sntp"), texts(&of("sntp")));
    assert_eq!(listed("metrics"), texts(&metrics));
    stop.send(()).unwrap();
    let counted = running.await.unwrap();
    assert_eq!(counted.event(hora_server::stats::Event::Login), 2);
}

#[tokio::test]
async fn an_ipv6_address_answers_after_an_ipv4_one_on_the_same_worker() {
    let mut config = common::loopback_config();
    config.bind = "127.0.0.1:0,[::1]:0".parse().unwrap();
    let server = Server::bind(&config).await.unwrap();
    let seed = server.seed_addrs();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    for round in 0..3 {
        for addr in &seed {
            let client = if addr.is_ipv4() {
                "127.0.0.1:0"
            } else {
                "[::1]:0"
            };
            let socket = UdpSocket::bind(client).await.unwrap();
            socket.connect(addr).await.unwrap();
            socket.send(b"login").await.unwrap();
            let mut buffer = [0u8; 2048];
            let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("round {round}: no answer from {addr}"))
                .unwrap();
            assert_eq!(&buffer[..len], LOGIN_MENU.as_bytes());
        }
    }
    stop.send(()).unwrap();
    running.await.unwrap();
}

/// `datagram` from a client at `client` (a loopback address of its own)
/// connected to `server`; its answer.
async fn ask_from(client: &str, server: SocketAddr, datagram: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind(client).await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(datagram).await.unwrap();
    let mut buffer = [0u8; 2048];
    let len = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buffer))
        .await
        .ok()?
        .ok()?;
    Some(buffer[..len].to_vec())
}

/// On a wildcard bind, a client that asked 127.0.0.7 hears from 127.0.0.7,
/// not from the route's source (127.0.0.1), for every protocol, the seed's
/// and v2 included, on IPv4 and dual-stack IPv6 sockets alike.
#[tokio::test]
async fn a_wildcard_bind_answers_from_the_address_asked() {
    for wildcard in ["0.0.0.0:0", "[::]:0"] {
        let mut config = common::loopback_config();
        config.bind = wildcard.parse().unwrap();
        config.sntp.bind = wildcard.parse().unwrap();
        config.sntp.local_stratum = Some(10);
        config.time.bind = wildcard.parse().unwrap();
        config.daytime.bind = wildcard.parse().unwrap();
        let server = Server::bind(&config).await.unwrap();
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 7], port));
        let seed = at(server.local_addr().unwrap().port());
        let standard = server.standard_addrs().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let menu = ask_from("127.0.0.5:0", seed, b"login").await;
        assert_eq!(menu.as_deref(), Some(LOGIN_MENU.as_bytes()), "{wildcard}");
        let login = hora_proto::v2::wire::login(&hora_proto::v2::Nonce([9; 16]));
        let challenge = ask_from("127.0.0.5:0", seed, &login).await;
        assert!(challenge.is_some(), "{wildcard}: v2's challenge");
        let mut request = [0u8; 48];
        request[0] = 4 << 3 | 3;
        for (protocol, addr) in standard {
            let reply = ask_from("127.0.0.5:0", at(addr.port()), &request).await;
            assert!(reply.is_some(), "{wildcard}: {protocol} from 127.0.0.7");
        }
        stop.send(()).unwrap();
        running.await.unwrap();
    }
}

/// A session opened on a wildcard socket hears its notices (idle,
/// shutdown) from the address it logged in on, not only its replies.
#[tokio::test(start_paused = true)]
async fn a_wildcard_bind_sends_session_notices_from_the_address_asked() {
    use hora_proto::wire::{IDLE_NOTICE, SHUTDOWN_NOTICE};
    let mut config = common::loopback_config();
    config.bind = "0.0.0.0:0".parse().unwrap();
    let daemon = common::Daemon::start(config).await;
    let asked = SocketAddr::from(([127, 0, 0, 7], daemon.addr.port()));
    let idle = connected_from("127.0.0.5:0", asked).await;
    let stays = connected_from("127.0.0.6:0", asked).await;
    for client in [&idle, &stays] {
        client.send(b"login").await.unwrap();
        assert_eq!(receive(client).await, LOGIN_MENU.as_bytes());
    }
    // One keeps asking while the other idles out.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(4)).await;
        stays.send(b"1").await.unwrap();
        receive(&stays).await;
    }
    assert_eq!(receive(&idle).await, IDLE_NOTICE.as_bytes());
    let counted = daemon.stop().await;
    assert_eq!(receive(&stays).await, SHUTDOWN_NOTICE.as_bytes());
    assert_eq!(counted.event(hora_server::stats::Event::EndShutdown), 1);
}

/// A client socket at `client` connected to `server`.
async fn connected_from(client: &str, server: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind(client).await.unwrap();
    socket.connect(server).await.unwrap();
    socket
}

/// The next datagram on a connected socket: only its server's reach it.
async fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = [0u8; 2048];
    let len = tokio::time::timeout(Duration::from_secs(60), socket.recv(&mut buffer))
        .await
        .expect("a datagram from the address asked")
        .unwrap();
    buffer[..len].to_vec()
}
