//! Models: the OpenAI-compatible list, and the registry's views, upload and removal.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use store::{ModelCard, ModelRecord, VersionRecord};
use types::{Day, ModelName, ModelRef, TenantName};
use utoipa::ToSchema;

use crate::auth::{Guarded, ModelsRead, ModelsWrite, UseModels};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::store_error;
use crate::state::AppState;
use crate::upload::stage_body;

#[derive(Serialize, ToSchema)]
pub struct OpenAiModel {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: String,
}

#[derive(Serialize, ToSchema)]
pub struct OpenAiModelList {
    pub object: &'static str,
    pub data: Vec<OpenAiModel>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelView {
    pub name: String,
    pub tenant: String,
    pub shared: bool,
    pub owner: Option<String>,
    pub license: Option<String>,
    pub description: Option<String>,
    pub latest_version: Option<i64>,
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub data: Vec<ModelView>,
}

#[derive(Serialize, ToSchema)]
pub struct FileView {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Serialize, ToSchema)]
pub struct VersionView {
    pub model: String,
    pub tenant: String,
    pub version: i64,
    pub total_size: i64,
    pub created_at: i64,
    pub files: Vec<FileView>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub model: ModelView,
    pub versions: Vec<VersionView>,
}

impl From<ModelRecord> for ModelView {
    fn from(record: ModelRecord) -> Self {
        Self {
            name: record.name.to_string(),
            tenant: record.tenant.to_string(),
            shared: record.shared,
            owner: record.card.owner,
            license: record.card.license,
            description: record.card.description,
            latest_version: record.latest_version,
            created_at: record.created_at,
        }
    }
}

impl From<VersionRecord> for VersionView {
    fn from(record: VersionRecord) -> Self {
        Self {
            model: record.model.to_string(),
            tenant: record.tenant.to_string(),
            version: record.version,
            total_size: record.total_size,
            created_at: record.created_at,
            files: record
                .manifest
                .files
                .into_iter()
                .map(|f| FileView {
                    path: f.path,
                    size: f.size,
                    sha256: f.sha256,
                })
                .collect(),
        }
    }
}

/// Models the caller may use, in OpenAI's list shape.
#[utoipa::path(get, path = "/v1/models", tag = "models", security(("bearer" = [])),
    responses((status = 200, body = OpenAiModelList)))]
pub async fn openai_list(
    guard: Guarded<UseModels>,
    State(state): State<AppState>,
) -> ApiResult<Json<OpenAiModelList>> {
    let models = state
        .store()
        .list_models(&guard.principal.caller())
        .await
        .map_err(store_error)?;
    let data = models
        .into_iter()
        .filter(|m| m.latest_version.is_some())
        .map(|m| OpenAiModel {
            id: m.name.to_string(),
            object: "model",
            created: m.created_at,
            owned_by: m.card.owner.unwrap_or_else(|| m.tenant.to_string()),
        })
        .collect();
    Ok(Json(OpenAiModelList {
        object: "list",
        data,
    }))
}

/// Models in the registry visible to the caller.
#[utoipa::path(get, path = "/v1/registry/models", tag = "registry", security(("bearer" = [])),
    responses((status = 200, body = ModelList)))]
pub async fn list(
    guard: Guarded<ModelsRead>,
    State(state): State<AppState>,
) -> ApiResult<Json<ModelList>> {
    let models = state
        .store()
        .list_models(&guard.principal.caller())
        .await
        .map_err(store_error)?;
    Ok(Json(ModelList {
        data: models.into_iter().map(ModelView::from).collect(),
    }))
}

/// One model with its versions and their manifests.
#[utoipa::path(get, path = "/v1/registry/models/{name}", tag = "registry", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = ModelDetail), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    guard: Guarded<ModelsRead>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<Json<ModelDetail>> {
    let (model, versions) = model_with_versions(&state, &guard.principal.caller(), &name).await?;
    Ok(Json(ModelDetail {
        model: model.into(),
        versions: versions.into_iter().map(VersionView::from).collect(),
    }))
}

/// The model `name` as `caller` sees it, with its versions oldest first.
pub(crate) async fn model_with_versions(
    state: &AppState,
    caller: &store::Caller,
    name: &ModelName,
) -> ApiResult<(ModelRecord, Vec<VersionRecord>)> {
    let model = state
        .store()
        .find_model(caller, name)
        .await
        .map_err(store_error)?;
    let versions = state
        .store()
        .list_versions(caller, name)
        .await
        .map_err(store_error)?;
    Ok((model, versions))
}

/// One version of a model.
#[utoipa::path(get, path = "/v1/registry/models/{name}/versions/{version}", tag = "registry",
    security(("bearer" = [])), params(("name" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = VersionView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show_version(
    guard: Guarded<ModelsRead>,
    State(state): State<AppState>,
    Path((name, version)): Path<(ModelName, i64)>,
) -> ApiResult<Json<VersionView>> {
    let model_ref = ModelRef {
        name,
        version: Some(version),
    };
    let (_, version) = state
        .store()
        .resolve(&guard.principal.caller(), &model_ref)
        .await
        .map_err(store_error)?;
    Ok(Json(version.into()))
}

/// Deletes a model and all its versions.
#[utoipa::path(delete, path = "/v1/registry/models/{name}", tag = "registry", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    guard: Guarded<ModelsWrite>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<StatusCode> {
    state
        .store()
        .delete_model(&guard.principal.caller(), &name)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes one version of a model.
#[utoipa::path(delete, path = "/v1/registry/models/{name}/versions/{version}", tag = "registry",
    security(("bearer" = [])), params(("name" = String, Path), ("version" = i64, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove_version(
    guard: Guarded<ModelsWrite>,
    State(state): State<AppState>,
    Path((name, version)): Path<(ModelName, i64)>,
) -> ApiResult<StatusCode> {
    state
        .store()
        .delete_version(&guard.principal.caller(), &name, version)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Card fields and placement of an uploaded version.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadParams {
    /// Tenant to import for (admin keys only; others import into their own tenant).
    #[param(value_type = Option<String>)]
    pub tenant: Option<TenantName>,
    /// Make the model visible to every tenant.
    #[serde(default)]
    pub shared: bool,
    /// SPDX licence expression, e.g. apache-2.0.
    pub license: Option<String>,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub intended_use: Option<String>,
    pub out_of_scope_use: Option<String>,
    /// `all` or tenant names separated by commas.
    pub permitted_tenants: Option<String>,
    /// `false`: commercial tenants may not use the model.
    pub commercial_use: Option<bool>,
    /// The last day the licence is valid, YYYY-MM-DD.
    #[param(value_type = Option<String>)]
    pub license_expires: Option<Day>,
    /// Text every response of the model must carry.
    pub attribution: Option<String>,
}

/// Uploads a new version as a tar archive of a Hugging Face model folder
/// (`Content-Type: application/x-tar`), streamed to disk with a size limit.
#[utoipa::path(post, path = "/v1/registry/models/{name}/versions", tag = "registry",
    security(("bearer" = [])), params(("name" = String, Path), UploadParams),
    request_body(content = Vec<u8>, content_type = "application/x-tar"),
    responses((status = 201, body = VersionView), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
              (status = 503, description = "the upload paused too long (request_timeout)", body = crate::error::ErrorBody),
              (status = 507, description = "the server is out of storage space", body = crate::error::ErrorBody)))]
pub async fn upload(
    guard: Guarded<ModelsWrite>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
    Query(params): Query<UploadParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<VersionView>)> {
    let principal = guard.principal;
    let tenant = match params.tenant {
        Some(tenant) if principal.is_admin() => tenant,
        Some(tenant) if tenant != principal.tenant => {
            return Err(ApiError::forbidden(
                "insufficient_scope",
                "only admin keys may import models for another tenant",
            )
            .with_param("tenant"))
        }
        _ => principal.tenant.clone(),
    };
    let limit = state.config().max_upload;
    let staged = stage_body(
        &state,
        &headers,
        body,
        limit,
        "a tar archive of the model folder",
    )
    .await?;
    let permitted_tenants = match params.permitted_tenants.as_deref() {
        Some(text) => registry::cards::parse_permitted_tenants(text)
            .map_err(|e| super::registry_error(e).with_param("permitted_tenants"))?,
        None => None,
    };
    let request = registry::ImportRequest {
        name,
        tenant,
        shared: params.shared,
        card: ModelCard {
            owner: params.owner,
            license: params.license,
            description: params.description,
            intended_use: params.intended_use,
            out_of_scope_use: params.out_of_scope_use,
            permitted_tenants,
            commercial_use: params.commercial_use,
            license_expires: params.license_expires,
            attribution: params.attribution,
        },
    };
    let version = state
        .registry()
        .import_tar(
            std::fs::File::open(&staged).map_err(|e| ApiError::internal(&e))?,
            request,
            limit,
        )
        .await
        .map_err(super::registry_error)?;
    Ok((StatusCode::CREATED, Json(version.into())))
}
