//! Kernel receive timestamps: `SO_TIMESTAMPNS`, read with `recvmsg`.
//!
//! Why `nix` and not `timestamped-socket` (ntpd-rs's async socket): nix's
//! `recvmsg` runs inside tokio's own `UdpSocket::try_io`, so the daemon keeps
//! one socket type, one runtime and its minimum Rust version, and this file
//! stays the only place that knows about control messages.

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use tokio::io::Interest;
use tokio::net::UdpSocket;

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
}

/// Room for the control messages of one receive (a `timespec`), allocated
/// once per socket rather than once per datagram.
#[derive(Debug)]
pub struct ControlBuffer(Vec<u8>);

impl Default for ControlBuffer {
    fn default() -> Self {
        #[cfg(target_os = "linux")]
        let space = nix::cmsg_space!(nix::sys::time::TimeSpec);
        #[cfg(not(target_os = "linux"))]
        let space = Vec::new();
        ControlBuffer(space)
    }
}

/// Asks the kernel to stamp every datagram `socket` receives with the time it
/// arrived (`SO_TIMESTAMPNS`).
pub fn enable_receive_timestamps(socket: &UdpSocket) -> io::Result<()> {
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

/// Waits for a datagram on `socket` and receives it into `buffer`, with its
/// kernel timestamp if the socket has them on.
pub async fn receive(
    socket: &UdpSocket,
    buffer: &mut [u8],
    control: &mut ControlBuffer,
) -> io::Result<Received> {
    loop {
        socket.readable().await?;
        match socket.try_io(Interest::READABLE, || receive_now(socket, buffer, control)) {
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

#[cfg(target_os = "linux")]
fn receive_now(
    socket: &UdpSocket,
    buffer: &mut [u8],
    control: &mut ControlBuffer,
) -> io::Result<Received> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};

    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control.0),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let peer = message
        .address
        .and_then(|address| {
            address
                .as_sockaddr_in()
                .map(|v4| SocketAddr::V4((*v4).into()))
                .or_else(|| {
                    address
                        .as_sockaddr_in6()
                        .map(|v6| SocketAddr::V6((*v6).into()))
                })
        })
        .ok_or_else(|| io::Error::other("a datagram without an IP source"))?;
    let kernel_time = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(spec) => {
                let since_epoch = std::time::Duration::from(spec);
                Some(SystemTime::UNIX_EPOCH + since_epoch)
            }
            _ => None,
        })
    });
    Ok(Received {
        len: message.bytes,
        peer,
        kernel_time,
    })
}

#[cfg(not(target_os = "linux"))]
fn receive_now(
    socket: &UdpSocket,
    buffer: &mut [u8],
    _control: &mut ControlBuffer,
) -> io::Result<Received> {
    let (len, peer) = socket.try_recv_from(buffer)?;
    Ok(Received {
        len,
        peer,
        kernel_time: None,
    })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

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
        let mut buffer = [0u8; 64];
        let mut control = ControlBuffer::default();
        let received = receive(&socket, &mut buffer, &mut control).await.unwrap();
        let after = SystemTime::now();
        assert_eq!(&buffer[..received.len], b"hello");
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
        let mut buffer = [0u8; 64];
        let received = receive(&socket, &mut buffer, &mut ControlBuffer::default())
            .await
            .unwrap();
        assert_eq!(received.kernel_time, None);
        assert_eq!(received.peer, client.local_addr().unwrap());
    }
}
