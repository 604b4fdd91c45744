//! Shared state of the HTTP layer: handles to the services, readiness and limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use governance::admission::TenantSlots;
use governance::audit::AuditLog;
use governance::metering::Meter;
use governance::privacy::Privacy;
use governance::ratelimit::RateLimiter;
use inference::Deployments;
use registry::Registry;
use store::Store;

/// Limits of the HTTP layer; each has a flag in `charter serve`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest JSON body accepted, in bytes.
    pub max_json_body: usize,
    /// Largest model upload accepted, in bytes.
    pub max_upload: u64,
    /// Whole-request deadline for non-streaming requests, in seconds.
    pub request_timeout_secs: u64,
    /// Where uploads are staged before import; on the same file system as the blobs.
    pub upload_dir: std::path::PathBuf,
    /// Where model versions are checked out to be loaded (removed once in memory).
    pub checkout_dir: std::path::PathBuf,
    /// Requests that may wait per loaded model; more get 503 with `Retry-After`.
    pub queue_capacity: usize,
    /// Most inputs in one embeddings request.
    pub max_inputs: usize,
    /// Most tokens, summed over the inputs, in one embeddings request.
    pub max_request_tokens: usize,
    /// Most inference requests one tenant may have in flight at once (more get 429),
    /// so one tenant cannot fill a model's queue; `None` for no cap.
    pub max_in_flight_per_tenant: Option<usize>,
    /// Most requests the whole server works on at once (health and metrics probes
    /// aside); more get 503 `overloaded` before their body is read, which bounds the
    /// memory concurrent requests can take.
    pub max_in_flight: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_json_body: 2 * 1024 * 1024,
            max_upload: 2 * 1024 * 1024 * 1024,
            request_timeout_secs: 60,
            upload_dir: std::env::temp_dir(),
            checkout_dir: std::env::temp_dir(),
            queue_capacity: 256,
            max_inputs: 2048,
            max_request_tokens: 300_000,
            max_in_flight_per_tenant: None,
            max_in_flight: 512,
        }
    }
}

/// Renders the Prometheus exposition text; the binary owns the recorder.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Everything the handlers reach, cloned cheaply into each request.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    registry: Registry,
    deployments: Deployments,
    config: ApiConfig,
    ready: AtomicBool,
    metrics: Option<MetricsRender>,
    /// Set once by the binary; while unset, requests are not audited.
    audit: std::sync::OnceLock<AuditLog>,
    tensors: inference::tensor::TensorModels,
    keys: governance::KeyCache,
    admissions: crate::serving::Admissions,
    limiter: RateLimiter,
    meter: Arc<Meter>,
    tenant_slots: Option<TenantSlots>,
    /// Places for requests in flight in the whole server; see `limits::server_place`.
    in_flight: Arc<tokio::sync::Semaphore>,
    privacy: Privacy,
}

impl AppState {
    pub fn new(
        store: Store,
        registry: Registry,
        config: ApiConfig,
        metrics: Option<MetricsRender>,
    ) -> Self {
        let tenant_slots = config.max_in_flight_per_tenant.map(TenantSlots::new);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(config.max_in_flight.max(1)));
        Self {
            inner: Arc::new(Inner {
                store,
                privacy: Privacy::new(registry.clone()),
                registry,
                deployments: Deployments::new(inference::BatchPolicy {
                    queue_capacity: config.queue_capacity,
                    ..inference::BatchPolicy::default()
                }),
                config,
                ready: AtomicBool::new(false),
                metrics,
                audit: std::sync::OnceLock::new(),
                tensors: Default::default(),
                keys: Default::default(),
                admissions: Default::default(),
                limiter: RateLimiter::new(),
                meter: Arc::new(Meter::new()),
                tenant_slots,
                in_flight,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    pub fn deployments(&self) -> &Deployments {
        &self.inner.deployments
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Marks the server ready (after warm-up) or not (while draining).
    pub fn set_ready(&self, ready: bool) {
        self.inner.ready.store(ready, Ordering::Release);
    }

    /// Turns on auditing of every request through `log`; false when already set.
    pub fn set_audit(&self, log: AuditLog) -> bool {
        self.inner.audit.set(log).is_ok()
    }

    pub fn audit(&self) -> Option<&AuditLog> {
        self.inner.audit.get()
    }

    /// Tensor models loaded for Open Inference Protocol v2 requests.
    pub fn tensors(&self) -> &inference::tensor::TensorModels {
        &self.inner.tensors
    }

    /// Recent admissions of models to callers (see [`crate::serving::admit`]).
    pub fn admissions(&self) -> &crate::serving::Admissions {
        &self.inner.admissions
    }

    /// Recently verified API keys (see [`governance::KeyCache`]).
    pub fn key_cache(&self) -> &governance::KeyCache {
        &self.inner.keys
    }

    /// This process's rate limits per key and tenant.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Places for requests in flight in the whole server.
    pub(crate) fn in_flight(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.in_flight
    }

    /// Places per tenant for inference requests in flight, when capped.
    pub fn tenant_slots(&self) -> Option<&TenantSlots> {
        self.inner.tenant_slots.as_ref()
    }

    /// Usage not yet written to the store; the binary flushes it periodically and on
    /// shutdown.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.inner.meter
    }

    /// Per-tenant PII policies, the pseudonym vault, stored payloads and erasure.
    pub fn privacy(&self) -> &Privacy {
        &self.inner.privacy
    }

    pub fn render_metrics(&self) -> Option<String> {
        self.inner.metrics.as_ref().map(|render| render())
    }
}
