//! The floor: the simplest server of hora's protocol, for benchmarks.
//!
//! One thread, one blocking `std::net::UdpSocket`, no sessions, no async, no
//! logs: `login` gets the menu, `1` the time, `2` the logout, anything else
//! the invalid-option reply. It renders the time once a second, as horad
//! does, so that the two differ only in what sessions and async cost.
//!
//! ```sh
//! cargo run --release --example baseline -- 127.0.0.1:5006
//! ```

use std::net::UdpSocket;

use hora_proto::wire::{INVALID_OPTION, LOGIN_MENU, MAX_DATAGRAM, SESSION_CLOSED};
use hora_proto::{parse, Request, TimeReply};

fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5006".to_owned());
    let socket = UdpSocket::bind(&addr)?;
    eprintln!("baseline listening on {}", socket.local_addr()?);
    let mut buffer = [0u8; MAX_DATAGRAM + 1];
    let mut time = TimeReply::render(chrono::Local::now().naive_local());
    let mut second = unix_second();
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buffer) else {
            continue;
        };
        let reply: &[u8] = match parse(&buffer[..len]) {
            Ok(Request::Login) => LOGIN_MENU.as_bytes(),
            Ok(Request::Time) => {
                let now = unix_second();
                if now != second {
                    second = now;
                    time = TimeReply::render(chrono::Local::now().naive_local());
                }
                time.as_bytes()
            }
            Ok(Request::Logout) => SESSION_CLOSED.as_bytes(),
            Err(_) => INVALID_OPTION.as_bytes(),
        };
        let _ = socket.send_to(reply, peer);
    }
}

fn unix_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
