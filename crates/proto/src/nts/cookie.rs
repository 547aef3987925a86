//! Cookies (RFC 8915, section 6): the server keeps no state per client;
//! each cookie carries the client's [`Keys`], sealed with a key only the
//! server (or its fleet) holds, and names that key, so keys can rotate and
//! a few old ones still open the cookies clients hold.
//!
//! A cookie is `key id (4) | nonce (12) | ciphertext | tag (16)`, the
//! plaintext `AEAD id (2) | 0 (2) | c2s | s2c`, sealed with
//! AEAD_AES_128_GCM_SIV (RFC 8452) with the key id as associated data:
//! 100 bytes for AES-SIV keys, 68 for AES-GCM-SIV's, a multiple of 4
//! either way. The cookie's AEAD is the server's own choice (clients never
//! open a cookie): AES-GCM-SIV resists nonce misuse as AES-SIV does (its
//! bound for random nonces is far beyond a day's cookies at full speed),
//! and costs less per cookie than AES-SIV-CMAC (BENCHMARKS.md, "NTS").

use aes_gcm_siv::aead::{AeadInPlace, KeyInit};

/// AEAD_AES_128_GCM_SIV on the encryption-only AES (see [`super::aead`]).
type CookieAead = aes_gcm_siv::AesGcmSiv<aes::Aes128Enc>;

use super::aead::{Algorithm, TAG_LEN};
use super::{Keys, MAX_KEY_LEN};

/// The length of a cookie key (AES-128).
pub const KEY_LEN: usize = 16;
/// The length of the nonce inside a cookie.
pub const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 4 + NONCE_LEN;
/// The longest cookie horad makes.
pub const MAX_COOKIE_LEN: usize = HEADER_LEN + 4 + 2 * MAX_KEY_LEN + TAG_LEN;

/// A server key that seals and opens cookies, named by its id.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieKey {
    /// Its name, written in each cookie it seals.
    pub id: u32,
    /// The key (AEAD_AES_128_GCM_SIV).
    pub key: [u8; KEY_LEN],
}

impl std::fmt::Debug for CookieKey {
    /// The id, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a cookie did not open: the server then answers with a NTSN
/// kiss-o'-death, and the client goes back to the key exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// Shorter or longer than any cookie horad makes.
    #[error("cookie of {0} bytes is no cookie of ours")]
    Length(usize),
    /// Sealed by a key no longer (or never) held.
    #[error("cookie sealed with unknown key {0:#010x}")]
    UnknownKey(u32),
    /// Forged or corrupted, or the plaintext makes no sense.
    #[error("cookie does not open")]
    Forged,
}

/// The length of a cookie holding keys for `algorithm`.
pub fn cookie_len(algorithm: Algorithm) -> usize {
    HEADER_LEN + 4 + 2 * algorithm.key_len() + TAG_LEN
}

/// A cookie key ready to use: its AEAD keyed once, not per cookie.
pub struct CookieCipher {
    /// The key's id.
    pub id: u32,
    cipher: Box<CookieAead>,
}

impl std::fmt::Debug for CookieCipher {
    /// The id, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieCipher")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CookieCipher {
    /// `key`, keyed; `None` never happens for a [`KEY_LEN`] key.
    pub fn new(key: &CookieKey) -> Option<CookieCipher> {
        Some(CookieCipher {
            id: key.id,
            cipher: Box::new(CookieAead::new_from_slice(&key.key).ok()?),
        })
    }
}

/// Seals `keys` into a cookie with `key` and a fresh `nonce`, written at
/// the start of `out`; its length, or `None` if `out` is too short.
pub fn seal(
    key: &CookieKey,
    keys: &Keys,
    nonce: &[u8; NONCE_LEN],
    out: &mut [u8],
) -> Option<usize> {
    seal_with(&mut CookieCipher::new(key)?, keys, nonce, out)
}

/// [`seal`] with a key set up already.
pub fn seal_with(
    key: &mut CookieCipher,
    keys: &Keys,
    nonce: &[u8; NONCE_LEN],
    out: &mut [u8],
) -> Option<usize> {
    let algorithm = keys.algorithm;
    let len = cookie_len(algorithm);
    let cookie = out.get_mut(..len)?;
    let id = key.id.to_be_bytes();
    cookie[..4].copy_from_slice(&id);
    cookie[4..HEADER_LEN].copy_from_slice(nonce);
    let (_, sealed) = cookie.split_at_mut(HEADER_LEN);
    let (plaintext, tag_room) = sealed.split_at_mut(sealed.len() - TAG_LEN);
    plaintext[..2].copy_from_slice(&algorithm.id().to_be_bytes());
    plaintext[2..4].fill(0);
    let key_len = algorithm.key_len();
    plaintext[4..4 + key_len].copy_from_slice(keys.c2s());
    plaintext[4 + key_len..].copy_from_slice(keys.s2c());
    let tag = key
        .cipher
        .encrypt_in_place_detached(nonce.into(), &id, plaintext)
        .ok()?;
    tag_room.copy_from_slice(&tag);
    Some(len)
}

/// Opens `cookie` with whichever of `keys` sealed it.
pub fn open(keys: &[CookieKey], cookie: &[u8]) -> Result<Keys, CookieError> {
    let mut ciphers: Vec<CookieCipher> = keys.iter().filter_map(CookieCipher::new).collect();
    open_with(&mut ciphers, cookie)
}

/// [`open`] with keys set up already.
pub fn open_with(keys: &mut [CookieCipher], cookie: &[u8]) -> Result<Keys, CookieError> {
    if cookie.len() < HEADER_LEN + 4 + TAG_LEN || cookie.len() > MAX_COOKIE_LEN {
        return Err(CookieError::Length(cookie.len()));
    }
    let id_bytes: [u8; 4] = cookie[..4].try_into().map_err(|_| CookieError::Forged)?;
    let id = u32::from_be_bytes(id_bytes);
    let key = keys
        .iter_mut()
        .find(|key| key.id == id)
        .ok_or(CookieError::UnknownKey(id))?;
    let mut buffer = [0u8; MAX_COOKIE_LEN];
    let sealed = &cookie[HEADER_LEN..];
    let plaintext = &mut buffer[..sealed.len() - TAG_LEN];
    plaintext.copy_from_slice(&sealed[..sealed.len() - TAG_LEN]);
    let tag = aes_gcm_siv::Tag::from_slice(&sealed[sealed.len() - TAG_LEN..]);
    key.cipher
        .decrypt_in_place_detached(cookie[4..HEADER_LEN].into(), &id_bytes, plaintext, tag)
        .map_err(|_| CookieError::Forged)?;
    let algorithm = Algorithm::from_id(u16::from_be_bytes([plaintext[0], plaintext[1]]))
        .ok_or(CookieError::Forged)?;
    let key_len = algorithm.key_len();
    if plaintext.len() != 4 + 2 * key_len {
        return Err(CookieError::Forged);
    }
    Keys::new(
        algorithm,
        &plaintext[4..4 + key_len],
        &plaintext[4 + key_len..],
    )
    .ok_or(CookieError::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u32) -> CookieKey {
        CookieKey {
            id,
            key: [id as u8; KEY_LEN],
        }
    }

    fn client_keys(algorithm: Algorithm) -> Keys {
        let len = algorithm.key_len();
        Keys::new(algorithm, &vec![1; len], &vec![2; len]).unwrap_or_else(|| unreachable!())
    }

    #[test]
    fn a_cookie_opens_with_any_held_key_that_sealed_it_and_has_the_documented_length() {
        for (algorithm, len) in [
            (Algorithm::AesSivCmac256, 100),
            (Algorithm::Aes128GcmSiv, 68),
        ] {
            let keys = client_keys(algorithm);
            let mut out = [0u8; MAX_COOKIE_LEN];
            assert_eq!(seal(&key(7), &keys, &[3; NONCE_LEN], &mut out), Some(len));
            assert_eq!(cookie_len(algorithm), len);
            let held = [key(1), key(7), key(9)];
            assert_eq!(open(&held, &out[..len]), Ok(keys));
        }
    }

    #[test]
    fn a_cookie_of_a_dropped_key_a_flipped_bit_or_a_wrong_length_does_not_open() {
        let keys = client_keys(Algorithm::AesSivCmac256);
        let mut out = [0u8; MAX_COOKIE_LEN];
        let len = seal(&key(7), &keys, &[3; NONCE_LEN], &mut out).unwrap_or(0);
        let cookie = &out[..len];
        assert_eq!(open(&[key(8)], cookie), Err(CookieError::UnknownKey(7)));
        for byte in 4..len {
            let mut forged = cookie.to_vec();
            forged[byte] ^= 0x40;
            assert_eq!(
                open(&[key(7)], &forged),
                Err(CookieError::Forged),
                "byte {byte}"
            );
        }
        // Same id, another key: a fleet host with a different file.
        let impostor = CookieKey {
            id: 7,
            key: [0xAA; KEY_LEN],
        };
        assert_eq!(open(&[impostor], cookie), Err(CookieError::Forged));
        assert_eq!(
            open(&[key(7)], &cookie[..len - 1]),
            Err(CookieError::Forged)
        );
        assert_eq!(open(&[key(7)], &[0; 10]), Err(CookieError::Length(10)));
        assert_eq!(open(&[key(7)], &[0; 300]), Err(CookieError::Length(300)));
    }
}
