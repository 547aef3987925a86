//! The cookie keys' file: read at start-up (so a restart keeps every
//! client's cookies good), re-read as it changes (so every host of a fleet
//! sharing it opens the cookies the others seal), and, on the host that
//! rotates ([`KeyFile::rotates`]: the one running the key exchange), a new
//! key added on schedule. Written whole to a temporary file of a name no
//! one else chose (`O_CREAT | O_EXCL`, mode 0600), then renamed over the
//! old one: a reader never sees half a file, and nothing planted in the
//! directory is followed. A running host never loses its keys to the file:
//! one found missing or empty is written back from the keys held.
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
    /// Its directory is writable by every user: one could replace the
    /// keys with ones they know.
    #[error("{directory}: mode {mode:04o} lets any user replace the cookie keys; chmod o-w it")]
    OpenDirectory {
        /// The directory.
        directory: PathBuf,
        /// Its mode.
        mode: u32,
    },
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
    /// The keys at start-up, when none are held (a file other users may
    /// read is refused: they could forge every cookie): the file's, with a new
    /// key added first if this host rotates and one is due (written back).
    /// A missing or empty file is a fresh ring for the host that rotates
    /// (created only if no other host created it meanwhile: two hosts
    /// starting together end with the one ring), an error for the others.
    /// File I/O: call it off the serving thread.
    pub fn load(&self) -> Result<KeyRing, KeyFileError> {
        if self.rotates {
            self.check_directory()?;
        }
        match self.read()? {
            Some(ring) => self.rotate_if_due(ring),
            None if self.rotates => self.create(),
            None => Err(KeyFileError::Empty(self.path.clone())),
        }
    }

    /// The keys now, for a host that holds `held`: the file's (rotated
    /// when due, as [`KeyFile::load`]). A file gone missing or emptied
    /// under a running host erases nothing: the host that rotates writes
    /// `held` back (and says so, [`Refreshed::Restored`]); the others keep
    /// `held` and get [`KeyFileError::Empty`].
    pub fn refresh(&self, held: &KeyRing) -> Result<Refreshed, KeyFileError> {
        match self.read()? {
            Some(ring) => self.rotate_if_due(ring).map(Refreshed::Read),
            None if self.rotates && !held.is_empty() => {
                // One write: the rotated ring if a key is due, else `held`.
                let restored = self.rotate_if_due(held.clone())?;
                if restored == *held {
                    self.write(held)?;
                }
                Ok(Refreshed::Restored(restored))
            }
            None if self.rotates => self.create().map(Refreshed::Read),
            None => Err(KeyFileError::Empty(self.path.clone())),
        }
    }

    /// Reads the file as [`KeyFile::load`] does, but never writes it: for
    /// `horad --check-config`. Where this host rotates, the directory must
    /// take a new file (a temporary one is made and removed), since a
    /// rotation will be due one day.
    pub fn check(&self) -> Result<(), KeyFileError> {
        if self.rotates {
            self.check_directory()?;
            self.temporary()
                .map_err(|source| self.write_error(source))?;
        }
        match self.read()? {
            None if !self.rotates => Err(KeyFileError::Empty(self.path.clone())),
            _ => Ok(()),
        }
    }

    /// The file's keys; `None` when it is missing or holds none.
    fn read(&self) -> Result<Option<KeyRing>, KeyFileError> {
        let text = match crate::config::read_secret(&self.path) {
            Ok(text) => text,
            Err(ConfigError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(error) => return Err(error.into()),
        };
        let ring = KeyRing::parse(&text).map_err(|source| KeyFileError::Parse {
            path: self.path.clone(),
            source,
        })?;
        Ok((!ring.is_empty()).then_some(ring))
    }

    /// `ring`, with a new key added and written if this host rotates and
    /// one is due.
    fn rotate_if_due(&self, ring: KeyRing) -> Result<KeyRing, KeyFileError> {
        let now = unix_now();
        if !(self.rotates && ring.rotation_due(now, self.rotation.as_secs())) {
            return Ok(ring);
        }
        let rotated = ring.rotated(fresh_key(&ring), now);
        self.write(&rotated)?;
        info!(path = %self.path.display(), keys = rotated.len(), "NTS cookie key added");
        Ok(rotated)
    }

    /// A fresh ring of one key, written only where no file is; if another
    /// host wrote one first, that one's keys.
    fn create(&self) -> Result<KeyRing, KeyFileError> {
        let ring = KeyRing::default().rotated(fresh_key(&KeyRing::default()), unix_now());
        let temporary = self.filled(&ring)?;
        match temporary.persist_noclobber(&self.path) {
            Ok(_) => {
                info!(path = %self.path.display(), "NTS cookie keys: a new key file");
                Ok(ring)
            }
            Err(error) if error.error.kind() == std::io::ErrorKind::AlreadyExists => {
                let theirs = self.read()?;
                theirs.ok_or_else(|| KeyFileError::Empty(self.path.clone()))
            }
            Err(error) => Err(self.write_error(error.error)),
        }
    }

    /// Writes `ring` over the file: a temporary file beside it, renamed
    /// over it.
    fn write(&self, ring: &KeyRing) -> Result<(), KeyFileError> {
        self.filled(ring)?
            .persist(&self.path)
            .map(|_| ())
            .map_err(|error| self.write_error(error.error))
    }

    /// A new temporary file in the key's directory holding `ring`, synced.
    fn filled(&self, ring: &KeyRing) -> Result<tempfile::NamedTempFile, KeyFileError> {
        let mut temporary = self
            .temporary()
            .map_err(|source| self.write_error(source))?;
        temporary
            .write_all(ring.render().as_bytes())
            .and_then(|()| temporary.as_file().sync_all())
            .map_err(|source| self.write_error(source))?;
        Ok(temporary)
    }

    /// A new, empty temporary file in the key's directory (the rename over
    /// the key must not cross file systems), under a name no one else
    /// chose: created with `O_CREAT | O_EXCL`, mode 0600, so a symlink or
    /// a file another user planted at any name is never followed or
    /// written.
    fn temporary(&self) -> std::io::Result<tempfile::NamedTempFile> {
        let mut prefix = std::ffi::OsString::from(".");
        prefix.push(self.path.file_name().unwrap_or_default());
        prefix.push(".");
        tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".tmp")
            .permissions(private_mode())
            .tempfile_in(self.directory())
    }

    /// The directory the key is in.
    fn directory(&self) -> &Path {
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        }
    }

    /// Refuses a key directory any user may write to: one who could
    /// replace the key file would hand every client keys they know.
    fn check_directory(&self) -> Result<(), KeyFileError> {
        use std::os::unix::fs::PermissionsExt as _;
        let directory = self.directory();
        let mode = std::fs::metadata(directory)
            .map_err(|source| self.write_error(source))?
            .permissions()
            .mode();
        if mode & 0o002 != 0 {
            return Err(KeyFileError::OpenDirectory {
                directory: directory.to_owned(),
                mode: mode & 0o7777,
            });
        }
        Ok(())
    }

    fn write_error(&self, source: std::io::Error) -> KeyFileError {
        KeyFileError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

/// What [`KeyFile::refresh`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Refreshed {
    /// The file's keys.
    Read(KeyRing),
    /// The file was missing or empty: these, the keys held, were written
    /// back.
    Restored(KeyRing),
}

/// Mode 0600: the cookie keys are the server's secret.
fn private_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::Permissions::from_mode(0o600)
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
        let held = Arc::clone(&keys.borrow());
        match tokio::task::spawn_blocking(move || reader.refresh(&held)).await {
            Ok(Ok(refreshed)) => {
                if failing {
                    info!(path = %file.path.display(), "NTS cookie keys read again");
                    failing = false;
                }
                let ring = match refreshed {
                    Refreshed::Read(ring) => ring,
                    Refreshed::Restored(ring) => {
                        warn!(path = %file.path.display(), "NTS cookie keys: the file was missing or empty; wrote back the keys held");
                        ring
                    }
                };
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
        let path = dir.path().join("nts-keys");
        std::fs::write(&path, "not keys\n").unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
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

    #[test]
    fn a_running_host_writes_back_its_keys_when_the_file_is_deleted_or_emptied() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let host = file(&dir, true);
        let held = host.load().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("nts-keys");
        for erase in ["delete", "empty"] {
            match erase {
                "delete" => std::fs::remove_file(&path),
                _ => std::fs::write(&path, ""),
            }
            .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                host.refresh(&held).ok(),
                Some(Refreshed::Restored(held.clone())),
                "{erase}"
            );
            assert_eq!(
                file(&dir, false).load().ok(),
                Some(held.clone()),
                "{erase}: the file holds the same keys again"
            );
        }
        assert_eq!(
            host.refresh(&held).ok(),
            Some(Refreshed::Read(held.clone()))
        );
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            file(&dir, false).refresh(&held).is_err(),
            "a host that only reads keeps its keys and says why"
        );
    }

    #[test]
    fn hosts_starting_together_on_no_file_end_with_one_ring() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let start = std::sync::Barrier::new(2);
            let rings: Vec<_> = std::thread::scope(|scope| {
                let hosts: Vec<_> = (0..2)
                    .map(|_| {
                        scope.spawn(|| {
                            start.wait();
                            file(&dir, true).load().map_err(|e| e.to_string())
                        })
                    })
                    .collect();
                hosts.into_iter().map(|host| host.join().ok()).collect()
            });
            let on_file = file(&dir, false).load().ok();
            assert!(on_file.is_some());
            for ring in rings {
                assert_eq!(ring, Some(Ok(on_file.clone().unwrap_or_default())));
            }
        }
    }

    #[test]
    fn nothing_planted_in_the_directory_is_followed_or_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "theirs\n").unwrap_or_else(|e| panic!("{e}"));
        for name in ["nts-keys.tmp", ".nts-keys.tmp"] {
            std::os::unix::fs::symlink(&victim, dir.path().join(name))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let host = KeyFile {
            rotation: Duration::from_secs(1),
            ..file(&dir, true)
        };
        let mut ring = host.load().unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..5 {
            ring = host
                .rotate_if_due(ring.rotated(fresh_key(&ring), 0))
                .unwrap_or_else(|e| panic!("{e}"));
            host.write(&ring).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(
            std::fs::read_to_string(&victim).ok().as_deref(),
            Some("theirs\n")
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            left.len(),
            4,
            "the key, the victim, the two links: {left:?}"
        );
    }

    #[test]
    fn a_key_file_any_user_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        file(&dir, true).load().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("nts-keys");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let error = file(&dir, false).load().err().map(|e| e.to_string());
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("mode 0644 lets any user read")),
            "{error:?}"
        );
    }

    #[test]
    fn a_key_directory_any_user_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        for error in [
            file(&dir, true).load().err(),
            file(&dir, true).check().err(),
        ] {
            assert!(
                matches!(error, Some(KeyFileError::OpenDirectory { mode: 0o777, .. })),
                "{error:?}"
            );
        }
    }

    /// The running loop: the file deleted, then emptied, under it; each
    /// time the keys it publishes stay and the file holds them again by
    /// the next check (`spawn_blocking` holds paused time until it ends).
    #[tokio::test(start_paused = true)]
    async fn serving_hosts_keep_their_keys_when_the_file_is_deleted_then_emptied() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let host = file(&dir, true);
        let ring = host.load().unwrap_or_else(|e| panic!("{e}"));
        let (keys, published) = watch::channel(Arc::new(ring.clone()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(host, keys, stopped));
        let path = dir.path().join("nts-keys");
        for erase in ["delete", "empty"] {
            match erase {
                "delete" => std::fs::remove_file(&path),
                _ => std::fs::write(&path, "# emptied\n"),
            }
            .unwrap_or_else(|e| panic!("{e}"));
            tokio::time::sleep(CHECK_INTERVAL + Duration::from_secs(1)).await;
            assert_eq!(**published.borrow(), ring, "{erase}: the keys held");
            assert_eq!(
                file(&dir, false).load().ok(),
                Some(ring.clone()),
                "{erase}: the file holds them again"
            );
        }
        let _ = stop.send(true);
        assert!(task.await.is_ok());
    }
}
