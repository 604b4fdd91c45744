//! `CompactRange`: the right frontier of an append-only Merkle tree, so appending a
//! leaf and computing the head both cost O(log n) hashes and O(log n) memory.

use super::{empty_root, node_hash, Hash};
use crate::CryptoError;

/// The roots of the perfect subtrees that make up a tree of `size` leaves, one per
/// set bit of `size`, largest (leftmost) first. Persist `size` and `peaks` to resume
/// appending after a restart ([`CompactRange::from_parts`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

impl CompactRange {
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a range from stored parts; there must be one peak per set bit of
    /// `size`.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, CryptoError> {
        if peaks.len() != size.count_ones() as usize {
            return Err(CryptoError::Malformed("compact range: peak count"));
        }
        Ok(Self { size, peaks })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends a leaf hash (see [`super::leaf_hash`]), merging equal-sized subtrees
    /// like a binary counter carries.
    pub fn append(&mut self, leaf: Hash) {
        self.append_with(leaf, |_, _, _| {});
    }

    /// [`CompactRange::append`], calling `completed(level, index, root)` for each
    /// perfect subtree the leaf completes: the one at `level` h ≥ 1 and `index` i
    /// covers leaves `i·2^h .. (i+1)·2^h`. Stored, such roots let inclusion proofs be
    /// built without reading every leaf ([`super::inclusion_proof_with`]).
    pub fn append_with(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let position = self.size;
        self.peaks.push(leaf);
        let mut size = self.size;
        let mut level = 0;
        while size & 1 == 1 {
            let right = self
                .peaks
                .pop()
                .expect("a set bit has a peak: this is a bug");
            let left = self
                .peaks
                .pop()
                .expect("a set bit has a peak: this is a bug");
            let node = node_hash(&left, &right);
            level += 1;
            completed(level, position >> level, &node);
            self.peaks.push(node);
            size >>= 1;
        }
        self.size += 1;
    }

    /// The tree head: peaks folded right to left, which is exactly the RFC 9162
    /// split at the largest power of two below the size.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(mut root) = peaks.next().copied() else {
            return empty_root();
        };
        for peak in peaks {
            root = node_hash(peak, &root);
        }
        root
    }
}
