//! Verification of a whole log (from the store or from an export file), and export.

use std::fmt;
use std::io::{BufRead as _, Write};

use crypto::merkle::{leaf_hash, Checkpoint, CompactRange, Hash};
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
    let mut verifier = Verifier::new(checkpoints, key);
    for entry in entries {
        verifier.push(entry);
    }
    verifier.finish()
}

/// [`verify`] one entry at a time, in memory that does not grow with the log: the
/// chain's last link, the Merkle frontier (one hash per level) and the checkpoints.
/// Push every entry in log order, then [`Verifier::finish`].
pub struct Verifier {
    /// Signed heads with good signatures, by size (equal sizes in the given order).
    heads: Vec<SignedHead>,
    /// Whether each of `heads[..next_head]` matched the entries.
    matches: Vec<bool>,
    next_head: usize,
    /// Findings about the checkpoints, in the order [`verify`] reports them.
    signature_findings: Vec<Finding>,
    head_findings: Vec<Finding>,
    good_size: i64,
    range: CompactRange,
    entries: i64,
    prev: String,
    /// The first break in the chain; an entry that does not hash to its link is kept
    /// until the end, when the log's length tells where it may belong.
    chain: Option<ChainBreak>,
    /// The first entry whose link is not a hash: nothing after it is checked.
    unreadable: Option<i64>,
}

enum ChainBreak {
    Found(Finding),
    Mismatch(Box<AuditEntry>),
}

struct SignedHead {
    size: u64,
    root: Hash,
}

impl Verifier {
    pub fn new(checkpoints: &[CheckpointRecord], key: &VerifyingKey) -> Self {
        let mut heads = Vec::new();
        let mut signature_findings = Vec::new();
        for record in checkpoints {
            match parse_checkpoint(record) {
                Ok(checkpoint) if checkpoint.verify(key).is_ok() => heads.push(SignedHead {
                    size: checkpoint.size,
                    root: checkpoint.root,
                }),
                _ => signature_findings.push(Finding::BadSignature { size: record.size }),
            }
        }
        heads.sort_by_key(|head| head.size);
        let mut verifier = Self {
            matches: Vec::with_capacity(heads.len()),
            heads,
            next_head: 0,
            signature_findings,
            head_findings: Vec::new(),
            good_size: 0,
            range: CompactRange::new(),
            entries: 0,
            prev: hex::encode([0u8; 32]),
            chain: None,
            unreadable: None,
        };
        verifier.check_heads();
        verifier
    }

    /// Entries pushed so far.
    pub fn entries(&self) -> i64 {
        self.entries
    }

    /// The next entry of the log.
    pub fn push(&mut self, entry: &AuditEntry) {
        self.entries += 1;
        if self.chain.is_none() {
            self.chain = self.check_link(entry);
        }
        if self.unreadable.is_some() {
            return;
        }
        match parse_hash(&entry.entry_hash) {
            Ok(hash) => {
                self.range.append(leaf_hash(&hash));
                self.check_heads();
            }
            Err(_) => self.unreadable = Some(entry.seq),
        }
    }

    /// The entry's place and link, against the entries before it.
    fn check_link(&mut self, entry: &AuditEntry) -> Option<ChainBreak> {
        let expected = self.entries;
        if entry.seq > expected {
            return Some(ChainBreak::Found(Finding::Deleted { seq: expected }));
        }
        if entry.seq < expected {
            return Some(ChainBreak::Found(Finding::OutOfOrder { seq: entry.seq }));
        }
        let recomputed = entry_hash(entry.seq, &entry.prev_hash, &entry.fields()).ok();
        if recomputed.as_deref() != Some(entry.entry_hash.as_str()) {
            return Some(ChainBreak::Mismatch(Box::new(entry.clone())));
        }
        if entry.prev_hash != self.prev {
            return Some(ChainBreak::Found(Finding::BrokenLink { seq: entry.seq }));
        }
        self.prev.clone_from(&entry.entry_hash);
        None
    }

    /// Compares each signed head whose size the entries have reached with their root.
    fn check_heads(&mut self) {
        while let Some(head) = self.heads.get(self.next_head) {
            if head.size != self.range.size() {
                break;
            }
            let matched = self.range.root() == head.root;
            if matched {
                self.good_size = head.size as i64;
            } else {
                self.head_findings.push(Finding::CheckpointMismatch {
                    size: head.size as i64,
                    after_good_size: self.good_size,
                });
            }
            self.matches.push(matched);
            self.next_head += 1;
        }
    }

    /// Every finding, the first naming the first place where the log stops being what
    /// was signed; none when the log verifies.
    pub fn finish(mut self) -> Vec<Finding> {
        let mut findings = Vec::new();
        match self.chain.take() {
            Some(ChainBreak::Found(finding)) => findings.push(finding),
            Some(ChainBreak::Mismatch(entry)) => {
                // A valid entry of another position means rows were moved, not edited.
                let fields = entry.fields();
                let belongs_at = (1..=self.entries).find(|&seq| {
                    seq != entry.seq
                        && entry_hash(seq, &entry.prev_hash, &fields).ok().as_deref()
                            == Some(entry.entry_hash.as_str())
                });
                findings.push(match belongs_at {
                    Some(belongs_at) => Finding::Reordered {
                        seq: entry.seq,
                        belongs_at,
                    },
                    None => Finding::Edited { seq: entry.seq },
                });
            }
            None => {}
        }
        if let Some(seq) = self.unreadable {
            findings.push(Finding::Edited { seq });
            return findings;
        }
        findings.append(&mut self.signature_findings);
        // Heads the entries never reached: the log lost entries a checkpoint covers.
        for head in &self.heads[self.next_head..] {
            self.head_findings.push(Finding::Truncated {
                checkpoint_size: head.size as i64,
                entries: self.entries,
            });
            self.matches.push(false);
        }
        findings.append(&mut self.head_findings);
        // Heads among themselves: equal sizes need equal heads. Of two heads of
        // different sizes, when the newer one is the root of the entries, the older one
        // is consistent with it exactly when it is the root of the entries at its own
        // size (a consistency proof built from the entries verifies then and only then);
        // when it is not, the older one was already reported.
        for (index, pair) in self.heads.windows(2).enumerate() {
            let (old, new) = (&pair[0], &pair[1]);
            let consistent = if old.size == new.size {
                old.root == new.root
            } else if self.matches[index + 1] {
                self.matches[index]
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

/// Every entry of the store in order, and every checkpoint. Holds the whole log in
/// memory: for tests and small logs; [`verify_store`] and [`export`] read it by pages.
pub async fn load(store: &Store) -> Result<(Vec<AuditEntry>, Vec<CheckpointRecord>), AuditError> {
    let mut entries = Vec::new();
    for_each_page(store, |page| {
        entries.extend(page);
        Ok(())
    })
    .await?;
    Ok((entries, store.audit_checkpoints().await?))
}

/// Calls `visit` with every entry of the store, in pages of 1,000 in order.
async fn for_each_page(
    store: &Store,
    mut visit: impl FnMut(Vec<AuditEntry>) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    // Paged by position in the table, not by seq arithmetic, so gaps stay visible.
    let mut from = i64::MIN;
    loop {
        let page = store.audit_entries(from, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        from = last.seq + 1;
        visit(page.into_iter().map(AuditEntry::from).collect())?;
    }
}

/// What [`verify_store`] and [`verify_export`] checked.
#[derive(Debug)]
pub struct Verified {
    pub findings: Vec<Finding>,
    pub entries: i64,
    pub checkpoints: usize,
}

/// [`verify`] of the log in `store`, read by pages (memory does not grow with the
/// log); `progress` gets the number of entries checked so far after each page.
pub async fn verify_store(
    store: &Store,
    key: &VerifyingKey,
    mut progress: impl FnMut(i64),
) -> Result<Verified, AuditError> {
    let checkpoints = store.audit_checkpoints().await?;
    let mut verifier = Verifier::new(&checkpoints, key);
    for_each_page(store, |page| {
        for entry in &page {
            verifier.push(entry);
        }
        progress(verifier.entries());
        Ok(())
    })
    .await?;
    Ok(Verified {
        entries: verifier.entries(),
        findings: verifier.finish(),
        checkpoints: checkpoints.len(),
    })
}

/// Writes the whole log as JSONL: entries, then checkpoints, then the public key.
/// Reads the entries by pages, so memory does not grow with the log.
pub async fn export(
    store: &Store,
    public_key_pem: &str,
    out: &mut dyn Write,
) -> Result<u64, AuditError> {
    let mut count = 0u64;
    for_each_page(store, |page| {
        count += page.len() as u64;
        for entry in page {
            write_line(out, &ExportLine::Entry(entry))?;
        }
        Ok(())
    })
    .await?;
    for checkpoint in store.audit_checkpoints().await? {
        write_line(out, &ExportLine::checkpoint(checkpoint))?;
    }
    write_line(
        out,
        &ExportLine::PublicKey {
            pem: public_key_pem.to_owned(),
        },
    )?;
    Ok(count)
}

fn write_line(out: &mut dyn Write, line: &ExportLine) -> Result<(), AuditError> {
    let text = serde_json::to_string(line).map_err(|e| AuditError::Malformed(e.to_string()))?;
    writeln!(out, "{text}")
        .map_err(|e| AuditError::Malformed(format!("cannot write the export: {e}")))
}

/// [`verify`] of an export file, read twice (the checkpoints and the key, then the
/// entries), so memory does not grow with the log. The key is `key`, or else the one
/// the export names, which is returned for the caller to show. `progress` gets the
/// number of entries checked so far.
pub fn verify_export(
    path: &std::path::Path,
    key: Option<VerifyingKey>,
    mut progress: impl FnMut(i64),
) -> Result<(Verified, VerifyingKey, bool), AuditError> {
    let open = || {
        std::fs::File::open(path)
            .map(std::io::BufReader::new)
            .map_err(|e| AuditError::Malformed(format!("cannot read {}: {e}", path.display())))
    };
    let mut checkpoints = Vec::new();
    let mut named_key = None;
    // The first read wants only the checkpoints and the key: entry lines are told by
    // their type alone and fully read (and checked) by the second.
    for (number, line) in open()?.lines().enumerate() {
        let line =
            line.map_err(|e| AuditError::Malformed(format!("export line {}: {e}", number + 1)))?;
        if line.trim().is_empty() || line_type(&line, number + 1)? == "entry" {
            continue;
        }
        match parse_line(&line, number + 1)? {
            ExportLine::Entry(_) => {}
            checkpoint @ ExportLine::Checkpoint { .. } => {
                checkpoints.extend(checkpoint_record(checkpoint));
            }
            ExportLine::PublicKey { pem } => named_key = Some(pem),
        }
    }
    let (key, from_export) = match (key, named_key) {
        (Some(key), _) => (key, false),
        (None, Some(pem)) => (VerifyingKey::from_public_key_pem(&pem)?, true),
        (None, None) => {
            return Err(AuditError::Malformed(
                "the export names no public key; pass --public-key".into(),
            ))
        }
    };
    let mut verifier = Verifier::new(&checkpoints, &key);
    for_each_line(open()?, |line| {
        if let ExportLine::Entry(entry) = line {
            verifier.push(&entry);
            if verifier.entries() % 1000 == 0 {
                progress(verifier.entries());
            }
        }
        Ok(())
    })?;
    progress(verifier.entries());
    let verified = Verified {
        entries: verifier.entries(),
        findings: verifier.finish(),
        checkpoints: checkpoints.len(),
    };
    Ok((verified, key, from_export))
}

/// Calls `visit` with each line of an export, in order, skipping blank lines.
fn for_each_line(
    reader: impl std::io::BufRead,
    mut visit: impl FnMut(ExportLine) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    for (number, line) in reader.lines().enumerate() {
        let line =
            line.map_err(|e| AuditError::Malformed(format!("export line {}: {e}", number + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        visit(parse_line(&line, number + 1)?)?;
    }
    Ok(())
}

/// The `type` of an export line, without reading the rest of it into values.
fn line_type(line: &str, number: usize) -> Result<String, AuditError> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Typed>(line)
        .map(|typed| typed.kind)
        .map_err(|e| AuditError::Malformed(format!("export line {number}: {e}")))
}

fn parse_line(line: &str, number: usize) -> Result<ExportLine, AuditError> {
    serde_json::from_str(line)
        .map_err(|e| AuditError::Malformed(format!("export line {number}: {e}")))
}

/// The checkpoint of a checkpoint line.
fn checkpoint_record(line: ExportLine) -> Option<CheckpointRecord> {
    match line {
        ExportLine::Checkpoint {
            size,
            root,
            signed_at,
            key_id,
            signature,
        } => Some(CheckpointRecord {
            size,
            root,
            signed_at,
            key_id,
            signature,
        }),
        _ => None,
    }
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

/// Parses the output of [`export`], all of it in memory.
pub fn parse_export(text: &str) -> Result<Export, AuditError> {
    let mut export = Export::default();
    for_each_line(text.as_bytes(), |line| {
        match line {
            ExportLine::Entry(entry) => export.entries.push(entry),
            checkpoint @ ExportLine::Checkpoint { .. } => {
                export.checkpoints.extend(checkpoint_record(checkpoint));
            }
            ExportLine::PublicKey { pem } => export.public_key_pem = Some(pem),
        }
        Ok(())
    })?;
    Ok(export)
}
