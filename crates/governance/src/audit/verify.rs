//! Verification of a whole log (from the store or from an export file), export, and
//! inclusion proofs against the latest checkpoint.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;

use crypto::merkle::{self, leaf_hash, Checkpoint, CompactRange, Hash};
use crypto::signing::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use store::{CheckpointRecord, Store};

use super::entry::{entry_hash, parse_hash, AuditEntry, ExportLine};
use super::log::STORED_NODE_LEVEL;
use super::AuditError;

/// Something wrong with a log. The first finding names the first place where the log
/// stops being what was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The entry's fields no longer hash to its stored link.
    Edited { seq: i64 },
    /// The entry's content is a valid entry of another position.
    Reordered { seq: i64, belongs_at: i64 },
    /// There is no entry `seq`: the next one present has a higher number.
    Deleted { seq: i64 },
    /// An entry number appears twice or goes backwards.
    OutOfOrder { seq: i64 },
    /// The entry does not commit to the entry before it.
    BrokenLink { seq: i64 },
    /// A checkpoint covers more entries than the log holds.
    Truncated { checkpoint_size: i64, entries: i64 },
    /// A checkpoint does not carry a valid signature of the server key.
    BadSignature { size: i64 },
    /// A checkpoint's head is not the head of the entries it covers.
    CheckpointMismatch { size: i64, after_good_size: i64 },
    /// Two signed checkpoints that no single log can produce.
    Fork { old_size: i64, new_size: i64 },
    /// A row or line that cannot be read.
    Malformed { what: String },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Edited { seq } => write!(f, "entry {seq} was edited: its fields do not match its hash"),
            Finding::Reordered { seq, belongs_at } => write!(f, "entry {seq} was reordered: it holds the content of entry {belongs_at}"),
            Finding::Deleted { seq } => write!(f, "entry {seq} was deleted: the sequence has a gap"),
            Finding::OutOfOrder { seq } => write!(f, "entry {seq} is out of order or duplicated"),
            Finding::BrokenLink { seq } => write!(f, "entry {seq} does not link to the entry before it (deleted, inserted or reordered)"),
            Finding::Truncated { checkpoint_size, entries } => write!(f, "the log was truncated: a checkpoint covers {checkpoint_size} entries but only {entries} remain; entry {} is missing", entries + 1),
            Finding::BadSignature { size } => write!(f, "the checkpoint at size {size} has no valid signature of the server key"),
            Finding::CheckpointMismatch { size, after_good_size } => write!(f, "the checkpoint at size {size} does not match entries {}..={size}: they were edited or the log forked", after_good_size + 1),
            Finding::Fork { old_size, new_size } => write!(f, "the log forked: the checkpoints at sizes {old_size} and {new_size} are inconsistent"),
            Finding::Malformed { what } => write!(f, "malformed: {what}"),
        }
    }
}

/// Checks the chain, every checkpoint's signature and head, and that the checkpoints
/// are consistent with each other. An empty result means the log verifies.
pub fn verify(
    entries: &[AuditEntry],
    checkpoints: &[CheckpointRecord],
    key: &VerifyingKey,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(finding) = check_chain(entries) {
        findings.push(finding);
    }
    let mut leaves = Vec::with_capacity(entries.len());
    for entry in entries {
        match parse_hash(&entry.entry_hash) {
            Ok(hash) => leaves.push(leaf_hash(&hash)),
            Err(_) => {
                findings.push(Finding::Edited { seq: entry.seq });
                return findings;
            }
        }
    }
    findings.extend(check_checkpoints(&leaves, checkpoints, key));
    findings
}

fn check_chain(entries: &[AuditEntry]) -> Option<Finding> {
    let mut prev = hex::encode([0u8; 32]);
    for (index, entry) in entries.iter().enumerate() {
        let expected = index as i64 + 1;
        if entry.seq > expected {
            return Some(Finding::Deleted { seq: expected });
        }
        if entry.seq < expected {
            return Some(Finding::OutOfOrder { seq: entry.seq });
        }
        let fields = entry.fields();
        let recomputed = entry_hash(entry.seq, &entry.prev_hash, &fields).ok();
        if recomputed.as_deref() != Some(entry.entry_hash.as_str()) {
            // A valid entry of another position means rows were moved, not edited.
            let belongs_at = (1..=entries.len() as i64).find(|&seq| {
                seq != entry.seq
                    && entry_hash(seq, &entry.prev_hash, &fields).ok().as_deref()
                        == Some(entry.entry_hash.as_str())
            });
            return Some(match belongs_at {
                Some(belongs_at) => Finding::Reordered {
                    seq: entry.seq,
                    belongs_at,
                },
                None => Finding::Edited { seq: entry.seq },
            });
        }
        if entry.prev_hash != prev {
            return Some(Finding::BrokenLink { seq: entry.seq });
        }
        prev = entry.entry_hash.clone();
    }
    None
}

struct SignedHead {
    size: u64,
    root: Hash,
}

fn check_checkpoints(
    leaves: &[Hash],
    checkpoints: &[CheckpointRecord],
    key: &VerifyingKey,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut heads: Vec<SignedHead> = Vec::new();
    for record in checkpoints {
        match parse_checkpoint(record) {
            Ok(checkpoint) if checkpoint.verify(key).is_ok() => heads.push(SignedHead {
                size: checkpoint.size,
                root: checkpoint.root,
            }),
            _ => findings.push(Finding::BadSignature { size: record.size }),
        }
    }
    heads.sort_by_key(|head| head.size);
    // Each head against the entries it covers.
    let mut range = CompactRange::new();
    let mut good_size = 0i64;
    let mut matches = Vec::with_capacity(heads.len());
    for head in &heads {
        if head.size as usize > leaves.len() {
            findings.push(Finding::Truncated {
                checkpoint_size: head.size as i64,
                entries: leaves.len() as i64,
            });
            matches.push(false);
            continue;
        }
        while range.size() < head.size {
            range.append(leaves[range.size() as usize]);
        }
        let matched = range.root() == head.root;
        if matched {
            good_size = head.size as i64;
        } else {
            findings.push(Finding::CheckpointMismatch {
                size: head.size as i64,
                after_good_size: good_size,
            });
        }
        matches.push(matched);
    }
    // Heads among themselves: equal sizes need equal heads, and where the entries
    // explain the newer head, a consistency proof built from them must take the
    // older head to it; otherwise the two heads come from different histories.
    for (index, pair) in heads.windows(2).enumerate() {
        let (old, new) = (&pair[0], &pair[1]);
        let consistent = if old.size == new.size {
            old.root == new.root
        } else if matches[index + 1] {
            merkle::consistency_proof(leaves, old.size, new.size)
                .and_then(|proof| {
                    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
                })
                .is_ok()
        } else {
            true
        };
        if !consistent {
            findings.push(Finding::Fork {
                old_size: old.size as i64,
                new_size: new.size as i64,
            });
        }
    }
    findings
}

fn parse_checkpoint(record: &CheckpointRecord) -> Result<Checkpoint, AuditError> {
    Ok(Checkpoint {
        size: u64::try_from(record.size)
            .map_err(|_| AuditError::Malformed("checkpoint size".into()))?,
        root: parse_hash(&record.root)?,
        timestamp: u64::try_from(record.signed_at)
            .map_err(|_| AuditError::Malformed("checkpoint time".into()))?,
        key_id: record.key_id.clone(),
        signature: Signature::from_base64(&record.signature)?,
    })
}

/// Every entry of the store in order, and every checkpoint.
pub async fn load(store: &Store) -> Result<(Vec<AuditEntry>, Vec<CheckpointRecord>), AuditError> {
    let mut entries = Vec::new();
    // Paged by position in the table, not by seq arithmetic, so gaps stay visible.
    let mut from = i64::MIN;
    loop {
        let page = store.audit_entries(from, 1000).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        entries.extend(page.into_iter().map(AuditEntry::from));
    }
    Ok((entries, store.audit_checkpoints().await?))
}

/// Writes the whole log as JSONL: entries, then checkpoints, then the public key.
pub async fn export(
    store: &Store,
    public_key_pem: &str,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let (entries, checkpoints) = load(store).await?;
    let count = entries.len() as u64;
    let io = |e: std::io::Error| AuditError::Malformed(format!("cannot write the export: {e}"));
    let lines = entries
        .into_iter()
        .map(ExportLine::Entry)
        .chain(checkpoints.into_iter().map(ExportLine::checkpoint))
        .chain([ExportLine::PublicKey {
            pem: public_key_pem.to_owned(),
        }]);
    for line in lines {
        let text =
            serde_json::to_string(&line).map_err(|e| AuditError::Malformed(e.to_string()))?;
        writeln!(out, "{text}").map_err(io)?;
    }
    Ok(count)
}

/// A parsed export file.
#[derive(Debug, Clone, Default)]
pub struct Export {
    /// In file order, so moved lines show up as such.
    pub entries: Vec<AuditEntry>,
    pub checkpoints: Vec<CheckpointRecord>,
    /// The public key the export names; an auditor compares it with the published one.
    pub public_key_pem: Option<String>,
}

/// Parses the output of [`export`].
pub fn parse_export(text: &str) -> Result<Export, AuditError> {
    let mut export = Export::default();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: ExportLine = serde_json::from_str(line)
            .map_err(|e| AuditError::Malformed(format!("export line {}: {e}", number + 1)))?;
        match parsed {
            ExportLine::Entry(entry) => export.entries.push(entry),
            ExportLine::Checkpoint {
                size,
                root,
                signed_at,
                key_id,
                signature,
            } => export.checkpoints.push(CheckpointRecord {
                size,
                root,
                signed_at,
                key_id,
                signature,
            }),
            ExportLine::PublicKey { pem } => export.public_key_pem = Some(pem),
        }
    }
    Ok(export)
}

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

/// The inclusion proof of entry `seq` against the latest checkpoint; `None` when no
/// checkpoint covers it (or it is missing).
///
/// Built from the subtree roots the writer stores (`store::AuditNode`) and at most two
/// chunks of entries, so its cost does not grow with the log; checked against the
/// checkpoint's root before it is returned. When a node is missing (a log sealed
/// before nodes were stored) or the check fails (a tampered node), it is computed
/// from every entry instead.
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
    let leaf_index = (seq - 1) as u64;
    let tree_size = latest.size as u64;
    let root = parse_hash(&latest.root)?;
    let leaf = leaf_hash(&parse_hash(&entry.entry_hash)?);
    let proof = match proof_from_nodes(store, leaf_index, tree_size).await? {
        Some(proof)
            if merkle::verify_inclusion(&leaf, leaf_index, tree_size, &proof, &root).is_ok() =>
        {
            proof
        }
        built => {
            if built.is_some() {
                tracing::warn!(seq, "stored audit tree nodes do not match the checkpoint");
            }
            match proof_from_all_entries(store, leaf_index, tree_size).await? {
                Some(proof) => proof,
                None => return Ok(None),
            }
        }
    };
    let checkpoint = parse_checkpoint(&latest)?;
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

/// The proof from stored subtree roots and the leaves of the small subtrees it needs;
/// `None` when any of them is not stored.
async fn proof_from_nodes(
    store: &Store,
    leaf_index: u64,
    tree_size: u64,
) -> Result<Option<Vec<Hash>>, AuditError> {
    let mut known = HashMap::new();
    for (start, level) in merkle::inclusion_subtrees(leaf_index, tree_size) {
        let hash = if level >= STORED_NODE_LEVEL {
            match store
                .audit_node(i64::from(level), (start >> level) as i64)
                .await?
            {
                Some(hash) => parse_hash(&hash)?,
                None => return Ok(None),
            }
        } else {
            let count = 1u64 << level;
            let records = store.audit_entries(start as i64 + 1, count as i64).await?;
            let mut leaves = Vec::with_capacity(records.len());
            for (offset, record) in records.iter().enumerate() {
                if record.seq != (start + offset as u64) as i64 + 1 {
                    return Ok(None);
                }
                leaves.push(leaf_hash(&parse_hash(&record.entry_hash)?));
            }
            if leaves.len() as u64 != count {
                return Ok(None);
            }
            merkle::root(&leaves)
        };
        known.insert((start, level), hash);
    }
    Ok(merkle::inclusion_proof_with(
        leaf_index,
        tree_size,
        &mut |start, level| known.get(&(start, level)).copied(),
    ))
}

/// The proof from the leaf of every entry up to `tree_size`.
async fn proof_from_all_entries(
    store: &Store,
    leaf_index: u64,
    tree_size: u64,
) -> Result<Option<Vec<Hash>>, AuditError> {
    let mut leaves = Vec::with_capacity(tree_size as usize);
    let mut from = 1;
    while (leaves.len() as u64) < tree_size {
        let page = store.audit_entries(from, 1000).await?;
        let Some(last) = page.last() else { break };
        from = last.seq + 1;
        for record in page
            .into_iter()
            .take((tree_size as usize).saturating_sub(leaves.len()))
        {
            leaves.push(leaf_hash(&parse_hash(&record.entry_hash)?));
        }
    }
    if (leaves.len() as u64) < tree_size {
        return Ok(None);
    }
    Ok(Some(merkle::inclusion_proof(
        &leaves, leaf_index, tree_size,
    )?))
}
