//! Signed model versions, the publisher keys each tenant trusts, and the tenant flags
//! that decide what a tenant may be served (commercial use, signed models only).

use sqlx::any::AnyRow;
use sqlx::Row;
use types::TenantName;

use crate::{get_bool, parse_tenant, Store, StoreError};

/// One publisher signature over a version's manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRecord {
    pub model_id: i64,
    pub version: i64,
    /// The signer's key id (see `crypto::signing::VerifyingKey::key_id`).
    pub key_id: String,
    /// The signer's public key, SPKI PEM.
    pub public_key: String,
    /// The manifest digest the statement covers, for listing without parsing.
    pub manifest_sha256: String,
    /// The signed statement (`crypto::signing::SignedStatement`) as JSON.
    pub statement: String,
    pub signed_at: i64,
}

/// A publisher key a tenant trusts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustedKeyRecord {
    pub tenant: TenantName,
    pub key_id: String,
    /// SPKI PEM.
    pub public_key: String,
    pub added_at: i64,
}

/// What a tenant's requests are checked against before a model serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServingPolicy {
    /// The tenant uses models commercially.
    pub commercial: bool,
    /// Only versions signed by a key the tenant trusts may serve it.
    pub require_signed_models: bool,
}

impl SignatureRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            model_id: row.try_get("model_id")?,
            version: row.try_get("version")?,
            key_id: row.try_get("key_id")?,
            public_key: row.try_get("public_key")?,
            manifest_sha256: row.try_get("manifest_sha256")?,
            statement: row.try_get("statement")?,
            signed_at: row.try_get("signed_at")?,
        })
    }
}

impl TrustedKeyRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: parse_tenant(row.try_get("tenant")?)?,
            key_id: row.try_get("key_id")?,
            public_key: row.try_get("public_key")?,
            added_at: row.try_get("added_at")?,
        })
    }
}

impl Store {
    /// Stores a signature; a later signature by the same key over the same version
    /// replaces the earlier one.
    pub async fn put_signature(&self, record: &SignatureRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO model_signatures (model_id, version, key_id, public_key, \
             manifest_sha256, statement, signed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (model_id, version, key_id) DO UPDATE SET \
             public_key = excluded.public_key, manifest_sha256 = excluded.manifest_sha256, \
             statement = excluded.statement, signed_at = excluded.signed_at",
        )
        .bind(record.model_id)
        .bind(record.version)
        .bind(record.key_id.as_str())
        .bind(record.public_key.as_str())
        .bind(record.manifest_sha256.as_str())
        .bind(record.statement.as_str())
        .bind(record.signed_at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            crate::constraint_error(e, "signature", "the version to sign does not exist")
        })?;
        Ok(())
    }

    /// The signatures of one version, by key id.
    pub async fn signatures(
        &self,
        model_id: i64,
        version: i64,
    ) -> Result<Vec<SignatureRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT model_id, version, key_id, public_key, manifest_sha256, statement, signed_at \
             FROM model_signatures WHERE model_id = $1 AND version = $2 ORDER BY key_id",
        )
        .bind(model_id)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(SignatureRecord::from_row).collect()
    }

    /// Adds (or replaces) a publisher key `tenant` trusts.
    pub async fn trust_key(
        &self,
        tenant: &TenantName,
        key_id: &str,
        public_key: &str,
    ) -> Result<TrustedKeyRecord, StoreError> {
        let now = types::unix_now();
        let result = sqlx::query(
            "INSERT INTO tenant_trusted_keys (tenant_id, key_id, public_key, added_at) \
             SELECT id, $1, $2, $3 FROM tenants WHERE name = $4 \
             ON CONFLICT (tenant_id, key_id) DO UPDATE SET public_key = excluded.public_key",
        )
        .bind(key_id)
        .bind(public_key)
        .bind(now)
        .bind(tenant.as_str())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant '{tenant}'")));
        }
        Ok(TrustedKeyRecord {
            tenant: tenant.clone(),
            key_id: key_id.to_owned(),
            public_key: public_key.to_owned(),
            added_at: now,
        })
    }

    /// Removes a trusted key; `NotFound` when `tenant` does not trust it.
    pub async fn distrust_key(&self, tenant: &TenantName, key_id: &str) -> Result<(), StoreError> {
        let result = sqlx::query(
            "DELETE FROM tenant_trusted_keys WHERE key_id = $1 \
             AND tenant_id = (SELECT id FROM tenants WHERE name = $2)",
        )
        .bind(key_id)
        .bind(tenant.as_str())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "trusted key '{key_id}' of tenant '{tenant}'"
            )));
        }
        Ok(())
    }

    /// The publisher keys `tenant` trusts, by key id.
    pub async fn trusted_keys(
        &self,
        tenant: &TenantName,
    ) -> Result<Vec<TrustedKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.name AS tenant, k.key_id, k.public_key, k.added_at \
             FROM tenant_trusted_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE t.name = $1 ORDER BY k.key_id",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TrustedKeyRecord::from_row).collect()
    }

    /// Turns "signed models only" on or off for `tenant`.
    pub async fn set_require_signed_models(
        &self,
        tenant: &TenantName,
        required: bool,
    ) -> Result<(), StoreError> {
        self.set_tenant_flag(tenant, "require_signed_models", required)
            .await
    }

    /// Marks `tenant` as using models commercially, or not.
    pub async fn set_commercial(
        &self,
        tenant: &TenantName,
        commercial: bool,
    ) -> Result<(), StoreError> {
        self.set_tenant_flag(tenant, "commercial", commercial).await
    }

    async fn set_tenant_flag(
        &self,
        tenant: &TenantName,
        column: &'static str,
        value: bool,
    ) -> Result<(), StoreError> {
        let sql = format!("UPDATE tenants SET {column} = $1 WHERE name = $2");
        let result = sqlx::query(&sql)
            .bind(value)
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant '{tenant}'")));
        }
        Ok(())
    }

    /// What `tenant`'s requests are checked against; `NotFound` for an unknown tenant.
    pub async fn serving_policy(&self, tenant: &TenantName) -> Result<ServingPolicy, StoreError> {
        let row =
            sqlx::query("SELECT commercial, require_signed_models FROM tenants WHERE name = $1")
                .bind(tenant.as_str())
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("tenant '{tenant}'")))?;
        Ok(ServingPolicy {
            commercial: get_bool(&row, "commercial")?,
            require_signed_models: get_bool(&row, "require_signed_models")?,
        })
    }
}
