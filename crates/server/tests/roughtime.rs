//! Roughtime (RFC 10049) over loopback against the in-process daemon: the
//! server's answers checked by proto's client half, every kind of bad
//! request dropped and counted by reason, the key file kept across
//! restarts, and the access lists and rate limit applied.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use hora_proto::outcome::{DropReason, Service};
use hora_proto::roughtime::client;
use hora_proto::roughtime::version::Version;
use hora_proto::roughtime::wire::{self, Tag};
use hora_server::stats::Event;
use hora_server::Config;
use tokio::net::UdpSocket;

use common::{receive, Daemon};

fn config(key: &Path) -> Config {
    let mut config = common::loopback_config();
    config.roughtime.bind = common::loopback().into();
    config.roughtime.key = Some(key.to_owned());
    config
}

/// The public key the daemon serves with, from the file it made.
fn public_key(key: &Path) -> [u8; 32] {
    let (key, made) = hora_server::roughtime_key::load_or_create(key).expect("the key");
    assert!(!made, "the daemon made it");
    key.public_key()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn every_client_of_a_burst_gets_a_time_that_verifies_in_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roughtime.key");
    let daemon = Daemon::start(config(&path)).await;
    let public = public_key(&path);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let offers = [
        vec![Version::RFC],
        vec![Version(0x8000_000c)],
        vec![Version(0x8000_000b)],
        vec![Version::RFC, Version(0x8000_000c)],
    ];
    let requests: Vec<Vec<u8>> = (0..40u8)
        .map(|i| {
            client::request(
                &[i; 32],
                &offers[usize::from(i) % offers.len()],
                Some(&public),
            )
        })
        .collect();
    // All sent before any is read: the daemon reads them in batches.
    for request in &requests {
        socket.send_to(request, daemon.roughtime()).await.unwrap();
    }
    let before = unix_now();
    let mut verified = Vec::new();
    for _ in &requests {
        let response = receive(&socket).await;
        let (request, answer) = requests
            .iter()
            .find_map(|request| {
                client::verify(request, &response, &public)
                    .ok()
                    .map(|v| (request, v))
            })
            .expect("each response verifies against one request");
        assert!(response.len() <= request.len());
        verified.push(answer);
    }
    let after = unix_now();
    for answer in &verified {
        assert!(answer.radius >= 1);
        let (low, high) = (
            answer.midpoint - u64::from(answer.radius),
            answer.midpoint + u64::from(answer.radius),
        );
        assert!(
            low <= after + 1 && before <= high + 1,
            "the signed time brackets this clock's"
        );
        assert!(answer.mint <= answer.midpoint && answer.midpoint <= answer.maxt);
    }
    let rfc = verified
        .iter()
        .filter(|v| v.version == Version::RFC)
        .count();
    assert_eq!(rfc, 20, "version 1 wherever it was offered");
    let now = daemon.now();
    assert_eq!(now.answered(Service::Roughtime), 40);
    assert_eq!(now.event(Event::RoughtimeRfc), 20);
    assert_eq!(now.event(Event::RoughtimeDraft), 20);
    let signatures = now.event(Event::RoughtimeSignature);
    assert!(
        (3..=40).contains(&signatures),
        "one per batch and version: {signatures}"
    );
    daemon.stop().await;
}

/// `good` with its framing claiming 4 bytes more than it holds.
fn claiming_more(good: &[u8]) -> Vec<u8> {
    let mut bad = good.to_vec();
    let claimed = u32::from_le_bytes(bad[8..12].try_into().unwrap()) + 4;
    bad[8..12].copy_from_slice(&claimed.to_le_bytes());
    bad
}

/// `good` with its first tag's value offset changed to `offset`.
fn with_offset(good: &[u8], offset: u32) -> Vec<u8> {
    let mut bad = good.to_vec();
    bad[16..20].copy_from_slice(&offset.to_le_bytes());
    bad
}

#[tokio::test]
async fn bad_requests_are_dropped_and_counted_by_reason_and_good_ones_still_answered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roughtime.key");
    let daemon = Daemon::start(config(&path)).await;
    let public = public_key(&path);
    let other = hora_proto::roughtime::keys::LongTermKey::from_seed(&[1; 32])
        .unwrap()
        .public_key();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = daemon.roughtime();
    let good = client::request(&[7; 32], &[Version::RFC], Some(&public));

    let mut duplicate = good.clone();
    // The second tag (SRV) renamed VER: the same tag twice.
    duplicate[12 + 4 + 4 * 4 + 4..12 + 4 + 4 * 4 + 8].copy_from_slice(&Tag::VER.0.to_le_bytes());
    let mut oversized = good.clone();
    oversized.extend_from_slice(&[0; 400]);
    let cases: [(&str, Vec<u8>, Event); 7] = [
        ("short", good[..512].to_vec(), Event::RoughtimeUndersized),
        (
            "oversized: the framing's length is not the packet's",
            oversized,
            Event::RoughtimeMalformed,
        ),
        (
            "a tag's value past the end",
            with_offset(&good, 4000),
            Event::RoughtimeMalformed,
        ),
        ("a tag twice", duplicate, Event::RoughtimeMalformed),
        (
            "truncated: the framing claims more than arrived",
            claiming_more(&good),
            Event::RoughtimeMalformed,
        ),
        (
            "an unknown version",
            client::request(
                &[7; 32],
                &[Version(0x8000_0007), Version(0xc000_0000)],
                Some(&public),
            ),
            Event::RoughtimeVersion,
        ),
        (
            "another server's key",
            client::request(&[7; 32], &[Version::RFC], Some(&other)),
            Event::RoughtimeOtherServer,
        ),
    ];
    // Each bad request is followed by a good one: the first answer to
    // come back must be the good one's (the socket answers in order).
    for (i, (what, request, event)) in cases.iter().enumerate() {
        let before = daemon.now().event(*event);
        socket.send_to(request, server).await.unwrap();
        let next = client::request(&[i as u8; 32], &[Version::RFC], Some(&public));
        let response = common::ask(&socket, server, &next).await;
        assert!(
            client::verify(&next, &response, &public).is_ok(),
            "{what}: answered"
        );
        common::until(|| daemon.now().event(*event) == before + 1).await;
    }
    assert_eq!(
        daemon
            .now()
            .dropped(Service::Roughtime, DropReason::Invalid),
        cases.len() as u64
    );
    let response = common::ask(&socket, server, &good).await;
    client::verify(&good, &response, &public).expect("a good request after them verifies");
    daemon.stop().await;
}

#[tokio::test]
async fn the_key_made_at_the_first_start_signs_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roughtime.key");
    let first = Daemon::start(config(&path)).await;
    let public = public_key(&path);
    first.stop().await;
    let mut observed = config(&path);
    observed.metrics.bind = common::loopback().into();
    let second = Daemon::start(observed).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = client::request(&[3; 32], &[Version::RFC], None);
    let response = common::ask(&socket, second.roughtime(), &request).await;
    client::verify(&request, &response, &public).expect("signed by the same key");
    use base64::Engine as _;
    let status = common::status(second.metrics()).await;
    let served = base64::engine::general_purpose::STANDARD.encode(public);
    assert_eq!(
        status["roughtime"]["public_key"],
        served.as_str(),
        "/status names it"
    );
    second.stop().await;
}

#[tokio::test]
async fn a_readable_key_file_stops_the_start_with_one_line() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roughtime.key");
    std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = hora_server::Server::bind(&config(&path))
        .await
        .expect_err("refused");
    let line = format!("{:#}", anyhow_like(&error));
    assert!(line.contains("mode 0644"), "{line}");
}

/// The error and its causes on one line, as horad prints them.
fn anyhow_like(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[tokio::test]
async fn the_access_lists_and_the_rate_limit_apply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roughtime.key");
    let mut limited = config(&path);
    limited.ratelimit.rate = 0.001;
    limited.ratelimit.burst = 2.0;
    let daemon = Daemon::start(limited).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let request = client::request(&[3; 32], &[Version::RFC], None);
    for _ in 0..5 {
        socket.send_to(&request, daemon.roughtime()).await.unwrap();
    }
    common::until(|| daemon.now().received(Service::Roughtime) == 5).await;
    let now = daemon.now();
    assert_eq!(
        now.answered(Service::Roughtime),
        2,
        "the burst, then nothing"
    );
    assert_eq!(now.dropped(Service::Roughtime, DropReason::RateLimited), 3);
    for _ in 0..2 {
        let response = receive(&socket).await;
        client::verify(&request, &response, &public_key(&path)).expect("verifies");
    }
    daemon.stop().await;

    let mut denied = config(&path);
    denied.access.allow = vec!["10.0.0.0/8".parse().unwrap()];
    let daemon = Daemon::start(denied).await;
    socket.send_to(&request, daemon.roughtime()).await.unwrap();
    common::until(|| daemon.now().dropped(Service::Roughtime, DropReason::Denied) == 1).await;
    assert_eq!(daemon.now().answered(Service::Roughtime), 0);
    daemon.stop().await;
}

#[test]
fn the_request_s_tags_are_where_the_bad_cases_expect() {
    let good = client::request(&[7; 32], &[Version::RFC], Some(&[0; 32]));
    let message = wire::Message::parse(wire::unframe(&good).unwrap()).unwrap();
    assert_eq!(message.tag(0), Tag::VER);
    assert_eq!(message.tag(1), Tag::SRV);
    assert_eq!(message.len(), 5);
}
