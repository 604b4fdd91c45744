//! Tenant isolation: another tenant's private models are invisible (404, never 403),
//! in lists, shows, versions and deletes; shared models are readable, not writable.

use axum::http::{Method, StatusCode};

use crate::common::{error_code, TestApp};

fn names(reply: &crate::common::Reply, field: &str) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data array: {}", reply.text))
        .iter()
        .map(|m| m[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn tenants_never_see_each_others_private_models() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    app.tenant("beta").await;
    app.import("alpha", "alpha-private", false).await;
    app.import("admin", "everyone", true).await;
    let alpha = app.key("alpha", "inference,models:read,models:write").await;
    let beta = app.key("beta", "inference,models:read,models:write").await;

    let alpha_list = names(&app.get("/v1/models", &alpha).await, "id");
    assert!(
        alpha_list.contains(&"alpha-private".to_owned()),
        "{alpha_list:?}"
    );
    assert!(
        alpha_list.contains(&"everyone".to_owned()),
        "{alpha_list:?}"
    );
    for path in ["/v1/models", "/v1/registry/models"] {
        let field = if path == "/v1/models" { "id" } else { "name" };
        let listed = names(&app.get(path, &beta).await, field);
        assert!(
            !listed.contains(&"alpha-private".to_owned()),
            "{path}: {listed:?}"
        );
        assert!(
            listed.contains(&"everyone".to_owned()),
            "{path}: {listed:?}"
        );
    }

    for path in [
        "/v1/registry/models/alpha-private",
        "/v1/registry/models/alpha-private/versions/1",
    ] {
        let reply = app.get(path, &beta).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text
        );
        assert!(
            !reply.text.contains("alpha\""),
            "the reply names the owner: {}",
            reply.text
        );
        // The same answer as for a model that does not exist at all.
        let missing = app
            .get(&path.replace("alpha-private", "never-was"), &beta)
            .await;
        assert_eq!(error_code(&reply), error_code(&missing));
        assert_eq!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace("alpha-private", "X"),
            missing.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace("never-was", "X")
        );
    }
    // Every other route that names a model answers beta exactly as for a model that
    // never existed: same status, code and message (no existence oracle, checklist
    // row 3).
    let card = serde_json::json!({"owner": "beta", "license": "mit"});
    let infer = serde_json::json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [0]}]});
    let embed = serde_json::json!({"model": "alpha-private", "input": "x"});
    let routes = [
        (Method::GET, "/v1/models/alpha-private", None),
        (Method::GET, "/v1/models/alpha-private/card", None),
        (Method::PUT, "/v1/models/alpha-private/card", Some(card)),
        (Method::GET, "/v1/models/alpha-private/lineage", None),
        (
            Method::GET,
            "/v1/registry/models/alpha-private/versions/1/signatures",
            None,
        ),
        (
            Method::POST,
            "/v1/registry/models/alpha-private/deploy",
            None,
        ),
        (
            Method::POST,
            "/v1/registry/models/alpha-private/undeploy",
            None,
        ),
        (Method::GET, "/v2/models/alpha-private", None),
        (Method::GET, "/v2/models/alpha-private/ready", None),
        (Method::GET, "/v2/models/alpha-private/versions/1", None),
        (Method::POST, "/v2/models/alpha-private/infer", Some(infer)),
        (Method::POST, "/v1/embeddings", Some(embed)),
    ];
    for (method, path, body) in routes {
        let reply = app
            .call(method.clone(), path, Some(&beta), body.clone())
            .await;
        let swap = |json: Option<serde_json::Value>| {
            json.map(|json| {
                serde_json::from_str(&json.to_string().replace("alpha-private", "never-was"))
                    .unwrap()
            })
        };
        let missing = app
            .call(
                method.clone(),
                &path.replace("alpha-private", "never-was"),
                Some(&beta),
                swap(body),
            )
            .await;
        let case = format!("{method} {path}");
        assert!(reply.status.is_client_error(), "{case}: {}", reply.text);
        assert_eq!(
            reply.status, missing.status,
            "{case}: {} vs {}",
            reply.text, missing.text
        );
        assert_eq!(
            reply.text.replace("alpha-private", "X"),
            missing.text.replace("never-was", "X"),
            "{case}"
        );
    }
    for path in [
        "/v1/registry/models/alpha-private/versions/1",
        "/v1/registry/models/alpha-private",
    ] {
        let reply = app.call(Method::DELETE, path, Some(&beta), None).await;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            reply.text
        );
    }
    // Still there for its owner.
    let reply = app
        .get("/v1/registry/models/alpha-private/versions/1", &alpha)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["files"].as_array().unwrap().len(), 2);

    // A shared model is readable by others but only its owner (or admin) removes it.
    let reply = app.get("/v1/registry/models/everyone", &beta).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .call(
            Method::DELETE,
            "/v1/registry/models/everyone",
            Some(&beta),
            None,
        )
        .await;
    assert!(
        matches!(reply.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{}",
        reply.text
    );
    assert_eq!(
        app.get("/v1/registry/models/everyone", &alpha).await.status,
        StatusCode::OK
    );

    // The owner deletes its own model.
    let reply = app
        .call(
            Method::DELETE,
            "/v1/registry/models/alpha-private",
            Some(&alpha),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!(
        app.get("/v1/registry/models/alpha-private", &alpha)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn admin_sees_every_tenants_models() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    app.import("alpha", "alpha-private", false).await;
    let admin = app.admin_key().await;
    let listed = names(&app.get("/v1/registry/models", &admin).await, "name");
    assert!(listed.contains(&"alpha-private".to_owned()), "{listed:?}");
}
