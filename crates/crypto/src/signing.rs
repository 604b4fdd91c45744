//! Ed25519 signatures: keys in PKCS#8 / SPKI PEM (as OpenSSL writes them), canonical
//! JSON, and signed statements for receipts, model manifests and checkpoints.
//!
//! Everything signed through this module is domain-separated: a [`SignedStatement`]
//! signs `"charter/signed-statement/v1\0" ‖ key id ‖ "\0" ‖ canonical JSON`, a
//! checkpoint signs its own note text, so a signature made for one purpose can never
//! be replayed as another. Verification is strict (`verify_strict`: no small-order
//! keys, no malleable signatures).

use std::fmt;

use base64::Engine as _;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{CryptoError, Secret};

const STATEMENT_LABEL: &[u8] = b"charter/signed-statement/v1\0";

/// An ed25519 private key. `Debug` shows only the key id; the key bytes are zeroed on
/// drop.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Parses a `-----BEGIN PRIVATE KEY-----` PKCS#8 document (RFC 8410), such as
    /// `openssl genpkey -algorithm ed25519` writes. Encrypted PEM is not accepted.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, CryptoError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|_| CryptoError::MalformedKey("expected an ed25519 PKCS#8 PEM private key"))
    }

    /// The PKCS#8 PEM encoding, LF line endings; zeroed when dropped.
    pub fn to_pkcs8_pem(&self) -> Result<Secret<Zeroizing<String>>, CryptoError> {
        let pem = self
            .0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| CryptoError::MalformedKey("cannot encode key as PKCS#8"))?;
        Ok(Secret::new(pem))
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// The SPKI (`-----BEGIN PUBLIC KEY-----`) PEM of the public key.
    pub fn public_key_pem(&self) -> String {
        self.verifying_key().to_public_key_pem()
    }

    pub fn key_id(&self) -> String {
        self.verifying_key().key_id()
    }

    /// Signs raw bytes. Prefer [`SignedStatement`] for anything structured: raw
    /// messages carry no domain separation, so callers must make sure a message for
    /// one purpose can never parse as one for another (checkpoint bodies start with
    /// `charter-audit-checkpoint/v1\n`, statements with `charter/signed-statement/v1\0`).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({})", self.key_id())
    }
}

impl VerifyingKey {
    /// Parses a `-----BEGIN PUBLIC KEY-----` SPKI document (RFC 8410).
    pub fn from_public_key_pem(pem: &str) -> Result<Self, CryptoError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(Self)
            .map_err(|_| CryptoError::MalformedKey("expected an ed25519 SPKI PEM public key"))
    }

    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, CryptoError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| CryptoError::MalformedKey("not an ed25519 public key"))
    }

    pub fn to_public_key_pem(&self) -> String {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .expect("an ed25519 public key always encodes as SPKI: this is a bug")
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// Hex of the first 8 bytes of SHA-256 of the 32-byte public key.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), CryptoError> {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0
            .verify_strict(message, &signature)
            .map_err(|_| CryptoError::BadSignature)
    }
}

/// An ed25519 signature; serialised as standard base64.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_base64())
    }
}

impl Signature {
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| CryptoError::Malformed("signature"))?;
        let bytes: [u8; 64] = bytes
            .try_into()
            .map_err(|_| CryptoError::Malformed("signature"))?;
        Ok(Self(bytes))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// The canonical byte form of a JSON value, for signing: object keys sorted (by
/// UTF-16 code units, as RFC 8785 JCS does), no insignificant whitespace, strings
/// escaped minimally by serde_json. Integers and strings are canonical in the JCS
/// sense; non-integer numbers are written in serde_json's shortest round-trip form,
/// which can differ from JCS, so signed statements should carry integers and strings.
/// Duplicate object keys cannot occur: `serde_json::Value` keeps only one.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_scalar(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(value: &serde_json::Value, out: &mut Vec<u8>) {
    serde_json::to_writer(out, value)
        .expect("serialising a JSON scalar into memory cannot fail: this is a bug");
}

/// A JSON payload signed by a key named by its id: receipts, model manifests.
/// Changing the payload (any field, at any depth), the key id or the signature makes
/// [`SignedStatement::verify`] fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedStatement {
    pub payload: serde_json::Value,
    pub signature: Signature,
    pub key_id: String,
}

impl SignedStatement {
    pub fn sign(key: &SigningKey, payload: serde_json::Value) -> Self {
        let key_id = key.key_id();
        let signature = key.sign(&statement_message(&key_id, &payload));
        Self {
            payload,
            signature,
            key_id,
        }
    }

    /// Checks that `key` is the key named and that the signature covers exactly this
    /// payload and key id.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CryptoError> {
        let expected = key.key_id();
        if self.key_id != expected {
            return Err(CryptoError::WrongKey {
                expected,
                found: printable_key_id(&self.key_id),
            });
        }
        key.verify(
            &statement_message(&self.key_id, &self.payload),
            &self.signature,
        )
    }
}

fn statement_message(key_id: &str, payload: &serde_json::Value) -> Vec<u8> {
    let mut message = STATEMENT_LABEL.to_vec();
    message.extend_from_slice(key_id.as_bytes());
    message.push(0);
    message.extend_from_slice(&canonical_json(payload));
    message
}

/// A key id from untrusted input as it may appear in an error message: a key id
/// (16 hex digits) as is, anything else replaced, so errors and logs never echo
/// arbitrary attacker-chosen text.
pub(crate) fn printable_key_id(key_id: &str) -> String {
    if key_id.len() == 16 && key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        key_id.to_owned()
    } else {
        "(malformed key id)".to_owned()
    }
}
