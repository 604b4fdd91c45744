//! The models loaded in this process, keyed by tenant, name and version.
//!
//! Loading reads a model folder (the caller checks it out of the registry), builds
//! the model on a blocking thread and starts its worker; concurrent requests for the
//! same model wait for one load instead of loading it twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use engine::encoder::{Encoder, EncoderOptions, Precision};
use tokio::sync::{Mutex, OnceCell};

use crate::encoder::EncoderModel;
use crate::worker::{BatchPolicy, WorkerHandle};
use crate::InferenceError;

/// Which model version a deployment serves.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentKey {
    pub tenant: String,
    pub model: String,
    pub version: i64,
}

impl std::fmt::Display for DeploymentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.tenant, self.model, self.version)
    }
}

/// A loaded encoder: its tokenizer side (used on the async side) and its worker.
pub struct EncoderDeployment {
    pub key: DeploymentKey,
    /// Number format the weights were loaded in.
    pub precision: Precision,
    pub encoder: Arc<Encoder>,
    pub worker: WorkerHandle<EncoderModel>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the model cannot be loaded: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("the model's worker did not start: {0}")]
    Worker(std::io::Error),
    #[error("loading was interrupted")]
    Interrupted,
}

type Slot = Arc<OnceCell<Arc<EncoderDeployment>>>;

/// The deployments of this process; cheap to clone.
#[derive(Clone, Default)]
pub struct Deployments {
    slots: Arc<Mutex<HashMap<DeploymentKey, Slot>>>,
    policy: Arc<std::sync::RwLock<BatchPolicy>>,
}

impl Deployments {
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            slots: Arc::default(),
            policy: Arc::new(std::sync::RwLock::new(policy)),
        }
    }

    /// The deployment for `key`, loading it with `folder` on first use. `folder` runs
    /// only when a load is needed and returns the model folder plus a guard that is
    /// dropped once the model is in memory (e.g. a temp dir to delete).
    ///
    /// The load runs on a task of its own and finishes even when every caller waiting
    /// for it has gone (a request abandoned at its deadline): a model that takes longer
    /// to load than a request may wait is loaded once, in the background, and served
    /// to the requests after, instead of being started and dropped by each request.
    ///
    /// `precision: None` takes the deployment as it is loaded (f32 when it is not);
    /// `Some(p)` reloads a deployment loaded in another precision. Requests already
    /// queued on the old one finish there.
    pub async fn encoder<F, Fut, G>(
        &self,
        key: DeploymentKey,
        precision: Option<Precision>,
        folder: F,
    ) -> Result<Arc<EncoderDeployment>, crate::DeployError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<(PathBuf, G), crate::DeployError>> + Send,
        G: Send + 'static,
    {
        let slot = {
            let mut slots = self.slots.lock().await;
            let slot = slots.entry(key.clone()).or_default();
            let loaded_otherwise = precision
                .is_some_and(|wanted| slot.get().is_some_and(|loaded| loaded.precision != wanted));
            if loaded_otherwise {
                *slot = Slot::default();
            }
            slot.clone()
        };
        if let Some(deployment) = slot.get() {
            return Ok(deployment.clone());
        }
        let precision = precision.unwrap_or_default();
        let policy = *self.policy.read().unwrap_or_else(|e| e.into_inner());
        let load = async move {
            let deployment = slot
                .get_or_try_init(|| async {
                    let (dir, guard) = folder().await?;
                    let name = key.to_string();
                    let started = std::time::Instant::now();
                    let loaded = tokio::task::spawn_blocking(move || -> Result<EncoderDeployment, LoadError> {
                        let options = EncoderOptions { precision, ..EncoderOptions::default() };
                        let encoder = Arc::new(Encoder::load(&dir, options)?);
                        drop(guard);
                        let worker = WorkerHandle::spawn(&name, EncoderModel::new(encoder.clone()), policy)
                            .map_err(LoadError::Worker)?;
                        Ok(EncoderDeployment { key, precision, encoder, worker })
                    })
                    .await
                    .map_err(|_| LoadError::Interrupted)??;
                    tracing::info!(model = %loaded.key, seconds = started.elapsed().as_secs_f64(), "model loaded");
                    Ok::<_, crate::DeployError>(Arc::new(loaded))
                })
                .await?;
            Ok::<_, crate::DeployError>(deployment.clone())
        };
        // Callers that arrive while a load runs spawn a task each, which waits on the
        // same cell: only one load runs.
        tokio::spawn(load)
            .await
            .map_err(|_| crate::DeployError::Load(LoadError::Interrupted))?
    }

    /// Unloads a deployment; its worker stops once in-flight requests finish.
    pub async fn unload(&self, key: &DeploymentKey) -> bool {
        self.slots.lock().await.remove(key).is_some()
    }

    /// The loaded deployments with their precision, in key order.
    pub async fn loaded(&self) -> Vec<(DeploymentKey, Precision)> {
        let slots = self.slots.lock().await;
        let mut loaded: Vec<_> = slots
            .iter()
            .filter_map(|(key, slot)| Some((key.clone(), slot.get()?.precision)))
            .collect();
        loaded.sort_by(|a, b| a.0.cmp(&b.0));
        loaded
    }
}

/// Why a model could not be deployed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The caller's own failure while preparing the folder (e.g. registry checkout).
    #[error("{0}")]
    Prepare(String),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}
