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
    hex_lower(&sha2::Sha256::digest(bytes))
}

/// `bytes` as lowercase hex, as `hex::encode` writes it; through a byte buffer, which
/// is several times faster than `hex::encode`'s char-by-char `String` (the audit path
/// encodes three digests per request).
pub fn hex_lower(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    hex::encode_to_slice(bytes, &mut out)
        .expect("the buffer is twice the input's length: this is a bug");
    String::from_utf8(out).expect("hex digits are ASCII: this is a bug")
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_lower_is_hex_encode() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(super::hex_lower(&bytes), hex::encode(&bytes));
        assert_eq!(super::hex_lower(&[]), "");
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
