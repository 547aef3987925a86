//! The server's keys (RFC 10049 section 6): the long-term key, whose public
//! half clients hold, signs a delegation of an online key for a while
//! (`MINT` to `MAXT`); the online key signs each batch's response. The
//! delegation is signed once per context string a version uses, so one
//! online key answers every version.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};

use super::merkle::{self, Hash};
use super::version::{Profile, Version};
use super::wire::{self, Tag};

/// An Ed25519 seed: what the key file holds.
pub type Seed = [u8; 32];

/// A seed ring would not take (never for 32 bytes; kept typed, not unwrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 seed")]
pub struct KeyError;

fn pair(seed: &Seed) -> Result<Ed25519KeyPair, KeyError> {
    Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| KeyError)
}

fn public_of(pair: &Ed25519KeyPair) -> [u8; 32] {
    let mut public = [0; 32];
    public.copy_from_slice(pair.public_key().as_ref());
    public
}

/// The long-term key.
#[derive(Debug)]
pub struct LongTermKey {
    pair: Ed25519KeyPair,
    public: [u8; 32],
    server: Hash,
}

impl LongTermKey {
    /// The key of `seed`.
    pub fn from_seed(seed: &Seed) -> Result<LongTermKey, KeyError> {
        let pair = pair(seed)?;
        let public = public_of(&pair);
        Ok(LongTermKey {
            pair,
            public,
            server: merkle::server_hash(&public),
        })
    }

    /// Its public half: what a client is given.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// What a request's `SRV` names it by.
    pub fn server_hash(&self) -> &Hash {
        &self.server
    }

    /// Delegates the online key of `seed` from `mint` to `maxt` (Unix seconds).
    pub fn delegate(&self, seed: &Seed, mint: u64, maxt: u64) -> Result<OnlineKey, KeyError> {
        let pair = pair(seed)?;
        let public = public_of(&pair);
        let mut delegation = Vec::with_capacity(72 + 28);
        wire::write_message(
            &mut delegation,
            &[
                (Tag::PUBK, &public),
                (Tag::MINT, &mint.to_le_bytes()),
                (Tag::MAXT, &maxt.to_le_bytes()),
            ],
        );
        let contexts = Version::supported().map(|version| version.profile().delegation_context);
        let mut certificates: Vec<(&'static [u8], Vec<u8>)> = Vec::new();
        for context in contexts {
            if certificates.iter().any(|(known, _)| *known == context) {
                continue;
            }
            let signed = [context, &delegation].concat();
            let signature = self.pair.sign(&signed);
            let mut certificate = Vec::with_capacity(176);
            wire::write_message(
                &mut certificate,
                &[(Tag::SIG, signature.as_ref()), (Tag::DELE, &delegation)],
            );
            certificates.push((context, certificate));
        }
        Ok(OnlineKey {
            pair,
            mint,
            maxt,
            certificates,
        })
    }
}

/// An online key and its delegations.
#[derive(Debug)]
pub struct OnlineKey {
    pair: Ed25519KeyPair,
    /// From when it may sign (Unix seconds).
    pub mint: u64,
    /// Until when it may sign (Unix seconds).
    pub maxt: u64,
    certificates: Vec<(&'static [u8], Vec<u8>)>,
}

impl OnlineKey {
    /// Whether it still signs at `seconds` (Unix), or a new one is due: it
    /// is replaced halfway through its delegation, so no midpoint signed
    /// comes near its end, and a clock stepped back before its start gets
    /// a new one at once.
    pub fn signs_at(&self, seconds: u64) -> bool {
        let half = (self.maxt.saturating_sub(self.mint)) / 2;
        (self.mint..self.mint.saturating_add(half)).contains(&seconds)
    }

    /// The `CERT` value for `profile`'s delegation context.
    pub fn certificate(&self, profile: &Profile) -> &[u8] {
        self.certificates
            .iter()
            .find(|(context, _)| *context == profile.delegation_context)
            .map(|(_, certificate)| certificate.as_slice())
            .unwrap_or(&[])
    }

    /// Signs a signed response (`SREP`'s value) for `profile`.
    pub fn sign(
        &self,
        profile: &Profile,
        signed_response: &[u8],
        scratch: &mut Vec<u8>,
    ) -> [u8; 64] {
        scratch.clear();
        scratch.extend_from_slice(profile.response_context);
        scratch.extend_from_slice(signed_response);
        let mut out = [0; 64];
        out.copy_from_slice(self.pair.sign(scratch).as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_online_key_is_replaced_halfway_or_when_the_clock_goes_back() {
        let long_term = LongTermKey::from_seed(&[1; 32]).expect("a seed");
        let online = long_term
            .delegate(&[2; 32], 1000, 1000 + 86_400)
            .expect("a seed");
        assert!(online.signs_at(1000));
        assert!(online.signs_at(1000 + 43_199));
        assert!(!online.signs_at(1000 + 43_200), "halfway");
        assert!(!online.signs_at(999), "before its start");
    }
}
