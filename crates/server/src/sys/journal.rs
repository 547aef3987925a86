//! Whether standard error is the systemd journal: systemd sets
//! `JOURNAL_STREAM` to `DEVICE:INODE` of the stream it connected, and a
//! program whose stderr is that stream may prefix each line with its
//! sd-daemon(3) priority (`<4>` for a warning) and leave the timestamp to
//! journald.

/// Whether `JOURNAL_STREAM` names the file standard error is.
pub fn stderr_is_journal() -> bool {
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(device), Ok(inode)) = (device.parse::<u64>(), inode.parse::<u64>()) else {
        return false;
    };
    stderr_identity().is_some_and(|(d, i)| d == device && i == inode)
}

/// Standard error's device and inode (through `/proc/self/fd/2`, which
/// leads to the stream itself).
#[cfg(target_os = "linux")]
fn stderr_identity() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((metadata.dev(), metadata.ino()))
}

#[cfg(not(target_os = "linux"))]
fn stderr_identity() -> Option<(u64, u64)> {
    None
}
