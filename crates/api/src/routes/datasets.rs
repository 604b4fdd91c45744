//! Datasets: upload (validated, stored as a blob), list, show and delete. Tenant-private:
//! another tenant's dataset is 404.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jobs::{DatasetFormat, DatasetRecord, DatasetUpload, Datasets, JobsError};
use serde::{Deserialize, Serialize};
use types::ModelName;
use utoipa::ToSchema;

use crate::auth::{Data, Guarded};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::upload::{stage_body, too_large};

#[derive(Serialize, ToSchema)]
pub struct DatasetView {
    pub name: String,
    pub tenant: String,
    /// SHA-256 (hex) of the uploaded file.
    pub digest: String,
    pub format: String,
    pub size: i64,
    pub rows: i64,
    /// The columns and their widths found at upload.
    #[schema(value_type = Object)]
    pub columns: serde_json::Value,
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetList {
    pub data: Vec<DatasetView>,
}

impl From<DatasetRecord> for DatasetView {
    fn from(record: DatasetRecord) -> Self {
        Self {
            name: record.name.to_string(),
            tenant: record.tenant.to_string(),
            digest: record.digest,
            format: record.format,
            size: record.size,
            rows: record.n_rows,
            columns: record.columns,
            created_at: record.created_at,
        }
    }
}

/// Name and layout of an uploaded dataset.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UploadDatasetParams {
    /// Name of the dataset, unique in the tenant.
    #[param(value_type = String)]
    pub name: ModelName,
    /// `jsonl` (default) or `csv`.
    #[param(value_type = Option<String>)]
    #[serde(default)]
    pub format: Option<DatasetFormat>,
    /// CSV only: comma-separated feature columns, in the spec's input order.
    pub features: Option<String>,
    /// CSV only: comma-separated target columns.
    pub targets: Option<String>,
}

/// Uploads a dataset (the body is the file), validated before it is stored.
#[utoipa::path(post, path = "/v1/datasets", tag = "datasets", security(("bearer" = [])),
    params(UploadDatasetParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = DatasetView), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
              (status = 503, description = "the upload paused too long (request_timeout)", body = crate::error::ErrorBody),
              (status = 507, description = "the server is out of storage space", body = crate::error::ErrorBody)))]
pub async fn upload(
    guard: Guarded<Data>,
    State(state): State<AppState>,
    Query(params): Query<UploadDatasetParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<DatasetView>)> {
    let limit = state.config().max_upload;
    let csv_columns = match (params.features, params.targets) {
        (Some(features), Some(targets)) => Some(engine_columns(&features, &targets)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "give both features and targets, or neither",
            ))
        }
    };
    let staged = stage_body(&state, &headers, body, limit, "the dataset file").await?;
    let upload = DatasetUpload {
        tenant: guard.principal.tenant.clone(),
        name: params.name,
        format: params.format.unwrap_or_default(),
        csv_columns,
        path: staged.to_path_buf(),
        max_bytes: limit,
    };
    let record = Datasets::new(state.registry().clone())
        .upload(upload)
        .await
        .map_err(jobs_error)?;
    Ok((StatusCode::CREATED, Json(record.into())))
}

/// The caller's datasets.
#[utoipa::path(get, path = "/v1/datasets", tag = "datasets", security(("bearer" = [])),
    responses((status = 200, body = DatasetList)))]
pub async fn list(
    guard: Guarded<Data>,
    State(state): State<AppState>,
) -> ApiResult<Json<DatasetList>> {
    let records = Datasets::new(state.registry().clone())
        .list(&own(&guard))
        .await
        .map_err(jobs_error)?;
    Ok(Json(DatasetList {
        data: records.into_iter().map(DatasetView::from).collect(),
    }))
}

/// One dataset of the caller's tenant.
#[utoipa::path(get, path = "/v1/datasets/{name}", tag = "datasets", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = DatasetView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    guard: Guarded<Data>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<Json<DatasetView>> {
    let record = Datasets::new(state.registry().clone())
        .show(&own(&guard), &name)
        .await
        .map_err(jobs_error)?;
    Ok(Json(record.into()))
}

/// Deletes a dataset; queued jobs keep training on its content.
#[utoipa::path(delete, path = "/v1/datasets/{name}", tag = "datasets", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove(
    guard: Guarded<Data>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<StatusCode> {
    Datasets::new(state.registry().clone())
        .remove(&own(&guard), &name)
        .await
        .map_err(jobs_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Datasets are private to their tenant, admins included.
fn own<P: crate::auth::Permission>(guard: &Guarded<P>) -> store::Caller {
    store::Caller::tenant(guard.principal.tenant.clone())
}

fn engine_columns(features: &str, targets: &str) -> jobs::datasets::CsvColumns {
    let split = |text: &str| {
        text.split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect()
    };
    jobs::datasets::CsvColumns {
        features: split(features),
        targets: split(targets),
    }
}

/// Maps job and dataset errors to the error table.
pub(crate) fn jobs_error(error: JobsError) -> ApiError {
    match error {
        JobsError::Invalid(_) => ApiError::bad_request("invalid_request", error.to_string()),
        JobsError::Dataset(_) => ApiError::bad_request("invalid_dataset", error.to_string()),
        JobsError::NotFound(_) => ApiError::not_found("not_found", error.to_string()),
        JobsError::TooLarge { limit } => too_large(limit),
        JobsError::Store(e) => super::store_error(e),
        JobsError::Registry(e) => super::registry_error(e),
        other => ApiError::failure(&other),
    }
}
