//! The entry format: canonical bytes and links, the export line format, receipts.

use crypto::merkle::{chain_hash, Hash};
use crypto::signing::{SignedStatement, SigningKey};
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
/// canonical JSON (`crypto::signing::canonical_json`: keys sorted, no whitespace), so
/// the position is part of what is hashed.
///
/// Written field by field in sorted key order rather than through a
/// `serde_json::Value`: the writer computes this for every entry of every request,
/// and building the map cost more than hashing it. A test checks that the bytes are
/// exactly `canonical_json`'s.
pub fn entry_bytes(seq: i64, entry: &NewAuditEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let fields: [(&str, Field<'_>); 12] = [
        ("action", Field::Text(Some(&entry.action))),
        ("input_sha256", Field::Text(entry.input_sha256.as_deref())),
        ("key_id", Field::Text(entry.key_id.as_deref())),
        ("latency_ms", Field::Integer(entry.latency_ms)),
        ("model_digest", Field::Text(entry.model_digest.as_deref())),
        ("output_sha256", Field::Text(entry.output_sha256.as_deref())),
        ("recorded_at", Field::Integer(entry.recorded_at)),
        ("request_id", Field::Text(entry.request_id.as_deref())),
        ("resource", Field::Text(Some(&entry.resource))),
        ("seq", Field::Integer(seq)),
        ("status", Field::Integer(entry.status)),
        ("tenant", Field::Text(entry.tenant.as_deref())),
    ];
    out.push(b'{');
    for (i, (key, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(&mut out, &key);
        out.push(b':');
        match value {
            // What serde_json would write for a string with nothing to escape (no
            // control characters, quotes or backslashes): hex digests, names, paths.
            Field::Text(Some(text))
                if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') =>
            {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            }
            Field::Text(Some(text)) => write_json(&mut out, &text),
            Field::Text(None) => out.extend_from_slice(b"null"),
            Field::Integer(number) => write_json(&mut out, &number),
        }
    }
    out.push(b'}');
    out
}

/// A value of [`entry_bytes`].
enum Field<'a> {
    Text(Option<&'a str>),
    Integer(i64),
}

/// serde_json's encoding of a string or integer, as `canonical_json` writes scalars.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value)
        .expect("serialising a string or integer into memory cannot fail: this is a bug");
}

/// The link of entry `seq` after `prev_hash` (hex).
pub fn entry_hash(seq: i64, prev_hash: &str, entry: &NewAuditEntry) -> Result<String, AuditError> {
    let prev = parse_hash(prev_hash)?;
    Ok(crypto::hex_lower(&chain_hash(
        prev,
        &entry_bytes(seq, entry),
    )))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crypto::signing::canonical_json;

    /// What `entry_bytes` must equal, byte for byte: logs written before it was
    /// hand-rolled verify with it, and after.
    fn through_value(seq: i64, entry: &NewAuditEntry) -> Vec<u8> {
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

    #[test]
    fn entry_bytes_are_the_canonical_json_of_the_entry() {
        let full = NewAuditEntry {
            recorded_at: -1_700_000_000,
            tenant: Some("acme \"quoted\" \\ tenant".into()),
            key_id: Some("k\u{1}\u{1f}\n\t".into()),
            action: "http POST /v1/embeddings é 漢字 \u{1F600}".into(),
            resource: "/v1/models/x%2Fy".into(),
            status: 503,
            latency_ms: i64::MAX,
            request_id: Some("\u{7f}\u{2028}</script>".into()),
            input_sha256: Some("ab".repeat(32)),
            output_sha256: Some(String::new()),
            model_digest: Some("cd".repeat(32)),
        };
        let sparse = NewAuditEntry {
            action: "change".into(),
            ..NewAuditEntry::default()
        };
        for (seq, entry) in [(1, &full), (i64::MIN, &full), (42, &sparse)] {
            assert_eq!(
                String::from_utf8(entry_bytes(seq, entry)).unwrap(),
                String::from_utf8(through_value(seq, entry)).unwrap()
            );
        }
    }
}
