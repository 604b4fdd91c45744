//! Jobs: uploaded datasets, a persisted job queue and the one runner that executes it.
//!
//! A job is data: a row in the `jobs` table whose status moves queued → running →
//! succeeded | failed | cancelled, each transition committed before anyone is told about
//! it. [`Jobs`] is what the API calls (submit, show, list, cancel); [`Runner`] claims
//! queued jobs one at a time and runs them, training on a blocking thread, writing
//! progress, checkpoints and finally a new registry version with its lineage. A runner
//! that dies leaves its job `running` with a stale heartbeat; the next runner takes it
//! over and resumes it from its last checkpoint, so no job stays `running` forever.
//!
//! - [`datasets`]: validation and storage of uploaded datasets.
//! - [`train`]: the training request, its hyper-parameters, lineage and publishing.
//! - [`runner`]: the runner loop, heartbeats, checkpoints and fail points for tests.

pub mod datasets;
pub mod runner;
pub mod train;

use registry::{Registry, RegistryError};
use serde::{Deserialize, Serialize};
use store::{Caller, JobRecord, NewJob, StoreError};
use types::TenantName;

/// The engine's tensor types that callers of this crate need (spec, inputs, outputs).
pub mod engine_types {
    pub use engine::tensor::{IoSpec, TensorModel, ValidSpec};
}

pub use datasets::{DatasetFormat, DatasetUpload, Datasets};
pub use runner::{FailPoint, Runner, RunnerConfig};
pub use store::{DatasetRecord, JobStatus};
pub use train::{Hyperparameters, Lineage, OptimizerKind, PublishRequest, TrainRequest};

/// Everything that can go wrong with datasets and jobs.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The request is the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// An uploaded dataset was refused; the message names the row and column.
    #[error("{0}")]
    Dataset(#[from] engine::tensor::DatasetError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Blob(#[from] blobstore::BlobError),
    #[error("{0}")]
    Internal(String),
}

/// The body of `POST /v1/jobs`, tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobRequest {
    Train(TrainRequest),
}

impl JobRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            JobRequest::Train(_) => "train",
        }
    }
}

/// Submitting, reading and cancelling jobs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    registry: Registry,
}

impl Jobs {
    pub fn new(registry: Registry) -> Jobs {
        Jobs { registry }
    }

    /// Checks and queues a job for `tenant`. With an idempotency key the tenant used
    /// before, returns that job instead; the flag says whether a new job was queued.
    pub async fn submit(
        &self,
        tenant: TenantName,
        body: serde_json::Value,
        idempotency_key: Option<String>,
    ) -> Result<(JobRecord, bool), JobsError> {
        let request: JobRequest = serde_json::from_value(body)
            .map_err(|e| JobsError::Invalid(format!("invalid job request: {e}")))?;
        let caller = Caller::tenant(tenant.clone());
        let request = match request {
            JobRequest::Train(train) => {
                JobRequest::Train(train::prepare(&self.registry, &caller, train).await?)
            }
        };
        if let Some(key) = &idempotency_key {
            if key.is_empty() || key.len() > 200 {
                return Err(JobsError::Invalid(
                    "the Idempotency-Key header must have 1 to 200 characters".into(),
                ));
            }
        }
        let stored = serde_json::to_value(&request)
            .map_err(|e| JobsError::Internal(format!("job request: {e}")))?;
        let (job, created) = self
            .registry
            .store()
            .insert_job(NewJob {
                id: uuid::Uuid::new_v4().to_string(),
                tenant,
                kind: request.kind().to_owned(),
                request: stored,
                idempotency_key,
            })
            .await?;
        if created {
            tracing::info!(job = %job.id, tenant = %job.tenant, kind = %job.kind, "job queued");
        }
        Ok((job, created))
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<JobRecord, JobsError> {
        Ok(self.registry.store().find_job(caller, id).await?)
    }

    /// The newest 500 jobs the caller may see.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<JobRecord>, JobsError> {
        Ok(self.registry.store().list_jobs(caller, 500).await?)
    }

    /// Cancels a queued job at once; asks the runner of a running one to stop.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<JobRecord, JobsError> {
        Ok(self.registry.store().cancel_job(caller, id).await?)
    }
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, JobsError> + Send + 'static,
) -> Result<T, JobsError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| JobsError::Internal(format!("blocking task failed: {e}")))?
}
