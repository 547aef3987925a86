//! The client's half: a request, and the checks a response must pass
//! before its time is believed (RFC 10049 section 5.4): the long-term
//! key's signature of the delegation, the midpoint within it, the
//! request's path to the signed root, and the online key's signature.
//! The server's half is tested against it, and it against the server.

use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};

use super::merkle::{self, Hash};
use super::request::{MIN_REQUEST, NONCE_LEN};
use super::version::{self, Version};
use super::wire::{self, read_u32, read_u64, Message, Tag, WireError};

/// A request for the server whose long-term public key is `server`
/// (named in `SRV` when given), offering `versions` (ascending), padded
/// to [`MIN_REQUEST`] bytes.
pub fn request(
    nonce: &[u8; NONCE_LEN],
    versions: &[Version],
    server: Option<&[u8; 32]>,
) -> Vec<u8> {
    let offer: Vec<u8> = versions.iter().flat_map(|v| v.0.to_le_bytes()).collect();
    let named = server.map(merkle::server_hash);
    let kind = 0u32.to_le_bytes();
    let mut entries: Vec<(Tag, &[u8])> = vec![(Tag::VER, &offer)];
    if let Some(named) = &named {
        entries.push((Tag::SRV, named));
    }
    entries.extend([(Tag::NONC, &nonce[..]), (Tag::TYPE, &kind[..])]);
    // The header grows by 8 bytes with ZZZZ; its value fills the rest.
    let used: usize = wire::FRAME_LEN
        + 8 * (entries.len() + 1)
        + entries.iter().map(|(_, value)| value.len()).sum::<usize>();
    let padding = vec![0; MIN_REQUEST.saturating_sub(used)];
    entries.push((Tag::ZZZZ, &padding));
    let mut packet = Vec::with_capacity(MIN_REQUEST);
    wire::write_frame(&mut packet, MIN_REQUEST.saturating_sub(wire::FRAME_LEN));
    wire::write_message(&mut packet, &entries);
    let length = (packet.len() - wire::FRAME_LEN) as u32;
    packet[8..wire::FRAME_LEN].copy_from_slice(&length.to_le_bytes());
    packet
}

/// A response whose every check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The version it was answered in.
    pub version: Version,
    /// The time, Unix seconds.
    pub midpoint: u64,
    /// How far from it the true time may be, seconds.
    pub radius: u32,
    /// The online key's delegation: from (Unix seconds).
    pub mint: u64,
    /// The online key's delegation: until (Unix seconds).
    pub maxt: u64,
}

/// Which check a response failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a Roughtime message.
    #[error("malformed response: {0}")]
    Malformed(#[from] WireError),
    /// A tag missing or of the wrong size.
    #[error("response without a good {0}")]
    Missing(Tag),
    /// Not an answer to this request's nonce.
    #[error("the response is for another nonce")]
    Nonce,
    /// Answered in a version the request did not offer.
    #[error("answered in version {0:#x}, which the request did not offer")]
    Version(u32),
    /// The delegation is not signed by the key given.
    #[error("the delegation is not signed by this server's key")]
    Delegation,
    /// The midpoint is outside the delegation.
    #[error("the time is outside the online key's delegation")]
    Expired,
    /// The request is not in the signed tree.
    #[error("the request is not in the signed Merkle tree")]
    Merkle,
    /// The response is not signed by the delegated key.
    #[error("the response's signature does not verify")]
    Signature,
    /// The radius is zero (RFC 10049 5.2.5 forbids it).
    #[error("radius zero")]
    Radius,
}

fn get<'a>(message: &Message<'a>, tag: Tag) -> Result<&'a [u8], VerifyError> {
    message.get(tag).ok_or(VerifyError::Missing(tag))
}

fn u32_of(message: &Message<'_>, tag: Tag) -> Result<u32, VerifyError> {
    read_u32(get(message, tag)?).ok_or(VerifyError::Missing(tag))
}

fn u64_of(message: &Message<'_>, tag: Tag) -> Result<u64, VerifyError> {
    read_u64(get(message, tag)?).ok_or(VerifyError::Missing(tag))
}

fn verifies(key: &[u8], context: &[u8], signed: &[u8], signature: &[u8]) -> bool {
    let message = [context, signed].concat();
    UnparsedPublicKey::new(&ED25519, key)
        .verify(&message, signature)
        .is_ok()
}

/// Checks `response` as the answer to `request` from the server whose
/// long-term public key is `public_key`.
pub fn verify(
    request: &[u8],
    response: &[u8],
    public_key: &[u8; 32],
) -> Result<Verified, VerifyError> {
    let asked = Message::parse(wire::unframe(request)?)?;
    let message = Message::parse(wire::unframe(response)?)?;
    if get(&message, Tag::NONC)? != get(&asked, Tag::NONC)? {
        return Err(VerifyError::Nonce);
    }
    let signed = get(&message, Tag::SREP)?;
    let srep = Message::parse(signed)?;
    let version = Version(u32_of(&srep, Tag::VER)?);
    if !version::offered(get(&asked, Tag::VER)?).any(|offered| offered == version) {
        return Err(VerifyError::Version(version.0));
    }
    let profile = version.profile();
    let certificate = Message::parse(get(&message, Tag::CERT)?)?;
    let delegation_bytes = get(&certificate, Tag::DELE)?;
    if !verifies(
        public_key,
        profile.delegation_context,
        delegation_bytes,
        get(&certificate, Tag::SIG)?,
    ) {
        return Err(VerifyError::Delegation);
    }
    let delegation = Message::parse(delegation_bytes)?;
    let (mint, maxt) = (
        u64_of(&delegation, Tag::MINT)?,
        u64_of(&delegation, Tag::MAXT)?,
    );
    let midpoint = u64_of(&srep, Tag::MIDP)?;
    if !(mint..=maxt).contains(&midpoint) {
        return Err(VerifyError::Expired);
    }
    let leaf = if profile.leaf_is_request {
        merkle::leaf(request)
    } else {
        merkle::leaf(get(&asked, Tag::NONC)?)
    };
    let root: Hash = get(&srep, Tag::ROOT)?
        .try_into()
        .map_err(|_| VerifyError::Missing(Tag::ROOT))?;
    let index = u32_of(&message, Tag::INDX)?;
    if merkle::root_from(leaf, index, get(&message, Tag::PATH)?) != Some(root) {
        return Err(VerifyError::Merkle);
    }
    let online = get(&delegation, Tag::PUBK)?;
    if !verifies(
        online,
        profile.response_context,
        signed,
        get(&message, Tag::SIG)?,
    ) {
        return Err(VerifyError::Signature);
    }
    let radius = u32_of(&srep, Tag::RADI)?;
    if radius == 0 {
        return Err(VerifyError::Radius);
    }
    Ok(Verified {
        version,
        midpoint,
        radius,
        mint,
        maxt,
    })
}
