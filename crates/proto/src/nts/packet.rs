//! NTS extension fields on NTPv4 packets (RFC 8915, section 5): the
//! request carries a Unique Identifier, a cookie, cookie placeholders and
//! an Authenticator over everything before it; the reply echoes the
//! identifier and seals fresh cookies inside its own Authenticator.
//!
//! Server side: [`read_request`] tells an NTS request from a plain one (a
//! malformed NTS request is an error, never a plain request: it is never
//! answered with unauthenticated time), [`authenticate`] opens its cookie
//! and checks its authenticator, [`write_reply`] seals the answer (or
//! [`prepare_reply`] now and [`seal_reply`] as it leaves), and
//! [`write_nak`] says a cookie did not open (kiss code NTSN). Client side:
//! [`write_request`] and [`read_reply`].

use super::aead::{Algorithm, TAG_LEN};
use super::cookie::{self, CookieCipher, CookieError, CookieKey, MAX_COOKIE_LEN};
use super::Keys;
use crate::sntp::{self, ClientRequest, PACKET_LEN};

/// The extension field types of RFC 8915, section 5.
pub mod field {
    /// Unique Identifier: ties a reply to its request.
    pub const UNIQUE_IDENTIFIER: u16 = 0x0104;
    /// NTS Cookie.
    pub const COOKIE: u16 = 0x0204;
    /// NTS Cookie Placeholder: room for one more cookie in the reply.
    pub const COOKIE_PLACEHOLDER: u16 = 0x0304;
    /// NTS Authenticator and Encrypted Extension Fields.
    pub const AUTHENTICATOR: u16 = 0x0404;
}

/// The shortest Unique Identifier a request may carry (RFC 8915, 5.3).
pub const MIN_UNIQUE_ID: usize = 32;
/// The kiss code that tells a client its cookie did not open.
pub const KISS_NTSN: [u8; 4] = *b"NTSN";
/// The most fresh cookies one reply carries.
pub const MAX_COOKIES_PER_REPLY: usize = 8;
/// The longest datagram this code reads or writes (one Ethernet frame).
pub const MAX_PACKET: usize = 1500;

/// An NTS request, borrowed from its datagram, not yet authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The header's fields a reply needs.
    pub header: ClientRequest,
    /// The Unique Identifier extension field, whole: echoed in the reply.
    pub unique_id_field: &'a [u8],
    /// The cookie.
    pub cookie: &'a [u8],
    /// How many placeholders came with it (in the clear).
    pub placeholders: usize,
    /// The request's length: its reply is never longer.
    pub len: usize,
    /// Everything before the Authenticator: its associated data.
    aad: &'a [u8],
    nonce: &'a [u8],
    ciphertext: &'a [u8],
}

/// What an SNTP request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// No NTS fields: a plain SNTP request.
    Plain(ClientRequest),
    /// An NTS request.
    Nts(Request<'a>),
}

/// Why a datagram is no request to answer, or an NTS request that can't be
/// read: neither gets an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Not an SNTP client request at all.
    #[error(transparent)]
    Sntp(#[from] sntp::SntpError),
    /// NTS fields that break RFC 8915: truncated, duplicated, missing, or
    /// followed by more.
    #[error("malformed NTS request: {0}")]
    Malformed(&'static str),
}

/// Why an NTS request is not answered with the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// The cookie did not open: answered with a NTSN kiss-o'-death.
    #[error(transparent)]
    Cookie(#[from] CookieError),
    /// The authenticator did not verify: answered with a NTSN
    /// kiss-o'-death too (RFC 8915, 5.7), never with the time.
    #[error("the authenticator does not verify")]
    Authenticator,
}

/// One extension field, whole, and its parts.
#[derive(Debug, Clone, Copy)]
struct Field<'a> {
    kind: u16,
    whole: &'a [u8],
    body: &'a [u8],
}

/// Splits the first extension field off `bytes`.
fn split_field(bytes: &[u8]) -> Option<(Field<'_>, &[u8])> {
    let [a, b, c, d, ..] = bytes else {
        return None;
    };
    let kind = u16::from_be_bytes([*a, *b]);
    let len = usize::from(u16::from_be_bytes([*c, *d]));
    if len < 4 || len % 4 != 0 || len > bytes.len() {
        return None;
    }
    let (whole, rest) = bytes.split_at(len);
    Some((
        Field {
            kind,
            whole,
            body: &whole[4..],
        },
        rest,
    ))
}

fn is_nts(kind: u16) -> bool {
    matches!(
        kind,
        field::UNIQUE_IDENTIFIER | field::COOKIE | field::COOKIE_PLACEHOLDER | field::AUTHENTICATOR
    )
}

/// Reads an SNTP request: plain, NTS, or neither.
///
/// Whatever follows the header of a plain request (a legacy MAC, fields
/// horad doesn't know) is ignored, as before NTS; but once a field of
/// NTS's appears, or the first field claims to be one, the request is an
/// NTS request and must be a well-formed one.
pub fn read_request(datagram: &[u8]) -> Result<Parsed<'_>, PacketError> {
    let header = sntp::parse_request(datagram)?;
    let malformed = PacketError::Malformed;
    let mut rest = &datagram[PACKET_LEN..];
    let first_is_nts = rest.len() >= 2 && is_nts(u16::from_be_bytes([rest[0], rest[1]]));
    let (mut unique_id, mut cookie, mut placeholders) = (None, None, 0);
    loop {
        let Some((field, after)) = split_field(rest) else {
            if first_is_nts || unique_id.is_some() || cookie.is_some() || placeholders > 0 {
                return Err(malformed("truncated or misaligned extension field"));
            }
            return Ok(Parsed::Plain(header));
        };
        match field.kind {
            field::UNIQUE_IDENTIFIER if field.body.len() < MIN_UNIQUE_ID || unique_id.is_some() => {
                return Err(malformed("unique identifier"));
            }
            field::UNIQUE_IDENTIFIER => unique_id = Some(field.whole),
            field::COOKIE if cookie.is_some() => return Err(malformed("more than one cookie")),
            field::COOKIE => cookie = Some(field.body),
            field::COOKIE_PLACEHOLDER => placeholders += 1,
            field::AUTHENTICATOR => {
                if !after.is_empty() {
                    return Err(malformed("fields after the authenticator"));
                }
                let (Some(unique_id_field), Some(cookie)) = (unique_id, cookie) else {
                    return Err(malformed("no unique identifier or no cookie"));
                };
                let (nonce, ciphertext) =
                    authenticator_parts(field.body).ok_or(malformed("authenticator"))?;
                let aad = &datagram[..datagram.len() - field.whole.len()];
                return Ok(Parsed::Nts(Request {
                    header,
                    unique_id_field,
                    cookie,
                    placeholders,
                    len: datagram.len(),
                    aad,
                    nonce,
                    ciphertext,
                }));
            }
            _ => {}
        }
        rest = after;
    }
}

/// The nonce and the ciphertext of an Authenticator's body.
fn authenticator_parts(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let [a, b, c, d, rest @ ..] = body else {
        return None;
    };
    let nonce_len = usize::from(u16::from_be_bytes([*a, *b]));
    let ciphertext_len = usize::from(u16::from_be_bytes([*c, *d]));
    let nonce = rest.get(..nonce_len)?;
    let ciphertext = rest.get(padded(nonce_len)..)?.get(..ciphertext_len)?;
    if ciphertext_len < TAG_LEN {
        return None;
    }
    Some((nonce, ciphertext))
}

/// `len` rounded up to a multiple of 4.
fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// Whether a client's nonce suits `algorithm` (RFC 8915, 5.6: at least 16
/// bytes for AES-SIV; AES-GCM-SIV takes exactly 12).
fn nonce_fits(algorithm: Algorithm, nonce: &[u8]) -> bool {
    match algorithm {
        Algorithm::AesSivCmac256 => nonce.len() >= 16,
        Algorithm::Aes128GcmSiv => nonce.len() == 12,
    }
}

/// What an authenticated request asks of its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// The client's keys, from its cookie.
    pub keys: Keys,
    /// How many cookies the reply should carry: one for the cookie spent
    /// and one per placeholder, in the clear or encrypted, at most
    /// [`MAX_COOKIES_PER_REPLY`].
    pub cookies_wanted: usize,
}

/// Opens `request`'s cookie with one of `keys` and checks its
/// authenticator with the client's key.
pub fn authenticate(request: &Request<'_>, keys: &[CookieKey]) -> Result<Authenticated, Reject> {
    let mut ciphers: Vec<CookieCipher> = keys.iter().filter_map(CookieCipher::new).collect();
    authenticate_with(request, &mut ciphers)
}

/// [`authenticate`] with the cookie keys set up already (a server's
/// request path).
pub fn authenticate_with(
    request: &Request<'_>,
    keys: &mut [CookieCipher],
) -> Result<Authenticated, Reject> {
    let client = cookie::open_with(keys, request.cookie)?;
    if !nonce_fits(client.algorithm, request.nonce) {
        return Err(Reject::Authenticator);
    }
    let mut buffer = [0u8; MAX_PACKET];
    let sealed = buffer
        .get_mut(..request.ciphertext.len())
        .ok_or(Reject::Authenticator)?;
    sealed.copy_from_slice(request.ciphertext);
    client
        .algorithm
        .open(client.c2s(), request.nonce, request.aad, sealed)
        .map_err(|_| Reject::Authenticator)?;
    // Placeholders may also come encrypted.
    let mut inner = &sealed[TAG_LEN..];
    let mut placeholders = request.placeholders;
    while let Some((field, after)) = split_field(inner) {
        placeholders += usize::from(field.kind == field::COOKIE_PLACEHOLDER);
        inner = after;
    }
    Ok(Authenticated {
        keys: client,
        cookies_wanted: (1 + placeholders).min(MAX_COOKIES_PER_REPLY),
    })
}

/// An NTS reply written but not yet sealed: where its authenticated parts
/// lie. A server seals it ([`seal_reply`]) just before it leaves, once its
/// transmit timestamp (authenticated: inside the associated data) is
/// written, as a plain reply's is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsealed {
    /// The reply's length.
    pub len: usize,
    /// How many fresh cookies it carries.
    pub cookies: usize,
    aad_end: usize,
    nonce_at: usize,
    nonce_len: usize,
    sealed_at: usize,
    ciphertext_len: usize,
}

/// Writes the NTS reply to `request` into `out`: `header` (the 48 bytes of
/// the plain reply), the Unique Identifier, and an Authenticator holding
/// as many fresh cookies as were wanted and fit in the request's length,
/// not yet encrypted. `seal_cookie` seals the client's keys into a cookie
/// at the start of the slice it is given, returning its length; `nonce` is
/// fresh, of the client's algorithm's [`Algorithm::nonce_len`]. `None` if
/// a cookie could not be sealed or nothing fits.
pub fn prepare_reply(
    request: &Request<'_>,
    authenticated: &Authenticated,
    header: &[u8; PACKET_LEN],
    nonce: &[u8],
    mut seal_cookie: impl FnMut(&Keys, &mut [u8]) -> Option<usize>,
    out: &mut [u8; MAX_PACKET],
) -> Option<Unsealed> {
    let keys = &authenticated.keys;
    let cookie_field = 4 + cookie::cookie_len(keys.algorithm);
    let fixed = PACKET_LEN + request.unique_id_field.len() + 8 + padded(nonce.len()) + TAG_LEN;
    let mut cookies = authenticated.cookies_wanted;
    while cookies > 0 && fixed + cookies * cookie_field > request.len {
        cookies -= 1;
    }
    let len = fixed + cookies * cookie_field;
    if len > request.len.min(MAX_PACKET) {
        return None;
    }
    out[..PACKET_LEN].copy_from_slice(header);
    let mut at = PACKET_LEN;
    out[at..at + request.unique_id_field.len()].copy_from_slice(request.unique_id_field);
    at += request.unique_id_field.len();
    let aad_end = at;
    let ciphertext_len = TAG_LEN + cookies * cookie_field;
    put_u16(out, at, field::AUTHENTICATOR);
    put_u16(out, at + 2, u16::try_from(len - aad_end).ok()?);
    put_u16(out, at + 4, u16::try_from(nonce.len()).ok()?);
    put_u16(out, at + 6, u16::try_from(ciphertext_len).ok()?);
    at += 8;
    let nonce_at = at;
    out[at..at + nonce.len()].copy_from_slice(nonce);
    out[at + nonce.len()..at + padded(nonce.len())].fill(0);
    at += padded(nonce.len());
    let sealed_at = at;
    at += TAG_LEN;
    for _ in 0..cookies {
        put_u16(out, at, field::COOKIE);
        put_u16(out, at + 2, u16::try_from(cookie_field).ok()?);
        let written = seal_cookie(keys, &mut out[at + 4..at + cookie_field])?;
        if written != cookie_field - 4 {
            return None;
        }
        at += cookie_field;
    }
    Some(Unsealed {
        len,
        cookies,
        aad_end,
        nonce_at,
        nonce_len: nonce.len(),
        sealed_at,
        ciphertext_len,
    })
}

/// Seals the reply `prepare_reply` wrote (`reply`, its `unsealed.len`
/// bytes) with the client's `keys`: everything before the Authenticator is
/// authenticated as it is now.
pub fn seal_reply(keys: &Keys, unsealed: &Unsealed, reply: &mut [u8]) -> Option<()> {
    let reply = reply.get_mut(..unsealed.len)?;
    let (head, tail) = reply.split_at_mut(unsealed.sealed_at);
    let aad = head.get(..unsealed.aad_end)?;
    let nonce = head.get(unsealed.nonce_at..unsealed.nonce_at + unsealed.nonce_len)?;
    keys.algorithm
        .seal(
            keys.s2c(),
            nonce,
            aad,
            tail.get_mut(..unsealed.ciphertext_len)?,
        )
        .ok()
}

/// [`prepare_reply`] and [`seal_reply`] at once (its transmit timestamp
/// already in `header`): the reply's length and how many cookies it
/// carries.
pub fn write_reply(
    request: &Request<'_>,
    authenticated: &Authenticated,
    header: &[u8; PACKET_LEN],
    nonce: &[u8],
    seal_cookie: impl FnMut(&Keys, &mut [u8]) -> Option<usize>,
    out: &mut [u8; MAX_PACKET],
) -> Option<(usize, usize)> {
    let unsealed = prepare_reply(request, authenticated, header, nonce, seal_cookie, out)?;
    seal_reply(&authenticated.keys, &unsealed, out)?;
    Some((unsealed.len, unsealed.cookies))
}

/// Writes the NTSN kiss-o'-death for `request` (its cookie did not open,
/// or it did not authenticate): the kiss and the Unique Identifier, no
/// time. Returns its length.
pub fn write_nak(request: &Request<'_>, out: &mut [u8; MAX_PACKET]) -> usize {
    let mut header = [0u8; PACKET_LEN];
    sntp::write_kiss_of_death(&request.header, KISS_NTSN, &mut header);
    out[..PACKET_LEN].copy_from_slice(&header);
    let end = PACKET_LEN + request.unique_id_field.len();
    out[PACKET_LEN..end].copy_from_slice(request.unique_id_field);
    end
}

fn put_u16(out: &mut [u8], at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn push_field(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    let len = 4 + padded(body.len());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(body);
    out.resize(out.len() + padded(body.len()) - body.len(), 0);
}

/// A client's NTS request: `header` (a plain SNTP request), the
/// `unique_id`, `cookie`, `placeholders` placeholders of the cookie's size,
/// and an Authenticator made with `keys` and `nonce`. `None` if sealing
/// failed (a nonce the algorithm can't take).
pub fn write_request(
    header: &[u8; PACKET_LEN],
    keys: &Keys,
    cookie: &[u8],
    placeholders: usize,
    unique_id: &[u8],
    nonce: &[u8],
) -> Option<Vec<u8>> {
    let mut out = header.to_vec();
    push_field(&mut out, field::UNIQUE_IDENTIFIER, unique_id);
    push_field(&mut out, field::COOKIE, cookie);
    for _ in 0..placeholders {
        push_field(&mut out, field::COOKIE_PLACEHOLDER, &vec![0; cookie.len()]);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    body.extend_from_slice(&(TAG_LEN as u16).to_be_bytes());
    body.extend_from_slice(nonce);
    body.resize(4 + padded(nonce.len()), 0);
    let mut tag = [0u8; TAG_LEN];
    keys.algorithm
        .seal(keys.c2s(), nonce, &out, &mut tag)
        .ok()?;
    body.extend_from_slice(&tag);
    push_field(&mut out, field::AUTHENTICATOR, &body);
    Some(out)
}

/// What an authenticated reply gave the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The 48-byte header, authenticated.
    pub header: [u8; PACKET_LEN],
    /// Fresh cookies.
    pub cookies: Vec<Vec<u8>>,
}

/// Why a client can't take a reply as authenticated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// The server could not open the cookie: do the key exchange again.
    #[error("the server did not accept the cookie (NTSN)")]
    Nak,
    /// Not the reply to this request (another Unique Identifier).
    #[error("the reply is for another request")]
    NotOurs,
    /// No authenticator, or one that does not verify.
    #[error("the reply is not authenticated")]
    Unauthenticated,
}

/// Reads the reply to the request that carried `unique_id`, sent by the
/// server whose key is `keys.s2c()`.
pub fn read_reply(datagram: &[u8], keys: &Keys, unique_id: &[u8]) -> Result<Reply, ReplyError> {
    let header: [u8; PACKET_LEN] = datagram
        .get(..PACKET_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(ReplyError::NotOurs)?;
    let mut rest = &datagram[PACKET_LEN..];
    let mut ours = false;
    while let Some((field, after)) = split_field(rest) {
        match field.kind {
            field::UNIQUE_IDENTIFIER => ours = field.body.get(..unique_id.len()) == Some(unique_id),
            field::AUTHENTICATOR if ours => {
                let aad = &datagram[..datagram.len() - rest.len()];
                let (nonce, ciphertext) =
                    authenticator_parts(field.body).ok_or(ReplyError::Unauthenticated)?;
                let mut sealed = ciphertext.to_vec();
                keys.algorithm
                    .open(keys.s2c(), nonce, aad, &mut sealed)
                    .map_err(|_| ReplyError::Unauthenticated)?;
                let mut inner = &sealed[TAG_LEN..];
                let mut cookies = Vec::new();
                while let Some((field, after)) = split_field(inner) {
                    if field.kind == field::COOKIE && field.body.len() <= MAX_COOKIE_LEN {
                        cookies.push(field.body.to_vec());
                    }
                    inner = after;
                }
                return Ok(Reply { header, cookies });
            }
            _ => {}
        }
        rest = after;
    }
    if !ours {
        return Err(ReplyError::NotOurs);
    }
    if header[1] == 0 && header[12..16] == KISS_NTSN {
        return Err(ReplyError::Nak);
    }
    Err(ReplyError::Unauthenticated)
}

#[cfg(test)]
mod tests;
