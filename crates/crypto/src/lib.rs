//! Cryptography for Charter: secrets that never print, API keys stored only as
//! hashes and checked in constant time, envelope encryption at rest, ed25519
//! signatures, and RFC 9162 Merkle trees for the audit log.
//!
//! This crate knows nothing of HTTP, storage or models; other crates hand it bytes.
//! Its only I/O is reading and creating the master key file
//! ([`envelope::MasterKey::load_file`], [`envelope::MasterKey::generate_file`]) and
//! the `Read`/`Write` streams callers pass to [`envelope::Sealer`] and
//! [`envelope::Opener`].

mod apikey;
pub mod envelope;
mod error;
pub mod merkle;
mod secret;
pub mod signing;

pub use apikey::{ApiKey, ApiKeyError, KEY_PREFIX};
pub use error::CryptoError;
pub use secret::Secret;

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
