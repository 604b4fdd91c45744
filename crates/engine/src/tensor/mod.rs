//! Feed-forward tensor models (the seed MLP and larger): spec, weights, inference,
//! training and datasets.
//!
//! Why hand-written loops rather than candle: these nets are tiny (the seed model has
//! 430 parameters), so a step is a few thousand multiply-adds and a tensor framework's
//! per-op overhead (allocation, dispatch, shape checks, autograd bookkeeping) would be
//! most of the time. Forward and backward passes here are plain f32 loops over
//! contiguous, preallocated buffers ([`Workspace`]), parameters and gradients are one
//! flat buffer each, and a training step allocates nothing. The linear-layer kernels
//! are written so LLVM vectorises them and reuse each weight row for four examples,
//! which is what matters at larger batches.
//!
//! - [`spec`]: the JSON spec and its validation ([`TensorModelSpec`] → [`ValidSpec`]).
//! - [`model`]: [`TensorModel`], safetensors I/O with PyTorch names, inference.
//! - [`optim`]: SGD / Adam / AdamW with PyTorch's update rules.
//! - [`train`]: [`Trainer`], events, schedules, early stopping, checkpoints.
//! - [`dataset`]: JSONL and CSV parsing into a dense [`Dataset`].
//! - [`explain`]: integrated-gradients attributions of one output to the inputs.

pub mod dataset;
pub mod explain;
mod kernels;
pub mod model;
mod net;
pub mod optim;
mod rng;
pub mod spec;
pub mod train;

pub use dataset::{
    csv_subject_rows, csv_without_subject, CsvColumns, Dataset, DatasetError, DatasetLimits,
    SUBJECT_KEY,
};
pub use explain::{Attribution, ExplainError};
pub use model::{InferInput, InferOutput, ModelError, TensorModel};
pub use net::{Workspace, WorkspaceTooLarge};
pub use optim::{OptimizerConfig, OptimizerConfigError};
pub use spec::{IoSpec, LayerSpec, LossKind, ParamInfo, SpecError, TensorModelSpec, ValidSpec};
pub use train::{
    Control, EarlyStopping, EpochEvent, LrSchedule, StepEvent, TrainConfig, TrainError, TrainEvent,
    TrainOutcome, Trainer,
};
