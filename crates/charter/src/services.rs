//! Opens the store, the master keyring, the encrypting blob store and the registry that
//! every subcommand works on.

use std::collections::BTreeSet;

use anyhow::Context;
use crypto::envelope::{MasterKey, MasterKeyring};
use registry::Registry;
use store::Store;

use crate::config::{MasterKeySource, StorageConfig};

pub struct Services {
    pub store: Store,
    pub registry: Registry,
}

impl Services {
    /// Opens everything, creating the master key file (mode 0600) on first start.
    pub async fn open(storage: &StorageConfig) -> anyhow::Result<Self> {
        Self::open_with(storage, store::DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`Services::open`], waiting at most `acquire_timeout` for a database connection
    /// (see `Store::connect_with`).
    pub async fn open_with(
        storage: &StorageConfig,
        acquire_timeout: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let store = open_store(storage, acquire_timeout).await?;
        let keyring = load_keyring(storage, &store).await?;
        Self::with_keyring(storage, store, keyring)
    }

    /// Opens the blob store and registry with a keyring the caller built (master key
    /// rotation), on a store it opened.
    pub fn with_keyring(
        storage: &StorageConfig,
        store: Store,
        keyring: MasterKeyring,
    ) -> anyhow::Result<Self> {
        let blobs = blobstore::open(
            &blobstore::BlobConfig::Filesystem {
                root: storage.blob_dir(),
            },
            keyring,
        )
        .context("cannot open the blob store")?;
        let registry = Registry::new(store.clone(), blobs).with_scratch_dir(storage.scratch_dir());
        Ok(Self { store, registry })
    }
}

pub async fn open_store(
    storage: &StorageConfig,
    acquire_timeout: std::time::Duration,
) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&storage.data_dir)
        .with_context(|| format!("cannot create data dir {}", storage.data_dir.display()))?;
    Store::connect_with(&storage.database_url, acquire_timeout)
        .await
        .context("cannot open the database")
}

/// The configured keyring. A missing key file is generated only while the database
/// holds no data keys: otherwise a lost key file would silently be replaced by a new key
/// under which nothing opens. Every master key version that stored data keys name must
/// be present.
pub async fn load_keyring(storage: &StorageConfig, store: &Store) -> anyhow::Result<MasterKeyring> {
    let needed: BTreeSet<u32> = store
        .live_data_keys()
        .await?
        .iter()
        .map(|record| record.master_version)
        .collect();
    let (keyring, source) = match &storage.master_key {
        MasterKeySource::Env(text) => (
            MasterKeySource::parse_env(text.expose())?,
            "CHARTER_MASTER_KEY".to_owned(),
        ),
        MasterKeySource::File(path) => {
            let source = format!("master key file {}", path.display());
            match MasterKeySource::load_files(path)? {
                Some(keyring) => (keyring, source),
                None if needed.is_empty() => {
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::create_dir_all(parent)?;
                    }
                    let key = MasterKey::load_or_generate_file(1, path)
                        .with_context(|| format!("cannot create {source}"))?;
                    tracing::info!(file = %path.display(), fingerprint = %key.fingerprint(), "created a new master key; back it up apart from the data");
                    (MasterKeyring::new(key), source)
                }
                None => anyhow::bail!(
                    "{source} is missing but the database holds data keys wrapped by master \
                     key version(s) {needed:?}; restore the key file (no new key was created)"
                ),
            }
        }
    };
    let held: BTreeSet<u32> = keyring.versions().collect();
    let missing: Vec<u32> = needed.difference(&held).copied().collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "the database holds data keys wrapped by master key version(s) {missing:?}, \
             which {source} does not provide"
        );
    }
    Ok(keyring)
}
