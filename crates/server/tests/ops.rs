//! The operators' HTTP listener, in-process over loopback: `/metrics` and
//! `/status` read the same numbers UDP clients made, and no request, however
//! bad or slow, costs the time service anything.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use hora_proto::wire::{LOGIN_MENU, SESSION_CLOSED};
use hora_server::ops::http::{
    HEADER_TIMEOUT, IDLE_WHEN_FULL, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_SOURCE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use common::{ask, Daemon};

async fn start() -> Daemon {
    let loopback = common::loopback();
    let mut config = common::loopback_config();
    config.metrics.bind = loopback.into();
    Daemon::start(config).await
}

/// One HTTP exchange over a fresh connection: the whole response as text.
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    let _ = timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: hora\r\nConnection: close\r\n\r\n");
    http(addr, request.as_bytes()).await
}

/// The value of a sample line `name{labels} value` in a Prometheus text.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_and_status_read_what_udp_clients_did() {
    let daemon = start().await;
    let mut peers = Vec::new();
    for _ in 0..3 {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        assert_eq!(
            ask(&peer, daemon.addr, b"login").await,
            LOGIN_MENU.as_bytes()
        );
        peers.push(peer);
    }
    assert_eq!(
        ask(&peers[0], daemon.addr, b"2").await,
        SESSION_CLOSED.as_bytes()
    );
    peers[1].send_to(b"\xff", daemon.addr).await.unwrap(); // garbage: an invalid option
    ask(&peers[1], daemon.addr, b"2").await; // drains the reply; no session now: CLOSED

    let metrics = get(daemon.metrics(), "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    assert!(
        metrics.contains("content-type: text/plain; version=0.0.4"),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "hora_sessions_open"), 1.0);
    assert_eq!(sample(&metrics, "hora_logins_total"), 3.0);
    assert_eq!(
        sample(&metrics, "hora_sessions_ended_total{reason=\"logout\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "hora_sessions_ended_total{reason=\"invalid_option\"}"
        ),
        1.0
    );
    let received = sample(&metrics, "hora_datagrams_received_total{protocol=\"seed\"}");
    let answered = sample(&metrics, "hora_requests_total{protocol=\"seed\"}");
    let dropped: f64 = ["denied", "rate_limited", "invalid", "loop", "withheld"]
        .iter()
        .map(|r| {
            sample(
                &metrics,
                &format!("hora_dropped_total{{protocol=\"seed\",reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert_eq!(received, 6.0);
    assert_eq!(received, answered + dropped, "every datagram counted once");
    assert_eq!(
        sample(&metrics, "hora_worker_received_total{worker=\"0\"}"),
        6.0,
        "one worker received them all"
    );
    assert!(metrics.contains("hora_build_info{version=\""), "{metrics}");
    // Two sessions ended (a logout, an invalid option), both within a second.
    assert_eq!(sample(&metrics, "hora_session_duration_seconds_count"), 2.0);
    assert_eq!(
        sample(&metrics, "hora_session_duration_seconds_bucket{le=\"1\"}"),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "hora_session_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        2.0
    );
    assert!(sample(&metrics, "hora_start_time_seconds") > 1.7e9);

    let status = get(daemon.metrics(), "/status").await;
    assert!(
        status.contains("content-type: application/json"),
        "{status}"
    );
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["sessions_open"], 1);
    assert_eq!(json["counters"]["logins"], 3);
    assert_eq!(json["counters"]["ended_logout"], 1);
    assert_eq!(json["datagrams"]["seed"]["received"], 6);
    assert_eq!(
        json["addresses"]["seed"],
        serde_json::json!([daemon.addr.to_string()])
    );
    assert_eq!(
        json["addresses"]["metrics"],
        serde_json::json!([daemon.metrics().to_string()])
    );
    assert_eq!(json["limits"]["max_sessions"], 1_000_000);
    assert_eq!(json["workers"]["count"], 1);
    assert_eq!(json["workers"]["received"], serde_json::json!([6]));
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    daemon.stop().await;
}

#[tokio::test]
async fn openmetrics_is_served_when_asked_for() {
    let daemon = start().await;
    let response = http(
        daemon.metrics(),
        b"GET /metrics HTTP/1.1\r\nHost: h\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        response.contains("content-type: application/openmetrics-text"),
        "{response}"
    );
    assert!(response.trim_end().ends_with("# EOF"), "{response}");
    daemon.stop().await;
}

#[tokio::test]
async fn other_paths_and_methods_are_refused_cleanly() {
    let daemon = start().await;
    assert!(get(daemon.metrics(), "/")
        .await
        .starts_with("HTTP/1.1 404 "));
    assert!(get(daemon.metrics(), "/metrics/../etc")
        .await
        .starts_with("HTTP/1.1 404 "));
    let post = http(
        daemon.metrics(),
        b"POST /status HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    assert!(post.contains("allow: GET, HEAD"), "{post}");
    daemon.stop().await;
}

#[tokio::test]
async fn bad_and_hostile_clients_never_stop_the_time_service() {
    let daemon = start().await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Not HTTP at all.
    let junk = http(daemon.metrics(), b"\x16\x03\x01\x00\xffhello\r\n\r\n").await;
    assert!(
        junk.is_empty() || junk.starts_with("HTTP/1.1 400 "),
        "{junk:?}"
    );
    // Headers past the 8 KiB the listener buffers.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let refused = http(daemon.metrics(), &huge).await;
    assert!(!refused.starts_with("HTTP/1.1 200"), "{refused:?}");
    // Idle connections past the limit: each is held open, sending nothing.
    let mut idle = Vec::new();
    for _ in 0..(MAX_CONNECTIONS * 4) {
        idle.push(TcpStream::connect(daemon.metrics()).await.unwrap());
    }
    // The time service answers throughout.
    assert_eq!(
        ask(&peer, daemon.addr, b"login").await,
        LOGIN_MENU.as_bytes()
    );
    // A connection over the limit is closed at once (read sees EOF), not queued.
    let mut extra = TcpStream::connect(daemon.metrics()).await.unwrap();
    let mut byte = [0u8; 1];
    let read = timeout(Duration::from_secs(5), extra.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    // Once they go, the listener serves again.
    drop(idle);
    let mut served = false;
    for _ in 0..50 {
        if get(daemon.metrics(), "/status")
            .await
            .starts_with("HTTP/1.1 200")
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "the listener recovers once the idle connections close"
    );
    assert!(matches!(
        hora_proto::ServerMessage::read(&ask(&peer, daemon.addr, b"1").await),
        hora_proto::ServerMessage::Time { .. }
    ));
    daemon.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_drip_is_cut_off_by_the_header_deadline() {
    let daemon = start().await;
    let mut stream = TcpStream::connect(daemon.metrics()).await.unwrap();
    // One byte every second never completes the head within 5 s.
    let mut cut = false;
    for byte in b"GET /metrics HTTP/1.1\r\nHost: a-very-slow-client\r\n".iter() {
        if stream.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut rest = Vec::new();
    let read = timeout(Duration::from_secs(60), stream.read_to_end(&mut rest)).await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        cut || matches!(read, Ok(Ok(_))) && !text.starts_with("HTTP/1.1 200"),
        "the connection was not cut: {text:?}"
    );
    daemon.stop().await;
}

#[tokio::test]
async fn after_a_reload_status_and_metrics_show_every_value_in_force() {
    let mut daemon = start().await;
    let mut config = common::loopback_config();
    config.metrics.bind = common::loopback().into();
    let before = get(daemon.metrics(), "/status").await;
    assert!(before.contains("\"idle_timeout_s\": 10.0"), "{before}");
    // What the issue tried: idle_timeout 10 s -> 30 s, max_sessions 20000 -> 15000;
    // and more keys, each of which /status or /metrics reports.
    config.idle_timeout = Duration::from_secs(30);
    config.max_sessions = 15_000;
    config.max_sessions_per_ip = 7;
    config.ratelimit.rate = 5.0;
    config.ratelimit.burst = 9.0;
    config.access.deny = vec![
        "10.9.0.0/16".parse().unwrap(),
        "10.8.0.0/16".parse().unwrap(),
    ];
    config.log.level = "warn".to_owned();
    config.sntp.client_log = 64;
    daemon.reload(config).await;
    let status = get(daemon.metrics(), "/status").await;
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let document: serde_json::Value = serde_json::from_str(body).unwrap();
    let limits = &document["limits"];
    assert_eq!(limits["idle_timeout_s"], 30.0);
    assert_eq!(limits["max_sessions"], 15_000);
    assert_eq!(limits["max_sessions_per_ip"], 7);
    assert_eq!(limits["rate_per_source"], 5.0);
    assert_eq!(limits["burst_per_source"], 9.0);
    assert_eq!(limits["sntp_client_log"], 64);
    assert_eq!(limits["sntp_client_log_bytes"], 64 * 16);
    assert_eq!(document["access"]["deny"], 2);
    assert_eq!(document["log_level"], "warn");
    assert!(
        document["counters"].get("tasks").is_none(),
        "no tasks counter"
    );
    assert_eq!(document["counters"]["reloads_applied"], 1);
    let metrics = get(daemon.metrics(), "/metrics").await;
    assert_eq!(sample(&metrics, "hora_config_idle_timeout_seconds"), 30.0);
    assert_eq!(sample(&metrics, "hora_config_max_sessions"), 15_000.0);
    assert_eq!(sample(&metrics, "hora_config_max_sessions_per_ip"), 7.0);
    assert_eq!(sample(&metrics, "hora_config_rate_per_source"), 5.0);
    assert_eq!(sample(&metrics, "hora_config_burst_per_source"), 9.0);
    assert_eq!(
        sample(&metrics, "hora_config_access_networks{list=\"deny\"}"),
        2.0
    );
    assert_eq!(
        sample(&metrics, "hora_reloads_total{result=\"applied\"}"),
        1.0
    );
    daemon.stop().await;
}

/// A connection to `addr` from `ip`, open and silent.
async fn connect_from(ip: &str, addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

/// A scrape of `/status` from `ip`: whether it was served.
async fn scrape_from(ip: &str, addr: SocketAddr) -> bool {
    let mut stream = connect_from(ip, addr).await;
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: hora\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    response.starts_with(b"HTTP/1.1 200")
}

#[tokio::test(start_paused = true)]
async fn a_full_listener_cuts_the_connection_idle_longest_for_a_newcomer() {
    let daemon = start().await;
    let start = tokio::time::Instant::now();
    // Every slot held by idle connections, from two addresses.
    let mut held = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.3"] {
        for _ in 0..MAX_CONNECTIONS_PER_SOURCE {
            held.push(connect_from(ip, daemon.metrics()).await);
        }
    }
    assert_eq!(held.len(), MAX_CONNECTIONS);
    assert!(
        !scrape_from("127.0.0.2", daemon.metrics()).await,
        "connections just opened are not cut"
    );
    tokio::time::advance(IDLE_WHEN_FULL).await;
    assert!(scrape_from("127.0.0.2", daemon.metrics()).await);
    assert!(
        start.elapsed() < HEADER_TIMEOUT,
        "served before any head deadline"
    );
    // Exactly one held connection was cut: the oldest.
    // Exactly one held connection was cut.
    let mut cut = 0;
    for stream in &mut held {
        let mut byte = [0u8; 1];
        let read = timeout(Duration::from_millis(10), stream.read(&mut byte)).await;
        cut += usize::from(matches!(read, Ok(Ok(0) | Err(_))));
    }
    assert_eq!(cut, 1);
    daemon.stop().await;
}

#[tokio::test]
async fn one_address_holding_connections_leaves_room_for_the_others() {
    let daemon = start().await;
    // Eight idle connections from 127.0.0.1, as many as the listener serves.
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(connect_from("127.0.0.1", daemon.metrics()).await);
    }
    // Twenty scrapes from 127.0.0.2, one after another.
    let mut served = 0;
    for _ in 0..20 {
        served += usize::from(scrape_from("127.0.0.2", daemon.metrics()).await);
    }
    assert!(served >= 18, "{served} of 20 scrapes served");
    drop(held);
    daemon.stop().await;
}

/// `hora_dropped_total`'s help names every reason it is counted by.
#[tokio::test]
async fn the_drop_counters_help_names_every_reason() {
    let mut config = common::loopback_config();
    config.metrics.bind = common::loopback().into();
    let daemon = Daemon::start(config).await;
    let metrics = get(daemon.metrics(), "/metrics").await;
    let help = metrics
        .lines()
        .find(|line| line.starts_with("# HELP hora_dropped_total "))
        .unwrap_or_else(|| panic!("no help for hora_dropped_total:\n{metrics}"));
    for reason in hora_proto::outcome::DropReason::ALL {
        assert!(
            help.contains(reason.name()),
            "{} not in {help}",
            reason.name()
        );
    }
    daemon.stop().await;
}

/// With SNTP off, protocol v2's time answers still carry the clock's
/// state: a reload of the `[sntp]` clock fields reaches it (it was
/// reported applied, and the start-up settings stayed).
#[tokio::test]
async fn a_reload_of_the_clock_fields_applies_with_sntp_off() {
    let mut config = common::loopback_config();
    config.metrics.bind = common::loopback().into();
    assert!(config.sntp.bind.is_empty());
    let mut daemon = Daemon::start(config.clone()).await;
    let kernel = hora_server::sys::host_clock().is_ok_and(|host| host.synchronized);
    config.sntp.stratum = 12;
    config.sntp.local_stratum = Some(11);
    daemon.reload(config).await;
    // Served as synchronized at `stratum`, else as a local clock at
    // `local_stratum`: either way a value only the reload could give.
    let (served_as, stratum) = if kernel {
        ("synchronized", 12)
    } else {
        ("local", 11)
    };
    let mut clock = serde_json::Value::Null;
    // Bounded: the clock task takes the new view within a few polls.
    for _ in 0..200 {
        let status = get(daemon.metrics(), "/status").await;
        let body = status.split("\r\n\r\n").nth(1).unwrap();
        let document: serde_json::Value = serde_json::from_str(body).unwrap();
        clock = document["sntp_clock"].clone();
        if clock["stratum"] == stratum {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(clock["stratum"], stratum, "{clock}");
    assert_eq!(clock["served_as"], served_as, "{clock}");
    daemon.stop().await;
}

#[tokio::test]
async fn status_tells_the_kernels_clock_state_from_how_local_stratum_serves_it() {
    let loopback = common::loopback();
    let mut config = common::loopback_config();
    config.metrics.bind = loopback.into();
    config.sntp.bind = loopback.into();
    config.sntp.local_stratum = Some(10);
    let daemon = Daemon::start(config).await;
    let kernel = hora_server::sys::host_clock().is_ok_and(|host| host.synchronized);
    let status = get(daemon.metrics(), "/status").await;
    let body = status.split("\r\n\r\n").nth(1).unwrap();
    let document: serde_json::Value = serde_json::from_str(body).unwrap();
    let clock = &document["sntp_clock"];
    assert_eq!(clock["synchronized"], kernel, "the kernel's word: {clock}");
    let served_as = if kernel { "synchronized" } else { "local" };
    assert_eq!(clock["served_as"], served_as, "{clock}");
    assert_eq!(clock["stratum"], 10, "{clock}");
    // Served as synchronized or local: a leap second pending or none.
    let indicator = clock["leap_indicator"].as_u64().unwrap();
    assert!(indicator < 3, "{clock}");
    let leap = ["none", "insert", "delete"][usize::try_from(indicator).unwrap()];
    assert_eq!(clock["leap"], leap, "{clock}");
    assert_eq!(hora_proto::sntp::leap_name(3), "unsynchronized");
    // The same state as gauges an admin can alert on.
    let metrics = get(daemon.metrics(), "/metrics").await;
    for line in [
        format!("hora_clock_synchronized {}.0", u8::from(kernel)),
        format!("hora_clock_served_as{{state=\"{served_as}\"}} 1.0"),
        "hora_clock_served_as{state=\"unsynchronized\"} 0.0".to_owned(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hora_clock_leap_pending ")),
        "{metrics}"
    );
}
