//! Integration tests of the `crypto` crate: one binary, one module per area.

mod checkpoint;
mod envelope;
mod formats;
mod master_key;
mod merkle;
mod record;
mod signing;

/// Decodes hex in test vectors.
pub fn h(text: &str) -> Vec<u8> {
    hex::decode(text).expect("test vector hex")
}

/// Decodes a 32-byte hash in test vectors.
pub fn h32(text: &str) -> [u8; 32] {
    h(text).try_into().expect("test vector of 32 bytes")
}
