//! Proofs against signed checkpoints, built by the server and checked offline by
//! anyone with its public key: the inclusion of one entry (RFC 9162 §2.1.3), and the
//! consistency of two tree sizes (§2.1.4). The operator holds the signing key, so a
//! signature alone does not stop it from re-signing a rewritten history; a verifier
//! that kept an earlier checkpoint and checks each later one against it with a
//! consistency proof does ([`check_consistency`]).
//!
//! Both proofs are built from the subtree roots the writer stores
//! (`store::AuditNode`, levels from [`STORED_NODE_LEVEL`]) and, below that level,
//! from a few runs of at most 128 entries, so their cost does not grow with the log.
//! Each is checked against the signed root before it is returned. When a node is
//! missing (a log sealed before nodes were stored) or the check fails (an altered
//! node), the proof is computed from every entry instead.

use std::collections::HashMap;

use crypto::merkle::{self, leaf_hash, Checkpoint, Hash};
use crypto::signing::VerifyingKey;
use serde::{Deserialize, Serialize};
use store::{CheckpointRecord, Store};

use super::entry::parse_hash;
use super::log::STORED_NODE_LEVEL;
use super::verify::parse_checkpoint;
use super::AuditError;

/// An audit path from one entry to the head of the latest checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InclusionProof {
    pub seq: i64,
    /// Zero-based position of the leaf: `seq - 1`.
    pub leaf_index: u64,
    pub entry_hash: String,
    pub tree_size: u64,
    pub root: String,
    /// Sibling hashes, hex, leaf to root (RFC 9162 §2.1.3).
    pub proof: Vec<String>,
    /// The checkpoint note the root comes from.
    pub checkpoint: String,
}

/// A proof that the tree of the first `from_size` entries is a prefix of the tree of a
/// signed checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from_size: u64,
    /// The head of the first `from_size` entries as this log holds them. A verifier
    /// checks the proof against the head it kept, not against this one.
    pub from_root: String,
    pub to_size: u64,
    pub to_root: String,
    /// Hex, RFC 9162 §2.1.4.
    pub proof: Vec<String>,
    /// The signed checkpoint note of `to_size`.
    pub checkpoint: String,
}

/// The inclusion proof of entry `seq` against the latest checkpoint; `None` when no
/// checkpoint covers it (or it is missing); [`AuditError::Damaged`] when an entry the
/// proof needs is missing. See the module docs for how it is built.
pub async fn inclusion_proof(
    store: &Store,
    seq: i64,
) -> Result<Option<InclusionProof>, AuditError> {
    let Some(latest) = store.latest_checkpoint().await? else {
        return Ok(None);
    };
    if seq < 1 || seq > latest.size {
        return Ok(None);
    }
    let Some(entry) = store.audit_entry(seq).await? else {
        return Ok(None);
    };
    let checkpoint = parse_checkpoint(&latest)?;
    let (leaf_index, tree_size) = ((seq - 1) as u64, checkpoint.size);
    let leaf = leaf_hash(&parse_hash(&entry.entry_hash)?);
    let built = stored_subtrees(store, merkle::inclusion_subtrees(leaf_index, tree_size))
        .await?
        .and_then(|known| {
            merkle::inclusion_proof_with(leaf_index, tree_size, &mut |start, level| {
                known.get(&(start, level)).copied()
            })
        });
    let proof = match built {
        Some(proof)
            if merkle::verify_inclusion(&leaf, leaf_index, tree_size, &proof, &checkpoint.root)
                .is_ok() =>
        {
            proof
        }
        built => {
            warn_if_altered(built.is_some(), tree_size);
            let leaves = leaf_run(store, 0, tree_size).await?;
            merkle::inclusion_proof(&leaves, leaf_index, tree_size)?
        }
    };
    Ok(Some(InclusionProof {
        seq,
        leaf_index,
        entry_hash: entry.entry_hash,
        tree_size,
        root: latest.root,
        proof: proof.iter().map(hex::encode).collect(),
        checkpoint: checkpoint.to_note(),
    }))
}

/// The consistency proof from the tree of the first `from_size` entries to the tree
/// of `to`; `None` when `from_size` is above `to`'s size; [`AuditError::Damaged`]
/// when an entry the proof needs is missing. See the module docs for how it is built.
pub async fn consistency_proof(
    store: &Store,
    from_size: u64,
    to: &CheckpointRecord,
) -> Result<Option<ConsistencyProof>, AuditError> {
    let checkpoint = parse_checkpoint(to)?;
    let to_size = checkpoint.size;
    if from_size > to_size {
        return Ok(None);
    }
    let mut asked = merkle::consistency_subtrees(from_size, to_size);
    asked.extend(merkle::root_subtrees(from_size));
    let built = stored_subtrees(store, asked).await?.and_then(|known| {
        let mut subtree = |start, level| known.get(&(start, level)).copied();
        let from_root = merkle::root_with(from_size, &mut subtree)?;
        let proof = merkle::consistency_proof_with(from_size, to_size, &mut subtree)?;
        Some((from_root, proof))
    });
    let (from_root, proof) = match built {
        Some((from_root, proof))
            if merkle::verify_consistency(
                from_size,
                to_size,
                &from_root,
                &checkpoint.root,
                &proof,
            )
            .is_ok() =>
        {
            (from_root, proof)
        }
        built => {
            warn_if_altered(built.is_some(), to_size);
            let leaves = leaf_run(store, 0, to_size).await?;
            (
                merkle::root(&leaves[..from_size as usize]),
                merkle::consistency_proof(&leaves, from_size, to_size)?,
            )
        }
    };
    Ok(Some(ConsistencyProof {
        from_size,
        from_root: hex::encode(from_root),
        to_size,
        to_root: to.root.clone(),
        proof: proof.iter().map(hex::encode).collect(),
        checkpoint: checkpoint.to_note(),
    }))
}

/// The signed note of a stored checkpoint, as verifiers keep it.
pub fn checkpoint_note(record: &CheckpointRecord) -> Result<String, AuditError> {
    Ok(parse_checkpoint(record)?.to_note())
}

/// Checks a saved inclusion proof offline: its checkpoint is signed by `key` and names
/// the proof's size and root, and the entry's leaf reaches that root along the path.
/// Returns the checkpoint.
pub fn check_inclusion(
    proof: &InclusionProof,
    key: &VerifyingKey,
) -> Result<Checkpoint, AuditError> {
    let checkpoint = signed_note(&proof.checkpoint, key, proof.tree_size, &proof.root)?;
    if u64::try_from(proof.seq).ok() != proof.leaf_index.checked_add(1) {
        return Err(AuditError::Proof(format!(
            "entry {} cannot be leaf {}",
            proof.seq, proof.leaf_index
        )));
    }
    let leaf = leaf_hash(&parse_hash(&proof.entry_hash)?);
    merkle::verify_inclusion(
        &leaf,
        proof.leaf_index,
        checkpoint.size,
        &parse_hashes(&proof.proof)?,
        &checkpoint.root,
    )
    .map_err(|error| {
        AuditError::Proof(format!(
            "entry {} is not in the signed tree of {} entries: {error}",
            proof.seq, checkpoint.size
        ))
    })?;
    Ok(checkpoint)
}

/// Checks a consistency proof against a checkpoint the verifier kept from earlier:
/// both are signed by `key`, and the kept tree is a prefix of the proof's tree. A
/// failure means the log was rewritten, truncated or forked since `kept` was signed
/// (or the proof belongs to another kept size). Returns the newer checkpoint, which
/// the verifier keeps from now on.
pub fn check_consistency(
    kept: &Checkpoint,
    proof: &ConsistencyProof,
    key: &VerifyingKey,
) -> Result<Checkpoint, AuditError> {
    kept.verify(key).map_err(|error| {
        AuditError::Proof(format!(
            "the kept checkpoint is not signed by this key: {error}"
        ))
    })?;
    let newer = signed_note(&proof.checkpoint, key, proof.to_size, &proof.to_root)?;
    if proof.from_size != kept.size {
        return Err(AuditError::Proof(format!(
            "the proof starts at {} entries, the kept checkpoint has {}; ask for from={}",
            proof.from_size, kept.size, kept.size
        )));
    }
    merkle::verify_consistency(
        kept.size,
        newer.size,
        &kept.root,
        &newer.root,
        &parse_hashes(&proof.proof)?,
    )
    .map_err(|error| {
        AuditError::Proof(format!(
            "the log forked: the kept checkpoint of {} entries is not a prefix of the signed \
             checkpoint of {} entries ({error})",
            kept.size, newer.size
        ))
    })?;
    Ok(newer)
}

/// The checkpoint in `note`, checked against `key` and against the size and root the
/// proof claims.
fn signed_note(
    note: &str,
    key: &VerifyingKey,
    size: u64,
    root: &str,
) -> Result<Checkpoint, AuditError> {
    let checkpoint = Checkpoint::from_note(note)
        .map_err(|error| AuditError::Proof(format!("the proof's checkpoint: {error}")))?;
    checkpoint.verify(key).map_err(|error| {
        AuditError::Proof(format!(
            "the proof's checkpoint is not signed by this key: {error}"
        ))
    })?;
    if checkpoint.size != size || hex::encode(checkpoint.root) != root {
        return Err(AuditError::Proof(
            "the proof's size or root is not the one its checkpoint signs".into(),
        ));
    }
    Ok(checkpoint)
}

fn parse_hashes(hashes: &[String]) -> Result<Vec<Hash>, AuditError> {
    hashes.iter().map(|hash| parse_hash(hash)).collect()
}

fn warn_if_altered(built: bool, tree_size: u64) {
    if built {
        tracing::warn!(
            tree_size,
            "stored audit tree nodes do not match the checkpoint; proving from every entry"
        );
    }
}

/// The roots of the perfect subtrees `asked`: stored nodes from [`STORED_NODE_LEVEL`]
/// up, computed from the entries below it; `None` when one is not stored.
async fn stored_subtrees(
    store: &Store,
    asked: Vec<(u64, u32)>,
) -> Result<Option<HashMap<(u64, u32), Hash>>, AuditError> {
    let mut known = HashMap::new();
    for (start, level) in asked {
        if known.contains_key(&(start, level)) {
            continue;
        }
        let hash = if level >= STORED_NODE_LEVEL {
            match store
                .audit_node(i64::from(level), (start >> level) as i64)
                .await?
            {
                Some(hash) => parse_hash(&hash)?,
                None => return Ok(None),
            }
        } else {
            // A gap here only means the proof is built from every entry instead.
            match leaf_run(store, start, 1 << level).await {
                Ok(leaves) => merkle::root(&leaves),
                Err(AuditError::Damaged(_)) => return Ok(None),
                Err(error) => return Err(error),
            }
        };
        known.insert((start, level), hash);
    }
    Ok(Some(known))
}

/// The leaves of the `count` entries after the first `start`, read in pages;
/// [`AuditError::Damaged`] when one of them is missing (the entries after a gap are
/// not the leaves at those positions).
async fn leaf_run(store: &Store, start: u64, count: u64) -> Result<Vec<Hash>, AuditError> {
    let mut leaves = Vec::with_capacity(count as usize);
    while (leaves.len() as u64) < count {
        let next = (start + leaves.len() as u64) as i64 + 1;
        let want = (count - leaves.len() as u64).min(1000) as i64;
        let page = store.audit_entries(next, want).await?;
        for (record, seq) in page.iter().zip(next..) {
            if record.seq != seq {
                return Err(AuditError::Damaged(format!("entry {seq} is missing")));
            }
            leaves.push(leaf_hash(&parse_hash(&record.entry_hash)?));
        }
        if (page.len() as i64) < want {
            let seq = next + page.len() as i64;
            return Err(AuditError::Damaged(format!("entry {seq} is missing")));
        }
    }
    Ok(leaves)
}
