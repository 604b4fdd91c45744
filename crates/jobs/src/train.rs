//! Training jobs: the request and its hyper-parameters, checks at submission, lineage,
//! and publishing a trained model as a new registry version.
//!
//! A tensor model version is a folder of `config.json` (`model_type: charter_tensor`, so
//! the registry's folder rules hold), `charter_tensor.json` (the marker saying which
//! files hold spec and weights), `spec.json`, `model.safetensors` and `lineage.json`.

use std::collections::BTreeMap;

use engine::tensor::{
    EarlyStopping, LrSchedule, OptimizerConfig, TensorModel, TensorModelSpec, TrainConfig,
    ValidSpec,
};
use registry::{ImportRequest, Registry, VersionRecord};
use serde::{Deserialize, Serialize};
use store::Caller;
use types::{ModelName, ModelRef, TenantName};

use crate::datasets::check_fits;
use crate::JobsError;

/// The file that marks a registry version as a Charter tensor model.
pub const MARKER_FILE: &str = "charter_tensor.json";
pub const SPEC_FILE: &str = "spec.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const LINEAGE_FILE: &str = registry::cards::LINEAGE_FILE;
/// `config.json` `model_type` of tensor models.
pub const MODEL_TYPE: &str = "charter_tensor";

/// `{"kind": "train", …}`: what to train, on what, into which model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    pub spec: ValidSpec,
    /// A dataset of the tenant.
    pub dataset: ModelName,
    /// The model that receives the result as its next version.
    pub output_model: ModelName,
    /// `NAME[:VERSION]` of a tensor model to start from (fine-tuning) instead of a
    /// random initialisation.
    #[serde(default)]
    pub parent_model: Option<String>,
    #[serde(default)]
    pub hyperparameters: Hyperparameters,
    /// Steps between checkpoints.
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Filled in at submission: the dataset content the job trains on, so renaming or
    /// deleting the dataset later does not change the job.
    #[serde(default)]
    pub resolved: Option<ResolvedInputs>,
}

/// The exact inputs of a job, fixed at submission.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResolvedInputs {
    pub dataset_digest: String,
    pub dataset_format: String,
    pub dataset_columns: serde_json::Value,
    pub dataset_rows: i64,
    /// `NAME:VERSION` of the parent and the digest of its weights.
    pub parent: Option<String>,
    pub parent_weights_digest: Option<String>,
}

/// Which optimiser: `gd` is full-batch gradient descent (SGD over the whole set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Gd,
    #[default]
    Sgd,
    Adam,
    Adamw,
}

impl std::str::FromStr for OptimizerKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "gd" => Ok(OptimizerKind::Gd),
            "sgd" => Ok(OptimizerKind::Sgd),
            "adam" => Ok(OptimizerKind::Adam),
            "adamw" => Ok(OptimizerKind::Adamw),
            other => Err(format!(
                "unknown optimizer '{other}'; use gd, sgd, adam or adamw"
            )),
        }
    }
}

/// Hyper-parameters as users write them; [`Hyperparameters::to_config`] makes the
/// engine's [`TrainConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    #[serde(default)]
    pub optimizer: OptimizerKind,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Examples per step; ignored by `gd`. Default 32.
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub momentum: f64,
    #[serde(default)]
    pub nesterov: bool,
    /// Default 0, and 0.01 for AdamW as in PyTorch.
    #[serde(default)]
    pub weight_decay: Option<f64>,
    #[serde(default)]
    pub shuffle: bool,
    #[serde(default)]
    pub validation_split: f64,
    #[serde(default)]
    pub schedule: Option<LrSchedule>,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
    #[serde(default)]
    pub betas: Option<(f64, f64)>,
    #[serde(default)]
    pub eps: Option<f64>,
}

fn default_lr() -> f64 {
    0.01
}
fn default_epochs() -> usize {
    1
}

impl Default for Hyperparameters {
    fn default() -> Self {
        Hyperparameters {
            optimizer: OptimizerKind::Sgd,
            lr: default_lr(),
            epochs: default_epochs(),
            batch_size: None,
            seed: 0,
            momentum: 0.0,
            nesterov: false,
            weight_decay: None,
            shuffle: false,
            validation_split: 0.0,
            schedule: None,
            early_stopping: None,
            max_grad_norm: None,
            betas: None,
            eps: None,
        }
    }
}

impl Hyperparameters {
    /// The engine's config, validated.
    pub fn to_config(&self) -> Result<TrainConfig, JobsError> {
        let optimizer = match self.optimizer {
            OptimizerKind::Gd | OptimizerKind::Sgd => OptimizerConfig::Sgd {
                lr: self.lr,
                momentum: self.momentum,
                dampening: 0.0,
                nesterov: self.nesterov,
                weight_decay: self.weight_decay.unwrap_or(0.0),
            },
            OptimizerKind::Adam => OptimizerConfig::Adam {
                lr: self.lr,
                betas: self.betas.unwrap_or((0.9, 0.999)),
                eps: self.eps.unwrap_or(1e-8),
                weight_decay: self.weight_decay.unwrap_or(0.0),
            },
            OptimizerKind::Adamw => OptimizerConfig::AdamW {
                lr: self.lr,
                betas: self.betas.unwrap_or((0.9, 0.999)),
                eps: self.eps.unwrap_or(1e-8),
                weight_decay: self.weight_decay.unwrap_or(0.01),
            },
        };
        let batch_size = match self.optimizer {
            OptimizerKind::Gd => None,
            _ => Some(self.batch_size.unwrap_or(32)),
        };
        let config = TrainConfig {
            optimizer,
            schedule: self.schedule.clone().unwrap_or_default(),
            batch_size,
            epochs: self.epochs,
            shuffle: self.shuffle,
            seed: self.seed,
            validation_split: self.validation_split,
            early_stopping: self.early_stopping.clone(),
            max_grad_norm: self.max_grad_norm,
        };
        config
            .validate()
            .map_err(|e| JobsError::Invalid(format!("invalid hyperparameters: {e}")))?;
        Ok(config)
    }
}

/// Checks a training request against what exists (dataset, parent) and fixes its inputs.
pub(crate) async fn prepare(
    registry: &Registry,
    caller: &Caller,
    mut request: TrainRequest,
) -> Result<TrainRequest, JobsError> {
    request.hyperparameters.to_config()?;
    let dataset = registry
        .store()
        .find_dataset(caller, &request.dataset)
        .await
        .map_err(|_| JobsError::NotFound(format!("dataset '{}'", request.dataset)))?;
    check_fits(&dataset, &request.spec)?;
    if request.checkpoint_every == Some(0) {
        return Err(JobsError::Invalid(
            "checkpoint_every must be at least 1".into(),
        ));
    }
    let (parent, parent_weights_digest) = match &request.parent_model {
        None => (None, None),
        Some(text) => {
            let model_ref: ModelRef = text
                .parse()
                .map_err(|e| JobsError::Invalid(format!("parent_model: {e}")))?;
            let (_, version) = registry.show(&model_ref, caller).await?;
            let weights = version.manifest.file(WEIGHTS_FILE).ok_or_else(|| {
                JobsError::Invalid(format!("parent model '{model_ref}' is not a tensor model"))
            })?;
            let spec = load_spec(registry, &version).await?;
            if spec.params() != request.spec.params() {
                return Err(JobsError::Invalid(format!(
                    "parent model '{model_ref}' has other parameters than the spec"
                )));
            }
            (
                Some(format!("{}:{}", version.model, version.version)),
                Some(weights.sha256.clone()),
            )
        }
    };
    request.resolved = Some(ResolvedInputs {
        dataset_digest: dataset.digest,
        dataset_format: dataset.format,
        dataset_columns: dataset.columns,
        dataset_rows: dataset.n_rows,
        parent,
        parent_weights_digest,
    });
    Ok(request)
}

/// The spec of a tensor model version.
pub async fn load_spec(
    registry: &Registry,
    version: &VersionRecord,
) -> Result<ValidSpec, JobsError> {
    let bytes = registry.file_bytes(version, SPEC_FILE).await.map_err(|_| {
        JobsError::Invalid(format!(
            "model '{}:{}' is not a tensor model (no {SPEC_FILE})",
            version.model, version.version
        ))
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| JobsError::Invalid(format!("{SPEC_FILE} is not UTF-8")))?;
    TensorModelSpec::parse(&text).map_err(|e| JobsError::Invalid(format!("{SPEC_FILE}: {e}")))
}

/// Loads a tensor model version (spec and weights).
pub async fn load_model(
    registry: &Registry,
    version: &VersionRecord,
) -> Result<TensorModel, JobsError> {
    let spec = load_spec(registry, version).await?;
    let weights = registry.file_bytes(version, WEIGHTS_FILE).await?;
    TensorModel::from_safetensors(spec, &weights)
        .map_err(|e| JobsError::Invalid(format!("{WEIGHTS_FILE}: {e}")))
}

/// Where a trained version came from; stored as `lineage.json` and in the job result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lineage {
    pub job_id: Option<String>,
    pub dataset: Option<String>,
    pub dataset_digest: String,
    pub dataset_rows: i64,
    pub spec: ValidSpec,
    pub hyperparameters: Hyperparameters,
    pub seed: u64,
    pub parent_model: Option<String>,
    pub final_metrics: BTreeMap<String, f64>,
    pub steps: u64,
}

/// A trained model and what to call it.
#[derive(Debug)]
pub struct PublishRequest {
    pub tenant: TenantName,
    pub name: ModelName,
    pub model: TensorModel,
    pub lineage: Lineage,
}

/// Imports a trained model as the next version of `request.name`.
pub async fn publish_model(
    registry: &Registry,
    request: PublishRequest,
) -> Result<VersionRecord, JobsError> {
    let lineage = request.lineage;
    let model = request.model;
    let lineage_json = serde_json::to_vec_pretty(&lineage)
        .map_err(|e| JobsError::Internal(format!("lineage: {e}")))?;
    let dir = crate::blocking(move || {
        let dir = tempfile::Builder::new()
            .prefix("charter-trained-")
            .tempdir()
            .map_err(|e| JobsError::Internal(format!("temp dir: {e}")))?;
        let write = |name: &str, bytes: &[u8]| {
            std::fs::write(dir.path().join(name), bytes)
                .map_err(|e| JobsError::Internal(format!("writing {name}: {e}")))
        };
        let config = serde_json::json!({"model_type": MODEL_TYPE});
        let marker = serde_json::json!({
            "format": "charter.tensor.v1",
            "spec": SPEC_FILE,
            "weights": WEIGHTS_FILE,
            "lineage": LINEAGE_FILE,
        });
        write("config.json", config.to_string().as_bytes())?;
        write(MARKER_FILE, marker.to_string().as_bytes())?;
        write(SPEC_FILE, model.spec().to_json().as_bytes())?;
        let weights = model
            .to_safetensors()
            .map_err(|e| JobsError::Internal(format!("weights: {e}")))?;
        write(WEIGHTS_FILE, &weights)?;
        write(LINEAGE_FILE, &lineage_json)?;
        Ok(dir)
    })
    .await?;
    let mut import = ImportRequest::new(request.name, request.tenant);
    import.card.description = Some(match &lineage.dataset {
        Some(name) => format!("tensor model trained on dataset '{name}' (see {LINEAGE_FILE})"),
        None => format!("tensor model trained locally (see {LINEAGE_FILE})"),
    });
    let version = registry.import_dir(dir.path(), import).await?;
    drop(dir);
    Ok(version)
}
