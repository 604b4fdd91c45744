//! Master keys: the root of envelope encryption, loaded from a file or the
//! environment text, held in a versioned keyring so they can be rotated.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{CryptoError, Secret};

/// Length of master and data keys: AES-256.
pub const KEY_BYTES: usize = 32;

/// Upper bound on a master key file we are willing to read; anything longer is
/// malformed, and the bound keeps a mistaken path (a device, a log) from being slurped.
const MAX_KEY_FILE_BYTES: u64 = 256;

/// A 256-bit master key and the version number that wrapped keys record.
///
/// The version is assigned by the operator (it is not stored in the key file): the
/// key file holds only key bytes, and configuration says which version each file is.
/// `Debug` shows the version and a fingerprint, never the key.
#[derive(Clone)]
pub struct MasterKey {
    version: u32,
    key: Secret<Zeroizing<[u8; KEY_BYTES]>>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("version", &self.version)
            .field("fingerprint", &self.fingerprint())
            .field("key", &self.key)
            .finish()
    }
}

impl MasterKey {
    /// A fresh random key (from the OS CSPRNG).
    pub fn generate(version: u32) -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut());
        Self::from_array(version, bytes)
    }

    /// Key bytes given directly; all-zero keys are refused as an obvious mistake.
    pub fn from_bytes(version: u32, bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|_| CryptoError::MalformedKey("master key must be 32 bytes"))?;
        let array = Zeroizing::new(array);
        if array.iter().all(|&b| b == 0) {
            return Err(CryptoError::MalformedKey("master key is all zeros"));
        }
        Ok(Self::from_array(version, array))
    }

    /// Parses the text of `CHARTER_MASTER_KEY`: 64 hex digits, surrounding
    /// whitespace ignored.
    pub fn from_env_text(version: u32, text: &str) -> Result<Self, CryptoError> {
        let bytes = decode_hex_key(text.trim().as_bytes())?;
        Self::from_bytes(version, bytes.as_ref())
    }

    /// Reads a key file holding exactly 32 raw bytes, or exactly 64 hex digits
    /// optionally followed by one `\n` or `\r\n`. Anything else is refused: a
    /// lenient parser could silently turn a damaged file into a different key.
    pub fn load_file(version: u32, path: &Path) -> Result<Self, CryptoError> {
        let file = File::open(path).map_err(CryptoError::Io)?;
        let mut contents = Zeroizing::new(Vec::with_capacity(80));
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut contents)
            .map_err(CryptoError::Io)?;
        Self::parse_file_contents(version, &contents)
    }

    /// Creates `path` with mode 0600 (never replacing an existing file) and writes a
    /// new random key to it as 64 hex digits and a newline. Fails with an
    /// `AlreadyExists` I/O error if the file is there. A crash mid-write leaves a
    /// malformed file that [`MasterKey::load_file`] refuses, never a silently different
    /// key.
    pub fn generate_file(version: u32, path: &Path) -> Result<Self, CryptoError> {
        let key = Self::generate(version);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(CryptoError::Io)?;
        let mut text = Zeroizing::new([b'\n'; KEY_BYTES * 2 + 1]);
        hex::encode_to_slice(key.key.expose().as_ref(), &mut text[..KEY_BYTES * 2])
            .expect("64 hex digits fit in 64 bytes: this is a bug");
        file.write_all(text.as_ref()).map_err(CryptoError::Io)?;
        file.sync_all().map_err(CryptoError::Io)?;
        // Make the new directory entry durable too: data sealed under this key must
        // not outlive the key file after a crash.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|dir| dir.sync_all())
                .map_err(CryptoError::Io)?;
        }
        Ok(key)
    }

    /// Loads `path`, or creates it with a new key when it does not exist (first
    /// start). Creation uses `create_new`, so two processes racing here end up with
    /// the same key rather than one overwriting the other's.
    pub fn load_or_generate_file(version: u32, path: &Path) -> Result<Self, CryptoError> {
        match Self::generate_file(version, path) {
            Ok(key) => Ok(key),
            Err(CryptoError::Io(err)) if err.kind() == io::ErrorKind::AlreadyExists => {
                Self::load_file(version, path)
            }
            Err(err) => Err(err),
        }
    }

    /// Whether the key file is readable or writable only by its owner (no group or
    /// other bits), so that the binary can warn about a loosely protected key.
    pub fn file_is_private(path: &Path) -> io::Result<bool> {
        let mode = std::fs::metadata(path)?.permissions().mode();
        Ok(mode & 0o077 == 0)
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// A public identifier of the key bytes (HMAC of a fixed label, first 8 bytes as
    /// hex), for logs and `keys` listings; it reveals nothing about the key.
    pub fn fingerprint(&self) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose().as_ref())
            .expect("HMAC takes keys of any length: this is a bug");
        mac.update(b"charter/master-key-fingerprint/v1");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    pub(crate) fn key_bytes(&self) -> &[u8; KEY_BYTES] {
        self.key.expose()
    }

    fn from_array(version: u32, bytes: Zeroizing<[u8; KEY_BYTES]>) -> Self {
        Self {
            version,
            key: Secret::new(bytes),
        }
    }

    fn parse_file_contents(version: u32, contents: &[u8]) -> Result<Self, CryptoError> {
        if contents.len() == KEY_BYTES {
            return Self::from_bytes(version, contents);
        }
        let text = contents
            .strip_suffix(b"\r\n")
            .or_else(|| contents.strip_suffix(b"\n"))
            .unwrap_or(contents);
        let bytes = decode_hex_key(text)?;
        Self::from_bytes(version, bytes.as_ref())
    }
}

fn decode_hex_key(text: &[u8]) -> Result<Zeroizing<[u8; KEY_BYTES]>, CryptoError> {
    if text.len() != KEY_BYTES * 2 {
        return Err(CryptoError::MalformedKey(
            "expected 32 raw bytes or 64 hex digits",
        ));
    }
    let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
    hex::decode_to_slice(text, bytes.as_mut())
        .map_err(|_| CryptoError::MalformedKey("expected 32 raw bytes or 64 hex digits"))?;
    Ok(bytes)
}

/// Every master key version still needed to unwrap stored data keys, and the one
/// that wraps new ones. Rotation: add the new key, make it active, rewrap every data
/// key ([`crate::envelope::rewrap`]), then drop the old version from configuration.
#[derive(Debug, Clone)]
pub struct MasterKeyring {
    keys: BTreeMap<u32, MasterKey>,
    active_version: u32,
}

impl MasterKeyring {
    /// A keyring with one key, which is active.
    pub fn new(active: MasterKey) -> Self {
        let active_version = active.version;
        let mut keys = BTreeMap::new();
        keys.insert(active_version, active);
        Self {
            keys,
            active_version,
        }
    }

    /// Adds an older (or future) version without changing the active one.
    pub fn add(&mut self, key: MasterKey) -> Result<(), CryptoError> {
        if self.keys.contains_key(&key.version) {
            return Err(CryptoError::DuplicateMasterKey(key.version));
        }
        self.keys.insert(key.version, key);
        Ok(())
    }

    /// Makes `version` the key that wraps from now on.
    pub fn set_active(&mut self, version: u32) -> Result<(), CryptoError> {
        if !self.keys.contains_key(&version) {
            return Err(CryptoError::UnknownMasterKey(version));
        }
        self.active_version = version;
        Ok(())
    }

    /// Removes a version that no stored key needs any more; the active version
    /// cannot be removed.
    pub fn remove(&mut self, version: u32) -> Result<MasterKey, CryptoError> {
        if version == self.active_version {
            return Err(CryptoError::InvalidArgument(
                "cannot remove the active master key",
            ));
        }
        self.keys
            .remove(&version)
            .ok_or(CryptoError::UnknownMasterKey(version))
    }

    pub fn active(&self) -> &MasterKey {
        self.keys
            .get(&self.active_version)
            .expect("the active version is always in the keyring: this is a bug")
    }

    pub fn get(&self, version: u32) -> Option<&MasterKey> {
        self.keys.get(&version)
    }

    /// The versions held, ascending.
    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }
}
