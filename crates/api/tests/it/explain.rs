//! `POST /v1/explain`: integrated gradients for tensor models (completeness over HTTP,
//! audited with the version that answered) and the refusals of bad requests. The
//! encoder side is in `embeddings.rs`, next to the model it needs.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, app, floats, App};

const SPEC: &str = r#"{"inputs": [{"name": "x", "shape": [6]}, {"name": "z", "shape": [2]}],
    "outputs": [{"name": "y", "shape": [4]}, {"name": "p", "shape": [1]}],
    "layers": [{"type": "linear", "name": "l1", "in": 8, "out": 16}, {"type": "relu"},
               {"type": "linear", "name": "l2", "in": 16, "out": 16}, {"type": "tanh"},
               {"type": "linear", "name": "l3", "in": 16, "out": 5}],
    "loss": "mse"}"#;

async fn publish(app: &App) -> engine::tensor::TensorModel {
    let spec = engine::tensor::TensorModelSpec::parse(SPEC).unwrap();
    let model = engine::tensor::TensorModel::init(spec, 17);
    support::publish(app, "acme", "mlp", &model).await;
    model
}

fn x() -> Vec<f32> {
    vec![0.9, -1.2, 0.4, 2.0, -0.3, 1.1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrated_gradients_are_complete_and_audited() {
    let app = app().await;
    let log = governance::audit::AuditLog::open(
        app.base.store.clone(),
        crypto::signing::SigningKey::generate(),
    );
    assert!(app.state.set_audit(log));
    let model = publish(&app).await;
    let body = json!({
        "model": "mlp",
        "inputs": {"x": x(), "z": [0.5, -0.7]},
        "target": {"output": "y", "index": 3},
        "baseline": "zeros"
    });
    let (status, headers, bytes) = app
        .call_raw(
            Some("acme"),
            Method::POST,
            "/v1/explain",
            "application/json",
            body.to_string().into_bytes(),
            &[],
        )
        .await;
    let reply: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["method"], "integrated_gradients");
    assert_eq!(reply["model_version"], 1);
    let (ax, az) = (
        floats(&reply["attributions"]["x"]),
        floats(&reply["attributions"]["z"]),
    );
    assert_eq!((ax.len(), az.len()), (6, 2));

    // Completeness, checked against the model itself rather than the reply's own sums.
    let input: Vec<f32> = x().into_iter().chain([0.5, -0.7]).collect();
    let value = model.forward(&input, 1).unwrap()[3];
    let baseline_value = model.forward(&[0.0; 8], 1).unwrap()[3];
    let difference = f64::from(value) - f64::from(baseline_value);
    let sum: f64 = ax.iter().chain(&az).map(|&a| f64::from(a)).sum();
    assert!(
        difference.abs() > 1e-3,
        "the output barely moves: {difference}"
    );
    assert!(
        (sum - difference).abs() <= 0.01 * difference.abs(),
        "attributions sum to {sum}, f(x) - f(0) = {difference}"
    );
    assert_eq!(reply["target"]["value"].as_f64().unwrap() as f32, value);
    assert!(reply["completeness"]["relative_error"].as_f64().unwrap() <= 0.01);

    // The explanation is audited like an inference, naming the version that answered.
    let seq = headers["x-charter-receipt"].to_str().unwrap().to_owned();
    let (status, receipt) = app.get("acme", &format!("/v1/receipts/{seq}")).await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let version = app
        .base
        .store
        .resolve(&store::Caller::admin(), &"mlp:1".parse().unwrap())
        .await
        .unwrap()
        .1;
    let digest = api::serving::version_digest(&version);
    assert!(receipt.to_string().contains(&digest), "{receipt}");

    // So is v2 inference now.
    let infer = json!({"inputs": [
        {"name": "x", "shape": [1, 6], "datatype": "FP32", "data": x()},
        {"name": "z", "shape": [1, 2], "datatype": "FP32", "data": [0.5, -0.7]}]});
    let (status, headers, _) = app
        .call_raw(
            Some("acme"),
            Method::POST,
            "/v2/models/mlp/infer",
            "application/json",
            infer.to_string().into_bytes(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let seq = headers["x-charter-receipt"].to_str().unwrap().to_owned();
    let (_, receipt) = app.get("acme", &format!("/v1/receipts/{seq}")).await;
    assert!(receipt.to_string().contains(&digest), "{receipt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_explain_requests_say_what_is_wrong() {
    let app = app().await;
    publish(&app).await;
    let inputs = json!({"x": x(), "z": [0.5, -0.7]});
    let cases = [
        (json!({"model": "mlp"}), "needs 'inputs'"),
        (
            json!({"model": "mlp", "inputs": {"x": [1.0], "z": [0.0, 0.0]}, "target": {"output": "p"}}),
            "needs 6 values",
        ),
        (
            json!({"model": "mlp", "inputs": {"x": x(), "z": [0.0, 0.0], "w": [1.0]}, "target": {"output": "p"}}),
            "unknown input 'w'",
        ),
        (
            json!({"model": "mlp", "inputs": inputs, "target": {"output": "q", "index": 0}}),
            "unknown output 'q'",
        ),
        (
            json!({"model": "mlp", "inputs": inputs, "target": {"output": "y", "index": 4}}),
            "out of range",
        ),
        (
            json!({"model": "mlp", "inputs": inputs, "target": {"output": "y"}}),
            "target.index is needed",
        ),
        (
            json!({"model": "mlp", "inputs": inputs}),
            "target.output is needed",
        ),
        (
            json!({"model": "mlp", "inputs": inputs, "target": {"output": "p"}, "baseline": "ones"}),
            "baseline must be",
        ),
        (
            json!({"model": "mlp", "inputs": inputs, "target": {"output": "p"}, "steps": 0}),
            "steps must be",
        ),
    ];
    for (body, needle) in cases {
        let (status, reply) = app.post_json("acme", "/v1/explain", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_explain_request", "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    // A one-value output needs no index; another tenant sees no model.
    let body = json!({"model": "mlp", "inputs": inputs, "target": {"output": "p"}});
    let (status, reply) = app.post_json("acme", "/v1/explain", &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["target"]["index"], 0);
    let (status, _) = app.post_json("other", "/v1/explain", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
