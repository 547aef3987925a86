//! Reading a configuration: a file opened so that nothing put at its path
//! can block or flood the daemon, TOML parsed with errors that name the
//! file, line and column, and secrets refused when any user may read them.

use std::path::Path;

use super::{Config, ConfigError};

/// The largest configuration file read: 16 MiB holds an access list of
/// several hundred thousand entries (100,000 deny entries take 1.7 MB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The text of the configuration file at `path`, if it is a regular file of
/// at most [`MAX_FILE_BYTES`]. It is opened without blocking (a FIFO put
/// there opens at once and is then refused, unread) and checked on the open
/// file, so it can't change between the check and the read. `/dev/null`
/// reads as an empty file (the defaults: `--config /dev/null` is the usual
/// way to say "no file"). It still does file I/O: the daemon calls it off
/// its serving thread.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    #[cfg(unix)]
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};

    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NONBLOCK);
    let file = options.open(path).map_err(read_error)?;
    let metadata = file.metadata().map_err(read_error)?;
    let kind = metadata.file_type();
    if path == Path::new("/dev/null") {
        return Ok(String::new());
    }
    if !kind.is_file() {
        #[cfg(unix)]
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a file"
        };
        #[cfg(not(unix))]
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a file"
        };
        return Err(ConfigError::NotAFile {
            path: path.to_owned(),
            kind: what,
        });
    }
    let too_large = |size| ConfigError::TooLarge {
        path: path.to_owned(),
        size,
    };
    if metadata.len() > MAX_FILE_BYTES {
        return Err(too_large(metadata.len()));
    }
    // It may still grow while read: read one byte past the cap to know.
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(text.len() as u64));
    }
    Ok(text)
}

/// Reads a secret (a private key, the cookie keys) as [`read_file`] does,
/// refusing one any user may read: whoever could read it could
/// impersonate the server or forge its cookies.
pub fn read_secret(path: &Path) -> Result<String, ConfigError> {
    let text = read_file(path)?;
    match others_may(path, 0o004) {
        Some(mode) => Err(ConfigError::Exposed {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(text),
    }
}

/// The mode of the regular file at `path` (symlinks followed), when it
/// grants other users any of `bits` (0o002: write, 0o004: read); `None`
/// when it grants none, is no regular file (`/dev/null`), or can't be read.
pub fn others_may(path: &Path, bits: u32) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = std::fs::metadata(path).ok()?;
    let mode = metadata.permissions().mode();
    (metadata.is_file() && mode & bits != 0).then_some(mode & 0o7777)
}

impl Config {
    /// Reads and validates a configuration file ([`read_file`]).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = read_file(path)?;
        let config = Config::from_toml(&text, path)?;
        config.check().map_err(|out| {
            let origin = match locate_key(&text, out.key) {
                Some((line, column)) => format!("{}:{line}:{column}", path.display()),
                None => path.display().to_string(),
            };
            ConfigError::Invalid {
                origin,
                key: out.key,
                problem: out.problem,
            }
        })?;
        Ok(config)
    }

    /// Parses TOML text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|error| {
            let (line, column) = error
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: error.message().trim().to_owned(),
            }
        })
    }
}

/// The file's addresses and durations, read with messages that say what
/// is wrong and how to write it (and, for durations, the same words as the
/// command line's).
pub(super) mod text {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer};

    /// `IP:PORT`, or a list of them (`[]`: none).
    pub fn addresses<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<super::super::Addresses, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let texts = match OneOrMany::deserialize(deserializer)
            .map_err(|_| D::Error::custom("must be \"IP:PORT\" or a list of them"))?
        {
            OneOrMany::One(text) => vec![text],
            OneOrMany::Many(texts) => texts,
        };
        let list: Result<Vec<super::super::Listen>, String> =
            texts.iter().map(|text| text.parse()).collect();
        list.map(Into::into).map_err(D::Error::custom)
    }

    /// A duration as humantime writes it (`10s`, `500ms`, `1day`).
    pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|error| D::Error::custom(format!("`{text}`: {error}")))
    }
}

/// Where `key` (dotted: `ratelimit.rate`) is set in a TOML text, as a
/// 1-based line and column; `None` if it is not written as `key = ...`
/// under its table header (an inline table, say).
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = "";
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header.split(']').next().unwrap_or("").trim();
            continue;
        }
        let is_key = trimmed
            .strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if current == table && is_key {
            return Some((index + 1, line.len() - trimmed.len() + 1));
        }
    }
    None
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse;
    use super::*;

    #[test]
    fn an_unknown_key_names_the_file_line_and_key() {
        let error = parse("idle_timeout = \"10s\"\nbnd = \"127.0.0.1:5005\"\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("config.toml:2:1: "), "{text}");
        assert!(text.contains("unknown field `bnd`"), "{text}");
    }

    #[test]
    fn an_address_without_a_port_or_a_duration_without_a_unit_says_how_to_write_it() {
        let error = parse("bind = \"127.0.0.1\"").unwrap_err().to_string();
        assert!(error.contains("has no port: write IP:PORT"), "{error}");
        let error = parse("[sntp]\nbind = \"ntp.lan:123\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("is not IP:PORT"), "{error}");
        let error = parse("idle_timeout = \"10\"").unwrap_err().to_string();
        // The words the command line uses (humantime's).
        assert!(error.contains("time unit needed"), "{error}");
    }

    #[test]
    fn bad_values_name_the_position() {
        for (toml, line, needle) in [
            ("bind = \"localhost\"\n", 1, "is not IP:PORT"),
            ("\n\nidle_timeout = \"ten seconds\"\n", 3, ""),
            ("max_sessions = -1\n", 1, ""),
            ("[log]\nformat = \"xml\"\n", 2, "xml"),
            ("bind = \n", 1, ""),
        ] {
            let text = parse(toml).unwrap_err().to_string();
            assert!(
                text.starts_with(&format!("config.toml:{line}:")),
                "{toml:?} gave {text}"
            );
            assert!(text.contains(needle), "{toml:?} gave {text}");
            assert!(!text.contains('\n'), "one line: {text:?}");
        }
    }

    #[test]
    fn a_value_out_of_range_in_a_file_names_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hora.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:0\"\n\n[ratelimit]\nrate = 5.0\n  table_size = 16777216\n",
        )
        .unwrap();
        let error = Config::from_file(&path).unwrap_err().to_string();
        let expected = format!(
            "{}:5:3: `ratelimit.table_size` must be 1 to 1048576",
            path.display()
        );
        assert_eq!(error, expected);
    }

    #[test]
    fn finds_keys_under_their_tables() {
        let text = "rate = 1\n[sntp]\nstratum = 3\n[ratelimit]\n rate = 2\n";
        assert_eq!(locate_key(text, "ratelimit.rate"), Some((5, 2)));
        assert_eq!(locate_key(text, "sntp.stratum"), Some((3, 1)));
        assert_eq!(locate_key(text, "rate"), Some((1, 1)));
        assert_eq!(locate_key(text, "sntp.precision"), None);
    }

    #[test]
    fn only_a_regular_file_of_a_sane_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let error = Config::from_file(dir.path()).unwrap_err().to_string();
        assert!(
            error.ends_with("is a directory, not a regular file"),
            "{error}"
        );
        // A FIFO is refused at once: nothing blocks waiting for a writer.
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let error = Config::from_file(&fifo).unwrap_err().to_string();
        assert!(error.ends_with("is a FIFO, not a regular file"), "{error}");
        let error = Config::from_file(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(
            error.ends_with("is a device, not a regular file"),
            "{error}"
        );
        let large = dir.path().join("large.toml");
        let file = std::fs::File::create(&large).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let error = Config::from_file(&large).unwrap_err().to_string();
        assert!(
            error.contains("16777217 bytes, more than the 16777216"),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let error = Config::from_file(Path::new("/nonexistent/hora.toml")).unwrap_err();
        assert!(error.to_string().starts_with("/nonexistent/hora.toml: "));
    }
}
