//! Jobs: submit (202), show, list, cancel, and follow progress as server-sent events.
//! Another tenant's job is 404.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use jobs::Jobs;
use serde::{Deserialize, Serialize};
use store::JobRecord;
use utoipa::ToSchema;

use crate::auth::{Guarded, Jobs as JobsScope};
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::datasets::jobs_error;
use crate::state::AppState;

/// How often the event stream looks at the job.
const EVENT_POLL: Duration = Duration::from_millis(200);

/// A job as clients see it.
#[derive(Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub object: &'static str,
    pub kind: String,
    /// queued, running, succeeded, failed or cancelled.
    pub status: String,
    pub tenant: String,
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
    /// Latest progress: step, total_steps, epoch, loss, val_loss, val_accuracy.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<serde_json::Value>,
    /// On success: model, version, lineage and the loss of every step.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub attempts: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct JobList {
    pub data: Vec<JobView>,
}

/// The body of `POST /v1/jobs` (documentation; parsed by the jobs service).
#[derive(Deserialize, ToSchema)]
pub struct CreateJobRequest {
    /// `train`
    pub kind: String,
    /// The tensor model spec: inputs, outputs, layers, loss.
    #[schema(value_type = Object)]
    pub spec: serde_json::Value,
    /// A dataset of the tenant.
    pub dataset: String,
    /// The model that gets the result as a new version.
    pub output_model: String,
    /// `NAME[:VERSION]` of a tensor model to fine-tune.
    pub parent_model: Option<String>,
    /// optimizer (gd, sgd, adam, adamw), lr, epochs, batch_size, seed, momentum,
    /// nesterov, weight_decay, shuffle, validation_split, schedule, early_stopping,
    /// max_grad_norm, betas, eps.
    #[schema(value_type = Option<Object>)]
    pub hyperparameters: Option<serde_json::Value>,
    pub checkpoint_every: Option<u64>,
}

impl From<JobRecord> for JobView {
    fn from(job: JobRecord) -> Self {
        Self {
            id: job.id,
            object: "job",
            kind: job.kind,
            status: job.status.as_str().to_owned(),
            tenant: job.tenant.to_string(),
            request: job.request,
            progress: job.progress,
            result: job.result,
            error: job.error,
            cancel_requested: job.cancel_requested,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// Queues a job; an `Idempotency-Key` the tenant used before returns that job.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    request_body = CreateJobRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 202, body = JobView), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn create(
    guard: Guarded<JobsScope>,
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (job, _created) = Jobs::new(state.registry().clone())
        .submit(guard.principal.tenant.clone(), body, key)
        .await
        .map_err(jobs_error)?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// The caller's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = JobList)))]
pub async fn list(
    guard: Guarded<JobsScope>,
    State(state): State<AppState>,
) -> ApiResult<Json<JobList>> {
    let jobs = Jobs::new(state.registry().clone())
        .list(&guard.principal.caller())
        .await
        .map_err(jobs_error)?;
    Ok(Json(JobList {
        data: jobs.into_iter().map(JobView::from).collect(),
    }))
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    guard: Guarded<JobsScope>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = Jobs::new(state.registry().clone())
        .get(&guard.principal.caller(), &id)
        .await
        .map_err(jobs_error)?;
    Ok(Json(job.into()))
}

/// Cancels a queued job at once, a running one between two training steps.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn cancel(
    guard: Guarded<JobsScope>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let job = Jobs::new(state.registry().clone())
        .cancel(&guard.principal.caller(), &id)
        .await
        .map_err(jobs_error)?;
    Ok(Json(job.into()))
}

/// Server-sent events: `status` with the job first, `progress` whenever it changes,
/// and `end` with the final job once it is succeeded, failed or cancelled.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", tag = "jobs", security(("bearer" = [])),
    params(("id" = String, Path)),
    responses((status = 200, content_type = "text/event-stream", body = String),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn events(
    guard: Guarded<JobsScope>,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let jobs = Jobs::new(state.registry().clone());
    let caller = guard.principal.caller();
    let job = jobs.get(&caller, &id).await.map_err(jobs_error)?;
    let follow = Follow {
        jobs,
        caller,
        id,
        first: Some(job),
        last_progress: None,
        ended: false,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        let event = follow.next().await?;
        Some((Ok(event), follow))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// State of one event stream.
struct Follow {
    jobs: Jobs,
    caller: store::Caller,
    id: String,
    first: Option<JobRecord>,
    last_progress: Option<serde_json::Value>,
    ended: bool,
}

impl Follow {
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        if let Some(job) = self.first.take() {
            self.last_progress = job.progress.clone();
            if job.status.is_terminal() {
                self.ended = true;
                return Some(job_event("end", job));
            }
            return Some(job_event("status", job));
        }
        loop {
            tokio::time::sleep(EVENT_POLL).await;
            let job = match self.jobs.get(&self.caller, &self.id).await {
                Ok(job) => job,
                Err(error) => {
                    tracing::warn!(%error, "job event stream ends: the job cannot be read");
                    return None;
                }
            };
            if job.progress.is_some() && job.progress != self.last_progress {
                self.last_progress = job.progress.clone();
                let data = job.progress.clone().unwrap_or_default();
                return Some(Event::default().event("progress").data(data.to_string()));
            }
            if job.status.is_terminal() {
                self.ended = true;
                return Some(job_event("end", job));
            }
        }
    }
}

fn job_event(name: &str, job: JobRecord) -> Event {
    let view = JobView::from(job);
    let data = serde_json::to_string(&view).unwrap_or_default();
    Event::default().event(name).data(data)
}
