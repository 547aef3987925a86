//! Helpers for the end-to-end tests: find the workspace's binaries, start
//! `horad` on an ephemeral loopback port, run `hora` with piped stdin.

#![allow(dead_code)] // Each test file uses a different part.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

/// A binary of the workspace, built by `cargo test --workspace` next to the
/// test executable (`target/<profile>/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}

/// A running `horad`, stopped when dropped.
pub struct Horad {
    pub child: Child,
    pub addr: SocketAddr,
    /// Its log lines after start-up, as they come.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Horad {
    /// Starts `horad` on 127.0.0.1, port 0, with extra flags.
    pub fn start(flags: &[&str]) -> Horad {
        Horad::start_serving(flags, &[]).0
    }

    /// Starts `horad` with extra flags, and returns with it the address of
    /// each standard protocol named in `protocols` (`sntp`, `time`,
    /// `daytime`), as its start-up lines report them.
    pub fn start_serving(flags: &[&str], protocols: &[&str]) -> (Horad, Vec<SocketAddr>) {
        // The built-in defaults unless the test names a file: never a
        // config.toml left in /etc/hora by something else.
        let config: &[&str] = if flags.contains(&"--config") {
            &[]
        } else {
            &["--config", "/dev/null"]
        };
        let mut child = Command::new(binary("horad"))
            .args(config)
            .args(["--bind", "127.0.0.1:0", "--log-format", "text"])
            .args(flags)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("horad starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut lines = BufReader::new(stderr).lines();
        let address = |line: &str, prefix: &str| -> Option<SocketAddr> {
            let rest = line.split(prefix).nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        };
        // Its first lines say where it listens; EOF ends the search if it dies.
        let addr = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| address(&line, " listening on "))
            .expect("horad reports its address");
        let mut found = Vec::new();
        for protocol in protocols {
            let prefix = format!("{protocol} listening on ");
            let at = lines
                .by_ref()
                .map_while(Result::ok)
                .find_map(|line| address(&line, &prefix))
                .expect("horad reports the protocol's address");
            found.push(at);
        }
        // Drained always (horad must never block on a full pipe), kept
        // for `wait_for_line`.
        let (sender, kept) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        (
            Horad {
                child,
                addr,
                lines: kept,
            },
            found,
        )
    }

    /// Sends it a signal (`"HUP"`, `"TERM"`) with kill(1).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name}");
    }

    /// Waits (at most ten seconds) for a log line containing `needle`;
    /// the line.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    }
}

impl Drop for Horad {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `hora` with `args`, feeding it `stdin`.
pub fn hora(args: &[&str], stdin: &str) -> Output {
    run_with_stdin(
        Command::new(binary("hora"))
            .args(args)
            .env_remove("HORA_SERVER"),
        stdin,
    )
}

/// Runs a command to completion with `stdin` piped in.
pub fn run_with_stdin(command: &mut Command, stdin: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut pipe = child.stdin.take().expect("piped stdin");
    pipe.write_all(stdin.as_bytes())
        .expect("stdin accepts the input");
    drop(pipe);
    child.wait_with_output().expect("the command finishes")
}

/// A port the OS just handed out on 127.0.0.1, free again now.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("an ephemeral port")
        .port()
}

/// Text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
