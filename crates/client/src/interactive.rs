//! The interactive session: the seed's client, done right.
//!
//! Like the seed (its Figure 5), it announces itself, logs in, shows each
//! menu the server sends as the prompt, sends the user's line, and on a
//! closing reply prints it with the local time and stops. Unlike the seed it
//! resends lost requests, survives odd bytes, logs out cleanly when input
//! ends or the user presses Ctrl-C, and listens to the server while the
//! prompt waits: a closing message it sends on its own (the idle timeout,
//! a shutdown) is shown at once, in the same closing-line form.

use std::future::Future;
use std::time::Duration;

use hora_proto::v2::client::Offset;
use hora_proto::{ClosedReason, ServerMessage};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use crate::exchange::{Answer, Exchange, ExchangeError};

/// What the seed's client prints before it logs in.
pub const GREETING: &str = "\nSolicitando programa ao servidor...\n";

/// What the seed's client prints when the server goes silent.
pub const SERVER_SILENT: &str = "\nConexão encerrada por inatividade do servidor.\n";

/// How long to wait for the answer to the logout sent when input ends.
pub const LOGOUT_WAIT: Duration = Duration::from_secs(1);

/// How an interactive session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server closed the session (after `2`, an invalid option, ...).
    Closed(ClosedReason),
    /// Input ended; we logged out (or tried to).
    InputEnded,
    /// The user interrupted (Ctrl-C); we logged out (or tried to). The
    /// shell's convention is exit status 130.
    Interrupted,
}

/// Why the interactive session failed.
#[derive(Debug, thiserror::Error)]
pub enum InteractiveError {
    /// The server did not answer.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    /// The terminal could not be read or written.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Runs the seed's conversation between the user (`input`, `output`) and the
/// server. `interrupt` completes when the user asks to stop (Ctrl-C); it is
/// then handled as the end of input.
pub async fn run<I, O>(
    exchange: &Exchange,
    input: &mut I,
    output: &mut O,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, InteractiveError>
where
    I: AsyncBufRead + Unpin,
    O: AsyncWrite + Unpin,
{
    tokio::pin!(interrupt);
    write(output, GREETING).await?;
    let answer = match ask(exchange, b"login", output, &mut interrupt).await? {
        Some(answer) => answer,
        None => return log_out(exchange, output, Ending::Interrupted).await,
    };
    converse(exchange, answer, input, output, interrupt).await
}

/// The conversation after the answer to `login` (`first`), for a caller
/// that logged in itself (trying several addresses, say).
pub async fn converse<I, O>(
    exchange: &Exchange,
    first: Answer,
    input: &mut I,
    output: &mut O,
    interrupt: impl Future<Output = ()>,
) -> Result<Ending, InteractiveError>
where
    I: AsyncBufRead + Unpin,
    O: AsyncWrite + Unpin,
{
    tokio::pin!(interrupt);
    let mut answer = first;
    loop {
        let message = answer.message();
        if let ServerMessage::Closed { text, reason } = &message {
            write(output, &closing_line(text)).await?;
            return Ok(Ending::Closed(*reason));
        }
        match (&message, answer.offset) {
            (ServerMessage::Time { text, .. }, Some(offset)) => {
                write(output, &with_offset(text, &offset)).await?;
            }
            _ => write(output, message.text()).await?,
        }
        let mut line = String::new();
        let read = tokio::select! {
            read = input.read_line(&mut line) => read?,
            () = &mut interrupt => return log_out(exchange, output, Ending::Interrupted).await,
            // The server ended the session on its own: say so now, not at
            // the next key press.
            notice = exchange.closing_notice() => {
                answer = notice?;
                write(output, "\n").await?;
                continue;
            }
        };
        if read == 0 {
            return log_out(exchange, output, Ending::InputEnded).await;
        }
        let choice = line.strip_suffix('\n').unwrap_or(&line);
        let choice = choice.strip_suffix('\r').unwrap_or(choice);
        if choice.is_empty() {
            // A bare Enter is no option: the menu again, nothing sent (the
            // seed's server would end the session as an invalid option).
            continue;
        }
        answer = match ask(exchange, choice.as_bytes(), output, &mut interrupt).await? {
            Some(answer) => answer,
            None => return log_out(exchange, output, Ending::Interrupted).await,
        };
    }
}

/// Sends a request and waits for its answer, or for the user to interrupt
/// (`None`). Silence is reported to the user as the seed reports it.
async fn ask<O: AsyncWrite + Unpin>(
    exchange: &Exchange,
    datagram: &[u8],
    output: &mut O,
    interrupt: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Option<Answer>, InteractiveError> {
    let answer = tokio::select! {
        answer = exchange.request(datagram) => answer,
        () = interrupt => return Ok(None),
    };
    match answer {
        Ok(answer) => Ok(Some(answer)),
        Err(error) => {
            if matches!(error, ExchangeError::Timeout { .. }) {
                write(output, SERVER_SILENT).await?;
            }
            Err(error.into())
        }
    }
}

/// Sends `2` and shows the answer if it comes soon; the conversation ends
/// as `ending` says either way.
async fn log_out<O: AsyncWrite + Unpin>(
    exchange: &Exchange,
    output: &mut O,
    ending: Ending,
) -> Result<Ending, InteractiveError> {
    write(output, "\n").await?;
    if let Ok(answer) = exchange.request_within(b"2", LOGOUT_WAIT).await {
        write(output, &closing_line(answer.message().text())).await?;
    }
    Ok(ending)
}

/// A v2 time answer as shown: the server's text, its date line followed by
/// this clock's offset from the server's and the round trip, as `hora
/// sntp` says them (`offset +0.000012 s, delay 0.000085 s`).
fn with_offset(text: &str, offset: &Offset) -> String {
    let measured = format!(
        " (offset {:+.6} s, delay {:.6} s)",
        offset.offset, offset.delay
    );
    // The date line is the first after the leading newline.
    let end = text
        .get(1..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |at| at + 1);
    format!("{}{measured}{}", &text[..end], &text[end..])
}

/// The seed's last line: the server's text, then `às HH:MM:SS` local time.
fn closing_line(text: &str) -> String {
    format!("{text} às {}\n", chrono::Local::now().format("%H:%M:%S"))
}

async fn write<O: AsyncWrite + Unpin>(output: &mut O, text: &str) -> std::io::Result<()> {
    output.write_all(text.as_bytes()).await?;
    output.flush().await
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hora_proto::wire::{IDLE_NOTICE, INVALID_OPTION, LOGIN_MENU, SHUTDOWN_NOTICE, TIME_MENU};
    use tokio::io::BufReader;
    use tokio_test::io::Builder;

    use super::*;
    use crate::test_server::{exchange, TestServer};

    #[test]
    fn a_v2_time_line_says_the_offset_and_delay() {
        let text = format!("\nData e hora no servidor: 02/12/2026, 08:00:00{TIME_MENU}");
        let offset = Offset {
            offset: -0.000_012,
            delay: 0.000_085,
            server_time: 0.0,
            leap: 0,
            status: hora_proto::v2::ClockStatus::Synchronized,
        };
        assert_eq!(
            with_offset(&text, &offset),
            format!("\nData e hora no servidor: 02/12/2026, 08:00:00 (offset -0.000012 s, delay 0.000085 s){TIME_MENU}")
        );
    }

    fn never() -> std::future::Pending<()> {
        std::future::pending()
    }

    /// Runs a session against `server` with the mock terminal `input`, never
    /// interrupted; returns how it ended and what it printed.
    async fn converse(
        server: std::net::SocketAddr,
        input: tokio_test::io::Mock,
    ) -> (Result<Ending, InteractiveError>, String) {
        let mut input = BufReader::new(input);
        let mut output = Vec::new();
        let ending = run(&exchange(server).await, &mut input, &mut output, never()).await;
        (ending, String::from_utf8(output).unwrap())
    }

    /// Asserts the output ends with the seed's closing line for `text`.
    fn assert_closing_line(output: &str, text: &str) {
        let last = output.lines().last().unwrap();
        let time = last
            .strip_prefix(&format!("{text} às "))
            .unwrap_or_else(|| panic!("last line {last:?}"));
        assert!(
            chrono::NaiveTime::parse_from_str(time, "%H:%M:%S").is_ok(),
            "{last:?}"
        );
    }

    #[tokio::test]
    async fn plays_the_seeds_figure_5() {
        let server = TestServer::protocol().await;
        let input = Builder::new()
            .read(b"1\n")
            .read(b"1\n")
            .read(b"2\n")
            .build();
        let (ending, output) = converse(server.addr, input).await;
        assert_eq!(ending.unwrap(), Ending::Closed(ClosedReason::Logout));
        let time = "\nData e hora no servidor: 25/03/2022, 19:46:34";
        let expected_start = format!("{GREETING}{LOGIN_MENU}{time}{TIME_MENU}{time}{TIME_MENU}");
        assert!(output.starts_with(&expected_start), "{output}");
        assert_closing_line(&output, "Conexao encerrada");
        assert_eq!(server.received(), [&b"login"[..], b"1", b"1", b"2"]);
    }

    #[tokio::test]
    async fn a_bare_enter_shows_the_menu_again_and_sends_nothing() {
        let server = TestServer::protocol().await;
        let input = Builder::new()
            .read(b"\n")
            .read(b"\r\n")
            .read(b"2\n")
            .build();
        let (ending, output) = converse(server.addr, input).await;
        assert_eq!(ending.unwrap(), Ending::Closed(ClosedReason::Logout));
        assert_eq!(output.matches(LOGIN_MENU).count(), 3, "{output}");
        assert_closing_line(&output, "Conexao encerrada");
        assert_eq!(
            server.received(),
            [&b"login"[..], b"2"],
            "no empty option went out"
        );
    }

    #[tokio::test]
    async fn sends_the_line_without_its_line_ending() {
        let server = TestServer::protocol().await;
        let (ending, output) = converse(server.addr, Builder::new().read(b"3\r\n").build()).await;
        assert_eq!(ending.unwrap(), Ending::Closed(ClosedReason::InvalidOption));
        assert_closing_line(&output, INVALID_OPTION);
        assert_eq!(server.received(), [&b"login"[..], b"3"]);
    }

    #[tokio::test]
    async fn end_of_input_logs_out() {
        let server = TestServer::protocol().await;
        let (ending, output) = converse(server.addr, Builder::new().read(b"1\n").build()).await;
        assert_eq!(ending.unwrap(), Ending::InputEnded);
        assert_closing_line(&output, "Conexao encerrada");
        assert_eq!(server.received(), [&b"login"[..], b"1", b"2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_interrupt_at_the_prompt_logs_out() {
        let server = TestServer::protocol().await;
        // The user never types; Ctrl-C comes after a minute.
        let mut input = BufReader::new(Builder::new().wait(Duration::from_secs(3600)).build());
        let mut output = Vec::new();
        let interrupt = tokio::time::sleep(Duration::from_secs(60));
        let ending = run(
            &exchange(server.addr).await,
            &mut input,
            &mut output,
            interrupt,
        )
        .await
        .unwrap();
        assert_eq!(ending, Ending::Interrupted, "exit 130, as shells expect");
        assert_eq!(server.received(), [&b"login"[..], b"2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_reported_as_the_seed_does() {
        let server = TestServer::start(Box::new(|_| Vec::new())).await;
        let mut input = BufReader::new(Builder::new().build());
        let mut output = Vec::new();
        let error = run(
            &exchange(server.addr).await,
            &mut input,
            &mut output,
            never(),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            error,
            InteractiveError::Exchange(ExchangeError::Timeout { .. })
        ));
        assert_eq!(
            String::from_utf8(output).unwrap(),
            format!("{GREETING}{SERVER_SILENT}")
        );
    }

    #[tokio::test]
    async fn a_server_that_stops_answering_mid_session_is_reported() {
        let mut answered = false;
        let server = TestServer::start(Box::new(move |_| {
            if std::mem::replace(&mut answered, true) {
                Vec::new()
            } else {
                vec![LOGIN_MENU.as_bytes().to_vec()]
            }
        }))
        .await;
        let client = Exchange::connect(
            "127.0.0.1:0".parse().unwrap(),
            server.addr,
            Duration::from_millis(200),
        )
        .await
        .unwrap();
        let mut input = BufReader::new(Builder::new().read(b"1\n").build());
        let mut output = Vec::new();
        let error = run(&client, &mut input, &mut output, never())
            .await
            .unwrap_err();
        assert!(error.to_string().starts_with("no answer from "), "{error}");
        assert!(String::from_utf8(output).unwrap().ends_with(SERVER_SILENT));
    }

    /// A server that answers `login` with the menu and then, unasked, sends
    /// `notice` (as horad does at the idle timeout or at shutdown).
    async fn server_that_closes_on_its_own(notice: &'static str) -> SocketAddr {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buffer = [0u8; 64];
            let (_, peer) = socket.recv_from(&mut buffer).await.unwrap();
            socket.send_to(LOGIN_MENU.as_bytes(), peer).await.unwrap();
            // A stale duplicate first: ignored, as today.
            socket.send_to(LOGIN_MENU.as_bytes(), peer).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
            socket.send_to(notice.as_bytes(), peer).await.unwrap();
        });
        addr
    }

    #[tokio::test(start_paused = true)]
    async fn a_closing_notice_is_shown_without_a_key_press() {
        for (notice, reason) in [
            (IDLE_NOTICE, ClosedReason::IdleTimeout),
            (SHUTDOWN_NOTICE, ClosedReason::Shutdown),
        ] {
            let addr = server_that_closes_on_its_own(notice).await;
            // The user never types: the terminal stays silent for an hour.
            let (_keyboard, terminal) = tokio::io::duplex(64);
            let mut input = BufReader::new(terminal);
            let mut output = Vec::new();
            let started = tokio::time::Instant::now();
            let ending = run(&exchange(addr).await, &mut input, &mut output, never())
                .await
                .unwrap();
            assert_eq!(ending, Ending::Closed(reason));
            let waited = started.elapsed();
            assert!(
                waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
                "shown when it came, not at a key press: {waited:?}"
            );
            let output = String::from_utf8(output).unwrap();
            assert!(
                output.starts_with(&format!("{GREETING}{LOGIN_MENU}\n")),
                "{output}"
            );
            assert_closing_line(&output, notice);
        }
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_are_shown_lossily() {
        let server = TestServer::start(Box::new(|datagram| match datagram {
            b"login" => vec![b"menu \xff\n".to_vec()],
            _ => vec![b"Conexao encerrada \xfe".to_vec()],
        }))
        .await;
        let mut input = BufReader::new(Builder::new().read(b"2\n").build());
        let mut output = Vec::new();
        let ending = run(
            &exchange(server.addr).await,
            &mut input,
            &mut output,
            never(),
        )
        .await
        .unwrap();
        assert_eq!(ending, Ending::Closed(ClosedReason::Other));
        let output = String::from_utf8(output).unwrap();
        assert!(output.contains("menu \u{fffd}\n"), "{output}");
        assert_closing_line(&output, "Conexao encerrada \u{fffd}");
    }
}
