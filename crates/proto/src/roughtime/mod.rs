//! Roughtime (RFC 10049): time signed by the server for the client's
//! nonce, so that a client holding only the server's public key can trust
//! it to within the radius, with no certificate to check and no clock of
//! its own. Everything here is pure: the server's driver hands in
//! datagrams, keys' seeds and the time, and sends what comes out.
//!
//! - [`wire`]: the message format and its framing.
//! - [`version`]: version 1 and the drafts still in use, and what each changes.
//! - [`request`]: reading and checking a request.
//! - [`merkle`]: the tree that lets one signature answer a batch.
//! - [`keys`]: the long-term key and the online key it delegates.
//! - [`response`]: a batch's responses.
//! - [`client`]: a request, and the checks on its response.

pub mod client;
pub mod keys;
pub mod merkle;
pub mod request;
pub mod response;
pub mod version;
pub mod wire;

#[cfg(test)]
mod tests;
