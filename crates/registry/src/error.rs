//! Errors of the registry: `ImportError` for refused model folders and uploads (the
//! user's to fix), `RegistryError` for everything.

use std::path::PathBuf;

use blobstore::BlobError;
use store::StoreError;

/// Why a model folder or upload was refused. Messages name the file and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("'{}' is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("config.json is missing at the top of the model folder")]
    MissingConfig,
    #[error("no weights found: a model needs at least one .safetensors file")]
    NoWeights,
    #[error("'{path}' is not valid JSON: {reason}")]
    InvalidJson { path: String, reason: String },
    #[error("config.json must be a JSON object")]
    ConfigNotObject,
    #[error("'{path}' is a pickle-based checkpoint; Charter never loads pickles, convert it to safetensors (for example with the `safetensors` convert script or `save_file`) and import again")]
    PickleCheckpoint { path: String },
    #[error("'{path}' holds pickle data although its name does not say so; refused (convert the weights to safetensors)")]
    PickleContent { path: String },
    #[error("'{path}' is a zip archive (such as a PyTorch checkpoint); refused, convert the weights to safetensors")]
    ZipArchive { path: String },
    #[error("'{path}' is not a valid safetensors file: {reason}")]
    Safetensors { path: String, reason: String },
    #[error("model.safetensors.index.json: {0}")]
    ShardIndex(String),
    #[error("'{path}' is a symbolic link; copy the file into the model folder instead")]
    Symlink { path: String },
    #[error("'{path}' is a {kind}; only regular files and directories are accepted")]
    UnsupportedEntry { path: String, kind: String },
    #[error("unsafe path '{path}': {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("'{path}' appears twice in the upload")]
    DuplicateEntry { path: String },
    #[error("'{path}' clashes with a file of the same name earlier in the upload")]
    ConflictingEntry { path: String },
    #[error("more than {limit} files")]
    TooManyFiles { limit: usize },
    #[error("'{path}' changed while it was being imported")]
    FileChanged { path: String },
    #[error("the upload is not a valid tar archive: {0}")]
    InvalidTar(String),
}

/// Everything that can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Invalid(#[from] ImportError),
    /// A model card that says something it may not (a malformed licence, say).
    #[error("invalid model card: {0}")]
    InvalidCard(String),
    /// A version that may not serve a tenant that requires signed models.
    #[error(transparent)]
    Signature(#[from] crate::SignatureError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    /// A model name matches models of several tenants.
    #[error("{0}")]
    Ambiguous(String),
    #[error("the upload exceeds the size limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Stored data that contradicts itself, such as a manifest size that does not match
    /// the verified blob.
    #[error("corrupt registry data: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Blob(BlobError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for RegistryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => RegistryError::NotFound(what),
            StoreError::Forbidden(message) => RegistryError::Forbidden(message),
            StoreError::Conflict(message) => RegistryError::Conflict(message),
            StoreError::Ambiguous(message) => RegistryError::Ambiguous(message),
            other => RegistryError::Store(other),
        }
    }
}

impl From<BlobError> for RegistryError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::TooLarge { limit } => RegistryError::TooLarge { limit },
            other => RegistryError::Blob(other),
        }
    }
}
