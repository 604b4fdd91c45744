//! The persisted job queue: one row per job, whose status moves
//! queued → running → succeeded | failed | cancelled.
//!
//! Every transition is a single conditional `UPDATE … WHERE status = …`, so two runners
//! never claim the same job and a runner that lost its job (its lease expired and another
//! runner took over) cannot overwrite the newer state: its updates match no row.

use sqlx::any::AnyRow;
use sqlx::Row;
use types::TenantName;

use crate::{constraint_error, get_bool, parse_tenant, Caller, Store, StoreError};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    fn parse(text: &str) -> Result<JobStatus, StoreError> {
        Ok(match text {
            "queued" => JobStatus::Queued,
            "running" => JobStatus::Running,
            "succeeded" => JobStatus::Succeeded,
            "failed" => JobStatus::Failed,
            "cancelled" => JobStatus::Cancelled,
            other => return Err(StoreError::Corrupt(format!("job status '{other}'"))),
        })
    }
}

/// One job as stored. `request`, `progress` and `result` are JSON owned by the jobs crate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRecord {
    pub id: String,
    pub tenant: TenantName,
    pub kind: String,
    pub status: JobStatus,
    pub request: serde_json::Value,
    pub progress: Option<serde_json::Value>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub idempotency_key: Option<String>,
    pub checkpoint_digest: Option<String>,
    pub cancel_requested: bool,
    pub attempts: i64,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// What [`Store::insert_job`] stores.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub tenant: TenantName,
    pub kind: String,
    pub request: serde_json::Value,
    pub idempotency_key: Option<String>,
}

const JOB_SELECT: &str = "SELECT j.id, t.name AS tenant, j.kind, j.status, j.request, j.progress, \
     j.result, j.error, j.idempotency_key, j.checkpoint_digest, j.cancel_requested, j.attempts, \
     j.created_at, j.started_at, j.finished_at FROM jobs j JOIN tenants t ON t.id = j.tenant_id";

fn json_column(row: &AnyRow, column: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("job {column}: {e}")))
}

impl JobRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant: parse_tenant(row.try_get("tenant")?)?,
            kind: row.try_get("kind")?,
            status: JobStatus::parse(&status)?,
            request: json_column(row, "request")?.unwrap_or_default(),
            progress: json_column(row, "progress")?,
            result: json_column(row, "result")?,
            error: row.try_get("error")?,
            idempotency_key: row.try_get("idempotency_key")?,
            checkpoint_digest: row.try_get("checkpoint_digest")?,
            cancel_requested: get_bool(row, "cancel_requested")?,
            attempts: row.try_get("attempts")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

impl Store {
    /// Queues a job. With an idempotency key that the tenant already used, returns the
    /// existing job instead (`false` as second value) and queues nothing.
    pub async fn insert_job(&self, new: NewJob) -> Result<(JobRecord, bool), StoreError> {
        let caller = Caller::tenant(new.tenant.clone());
        if let Some(key) = &new.idempotency_key {
            if let Some(existing) = self.job_by_idempotency_key(&caller, key).await? {
                return Ok((existing, false));
            }
        }
        let now = types::unix_now();
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, tenant_id, kind, status, request, idempotency_key, created_at) \
             SELECT $1, t.id, $2, 'queued', $3, $4, $5 FROM tenants t WHERE t.name = $6",
        )
        .bind(new.id.as_str())
        .bind(new.kind.as_str())
        .bind(new.request.to_string())
        .bind(new.idempotency_key.as_deref())
        .bind(now)
        .bind(new.tenant.as_str())
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(result) if result.rows_affected() == 0 => {
                Err(StoreError::NotFound(format!("tenant '{}'", new.tenant)))
            }
            Ok(_) => Ok((self.job_unchecked(&new.id).await?, true)),
            Err(error) => {
                // A concurrent submission with the same key won the race: answer with it.
                if let Some(key) = &new.idempotency_key {
                    if let Some(existing) = self.job_by_idempotency_key(&caller, key).await? {
                        return Ok((existing, false));
                    }
                }
                Err(constraint_error(
                    error,
                    "the job id already exists",
                    "the tenant does not exist",
                ))
            }
        }
    }

    async fn job_by_idempotency_key(
        &self,
        caller: &Caller,
        key: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        let sql = format!("{JOB_SELECT} WHERE t.name = $1 AND j.idempotency_key = $2");
        let row = sqlx::query(&sql)
            .bind(caller.tenant.as_str())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(JobRecord::from_row).transpose()
    }

    /// One job by id without visibility checks, for the runner.
    pub async fn job_unchecked(&self, id: &str) -> Result<JobRecord, StoreError> {
        let sql = format!("{JOB_SELECT} WHERE j.id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref()
            .map(JobRecord::from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("job '{id}'")))
    }

    /// One job of the caller's tenant (any tenant's for admins); others are `NotFound`.
    pub async fn find_job(&self, caller: &Caller, id: &str) -> Result<JobRecord, StoreError> {
        let job = self.job_unchecked(id).await?;
        if caller.is_admin || job.tenant == caller.tenant {
            Ok(job)
        } else {
            Err(StoreError::NotFound(format!("job '{id}'")))
        }
    }

    /// The caller's tenant's jobs (everyone's for admins), newest first, at most `limit`.
    pub async fn list_jobs(
        &self,
        caller: &Caller,
        limit: i64,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let sql = format!(
            "{JOB_SELECT} WHERE $1 OR t.name = $2 ORDER BY j.created_at DESC, j.id LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(caller.is_admin)
            .bind(caller.tenant.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(JobRecord::from_row).collect()
    }

    /// Takes the oldest queued job for `runner_id`, atomically: of concurrent runners
    /// exactly one gets it.
    pub async fn claim_next_job(&self, runner_id: &str) -> Result<Option<JobRecord>, StoreError> {
        let now = types::unix_now();
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', runner_id = $1, heartbeat_at = $2, \
             started_at = COALESCE(started_at, $2), attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY created_at, id LIMIT 1) \
             AND status = 'queued' RETURNING id",
        )
        .bind(runner_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => {
                let id: String = row.try_get("id")?;
                Ok(Some(self.job_unchecked(&id).await?))
            }
            None => Ok(None),
        }
    }

    /// Running jobs whose runner has not been heard of since `stale_before`: their runner
    /// died (crash, restart). Each is taken over by `runner_id` atomically.
    pub async fn take_over_stale_jobs(
        &self,
        runner_id: &str,
        stale_before: i64,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE status = 'running' AND \
             (heartbeat_at IS NULL OR heartbeat_at <= $1) AND (runner_id IS NULL OR runner_id <> $2)",
        )
        .bind(stale_before)
        .bind(runner_id)
        .fetch_all(&self.pool)
        .await?;
        let now = types::unix_now();
        let mut taken = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let result = sqlx::query(
                "UPDATE jobs SET runner_id = $1, heartbeat_at = $2, attempts = attempts + 1 \
                 WHERE id = $3 AND status = 'running' AND (heartbeat_at IS NULL OR heartbeat_at <= $4)",
            )
            .bind(runner_id)
            .bind(now)
            .bind(id.as_str())
            .bind(stale_before)
            .execute(&self.pool)
            .await?;
            if result.rows_affected() == 1 {
                taken.push(self.job_unchecked(&id).await?);
            }
        }
        Ok(taken)
    }

    /// Records progress (and optionally a checkpoint) of a job this runner holds, and
    /// renews its lease. Returns whether cancellation was requested; `None` when the job
    /// is no longer this runner's.
    pub async fn job_heartbeat(
        &self,
        id: &str,
        runner_id: &str,
        progress: &serde_json::Value,
        checkpoint_digest: Option<&str>,
    ) -> Result<Option<bool>, StoreError> {
        let row = sqlx::query(
            "UPDATE jobs SET progress = $1, heartbeat_at = $2, \
             checkpoint_digest = COALESCE($3, checkpoint_digest) \
             WHERE id = $4 AND runner_id = $5 AND status = 'running' RETURNING cancel_requested",
        )
        .bind(progress.to_string())
        .bind(types::unix_now())
        .bind(checkpoint_digest)
        .bind(id)
        .bind(runner_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(|row| get_bool(row, "cancel_requested"))
            .transpose()
    }

    /// Moves a job this runner holds to a terminal status. `false` when the job is no
    /// longer this runner's (nothing changed).
    pub async fn finish_job(
        &self,
        id: &str,
        runner_id: &str,
        status: JobStatus,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = $1, result = COALESCE($2, result), error = $3, finished_at = $4 \
             WHERE id = $5 AND runner_id = $6 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(result.map(|r| r.to_string()))
        .bind(error)
        .bind(types::unix_now())
        .bind(id)
        .bind(runner_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Blobs that datasets and unfinished jobs still need (dataset content, checkpoints),
    /// so blob garbage collection keeps them.
    pub async fn job_referenced_digests(&self) -> Result<Vec<String>, StoreError> {
        let mut digests = Vec::new();
        for row in sqlx::query("SELECT digest FROM datasets")
            .fetch_all(&self.pool)
            .await?
        {
            digests.push(row.try_get::<String, _>("digest")?);
        }
        let rows = sqlx::query(
            "SELECT request, checkpoint_digest FROM jobs WHERE status IN ('queued', 'running')",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            if let Some(digest) = row.try_get::<Option<String>, _>("checkpoint_digest")? {
                digests.push(digest);
            }
            let request: String = row.try_get("request")?;
            let request: serde_json::Value = serde_json::from_str(&request)
                .map_err(|e| StoreError::Corrupt(format!("job request: {e}")))?;
            if let Some(digest) = request["resolved"]["dataset_digest"].as_str() {
                digests.push(digest.to_owned());
            }
        }
        Ok(digests)
    }

    /// Gives a running job up without finishing it (graceful shutdown): progress and
    /// checkpoint are kept and the next runner takes it over at once.
    pub async fn release_job(
        &self,
        id: &str,
        runner_id: &str,
        progress: &serde_json::Value,
        checkpoint_digest: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET progress = $1, checkpoint_digest = COALESCE($2, checkpoint_digest), \
             runner_id = NULL, heartbeat_at = NULL, attempts = attempts - 1 \
             WHERE id = $3 AND runner_id = $4 AND status = 'running'",
        )
        .bind(progress.to_string())
        .bind(checkpoint_digest)
        .bind(id)
        .bind(runner_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels a job: a queued one at once, a running one by asking its runner (which
    /// stops between steps). Terminal jobs stay as they are.
    pub async fn cancel_job(&self, caller: &Caller, id: &str) -> Result<JobRecord, StoreError> {
        let job = self.find_job(caller, id).await?;
        sqlx::query(
            "UPDATE jobs SET status = 'cancelled', finished_at = $1, error = 'cancelled before it started' \
             WHERE id = $2 AND status = 'queued'",
        )
        .bind(types::unix_now())
        .bind(job.id.as_str())
        .execute(&self.pool)
        .await?;
        sqlx::query("UPDATE jobs SET cancel_requested = TRUE WHERE id = $1 AND status = 'running'")
            .bind(job.id.as_str())
            .execute(&self.pool)
            .await?;
        self.job_unchecked(&job.id).await
    }
}
