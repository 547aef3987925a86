//! The seed's own Python client and server (`tests/seed/`) against ours.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{free_port, hora, run_with_stdin, text, Horad};

fn seed(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/seed")
        .join(file)
}

/// The seed's server on `server_port`, answering to `client_port`, once it
/// is bound (its "Aguardando cliente..." line); the rest of its output.
fn seed_server(
    server_port: u16,
    client_port: u16,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut server = Command::new("python3")
        .arg("-u")
        .arg(seed("servidor.py"))
        .arg(server_port.to_string())
        .arg(client_port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 is installed (.ci/run installs it)");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    assert!(lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.starts_with("Aguardando cliente")));
    (server, lines)
}

#[test]
fn the_seeds_client_works_against_horad() {
    let horad = Horad::start(&[]);
    let own_port = free_port();
    let output = run_with_stdin(
        Command::new("python3")
            .arg(seed("cliente.py"))
            .arg(horad.addr.port().to_string())
            .arg(own_port.to_string()),
        "1\n1\n2\n",
    );
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.starts_with("\nSolicitando programa ao servidor...\n"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("Data e hora no servidor: ").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("Conexao encerrada às "), "{stdout}");
}

#[test]
fn the_seeds_client_quits_on_an_invalid_option_from_horad() {
    let horad = Horad::start(&[]);
    let output = run_with_stdin(
        Command::new("python3")
            .arg(seed("cliente.py"))
            .arg(horad.addr.port().to_string())
            .arg(free_port().to_string()),
        "x\n",
    );
    assert!(output.status.success());
    assert!(text(&output.stdout).contains("Opcao invalida. Conexao encerrada às "));
}

#[test]
fn hora_works_against_the_seeds_server() {
    let (server_port, client_port) = (free_port(), free_port());
    let (mut server, lines) = seed_server(server_port, client_port);
    let output = hora(
        &[
            "--server",
            &format!("127.0.0.1:{server_port}"),
            "--bind",
            &format!("127.0.0.1:{client_port}"),
        ],
        "1\n2\n",
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert_eq!(
        stdout.matches("Data e hora no servidor: ").count(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("\nConexao encerrada às "), "{stdout}");
    assert!(
        server.wait().unwrap().success(),
        "the seed's server quit cleanly"
    );
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.starts_with("Host logado")),
        "{rest:?}"
    );
}

/// Without `--bind`, the seed's server sends its menu where hora does not
/// listen, dies on the `login` hora sends again, and hora hears a refusal:
/// it says then that the seed's server answers only to 127.0.0.1:5010 and
/// how to bind there, not only that nothing listens.
#[test]
fn hora_without_the_seeds_reply_port_says_how_to_bind_it() {
    let (server_port, client_port) = (free_port(), free_port());
    let (mut server, _lines) = seed_server(server_port, client_port);
    let server_addr = format!("127.0.0.1:{server_port}");
    let output = hora(
        &[
            "--server",
            &server_addr,
            "--protocol",
            "seed",
            "--timeout",
            "5s",
            "time",
        ],
        "",
    );
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("no server is listening at {server_addr}")),
        "{stderr}"
    );
    assert!(
        stderr.contains("the seed's own server (servidor.py) answers only to 127.0.0.1:5010")
            && stderr.contains("--bind 127.0.0.1:5010"),
        "{stderr}"
    );
}

/// Every ASCII byte before and after a `1`, and a few datagrams more: hora
/// reads option 1 exactly where the seed's server, `int(data.decode())`,
/// reads 1 (where `int()` raises, the seed's server dies; hora calls it
/// an invalid option).
#[test]
fn options_read_as_pythons_int_reads_them_byte_by_byte() {
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    for byte in 0u8..128 {
        datagrams.push(vec![byte, b'1']);
        datagrams.push(vec![b'1', byte]);
    }
    for extra in [
        "+1",
        "-1",
        "0_1",
        "1_",
        " 01 ",
        "\t\n\x0b\x0c\r1",
        "1.0",
        "",
    ] {
        datagrams.push(extra.as_bytes().to_vec());
    }
    let hex: Vec<String> = datagrams
        .iter()
        .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let script = "import sys\n\
        for line in sys.stdin:\n\
        \x20   data = bytes.fromhex(line.strip())\n\
        \x20   try:\n\
        \x20       print(int(data.decode()))\n\
        \x20   except ValueError:\n\
        \x20       print('error')\n";
    let output = run_with_stdin(
        Command::new("python3").arg("-c").arg(script),
        &(hex.join("\n") + "\n"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let python = text(&output.stdout);
    let answers: Vec<&str> = python.lines().collect();
    assert_eq!(answers.len(), datagrams.len(), "{python}");
    for (datagram, python) in datagrams.iter().zip(answers) {
        let hora = hora_proto::request::parse(datagram);
        assert_eq!(
            hora == Ok(hora_proto::request::Request::Time),
            python == "1",
            "{datagram:?}: Python's int() says {python}, hora {hora:?}"
        );
    }
}
