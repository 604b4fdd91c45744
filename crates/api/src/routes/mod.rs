//! Every route of the API, listed once.
//!
//! [`table`] is the single source for the router and for the route × permission
//! test: a route is either public (listed here with `scopes: None`, which only the
//! health, readiness and metrics routes are) or requires the scopes named.

pub(crate) mod audit;
pub(crate) mod cards;
pub(crate) mod datasets;
pub(crate) mod deploy;
pub(crate) mod embeddings;
pub(crate) mod explain;
pub(crate) mod jobs;
pub(crate) mod keys;
pub(crate) mod models;
pub(crate) mod privacy;
pub(crate) mod system;
pub(crate) mod tenants;
pub(crate) mod trust;
pub(crate) mod usage;
pub(crate) mod v2;

use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use types::Scope;

use crate::auth::{self, Permission};
use crate::error::ApiError;
use crate::state::AppState;

pub use audit::{AuditEntryView, AuditList, CheckpointView, ConsistencyView, ProofView};
pub use cards::{
    CardRequest, CardView, DatasetLineageView, LineageView, ModelLineage, SignatureList,
    SignatureView, VersionLineageView,
};
pub use datasets::{DatasetList, DatasetView};
pub use jobs::{CreateJobRequest, JobList, JobView};
pub use keys::{CreateKeyRequest, CreateKeyResponse, KeyView};
pub use models::{ModelList, ModelView, OpenAiModel, OpenAiModelList, VersionView};
pub use privacy::{
    EntityView, ErasureView, PrivacySettingsRequest, PrivacySettingsView, RedactMode,
    RedactRequest, RedactResponse, RevealRequest, RevealResponse,
};
pub use tenants::{CreateTenantRequest, TenantLimitsRequest, TenantView};
pub use trust::{ModelPolicyRequest, ModelPolicyView, TrustKeyRequest, TrustedKeyView};
pub use usage::{UsageList, UsageRow};
pub use v2::{
    V2Health, V2InferInput, V2InferOutput, V2InferRequest, V2InferResponse, V2ModelMetadata,
    V2ModelReady, V2TensorMetadata,
};

/// One route: its method, path template, who may call it, and its handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// `None` for the public allowlist; otherwise any one of these scopes suffices.
    pub scopes: Option<&'static [Scope]>,
    pub handler: MethodRouter<AppState>,
}

fn route<P: Permission>(
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        scopes: Some(P::SCOPES),
        handler,
    }
}

fn public(path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        method: Method::GET,
        path,
        scopes: None,
        handler,
    }
}

/// The routes whose POST body is a streamed upload (up to `--max-upload-mb`): they
/// have no whole-request deadline, only a limit on the pause between two chunks (see
/// `upload::stage_body`), so a large upload on a slow link is not cut off.
pub(crate) const UPLOAD_ROUTES: [&str; 2] = ["/v1/registry/models/{name}/versions", "/v1/datasets"];

/// The public routes: health, readiness and metrics probes, which need no key and
/// are never shed (see `limits::server_place`).
pub(crate) const PROBES: [&str; 5] = [
    "/health",
    "/ready",
    "/metrics",
    "/v2/health/live",
    "/v2/health/ready",
];

/// All routes of the API.
pub fn table() -> Vec<Route> {
    use Method as M;
    vec![
        public(PROBES[0], get(system::health)),
        public(PROBES[1], get(system::ready)),
        public(PROBES[2], get(system::metrics)),
        public(PROBES[3], get(v2::live)),
        public(PROBES[4], get(v2::ready)),
        route::<auth::Inference>(M::GET, "/v2/models/{name}", get(v2::metadata)),
        route::<auth::Inference>(M::GET, "/v2/models/{name}/ready", get(v2::model_ready)),
        route::<auth::Inference>(M::POST, "/v2/models/{name}/infer", post(v2::infer)),
        route::<auth::Inference>(
            M::GET,
            "/v2/models/{name}/versions/{version}",
            get(v2::version_metadata),
        ),
        route::<auth::Inference>(
            M::POST,
            "/v2/models/{name}/versions/{version}/infer",
            post(v2::version_infer),
        ),
        route::<auth::UseModels>(M::GET, "/v1/models", get(models::openai_list)),
        route::<auth::UseModels>(M::GET, "/v1/models/{name}/card", get(cards::show)),
        route::<auth::ModelsWrite>(M::PUT, "/v1/models/{name}/card", put(cards::replace)),
        route::<auth::UseModels>(M::GET, "/v1/models/{name}/lineage", get(cards::lineage)),
        route::<auth::Inference>(M::POST, "/v1/embeddings", post(embeddings::create)),
        route::<auth::Inference>(M::POST, "/v1/explain", post(explain::explain)),
        route::<auth::ModelsWrite>(
            M::POST,
            "/v1/registry/models/{name}/deploy",
            post(deploy::deploy),
        ),
        route::<auth::ModelsWrite>(
            M::POST,
            "/v1/registry/models/{name}/undeploy",
            post(deploy::undeploy),
        ),
        route::<auth::ModelsRead>(M::GET, "/v1/deployments", get(deploy::list)),
        route::<auth::ModelsRead>(M::GET, "/v1/registry/models", get(models::list)),
        route::<auth::ModelsRead>(M::GET, "/v1/registry/models/{name}", get(models::show)),
        route::<auth::ModelsWrite>(
            M::DELETE,
            "/v1/registry/models/{name}",
            delete(models::remove),
        ),
        route::<auth::ModelsWrite>(
            M::POST,
            UPLOAD_ROUTES[0],
            post(models::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        ),
        route::<auth::ModelsRead>(
            M::GET,
            "/v1/registry/models/{name}/versions/{version}",
            get(models::show_version),
        ),
        route::<auth::ModelsWrite>(
            M::DELETE,
            "/v1/registry/models/{name}/versions/{version}",
            delete(models::remove_version),
        ),
        route::<auth::ModelsRead>(
            M::GET,
            "/v1/registry/models/{name}/versions/{version}/signatures",
            get(cards::signatures),
        ),
        route::<auth::Data>(
            M::POST,
            UPLOAD_ROUTES[1],
            post(datasets::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        ),
        route::<auth::Data>(M::GET, "/v1/datasets", get(datasets::list)),
        route::<auth::Data>(M::GET, "/v1/datasets/{name}", get(datasets::show)),
        route::<auth::Data>(M::DELETE, "/v1/datasets/{name}", delete(datasets::remove)),
        route::<auth::Jobs>(M::POST, "/v1/jobs", post(jobs::create)),
        route::<auth::Jobs>(M::GET, "/v1/jobs", get(jobs::list)),
        route::<auth::Jobs>(M::GET, "/v1/jobs/{id}", get(jobs::show)),
        route::<auth::Jobs>(M::POST, "/v1/jobs/{id}/cancel", post(jobs::cancel)),
        route::<auth::Jobs>(M::GET, "/v1/jobs/{id}/events", get(jobs::events)),
        route::<auth::Admin>(M::GET, "/v1/tenants", get(tenants::list)),
        route::<auth::Admin>(M::POST, "/v1/tenants", post(tenants::create)),
        route::<auth::Admin>(M::DELETE, "/v1/tenants/{name}", delete(tenants::remove)),
        route::<auth::Admin>(
            M::PUT,
            "/v1/tenants/{name}/limits",
            put(tenants::set_limits),
        ),
        route::<auth::Admin>(M::GET, "/v1/tenants/{name}/model-policy", get(trust::show)),
        route::<auth::Admin>(
            M::PATCH,
            "/v1/tenants/{name}/model-policy",
            patch(trust::update),
        ),
        route::<auth::Admin>(
            M::POST,
            "/v1/tenants/{name}/trusted-keys",
            post(trust::trust),
        ),
        route::<auth::Admin>(
            M::DELETE,
            "/v1/tenants/{name}/trusted-keys/{id}",
            delete(trust::distrust),
        ),
        route::<auth::Admin>(M::GET, "/v1/keys", get(keys::list)),
        route::<auth::Admin>(M::POST, "/v1/keys", post(keys::create)),
        route::<auth::Admin>(M::DELETE, "/v1/keys/{id}", delete(keys::revoke)),
        route::<auth::AuditRead>(M::GET, "/v1/audit", get(audit::list)),
        route::<auth::AuditRead>(M::GET, "/v1/audit/{seq}/proof", get(audit::proof)),
        route::<auth::AuditRead>(M::GET, "/v1/audit/checkpoint", get(audit::checkpoint)),
        route::<auth::AuditRead>(M::GET, "/v1/audit/consistency", get(audit::consistency)),
        route::<auth::Receipts>(M::GET, "/v1/receipts/{seq}", get(audit::receipt)),
        route::<auth::Usage>(M::GET, "/v1/usage", get(usage::list)),
        route::<auth::Inference>(M::POST, "/v1/privacy/redact", post(privacy::redact)),
        route::<auth::PiiReveal>(M::POST, "/v1/privacy/reveal", post(privacy::reveal)),
        route::<auth::Admin>(
            M::GET,
            "/v1/tenants/{name}/privacy",
            get(privacy::show_settings),
        ),
        route::<auth::Admin>(
            M::PUT,
            "/v1/tenants/{name}/privacy",
            put(privacy::put_settings),
        ),
        route::<auth::Data>(
            M::DELETE,
            "/v1/subjects/{id}",
            delete(privacy::erase_subject),
        ),
    ]
}

pub async fn not_found() -> ApiError {
    ApiError::not_found(
        "route_not_found",
        "no such route; see /docs/openapi.json for the API",
    )
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that HTTP method",
    )
}

/// Maps store errors to the error table: conflicts and not-found keep their
/// messages (written for users); everything else is internal.
pub(crate) fn store_error(error: store::StoreError) -> ApiError {
    use store::StoreError as E;
    match error {
        E::NotFound(_) => ApiError::not_found("not_found", error.to_string()),
        E::Conflict(_) => ApiError::conflict("already_exists", error.to_string()),
        E::Ambiguous(_) => ApiError::conflict("ambiguous_name", error.to_string()),
        E::Forbidden(_) => ApiError::forbidden("forbidden", error.to_string()),
        other => ApiError::failure(&other),
    }
}

/// Maps registry errors: refused imports are the user's to fix (400/415), the rest
/// follows the store's table.
pub(crate) fn registry_error(error: registry::RegistryError) -> ApiError {
    use registry::{ImportError as I, RegistryError as E};
    match error {
        E::Invalid(I::PickleCheckpoint { .. } | I::PickleContent { .. } | I::ZipArchive { .. }) => {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "pickle_refused",
                error.to_string(),
            )
        }
        E::Invalid(_) => ApiError::bad_request("invalid_model", error.to_string()),
        E::InvalidCard(_) => ApiError::bad_request("invalid_card", error.to_string()),
        E::Signature(registry::SignatureError::Unsigned { .. }) => {
            ApiError::forbidden("model_unsigned", error.to_string()).with_param("model")
        }
        E::Signature(_) => {
            ApiError::forbidden("model_signature_invalid", error.to_string()).with_param("model")
        }
        E::NotFound(_) => ApiError::not_found("model_not_found", error.to_string()),
        E::Forbidden(_) => ApiError::forbidden("forbidden", error.to_string()),
        E::Conflict(_) => ApiError::conflict("already_exists", error.to_string()),
        E::Ambiguous(_) => ApiError::conflict("ambiguous_name", error.to_string()),
        E::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!("the upload exceeds the limit of {limit} bytes"),
        ),
        other => ApiError::failure(&other),
    }
}
