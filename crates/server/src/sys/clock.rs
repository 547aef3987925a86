//! The host clock's state, as the kernel keeps it (`ntp_adjtime`).
//!
//! One of the workspace's three `unsafe` calls (the others are
//! [`super::memory`]'s and `hora_proto::cpu`'s `cpuid`): neither nix, rustix nor clock-steering has a safe
//! read-only wrapper for `ntp_adjtime`.

use std::io;

use hora_proto::host_clock::HostClock;

/// The kernel's state of the host clock, read without changing it
/// (`ntp_adjtime` with `modes = 0`, as `adjtimex --print` and chronyc do).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn host_clock() -> io::Result<HostClock> {
    use std::time::Duration;

    use hora_proto::host_clock::Leap;

    // SAFETY: `timex` is a plain C struct for which all-zero bytes are a
    // valid value, and `modes = 0` asks the kernel only to fill it in: the
    // call reads the clock's state and changes nothing. The pointer is to a
    // live, exclusively borrowed local for the duration of the call.
    let (state, timex) = unsafe {
        let mut timex: libc::timex = std::mem::zeroed();
        timex.modes = 0;
        let state = libc::ntp_adjtime(&mut timex);
        (state, timex)
    };
    if state < 0 {
        return Err(io::Error::last_os_error());
    }
    let leap = if timex.status & libc::STA_INS != 0 {
        Leap::Insert
    } else if timex.status & libc::STA_DEL != 0 {
        Leap::Delete
    } else {
        Leap::None
    };
    Ok(HostClock {
        synchronized: state != libc::TIME_ERROR && timex.status & libc::STA_UNSYNC == 0,
        leap,
        max_error: Duration::from_micros(u64::try_from(timex.maxerror).unwrap_or(0)),
    })
}

/// Elsewhere the state can't be read: the caller serves the clock as unknown.
#[cfg(not(target_os = "linux"))]
pub fn host_clock() -> io::Result<HostClock> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_clock_state_can_be_read() {
        let clock = host_clock().expect("ntp_adjtime with modes 0 needs no privilege");
        // Whatever this machine's state, the kernel bounds maxerror at 16 s.
        assert!(
            clock.max_error <= std::time::Duration::from_secs(16),
            "{clock:?}"
        );
    }
}
