//! The filesystem backend: `ROOT/sha256/<hex[0..2]>/<hex>`, written through a temp file
//! in `ROOT/tmp` (same filesystem, so the final rename is atomic), fsynced file and
//! directory, so a crash never leaves a partial blob under its address.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::verify::VerifyingReader;
use crate::{BlobEntry, BlobError, BlobInfo, BlobStore, Digest};

/// Temp files older than this are leftovers of a crashed writer; younger ones may belong
/// to a writer in another process sharing the directory.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug)]
pub(crate) struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub(crate) fn open(root: &Path) -> Result<FsBlobStore, BlobError> {
        let store = FsBlobStore {
            root: root.to_owned(),
        };
        fs::create_dir_all(store.blobs_dir())?;
        fs::create_dir_all(store.temp_dir())?;
        store.remove_stale_temp_files();
        Ok(store)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn path_of(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir()
            .join(&digest.as_str()[..2])
            .join(digest.as_str())
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(self.temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| modified.elapsed().ok())
                .is_some_and(|age| age > STALE_TEMP_AGE);
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl BlobStore for FsBlobStore {
    fn put_reader(
        &self,
        reader: &mut dyn Read,
        max_bytes: Option<u64>,
    ) -> Result<BlobInfo, BlobError> {
        // The temp file is removed on every early return by its Drop.
        let mut temp = tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(self.temp_dir())?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buffer = vec![0u8; 256 * 1024];
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
            temp.write_all(&buffer[..n])?;
        }
        temp.as_file().sync_all()?;
        let digest = Digest::from_hasher(hasher);
        let path = self.path_of(&digest);
        if path.is_file() {
            // Refresh the time so garbage collection, which spares young blobs, does not
            // delete a blob that an import in progress is about to reference.
            File::options()
                .write(true)
                .open(&path)?
                .set_modified(SystemTime::now())?;
            return Ok(BlobInfo { digest, size });
        }
        let dir = path
            .parent()
            .expect("blob paths have a parent: this is a bug");
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            sync_dir(&self.blobs_dir())?;
        }
        temp.persist(&path).map_err(|e| BlobError::Io(e.error))?;
        sync_dir(dir)?;
        Ok(BlobInfo { digest, size })
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>, BlobError> {
        match File::open(self.path_of(digest)) {
            Ok(file) => Ok(Box::new(VerifyingReader::new(
                io::BufReader::with_capacity(256 * 1024, file),
                digest.clone(),
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(digest.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn exists(&self, digest: &Digest) -> Result<bool, BlobError> {
        Ok(self.path_of(digest).try_exists()?)
    }

    fn delete(&self, digest: &Digest) -> Result<bool, BlobError> {
        let path = self.path_of(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self) -> Result<Vec<BlobEntry>, BlobError> {
        let mut entries = Vec::new();
        for prefix in fs::read_dir(self.blobs_dir())? {
            let prefix = prefix?;
            if !prefix.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(prefix.path())? {
                let entry = entry?;
                // Anything that is not a well-formed address is not ours to report.
                let Some(digest) = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| Digest::parse(name).ok())
                else {
                    continue;
                };
                let metadata = entry.metadata()?;
                if !metadata.is_file() {
                    continue;
                }
                entries.push(BlobEntry {
                    digest,
                    size: metadata.len(),
                    modified: metadata.modified()?,
                });
            }
        }
        entries.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(entries)
    }
}

/// Makes a rename or a new entry in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
