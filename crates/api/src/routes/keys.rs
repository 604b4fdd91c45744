//! API key management (admin only). The key text is returned once, at creation.

use axum::extract::State;
use axum::http::StatusCode;
use governance::KeyRequest;
use serde::{Deserialize, Serialize};
use store::ApiKeyRecord;
use types::{Scopes, TenantName};
use utoipa::ToSchema;

use crate::auth::{Admin, Guarded};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::routes::store_error;
use crate::state::AppState;

/// A new key's tenant and scopes. Unknown fields (`role`, `tenant_id`, …) are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[schema(value_type = String, example = "acme")]
    pub tenant: TenantName,
    /// Scopes: inference, models:read, models:write, data, jobs, audit:read, pii:reveal, admin.
    #[schema(value_type = Vec<String>, example = json!(["inference"]))]
    pub scopes: Vec<types::Scope>,
    #[serde(default)]
    pub description: String,
    /// Unix time after which the key stops working.
    pub expires_at: Option<i64>,
    /// Requests per minute this key may make (absent: no limit of its own).
    pub rpm: Option<i64>,
    /// Tokens per minute (for tensor models, input rows).
    pub tpm: Option<i64>,
    /// Tokens per UTC day.
    pub tpd: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub scopes: Vec<String>,
    pub description: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub tpd: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CreateKeyResponse {
    #[serde(flatten)]
    pub view: KeyView,
    /// The key itself; shown only in this response.
    pub key: String,
}

impl From<ApiKeyRecord> for KeyView {
    fn from(record: ApiKeyRecord) -> Self {
        Self {
            id: record.key_id,
            tenant: record.tenant.to_string(),
            scopes: record
                .scopes
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            description: record.description,
            created_at: record.created_at,
            expires_at: record.expires_at,
            revoked_at: record.revoked_at,
            rpm: record.limits.rpm,
            tpm: record.limits.tpm,
            tpd: record.limits.tpd,
        }
    }
}

/// Lists keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, body = Vec<KeyView>)))]
pub async fn list(
    guard: Guarded<Admin>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = state
        .store()
        .list_keys(&guard.principal.caller())
        .await
        .map_err(store_error)?;
    Ok(Json(keys.into_iter().map(KeyView::from).collect()))
}

/// Creates a key for a tenant; the response holds the key text, shown only once.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    request_body = CreateKeyRequest,
    responses((status = 201, body = CreateKeyResponse), (status = 400, body = crate::error::ErrorBody)))]
pub async fn create(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Json(request): Json<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreateKeyResponse>)> {
    if request.scopes.is_empty() {
        return Err(
            ApiError::bad_request("invalid_scopes", "a key needs at least one scope")
                .with_param("scopes"),
        );
    }
    if request.expires_at.is_some_and(|t| t <= types::unix_now()) {
        return Err(
            ApiError::bad_request("invalid_expiry", "expires_at must be in the future")
                .with_param("expires_at"),
        );
    }
    let limits = crate::limits::valid_limits(request.rpm, request.tpm, request.tpd)?;
    let key_request = KeyRequest {
        tenant: request.tenant,
        scopes: Scopes::new(request.scopes),
        description: request.description,
        expires_at: request.expires_at,
        limits,
    };
    let (record, text) = governance::mint_key(state.store(), key_request)
        .await
        .map_err(store_error)?;
    let response = CreateKeyResponse {
        view: record.into(),
        key: text.expose().clone(),
    };
    Ok((StatusCode::CREATED, Json(response)))
}

/// Revokes a key; it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = KeyView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyView>> {
    let record = state
        .store()
        .revoke_key(&guard.principal.caller(), &id)
        .await
        .map_err(store_error)?;
    state.key_cache().forget(&id);
    Ok(Json(record.into()))
}
