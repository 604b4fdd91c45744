//! Cryptography for Charter: secrets that never print, API keys stored only as
//! hashes and checked in constant time.
//!
//! This crate knows nothing of HTTP, storage or models; other crates hand it bytes.

mod apikey;
mod secret;

pub use apikey::{ApiKey, ApiKeyError, KEY_PREFIX};
pub use secret::Secret;

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
