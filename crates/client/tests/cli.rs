//! The real `hora` binary's command line: help and bad input.
//! (Its conversations with `horad` are tested in the workspace's `tests/`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::process::{Command, Output, Stdio};

fn hora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hora"))
        .args(args)
        .env_remove("HORA_SERVER")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_bad_server_address_exits_2_with_one_line() {
    for bad in ["127.0.0.1:70000", "no such host.invalid"] {
        let output = hora(&["--server", bad, "time"]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!("hora: bad server address `{bad}`: ")),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// A name the resolver can't turn into an address may be the network's
/// fault (no resolver reachable), not the command line's: exit 1 as any
/// other failure to reach the server, and a script asking for JSON gets
/// its object, naming the server asked.
#[test]
fn a_name_that_does_not_resolve_exits_1_with_the_json_error_object() {
    for command in [&["time", "--json"][..], &["sntp", "--json"][..]] {
        let mut args = vec!["--server", "nosuch.invalid"];
        args.extend_from_slice(command);
        let output = hora(&args);
        assert_eq!(output.status.code(), Some(1), "{command:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with("hora: cannot resolve `nosuch.invalid`: "),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let object: serde_json::Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{command:?}: {e}: {:?}", output.stdout));
        assert_eq!(object["server"], "nosuch.invalid", "{object}");
        assert!(
            object["error"].as_str().unwrap().contains("cannot resolve"),
            "{object}"
        );
    }
}

#[test]
fn a_bad_timeout_is_a_usage_error() {
    let output = hora(&["--timeout", "never"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_names_the_defaults_and_the_seed_server_hint() {
    let output = hora(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "port 5005",
        "123 for `sntp`",
        "10s",
        "HORA_SERVER",
        "127.0.0.1:5010",
        "time",
        "sntp",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
