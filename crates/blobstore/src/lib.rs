//! Content-addressed blob storage: every blob is stored and found by the SHA-256 of its
//! content, written atomically and verified on every read.
//!
//! [`BlobStore`] is a synchronous trait: the filesystem backend does blocking I/O, and
//! async callers run it through `tokio::task::spawn_blocking` (the registry does). The
//! only way to get a store is [`open`], which returns `Arc<dyn BlobStore>`; backend types
//! stay private so a later wrapper (per-tenant envelope encryption) can be put in front of
//! every backend in one place. An S3 backend (`object_store`) becomes another
//! [`BlobConfig`] variant behind the same trait.

mod digest;
mod fs;
mod verify;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use digest::{Digest, DigestError};

/// Everything that can go wrong with blobs.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    /// The stored bytes no longer hash to their address: corruption or tampering.
    #[error("blob {expected} failed its integrity check (content hashes to {actual})")]
    Integrity { expected: Digest, actual: Digest },
    #[error("blob exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("unsupported blob store: {0}")]
    Unsupported(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
    #[error("blob store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl BlobError {
    /// Recovers an integrity failure that travelled through `io::Read` as an
    /// `io::Error`; other I/O errors stay I/O errors.
    pub fn from_read_error(error: std::io::Error) -> BlobError {
        match verify::integrity_of(&error) {
            Some((expected, actual)) => BlobError::Integrity { expected, actual },
            None => BlobError::Io(error),
        }
    }
}

/// The outcome of storing a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// One stored blob as listed for garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub digest: Digest,
    pub size: u64,
    /// When the blob was last written or re-put; garbage collection spares young blobs
    /// because an import may not have committed its manifest yet.
    pub modified: SystemTime,
}

/// A content-addressed store. All methods block; call them from `spawn_blocking` in
/// async code.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Stores everything `reader` yields and returns its digest. Refuses with
    /// `TooLarge` (storing nothing) past `max_bytes`. Putting content that already exists
    /// is cheap and refreshes its `modified` time.
    fn put_reader(
        &self,
        reader: &mut dyn Read,
        max_bytes: Option<u64>,
    ) -> Result<BlobInfo, BlobError>;

    /// A reader over the blob that fails with an integrity error (see
    /// [`BlobError::from_read_error`]) at the end if the content does not hash to
    /// `digest`. Consumers must not trust the bytes before the reader reported EOF.
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, BlobError>;

    fn exists(&self, digest: &Digest) -> Result<bool, BlobError>;

    /// Deletes a blob; `false` when it did not exist.
    fn delete(&self, digest: &Digest) -> Result<bool, BlobError>;

    /// Every stored blob, for garbage collection.
    fn list(&self) -> Result<Vec<BlobEntry>, BlobError>;

    /// Stores the file at `path`.
    fn put_file(&self, path: &Path, max_bytes: Option<u64>) -> Result<BlobInfo, BlobError> {
        let mut file = std::fs::File::open(path)?;
        self.put_reader(&mut file, max_bytes)
    }

    fn put_bytes(&self, bytes: &[u8]) -> Result<BlobInfo, BlobError> {
        self.put_reader(&mut &bytes[..], None)
    }

    /// The whole verified blob in memory; `TooLarge` past `max_bytes`.
    fn get(&self, digest: &Digest, max_bytes: Option<u64>) -> Result<Vec<u8>, BlobError> {
        let mut reader = self.open(digest)?;
        let mut bytes = Vec::new();
        match max_bytes {
            Some(limit) => {
                reader
                    .by_ref()
                    .take(limit.saturating_add(1))
                    .read_to_end(&mut bytes)
                    .map_err(BlobError::from_read_error)?;
                if bytes.len() as u64 > limit {
                    return Err(BlobError::TooLarge { limit });
                }
            }
            None => {
                reader
                    .read_to_end(&mut bytes)
                    .map_err(BlobError::from_read_error)?;
            }
        }
        Ok(bytes)
    }

    /// Copies the verified blob into `writer` and returns its size. On an integrity
    /// error the writer has already received the bad bytes: write to a temp file and
    /// rename only on success.
    fn copy_to(&self, digest: &Digest, writer: &mut dyn Write) -> Result<u64, BlobError> {
        let mut reader = self.open(digest)?;
        std::io::copy(&mut reader, writer).map_err(BlobError::from_read_error)
    }
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// A local directory, laid out as `sha256/<first two hex digits>/<digest>`.
    Filesystem { root: PathBuf },
}

impl BlobConfig {
    /// A directory path, or `file://PATH`. `s3://…` is recognised and refused until the
    /// S3 backend exists.
    pub fn from_url(url: &str) -> Result<BlobConfig, BlobError> {
        if url.starts_with("s3://") {
            return Err(BlobError::Unsupported(
                "the S3 blob backend is not available yet".into(),
            ));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(BlobError::Unsupported(format!("blob url '{url}'")));
        }
        Ok(BlobConfig::Filesystem { root: path.into() })
    }
}

/// Opens the configured store, creating its directories when needed. This is the one
/// public constructor: backends are not nameable outside this crate.
pub fn open(config: &BlobConfig) -> Result<Arc<dyn BlobStore>, BlobError> {
    match config {
        BlobConfig::Filesystem { root } => Ok(Arc::new(fs::FsBlobStore::open(root)?)),
    }
}
