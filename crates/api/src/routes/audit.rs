//! The audit log over HTTP: entries (tenant-scoped), inclusion proofs against the
//! latest checkpoint, and signed receipts.

use axum::extract::State;
use governance::audit::{self, AuditEntry, InclusionProof};
use serde::{Deserialize, Serialize};
use store::AuditFilter;
use utoipa::ToSchema;

use crate::audit::audit_unavailable;
use crate::auth::{AuditRead, Guarded, Receipts};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::store_error;
use crate::state::AppState;

/// One audit entry.
#[derive(Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub recorded_at: i64,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    /// `http METHOD /route/{template}` or a change such as `models.import`.
    pub action: String,
    pub resource: String,
    pub status: i64,
    pub latency_ms: i64,
    pub request_id: Option<String>,
    pub input_sha256: Option<String>,
    pub output_sha256: Option<String>,
    pub model_digest: Option<String>,
    pub prev_hash: String,
    pub entry_hash: String,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            recorded_at: e.recorded_at,
            tenant: e.tenant,
            key_id: e.key_id,
            action: e.action,
            resource: e.resource,
            status: e.status,
            latency_ms: e.latency_ms,
            request_id: e.request_id,
            input_sha256: e.input_sha256,
            output_sha256: e.output_sha256,
            model_digest: e.model_digest,
            prev_hash: e.prev_hash,
            entry_hash: e.entry_hash,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntryView>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries after this sequence number.
    pub since_seq: Option<i64>,
    /// At most this many entries (1 to 1000, default 100).
    pub limit: Option<i64>,
    /// Only entries with exactly this action.
    pub action: Option<String>,
}

/// An RFC 9162 inclusion proof of one entry in the latest checkpoint.
#[derive(Serialize, ToSchema)]
pub struct ProofView {
    pub seq: i64,
    pub leaf_index: u64,
    pub entry_hash: String,
    pub tree_size: u64,
    pub root: String,
    pub proof: Vec<String>,
    /// The signed checkpoint note.
    pub checkpoint: String,
}

impl From<InclusionProof> for ProofView {
    fn from(p: InclusionProof) -> Self {
        Self {
            seq: p.seq,
            leaf_index: p.leaf_index,
            entry_hash: p.entry_hash,
            tree_size: p.tree_size,
            root: p.root,
            proof: p.proof,
            checkpoint: p.checkpoint,
        }
    }
}

/// Lists audit entries: a tenant's own, or all for admins.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses((status = 200, body = AuditList)))]
pub async fn list(
    guard: Guarded<AuditRead>,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> ApiResult<Json<AuditList>> {
    let principal = guard.principal;
    let filter = AuditFilter {
        tenant: (!principal.is_admin()).then(|| principal.tenant.to_string()),
        since_seq: query.since_seq.unwrap_or(0),
        action: query.action,
        limit: query.limit.unwrap_or(100).clamp(1, 1000),
    };
    let entries = state
        .store()
        .list_audit(&filter)
        .await
        .map_err(store_error)?;
    Ok(Json(AuditList {
        entries: entries
            .into_iter()
            .map(|record| AuditEntry::from(record).into())
            .collect(),
    }))
}

/// The inclusion proof of an entry against the latest signed checkpoint.
#[utoipa::path(get, path = "/v1/audit/{seq}/proof", tag = "audit", security(("bearer" = [])),
    params(("seq" = i64, Path)),
    responses((status = 200, body = ProofView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn proof(
    guard: Guarded<AuditRead>,
    State(state): State<AppState>,
    Path(seq): Path<i64>,
) -> ApiResult<Json<ProofView>> {
    visible_entry(&state, &guard.principal, seq).await?;
    let proof = audit::inclusion_proof(state.store(), seq)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| {
            ApiError::not_found(
                "not_sealed",
                "this entry is not covered by a checkpoint yet; retry shortly",
            )
        })?;
    Ok(Json(proof.into()))
}

/// A receipt: the entry's digests, model, tenant, time and status, signed by the
/// server's audit key (verify with `charter receipts verify`).
#[utoipa::path(get, path = "/v1/receipts/{seq}", tag = "audit", security(("bearer" = [])),
    params(("seq" = i64, Path)),
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn receipt(
    guard: Guarded<Receipts>,
    State(state): State<AppState>,
    Path(seq): Path<i64>,
) -> ApiResult<Json<serde_json::Value>> {
    let entry = visible_entry(&state, &guard.principal, seq).await?;
    let log = state.audit().ok_or_else(audit_unavailable)?;
    let statement = audit::receipt(&entry, log.signing_key());
    serde_json::to_value(statement)
        .map(Json)
        .map_err(|e| ApiError::internal(&e))
}

/// The entry, when the caller may see it; another tenant's entry is "not found".
async fn visible_entry(
    state: &AppState,
    principal: &governance::Principal,
    seq: i64,
) -> ApiResult<AuditEntry> {
    let not_found = || ApiError::not_found("not_found", format!("audit entry {seq} not found"));
    let record = state
        .store()
        .audit_entry(seq)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let own = record.entry.tenant.as_deref() == Some(principal.tenant.as_str());
    if !principal.is_admin() && !own {
        return Err(not_found());
    }
    Ok(record.into())
}
