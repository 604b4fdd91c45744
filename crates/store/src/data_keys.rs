//! Per-tenant data keys, stored wrapped by a master key (the blob store unwraps them).
//!
//! At most one live key per tenant (a partial unique index). Destroying a key sets
//! `destroyed_at` and erases the wrapped bytes: that crypto-shreds every blob sealed
//! under it, including copies in backups of the blob directory. The row stays as the
//! record that the key existed and when it was destroyed.

use sqlx::any::AnyRow;
use sqlx::{Executor, Row};
use types::TenantName;

use crate::{parse_tenant, Backend, Store, StoreError};

/// One live data key in its wrapped form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub id: i64,
    pub tenant: TenantName,
    /// `crypto::envelope::WrappedKey::to_bytes`.
    pub wrapped: Vec<u8>,
    pub master_version: u32,
    pub created_at: i64,
}

impl DataKeyRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let version: i64 = row.try_get("master_version")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant: parse_tenant(row.try_get("tenant")?)?,
            wrapped: row.try_get("wrapped")?,
            master_version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt(format!("master key version {version}")))?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str = "id, tenant, wrapped, master_version, created_at";

impl Store {
    /// The tenant's live data key, if it has one.
    pub async fn live_data_key(
        &self,
        tenant: &TenantName,
    ) -> Result<Option<DataKeyRecord>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM data_keys WHERE tenant = $1 AND destroyed_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(DataKeyRecord::from_row).transpose()
    }

    /// Stores a new live key for the tenant. When another writer stored one first (two
    /// first uses racing), that key is returned instead and `wrapped` is dropped, so a
    /// tenant never ends up with blobs under two keys.
    pub async fn insert_data_key(
        &self,
        tenant: &TenantName,
        wrapped: &[u8],
        master_version: u32,
    ) -> Result<DataKeyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO data_keys (tenant, wrapped, master_version, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        );
        let inserted = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(wrapped)
            .bind(i64::from(master_version))
            .bind(types::unix_now())
            .fetch_one(&self.pool)
            .await;
        match inserted {
            Ok(row) => DataKeyRecord::from_row(&row),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => self
                .live_data_key(tenant)
                .await?
                .ok_or_else(|| StoreError::Conflict(format!("data key of tenant '{tenant}'"))),
            Err(other) => Err(other.into()),
        }
    }

    /// Every live data key, for master key rotation.
    pub async fn live_data_keys(&self) -> Result<Vec<DataKeyRecord>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM data_keys WHERE destroyed_at IS NULL ORDER BY tenant");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(DataKeyRecord::from_row).collect()
    }

    /// Replaces the wrapped bytes of live key `id` (rewrapped under another master key
    /// version). `false` when the key was destroyed meanwhile.
    pub async fn rewrap_data_key(
        &self,
        id: i64,
        wrapped: &[u8],
        master_version: u32,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE data_keys SET wrapped = $1, master_version = $2 \
             WHERE id = $3 AND destroyed_at IS NULL",
        )
        .bind(wrapped)
        .bind(i64::from(master_version))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Destroys the tenant's live data key (crypto-shredding); `false` when it had none.
    /// [`Store::delete_tenant`] calls this in its transaction.
    pub async fn destroy_data_key(&self, tenant: &TenantName) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let destroyed = destroy_data_key_in(&mut *conn, tenant).await?;
        drop(conn);
        self.flush_erased_pages().await;
        Ok(destroyed)
    }

    /// On SQLite, moves the WAL (which still holds the page images from before an
    /// erasure) into the database file and truncates it, so erased bytes do not linger
    /// in `charter.db-wal`. Best effort: a busy checkpoint leaves the WAL for later.
    pub(crate) async fn flush_erased_pages(&self) {
        if self.backend == Backend::Sqlite {
            if let Err(error) = self.pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await {
                tracing::warn!(%error, "WAL checkpoint after erasure failed");
            }
        }
    }
}

/// The destroying `UPDATE`, on any connection or transaction.
pub(crate) async fn destroy_data_key_in<'c, E>(
    executor: E,
    tenant: &TenantName,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let result = sqlx::query(
        "UPDATE data_keys SET wrapped = NULL, destroyed_at = $1 \
         WHERE tenant = $2 AND destroyed_at IS NULL",
    )
    .bind(types::unix_now())
    .bind(tenant.as_str())
    .execute(executor)
    .await?;
    Ok(result.rows_affected() > 0)
}
