//! The training configuration: optimiser, schedule, batching, validation split, early
//! stopping and clipping, with its validation.

use serde::{Deserialize, Serialize};

use super::TrainError;
use crate::tensor::optim::OptimizerConfig;

/// Most epochs one job may run.
pub const MAX_EPOCHS: usize = 1_000_000;

/// How a model is trained. Deserialises from the job's JSON with defaults for everything
/// but the optimiser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Examples per step; `None` trains full-batch (one step per epoch).
    #[serde(default)]
    pub batch_size: Option<usize>,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Reshuffle the training rows at every epoch (and the split) from `seed`.
    #[serde(default)]
    pub shuffle: bool,
    /// Seeds shuffling, the validation split and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Share of rows held out for validation, in [0, 1).
    #[serde(default)]
    pub validation_split: f64,
    #[serde(default)]
    pub early_stopping: Option<EarlyStopping>,
    /// Clip the global L2 norm of the gradient to this value (`clip_grad_norm_`).
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
}

fn default_epochs() -> usize {
    1
}

/// Learning rate as a function of the epoch (stepped once per epoch, like PyTorch's
/// `StepLR` and `CosineAnnealingLR` called after each epoch).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LrSchedule {
    #[default]
    Constant,
    /// `lr · gamma^(epoch / step_size)`.
    Step { step_size: usize, gamma: f64 },
    /// `eta_min + (lr − eta_min)(1 + cos(π · epoch / t_max)) / 2`; `t_max` defaults to
    /// the number of epochs.
    Cosine {
        #[serde(default)]
        t_max: Option<usize>,
        #[serde(default)]
        eta_min: f64,
    },
}

/// Stop when the monitored loss (validation loss, or training loss without a validation
/// split) has not improved by more than `min_delta` for `patience` epochs. The model
/// keeps the weights of the last epoch run; [`super::EpochEvent`] reports every epoch's
/// losses so a caller that wants the best epoch can checkpoint at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStopping {
    pub patience: usize,
    #[serde(default)]
    pub min_delta: f64,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), TrainError> {
        self.optimizer.validate()?;
        let bad = |m: &str| Err(TrainError::Config(m.to_owned()));
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return bad("epochs must be 1..=1000000");
        }
        if self.batch_size == Some(0) {
            return bad("batch_size must be at least 1");
        }
        if !(self.validation_split.is_finite() && (0.0..1.0).contains(&self.validation_split)) {
            return bad("validation_split must be in [0, 1)");
        }
        if let Some(norm) = self.max_grad_norm {
            if !(norm.is_finite() && norm > 0.0) {
                return bad("max_grad_norm must be finite and > 0");
            }
        }
        if let Some(es) = &self.early_stopping {
            if es.patience == 0 || !(es.min_delta.is_finite() && es.min_delta >= 0.0) {
                return bad("early_stopping needs patience >= 1 and min_delta >= 0");
            }
        }
        match self.schedule {
            LrSchedule::Constant => {}
            LrSchedule::Step { step_size, gamma } => {
                if step_size == 0 || !(gamma.is_finite() && gamma > 0.0) {
                    return bad("step schedule needs step_size >= 1 and gamma > 0");
                }
            }
            LrSchedule::Cosine { t_max, eta_min } => {
                if t_max == Some(0) || !(eta_min.is_finite() && eta_min >= 0.0) {
                    return bad("cosine schedule needs t_max >= 1 and eta_min >= 0");
                }
            }
        }
        Ok(())
    }

    /// Learning rate during zero-based `epoch`.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let base = self.optimizer.lr();
        match self.schedule {
            LrSchedule::Constant => base,
            LrSchedule::Step { step_size, gamma } => {
                base * gamma.powi(i32::try_from(epoch / step_size).unwrap_or(i32::MAX))
            }
            LrSchedule::Cosine { t_max, eta_min } => {
                let t_max = t_max.unwrap_or(self.epochs) as f64;
                let t = (epoch as f64).min(t_max);
                eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * t / t_max).cos()) / 2.0
            }
        }
    }
}
