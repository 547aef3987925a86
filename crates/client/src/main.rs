//! `hora`: the interactive client, `hora time` for scripts, `hora sntp` for
//! any NTP server.
//!
//! Exit status: 0 when the session ended normally or a time was obtained; 1
//! when the server was silent, refused, ended the session on an invalid
//! option, idled it out, shut down, or gave no valid time, or the server's
//! name did not resolve; 2 for a bad command line or server address.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser as _;
use hora_client::cli::{resolve_servers, Args, Command, DEFAULT_PORT};
use hora_client::exchange::{Exchange, ExchangeError};
use hora_client::interactive::{self, Ending, GREETING, SERVER_SILENT};
use hora_client::{nts, one_shot, roughtime, sntp};
use hora_proto::ClosedReason;
use tokio::io::AsyncWriteExt as _;

fn main() -> ExitCode {
    if let Some(reason) = hora_proto::cpu::unsupported("hora") {
        eprintln!("{reason}");
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hora: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(args));
    // Reading stdin blocks a thread that cannot be cancelled; don't wait for it.
    runtime.shutdown_background();
    code
}

async fn run(args: Args) -> ExitCode {
    let servers = match resolve_servers(args.server.as_deref(), args.default_port()).await {
        Ok(servers) => servers,
        Err(error) => {
            let (code, asked) = (
                if error.is_usage() { 2 } else { 1 },
                error.given().to_owned(),
            );
            return fail(&args, &error.into(), &asked, code);
        }
    };
    match talk(&args, &servers).await {
        Ok(code) => code,
        Err(error) => {
            let asked = servers.first().map(ToString::to_string).unwrap_or_default();
            fail(&args, &error, &asked, 1)
        }
    }
}

/// Reports `error` once on standard error and, for a script that asked for
/// JSON (a failure included), as one object on standard output: `asked`
/// is the server it names where the error names none. Exit status `code`.
fn fail(args: &Args, error: &anyhow::Error, asked: &str, code: u8) -> ExitCode {
    eprintln!("hora: {}", hora_proto::report::one_line(error.as_ref()));
    let json = matches!(
        args.command,
        Some(
            Command::Sntp { json: true, .. }
                | Command::Time { json: true, .. }
                | Command::Roughtime { json: true, .. }
        )
    );
    // A bad command line is said on standard error only, as clap says its own.
    if json && code != 2 {
        say(&format!("{}\n", failure_json(error, asked)));
    }
    ExitCode::from(code)
}

/// What a failed `--json` command prints on standard output: the error, and
/// what the server's answer did say (its address, a leap indicator of 3, a
/// kiss code), when there was one.
fn failure_json(error: &anyhow::Error, asked: &str) -> serde_json::Value {
    use hora_proto::sntp::ReplyError;
    let mut object = serde_json::json!({ "error": hora_proto::report::one_line(error.as_ref()), "server": asked });
    // Protocol v2's word that the clock is not synchronized, as SNTP's.
    if let Some(roughtime::RoughtimeError::Unverified { server, reason }) = error.downcast_ref() {
        object["server"] = server.to_string().into();
        object["verified"] = false.into();
        object["failed_check"] = reason.to_string().into();
        return object;
    }
    if let Some(one_shot::OneShotError::Unsynchronized { server }) = error.downcast_ref() {
        object["leap"] = 3.into();
        object["server"] = server.to_string().into();
        return object;
    }
    let server = match error.downcast_ref::<sntp::SntpError>() {
        Some(sntp::SntpError::NoTime { server, reason }) => {
            match reason {
                ReplyError::Unsynchronized => object["leap"] = 3.into(),
                ReplyError::KissOfDeath(code) => {
                    object["stratum"] = 0.into();
                    object["kiss"] = String::from_utf8_lossy(code).trim_end_matches('\0').into();
                }
                ReplyError::NotAReply | ReplyError::NotOurs => {}
            }
            Some(*server)
        }
        Some(sntp::SntpError::Timeout { server, .. } | sntp::SntpError::Refused(server)) => {
            Some(*server)
        }

        _ => {
            use hora_client::exchange::ExchangeError;
            let exchange = error.downcast_ref::<ExchangeError>().or_else(|| {
                match error.downcast_ref::<one_shot::OneShotError>() {
                    Some(one_shot::OneShotError::Exchange(exchange)) => Some(exchange),
                    _ => None,
                }
            });
            match exchange {
                Some(
                    ExchangeError::Timeout { server, .. } | ExchangeError::Refused { server, .. },
                ) => Some(*server),
                _ => None,
            }
        }
    };
    if let Some(server) = server {
        object["server"] = server.to_string().into();
    }
    object
}

async fn talk(args: &Args, servers: &[SocketAddr]) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(Command::Sntp {
            json,
            count,
            nts: true,
            ca,
        }) => {
            let host = hora_client::cli::host_of(args.server.as_deref());
            let session = nts::key_exchange(&host, servers, ca.as_deref(), args.timeout).await?;
            let ntp = session.ntp.clone();
            let mut authenticated = nts::Authenticated::new(session);
            let measured =
                sntp::query_with(&mut authenticated, &ntp, args.bind, args.timeout, *count).await?;
            if *json {
                say(&format!("{}\n", measured.json()));
            } else {
                say(&measured.lines());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Sntp { json, count, .. }) => {
            let (json, count) = (*json, *count);
            if servers
                .iter()
                .any(|server| server.port() == hora_client::cli::DEFAULT_PORT)
            {
                // HORA_SERVER=host:5005, meant for the seed's protocol.
                eprintln!(
                    "hora: port {} is the seed protocol's, not NTP's (123); asking it anyway",
                    hora_client::cli::DEFAULT_PORT
                );
            }
            let measured = sntp::query(servers, args.bind, args.timeout, count).await?;
            say_which_answered(servers, measured.server);
            if json {
                say(&format!("{}\n", measured.json()));
            } else {
                say(&measured.lines());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Roughtime { key, json }) => {
            let measured = roughtime::query(servers, args.bind, args.timeout, *key).await?;
            say_which_answered(servers, measured.server);
            if *json {
                say(&format!("{}\n", measured.json()));
            } else {
                say(&measured.lines());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Time { json, .. }) => {
            let json = *json;
            let (exchange, login) =
                Exchange::open_session(servers, args.bind, args.timeout, args.session_protocol())
                    .await
                    .inspect_err(|error| seed_server_hint(error, args.bind))?;
            say_which_answered(servers, exchange.server());
            let time = one_shot::fetch_time_after(&exchange, &login).await?;
            if json {
                say(&format!("{}\n", time.json(exchange.server())));
            } else {
                say(&format!("{}\n", time.line()));
            }
            Ok(ExitCode::SUCCESS)
        }
        None => interactive_session(args, servers).await,
    }
}

/// The seed's conversation with a person, logging in at the first address
/// that does not refuse.
async fn interactive_session(args: &Args, servers: &[SocketAddr]) -> anyhow::Result<ExitCode> {
    let mut output = tokio::io::stdout();
    output.write_all(GREETING.as_bytes()).await?;
    output.flush().await?;
    let opened =
        Exchange::open_session(servers, args.bind, args.timeout, args.session_protocol()).await;
    let (exchange, login) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            if matches!(error, ExchangeError::Timeout { .. }) {
                output.write_all(SERVER_SILENT.as_bytes()).await?;
                output.flush().await?;
            }
            seed_server_hint(&error, args.bind);
            return Err(error.into());
        }
    };
    say_which_answered(servers, exchange.server());
    let mut input = tokio::io::BufReader::new(tokio::io::stdin());
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let ending =
        interactive::converse(&exchange, login, &mut input, &mut output, interrupt).await?;
    Ok(match ending {
        Ending::Closed(
            ClosedReason::Refused
            | ClosedReason::InvalidOption
            | ClosedReason::NoSession
            | ClosedReason::Shutdown
            | ClosedReason::IdleTimeout,
        ) => ExitCode::FAILURE,
        Ending::Closed(_) | Ending::InputEnded => ExitCode::SUCCESS,
        // Logged out cleanly, but `hora && next` must not go on (as
        // shells take an interrupt: 128 + SIGINT).
        Ending::Interrupted => ExitCode::from(130),
    })
}

/// Where a `login` to this host went unanswered (silence at port 5005, or
/// a refusal only after it was sent again), says on standard error that the seed's
/// own server sends its answers to 127.0.0.1:5010, not back to the port
/// asked from, and how to bind there: the most likely cause, as it dies on
/// the second `login` and the refusal alone would say nothing listens.
fn seed_server_hint(error: &ExchangeError, bind: Option<SocketAddr>) {
    let server = match error {
        ExchangeError::Timeout { server, .. } if server.port() == DEFAULT_PORT => server,
        ExchangeError::Refused {
            server,
            after_silence: true,
        } => server,
        _ => return,
    };
    let seeds_reply_to = SocketAddr::from(([127, 0, 0, 1], 5010));
    if server.ip().is_loopback() && bind != Some(seeds_reply_to) {
        eprintln!(
            "hora: the seed's own server (servidor.py) answers only to {seeds_reply_to}: \
             if it is what listens at {server}, run hora with --bind {seeds_reply_to}"
        );
    }
}

/// When an earlier address refused or stayed silent and a later one
/// answered, says which did (on standard error, so scripts reading the
/// time are not disturbed).
fn say_which_answered(servers: &[SocketAddr], answered: SocketAddr) {
    if servers.first() != Some(&answered) {
        let passed: Vec<String> = servers
            .iter()
            .take_while(|addr| **addr != answered)
            .map(ToString::to_string)
            .collect();
        eprintln!(
            "hora: {} did not answer; {answered} answered",
            passed.join(", ")
        );
    }
}

/// Writes `text` to standard output. A reader that went away (`hora time |
/// head -c0`) ends hora quietly as it ends `cat`: exit status 141 (128 +
/// SIGPIPE), no panic.
fn say(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("hora: cannot write the answer: {error}");
        std::process::exit(1);
    }
}
