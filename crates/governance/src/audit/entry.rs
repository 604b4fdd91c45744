//! The entry format: canonical bytes and links, the export line format, receipts.

use crypto::merkle::{chain_hash, Hash};
use crypto::signing::{canonical_json, SignedStatement, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::{AuditRecord, CheckpointRecord, NewAuditEntry};

use super::AuditError;

/// `kind` of a receipt payload, so a receipt never reads as another statement.
pub const RECEIPT_KIND: &str = "charter.receipt/v1";

/// One audit entry as exported and served: every stored field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub recorded_at: i64,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    pub action: String,
    pub resource: String,
    pub status: i64,
    pub latency_ms: i64,
    pub request_id: Option<String>,
    pub input_sha256: Option<String>,
    pub output_sha256: Option<String>,
    pub model_digest: Option<String>,
    pub prev_hash: String,
    pub entry_hash: String,
}

impl From<AuditRecord> for AuditEntry {
    fn from(record: AuditRecord) -> Self {
        let e = record.entry;
        Self {
            seq: record.seq,
            recorded_at: e.recorded_at,
            tenant: e.tenant,
            key_id: e.key_id,
            action: e.action,
            resource: e.resource,
            status: e.status,
            latency_ms: e.latency_ms,
            request_id: e.request_id,
            input_sha256: e.input_sha256,
            output_sha256: e.output_sha256,
            model_digest: e.model_digest,
            prev_hash: record.prev_hash,
            entry_hash: record.entry_hash,
        }
    }
}

impl AuditEntry {
    /// The fields the hash covers.
    pub fn fields(&self) -> NewAuditEntry {
        NewAuditEntry {
            recorded_at: self.recorded_at,
            tenant: self.tenant.clone(),
            key_id: self.key_id.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            status: self.status,
            latency_ms: self.latency_ms,
            request_id: self.request_id.clone(),
            input_sha256: self.input_sha256.clone(),
            output_sha256: self.output_sha256.clone(),
            model_digest: self.model_digest.clone(),
        }
    }
}

/// One line of `charter audit export`: entries, then checkpoints, then the key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    Entry(AuditEntry),
    Checkpoint {
        size: i64,
        root: String,
        signed_at: i64,
        key_id: String,
        signature: String,
    },
    PublicKey {
        pem: String,
    },
}

impl ExportLine {
    pub fn checkpoint(record: CheckpointRecord) -> Self {
        Self::Checkpoint {
            size: record.size,
            root: record.root,
            signed_at: record.signed_at,
            key_id: record.key_id,
            signature: record.signature,
        }
    }
}

/// The canonical bytes an entry's hash covers: its seq and every field, as
/// canonical JSON, so the position is part of what is hashed.
pub fn entry_bytes(seq: i64, entry: &NewAuditEntry) -> Vec<u8> {
    canonical_json(&json!({
        "seq": seq,
        "recorded_at": entry.recorded_at,
        "tenant": entry.tenant,
        "key_id": entry.key_id,
        "action": entry.action,
        "resource": entry.resource,
        "status": entry.status,
        "latency_ms": entry.latency_ms,
        "request_id": entry.request_id,
        "input_sha256": entry.input_sha256,
        "output_sha256": entry.output_sha256,
        "model_digest": entry.model_digest,
    }))
}

/// The link of entry `seq` after `prev_hash` (hex).
pub fn entry_hash(seq: i64, prev_hash: &str, entry: &NewAuditEntry) -> Result<String, AuditError> {
    let prev = parse_hash(prev_hash)?;
    Ok(hex::encode(chain_hash(prev, &entry_bytes(seq, entry))))
}

pub(crate) fn parse_hash(text: &str) -> Result<Hash, AuditError> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash)
        .map_err(|_| AuditError::Malformed("hash is not 64 hex digits".into()))?;
    Ok(hash)
}

/// A signed receipt for one entry: what was asked (input digest), what was answered
/// (output digest), by which model version, for whom, when, and with what status.
/// The entry hash ties the receipt to its place in the log.
pub fn receipt(entry: &AuditEntry, key: &SigningKey) -> SignedStatement {
    SignedStatement::sign(
        key,
        json!({
            "kind": RECEIPT_KIND,
            "seq": entry.seq,
            "recorded_at": entry.recorded_at,
            "tenant": entry.tenant,
            "action": entry.action,
            "resource": entry.resource,
            "status": entry.status,
            "request_id": entry.request_id,
            "input_sha256": entry.input_sha256,
            "output_sha256": entry.output_sha256,
            "model_digest": entry.model_digest,
            "entry_hash": entry.entry_hash,
        }),
    )
}
