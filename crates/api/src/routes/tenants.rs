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
}

#[derive(Serialize, ToSchema)]
pub struct TenantView {
    pub name: String,
    pub commercial: bool,
    pub created_at: i64,
}

impl From<TenantRecord> for TenantView {
    fn from(record: TenantRecord) -> Self {
        Self {
            name: record.name.to_string(),
            commercial: record.commercial,
            created_at: record.created_at,
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
    responses((status = 201, body = TenantView), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Json(request): Json<CreateTenantRequest>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let tenant = state
        .store()
        .create_tenant(&request.name, request.commercial)
        .await
        .map_err(store_error)?;
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
