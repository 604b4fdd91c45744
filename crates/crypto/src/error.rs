//! `CryptoError`: the one error type of the envelope, signing and Merkle modules.
//!
//! Messages never carry key material or plaintext. Every way a sealed blob or a
//! wrapped key can be wrong after it was written (a flipped bit, truncation, an
//! appended segment, another tenant, another digest, another key) is the single
//! variant [`CryptoError::Integrity`], so callers cannot act on partial diagnoses and
//! an attacker learns nothing from which check failed.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Authenticated decryption failed: the data was altered, truncated, extended,
    /// moved to another tenant or blob identity, or is under another key.
    #[error("integrity check failed")]
    Integrity,
    /// Key material (a master key file or text, a PEM document) could not be parsed.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A wrapped key names a master key version that the keyring does not hold.
    #[error("no master key with version {0} in the keyring")]
    UnknownMasterKey(u32),
    /// A keyring was given two keys with the same version.
    #[error("master key version {0} is already in the keyring")]
    DuplicateMasterKey(u32),
    /// Sealing finished with plaintext whose SHA-256 differs from the declared digest;
    /// nothing usable was written. This is a caller bug, not an attack.
    #[error("plaintext does not match the declared digest")]
    DigestMismatch,
    /// The plaintext is too large for the sealed format (2^32 segments).
    #[error("plaintext too large to seal")]
    TooLarge,
    /// An ed25519 signature did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// A signed object names a different key than the one given to verify it.
    #[error("signed by key {found}, expected key {expected}")]
    WrongKey { expected: String, found: String },
    /// A Merkle inclusion or consistency proof did not verify.
    #[error("invalid Merkle proof: {0}")]
    InvalidProof(&'static str),
    /// Arguments that cannot describe a proof, such as an index past the tree size.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A serialised object (wrapped key, checkpoint, signature) could not be parsed.
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
}

impl CryptoError {
    /// Converts to an `io::Error` for `Read`/`Write` adapters; [`From<io::Error>`]
    /// recovers the original variant.
    pub(crate) fn into_io(self) -> io::Error {
        match self {
            CryptoError::Io(err) => err,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Recovers a `CryptoError` that travelled through an `io::Error` (from
/// [`crate::envelope::Opener`]'s `Read` impl, say); any other I/O error becomes
/// [`CryptoError::Io`].
impl From<io::Error> for CryptoError {
    fn from(err: io::Error) -> Self {
        if err.get_ref().is_some_and(|inner| inner.is::<CryptoError>()) {
            let inner = err.into_inner().expect("checked above: this is a bug");
            match inner.downcast::<CryptoError>() {
                Ok(crypto) => *crypto,
                Err(other) => CryptoError::Io(io::Error::other(other)),
            }
        } else {
            CryptoError::Io(err)
        }
    }
}
