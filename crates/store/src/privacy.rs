//! Privacy records: each tenant's PII policies and payload retention, the pseudonym
//! vault, and stored request payloads.
//!
//! This module stores what it is given: vault mappings and payloads arrive sealed under
//! the tenant's data key and data subjects as keyed tags (both done by
//! `governance::privacy`), so the database holds neither personal data nor subject ids.
//! Reads never return expired rows, whether or not they were purged yet. Erasure and
//! purging delete rows and then checkpoint SQLite's WAL (see
//! [`Store::flush_erased_pages`]), with `secure_delete` zeroing the freed pages.

use sqlx::any::AnyRow;
use sqlx::Row;
use types::TenantName;

use crate::{constraint_error, Store, StoreError};

/// A tenant's privacy settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacySettingsRecord {
    /// JSON of the tenant's `governance::pii::PolicySet`.
    pub policies: serde_json::Value,
    /// How long request payloads are kept; `None`: they are not stored.
    pub retention_secs: Option<i64>,
    /// How long pseudonym mappings stay revealable.
    pub vault_ttl_secs: i64,
    pub updated_at: i64,
}

/// A sealed pseudonym mapping to store.
#[derive(Debug, Clone)]
pub struct NewVaultEntry {
    pub id: String,
    pub tenant: TenantName,
    pub subject_tag: Option<String>,
    pub sealed: Vec<u8>,
    pub expires_at: i64,
}

/// One live vault entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultRecord {
    pub id: String,
    pub tenant: TenantName,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A sealed request/response payload to store.
#[derive(Debug, Clone)]
pub struct NewPayload {
    pub tenant: TenantName,
    pub request_id: String,
    /// The route template that answered, e.g. `/v1/embeddings`.
    pub route: String,
    pub subject_tag: Option<String>,
    pub sealed: Vec<u8>,
    pub expires_at: i64,
}

/// One live stored payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadRecord {
    pub id: i64,
    pub request_id: String,
    pub route: String,
    pub sealed: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Rows deleted by a purge or an erasure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub payloads: u64,
    pub vault_entries: u64,
}

const TENANT_ID: &str = "(SELECT id FROM tenants WHERE name = $1)";

impl Store {
    /// The tenant's stored settings; `None` when it never set any (defaults apply).
    pub async fn privacy_settings(
        &self,
        tenant: &TenantName,
    ) -> Result<Option<PrivacySettingsRecord>, StoreError> {
        let sql = format!(
            "SELECT policies, retention_secs, vault_ttl_secs, updated_at FROM privacy_settings \
             WHERE tenant_id = {TENANT_ID}"
        );
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let policies: String = row.try_get("policies")?;
        Ok(Some(PrivacySettingsRecord {
            policies: serde_json::from_str(&policies)
                .map_err(|e| StoreError::Corrupt(format!("privacy policies: {e}")))?,
            retention_secs: row.try_get("retention_secs")?,
            vault_ttl_secs: row.try_get("vault_ttl_secs")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// Creates or replaces the tenant's settings; `NotFound` for an unknown tenant.
    pub async fn put_privacy_settings(
        &self,
        tenant: &TenantName,
        policies: &serde_json::Value,
        retention_secs: Option<i64>,
        vault_ttl_secs: i64,
    ) -> Result<PrivacySettingsRecord, StoreError> {
        let now = types::unix_now();
        let result = sqlx::query(
            "INSERT INTO privacy_settings (tenant_id, policies, retention_secs, vault_ttl_secs, updated_at) \
             SELECT t.id, $2, $3, $4, $5 FROM tenants t WHERE t.name = $1 \
             ON CONFLICT (tenant_id) DO UPDATE SET policies = excluded.policies, \
             retention_secs = excluded.retention_secs, vault_ttl_secs = excluded.vault_ttl_secs, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant.as_str())
        .bind(policies.to_string())
        .bind(retention_secs)
        .bind(vault_ttl_secs)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant '{tenant}'")));
        }
        Ok(PrivacySettingsRecord {
            policies: policies.clone(),
            retention_secs,
            vault_ttl_secs,
            updated_at: now,
        })
    }

    pub async fn insert_vault_entry(&self, entry: NewVaultEntry) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO pii_vault (id, tenant_id, subject_tag, sealed, created_at, expires_at) \
             VALUES ($2, {TENANT_ID}, $3, $4, $5, $6)"
        );
        sqlx::query(&sql)
            .bind(entry.tenant.as_str())
            .bind(entry.id.as_str())
            .bind(entry.subject_tag.as_deref())
            .bind(entry.sealed.as_slice())
            .bind(types::unix_now())
            .bind(entry.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| constraint_error(e, "vault entry id", "the tenant does not exist"))?;
        Ok(())
    }

    /// The tenant's vault entry `id` unless it expired by `now`; other tenants' entries
    /// are `None` as well.
    pub async fn vault_entry(
        &self,
        tenant: &TenantName,
        id: &str,
        now: i64,
    ) -> Result<Option<VaultRecord>, StoreError> {
        let sql = format!(
            "SELECT id, sealed, created_at, expires_at FROM pii_vault \
             WHERE tenant_id = {TENANT_ID} AND id = $2 AND expires_at > $3"
        );
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(VaultRecord {
                id: row.try_get("id")?,
                tenant: tenant.clone(),
                sealed: row.try_get("sealed")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn insert_payload(&self, payload: NewPayload) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO stored_payloads (tenant_id, request_id, route, subject_tag, sealed, created_at, expires_at) \
             VALUES ({TENANT_ID}, $2, $3, $4, $5, $6, $7)"
        );
        sqlx::query(&sql)
            .bind(payload.tenant.as_str())
            .bind(payload.request_id.as_str())
            .bind(payload.route.as_str())
            .bind(payload.subject_tag.as_deref())
            .bind(payload.sealed.as_slice())
            .bind(types::unix_now())
            .bind(payload.expires_at)
            .execute(&self.pool)
            .await
            .map_err(|e| constraint_error(e, "payload", "the tenant does not exist"))?;
        Ok(())
    }

    /// The tenant's payloads that have not expired by `now`, oldest first.
    pub async fn list_payloads(
        &self,
        tenant: &TenantName,
        now: i64,
    ) -> Result<Vec<PayloadRecord>, StoreError> {
        let sql = format!(
            "SELECT id, request_id, route, sealed, created_at, expires_at FROM stored_payloads \
             WHERE tenant_id = {TENANT_ID} AND expires_at > $2 ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(payload_from_row).collect()
    }

    /// Deletes every vault entry and payload that expired by `now`, in all tenants.
    pub async fn purge_expired(&self, now: i64) -> Result<Erased, StoreError> {
        let mut tx = self.pool.begin().await?;
        let vault = sqlx::query("DELETE FROM pii_vault WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let payloads = sqlx::query("DELETE FROM stored_payloads WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let erased = Erased {
            payloads: payloads.rows_affected(),
            vault_entries: vault.rows_affected(),
        };
        if erased != Erased::default() {
            self.flush_erased_pages().await;
        }
        Ok(erased)
    }

    /// Deletes the tenant's vault entries and payloads tagged with `subject_tag`.
    pub async fn erase_subject_records(
        &self,
        tenant: &TenantName,
        subject_tag: &str,
    ) -> Result<Erased, StoreError> {
        let mut tx = self.pool.begin().await?;
        let vault = sqlx::query(&format!(
            "DELETE FROM pii_vault WHERE tenant_id = {TENANT_ID} AND subject_tag = $2"
        ))
        .bind(tenant.as_str())
        .bind(subject_tag)
        .execute(&mut *tx)
        .await?;
        let payloads = sqlx::query(&format!(
            "DELETE FROM stored_payloads WHERE tenant_id = {TENANT_ID} AND subject_tag = $2"
        ))
        .bind(tenant.as_str())
        .bind(subject_tag)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.flush_erased_pages().await;
        Ok(Erased {
            payloads: payloads.rows_affected(),
            vault_entries: vault.rows_affected(),
        })
    }
}

fn payload_from_row(row: &AnyRow) -> Result<PayloadRecord, StoreError> {
    Ok(PayloadRecord {
        id: row.try_get("id")?,
        request_id: row.try_get("request_id")?,
        route: row.try_get("route")?,
        sealed: row.try_get("sealed")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}
