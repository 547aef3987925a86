//! `horad`'s command line. Each flag overrides the same key of the
//! configuration file, and most can also come from a `HORAD_*` variable.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::config::{Config, ConfigError, Flag, Key, Takes, KEYS};

/// The file read when neither `--config` nor `HORAD_CONFIG` names one, if it
/// exists. Never a file in the working directory: a daemon started from a
/// writable directory must not take whatever config is there (chronyd,
/// ntpd-rs and nginx read a fixed path too).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hora/config.toml";

/// horad: a UDP time server for the LAN, speaking the seed's login/menu protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "horad", version, about, long_about = None)]
pub struct Args {
    /// Configuration file. Without it, /etc/hora/config.toml is read if it
    /// exists; otherwise the built-in defaults apply (they equal the shipped
    /// config.toml). Never a file in the working directory.
    #[arg(short, long, env = "HORAD_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// The flags that set configuration keys, one per key of the table
    /// that has one ([`crate::config::KEYS`]).
    #[command(flatten)]
    pub keys: KeyFlags,

    /// Only read and validate the configuration, print what it would serve,
    /// and exit: 0 if it is valid, 2 (with file:line:column) if not
    #[arg(long)]
    pub check_config: bool,

    /// Print the Roughtime long-term key's public half (base64, then hex),
    /// as clients are given it, and exit; the key file (roughtime.key) is
    /// made first if absent
    #[arg(long, conflicts_with = "check_config")]
    pub roughtime_public_key: bool,
}

/// The values given to the flags of the key table (or their `HORAD_*`
/// variables), each with its key, in the table's order: clap reads them,
/// each row of the table says how ([`Key::set`]).
#[derive(Debug, Clone, Default)]
pub struct KeyFlags(Vec<(&'static Key, String)>);

impl KeyFlags {
    /// Each flagged key's `clap` argument: its flag, variable, value's
    /// name, help (with the key's range and default) and a parser that
    /// refuses what the key's row can't read, so a bad value is refused
    /// as clap refuses any.
    fn arg(key: &'static Key, flag: &'static Flag) -> Option<clap::Arg> {
        let long = key.flag?.trim_start_matches("--");
        let mut help = flag.help.to_owned();
        if !key.range.is_empty() {
            help = format!("{help} ({})", key.range);
        }
        if !flag.default.is_empty() {
            help = format!("{help} [default: {}]", flag.default);
        }
        let arg = clap::Arg::new(key.name).long(long).help(help);
        let arg = match key.variable() {
            Some(variable) => arg.env(variable),
            None => arg,
        };
        Some(match flag.takes {
            Takes::Switch => arg
                .action(clap::ArgAction::SetTrue)
                .value_parser(clap::builder::BoolishValueParser::new()),
            Takes::One | Takes::List => {
                let readable = move |text: &str| -> Result<String, String> {
                    let mut scratch = Config::default();
                    (key.set)(&mut scratch, text).map(|()| text.to_owned())
                };
                let arg = arg.value_name(flag.value_name).value_parser(readable);
                if flag.takes == Takes::List {
                    arg.action(clap::ArgAction::Append).value_delimiter(',')
                } else {
                    arg
                }
            }
        })
    }
}

impl clap::Args for KeyFlags {
    fn augment_args(command: clap::Command) -> clap::Command {
        let each = KEYS
            .iter()
            .filter_map(|key| key.cli.as_ref().and_then(|flag| KeyFlags::arg(key, flag)));
        each.fold(command, clap::Command::arg)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for KeyFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut given = Vec::new();
        for key in KEYS {
            let Some(flag) = &key.cli else { continue };
            match flag.takes {
                Takes::Switch if matches.get_flag(key.name) => given.push((key, String::new())),
                Takes::Switch => {}
                Takes::One | Takes::List => {
                    if let Some(values) = matches.get_many::<String>(key.name) {
                        let values: Vec<&str> = values.map(String::as_str).collect();
                        given.push((key, values.join(",")));
                    }
                }
            }
        }
        Ok(KeyFlags(given))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = KeyFlags::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args {
    /// The configuration to run with: the file (or the defaults), then the
    /// flags on top, validated. Also returns the file read, if any.
    pub fn config(&self) -> Result<(Config, Option<PathBuf>), ConfigError> {
        self.config_from(Path::new(DEFAULT_CONFIG_PATH))
    }

    /// [`Args::config`], with `default_path` standing for
    /// [`DEFAULT_CONFIG_PATH`] (tests point it elsewhere). Anything at the
    /// default path is read, so a directory or a FIFO there is refused,
    /// not taken for "no file".
    pub fn config_from(
        &self,
        default_path: &Path,
    ) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match &self.config {
            Some(path) => Some(path.clone()),
            None if default_path.symlink_metadata().is_ok() => Some(default_path.to_owned()),
            None => None,
        };
        let config = self.load(path.as_deref())?;
        Ok((config, path))
    }

    /// The configuration again, for a reload on SIGHUP: from the file read
    /// at start-up (`read_at_start`), which must still be there (a reload
    /// never falls back to the built-in defaults because the file went
    /// away); or, if horad started on the defaults, as at start-up.
    pub fn reload(&self, read_at_start: Option<&Path>) -> Result<Config, ConfigError> {
        self.reload_from(read_at_start, Path::new(DEFAULT_CONFIG_PATH))
    }

    /// [`Args::reload`], with `default_path` standing for
    /// [`DEFAULT_CONFIG_PATH`].
    pub fn reload_from(
        &self,
        read_at_start: Option<&Path>,
        default_path: &Path,
    ) -> Result<Config, ConfigError> {
        match read_at_start {
            Some(path) => self.load(Some(path)),
            None => self.config_from(default_path).map(|(config, _)| config),
        }
    }

    /// The file at `path` (or the defaults), then the flags on top, validated.
    fn load(&self, path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.apply(&mut config);
        // The file's values passed; anything out of range now came from a
        // flag, or from the flag's variable.
        config.check().map_err(|out| {
            let key = crate::config::key(out.key);
            let flag = key.and_then(|key| key.flag).unwrap_or(out.key);
            let variable = key.and_then(|key| key.variable()).unwrap_or_default();
            let on_the_line =
                std::env::args().any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
            let from_variable =
                !on_the_line && !variable.is_empty() && std::env::var_os(&variable).is_some();
            ConfigError::Invalid {
                origin: if from_variable {
                    format!("environment: {variable}")
                } else {
                    "command line".to_owned()
                },
                key: flag,
                problem: out.problem,
            }
        })?;
        Ok(config)
    }

    /// Overrides the file's values with the flags given, each as its
    /// key's row reads it (clap checked each value already).
    fn apply(&self, config: &mut Config) {
        for (key, text) in &self.keys.0 {
            // A value clap let through reads the same here.
            let _ = (key.set)(config, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use super::*;
    use crate::config::KEYS;

    #[test]
    fn an_address_flag_takes_several_again_or_with_commas() {
        let args = Args::try_parse_from([
            "horad",
            "--config",
            "/dev/null",
            "--sntp-bind",
            "127.0.0.1:1230",
            "--sntp-bind",
            "127.0.0.2:1230",
            "--bind",
            "127.0.0.1:5005,[::1]:5005",
        ])
        .unwrap();
        let (config, _) = args.config().unwrap();
        assert_eq!(
            config.sntp.bind.to_string(),
            "127.0.0.1:1230, 127.0.0.2:1230"
        );
        assert_eq!(config.bind.to_string(), "127.0.0.1:5005, [::1]:5005");
        assert!(config.time.bind.is_empty());
        // Overlapping ones are refused, naming the flag.
        let args = Args::try_parse_from([
            "horad",
            "--config",
            "/dev/null",
            "--time-bind",
            "0.0.0.0:3700,127.0.0.1:3700",
        ])
        .unwrap();
        let error = args.config().unwrap_err().to_string();
        assert!(error.contains("`--time-bind`"), "{error}");
    }

    #[test]
    fn every_flagged_key_is_a_flag_with_its_variable_help_and_range() {
        let command = Args::command();
        for key in KEYS {
            let Some(flag) = &key.cli else { continue };
            let long = key.flag.unwrap().trim_start_matches("--");
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(long))
                .unwrap_or_else(|| panic!("no --{long}"));
            let env = arg.get_env().and_then(|env| env.to_str());
            assert_eq!(env, key.variable().as_deref(), "--{long}");
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            assert!(help.starts_with(flag.help), "--{long}: {help}");
            assert!(help.contains(key.range), "--{long}: {help}");
        }
        // And nothing else sets a key: the file, --config, and the two that
        // only act (--check-config, --roughtime-public-key).
        let flags = command
            .get_arguments()
            .filter_map(|arg| arg.get_long())
            .count();
        let keys = KEYS.iter().filter(|key| key.flag.is_some()).count();
        assert_eq!(flags, keys + 3);
    }

    #[test]
    fn a_flag_value_its_row_cannot_read_is_refused_by_clap() {
        for (flag, value) in [
            ("--idle-timeout", "10"),
            ("--workers", "many"),
            ("--log-format", "xml"),
            ("--bind", "localhost"),
            ("--sntp-local-stratum", "300"),
        ] {
            let error = Args::try_parse_from(["horad", flag, value]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{flag}"
            );
        }
    }
}
