//! A Roughtime request, read and checked (RFC 10049 section 5.1): framed,
//! at least [`MIN_REQUEST`] bytes (so no reply is larger than its
//! request), offering a version answered, with a nonce of the version's
//! size, `TYPE` 0 where the version asks for it, and, if it names a server
//! (`SRV`), naming this one.

use super::merkle::{self, Hash};
use super::version::{self, Profile};
use super::wire::{self, read_u32, Message, Tag, WireError};

/// The smallest request answered, framing included (RFC 10049 5.1: "at
/// least 1024 bytes"): a response is smaller, so a forged source gains an
/// attacker nothing.
pub const MIN_REQUEST: usize = 1024;

/// A nonce's size in every version answered.
pub const NONCE_LEN: usize = 32;

/// A request worth answering.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The whole packet (a leaf of the tree, from draft 12 on).
    pub packet: &'a [u8],
    /// The client's nonce, echoed.
    pub nonce: &'a [u8; NONCE_LEN],
    /// The version to answer in, and what it changes.
    pub profile: Profile,
}

impl Request<'_> {
    /// Its leaf in the batch's tree.
    pub fn leaf(&self) -> Hash {
        if self.profile.leaf_is_request {
            merkle::leaf(self.packet)
        } else {
            merkle::leaf(self.nonce)
        }
    }

    /// What its response needs, kept while the batch is read (the packet
    /// itself is not).
    pub fn accept(&self) -> Accepted {
        Accepted {
            leaf: self.leaf(),
            nonce: *self.nonce,
            profile: self.profile,
        }
    }
}

/// A request accepted into a batch: its leaf, its nonce, its version.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// Its leaf in the batch's tree.
    pub leaf: Hash,
    /// The client's nonce, echoed.
    pub nonce: [u8; NONCE_LEN],
    /// The version to answer in.
    pub profile: Profile,
}

/// Why a request is not answered: each is counted under its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Shorter than [`MIN_REQUEST`]: answering could amplify a forged source.
    #[error("shorter than 1024 bytes")]
    Undersized,
    /// Not a message, or not framed.
    #[error("malformed: {0}")]
    Malformed(#[from] WireError),
    /// A tag the version requires is missing or of the wrong size.
    #[error("missing or bad {0}")]
    BadTag(Tag),
    /// No version offered is answered here (Google's unframed protocol
    /// and drafts before 08 included).
    #[error("no version offered is answered here")]
    Version,
    /// `SRV` names another server's key.
    #[error("for another server (SRV)")]
    OtherServer,
}

impl RequestError {
    /// Its name in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            RequestError::Undersized => "undersized",
            RequestError::Malformed(_) | RequestError::BadTag(_) => "malformed",
            RequestError::Version => "version",
            RequestError::OtherServer => "other_server",
        }
    }
}

/// Reads `packet` as a request to the server whose long-term key hashes
/// to `server` ([`merkle::server_hash`]).
pub fn parse<'a>(packet: &'a [u8], server: &Hash) -> Result<Request<'a>, RequestError> {
    if packet.len() < MIN_REQUEST {
        return Err(RequestError::Undersized);
    }
    let message = Message::parse(wire::unframe(packet)?)?;
    let offer = message.get(Tag::VER).ok_or(RequestError::Version)?;
    let version = version::choose(offer).ok_or(RequestError::Version)?;
    let profile = version.profile();
    if profile.sorted_offer && !version::is_ascending(offer) {
        return Err(RequestError::BadTag(Tag::VER));
    }
    let nonce = message
        .get(Tag::NONC)
        .and_then(|nonce| <&[u8; NONCE_LEN]>::try_from(nonce).ok())
        .ok_or(RequestError::BadTag(Tag::NONC))?;
    match message.get(Tag::TYPE).map(read_u32) {
        None if !profile.type_required => {}
        Some(Some(0)) => {}
        _ => return Err(RequestError::BadTag(Tag::TYPE)),
    }
    if let Some(named) = message.get(Tag::SRV) {
        if named != server {
            return Err(RequestError::OtherServer);
        }
    }
    Ok(Request {
        packet,
        nonce,
        profile,
    })
}
