//! Roughtime's message format (RFC 10049 section 5): a count of tags, the
//! offsets of their values, the tags in ascending order, then the values,
//! every one a multiple of four bytes; and the packet that frames a
//! message ("ROUGHTIM", its length). Reading checks every rule the RFC
//! gives a reader; writing produces what the rules ask of a writer.

/// The eight bytes that open every framed packet.
pub const MAGIC: [u8; 8] = *b"ROUGHTIM";

/// The framing's size: the magic and the message's length.
pub const FRAME_LEN: usize = 12;

/// A tag: four ASCII bytes, read as a little-endian `u32` (so "SIG\0" sorts
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u32);

impl Tag {
    const fn named(name: &[u8; 4]) -> Tag {
        Tag(u32::from_le_bytes(*name))
    }
    /// A signature.
    pub const SIG: Tag = Tag::named(b"SIG\0");
    /// A list of versions (a request's offer; a response's choice).
    pub const VER: Tag = Tag::named(b"VER\0");
    /// The hash of the long-term key a request is for.
    pub const SRV: Tag = Tag::named(b"SRV\0");
    /// The client's nonce.
    pub const NONC: Tag = Tag::named(b"NONC");
    /// The delegation of an online key.
    pub const DELE: Tag = Tag::named(b"DELE");
    /// Request (0) or response (1).
    pub const TYPE: Tag = Tag::named(b"TYPE");
    /// The Merkle path from a request's leaf to the root.
    pub const PATH: Tag = Tag::named(b"PATH");
    /// The radius, in seconds.
    pub const RADI: Tag = Tag::named(b"RADI");
    /// The online public key.
    pub const PUBK: Tag = Tag::named(b"PUBK");
    /// The midpoint: the time.
    pub const MIDP: Tag = Tag::named(b"MIDP");
    /// The signed response.
    pub const SREP: Tag = Tag::named(b"SREP");
    /// The versions the server supports.
    pub const VERS: Tag = Tag::named(b"VERS");
    /// The certificate: the delegation and its signature.
    pub const CERT: Tag = Tag::named(b"CERT");
    /// The delegation's start.
    pub const MINT: Tag = Tag::named(b"MINT");
    /// The Merkle tree's root.
    pub const ROOT: Tag = Tag::named(b"ROOT");
    /// The delegation's end.
    pub const MAXT: Tag = Tag::named(b"MAXT");
    /// A request's index among the tree's leaves.
    pub const INDX: Tag = Tag::named(b"INDX");
    /// Padding.
    pub const ZZZZ: Tag = Tag::named(b"ZZZZ");
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.to_le_bytes();
        let text: String = bytes
            .iter()
            .take_while(|byte| **byte != 0)
            .map(|byte| {
                if byte.is_ascii_graphic() {
                    *byte as char
                } else {
                    '?'
                }
            })
            .collect();
        f.write_str(&text)
    }
}

/// Why bytes are no Roughtime message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Shorter than its header says.
    #[error("message truncated")]
    Truncated,
    /// No tags at all.
    #[error("message without tags")]
    Empty,
    /// An offset not a multiple of four, past the values, or smaller than the one before.
    #[error("bad value offset")]
    BadOffset,
    /// Values whose length is not a multiple of four.
    #[error("values not a multiple of four bytes")]
    Unaligned,
    /// Tags not in strictly ascending order (a tag repeated, or out of order).
    #[error("tags not strictly ascending")]
    TagOrder,
    /// Not framed as "ROUGHTIM" and a length.
    #[error("no ROUGHTIM framing")]
    NotFramed,
    /// The framing's length is not the message's.
    #[error("framed length differs from the packet's")]
    FrameLength,
}

/// A parsed message: its tags and where their values are, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    count: usize,
    header: &'a [u8],
    values: &'a [u8],
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at + 4)?;
    Some(u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
}

impl<'a> Message<'a> {
    /// Reads a message, checking its header whole (so looking a tag up
    /// later can't fail on a malformed one).
    pub fn parse(bytes: &'a [u8]) -> Result<Message<'a>, WireError> {
        let count = u32_at(bytes, 0).ok_or(WireError::Truncated)? as usize;
        if count == 0 {
            return Err(WireError::Empty);
        }
        // 8 bytes a tag (its tag and an offset, less the first's) + the count.
        let header_len = count
            .checked_mul(8)
            .filter(|len| *len <= bytes.len())
            .ok_or(WireError::Truncated)?;
        let (header, values) = bytes.split_at(header_len);
        if values.len() % 4 != 0 {
            return Err(WireError::Unaligned);
        }
        let message = Message {
            count,
            header,
            values,
        };
        let mut previous = 0;
        for index in 1..count {
            let offset = message.offset(index);
            if offset % 4 != 0 || offset < previous || offset > values.len() {
                return Err(WireError::BadOffset);
            }
            previous = offset;
        }
        for index in 1..count {
            if message.tag(index) <= message.tag(index - 1) {
                return Err(WireError::TagOrder);
            }
        }
        Ok(message)
    }

    /// How many tags it has.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never: a message has at least one tag.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn offset(&self, index: usize) -> usize {
        if index == 0 {
            return 0;
        }
        if index >= self.count {
            return self.values.len();
        }
        u32_at(self.header, 4 * index).unwrap_or(0) as usize
    }

    /// The `index`th tag.
    pub fn tag(&self, index: usize) -> Tag {
        Tag(u32_at(self.header, 4 * self.count + 4 * index).unwrap_or(u32::MAX))
    }

    /// The value of `tag`, if the message has it.
    pub fn get(&self, tag: Tag) -> Option<&'a [u8]> {
        let index = (0..self.count).find(|index| self.tag(*index) == tag)?;
        self.values.get(self.offset(index)..self.offset(index + 1))
    }

    /// Every tag and its value, in order.
    pub fn entries(&self) -> impl Iterator<Item = (Tag, &'a [u8])> + '_ {
        (0..self.count).map(|index| {
            let value = self
                .values
                .get(self.offset(index)..self.offset(index + 1))
                .unwrap_or(&[]);
            (self.tag(index), value)
        })
    }
}

/// Reads a framed packet's message: the magic, a length equal to what
/// follows it, then the message.
pub fn unframe(packet: &[u8]) -> Result<&[u8], WireError> {
    if packet.len() < FRAME_LEN || packet[..8] != MAGIC {
        return Err(WireError::NotFramed);
    }
    let length = u32_at(packet, 8).ok_or(WireError::NotFramed)? as usize;
    if length != packet.len() - FRAME_LEN {
        return Err(WireError::FrameLength);
    }
    Ok(&packet[FRAME_LEN..])
}

/// A value read as a `u32`, if it is four bytes.
pub fn read_u32(value: &[u8]) -> Option<u32> {
    (value.len() == 4).then(|| u32_at(value, 0)).flatten()
}

/// A value read as a `u64`, if it is eight bytes.
pub fn read_u64(value: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = value.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// Writes a message from its tags and values, which the caller gives in
/// ascending tag order, each value a multiple of four bytes (both checked
/// in debug builds: the writer's values are the server's own).
pub fn write_message(out: &mut Vec<u8>, entries: &[(Tag, &[u8])]) {
    debug_assert!(entries.windows(2).all(|pair| pair[0].0 < pair[1].0));
    debug_assert!(entries.iter().all(|(_, value)| value.len() % 4 == 0));
    let count = entries.len() as u32;
    out.extend_from_slice(&count.to_le_bytes());
    let mut offset = 0u32;
    for (_, value) in entries.iter().take(entries.len().saturating_sub(1)) {
        offset += value.len() as u32;
        out.extend_from_slice(&offset.to_le_bytes());
    }
    for (tag, _) in entries {
        out.extend_from_slice(&tag.0.to_le_bytes());
    }
    for (_, value) in entries {
        out.extend_from_slice(value);
    }
}

/// Frames a message of `message_len` bytes, which follows.
pub fn write_frame(out: &mut Vec<u8>, message_len: usize) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(message_len as u32).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(entries: &[(Tag, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        write_message(&mut out, entries);
        out
    }

    #[test]
    fn a_written_message_reads_back_whole() {
        let bytes = written(&[
            (Tag::SIG, &[1; 64]),
            (Tag::NONC, &[2; 32]),
            (Tag::PATH, &[]),
            (Tag::INDX, &[0; 4]),
        ]);
        assert_eq!(bytes.len(), 4 + 3 * 4 + 4 * 4 + 100);
        let message = Message::parse(&bytes).expect("parses");
        assert_eq!(message.len(), 4);
        assert_eq!(message.get(Tag::SIG), Some(&[1u8; 64][..]));
        assert_eq!(message.get(Tag::NONC), Some(&[2u8; 32][..]));
        assert_eq!(message.get(Tag::PATH), Some(&[][..]));
        assert_eq!(message.get(Tag::INDX), Some(&[0u8; 4][..]));
        assert_eq!(message.get(Tag::SREP), None);
    }

    #[test]
    fn tags_sort_as_the_rfc_lists_them() {
        let order = [
            Tag::SIG,
            Tag::VER,
            Tag::SRV,
            Tag::NONC,
            Tag::DELE,
            Tag::TYPE,
            Tag::PATH,
            Tag::RADI,
            Tag::PUBK,
            Tag::MIDP,
            Tag::SREP,
            Tag::VERS,
            Tag::MINT,
            Tag::ROOT,
            Tag::CERT,
            Tag::MAXT,
            Tag::INDX,
            Tag::ZZZZ,
        ];
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(Tag::NONC.0, 0x434e_4f4e, "IANA's value");
        assert_eq!(Tag::SIG.to_string(), "SIG");
    }

    #[test]
    fn malformed_messages_are_refused_with_their_reason() {
        let good = written(&[(Tag::SIG, &[0; 4]), (Tag::NONC, &[0; 4])]);
        assert!(Message::parse(&good).is_ok());
        assert_eq!(Message::parse(&[]).unwrap_err(), WireError::Truncated);
        assert_eq!(Message::parse(&[0; 8]).unwrap_err(), WireError::Empty);
        assert_eq!(
            Message::parse(&good[..good.len() - 1]).unwrap_err(),
            WireError::Unaligned
        );
        // A count larger than the bytes.
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Message::parse(&huge).unwrap_err(), WireError::Truncated);
        // The same tag twice.
        let twice = written(&[(Tag::SIG, &[0; 4]), (Tag::NONC, &[0; 4])]);
        let mut twice = twice;
        twice[12..16].copy_from_slice(&Tag::SIG.0.to_le_bytes());
        assert_eq!(Message::parse(&twice).unwrap_err(), WireError::TagOrder);
        // An offset past the values, and one not a multiple of four.
        let mut past = good.clone();
        past[4..8].copy_from_slice(&12u32.to_le_bytes());
        assert_eq!(Message::parse(&past).unwrap_err(), WireError::BadOffset);
        let mut odd = good;
        odd[4..8].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Message::parse(&odd).unwrap_err(), WireError::BadOffset);
    }

    #[test]
    fn framing_is_the_magic_and_the_exact_length() {
        let message = written(&[(Tag::NONC, &[0; 32])]);
        let mut packet = Vec::new();
        write_frame(&mut packet, message.len());
        packet.extend_from_slice(&message);
        assert_eq!(unframe(&packet), Ok(&message[..]));
        assert_eq!(unframe(&message), Err(WireError::NotFramed));
        let mut longer = packet.clone();
        longer.extend_from_slice(&[0; 4]);
        assert_eq!(unframe(&longer), Err(WireError::FrameLength));
        assert_eq!(unframe(&packet[..20]), Err(WireError::FrameLength));
    }
}
