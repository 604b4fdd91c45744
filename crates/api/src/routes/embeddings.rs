//! `POST /v1/embeddings`, compatible with OpenAI's API and its official clients.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::Extension;
use base64::Engine as _;
use governance::pii::Redacted;
use governance::privacy::RequestPrivacy;
use inference::EmbedRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::audit::AuditModel;
use crate::auth::{Guarded, Inference};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::limits;
use crate::privacy::{self, privacy_error};
use crate::serving;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingsRequest {
    /// `NAME` or `NAME:VERSION` of an encoder in the registry.
    pub model: String,
    /// A string, an array of strings, an array of token ids, or an array of such arrays.
    #[schema(value_type = Object)]
    pub input: Value,
    /// `float` (default) or `base64` (little-endian f32).
    pub encoding_format: Option<String>,
    /// Accepted only when equal to the model's dimension: this model cannot shorten vectors.
    pub dimensions: Option<u64>,
    /// The data subject (end user) the input is about, as OpenAI's `user`; stored
    /// payloads and pseudonyms are tagged with it for erasure (`DELETE /v1/subjects/{id}`).
    /// `X-Charter-Subject` names it as well.
    pub user: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingsResponse {
    pub object: &'static str,
    pub data: Vec<EmbeddingData>,
    pub model: String,
    pub usage: Usage,
    /// The attribution the model's licence asks for (also in `X-Charter-Attribution`);
    /// absent when it asks for none. OpenAI clients ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EmbeddingData {
    pub object: &'static str,
    pub index: usize,
    /// Floats, or a base64 string when `encoding_format` is `base64`.
    #[schema(value_type = Object)]
    pub embedding: Value,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub total_tokens: usize,
}

/// Embeds texts or token sequences with an encoder model.
#[utoipa::path(post, path = "/v1/embeddings", tag = "inference", security(("bearer" = [])),
    request_body = EmbeddingsRequest,
    responses((status = 200, body = EmbeddingsResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody, description = "license_forbidden, model_unsigned or model_signature_invalid"),
              (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody)))]
pub async fn create(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(request): Json<EmbeddingsRequest>,
) -> ApiResult<(Extension<AuditModel>, HeaderMap, Json<EmbeddingsResponse>)> {
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_encoding_format",
                format!("encoding_format must be 'float' or 'base64', not '{other}'"),
            )
            .with_param("encoding_format"))
        }
    };
    let inputs = parse_input(request.input, state.config().max_inputs)?;
    let _slot = limits::inference_slot(&state, &guard.principal)?;
    let subject = privacy::subject(&headers, request.user.as_deref())?;
    let mut privacy = state
        .privacy()
        .begin(&guard.principal.tenant, subject)
        .await
        .map_err(privacy_error)?;
    let inputs = apply_input_policy(&mut privacy, inputs)?;
    let stored_input = privacy.settings().retention_secs.map(|_| inputs.as_json());
    let admitted = serving::admit(&state, &guard.principal.caller(), &request.model).await?;
    let version = &admitted.version;
    let deployment = serving::encoder(&state, version, None).await?;
    let dim = deployment.encoder.dim();
    if let Some(dimensions) = request.dimensions {
        if dimensions != dim as u64 {
            return Err(ApiError::bad_request(
                "unsupported_dimensions",
                format!("this model returns {dim} dimensions and cannot shorten them; omit 'dimensions' or set it to {dim}"),
            )
            .with_param("dimensions"));
        }
    }
    let sequences = tokenize(&deployment.encoder, inputs).await?;
    let n_tokens: usize = sequences.iter().map(Vec::len).sum();
    let limit = state.config().max_request_tokens;
    if n_tokens > limit {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_tokens",
            format!("the request has {n_tokens} tokens; the limit is {limit} per request"),
        )
        .with_param("input"));
    }
    limits::charge_tokens(&state, &guard.principal, n_tokens).await?;
    // In parts of at most one batch, one after another: other requests are batched
    // between them, and if this request is abandoned (its deadline) the parts not yet
    // started are not computed.
    let mut vectors = Vec::with_capacity(sequences.len());
    let budget = deployment.worker.max_batch_cost();
    for part in (EmbedRequest { sequences }).split(budget) {
        let part = deployment
            .worker
            .call(part)
            .await
            .map_err(serving::inference_error)?;
        vectors.extend(part);
    }
    metrics::counter!("charter_embedding_tokens_total").increment(n_tokens as u64);
    limits::meter(&state, &guard.principal, version.model.as_str(), n_tokens);
    let vault = privacy
        .finish(privacy::request_id(&headers), "/v1/embeddings", || {
            serde_json::json!({
                "model": request.model,
                "input": stored_input,
                "embeddings": vectors.iter().map(|v| encode(v.clone(), true)).collect::<Vec<_>>(),
            })
        })
        .await
        .map_err(privacy_error)?;
    let mut response_headers = HeaderMap::new();
    if let Some(vault) = vault {
        if let Ok(value) = HeaderValue::from_str(&vault.id) {
            response_headers.insert(privacy::VAULT_HEADER, value);
        }
    }
    let data = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| EmbeddingData {
            object: "embedding",
            index,
            embedding: encode(vector, base64),
        })
        .collect();
    let response = EmbeddingsResponse {
        object: "list",
        data,
        model: request.model,
        usage: Usage {
            prompt_tokens: n_tokens,
            total_tokens: n_tokens,
        },
        attribution: admitted.attribution.clone(),
    };
    // The audit entry and the receipt name the exact version that answered.
    let answered_by = AuditModel(admitted.digest.clone());
    response_headers.extend(serving::attribution_headers(
        response.attribution.as_deref(),
    ));
    Ok((Extension(answered_by), response_headers, Json(response)))
}

/// What a request asks to embed, validated for shape before any model work.
pub(crate) enum Inputs {
    Texts(Vec<String>),
    Tokens(Vec<Vec<u32>>),
}

impl Inputs {
    /// The inputs as the model sees them, for a stored payload.
    fn as_json(&self) -> Value {
        match self {
            Inputs::Texts(texts) => Value::from(texts.clone()),
            Inputs::Tokens(sequences) => serde_json::json!(sequences),
        }
    }
}

/// The tenant's input policy, before the model sees anything: with `redact` or
/// `pseudonymize` the model embeds the rewritten text. Token ids cannot be checked, so
/// they pass only a policy that changes nothing.
fn apply_input_policy(privacy: &mut RequestPrivacy, inputs: Inputs) -> ApiResult<Inputs> {
    match inputs {
        Inputs::Texts(texts) => {
            tracing::debug!(input = %privacy.for_log(&texts.join(" | ")), "embeddings request");
            let seen = privacy.input(&texts).map_err(privacy_error)?;
            Ok(Inputs::Texts(
                seen.into_iter().map(Redacted::into_string).collect(),
            ))
        }
        Inputs::Tokens(sequences) => {
            privacy
                .require_checkable("token id inputs")
                .map_err(privacy_error)?;
            Ok(Inputs::Tokens(sequences))
        }
    }
}

fn invalid_input(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_input", message).with_param("input")
}

pub(crate) fn parse_input(input: Value, max_inputs: usize) -> ApiResult<Inputs> {
    const SHAPE: &str = "input must be a string, an array of strings, an array of token ids, or an array of arrays of token ids";
    let items = match input {
        Value::String(text) => vec![Value::String(text)],
        Value::Array(items) if items.is_empty() => {
            return Err(invalid_input("input must not be an empty array"))
        }
        Value::Array(items) if items.iter().all(Value::is_number) => vec![Value::Array(items)],
        Value::Array(items) => items,
        _ => return Err(invalid_input(SHAPE)),
    };
    if items.len() > max_inputs {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_inputs",
            format!(
                "the request has {} inputs; the limit is {max_inputs}",
                items.len()
            ),
        )
        .with_param("input"));
    }
    if items.iter().all(Value::is_string) {
        let texts: Vec<String> = items
            .into_iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect();
        if let Some(index) = texts.iter().position(String::is_empty) {
            return Err(invalid_input(format!(
                "input[{index}] is empty; every input needs some text"
            )));
        }
        return Ok(Inputs::Texts(texts));
    }
    let mut sequences = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let Value::Array(ids) = item else {
            return Err(invalid_input(SHAPE));
        };
        if ids.is_empty() {
            return Err(invalid_input(format!(
                "input[{index}] is an empty token array"
            )));
        }
        let ids = ids
            .iter()
            .map(|id| id.as_u64().and_then(|id| u32::try_from(id).ok()))
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| {
                invalid_input(format!(
                    "input[{index}] must hold token ids: whole numbers from 0"
                ))
            })?;
        sequences.push(ids);
    }
    Ok(Inputs::Tokens(sequences))
}

/// Token ids for every input: texts are tokenised (truncated as sentence-transformers
/// does), token arrays are checked against the vocabulary and the length limit.
async fn tokenize(
    encoder: &std::sync::Arc<engine::encoder::Encoder>,
    inputs: Inputs,
) -> ApiResult<Vec<Vec<u32>>> {
    match inputs {
        Inputs::Texts(texts) => {
            let encoder = encoder.clone();
            let encodings = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                encoder.tokenize(&refs)
            })
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| invalid_input(format!("the input could not be tokenised: {e}")))?;
            Ok(encodings.into_iter().map(|e| e.ids).collect())
        }
        Inputs::Tokens(sequences) => {
            let (vocab, max_len) = (encoder.vocab_size(), encoder.max_seq_length());
            for (index, ids) in sequences.iter().enumerate() {
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                    return Err(invalid_input(format!(
                        "input[{index}] holds token id {bad}, outside this model's vocabulary of {vocab}"
                    )));
                }
                if ids.len() > max_len {
                    return Err(invalid_input(format!(
                        "input[{index}] has {} tokens; this model takes at most {max_len}",
                        ids.len()
                    )));
                }
            }
            Ok(sequences)
        }
    }
}

fn encode(vector: Vec<f32>, base64: bool) -> Value {
    if base64 {
        let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
        Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Value::from(vector)
    }
}
