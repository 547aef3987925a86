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

/// `/status` from the HTTP listener at `addr`.
async fn status(addr: SocketAddr) -> serde_json::Value {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: hora\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str(body).unwrap()
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
    let status = status(metrics[1]).await;
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
