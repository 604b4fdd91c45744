//! The async boundary between request handlers and synchronous models.
//!
//! Each loaded model lives on its own OS thread ([`worker`]) and is reached through a
//! bounded channel: a full queue is refused at once (the caller answers 503 with
//! `Retry-After`) instead of piling up. The worker forms batches from whatever is
//! waiting, bounded by a token budget and a short wait, and drops requests whose
//! caller has gone away before computing them. [`Deployments`] keeps the loaded models.

pub mod deployments;
pub mod encoder;
pub mod tensor;
pub mod worker;

pub use deployments::{DeployError, DeploymentKey, Deployments, EncoderDeployment, LoadError};
pub use encoder::{EmbedRequest, EncoderModel};
pub use engine::encoder::Precision;
pub use worker::{BatchModel, BatchPolicy, InferenceError, WorkerHandle};
