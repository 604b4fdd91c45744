//! Model cards, lineage and signatures: who owns a model, under which licence and
//! terms, where each version came from, and who signed its files.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use store::{ModelCard, ModelRecord};
use types::{Day, ModelName, ModelRef, TenantName};
use utoipa::ToSchema;

use crate::auth::{Guarded, ModelsRead, ModelsWrite, UseModels};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::{registry_error, store_error};
use crate::state::AppState;

/// A model's card. Fields that are `null` are not stated and restrict nothing.
#[derive(Serialize, ToSchema)]
pub struct CardView {
    pub model: String,
    pub tenant: String,
    pub owner: Option<String>,
    /// SPDX licence expression.
    pub license: Option<String>,
    pub description: Option<String>,
    pub intended_use: Option<String>,
    pub out_of_scope_use: Option<String>,
    /// Tenants besides the model's own that may use it; `null` means every tenant.
    pub permitted_tenants: Option<Vec<String>>,
    /// `false`: commercial tenants may not use the model.
    pub commercial_use: Option<bool>,
    /// The last day (UTC) the licence is valid, YYYY-MM-DD.
    pub license_expires: Option<String>,
    /// Text every response of the model carries (`X-Charter-Attribution`).
    pub attribution: Option<String>,
    pub latest_version: Option<i64>,
    /// Lineage of the latest version, when a job produced it.
    pub lineage: Option<LineageView>,
}

/// A new card; it replaces the whole card (omitted fields become unstated).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    pub owner: Option<String>,
    /// SPDX licence expression, e.g. `apache-2.0` or `MIT OR Apache-2.0`.
    pub license: Option<String>,
    pub description: Option<String>,
    pub intended_use: Option<String>,
    pub out_of_scope_use: Option<String>,
    /// Tenants besides the model's own that may use it; omit or `null` for every tenant.
    #[schema(value_type = Option<Vec<String>>)]
    pub permitted_tenants: Option<Vec<TenantName>>,
    pub commercial_use: Option<bool>,
    /// YYYY-MM-DD.
    #[schema(value_type = Option<String>, example = "2027-12-31")]
    pub license_expires: Option<Day>,
    pub attribution: Option<String>,
}

/// Where one version came from.
#[derive(Serialize, ToSchema)]
pub struct LineageView {
    /// The job that produced the version.
    pub job_id: Option<String>,
    /// `NAME:VERSION` of the versions it was trained from.
    pub parents: Vec<String>,
    pub datasets: Vec<DatasetLineageView>,
}

#[derive(Serialize, ToSchema)]
pub struct DatasetLineageView {
    pub name: Option<String>,
    pub sha256: String,
    pub rows: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct VersionLineageView {
    pub version: i64,
    /// SHA-256 of the version's manifest, as receipts and signatures name it.
    pub manifest_sha256: String,
    pub created_at: i64,
    /// `null` for versions that were imported rather than produced by a job.
    pub lineage: Option<LineageView>,
}

#[derive(Serialize, ToSchema)]
pub struct ModelLineage {
    pub model: String,
    pub tenant: String,
    pub versions: Vec<VersionLineageView>,
}

/// One publisher signature of a version.
#[derive(Serialize, ToSchema)]
pub struct SignatureView {
    pub key_id: String,
    /// The signer's public key (SPKI PEM) as stored with the signature.
    pub public_key: String,
    pub signed_at: i64,
    /// The signature verifies with the stored key and covers the version's files now.
    pub valid: bool,
    /// Why it does not, naming the file that differs where that is the reason.
    pub error: Option<String>,
    /// The caller's tenant trusts this key.
    pub trusted: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SignatureList {
    pub model: String,
    pub version: i64,
    pub manifest_sha256: String,
    pub signatures: Vec<SignatureView>,
    /// `null` when a key the caller's tenant trusts signed exactly these files (what a
    /// tenant that requires signed models needs); otherwise why not.
    pub refusal: Option<String>,
}

impl From<registry::VersionLineage> for LineageView {
    fn from(lineage: registry::VersionLineage) -> Self {
        Self {
            job_id: lineage.job_id,
            parents: lineage.parents,
            datasets: lineage
                .datasets
                .into_iter()
                .map(|d| DatasetLineageView {
                    name: d.name,
                    sha256: d.sha256,
                    rows: d.rows,
                })
                .collect(),
        }
    }
}

fn card_view(model: ModelRecord, lineage: Option<LineageView>) -> CardView {
    let card = model.card;
    CardView {
        model: model.name.to_string(),
        tenant: model.tenant.to_string(),
        owner: card.owner,
        license: card.license,
        description: card.description,
        intended_use: card.intended_use,
        out_of_scope_use: card.out_of_scope_use,
        permitted_tenants: card
            .permitted_tenants
            .map(|tenants| tenants.into_iter().map(String::from).collect()),
        commercial_use: card.commercial_use,
        license_expires: card.license_expires.map(|date| date.to_string()),
        attribution: card.attribution,
        latest_version: model.latest_version,
        lineage,
    }
}

/// The card of a model with the lineage of its latest version.
#[utoipa::path(get, path = "/v1/models/{name}/card", tag = "models", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = CardView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    guard: Guarded<UseModels>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<Json<CardView>> {
    let model = state
        .store()
        .find_model(&guard.principal.caller(), &name)
        .await
        .map_err(store_error)?;
    let lineage = match model.latest_version {
        Some(version) => {
            let record = state
                .store()
                .version(model.id, version)
                .await
                .map_err(store_error)?;
            match record {
                Some(record) => state
                    .registry()
                    .lineage(&record)
                    .await
                    .map_err(registry_error)?
                    .map(LineageView::from),
                None => None,
            }
        }
        None => None,
    };
    Ok(Json(card_view(model, lineage)))
}

/// Replaces the card of a model (its tenant or an admin only).
#[utoipa::path(put, path = "/v1/models/{name}/card", tag = "models", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = CardRequest,
    responses((status = 200, body = CardView), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn replace(
    guard: Guarded<ModelsWrite>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
    Json(request): Json<CardRequest>,
) -> ApiResult<Json<CardView>> {
    let card = ModelCard {
        owner: request.owner,
        license: request.license,
        description: request.description,
        intended_use: request.intended_use,
        out_of_scope_use: request.out_of_scope_use,
        permitted_tenants: request.permitted_tenants,
        commercial_use: request.commercial_use,
        license_expires: request.license_expires,
        attribution: request.attribution,
    };
    let model = state
        .registry()
        .set_card(&name, &card, &guard.principal.caller())
        .await
        .map_err(registry_error)?;
    // Admissions were decided under the old terms.
    state.admissions().clear();
    Ok(Json(card_view(model, None)))
}

/// The lineage of every version of a model, oldest first.
#[utoipa::path(get, path = "/v1/models/{name}/lineage", tag = "models", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = ModelLineage), (status = 404, body = crate::error::ErrorBody)))]
pub async fn lineage(
    guard: Guarded<UseModels>,
    State(state): State<AppState>,
    Path(name): Path<ModelName>,
) -> ApiResult<Json<ModelLineage>> {
    let (model, records) =
        super::models::model_with_versions(&state, &guard.principal.caller(), &name).await?;
    let mut versions = Vec::with_capacity(records.len());
    for record in records {
        let lineage = state
            .registry()
            .lineage(&record)
            .await
            .map_err(registry_error)?;
        versions.push(VersionLineageView {
            version: record.version,
            manifest_sha256: registry::manifest_digest(&record.manifest),
            created_at: record.created_at,
            lineage: lineage.map(LineageView::from),
        });
    }
    Ok(Json(ModelLineage {
        model: model.name.to_string(),
        tenant: model.tenant.to_string(),
        versions,
    }))
}

/// The signatures of one version, each verified against the version's files now.
#[utoipa::path(get, path = "/v1/registry/models/{name}/versions/{version}/signatures",
    tag = "registry", security(("bearer" = [])),
    params(("name" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = SignatureList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn signatures(
    guard: Guarded<ModelsRead>,
    State(state): State<AppState>,
    Path((name, version)): Path<(ModelName, i64)>,
) -> ApiResult<Json<SignatureList>> {
    let caller = guard.principal.caller();
    let model_ref = ModelRef {
        name,
        version: Some(version),
    };
    let (_, version) = state
        .store()
        .resolve(&caller, &model_ref)
        .await
        .map_err(store_error)?;
    let registry = state.registry();
    let trusted = state
        .store()
        .trusted_keys(&caller.tenant)
        .await
        .map_err(store_error)?;
    let statuses = registry
        .signatures(&version, None)
        .await
        .map_err(registry_error)?;
    let refusal = match registry.check_signed(&version, &caller.tenant).await {
        Ok(()) => None,
        Err(registry::RegistryError::Signature(error)) => Some(error.to_string()),
        Err(error) => return Err(registry_error(error)),
    };
    let signatures = statuses
        .into_iter()
        .map(|status| SignatureView {
            trusted: trusted
                .iter()
                .any(|t| t.key_id == status.key_id && t.public_key == status.public_key),
            valid: status.result.is_ok(),
            error: status.result.err().map(|e| e.to_string()),
            key_id: status.key_id,
            public_key: status.public_key,
            signed_at: status.signed_at,
        })
        .collect();
    Ok(Json(SignatureList {
        model: version.model.to_string(),
        version: version.version,
        manifest_sha256: registry::manifest_digest(&version.manifest),
        signatures,
        refusal,
    }))
}
