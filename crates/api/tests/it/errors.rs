//! The one error shape, for bad JSON, unknown routes, wrong methods and bad paths.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::common::{error_code, TestApp};

#[tokio::test]
async fn every_failure_has_the_one_error_shape() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let check = |status: StatusCode, code: &'static str| {
        move |reply: crate::common::Reply| {
            assert_eq!(reply.status, status, "{}", reply.text);
            assert_eq!(error_code(&reply), code, "{}", reply.text);
        }
    };
    check(StatusCode::NOT_FOUND, "route_not_found")(app.get("/v1/nothing-here", &admin).await);
    check(StatusCode::NOT_FOUND, "route_not_found")(
        app.call(Method::GET, "/nothing", None, None).await,
    );
    check(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")(
        app.call(Method::PUT, "/v1/models", Some(&admin), None)
            .await,
    );
    let bad_json = Request::builder()
        .method("POST")
        .uri("/v1/tenants")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    check(StatusCode::BAD_REQUEST, "invalid_json")(app.send(bad_json).await);
    let no_type = Request::builder()
        .method("POST")
        .uri("/v1/tenants")
        .header("authorization", format!("Bearer {admin}"))
        .body(Body::from("{\"name\": \"x\"}"))
        .unwrap();
    check(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")(app.send(no_type).await);
    check(StatusCode::BAD_REQUEST, "invalid_path")(app.get("/v1/registry/models/..", &admin).await);
    check(StatusCode::BAD_REQUEST, "invalid_path")(
        app.get("/v1/registry/models/ok/versions/x", &admin).await,
    );
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let deep = Request::builder()
        .method("POST")
        .uri("/v1/tenants")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(deep))
        .unwrap();
    let reply = app.send(deep).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
}

#[tokio::test]
async fn json_bodies_over_the_cap_get_413() {
    let config = api::ApiConfig {
        max_json_body: 1024,
        ..api::ApiConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let admin = app.admin_key().await;
    let body = format!("{{\"name\": \"{}\"}}", "a".repeat(2048));
    let request = Request::builder()
        .method("POST")
        .uri("/v1/tenants")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    error_code(&reply);
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = TestApp::new().await;
    let reply = app.call(Method::GET, "/health", None, None).await;
    assert!(reply.headers.contains_key("x-request-id"));
}

/// A model that imports but cannot be loaded gets 400 `model_unsupported` naming the
/// model's file, never the server's checkout path (checklist row 37).
#[tokio::test]
async fn a_model_that_cannot_load_is_refused_without_server_paths() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    let key = app.key("alpha", "inference,models:write").await;
    // Valid JSON (the import checks that), but not a BERT configuration.
    for (name, config) in [
        ("incomplete", r#"{"model_type":"bert"}"#),
        ("mistyped", r#"{"model_type":"bert","hidden_size":"wide"}"#),
    ] {
        let dir = app.dir.path().join(format!("fixture-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config).unwrap();
        std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
        std::fs::write(
            dir.join("model.safetensors"),
            crate::common::tiny_safetensors(4),
        )
        .unwrap();
        let request = registry::ImportRequest::new(name.parse().unwrap(), "alpha".parse().unwrap());
        app.registry.import_dir(&dir, request).await.unwrap();

        let embed = serde_json::json!({"model": name, "input": "hello"});
        let replies = [
            app.call(Method::POST, "/v1/embeddings", Some(&key), Some(embed))
                .await,
            app.call(
                Method::POST,
                &format!("/v1/registry/models/{name}/deploy"),
                Some(&key),
                None,
            )
            .await,
        ];
        for reply in replies {
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{name}: {}",
                reply.text
            );
            assert_eq!(error_code(&reply), "model_unsupported", "{name}");
            let server_dir = app.dir.path().display().to_string();
            assert!(
                !reply.text.contains(&server_dir) && !reply.text.contains("checkout-"),
                "{name}: a server path in {}",
                reply.text
            );
            assert!(reply.text.contains("config.json"), "{name}: {}", reply.text);
        }
    }
}
