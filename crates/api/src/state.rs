//! Shared state of the HTTP layer: handles to the services, readiness and limits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

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
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            max_json_body: 2 * 1024 * 1024,
            max_upload: 2 * 1024 * 1024 * 1024,
            request_timeout_secs: 60,
            upload_dir: std::env::temp_dir(),
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
    config: ApiConfig,
    ready: AtomicBool,
    metrics: Option<MetricsRender>,
    tensors: inference::tensor::TensorModels,
}

impl AppState {
    pub fn new(
        store: Store,
        registry: Registry,
        config: ApiConfig,
        metrics: Option<MetricsRender>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                registry,
                config,
                ready: AtomicBool::new(false),
                metrics,
                tensors: Default::default(),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
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

    /// Tensor models loaded for Open Inference Protocol v2 requests.
    pub fn tensors(&self) -> &inference::tensor::TensorModels {
        &self.inner.tensors
    }

    pub fn render_metrics(&self) -> Option<String> {
        self.inner.metrics.as_ref().map(|render| render())
    }
}
