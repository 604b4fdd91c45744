//! Key management over HTTP: privileged fields refused, keys shown once and never
//! stored or listed in clear, revocation effective at once.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::{error_code, TestApp};

#[tokio::test]
async fn created_keys_work_and_revoked_keys_stop_working() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    let admin = app.admin_key().await;
    let reply = app
        .call(
            Method::POST,
            "/v1/keys",
            Some(&admin),
            Some(json!({"tenant": "alpha", "scopes": ["models:read"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let key = reply.body["key"].as_str().unwrap().to_owned();
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with(&format!("chr_{id}_")));
    assert_eq!(
        app.get("/v1/registry/models", &key).await.status,
        StatusCode::OK
    );

    let listed = app.get("/v1/keys", &admin).await;
    assert!(listed.text.contains(&id));
    let secret = key.rsplit('_').next().unwrap();
    assert!(
        !listed.text.contains(secret),
        "the key list leaks the secret"
    );

    let reply = app
        .call(
            Method::DELETE,
            &format!("/v1/keys/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.body["revoked_at"].is_i64());
    assert_eq!(
        app.get("/v1/registry/models", &key).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn privileged_or_unknown_fields_are_refused() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    let admin = app.admin_key().await;
    for body in [
        json!({"tenant": "alpha", "scopes": ["inference"], "role": "admin"}),
        json!({"tenant": "alpha", "scopes": ["inference"], "tenant_id": 1}),
        json!({"tenant": "alpha", "scopes": ["inference"], "allowed_routes": ["/*"]}),
        json!({"tenant": "alpha", "scopes": ["*"]}),
        json!({"tenant": "alpha", "scopes": []}),
        json!({"tenant": "../alpha", "scopes": ["inference"]}),
        json!({"tenant": "alpha", "scopes": ["inference"], "expires_at": 1}),
        json!({"tenant": "alpha", "scopes": ["inference"], "rpm": 0}),
    ] {
        let reply = app
            .call(Method::POST, "/v1/keys", Some(&admin), Some(body.clone()))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        error_code(&reply);
    }
    // An admin scope outside the admin tenant is refused, not granted.
    let reply = app
        .call(
            Method::POST,
            "/v1/keys",
            Some(&admin),
            Some(json!({"tenant": "alpha", "scopes": ["admin"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    // A key for a tenant that does not exist.
    let reply = app
        .call(
            Method::POST,
            "/v1/keys",
            Some(&admin),
            Some(json!({"tenant": "ghost", "scopes": ["inference"]})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

#[tokio::test]
async fn only_the_hash_of_a_key_is_stored() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let secret = key.rsplit('_').next().unwrap().to_owned();
    app.store.close().await;
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds the key secret", path.display());
        }
    }
}

#[tokio::test]
async fn tenants_are_managed_by_admins() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let reply = app
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&admin),
            Some(json!({"name": "acme", "commercial": true})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = app
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&admin),
            Some(json!({"name": "acme"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.text);
    let listed = app.get("/v1/tenants", &admin).await;
    assert!(listed.text.contains("acme"));
    let reply = app
        .call(Method::DELETE, "/v1/tenants/admin", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let reply = app
        .call(Method::DELETE, "/v1/tenants/acme", Some(&admin), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
}

/// Verified keys are cached briefly: a wrong secret for a cached key id is still
/// refused, and a key revoked by another process (here: straight in the store, as the
/// CLI or a replica would) stops working within `KEY_CACHE_TTL`.
#[tokio::test]
async fn the_cache_of_verified_keys_checks_secrets_and_expires() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    let key = app.key("alpha", "models:read").await;
    assert_eq!(
        app.get("/v1/registry/models", &key).await.status,
        StatusCode::OK
    );
    let (prefix, secret) = key.rsplit_once('_').unwrap();
    let flipped = if secret.starts_with('0') { "1" } else { "0" };
    let forged = format!("{prefix}_{flipped}{}", &secret[1..]);
    assert_eq!(
        app.get("/v1/registry/models", &forged).await.status,
        StatusCode::UNAUTHORIZED,
        "a cached key id with a wrong secret was accepted"
    );
    app.revoke(&key).await;
    tokio::time::sleep(governance::auth::KEY_CACHE_TTL + std::time::Duration::from_millis(100))
        .await;
    assert_eq!(
        app.get("/v1/registry/models", &key).await.status,
        StatusCode::UNAUTHORIZED,
        "a key revoked elsewhere still works after the cache TTL"
    );
}
