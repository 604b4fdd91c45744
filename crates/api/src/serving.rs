//! Finding the model a request names and getting it loaded: resolve through the
//! registry with the caller's visibility, check it out into a private temp dir, load
//! it on its worker, and delete the checkout once the weights are in memory.

use std::sync::Arc;

use inference::{DeployError, DeploymentKey, EncoderDeployment, InferenceError};
use store::{Caller, VersionRecord};
use types::ModelRef;

use crate::error::ApiError;
use crate::state::AppState;

/// Resolves `model` (`NAME` or `NAME:VERSION`) for `caller`; unknown and invisible
/// models both answer 404 `model_not_found`.
pub async fn resolve(
    state: &AppState,
    caller: &Caller,
    model: &str,
) -> Result<VersionRecord, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "model_not_found",
            format!("the model '{model}' does not exist or you do not have access to it"),
        )
        .with_param("model")
    };
    let model_ref: ModelRef = model.parse().map_err(|_| not_found())?;
    match state.store().resolve(caller, &model_ref).await {
        Ok((_, version)) => Ok(version),
        Err(store::StoreError::NotFound(_)) => Err(not_found()),
        Err(error) => Err(crate::routes::store_error(error)),
    }
}

/// The identity of a model version as audit entries and receipts carry it: SHA-256 of
/// its manifest (every file's path, size and SHA-256), so it names the exact weights.
pub fn version_digest(version: &VersionRecord) -> String {
    use sha2::Digest;
    let manifest = serde_json::to_vec(&version.manifest).unwrap_or_default();
    hex::encode(sha2::Sha256::digest(manifest))
}

pub fn deployment_key(version: &VersionRecord) -> DeploymentKey {
    DeploymentKey {
        tenant: version.tenant.to_string(),
        model: version.model.to_string(),
        version: version.version,
    }
}

/// The loaded encoder for `version`, loading it on first use.
/// `precision: None` serves the version as it is loaded (f32 if it is not); see
/// [`inference::Deployments::encoder`].
pub async fn encoder(
    state: &AppState,
    version: &VersionRecord,
    precision: Option<inference::Precision>,
) -> Result<Arc<EncoderDeployment>, ApiError> {
    let is_encoder = ["config.json", "tokenizer.json"]
        .iter()
        .all(|f| version.manifest.file(f).is_some());
    if !is_encoder {
        return Err(ApiError::bad_request(
            "model_not_encoder",
            format!(
                "'{}' is not a text encoder (it lacks config.json or tokenizer.json); use a BERT-style embedding model",
                version.model
            ),
        )
        .with_param("model"));
    }
    let registry = state.registry().clone();
    let checkout_dir = state.config().checkout_dir.clone();
    let record = version.clone();
    state
        .deployments()
        .encoder(deployment_key(version), precision, || async move {
            std::fs::create_dir_all(&checkout_dir)
                .map_err(|e| DeployError::Prepare(e.to_string()))?;
            let temp = tempfile::Builder::new()
                .prefix("checkout-")
                .tempdir_in(&checkout_dir)
                .map_err(|e| DeployError::Prepare(e.to_string()))?;
            registry
                .checkout(&record, temp.path())
                .await
                .map_err(|e| DeployError::Prepare(e.to_string()))?;
            Ok((temp.path().to_owned(), temp))
        })
        .await
        .map_err(deploy_error)
}

pub fn deploy_error(error: DeployError) -> ApiError {
    match error {
        DeployError::Load(inference::LoadError::Engine(error)) => ApiError::bad_request(
            "model_unsupported",
            format!("the model cannot be served: {error}"),
        )
        .with_param("model"),
        DeployError::Inference(error) => inference_error(error),
        other => ApiError::internal(&other),
    }
}

pub fn inference_error(error: InferenceError) -> ApiError {
    match error {
        InferenceError::QueueFull => {
            metrics::counter!("charter_requests_shed_total").increment(1);
            ApiError::unavailable(
                "the model is overloaded; retry after the indicated delay",
                1,
            )
        }
        InferenceError::Stopped => ApiError::unavailable("the model is being unloaded; retry", 1),
        InferenceError::Failed(message) => ApiError::bad_request("inference_failed", message),
    }
}
