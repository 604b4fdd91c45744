//! Authentication of `Authorization: Bearer chr_…` keys into a [`Principal`].
//!
//! Deny by default: anything but an active, well-formed key whose secret matches the
//! stored hash is refused with the same error, so a caller learns nothing about which
//! part was wrong. Nothing of the presented key is ever logged.

use std::time::Duration;

use crypto::ApiKey;

use crate::ratelimit::{Charged, Limits};
use store::{ApiKeyRecord, Caller, Store};
use types::{Scope, Scopes, TenantName};

/// An authenticated caller: the tenant, the key and what the key may do.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantName,
    pub key_id: String,
    pub scopes: Scopes,
    /// The key's and the tenant's rate limits, read with the key.
    pub limits: Limits,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.scopes.is_admin()
    }

    pub fn grants(&self, scope: Scope) -> bool {
        self.scopes.grants(scope)
    }

    /// This caller as the rate limiter charges it.
    pub fn charged(&self) -> Charged<'_> {
        Charged {
            key_id: &self.key_id,
            tenant: &self.tenant,
            limits: self.limits,
        }
    }

    /// The store's view of this caller, for visibility rules.
    pub fn caller(&self) -> Caller {
        if self.is_admin() {
            Caller::admin()
        } else {
            Caller::tenant(self.tenant.clone())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send 'Authorization: Bearer <key>'")]
    Missing,
    #[error("invalid API key")]
    Invalid,
    #[error("the key store is unavailable")]
    Store(#[from] store::StoreError),
}

/// Authenticates the value of an `Authorization` header.
pub async fn authenticate(store: &Store, header: Option<&str>) -> Result<Principal, AuthError> {
    let key = parse_bearer(header)?;
    let record = store.key_by_id(&key.id).await?.ok_or(AuthError::Invalid)?;
    check(&key, record)
}

fn parse_bearer(header: Option<&str>) -> Result<ApiKey, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .ok_or(AuthError::Missing)?
        .trim();
    ApiKey::parse(token).map_err(|_| AuthError::Invalid)
}

fn check(key: &ApiKey, record: ApiKeyRecord) -> Result<Principal, AuthError> {
    // Always compare the hash, even for revoked keys, so timing does not reveal state.
    let matches = key.matches(&record.secret_hash);
    if !matches || !record.is_active(types::unix_now()) {
        return Err(AuthError::Invalid);
    }
    Ok(Principal {
        tenant: record.tenant,
        key_id: record.key_id,
        scopes: record.scopes,
        limits: Limits {
            key: record.limits,
            tenant: record.tenant_limits,
        },
    })
}

/// How long a verified key record is trusted without asking the database again.
///
/// A key revoked through this process stops working at once (the cache entry is
/// dropped); one revoked by another process sharing the database (a replica, the CLI)
/// stops working here within this long.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// Key records verified recently, by key id, so the hot path does not query the store
/// on every request. Only records of active keys are kept; the secret is still
/// checked against the stored hash on every request. Cheap to clone.
#[derive(Clone)]
pub struct KeyCache {
    records: types::TtlCache<String, ApiKeyRecord>,
}

impl Default for KeyCache {
    fn default() -> Self {
        Self {
            records: types::TtlCache::new(KEY_CACHE_TTL),
        }
    }
}

impl KeyCache {
    fn get(&self, key_id: &str) -> Option<ApiKeyRecord> {
        self.records.get(key_id)
    }

    fn put(&self, record: ApiKeyRecord) {
        self.records.put(record.key_id.clone(), record);
    }

    /// Forgets one key (it was revoked here).
    pub fn forget(&self, key_id: &str) {
        self.records.remove(key_id);
    }

    /// Forgets every key (a tenant and its keys were deleted here).
    pub fn clear(&self) {
        self.records.clear();
    }
}

/// [`authenticate`] through `cache`: a key verified less than [`KEY_CACHE_TTL`] ago is
/// checked against the cached record instead of the store.
pub async fn authenticate_cached(
    store: &Store,
    cache: &KeyCache,
    header: Option<&str>,
) -> Result<Principal, AuthError> {
    let key = parse_bearer(header)?;
    let record = match cache.get(&key.id) {
        Some(record) => record,
        None => {
            let record = store.key_by_id(&key.id).await?.ok_or(AuthError::Invalid)?;
            if record.is_active(types::unix_now()) {
                cache.put(record.clone());
            }
            record
        }
    };
    check(&key, record)
}

/// What a new key is for; privileges are checked by the caller of [`mint_key`].
#[derive(Debug, Clone)]
pub struct KeyRequest {
    pub tenant: TenantName,
    pub scopes: Scopes,
    pub description: String,
    pub expires_at: Option<i64>,
    pub limits: store::KeyLimits,
}

/// Mints a key, stores only its hash, and returns the record and the full key text,
/// which the caller shows once and never stores.
pub async fn mint_key(
    store: &Store,
    request: KeyRequest,
) -> Result<(store::ApiKeyRecord, crypto::Secret<String>), store::StoreError> {
    if request.scopes.is_admin() && request.tenant.as_str() != types::ADMIN_TENANT {
        return Err(store::StoreError::Forbidden(format!(
            "admin keys belong to the '{}' tenant; give tenant keys narrower scopes",
            types::ADMIN_TENANT
        )));
    }
    let (key, text) = ApiKey::generate();
    let record = store
        .create_key(store::NewApiKey {
            key_id: key.id.clone(),
            tenant: request.tenant,
            secret_hash: key.secret_hash(),
            scopes: request.scopes,
            description: request.description,
            expires_at: request.expires_at,
            limits: request.limits,
        })
        .await?;
    Ok((record, text))
}
