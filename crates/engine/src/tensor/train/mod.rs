//! The trainer: mini-batch or full-batch gradient descent with a schedule, validation,
//! early stopping, gradient clipping, cancellation and exact resume from a checkpoint.
//!
//! Training is a sequence of events pulled one at a time ([`Trainer::next_event`], or the
//! `Iterator` impl): each optimiser step yields a [`StepEvent`] whose loss was computed
//! before that step's update, and each epoch ends with an [`EpochEvent`] carrying
//! validation metrics. The caller decides between events whether to go on, so cancel is
//! simply not pulling the next one, and [`Trainer::checkpoint`] can be taken at any point.
//! Everything runs on the calling thread, so the same seed, data and config give
//! bit-identical weights.

use serde::{Deserialize, Serialize};

mod checkpoint;
mod config;

pub use config::{EarlyStopping, LrSchedule, TrainConfig, MAX_EPOCHS};

use super::dataset::Dataset;
use super::model::{ModelError, TensorModel};
use super::net::{Workspace, WorkspaceTooLarge};
use super::optim::{OptimizerConfigError, OptimizerState};
use super::rng::Rng;
use super::spec::LossKind;

/// Examples per forward pass when computing validation metrics.
const EVAL_CHUNK: usize = 1024;
const SPLIT_SALT: u64 = 0x5EED_0001;
const SHUFFLE_SALT: u64 = 0x5EED_0002;
const DROPOUT_SALT: u64 = 0x5EED_0003;

/// One optimiser step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepEvent {
    /// Steps taken so far including this one (the first step is 1).
    pub step: u64,
    /// Zero-based epoch of this step.
    pub epoch: usize,
    /// Mean loss of the batch, computed before this step's update.
    pub loss: f64,
    pub lr: f64,
}

/// The end of an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochEvent {
    pub epoch: usize,
    /// Mean of the step losses of the epoch, weighted by batch size.
    pub train_loss: f64,
    pub val_loss: Option<f64>,
    /// Share of correct predictions on the validation rows: argmax for cross entropy,
    /// threshold 0.5 per element for binary cross entropy; `None` for MSE.
    pub val_accuracy: Option<f64>,
    /// Training stops after this epoch because of early stopping.
    pub stopped_early: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainEvent {
    Step(StepEvent),
    EpochEnd(EpochEvent),
}

/// What the callback of [`Trainer::run`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Cancel,
}

/// How [`Trainer::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrainOutcome {
    Finished {
        epochs: usize,
        stopped_early: bool,
    },
    /// Stopped by the callback; the trainer can still checkpoint or continue.
    Cancelled {
        step: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Optimizer(#[from] OptimizerConfigError),
    #[error("invalid training config: {0}")]
    Config(String),
    #[error("the dataset has width {actual:?}, the model needs (inputs, outputs) = {expected:?}")]
    DatasetShape {
        expected: (usize, usize),
        actual: (usize, usize),
    },
    #[error("validation split {split} of {rows} rows leaves {train} training and {val} validation rows; both must be at least 1")]
    Split {
        split: f64,
        rows: usize,
        train: usize,
        val: usize,
    },
    #[error("training diverged: the loss at step {step} is not finite")]
    Diverged { step: u64 },
    #[error(transparent)]
    Workspace(#[from] WorkspaceTooLarge),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("invalid checkpoint: {0}")]
    Checkpoint(String),
    #[error("the dataset differs from the one the checkpoint was trained on")]
    DatasetChanged,
}

/// Position and bookkeeping that a checkpoint must carry to resume exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    step: u64,
    epoch: usize,
    /// Rows of the current epoch already consumed.
    rows_done: usize,
    epoch_loss_sum: f64,
    best: Option<f64>,
    bad_epochs: usize,
    done: bool,
    stopped_early: bool,
}

/// A training run in progress; owns the model, the data and all state.
#[derive(Debug)]
pub struct Trainer {
    config: TrainConfig,
    model: TensorModel,
    data: Dataset,
    train_rows: Vec<usize>,
    val_rows: Vec<usize>,
    /// Order of `train_rows` for the current epoch.
    order: Vec<usize>,
    optimizer: OptimizerState,
    grads: Vec<f32>,
    ws: Workspace,
    eval_ws: Workspace,
    targets: Vec<f32>,
    rng: Rng,
    progress: Progress,
}

impl Trainer {
    /// Starts training `model` on `data`.
    pub fn new(
        model: TensorModel,
        data: Dataset,
        config: TrainConfig,
    ) -> Result<Trainer, TrainError> {
        config.validate()?;
        let spec = model.spec();
        let expected = (spec.input_width(), spec.output_width());
        let actual = (data.input_width(), data.output_width());
        if expected != actual {
            return Err(TrainError::DatasetShape { expected, actual });
        }
        let n = data.n_rows();
        let n_val = (n as f64 * config.validation_split).floor() as usize;
        let n_train = n - n_val;
        if n_train == 0 || (config.validation_split > 0.0 && n_val == 0) {
            return Err(TrainError::Split {
                split: config.validation_split,
                rows: n,
                train: n_train,
                val: n_val,
            });
        }
        let mut all: Vec<usize> = (0..n).collect();
        if config.shuffle {
            Rng::from_seed(config.seed ^ SPLIT_SALT).shuffle(&mut all);
        }
        let val_rows = all.split_off(n_train);
        let train_rows = all;
        let batch = config.batch_size.unwrap_or(n_train).min(n_train);
        let mut ws = Workspace::default();
        model.net().prepare(&mut ws, batch)?;
        let n_params = model.params().len();
        let optimizer = OptimizerState::new(&config.optimizer, n_params);
        let rng = Rng::from_seed(config.seed ^ DROPOUT_SALT);
        let mut trainer = Trainer {
            targets: vec![0.0; batch * expected.1],
            grads: vec![0.0; n_params],
            order: Vec::new(),
            eval_ws: Workspace::default(),
            progress: Progress {
                step: 0,
                epoch: 0,
                rows_done: 0,
                epoch_loss_sum: 0.0,
                best: None,
                bad_epochs: 0,
                done: false,
                stopped_early: false,
            },
            config,
            model,
            data,
            train_rows,
            val_rows,
            optimizer,
            ws,
            rng,
        };
        trainer.order_epoch();
        Ok(trainer)
    }

    pub fn model(&self) -> &TensorModel {
        &self.model
    }

    pub fn into_model(self) -> TensorModel {
        self.model
    }

    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Steps taken so far.
    pub fn step(&self) -> u64 {
        self.progress.step
    }

    pub fn is_done(&self) -> bool {
        self.progress.done
    }

    /// Runs until the end, calling `on_event` after every event; `Control::Cancel` stops
    /// at once and leaves the trainer ready to checkpoint or continue.
    pub fn run(
        &mut self,
        mut on_event: impl FnMut(&TrainEvent) -> Control,
    ) -> Result<TrainOutcome, TrainError> {
        while let Some(event) = self.next_event()? {
            if on_event(&event) == Control::Cancel {
                return Ok(TrainOutcome::Cancelled {
                    step: self.progress.step,
                });
            }
        }
        Ok(TrainOutcome::Finished {
            epochs: self.progress.epoch,
            stopped_early: self.progress.stopped_early,
        })
    }

    /// Takes one optimiser step or closes an epoch; `None` once training is over.
    pub fn next_event(&mut self) -> Result<Option<TrainEvent>, TrainError> {
        if self.progress.done {
            return Ok(None);
        }
        if self.progress.rows_done >= self.train_rows.len() {
            return Ok(Some(TrainEvent::EpochEnd(self.end_epoch())));
        }
        Ok(Some(TrainEvent::Step(self.train_step()?)))
    }

    fn train_step(&mut self) -> Result<StepEvent, TrainError> {
        let n_train = self.train_rows.len();
        let batch = self.config.batch_size.unwrap_or(n_train);
        let start = self.progress.rows_done;
        let rows = batch.min(n_train - start);
        let lr = self.config.lr_at(self.progress.epoch);
        let (net, params) = self.model.net_and_params_mut();
        let (iw, ow) = (net.input_width(), net.output_width());
        let input = net.input_mut(&mut self.ws, rows);
        let indices = &self.order[start..start + rows];
        for ((dst, dst_t), &row) in input
            .chunks_exact_mut(iw)
            .zip(self.targets.chunks_exact_mut(ow))
            .zip(indices)
        {
            dst.copy_from_slice(self.data.input_row(row));
            dst_t.copy_from_slice(self.data.target_row(row));
        }
        net.forward(params, &mut self.ws, rows, Some(&mut self.rng));
        let loss = net.loss(&mut self.ws, &self.targets, rows);
        self.progress.step += 1;
        if !loss.is_finite() {
            return Err(TrainError::Diverged {
                step: self.progress.step,
            });
        }
        net.backward(params, &mut self.ws, rows, &mut self.grads, false);
        if let Some(max_norm) = self.config.max_grad_norm {
            clip_grad_norm(&mut self.grads, max_norm);
        }
        self.optimizer
            .update(&self.config.optimizer, lr, params, &mut self.grads);
        self.progress.rows_done += rows;
        self.progress.epoch_loss_sum += loss * rows as f64;
        Ok(StepEvent {
            step: self.progress.step,
            epoch: self.progress.epoch,
            loss,
            lr,
        })
    }

    fn end_epoch(&mut self) -> EpochEvent {
        let epoch = self.progress.epoch;
        let train_loss = self.progress.epoch_loss_sum / self.train_rows.len() as f64;
        let (val_loss, val_accuracy) = match self.evaluate() {
            Some((loss, accuracy)) => (Some(loss), accuracy),
            None => (None, None),
        };
        let mut stopped_early = false;
        if let Some(es) = &self.config.early_stopping {
            let monitored = val_loss.unwrap_or(train_loss);
            match self.progress.best {
                Some(best) if monitored >= best - es.min_delta => {
                    self.progress.bad_epochs += 1;
                    stopped_early = self.progress.bad_epochs >= es.patience;
                }
                _ => {
                    self.progress.best = Some(monitored);
                    self.progress.bad_epochs = 0;
                }
            }
        }
        self.progress.epoch += 1;
        self.progress.rows_done = 0;
        self.progress.epoch_loss_sum = 0.0;
        self.progress.stopped_early = stopped_early;
        self.progress.done = stopped_early || self.progress.epoch >= self.config.epochs;
        if !self.progress.done {
            self.order_epoch();
        }
        EpochEvent {
            epoch,
            train_loss,
            val_loss,
            val_accuracy,
            stopped_early,
        }
    }

    /// Validation loss and accuracy in inference mode, or `None` without a split.
    fn evaluate(&mut self) -> Option<(f64, Option<f64>)> {
        if self.val_rows.is_empty() {
            return None;
        }
        let net = self.model.net();
        let (iw, ow) = (net.input_width(), net.output_width());
        let chunk = EVAL_CHUNK.min(self.val_rows.len());
        // The chunk is no larger than what already fits the training workspace or 1024
        // rows of a model whose widths were bounded at validation; on refusal skip metrics.
        net.prepare(&mut self.eval_ws, chunk).ok()?;
        let mut targets = vec![0.0f32; chunk * ow];
        let (mut loss_sum, mut correct, mut judged) = (0.0f64, 0usize, 0usize);
        for rows in self.val_rows.chunks(chunk) {
            let input = net.input_mut(&mut self.eval_ws, rows.len());
            for ((dst, dst_t), &row) in input
                .chunks_exact_mut(iw)
                .zip(targets.chunks_exact_mut(ow))
                .zip(rows)
            {
                dst.copy_from_slice(self.data.input_row(row));
                dst_t.copy_from_slice(self.data.target_row(row));
            }
            net.forward(self.model.params(), &mut self.eval_ws, rows.len(), None);
            loss_sum += net.loss(&mut self.eval_ws, &targets, rows.len()) * rows.len() as f64;
            let pred = net.output(&self.eval_ws, rows.len());
            for (p, t) in pred.chunks_exact(ow).zip(targets.chunks_exact(ow)) {
                match net.loss {
                    LossKind::CrossEntropy => {
                        judged += 1;
                        correct += usize::from(argmax(p) == argmax(t));
                    }
                    LossKind::BinaryCrossEntropy => {
                        for (&pv, &tv) in p.iter().zip(t) {
                            judged += 1;
                            correct += usize::from((pv > 0.5) == (tv > 0.5));
                        }
                    }
                    LossKind::Mse => {}
                }
            }
        }
        let accuracy = (judged > 0).then(|| correct as f64 / judged as f64);
        Some((loss_sum / self.val_rows.len() as f64, accuracy))
    }

    /// The training order of the current epoch, a pure function of seed and epoch so
    /// that a resumed run sees the same order.
    fn order_epoch(&mut self) {
        self.order.clone_from(&self.train_rows);
        if self.config.shuffle {
            let salt = (self.progress.epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            Rng::from_seed(self.config.seed ^ SHUFFLE_SALT ^ salt).shuffle(&mut self.order);
        }
    }
}

impl Iterator for Trainer {
    type Item = Result<TrainEvent, TrainError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// `torch.nn.utils.clip_grad_norm_`: scale by `max_norm / (norm + 1e-6)` when below 1.
fn clip_grad_norm(grads: &mut [f32], max_norm: f64) {
    let norm = grads
        .iter()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        let coef = coef as f32;
        for g in grads.iter_mut() {
            *g *= coef;
        }
    }
}

fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}
