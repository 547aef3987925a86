//! Every call horad makes to the operating system beyond plain sockets,
//! behind safe functions that return plain values:
//!
//! - [`clock`]: the host clock's state (`ntp_adjtime`, read-only), the
//!   one of the workspace's three `unsafe` calls (with [`memory`]'s and
//!   `hora_proto::cpu`'s `cpuid`), each with its SAFETY note;
//! - [`timestamps`]: kernel receive timestamps (`SO_TIMESTAMPNS`);
//! - [`transmit_stamps`]: kernel transmit timestamps (`SO_TIMESTAMPING`),
//!   read back from the socket's error queue;
//! - [`batch`]: `recvmmsg`/`sendmmsg`, a batch of datagrams per kernel crossing;
//! - [`destination`]: the address a datagram was sent to on a wildcard
//!   socket (`IP_PKTINFO`), for the reply to leave from it;
//! - [`steer`]: which worker's socket a datagram reaches, by its source
//!   address (`SO_ATTACH_REUSEPORT_CBPF`);
//! - [`notify`]: systemd readiness (`sd_notify`);
//! - [`activation`]: the sockets systemd passes (socket activation);
//! - [`journal`]: whether standard error is the journal (`JOURNAL_STREAM`);
//! - [`memory`]: freed memory handed back to the OS (`malloc_trim`).
//!
//! Elsewhere than Linux, the clock's state reads as unknown, no datagram
//! carries a kernel timestamp and there is no systemd to notify; horad then
//! says so and goes on.

pub mod activation;
pub mod batch;
pub mod clock;
pub mod destination;
pub mod journal;
pub mod memory;
pub mod notify;
pub mod steer;
pub mod timestamps;
pub mod transmit_stamps;

pub use clock::host_clock;
pub use destination::interface_index;

/// Whether `socket` has `SO_REUSEPORT` (a socket systemd passed: its
/// unit's `ReusePort=yes`).
pub fn reuses_port(socket: &impl std::os::fd::AsFd) -> bool {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{getsockopt, sockopt::ReusePort};
        getsockopt(socket, ReusePort).unwrap_or(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        false
    }
}
pub use timestamps::{enable_receive_timestamps, Received};
