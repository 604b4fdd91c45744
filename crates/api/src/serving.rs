//! Finding the model a request names and getting it loaded: resolve through the
//! registry with the caller's visibility, check the licence terms and (where the
//! tenant requires it) the signature, check it out into a private temp dir, load it on
//! its worker, and delete the checkout once the weights are in memory.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use inference::{DeployError, DeploymentKey, EncoderDeployment, InferenceError};
use store::{Caller, ModelRecord, VersionRecord};
use types::{Day, ModelRef};

use crate::error::ApiError;
use crate::state::AppState;

/// Resolves `model` (`NAME` or `NAME:VERSION`) for `caller`; unknown and invisible
/// models both answer 404 `model_not_found`.
pub async fn resolve(
    state: &AppState,
    caller: &Caller,
    model: &str,
) -> Result<VersionRecord, ApiError> {
    resolve_model(state, caller, model)
        .await
        .map(|(_, version)| version)
}

/// Like [`resolve`], with the model (and so its card).
async fn resolve_model(
    state: &AppState,
    caller: &Caller,
    model: &str,
) -> Result<(ModelRecord, VersionRecord), ApiError> {
    let not_found = || {
        ApiError::not_found(
            "model_not_found",
            format!("the model '{model}' does not exist or you do not have access to it"),
        )
        .with_param("model")
    };
    let model_ref: ModelRef = model.parse().map_err(|_| not_found())?;
    match state.store().resolve(caller, &model_ref).await {
        Ok(resolved) => Ok(resolved),
        Err(store::StoreError::NotFound(_)) => Err(not_found()),
        Err(error) => Err(crate::routes::store_error(error)),
    }
}

/// A version that may serve the caller, and what its responses must carry.
pub struct Admitted {
    pub version: VersionRecord,
    /// [`version_digest`] of `version`, computed once per admission.
    pub digest: String,
    /// Text the model's licence asks every response to carry.
    pub attribution: Option<String>,
}

/// Resolves `model` for `caller` and checks that it may serve the caller's tenant:
/// the licence terms of its card (403 `license_forbidden`) and, for tenants that
/// require signed models, a trusted signature over exactly its files (403
/// `model_unsigned` / `model_signature_invalid`). The audit layer records refusals.
///
/// An admission is reused for [`ADMISSION_TTL`] per caller and model reference, so the
/// request path does not query the store each time; card and model-policy changes made
/// through this process clear the cache, changes made elsewhere apply within the TTL.
/// Tenants that require signed models are checked on every request.
pub async fn admit(
    state: &AppState,
    caller: &Caller,
    model: &str,
) -> Result<Arc<Admitted>, ApiError> {
    let alias = format!("{}|{}|{model}", caller.tenant, caller.is_admin);
    if let Some(admitted) = state.admissions().get(&alias) {
        return Ok(admitted);
    }
    let (model, version) = resolve_model(state, caller, model).await?;
    let (attribution, signed_only) = check_terms(state, caller, &model, &version).await?;
    let admitted = Arc::new(Admitted {
        digest: version_digest(&version),
        version,
        attribution,
    });
    if !signed_only {
        state.admissions().put(alias, admitted.clone());
    }
    Ok(admitted)
}

/// How long [`admit`] reuses an admission.
pub const ADMISSION_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Admissions by caller and model reference, for [`ADMISSION_TTL`]. Cheap to clone.
#[derive(Clone)]
pub struct Admissions {
    entries: types::TtlCache<String, Arc<Admitted>>,
}

impl Default for Admissions {
    fn default() -> Self {
        Self {
            entries: types::TtlCache::new(ADMISSION_TTL),
        }
    }
}

impl Admissions {
    fn get(&self, alias: &str) -> Option<Arc<Admitted>> {
        self.entries.get(alias)
    }

    fn put(&self, alias: String, admitted: Arc<Admitted>) {
        self.entries.put(alias, admitted);
    }

    /// Forgets every admission (a card or a tenant's model policy changed here).
    pub fn clear(&self) {
        self.entries.clear();
    }
}

/// The checks of [`admit`] for an already resolved version; returns the attribution.
pub async fn check_admission(
    state: &AppState,
    caller: &Caller,
    model: &ModelRecord,
    version: &VersionRecord,
) -> Result<Option<String>, ApiError> {
    Ok(check_terms(state, caller, model, version).await?.0)
}

/// [`check_admission`], also saying whether the tenant requires signed models.
async fn check_terms(
    state: &AppState,
    caller: &Caller,
    model: &ModelRecord,
    version: &VersionRecord,
) -> Result<(Option<String>, bool), ApiError> {
    let policy = state
        .store()
        .serving_policy(&caller.tenant)
        .await
        .map_err(crate::routes::store_error)?;
    registry::cards::check_terms(model, &caller.tenant, &policy, Day::today()).map_err(
        |denied| ApiError::forbidden("license_forbidden", denied.to_string()).with_param("model"),
    )?;
    if policy.require_signed_models {
        state
            .registry()
            .check_signed(version, &caller.tenant)
            .await
            .map_err(crate::routes::registry_error)?;
    }
    Ok((model.card.attribution.clone(), policy.require_signed_models))
}

/// Header carrying the attribution a model's licence asks for.
pub const ATTRIBUTION_HEADER: HeaderName = HeaderName::from_static("x-charter-attribution");

/// The `X-Charter-Attribution` header for `attribution`: its UTF-8 with `%`, controls
/// and non-ASCII bytes percent-encoded (so plain ASCII text reads as is).
pub fn attribution_headers(attribution: Option<&str>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(text) = attribution {
        let mut encoded = String::with_capacity(text.len());
        for byte in text.bytes() {
            if (0x20..0x7f).contains(&byte) && byte != b'%' {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        if let Ok(value) = HeaderValue::from_str(&encoded) {
            headers.insert(ATTRIBUTION_HEADER, value);
        }
    }
    headers
}

/// The identity of a model version as audit entries and receipts carry it: SHA-256 of
/// its manifest (every file's path, size and SHA-256), so it names the exact weights.
pub fn version_digest(version: &VersionRecord) -> String {
    registry::manifest_digest(&version.manifest)
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
        .map_err(|error| deploy_error(error, &state.config().checkout_dir))
}

/// The answer for a model that could not be deployed. The engine names files by their
/// path in the server's checkout directory (under `checkout_dir`); clients get them
/// relative to the model instead, so no server path leaves in an error body.
pub fn deploy_error(error: DeployError, checkout_dir: &std::path::Path) -> ApiError {
    match error {
        DeployError::Load(inference::LoadError::Engine(error)) => ApiError::bad_request(
            "model_unsupported",
            format!(
                "the model cannot be served: {}",
                relative_to_model(&error.to_string(), checkout_dir)
            ),
        )
        .with_param("model"),
        DeployError::Inference(error) => inference_error(error),
        other => ApiError::internal(&other),
    }
}

/// `message` with each `CHECKOUT_DIR/checkout-XXXX/` replaced by nothing (the file
/// names that follow are the model's own) and a bare `CHECKOUT_DIR/checkout-XXXX` by
/// "the model folder".
fn relative_to_model(message: &str, checkout_dir: &std::path::Path) -> String {
    let prefix = format!("{}/", checkout_dir.display());
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(&prefix) {
        out.push_str(&rest[..at]);
        let after = &rest[at + prefix.len()..];
        let name_end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(after.len());
        rest = match after[name_end..].strip_prefix('/') {
            Some(file) => file,
            None => {
                out.push_str("the model folder");
                &after[name_end..]
            }
        };
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod tests {
    use super::relative_to_model;
    use std::path::Path;

    #[test]
    fn checkout_paths_become_model_paths() {
        let dir = Path::new("/srv/charter data/checkouts");
        let relative = |message: &str| relative_to_model(message, dir);
        assert_eq!(
            relative("invalid /srv/charter data/checkouts/checkout-a1B_2/config.json: eof"),
            "invalid config.json: eof"
        );
        assert_eq!(
            relative("no safetensors weights in /srv/charter data/checkouts/checkout-x9; pickle"),
            "no safetensors weights in the model folder; pickle"
        );
        assert_eq!(
            relative("/srv/charter data/checkouts/checkout-1/a/b.json and /srv/charter data/checkouts/checkout-1/c"),
            "a/b.json and c"
        );
        assert_eq!(relative("tokenizer error: bad"), "tokenizer error: bad");
    }
}
