//! Sealed records: small values (a pseudonym mapping, a stored request payload) kept in
//! a database column, sealed under a tenant's data key and bound to where they belong.
//!
//! Blobs are bound to the SHA-256 of their plaintext, which suits content-addressed
//! files but not records: a digest stored next to a sealed e-mail address would let
//! anyone with the database test guesses against it. A record is instead bound to a
//! *context* the caller names (for example `pii-vault/<id>`), so a sealed value copied
//! into another row, another purpose or another tenant fails to open.
//!
//! # Format, version 1
//!
//! | part        | bytes | content                                            |
//! |-------------|-------|----------------------------------------------------|
//! | format      | 1     | `0x01`                                             |
//! | key salt    | 24    | random; derives the per-record key                 |
//! | nonce       | 12    | random                                             |
//! | ciphertext  | n     | AES-256-GCM                                        |
//! | tag         | 16    | GCM tag                                            |
//!
//! Per-record key = HMAC-SHA256(data key, `"charter/record-key/v1\0"` ‖ salt), so as with
//! blobs no two records share an AES key unless their 192-bit salts collide.
//! AAD = `"charter/record/v1\0"` ‖ tenant length (u64 BE) ‖ tenant ‖ context length
//! (u64 BE) ‖ context.
//!
//! [`keyed_tag`] derives a stable, keyed identifier from a value (a data subject id) so
//! rows can be found by it without storing it: HMAC-SHA256(data key,
//! `"charter/tag/v1\0"` ‖ label length ‖ label ‖ value). Without the data key the tag
//! says nothing about the value; once the key is shredded, nobody can compute it.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::datakey::DataKey;
use crate::CryptoError;

/// Format byte of sealed records.
pub const SEALED_RECORD_FORMAT_V1: u8 = 1;
/// Bytes a sealed record adds to its plaintext.
pub const SEALED_RECORD_OVERHEAD: usize = 1 + SALT_BYTES + NONCE_BYTES + TAG_BYTES;

const SALT_BYTES: usize = 24;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const RECORD_KEY_LABEL: &[u8] = b"charter/record-key/v1\0";
const RECORD_AAD_LABEL: &[u8] = b"charter/record/v1\0";
const TAG_LABEL: &[u8] = b"charter/tag/v1\0";

/// Seals `plaintext` for `tenant`, bound to `context`.
pub fn seal_record(key: &DataKey, tenant: &str, context: &str, plaintext: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut body = Zeroizing::new(plaintext.to_vec());
    let tag = record_cipher(key, &salt)
        .encrypt_in_place_detached(
            Nonce::from_slice(&nonce),
            &aad(tenant, context),
            body.as_mut(),
        )
        .expect("AES-GCM encrypts records far below its length limit: this is a bug");
    let mut sealed = Vec::with_capacity(SEALED_RECORD_OVERHEAD + plaintext.len());
    sealed.push(SEALED_RECORD_FORMAT_V1);
    sealed.extend_from_slice(&salt);
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&body);
    sealed.extend_from_slice(&tag);
    sealed
}

/// Opens a record sealed by [`seal_record`] with the same tenant and context; anything
/// else (another key, tenant or context, a changed byte, a truncation) is
/// [`CryptoError::Integrity`].
pub fn open_record(
    key: &DataKey,
    tenant: &str,
    context: &str,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < SEALED_RECORD_OVERHEAD || sealed[0] != SEALED_RECORD_FORMAT_V1 {
        return Err(CryptoError::Integrity);
    }
    let (salt, rest) = sealed[1..].split_at(SALT_BYTES);
    let (nonce, rest) = rest.split_at(NONCE_BYTES);
    let (body, tag) = rest.split_at(rest.len() - TAG_BYTES);
    let mut plaintext = Zeroizing::new(body.to_vec());
    record_cipher(key, salt)
        .decrypt_in_place_detached(
            Nonce::from_slice(nonce),
            &aad(tenant, context),
            plaintext.as_mut(),
            Tag::from_slice(tag),
        )
        .map_err(|_| CryptoError::Integrity)?;
    Ok(plaintext)
}

/// A keyed, one-way tag of `value` under `label` (see the module documentation).
pub fn keyed_tag(key: &DataKey, label: &str, value: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.key_bytes())
        .expect("HMAC takes keys of any length: this is a bug");
    mac.update(TAG_LABEL);
    mac.update(&(label.len() as u64).to_be_bytes());
    mac.update(label.as_bytes());
    mac.update(value);
    mac.finalize().into_bytes().into()
}

fn record_cipher(key: &DataKey, salt: &[u8]) -> Aes256Gcm {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.key_bytes())
        .expect("HMAC takes keys of any length: this is a bug");
    mac.update(RECORD_KEY_LABEL);
    mac.update(salt);
    let record_key = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
    Aes256Gcm::new(record_key.as_ref().into())
}

fn aad(tenant: &str, context: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(RECORD_AAD_LABEL.len() + 16 + tenant.len() + context.len());
    aad.extend_from_slice(RECORD_AAD_LABEL);
    aad.extend_from_slice(&(tenant.len() as u64).to_be_bytes());
    aad.extend_from_slice(tenant.as_bytes());
    aad.extend_from_slice(&(context.len() as u64).to_be_bytes());
    aad.extend_from_slice(context.as_bytes());
    aad
}
