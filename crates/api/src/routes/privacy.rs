//! Privacy endpoints: redaction of a text under the tenant's policy, reveal of
//! pseudonyms (scope `pii:reveal`, each call audited with the vault entry it opened),
//! tenants' privacy settings (admin), and erasure of a data subject.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Extension;
use governance::pii::{Action, Entity, Policy};
use governance::privacy::{self, PrivacySettings, Subject};
use serde::{Deserialize, Serialize};
use types::TenantName;
use utoipa::ToSchema;

use crate::audit::AuditResource;
use crate::auth::{Admin, Data, Guarded, Inference, PiiReveal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::privacy::{privacy_error, request_id, subject};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedactRequest {
    pub text: String,
    /// `redact` or `pseudonymize` every kind; without it the tenant's input policy
    /// applies, with `allow` read as `redact`.
    pub mode: Option<RedactMode>,
    /// The data subject the text is about (or send `X-Charter-Subject`).
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedactMode {
    Redact,
    Pseudonymize,
}

#[derive(Serialize, ToSchema)]
pub struct RedactResponse {
    pub text: String,
    /// What was found, with offsets into the *original* text counted in Unicode code
    /// points (Python string indices), `end` exclusive.
    pub entities: Vec<EntityView>,
    /// With pseudonyms: the vault entry that reveals them (scope `pii:reveal`).
    pub vault_id: Option<String>,
    /// When the vault entry stops being revealable (seconds since the epoch).
    pub vault_expires_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct EntityView {
    /// `email`, `phone`, `card`, `iban`, `cn_id`, `ssn`, `ip` or `secret`.
    #[serde(rename = "type")]
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealRequest {
    /// The `vault_id` a redaction (or an `X-Charter-Vault-Id` header) returned.
    pub vault_id: String,
    /// Text holding pseudonyms such as `<EMAIL_1>`.
    pub text: String,
}

#[derive(Serialize, ToSchema)]
pub struct RevealResponse {
    pub text: String,
}

/// A tenant's privacy settings. Omitted fields take the defaults: inputs and outputs
/// `{"default": "allow"}`, logs `{"default": "redact"}`, no payload storage, vault
/// entries revealable for 86400 seconds.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacySettingsRequest {
    /// PII policy for model inputs, e.g. `{"default": "redact", "actions": {"secret": "block"}}`.
    #[schema(value_type = Option<Object>)]
    pub input: Option<Policy>,
    /// PII policy for generated text.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Policy>,
    /// PII policy for log lines: only `redact` and `block` are accepted.
    #[schema(value_type = Option<Object>)]
    pub logs: Option<Policy>,
    /// Keep request and response payloads (sealed) for this long; absent or null: do
    /// not store them.
    pub retention_secs: Option<i64>,
    pub vault_ttl_secs: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct PrivacySettingsView {
    pub tenant: String,
    #[schema(value_type = Object)]
    pub input: Policy,
    #[schema(value_type = Object)]
    pub output: Policy,
    #[schema(value_type = Object)]
    pub logs: Policy,
    pub retention_secs: Option<i64>,
    pub vault_ttl_secs: i64,
}

impl PrivacySettingsView {
    fn new(tenant: &TenantName, settings: PrivacySettings) -> Self {
        Self {
            tenant: tenant.to_string(),
            input: settings.policies.input,
            output: settings.policies.output,
            logs: settings.policies.logs,
            retention_secs: settings.retention_secs,
            vault_ttl_secs: settings.vault_ttl_secs,
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SubjectQuery {
    /// Admins only: the tenant whose records to erase (default: the caller's).
    #[param(value_type = Option<String>)]
    pub tenant: Option<TenantName>,
}

#[derive(Serialize, ToSchema)]
pub struct ErasureView {
    pub tenant: String,
    /// Stored request/response payloads erased.
    pub payloads: u64,
    /// Pseudonym vault entries erased.
    pub vault_entries: u64,
    /// Dataset rows tagged with the subject (JSONL `"subject"` key, CSV `subject` column), erased.
    pub dataset_rows: u64,
    /// Datasets rewritten without those rows (or removed, when none was left).
    pub datasets: Vec<String>,
}

/// Redacts or pseudonymizes personal data in a text.
#[utoipa::path(post, path = "/v1/privacy/redact", tag = "privacy", security(("bearer" = [])),
    request_body = RedactRequest,
    responses((status = 200, body = RedactResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody)))]
pub async fn redact(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<RedactRequest>,
) -> ApiResult<Json<RedactResponse>> {
    let subject = subject(&headers, request.user.as_deref())?;
    let mut scope = state
        .privacy()
        .begin(&guard.principal.tenant, subject)
        .await
        .map_err(privacy_error)?;
    let input = &scope.settings().policies.input;
    let policy = match request.mode {
        Some(RedactMode::Redact) => Policy::new(Action::Redact),
        Some(RedactMode::Pseudonymize) => Policy::new(Action::Pseudonymize),
        None => privacy::redaction_policy(input),
    }
    .with_max_input_bytes(input.max_input_bytes);
    let checked = scope
        .check_with(&request.text, &policy)
        .map_err(privacy_error)?;
    let vault = scope
        .finish(
            request_id(&headers),
            "/v1/privacy/redact",
            || serde_json::json!({ "text": checked.text.as_str() }),
        )
        .await
        .map_err(privacy_error)?;
    Ok(Json(RedactResponse {
        entities: char_offsets(&request.text, &checked.entities),
        text: checked.text.into_string(),
        vault_id: vault.as_ref().map(|vault| vault.id.clone()),
        vault_expires_at: vault.map(|vault| vault.expires_at),
    }))
}

/// Puts the original values back for the pseudonyms of a vault entry (audited).
#[utoipa::path(post, path = "/v1/privacy/reveal", tag = "privacy", security(("bearer" = [])),
    request_body = RevealRequest,
    responses((status = 200, body = RevealResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reveal(
    guard: Guarded<PiiReveal>,
    State(state): State<AppState>,
    Json(request): Json<RevealRequest>,
) -> ApiResult<(Extension<AuditResource>, Json<RevealResponse>)> {
    let text = state
        .privacy()
        .reveal(&guard.principal.tenant, &request.vault_id, &request.text)
        .await
        .map_err(privacy_error)?;
    // The audit entry names the vault entry that was opened.
    let resource = AuditResource(format!("/v1/privacy/reveal/{}", request.vault_id));
    Ok((Extension(resource), Json(RevealResponse { text })))
}

/// A tenant's privacy settings (the defaults until set).
#[utoipa::path(get, path = "/v1/tenants/{name}/privacy", tag = "privacy", security(("bearer" = [])),
    params(("name" = String, Path)),
    responses((status = 200, body = PrivacySettingsView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show_settings(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
) -> ApiResult<Json<PrivacySettingsView>> {
    existing_tenant(&state, &name).await?;
    let settings = state
        .privacy()
        .settings(&name)
        .await
        .map_err(privacy_error)?;
    Ok(Json(PrivacySettingsView::new(&name, settings)))
}

/// Replaces a tenant's privacy settings.
#[utoipa::path(put, path = "/v1/tenants/{name}/privacy", tag = "privacy", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = PrivacySettingsRequest,
    responses((status = 200, body = PrivacySettingsView), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn put_settings(
    _guard: Guarded<Admin>,
    State(state): State<AppState>,
    Path(name): Path<TenantName>,
    Json(request): Json<PrivacySettingsRequest>,
) -> ApiResult<Json<PrivacySettingsView>> {
    existing_tenant(&state, &name).await?;
    let mut settings = PrivacySettings::default();
    if let Some(input) = request.input {
        settings.policies.input = input;
    }
    if let Some(output) = request.output {
        settings.policies.output = output;
    }
    if let Some(logs) = request.logs {
        settings.policies.logs = logs;
    }
    settings.retention_secs = request.retention_secs;
    if let Some(ttl) = request.vault_ttl_secs {
        settings.vault_ttl_secs = ttl;
    }
    let settings = state
        .privacy()
        .set_settings(&name, settings)
        .await
        .map_err(privacy_error)?;
    Ok(Json(PrivacySettingsView::new(&name, settings)))
}

/// Erases a data subject: the stored payloads and vault entries of requests that named
/// it, and the dataset rows tagged with it. The audit entry records the subject's keyed
/// tag, not its id.
#[utoipa::path(delete, path = "/v1/subjects/{id}", tag = "privacy", security(("bearer" = [])),
    params(("id" = String, Path), SubjectQuery),
    responses((status = 200, body = ErasureView), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn erase_subject(
    guard: Guarded<Data>,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SubjectQuery>,
) -> ApiResult<(Extension<AuditResource>, Json<ErasureView>)> {
    let tenant = match query.tenant {
        Some(tenant) if tenant != guard.principal.tenant && !guard.principal.is_admin() => {
            return Err(ApiError::forbidden(
                "forbidden",
                "only admins may erase subjects of another tenant",
            ))
        }
        Some(tenant) => {
            existing_tenant(&state, &tenant).await?;
            tenant
        }
        None => guard.principal.tenant.clone(),
    };
    let subject = Subject::parse(&id)
        .map_err(|error| ApiError::bad_request("invalid_subject", error.to_string()))?;
    let privacy = state.privacy();
    let tag = privacy
        .subject_tag(&tenant, &subject)
        .await
        .map_err(privacy_error)?;
    let erased = privacy
        .erase_subject(&tenant, &subject)
        .await
        .map_err(privacy_error)?;
    let datasets = jobs::Datasets::new(state.registry().clone())
        .erase_subject(&tenant, subject.as_str())
        .await
        .map_err(crate::routes::datasets::jobs_error)?;
    let resource = AuditResource(format!("/v1/subjects/tag:{tag}"));
    Ok((
        Extension(resource),
        Json(ErasureView {
            tenant: tenant.to_string(),
            payloads: erased.payloads,
            vault_entries: erased.vault_entries,
            dataset_rows: datasets.rows,
            datasets: datasets.datasets,
        }),
    ))
}

async fn existing_tenant(state: &AppState, name: &TenantName) -> ApiResult<()> {
    match state.store().tenant_by_name(name).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ApiError::not_found(
            "not_found",
            format!("tenant '{name}' not found"),
        )),
        Err(error) => Err(crate::routes::store_error(error)),
    }
}

/// Entities with their byte offsets turned into code point offsets, in one pass.
fn char_offsets(text: &str, entities: &[Entity]) -> Vec<EntityView> {
    let mut views = Vec::with_capacity(entities.len());
    let (mut byte, mut chars) = (0usize, 0usize);
    let mut advance = |to: usize| {
        chars += text.get(byte..to).map_or(0, |part| part.chars().count());
        byte = to.max(byte);
        chars
    };
    for entity in entities {
        let start = advance(entity.start);
        let end = advance(entity.end);
        views.push(EntityView {
            kind: entity.kind.as_str().to_owned(),
            start,
            end,
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_code_points() {
        let text = "邮箱 a@b.io，卡 4111 1111 1111 1111";
        let entities = governance::pii::detect(text).unwrap();
        let views = char_offsets(text, &entities);
        let chars: Vec<char> = text.chars().collect();
        let spans: Vec<String> = views
            .iter()
            .map(|view| chars[view.start..view.end].iter().collect())
            .collect();
        assert_eq!(spans, ["a@b.io", "4111 1111 1111 1111"]);
        assert_eq!(views[0].kind, "email");
    }
}
