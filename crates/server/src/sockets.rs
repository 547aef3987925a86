//! horad's sockets, bound: one list of the UDP protocols it serves, each a
//! group of sockets (one per worker, in one `SO_REUSEPORT` group steered by
//! source address, with SNTP's send-only sockets beside), and its TCP
//! listeners. Binding, sizing, steering and the errors an admin reads live
//! here; what each protocol does with its socket is [`crate::server`]'s.
//! A UDP protocol is added with a variant of [`Udp`] and its row in
//! [`Udp::ALL`].

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};

use tracing::{debug, warn};

use crate::config::{Addresses, Config, Listen};
use crate::sys;

/// The receive buffer asked of the kernel for the seed protocol's socket
/// (it caps it at `net.core.rmem_max`). The default (~200 KiB) holds only a
/// few hundred small datagrams, so a burst of logins from a thousand peers
/// overflows it and datagrams are lost; a session's client would resend
/// only after a second.
const RECEIVE_BUFFER_BYTES: usize = 4 << 20;

/// The receive buffer of the SNTP socket: small, as chronyd keeps its own.
/// A request that waits in a deep queue gets a late answer whose delay the
/// client can't use; a request dropped from a short one is retried by its
/// client, which polls again anyway. 256 KiB holds a few hundred requests,
/// under a millisecond of work (BENCHMARKS.md, "SNTP under a garbage flood at full speed").
const SNTP_RECEIVE_BUFFER_BYTES: usize = 256 << 10;

/// Connections the kernel queues for a listener before horad accepts
/// them: Linux's default `somaxconn`. std's 128 overflowed under a flood
/// of connections, and a client whose connection lands on a full queue is
/// dropped or reset by the kernel before horad can tell it from the flood.
const LISTEN_BACKLOG: i32 = 4096;

/// One protocol's sockets, one per worker, in one `SO_REUSEPORT` group
/// (one socket alone with one worker, but SNTP's).
pub type Group = Vec<UdpSocket>;

/// A UDP protocol horad serves on a socket of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp {
    /// The seed's login/menu protocol, and protocol v2 beside it.
    Seed,
    /// SNTP, plain and NTS-authenticated.
    Sntp,
    /// The Time Protocol (RFC 868).
    Time,
    /// The Daytime Protocol (RFC 867).
    Daytime,
    /// Roughtime (RFC 10049).
    Roughtime,
}

impl Udp {
    /// Every UDP protocol, in the order they are bound and listed.
    pub const ALL: [Udp; 5] = [
        Udp::Seed,
        Udp::Sntp,
        Udp::Time,
        Udp::Daytime,
        Udp::Roughtime,
    ];

    /// Its name in `/status` and in tests.
    pub fn name(self) -> &'static str {
        match self {
            Udp::Seed => "seed",
            Udp::Sntp => "sntp",
            Udp::Time => "time",
            Udp::Daytime => "daytime",
            Udp::Roughtime => "roughtime",
        }
    }

    /// Where `config` serves it: none, off.
    fn binds(self, config: &Config) -> Vec<Listen> {
        let binds = match self {
            Udp::Seed => &config.bind,
            // Validation refuses an unusable clock first; never served so.
            Udp::Sntp if config.sntp.settings().is_none() => return Vec::new(),
            Udp::Sntp => &config.sntp.bind,
            Udp::Time => &config.time.bind,
            Udp::Daytime => &config.daytime.bind,
            Udp::Roughtime => &config.roughtime.bind,
        };
        binds.iter().cloned().collect()
    }

    /// The receive buffer its sockets ask for.
    fn buffer(self) -> usize {
        match self {
            Udp::Sntp => SNTP_RECEIVE_BUFFER_BYTES,
            Udp::Seed | Udp::Time | Udp::Daytime | Udp::Roughtime => RECEIVE_BUFFER_BYTES,
        }
    }

    /// What the kernel's receive timestamps are for on it, said when they
    /// can't be had. Every socket asks for them even where they teach
    /// nothing: the batch reader's headers are shared by a thread's
    /// sockets, and one without a timestamp would leave them no room for
    /// the SNTP socket's (`sys::batch`).
    fn without_timestamps(self) -> &'static str {
        match self {
            Udp::Seed => "no kernel receive timestamps on the seed protocol's socket; it never counts as behind",
            Udp::Sntp => "no kernel receive timestamps on the SNTP socket; the clock is read instead",
            Udp::Time | Udp::Daytime | Udp::Roughtime => "no kernel receive timestamps",
        }
    }
}

/// One UDP protocol's sockets, bound.
#[derive(Debug)]
pub struct Bound {
    /// The protocol served on them.
    pub udp: Udp,
    /// One socket per worker.
    pub sockets: Group,
    /// SNTP's send-only socket beside each of its sockets, for replies
    /// whose kernel transmit time is wanted; `None` elsewhere or where one
    /// can't be had.
    pub beside: Vec<Option<UdpSocket>>,
    /// The interface the sockets are tied to, if any.
    pub interface: Option<String>,
}

impl Bound {
    /// The address bound (its port when the configuration said port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        first(&self.sockets)?.local_addr()
    }

    /// The address bound, with its interface, as the configuration writes
    /// it: what `/status` lists.
    pub fn listen(&self) -> io::Result<Listen> {
        Ok(Listen {
            addr: self.local_addr()?,
            interface: self.interface.clone(),
        })
    }

    /// The port bound, if the OS says.
    pub fn port(&self) -> Option<u16> {
        self.local_addr().ok().map(|addr| addr.port())
    }
}

/// The socket could not be bound.
#[derive(Debug, thiserror::Error)]
// The cause is said here, before the hint; `report::one_line` does not say
// it again.
#[error("cannot bind {addr}: {source}{}", privileged_hint(.addr, .source))]
pub struct BindError {
    /// The address asked for, as written (with its interface, if any).
    pub addr: String,
    /// What the OS said.
    pub source: io::Error,
}

/// What an admin needs where a port below 1024 was refused: the
/// capability, and the two lines of the unit that grant it.
fn privileged_hint(addr: &str, error: &io::Error) -> &'static str {
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, port)| port.split('%').next()?.parse::<u16>().ok());
    if error.kind() == io::ErrorKind::PermissionDenied && port.is_some_and(|port| port < 1024) {
        " (ports below 1024 need CAP_NET_BIND_SERVICE: uncomment the unit's \
         AmbientCapabilities=CAP_NET_BIND_SERVICE and \
         CapabilityBoundingSet=CAP_NET_BIND_SERVICE, or run by hand as root)"
    } else {
        ""
    }
}

/// Binds every UDP protocol `config` serves, on each of its addresses, a
/// socket per worker of the `wanted` each (the first one systemd's, where
/// it passed one for that address: `passed`, which keeps those it did
/// not), steers them, and returns them with how many workers serve
/// ([`steer`]).
pub fn bind_udp(
    config: &Config,
    wanted: usize,
    passed: &mut Vec<(String, UdpSocket)>,
) -> Result<(Vec<Bound>, usize), BindError> {
    let wanted = workers_with(passed, wanted);
    let mut bound = Vec::new();
    for udp in Udp::ALL {
        for listen in udp.binds(config) {
            let theirs = take_passed(passed, udp.name(), &listen, |s| s.local_addr());
            bound.push(bind_one(udp, &listen, wanted, theirs)?);
        }
    }
    let workers = {
        let mut groups: Vec<&mut Group> = bound.iter_mut().map(|b| &mut b.sockets).collect();
        steer(&mut groups, wanted)
    };
    for one in &mut bound {
        one.beside = match one.udp {
            Udp::Sntp => sockets_beside(&one.sockets, workers),
            _ => one.sockets.iter().map(|_| None).collect(),
        };
    }
    Ok((bound, workers))
}

/// How many workers serve with the sockets systemd `passed`: `wanted`,
/// but one where a passed socket has no `SO_REUSEPORT` (the unit's
/// `ReusePort=yes`): the others could not join its port.
fn workers_with(passed: &[(String, UdpSocket)], wanted: usize) -> usize {
    let alone = passed.iter().find(|(_, socket)| !sys::reuses_port(socket));
    match alone {
        Some((name, _)) if wanted > 1 => {
            warn!(socket = %name, workers = wanted, "systemd passed a socket without ReusePort=yes: serving with one worker");
            1
        }
        _ => wanted,
    }
}

/// The names a socket unit's `FileDescriptorName=` may give a protocol's
/// sockets. Any other name (systemd's default is the unit's own) says
/// nothing of the protocol: the address alone decides.
const PROTOCOL_NAMES: [&str; 7] = [
    "seed",
    "sntp",
    "time",
    "daytime",
    "roughtime",
    "metrics",
    "nts-ke",
];

/// The socket systemd passed for `listen`, the address of protocol `name`,
/// if it did: one on that address that names no other protocol. Taken out
/// of `passed`.
fn take_passed<S>(
    passed: &mut Vec<(String, S)>,
    name: &str,
    listen: &Listen,
    addr_of: impl Fn(&S) -> io::Result<SocketAddr>,
) -> Option<S> {
    let at = passed.iter().position(|(given, socket)| {
        let another = PROTOCOL_NAMES.contains(&given.as_str()) && given != name;
        !another && addr_of(socket).is_ok_and(|a| a == listen.addr)
    })?;
    Some(passed.remove(at).1)
}

/// `udp`'s group on `listen`: a socket per worker of the `wanted` (the
/// first one `theirs`, systemd's, where it passed one), each with kernel
/// receive timestamps asked for.
fn bind_one(
    udp: Udp,
    listen: &Listen,
    wanted: usize,
    theirs: Option<UdpSocket>,
) -> Result<Bound, BindError> {
    let error = |source| BindError {
        addr: listen.to_string(),
        source,
    };
    let addr = scoped(listen).map_err(error)?;
    let device = listen.interface.as_deref();
    let sockets = match theirs {
        Some(socket) => adopt(socket, device, udp.buffer(), wanted).map_err(error)?,
        // SNTP's group is formed even for one worker, for its send-only
        // sockets to join.
        None => bind_group(addr, device, udp.buffer(), wanted, udp == Udp::Sntp).map_err(error)?,
    };
    if let Some(error) = sockets
        .iter()
        .find_map(|s| sys::enable_receive_timestamps(s).err())
    {
        warn!(%error, "{}", udp.without_timestamps());
    }
    // On a wildcard address, each datagram's destination: its reply leaves
    // from the address the client asked.
    if sys::destination::wanted(addr) {
        if let Some(error) = sockets
            .iter()
            .find_map(|s| sys::destination::enable(s, addr).err())
        {
            warn!(%error, %addr, "no destination addresses on a wildcard socket: replies leave from the route's source address");
        }
    }
    Ok(Bound {
        udp,
        sockets,
        beside: Vec::new(),
        interface: listen.interface.clone(),
    })
}

/// `listen`'s address, an IPv6 link-local one with its interface's index
/// as its scope (the kernel needs it to bind one).
fn scoped(listen: &Listen) -> io::Result<SocketAddr> {
    match (listen.addr, &listen.interface) {
        (SocketAddr::V6(mut v6), Some(name)) if v6.ip().is_unicast_link_local() => {
            v6.set_scope_id(sys::interface_index(name)?);
            Ok(SocketAddr::V6(v6))
        }
        (addr, _) => Ok(addr),
    }
}

/// Every TCP listener of `addresses` ([`bind_listener`]), systemd's where
/// it passed one named `name` (or unnamed) for the address.
pub fn bind_listeners(
    addresses: &Addresses,
    name: &str,
    passed: &mut Vec<(String, TcpListener)>,
) -> Result<Vec<TcpListener>, BindError> {
    let each = addresses.iter().map(|listen| {
        match take_passed(passed, name, listen, TcpListener::local_addr) {
            Some(theirs) => theirs
                .set_nonblocking(true)
                .map(|()| theirs)
                .map_err(|source| BindError {
                    addr: listen.to_string(),
                    source,
                }),
            None => bind_listener(listen),
        }
    });
    each.collect()
}

/// A TCP listener on `listen`, for the operators' HTTP and the key
/// exchange (each served on its own thread's runtime, so not yet
/// registered with any).
pub fn bind_listener(listen: &Listen) -> Result<TcpListener, BindError> {
    let error = |source| BindError {
        addr: listen.to_string(),
        source,
    };
    let addr = scoped(listen).map_err(error)?;
    listener(addr, listen.interface.as_deref()).map_err(error)
}

fn listener(addr: SocketAddr, device: Option<&str>) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    tie(&socket, device)?;
    // As std sets it: a restart binds at once beside connections in
    // TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Ties `socket` to the interface named `device`, if any
/// (`SO_BINDTODEVICE`): it then takes only what arrives there.
fn tie(socket: &socket2::Socket, device: Option<&str>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(name) = device {
        socket.bind_device(Some(name.as_bytes()))?;
    }
    #[cfg(not(target_os = "linux"))]
    if device.is_some() {
        let _ = socket;
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    Ok(())
}

/// The ports of every UDP socket the daemon serves: a datagram from one
/// of them (on another host) is another daemon's reply, never a request.
pub fn own_ports(bound: &[Bound]) -> Vec<u16> {
    bound.iter().filter_map(Bound::port).collect()
}

/// A group's first socket: its address is the group's.
fn first(group: &Group) -> io::Result<&UdpSocket> {
    group
        .first()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
}

/// With more than one worker wanted, attaches the steering program to
/// every group (one socket per worker each) and returns how many workers
/// serve: `wanted`, or 1 if the kernel refused a program, every group then
/// cut to its first socket (one worker is always exact; several steered by
/// the kernel's 4-tuple hash are not). One worker's SNTP group gets its
/// program from [`sockets_beside`].
fn steer(groups: &mut [&mut Group], wanted: usize) -> usize {
    if wanted <= 1 {
        return 1;
    }
    let refused = groups
        .iter()
        .find_map(|group| sys::steer::attach(first(group).ok()?, wanted).err());
    let Some(error) = refused else {
        return wanted;
    };
    warn!(%error, workers = wanted, "the kernel can't steer source addresses to workers (SO_ATTACH_REUSEPORT_CBPF): serving with one worker");
    for group in groups.iter_mut() {
        group.truncate(1);
    }
    1
}

/// The send-only socket beside each of SNTP's sockets, for replies whose
/// kernel transmit time is wanted (`sys::transmit_stamps::open_beside`).
/// With one worker the group's program is attached first (several workers
/// have theirs already); where it or a socket can't be had, none.
fn sockets_beside(sntp: &Group, workers: usize) -> Vec<Option<UdpSocket>> {
    let why_not = |error: io::Error| {
        debug!(%error, "no send-only socket beside SNTP's: its kernel transmit timestamps are turned on and off on it");
    };
    let steered = match (workers, first(sntp)) {
        (1, Ok(serving)) => sys::steer::attach(serving, 1),
        (_, serving) => serving.map(drop),
    };
    if let Err(error) = steered {
        why_not(error);
        return sntp.iter().map(|_| None).collect();
    }
    sntp.iter()
        .map(|serving| {
            sys::transmit_stamps::open_beside(serving)
                .map_err(why_not)
                .ok()
        })
        .collect()
}

/// `workers` non-blocking UDP sockets on `addr` (tied to `device`, if
/// any), each with a receive buffer of `buffer` bytes, in one
/// `SO_REUSEPORT` group; with one worker and `shared` false, one plain
/// socket. `shared`: the group is formed even for one worker, so that the
/// send-only socket for kernel-stamped replies can join it
/// (`sys::transmit_stamps::open_beside`). A plain bind first, closed at
/// once, keeps a port another socket holds an error, as without
/// `SO_REUSEPORT`: a second horad on the port still fails to start.
fn bind_group(
    addr: SocketAddr,
    device: Option<&str>,
    buffer: usize,
    workers: usize,
    shared: bool,
) -> io::Result<Group> {
    if workers <= 1 && !shared {
        return Ok(vec![bind_with(addr, device, buffer, false)?]);
    }
    if addr.port() != 0 {
        drop(bind_with(addr, device, buffer, false)?);
    }
    let first = bind_with(addr, device, buffer, true)?;
    // Port 0: the others join the port the first one got.
    let addr = first.local_addr()?;
    let mut group = vec![first];
    for _ in 1..workers {
        group.push(bind_with(addr, device, buffer, true)?);
    }
    Ok(group)
}

/// A group whose first socket is `theirs`, passed by systemd: made
/// non-blocking, its buffer sized, and joined by a socket per other worker
/// (the unit gave it `SO_REUSEPORT`, [`workers_with`]).
fn adopt(
    theirs: UdpSocket,
    device: Option<&str>,
    buffer: usize,
    workers: usize,
) -> io::Result<Group> {
    theirs.set_nonblocking(true)?;
    if let Err(error) = socket2::SockRef::from(&theirs).set_recv_buffer_size(buffer) {
        warn!(%error, "cannot size the receive buffer; bursts may be lost");
    }
    let addr = theirs.local_addr()?;
    let mut group = vec![theirs];
    for _ in 1..workers {
        group.push(bind_with(addr, device, buffer, true)?);
    }
    Ok(group)
}

fn bind_with(
    addr: SocketAddr,
    device: Option<&str>,
    buffer: usize,
    reuse_port: bool,
) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    tie(&socket, device)?;
    #[cfg(target_os = "linux")]
    if reuse_port {
        use nix::sys::socket::{setsockopt, sockopt::ReusePort};
        setsockopt(&socket, ReusePort, &true).map_err(io::Error::from)?;
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reuse_port;
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        warn!(%error, "cannot size the receive buffer; bursts may be lost");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    debug!(bytes = socket.recv_buffer_size()?, "receive buffer");
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_a_port_and_one_refused_program_means_one_worker() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut seed = bind_group(loopback, None, 1 << 16, 3, false).unwrap();
        let ports: Vec<u16> = seed
            .iter()
            .map(|s| s.local_addr().unwrap().port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|&p| p == ports[0]), "{ports:?}");
        assert_eq!(steer(&mut [&mut seed], 3), 3);
        // A group the kernel can't steer (no SO_REUSEPORT: two plain
        // sockets stand for it) turns every group back to one socket.
        let mut plain = vec![
            bind_with(loopback, None, 1 << 16, false).unwrap(),
            bind_with(loopback, None, 1 << 16, false).unwrap(),
        ];
        assert_eq!(steer(&mut [&mut seed, &mut plain], 3), 1);
        assert_eq!((seed.len(), plain.len()), (1, 1));
    }

    #[test]
    fn a_port_already_taken_is_refused_even_with_reuseport() {
        let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        assert!(bind_group(addr, None, 1 << 16, 2, true).is_err());
    }

    #[test]
    fn every_configured_address_of_every_protocol_is_bound_in_order_with_sntp_beside() {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut config = Config {
            bind: vec![loopback, "127.0.0.2:0".parse().unwrap()].into(),
            ..Config::default()
        };
        config.sntp.bind = loopback.into();
        config.daytime.bind = loopback.into();
        let (bound, workers) = bind_udp(&config, 1, &mut Vec::new()).unwrap();
        assert_eq!(workers, 1);
        let served: Vec<Udp> = bound.iter().map(|b| b.udp).collect();
        assert_eq!(served, [Udp::Seed, Udp::Seed, Udp::Sntp, Udp::Daytime]);
        assert_eq!(bound[1].local_addr().unwrap().ip().to_string(), "127.0.0.2");
        for one in &bound {
            assert_eq!(one.sockets.len(), 1);
            assert_eq!(one.beside.len(), 1, "{:?}", one.udp);
        }
        assert!(bound[0].beside[0].is_none() && bound[3].beside[0].is_none());
        assert!(bound[2].beside[0].is_some(), "SNTP's send-only socket");
        assert_eq!(own_ports(&bound).len(), 4);
    }

    #[test]
    fn a_passed_socket_goes_to_its_address_unless_it_names_another_protocol() {
        let socket = |addr: &str| UdpSocket::bind(addr).unwrap();
        let seed = socket("127.0.0.1:0");
        let sntp = socket("127.0.0.1:0");
        let (seed_at, sntp_at) = (seed.local_addr().unwrap(), sntp.local_addr().unwrap());
        let listen = |addr: SocketAddr| Listen {
            addr,
            interface: None,
        };
        // systemd names a unit's sockets after the unit unless told.
        let mut passed = vec![("horad.socket".to_owned(), seed), ("sntp".to_owned(), sntp)];
        let addr = |s: &UdpSocket| s.local_addr();
        assert!(take_passed(&mut passed, "seed", &listen(sntp_at), addr).is_none());
        let taken = take_passed(&mut passed, "seed", &listen(seed_at), addr).unwrap();
        assert_eq!(taken.local_addr().unwrap(), seed_at);
        assert!(take_passed(&mut passed, "sntp", &listen(sntp_at), addr).is_some());
        assert!(passed.is_empty());
    }
}
