//! Pure synchronous machine learning on candle: model families, loading and inference.
//!
//! The engine knows nothing of HTTP, async runtimes or SQL; the `inference` crate owns the
//! threads that call into it. Everything here returns [`EngineError`] for bad input and
//! never panics on what a user sends.

pub mod bert;
pub mod config;
pub mod encoder;
mod error;
mod kernels;
mod weights;

pub use error::EngineError;
