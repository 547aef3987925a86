//! NTS on the real binaries: `horad` serving the key exchange and
//! authenticated SNTP, `hora sntp --nts` asking it, and SIGHUP serving a
//! renewed certificate from a new CA without a restart, while a seed
//! session and plain SNTP go on as if nothing happened.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;
#[path = "../crates/server/tests/common/pki.rs"]
mod pki;

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{hora, text, Horad};
use hora_proto::wire::{LOGIN_MENU, TIME_PREFIX};

fn hora_nts(ke: SocketAddr, ca: &Path) -> Output {
    hora(
        &[
            "sntp",
            "--nts",
            "--ca",
            ca.to_str().unwrap(),
            "--server",
            &ke.to_string(),
            "--timeout",
            "2s",
        ],
        "",
    )
}

/// Puts `from`'s files where horad reads its certificate, each replaced
/// whole (a rename), as certbot's deploy hook would.
fn install(pki: &pki::Pki, chain: &Path, key: &Path) {
    for (from, to) in [(&pki.chain, chain), (&pki.key, key)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
}

#[test]
fn sighup_serves_a_renewed_certificate_from_a_new_ca_and_the_udp_service_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (chain, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    let first = pki::make(dir.path(), "first");
    install(&first, &chain, &key);
    let keys = dir.path().join("nts-keys");
    let flags = [
        "--sntp-bind",
        "127.0.0.1:0",
        "--sntp-local-stratum",
        "10",
        "--nts-bind",
        "127.0.0.1:0",
        "--nts-certificate-chain",
        chain.to_str().unwrap(),
        "--nts-private-key",
        key.to_str().unwrap(),
        "--nts-keys",
        keys.to_str().unwrap(),
    ];
    let (horad, found) = Horad::start_serving(&flags, &["sntp", "nts-ke"]);
    let (sntp, ke) = (found[0], found[1]);
    let answered = hora_nts(ke, &first.ca);
    assert!(answered.status.success(), "{}", text(&answered.stderr));
    assert!(
        text(&answered.stdout).contains("authenticated: NTS"),
        "{}",
        text(&answered.stdout)
    );
    // A seed session opened before the reload.
    let seed = UdpSocket::bind("127.0.0.1:0").unwrap();
    seed.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buffer = [0u8; 2048];
    seed.send_to(b"login", horad.addr).unwrap();
    let (len, _) = seed.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..len], LOGIN_MENU.as_bytes());

    let second = pki::make(dir.path(), "second");
    install(&second, &chain, &key);
    horad.signal("HUP");
    let reloaded = horad.wait_for_line("configuration reloaded");
    assert!(reloaded.contains("nts certificate files"), "{reloaded}");
    let renewed = hora_nts(ke, &second.ca);
    assert!(
        text(&renewed.stdout).contains("authenticated: NTS"),
        "{}",
        text(&renewed.stderr)
    );
    let old_ca = hora_nts(ke, &first.ca);
    assert!(
        !old_ca.status.success(),
        "the old CA no longer verifies the server"
    );

    // A broken pair (the first key with the second chain) is refused: the
    // second keeps serving.
    std::fs::copy(&first.key, &key).unwrap();
    horad.signal("HUP");
    let refused = horad.wait_for_line("reload refused");
    assert!(refused.contains("NTS-KE certificate"), "{refused}");
    let still = hora_nts(ke, &second.ca);
    assert!(still.status.success(), "{}", text(&still.stderr));

    // The session and plain SNTP never noticed.
    seed.send_to(b"1", horad.addr).unwrap();
    let (len, _) = seed.recv_from(&mut buffer).unwrap();
    assert!(
        text(&buffer[..len]).starts_with(TIME_PREFIX),
        "{}",
        text(&buffer[..len])
    );
    let plain = hora(
        &["sntp", "--server", &sntp.to_string(), "--timeout", "2s"],
        "",
    );
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    assert!(!text(&plain.stdout).contains("authenticated"));
}

/// A client that refuses horad's certificate (here: it trusts another CA)
/// hears why in words, and horad's log says that the client refused its
/// certificate and what to check, where it said nothing before.
#[test]
fn a_refused_certificate_is_said_in_words_by_hora_and_logged_by_horad() {
    let dir = tempfile::tempdir().unwrap();
    let served = pki::make(dir.path(), "served");
    let other = pki::make(dir.path(), "other");
    let keys = dir.path().join("nts-keys");
    let flags = [
        "--sntp-bind",
        "127.0.0.1:0",
        "--nts-bind",
        "127.0.0.1:0",
        "--nts-certificate-chain",
        served.chain.to_str().unwrap(),
        "--nts-private-key",
        served.key.to_str().unwrap(),
        "--nts-keys",
        keys.to_str().unwrap(),
    ];
    let (horad, found) = Horad::start_serving(&flags, &["sntp", "nts-ke"]);
    let refused = hora_nts(found[1], &other.ca);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("the server's certificate is not signed by a CA hora trusts"),
        "{stderr}"
    );
    let logged = horad.wait_for_line("NTS-KE: TLS handshake failed");
    assert!(
        logged.contains("the client refused horad's certificate"),
        "{logged}"
    );
}
