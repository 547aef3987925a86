//! The cookie keys a server holds ([`KeyRing`]): the newest seals, the last
//! [`KEPT`] open, and they rotate on a schedule every host of a fleet can
//! follow from one shared file ([`KeyRing::parse`], [`KeyRing::render`]).
//!
//! A new key is written [`LEAD`] before it starts sealing, so every host
//! re-reading the file has it before the first cookie sealed with it
//! arrives. Time is wall-clock seconds (shared between hosts and across
//! restarts), passed in.

use std::fmt::Write as _;

use super::cookie::{CookieKey, KEY_LEN};

/// How many keys are kept: with daily rotation, a client's cookies stay
/// good for a week.
pub const KEPT: usize = 7;
/// How long before it seals a new key is in the file.
pub const LEAD: u64 = 60;

/// One key and when (Unix seconds) it starts sealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: CookieKey,
    /// From when it seals.
    pub seals_from: u64,
}

/// The keys held, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyRing {
    entries: Vec<Entry>,
    /// The keys alone, for [`KeyRing::opening`].
    keys: Vec<CookieKey>,
}

/// A key file that can't be read as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct RingError {
    /// Its 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub what: &'static str,
}

const HEADER: &str =
    "# horad NTS cookie keys: id, seals from (Unix seconds), key. Secret: mode 0600.\n";

impl KeyRing {
    /// The ring of `entries`, oldest first, keeping the last [`KEPT`].
    pub fn new(mut entries: Vec<Entry>) -> KeyRing {
        entries.sort_by_key(|entry| entry.seals_from);
        let drop = entries.len().saturating_sub(KEPT);
        entries.drain(..drop);
        let keys = entries.iter().map(|entry| entry.key.clone()).collect();
        KeyRing { entries, keys }
    }

    /// Every key held: any of them opens a cookie it sealed.
    pub fn opening(&self) -> &[CookieKey] {
        &self.keys
    }

    /// The key that seals at `now`: the newest whose time has come (the
    /// oldest if none has); `None` only for an empty ring.
    pub fn sealing(&self, now: u64) -> Option<&CookieKey> {
        self.entries
            .iter()
            .rev()
            .find(|entry| entry.seals_from <= now)
            .or(self.entries.first())
            .map(|entry| &entry.key)
    }

    /// Whether a new key is due at `now` when keys rotate every
    /// `interval` seconds: none is held, or the newest has sealed (or will
    /// have, [`LEAD`] from now) for `interval`.
    pub fn rotation_due(&self, now: u64, interval: u64) -> bool {
        self.entries.last().is_none_or(|newest| {
            newest.seals_from.saturating_add(interval) <= now.saturating_add(LEAD)
        })
    }

    /// The ring with `key` added, sealing [`LEAD`] after `now` (at once if
    /// the ring was empty: nobody holds a cookie yet).
    pub fn rotated(&self, key: CookieKey, now: u64) -> KeyRing {
        let seals_from = if self.entries.is_empty() {
            now
        } else {
            now + LEAD
        };
        let mut entries = self.entries.clone();
        entries.push(Entry { key, seals_from });
        KeyRing::new(entries)
    }

    /// Reads a key file: one key a line, `id seals_from key` in hex,
    /// decimal and hex; `#` lines are comments.
    pub fn parse(text: &str) -> Result<KeyRing, RingError> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let bad = |what| RingError {
                line: line_no,
                what,
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(id), Some(from), Some(key), None) =
                (words.next(), words.next(), words.next(), words.next())
            else {
                return Err(bad("expected: id seals_from key"));
            };
            let id = u32::from_str_radix(id, 16).map_err(|_| bad("id: not 8 hex digits"))?;
            let seals_from = from
                .parse()
                .map_err(|_| bad("seals_from: not Unix seconds"))?;
            let key = hex_key(key).ok_or(bad("key: not 32 hex digits"))?;
            entries.push(Entry {
                key: CookieKey { id, key },
                seals_from,
            });
        }
        let mut ids: Vec<u32> = entries.iter().map(|entry| entry.key.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|pair| pair[0] == pair[1]) {
            return Err(RingError {
                line: 0,
                what: "two keys with one id",
            });
        }
        Ok(KeyRing::new(entries))
    }

    /// The file's text: [`KeyRing::parse`] reads it back.
    pub fn render(&self) -> String {
        let mut text = String::from(HEADER);
        for entry in &self.entries {
            let _ = write!(text, "{:08x} {} ", entry.key.id, entry.seals_from);
            for byte in entry.key.key {
                let _ = write!(text, "{byte:02x}");
            }
            text.push('\n');
        }
        text
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn hex_key(text: &str) -> Option<[u8; KEY_LEN]> {
    if text.len() != 2 * KEY_LEN || !text.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
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

    const DAY: u64 = 86_400;

    #[test]
    fn keys_rotate_daily_seal_after_their_lead_and_the_last_seven_are_kept() {
        let mut ring = KeyRing::default();
        assert!(ring.rotation_due(0, DAY));
        ring = ring.rotated(key(1), 1000);
        assert_eq!(
            ring.sealing(1000).map(|k| k.id),
            Some(1),
            "the first seals at once"
        );
        assert!(!ring.rotation_due(1000 + DAY - LEAD - 1, DAY));
        let at = 1000 + DAY - LEAD;
        assert!(ring.rotation_due(at, DAY));
        ring = ring.rotated(key(2), at);
        assert_eq!(
            ring.sealing(at).map(|k| k.id),
            Some(1),
            "a new key waits its lead"
        );
        assert_eq!(ring.sealing(at + LEAD).map(|k| k.id), Some(2));
        for id in 3..=10 {
            ring = ring.rotated(key(id), at + u64::from(id) * DAY);
        }
        let ids: Vec<u32> = ring.opening().iter().map(|k| k.id).collect();
        assert_eq!(ids, vec![4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn the_file_reads_back_as_written_and_bad_lines_are_named() {
        let ring = KeyRing::default()
            .rotated(key(0xdead_beef), 5)
            .rotated(key(2), 6);
        assert_eq!(KeyRing::parse(&ring.render()), Ok(ring.clone()));
        let text = ring.render();
        let rows = [
            (format!("{text}zz 1 00\n"), 4),
            (format!("{text}00000001 x {}\n", "00".repeat(16)), 4),
            (format!("{text}00000001 1 {}\n", "0".repeat(31)), 4),
            (format!("{text}00000001 1 {} extra\n", "00".repeat(16)), 4),
        ];
        for (text, line) in rows {
            assert_eq!(
                KeyRing::parse(&text).map_err(|e| e.line),
                Err(line),
                "{text}"
            );
        }
        let twice = format!("{text}00000002 9 {}\n", "11".repeat(16));
        assert!(KeyRing::parse(&twice).is_err());
    }
}
