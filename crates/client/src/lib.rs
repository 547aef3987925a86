//! `hora`, the client of the hora time server: the seed's interactive menu,
//! and a one-shot mode for scripts. It owns the terminal and the socket and
//! asks `hora_proto` how to read what the server sends.
//!
//! - [`exchange`]: one request and its answer, with resends and a deadline;
//! - [`interactive`]: the menu conversation with a person;
//! - [`one_shot`]: `hora time`, for scripts;
//! - [`cli`]: the command line.

pub mod cli;
pub mod exchange;
pub mod interactive;
pub mod one_shot;

#[cfg(test)]
mod test_server;
