//! What a tenant may be served (admin only): whether it is commercial and requires
//! signed models, and the model publisher keys it trusts.

use axum::extract::State;
use axum::http::StatusCode;
use crypto::signing::VerifyingKey;
use serde::{Deserialize, Serialize};
use store::TrustedKeyRecord;
use types::TenantName;
use utoipa::ToSchema;

use crate::auth::{Admin, Guarded};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::routes::store_error;
use crate::state::AppState;

/// A tenant's serving policy and trusted publisher keys.
#[derive(Serialize, ToSchema)]
pub struct ModelPolicyView {
    pub tenant: String,
    /// The tenant uses models commercially (non-commercial models refuse it).
    pub commercial: bool,
    /// Only versions signed by a trusted key serve the tenant.
    pub require_signed_models: bool,
    pub trusted_keys: Vec<TrustedKeyView>,
}

#[derive(Serialize, ToSchema)]
pub struct TrustedKeyView {
    pub key_id: String,
    /// SPKI PEM.
    pub public_key: String,
    pub added_at: i64,
}

/// Changes the flags given; omitted ones stay.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelPolicyRequest {
    pub commercial: Option<bool>,
    pub require_signed_models: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustKeyRequest {
    /// An ed25519 public key, SPKI PEM (`openssl pkey -pubout` writes it).
    pub public_key: String,
}

impl From<TrustedKeyRecord> for TrustedKeyView {
    fn from(record: TrustedKeyRecord) -> Self {
        Self {
            key_id: record.key_id,
            public_key: record.public_key,
            added_at: record.added_at,
        }
    }
}

async fn policy_view(state: &AppState, tenant: &TenantName) -> ApiResult<ModelPolicyView> {
    let policy = state
        .store()
        .serving_policy(tenant)
        .await
        .map_err(store_error)?;
    let keys = state
        .store()
        .trusted_keys(tenant)
        .await
        .map_err(store_error)?;
    Ok(ModelPolicyView {
        tenant: tenant.to_string(),
        commercial: policy.commercial,
        require_signed_models: policy.require_signed_models,
        trusted_keys: keys.into_iter().map(TrustedKeyView::from).collect(),
    })
}

/// A tenant's serving policy and the publisher keys it trusts.
#[utoipa::path(get, path = "/v1/tenants/{name}/model-policy", tag = "tenants", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = ModelPolicyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
) -> ApiResult<Json<ModelPolicyView>> {
    policy_view(&state, &name).await.map(Json)
}

/// Sets whether a tenant is commercial and whether it requires signed models.
#[utoipa::path(patch, path = "/v1/tenants/{name}/model-policy", tag = "tenants", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = ModelPolicyRequest,
    responses((status = 200, body = ModelPolicyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn update(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
    Json(request): Json<ModelPolicyRequest>,
) -> ApiResult<Json<ModelPolicyView>> {
    let store = state.store();
    if let Some(commercial) = request.commercial {
        store
            .set_commercial(&name, commercial)
            .await
            .map_err(store_error)?;
    }
    if let Some(required) = request.require_signed_models {
        store
            .set_require_signed_models(&name, required)
            .await
            .map_err(store_error)?;
    }
    // Admissions were decided under the old policy.
    state.admissions().clear();
    policy_view(&state, &name).await.map(Json)
}

/// Trusts a model publisher's public key for a tenant.
#[utoipa::path(post, path = "/v1/tenants/{name}/trusted-keys", tag = "tenants", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = TrustKeyRequest,
    responses((status = 201, body = TrustedKeyView), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn trust(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
    Json(request): Json<TrustKeyRequest>,
) -> ApiResult<(StatusCode, Json<TrustedKeyView>)> {
    let key = VerifyingKey::from_public_key_pem(&request.public_key).map_err(|e| {
        ApiError::bad_request("invalid_public_key", e.to_string()).with_param("public_key")
    })?;
    let record = state
        .store()
        .trust_key(&name, &key.key_id(), &key.to_public_key_pem())
        .await
        .map_err(store_error)?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// Stops trusting a publisher key.
#[utoipa::path(delete, path = "/v1/tenants/{name}/trusted-keys/{id}", tag = "tenants",
    security(("bearer" = [])), params(("name" = String, Path), ("id" = String, Path, description = "the key id")),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn distrust(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path((name, key_id)): Path<(TenantName, String)>,
) -> ApiResult<StatusCode> {
    state
        .store()
        .distrust_key(&name, &key_id)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}
