//! Verification of a whole log (from the store or from an export file), and export.

use std::fmt;
use std::io::Write;

use crypto::merkle::{self, leaf_hash, Checkpoint, CompactRange, Hash};
use crypto::signing::{Signature, VerifyingKey};
use store::{CheckpointRecord, Store};

use super::entry::{entry_hash, parse_hash, AuditEntry, ExportLine};
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

pub(super) fn parse_checkpoint(record: &CheckpointRecord) -> Result<Checkpoint, AuditError> {
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
