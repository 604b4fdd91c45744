//! The engine's error type: one enum for every way loading or running a model can fail.

use std::path::PathBuf;

/// Why the engine refused a model folder or an input.
///
/// Variants that describe user input (`EmptyBatch`, `TokenIdOutOfRange`, …) carry enough
/// detail for a client to fix the request; the others describe the model folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("model file {path} is missing")]
    MissingFile { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {path}: {message}")]
    InvalidConfig { path: PathBuf, message: String },
    #[error("unsupported architecture `{model_type}` (supported: {supported})")]
    UnsupportedArchitecture {
        model_type: String,
        supported: &'static str,
    },
    #[error("unsupported model setting: {0}")]
    Unsupported(String),
    #[error(
        "no safetensors weights in {dir}; pickle checkpoints (.bin, .pt, .pth, .ckpt) are never loaded"
    )]
    NoSafetensors { dir: PathBuf },
    #[error("invalid weights: {0}")]
    Weights(String),
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("input {index} has no tokens")]
    EmptySequence { index: usize },
    #[error("input {index} has token id {token_id}, outside the vocabulary of {vocab_size}")]
    TokenIdOutOfRange {
        index: usize,
        token_id: u32,
        vocab_size: usize,
    },
    #[error("input {index} has {n_tokens} tokens, more than the limit of {max_tokens}")]
    SequenceTooLong {
        index: usize,
        n_tokens: usize,
        max_tokens: usize,
    },
    #[error("cannot build the thread pool: {0}")]
    ThreadPool(String),
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}
