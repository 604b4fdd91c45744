//! Signed checkpoints: a tree size, its head and a time, signed with the server's
//! ed25519 key, as text in the manner of C2SP signed notes.
//!
//! ```text
//! charter-audit-checkpoint/v1
//! <size, decimal>
//! <root, standard base64>
//! <timestamp, decimal Unix seconds>
//!
//! — <key id> <signature, standard base64>
//! ```
//!
//! The signature covers the four body lines, each ending in `\n`. The first line
//! is the origin and doubles as the domain separator: no other Charter signature
//! starts with it.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::Hash;
use crate::signing::{Signature, SigningKey, VerifyingKey};
use crate::CryptoError;

/// First line of every checkpoint body.
pub const CHECKPOINT_ORIGIN: &str = "charter-audit-checkpoint/v1";

const SIGNATURE_PREFIX: &str = "— ";

/// A signed tree head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub size: u64,
    #[serde(with = "hex_hash")]
    pub root: Hash,
    /// Unix seconds at which the head was signed.
    pub timestamp: u64,
    pub key_id: String,
    pub signature: Signature,
}

impl Checkpoint {
    pub fn sign(key: &SigningKey, size: u64, root: Hash, timestamp: u64) -> Self {
        let signature = key.sign(body(size, &root, timestamp).as_bytes());
        Self {
            size,
            root,
            timestamp,
            key_id: key.key_id(),
            signature,
        }
    }

    /// The signed text: the four body lines.
    pub fn body(&self) -> String {
        body(self.size, &self.root, self.timestamp)
    }

    /// Checks that `key` is the key named and that it signed exactly this size, root
    /// and timestamp.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CryptoError> {
        let expected = key.key_id();
        if self.key_id != expected {
            return Err(CryptoError::WrongKey {
                expected,
                found: crate::signing::printable_key_id(&self.key_id),
            });
        }
        key.verify(self.body().as_bytes(), &self.signature)
    }

    /// The note text (body, blank line, signature line).
    pub fn to_note(&self) -> String {
        format!(
            "{}\n{SIGNATURE_PREFIX}{} {}\n",
            self.body(),
            self.key_id,
            self.signature.to_base64()
        )
    }

    /// Parses [`Checkpoint::to_note`] output exactly; it does not verify the
    /// signature.
    pub fn from_note(text: &str) -> Result<Self, CryptoError> {
        let malformed = || CryptoError::Malformed("checkpoint");
        let text = text.strip_suffix('\n').ok_or_else(malformed)?;
        let lines: Vec<&str> = text.split('\n').collect();
        let [origin, size, root, timestamp, blank, signature_line] = lines[..] else {
            return Err(malformed());
        };
        if origin != CHECKPOINT_ORIGIN || !blank.is_empty() {
            return Err(malformed());
        }
        let size = parse_decimal(size).ok_or_else(malformed)?;
        let timestamp = parse_decimal(timestamp).ok_or_else(malformed)?;
        let root: Hash = base64::engine::general_purpose::STANDARD
            .decode(root)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(malformed)?;
        let (key_id, signature) = signature_line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or_else(malformed)?;
        if key_id.is_empty() || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed());
        }
        Ok(Self {
            size,
            root,
            timestamp,
            key_id: key_id.to_owned(),
            signature: Signature::from_base64(signature)?,
        })
    }
}

fn body(size: u64, root: &Hash, timestamp: u64) -> String {
    format!(
        "{CHECKPOINT_ORIGIN}\n{size}\n{}\n{timestamp}\n",
        base64::engine::general_purpose::STANDARD.encode(root)
    )
}

/// A canonical decimal: digits only, no sign, no leading zeros.
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if canonical {
        text.parse().ok()
    } else {
        None
    }
}

mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&text, &mut hash).map_err(serde::de::Error::custom)?;
        Ok(hash)
    }
}
