//! API keys: a public id, the hash of the secret (never the secret), scopes and limits.

use sqlx::any::AnyRow;
use sqlx::Row;
use types::{Scopes, TenantName};

use crate::{constraint_error, parse_tenant, Caller, Store, StoreError};

/// Optional rate limits of a key or of a tenant; `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KeyLimits {
    /// Requests per minute.
    pub rpm: Option<i64>,
    /// Tokens per minute.
    pub tpm: Option<i64>,
    /// Tokens per day.
    pub tpd: Option<i64>,
}

impl KeyLimits {
    /// True when no limit of any kind is set.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.tpd.is_none()
    }

    /// Reads `{prefix}rpm`, `{prefix}tpm` and `{prefix}tpd`.
    pub(crate) fn from_row(row: &AnyRow, prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            rpm: row.try_get(format!("{prefix}rpm").as_str())?,
            tpm: row.try_get(format!("{prefix}tpm").as_str())?,
            tpd: row.try_get(format!("{prefix}tpd").as_str())?,
        })
    }
}

/// What [`Store::create_key`] needs; the caller generates the id and hashes the secret.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub key_id: String,
    pub tenant: TenantName,
    pub secret_hash: Vec<u8>,
    pub scopes: Scopes,
    pub description: String,
    pub expires_at: Option<i64>,
    pub limits: KeyLimits,
}

/// One stored key. `secret_hash` is deliberately not serialized.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyRecord {
    pub key_id: String,
    pub tenant: TenantName,
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    pub scopes: Scopes,
    pub description: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub limits: KeyLimits,
    /// The limits of the key's tenant, read in the same query so authentication needs
    /// one round trip.
    pub tenant_limits: KeyLimits,
}

impl ApiKeyRecord {
    /// True when the key may be used at `now` (not revoked, not expired).
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| now < at)
    }

    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let scopes: String = row.try_get("scopes")?;
        Ok(Self {
            key_id: row.try_get("key_id")?,
            tenant: parse_tenant(row.try_get("tenant")?)?,
            secret_hash: row.try_get("secret_hash")?,
            scopes: Scopes::parse_list(&scopes).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            description: row.try_get("description")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
            expires_at: row.try_get("expires_at")?,
            limits: KeyLimits::from_row(row, "limit_")?,
            tenant_limits: KeyLimits::from_row(row, "tenant_limit_")?,
        })
    }
}

const SELECT: &str = "SELECT k.key_id, t.name AS tenant, k.secret_hash, k.scopes, k.description, \
     k.created_at, k.revoked_at, k.expires_at, k.limit_rpm, k.limit_tpm, k.limit_tpd, \
     t.limit_rpm AS tenant_limit_rpm, t.limit_tpm AS tenant_limit_tpm, \
     t.limit_tpd AS tenant_limit_tpd \
     FROM api_keys k JOIN tenants t ON t.id = k.tenant_id";

impl Store {
    /// Stores a new key. `NotFound` when the tenant does not exist, `Conflict` when the
    /// key id is taken.
    pub async fn create_key(&self, key: NewApiKey) -> Result<ApiKeyRecord, StoreError> {
        let result = sqlx::query(
            "INSERT INTO api_keys (key_id, tenant_id, secret_hash, scopes, description, \
             created_at, expires_at, limit_rpm, limit_tpm, limit_tpd) \
             SELECT $1, t.id, $2, $3, $4, $5, $6, $7, $8, $9 FROM tenants t WHERE t.name = $10",
        )
        .bind(key.key_id.as_str())
        .bind(key.secret_hash.as_slice())
        .bind(key.scopes.to_list())
        .bind(key.description.as_str())
        .bind(types::unix_now())
        .bind(key.expires_at)
        .bind(key.limits.rpm)
        .bind(key.limits.tpm)
        .bind(key.limits.tpd)
        .bind(key.tenant.as_str())
        .execute(&self.pool)
        .await
        .map_err(|e| constraint_error(e, "an API key with this id already exists", "tenant"))?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant '{}'", key.tenant)));
        }
        self.key_by_id(&key.key_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("API key '{}'", key.key_id)))
    }

    /// The keys `caller` may see: its tenant's, or every key for an admin. Revoked keys
    /// are included (with `revoked_at` set).
    pub async fn list_keys(&self, caller: &Caller) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let sql =
            format!("{SELECT} WHERE $1 OR t.name = $2 ORDER BY t.name, k.created_at, k.key_id");
        let rows = sqlx::query(&sql)
            .bind(caller.is_admin)
            .bind(caller.tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ApiKeyRecord::from_row).collect()
    }

    /// The key with this public id, whatever its tenant or state: authentication uses
    /// this, then checks the secret hash and [`ApiKeyRecord::is_active`].
    pub async fn key_by_id(&self, key_id: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE k.key_id = $1");
        let row = sqlx::query(&sql)
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ApiKeyRecord::from_row).transpose()
    }

    /// Revokes a key `caller` may see; revoking twice keeps the first time. Another
    /// tenant's key is `NotFound`.
    pub async fn revoke_key(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<ApiKeyRecord, StoreError> {
        let not_found = || StoreError::NotFound(format!("API key '{key_id}'"));
        let key = self.key_by_id(key_id).await?.ok_or_else(not_found)?;
        if !caller.may_write(&key.tenant) {
            return Err(not_found());
        }
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL")
            .bind(types::unix_now())
            .bind(key_id)
            .execute(&self.pool)
            .await?;
        self.key_by_id(key_id).await?.ok_or_else(not_found)
    }
}
