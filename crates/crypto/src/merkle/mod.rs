//! RFC 9162 (Certificate Transparency v2, same hashing as RFC 6962) Merkle trees over
//! audit entries: tree heads, inclusion and consistency proofs, an O(log n)
//! append-only frontier, the audit hash chain, and signed checkpoints.
//!
//! Hashes: leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right), the
//! empty tree = SHA-256(""). The tree over *n* leaves splits at the largest power of
//! two smaller than *n* (RFC 9162 §2.1.1). Proof generation follows §2.1.3.1 and
//! §2.1.4.1, verification §2.1.3.2 and §2.1.4.2 step by step.
//!
//! Proof generation takes the stored leaf hashes and costs O(n) hashing; the
//! verifiers cost O(log n).

mod checkpoint;
mod compact;

pub use checkpoint::{Checkpoint, CHECKPOINT_ORIGIN};
pub use compact::CompactRange;

use sha2::{Digest, Sha256};

use crate::CryptoError;

/// A SHA-256 value: leaf hash, node hash or tree head.
pub type Hash = [u8; 32];

const CHAIN_LABEL: &[u8] = b"charter/audit-chain/v1\0";

/// The head of the tree with no leaves: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The audit hash chain: each entry commits to the previous link, so editing,
/// deleting or reordering an entry changes every later link. The first entry uses
/// `prev = [0; 32]`. Domain-separated from the Merkle hashes, so a chain link is
/// never a valid leaf or node hash.
pub fn chain_hash(prev: Hash, entry_bytes: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(CHAIN_LABEL);
    hasher.update(prev);
    hasher.update(entry_bytes);
    hasher.finalize().into()
}

/// The Merkle Tree Hash (tree head) of `leaf_hashes`.
pub fn root(leaf_hashes: &[Hash]) -> Hash {
    let mut range = CompactRange::new();
    for leaf in leaf_hashes {
        range.append(*leaf);
    }
    range.root()
}

/// The inclusion proof (audit path) of leaf `index` in the tree formed by the first
/// `size` of `leaf_hashes` (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(
    leaf_hashes: &[Hash],
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, CryptoError> {
    let leaves = prefix(leaf_hashes, size)?;
    if index >= size {
        return Err(CryptoError::InvalidArgument(
            "leaf index not below tree size",
        ));
    }
    inclusion_proof_with(index, size, &mut perfect_subtrees(leaves)).ok_or(
        CryptoError::InvalidArgument("leaf index not below tree size"),
    )
}

/// The inclusion proof of leaf `index` in a tree of `size` leaves (as
/// [`inclusion_proof`]), built from roots of perfect subtrees: `subtree(start, level)`
/// is the root of leaves `start .. start + 2^level` (level 0: the leaf hash itself),
/// or `None` when unknown, which makes the result `None`. Every perfect subtree of the
/// RFC 9162 tree starts at a multiple of its size. Which subtrees it asks for depends
/// only on `index` and `size` ([`inclusion_subtrees`]).
pub fn inclusion_proof_with(
    index: u64,
    size: u64,
    subtree: &mut impl FnMut(u64, u32) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let mut proof = Vec::new();
    path_with(index, 0, size, subtree, &mut proof)?;
    Some(proof)
}

/// The `(start, level)` of every perfect subtree [`inclusion_proof_with`] asks for.
pub fn inclusion_subtrees(index: u64, size: u64) -> Vec<(u64, u32)> {
    subtrees_asked(|subtree| {
        inclusion_proof_with(index, size, &mut &mut *subtree);
    })
}

/// The consistency proof between the trees of `old_size` and `new_size` leaves (as
/// [`consistency_proof`]), built from roots of perfect subtrees as
/// [`inclusion_proof_with`] builds inclusion proofs; `None` when a subtree is unknown
/// or `old_size > new_size`. Which subtrees it asks for depends only on the two sizes
/// ([`consistency_subtrees`]).
pub fn consistency_proof_with(
    old_size: u64,
    new_size: u64,
    subtree: &mut impl FnMut(u64, u32) -> Option<Hash>,
) -> Option<Vec<Hash>> {
    if old_size > new_size {
        return None;
    }
    let mut proof = Vec::new();
    if old_size > 0 && old_size < new_size {
        subproof_with(old_size, 0, new_size, true, subtree, &mut proof)?;
    }
    Some(proof)
}

/// The `(start, level)` of every perfect subtree [`consistency_proof_with`] asks for.
pub fn consistency_subtrees(old_size: u64, new_size: u64) -> Vec<(u64, u32)> {
    subtrees_asked(|subtree| {
        consistency_proof_with(old_size, new_size, &mut &mut *subtree);
    })
}

/// The head of the tree of the first `size` leaves, from roots of perfect subtrees
/// (one per set bit of `size`); `None` when one is unknown.
pub fn root_with(size: u64, subtree: &mut impl FnMut(u64, u32) -> Option<Hash>) -> Option<Hash> {
    if size == 0 {
        return Some(empty_root());
    }
    tree_hash_with(0, size, subtree)
}

/// The `(start, level)` of every perfect subtree [`root_with`] asks for.
pub fn root_subtrees(size: u64) -> Vec<(u64, u32)> {
    subtrees_asked(|subtree| {
        root_with(size, &mut &mut *subtree);
    })
}

/// Records the subtrees a `_with` builder asks for, answering each with a dummy hash.
fn subtrees_asked(build: impl FnOnce(&mut dyn FnMut(u64, u32) -> Option<Hash>)) -> Vec<(u64, u32)> {
    let mut asked = Vec::new();
    build(&mut |start, level| {
        asked.push((start, level));
        Some([0; 32])
    });
    asked
}

/// PATH(m, D[start..end]) from subtree roots.
fn path_with(
    m: u64,
    start: u64,
    end: u64,
    subtree: &mut impl FnMut(u64, u32) -> Option<Hash>,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    if end - start <= 1 {
        return Some(());
    }
    let k = split_point((end - start) as usize) as u64;
    if m < start + k {
        path_with(m, start, start + k, subtree, proof)?;
        proof.push(tree_hash_with(start + k, end, subtree)?);
    } else {
        path_with(m, start + k, end, subtree, proof)?;
        proof.push(tree_hash_with(start, start + k, subtree)?);
    }
    Some(())
}

/// MTH(D[start..end]) from subtree roots.
fn tree_hash_with(
    start: u64,
    end: u64,
    subtree: &mut impl FnMut(u64, u32) -> Option<Hash>,
) -> Option<Hash> {
    let n = end - start;
    if n.is_power_of_two() {
        return subtree(start, n.trailing_zeros());
    }
    let k = split_point(n as usize) as u64;
    let left = tree_hash_with(start, start + k, subtree)?;
    let right = tree_hash_with(start + k, end, subtree)?;
    Some(node_hash(&left, &right))
}

/// The consistency proof between the tree of the first `old_size` and the tree of
/// the first `new_size` of `leaf_hashes` (RFC 9162 §2.1.4.1). Empty when
/// `old_size` is 0 or equals `new_size`.
pub fn consistency_proof(
    leaf_hashes: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, CryptoError> {
    let leaves = prefix(leaf_hashes, new_size)?;
    if old_size > new_size {
        return Err(CryptoError::InvalidArgument("old size above new size"));
    }
    consistency_proof_with(old_size, new_size, &mut perfect_subtrees(leaves))
        .ok_or(CryptoError::InvalidArgument("old size above new size"))
}

/// Roots of perfect subtrees computed from the leaves, for the `_with` builders.
fn perfect_subtrees(leaves: &[Hash]) -> impl FnMut(u64, u32) -> Option<Hash> + '_ {
    |start, level| {
        let start = usize::try_from(start).ok()?;
        leaves
            .get(start..)?
            .get(..1usize.checked_shl(level)?)
            .map(root)
    }
}

/// Verifies that `leaf` is entry `index` of the tree of `size` leaves with head
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), CryptoError> {
    if index >= size {
        return Err(CryptoError::InvalidProof("leaf index not below tree size"));
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(CryptoError::InvalidProof("proof too long"));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(CryptoError::InvalidProof("proof too short"));
    }
    if r != *root {
        return Err(CryptoError::InvalidProof("root mismatch"));
    }
    Ok(())
}

/// Verifies that the tree of `old_size` leaves with head `old_root` is a prefix of
/// the tree of `new_size` leaves with head `new_root` (RFC 9162 §2.1.4.2, with the
/// trivial cases: equal sizes need equal roots and an empty proof; an empty old tree
/// is a prefix of anything, with an empty proof).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), CryptoError> {
    if old_size > new_size {
        return Err(CryptoError::InvalidProof("old size above new size"));
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(CryptoError::InvalidProof("non-empty proof for equal sizes"));
        }
        if old_root != new_root {
            return Err(CryptoError::InvalidProof("root mismatch"));
        }
        return Ok(());
    }
    if old_size == 0 {
        if !proof.is_empty() {
            return Err(CryptoError::InvalidProof("non-empty proof from empty tree"));
        }
        return Ok(());
    }
    if proof.is_empty() {
        return Err(CryptoError::InvalidProof("empty proof"));
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);

    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    if f_n & 1 == 1 {
        while f_n & 1 == 1 {
            f_n >>= 1;
            s_n >>= 1;
        }
    }
    let (mut f_r, mut s_r) = (path[0], path[0]);
    for c in &path[1..] {
        if s_n == 0 {
            return Err(CryptoError::InvalidProof("proof too long"));
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(CryptoError::InvalidProof("proof too short"));
    }
    if f_r != *old_root || s_r != *new_root {
        return Err(CryptoError::InvalidProof("root mismatch"));
    }
    Ok(())
}

fn prefix(leaf_hashes: &[Hash], size: u64) -> Result<&[Hash], CryptoError> {
    usize::try_from(size)
        .ok()
        .and_then(|size| leaf_hashes.get(..size))
        .ok_or(CryptoError::InvalidArgument(
            "tree size above number of leaves",
        ))
}

/// The largest power of two strictly smaller than `n` (n ≥ 2).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// SUBPROOF(m, D[start..end], b) of RFC 9162 §2.1.4.1, from subtree roots.
fn subproof_with(
    m: u64,
    start: u64,
    end: u64,
    complete: bool,
    subtree: &mut impl FnMut(u64, u32) -> Option<Hash>,
    proof: &mut Vec<Hash>,
) -> Option<()> {
    let n = end - start;
    if m == n {
        if !complete {
            proof.push(tree_hash_with(start, end, subtree)?);
        }
        return Some(());
    }
    let k = split_point(n as usize) as u64;
    if m <= k {
        subproof_with(m, start, start + k, complete, subtree, proof)?;
        proof.push(tree_hash_with(start + k, end, subtree)?);
    } else {
        subproof_with(m - k, start + k, end, false, subtree, proof)?;
        proof.push(tree_hash_with(start, start + k, subtree)?);
    }
    Some(())
}
