//! `hora`: the interactive client, or `hora time` for scripts.
//!
//! Exit status: 0 when the session ended normally (or the time was printed),
//! 1 when the server was silent, refused or failed, 2 for a bad command line
//! or server address.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use hora_client::cli::{default_bind, resolve_server, Args, Command};
use hora_client::exchange::Exchange;
use hora_client::interactive::{self, Ending};
use hora_client::one_shot;
use hora_proto::ClosedReason;

fn main() -> ExitCode {
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
    let server = match resolve_server(&args.server).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("hora: {error}");
            return ExitCode::from(2);
        }
    };
    match talk(&args, server).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hora: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn talk(args: &Args, server: std::net::SocketAddr) -> anyhow::Result<ExitCode> {
    let bind = args.bind.unwrap_or_else(|| default_bind(server));
    let exchange = Exchange::connect(bind, server, args.timeout)
        .await
        .with_context(|| format!("cannot bind {bind} to talk to {server}"))?;
    match args.command {
        Some(Command::Time { json }) => {
            let time = one_shot::fetch_time(&exchange).await?;
            if json {
                println!("{}", time.json(server));
            } else {
                println!("{}", time.line());
            }
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut input = tokio::io::BufReader::new(tokio::io::stdin());
            let mut output = tokio::io::stdout();
            let interrupt = async {
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let ending = interactive::run(&exchange, &mut input, &mut output, interrupt).await?;
            Ok(match ending {
                Ending::Closed(
                    ClosedReason::Refused | ClosedReason::NoSession | ClosedReason::Shutdown,
                ) => ExitCode::FAILURE,
                Ending::Closed(_) | Ending::InputEnded => ExitCode::SUCCESS,
            })
        }
    }
}
