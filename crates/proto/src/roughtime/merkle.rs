//! The Merkle tree that lets one signature answer a batch (RFC 10049
//! section 5.3): each request is a leaf, `H(0x00 || leaf)`; each node
//! `H(0x01 || left || right)`; `H` is SHA-512 truncated to 32 bytes. A
//! reply carries the root (signed) and its request's path: the siblings
//! from its leaf up. A batch that is not a power of two repeats its last
//! leaf.

use aws_lc_rs::digest::{Context, SHA512};

/// A hash: SHA-512's first 32 bytes.
pub type Hash = [u8; 32];

/// The most requests one tree holds: 2^6, a path of six hashes.
pub const MAX_LEAVES: usize = 64;

fn hash(prefix: u8, parts: &[&[u8]]) -> Hash {
    let mut context = Context::new(&SHA512);
    context.update(&[prefix]);
    for part in parts {
        context.update(part);
    }
    let digest = context.finish();
    let mut out = [0; 32];
    out.copy_from_slice(&digest.as_ref()[..32]);
    out
}

/// A leaf's hash.
pub fn leaf(data: &[u8]) -> Hash {
    hash(0, &[data])
}

/// A node's hash.
pub fn node(left: &Hash, right: &Hash) -> Hash {
    hash(1, &[left, right])
}

/// The hash `SRV` names a long-term public key by: `H(0xff || key)`.
pub fn server_hash(public_key: &[u8; 32]) -> Hash {
    hash(0xff, &[public_key])
}

/// A tree over up to [`MAX_LEAVES`] leaves, every level kept.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    /// Level 0 the leaves (padded to a power of two), the last the root.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// Builds the tree over `leaves` (at least one, at most [`MAX_LEAVES`]).
    pub fn new(leaves: &[Hash]) -> Tree {
        let width = leaves.len().max(1).next_power_of_two();
        let mut level: Vec<Hash> = leaves.to_vec();
        let last = level.last().copied().unwrap_or([0; 32]);
        level.resize(width, last);
        let mut levels = vec![level];
        while let Some(below) = levels.last().filter(|level| level.len() > 1) {
            let above = below.chunks_exact(2).map(|pair| node(&pair[0], &pair[1]));
            let above: Vec<Hash> = above.collect();
            levels.push(above);
        }
        Tree { levels }
    }

    /// The root, which the response signs.
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|level| level.first())
            .copied()
            .unwrap_or([0; 32])
    }

    /// Leaf `index`'s path, its siblings from the bottom up, written as
    /// `PATH`'s value.
    pub fn path(&self, index: usize, out: &mut Vec<u8>) {
        let mut at = index;
        for level in self.levels.iter().take(self.levels.len() - 1) {
            if let Some(sibling) = level.get(at ^ 1) {
                out.extend_from_slice(sibling);
            }
            at /= 2;
        }
    }
}

/// The root a leaf and its path lead to: what a client checks against the
/// signed root.
pub fn root_from(leaf: Hash, index: u32, path: &[u8]) -> Option<Hash> {
    if path.len() % 32 != 0 || path.len() / 32 > 32 {
        return None;
    }
    let mut at = leaf;
    for (depth, sibling) in path.chunks_exact(32).enumerate() {
        let mut other = [0; 32];
        other.copy_from_slice(sibling);
        at = if index >> depth & 1 == 0 {
            node(&at, &other)
        } else {
            node(&other, &at)
        };
    }
    // An index with bits above the path's depth names no leaf.
    let depth = path.len() / 32;
    (depth >= 32 || index >> depth == 0).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn one_leaf_is_its_own_root_with_an_empty_path() {
        let only = leaf(b"request");
        let tree = Tree::new(&[only]);
        assert_eq!(tree.root(), only);
        let mut path = Vec::new();
        tree.path(0, &mut path);
        assert!(path.is_empty());
        assert_eq!(root_from(only, 0, &path), Some(only));
        assert_eq!(
            root_from(only, 1, &path),
            None,
            "no leaf 1 in a tree of one"
        );
    }

    #[test]
    fn the_hash_is_sha512_cut_to_32_bytes() {
        // SHA-512 of the single byte 0x00, from `printf '\0' | sha512sum`.
        assert_eq!(
            leaf(b"")[..8],
            [0xb8, 0x24, 0x4d, 0x02, 0x89, 0x81, 0xd6, 0x93]
        );
    }

    proptest! {
        #[test]
        fn every_leaf_s_path_leads_to_the_root(count in 1usize..=MAX_LEAVES, seed in any::<u64>()) {
            let leaves: Vec<Hash> = (0..count)
                .map(|i| leaf(&(seed ^ i as u64).to_le_bytes()))
                .collect();
            let tree = Tree::new(&leaves);
            for (index, leaf) in leaves.iter().enumerate() {
                let mut path = Vec::new();
                tree.path(index, &mut path);
                prop_assert_eq!(path.len(), 32 * count.next_power_of_two().trailing_zeros() as usize);
                prop_assert_eq!(root_from(*leaf, index as u32, &path), Some(tree.root()));
                // Any other leaf at this place fails.
                let other = leaf_other(leaf);
                prop_assert_ne!(root_from(other, index as u32, &path), Some(tree.root()));
            }
        }
    }

    fn leaf_other(leaf: &Hash) -> Hash {
        let mut other = *leaf;
        other[0] ^= 1;
        other
    }
}
