//! Steering by source address: the classic BPF program that picks, for
//! each datagram, which socket of an `SO_REUSEPORT` group gets it
//! (`SO_ATTACH_REUSEPORT_CBPF`), from a hash of its source IP alone. The
//! kernel's own choice hashes the 4-tuple, so one address's datagrams
//! from two ports could meet two workers; with this program an address
//! always meets one, which then owns its sessions, its rate-limit bucket
//! and its interleaved-mode log entries with no lock between workers.
//!
//! [`worker_of`] is the program's twin in Rust, for tests and for anyone
//! asking which worker an address meets.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;

/// The multiplier of the hash: 2^32 / φ (Knuth's multiplicative hashing).
const GOLDEN: u32 = 0x9E37_79B1;

/// The most workers a group is steered over: the kernel's limit on the
/// sockets of one `SO_REUSEPORT` group is far above it.
pub const MAX_WORKERS: usize = 1024;

/// The worker, of `workers`, that datagrams from `ip` reach: what the
/// program computes. An IPv4 address on an IPv6 socket (`::ffff:a.b.c.d`)
/// arrives as IPv4 and hashes as one.
pub fn worker_of(ip: IpAddr, workers: usize) -> usize {
    let key = match ip {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u32::from(v4),
            None => {
                let octets = v6.octets();
                octets.chunks_exact(4).fold(0, |key, word| {
                    key ^ u32::from_be_bytes([word[0], word[1], word[2], word[3]])
                })
            }
        },
    };
    let workers = u32::try_from(workers.clamp(1, MAX_WORKERS)).unwrap_or(1);
    ((key.wrapping_mul(GOLDEN) >> 16) % workers) as usize
}

/// Attaches the program steering over `workers` sockets to the group
/// `socket` belongs to: the first `workers` sockets that joined it (bound
/// with `SO_REUSEPORT` on its address) get the datagrams; any joining
/// later (the send-only sockets of [`crate::sys::transmit_stamps`]) get
/// none.
pub fn attach(socket: &impl AsFd, workers: usize) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::socket::{setsockopt, sockopt::AttachReusePortCbpf};
        let workers = u32::try_from(workers.clamp(1, MAX_WORKERS)).unwrap_or(1);
        let mut program = program(workers);
        let program = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        setsockopt(socket, AttachReusePortCbpf, &program).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (socket, workers);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// The program: the IP version from the network header, the source
/// address (IPv4's word, or IPv6's four words XORed), multiplied by
/// [`GOLDEN`], its high half modulo `workers`. A reuseport program sees
/// the datagram from its UDP payload on, so the header is read at
/// negative offsets from `SKF_NET_OFF`. For one worker, one instruction:
/// the first socket.
#[cfg(target_os = "linux")]
fn program(workers: u32) -> Vec<libc::sock_filter> {
    if workers <= 1 {
        return vec![libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        }];
    }
    use libc::{
        BPF_A, BPF_ABS, BPF_ALU, BPF_B, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_MISC, BPF_MOD,
        BPF_MUL, BPF_RET, BPF_RSH, BPF_TAX, BPF_W, BPF_X, BPF_XOR, SKF_NET_OFF,
    };
    let op = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let net = |offset: i32| (SKF_NET_OFF + offset) as u32;
    let load_word = |offset| op(BPF_LD | BPF_W | BPF_ABS, net(offset));
    let xor_x = op(BPF_ALU | BPF_XOR | BPF_X, 0);
    let tax = op(BPF_MISC | BPF_TAX, 0);
    vec![
        // 0-2: the version nibble; 6 jumps to the IPv6 words.
        op(BPF_LD | BPF_B | BPF_ABS, net(0)),
        op(BPF_ALU | BPF_RSH | BPF_K, 4),
        libc::sock_filter {
            code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
            jt: 2,
            jf: 0,
            k: 6,
        },
        // 3-4: IPv4's source address, then the hash.
        load_word(12),
        op(BPF_JMP | BPF_JA, 10),
        // 5-14: IPv6's source address, word by word, XORed.
        load_word(8),
        tax,
        load_word(12),
        xor_x,
        tax,
        load_word(16),
        xor_x,
        tax,
        load_word(20),
        xor_x,
        // 15-18: the hash, the worker.
        op(BPF_ALU | BPF_MUL | BPF_K, GOLDEN),
        op(BPF_ALU | BPF_RSH | BPF_K, 16),
        op(BPF_ALU | BPF_MOD | BPF_K, workers),
        op(BPF_RET | BPF_A, 0),
    ]
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
    use std::time::Duration;

    use super::*;

    /// `workers` sockets in one group on `addr` (port 0: the first one's).
    fn group(addr: SocketAddr, workers: usize) -> Vec<UdpSocket> {
        use nix::sys::socket::{setsockopt, sockopt::ReusePort};
        use socket2::{Domain, Socket, Type};
        let mut sockets: Vec<UdpSocket> = Vec::new();
        for _ in 0..workers {
            let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).unwrap();
            setsockopt(&socket, ReusePort, &true).unwrap();
            let at = sockets.first().map_or(addr, |s| s.local_addr().unwrap());
            socket.bind(&at.into()).unwrap();
            let socket = UdpSocket::from(socket);
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .unwrap();
            sockets.push(socket);
        }
        sockets
    }

    /// Sends one datagram from each source and says which socket of
    /// `sockets` got it.
    fn steered(sockets: &[UdpSocket], sources: &[SocketAddr]) -> Vec<usize> {
        let to = sockets[0].local_addr().unwrap();
        sources
            .iter()
            .map(|&source| {
                let client = UdpSocket::bind(source).unwrap();
                client.send_to(b"which", to).unwrap();
                let expected = worker_of(source.ip(), sockets.len());
                let mut buffer = [0u8; 16];
                let (_, from) = sockets[expected]
                    .recv_from(&mut buffer)
                    .unwrap_or_else(|e| panic!("{source}: not at worker {expected}: {e}"));
                assert_eq!(from, client.local_addr().unwrap());
                expected
            })
            .collect()
    }

    #[test]
    fn each_source_address_meets_the_worker_its_hash_names_whatever_its_port() {
        let sockets = group(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), 3);
        attach(&sockets[0], 3).unwrap();
        let sources: Vec<SocketAddr> = (1..=60u8)
            .flat_map(|host| {
                // Two ports each: the kernel's own hash would split some.
                [0, 0].map(|port| SocketAddr::from((Ipv4Addr::new(127, 0, 1, host), port)))
            })
            .collect();
        let workers = steered(&sockets, &sources);
        for worker in 0..3 {
            let met = workers.iter().filter(|&&w| w == worker).count();
            assert!((20..=70).contains(&met), "worker {worker}: {met} of 120");
        }
        for socket in &sockets {
            socket.set_nonblocking(true).unwrap();
            assert!(
                socket.recv_from(&mut [0; 16]).is_err(),
                "nothing else arrived"
            );
        }
    }

    #[test]
    fn ipv6_sources_are_steered_too() {
        let sockets = group(SocketAddr::from((Ipv6Addr::LOCALHOST, 0)), 2);
        attach(&sockets[0], 2).unwrap();
        let sources = vec![SocketAddr::from((Ipv6Addr::LOCALHOST, 0)); 8];
        let workers = steered(&sockets, &sources);
        assert!(workers.iter().all(|&w| w == workers[0]), "{workers:?}");
    }

    #[test]
    fn sockets_joining_after_the_first_workers_get_nothing() {
        let sockets = group(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), 4);
        // Two workers; the last two stand for the send-only sockets.
        attach(&sockets[0], 2).unwrap();
        let sources: Vec<SocketAddr> = (1..=40u8)
            .map(|host| SocketAddr::from((Ipv4Addr::new(127, 0, 2, host), 0)))
            .collect();
        steered(&sockets[..2], &sources);
        for socket in &sockets[2..] {
            socket.set_nonblocking(true).unwrap();
            assert!(socket.recv_from(&mut [0; 16]).is_err());
        }
    }

    #[test]
    fn the_twin_maps_an_ipv4_mapped_address_as_ipv4() {
        let v4 = Ipv4Addr::new(192, 0, 2, 7);
        for workers in 1..=8 {
            assert_eq!(
                worker_of(IpAddr::V4(v4), workers),
                worker_of(IpAddr::V6(v4.to_ipv6_mapped()), workers)
            );
            assert!(worker_of(IpAddr::V6(Ipv6Addr::LOCALHOST), workers) < workers);
        }
        assert_eq!(worker_of(IpAddr::V4(v4), 0), 0, "no workers reads as one");
    }
}
