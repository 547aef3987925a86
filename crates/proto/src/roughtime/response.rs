//! A batch's responses (RFC 10049 section 5.2): the requests of one
//! version become the leaves of one tree; its root, the time and the
//! radius are signed once (`SREP`); each request gets the signature, its
//! nonce, its path and index, and the online key's certificate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::keys::OnlineKey;
use super::merkle::{Tree, MAX_LEAVES};
use super::request::Accepted;
use super::version::{Profile, Version};
use super::wire::{self, Tag};

/// What every response of a batch says of the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time {
    /// The midpoint, Unix seconds.
    pub midpoint: u64,
    /// The radius, seconds (at least 1: RFC 10049 5.2.5).
    pub radius: u32,
}

impl Time {
    /// What to sign at `wall`, by a clock the kernel says is within
    /// `max_error` of true time: the nearest whole second, and a radius
    /// covering the kernel's error and the half second of rounding, never
    /// below `min_radius` nor zero.
    pub fn at(wall: SystemTime, max_error: Duration, min_radius: Duration) -> Time {
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let midpoint = (since + Duration::from_millis(500)).as_secs();
        let needed = max_error + Duration::from_millis(500);
        let radius = needed.max(min_radius);
        let whole = radius.as_secs() + u64::from(radius.subsec_nanos() > 0);
        Time {
            midpoint,
            radius: u32::try_from(whole).unwrap_or(u32::MAX).max(1),
        }
    }
}

/// Buffers kept from batch to batch, so answering allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Responder {
    order: Vec<usize>,
    leaves: Vec<super::merkle::Hash>,
    signed: Vec<u8>,
    scratch: Vec<u8>,
    path: Vec<u8>,
    packet: Vec<u8>,
    versions: Vec<u8>,
}

impl Responder {
    /// Answers `requests`, handing each response to `send` with the
    /// request's index; returns how many signatures it made (one per
    /// version present, per [`MAX_LEAVES`] requests).
    pub fn answer(
        &mut self,
        online: &OnlineKey,
        requests: &[Accepted],
        time: Time,
        mut send: impl FnMut(usize, &[u8]),
    ) -> usize {
        if self.versions.is_empty() {
            self.versions = Version::supported()
                .flat_map(|v| v.0.to_le_bytes())
                .collect();
        }
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(0..requests.len());
        order.sort_by_key(|index| requests[*index].profile.version);
        let mut signatures = 0;
        for group in
            order.chunk_by(|a, b| requests[*a].profile.version == requests[*b].profile.version)
        {
            for chunk in group.chunks(MAX_LEAVES) {
                self.answer_tree(online, requests, chunk, time, &mut send);
                signatures += 1;
            }
        }
        self.order = order;
        signatures
    }

    /// One tree: `chunk` indexes requests of one version.
    fn answer_tree(
        &mut self,
        online: &OnlineKey,
        requests: &[Accepted],
        chunk: &[usize],
        time: Time,
        send: &mut impl FnMut(usize, &[u8]),
    ) {
        let Some(profile) = chunk.first().map(|first| requests[*first].profile) else {
            return;
        };
        self.leaves.clear();
        self.leaves
            .extend(chunk.iter().map(|index| requests[*index].leaf));
        let tree = Tree::new(&self.leaves);
        self.signed.clear();
        let version = profile.version.0.to_le_bytes();
        wire::write_message(
            &mut self.signed,
            &[
                (Tag::VER, &version),
                (Tag::RADI, &time.radius.max(1).to_le_bytes()),
                (Tag::MIDP, &time.midpoint.to_le_bytes()),
                (Tag::VERS, &self.versions),
                (Tag::ROOT, &tree.root()),
            ],
        );
        let signature = online.sign(&profile, &self.signed, &mut self.scratch);
        let certificate = online.certificate(&profile);
        for (leaf, index) in chunk.iter().enumerate() {
            self.path.clear();
            tree.path(leaf, &mut self.path);
            let parts = Parts {
                profile: &profile,
                signature: &signature,
                nonce: &requests[*index].nonce,
                path: &self.path,
                signed: &self.signed,
                certificate,
                index: leaf as u32,
            };
            parts.write(&mut self.packet);
            send(*index, &self.packet);
        }
    }
}

/// One response's values.
struct Parts<'a> {
    profile: &'a Profile,
    signature: &'a [u8; 64],
    nonce: &'a [u8],
    path: &'a [u8],
    signed: &'a [u8],
    certificate: &'a [u8],
    index: u32,
}

impl Parts<'_> {
    /// Writes the framed packet into `out`.
    fn write(&self, out: &mut Vec<u8>) {
        let version = self.profile.version.0.to_le_bytes();
        let index = self.index.to_le_bytes();
        let kind = 1u32.to_le_bytes();
        let all: [(Tag, &[u8]); 8] = [
            (Tag::SIG, self.signature),
            (Tag::VER, &version),
            (Tag::NONC, self.nonce),
            (Tag::TYPE, &kind),
            (Tag::PATH, self.path),
            (Tag::SREP, self.signed),
            (Tag::CERT, self.certificate),
            (Tag::INDX, &index),
        ];
        // The version outside SREP only for the drafts before 12.
        let (first, rest) = all.split_at(2);
        let mut entries: [(Tag, &[u8]); 8] = all;
        let count = if self.profile.version_outside {
            8
        } else {
            entries[0] = first[0];
            entries[1..7].copy_from_slice(rest);
            7
        };
        out.clear();
        wire::write_frame(out, 0);
        wire::write_message(out, &entries[..count]);
        let length = (out.len() - wire::FRAME_LEN) as u32;
        out[8..wire::FRAME_LEN].copy_from_slice(&length.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_radius_covers_the_kernel_s_error_and_the_rounding() {
        let wall = UNIX_EPOCH + Duration::from_millis(1_000_600);
        let precise = Time::at(wall, Duration::from_millis(2), Duration::from_secs(1));
        assert_eq!(
            precise,
            Time {
                midpoint: 1_001,
                radius: 1
            },
            "rounded to the nearest second"
        );
        let drifting = Time::at(wall, Duration::from_millis(2_700), Duration::from_secs(1));
        assert_eq!(drifting.radius, 4, "2.7 s + 0.5 s, rounded up");
        let floored = Time::at(wall, Duration::ZERO, Duration::from_secs(5));
        assert_eq!(floored.radius, 5);
        let unsynchronized = Time::at(wall, Duration::from_secs(16), Duration::from_secs(1));
        assert_eq!(unsynchronized.radius, 17);
    }
}
