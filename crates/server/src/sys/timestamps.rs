//! Kernel receive timestamps: `SO_TIMESTAMPNS` on a socket, read with each
//! datagram by [`super::batch`]'s `recvmmsg`.
//!
//! Why `nix` and not `timestamped-socket` (ntpd-rs's async socket): nix's
//! `recvmmsg` runs inside tokio's own `UdpSocket::try_io`, so the daemon
//! keeps one socket type, one runtime and its minimum Rust version.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::SystemTime;

/// One datagram received, with the kernel's receive time when it gave one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Its length (it was truncated to the buffer if longer).
    pub len: usize,
    /// Its source.
    pub peer: SocketAddr,
    /// When the kernel took it off the wire (`SO_TIMESTAMPNS`), if the socket
    /// asked for it and the kernel gave it.
    pub kernel_time: Option<SystemTime>,
    /// The address it was sent to, on a socket bound to a wildcard address
    /// ([`super::destination`]); `None` elsewhere.
    pub local: Option<super::destination::Local>,
}

/// Asks the kernel to stamp every datagram `socket` receives with the time it
/// arrived (`SO_TIMESTAMPNS`).
pub fn enable_receive_timestamps(socket: &impl AsFd) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt::ReceiveTimestampns};
        setsockopt(socket, ReceiveTimestampns, &true).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = socket;
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::sys::batch::Inbox;
    use tokio::net::UdpSocket;

    #[tokio::test]
    async fn a_timestamped_socket_gets_the_kernels_receive_time() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable_receive_timestamps(&socket).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let before = SystemTime::now();
        client
            .send_to(b"hello", socket.local_addr().unwrap())
            .await
            .unwrap();
        let mut inbox = Inbox::default();
        assert_eq!(inbox.receive(&socket).await.unwrap(), 1);
        let after = SystemTime::now();
        let (datagram, received) = inbox.get(0).unwrap();
        assert_eq!(datagram, b"hello");
        assert_eq!(received.peer, client.local_addr().unwrap());
        let stamped = received.kernel_time.expect("a kernel timestamp");
        assert!(before <= stamped && stamped <= after, "{stamped:?}");
    }

    #[tokio::test]
    async fn without_timestamps_on_a_datagram_has_none() {
        let socket = UdpSocket::bind("[::1]:0").await.unwrap();
        let client = UdpSocket::bind("[::1]:0").await.unwrap();
        client
            .send_to(b"x", socket.local_addr().unwrap())
            .await
            .unwrap();
        let mut inbox = Inbox::default();
        inbox.receive(&socket).await.unwrap();
        let (_, received) = inbox.get(0).unwrap();
        assert_eq!(received.kernel_time, None);
        assert_eq!(received.peer, client.local_addr().unwrap());
    }
}
