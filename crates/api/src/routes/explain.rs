//! `POST /v1/explain`: why a model answered as it did.
//!
//! Tensor models get integrated-gradients attributions of one output to every input
//! value against a baseline (`engine::tensor::explain`); encoders get per-token
//! occlusion scores of the similarity between two texts
//! (`engine::encoder::Encoder::explain_similarity`). The work runs on a blocking thread,
//! next to (not through) the model's batching worker, and is audited like any
//! inference: the entry names the version that answered.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::audit::AuditModel;
use crate::auth::{Guarded, Inference};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::privacy::privacy_error;
use crate::serving;
use crate::state::AppState;
use governance::pii::Redacted;

/// Integration points to start from when the request does not say.
const DEFAULT_STEPS: usize = 64;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// `NAME` or `NAME:VERSION`.
    pub model: String,
    /// Tensor models: one example, each named input's values (row-major, no batch
    /// dimension).
    pub inputs: Option<BTreeMap<String, Vec<f32>>>,
    /// Tensor models: the output value to explain. `output` may be omitted when the
    /// model has one output, `index` when that output has one value.
    pub target: Option<ExplainTarget>,
    /// Tensor models: `"zeros"` (default) or values per input name, like `inputs`.
    #[schema(value_type = Option<Object>)]
    pub baseline: Option<Value>,
    /// Tensor models: integration points to start from (default 64); doubled until the
    /// attributions sum to within 0.5 % of f(x) − f(baseline).
    pub steps: Option<usize>,
    /// Encoders: the text whose tokens are scored.
    pub text: Option<String>,
    /// Encoders: the text it is compared with.
    pub compare_to: Option<String>,
}

#[derive(Deserialize, Serialize, ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ExplainTarget {
    pub output: Option<String>,
    pub index: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct ExplainResponse {
    pub model: String,
    pub model_version: i64,
    /// `integrated_gradients` or `occlusion`.
    pub method: &'static str,
    #[serde(flatten)]
    pub explanation: Explanation,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Explanation {
    Tensor(TensorExplanation),
    Similarity(SimilarityExplanation),
}

#[derive(Serialize, ToSchema)]
pub struct TensorExplanation {
    /// One attribution per input value, by input name.
    pub attributions: BTreeMap<String, Vec<f32>>,
    pub target: TargetValue,
    pub completeness: Completeness,
    /// Integration points used.
    pub steps: usize,
}

#[derive(Serialize, ToSchema)]
pub struct TargetValue {
    pub output: String,
    pub index: usize,
    /// f(x): the output at the input.
    pub value: f32,
    /// f(baseline).
    pub baseline_value: f32,
}

#[derive(Serialize, ToSchema)]
pub struct Completeness {
    pub attribution_sum: f64,
    pub output_difference: f64,
    /// |attribution_sum − output_difference| / |output_difference| (0 when both are 0).
    pub relative_error: f64,
}

#[derive(Serialize, ToSchema)]
pub struct SimilarityExplanation {
    /// Cosine similarity of `text` and `compare_to`.
    pub similarity: f32,
    /// The tokens of `text` (special tokens left out), each with the similarity lost
    /// when it is left out.
    pub tokens: Vec<TokenScore>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenScore {
    pub token: String,
    /// Index among the text's token ids, `[CLS]` being 0.
    pub position: usize,
    pub score: f32,
}

/// Explains one answer of a model: integrated gradients for tensor models, occlusion of
/// tokens for encoders.
#[utoipa::path(post, path = "/v1/explain", tag = "inference", security(("bearer" = [])),
    request_body = ExplainRequest,
    responses((status = 200, body = ExplainResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn explain(
    guard: Guarded<Inference>,
    State(state): State<AppState>,
    request_headers: HeaderMap,
    Json(request): Json<ExplainRequest>,
) -> ApiResult<(Extension<AuditModel>, HeaderMap, Json<ExplainResponse>)> {
    let caller = guard.principal.caller();
    // An explanation is a use of the model: its licence terms and signature apply.
    let admitted = serving::admit(&state, &caller, &request.model).await?;
    let (version, attribution) = (&admitted.version, &admitted.attribution);
    let answered_by = AuditModel(admitted.digest.clone());
    let (method, explanation) = if version.manifest.file(jobs::train::MARKER_FILE).is_some() {
        let loaded = super::v2::tensor_model(&state, version).await?;
        let explanation = explain_tensor(loaded.model.clone(), &request).await?;
        ("integrated_gradients", Explanation::Tensor(explanation))
    } else {
        // Texts reach the model through the tenant's input policy, as on /v1/embeddings:
        // a redacted text is what gets explained, a blocked one is refused.
        let mut privacy = state
            .privacy()
            .begin(&guard.principal.tenant, None)
            .await
            .map_err(privacy_error)?;
        let (text, compare_to) = match (request.text, request.compare_to) {
            (Some(text), Some(compare_to)) => {
                let mut seen = privacy
                    .input(&[text, compare_to])
                    .map_err(privacy_error)?
                    .into_iter()
                    .map(Redacted::into_string);
                (seen.next(), seen.next())
            }
            (text, compare_to) => (text, compare_to),
        };
        let deployment = serving::encoder(&state, version, None).await?;
        let explanation = explain_similarity(deployment.encoder.clone(), text, compare_to).await?;
        // Pseudonyms it made stay revealable like those of any other request.
        privacy
            .finish(
                crate::privacy::request_id(&request_headers),
                "/v1/explain",
                || serde_json::json!({"model": request.model}),
            )
            .await
            .map_err(privacy_error)?;
        ("occlusion", Explanation::Similarity(explanation))
    };
    let response = ExplainResponse {
        model: version.model.to_string(),
        model_version: version.version,
        method,
        explanation,
    };
    let headers = serving::attribution_headers(attribution.as_deref());
    Ok((Extension(answered_by), headers, Json(response)))
}

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_explain_request", message).with_param(param)
}

async fn explain_similarity(
    encoder: std::sync::Arc<engine::encoder::Encoder>,
    text: Option<String>,
    compare_to: Option<String>,
) -> ApiResult<SimilarityExplanation> {
    let missing = "explaining an encoder needs 'text' and 'compare_to' (two non-empty strings)";
    let (Some(text), Some(compare_to)) = (text, compare_to) else {
        return Err(invalid("text", missing));
    };
    if text.trim().is_empty() || compare_to.trim().is_empty() {
        return Err(invalid("text", missing));
    }
    let explained =
        tokio::task::spawn_blocking(move || encoder.explain_similarity(&text, &compare_to))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(|e| invalid("text", format!("the text could not be explained: {e}")))?;
    Ok(SimilarityExplanation {
        similarity: explained.similarity,
        tokens: explained
            .tokens
            .into_iter()
            .map(|t| TokenScore {
                token: t.token,
                position: t.position,
                score: t.score,
            })
            .collect(),
    })
}

async fn explain_tensor(
    model: std::sync::Arc<engine::tensor::TensorModel>,
    request: &ExplainRequest,
) -> ApiResult<TensorExplanation> {
    let spec = model.spec();
    let Some(inputs) = &request.inputs else {
        return Err(invalid(
            "inputs",
            "explaining a tensor model needs 'inputs': values per input name",
        ));
    };
    let input = flatten(spec.inputs(), inputs, "inputs")?;
    let baseline = match &request.baseline {
        None => vec![0.0; input.len()],
        Some(Value::String(name)) if name == "zeros" => vec![0.0; input.len()],
        Some(value @ Value::Object(_)) => {
            let values: BTreeMap<String, Vec<f32>> = serde_json::from_value(value.clone())
                .map_err(|e| invalid("baseline", format!("baseline values: {e}")))?;
            flatten(spec.inputs(), &values, "baseline")?
        }
        Some(_) => {
            return Err(invalid(
                "baseline",
                "baseline must be \"zeros\" or values per input name, like 'inputs'",
            ))
        }
    };
    let (output, index, flat_index) = target(spec.outputs(), request.target.clone())?;
    let steps = request.steps.unwrap_or(DEFAULT_STEPS);
    let worker_model = model.clone();
    let result = tokio::task::spawn_blocking(move || {
        worker_model.integrated_gradients(&input, &baseline, flat_index, steps)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| invalid("inputs", e.to_string()))?;

    let mut attributions = BTreeMap::new();
    let mut offset = 0;
    for io in spec.inputs() {
        let width = io.width();
        attributions.insert(
            io.name.clone(),
            result.attributions[offset..offset + width].to_vec(),
        );
        offset += width;
    }
    let attribution_sum: f64 = result.attributions.iter().map(|&a| f64::from(a)).sum();
    let output_difference = f64::from(result.value) - f64::from(result.baseline_value);
    let gap = (attribution_sum - output_difference).abs();
    Ok(TensorExplanation {
        attributions,
        target: TargetValue {
            output,
            index,
            value: result.value,
            baseline_value: result.baseline_value,
        },
        completeness: Completeness {
            attribution_sum,
            output_difference,
            relative_error: if output_difference == 0.0 {
                gap
            } else {
                gap / output_difference.abs()
            },
        },
        steps: result.steps,
    })
}

/// Values per input name → one flat example in spec order, every name and length
/// checked.
fn flatten(
    specs: &[engine::tensor::IoSpec],
    values: &BTreeMap<String, Vec<f32>>,
    param: &'static str,
) -> ApiResult<Vec<f32>> {
    if let Some(unknown) = values
        .keys()
        .find(|name| !specs.iter().any(|s| &s.name == *name))
    {
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        return Err(invalid(
            param,
            format!("unknown input '{unknown}'; the model's inputs are {names:?}"),
        ));
    }
    let mut flat = Vec::new();
    for io in specs {
        let Some(data) = values.get(&io.name) else {
            return Err(invalid(param, format!("{param} lacks input '{}'", io.name)));
        };
        if data.len() != io.width() {
            return Err(invalid(
                param,
                format!(
                    "input '{}' needs {} values (shape {:?}, one example), got {}",
                    io.name,
                    io.width(),
                    io.shape,
                    data.len()
                ),
            ));
        }
        flat.extend_from_slice(data);
    }
    Ok(flat)
}

/// The output name, index within it, and flat index among all outputs.
fn target(
    outputs: &[engine::tensor::IoSpec],
    target: Option<ExplainTarget>,
) -> ApiResult<(String, usize, usize)> {
    let target = target.unwrap_or(ExplainTarget {
        output: None,
        index: None,
    });
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    let (position, io) = match &target.output {
        Some(name) => outputs
            .iter()
            .enumerate()
            .find(|(_, o)| &o.name == name)
            .ok_or_else(|| {
                invalid(
                    "target",
                    format!("unknown output '{name}'; the model's outputs are {names:?}"),
                )
            })?,
        None if outputs.len() == 1 => (0, &outputs[0]),
        None => {
            return Err(invalid(
                "target",
                format!("target.output is needed: the model has outputs {names:?}"),
            ))
        }
    };
    let index = match target.index {
        Some(index) if index < io.width() => index,
        Some(index) => {
            return Err(invalid(
                "target",
                format!(
                    "target.index {index} is out of range: output '{}' has {} values",
                    io.name,
                    io.width()
                ),
            ))
        }
        None if io.width() == 1 => 0,
        None => {
            return Err(invalid(
                "target",
                format!(
                    "target.index is needed: output '{}' has {} values",
                    io.name,
                    io.width()
                ),
            ))
        }
    };
    let offset: usize = outputs[..position].iter().map(|o| o.width()).sum();
    Ok((io.name.clone(), index, offset + index))
}
