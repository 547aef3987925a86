//! The cookie keys' file: read at start-up (so a restart keeps every
//! client's cookies good), re-read as it changes (so every host of a fleet
//! sharing it opens the cookies the others seal), and, on the host that
//! rotates ([`KeyFile::rotates`]: the one running the key exchange), a new
//! key added on schedule. Written whole to a temporary file, mode 0600,
//! then renamed over the old one: a reader never sees half a file.
//!
//! What the keys are and when each seals is `hora_proto::nts::ring`'s.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hora_proto::nts::cookie::{CookieKey, KEY_LEN};
use hora_proto::nts::ring::{KeyRing, RingError, LEAD};
use rand::RngCore as _;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::ConfigError;

/// How often the file is looked at: a quarter of the lead a new key has
/// before it seals, so every host has it in time.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(LEAD / 4);

/// The cookie keys' file and what this host does with it.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// Where it is.
    pub path: PathBuf,
    /// Whether this host adds keys (else it only reads them).
    pub rotates: bool,
    /// How often a key is added.
    pub rotation: Duration,
}

/// Why the keys can't be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read.
    #[error(transparent)]
    Read(#[from] ConfigError),
    /// It is not a key file.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: RingError,
    },
    /// It holds no key, and this host doesn't make them.
    #[error("{0}: no cookie key (the key exchange host writes them; copy its file here)")]
    Empty(PathBuf),
    /// It could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Wall-clock seconds since 1970.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl KeyFile {
    /// The keys now: the file's, with a new key added first if this host
    /// rotates and one is due (written back). A missing file is an empty
    /// ring for the host that rotates, an error for the others. File I/O:
    /// call it off the serving thread.
    pub fn load(&self) -> Result<KeyRing, KeyFileError> {
        let ring = match crate::config::read_file(&self.path) {
            Ok(text) => KeyRing::parse(&text).map_err(|source| KeyFileError::Parse {
                path: self.path.clone(),
                source,
            })?,
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && self.rotates =>
            {
                KeyRing::default()
            }
            Err(error) => return Err(error.into()),
        };
        let now = unix_now();
        if self.rotates && ring.rotation_due(now, self.rotation.as_secs()) {
            let rotated = ring.rotated(fresh_key(&ring), now);
            self.write(&rotated)?;
            info!(path = %self.path.display(), keys = rotated.len(), "NTS cookie key added");
            return Ok(rotated);
        }
        if ring.is_empty() {
            return Err(KeyFileError::Empty(self.path.clone()));
        }
        Ok(ring)
    }

    /// Reads the file as [`KeyFile::load`] does, but never writes it: for
    /// `horad --check-config`.
    pub fn check(&self) -> Result<(), KeyFileError> {
        match crate::config::read_file(&self.path) {
            Ok(text) => {
                let ring = KeyRing::parse(&text).map_err(|source| KeyFileError::Parse {
                    path: self.path.clone(),
                    source,
                })?;
                if ring.is_empty() && !self.rotates {
                    return Err(KeyFileError::Empty(self.path.clone()));
                }
                Ok(())
            }
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && self.rotates =>
            {
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Writes `ring` to the file: a temporary file beside it, mode 0600,
    /// synced, renamed over it.
    fn write(&self, ring: &KeyRing) -> Result<(), KeyFileError> {
        let error = |source| KeyFileError::Write {
            path: self.path.clone(),
            source,
        };
        let temporary = temporary_path(&self.path);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary).map_err(error)?;
        // A file left by an earlier run with other bits keeps them on open.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(error)?;
        }
        file.write_all(ring.render().as_bytes()).map_err(error)?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&temporary, &self.path).map_err(error)
    }
}

/// `path` with `.tmp` after its name, in the same directory (a rename
/// across file systems would not be atomic).
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A new random key whose id no key of `ring` has.
fn fresh_key(ring: &KeyRing) -> CookieKey {
    let mut rng = rand::rng();
    let mut key = [0u8; KEY_LEN];
    rng.fill_bytes(&mut key);
    let mut id = rng.next_u32();
    while ring.opening().iter().any(|held| held.id == id) {
        id = rng.next_u32();
    }
    CookieKey { id, key }
}

/// Looks at the file every [`CHECK_INTERVAL`] (off the serving thread),
/// rotating when due, and publishes the keys when they changed, until
/// `shutdown`. A file that can't be read now keeps the keys held, said
/// once until it reads again.
pub async fn serve(
    file: KeyFile,
    keys: watch::Sender<Arc<KeyRing>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut interval = tokio::time::interval(CHECK_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = interval.tick() => {}
        }
        let reader = file.clone();
        match tokio::task::spawn_blocking(move || reader.load()).await {
            Ok(Ok(ring)) => {
                if failing {
                    info!(path = %file.path.display(), "NTS cookie keys read again");
                    failing = false;
                }
                keys.send_if_modified(|held| {
                    let changed = **held != ring;
                    if changed {
                        *held = Arc::new(ring);
                    }
                    changed
                });
            }
            Ok(Err(error)) => {
                if !std::mem::replace(&mut failing, true) {
                    warn!(%error, "NTS cookie keys: keeping the keys held");
                }
            }
            Err(error) => warn!(%error, "NTS cookie keys: the check failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &tempfile::TempDir, rotates: bool) -> KeyFile {
        KeyFile {
            path: dir.path().join("nts-keys"),
            rotates,
            rotation: Duration::from_secs(86_400),
        }
    }

    #[test]
    fn the_rotating_host_creates_the_file_0600_and_a_restart_reads_the_same_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let first = file(&dir, true).load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.len(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("nts-keys"))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
        assert_eq!(
            file(&dir, true).load().ok(),
            Some(first.clone()),
            "nothing due: the same keys"
        );
        assert_eq!(
            file(&dir, false).load().ok(),
            Some(first),
            "a fleet host reads them"
        );
    }

    #[test]
    fn a_host_that_only_reads_refuses_a_missing_or_broken_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert!(file(&dir, false).load().is_err());
        std::fs::write(dir.path().join("nts-keys"), "not keys\n").unwrap_or_else(|e| panic!("{e}"));
        let error = file(&dir, true)
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("line 1"), "{error}");
    }

    #[test]
    fn a_due_rotation_adds_a_key_and_keeps_the_old_ones() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = KeyRing::default().rotated(
            CookieKey {
                id: 1,
                key: [1; KEY_LEN],
            },
            1_000,
        );
        let host = file(&dir, true);
        host.write(&old).unwrap_or_else(|e| panic!("{e}"));
        let ring = host.load().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ring.len(), 2);
        assert_eq!(ring.opening()[0].id, 1);
        assert_eq!(
            ring.sealing(1_000).map(|k| k.id),
            Some(1),
            "the new key waits its lead"
        );
    }
}
