//! A reader over a sealed blob that reports authentication failures as a typed
//! integrity error carrying the blob's digest.

use std::io::{self, Read};

use crypto::CryptoError;

use crate::Digest;

/// Carried inside an `io::Error` so `Read` users see the failure where it happens.
#[derive(Debug, thiserror::Error)]
#[error("blob {digest} failed its integrity check")]
struct IntegrityFailure {
    digest: Digest,
}

/// Maps the opener's errors: an authentication failure (altered, truncated, extended,
/// moved to another tenant, or under another key) becomes [`IntegrityFailure`]; plain
/// I/O errors stay what they are.
pub(crate) struct SealedReader<R> {
    inner: R,
    digest: Digest,
}

impl<R: Read> SealedReader<R> {
    pub(crate) fn new(inner: R, digest: Digest) -> Self {
        Self { inner, digest }
    }
}

impl<R: Read> Read for SealedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|error| match CryptoError::from(error) {
                CryptoError::Io(error) => error,
                _ => integrity_error(&self.digest),
            })
    }
}

pub(crate) fn integrity_error(digest: &Digest) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        IntegrityFailure {
            digest: digest.clone(),
        },
    )
}

/// The digest of an integrity failure wrapped in `error`, if it is one.
pub(crate) fn integrity_of(error: &io::Error) -> Option<Digest> {
    let failure = error.get_ref()?.downcast_ref::<IntegrityFailure>()?;
    Some(failure.digest.clone())
}
