//! `horad`: parse the command line, load the configuration, serve until a
//! signal. Exit status: 0 after a clean shutdown, 1 when the socket cannot be
//! bound, 2 for a bad configuration or command line. `--check-config` only
//! validates the configuration and says what it would serve.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use hora_server::cli::Args;
use hora_server::config::ConfigError;
use hora_server::{logging, sys, Config, Server, StartError};
use tokio::sync::mpsc;
use tracing::{info, warn};

fn main() -> ExitCode {
    if let Some(reason) = hora_proto::cpu::unsupported("horad") {
        eprintln!("{reason}");
        return ExitCode::FAILURE;
    }
    // Before any thread: the crate that takes them clears the variables
    // that name them.
    let passed = match sys::activation::take() {
        Ok(passed) => passed,
        Err(error) => {
            eprintln!("horad: socket activation: {error}");
            return ExitCode::from(2);
        }
    };
    let args = Args::parse();
    let (config, source) = match args.config() {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("horad: {error}");
            return ExitCode::from(2);
        }
    };
    let named = source.as_ref().map_or_else(
        || "built-in defaults".to_owned(),
        |p| p.display().to_string(),
    );
    if args.check_config {
        return check_config(&config, &named);
    }
    if args.roughtime_public_key {
        return print_roughtime_key(&config);
    }
    if let Err(error) = logging::init(&config.log) {
        eprintln!("horad: {}", hora_proto::report::one_line(&error));
        return ExitCode::from(2);
    }
    match serve(config, &named, args, source, passed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("horad: {}", hora_proto::report::one_line(error.as_ref()));
            // A socket that can't be bound: its own status, so the unit's
            // start limit (not an endless restart) and scripts can tell it.
            // A certificate no client would take is a bad configuration:
            // 2, which the unit doesn't restart on.
            match error.downcast_ref::<StartError>() {
                Some(StartError::Bind(_)) => ExitCode::from(3),
                Some(
                    StartError::Certificate(_)
                    | StartError::Unclaimed { .. }
                    | StartError::RoughtimeKey(_),
                ) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// `--check-config`: the configuration, the files NTS reads and
/// `RUST_LOG` checked; what it would serve said on standard output.
fn check_config(config: &Config, named: &str) -> ExitCode {
    // The files NTS reads are part of the configuration: a broken
    // certificate fails `systemctl reload` here, before SIGHUP.
    if let Err(error) = hora_server::nts::check(&config.nts) {
        eprintln!("horad: {error}");
        return ExitCode::from(2);
    }
    if let Err(error) = logging::check_env() {
        eprintln!("horad: {error}");
        return ExitCode::from(2);
    }
    use std::io::Write as _;
    let report = format!("horad: configuration OK ({named})\n{}", config.describe());
    let mut out = std::io::stdout().lock();
    match out.write_all(report.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // `horad --check-config | head -1`: the reader went away, as
        // `cat` takes it (128 + SIGPIPE), with no panic.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(141),
        Err(error) => {
            eprintln!("horad: cannot write the report: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `--roughtime-public-key`: the key file's public key, base64 then hex, a
/// line each (the file made first if absent).
fn print_roughtime_key(config: &Config) -> ExitCode {
    let Some(path) = &config.roughtime.key else {
        eprintln!("horad: roughtime.key is not set (--roughtime-key PATH, or [roughtime] key in the configuration)");
        return ExitCode::from(2);
    };
    match hora_server::roughtime_key::load_or_create(path) {
        Ok((key, _)) => {
            let (base64, hex) = hora_server::roughtime_key::public_forms(&key);
            println!("{base64}\n{hex}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("horad: {error}");
            ExitCode::from(2)
        }
    }
}

fn serve(
    config: Config,
    named: &str,
    args: Args,
    source: Option<PathBuf>,
    passed: sys::activation::Passed,
) -> anyhow::Result<()> {
    // As sshd's StrictModes, but a warning: the admin may mean it.
    if let Some(path) = source.as_deref() {
        if let Some(mode) = hora_server::config::others_may(path, 0o002) {
            warn!(path = %path.display(), mode = format!("{mode:04o}"), "any user may write the configuration; chmod o-w it");
        }
    }
    // One thread: the receive loop is one task, and a work-stealing runtime
    // only adds cross-thread hand-offs to it (measured in BENCHMARKS.md).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Before anything is bound or announced: see shutdown_signal.
        let shutdown = shutdown_signal();
        let reloads = reload_on_sighup(args, source);
        let from_systemd = !passed.is_empty();
        let server = Server::bind_passed(&config, passed).await?;
        if from_systemd {
            info!("serving on the sockets systemd passed (socket activation) where given");
        }
        announce(&server, &config, named)?;
        // Every socket is bound: tell systemd (Type=notify) we are up.
        sys::notify::ready();
        server
            .run_reloading(
                async {
                    shutdown.await;
                    sys::notify::stopping();
                },
                reloads,
            )
            .await;
        Ok(())
    })
}

/// Says, a line each, where horad listens and with how many workers.
fn announce(server: &Server, config: &Config, named: &str) -> anyhow::Result<()> {
    let addr = server
        .local_addr()
        .context("cannot read the bound address")?;
    if !server.limits_rate() {
        tracing::warn!("per-source rate limiting is off");
    }
    // The address once a line: in the text (people read it there), and
    // as a field only in JSON (collectors read it there).
    let field = |addr: std::net::SocketAddr| {
        (config.log.format == hora_server::config::LogFormat::Json).then(|| addr.to_string())
    };
    info!(addr = field(addr), config = named, "listening on {addr}");
    for addr in server.seed_addrs().into_iter().skip(1) {
        info!(addr = field(addr), config = named, "listening on {addr}");
    }
    let workers = server.workers();
    let plural = if workers == 1 { "" } else { "s" };
    info!(
        workers = field_count(config, workers),
        "serving with {workers} worker{plural}, each source address on one"
    );
    for (protocol, addr) in server
        .standard_addrs()
        .context("cannot read the bound addresses")?
    {
        info!(
            addr = field(addr),
            protocol, "{protocol} listening on {addr}"
        );
    }
    for addr in server.metrics_addrs() {
        info!(
            addr = field(addr),
            "metrics listening on http://{addr}/metrics and /status"
        );
    }
    for addr in server.nts_ke_addrs() {
        info!(
            addr = field(addr),
            protocol = "nts-ke",
            "nts-ke listening on {addr} (TCP, TLS 1.3, ALPN ntske/1)"
        );
    }
    Ok(())
}

/// A count as a field only in JSON logs, as the addresses are.
fn field_count(config: &Config, count: usize) -> Option<usize> {
    (config.log.format == hora_server::config::LogFormat::Json).then_some(count)
}

/// On every SIGHUP (`systemctl reload horad`), reads the configuration
/// again exactly as at start-up (the file read then, `source`, the same
/// flags on top, the same validation) and hands it to the server, which
/// applies it or refuses it. The file is read on a blocking thread, never
/// the serving one. The handler is installed now, before horad says it
/// listens.
fn reload_on_sighup(
    args: Args,
    source: Option<PathBuf>,
) -> mpsc::Receiver<Result<Config, ConfigError>> {
    let (sender, receiver) = mpsc::channel(4);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        info!("SIGHUP received: reloading the configuration");
                        let (args, source) = (args.clone(), source.clone());
                        let read =
                            tokio::task::spawn_blocking(move || args.reload(source.as_deref()));
                        let loaded = match read.await {
                            Ok(loaded) => loaded,
                            Err(error) => {
                                warn!(%error, "reload failed, the running configuration stays");
                                continue;
                            }
                        };
                        if sender.send(loaded).await.is_err() {
                            return;
                        }
                    }
                });
            }
            Err(error) => warn!(%error, "cannot watch SIGHUP; reload by restarting"),
        }
    }
    #[cfg(not(unix))]
    drop((args, source, sender));
    receiver
}

/// A future that completes on SIGINT (Ctrl-C) or SIGTERM. The handlers are
/// installed now, not when the future is first polled: a signal sent as soon
/// as horad says it listens must not find the default action (death without
/// the shutdown notices) or a handler not yet listened to (a lost signal).
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                _ = interrupt.recv() => info!("SIGINT received"),
                _ = terminate.recv() => info!("SIGTERM received"),
            },
            (Ok(mut one), Err(error)) | (Err(error), Ok(mut one)) => {
                tracing::warn!(%error, "cannot watch one of SIGINT and SIGTERM; the other still works");
                one.recv().await;
                info!("signal received");
            }
            // With no signal to wait for, serve until killed rather than stop now.
            (Err(error), Err(_)) => {
                tracing::warn!(%error, "cannot watch SIGINT or SIGTERM; stop horad with SIGKILL");
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Elsewhere, Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            info!("Ctrl-C received");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
