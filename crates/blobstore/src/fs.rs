//! The filesystem backend: `ROOT/tenants/<tenant>/sha256/<hex[0..2]>/<hex>`, written
//! through a temp file in `ROOT/tmp` (same filesystem, so the final rename is atomic),
//! fsynced file and directory, so a crash never leaves a partial blob under its address.
//!
//! This backend stores whatever bytes it is given and never sees plaintext: the only
//! caller is [`crate::BlobStore`], which hands it sealed blobs. It is private to the
//! crate so nothing else can write around the encryption.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;
use types::TenantName;

use crate::{BlobEntry, BlobError, Digest};

/// Temp files older than this are leftovers of a crashed writer; younger ones may belong
/// to a writer in another process sharing the directory.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug)]
pub(crate) struct FsBackend {
    root: PathBuf,
}

impl FsBackend {
    pub(crate) fn open(root: &Path) -> Result<FsBackend, BlobError> {
        let backend = FsBackend {
            root: root.to_owned(),
        };
        fs::create_dir_all(backend.tenants_dir())?;
        fs::create_dir_all(backend.temp_dir())?;
        backend.remove_stale_temp_files();
        Ok(backend)
    }

    fn tenants_dir(&self) -> PathBuf {
        self.root.join("tenants")
    }

    fn temp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `TenantName` is validated as a safe path component, `Digest` as 64 hex digits.
    fn tenant_dir(&self, tenant: &TenantName) -> PathBuf {
        self.tenants_dir().join(tenant.as_str())
    }

    fn path_of(&self, tenant: &TenantName, digest: &Digest) -> PathBuf {
        self.tenant_dir(tenant)
            .join("sha256")
            .join(&digest.as_str()[..2])
            .join(digest.as_str())
    }

    /// A new temp file for a blob being written; removed on drop unless committed.
    pub(crate) fn temp_file(&self) -> Result<NamedTempFile, BlobError> {
        Ok(tempfile::Builder::new()
            .prefix("put-")
            .tempfile_in(self.temp_dir())?)
    }

    /// Refreshes the modification time of an existing blob so garbage collection, which
    /// spares young blobs, does not delete a blob that an import in progress is about to
    /// reference. `false` when the blob does not exist.
    pub(crate) fn touch(&self, tenant: &TenantName, digest: &Digest) -> Result<bool, BlobError> {
        match File::options()
            .write(true)
            .open(self.path_of(tenant, digest))
        {
            Ok(file) => {
                file.set_modified(SystemTime::now())?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Publishes a fully written and synced temp file under its address.
    pub(crate) fn commit(
        &self,
        temp: NamedTempFile,
        tenant: &TenantName,
        digest: &Digest,
    ) -> Result<(), BlobError> {
        let path = self.path_of(tenant, digest);
        let dir = path
            .parent()
            .expect("blob paths have a parent: this is a bug");
        if !dir.is_dir() {
            fs::create_dir_all(dir)?;
            // Make every new level durable: tenants/<t>, sha256, the prefix.
            let mut level = dir;
            while let Some(parent) = level.parent() {
                sync_dir(parent)?;
                if parent == self.tenants_dir() {
                    break;
                }
                level = parent;
            }
        }
        temp.persist(&path).map_err(|e| BlobError::Io(e.error))?;
        sync_dir(dir)?;
        Ok(())
    }

    pub(crate) fn open_file(
        &self,
        tenant: &TenantName,
        digest: &Digest,
    ) -> Result<File, BlobError> {
        match File::open(self.path_of(tenant, digest)) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(BlobError::NotFound(digest.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn exists(&self, tenant: &TenantName, digest: &Digest) -> Result<bool, BlobError> {
        Ok(self.path_of(tenant, digest).try_exists()?)
    }

    pub(crate) fn delete(&self, tenant: &TenantName, digest: &Digest) -> Result<bool, BlobError> {
        let path = self.path_of(tenant, digest);
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

    /// Tenants that have a blob directory, by name; directories whose name is not a
    /// valid tenant name are not ours and are skipped.
    pub(crate) fn tenants(&self) -> Result<Vec<TenantName>, BlobError> {
        let mut tenants = Vec::new();
        for entry in fs::read_dir(self.tenants_dir())? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            if let Some(tenant) = entry
                .file_name()
                .to_str()
                .and_then(|name| TenantName::try_from(name).ok())
            {
                tenants.push(tenant);
            }
        }
        tenants.sort();
        Ok(tenants)
    }

    pub(crate) fn list(&self, tenant: &TenantName) -> Result<Vec<BlobEntry>, BlobError> {
        let blobs_dir = self.tenant_dir(tenant).join("sha256");
        let prefixes = match fs::read_dir(&blobs_dir) {
            Ok(prefixes) => prefixes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::new();
        for prefix in prefixes {
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
                    tenant: tenant.clone(),
                    digest,
                    size: metadata.len(),
                    modified: metadata.modified()?,
                });
            }
        }
        entries.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(entries)
    }

    /// Removes the tenant's directory if nothing is left in it but empty directories.
    pub(crate) fn remove_empty_tenant_dir(&self, tenant: &TenantName) -> Result<(), BlobError> {
        fn remove_empty(dir: &Path) -> io::Result<bool> {
            let mut empty = true;
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    empty &= remove_empty(&entry.path())?;
                } else {
                    empty = false;
                }
            }
            if empty {
                fs::remove_dir(dir)?;
            }
            Ok(empty)
        }
        let dir = self.tenant_dir(tenant);
        match remove_empty(&dir) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
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

/// Makes a rename or a new entry in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
