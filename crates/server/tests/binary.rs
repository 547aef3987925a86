//! The real `horad` binary: exit codes and messages for bad configuration
//! and a busy port, and a clean shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

#[path = "common/pki.rs"]
mod pki;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hora_proto::wire::{LOGIN_MENU, SHUTDOWN_NOTICE};

fn horad() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_horad"));
    command.env_remove("RUST_LOG");
    command
}

fn run(command: &mut Command) -> Output {
    command.stdin(Stdio::null()).output().unwrap()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_unknown_key_exits_2_with_one_line_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    std::fs::write(&path, "idle_timeout = \"10s\"\nbnd = \"127.0.0.1:0\"\n").unwrap();
    let output = run(horad().arg("--config").arg(&path));
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("horad: {}:2:1: ", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `bnd`"), "{stderr}");
}

#[test]
fn a_bad_value_or_a_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    std::fs::write(&path, "max_sessions = 0\n").unwrap();
    let output = run(horad().arg("--config").arg(&path));
    assert_eq!(output.status.code(), Some(2));
    let expected = format!(
        "{}:1:1: `max_sessions` must be 1 to 4000000",
        path.display()
    );
    assert!(
        stderr_of(&output).contains(&expected),
        "{}",
        stderr_of(&output)
    );

    let output = run(horad().arg("--config").arg(dir.path().join("missing.toml")));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("missing.toml: "));
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    let output = run(horad().args(["--idle-timeout", "soon"]));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr_of(&output).contains("--idle-timeout"));
}

#[test]
fn a_busy_port_exits_3_with_one_clear_line() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(horad()
        .current_dir(dir.path())
        .args(["--bind", &addr.to_string()]));
    // 3: a socket that can't be bound (the unit's start limit, not an
    // endless restart every 2 s).
    assert_eq!(output.status.code(), Some(3));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("horad: cannot bind {addr}: ")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "said once: {stderr}");
}

/// A port below 1024 without CAP_NET_BIND_SERVICE: the one line says the
/// capability and the unit's two lines that grant it. (As root, the test
/// drops to `nobody` with every capability gone, as the unit runs it.)
#[test]
fn a_privileged_port_refused_names_the_capability_and_the_units_two_lines() {
    // The effective uid: the second field of /proc/self/status's Uid line.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    let mut command = if root {
        let mut setpriv = Command::new("setpriv");
        setpriv.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]);
        setpriv.arg(env!("CARGO_BIN_EXE_horad"));
        setpriv
    } else {
        horad()
    };
    command.env_remove("RUST_LOG").current_dir("/").args([
        "--config",
        "/dev/null",
        "--bind",
        "127.0.0.1:0",
        "--sntp-bind",
        "127.0.0.1:123",
    ]);
    let output = run(&mut command);
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("horad: cannot bind 127.0.0.1:123: Permission denied"),
        "{stderr}"
    );
    for needle in [
        "CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert_eq!(stderr.matches("os error").count(), 1, "said once: {stderr}");
}

/// Nothing is reported done before start-up can still fail: with a busy
/// port, no cookie key is written or logged as added before the exit.
#[test]
fn a_busy_port_exits_before_any_cookie_key_is_written_or_logged() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::make(dir.path(), "busy");
    let keys = dir.path().join("nts-keys");
    let output = run(horad()
        .args(["--config", "/dev/null", "--bind", "127.0.0.1:0"])
        .args(["--sntp-bind", &busy, "--nts-bind", "127.0.0.1:0"])
        .arg("--nts-certificate-chain")
        .arg(&pki.chain)
        .arg("--nts-private-key")
        .arg(&pki.key)
        .arg("--nts-keys")
        .arg(&keys));
    let stderr = stderr_of(&output);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(!stderr.contains("NTS cookie key"), "{stderr}");
    assert!(!keys.exists(), "a key file was written before the exit");
}

#[test]
fn an_sntp_port_another_horad_holds_exits_3_though_sntp_shares_its_port_with_its_own_socket() {
    // The SNTP socket is bound with SO_REUSEPORT (for the send-only socket
    // beside it): a second horad, which sets it too, must still fail.
    use nix::sys::socket::{setsockopt, sockopt::ReusePort};
    let taken = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    setsockopt(&taken, ReusePort, &true).unwrap();
    taken
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let addr = taken.local_addr().unwrap().as_socket().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = run(horad().current_dir(dir.path()).args([
        "--bind",
        "127.0.0.1:0",
        "--sntp-bind",
        &addr.to_string(),
    ]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr_of(&output));
    assert!(stderr_of(&output).starts_with(&format!("horad: cannot bind {addr}: ")));
}

#[test]
fn help_explains_each_option_with_its_default() {
    let output = run(horad().arg("--help"));
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--config",
        "--bind",
        "127.0.0.1:5005",
        "--idle-timeout",
        "10s",
        "--max-sessions",
        "--log-format",
        "HORAD_BIND",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    // Each bounded flag's range, as the checks and config.toml say it.
    for (flag, key) in [
        ("--idle-timeout", "idle_timeout"),
        ("--max-sessions ", "max_sessions"),
        ("--max-sessions-per-ip", "max_sessions_per_ip"),
        ("--workers", "workers"),
        ("--stats-interval", "stats_interval"),
        ("--sntp-local-stratum", "sntp.local_stratum"),
        ("--sntp-client-log", "sntp.client_log"),
    ] {
        let range = hora_server::config::range(key);
        let start = help
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} not in --help"));
        // Up to the next flag's line.
        let rest = &help[start + flag.len()..];
        let end = [rest.find("\n  -"), rest.find("\n      --")]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let entry = &rest[..end];
        assert!(
            !range.is_empty() && entry.contains(&format!("({range})")),
            "{flag}: {entry}"
        );
    }
}

/// Starts `horad` on an ephemeral port with logs in `format`, and returns it
/// with its log lines.
fn spawn_logging(format: &str) -> (Child, std::io::Lines<BufReader<ChildStderr>>) {
    let mut child = horad()
        .args(["--bind", "127.0.0.1:0", "--log-format", format])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    (child, BufReader::new(stderr).lines())
}

/// Starts `horad` on an ephemeral port and returns it with the address it
/// reports in its start-up line.
fn spawn_horad() -> (Child, SocketAddr) {
    let (child, lines) = spawn_logging("text");
    (child, address_then_drain(lines))
}

/// The address horad's start-up line reports (the search ends at EOF if it
/// dies); then the rest of its log is drained, so it never blocks on a full
/// pipe.
fn address_then_drain(mut lines: std::io::Lines<BufReader<ChildStderr>>) -> SocketAddr {
    let addr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.split("listening on ").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .expect("horad reports its address");
    std::thread::spawn(move || lines.for_each(drop));
    addr
}

#[test]
fn sigterm_notifies_sessions_and_exits_0_within_a_second() {
    let (mut child, addr) = spawn_horad();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buffer = [0u8; 2048];
    peer.send_to(b"login", addr).unwrap();
    let (len, _) = peer.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..len], LOGIN_MENU.as_bytes());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    let (len, _) = peer.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..len], SHUTDOWN_NOTICE.as_bytes());
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "still running after 1 s"
        );
        std::thread::yield_now();
    };
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (mut child, mut lines) = spawn_logging("json");
    let first = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let event: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(event["level"], "INFO");
    let addr: SocketAddr = event["fields"]["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the bound port is reported");
}

#[test]
fn durations_that_would_overflow_exit_2_at_once() {
    for (flag, value) in [
        ("--idle-timeout", "18446744073709551615s"),
        ("--stats-interval", "18446744073709551615s"),
        ("--stats-interval", "1ns"),
    ] {
        let started = Instant::now();
        let output = run(horad().args([
            "--config",
            "/dev/null",
            "--bind",
            "127.0.0.1:0",
            flag,
            value,
        ]));
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = stderr_of(&output);
        assert!(
            stderr.starts_with(&format!("horad: command line: `{flag}` must be")),
            "{stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

/// Starts `horad` with `configure`, stops it with SIGTERM once it listens,
/// and returns everything it logged.
fn logs_of_a_run(configure: impl FnOnce(&mut Command)) -> String {
    let mut command = horad();
    command
        .args(["--bind", "127.0.0.1:0", "--log-format", "text"])
        .env_remove("HORAD_CONFIG")
        .env_remove("HORAD_NO_RATELIMIT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    configure(&mut command);
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut logged = String::new();
    for line in lines.by_ref().map_while(Result::ok) {
        logged.push_str(&line);
        logged.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    for line in lines.map_while(Result::ok) {
        logged.push_str(&line);
        logged.push('\n');
    }
    child.wait().unwrap();
    logged
}

#[test]
fn a_config_toml_in_the_working_directory_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    // Were it read, horad would refuse to start (exit 2) or serve 9 s timeouts.
    std::fs::write(dir.path().join("config.toml"), "bnd = \"0.0.0.0:1\"\n").unwrap();
    let logged = logs_of_a_run(|command| {
        command.current_dir(dir.path());
    });
    assert!(logged.contains("listening on 127.0.0.1:"), "{logged}");
    assert!(!logged.contains("config.toml\n"), "{logged}");
}

#[test]
fn a_configuration_any_user_may_write_is_warned_of_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    std::fs::write(&path, "idle_timeout = \"10s\"\n").unwrap();
    let warning = "any user may write the configuration";
    let private = logs_of_a_run(|command| {
        command.arg("--config").arg(&path);
    });
    assert!(!private.contains(warning), "{private}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let open = logs_of_a_run(|command| {
        command.arg("--config").arg(&path);
    });
    assert!(
        open.contains(warning) && open.contains("mode=\"0666\""),
        "{open}"
    );
}

#[test]
fn boolean_variables_read_as_yes_no_true_false_1_0() {
    for (value, off) in [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("on", true),
        ("0", false),
        ("false", false),
        ("no", false),
        ("off", false),
    ] {
        let logged = logs_of_a_run(|command| {
            command.env("HORAD_NO_RATELIMIT", value);
        });
        assert!(logged.contains("listening on"), "{value}: {logged}");
        assert_eq!(
            logged.contains("rate limiting is off"),
            off,
            "HORAD_NO_RATELIMIT={value}: {logged}"
        );
    }
}

#[test]
fn check_config_accepts_the_shipped_file_and_says_what_it_would_serve() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config.toml");
    let output = run(horad().args(["--check-config", "--config", shipped]));
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("horad: configuration OK ("), "{stdout}");
    assert!(
        stdout.contains("seed protocol: udp 127.0.0.1:5005"),
        "{stdout}"
    );
    assert!(stdout.contains("sntp: off"), "{stdout}");
}

#[test]
fn check_config_refuses_broken_files_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    for (text, position) in [
        ("bnd = \"127.0.0.1:0\"\n", ":1:1: "),
        ("\n[ratelimit]\ntable_size = 16777216\n", ":3:1: "),
        ("idle_timeout = \"ten\"\n", ":1:16: "),
    ] {
        let path = dir.path().join("broken.toml");
        std::fs::write(&path, text).unwrap();
        let output = run(horad().arg("--check-config").arg("--config").arg(&path));
        assert_eq!(output.status.code(), Some(2), "{text:?}");
        let stderr = stderr_of(&output);
        let expected = format!("horad: {}{position}", path.display());
        assert!(stderr.starts_with(&expected), "{text:?}: {stderr}");
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn systemd_hears_ready_after_bind_and_stopping_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&path).unwrap();
    systemd
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = horad()
        .args(["--config", "/dev/null", "--bind", "127.0.0.1:0"])
        .env("NOTIFY_SOCKET", &path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = address_then_drain(BufReader::new(child.stderr.take().unwrap()).lines());
    let mut message = [0u8; 256];
    let len = systemd.recv(&mut message).unwrap();
    assert_eq!(&message[..len], b"READY=1\n");
    // Ready means bound: the socket answers at once.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    peer.send_to(b"login", addr).unwrap();
    let mut buffer = [0u8; 2048];
    let (len, _) = peer.recv_from(&mut buffer).unwrap();
    assert_eq!(&buffer[..len], LOGIN_MENU.as_bytes());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    // STATUS= lines may come first (one at start, then every 10 s).
    let stopping = loop {
        let len = systemd.recv(&mut message).unwrap();
        let text = String::from_utf8_lossy(&message[..len]).into_owned();
        if !text.starts_with("STATUS=sessions open: ") {
            break text;
        }
    };
    assert_eq!(stopping, "STOPPING=1\n");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn json_summary_counters_are_numbers() {
    let mut child = horad()
        .args([
            "--config",
            "/dev/null",
            "--bind",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    assert!(listening.contains("listening on"), "{listening}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let stopped = lines
        .map_while(Result::ok)
        .find(|line| line.contains("\"stopped\""))
        .expect("a stopped line");
    child.wait().unwrap();
    let event: serde_json::Value = serde_json::from_str(&stopped).unwrap();
    for field in [
        "sessions_open",
        "received",
        "answered",
        "dropped",
        "logins",
        "ended_idle",
        // Why datagrams were dropped, one field a reason.
        "denied",
        "rate_limited",
        "invalid",
        "loop_guarded",
        "withheld",
        "overloaded",
        "unauthenticated",
    ] {
        assert!(event["fields"][field].is_u64(), "{field} in {stopped}");
    }
}

/// Reads `lines` until one contains `needle`; all lines read so far.
fn read_until(lines: &mut impl Iterator<Item = String>, needle: &str) -> String {
    let mut seen = String::new();
    for line in lines.by_ref() {
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(needle) {
            return seen;
        }
    }
    panic!("no line with {needle:?} in:\n{seen}");
}

/// horad on the file at `path`, its log lines, and the address it serves.
fn spawn_with_config(path: &std::path::Path) -> (Child, impl Iterator<Item = String>, SocketAddr) {
    let mut child = horad()
        .arg("--config")
        .arg(path)
        .env_remove("HORAD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let started = read_until(&mut lines, "listening on");
    let addr: SocketAddr = started
        .split("listening on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap();
    (child, lines, addr)
}

#[test]
fn sighup_applies_an_edited_config_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    let base = "bind = \"127.0.0.1:0\"\nstats_interval = \"0s\"\n";
    std::fs::write(&path, base).unwrap();
    let (mut child, mut lines, addr) = spawn_with_config(&path);
    let ask = |socket: &UdpSocket, datagram: &[u8]| -> Option<Vec<u8>> {
        socket.send_to(datagram, addr).unwrap();
        let mut buffer = [0u8; 2048];
        socket
            .recv_from(&mut buffer)
            .ok()
            .map(|(len, _)| buffer[..len].to_vec())
    };
    let kept = UdpSocket::bind("127.0.0.2:0").unwrap();
    let denied = UdpSocket::bind("127.0.0.3:0").unwrap();
    for socket in [&kept, &denied] {
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        assert_eq!(
            ask(socket, b"login").as_deref(),
            Some(LOGIN_MENU.as_bytes())
        );
    }
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
    };
    // A newly denied network and a new log level, while both sessions are open.
    std::fs::write(
        &path,
        format!("{base}[log]\nlevel = \"debug\"\n[access]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.3/32\"]\n"),
    )
    .unwrap();
    assert!(hup().success());
    let reloaded = read_until(&mut lines, "configuration reloaded");
    assert!(
        reloaded.contains("log.level") && reloaded.contains("access.deny"),
        "{reloaded}"
    );
    // The kept session survived and is served; time is now logged at debug.
    let time = ask(&kept, b"1").expect("the kept session is answered");
    assert!(time.starts_with(b"\nData e hora no servidor: "), "{time:?}");
    read_until(&mut lines, "time served");
    // The denied source gets nothing now (its session stays until it idles).
    denied
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert_eq!(ask(&denied, b"1"), None);
    // A broken edit is refused; the running configuration stays.
    std::fs::write(&path, "bind = \n").unwrap();
    assert!(hup().success());
    let refused = read_until(&mut lines, "reload refused");
    assert!(refused.contains("hora.toml:1:"), "{refused}");
    // So is a new address to bind.
    std::fs::write(&path, "bind = \"127.0.0.1:1\"\n").unwrap();
    assert!(hup().success());
    read_until(&mut lines, "addresses to bind change only at restart");
    assert!(
        ask(&kept, b"1").is_some(),
        "still served with the running config"
    );
    assert_eq!(ask(&denied, b"1"), None, "the deny rule still holds");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// A client asking the time every few milliseconds from its own thread
/// until told to stop: how many requests it sent, how many got an answer,
/// and the slowest round trip.
fn paced_client(
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u32, u32, Duration)> {
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.4:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut buffer = [0u8; 2048];
        socket.send_to(b"login", addr).unwrap();
        socket.recv_from(&mut buffer).unwrap();
        let (mut sent, mut answered, mut slowest) = (0, 0, Duration::ZERO);
        // Bounded: at most 10,000 requests (50 s), whatever the test does.
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && sent < 10_000 {
            let asked = Instant::now();
            socket.send_to(b"1", addr).unwrap();
            sent += 1;
            if socket.recv_from(&mut buffer).is_ok() {
                answered += 1;
                slowest = slowest.max(asked.elapsed());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (sent, answered, slowest)
    })
}

/// Puts something at a path.
type PutAtPath = dyn Fn(&std::path::Path);

#[test]
fn a_fifo_directory_deleted_or_oversized_config_at_reload_is_refused_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    let base = "bind = \"127.0.0.1:0\"\nstats_interval = \"0s\"\n";
    std::fs::write(&path, base).unwrap();
    let (mut child, mut lines, addr) = spawn_with_config(&path);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = paced_client(addr, std::sync::Arc::clone(&stop));
    let hup = || {
        let status = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let cases: [(&str, &PutAtPath); 4] = [
        ("is a FIFO, not a regular file", &|p| {
            nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).unwrap();
        }),
        ("is a directory, not a regular file", &|p| {
            std::fs::create_dir(p).unwrap();
        }),
        ("No such file or directory", &|_| {}),
        ("more than the 16777216 a configuration may have", &|p| {
            std::fs::File::create(p)
                .unwrap()
                .set_len(16 * 1024 * 1024 + 1)
                .unwrap();
        }),
    ];
    for (expected, put) in cases {
        std::fs::remove_file(&path).unwrap();
        put(&path);
        hup();
        let refused = read_until(&mut lines, "reload refused");
        let line = refused.lines().last().unwrap();
        assert!(line.contains(expected), "{line}");
        assert!(line.contains(&path.display().to_string()), "{line}");
        // Back to the file: the next reload reads it again.
        if path.is_dir() {
            std::fs::remove_dir(&path).unwrap();
        } else if path.symlink_metadata().is_ok() {
            std::fs::remove_file(&path).unwrap();
        }
        std::fs::write(&path, base).unwrap();
        hup();
        read_until(&mut lines, "configuration reloaded: nothing changed");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, answered, slowest) = client.join().unwrap();
    assert!(sent > 0);
    assert_eq!(answered, sent, "every paced request answered");
    assert!(slowest < Duration::from_millis(500), "slowest {slowest:?}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn check_config_reads_the_nts_files_and_refuses_a_mismatched_pair_or_missing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki::make(dir.path(), "first");
    let second = pki::make(dir.path(), "second");
    let keys = dir.path().join("nts-keys");
    let check = |chain: &std::path::Path, key: &std::path::Path, bind: bool| {
        let mut command = horad();
        command.args([
            "--check-config",
            "--config",
            "/dev/null",
            "--sntp-bind",
            "127.0.0.1:0",
        ]);
        command.arg("--nts-keys").arg(&keys);
        if bind {
            command.args(["--nts-bind", "127.0.0.1:0"]);
            command.arg("--nts-certificate-chain").arg(chain);
            command.arg("--nts-private-key").arg(key);
        }
        run(&mut command)
    };
    let good = check(&first.chain, &first.key, true);
    assert!(good.status.success(), "{}", stderr_of(&good));
    assert!(String::from_utf8_lossy(&good.stdout).contains("nts: key exchange tcp 127.0.0.1:0"));
    assert!(!keys.exists(), "--check-config writes nothing");
    let mismatched = check(&first.chain, &second.key, true);
    assert_eq!(mismatched.status.code(), Some(2));
    // In words, once: not rustls' `keys may not be consistent: KeyMismatch`.
    let said = stderr_of(&mismatched);
    assert!(
        said.contains("NTS-KE certificate")
            && said.contains("the private key is not the certificate's"),
        "{said}"
    );
    assert!(!said.contains("KeyMismatch"), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    // A key that can't be read: the OS's words once, not once a layer.
    let unreadable = check(&first.chain, &dir.path().join("no-such-key.pem"), true);
    let said = stderr_of(&unreadable);
    assert_eq!(unreadable.status.code(), Some(2), "{said}");
    assert_eq!(said.matches("os error").count(), 1, "{said}");
    // Certificates no client would take.
    let unservable = pki::unservable(dir.path());
    for (bad, why) in &unservable {
        let refused = check(&bad.chain, &bad.key, true);
        assert_eq!(refused.status.code(), Some(2), "{why}");
        let stderr = stderr_of(&refused);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    // At start, the same: one line, and 2, which the unit doesn't restart on.
    let started = run(horad()
        .args(["--config", "/dev/null", "--bind", "127.0.0.1:0"])
        .args(["--sntp-bind", "127.0.0.1:0", "--nts-bind", "127.0.0.1:0"])
        .arg("--nts-certificate-chain")
        .arg(&unservable[0].0.chain)
        .arg("--nts-private-key")
        .arg(&unservable[0].0.key)
        .arg("--nts-keys")
        .arg(dir.path().join("start-keys")));
    assert_eq!(started.status.code(), Some(2), "{}", stderr_of(&started));
    assert_eq!(
        stderr_of(&started).lines().count(),
        1,
        "{}",
        stderr_of(&started)
    );
    assert!(stderr_of(&started).contains("the certificate expired at"));
    // A key directory this host can't write (read-only even to root):
    // start would fail when the first key is due, so the check fails now.
    let read_only = run(horad()
        .args(["--check-config", "--config", "/dev/null"])
        .args(["--sntp-bind", "127.0.0.1:0", "--nts-bind", "127.0.0.1:0"])
        .arg("--nts-certificate-chain")
        .arg(&first.chain)
        .arg("--nts-private-key")
        .arg(&first.key)
        .args(["--nts-keys", "/proc/nts-keys"]));
    assert_eq!(read_only.status.code(), Some(2));
    assert!(
        stderr_of(&read_only).contains("/proc/nts-keys: cannot write"),
        "{}",
        stderr_of(&read_only)
    );
    // A private key any user may read, as sshd refuses one.
    use std::os::unix::fs::PermissionsExt as _;
    let exposed = pki::make(dir.path(), "exposed");
    std::fs::set_permissions(&exposed.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = check(&exposed.chain, &exposed.key, true);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr_of(&refused).contains("mode 0644 lets any user read this secret"),
        "{}",
        stderr_of(&refused)
    );
    // A host that only reads the keys needs the file.
    let missing = check(&first.chain, &first.key, false);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr_of(&missing).contains("NTS cookie keys"),
        "{}",
        stderr_of(&missing)
    );
}

#[test]
fn a_line_whose_kind_held_nothing_back_has_no_suppressed_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    std::fs::write(&path, "bind = \"127.0.0.1:0\"\n").unwrap();
    let (mut child, mut lines, addr) = spawn_with_config(&path);
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0u8; 2048];
    client.send_to(b"login", addr).unwrap();
    client.recv_from(&mut buffer).unwrap();
    let login = read_until(&mut lines, " login");
    let login = login.lines().last().unwrap_or_default().to_owned();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    assert!(login.contains("peer=127.0.0.1:"), "{login}");
    assert!(!login.contains("suppressed"), "{login}");
}

#[test]
fn check_config_into_a_closed_pipe_ends_quietly_as_cat_does() {
    let mut child = horad()
        .args(["--check-config", "--config", "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before horad writes (as `| head -c0` does).
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        matches!(output.status.code(), Some(0 | 141)),
        "{:?}: {stderr}",
        output.status
    );
}

#[test]
fn check_config_catches_what_would_fail_at_start_sockets_on_one_address_and_a_bad_rust_log() {
    let same = run(horad().args([
        "--check-config",
        "--config",
        "/dev/null",
        "--bind",
        "127.0.0.1:5005",
        "--sntp-bind",
        "0.0.0.0:5005",
    ]));
    assert_eq!(same.status.code(), Some(2));
    assert!(
        stderr_of(&same).contains("--sntp-bind"),
        "{}",
        stderr_of(&same)
    );
    let rust_log = run(horad()
        .args(["--check-config", "--config", "/dev/null"])
        .env("RUST_LOG", "chatty"));
    assert_eq!(rust_log.status.code(), Some(2));
    assert!(
        stderr_of(&rust_log).contains("RUST_LOG"),
        "{}",
        stderr_of(&rust_log)
    );
}

#[test]
fn under_journald_lines_carry_their_priority_and_no_timestamp_of_their_own() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stderr");
    let file = std::fs::File::create(&path).unwrap();
    let meta = file.metadata().unwrap();
    let mut child = horad()
        .args([
            "--config",
            "/dev/null",
            "--bind",
            "127.0.0.1:0",
            "--sntp-bind",
            "127.0.0.1:0",
        ])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut logged = String::new();
    while !logged.contains("sntp listening on") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        logged = std::fs::read_to_string(&path).unwrap();
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&path).unwrap();
    let listening = logged
        .lines()
        .find(|l| l.contains(" listening on "))
        .unwrap_or_default();
    assert!(listening.starts_with("<6>"), "info is <6>: {logged}");
    assert!(
        !listening.contains("202"),
        "no timestamp of its own: {listening}"
    );
    // The SNTP clock line is a warning while the kernel says unsynchronized.
    if let Some(clock) = logged
        .lines()
        .find(|l| l.contains("host clock not synchronized"))
    {
        assert!(clock.starts_with("<4>"), "a warning is <4>: {clock}");
    }
    // Elsewhere (no JOURNAL_STREAM) lines keep their timestamps.
    let plain = logs_of_a_run(|command| {
        command
            .args(["--config", "/dev/null"])
            .env_remove("JOURNAL_STREAM");
    });
    assert!(
        plain.lines().next().unwrap_or_default().starts_with("20"),
        "{plain}"
    );
}

#[test]
fn the_text_start_line_says_its_address_once() {
    let logged = logs_of_a_run(|command| {
        command
            .args(["--config", "/dev/null"])
            .env_remove("JOURNAL_STREAM");
    });
    let line = logged
        .lines()
        .find(|l| l.contains("listening on"))
        .unwrap_or_default();
    let addr = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("?");
    assert_eq!(line.matches(addr).count(), 1, "{line}");
}

#[test]
fn a_bad_value_from_a_variable_names_the_variable_not_the_command_line() {
    let output = run(horad()
        .args(["--check-config", "--config", "/dev/null"])
        .env("HORAD_LOG_LEVEL", "chatty"));
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("horad: environment: HORAD_LOG_LEVEL: "),
        "{stderr}"
    );
    let flag = run(horad().args([
        "--check-config",
        "--config",
        "/dev/null",
        "--log-level",
        "chatty",
    ]));
    assert!(
        stderr_of(&flag).starts_with("horad: command line: "),
        "{}",
        stderr_of(&flag)
    );
}

#[test]
fn two_sources_in_a_one_bucket_table_are_limited_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hora.toml");
    std::fs::write(
        &path,
        "bind = \"127.0.0.1:0\"\n[ratelimit]\nrate = 1.0\nburst = 40.0\ntable_size = 1\n",
    )
    .unwrap();
    let (mut child, lines, addr) = spawn_with_config(&path);
    std::thread::spawn(move || lines.for_each(drop));
    let sources = ["127.0.0.21:0", "127.0.0.22:0"].map(|a| std::net::UdpSocket::bind(a).unwrap());
    // 100 requests each, alternately, at once: every one would be answered
    // (a number from a peer without a session: "Sessao inexistente").
    for _ in 0..100 {
        for source in &sources {
            source.send_to(b"1", addr).unwrap();
        }
    }
    let answered = sources.map(|source| {
        source
            .set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let mut buffer = [0u8; 256];
        std::iter::from_fn(|| source.recv(&mut buffer).ok()).count()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    // One bucket of 40 (and a token a second) for both: the old table gave
    // each newcomer a full bucket, 200 answers in all.
    let together = answered[0] + answered[1];
    assert!((40..=45).contains(&together), "{answered:?} answered");
}

/// The nanoseconds `pid` has run on a CPU, all its threads together.
fn cpu_nanos(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn out_of_file_descriptors_the_listeners_wait_instead_of_spinning() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki::make(dir.path(), "a");
    let mut child = Command::new("bash")
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_horad"))
        .args([
            "--config",
            "/dev/null",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .args(["--metrics-bind", "127.0.0.1:0", "--nts-bind", "127.0.0.1:0"])
        .arg("--nts-certificate-chain")
        .arg(&pki.chain)
        .arg("--nts-private-key")
        .arg(&pki.key)
        .arg("--nts-keys")
        .arg(dir.path().join("nts-keys"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok);
    let address_after = |line: &str, marker: &str| -> SocketAddr {
        let rest = line.split(marker).nth(1).unwrap();
        rest.split(['/', ' ']).next().unwrap().parse().unwrap()
    };
    let metrics = address_after(
        &read_until(&mut lines, "metrics listening on"),
        "listening on http://",
    );
    let ke = address_after(
        &read_until(&mut lines, "nts-ke listening on"),
        "listening on ",
    );
    std::thread::spawn(move || lines.for_each(drop));
    // Each from an address of its own (127.0.5.x), so that no limit per
    // address closes them: horad holds what its 64 descriptors allow, the
    // kernel queues the rest.
    let held: Vec<_> = (0..200u32)
        .filter_map(|n| {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            let from = SocketAddr::from((std::net::Ipv4Addr::from(0x7F05_0001 + n), 0));
            socket.bind(&from.into()).ok()?;
            let to = if n % 2 == 0 { ke } else { metrics };
            socket.connect(&to.into()).ok()?;
            Some(socket)
        })
        .collect();
    assert_eq!(held.len(), 200, "the kernel queues what horad can't accept");
    let before = cpu_nanos(child.id());
    let window = Duration::from_secs(3);
    std::thread::sleep(window); // A measurement window, not a wait for an event.
    let used = cpu_nanos(child.id()) - before;
    drop(held);
    // Stopped before any assertion: a failed one leaves no horad behind.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exited = child.wait().unwrap();
    eprintln!(
        "horad ran {} us of CPU in {window:?} out of file descriptors",
        used / 1_000
    );
    assert!(
        used < window.as_nanos() as u64 / 20,
        "horad ran {:.0} ms of the {} s window out of file descriptors",
        used as f64 / 1e6,
        window.as_secs()
    );
    assert!(status.success() && exited.success());
}
