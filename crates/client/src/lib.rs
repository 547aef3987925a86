//! `hora`, the client of the hora time server: the seed's interactive menu,
//! a one-shot mode for scripts, and an SNTP query for any NTP server. It owns the terminal and the socket and
//! asks `hora_proto` how to read what the server sends.
//!
//! - [`exchange`]: one request and its answer, with resends and a deadline;
//! - [`interactive`]: the menu conversation with a person;
//! - [`one_shot`]: `hora time`, for scripts;
//! - [`sntp`]: `hora sntp`, any NTP server's offset, as `ntpdate -q`;
//! - [`nts`]: `hora sntp --nts`: the key exchange, then authenticated SNTP;
//! - [`race`]: Happy Eyeballs over a name's addresses;
//! - [`socket`]: the local address a client binds;
//! - [`cli`]: the command line.

pub mod cli;
pub mod exchange;
pub mod interactive;
pub mod nts;
pub mod one_shot;
pub mod race;
pub mod roughtime;
pub mod sntp;
pub mod socket;

#[cfg(test)]
mod test_server;
