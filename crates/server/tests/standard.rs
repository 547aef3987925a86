//! SNTP, RFC 868 Time and RFC 867 Daytime over loopback, with hand-built
//! packets, against the in-process daemon.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use hora_proto::outcome::{DropReason, Service};
use hora_server::config::ServiceConfig;
use hora_server::stats::Event;
use hora_server::Config;
use tokio::net::UdpSocket;

use common::{ask, receive, Daemon};

/// SNTP with `local_stratum = 10`, as chrony's `local stratum 10`: this
/// machine's kernel may say its clock is unsynchronized, and these tests are
/// about the replies of a server that serves it anyway.
async fn start() -> Daemon {
    start_with(|_| {}).await
}

async fn start_with(adjust: impl FnOnce(&mut Config)) -> Daemon {
    Daemon::start(config_with(adjust)).await
}

fn config_with(adjust: impl FnOnce(&mut Config)) -> Config {
    let loopback = common::loopback();
    let mut config = common::loopback_config();
    config.sntp.local_stratum = Some(10);
    adjust(&mut config);
    config.sntp.bind = loopback.into();
    config.time = ServiceConfig {
        bind: loopback.into(),
    };
    config.daytime = ServiceConfig {
        bind: loopback.into(),
    };
    config
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

fn ntp_request(version: u8, mode: u8, transmit: [u8; 8]) -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = version << 3 | mode;
    packet[2] = 6;
    packet[40..48].copy_from_slice(&transmit);
    packet
}

/// An NTP timestamp as seconds since the Unix epoch.
fn ntp_to_unix(bytes: &[u8]) -> f64 {
    let seconds = u32::from_be_bytes(bytes[..4].try_into().unwrap());
    let fraction = u32::from_be_bytes(bytes[4..8].try_into().unwrap());
    f64::from(seconds) - 2_208_988_800.0 + f64::from(fraction) / 4_294_967_296.0
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn sntp_answers_a_v4_client_request_with_the_host_time() {
    let daemon = start().await;
    let socket = client().await;
    let origin = [0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4];
    let before = unix_now();
    socket
        .send_to(&ntp_request(4, 3, origin), daemon.sntp())
        .await
        .unwrap();
    let reply = receive(&socket).await;
    let after = unix_now();
    assert_eq!(reply.len(), 48);
    assert_eq!(reply[0], 4 << 3 | 4, "LI 0, version 4, mode 4");
    assert_eq!(reply[1], 10, "stratum");
    assert_eq!(reply[2], 6, "poll echoed");
    assert_eq!(reply[3] as i8, -26, "precision");
    assert_eq!(&reply[12..16], &[127, 127, 1, 1]);
    assert_eq!(&reply[24..32], &origin, "origin = our transmit timestamp");
    let (received, transmitted) = (ntp_to_unix(&reply[32..40]), ntp_to_unix(&reply[40..48]));
    assert!(received <= transmitted);
    assert!(
        before - 0.05 <= received && transmitted <= after + 0.05,
        "{before} {received} {transmitted} {after}"
    );
    assert_ne!(reply[36..40], [0; 4], "sub-second fraction present");
    assert_eq!(daemon.stop().await.answered(Service::Sntp), 1);
}

#[tokio::test]
async fn sntp_echoes_version_3() {
    let daemon = start().await;
    let socket = client().await;
    socket
        .send_to(&ntp_request(3, 3, [9; 8]), daemon.sntp())
        .await
        .unwrap();
    assert_eq!(receive(&socket).await[0], 3 << 3 | 4);
    daemon.stop().await;
}

#[tokio::test]
async fn sntp_ignores_everything_but_client_requests() {
    let daemon = start().await;
    let socket = client().await;
    let bad: [&[u8]; 6] = [
        &ntp_request(4, 4, [1; 8]),       // a server reply: never answer a reply
        &ntp_request(4, 5, [1; 8]),       // broadcast
        &ntp_request(4, 6, [1; 8]),       // control
        &ntp_request(0, 3, [1; 8]),       // version 0
        &ntp_request(5, 3, [1; 8]),       // version 5
        &ntp_request(4, 3, [1; 8])[..47], // short
    ];
    for datagram in bad {
        socket.send_to(datagram, daemon.sntp()).await.unwrap();
    }
    // Then a good one: the only answer that comes back is for it.
    socket
        .send_to(&ntp_request(4, 3, [2; 8]), daemon.sntp())
        .await
        .unwrap();
    let reply = receive(&socket).await;
    assert_eq!(&reply[24..32], &[2; 8]);
    let stats = daemon.stop().await;
    assert_eq!(stats.dropped(Service::Sntp, DropReason::Invalid), 6);
    assert_eq!(stats.answered(Service::Sntp), 1);
}

#[tokio::test]
async fn rfc868_answers_any_datagram_with_seconds_since_1900() {
    let daemon = start().await;
    let socket = client().await;
    let before = unix_now();
    socket.send_to(b"", daemon.time()).await.unwrap();
    let reply = receive(&socket).await;
    assert_eq!(reply.len(), 4);
    let seconds = f64::from(u32::from_be_bytes(reply.try_into().unwrap())) - 2_208_988_800.0;
    assert!((seconds - before).abs() < 1.5, "{seconds} vs {before}");
    assert_eq!(daemon.stop().await.answered(Service::Time), 1);
}

#[tokio::test]
async fn daytime_answers_any_datagram_with_one_line() {
    let daemon = start().await;
    let socket = client().await;
    socket
        .send_to(b"what time is it?", daemon.daytime())
        .await
        .unwrap();
    let reply = String::from_utf8(receive(&socket).await).unwrap();
    let line = reply.strip_suffix("\r\n").expect("ends in CR LF");
    assert!(!line.contains('\n'));
    let served = chrono::DateTime::parse_from_rfc2822(line).unwrap();
    let drift = (chrono::Utc::now() - served.to_utc()).num_seconds().abs();
    assert!(drift <= 2, "{line}");
    assert_eq!(daemon.stop().await.answered(Service::Daytime), 1);
}

#[tokio::test]
async fn shutdown_stops_every_protocol() {
    let daemon = start().await;
    let sntp = daemon.sntp();
    let stats = daemon.stop().await;
    assert_eq!(stats.sessions_open, 0);
    // The socket is closed: binding its address again now works.
    assert!(UdpSocket::bind(sntp).await.is_ok());
}

#[tokio::test]
async fn a_rate_limited_sntp_client_is_kissed_now_and_then() {
    let daemon = start_with(|config| {
        config.ratelimit.rate = 0.001;
        config.ratelimit.burst = 2.0;
    })
    .await;
    let socket = client().await;
    for serial in 1..=2u8 {
        socket
            .send_to(&ntp_request(4, 3, [serial; 8]), daemon.sntp())
            .await
            .unwrap();
        assert_eq!(receive(&socket).await[1], 10, "a normal reply");
    }
    // Over the limit: the first drop is answered with a RATE kiss...
    socket
        .send_to(&ntp_request(4, 3, [3; 8]), daemon.sntp())
        .await
        .unwrap();
    let kiss = receive(&socket).await;
    assert_eq!(kiss[1], 0, "stratum 0");
    assert_eq!(&kiss[12..16], b"RATE");
    assert_eq!(&kiss[24..32], &[3; 8], "origin echoed");
    // ...the next seven are dropped in silence, the eighth kissed again.
    for serial in 4..=11u8 {
        socket
            .send_to(&ntp_request(4, 3, [serial; 8]), daemon.sntp())
            .await
            .unwrap();
    }
    let kiss = receive(&socket).await;
    assert_eq!(&kiss[24..32], &[11; 8]);
    let stats = daemon.stop().await;
    assert_eq!(stats.answered(Service::Sntp), 2);
    assert_eq!(stats.dropped_for(DropReason::RateLimited), 9);
    assert_eq!(stats.event(Event::KissOfDeath), 2);
}

#[tokio::test]
async fn sntp_tells_the_truth_about_the_host_clock() {
    // Without local_stratum, what the kernel says decides the reply.
    let daemon = start_with(|config| config.sntp.local_stratum = None).await;
    let host = hora_server::sys::host_clock().unwrap();
    let socket = client().await;
    socket
        .send_to(&ntp_request(4, 3, [7; 8]), daemon.sntp())
        .await
        .unwrap();
    let reply = receive(&socket).await;
    let leap_indicator = reply[0] >> 6;
    if host.synchronized {
        assert!(leap_indicator < 3, "LI {leap_indicator}");
        assert_eq!(reply[1], 10, "the configured stratum");
    } else {
        assert_eq!(leap_indicator, 3, "unsynchronized: alarm");
        assert_eq!(reply[1], 0, "stratum 0, as chronyd sends");
        assert_eq!(&reply[12..16], &[0; 4], "no reference id");
        assert_eq!(
            &reply[4..8],
            &0x0001_0000u32.to_be_bytes(),
            "root delay 1 s"
        );
        assert_eq!(
            &reply[8..12],
            &0x0001_0000u32.to_be_bytes(),
            "root dispersion 1 s"
        );
    }
    assert_eq!(&reply[24..32], &[7; 8], "still an answer to this request");
    daemon.stop().await;
}

#[tokio::test]
async fn every_sntp_receive_timestamp_is_the_kernels_and_precedes_the_transmit() {
    // Fifty requests at once: over the default burst, so no rate limit.
    let daemon = start_with(|config| config.ratelimit.enabled = false).await;
    let socket = client().await;
    for serial in 0..50u8 {
        let before = unix_now();
        socket
            .send_to(&ntp_request(4, 3, [serial; 8]), daemon.sntp())
            .await
            .unwrap();
        let reply = receive(&socket).await;
        assert_eq!(&reply[24..32], &[serial; 8]);
        let (received, transmitted) = (ntp_to_unix(&reply[32..40]), ntp_to_unix(&reply[40..48]));
        assert!(received <= transmitted, "{received} > {transmitted}");
        // The kernel stamped it after we sent it (within float precision).
        assert!(before - 1e-6 <= received, "{before} > {received}");
    }
    let stats = daemon.stop().await;
    assert_eq!(stats.answered(Service::Sntp), 50);
    assert_eq!(
        stats.event(Event::KernelTimestamp),
        50,
        "every receive time from the kernel"
    );
    assert_eq!(stats.event(Event::ClockTimestamp), 0);
}

#[tokio::test]
async fn sntp_replies_sent_together_are_stamped_in_order_and_never_after_they_leave() {
    // Bursts of requests, read only once all are sent: the daemon reads them
    // in batches and sends their replies together, each transmit timestamp
    // estimated from the kernel's pace (`hora_proto::transmit`). On one
    // host's clock, a reply can't leave after we read it. Enough bursts for
    // the estimate to be learned (`hora_proto::transmit::WINDOW` batches).
    const BURSTS: u8 = 20;
    let daemon = start_with(|config| config.ratelimit.enabled = false).await;
    let socket = client().await;
    for burst in 0..BURSTS {
        for serial in 0..32u8 {
            socket
                .send_to(
                    &ntp_request(4, 3, [burst, serial, 0, 0, 0, 0, 0, 1]),
                    daemon.sntp(),
                )
                .await
                .unwrap();
        }
        let mut last_transmitted = 0.0;
        for serial in 0..32u8 {
            let reply = receive(&socket).await;
            let read = unix_now();
            assert_eq!(&reply[24..26], &[burst, serial], "replies in order");
            let (received, transmitted) =
                (ntp_to_unix(&reply[32..40]), ntp_to_unix(&reply[40..48]));
            assert!(received <= transmitted, "{received} > {transmitted}");
            assert!(
                transmitted <= read + 1e-6,
                "burst {burst}, reply {serial}: sent at {transmitted}, read at {read}"
            );
            assert!(
                last_transmitted <= transmitted,
                "burst {burst}, reply {serial}: stamped {transmitted}, before the one sent ahead of it ({last_transmitted})"
            );
            last_transmitted = transmitted;
        }
    }
    let stats = daemon.stop().await;
    assert_eq!(stats.answered(Service::Sntp), u64::from(BURSTS) * 32);
    assert_eq!(stats.event(Event::Sent), u64::from(BURSTS) * 32);
}

#[tokio::test]
async fn sntp_keeps_kernel_receive_timestamps_while_time_and_daytime_are_asked_too() {
    // The sockets of one thread share the batch reader's headers: a
    // datagram read without a timestamp once left them no room for the
    // SNTP socket's, and every SNTP reply after it read the clock.
    let daemon = start_with(|config| config.ratelimit.enabled = false).await;
    let socket = client().await;
    for serial in 0..20u8 {
        ask(&socket, daemon.daytime(), b"?").await;
        ask(&socket, daemon.time(), b"").await;
        let reply = ask(&socket, daemon.sntp(), &ntp_request(4, 3, [serial; 8])).await;
        assert_eq!(&reply[24..32], &[serial; 8]);
    }
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::KernelTimestamp), 20);
    assert_eq!(stats.event(Event::ClockTimestamp), 0);
}

/// A request in interleaved mode (RFC 9769): naming the earlier reply whose
/// receive timestamp is `origin`, with `receive` our (made-up) time of
/// receiving it.
fn interleaved_request(origin: &[u8], receive: u64, transmit: u64) -> [u8; 48] {
    let mut packet = ntp_request(4, 3, transmit.to_be_bytes());
    packet[24..32].copy_from_slice(origin);
    packet[32..40].copy_from_slice(&receive.to_be_bytes());
    packet
}

#[tokio::test]
async fn an_interleaved_client_gets_the_kernels_transmit_time_of_its_last_reply_once() {
    let daemon = start_with(|config| config.ratelimit.enabled = false).await;
    let socket = client().await;
    // First a basic request, as chronyd's first in `xleave`; then one
    // naming its reply, which isn't logged (it didn't look interleaved)
    // but is answered basic and logged itself.
    let first = ask(&socket, daemon.sntp(), &ntp_request(4, 3, [1; 8])).await;
    assert_eq!(
        first[39] & 1,
        1,
        "our receive timestamps have their low bit set"
    );
    assert_eq!(first[47] & 1, 0, "our transmit timestamps have it clear");
    let second = ask(
        &socket,
        daemon.sntp(),
        &interleaved_request(&first[32..40], 11, 2),
    )
    .await;
    let second_read = unix_now();
    assert_eq!(
        &second[24..32],
        &2u64.to_be_bytes(),
        "basic: origin = our transmit"
    );
    // Now name the second: its true transmit time comes back.
    let third_request = interleaved_request(&second[32..40], 22, 3);
    let third = ask(&socket, daemon.sntp(), &third_request).await;
    assert_eq!(third.len(), 48);
    assert_eq!(
        &third[24..32],
        &22u64.to_be_bytes(),
        "interleaved: origin = our receive field"
    );
    let (received, predicted, sent) = (
        ntp_to_unix(&second[32..40]),
        ntp_to_unix(&second[40..48]),
        ntp_to_unix(&third[40..48]),
    );
    assert!(
        received <= sent && sent <= second_read + 1e-6,
        "{received} {sent} {second_read}"
    );
    assert!(
        predicted <= sent,
        "the prediction {predicted} is after the kernel's {sent}"
    );
    // The same request again (a replay): the entry is used, so basic.
    assert_eq!(
        &ask(&socket, daemon.sntp(), &third_request).await[24..32],
        &3u64.to_be_bytes()
    );
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::InterleavedAnswered), 1);
    assert_eq!(stats.event(Event::InterleavedNotLogged), 2);
    assert!(stats.event(Event::KernelTransmit) >= 2);
    assert_eq!(stats.event(Event::TransmitLate), 0);
}

#[tokio::test]
async fn forged_interleaved_requests_get_basic_replies_no_larger_and_leave_a_real_client_be() {
    // A log of 16 replies flooded with 500 interleaved-looking requests
    // naming receive timestamps the server never sent.
    let daemon = start_with(|config| {
        config.ratelimit.enabled = false;
        config.sntp.client_log = 16;
    })
    .await;
    let forger = client().await;
    for n in 0..500u64 {
        let origin = (0xE000_0000_0000_0001 + 2 * n).to_be_bytes();
        let reply = ask(
            &forger,
            daemon.sntp(),
            &interleaved_request(&origin, n + 1, n + 2),
        )
        .await;
        assert_eq!(reply.len(), 48, "never larger than the request");
        assert_eq!(&reply[24..32], &(n + 2).to_be_bytes(), "basic");
    }
    // A real client's second request after the flood is interleaved.
    let real = client().await;
    let first = ask(&real, daemon.sntp(), &interleaved_request(&[0; 8], 5, 6)).await;
    let second = ask(
        &real,
        daemon.sntp(),
        &interleaved_request(&first[32..40], 7, 8),
    )
    .await;
    let third = ask(
        &real,
        daemon.sntp(),
        &interleaved_request(&second[32..40], 9, 10),
    )
    .await;
    assert_eq!(&third[24..32], &9u64.to_be_bytes(), "interleaved");
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::InterleavedNotLogged), 500 + 1);
    assert_eq!(stats.event(Event::InterleavedAnswered), 1);
}

#[tokio::test]
async fn with_the_client_log_off_every_reply_is_basic() {
    let daemon = start_with(|config| config.sntp.client_log = 0).await;
    let socket = client().await;
    let first = ask(&socket, daemon.sntp(), &ntp_request(4, 3, [1; 8])).await;
    let second = ask(
        &socket,
        daemon.sntp(),
        &interleaved_request(&first[32..40], 3, 4),
    )
    .await;
    let third = ask(
        &socket,
        daemon.sntp(),
        &interleaved_request(&second[32..40], 5, 6),
    )
    .await;
    assert_eq!(&third[24..32], &6u64.to_be_bytes(), "basic");
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::InterleavedAnswered), 0);
    assert_eq!(
        stats.event(Event::KernelTransmit),
        0,
        "nothing asked of the kernel"
    );
}

#[tokio::test]
async fn a_reload_turning_the_client_log_off_answers_the_next_interleaved_request_basic() {
    let config = config_with(|config| config.ratelimit.enabled = false);
    let mut daemon = Daemon::start(config.clone()).await;
    let socket = client().await;
    let first = ask(&socket, daemon.sntp(), &ntp_request(4, 3, [1; 8])).await;
    let second = ask(
        &socket,
        daemon.sntp(),
        &interleaved_request(&first[32..40], 11, 2),
    )
    .await;
    let mut off = config;
    off.sntp.client_log = 0;
    daemon.reload(off).await;
    // Logged before the reload, the second reply would be named: the new
    // view is in force before this request is read.
    let third = ask(
        &socket,
        daemon.sntp(),
        &interleaved_request(&second[32..40], 22, 3),
    )
    .await;
    assert_eq!(&third[24..32], &3u64.to_be_bytes(), "basic");
    let stats = daemon.stop().await;
    assert_eq!(stats.event(Event::InterleavedAnswered), 0);
}
