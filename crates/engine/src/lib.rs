//! Pure synchronous ML for Charter: model families (BERT-style encoders on candle,
//! feed-forward tensor models), their training, loading and inference.
//!
//! The engine knows nothing of HTTP, async runtimes or SQL; the `inference` and `jobs`
//! crates own the threads that call into it. Everything here returns typed errors for
//! bad input and never panics on what a user sends.

pub mod bert;
pub mod bert_candle;
mod bert_weights;
pub mod bf16;
pub mod config;
pub mod encoder;
mod error;
mod kernels;
pub mod tensor;
mod weights;

pub use error::EngineError;
