//! `GET /v1/usage`: metered requests and tokens per key, model and UTC day.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use store::{UsageFilter, UsageRecord};
use types::{Day, TenantName};
use utoipa::ToSchema;

use crate::auth::{Guarded, Usage};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Query};
use crate::routes::store_error;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Admin keys only: this tenant's usage (default: every tenant's).
    #[param(value_type = Option<String>)]
    pub tenant: Option<TenantName>,
    /// First UTC day included, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, example = "2026-01-01")]
    pub from: Option<Day>,
    /// Last UTC day included, `YYYY-MM-DD`.
    #[param(value_type = Option<String>, example = "2026-01-31")]
    pub to: Option<Day>,
    /// Only this model (its name, without version).
    pub model: Option<String>,
    /// Only this API key id.
    pub key: Option<String>,
}

/// Requests and tokens of one key on one model on one UTC day.
#[derive(Serialize, ToSchema)]
pub struct UsageRow {
    pub tenant: String,
    pub key_id: String,
    pub model: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub requests: i64,
    /// Prompt tokens for embeddings; input rows for tensor models.
    pub tokens: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UsageList {
    pub object: &'static str,
    pub data: Vec<UsageRow>,
    pub total_requests: i64,
    pub total_tokens: i64,
}

impl From<UsageRecord> for UsageRow {
    fn from(record: UsageRecord) -> Self {
        Self {
            tenant: record.tenant.to_string(),
            key_id: record.key_id,
            model: record.model,
            day: record.day.to_string(),
            requests: record.requests,
            tokens: record.tokens,
        }
    }
}

/// Metered usage: the caller's tenant's, or any tenant's for admins.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", security(("bearer" = [])),
    params(UsageQuery),
    responses((status = 200, body = UsageList), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(
    guard: Guarded<Usage>,
    State(state): State<AppState>,
    Query(query): Query<UsageQuery>,
) -> ApiResult<Json<UsageList>> {
    let principal = guard.principal;
    let tenant = if principal.is_admin() {
        query.tenant
    } else {
        if query
            .tenant
            .as_ref()
            .is_some_and(|t| *t != principal.tenant)
        {
            return Err(ApiError::forbidden(
                "forbidden",
                "only admin keys may read another tenant's usage",
            )
            .with_param("tenant"));
        }
        Some(principal.tenant.clone())
    };
    // What this server has metered but not yet written is included.
    if let Err(error) = state.meter().flush(state.store()).await {
        tracing::warn!(%error, "writing usage before a usage query failed");
    }
    let filter = UsageFilter {
        tenant,
        key_id: query.key,
        model: query.model,
        from: query.from,
        to: query.to,
    };
    let records = state.store().usage(&filter).await.map_err(store_error)?;
    let data: Vec<UsageRow> = records.into_iter().map(UsageRow::from).collect();
    Ok(Json(UsageList {
        object: "list",
        total_requests: data.iter().map(|r| r.requests).sum(),
        total_tokens: data.iter().map(|r| r.tokens).sum(),
        data,
    }))
}
