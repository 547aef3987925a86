//! `horad`: parse the command line, load the configuration, serve until a
//! signal. Exit status: 0 after a clean shutdown, 1 when the socket cannot be
//! bound, 2 for a bad configuration or command line. `--check-config` only
//! validates the configuration and says what it would serve.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use hora_server::cli::Args;
use hora_server::{logging, sys, Config, Server};
use tracing::info;

fn main() -> ExitCode {
    let args = Args::parse();
    let (config, source) = match args.config() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("horad: {error}");
            return ExitCode::from(2);
        }
    };
    let source = source.map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    if args.check_config {
        print!("horad: configuration OK ({source})\n{}", config.describe());
        return ExitCode::SUCCESS;
    }
    if let Err(error) = logging::init(&config.log) {
        eprintln!("horad: cannot set up logging: {error:#}");
        return ExitCode::from(2);
    }
    match serve(config, &source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("horad: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config, source: &str) -> anyhow::Result<()> {
    // One thread: the receive loop is one task, and a work-stealing runtime
    // only adds cross-thread hand-offs to it (measured in BENCHMARKS.md).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = Server::bind(&config).await?;
        let addr = server
            .local_addr()
            .context("cannot read the bound address")?;
        if !server.limits_rate() {
            tracing::warn!("per-source rate limiting is off");
        }
        info!(%addr, config = source, "listening on {addr}");
        for (protocol, addr) in server
            .standard_addrs()
            .context("cannot read the bound addresses")?
        {
            info!(%addr, protocol, "{protocol} listening on {addr}");
        }
        // Every socket is bound: tell systemd (Type=notify) we are up.
        sys::notify::ready();
        server
            .run(async {
                shutdown_signal().await;
                sys::notify::stopping();
            })
            .await;
        Ok(())
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
                    _ = terminate.recv() => info!("SIGTERM received"),
                }
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot watch SIGTERM; Ctrl-C still works"),
        }
    }
    match tokio::signal::ctrl_c().await {
        Ok(()) => info!("SIGINT received"),
        // With no signal to wait for, serve until killed rather than stop now.
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGINT; stop horad with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
