//! Checkpoints: weights, optimiser state, position and RNG state in one safetensors file,
//! so that a job resumed from one ends with the same weights as an uninterrupted run.

use std::collections::HashMap;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::{Progress, TrainConfig, TrainError, Trainer};
use crate::tensor::dataset::Dataset;
use crate::tensor::model::{read_params, write_safetensors, ModelError, TensorModel};
use crate::tensor::rng::Rng;
use crate::tensor::spec::{TensorModelSpec, ValidSpec};

const CHECKPOINT_FORMAT: &str = "charter.tensor.checkpoint.v1";
const METADATA_KEY: &str = "charter.checkpoint";

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointMeta {
    format: String,
    spec: TensorModelSpec,
    config: TrainConfig,
    progress: Progress,
    optimizer_step: u64,
    rng: [u64; 4],
    dataset_fingerprint: u64,
}

impl Trainer {
    /// Continues the run saved by [`Trainer::checkpoint`] on the same dataset; the spec and
    /// config come from the checkpoint.
    pub fn resume(checkpoint: &[u8], data: Dataset) -> Result<Trainer, TrainError> {
        let bad = |m: String| TrainError::Checkpoint(m);
        let (_, metadata) = SafeTensors::read_metadata(checkpoint)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta_json = metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(METADATA_KEY))
            .ok_or_else(|| bad("no training metadata".to_owned()))?;
        let meta: CheckpointMeta =
            serde_json::from_str(meta_json).map_err(|e| bad(format!("metadata: {e}")))?;
        if meta.format != CHECKPOINT_FORMAT {
            return Err(bad(format!("unknown format {:?}", meta.format)));
        }
        let spec: ValidSpec = meta
            .spec
            .validate()
            .map_err(|e| bad(format!("spec: {e}")))?;
        let file = SafeTensors::deserialize(checkpoint)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let mut params = vec![0.0; spec.n_params()];
        read_params(&file, spec.params(), "", &mut params)?;
        let model = TensorModel::from_flat(spec.clone(), params)?;
        if fingerprint(&data) != meta.dataset_fingerprint {
            return Err(TrainError::DatasetChanged);
        }
        let mut trainer = Trainer::new(model, data, meta.config)?;
        let state = &mut trainer.optimizer;
        state.step = meta.optimizer_step;
        if !state.first.is_empty() {
            read_params(&file, spec.params(), "optim.first.", &mut state.first)?;
        }
        if !state.second.is_empty() {
            read_params(&file, spec.params(), "optim.second.", &mut state.second)?;
        }
        if meta.progress.rows_done > trainer.train_rows.len()
            || meta.progress.epoch > trainer.config.epochs
        {
            return Err(bad("progress beyond the dataset or epochs".to_owned()));
        }
        trainer.rng = Rng::from_state(meta.rng);
        trainer.progress = meta.progress;
        trainer.order_epoch();
        Ok(trainer)
    }

    /// Weights, optimiser state, position and RNG state as one safetensors file
    /// (weights under their PyTorch names, optimiser buffers under `optim.*`, the rest as
    /// JSON metadata), so a job can resume exactly.
    pub fn checkpoint(&self) -> Result<Vec<u8>, TrainError> {
        let spec = self.model.spec();
        let meta = CheckpointMeta {
            format: CHECKPOINT_FORMAT.to_owned(),
            spec: spec.spec().clone(),
            config: self.config.clone(),
            progress: self.progress.clone(),
            optimizer_step: self.optimizer.step,
            rng: self.rng.state(),
            dataset_fingerprint: fingerprint(&self.data),
        };
        let meta_json = serde_json::to_string(&meta)
            .map_err(|e| TrainError::Checkpoint(format!("metadata: {e}")))?;
        let mut buffers: Vec<(&str, &[f32])> = vec![("", self.model.params())];
        if !self.optimizer.first.is_empty() {
            buffers.push(("optim.first.", &self.optimizer.first));
        }
        if !self.optimizer.second.is_empty() {
            buffers.push(("optim.second.", &self.optimizer.second));
        }
        let metadata = HashMap::from([(METADATA_KEY.to_owned(), meta_json)]);
        write_safetensors(spec.params(), &buffers, Some(metadata))
            .map_err(|e| TrainError::Model(ModelError::Safetensors(e)))
    }
}

/// FNV-1a over the bits of every value, to recognise the dataset a checkpoint belongs to.
fn fingerprint(data: &Dataset) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let sizes = [data.n_rows(), data.input_width(), data.output_width()];
    let words = sizes.iter().map(|&s| s as u64).chain(
        data.inputs()
            .iter()
            .chain(data.targets())
            .map(|v| v.to_bits() as u64),
    );
    for word in words {
        hash ^= word;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
