//! An in-process app with two tenants and their keys, plus the seed workload's files.

use std::collections::HashMap;
use std::time::Duration;

use api::AppState;

use crate::common::TestApp;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use engine::tensor::{TensorModel, TensorModelSpec, ValidSpec};
use http_body_util::BodyExt;
use registry::Registry;
use serde_json::Value;
use tower::ServiceExt;

pub const SEED_SPEC: &str = r#"{"inputs": [{"name": "x", "shape": [10]}], "outputs": [{"name": "y", "shape": [10]}], "layers": [{"type": "linear", "name": "layer1", "in": 10, "out": 20}, {"type": "linear", "name": "layer2", "in": 20, "out": 10}], "loss": "mse"}"#;

pub struct App {
    pub router: Router,
    pub state: AppState,
    pub registry: Registry,
    /// Keys by tenant: `acme` and `other`, scopes data, jobs, inference, models:read.
    pub keys: HashMap<&'static str, String>,
    /// Owns the store, blobs and temp dir the router works on.
    pub base: TestApp,
}

/// The shared in-process app (`common::TestApp`) with two tenants and their keys.
pub async fn app() -> App {
    let test_app = TestApp::new().await;
    let mut keys = HashMap::new();
    for tenant in ["acme", "other"] {
        test_app.tenant(tenant).await;
        keys.insert(
            tenant,
            test_app
                .key(tenant, "data,jobs,inference,models:read")
                .await,
        );
    }
    App {
        router: test_app.router.clone(),
        state: test_app.state.clone(),
        registry: test_app.registry.clone(),
        keys,
        base: test_app,
    }
}

impl App {
    /// Sends one request as `tenant` (None: no key) and returns status and JSON body
    /// (`Value::String` with the raw text when the body is not JSON).
    pub async fn call(
        &self,
        tenant: Option<&str>,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let (status, _, body) = self
            .call_raw(tenant, method, uri, content_type, body, &[])
            .await;
        let value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        (status, value)
    }

    pub async fn call_raw(
        &self,
        tenant: Option<&str>,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type);
        if let Some(tenant) = tenant {
            request = request.header("authorization", format!("Bearer {}", self.keys[tenant]));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(120), response.into_body().collect())
            .await
            .expect("response body within 120 s")
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    pub async fn get(&self, tenant: &str, uri: &str) -> (StatusCode, Value) {
        self.call(
            Some(tenant),
            Method::GET,
            uri,
            "application/json",
            Vec::new(),
        )
        .await
    }

    pub async fn post_json(&self, tenant: &str, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.call(
            Some(tenant),
            Method::POST,
            uri,
            "application/json",
            body.to_string().into_bytes(),
        )
        .await
    }

    /// Polls a job until it is terminal.
    pub async fn wait_job(&self, tenant: &str, id: &str) -> Value {
        for _ in 0..1200 {
            let (status, job) = self.get(tenant, &format!("/v1/jobs/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{job}");
            if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish within 60 s");
    }
}

/// The shared PyTorch reference of the seed model.
pub struct Reference {
    pub json: Value,
}

impl Reference {
    pub fn load() -> Reference {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/reference/seed_mlp.json"
        );
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        Reference {
            json: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn spec() -> ValidSpec {
        TensorModelSpec::parse(SEED_SPEC).unwrap()
    }

    pub fn initial_model(&self) -> TensorModel {
        let tensors = self.json["initial_weights"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, t)| {
                let shape = t["shape"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (name.clone(), (shape, floats(&t["data"])))
            })
            .collect();
        TensorModel::from_tensors(Self::spec(), &tensors).unwrap()
    }

    /// The data stream as JSONL: row t is `{"x": x[t], "y": y[t]}`.
    pub fn jsonl(&self) -> String {
        let x = floats(&self.json["x"]["data"]);
        let y = floats(&self.json["y"]["data"]);
        x.chunks(10)
            .zip(y.chunks(10))
            .map(|(x, y)| format!("{}\n", serde_json::json!({"x": x, "y": y})))
            .collect()
    }

    pub fn losses(&self, run: &str) -> Vec<f64> {
        self.json["runs"][run]["losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    }
}

pub fn floats(value: &Value) -> Vec<f32> {
    match value {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        other => panic!("not a number: {other}"),
    }
}

/// Asserts two loss trajectories agree within `tolerance` step by step.
pub fn assert_trajectory(actual: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "number of steps");
    for (step, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tolerance,
            "step {}: {a} vs reference {e}",
            step + 1
        );
    }
}

/// Publishes `model` as the next version of `tenant/name` (no training job, empty
/// lineage).
pub async fn publish(app: &App, tenant: &str, name: &str, model: &TensorModel) {
    jobs::train::publish_model(
        &app.registry,
        jobs::PublishRequest {
            tenant: types::TenantName::try_from(tenant).unwrap(),
            name: types::ModelName::try_from(name).unwrap(),
            model: model.clone(),
            lineage: jobs::Lineage {
                job_id: None,
                dataset: None,
                dataset_digest: String::new(),
                dataset_rows: 0,
                spec: model.spec().clone(),
                hyperparameters: Default::default(),
                seed: 0,
                parent_model: None,
                final_metrics: Default::default(),
                steps: 0,
            },
        },
    )
    .await
    .unwrap();
}
