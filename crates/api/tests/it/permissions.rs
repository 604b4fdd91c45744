//! The route × permission matrix: every route of `api::routes::table()` is either in
//! the named public list, or answers 401 without a valid key and 403 without its scope.

use axum::http::{Method, StatusCode};
use types::Scope;

use crate::common::{error_code, TestApp};

/// The only routes that may answer without a key.
const PUBLIC: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/v2/health/live",
    "/v2/health/ready",
];

fn concrete(path: &str) -> String {
    path.replace("{name}", "no-such-model")
        .replace("{version}", "1")
        .replace("{id}", "0123456789abcdef")
}

/// A key holding every non-admin scope except those in `except`.
fn scopes_except(except: &[Scope]) -> String {
    Scope::ALL
        .into_iter()
        .filter(|s| *s != Scope::Admin && !except.contains(s))
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test]
async fn every_route_is_public_by_name_or_needs_key_and_scope() {
    let app = TestApp::new().await;
    let revoked = app.admin_key().await;
    app.revoke(&revoked).await;
    let routes = api::routes::table();
    assert!(routes.len() >= 15, "the route table lost routes");
    for route in routes {
        let path = concrete(route.path);
        let Some(scopes) = route.scopes else {
            assert!(
                PUBLIC.contains(&route.path),
                "{} is public but not in the allowlist",
                route.path
            );
            let reply = app.call(route.method.clone(), &path, None, None).await;
            assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{}", route.path);
            continue;
        };
        let what = format!("{} {}", route.method, route.path);
        let malformed = "chr_nothex_nothex";
        for key in [
            None,
            Some(malformed),
            Some("Basic abc"),
            Some(revoked.as_str()),
        ] {
            let reply = app.call(route.method.clone(), &path, key, None).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "{what} with {key:?}: {}",
                reply.text
            );
            assert_eq!(error_code(&reply), "invalid_api_key");
        }
        let lacking = app.key("admin", &scopes_except(scopes)).await;
        let reply = app
            .call(route.method.clone(), &path, Some(&lacking), None)
            .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what} without its scope: {}",
            reply.text
        );
        assert_eq!(error_code(&reply), "insufficient_scope");
        // With the scope, authorisation passes (the handler may still refuse the input).
        let holding = app.key("admin", scopes[0].as_str()).await;
        let reply = app
            .call(route.method.clone(), &path, Some(&holding), None)
            .await;
        assert!(
            reply.status != StatusCode::UNAUTHORIZED && reply.status != StatusCode::FORBIDDEN,
            "{what} with scope {}: {} {}",
            scopes[0],
            reply.status,
            reply.text
        );
    }
}

#[tokio::test]
async fn public_routes_answer_without_a_key() {
    let app = TestApp::new().await;
    let health = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    app.state.set_ready(false);
    let ready = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.headers.contains_key("retry-after"));
    app.state.set_ready(true);
    let ready = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = TestApp::new().await;
    let request = governance::KeyRequest {
        tenant: "admin".parse().unwrap(),
        scopes: types::Scopes::admin(),
        description: String::new(),
        expires_at: Some(types::unix_now() - 1),
        limits: Default::default(),
    };
    let (_, text) = governance::mint_key(&app.store, request).await.unwrap();
    let reply = app.get("/v1/models", text.expose()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_key_with_a_wrong_secret_is_refused() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let last = key.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &key[..key.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(
        app.get("/v1/models", &flipped).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/v1/models", &key).await.status, StatusCode::OK);
}
