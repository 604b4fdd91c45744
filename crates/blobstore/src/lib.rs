//! Encrypted, content-addressed, tenant-scoped blob storage.
//!
//! Every blob belongs to a tenant and is stored sealed: AES-256-GCM in the segmented
//! format of [`crypto::envelope`], under a key derived from the tenant's data key, and
//! bound to the tenant and to the SHA-256 of its plaintext. The plaintext digest stays
//! the blob's address (`tenants/<tenant>/sha256/<hex[0..2]>/<hex>`), so manifests keep
//! verifying; a blob that was altered, truncated, extended, or copied into another
//! tenant's directory fails to open with [`BlobError::Integrity`], never as garbage.
//!
//! [`BlobStore`] is the only public store type and [`open`] its only constructor: the
//! backend that writes bytes to disk is private to this crate, so nothing can store a
//! blob without sealing it. Data keys enter as [`crypto::envelope::WrappedKey`]s (the
//! caller keeps them, in the database) and are unwrapped here with the master keyring
//! given to [`open`]; a [`TenantKey`] is the unwrapped, zeroized-on-drop result that
//! every read and write needs.
//!
//! All methods block: async callers run them through `tokio::task::spawn_blocking` (the
//! registry does). An S3 backend becomes another [`BlobConfig`] variant behind the same
//! type.

mod digest;
mod fs;
mod spool;
mod verify;

use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crypto::envelope::{BlobContext, DataKey, MasterKeyring, Opener, Sealer, WrappedKey};
use crypto::CryptoError;
use sha2::{Digest as _, Sha256};
use types::TenantName;

pub use digest::{Digest, DigestError};

const IO_BUFFER_BYTES: usize = 256 * 1024;

/// Everything that can go wrong with blobs.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    /// The stored blob failed authentication: corruption, tampering, truncation, a blob
    /// moved from another tenant, or a key that is not the one it was sealed under.
    #[error("blob {digest} failed its integrity check")]
    Integrity { digest: Digest },
    #[error("blob exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The source changed between hashing it and sealing it; nothing was stored.
    #[error("the content changed while it was being stored")]
    ContentChanged,
    /// A wrapped data key that cannot be unwrapped: altered, another tenant's, or under
    /// a master key version the keyring does not hold.
    #[error("cannot unwrap the data key of tenant '{tenant}': {source}")]
    DataKey {
        tenant: TenantName,
        #[source]
        source: CryptoError,
    },
    #[error("unsupported blob store: {0}")]
    Unsupported(String),
    #[error(transparent)]
    InvalidDigest(#[from] DigestError),
    #[error("blob store I/O error: {0}")]
    Io(#[from] io::Error),
}

impl BlobError {
    /// Recovers an integrity failure that travelled through `io::Read` as an
    /// `io::Error`; other I/O errors stay I/O errors.
    pub fn from_read_error(error: io::Error) -> BlobError {
        match verify::integrity_of(&error) {
            Some(digest) => BlobError::Integrity { digest },
            None => BlobError::Io(error),
        }
    }
}

/// The outcome of storing a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    /// Plaintext size in bytes.
    pub size: u64,
}

/// One stored blob as listed for garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobEntry {
    pub tenant: TenantName,
    pub digest: Digest,
    /// Bytes on disk (sealed size).
    pub size: u64,
    /// When the blob was last written or re-put; garbage collection spares young blobs
    /// because an import may not have committed its manifest yet.
    pub modified: SystemTime,
}

/// A tenant's unwrapped data key, as every read and write needs it. Only this crate
/// makes one (from a [`WrappedKey`] and the master keyring); the key bytes are zeroized
/// when the last clone is dropped and never printed.
#[derive(Clone)]
pub struct TenantKey {
    tenant: TenantName,
    key: DataKey,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("tenant", &self.tenant)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl TenantKey {
    pub fn tenant(&self) -> &TenantName {
        &self.tenant
    }

    /// Seals a small value for a database column, bound to this key's tenant and to
    /// `context` (see [`crypto::envelope::seal_record`]).
    pub fn seal_record(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        crypto::envelope::seal_record(&self.key, self.tenant.as_str(), context, plaintext)
    }

    /// Opens a value sealed by [`TenantKey::seal_record`] with the same context; a
    /// value that was altered or moved fails with [`CryptoError::Integrity`].
    pub fn open_record(
        &self,
        context: &str,
        sealed: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, CryptoError> {
        crypto::envelope::open_record(&self.key, self.tenant.as_str(), context, sealed)
    }

    /// A keyed, one-way tag of `value` (lowercase hex), to find rows by a value that
    /// must not be stored, such as a data subject id.
    pub fn keyed_tag(&self, label: &str, value: &[u8]) -> String {
        hex::encode(crypto::envelope::keyed_tag(&self.key, label, value))
    }
}

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// A local directory, laid out as `tenants/<tenant>/sha256/<hex[0..2]>/<digest>`.
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

/// Opens the configured store, creating its directories when needed, sealing under data
/// keys wrapped by `keyring`. This is the one public constructor: the backend that
/// writes bytes is not nameable outside this crate, so every blob is sealed.
pub fn open(config: &BlobConfig, keyring: MasterKeyring) -> Result<Arc<BlobStore>, BlobError> {
    let backend = match config {
        BlobConfig::Filesystem { root } => fs::FsBackend::open(root)?,
    };
    Ok(Arc::new(BlobStore { backend, keyring }))
}

/// The encrypting, tenant-scoped blob store. See the crate documentation.
#[derive(Debug)]
pub struct BlobStore {
    backend: fs::FsBackend,
    keyring: MasterKeyring,
}

impl BlobStore {
    /// The master keyring data keys are wrapped with.
    pub fn keyring(&self) -> &MasterKeyring {
        &self.keyring
    }

    /// A fresh data key for `tenant` and its wrapped form (under the active master key)
    /// for the caller to store. Use the key only once the wrapped form is stored.
    pub fn new_data_key(&self, tenant: &TenantName) -> (TenantKey, WrappedKey) {
        let key = DataKey::generate();
        let wrapped = key.wrap(&self.keyring, tenant.as_str());
        (
            TenantKey {
                tenant: tenant.clone(),
                key,
            },
            wrapped,
        )
    }

    /// Unwraps a stored data key of `tenant`.
    pub fn unwrap_data_key(
        &self,
        tenant: &TenantName,
        wrapped: &WrappedKey,
    ) -> Result<TenantKey, BlobError> {
        let key = DataKey::unwrap(&self.keyring, tenant.as_str(), wrapped).map_err(|source| {
            BlobError::DataKey {
                tenant: tenant.clone(),
                source,
            }
        })?;
        Ok(TenantKey {
            tenant: tenant.clone(),
            key,
        })
    }

    /// Re-encrypts a stored data key under the active master key (master rotation);
    /// blobs are untouched.
    pub fn rewrap_data_key(
        &self,
        tenant: &TenantName,
        wrapped: &WrappedKey,
    ) -> Result<WrappedKey, BlobError> {
        crypto::envelope::rewrap(&self.keyring, tenant.as_str(), wrapped).map_err(|source| {
            BlobError::DataKey {
                tenant: tenant.clone(),
                source,
            }
        })
    }

    /// Stores everything `reader` yields from its current position, sealed for the key's
    /// tenant, and returns the plaintext digest and size. The source is read twice (hash,
    /// then seal), so it must not change meanwhile: if it does, `ContentChanged` and
    /// nothing is stored. Refuses with `TooLarge` (storing nothing) past `max_bytes`.
    /// Putting content the tenant already has is cheap and refreshes its `modified`
    /// time. Plaintext never touches the disk.
    pub fn put_reader<R: Read + Seek + ?Sized>(
        &self,
        key: &TenantKey,
        reader: &mut R,
        max_bytes: Option<u64>,
    ) -> Result<BlobInfo, BlobError> {
        let start = reader.stream_position()?;
        let (digest, size) = hash_reader(reader, max_bytes)?;
        if self.backend.touch(&key.tenant, &digest)? {
            return Ok(BlobInfo { digest, size });
        }
        reader.seek(SeekFrom::Start(start))?;
        let context = context_of(&key.tenant, &digest);
        // The temp file is removed on every early return by its Drop.
        let mut temp = self.backend.temp_file()?;
        {
            let writer = BufWriter::with_capacity(IO_BUFFER_BYTES, temp.as_file_mut());
            let mut sealer = Sealer::new(&key.key, &context, writer).map_err(crypto_io)?;
            let copied = io::copy(&mut reader.take(size), &mut sealer)?;
            if copied != size {
                return Err(BlobError::ContentChanged);
            }
            let writer = sealer.finish().map_err(|error| match error {
                CryptoError::DigestMismatch => BlobError::ContentChanged,
                other => BlobError::Io(crypto_io(other)),
            })?;
            writer.into_inner().map_err(|e| e.into_error())?;
        }
        temp.as_file().sync_all()?;
        self.backend.commit(temp, &key.tenant, &digest)?;
        Ok(BlobInfo { digest, size })
    }

    /// Stores a stream that cannot be re-read (an upload body), sealed for the key's
    /// tenant. The digest must be known before sealing, so the stream is first spooled
    /// to a temp file encrypted under a throwaway in-memory AES-256-GCM key (counter
    /// nonces), then sealed from there: plaintext never touches the disk. Refuses with
    /// `TooLarge` (storing nothing) past `max_bytes`.
    pub fn put_stream(
        &self,
        key: &TenantKey,
        reader: &mut dyn Read,
        max_bytes: Option<u64>,
    ) -> Result<BlobInfo, BlobError> {
        let mut spool = spool::Spool::new(self.backend.temp_file()?);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut chunk = zeroize::Zeroizing::new(vec![0u8; spool::CHUNK_BYTES]);
        loop {
            let n = read_full(reader, &mut chunk)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if let Some(limit) = max_bytes {
                if size > limit {
                    return Err(BlobError::TooLarge { limit });
                }
            }
            hasher.update(&chunk[..n]);
            spool.write_chunk(&chunk[..n])?;
        }
        let digest = Digest::from_hasher(hasher);
        if self.backend.touch(&key.tenant, &digest)? {
            return Ok(BlobInfo { digest, size });
        }
        let mut plaintext = spool.into_reader()?;
        self.put_reader(key, &mut plaintext, Some(size))
            .and_then(|info| {
                if info.digest == digest {
                    Ok(info)
                } else {
                    Err(BlobError::ContentChanged)
                }
            })
    }

    /// Stores the file at `path`.
    pub fn put_file(
        &self,
        key: &TenantKey,
        path: &Path,
        max_bytes: Option<u64>,
    ) -> Result<BlobInfo, BlobError> {
        let mut file = std::fs::File::open(path)?;
        self.put_reader(key, &mut file, max_bytes)
    }

    pub fn put_bytes(&self, key: &TenantKey, bytes: &[u8]) -> Result<BlobInfo, BlobError> {
        self.put_reader(key, &mut io::Cursor::new(bytes), None)
    }

    /// A reader over the decrypted blob. It yields plaintext one authenticated 64 KiB
    /// segment at a time and fails with an integrity error (see
    /// [`BlobError::from_read_error`]) at the first bad segment; the last segment is
    /// released only once the whole blob hashed to `digest`. Consumers must not trust
    /// the bytes before the reader reported EOF.
    pub fn open(
        &self,
        key: &TenantKey,
        digest: &Digest,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        let file = self.backend.open_file(&key.tenant, digest)?;
        let context = context_of(&key.tenant, digest);
        let reader = BufReader::with_capacity(IO_BUFFER_BYTES, file);
        let opener = Opener::new(&key.key, &context, reader).map_err(|error| match error {
            CryptoError::Io(error) => BlobError::Io(error),
            _ => BlobError::Integrity {
                digest: digest.clone(),
            },
        })?;
        Ok(Box::new(verify::SealedReader::new(opener, digest.clone())))
    }

    /// The whole verified blob in memory; `TooLarge` past `max_bytes`.
    pub fn get(
        &self,
        key: &TenantKey,
        digest: &Digest,
        max_bytes: Option<u64>,
    ) -> Result<Vec<u8>, BlobError> {
        let mut reader = self.open(key, digest)?;
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
    /// error the writer has already received a verified prefix: write to a temp file
    /// and rename only on success.
    pub fn copy_to(
        &self,
        key: &TenantKey,
        digest: &Digest,
        writer: &mut dyn Write,
    ) -> Result<u64, BlobError> {
        let mut reader = self.open(key, digest)?;
        io::copy(&mut reader, writer).map_err(BlobError::from_read_error)
    }

    pub fn exists(&self, tenant: &TenantName, digest: &Digest) -> Result<bool, BlobError> {
        self.backend.exists(tenant, digest)
    }

    /// Deletes a blob; `false` when it did not exist. Needs no key: deleting is how
    /// the blobs of a shredded tenant are reclaimed.
    pub fn delete(&self, tenant: &TenantName, digest: &Digest) -> Result<bool, BlobError> {
        self.backend.delete(tenant, digest)
    }

    /// Every stored blob of `tenant`, for garbage collection.
    pub fn list(&self, tenant: &TenantName) -> Result<Vec<BlobEntry>, BlobError> {
        self.backend.list(tenant)
    }

    /// Every stored blob of every tenant.
    pub fn list_all(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let mut entries = Vec::new();
        for tenant in self.backend.tenants()? {
            entries.extend(self.backend.list(&tenant)?);
        }
        Ok(entries)
    }

    /// Tenants that have stored blobs (or had, and their directory is not yet removed).
    pub fn tenants(&self) -> Result<Vec<TenantName>, BlobError> {
        self.backend.tenants()
    }

    /// Removes the tenant's directory once garbage collection emptied it.
    pub fn remove_empty_tenant(&self, tenant: &TenantName) -> Result<(), BlobError> {
        self.backend.remove_empty_tenant_dir(tenant)
    }
}

fn context_of(tenant: &TenantName, digest: &Digest) -> BlobContext {
    BlobContext::from_hex_digest(tenant.as_str(), digest.as_str())
        .expect("a Digest is 64 hex digits: this is a bug")
}

/// Hashes what `reader` yields, refusing past `max_bytes`.
fn hash_reader<R: Read + ?Sized>(
    reader: &mut R,
    max_bytes: Option<u64>,
) -> Result<(Digest, u64), BlobError> {
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buffer = vec![0u8; IO_BUFFER_BYTES];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        size += n as u64;
        if let Some(limit) = max_bytes {
            if size > limit {
                return Err(BlobError::TooLarge { limit });
            }
        }
        hasher.update(&buffer[..n]);
    }
    Ok((Digest::from_hasher(hasher), size))
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn crypto_io(error: CryptoError) -> io::Error {
    match error {
        CryptoError::Io(error) => error,
        other => io::Error::other(other),
    }
}
