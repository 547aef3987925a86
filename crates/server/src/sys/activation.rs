//! Sockets handed over by systemd (socket activation, sd_listen_fds(3)):
//! `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (each socket's
//! `FileDescriptorName=`, which names the protocol it serves). systemd keeps
//! them open while horad restarts, so what clients send meanwhile waits in
//! the socket for the next horad instead of being refused. The `listenfd`
//! crate takes the descriptors (it checks each one's type and that they
//! are this process's); this module only pairs them with their names.

use std::io;
use std::net::{TcpListener, UdpSocket};

/// The sockets systemd passed, each with its name (empty when none was
/// given).
#[derive(Debug, Default)]
pub struct Passed {
    /// The datagram sockets.
    pub udp: Vec<(String, UdpSocket)>,
    /// The stream listeners.
    pub tcp: Vec<(String, TcpListener)>,
}

impl Passed {
    /// Whether systemd passed any socket.
    pub fn is_empty(&self) -> bool {
        self.udp.is_empty() && self.tcp.is_empty()
    }
}

/// Takes the sockets systemd passed to this process, if any. Call it before
/// any thread starts: the crate removes `LISTEN_FDS` and `LISTEN_PID` from
/// the environment (children must not take them for theirs).
pub fn take() -> io::Result<Passed> {
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':').map(str::to_owned);
    let mut fds = listenfd::ListenFd::from_env();
    let mut passed = Passed::default();
    for index in 0..fds.len() {
        let name = names.next().unwrap_or_default();
        if let Ok(Some(socket)) = fds.take_udp_socket(index) {
            passed.udp.push((name, socket));
        } else if let Some(listener) = fds.take_tcp_listener(index)? {
            passed.tcp.push((name, listener));
        }
    }
    std::env::remove_var("LISTEN_FDNAMES");
    Ok(passed)
}
