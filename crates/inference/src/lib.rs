//! The async boundary between request handlers and synchronous models.
//!
//! Each loaded model lives on its own OS thread ([`worker`]) and is reached through a
//! bounded channel: a full queue is refused at once (the caller answers 503 with
//! `Retry-After`) instead of piling up. The worker forms batches from whatever is
//! waiting, bounded by a token budget and a short wait, and drops requests whose
//! caller has gone away before computing them.

pub mod tensor;
pub mod worker;

pub use worker::{BatchModel, BatchPolicy, InferenceError, WorkerHandle};
