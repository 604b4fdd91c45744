//! Tenants: the unit of isolation; every other record belongs to exactly one.

use sqlx::any::AnyRow;
use sqlx::Row;
use types::TenantName;

use crate::{constraint_error, get_bool, parse_tenant, KeyLimits, Store, StoreError};

/// One tenant. The built-in `admin` tenant exists from the first migration on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantRecord {
    pub id: i64,
    pub name: TenantName,
    /// Whether the tenant uses models commercially; licence checks read this.
    pub commercial: bool,
    pub created_at: i64,
    /// Rate limits shared by all of the tenant's keys together.
    pub limits: KeyLimits,
}

impl TenantRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get("id")?,
            name: parse_tenant(row.try_get("name")?)?,
            commercial: get_bool(row, "commercial")?,
            created_at: row.try_get("created_at")?,
            limits: KeyLimits::from_row(row, "limit_")?,
        })
    }
}

const COLUMNS: &str = "id, name, commercial, created_at, limit_rpm, limit_tpm, limit_tpd";

impl Store {
    /// Creates a tenant; `Conflict` when the name is taken.
    pub async fn create_tenant(
        &self,
        name: &TenantName,
        commercial: bool,
    ) -> Result<TenantRecord, StoreError> {
        let sql = format!(
            "INSERT INTO tenants (name, commercial, created_at) VALUES ($1, $2, $3) \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(name.as_str())
            .bind(commercial)
            .bind(types::unix_now())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| {
                constraint_error(e, &format!("tenant '{name}' already exists"), "tenant")
            })?;
        TenantRecord::from_row(&row)
    }

    /// All tenants, by name.
    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants ORDER BY name");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(TenantRecord::from_row).collect()
    }

    /// The tenant called `name`, if any.
    pub async fn tenant_by_name(
        &self,
        name: &TenantName,
    ) -> Result<Option<TenantRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM tenants WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(TenantRecord::from_row).transpose()
    }

    /// Replaces the tenant's rate limits (`None` removes a limit); `NotFound` when there
    /// is no such tenant.
    pub async fn set_tenant_limits(
        &self,
        name: &TenantName,
        limits: KeyLimits,
    ) -> Result<TenantRecord, StoreError> {
        let sql = format!(
            "UPDATE tenants SET limit_rpm = $1, limit_tpm = $2, limit_tpd = $3 \
             WHERE name = $4 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(limits.rpm)
            .bind(limits.tpm)
            .bind(limits.tpd)
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(TenantRecord::from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("tenant '{name}'")))
    }

    /// Deletes an empty tenant and destroys its data key in the same transaction
    /// (crypto-shredding: its blobs become unreadable, backups included). The admin
    /// tenant cannot be deleted, and a tenant that still owns models or keys is refused
    /// with `Conflict` rather than cascading, so no data disappears by accident.
    pub async fn delete_tenant(&self, name: &TenantName) -> Result<(), StoreError> {
        if name.as_str() == types::ADMIN_TENANT {
            return Err(StoreError::Forbidden(
                "the admin tenant cannot be deleted".into(),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let result = sqlx::query("DELETE FROM tenants WHERE name = $1")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| {
                constraint_error(
                    e,
                    "tenant",
                    &format!("tenant '{name}' still owns models or keys; delete them first"),
                )
            })?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("tenant '{name}'")));
        }
        crate::data_keys::destroy_data_key_in(&mut *tx, name).await?;
        tx.commit().await?;
        self.flush_erased_pages().await;
        Ok(())
    }
}
