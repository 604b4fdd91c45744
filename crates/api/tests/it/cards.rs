//! Model cards and licence terms over the real router: cards set at upload, shown and
//! replaced with tenant isolation; lineage from jobs; and the licence denials (tenant
//! not permitted, commercial tenant on a non-commercial model, expired licence) as
//! audited 403s, with attribution on the responses of models whose licence asks for it.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use store::Caller;
use types::{Day, ModelName, TenantName};

use crate::common::{error_code, tar_of, tiny_safetensors, Reply, TestApp};
use crate::support::{app, Reference};

fn day(offset: i64) -> String {
    Day::from_unix(types::unix_now() + offset * 86_400).to_string()
}

async fn put_card(app: &TestApp, key: &str, model: &str, card: Value) -> Reply {
    app.call(
        Method::PUT,
        &format!("/v1/models/{model}/card"),
        Some(key),
        Some(card),
    )
    .await
}

#[tokio::test]
async fn cards_are_set_at_upload_shown_replaced_and_isolated() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    app.tenant("beta").await;
    let alpha = app.key("alpha", "models:write,models:read,inference").await;
    let beta = app.key("beta", "models:write,models:read,inference").await;
    let archive = tar_of(&[
        ("config.json", br#"{"model_type":"bert"}"#),
        ("model.safetensors", &tiny_safetensors(4)),
    ]);
    let upload = |query: &str, key: &str| {
        Request::builder()
            .method("POST")
            .uri(format!("/v1/registry/models/tiny/versions?{query}"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/x-tar")
            .body(Body::from(archive.clone()))
            .unwrap()
    };
    let bad = app.send(upload("license=not%20a%20licence!", &alpha)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert_eq!(error_code(&bad), "invalid_card");
    let reply = app
        .send(upload(
            "license=MIT%20OR%20Apache-2.0&owner=Alpha%20Labs&permitted_tenants=beta,gamma\
             &commercial_use=false&license_expires=2031-01-31&attribution=Tiny%20by%20Alpha",
            &alpha,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    let card = app.get("/v1/models/tiny/card", &alpha).await;
    assert_eq!(card.status, StatusCode::OK, "{}", card.text);
    assert_eq!(card.body["license"], "MIT OR Apache-2.0");
    assert_eq!(card.body["owner"], "Alpha Labs");
    assert_eq!(card.body["permitted_tenants"], json!(["beta", "gamma"]));
    assert_eq!(card.body["commercial_use"], false);
    assert_eq!(card.body["license_expires"], "2031-01-31");
    assert_eq!(card.body["attribution"], "Tiny by Alpha");
    assert_eq!(card.body["lineage"], Value::Null);

    // A private model's card is the same 404 as a model that does not exist.
    for path in ["/v1/models/tiny/card", "/v1/models/tiny/lineage"] {
        let hidden = app.get(path, &beta).await;
        assert_eq!(
            hidden.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            hidden.text
        );
    }
    let hidden = put_card(&app, &beta, "tiny", json!({})).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.text);

    // PUT replaces the whole card; unknown fields and bad values are refused.
    let replaced = put_card(
        &app,
        &alpha,
        "tiny",
        json!({"license": "cc-by-nc-4.0", "intended_use": "tests"}),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    let card = app.get("/v1/models/tiny/card", &alpha).await;
    assert_eq!(card.body["license"], "cc-by-nc-4.0");
    assert_eq!(card.body["intended_use"], "tests");
    assert_eq!(card.body["permitted_tenants"], Value::Null);
    assert_eq!(card.body["owner"], Value::Null);
    for bad in [
        json!({"licence": "mit"}),
        json!({"license_expires": "31/01/2031"}),
        json!({"permitted_tenants": ["../x"]}),
        json!({"attribution": "two\nlines"}),
    ] {
        let reply = put_card(&app, &alpha, "tiny", bad.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
    }
    // A key without models:write cannot change a card.
    let reader = app.key("alpha", "models:read").await;
    let reply = put_card(&app, &reader, "tiny", json!({})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_shared_models_card_is_readable_by_others_but_changed_only_by_its_tenant() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    app.tenant("beta").await;
    app.import("alpha", "common", true).await;
    let beta = app.key("beta", "inference,models:write").await;
    let card = app.get("/v1/models/common/card", &beta).await;
    assert_eq!(card.status, StatusCode::OK, "{}", card.text);
    assert_eq!(card.body["tenant"], "alpha");
    let reply = put_card(&app, &beta, "common", json!({"license": "mit"})).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let admin = app.admin_key().await;
    let reply = put_card(&app, &admin, "common", json!({"license": "mit"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

/// The licence matrix on `/v1/embeddings` (checked on every request): each denial is a
/// 403 `license_forbidden` saying why, recorded in the audit log with its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licence_terms_deny_embeddings_with_audited_403s_and_attribute_the_rest() {
    let app = crate::audit::audited_app().await;
    let mut request =
        registry::ImportRequest::new("minilm".parse().unwrap(), "admin".parse().unwrap());
    request.shared = true;
    request.card.license = Some("apache-2.0".into());
    app.registry
        .import_dir(&crate::embeddings::model_dir(), request)
        .await
        .unwrap();
    app.tenant("lab").await;
    app.store
        .create_tenant(&TenantName::try_from("bigco").unwrap(), true)
        .await
        .unwrap();
    let admin = app.admin_key().await;
    let lab = app.key("lab", "inference").await;
    let bigco = app.key("bigco", "inference").await;
    let embed = |key: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/v1/embeddings",
                Some(&key),
                Some(json!({"model": "minilm", "input": "hello"})),
            )
            .await
        }
    };

    let key_of = |tenant: &str| match tenant {
        "lab" => lab.clone(),
        "bigco" => bigco.clone(),
        _ => admin.clone(),
    };
    let cases: Vec<(Value, &str, Option<String>)> = vec![
        (json!({}), "lab", None),
        (json!({}), "bigco", None),
        (json!({"permitted_tenants": ["bigco"]}), "bigco", None),
        (
            json!({"permitted_tenants": ["bigco"]}),
            "lab",
            Some("does not permit tenant 'lab'".into()),
        ),
        (json!({"commercial_use": false}), "lab", None),
        (
            json!({"commercial_use": false}),
            "bigco",
            Some("does not allow commercial use, and tenant 'bigco' is commercial".into()),
        ),
        (json!({"commercial_use": true}), "bigco", None),
        (json!({"license_expires": day(1)}), "lab", None),
        (
            json!({"license_expires": day(-1)}),
            "lab",
            Some(format!("expired on {}", day(-1))),
        ),
        // Expiry binds the model's own tenant too.
        (
            json!({"license_expires": day(-1)}),
            "admin",
            Some("expired on".into()),
        ),
    ];
    for (card, tenant, denial) in cases {
        let reply = put_card(&app, &admin, "minilm", card.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let reply = embed(key_of(tenant)).await;
        let Some(needle) = denial else {
            assert_eq!(reply.status, StatusCode::OK, "{card}: {}", reply.text);
            assert!(reply.headers.get("x-charter-attribution").is_none());
            assert!(reply.body.get("attribution").is_none());
            continue;
        };
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{card}: {}",
            reply.text
        );
        assert_eq!(error_code(&reply), "license_forbidden");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&needle), "{card}: {message}");
        let seq: i64 = reply.headers["x-charter-receipt"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let entry = app.store.audit_entry(seq).await.unwrap().unwrap().entry;
        assert_eq!(entry.status, 403);
        assert_eq!(entry.action, "http POST /v1/embeddings");
        assert_eq!(entry.tenant.as_deref(), Some(tenant));
    }

    let reply = put_card(
        &app,
        &admin,
        "minilm",
        json!({"attribution": "all-MiniLM-L6-v2 © Microsoft, 100% Apache-2.0"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = embed(lab.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.headers["x-charter-attribution"],
        "all-MiniLM-L6-v2 %C2%A9 Microsoft, 100%25 Apache-2.0"
    );
    assert_eq!(
        reply.body["attribution"],
        "all-MiniLM-L6-v2 © Microsoft, 100% Apache-2.0"
    );
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_and_explain_honour_the_licence_and_carry_the_attribution() {
    let app = app().await;
    crate::v2::publish_seed(&app).await;
    let body = json!({"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP32", "data": vec![0.5; 10]}]});
    let explain = json!({"model": "seed", "inputs": {"x": vec![0.5; 10]}, "target": {"index": 0}});
    let name = ModelName::try_from("seed").unwrap();
    let set_card = |card: registry::ModelCard| {
        let (app, name) = (&app, &name);
        async move {
            app.registry
                .set_card(name, &card, &Caller::admin())
                .await
                .unwrap();
            // Admissions decided under the old card are forgotten, as the card route
            // does (this change went to the registry directly).
            app.state.admissions().clear();
        }
    };
    let attributed = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            let (status, headers, text) = app
                .call_raw(
                    Some("acme"),
                    Method::POST,
                    path,
                    "application/json",
                    body.to_string().into_bytes(),
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&text));
            assert_eq!(headers["x-charter-attribution"], "Seed model by Acme");
        }
    };
    let mut card = registry::ModelCard {
        attribution: Some("Seed model by Acme".into()),
        ..Default::default()
    };
    set_card(card.clone()).await;
    attributed("/v2/models/seed/infer", body.clone()).await;

    // An expired licence refuses the next request on v2, by name or version, and
    // explanations, which are uses of the model too.
    card.license_expires = Some(Day::from_unix(types::unix_now() - 86_400));
    set_card(card.clone()).await;
    for (path, body) in [
        ("/v2/models/seed/infer", &body),
        ("/v2/models/seed/versions/1/infer", &body),
        ("/v1/explain", &explain),
    ] {
        let (status, reply) = app.post_json("acme", path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {reply}");
        assert_eq!(reply["error"]["code"], "license_forbidden");
    }
    card.license_expires = None;
    set_card(card).await;
    attributed("/v1/explain", explain).await;
}

#[tokio::test]
async fn lineage_shows_the_parent_and_dataset_digests_jobs_recorded() {
    let app = app().await;
    let lineage = jobs::Lineage {
        job_id: Some("job-1".into()),
        dataset: Some("points".into()),
        dataset_digest: "ab".repeat(32),
        dataset_rows: 7,
        spec: Reference::spec(),
        hyperparameters: Default::default(),
        seed: 0,
        parent_model: Some("seed:1".into()),
        final_metrics: Default::default(),
        steps: 3,
    };
    crate::v2::publish_seed(&app).await;
    jobs::train::publish_model(
        &app.registry,
        jobs::PublishRequest {
            tenant: TenantName::try_from("acme").unwrap(),
            name: ModelName::try_from("seed").unwrap(),
            model: Reference::load().initial_model(),
            lineage,
        },
    )
    .await
    .unwrap();
    let (status, reply) = app.get("acme", "/v1/models/seed/lineage").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let versions = reply["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["lineage"]["parents"], json!([]));
    assert_eq!(versions[1]["version"], 2);
    assert_eq!(versions[1]["lineage"]["job_id"], "job-1");
    assert_eq!(versions[1]["lineage"]["parents"], json!(["seed:1"]));
    assert_eq!(
        versions[1]["lineage"]["datasets"],
        json!([{"name": "points", "sha256": "ab".repeat(32), "rows": 7}])
    );
    assert_eq!(versions[1]["manifest_sha256"].as_str().unwrap().len(), 64);
    let (status, card) = app.get("acme", "/v1/models/seed/card").await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["lineage"]["parents"], json!(["seed:1"]));
    let (status, _) = app.get("other", "/v1/models/seed/lineage").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
