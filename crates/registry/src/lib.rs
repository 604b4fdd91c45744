//! The model registry: imports Hugging Face layout folders safely, numbers immutable
//! versions per model, enforces tenant visibility, and hands verified files to the
//! engine.
//!
//! An import is checked completely before anything becomes visible: every file is
//! recognised by content (pickles and zip checkpoints are refused, never unpickled), every
//! safetensors header is parsed with bounds checks, `config.json` must parse. Then the
//! files go to the blob store (content-addressed, idempotent), and only then the version
//! row with its manifest is committed in one transaction. A crash before the commit leaves
//! unreferenced blobs that [`Registry::gc`] removes; it never leaves a partial version.
//!
//! Every blob is sealed under the data key of the tenant that owns the version (see
//! [`keys`]): imports, checkouts and file reads fetch that key first, and garbage
//! collection works tenant by tenant.
//!
//! Blob I/O is blocking and runs on `spawn_blocking`; the methods here are async.

pub mod cards;
mod error;
pub mod keys;
mod safetensors_check;
mod scan;
pub mod signing;
mod unpack;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use blobstore::{BlobError, BlobStore, Digest};
use types::{ModelName, ModelRef, TenantName};

pub use blobstore::TenantKey;
pub use cards::{LicenseDenied, VersionLineage};
pub use error::{ImportError, RegistryError};
pub use keys::RotationReport;
pub use signing::{manifest_digest, SignatureError, SignatureStatus};
pub use store::{Caller, Manifest, ManifestFile, ModelCard, ModelRecord, VersionRecord};

use store::{NewVersion, Store};

/// What to import and under which name; the card describes the model.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub name: ModelName,
    pub tenant: TenantName,
    /// Visible (read-only) to every tenant.
    pub shared: bool,
    /// Card fields that are `Some` replace the model's; `None` keeps what it has.
    pub card: ModelCard,
}

impl ImportRequest {
    /// A private model without card fields.
    pub fn new(name: ModelName, tenant: TenantName) -> ImportRequest {
        ImportRequest {
            name,
            tenant,
            shared: false,
            card: ModelCard::default(),
        }
    }
}

/// What [`Registry::remove`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// `NAME`: the model with every version.
    Model(ModelRecord),
    /// `NAME:VERSION`: one version.
    Version(VersionRecord),
}

/// What [`Registry::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deleted: Vec<(TenantName, Digest)>,
    pub freed_bytes: u64,
    /// Unreferenced blobs spared because they are younger than the grace period.
    pub spared_young: usize,
}

/// Models and versions on top of the store and the blob store; cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
    blobs: Arc<BlobStore>,
    keys: keys::TenantKeys,
    scratch_dir: Option<PathBuf>,
}

impl Registry {
    pub fn new(store: Store, blobs: Arc<BlobStore>) -> Registry {
        Registry {
            keys: keys::TenantKeys::new(store.clone(), blobs.clone()),
            store,
            blobs,
            scratch_dir: None,
        }
    }

    /// Where uploads are unpacked before import (default: the system temp dir). Put it on
    /// the data volume when uploads are large.
    pub fn with_scratch_dir(mut self, dir: PathBuf) -> Registry {
        self.scratch_dir = Some(dir);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn blobs(&self) -> &Arc<BlobStore> {
        &self.blobs
    }

    /// The data key of `tenant`, created (and stored wrapped) on first use. Other blob
    /// users (datasets, checkpoints, payloads) take their key from here too.
    pub async fn tenant_key(&self, tenant: &TenantName) -> Result<TenantKey, RegistryError> {
        self.keys.get(tenant).await
    }

    /// Rewraps every live data key under the blob store's active master key; blobs
    /// are untouched (`charter keys rotate-master`).
    pub async fn rewrap_data_keys(&self) -> Result<RotationReport, RegistryError> {
        self.keys.rewrap_all().await
    }

    /// Imports the model folder `dir` as the next version of `request.name` in
    /// `request.tenant` (the model is created on first import).
    pub async fn import_dir(
        &self,
        dir: &Path,
        request: ImportRequest,
    ) -> Result<VersionRecord, RegistryError> {
        // Checked first so a typo in the tenant or the card does not cost a full import.
        cards::validate_card(&request.card)?;
        if self.store.tenant_by_name(&request.tenant).await?.is_none() {
            return Err(RegistryError::NotFound(format!(
                "tenant '{}'",
                request.tenant
            )));
        }
        let key = self.keys.get(&request.tenant).await?;
        let blobs = self.blobs.clone();
        let dir = dir.to_owned();
        let manifest = blocking(move || store_folder(&blobs, &key, &dir)).await?;
        let version = self
            .store
            .insert_version(NewVersion {
                tenant: request.tenant,
                name: request.name,
                shared: request.shared,
                card: request.card,
                manifest,
            })
            .await?;
        tracing::info!(
            tenant = %version.tenant,
            model = %version.model,
            version = version.version,
            n_files = version.manifest.files.len(),
            total_size = version.total_size,
            "model version imported"
        );
        Ok(version)
    }

    /// Imports a tar stream (an upload) of a model folder: unpacked into a private temp
    /// dir with every path checked, at most `max_bytes` read, then [`import_dir`]. The
    /// archive may hold the folder's files at its root or inside one top-level directory.
    /// The reader is consumed on a blocking thread; for an async body, bridge it (for
    /// example `tokio_util::io::SyncIoBridge`) or spool it to a file first.
    ///
    /// [`import_dir`]: Registry::import_dir
    pub async fn import_tar<R: Read + Send + 'static>(
        &self,
        reader: R,
        request: ImportRequest,
        max_bytes: u64,
    ) -> Result<VersionRecord, RegistryError> {
        let scratch = self.scratch_dir.clone();
        let unpacked = blocking(move || {
            let mut builder = tempfile::Builder::new();
            builder.prefix("charter-upload-");
            let temp = match &scratch {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    builder.tempdir_in(dir)?
                }
                None => builder.tempdir()?,
            };
            unpack::unpack(reader, temp.path(), max_bytes)?;
            Ok(temp)
        })
        .await?;
        let root = unpack::model_root(unpacked.path())?;
        let result = self.import_dir(&root, request).await;
        // The temp dir goes now, whatever the outcome; its files are in the blob store.
        drop(unpacked);
        result
    }

    /// The models `caller` may see.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<ModelRecord>, RegistryError> {
        Ok(self.store.list_models(caller).await?)
    }

    /// The model `name` as `caller` sees it (its own tenant's first, else the one visible
    /// shared model of that name).
    pub async fn model(
        &self,
        name: &ModelName,
        caller: &Caller,
    ) -> Result<ModelRecord, RegistryError> {
        Ok(self.store.find_model(caller, name).await?)
    }

    /// The model and the version `model_ref` names (the latest without a version).
    /// Another tenant's private model is `NotFound`.
    pub async fn show(
        &self,
        model_ref: &ModelRef,
        caller: &Caller,
    ) -> Result<(ModelRecord, VersionRecord), RegistryError> {
        Ok(self.store.resolve(caller, model_ref).await?)
    }

    /// Every version of the model, oldest first.
    pub async fn versions(
        &self,
        name: &ModelName,
        caller: &Caller,
    ) -> Result<Vec<VersionRecord>, RegistryError> {
        Ok(self.store.list_versions(caller, name).await?)
    }

    /// `NAME` removes the model with every version, `NAME:VERSION` one version. Blobs
    /// stay until [`Registry::gc`], since other versions may share them.
    pub async fn remove(
        &self,
        model_ref: &ModelRef,
        caller: &Caller,
    ) -> Result<Removed, RegistryError> {
        Ok(match model_ref.version {
            Some(version) => Removed::Version(
                self.store
                    .delete_version(caller, &model_ref.name, version)
                    .await?,
            ),
            None => Removed::Model(self.store.delete_model(caller, &model_ref.name).await?),
        })
    }

    /// Writes every file of `version` under `dest` (created when missing), verifying each
    /// digest; a file appears under its name only once verified. For the engine to load
    /// from.
    pub async fn checkout(
        &self,
        version: &VersionRecord,
        dest: &Path,
    ) -> Result<(), RegistryError> {
        let key = self.keys.get(&version.tenant).await?;
        let blobs = self.blobs.clone();
        let manifest = version.manifest.clone();
        let dest = dest.to_owned();
        blocking(move || checkout_files(&blobs, &key, &manifest, &dest)).await
    }

    /// The verified content of one file of `version`, e.g. `config.json`.
    pub async fn file_bytes(
        &self,
        version: &VersionRecord,
        path: &str,
    ) -> Result<Vec<u8>, RegistryError> {
        let file = version
            .manifest
            .file(path)
            .ok_or_else(|| {
                RegistryError::NotFound(format!(
                    "file '{path}' in model '{}:{}'",
                    version.model, version.version
                ))
            })?
            .clone();
        let digest = parse_digest(&file.sha256)?;
        let key = self.keys.get(&version.tenant).await?;
        let blobs = self.blobs.clone();
        blocking(move || Ok(blobs.get(&key, &digest, Some(file.size))?)).await
    }

    /// Deletes blobs that no version of their tenant references and that are older than
    /// `grace`, tenant by tenant. The blobs of a deleted (shredded) tenant are all
    /// unreferenced and go too. The grace period must exceed the longest import: an
    /// import stores (or refreshes) its blobs before it commits the version that
    /// references them.
    pub async fn gc(&self, grace: Duration) -> Result<GcReport, RegistryError> {
        let blobs = self.blobs.clone();
        let tenants = blocking(move || Ok(blobs.tenants()?)).await?;
        let mut report = GcReport::default();
        for tenant in tenants {
            // Referenced digests are read before the blobs are listed, so a version
            // committed in between references blobs that were stored or refreshed
            // recently: young.
            let referenced = self.store.referenced_digests_of(&tenant).await?;
            let blobs = self.blobs.clone();
            let tenant_report = blocking(move || {
                let mut report = GcReport::default();
                let now = SystemTime::now();
                for entry in blobs.list(&tenant)? {
                    if referenced.contains(entry.digest.as_str()) {
                        continue;
                    }
                    let age = now.duration_since(entry.modified).unwrap_or_default();
                    if age < grace {
                        report.spared_young += 1;
                        continue;
                    }
                    if blobs.delete(&tenant, &entry.digest)? {
                        report.freed_bytes += entry.size;
                        report.deleted.push((tenant.clone(), entry.digest));
                    }
                }
                if report.spared_young == 0 && referenced.is_empty() {
                    blobs.remove_empty_tenant(&tenant)?;
                }
                Ok(report)
            })
            .await?;
            report.deleted.extend(tenant_report.deleted);
            report.freed_bytes += tenant_report.freed_bytes;
            report.spared_young += tenant_report.spared_young;
        }
        Ok(report)
    }
}

/// Scans and validates the folder, then stores every file; returns the manifest.
fn store_folder(blobs: &BlobStore, key: &TenantKey, dir: &Path) -> Result<Manifest, RegistryError> {
    let files = scan::walk(dir)?;
    scan::validate(&files)?;
    let mut manifest = Manifest::default();
    for file in &files {
        let mut handle = scan::open_same(file)?;
        // A file that grows between validation and storing is caught by the cap; one that
        // changes in place keeps its size, but the stored digest is of what was stored.
        let info = blobs
            .put_reader(key, &mut handle, Some(file.size))
            .map_err(|error| match error {
                BlobError::ContentChanged => RegistryError::from(ImportError::FileChanged {
                    path: file.relative.clone(),
                }),
                other => other.into(),
            })?;
        if info.size != file.size {
            return Err(ImportError::FileChanged {
                path: file.relative.clone(),
            }
            .into());
        }
        manifest.files.push(ManifestFile {
            path: file.relative.clone(),
            size: info.size,
            sha256: info.digest.to_string(),
        });
    }
    Ok(manifest)
}

fn checkout_files(
    blobs: &BlobStore,
    key: &TenantKey,
    manifest: &Manifest,
    dest: &Path,
) -> Result<(), RegistryError> {
    std::fs::create_dir_all(dest)?;
    for file in &manifest.files {
        // The manifest comes from the database: check it as untrusted input.
        let relative = scan::safe_relative_path(Path::new(&file.path))?;
        let digest = parse_digest(&file.sha256)?;
        let target = dest.join(&relative);
        let parent = target
            .parent()
            .expect("a joined relative path has a parent: this is a bug");
        std::fs::create_dir_all(parent)?;
        let mut temp = tempfile::Builder::new()
            .prefix(".checkout-")
            .tempfile_in(parent)?;
        let size = blobs.copy_to(key, &digest, temp.as_file_mut())?;
        if size != file.size {
            return Err(RegistryError::Corrupt(format!(
                "'{relative}' has {size} bytes but the manifest says {}",
                file.size
            )));
        }
        temp.persist(&target)
            .map_err(|e| RegistryError::Io(e.error))?;
    }
    Ok(())
}

fn parse_digest(text: &str) -> Result<Digest, RegistryError> {
    Digest::parse(text).map_err(|e| RegistryError::Blob(e.into()))
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        RegistryError::Io(std::io::Error::other(format!("blocking task failed: {e}")))
    })?
}
