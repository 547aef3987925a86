//! The hora protocol, with no sockets, no tasks and no clock of its own.
//!
//! hora speaks the protocol of a small Python UDP client and server (the
//! "seed"): the client sends `login`, the server answers with a menu, option
//! `1` returns the server's date and time, `2` ends the session, anything else
//! ends it as an invalid option, and ten seconds of silence end it too.
//! `PROTOCOL.md` at the root of the repository is the full specification.
//!
//! Every protocol decision lives here so that the server and the client are
//! thin drivers of I/O and time, and every rule is unit-testable:
//!
//! - [`wire`]: the exact bytes on the wire, the seed's Portuguese strings and
//!   the few replies hora adds;
//! - [`request`]: what a datagram sent to the server means ([`parse`]);
//! - [`session`]: the server's session state machine ([`decide`], [`expire`],
//!   [`shut_down`]), with `now` passed in;
//! - [`clock`]: the time reply, rendered from a wall-clock time it is given;
//! - [`message`]: how a client reads what the server sent ([`ServerMessage`]);
//! - [`sntp`], [`rfc868`], [`daytime`]: the standard time protocols horad
//!   also serves (SNTPv4 server mode, RFC 868 Time, RFC 867 Daytime);
//! - [`host_clock`]: what SNTP replies say of the host clock, from the
//!   kernel's state and the admin's settings;
//! - [`access`], [`ratelimit`]: who may be answered, and how often;
//! - [`loop_guard`]: what is never answered, so two servers can't loop;
//! - [`overload`]: what a server that has fallen behind still answers;
//! - [`nts`]: Network Time Security (RFC 8915): key exchange records,
//!   cookies, and authenticated SNTP;
//! - [`cpu`]: what the build asks of the CPU, checked before anything runs;
//! - [`report`]: how both binaries say an error: one line, each cause once;
//! - [`outcome`]: what became of each datagram, one outcome each;
//! - [`transmit`]: when each SNTP reply of a batch leaves, for its stamp;
//! - [`interleave`]: interleaved mode's log of replies and when they left;
//! - [`v2`]: hora's second session protocol beside the seed's, whose
//!   sessions a forger can't fake, with time to the nanosecond.

pub mod access;
pub mod clock;
pub mod cpu;
pub mod daytime;
pub mod host_clock;
pub mod interleave;
pub mod loop_guard;
pub mod message;
pub mod nts;
pub mod outcome;
pub mod overload;
pub mod ratelimit;
pub mod report;
pub mod request;
pub mod rfc868;
pub mod roughtime;
pub mod session;
pub mod sntp;
pub mod transmit;
pub mod v2;
pub mod wire;

pub use clock::TimeReply;
pub use message::{ClosedReason, ServerMessage};
pub use request::{parse, ParseError, Request};
pub use session::{
    answers_stranger, decide, displace, establishes, expire, shut_down, Decision, Effect,
    EndReason, PeerState, Rules,
};
pub use wire::Reply;
