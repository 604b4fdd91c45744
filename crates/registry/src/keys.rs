//! Tenant data keys: fetched from the store (wrapped), unwrapped by the blob store's
//! master keyring, created on a tenant's first blob, and cached unwrapped in memory.
//!
//! Every lookup still asks the database which key is live (one indexed row), so a key
//! destroyed through any path (`Store::delete_tenant` from the HTTP API, the CLI, or
//! another replica) stops working at once: the cache only saves the unwrap, and it is
//! keyed by the key's row id, never trusted on the tenant name alone. Cached keys are
//! zeroized when evicted or dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use blobstore::{BlobStore, TenantKey};
use crypto::envelope::WrappedKey;
use store::{DataKeyRecord, Store};
use types::TenantName;

use crate::RegistryError;

/// What [`crate::Registry::rewrap_data_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Keys rewrapped under the active master key.
    pub rewrapped: usize,
    /// Keys that were already wrapped by it.
    pub already_current: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct TenantKeys {
    store: Store,
    blobs: Arc<BlobStore>,
    cache: Arc<Mutex<HashMap<TenantName, (i64, TenantKey)>>>,
}

impl TenantKeys {
    pub(crate) fn new(store: Store, blobs: Arc<BlobStore>) -> Self {
        Self {
            store,
            blobs,
            cache: Arc::default(),
        }
    }

    /// The live key of `tenant`, created on first use. A tenant that does not exist
    /// (or was deleted, its key shredded) is `NotFound`: no new key is made for it.
    pub(crate) async fn get(&self, tenant: &TenantName) -> Result<TenantKey, RegistryError> {
        let record = match self.store.live_data_key(tenant).await? {
            Some(record) => record,
            None => {
                // A shredded key must not live on in memory.
                self.evict(tenant);
                return self.create(tenant).await;
            }
        };
        if let Some(key) = self.cached(tenant, record.id) {
            return Ok(key);
        }
        self.unwrap_and_cache(&record)
    }

    pub(crate) async fn rewrap_all(&self) -> Result<RotationReport, RegistryError> {
        let mut report = RotationReport::default();
        for record in self.store.live_data_keys().await? {
            let wrapped = parse_wrapped(&record)?;
            if wrapped.is_current(self.blobs.keyring()) {
                report.already_current += 1;
                continue;
            }
            let rewrapped = self.blobs.rewrap_data_key(&record.tenant, &wrapped)?;
            if self
                .store
                .rewrap_data_key(record.id, &rewrapped.to_bytes(), rewrapped.master_version())
                .await?
            {
                report.rewrapped += 1;
            }
        }
        Ok(report)
    }

    async fn create(&self, tenant: &TenantName) -> Result<TenantKey, RegistryError> {
        if self.store.tenant_by_name(tenant).await?.is_none() {
            return Err(RegistryError::NotFound(format!("tenant '{tenant}'")));
        }
        let (key, wrapped) = self.blobs.new_data_key(tenant);
        let bytes = wrapped.to_bytes();
        let record = self
            .store
            .insert_data_key(tenant, &bytes, wrapped.master_version())
            .await?;
        if record.wrapped != bytes {
            // Another writer created the tenant's key first: use theirs.
            return self.unwrap_and_cache(&record);
        }
        tracing::info!(%tenant, master_version = record.master_version, "data key created");
        self.cache_insert(tenant, record.id, key.clone());
        Ok(key)
    }

    fn unwrap_and_cache(&self, record: &DataKeyRecord) -> Result<TenantKey, RegistryError> {
        let wrapped = parse_wrapped(record)?;
        let key = self.blobs.unwrap_data_key(&record.tenant, &wrapped)?;
        self.cache_insert(&record.tenant, record.id, key.clone());
        Ok(key)
    }

    fn cached(&self, tenant: &TenantName, id: i64) -> Option<TenantKey> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(tenant) {
            Some((cached_id, key)) if *cached_id == id => Some(key.clone()),
            Some(_) => {
                // The cached key was destroyed and replaced: forget it now.
                cache.remove(tenant);
                None
            }
            None => None,
        }
    }

    fn evict(&self, tenant: &TenantName) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(tenant);
    }

    fn cache_insert(&self, tenant: &TenantName, id: i64, key: TenantKey) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(tenant.clone(), (id, key));
    }
}

fn parse_wrapped(record: &DataKeyRecord) -> Result<WrappedKey, RegistryError> {
    WrappedKey::from_bytes(&record.wrapped)
        .map_err(|_| RegistryError::Corrupt(format!("the data key of tenant '{}'", record.tenant)))
}
