//! Tenant management (admin only).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use store::TenantRecord;
use types::TenantName;
use utoipa::ToSchema;

use crate::auth::{Admin, Guarded};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::limits::valid_limits;
use crate::routes::store_error;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenantRequest {
    #[schema(value_type = String, example = "acme")]
    pub name: TenantName,
    /// Whether the tenant uses models commercially (licence terms depend on it).
    #[serde(default)]
    pub commercial: bool,
    /// Requests per minute shared by all the tenant's keys (absent: no limit).
    pub rpm: Option<i64>,
    /// Tokens per minute shared by all the tenant's keys.
    pub tpm: Option<i64>,
    /// Tokens per UTC day shared by all the tenant's keys.
    pub tpd: Option<i64>,
}

/// A tenant's rate limits; an absent or null limit is removed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitsRequest {
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub tpd: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub name: String,
    pub commercial: bool,
    pub created_at: i64,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub tpd: Option<i64>,
}

impl From<TenantRecord> for TenantView {
    fn from(record: TenantRecord) -> Self {
        Self {
            name: record.name.to_string(),
            commercial: record.commercial,
            created_at: record.created_at,
            rpm: record.limits.rpm,
            tpm: record.limits.tpm,
            tpd: record.limits.tpd,
        }
    }
}

/// Lists all tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    responses((status = 200, body = Vec<TenantView>)))]
pub async fn list(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<TenantView>>> {
    let tenants = state.store().list_tenants().await.map_err(store_error)?;
    Ok(Json(tenants.into_iter().map(TenantView::from).collect()))
}

/// Creates a tenant.
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", security(("bearer" = [])),
    request_body = CreateTenantRequest,
    responses((status = 201, body = TenantView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Json(request): Json<CreateTenantRequest>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let limits = valid_limits(request.rpm, request.tpm, request.tpd)?;
    let store = state.store();
    let mut tenant = store
        .create_tenant(&request.name, request.commercial)
        .await
        .map_err(store_error)?;
    if !limits.is_unlimited() {
        tenant = store
            .set_tenant_limits(&request.name, limits)
            .await
            .map_err(store_error)?;
    }
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

/// Deletes a tenant.
#[utoipa::path(delete, path = "/v1/tenants/{name}", tag = "tenants", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
) -> ApiResult<StatusCode> {
    state
        .store()
        .delete_tenant(&name)
        .await
        .map_err(store_error)?;
    // Its keys are gone: none may be served from the cache of verified keys.
    state.key_cache().clear();
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a tenant's rate limits; they apply to its keys' next requests.
#[utoipa::path(put, path = "/v1/tenants/{name}/limits", tag = "tenants", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = TenantLimitsRequest,
    responses((status = 200, body = TenantView), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn set_limits(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
    Json(request): Json<TenantLimitsRequest>,
) -> ApiResult<Json<TenantView>> {
    let limits = valid_limits(request.rpm, request.tpm, request.tpd)?;
    let tenant = state
        .store()
        .set_tenant_limits(&name, limits)
        .await
        .map_err(store_error)?;
    // Cached key records carry their tenant's limits: the new ones apply at once.
    state.key_cache().clear();
    Ok(Json(tenant.into()))
}
