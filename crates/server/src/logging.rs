//! Log set-up: `tracing` events to standard error, as text or JSON, and the
//! check of a log filter before it is used.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use serde::Deserialize;

/// The `[log]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `debug`, `horad=debug,warn`); `RUST_LOG`
    /// overrides it.
    pub level: String,
    /// Human-readable lines or one JSON object per line.
    pub format: LogFormat,
}

/// The two log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Why a log filter (the configured level, `RUST_LOG`) can't be used, or
/// the subscriber could not be installed or changed: one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The filter is refused: what is wrong with it.
    #[error("{0}")]
    Filter(String),
    /// `RUST_LOG` is refused: what is wrong with it.
    #[error("RUST_LOG {0}")]
    Env(String),
    /// A subscriber is already installed, or the running filter could not
    /// be swapped.
    #[error("the log subscriber: {0}")]
    Subscriber(String),
}

/// The levels a filter may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The targets horad's events have: its binary, its library, its protocol
/// crate, and the runtime and HTTP crates beneath them.
const TARGETS: [&str; 6] = [
    "horad",
    "hora_server",
    "hora_proto",
    "tokio",
    "hyper",
    "mio",
];

/// Checks a log filter: comma-separated directives, each a level (`info`)
/// or `TARGET=LEVEL` (`hora_server=debug`) for one of horad's targets (or a
/// module below one). `tracing`'s own parser takes `infoo` as a target name
/// and silences everything; this refuses it, so a typo can't silence the
/// daemon. The error says what was wrong, in one line.
pub fn check_filter(filter: &str) -> Result<(), LogError> {
    let directives: Vec<&str> = filter.split(',').map(str::trim).collect();
    if directives.iter().all(|d| d.is_empty()) {
        return Err(LogError::Filter("is empty (try \"info\")".to_owned()));
    }
    for directive in directives.into_iter().filter(|d| !d.is_empty()) {
        let (target, level) = match directive.split_once('=') {
            Some((target, level)) => (Some(target.trim()), level.trim()),
            None => (None, directive),
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(LogError::Filter(format!(
                "`{directive}`: `{level}` is not a level ({})",
                LEVELS.join(", ")
            )));
        }
        if let Some(target) = target {
            let known = TARGETS
                .iter()
                .any(|t| target == *t || target.starts_with(&format!("{t}::")));
            if !known {
                return Err(LogError::Filter(format!(
                    "`{directive}`: `{target}` is not one of horad's targets ({})",
                    TARGETS.join(", ")
                )));
            }
        }
    }
    parsed(filter).map(drop)
}

/// The filter as `tracing` parses it, once [`check_filter`] passed it.
fn parsed(filter: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(normalized(filter)).map_err(|error| LogError::Filter(error.to_string()))
}

/// The filter without the spaces people put after commas, which
/// `tracing`'s parser does not take.
fn normalized(filter: &str) -> String {
    filter
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// `RUST_LOG`, when set, checked as start-up checks it (for
/// `horad --check-config`: a start with a bad one would exit 2).
pub fn check_env() -> Result<(), LogError> {
    env_filter().map(drop)
}

/// `RUST_LOG`, when set and not empty, checked.
fn env_filter() -> Result<Option<String>, LogError> {
    match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => match check_filter(&from_env) {
            Ok(()) => Ok(Some(from_env)),
            Err(problem) => Err(LogError::Env(problem.to_string())),
        },
        _ => Ok(None),
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the
/// configured level; it is checked as the config's level is. Fails if the
/// filter is refused or a subscriber is already installed.
pub fn init(config: &LogConfig) -> Result<(), LogError> {
    let filter = env_filter()?.unwrap_or_else(|| config.level.clone());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(parsed(&filter)?)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match config.format {
        // Under systemd: each line's priority for journald (`journalctl -p
        // warning` then works), and no timestamp of ours (it adds one).
        LogFormat::Text if crate::sys::journal::stderr_is_journal() => {
            let builder = builder
                .with_ansi(false)
                .event_format(Journald(
                    tracing_subscriber::fmt::format()
                        .without_time()
                        .with_target(false),
                ))
                .with_filter_reloading();
            let handle = builder.reload_handle();
            keep_reloader(move |filter| handle.reload(filter).map_err(|e| e.to_string()));
            builder.try_init()
        }
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            keep_reloader(move |filter| handle.reload(filter).map_err(|e| e.to_string()));
            builder.try_init()
        }
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            keep_reloader(move |filter| handle.reload(filter).map_err(|e| e.to_string()));
            builder.try_init()
        }
    };
    installed.map_err(|error| LogError::Subscriber(error.to_string()))
}

/// A text line with its sd-daemon(3) priority in front: `<3>` error, `<4>`
/// warning, `<6>` info, `<7>` debug and trace.
struct Journald<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for Journald<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Swaps the running log filter, once [`init`] has installed one.
type Reloader = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

static RELOADER: std::sync::OnceLock<Reloader> = std::sync::OnceLock::new();

fn keep_reloader(reload: impl Fn(EnvFilter) -> Result<(), String> + Send + Sync + 'static) {
    let _ = RELOADER.set(Box::new(reload));
}

/// Applies a reloaded `[log] level`. `Ok(false)` when `RUST_LOG` is set (it
/// overrides the file, at start-up and on reload alike) or no subscriber of
/// ours is installed (tests).
pub fn set_level(level: &str) -> Result<bool, LogError> {
    if std::env::var("RUST_LOG").is_ok_and(|from_env| !from_env.is_empty()) {
        return Ok(false);
    }
    let Some(reload) = RELOADER.get() else {
        return Ok(false);
    };
    check_filter(level)?;
    reload(parsed(level)?)
        .map(|()| true)
        .map_err(LogError::Subscriber)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_targets_of_horad_are_accepted() {
        for good in [
            "info",
            "DEBUG",
            "warn,hora_server=debug",
            "hora_server::server=trace",
            "horad=info, tokio=warn",
            "off",
        ] {
            assert_eq!(check_filter(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn typos_and_unknown_targets_are_refused() {
        for (bad, says) in [
            ("infoo", "`infoo` is not a level"),
            ("loud", "`loud` is not a level"),
            ("bogus", "`bogus` is not a level"),
            (
                "hora_serv=debug",
                "`hora_serv` is not one of horad's targets",
            ),
            ("hora_server=verbose", "`verbose` is not a level"),
            ("", "is empty"),
            (" , ", "is empty"),
        ] {
            let error = check_filter(bad).unwrap_err().to_string();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }
}
