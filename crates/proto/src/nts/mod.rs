//! Network Time Security for NTPv4 (RFC 8915), with no I/O: what the key
//! exchange's records mean ([`ke`]), how a cookie carries a client's keys
//! inside itself ([`cookie`]), and how an SNTP request and its reply are
//! authenticated with them ([`packet`]). The AEADs are in [`aead`]; the
//! server's rotating cookie keys in [`ring`].
//!
//! Randomness is the caller's, as time is: every nonce and key is passed
//! in, so each function here is a pure function of its arguments and tests
//! are deterministic. The TLS connection, the key file and the clock are
//! `hora_server`'s and `hora_client`'s.

pub mod aead;
pub mod cookie;
pub mod ke;
pub mod packet;
pub mod ring;

pub use aead::Algorithm;

/// The longest key of any [`Algorithm`].
pub const MAX_KEY_LEN: usize = 32;

/// The keys a key exchange gives a client and the server: one AEAD and a
/// key each way, exported from the TLS session (RFC 8915, section 5.1).
/// Fixed-size, so opening a cookie allocates nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    /// The AEAD both directions use.
    pub algorithm: Algorithm,
    c2s: [u8; MAX_KEY_LEN],
    s2c: [u8; MAX_KEY_LEN],
}

impl Keys {
    /// The keys of `algorithm`; `None` unless both are its key length.
    pub fn new(algorithm: Algorithm, c2s: &[u8], s2c: &[u8]) -> Option<Keys> {
        let len = algorithm.key_len();
        if c2s.len() != len || s2c.len() != len {
            return None;
        }
        let mut keys = Keys {
            algorithm,
            c2s: [0; MAX_KEY_LEN],
            s2c: [0; MAX_KEY_LEN],
        };
        keys.c2s[..len].copy_from_slice(c2s);
        keys.s2c[..len].copy_from_slice(s2c);
        Some(keys)
    }

    /// Client to server: authenticates requests.
    pub fn c2s(&self) -> &[u8] {
        &self.c2s[..self.algorithm.key_len()]
    }

    /// Server to client: authenticates and encrypts replies.
    pub fn s2c(&self) -> &[u8] {
        &self.s2c[..self.algorithm.key_len()]
    }
}

impl std::fmt::Debug for Keys {
    /// Never the keys themselves: they end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The label of the TLS exporter that gives [`Keys`] (RFC 8915, 5.1).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-network-time-security";

/// Which way a key authenticates, for [`exporter_context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests.
    ClientToServer,
    /// Replies.
    ServerToClient,
}

/// The TLS exporter's context for NTPv4 with `algorithm` in `direction`:
/// the protocol id (0), the AEAD id, and 0 (c2s) or 1 (s2c).
pub fn exporter_context(algorithm: Algorithm, direction: Direction) -> [u8; 5] {
    let [high, low] = algorithm.id().to_be_bytes();
    let way = match direction {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    };
    [0, 0, high, low, way]
}

/// The keys of `algorithm` from a TLS session's exporter (RFC 8915, 5.1),
/// both sides' code: `export(label, context, out)` fills `out` as rustls's
/// `export_keying_material` does.
pub fn export_keys<E>(
    algorithm: Algorithm,
    mut export: impl FnMut(&[u8], &[u8], &mut [u8]) -> Result<(), E>,
) -> Result<Keys, E> {
    let len = algorithm.key_len();
    let mut keys = Keys {
        algorithm,
        c2s: [0; MAX_KEY_LEN],
        s2c: [0; MAX_KEY_LEN],
    };
    let c2s = exporter_context(algorithm, Direction::ClientToServer);
    export(EXPORTER_LABEL, &c2s, &mut keys.c2s[..len])?;
    let s2c = exporter_context(algorithm, Direction::ServerToClient);
    export(EXPORTER_LABEL, &s2c, &mut keys.s2c[..len])?;
    Ok(keys)
}
