//! Envelope encryption at rest: a master key wraps per-tenant data keys, and data
//! keys seal blobs in a segmented AES-256-GCM format.
//!
//! ```text
//! MasterKeyring (file 0600 / CHARTER_MASTER_KEY, versioned)
//!   └─ wraps ─► DataKey per tenant (stored only as WrappedKey, 65 bytes)
//!                 └─ HMAC-SHA256(data key, label ‖ 24-byte random salt) = per-blob key
//!                      └─ seals ─► blob = header ‖ segment₀ ‖ … ‖ segmentₙ
//! ```
//!
//! # Sealed blob format, version 1
//!
//! | part          | bytes                | content                                     |
//! |---------------|----------------------|---------------------------------------------|
//! | format        | 1                    | `0x01`                                      |
//! | key salt      | 24                   | random; derives the per-blob key            |
//! | nonce prefix  | 8                    | random; first 8 bytes of every nonce        |
//! | segment *i*   | ≤ 65 536 + 16        | AES-256-GCM ciphertext ‖ 16-byte tag        |
//!
//! Every segment but the last holds exactly 64 KiB of plaintext; the last holds
//! 0–64 KiB (0 only for an empty blob). Segment *i* uses
//! nonce = prefix ‖ *i* (u32 big-endian) and
//! AAD = `"charter/blob/v1\0"` ‖ tenant length (u64 BE) ‖ tenant ‖ plaintext
//! SHA-256 ‖ header ‖ last flag (`0x01` on the final segment, else `0x00`).
//! This is the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015):
//! the counter fixes each segment's position, so reordering, dropping or duplicating
//! segments fails; the flag marks the end, so truncating at a segment boundary (the
//! new last segment was sealed with flag 0) or appending a segment (the old last one
//! was sealed with flag 1) fails. The tenant and digest in the AAD make a blob moved
//! to another tenant, or swapped for another blob, fail. The opener also recomputes
//! the plaintext SHA-256 and withholds the final segment unless it matches. Each
//! of these surfaces as [`CryptoError::Integrity`](crate::CryptoError::Integrity).
//!
//! # Why nonces never repeat under one key
//!
//! AES-GCM breaks badly if a (key, nonce) pair is ever reused. Blobs are never
//! encrypted under the data key itself: each blob gets its own AES key, derived from
//! the data key and a fresh 192-bit random salt. Within a blob the nonce is the
//! random prefix followed by a segment counter that strictly increases and may not
//! wrap (at most 2^32 segments, 256 TiB, per blob; beyond that sealing fails with
//! `TooLarge`), so no nonce repeats under a blob key. Two blobs share an AES key only
//! if their salts collide: for *q* blobs that happens with probability about
//! q²/2^193, and even then their random nonce prefixes must also collide
//! (2^-64) for a nonce to repeat. So the usual limit for random 96-bit GCM nonces,
//! 2^32 messages per key (NIST SP 800-38D §8.3, keeping the collision probability
//! below 2^-32), is not what bounds a data key here.
//!
//! Wrapping does use random 96-bit nonces directly under the master key, so that limit
//! applies to it: at most 2^32 wraps per master key version. With one wrap per
//! tenant and per rotation, this is far away; [`should_rotate`] is the hook for
//! callers that count uses (wraps per master version, or blobs per data key as a
//! conservative operational ceiling).
//!
//! # Rotation and shredding
//!
//! Small values kept in database columns (the PII vault, stored payloads) use the
//! one-shot record format of [`seal_record`] instead, bound to a caller-named context
//! rather than to a plaintext digest.
//!
//! Master rotation rewraps data keys ([`rewrap`]); blobs and records are untouched. Deleting
//! every copy of a tenant's wrapped key makes its blobs unreadable, backups included.

mod datakey;
mod master;
mod record;
mod stream;

pub use datakey::{rewrap, DataKey, WrappedKey, WRAPPED_KEY_BYTES, WRAPPED_KEY_FORMAT_V1};
pub use master::{MasterKey, MasterKeyring, KEY_BYTES};
pub use record::{
    keyed_tag, open_record, seal_record, SEALED_RECORD_FORMAT_V1, SEALED_RECORD_OVERHEAD,
};
pub use stream::{
    open, open_stream, seal, seal_stream, sealed_len, BlobContext, Opener, Sealer, HEADER_BYTES,
    KEY_SALT_BYTES, NONCE_PREFIX_BYTES, SEALED_FORMAT_V1, SEGMENT_BYTES, TAG_BYTES,
};

/// Messages per key beyond which a key should be replaced: 2^32, the NIST SP
/// 800-38D bound for random 96-bit GCM nonces.
pub const MAX_USES_PER_KEY: u64 = 1 << 32;

/// Whether a key used `use_count` times (wraps under a master key version, or blobs
/// sealed under a data key) has reached [`MAX_USES_PER_KEY`] and should be rotated.
pub fn should_rotate(use_count: u64) -> bool {
    use_count >= MAX_USES_PER_KEY
}
