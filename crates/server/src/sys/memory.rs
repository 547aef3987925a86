//! Giving freed memory back to the operating system (`malloc_trim`).
//!
//! After a flood the session table shrinks ([`crate::sessions`]), but
//! glibc keeps what it freed in its heap for reuse: a daemon that held a
//! million sessions for a minute would hold their memory for good. glibc's
//! `malloc_trim(0)` hands back every free page, in the middle of the heap
//! too. One of the workspace's three `unsafe` calls (the others are in
//! [`super::clock`] and `hora_proto::cpu`): no crate wraps it.

/// Hands the pages the allocator has free back to the OS; returns whether
/// any were. A no-op (`false`) where the C library is not glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn give_back_free_memory() -> bool {
    // SAFETY: `malloc_trim` takes no pointer and has no precondition; it
    // takes the allocator's own locks, so it may run beside any other
    // allocation on any thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Hands the pages the allocator has free back to the OS; returns whether
/// any were. A no-op (`false`) where the C library is not glibc.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_free_memory() -> bool {
    false
}
