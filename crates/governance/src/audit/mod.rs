//! The tamper-evident audit log: entries hash-chained in the store, group-committed
//! by one background writer per process, sealed into signed Merkle checkpoints
//! (RFC 9162 tree heads over the entry hashes), verified offline, and turned into
//! signed receipts.
//!
//! An entry's hash is `crypto::merkle::chain_hash(prev_hash, canonical JSON of its
//! fields and seq)`; the Merkle leaf of an entry is `leaf_hash(entry_hash)`. Entries
//! carry SHA-256 digests of inputs and outputs, never the text itself.

mod entry;
mod key;
mod log;
mod proof;
mod verify;

pub use entry::{entry_bytes, entry_hash, receipt, AuditEntry, ExportLine, RECEIPT_KIND};
pub use key::{load_or_create_signing_key, SIGNING_KEY_FILE};
pub use log::{chain_outbox, AuditConfig, AuditLog};
pub use proof::{
    check_consistency, check_inclusion, checkpoint_note, consistency_proof, inclusion_proof,
    ConsistencyProof, InclusionProof,
};
pub use verify::{
    export, load, parse_export, verify, verify_export, verify_store, Export, Finding, Verified,
    Verifier,
};

/// What can go wrong writing or reading the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log cannot be written: {0}")]
    Store(#[from] store::StoreError),
    /// The batch this entry was in could not be committed.
    #[error("the audit log cannot be written: {0}")]
    Unavailable(String),
    #[error("the audit writer has stopped")]
    WriterStopped,
    #[error("audit signing key: {0}")]
    Key(String),
    #[error("malformed audit data: {0}")]
    Malformed(String),
    /// The stored log lacks entries a signed checkpoint covers (see `audit verify`).
    #[error("the audit log is damaged: {0}; run `charter audit verify`")]
    Damaged(String),
    /// A proof or checkpoint that does not hold (see `check_inclusion`).
    #[error("{0}")]
    Proof(String),
    #[error(transparent)]
    Crypto(#[from] crypto::CryptoError),
}
