//! `hora` against `horad`, both the real binaries, over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{hora, text, Horad};
use hora_proto::wire::{LOGIN_MENU, SESSION_CLOSED, TIME_MENU, TIME_PREFIX};

/// Serves the host's clock as a local one (`local_stratum`): v2's time
/// answers then carry a time `hora time` takes, where an unsynchronized
/// host clock (a CI container's) is otherwise reported as such.
const LOCAL_CLOCK: [&str; 2] = ["--sntp-local-stratum", "10"];

/// The last line: `<text> às HH:MM:SS`.
fn assert_closing_line(stdout: &str, closing: &str) {
    let last = stdout.lines().last().unwrap_or_default();
    let time = last
        .strip_prefix(&format!("{closing} às "))
        .unwrap_or_else(|| panic!("last line is {last:?}"));
    assert_eq!(time.len(), 8, "{last:?}");
}

#[test]
fn hora_plays_the_seeds_menu_through_piped_stdin() {
    let horad = Horad::start(&[]);
    let output = hora(&["--server", &horad.addr.to_string()], "1\n1\n2\n");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with("\nSolicitando programa ao servidor...\n"),
        "{stdout}"
    );
    assert!(stdout.contains(LOGIN_MENU), "{stdout}");
    assert_eq!(
        stdout.matches("\nData e hora no servidor: ").count(),
        2,
        "{stdout}"
    );
    assert_eq!(stdout.matches(TIME_MENU).count(), 2, "{stdout}");
    assert_closing_line(&stdout, "Conexao encerrada");
}

#[test]
fn an_invalid_option_ends_the_session_as_in_the_seed_and_exits_1() {
    let horad = Horad::start(&[]);
    for option in ["9", "3", "abc"] {
        let output = hora(
            &["--server", &horad.addr.to_string()],
            &format!("{option}\n"),
        );
        // The server ended the session on an error: not a clean logout.
        assert_eq!(output.status.code(), Some(1), "{option}");
        assert_closing_line(&text(&output.stdout), "Opcao invalida. Conexao encerrada");
    }
}

#[test]
fn end_of_input_logs_out_and_exits_0() {
    let horad = Horad::start(&[]);
    let output = hora(&["--server", &horad.addr.to_string()], "");
    assert_eq!(output.status.code(), Some(0));
    assert_closing_line(&text(&output.stdout), "Conexao encerrada");
}

#[test]
fn hora_time_prints_one_iso_line() {
    let horad = Horad::start(&LOCAL_CLOCK);
    let before = chrono::Local::now().naive_local();
    let output = hora(&["--server", &horad.addr.to_string(), "time"], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let served = chrono::NaiveDateTime::parse_from_str(stdout.trim(), "%Y-%m-%dT%H:%M:%S").unwrap();
    let drift = (served - before).num_seconds().abs();
    assert!(drift <= 2, "server time {served} vs local {before}");
}

#[test]
fn hora_time_json_has_time_rtt_and_server() {
    let horad = Horad::start(&LOCAL_CLOCK);
    let output = hora(&["--server", &horad.addr.to_string(), "time", "--json"], "");
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["server"], horad.addr.to_string());
    assert!(json["server_time"].as_str().unwrap().contains('T'));
    assert!(json["server_time_text"].as_str().unwrap().contains(", "));
    let rtt = json["rtt_ms"].as_f64().unwrap();
    assert!((0.0..1000.0).contains(&rtt), "{rtt}");
}

#[test]
fn hora_time_fails_with_one_line_when_refused() {
    let horad = Horad::start(&["--max-sessions", "1", "--sntp-local-stratum", "10"]);
    let squatter = UdpSocket::bind("127.0.0.1:0").unwrap();
    squatter
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    squatter.send_to(b"login", horad.addr).unwrap();
    squatter.recv_from(&mut [0u8; 512]).unwrap();
    // A session that has asked for the time is never displaced.
    squatter.send_to(b"1", horad.addr).unwrap();
    squatter.recv_from(&mut [0u8; 512]).unwrap();
    let server = horad.addr.to_string();
    let output = hora(&["--server", &server, "--protocol", "seed", "time"], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("Servidor lotado. Conexao encerrada"),
        "{stderr}"
    );
    // Protocol v2's sessions are counted apart: the seed's full table
    // keeps none out.
    let output = hora(&["--server", &server, "time"], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
}

#[test]
fn v2_time_is_served_when_forged_seed_sessions_fill_the_victims_address() {
    // Rate limiting off: these 200 datagrams come at once, not refreshed
    // slowly under the limit as a patient forger would send them.
    let horad = Horad::start(&[
        "--max-sessions-per-ip",
        "100",
        "--no-ratelimit",
        "--sntp-local-stratum",
        "10",
    ]);
    // 100 sessions from this address that log in and ask, as a forger
    // refreshing them would: the seed's protocol can't tell them from
    // 100 users behind one NAT.
    let forged: Vec<UdpSocket> = (0..100)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            socket.connect(horad.addr).unwrap();
            for request in [&b"login"[..], b"1"] {
                socket.send(request).unwrap();
                socket.recv(&mut [0u8; 512]).unwrap();
            }
            socket
        })
        .collect();
    let server = horad.addr.to_string();
    let seed = hora(&["--server", &server, "--protocol", "seed", "time"], "");
    assert_eq!(seed.status.code(), Some(1));
    assert!(
        text(&seed.stderr).contains("Servidor lotado"),
        "{}",
        text(&seed.stderr)
    );
    let v2 = hora(
        &["--server", &server, "--protocol", "v2", "time", "--json"],
        "",
    );
    assert_eq!(v2.status.code(), Some(0), "{}", text(&v2.stderr));
    let json: serde_json::Value = serde_json::from_slice(&v2.stdout).unwrap();
    assert_eq!(json["protocol"], "v2");
    drop(forged);
}

#[test]
fn v2_offset_agrees_with_sntp_against_the_same_horad() {
    let (horad, addrs) = Horad::start_serving(
        &["--sntp-bind", "127.0.0.1:0", "--sntp-local-stratum", "10"],
        &["sntp"],
    );
    let (server, sntp) = (horad.addr.to_string(), addrs[0].to_string());
    // The sample with the least delay of a few, for each: a scheduling
    // hiccup in one run moves its offset by half of it.
    let best = |args: &[&str]| {
        (0..5)
            .map(|_| {
                let output = hora(args, "");
                assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
                let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
                (
                    json["delay_s"].as_f64().unwrap(),
                    json["offset_s"].as_f64().unwrap(),
                )
            })
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
    };
    let (v2_delay, v2_offset) = best(&["--server", &server, "--protocol", "v2", "time", "--json"]);
    let (_, sntp_offset) = best(&["sntp", "--server", &sntp, "--json"]);
    assert!(v2_delay >= 0.0, "{v2_delay}");
    assert!(
        (v2_offset - sntp_offset).abs() < 100e-6,
        "v2 offset {v2_offset} vs SNTP {sntp_offset}"
    );
}

#[test]
fn hora_time_fails_with_one_line_on_a_silent_server() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let output = hora(&["--server", &addr, "--timeout", "500ms", "time"], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.trim(),
        format!("hora: no answer from {addr} within 500ms")
    );
}

#[test]
fn interactive_hora_reports_a_silent_server_as_the_seed_does() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let output = hora(&["--server", &addr, "--timeout", "300ms"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stdout).ends_with("\nConexão encerrada por inatividade do servidor.\n"));
}

#[test]
fn hora_resends_when_the_first_datagram_is_lost() {
    // A tiny responder that drops the very first datagram, then follows the
    // protocol well enough for `hora time`.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let responder = std::thread::spawn(move || {
        let mut buffer = [0u8; 512];
        let mut seen = Vec::new();
        while let Ok((len, peer)) = server.recv_from(&mut buffer) {
            let datagram = buffer[..len].to_vec();
            seen.push(datagram.clone());
            let reply: &[u8] = match (seen.len(), datagram.as_slice()) {
                (1, _) => continue, // lost
                (_, b"login") => LOGIN_MENU.as_bytes(),
                (_, b"1") => b"\nData e hora no servidor: 25/03/2022, 19:46:34\n",
                _ => b"Conexao encerrada",
            };
            server.send_to(reply, peer).unwrap();
            if datagram == b"2" {
                break;
            }
        }
        seen
    });
    let output = hora(
        &["--server", &addr.to_string(), "--protocol", "seed", "time"],
        "",
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout).trim(), "2022-03-25T19:46:34");
    let seen = responder.join().unwrap();
    assert_eq!(
        seen[..2],
        [b"login".to_vec(), b"login".to_vec()],
        "login was resent"
    );
}

#[test]
fn options_work_after_the_command_too() {
    let horad = Horad::start(&LOCAL_CLOCK);
    let server = horad.addr.to_string();
    for args in [
        &["time", "--server", server.as_str()][..],
        &["--server", server.as_str(), "time"],
        &["time", "--json", "-s", server.as_str(), "--timeout", "5s"],
    ] {
        let output = hora(args, "");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}

#[test]
fn json_round_trips_carry_no_float_noise() {
    let horad = Horad::start(&LOCAL_CLOCK);
    let output = hora(&["--server", &horad.addr.to_string(), "time", "--json"], "");
    let stdout = text(&output.stdout);
    let rtt = stdout
        .split("\"rtt_ms\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap();
    let decimals = rtt.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 3, "rtt_ms {rtt} in {stdout}");
}

#[test]
fn a_closed_port_is_reported_at_once() {
    let port = common::free_port();
    let started = std::time::Instant::now();
    let output = hora(&["--server", &format!("127.0.0.1:{port}"), "time"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("connection refused"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn hora_sntp_measures_horad_as_ntpdate_would() {
    let (_horad, addrs) = Horad::start_serving(
        &["--sntp-bind", "127.0.0.1:0", "--sntp-local-stratum", "10"],
        &["sntp"],
    );
    let sntp = addrs[0].to_string();
    let output = hora(&["sntp", "--server", &sntp, "--json", "--count", "3"], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["server"], sntp.as_str());
    assert_eq!(json["stratum"], 10);
    assert_eq!(json["leap"], 0);
    assert_eq!(json["reference_id"], "127.127.1.1");
    assert_eq!(json["samples"], 3);
    // horad serves this host's clock: the offset is the measurement's noise.
    assert!(json["offset_s"].as_f64().unwrap().abs() < 0.001, "{json}");
    let served = chrono::DateTime::parse_from_rfc3339(json["server_time"].as_str().unwrap());
    assert!(served.is_ok(), "{json}");
    let lines = hora(&["sntp", "-s", &sntp], "");
    let stdout = text(&lines.stdout);
    assert!(
        stdout.starts_with(&format!("server {sntp}, stratum 10, offset ")),
        "{stdout}"
    );
}

#[test]
fn hora_sntp_reports_an_unsynchronized_horad_as_such() {
    let (_horad, addrs) = Horad::start_serving(&["--sntp-bind", "127.0.0.1:0"], &["sntp"]);
    let output = hora(&["sntp", "--server", &addrs[0].to_string()], "");
    let synchronized = hora_server::sys::host_clock().is_ok_and(|clock| clock.synchronized);
    if synchronized {
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    } else {
        assert_eq!(output.status.code(), Some(1));
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("not synchronized (leap indicator 3): no time"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty(), "no time is printed");
    }
}

#[test]
fn hora_sntp_reports_a_rate_kiss_of_death_as_such() {
    let dir = std::env::temp_dir().join(format!("hora-kod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, "[ratelimit]\nrate = 0.001\nburst = 1.0\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let (_horad, addrs) = Horad::start_serving(
        &[
            "--config",
            &config,
            "--sntp-bind",
            "127.0.0.1:0",
            "--sntp-local-stratum",
            "10",
        ],
        &["sntp"],
    );
    let sntp = addrs[0].to_string();
    let first = hora(&["sntp", "--server", &sntp], "");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let second = hora(&["sntp", "--server", &sntp], "");
    assert_eq!(second.status.code(), Some(1));
    let stderr = text(&second.stderr);
    assert!(stderr.contains("kiss-o'-death RATE: no time"), "{stderr}");
    // With --json, the failure is a JSON object on stdout too.
    let json = hora(&["sntp", "--server", &sntp, "--json"], "");
    assert_eq!(json.status.code(), Some(1));
    let object: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(object["kiss"], "RATE", "{object}");
    assert_eq!(object["stratum"], 0, "{object}");
    assert_eq!(object["server"], sntp, "{object}");
    assert!(
        object["error"].as_str().unwrap().contains("RATE"),
        "{object}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_json_command_still_prints_one_json_object() {
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for command in [&["time", "--json"][..], &["sntp", "--json"][..]] {
        let server = closed.to_string();
        let mut args = vec!["--server", &server];
        args.extend_from_slice(command);
        let output = hora(&args, "");
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        let object: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{command:?}: {e}: {:?}", text(&output.stdout)));
        assert!(
            object["error"].as_str().unwrap().contains("refused"),
            "{object}"
        );
        assert_eq!(object["server"], server, "{object}");
    }
}

/// A script reads `server` from every failure's object: a full server's
/// `Servidor lotado` and a local address that can't be bound too, and the
/// bind failure's cause is said once, not once for each layer that saw it.
#[test]
fn every_json_failure_names_the_server_and_says_its_cause_once() {
    let horad = Horad::start(&["--max-sessions", "1"]);
    let server = horad.addr.to_string();
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A session that has asked for the time is never displaced.
    for datagram in [&b"login"[..], b"1"] {
        holder.send_to(datagram, horad.addr).unwrap();
        holder.recv_from(&mut [0u8; 512]).unwrap();
    }
    let seed = ["--server", &server, "--protocol", "seed", "time", "--json"];
    let full = hora(&seed, "");
    let unbindable = hora(&[&seed[..], &["--bind", "192.0.2.1:0"]].concat(), "");
    for (what, output, says) in [
        ("full", full, "Servidor lotado"),
        ("unbindable", unbindable, "192.0.2.1:0"),
    ] {
        assert_eq!(output.status.code(), Some(1), "{what}");
        let stderr = text(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        let object: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{what}: {e}: {:?}", text(&output.stdout)));
        assert_eq!(object["server"], server.as_str(), "{what}: {object}");
        let error = object["error"].as_str().unwrap();
        assert!(error.contains(says), "{what}: {error}");
        // Each part of the line once: no cause repeated after itself.
        let parts: Vec<&str> = error.split(": ").collect();
        for part in &parts {
            assert_eq!(
                parts.iter().filter(|p| p == &part).count(),
                1,
                "{what}: {error}"
            );
        }
    }
}

#[test]
fn hora_time_into_a_closed_pipe_ends_with_141_as_cat_does_not_a_panic() {
    // The test is the server (the seed's protocol), so the reader is gone
    // before any answer leaves: no race with a fast horad under a busy CI.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = std::process::Command::new(common::binary("hora"))
        .args(["--server", &server.local_addr().unwrap().to_string()])
        .args(["--protocol", "seed", "time"])
        .env_remove("HORA_SERVER")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut buffer = [0u8; 64];
    let (_, hora) = server.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..5], b"login");
    drop(child.stdout.take());
    server.send_to(LOGIN_MENU.as_bytes(), hora).unwrap();
    let (len, _) = server.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..len], b"1");
    let time = format!("{TIME_PREFIX}07/12/2026, 20:00:00{TIME_MENU}");
    server.send_to(time.as_bytes(), hora).unwrap();
    // Its logout, answered as the seed's server answers it.
    if let Ok((len, _)) = server.recv_from(&mut buffer) {
        if &buffer[..len] == b"2" {
            let _ = server.send_to(SESSION_CLOSED.as_bytes(), hora);
        }
    }
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(output.status.code(), Some(141), "{stderr}");
}

#[test]
fn hora_sntp_at_the_seed_protocols_port_says_so() {
    let output = std::process::Command::new(common::binary("hora"))
        .args(["sntp", "--timeout", "300ms"])
        .env("HORA_SERVER", "127.0.0.1:5005")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("port 5005 is the seed protocol's, not NTP's (123)"),
        "{stderr}"
    );
}

#[test]
fn a_v2_session_shows_the_servers_idle_notice_at_once_and_exits_1() {
    let horad = Horad::start(&["--idle-timeout", "1s"]);
    let mut child = std::process::Command::new(common::binary("hora"))
        .args(["--server", &horad.addr.to_string(), "--protocol", "v2"])
        .env_remove("HORA_SERVER")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Standard input stays open and silent: the session idles out on the
    // server, whose notice (with the session's token) ends hora.
    let stdin = child.stdin.take().unwrap();
    let output = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("\nConexao encerrada por inatividade do cliente às "),
        "{stdout}"
    );
}

/// Protocol v2's sessions are counted where the seed's are: the summary
/// line names both, and the shutdown line says how many of each it tells.
#[test]
fn v2_sessions_are_named_in_the_summary_and_the_shutdown_line() {
    use hora_client::exchange::{Exchange, Protocol};
    // One worker: the shutdown line is one a worker, each counting its own.
    let horad = Horad::start(&["--stats-interval", "1s", "--workers", "1"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_session, _menu) = runtime
        .block_on(Exchange::open_session(
            &[horad.addr],
            None,
            Duration::from_secs(5),
            Protocol::V2,
        ))
        .unwrap();
    // Bounded: a summary a second, each waited for up to ten.
    let counted = (0..5)
        .map(|_| horad.wait_for_line("summary"))
        .find(|line| line.contains("v2_sessions_open=1"));
    assert!(counted.is_some(), "no summary counted the v2 session");
    horad.signal("TERM");
    let line = horad.wait_for_line("notifying open sessions");
    assert!(
        line.contains(" sessions=0 ") && line.contains(" v2_sessions=1"),
        "{line}"
    );
}

/// `hora time` over v2 reports the server's clock as `hora sntp` does: the
/// JSON carries `clock` and `leap`, and a server whose clock is not
/// synchronized gives no time (exit 1, the same words, `leap: 3`).
#[test]
fn hora_time_reports_the_servers_clock_state_as_hora_sntp_does() {
    let synchronized = hora_server::sys::host_clock().is_ok_and(|clock| clock.synchronized);
    let local = Horad::start(&["--sntp-local-stratum", "10"]);
    let output = hora(&["--server", &local.addr.to_string(), "time", "--json"], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let object: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = if synchronized {
        "synchronized"
    } else {
        "local"
    };
    assert_eq!(object["clock"], expected, "{object}");
    assert_eq!(object["leap"], 0, "{object}");
    if synchronized {
        return; // No unsynchronized server to be had on this host.
    }
    let guessing = Horad::start(&[]);
    let server = guessing.addr.to_string();
    for json in [false, true] {
        let mut args = vec!["--server", &server, "time"];
        if json {
            args.push("--json");
        }
        let output = hora(&args, "");
        assert_eq!(output.status.code(), Some(1), "json {json}");
        let stderr = text(&output.stderr);
        assert_eq!(
            stderr.trim(),
            format!("hora: {server}: the server's clock is not synchronized (leap indicator 3): no time")
        );
        if json {
            let object: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(
                (object["leap"].as_u64(), object["server"].as_str()),
                (Some(3), Some(server.as_str()))
            );
        } else {
            assert!(output.stdout.is_empty(), "no time is printed");
        }
    }
}

/// A reload after a change to keys that apply only at a restart says
/// which changed and that a restart applies them, not "nothing changed".
#[test]
fn a_reload_names_the_changed_keys_that_need_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    std::fs::write(&path, "workers = 1\nstats_interval = \"60s\"\n").unwrap();
    let horad = Horad::start(&["--config", path.to_str().unwrap()]);
    std::fs::write(&path, "workers = 2\nstats_interval = \"30s\"\n").unwrap();
    horad.signal("HUP");
    let line = horad.wait_for_line("configuration reloaded");
    assert!(!line.contains("nothing changed"), "{line}");
    assert!(
        line.contains("workers, stats_interval changed and take effect only at a restart"),
        "{line}"
    );
}
