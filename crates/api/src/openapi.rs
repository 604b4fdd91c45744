//! The OpenAPI document, generated from the handlers' annotations.
//!
//! Checked in as `docs/openapi.json`; a test fails when the two drift apart
//! (regenerate with `cargo run -p charter -- openapi > docs/openapi.json`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::routes::{
    self, audit, cards, datasets, deploy, embeddings, explain, jobs, keys, models, privacy, system,
    tenants, trust, usage, v2,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Charter",
        description = "Self-hosted Model-as-a-Service: serve, train and govern models. \
                       Every route but /health, /ready and /metrics needs 'Authorization: Bearer <key>'."
    ),
    paths(
        system::health,
        system::ready,
        system::metrics,
        models::openai_list,
        cards::show,
        cards::replace,
        cards::lineage,
        embeddings::create,
        explain::explain,
        deploy::deploy,
        deploy::undeploy,
        deploy::list,
        models::list,
        models::show,
        models::remove,
        models::upload,
        models::show_version,
        models::remove_version,
        cards::signatures,
        tenants::list,
        tenants::create,
        tenants::remove,
        tenants::set_limits,
        trust::show,
        trust::update,
        trust::trust,
        trust::distrust,
        keys::list,
        keys::create,
        keys::revoke,
        audit::list,
        audit::proof,
        audit::checkpoint,
        audit::consistency,
        audit::receipt,
        usage::list,
        datasets::upload,
        datasets::list,
        datasets::show,
        datasets::remove,
        jobs::create,
        jobs::list,
        jobs::show,
        jobs::cancel,
        jobs::events,
        v2::live,
        v2::ready,
        v2::metadata,
        v2::version_metadata,
        v2::model_ready,
        v2::infer,
        v2::version_infer,
        privacy::redact,
        privacy::reveal,
        privacy::show_settings,
        privacy::put_settings,
        privacy::erase_subject,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        routes::CreateKeyRequest,
        routes::CreateKeyResponse,
        routes::KeyView,
        routes::CreateTenantRequest,
        routes::TenantView,
        routes::TenantLimitsRequest,
        routes::UsageList,
        routes::UsageRow,
        routes::ModelPolicyView,
        routes::ModelPolicyRequest,
        routes::TrustKeyRequest,
        routes::TrustedKeyView,
        routes::ModelList,
        routes::ModelView,
        routes::VersionView,
        routes::OpenAiModel,
        routes::OpenAiModelList,
        routes::CardView,
        routes::CardRequest,
        routes::LineageView,
        routes::DatasetLineageView,
        routes::VersionLineageView,
        routes::ModelLineage,
        routes::SignatureView,
        routes::SignatureList,
        routes::AuditEntryView,
        routes::AuditList,
        routes::ProofView,
        routes::CheckpointView,
        routes::ConsistencyView,
        routes::DatasetView,
        routes::DatasetList,
        routes::JobView,
        routes::JobList,
        routes::CreateJobRequest,
        routes::V2Health,
        routes::V2TensorMetadata,
        routes::V2ModelMetadata,
        routes::V2ModelReady,
        routes::V2InferInput,
        routes::V2InferRequest,
        routes::V2InferOutput,
        routes::V2InferResponse,
        routes::RedactRequest,
        routes::RedactMode,
        routes::RedactResponse,
        routes::EntityView,
        routes::RevealRequest,
        routes::RevealResponse,
        routes::PrivacySettingsRequest,
        routes::PrivacySettingsView,
        routes::ErasureView,
    )),
    modifiers(&BearerAuth, &SharedAnswers)
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Answers any route can give whatever its handler does, added to every operation
/// that does not document them itself: 503 with `Retry-After` (`overloaded` past
/// `--max-in-flight`, `request_timeout` past the deadline, `audit_unavailable` when
/// the audit log cannot be written) and 500 (`internal_error`).
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let answer = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.entry("500".to_owned()).or_insert_with(|| {
                    answer("internal_error: the server failed; the cause is logged")
                });
                responses.entry("503".to_owned()).or_insert_with(|| {
                    answer("overloaded, request_timeout or audit_unavailable, with Retry-After")
                });
            }
        }
    }
}

/// The document as a value.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON, exactly as checked in.
pub fn document_json() -> String {
    document()
        .to_pretty_json()
        .expect("the OpenAPI document always serialises: this is a bug")
}
