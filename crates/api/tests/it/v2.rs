//! Open Inference Protocol v2: health, metadata, readiness, batched inference equal to
//! `TensorModel::forward`, and the errors that say what was expected.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{self, app, App, Reference};

pub(crate) async fn publish_seed(app: &App) -> engine::tensor::TensorModel {
    let model = Reference::load().initial_model();
    support::publish(app, "acme", "seed", &model).await;
    model
}

fn rows(n: usize, salt: f32) -> Vec<f32> {
    (0..n * 10)
        .map(|i| ((i as f32 + salt) * 0.37).sin())
        .collect()
}

fn infer_body(shape: Value, datatype: &str, data: Value) -> Value {
    json!({"id": "r1", "inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]})
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metadata() {
    let app = app().await;
    publish_seed(&app).await;
    for path in ["/v2/health/live", "/v2/health/ready"] {
        let (status, body) = app.call(None, Method::GET, path, "", vec![]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, meta) = app.get("acme", "/v2/models/seed").await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["platform"], "charter-tensor");
    assert_eq!(meta["versions"], json!(["1"]));
    assert_eq!(
        meta["inputs"],
        json!([{"name": "x", "datatype": "FP32", "shape": [-1, 10]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([{"name": "y", "datatype": "FP32", "shape": [-1, 10]}])
    );
    let (status, _) = app.get("acme", "/v2/models/seed/versions/1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, ready) = app.get("acme", "/v2/models/seed/ready").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    let (status, _) = app.get("other", "/v2/models/seed").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another tenant's model is invisible"
    );
    let (status, _) = app
        .call(None, Method::GET, "/v2/models/seed", "", vec![])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infer_equals_forward_also_under_concurrency() {
    let app = app().await;
    let model = publish_seed(&app).await;
    let input = rows(3, 0.0);
    let (status, body) = app
        .post_json(
            "acme",
            "/v2/models/seed/infer",
            &infer_body(json!([3, 10]), "FP32", json!(input)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model_name"], "seed");
    assert_eq!(body["model_version"], "1");
    assert_eq!(body["id"], "r1");
    let output = &body["outputs"][0];
    assert_eq!(output["name"], "y");
    assert_eq!(output["shape"], json!([3, 10]));
    assert_eq!(output["datatype"], "FP32");
    assert_eq!(floats(&output["data"]), model.forward(&input, 3).unwrap());

    // Concurrent requests are batched by the worker; each gets its own rows back.
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let input = rows(1 + i % 3, i as f32);
            let n = 1 + i % 3;
            let body = infer_body(json!([n, 10]), "FP32", json!(input));
            let uri = if i % 2 == 0 {
                "/v2/models/seed/infer"
            } else {
                "/v2/models/seed/versions/1/infer"
            };
            let app = &app;
            async move { (input, n, app.post_json("acme", uri, &body).await) }
        })
        .collect();
    for (input, n, (status, body)) in futures::future::join_all(calls).await {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            floats(&body["outputs"][0]["data"]),
            model.forward(&input, n).unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_saying_what_was_expected() {
    let app = app().await;
    publish_seed(&app).await;
    let check = |body: Value, needle: &'static str| {
        let app = &app;
        async move {
            let (status, error) = app.post_json("acme", "/v2/models/seed/infer", &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
            let message = error["error"]["message"].as_str().unwrap();
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
    };
    check(
        infer_body(json!([1, 9]), "FP32", json!(vec![0.5; 9])),
        "expected [batch, 10]",
    )
    .await;
    check(
        infer_body(json!([1, 10]), "FP64", json!(vec![0.5; 10])),
        "this model takes FP32",
    )
    .await;
    check(
        infer_body(json!([2, 10]), "FP32", json!(vec![0.5; 10])),
        "needs 20",
    )
    .await;
    check(
        infer_body(
            json!([1, 10]),
            "FP32",
            json!([1e39, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ),
        "non-finite",
    )
    .await;
    check(
        infer_body(json!([5000, 10]), "FP32", json!(vec![0.0; 50_000])),
        "at most 4096",
    )
    .await;
    check(
        infer_body(json!([1, 10]), "FP32", json!(vec!["a"; 10])),
        "invalid",
    )
    .await;
    check(json!({"inputs": [{"name": "z", "shape": [1, 10], "datatype": "FP32", "data": vec![0.5; 10]}]}), "unknown input").await;
    check(json!({"inputs": []}), "missing input").await;
    let (status, _) = app
        .post_json(
            "acme",
            "/v2/models/nope/infer",
            &infer_body(json!([1, 10]), "FP32", json!(vec![0.5; 10])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post_json(
            "acme",
            "/v2/models/seed/versions/9/infer",
            &infer_body(json!([1, 10]), "FP32", json!(vec![0.5; 10])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post_json(
            "other",
            "/v2/models/seed/infer",
            &infer_body(json!([1, 10]), "FP32", json!(vec![0.5; 10])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
