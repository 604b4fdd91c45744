//! Metered usage: requests and tokens per tenant, key, model and UTC day.
//!
//! Servers aggregate usage in memory and add it here in batches ([`Store::add_usage`]),
//! so a busy server writes one upsert per (tenant, key, model, day) per flush rather
//! than one per request.

use sqlx::any::AnyRow;
use sqlx::Row;
use types::{Day, TenantName};

use crate::{parse_tenant, Store, StoreError};

/// One usage row, or what to add to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageRecord {
    pub tenant: TenantName,
    pub key_id: String,
    pub model: String,
    pub day: Day,
    pub requests: i64,
    pub tokens: i64,
}

/// Which usage rows to read; `None` fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub tenant: Option<TenantName>,
    pub key_id: Option<String>,
    pub model: Option<String>,
    /// First day included.
    pub from: Option<Day>,
    /// Last day included.
    pub to: Option<Day>,
}

impl UsageRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let day: String = row.try_get("day")?;
        Ok(Self {
            tenant: parse_tenant(row.try_get("tenant")?)?,
            key_id: row.try_get("key_id")?,
            model: row.try_get("model")?,
            day: day
                .parse()
                .map_err(|e: types::DayError| StoreError::Corrupt(e.to_string()))?,
            requests: row.try_get("requests")?,
            tokens: row.try_get("tokens")?,
        })
    }
}

impl Store {
    /// Adds each delta to its row (created at zero when missing), all in one
    /// transaction. Deltas of tenants deleted meanwhile are dropped.
    pub async fn add_usage(&self, deltas: &[UsageRecord]) -> Result<(), StoreError> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for delta in deltas {
            sqlx::query(
                "INSERT INTO usage_daily (tenant_id, key_id, model, day, requests, tokens) \
                 SELECT t.id, $1, $2, $3, $4, $5 FROM tenants t WHERE t.name = $6 \
                 ON CONFLICT (tenant_id, key_id, model, day) DO UPDATE SET \
                 requests = usage_daily.requests + excluded.requests, \
                 tokens = usage_daily.tokens + excluded.tokens",
            )
            .bind(delta.key_id.as_str())
            .bind(delta.model.as_str())
            .bind(delta.day.to_string())
            .bind(delta.requests)
            .bind(delta.tokens)
            .bind(delta.tenant.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Tokens metered on `day` for the tenant, or for one of its keys: where a
    /// restarted server's daily quotas start from.
    pub async fn tokens_on_day(
        &self,
        tenant: &TenantName,
        key_id: Option<&str>,
        day: Day,
    ) -> Result<i64, StoreError> {
        let mut sql = String::from(
            "SELECT CAST(COALESCE(SUM(u.tokens), 0) AS BIGINT) AS tokens FROM usage_daily u \
             JOIN tenants t ON t.id = u.tenant_id WHERE t.name = $1 AND u.day = $2",
        );
        if key_id.is_some() {
            sql.push_str(" AND u.key_id = $3");
        }
        let mut query = sqlx::query(&sql)
            .bind(tenant.as_str())
            .bind(day.to_string());
        if let Some(key_id) = key_id {
            query = query.bind(key_id);
        }
        let row = query.fetch_one(&self.pool).await?;
        // PostgreSQL sums BIGINT to NUMERIC; the CAST keeps one decoding for both.
        Ok(row.try_get::<i64, _>("tokens")?)
    }

    /// Usage rows matching `filter`, by day, tenant, key and model.
    pub async fn usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError> {
        // Built per filter rather than `$n IS NULL OR …`, which PostgreSQL cannot type.
        let mut sql = String::from(
            "SELECT t.name AS tenant, u.key_id, u.model, u.day, u.requests, u.tokens \
             FROM usage_daily u JOIN tenants t ON t.id = u.tenant_id WHERE 1 = 1",
        );
        let conditions = [
            ("t.name =", filter.tenant.as_ref().map(|t| t.to_string())),
            ("u.key_id =", filter.key_id.clone()),
            ("u.model =", filter.model.clone()),
            ("u.day >=", filter.from.map(|d| d.to_string())),
            ("u.day <=", filter.to.map(|d| d.to_string())),
        ];
        let mut values = Vec::new();
        for (condition, value) in conditions {
            if let Some(value) = value {
                values.push(value);
                sql.push_str(&format!(" AND {condition} ${}", values.len()));
            }
        }
        sql.push_str(" ORDER BY u.day, t.name, u.key_id, u.model");
        let mut query = sqlx::query(&sql);
        for value in values {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(UsageRecord::from_row).collect()
    }
}
