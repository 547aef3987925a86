//! `horad`, the hora time daemon: a thin driver of I/O, time and tasks around
//! the protocol decisions of `hora_proto`.
//!
//! - [`config`]: `config.toml`, with defaults and validation, and the
//!   table of keys (flag, range, what a reload does) everything else reads;
//! - [`cli`]: the command line, which overrides the file;
//! - [`live`]: the live view, everything the loops and `/status` read of
//!   the configuration, published once per reload;
//! - [`reload`]: what a reload (SIGHUP) applies, refuses and says;
//! - [`gate`]: access lists and per-source rate limits, before any protocol;
//! - [`sockets`]: every socket horad binds: one list of the UDP protocols
//!   served, a group per protocol steered by source address, the listeners;
//! - [`server`]: starts each worker's loops on its sockets, and the tasks;
//!   shutdown;
//! - [`workers`]: where each worker's loops run (threads of their own);
//! - [`engine`]: the one drive loop every protocol's socket runs;
//! - [`outbox`]: a batch's replies on their way out, and the transmit
//!   timestamp each carries (stamped in the send call that takes it);
//! - [`protocols`]: each protocol's request path (seed and v2 as siblings
//!   on the seed's socket, SNTP, NTS, Time and Daytime);
//! - [`sessions`]: the session table keyed by peer address, with its limits
//!   and idle deadlines;
//! - [`clock_state`]: the host clock's state, read from the kernel once a
//!   second, as every SNTP reply describes it;
//! - [`stats`]: the counters;
//! - [`ops`]: what operators see: `/metrics` and `/status` over HTTP;
//! - [`nts`]: Network Time Security's I/O: the key exchange listener, its
//!   certificate, the cookie keys' file;
//! - [`slots`]: bounded TCP connections, in all and per source address;
//! - [`sys`]: the calls to the OS (`ntp_adjtime`, receive timestamps,
//!   systemd notification), behind safe functions;
//! - [`time_cache`]: the time reply, rendered once a second;
//! - [`log_budget`]: a cap on each kind of log line a peer can cause;
//! - [`logging`]: the `tracing` subscriber.

pub mod cli;
pub mod clock_state;
pub mod config;
pub mod engine;
pub mod gate;
pub mod live;
pub mod log_budget;
pub mod logging;
pub mod nts;
pub mod ops;
pub mod outbox;
pub mod protocols;
pub mod reload;
pub mod roughtime_key;
pub mod server;
pub mod sessions;
pub mod slots;
pub mod sockets;
pub mod stats;
pub mod sys;
pub mod time_cache;
pub mod workers;

pub use config::Config;
pub use server::{Server, StartError};
pub use sockets::BindError;
