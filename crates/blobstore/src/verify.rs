//! A reader that hashes what passes through it and fails at the end on a mismatch.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::Digest;

/// Carried inside an `io::Error` so `Read` users see the failure where it happens.
#[derive(Debug, thiserror::Error)]
#[error("blob {expected} failed its integrity check (content hashes to {actual})")]
struct IntegrityFailure {
    expected: Digest,
    actual: Digest,
}

pub(crate) struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    expected: Digest,
    /// The mismatch once found, so every later read fails too.
    failed: Option<Digest>,
}

impl<R: Read> VerifyingReader<R> {
    pub(crate) fn new(inner: R, expected: Digest) -> Self {
        Self {
            inner,
            hasher: Some(Sha256::new()),
            expected,
            failed: None,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(actual) = &self.failed {
            return Err(self.failure(actual.clone()));
        }
        let n = self.inner.read(buf)?;
        match (n, &mut self.hasher) {
            (0, hasher @ Some(_)) if !buf.is_empty() => {
                let hasher = hasher.take().expect("matched Some: this is a bug");
                let actual = Digest::from_hasher(hasher);
                if actual != self.expected {
                    self.failed = Some(actual.clone());
                    return Err(self.failure(actual));
                }
                Ok(0)
            }
            (n, Some(hasher)) => {
                hasher.update(&buf[..n]);
                Ok(n)
            }
            // Reading past a verified end.
            (n, None) => Ok(n),
        }
    }
}

impl<R> VerifyingReader<R> {
    fn failure(&self, actual: Digest) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            IntegrityFailure {
                expected: self.expected.clone(),
                actual,
            },
        )
    }
}

/// The digests of an integrity failure wrapped in `error`, if it is one.
pub(crate) fn integrity_of(error: &io::Error) -> Option<(Digest, Digest)> {
    let failure = error.get_ref()?.downcast_ref::<IntegrityFailure>()?;
    Some((failure.expected.clone(), failure.actual.clone()))
}
