//! `/v1/embeddings` over the real router with the real all-MiniLM-L6-v2: parity with
//! sentence-transformers on every reference line, input validation, isolation, batching
//! under concurrency and load shedding.

use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{error_code, Reply, TestApp};

pub fn model_dir() -> PathBuf {
    let dir = std::env::var_os("CHARTER_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2")
        });
    assert!(
        dir.join("model.safetensors").exists(),
        "run scripts/fetch-model.sh: no model at {}",
        dir.display()
    );
    dir
}

struct Reference {
    text: String,
    input_ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Vec<Reference> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/minilm_public.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            Reference {
                text: v["text"].as_str().unwrap().to_owned(),
                input_ids: serde_json::from_value(v["input_ids"].clone()).unwrap(),
                embedding: serde_json::from_value(v["embedding"].clone()).unwrap(),
            }
        })
        .collect()
}

/// Imports all-MiniLM-L6-v2 as the shared model `minilm`.
pub async fn import_shared_minilm(app: &TestApp) {
    let mut request =
        registry::ImportRequest::new("minilm".parse().unwrap(), "admin".parse().unwrap());
    request.shared = true;
    app.registry
        .import_dir(&model_dir(), request)
        .await
        .unwrap();
}

async fn app_with_minilm(config: api::ApiConfig) -> (TestApp, String) {
    let app = TestApp::with_config(config).await;
    import_shared_minilm(&app).await;
    let key = app.admin_key().await;
    (app, key)
}

fn vectors(reply: &Reply) -> Vec<Vec<f32>> {
    let data = reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", reply.text));
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["index"], i);
            assert_eq!(item["object"], "embedding");
            match &item["embedding"] {
                Value::String(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                other => serde_json::from_value(other.clone()).unwrap(),
            }
        })
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let dot: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| (*a as f64) * (*b as f64))
        .sum();
    let norms: f64 = [got, want]
        .iter()
        .map(|v| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt())
        .product();
    let cosine = dot / norms;
    let max_diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(cosine >= 0.99999, "{what}: cosine {cosine}");
    assert!(max_diff <= 1e-4, "{what}: max abs diff {max_diff}");
}

async fn embed(app: &TestApp, key: &str, body: Value) -> Reply {
    app.call(Method::POST, "/v1/embeddings", Some(key), Some(body))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_embeddings_match_sentence_transformers_on_every_reference_line() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let reference = reference();
    assert!(reference.len() >= 20);
    let texts: Vec<&str> = reference.iter().map(|r| r.text.as_str()).collect();
    let reply = embed(&app, &key, json!({"model": "minilm", "input": texts})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["object"], "list");
    assert_eq!(reply.body["model"], "minilm");
    let n_tokens: usize = reference.iter().map(|r| r.input_ids.len()).sum();
    assert_eq!(
        reply.body["usage"]["prompt_tokens"], n_tokens,
        "token counts differ from the reference"
    );
    assert_eq!(reply.body["usage"]["total_tokens"], n_tokens);
    for (got, want) in vectors(&reply).iter().zip(&reference) {
        assert_close(got, &want.embedding, &want.text);
    }
    // The same through token ids, one line at a time, in base64.
    for r in &reference {
        let reply = embed(
            &app,
            &key,
            json!({"model": "minilm:1", "input": [r.input_ids], "encoding_format": "base64"}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["usage"]["prompt_tokens"], r.input_ids.len());
        assert_close(&vectors(&reply)[0], &r.embedding, &r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_errors() {
    let config = api::ApiConfig {
        max_inputs: 4,
        max_request_tokens: 100,
        ..api::ApiConfig::default()
    };
    let (app, key) = app_with_minilm(config).await;
    app.import("admin", "not-an-encoder", true).await;
    let long_text = "word ".repeat(60);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"model": "minilm", "input": []}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": ""}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": ["ok", ""]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": 42}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": {"text": "x"}}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": ["x", 1]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": [[101, -1, 102]]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": [[101, 1.5, 102]]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": [[101, 999999, 102]]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": [[]]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": [vec![1000u32; 300]]}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            json!({"model": "minilm", "input": ["a", "b", "c", "d", "e"]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_inputs",
        ),
        (
            json!({"model": "minilm", "input": [long_text, long_text]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_tokens",
        ),
        (
            json!({"model": "minilm", "input": "x", "encoding_format": "hex"}),
            StatusCode::BAD_REQUEST,
            "invalid_encoding_format",
        ),
        (
            json!({"model": "minilm", "input": "x", "dimensions": 128}),
            StatusCode::BAD_REQUEST,
            "unsupported_dimensions",
        ),
        (
            json!({"model": "nope", "input": "x"}),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            json!({"model": "../etc", "input": "x"}),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            json!({"model": "minilm:7", "input": "x"}),
            StatusCode::NOT_FOUND,
            "model_not_found",
        ),
        (
            json!({"model": "not-an-encoder", "input": "x"}),
            StatusCode::BAD_REQUEST,
            "model_not_encoder",
        ),
        (
            json!({"model": "minilm"}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"model": "minilm", "input": "x", "temperature": 1}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let reply = embed(&app, &key, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text);
        assert_eq!(error_code(&reply), code, "{body}");
    }
    // Accepted variants: a single token array, `dimensions` equal to the model's, `user`.
    let reply = embed(
        &app,
        &key,
        json!({"model": "minilm", "input": [101, 7592, 102], "dimensions": 384, "user": "u1"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(vectors(&reply)[0].len(), 384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_models_are_not_usable_by_other_tenants() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    app.tenant("beta").await;
    let request =
        registry::ImportRequest::new("alpha-minilm".parse().unwrap(), "alpha".parse().unwrap());
    app.registry
        .import_dir(&model_dir(), request)
        .await
        .unwrap();
    let alpha = app.key("alpha", "inference").await;
    let beta = app.key("beta", "inference").await;
    let body = json!({"model": "alpha-minilm", "input": "hello"});
    assert_eq!(
        embed(&app, &alpha, body.clone()).await.status,
        StatusCode::OK
    );
    let reply = embed(&app, &beta, body).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(error_code(&reply), "model_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_batched_without_mixing_results() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let reference = reference();
    let app = std::sync::Arc::new(app);
    let calls: Vec<_> = reference
        .iter()
        .map(|r| {
            let (app, key, text) = (app.clone(), key.clone(), r.text.clone());
            tokio::spawn(async move {
                embed(&app, &key, json!({"model": "minilm", "input": text})).await
            })
        })
        .collect();
    for (call, r) in calls.into_iter().zip(&reference) {
        let reply = call.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_close(&vectors(&reply)[0], &r.embedding, &r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let config = api::ApiConfig {
        queue_capacity: 1,
        ..api::ApiConfig::default()
    };
    let (app, key) = app_with_minilm(config).await;
    let long: Vec<String> = (0..32)
        .map(|i| format!("sentence {i} {}", "with many words ".repeat(15)))
        .collect();
    // Load the model first, so every request below meets a warm worker.
    assert_eq!(
        embed(&app, &key, json!({"model": "minilm", "input": "warm"}))
            .await
            .status,
        StatusCode::OK
    );
    let app = std::sync::Arc::new(app);
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let (app, key, input) = (app.clone(), key.clone(), long.clone());
            tokio::spawn(async move {
                embed(&app, &key, json!({"model": "minilm", "input": input})).await
            })
        })
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for call in calls {
        let reply = call.await.unwrap();
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(
                    reply.headers.contains_key("retry-after"),
                    "{:?}",
                    reply.headers
                );
                assert_eq!(error_code(&reply), "overloaded");
                shed += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    assert!(ok >= 1 && shed >= 1, "ok {ok}, shed {shed}");
    // Once the burst is over, the model serves again.
    assert_eq!(
        embed(&app, &key, json!({"model": "minilm", "input": "after"}))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_deploy_and_undeploy_while_running() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let listed = app.get("/v1/deployments", &key).await;
    assert_eq!(listed.body, json!([]));
    let reply = app
        .call(
            Method::POST,
            "/v1/registry/models/minilm/deploy",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["version"], 1);
    let listed = app.get("/v1/deployments", &key).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{}", listed.text);
    let reply = app
        .call(
            Method::POST,
            "/v1/registry/models/minilm/undeploy",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(app.get("/v1/deployments", &key).await.body, json!([]));
    // Loaded again on demand.
    assert_eq!(
        embed(&app, &key, json!({"model": "minilm", "input": "x"}))
            .await
            .status,
        StatusCode::OK
    );
    // Checkouts are removed once the model is in memory.
    let left: Vec<_> = std::fs::read_dir(&app.state.config().checkout_dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("checkout-"))
        .filter(|e| e.path().join("model.safetensors").exists())
        .collect();
    assert!(left.is_empty(), "checkouts left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_name_the_model_version_that_answered() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let log = governance::audit::AuditLog::open(
        app.store.clone(),
        crypto::signing::SigningKey::generate(),
    );
    assert!(app.state.set_audit(log));
    let reply = embed(&app, &key, json!({"model": "minilm", "input": "traceable"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let seq = reply.headers["x-charter-receipt"]
        .to_str()
        .unwrap()
        .to_owned();
    let receipt = app.get(&format!("/v1/receipts/{seq}"), &key).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    let version = app
        .store
        .resolve(&store::Caller::admin(), &"minilm:1".parse().unwrap())
        .await
        .unwrap()
        .1;
    let expected = api::serving::version_digest(&version);
    assert_eq!(expected.len(), 64);
    assert!(
        receipt.text.contains(&expected),
        "the receipt does not name the model version: {}",
        receipt.text
    );
}

/// A deployment opts into bf16: it is reloaded in that precision, says so, and its
/// vectors stay within cosine 0.999 of the f32 ones; a bad precision name is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_in_bf16_reloads_and_stays_close_to_f32() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let text = "Deployments may trade exactness for speed.";
    let vector = |reply: &Reply| -> Vec<f64> {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        serde_json::from_value(reply.body["data"][0]["embedding"].clone()).unwrap()
    };
    let f32_vector = vector(&embed(&app, &key, json!({"model": "minilm", "input": text})).await);

    let deploy = |precision: &'static str| {
        let path = format!("/v1/registry/models/minilm/deploy?precision={precision}");
        let (app, key) = (&app, &key);
        async move { app.call(Method::POST, &path, Some(key), None).await }
    };
    let reply = deploy("bf16").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["precision"], "bf16");
    let listed = app.get("/v1/deployments", &key).await;
    assert_eq!(listed.body[0]["precision"], "bf16", "{}", listed.text);

    let bf16_vector = vector(&embed(&app, &key, json!({"model": "minilm", "input": text})).await);
    let dot: f64 = f32_vector
        .iter()
        .zip(&bf16_vector)
        .map(|(a, b)| a * b)
        .sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let cosine = dot / (norm(&f32_vector) * norm(&bf16_vector));
    assert!(cosine >= 0.999, "cosine {cosine}");
    assert_ne!(
        f32_vector, bf16_vector,
        "the bf16 deployment answered in f32"
    );

    let reply = deploy("int3").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert!(reply.text.contains("bf16"), "{}", reply.text);
    // Back to f32 on request.
    assert_eq!(deploy("f32").await.body["precision"], "f32");
}

/// Encoders are explained by occlusion: the tokens of `text` with scores, and the two
/// texts' similarity equal to that of their embeddings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_scores_the_tokens_of_a_similarity() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let body = json!({"model": "minilm", "text": "a dog runs in the park", "compare_to": "puppy"});
    let reply = app
        .call(Method::POST, "/v1/explain", Some(&key), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["method"], "occlusion");
    let tokens: Vec<&str> = reply.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.get("token").and_then(Value::as_str).unwrap())
        .collect();
    assert_eq!(tokens, ["a", "dog", "runs", "in", "the", "park"]);
    let embedded = vectors(
        &embed(
            &app,
            &key,
            json!({"model": "minilm", "input": ["a dog runs in the park", "puppy"]}),
        )
        .await,
    );
    let cosine: f32 = embedded[0]
        .iter()
        .zip(&embedded[1])
        .map(|(a, b)| a * b)
        .sum();
    let similarity = reply.body["similarity"].as_f64().unwrap() as f32;
    assert!(
        (similarity - cosine).abs() < 1e-4,
        "{similarity} vs {cosine}"
    );
    let missing = app
        .call(
            Method::POST,
            "/v1/explain",
            Some(&key),
            Some(json!({"model": "minilm", "text": "x"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.text);
    assert!(missing.text.contains("compare_to"), "{}", missing.text);
}

/// Explanations pass through the tenant's input policy like embeddings: a blocked kind
/// is refused, a redacted text is what gets explained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_applies_the_tenants_input_policy() {
    let (app, key) = app_with_minilm(api::ApiConfig::default()).await;
    let explain = |text: &'static str| {
        let (app, key) = (&app, &key);
        async move {
            let body = json!({"model": "minilm", "text": text, "compare_to": "contact details"});
            app.call(Method::POST, "/v1/explain", Some(key), Some(body))
                .await
        }
    };
    let policy = |input: Value| {
        let (app, key) = (&app, &key);
        async move {
            let reply = app
                .call(
                    Method::PUT,
                    "/v1/tenants/admin/privacy",
                    Some(key),
                    Some(json!({"input": input})),
                )
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        }
    };
    policy(json!({"default": "allow", "actions": {"email": "block"}})).await;
    let blocked = explain("write to jane.doe@example.com today").await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST, "{}", blocked.text);
    assert_eq!(error_code(&blocked), "pii_blocked");
    assert!(!blocked.text.contains("jane.doe"), "{}", blocked.text);

    policy(json!({"default": "redact"})).await;
    let redacted = explain("write to jane.doe@example.com today").await;
    assert_eq!(redacted.status, StatusCode::OK, "{}", redacted.text);
    let tokens: Vec<&str> = redacted.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["token"].as_str())
        .collect();
    assert!(
        !tokens
            .iter()
            .any(|t| t.contains("jane") || t.contains("doe")),
        "{tokens:?}"
    );
    assert!(
        tokens.contains(&"email"),
        "the explained text is the redacted one: {tokens:?}"
    );
}
