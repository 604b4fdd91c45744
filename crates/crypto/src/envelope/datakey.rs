//! Per-tenant data keys and their wrapped (master-key-encrypted) form for storage.

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce, Tag};
use rand::RngCore;
use zeroize::Zeroizing;

use super::master::{MasterKey, MasterKeyring, KEY_BYTES};
use crate::{CryptoError, Secret};

/// Format byte of [`WrappedKey`] bytes.
pub const WRAPPED_KEY_FORMAT_V1: u8 = 1;
/// Length of a serialised [`WrappedKey`]: format ‖ master version ‖ nonce ‖ key ‖ tag.
pub const WRAPPED_KEY_BYTES: usize = 1 + 4 + NONCE_BYTES + KEY_BYTES + TAG_BYTES;

const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
const WRAP_AAD_LABEL: &[u8] = b"charter/wrapped-data-key/v1\0";

/// A tenant's AES-256 data key. It seals blobs (through per-blob derived keys, see
/// [`crate::envelope`]) and is stored only wrapped. Destroying every wrapped copy
/// crypto-shreds the tenant's blobs.
#[derive(Clone)]
pub struct DataKey {
    key: Secret<Zeroizing<[u8; KEY_BYTES]>>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    /// A fresh random key (from the OS CSPRNG).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self {
            key: Secret::new(bytes),
        }
    }

    /// Encrypts this key under the keyring's active master key. The tenant name and
    /// master version are authenticated, so the result cannot be attached to another
    /// tenant or relabelled with another master version.
    pub fn wrap(&self, keyring: &MasterKeyring, tenant: &str) -> WrappedKey {
        let master = keyring.active();
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut ciphertext: [u8; KEY_BYTES] = **self.key.expose();
        let tag = master_cipher(master)
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &wrap_aad(master.version(), tenant),
                &mut ciphertext,
            )
            .expect("AES-GCM encrypts 32 bytes without error: this is a bug");
        WrappedKey {
            master_version: master.version(),
            nonce,
            ciphertext,
            tag: tag.into(),
        }
    }

    /// Decrypts `wrapped` with the master key version it names. Another tenant, an
    /// altered byte or the wrong key for that version → [`CryptoError::Integrity`];
    /// a version the keyring lacks → [`CryptoError::UnknownMasterKey`].
    pub fn unwrap(
        keyring: &MasterKeyring,
        tenant: &str,
        wrapped: &WrappedKey,
    ) -> Result<Self, CryptoError> {
        let master = keyring
            .get(wrapped.master_version)
            .ok_or(CryptoError::UnknownMasterKey(wrapped.master_version))?;
        let mut bytes = Zeroizing::new(wrapped.ciphertext);
        master_cipher(master)
            .decrypt_in_place_detached(
                Nonce::from_slice(&wrapped.nonce),
                &wrap_aad(wrapped.master_version, tenant),
                bytes.as_mut(),
                Tag::from_slice(&wrapped.tag),
            )
            .map_err(|_| CryptoError::Integrity)?;
        Ok(Self {
            key: Secret::new(bytes),
        })
    }

    pub(crate) fn key_bytes(&self) -> &[u8; KEY_BYTES] {
        self.key.expose()
    }
}

/// Re-encrypts a wrapped data key under the keyring's active master key, leaving
/// every blob sealed under the data key untouched (`charter keys rotate-master`).
pub fn rewrap(
    keyring: &MasterKeyring,
    tenant: &str,
    wrapped: &WrappedKey,
) -> Result<WrappedKey, CryptoError> {
    Ok(DataKey::unwrap(keyring, tenant, wrapped)?.wrap(keyring, tenant))
}

/// A data key encrypted under a master key, as stored in a database column.
///
/// Byte layout ([`WrappedKey::to_bytes`], 65 bytes):
///
/// | offset | length | field                                          |
/// |--------|--------|------------------------------------------------|
/// | 0      | 1      | format, `0x01`                                 |
/// | 1      | 4      | master key version, big-endian                 |
/// | 5      | 12     | random AES-GCM nonce                           |
/// | 17     | 32     | data key, encrypted                            |
/// | 49     | 16     | GCM tag                                        |
///
/// AAD = `"charter/wrapped-data-key/v1\0"` ‖ version (u32 BE) ‖ tenant length
/// (u64 BE) ‖ tenant (UTF-8).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    master_version: u32,
    nonce: [u8; NONCE_BYTES],
    ciphertext: [u8; KEY_BYTES],
    tag: [u8; TAG_BYTES],
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("master_version", &self.master_version)
            .finish_non_exhaustive()
    }
}

impl WrappedKey {
    /// The master key version that must be in the keyring to unwrap this key.
    pub fn master_version(&self) -> u32 {
        self.master_version
    }

    /// Whether this key is already wrapped by the keyring's active master key, i.e.
    /// whether a rotation still has to [`rewrap`] it.
    pub fn is_current(&self, keyring: &MasterKeyring) -> bool {
        self.master_version == keyring.active().version()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(WRAPPED_KEY_BYTES);
        out.push(WRAPPED_KEY_FORMAT_V1);
        out.extend_from_slice(&self.master_version.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out.extend_from_slice(&self.tag);
        out
    }

    /// Parses [`WrappedKey::to_bytes`] output exactly (length and format byte).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let bytes: &[u8; WRAPPED_KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| CryptoError::Malformed("wrapped key"))?;
        if bytes[0] != WRAPPED_KEY_FORMAT_V1 {
            return Err(CryptoError::Malformed("wrapped key"));
        }
        let mut wrapped = Self {
            master_version: u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
            nonce: [0; NONCE_BYTES],
            ciphertext: [0; KEY_BYTES],
            tag: [0; TAG_BYTES],
        };
        let (nonce, rest) = bytes[5..].split_at(NONCE_BYTES);
        let (ciphertext, tag) = rest.split_at(KEY_BYTES);
        wrapped.nonce.copy_from_slice(nonce);
        wrapped.ciphertext.copy_from_slice(ciphertext);
        wrapped.tag.copy_from_slice(tag);
        Ok(wrapped)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.to_bytes())
    }

    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(text).map_err(|_| CryptoError::Malformed("wrapped key"))?;
        Self::from_bytes(&bytes)
    }
}

fn master_cipher(master: &MasterKey) -> Aes256Gcm {
    Aes256Gcm::new(master.key_bytes().into())
}

fn wrap_aad(master_version: u32, tenant: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_LABEL.len() + 12 + tenant.len());
    aad.extend_from_slice(WRAP_AAD_LABEL);
    aad.extend_from_slice(&master_version.to_be_bytes());
    aad.extend_from_slice(&(tenant.len() as u64).to_be_bytes());
    aad.extend_from_slice(tenant.as_bytes());
    aad
}
