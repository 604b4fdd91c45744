//! Uploaded training datasets: one row per (tenant, name) pointing at a content-addressed
//! blob, with the structure found when the upload was validated.

use sqlx::any::AnyRow;
use sqlx::Row;
use types::{ModelName, TenantName};

use crate::{constraint_error, parse_tenant, Caller, Store, StoreError};

/// One stored dataset. `columns` is JSON describing the columns and their widths.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DatasetRecord {
    pub id: i64,
    pub tenant: TenantName,
    pub name: ModelName,
    /// SHA-256 (hex) of the file as uploaded.
    pub digest: String,
    /// `jsonl` or `csv`.
    pub format: String,
    pub size: i64,
    pub n_rows: i64,
    pub columns: serde_json::Value,
    pub created_at: i64,
}

/// What [`Store::insert_dataset`] stores.
#[derive(Debug, Clone)]
pub struct NewDataset {
    pub tenant: TenantName,
    pub name: ModelName,
    pub digest: String,
    pub format: String,
    pub size: i64,
    pub n_rows: i64,
    pub columns: serde_json::Value,
}

const DATASET_SELECT: &str = "SELECT d.id, t.name AS tenant, d.name, d.digest, d.format, d.size, \
     d.n_rows, d.columns, d.created_at FROM datasets d JOIN tenants t ON t.id = d.tenant_id";

impl DatasetRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let name: String = row.try_get("name")?;
        let columns: String = row.try_get("columns")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant: parse_tenant(row.try_get("tenant")?)?,
            name: ModelName::try_from(name).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            digest: row.try_get("digest")?,
            format: row.try_get("format")?,
            size: row.try_get("size")?,
            n_rows: row.try_get("n_rows")?,
            columns: serde_json::from_str(&columns)
                .map_err(|e| StoreError::Corrupt(format!("dataset columns: {e}")))?,
            created_at: row.try_get("created_at")?,
        })
    }
}

impl Store {
    /// Stores a dataset row; a second dataset of the same name in the tenant conflicts.
    pub async fn insert_dataset(&self, new: NewDataset) -> Result<DatasetRecord, StoreError> {
        let now = types::unix_now();
        let columns = new.columns.to_string();
        let row = sqlx::query(
            "INSERT INTO datasets (tenant_id, name, digest, format, size, n_rows, columns, created_at) \
             SELECT t.id, $1, $2, $3, $4, $5, $6, $7 FROM tenants t WHERE t.name = $8 RETURNING id",
        )
        .bind(new.name.as_str())
        .bind(new.digest.as_str())
        .bind(new.format.as_str())
        .bind(new.size)
        .bind(new.n_rows)
        .bind(columns.as_str())
        .bind(now)
        .bind(new.tenant.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| {
            constraint_error(
                e,
                &format!("dataset '{}' already exists; delete it first or choose another name", new.name),
                "the tenant does not exist",
            )
        })?
        .ok_or_else(|| StoreError::NotFound(format!("tenant '{}'", new.tenant)))?;
        Ok(DatasetRecord {
            id: row.try_get("id")?,
            tenant: new.tenant,
            name: new.name,
            digest: new.digest,
            format: new.format,
            size: new.size,
            n_rows: new.n_rows,
            columns: new.columns,
            created_at: now,
        })
    }

    /// The datasets of the caller's tenant (every tenant's for admins), by name.
    pub async fn list_datasets(&self, caller: &Caller) -> Result<Vec<DatasetRecord>, StoreError> {
        let sql = format!("{DATASET_SELECT} WHERE t.name = $1 ORDER BY d.name");
        let rows = sqlx::query(&sql)
            .bind(caller.tenant.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(DatasetRecord::from_row).collect()
    }

    /// The dataset `name` of the caller's tenant; other tenants' datasets are `NotFound`.
    pub async fn find_dataset(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<DatasetRecord, StoreError> {
        let sql = format!("{DATASET_SELECT} WHERE t.name = $1 AND d.name = $2");
        let row = sqlx::query(&sql)
            .bind(caller.tenant.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(DatasetRecord::from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("dataset '{name}'")))
    }

    /// Points dataset `id` at new content (its rows rewritten, e.g. by erasure).
    pub async fn replace_dataset_content(
        &self,
        id: i64,
        digest: &str,
        size: i64,
        n_rows: i64,
        columns: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE datasets SET digest = $1, size = $2, n_rows = $3, columns = $4 WHERE id = $5",
        )
        .bind(digest)
        .bind(size)
        .bind(n_rows)
        .bind(columns.to_string())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether any dataset of `tenant` still has content `digest`.
    pub async fn dataset_digest_in_use(
        &self,
        tenant: &TenantName,
        digest: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM datasets d JOIN tenants t ON t.id = d.tenant_id \
             WHERE t.name = $1 AND d.digest = $2",
        )
        .bind(tenant.as_str())
        .bind(digest)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Deletes the dataset row; the blob stays for garbage collection.
    pub async fn delete_dataset(
        &self,
        caller: &Caller,
        name: &ModelName,
    ) -> Result<DatasetRecord, StoreError> {
        let record = self.find_dataset(caller, name).await?;
        sqlx::query("DELETE FROM datasets WHERE id = $1")
            .bind(record.id)
            .execute(&self.pool)
            .await?;
        Ok(record)
    }
}
