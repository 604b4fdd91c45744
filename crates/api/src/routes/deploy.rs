//! Loading and unloading models while the server runs.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use types::ModelName;
use utoipa::ToSchema;

use crate::auth::{Guarded, ModelsRead, ModelsWrite};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::serving;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeployParams {
    /// The version to (un)deploy; the latest when omitted.
    pub version: Option<i64>,
    /// Number format of the weights: `f32` (default, exact parity) or `bf16` (dense
    /// weights in bfloat16: faster and half the memory, cosine ≥ 0.999 to f32). A
    /// version loaded in another precision is reloaded. Ignored by `undeploy`.
    #[param(value_type = Option<String>)]
    pub precision: Option<Precision>,
}

/// `f32` | `bf16` as a query parameter, refused with the accepted names otherwise.
#[derive(Clone, Copy)]
pub struct Precision(pub inference::Precision);

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Self).map_err(|_| {
            serde::de::Error::custom(format!("unknown precision `{text}`: use `f32` or `bf16`"))
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    pub tenant: String,
    pub model: String,
    pub version: i64,
    pub loaded: bool,
    /// `f32` or `bf16`; absent when not loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

fn model_ref(name: &ModelName, version: Option<i64>) -> String {
    match version {
        Some(v) => format!("{name}:{v}"),
        None => name.to_string(),
    }
}

/// Loads a model version onto its worker (and warms it up) so requests need not wait.
#[utoipa::path(post, path = "/v1/registry/models/{name}/deploy", tag = "registry", security(("bearer" = [])),
    params(("name" = String, Path), DeployParams),
    responses((status = 200, body = DeploymentView), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn deploy(
    guard: Guarded<ModelsWrite>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
    Query(params): Query<DeployParams>,
) -> ApiResult<Json<DeploymentView>> {
    let admitted = serving::admit(
        &state,
        &guard.principal.caller(),
        &model_ref(&name, params.version),
    )
    .await?;
    let version = &admitted.version;
    let deployment = serving::encoder(&state, version, params.precision.map(|p| p.0)).await?;
    Ok(Json(view(version, Some(deployment.precision))))
}

/// Unloads a model version; requests already queued still finish.
#[utoipa::path(post, path = "/v1/registry/models/{name}/undeploy", tag = "registry", security(("bearer" = [])),
    params(("name" = String, Path), DeployParams),
    responses((status = 200, body = DeploymentView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn undeploy(
    guard: Guarded<ModelsWrite>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
    Query(params): Query<DeployParams>,
) -> ApiResult<Json<DeploymentView>> {
    let caller = guard.principal.caller();
    let version = serving::resolve(&state, &caller, &model_ref(&name, params.version)).await?;
    if !caller.may_write(&version.tenant) {
        return Err(ApiError::forbidden(
            "forbidden",
            "only the model's tenant may undeploy it",
        ));
    }
    state
        .deployments()
        .unload(&serving::deployment_key(&version))
        .await;
    Ok(Json(view(&version, None)))
}

/// The model versions loaded in this server process that the caller may see.
#[utoipa::path(get, path = "/v1/deployments", tag = "registry", security(("bearer" = [])),
    responses((status = 200, body = Vec<DeploymentView>)))]
pub async fn list(
    guard: Guarded<ModelsRead>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<DeploymentView>>> {
    let principal = guard.principal;
    let loaded = state.deployments().loaded().await;
    let views = loaded
        .into_iter()
        .filter(|(key, _)| principal.is_admin() || key.tenant == principal.tenant.as_str())
        .map(|(key, precision)| DeploymentView {
            tenant: key.tenant,
            model: key.model,
            version: key.version,
            loaded: true,
            precision: Some(precision.as_str().to_owned()),
        })
        .collect();
    Ok(Json(views))
}

fn view(version: &store::VersionRecord, loaded: Option<inference::Precision>) -> DeploymentView {
    DeploymentView {
        tenant: version.tenant.to_string(),
        model: version.model.to_string(),
        version: version.version,
        loaded: loaded.is_some(),
        precision: loaded.map(|p| p.as_str().to_owned()),
    }
}
