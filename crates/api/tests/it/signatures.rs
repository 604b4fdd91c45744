//! Signed models over the real router: a tenant that requires signed models is refused
//! an unsigned version, a version signed by a key it does not trust, and a version one
//! of whose files changed by one byte after signing (the error names the file), even
//! while the version is loaded. `/v1/embeddings` checks on every request, so each step
//! below is seen at once.

use axum::http::{Method, StatusCode};
use crypto::signing::SigningKey;
use serde_json::json;
use store::sqlx;

use crate::common::{error_code, Reply, TestApp};

/// Changes one byte of `file` of `version` after it was signed: the changed file is
/// stored (sealed and addressed by its new digest, as any import would) and the
/// version's manifest points at it.
async fn change_one_byte(
    registry: &registry::Registry,
    store: &store::Store,
    version: &store::VersionRecord,
    file: &str,
) {
    let mut bytes = registry.file_bytes(version, file).await.unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    let tenant_key = registry.tenant_key(&version.tenant).await.unwrap();
    let stored = registry
        .blobs()
        .put_reader(&tenant_key, &mut std::io::Cursor::new(bytes), None)
        .unwrap();
    let mut manifest = version.manifest.clone();
    let entry = manifest.files.iter_mut().find(|f| f.path == file).unwrap();
    entry.sha256 = stored.digest.to_string();
    sqlx::query("UPDATE model_versions SET manifest = $1 WHERE model_id = $2 AND version = $3")
        .bind(serde_json::to_string(&manifest).unwrap())
        .bind(version.model_id)
        .bind(version.version)
        .execute(store.pool())
        .await
        .unwrap();
}

async fn embed(app: &TestApp, key: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/embeddings",
        Some(key),
        Some(json!({"model": "minilm:1", "input": "signed weights only"})),
    )
    .await
}

fn assert_refused(reply: &Reply, code: &str, needle: &str) {
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    assert_eq!(error_code(reply), code, "{}", reply.text);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message} lacks {needle}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_model_refusal_after_a_one_byte_change() {
    let app = TestApp::new().await;
    let acme = app.tenant("acme").await;
    let request = registry::ImportRequest::new("minilm".parse().unwrap(), acme.clone());
    let version = app
        .registry
        .import_dir(&crate::embeddings::model_dir(), request)
        .await
        .unwrap();
    let key = app.key("acme", "inference").await;
    // Before the tenant requires signatures, the unsigned version serves.
    assert_eq!(embed(&app, &key).await.status, StatusCode::OK);

    app.store
        .set_require_signed_models(&acme, true)
        .await
        .unwrap();
    // Admissions decided under the old policy are forgotten, as the policy route does
    // (this change went to the store directly).
    app.state.admissions().clear();
    assert_refused(
        &embed(&app, &key).await,
        "model_unsigned",
        "'minilm:1' is not signed by a key that tenant 'acme' trusts",
    );

    // A publisher key as PKCS#8 PEM, the form `openssl genpkey -algorithm ed25519` writes.
    let pem = SigningKey::generate().to_pkcs8_pem().unwrap();
    let publisher = SigningKey::from_pkcs8_pem(pem.expose()).unwrap();
    app.registry.sign(&version, &publisher).await.unwrap();
    // Signed, but by a key the tenant does not trust.
    let stranger = SigningKey::generate();
    app.store
        .trust_key(&acme, &stranger.key_id(), &stranger.public_key_pem())
        .await
        .unwrap();
    assert_refused(&embed(&app, &key).await, "model_unsigned", "minilm:1");

    app.store
        .trust_key(&acme, &publisher.key_id(), &publisher.public_key_pem())
        .await
        .unwrap();
    let reply = embed(&app, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reader = app.key("acme", "models:read").await;
    let list = app
        .get("/v1/registry/models/minilm/versions/1/signatures", &reader)
        .await;
    assert_eq!(
        list.body["refusal"],
        serde_json::Value::Null,
        "{}",
        list.text
    );
    assert_eq!(list.body["signatures"].as_array().unwrap().len(), 1);

    // One byte of the weights changes after signing: the changed file is stored (sealed
    // and addressed by its new digest, as any import would) and the version's manifest
    // points at it. The version is loaded already; it is refused all the same.
    let weights_file = "model.safetensors";
    change_one_byte(&app.registry, &app.store, &version, weights_file).await;
    assert_refused(
        &embed(&app, &key).await,
        "model_signature_invalid",
        "file 'model.safetensors' of model 'minilm:1' differs from the signed manifest",
    );
    // `charter models verify` reaches the same verdict from the stored signature.
    let (_, tampered) = app
        .registry
        .show(&version.model_ref(), &store::Caller::admin())
        .await
        .unwrap();
    let statuses = app.registry.signatures(&tampered, None).await.unwrap();
    assert_eq!(statuses.len(), 1);
    assert!(matches!(
        &statuses[0].result,
        Err(registry::SignatureError::FileDiffers { path, .. }) if path == weights_file
    ));

    // The signatures route shows the same verdict, naming the file.
    let list = app
        .get("/v1/registry/models/minilm/versions/1/signatures", &reader)
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let signature = &list.body["signatures"][0];
    assert_eq!(signature["key_id"], publisher.key_id());
    assert_eq!(signature["trusted"], true);
    assert_eq!(signature["valid"], false);
    assert!(signature["error"]
        .as_str()
        .unwrap()
        .contains("'model.safetensors'"));
    assert!(list.body["refusal"]
        .as_str()
        .unwrap()
        .contains("'model.safetensors'"));

    // A tenant that does not require signatures is not refused.
    app.store
        .set_require_signed_models(&acme, false)
        .await
        .unwrap();
    assert_eq!(embed(&app, &key).await.status, StatusCode::OK);
}

/// Admins configure signed-only serving and trusted keys over HTTP. The tiny fixture
/// is no encoder, so an admitted request reaches the encoder check (400
/// `model_not_encoder`) and a refused one stops at 403.
#[tokio::test]
async fn admins_configure_trust_and_signed_only_serving_over_http() {
    let app = TestApp::new().await;
    app.tenant("acme").await;
    let version = app.import("acme", "tiny", false).await;
    let admin = app.admin_key().await;
    let key = app.key("acme", "inference").await;
    let admitted = |reply: Reply| {
        assert_eq!(error_code(&reply), "model_not_encoder", "{}", reply.text);
    };
    let embed = || {
        app.call(
            Method::POST,
            "/v1/embeddings",
            Some(&key),
            Some(json!({"model": "tiny", "input": "x"})),
        )
    };
    admitted(embed().await);

    let policy = "/v1/tenants/acme/model-policy";
    let reply = app
        .call(
            Method::PATCH,
            policy,
            Some(&admin),
            Some(json!({"require_signed_models": true})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["require_signed_models"], true);
    assert_eq!(reply.body["commercial"], false);
    assert_refused(&embed().await, "model_unsigned", "tiny:1");

    let publisher = SigningKey::generate();
    app.registry.sign(&version, &publisher).await.unwrap();
    let trusted_keys = "/v1/tenants/acme/trusted-keys";
    let bad = app
        .call(
            Method::POST,
            trusted_keys,
            Some(&admin),
            Some(json!({"public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"})),
        )
        .await;
    assert_eq!(error_code(&bad), "invalid_public_key");
    let reply = app
        .call(
            Method::POST,
            trusted_keys,
            Some(&admin),
            Some(json!({"public_key": publisher.public_key_pem()})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["key_id"], publisher.key_id());
    admitted(embed().await);
    let shown = app.get(policy, &admin).await;
    assert_eq!(shown.body["trusted_keys"][0]["key_id"], publisher.key_id());

    let one_key = format!("{trusted_keys}/{}", publisher.key_id());
    let reply = app.call(Method::DELETE, &one_key, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = app.call(Method::DELETE, &one_key, Some(&admin), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_refused(&embed().await, "model_unsigned", "tiny:1");

    // Admin only; unknown tenants are 404.
    assert_eq!(app.get(policy, &key).await.status, StatusCode::FORBIDDEN);
    let unknown = app.get("/v1/tenants/nobody/model-policy", &admin).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// v2 inference admits models through the same check as `/v1/embeddings`: for a
/// tenant that requires signed models every request is checked, so a file changed
/// after signing is refused at the next request, though the version was admitted a
/// moment ago and is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_checks_the_signature_on_every_request() {
    let app = crate::support::app().await;
    crate::v2::publish_seed(&app).await;
    let store = &app.base.store;
    let acme = types::TenantName::try_from("acme").unwrap();
    let (_, version) = app
        .registry
        .show(&"seed:1".parse().unwrap(), &store::Caller::admin())
        .await
        .unwrap();
    let publisher = SigningKey::generate();
    app.registry.sign(&version, &publisher).await.unwrap();
    store
        .trust_key(&acme, &publisher.key_id(), &publisher.public_key_pem())
        .await
        .unwrap();
    store.set_require_signed_models(&acme, true).await.unwrap();
    let body = json!({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP32", "data": vec![0.5; 10]}]});
    let (status, reply) = app.post_json("acme", "/v2/models/seed/infer", &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    let file = version
        .manifest
        .files
        .iter()
        .find(|f| f.path != jobs::train::MARKER_FILE)
        .unwrap()
        .path
        .clone();
    change_one_byte(&app.registry, store, &version, &file).await;
    let (status, reply) = app.post_json("acme", "/v2/models/seed/infer", &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");
    assert_eq!(reply["error"]["code"], "model_signature_invalid");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("file '{file}'")), "{message}");
}
