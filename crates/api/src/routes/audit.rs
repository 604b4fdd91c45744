//! The audit log over HTTP: entries (tenant-scoped), the latest signed checkpoint,
//! inclusion proofs against it, consistency proofs between checkpoints, and signed
//! receipts.

use axum::extract::State;
use axum::http::StatusCode;
use governance::audit::{self, AuditEntry, ConsistencyProof, InclusionProof};
use serde::{Deserialize, Serialize};
use store::{AuditFilter, CheckpointRecord};
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

/// A signed checkpoint: the head of the Merkle tree over the first `size` entries.
#[derive(Serialize, ToSchema)]
pub struct CheckpointView {
    pub size: i64,
    pub root: String,
    pub signed_at: i64,
    pub key_id: String,
    /// The checkpoint note: the signed text and its signature. Keep it: later
    /// checkpoints must be consistent with it (`GET /v1/audit/consistency`).
    pub checkpoint: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    /// The size of the checkpoint the caller kept.
    pub from: u64,
    /// The size of a later signed checkpoint (default: the latest).
    pub to: Option<u64>,
}

/// An RFC 9162 consistency proof: the tree of `from_size` entries is a prefix of the
/// signed tree of `to_size` entries.
#[derive(Serialize, ToSchema)]
pub struct ConsistencyView {
    pub from_size: u64,
    /// The head of the first `from_size` entries as the server holds them; check the
    /// proof against the head you kept (`charter audit check-consistency`).
    pub from_root: String,
    pub to_size: u64,
    pub to_root: String,
    pub proof: Vec<String>,
    /// The signed checkpoint note of `to_size`.
    pub checkpoint: String,
}

impl From<ConsistencyProof> for ConsistencyView {
    fn from(p: ConsistencyProof) -> Self {
        Self {
            from_size: p.from_size,
            from_root: p.from_root,
            to_size: p.to_size,
            to_root: p.to_root,
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
        .map_err(proof_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                "not_sealed",
                "this entry is not covered by a checkpoint yet; retry shortly",
            )
        })?;
    Ok(Json(proof.into()))
}

/// The latest signed checkpoint.
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit", security(("bearer" = [])),
    responses((status = 200, body = CheckpointView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn checkpoint(
    _guard: Guarded<AuditRead>,
    State(state): State<AppState>,
) -> ApiResult<Json<CheckpointView>> {
    let latest = latest_checkpoint(&state).await?;
    let note = audit::checkpoint_note(&latest).map_err(|e| ApiError::internal(&e))?;
    Ok(Json(CheckpointView {
        size: latest.size,
        root: latest.root,
        signed_at: latest.signed_at,
        key_id: latest.key_id,
        checkpoint: note,
    }))
}

/// The consistency proof from the tree of `from` entries (a checkpoint the caller
/// kept) to a later signed checkpoint (`to`, default the latest).
#[utoipa::path(get, path = "/v1/audit/consistency", tag = "audit", security(("bearer" = [])),
    params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyView), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub async fn consistency(
    _guard: Guarded<AuditRead>,
    State(state): State<AppState>,
    Query(query): Query<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyView>> {
    let to = match query.to {
        None => latest_checkpoint(&state).await?,
        Some(size) => {
            let found = match i64::try_from(size) {
                Ok(size) => state
                    .store()
                    .audit_checkpoint(size)
                    .await
                    .map_err(store_error)?,
                Err(_) => None,
            };
            found.ok_or_else(|| {
                ApiError::not_found(
                    "not_found",
                    format!(
                        "no checkpoint of {size} entries was signed; \
                         GET /v1/audit/checkpoint names the latest"
                    ),
                )
                .with_param("to")
            })?
        }
    };
    // `None`: the tree of `from` entries is larger than the checkpoint's.
    let proof = audit::consistency_proof(state.store(), query.from, &to)
        .await
        .map_err(proof_error)?
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                format!(
                    "from ({}) is above the size of the checkpoint ({}): a log only grows",
                    query.from, to.size
                ),
            )
            .with_param("from")
        })?;
    Ok(Json(proof.into()))
}

/// A failure to build a proof: 500 `audit_log_damaged` when the stored log lacks
/// entries its checkpoint covers (no proof is served from the wrong leaves), else 500.
fn proof_error(error: audit::AuditError) -> ApiError {
    match error {
        audit::AuditError::Damaged(_) => {
            tracing::error!(%error, "an audit proof cannot be built");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "audit_log_damaged",
                "the audit log lacks entries its checkpoint covers; an operator should run \
                 `charter audit verify`",
            )
        }
        error => ApiError::internal(&error),
    }
}

/// The latest checkpoint, or 404 while none is signed.
async fn latest_checkpoint(state: &AppState) -> ApiResult<CheckpointRecord> {
    state
        .store()
        .latest_checkpoint()
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                "not_sealed",
                "no checkpoint has been signed yet; retry shortly",
            )
        })
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
