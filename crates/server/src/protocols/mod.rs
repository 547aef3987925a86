//! Each protocol's request path, one file each, as the drive loop
//! ([`crate::engine`]) runs it:
//!
//! - [`seed_socket`]: the seed's socket, where the seed's protocol and v2
//!   are siblings;
//! - [`seed`]: the seed's login/menu protocol and its sessions;
//! - [`v2`]: protocol v2, beside the seed's on its socket;
//! - [`session_ends`]: what the two share: a session's end counted and
//!   logged, the idle and shutdown notices a chunk a turn;
//! - [`sntp`]: SNTP server mode;
//! - [`nts`]: SNTP authenticated with NTS, on the same socket;
//! - [`time`]: RFC 868 Time and RFC 867 Daytime;
//! - [`roughtime`]: Roughtime, signed a batch at a time.

pub mod nts;
pub mod roughtime;
pub mod seed;
pub mod seed_socket;
pub mod session_ends;
pub mod sntp;
pub mod time;
pub mod v2;
