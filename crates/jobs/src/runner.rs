//! The one job runner: claims queued jobs, runs them, and takes over jobs whose runner
//! died.
//!
//! Training runs on a blocking thread and pulls one trainer event at a time; between
//! events it renews the job's lease with its progress (at most every
//! `heartbeat_interval`, which is also when cancellation is noticed) and every
//! `checkpoint_every` steps stores a checkpoint blob and records its digest. A job whose
//! lease is older than `lease_secs` belongs to a dead runner: it is taken over and
//! resumed from its last checkpoint (or from the start when it had none, since training
//! is deterministic), and failed with the reason after [`MAX_ATTEMPTS`] tries.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobstore::{BlobStore, Digest, TenantKey};
use engine::tensor::{TensorModel, TrainEvent, Trainer};
use registry::Registry;
use serde_json::{json, Value};
use store::{Caller, JobRecord, JobStatus, Store};
use types::ModelRef;

use crate::datasets::parse_for_spec;
use crate::train::{publish_model, Lineage, PublishRequest, TrainRequest};
use crate::{JobRequest, JobsError};

/// A job interrupted this many times is failed instead of resumed again.
pub const MAX_ATTEMPTS: i64 = 3;
/// Step losses kept in a job's result; later steps are only in the progress.
pub const MAX_LOSS_HISTORY: usize = 100_000;

/// Named points where a test makes the runner die as a crashed process would: it stops
/// at once, leaving the job `running` with whatever it had committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// Right after the checkpoint of this step was recorded.
    AfterCheckpoint { step: u64 },
    /// After training finished, before the model is published.
    BeforePublish,
    /// After the model is published, before the job is marked succeeded.
    AfterPublish,
}

/// How the runner polls, leases and checkpoints.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// How often an idle runner looks for queued jobs.
    pub poll_interval: Duration,
    /// How often a running job records progress and checks for cancellation.
    pub heartbeat_interval: Duration,
    /// A running job not heard of for this long is taken over.
    pub lease_secs: i64,
    /// Steps between checkpoints when the job does not say.
    pub checkpoint_every: u64,
    pub fail_point: Option<FailPoint>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            poll_interval: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(250),
            lease_secs: 30,
            checkpoint_every: 1000,
            fail_point: None,
        }
    }
}

/// A started runner; [`Runner::shutdown`] stops it after checkpointing its job.
pub struct Runner {
    id: String,
    stop: Arc<AtomicBool>,
    wake: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Runner {
    /// Starts the runner task on the current tokio runtime.
    pub fn start(registry: Registry, config: RunnerConfig) -> Runner {
        let id = uuid::Uuid::new_v4().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(tokio::sync::Notify::new());
        let worker = Worker {
            id: id.clone(),
            registry,
            config,
            stop: stop.clone(),
        };
        let task = tokio::spawn(worker.run(wake.clone()));
        Runner {
            id,
            stop,
            wake,
            task,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// True once the runner task ended (shutdown, or a fail point fired).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the runner: a running job is checkpointed and released for the next runner.
    pub async fn shutdown(self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_one();
        let _ = self.task.await;
    }
}

struct Worker {
    id: String,
    registry: Registry,
    config: RunnerConfig,
    stop: Arc<AtomicBool>,
}

/// How running one job ended, as far as the runner loop cares.
enum Ended {
    Done,
    /// A fail point fired: the runner dies.
    Crashed,
}

impl Worker {
    async fn run(self, wake: Arc<tokio::sync::Notify>) {
        tracing::info!(runner = %self.id, "job runner started");
        while !self.stop.load(Ordering::Acquire) {
            match self.next_job().await {
                Ok(Some(job)) => {
                    if let Ended::Crashed = self.run_job(job).await {
                        tracing::warn!(runner = %self.id, "fail point reached: runner stops");
                        return;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "job runner cannot read the queue"),
            }
            let _ = tokio::time::timeout(self.config.poll_interval, wake.notified()).await;
        }
        tracing::info!(runner = %self.id, "job runner stopped");
    }

    async fn next_job(&self) -> Result<Option<JobRecord>, JobsError> {
        let store = self.registry.store();
        let stale_before = types::unix_now() - self.config.lease_secs;
        let mut taken = store.take_over_stale_jobs(&self.id, stale_before).await?;
        if let Some(job) = taken.pop() {
            tracing::warn!(job = %job.id, attempts = job.attempts, "taking over a job whose runner stopped");
            // The others stay ours with a fresh lease; they are picked up as stale later.
            return Ok(Some(job));
        }
        Ok(store.claim_next_job(&self.id).await?)
    }

    async fn run_job(&self, job: JobRecord) -> Ended {
        let store = self.registry.store().clone();
        let job_id = job.id.clone();
        let finish = |status: JobStatus, result: Option<Value>, error: Option<String>| {
            let store = store.clone();
            let (job_id, runner_id) = (job_id.clone(), self.id.clone());
            async move {
                match store
                    .finish_job(
                        &job_id,
                        &runner_id,
                        status,
                        result.as_ref(),
                        error.as_deref(),
                    )
                    .await
                {
                    Ok(true) => {
                        tracing::info!(job = %job_id, status = status.as_str(), "job finished")
                    }
                    Ok(false) => {
                        tracing::warn!(job = %job_id, "job was taken over; result dropped")
                    }
                    Err(e) => {
                        tracing::error!(job = %job_id, error = %e, "cannot record the job's end")
                    }
                }
            }
        };
        if job.attempts > MAX_ATTEMPTS {
            let reason = format!(
                "the job was interrupted {} times (server restarts or crashes) and is not retried again",
                job.attempts - 1
            );
            finish(JobStatus::Failed, None, Some(reason)).await;
            return Ended::Done;
        }
        if job.cancel_requested {
            finish(JobStatus::Cancelled, None, Some("cancelled".into())).await;
            return Ended::Done;
        }
        match self.execute(&job).await {
            Ok(Outcome::Succeeded(result)) => {
                finish(JobStatus::Succeeded, Some(result), None).await
            }
            Ok(Outcome::Cancelled) => {
                finish(JobStatus::Cancelled, None, Some("cancelled".into())).await
            }
            Ok(Outcome::Released | Outcome::Lost) => {}
            Ok(Outcome::Crashed) => return Ended::Crashed,
            Err(error) => {
                tracing::warn!(job = %job.id, %error, "job failed");
                finish(JobStatus::Failed, None, Some(error.to_string())).await;
            }
        }
        Ended::Done
    }

    async fn execute(&self, job: &JobRecord) -> Result<Outcome, JobsError> {
        let request: JobRequest = serde_json::from_value(job.request.clone())
            .map_err(|e| JobsError::Internal(format!("stored job request: {e}")))?;
        let JobRequest::Train(request) = request;
        let resolved = request
            .resolved
            .clone()
            .ok_or_else(|| JobsError::Internal("the job's inputs were not resolved".into()))?;
        let config = request.hyperparameters.to_config()?;
        let blobs = self.registry.blobs().clone();
        let key = self.registry.tenant_key(&job.tenant).await?;
        let digest = parse_digest(&resolved.dataset_digest)?;
        let spec = request.spec.clone();
        let (format, columns) = (
            resolved.dataset_format.clone(),
            resolved.dataset_columns.clone(),
        );
        let checkpoint = job
            .checkpoint_digest
            .as_deref()
            .map(parse_digest)
            .transpose()?;
        let (data_blobs, data_key) = (blobs.clone(), key.clone());
        let (data, checkpoint) = crate::blocking(move || {
            let bytes = data_blobs.get(&data_key, &digest, None)?;
            let data = parse_for_spec(&format, &columns, &spec, &bytes)?;
            let checkpoint = checkpoint
                .map(|d| data_blobs.get(&data_key, &d, None))
                .transpose()?;
            Ok((data, checkpoint))
        })
        .await?;
        let (trainer, losses) = match checkpoint {
            Some(bytes) => {
                let (trainer_bytes, losses) = decode_checkpoint(&bytes)?;
                let trainer = Trainer::resume(trainer_bytes, data).map_err(|e| {
                    JobsError::Invalid(format!("cannot resume from the checkpoint: {e}"))
                })?;
                tracing::info!(job = %job.id, step = trainer.step(), "resuming from checkpoint");
                (trainer, losses)
            }
            None => {
                let model = self.initial_model(job, &request).await?;
                let trainer = Trainer::new(model, data, config)
                    .map_err(|e| JobsError::Invalid(e.to_string()))?;
                (trainer, Vec::new())
            }
        };
        let total_steps = total_steps(&trainer, resolved.dataset_rows as usize);
        let training = Training {
            store: self.registry.store().clone(),
            blobs,
            key,
            handle: tokio::runtime::Handle::current(),
            job_id: job.id.clone(),
            runner_id: self.id.clone(),
            checkpoint_every: request
                .checkpoint_every
                .unwrap_or(self.config.checkpoint_every),
            heartbeat_interval: self.config.heartbeat_interval,
            fail_point: self.config.fail_point,
            stop: self.stop.clone(),
            total_steps,
        };
        let end = crate::blocking(move || training.run(trainer, losses)).await?;
        let (trainer, losses, metrics) = match end {
            LoopEnd::Finished {
                trainer,
                losses,
                metrics,
            } => (trainer, losses, metrics),
            LoopEnd::Cancelled => return Ok(Outcome::Cancelled),
            LoopEnd::Released => return Ok(Outcome::Released),
            LoopEnd::Lost => return Ok(Outcome::Lost),
            LoopEnd::Crashed => return Ok(Outcome::Crashed),
        };
        if self.config.fail_point == Some(FailPoint::BeforePublish) {
            return Ok(Outcome::Crashed);
        }
        let steps = trainer.step();
        let lineage = Lineage {
            job_id: Some(job.id.clone()),
            dataset: Some(request.dataset.to_string()),
            dataset_digest: resolved.dataset_digest.clone(),
            dataset_rows: resolved.dataset_rows,
            spec: request.spec.clone(),
            hyperparameters: request.hyperparameters.clone(),
            seed: request.hyperparameters.seed,
            parent_model: resolved.parent.clone(),
            final_metrics: metrics,
            steps,
        };
        // A runner that died between publishing and recording success has left the
        // version behind: the resumed job adopts it rather than publishing twice.
        let version = match self.published_by(job, &request.output_model).await? {
            Some(version) => version,
            None => {
                publish_model(
                    &self.registry,
                    PublishRequest {
                        tenant: job.tenant.clone(),
                        name: request.output_model.clone(),
                        model: (*trainer).into_model(),
                        lineage: lineage.clone(),
                    },
                )
                .await?
            }
        };
        if self.config.fail_point == Some(FailPoint::AfterPublish) {
            return Ok(Outcome::Crashed);
        }
        Ok(Outcome::Succeeded(json!({
            "model": version.model.to_string(),
            "version": version.version,
            "lineage": lineage,
            "losses": losses,
            "losses_truncated": steps as usize > losses.len(),
        })))
    }

    /// The version of `name` whose lineage names `job`, among the newest few.
    async fn published_by(
        &self,
        job: &JobRecord,
        name: &types::ModelName,
    ) -> Result<Option<store::VersionRecord>, JobsError> {
        /// A job's own version is the newest unless other versions were published
        /// since; looking further back than this costs reads for nothing.
        const LOOK_BACK: usize = 16;
        let caller = Caller::tenant(job.tenant.clone());
        let versions = match self.registry.versions(name, &caller).await {
            Ok(versions) => versions,
            Err(registry::RegistryError::NotFound(_)) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        for version in versions.into_iter().rev().take(LOOK_BACK) {
            if version.manifest.file(crate::train::LINEAGE_FILE).is_none() {
                continue;
            }
            let bytes = self
                .registry
                .file_bytes(&version, crate::train::LINEAGE_FILE)
                .await?;
            let lineage: Option<Lineage> = serde_json::from_slice(&bytes).ok();
            if lineage.is_some_and(|l| l.job_id.as_deref() == Some(job.id.as_str())) {
                return Ok(Some(version));
            }
        }
        Ok(None)
    }

    async fn initial_model(
        &self,
        job: &JobRecord,
        request: &TrainRequest,
    ) -> Result<TensorModel, JobsError> {
        let resolved = request.resolved.as_ref();
        let Some(parent) = resolved.and_then(|r| r.parent.as_ref()) else {
            return Ok(TensorModel::init(
                request.spec.clone(),
                request.hyperparameters.seed,
            ));
        };
        let model_ref: ModelRef = parent
            .parse()
            .map_err(|e| JobsError::Internal(format!("parent: {e}")))?;
        let caller = Caller::tenant(job.tenant.clone());
        let (_, version) = self.registry.show(&model_ref, &caller).await?;
        let digest = version
            .manifest
            .file(crate::train::WEIGHTS_FILE)
            .map(|f| f.sha256.clone());
        if digest.as_ref() != resolved.and_then(|r| r.parent_weights_digest.as_ref()) {
            return Err(JobsError::Invalid(format!(
                "parent model '{parent}' changed since the job was submitted"
            )));
        }
        let weights = self
            .registry
            .file_bytes(&version, crate::train::WEIGHTS_FILE)
            .await?;
        TensorModel::from_safetensors(request.spec.clone(), &weights)
            .map_err(|e| JobsError::Invalid(format!("parent model '{parent}': {e}")))
    }
}

enum Outcome {
    Succeeded(Value),
    Cancelled,
    /// Shutdown: checkpointed and handed back to the queue.
    Released,
    /// Another runner took the job over.
    Lost,
    Crashed,
}

enum LoopEnd {
    Finished {
        trainer: Box<Trainer>,
        losses: Vec<f64>,
        metrics: std::collections::BTreeMap<String, f64>,
    },
    Cancelled,
    Released,
    Lost,
    Crashed,
}

/// The blocking side of one job.
struct Training {
    store: Store,
    blobs: Arc<BlobStore>,
    /// The job tenant's data key: checkpoints are sealed like every other blob.
    key: TenantKey,
    handle: tokio::runtime::Handle,
    job_id: String,
    runner_id: String,
    checkpoint_every: u64,
    heartbeat_interval: Duration,
    fail_point: Option<FailPoint>,
    stop: Arc<AtomicBool>,
    total_steps: u64,
}

impl Training {
    fn run(self, mut trainer: Trainer, mut losses: Vec<f64>) -> Result<LoopEnd, JobsError> {
        let mut progress = json!({
            "step": trainer.step(),
            "total_steps": self.total_steps,
            "epochs": trainer.config().epochs,
        });
        let mut metrics = std::collections::BTreeMap::new();
        let mut last_beat = Instant::now();
        loop {
            if self.stop.load(Ordering::Acquire) {
                let digest = self.checkpoint(&trainer, &losses)?;
                let released = self.handle.block_on(self.store.release_job(
                    &self.job_id,
                    &self.runner_id,
                    &progress,
                    Some(digest.as_str()),
                ))?;
                tracing::info!(job = %self.job_id, released, "job checkpointed for shutdown");
                return Ok(LoopEnd::Released);
            }
            let event = trainer
                .next_event()
                .map_err(|e| JobsError::Invalid(format!("training failed: {e}")))?;
            let mut force = false;
            let mut checkpoint = None;
            match event {
                None => break,
                Some(TrainEvent::Step(step)) => {
                    if losses.len() < MAX_LOSS_HISTORY {
                        losses.push(step.loss);
                    }
                    progress["step"] = json!(step.step);
                    progress["epoch"] = json!(step.epoch);
                    progress["loss"] = json!(step.loss);
                    progress["lr"] = json!(step.lr);
                    metrics.insert("loss".to_owned(), step.loss);
                    if step.step % self.checkpoint_every == 0 {
                        checkpoint = Some(self.checkpoint(&trainer, &losses)?);
                        force = true;
                    }
                }
                Some(TrainEvent::EpochEnd(epoch)) => {
                    progress["epoch"] = json!(epoch.epoch);
                    progress["train_loss"] = json!(epoch.train_loss);
                    progress["val_loss"] = json!(epoch.val_loss);
                    progress["val_accuracy"] = json!(epoch.val_accuracy);
                    progress["epochs_done"] = json!(epoch.epoch + 1);
                    metrics.insert("train_loss".to_owned(), epoch.train_loss);
                    for (key, value) in [
                        ("val_loss", epoch.val_loss),
                        ("val_accuracy", epoch.val_accuracy),
                    ] {
                        if let Some(value) = value {
                            metrics.insert(key.to_owned(), value);
                        }
                    }
                    force = true;
                }
            }
            if force || last_beat.elapsed() >= self.heartbeat_interval {
                last_beat = Instant::now();
                match self.beat(&progress, checkpoint.as_deref())? {
                    None => return Ok(LoopEnd::Lost),
                    Some(true) => return Ok(LoopEnd::Cancelled),
                    Some(false) => {}
                }
                if let (Some(FailPoint::AfterCheckpoint { step }), Some(_)) =
                    (self.fail_point, &checkpoint)
                {
                    if trainer.step() >= step {
                        return Ok(LoopEnd::Crashed);
                    }
                }
            }
        }
        progress["done"] = json!(true);
        match self.beat(&progress, None)? {
            None => return Ok(LoopEnd::Lost),
            Some(true) => return Ok(LoopEnd::Cancelled),
            Some(false) => {}
        }
        Ok(LoopEnd::Finished {
            trainer: Box::new(trainer),
            losses,
            metrics,
        })
    }

    fn beat(&self, progress: &Value, checkpoint: Option<&str>) -> Result<Option<bool>, JobsError> {
        Ok(self.handle.block_on(self.store.job_heartbeat(
            &self.job_id,
            &self.runner_id,
            progress,
            checkpoint,
        ))?)
    }

    fn checkpoint(&self, trainer: &Trainer, losses: &[f64]) -> Result<String, JobsError> {
        let bytes = trainer
            .checkpoint()
            .map_err(|e| JobsError::Internal(format!("checkpoint: {e}")))?;
        let info = self
            .blobs
            .put_bytes(&self.key, &encode_checkpoint(&bytes, losses))?;
        Ok(info.digest.to_string())
    }
}

fn total_steps(trainer: &Trainer, rows: usize) -> u64 {
    let config = trainer.config();
    let n_train = rows - (rows as f64 * config.validation_split).floor() as usize;
    let per_epoch = match config.batch_size {
        None => 1,
        Some(batch) => n_train.div_ceil(batch.max(1)),
    };
    (per_epoch * config.epochs) as u64
}

fn parse_digest(text: &str) -> Result<Digest, JobsError> {
    Digest::parse(text).map_err(|e| JobsError::Internal(format!("stored digest: {e}")))
}

const CHECKPOINT_MAGIC: &[u8; 8] = b"CHRJOB01";

/// A job checkpoint: the trainer's checkpoint followed by the step losses so far, so a
/// resumed job still reports its whole loss history.
fn encode_checkpoint(trainer: &[u8], losses: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + trainer.len() + losses.len() * 8);
    out.extend_from_slice(CHECKPOINT_MAGIC);
    out.extend_from_slice(&(trainer.len() as u64).to_le_bytes());
    out.extend_from_slice(trainer);
    for loss in losses {
        out.extend_from_slice(&loss.to_le_bytes());
    }
    out
}

fn decode_checkpoint(bytes: &[u8]) -> Result<(&[u8], Vec<f64>), JobsError> {
    let bad = || JobsError::Invalid("the job's checkpoint is corrupt".into());
    let rest = bytes
        .strip_prefix(CHECKPOINT_MAGIC.as_slice())
        .ok_or_else(bad)?;
    if rest.len() < 8 {
        return Err(bad());
    }
    let (len, rest) = rest.split_at(8);
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
    if rest.len() < len {
        return Err(bad());
    }
    let (trainer, losses) = rest.split_at(len);
    if !losses.chunks_exact(8).remainder().is_empty() {
        return Err(bad());
    }
    let losses = losses
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8: this is a bug")))
        .collect();
    Ok((trainer, losses))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_envelope_round_trips_and_refuses_garbage() {
        let encoded = encode_checkpoint(b"trainer", &[1.5, -2.0]);
        let (trainer, losses) = decode_checkpoint(&encoded).unwrap();
        assert_eq!(trainer, b"trainer");
        assert_eq!(losses, vec![1.5, -2.0]);
        assert!(decode_checkpoint(b"nope").is_err());
        assert!(decode_checkpoint(&encoded[..encoded.len() - 3]).is_err());
    }
}
