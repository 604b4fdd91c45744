//! Open Inference Protocol v2 for tensor models: health, model metadata and readiness,
//! and `infer` with FP32 JSON tensors, computed in batches by the inference runtime.
//!
//! Models load on first use from the registry (spec and weights of a version marked by
//! `charter_tensor.json`) and stay loaded per (tenant, model, version).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use governance::Principal;
use inference::tensor::{LoadedTensorModel, TensorInput, TensorRequest};
use inference::InferenceError;
use serde::{Deserialize, Serialize};
use store::{Caller, VersionRecord};
use types::{ModelName, ModelRef};
use utoipa::ToSchema;

use crate::audit::AuditModel;
use crate::auth::{Guarded, Inference};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::limits;
use crate::routes::datasets::jobs_error;
use crate::routes::registry_error;
use crate::serving;
use crate::state::AppState;

const PLATFORM: &str = "charter-tensor";

/// An inference answer: the version that answered (for the audit entry), the
/// attribution header its licence asks for, and the body.
type Answered = (Extension<AuditModel>, HeaderMap, Json<V2InferResponse>);

#[derive(Serialize, ToSchema)]
pub struct V2Health {
    pub live: bool,
    pub ready: bool,
}

#[derive(Serialize, ToSchema)]
pub struct V2TensorMetadata {
    pub name: String,
    pub datatype: &'static str,
    /// `-1` is the batch dimension.
    pub shape: Vec<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct V2ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: &'static str,
    pub inputs: Vec<V2TensorMetadata>,
    pub outputs: Vec<V2TensorMetadata>,
}

#[derive(Serialize, ToSchema)]
pub struct V2ModelReady {
    pub name: String,
    pub version: String,
    pub ready: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct V2InferInput {
    pub name: String,
    pub shape: Vec<i64>,
    /// Only `FP32`.
    pub datatype: String,
    /// Row-major values.
    pub data: Vec<f32>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
pub struct V2InferRequest {
    pub id: Option<String>,
    pub inputs: Vec<V2InferInput>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct V2InferOutput {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: &'static str,
    pub data: Vec<f32>,
}

#[derive(Serialize, ToSchema)]
pub struct V2InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<V2InferOutput>,
}

/// The server process is up.
#[utoipa::path(get, path = "/v2/health/live", tag = "v2", responses((status = 200, body = V2Health)))]
pub async fn live(State(state): State<AppState>) -> Json<V2Health> {
    Json(V2Health {
        live: true,
        ready: state.is_ready(),
    })
}

/// The server accepts inference requests.
#[utoipa::path(get, path = "/v2/health/ready", tag = "v2",
    responses((status = 200, body = V2Health), (status = 503, body = V2Health)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<V2Health>) {
    let ready = state.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(V2Health { live: true, ready }))
}

/// Metadata of the latest version: inputs and outputs with datatype and shape.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "v2", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = V2ModelMetadata), (status = 404, body = crate::error::ErrorBody)))]
pub async fn metadata(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<Json<V2ModelMetadata>> {
    model_metadata(
        &state,
        &guard.principal.caller(),
        ModelRef {
            name,
            version: None,
        },
    )
    .await
}

/// Metadata of one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "v2", security(("bearer" = [])),
    params(("name" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = V2ModelMetadata), (status = 404, body = crate::error::ErrorBody)))]
pub async fn version_metadata(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    Path((name, version)): Path<(ModelName, i64)>,
) -> ApiResult<Json<V2ModelMetadata>> {
    let model_ref = ModelRef {
        name,
        version: Some(version),
    };
    model_metadata(&state, &guard.principal.caller(), model_ref).await
}

/// Loads the model when needed; 200 once it can serve.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "v2", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = V2ModelReady), (status = 404, body = crate::error::ErrorBody)))]
pub async fn model_ready(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<Json<V2ModelReady>> {
    let model_ref = ModelRef {
        name,
        version: None,
    };
    let (admitted, _) = loaded(&state, &guard.principal.caller(), &model_ref).await?;
    Ok(Json(V2ModelReady {
        name: admitted.version.model.to_string(),
        version: admitted.version.version.to_string(),
        ready: true,
    }))
}

/// Inference on the latest version.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "v2", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = V2InferRequest,
    responses((status = 200, body = V2InferResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn infer(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
    Json(request): Json<V2InferRequest>,
) -> ApiResult<Answered> {
    let model_ref = ModelRef {
        name,
        version: None,
    };
    run_infer(&state, &guard.principal, &model_ref, request).await
}

/// Inference on one version.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "v2", security(("bearer" = [])),
    params(("name" = String, Path), ("version" = i64, Path)), request_body = V2InferRequest,
    responses((status = 200, body = V2InferResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn version_infer(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    Path((name, version)): Path<(ModelName, i64)>,
    Json(request): Json<V2InferRequest>,
) -> ApiResult<Answered> {
    let model_ref = ModelRef {
        name,
        version: Some(version),
    };
    run_infer(&state, &guard.principal, &model_ref, request).await
}

/// Tensor models have no tokens: rate limits and usage count one token per input row.
async fn run_infer(
    state: &AppState,
    principal: &Principal,
    model_ref: &ModelRef,
    request: V2InferRequest,
) -> ApiResult<Answered> {
    let _slot = limits::inference_slot(state, principal)?;
    let (admitted, model) = loaded(state, &principal.caller(), model_ref).await?;
    let inputs: Vec<TensorInput<'_>> = request
        .inputs
        .iter()
        .map(|i| TensorInput {
            name: &i.name,
            shape: &i.shape,
            datatype: &i.datatype,
            data: &i.data,
        })
        .collect();
    let tensor_request = TensorRequest::new(&model.spec, &inputs)
        .map_err(|e| ApiError::bad_request("invalid_input", e.to_string()).with_param("inputs"))?;
    let rows = tensor_request.rows;
    limits::charge_tokens(state, principal, rows).await?;
    let output = model
        .worker
        .call(tensor_request)
        .await
        .map_err(|e| match e {
            InferenceError::QueueFull => {
                ApiError::unavailable("the model is busy; retry shortly", 1)
            }
            InferenceError::Stopped => {
                ApiError::unavailable("the model is restarting; retry shortly", 1)
            }
            InferenceError::Failed(message) => ApiError::internal(&message),
        })?;
    let version = &admitted.version;
    let model_name = version.model.to_string();
    limits::meter(state, principal, &model_name, rows);
    let headers = serving::attribution_headers(admitted.attribution.as_deref());
    // The audit entry and the receipt name the exact version that answered.
    let answered_by = AuditModel(admitted.digest.clone());
    let response = V2InferResponse {
        model_name,
        model_version: version.version.to_string(),
        id: request.id,
        outputs: split_outputs(&model.spec, rows, output),
    };
    Ok((Extension(answered_by), headers, Json(response)))
}

fn split_outputs(
    spec: &engine_spec::ValidSpec,
    rows: usize,
    output: Vec<f32>,
) -> Vec<V2InferOutput> {
    let shape_of = |io: &engine_spec::IoSpec| {
        let mut shape = vec![rows];
        shape.extend_from_slice(&io.shape);
        shape
    };
    if let [io] = spec.outputs() {
        return vec![V2InferOutput {
            name: io.name.clone(),
            shape: shape_of(io),
            datatype: "FP32",
            data: output,
        }];
    }
    let total = spec.output_width();
    let mut column = 0;
    spec.outputs()
        .iter()
        .map(|io| {
            let width = io.width();
            let data = output
                .chunks_exact(total)
                .flat_map(|row| row[column..column + width].iter().copied())
                .collect();
            column += width;
            V2InferOutput {
                name: io.name.clone(),
                shape: shape_of(io),
                datatype: "FP32",
                data,
            }
        })
        .collect()
}

/// The engine's spec types, reached through the jobs crate's re-export.
mod engine_spec {
    pub use jobs::engine_types::{IoSpec, ValidSpec};
}

async fn model_metadata(
    state: &AppState,
    caller: &Caller,
    model_ref: ModelRef,
) -> ApiResult<Json<V2ModelMetadata>> {
    let (_, model) = loaded(state, caller, &model_ref).await?;
    let versions = state
        .registry()
        .versions(&model_ref.name, caller)
        .await
        .map_err(registry_error)?;
    let describe = |ios: &[engine_spec::IoSpec]| {
        ios.iter()
            .map(|io| V2TensorMetadata {
                name: io.name.clone(),
                datatype: "FP32",
                shape: std::iter::once(-1)
                    .chain(io.shape.iter().map(|&d| d as i64))
                    .collect(),
            })
            .collect()
    };
    Ok(Json(V2ModelMetadata {
        name: model_ref.name.to_string(),
        versions: versions.iter().map(|v| v.version.to_string()).collect(),
        platform: PLATFORM,
        inputs: describe(model.spec.inputs()),
        outputs: describe(model.spec.outputs()),
    }))
}

/// Admits the reference for `caller` ([`serving::admit`]: licence terms and, for
/// tenants that require them, signatures, as on every other inference route) and
/// loads the version on first use.
pub(crate) async fn loaded(
    state: &AppState,
    caller: &Caller,
    model_ref: &ModelRef,
) -> ApiResult<(Arc<serving::Admitted>, Arc<LoadedTensorModel>)> {
    let admitted = serving::admit(state, caller, &model_ref.to_string()).await?;
    let model = tensor_model(state, &admitted.version).await?;
    Ok((admitted, model))
}

/// The running tensor model of an admitted `version`, loaded on first use.
pub(crate) async fn tensor_model(
    state: &AppState,
    version: &VersionRecord,
) -> ApiResult<Arc<LoadedTensorModel>> {
    let tensors = state.tensors();
    let key = format!("{}/{}:{}", version.tenant, version.model, version.version);
    if let Some(model) = tensors.get(&key) {
        return Ok(model);
    }
    if version.manifest.file(jobs::train::MARKER_FILE).is_none() {
        return Err(ApiError::bad_request(
            "not_a_tensor_model",
            format!(
                "model '{}' is not a tensor model; the v2 protocol serves tensor models",
                version.model
            ),
        ));
    }
    let model = jobs::train::load_model(state.registry(), version)
        .await
        .map_err(jobs_error)?;
    let tensors = tensors.clone();
    tokio::task::spawn_blocking(move || tensors.insert(key, model))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(|e| ApiError::internal(&e))
}
