//! Opens the store, blob store and registry that every subcommand works on.

use anyhow::Context;
use registry::Registry;
use store::Store;

use crate::config::StorageConfig;

pub struct Services {
    pub store: Store,
    pub registry: Registry,
}

impl Services {
    pub async fn open(storage: &StorageConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&storage.data_dir)
            .with_context(|| format!("cannot create data dir {}", storage.data_dir.display()))?;
        let store = Store::connect(&storage.database_url)
            .await
            .context("cannot open the database")?;
        let blobs = blobstore::open(&blobstore::BlobConfig::Filesystem {
            root: storage.blob_dir(),
        })
        .context("cannot open the blob store")?;
        let registry = Registry::new(store.clone(), blobs).with_scratch_dir(storage.scratch_dir());
        Ok(Self { store, registry })
    }
}
