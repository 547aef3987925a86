//! Roughtime's long-term key file: a 32-byte Ed25519 seed written as 64
//! hex digits and a newline, mode 0600. Made when absent (so `bind` and
//! `key` are all an admin sets), refused when other users may read it
//! (they could sign any time as this server) or when it is not a seed.
//! The key never changes while horad runs: clients hold its public half.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use hora_proto::roughtime::keys::{LongTermKey, Seed};
use rand::RngCore as _;

/// Why the key can't be had; each reads as one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// It could not be read, or made.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// It is not 64 hex digits.
    #[error("{0}: not a Roughtime key (64 hex digits, an Ed25519 seed); move it away and a new key is made")]
    Corrupt(PathBuf),
    /// Users other than its owner may read or write it.
    #[error("{path}: mode {mode:04o} lets other users read the Roughtime key; chmod 600 it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

/// The key in `path`, made there first if absent; and whether it was made.
pub fn load_or_create(path: &Path) -> Result<(LongTermKey, bool), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let (seed, made) = match std::fs::metadata(path) {
        Ok(metadata) => {
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Exposed {
                    path: path.to_owned(),
                    mode,
                });
            }
            let text = std::fs::read_to_string(path).map_err(io)?;
            let seed = parse(&text).ok_or_else(|| KeyFileError::Corrupt(path.to_owned()))?;
            (seed, false)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            (create(path).map_err(io)?, true)
        }
        Err(error) => return Err(io(error)),
    };
    let key = LongTermKey::from_seed(&seed).map_err(|_| KeyFileError::Corrupt(path.to_owned()))?;
    Ok((key, made))
}

/// A new random seed, written whole under a temporary name (mode 0600) and
/// then linked to `path` only if nothing is there yet.
fn create(path: &Path) -> std::io::Result<Seed> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".roughtime-key.")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(directory)?;
    file.write_all(render(&seed).as_bytes())?;
    file.as_file().sync_all()?;
    file.persist_noclobber(path).map_err(|error| error.error)?;
    Ok(seed)
}

fn render(seed: &Seed) -> String {
    let mut text: String = seed.iter().map(|byte| format!("{byte:02x}")).collect();
    text.push('\n');
    text
}

fn parse(text: &str) -> Option<Seed> {
    let digits = text.trim().as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut seed = [0u8; 32];
    for (byte, pair) in seed.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(seed)
}

/// The public key as clients are given it: base64 (roughenough, roughly,
/// Cloudflare's lists) and hex.
pub fn public_forms(key: &LongTermKey) -> (String, String) {
    use base64::Engine as _;
    let public = key.public_key();
    let base64 = base64::engine::general_purpose::STANDARD.encode(public);
    let hex = public.iter().map(|byte| format!("{byte:02x}")).collect();
    (base64, hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absent_key_is_made_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("roughtime.key");
        let (made, was_made) = load_or_create(&path).expect("made");
        assert!(was_made);
        let mode = std::fs::metadata(&path)
            .expect("there")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (read, was_made) = load_or_create(&path).expect("read");
        assert!(!was_made);
        assert_eq!(read.public_key(), made.public_key());
    }

    #[test]
    fn a_corrupt_or_readable_key_is_refused_with_its_reason() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("roughtime.key");
        std::fs::write(&path, "not a key\n").expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = load_or_create(&path).expect_err("corrupt");
        assert!(matches!(error, KeyFileError::Corrupt(_)), "{error}");
        std::fs::write(&path, render(&[3; 32])).expect("written");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = load_or_create(&path).expect_err("readable");
        assert!(error.to_string().contains("mode 0644"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        let (key, _) = load_or_create(&path).expect("a good key");
        assert_eq!(
            key.public_key(),
            LongTermKey::from_seed(&[3; 32]).expect("seed").public_key()
        );
    }

    #[test]
    fn a_key_in_a_missing_directory_says_so() {
        let error =
            load_or_create(Path::new("/nonexistent/hora/roughtime.key")).expect_err("no dir");
        assert!(
            error
                .to_string()
                .starts_with("/nonexistent/hora/roughtime.key: "),
            "{error}"
        );
    }
}
