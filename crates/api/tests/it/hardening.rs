//! Request hardening at the HTTP edge: JSON nesting is bounded before deserialisation,
//! and a request whose body never finishes is abandoned at the deadline with an answer
//! in the one error shape.

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};

use crate::common::{error_code, TestApp};

fn post_json(path: &str, key: &str, body: Body) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn deeply_nested_json_is_refused_before_parsing() {
    let app = TestApp::new().await;
    let key = app.key("admin", "inference").await;
    // 100k open brackets: refused with a clear code, the server unharmed.
    let reply = app
        .send(post_json(
            "/v1/embeddings",
            &key,
            Body::from("[".repeat(100_000)),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(error_code(&reply), "json_too_deep");

    // Nesting inside an otherwise valid request counts too; the bound is 32 levels.
    let nested = |levels: usize| {
        let inner = format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        format!(r#"{{"model": "none", "input": {inner}}}"#)
    };
    let reply = app
        .send(post_json("/v1/embeddings", &key, Body::from(nested(32))))
        .await;
    assert_eq!(error_code(&reply), "json_too_deep", "{}", reply.text);
    let reply = app
        .send(post_json("/v1/embeddings", &key, Body::from(nested(31))))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_ne!(error_code(&reply), "json_too_deep", "{}", reply.text);

    // Brackets inside strings are text, not nesting.
    let text = "[{".repeat(1000);
    let reply = app
        .send(post_json(
            "/v1/embeddings",
            &key,
            Body::from(format!(r#"{{"model": "none", "input": "{text}"}}"#)),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(app.get("/health", &key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_that_never_ends_meets_the_request_deadline() {
    let config = api::ApiConfig {
        request_timeout_secs: 1,
        ..api::ApiConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let admin = app.admin_key().await;
    let endless = futures::stream::pending::<Result<Bytes, std::io::Error>>();
    let reply = app
        .send(post_json("/v1/tenants", &admin, Body::from_stream(endless)))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(error_code(&reply), "request_timeout");
    assert_eq!(reply.headers["retry-after"], "1");
    // Nothing was created, and the next request is served.
    let tenants = app.get("/v1/tenants", &admin).await;
    assert_eq!(tenants.status, StatusCode::OK);
    assert_eq!(
        tenants.body.as_array().unwrap().len(),
        1,
        "{}",
        tenants.text
    );
}
