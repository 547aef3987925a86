//! Which Roughtime a client speaks: RFC 10049's version 1, or one of the
//! IETF drafts that clients in use still send, and what each changes
//! (the hash, what a tree's leaf is, the signatures' context strings,
//! which tags a request must carry and where a response names its
//! version). Google's original protocol (unframed, 64-byte nonces) and
//! drafts before 08 (64-byte nonces, SHA-512/256, MJD times) are not
//! answered: no client in use here sends only those.

use super::wire::read_u32;

/// A version as the wire writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32);

/// The drafts' numbering: the high bit, then the draft's number.
const DRAFT: u32 = 0x8000_0000;

impl Version {
    /// RFC 10049's version 1.
    pub const RFC: Version = Version(1);
    /// The oldest draft answered: draft-ietf-ntp-roughtime-08 (32-byte
    /// nonces, SHA-512 truncated to 32 bytes, Unix seconds).
    pub const FIRST_DRAFT: Version = Version(DRAFT | 8);
    /// The last draft before the RFC.
    pub const LAST_DRAFT: Version = Version(DRAFT | 19);

    /// Every version answered, in ascending wire order: what `VERS` lists.
    pub fn supported() -> impl Iterator<Item = Version> {
        std::iter::once(Version::RFC).chain((8..=19).map(|draft| Version(DRAFT | draft)))
    }

    /// Whether it is answered.
    pub fn is_supported(self) -> bool {
        self == Version::RFC || (Version::FIRST_DRAFT..=Version::LAST_DRAFT).contains(&self)
    }

    /// The draft's number, for a draft.
    pub fn draft(self) -> Option<u32> {
        (self.0 & DRAFT != 0).then_some(self.0 & !DRAFT)
    }

    /// Its name in logs and metrics: `rfc` or `draft-12`.
    pub fn name(self) -> String {
        match self.draft() {
            Some(draft) => format!("draft-{draft:02}"),
            None if self == Version::RFC => "rfc".to_owned(),
            None => format!("{:#x}", self.0),
        }
    }

    /// How much a client's offer prefers it: version 1 above every draft,
    /// then the newest draft.
    fn preference(self) -> u64 {
        if self == Version::RFC {
            u64::MAX
        } else {
            u64::from(self.0)
        }
    }

    /// What changes with it.
    pub fn profile(self) -> Profile {
        let draft = self.draft();
        let before_12 = draft.is_some_and(|draft| draft < 12);
        Profile {
            version: self,
            leaf_is_request: !before_12,
            delegation_context: match draft {
                None => b"Roughtime v1 delegation signature\0",
                Some(draft) if draft < 12 => b"RoughTime v1 delegation signature--\0",
                Some(_) => b"RoughTime v1 delegation signature\0",
            },
            response_context: match draft {
                None => b"Roughtime v1 response signature\0",
                Some(_) => b"RoughTime v1 response signature\0",
            },
            type_required: draft.is_none_or(|draft| draft >= 14),
            version_outside: before_12,
            sorted_offer: !before_12,
        }
    }
}

/// What a version changes in a request's checks and its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The version.
    pub version: Version,
    /// A Merkle leaf is the hash of the whole request packet (drafts 12
    /// on and the RFC); before, of its nonce.
    pub leaf_is_request: bool,
    /// What the long-term key's signature of a delegation is over, before it.
    pub delegation_context: &'static [u8],
    /// What the online key's signature of `SREP` is over, before it.
    pub response_context: &'static [u8],
    /// The request must carry `TYPE` 0 (drafts 14 on and the RFC).
    pub type_required: bool,
    /// The response names its version in a top-level `VER` (drafts before
    /// 12), not only in `SREP`.
    pub version_outside: bool,
    /// The client's offer must be strictly ascending (drafts 12 on and the RFC).
    pub sorted_offer: bool,
}

/// The version to answer an offer (a `VER` value) in: version 1 if
/// offered, else the newest draft offered that is answered.
pub fn choose(offer: &[u8]) -> Option<Version> {
    offered(offer)
        .filter(|version| version.is_supported())
        .max_by_key(|version| version.preference())
}

/// The versions in an offer.
pub fn offered(offer: &[u8]) -> impl Iterator<Item = Version> + '_ {
    offer
        .chunks_exact(4)
        .filter_map(|word| read_u32(word).map(Version))
}

/// Whether an offer lists each version once, ascending.
pub fn is_ascending(offer: &[u8]) -> bool {
    let versions: Vec<Version> = offered(offer).collect();
    versions.windows(2).all(|pair| pair[0] < pair[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(versions: &[u32]) -> Vec<u8> {
        versions.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn version_1_wins_then_the_newest_draft() {
        assert_eq!(
            choose(&offer(&[1, 0x8000_0007, 0x8000_000f])),
            Some(Version::RFC)
        );
        assert_eq!(
            choose(&offer(&[0x8000_000c, 0x8000_000b])),
            Some(Version(0x8000_000c))
        );
        assert_eq!(choose(&offer(&[0x8000_0007, 2, 0xc000_0000])), None);
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn profiles_follow_the_drafts() {
        let rfc = Version::RFC.profile();
        assert!(rfc.leaf_is_request && rfc.type_required && !rfc.version_outside);
        assert_eq!(rfc.response_context, b"Roughtime v1 response signature\0");
        let draft_12 = Version(0x8000_000c).profile();
        assert!(draft_12.leaf_is_request && !draft_12.type_required);
        assert_eq!(
            draft_12.response_context,
            b"RoughTime v1 response signature\0"
        );
        let draft_11 = Version(0x8000_000b).profile();
        assert!(!draft_11.leaf_is_request && draft_11.version_outside);
        assert_eq!(
            draft_11.delegation_context,
            b"RoughTime v1 delegation signature--\0"
        );
        assert!(Version(0x8000_000e).profile().type_required);
        assert_eq!(Version(0x8000_000e).name(), "draft-14");
        assert_eq!(Version::supported().count(), 13);
        assert!(Version::supported().all(Version::is_supported));
    }
}
