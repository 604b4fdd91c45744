//! The audit layer over the real router: one entry per request with the right
//! status, receipts, tenant scoping, proofs, no raw payloads, and 503 when the log
//! cannot be written.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use crypto::signing::{SignedStatement, SigningKey};
use governance::audit::{AuditConfig, AuditLog};
use serde_json::json;

use crate::common::{error_code, Reply, TestApp};

pub(crate) async fn audited_app() -> TestApp {
    let app = TestApp::new().await;
    assert!(app.state.set_audit(test_log(&app)));
    app
}

/// An audit log on the app's store that seals and moves change records only when asked.
pub(crate) fn test_log(app: &TestApp) -> AuditLog {
    AuditLog::with_config(
        app.store.clone(),
        SigningKey::generate(),
        AuditConfig {
            checkpoint_every: 1_000_000,
            checkpoint_interval: Duration::from_secs(3600),
            max_batch: 64,
            outbox_interval: Duration::from_secs(3600),
            linger: Duration::ZERO,
        },
    )
}

pub(crate) fn receipt_of(reply: &Reply) -> i64 {
    reply
        .headers
        .get("x-charter-receipt")
        .unwrap_or_else(|| panic!("no receipt header on {}", reply.status))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

pub(crate) async fn entry(app: &TestApp, seq: i64) -> store::AuditRecord {
    app.store.audit_entry(seq).await.unwrap().unwrap()
}

#[tokio::test]
async fn every_request_gets_exactly_one_entry_with_its_status() {
    let app = audited_app().await;
    app.tenant("acme").await;
    let tenant_key = app.key("acme", "inference").await;
    let admin = app.admin_key().await;

    let cases: Vec<(Reply, StatusCode, &str, Option<&str>)> = vec![
        (
            app.call(Method::GET, "/health", None, None).await,
            StatusCode::OK,
            "http GET /health",
            None,
        ),
        (
            app.call(Method::GET, "/v1/models", None, None).await,
            StatusCode::UNAUTHORIZED,
            "http GET /v1/models",
            None,
        ),
        (
            app.get("/v1/tenants", &tenant_key).await,
            StatusCode::FORBIDDEN,
            "http GET /v1/tenants",
            Some("acme"),
        ),
        (
            app.get("/no/such/route", &admin).await,
            StatusCode::NOT_FOUND,
            "http GET (unmatched)",
            None,
        ),
        (
            app.get("/v1/registry/models/nothing", &admin).await,
            StatusCode::NOT_FOUND,
            "http GET /v1/registry/models/{name}",
            Some("admin"),
        ),
        (
            app.get("/v1/tenants", &admin).await,
            StatusCode::OK,
            "http GET /v1/tenants",
            Some("admin"),
        ),
        // HTTP allows any token as a method: it is named OTHER, never stored raw.
        (
            app.call(
                Method::from_bytes(b"JOHN.DOE-4111111111111111").unwrap(),
                "/v1/tenants",
                Some(&admin),
                None,
            )
            .await,
            StatusCode::METHOD_NOT_ALLOWED,
            "http OTHER /v1/tenants",
            None,
        ),
        // A path parameter that is no name: the route's template is recorded.
        (
            app.get("/v1/registry/models/john.doe%40example.com", &admin)
                .await,
            StatusCode::BAD_REQUEST,
            "http GET /v1/registry/models/{name}",
            Some("admin"),
        ),
    ];
    // Request entries in request order; the change records of the set-up (tenant and
    // keys) are moved into the chain between them, at the writer's first seal.
    let mut previous = 0;
    let mut request_seqs = Vec::new();
    for (reply, status, action, tenant) in &cases {
        assert_eq!(reply.status, *status, "{action}: {}", reply.text);
        let seq = receipt_of(reply);
        assert!(seq > previous, "{action}: seq {seq} after {previous}");
        previous = seq;
        request_seqs.push(seq);
        let record = entry(&app, seq).await;
        assert_eq!(record.entry.status, i64::from(status.as_u16()), "{action}");
        assert_eq!(record.entry.action, *action);
        assert_eq!(record.entry.tenant.as_deref(), *tenant, "{action}");
        assert!(record.entry.request_id.is_some(), "{action}: no request id");
        assert_eq!(
            reply
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            record.entry.request_id.as_deref()
        );
        assert!(record.entry.output_sha256.is_some(), "{action}");
    }
    assert_eq!(
        entry(&app, request_seqs[4]).await.entry.resource,
        "/v1/registry/models/nothing"
    );
    assert_eq!(
        entry(&app, request_seqs[3]).await.entry.resource,
        "",
        "unmatched paths are not kept"
    );
    assert_eq!(
        entry(&app, request_seqs[7]).await.entry.resource,
        "/v1/registry/models/{name}",
        "a path parameter that is no name is not kept"
    );
    // Exactly one entry per request; the rest are the three set-up changes.
    let all = app.store.audit_entries(1, 100_000).await.unwrap();
    let requests = all
        .iter()
        .filter(|r| r.entry.action.starts_with("http "))
        .count();
    assert_eq!(requests, cases.len());
    let changes: Vec<(&str, Option<&str>)> = all
        .iter()
        .filter(|r| !r.entry.action.starts_with("http "))
        .map(|r| (r.entry.action.as_str(), r.entry.tenant.as_deref()))
        .collect();
    assert_eq!(
        changes,
        [
            ("tenant.create", Some("acme")),
            ("key.create", Some("acme")),
            ("key.create", Some("admin"))
        ]
    );
}

#[tokio::test]
async fn the_digests_are_of_the_bodies_and_no_raw_text_is_stored() {
    let app = audited_app().await;
    let admin = app.admin_key().await;
    let canary = "CANARY-7f3a9c-do-not-store";
    let body = json!({"model": "missing", "input": [canary]});
    let reply = app
        .call(
            Method::POST,
            "/v1/embeddings",
            Some(&admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    let record = entry(&app, receipt_of(&reply)).await;
    assert_eq!(
        record.entry.input_sha256.as_deref(),
        Some(crypto::sha256_hex(body.to_string().as_bytes()).as_str())
    );
    assert_eq!(
        record.entry.output_sha256.as_deref(),
        Some(crypto::sha256_hex(reply.text.as_bytes()).as_str())
    );
    app.store.close().await;
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(canary.len()).any(|w| w == canary.as_bytes());
            assert!(!found, "the canary is in {}", path.display());
        }
    }
}

#[tokio::test]
async fn a_failed_audit_write_turns_answers_into_503() {
    let app = audited_app().await;
    let admin = app.admin_key().await;
    assert_eq!(
        app.call(Method::GET, "/health", None, None).await.status,
        StatusCode::OK
    );
    let rename = |from: &'static str, to: &'static str| {
        let pool = app.store.pool().clone();
        async move {
            store::sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    rename("audit_entries", "audit_entries_away").await;
    let reply = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&reply), "audit_unavailable");
    assert!(reply.headers.get("x-charter-receipt").is_none());
    assert_eq!(reply.headers["retry-after"], "1");

    // Once a write has failed, changes are refused before they are made (checklist
    // row 35: fail closed), not made and then answered 503.
    let late = json!({"name": "late"});
    let reply = app
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&admin),
            Some(late.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(error_code(&reply), "audit_unavailable");
    let key = json!({"tenant": "admin", "scopes": ["inference"]});
    let reply = app
        .call(Method::POST, "/v1/keys", Some(&admin), Some(key))
        .await;
    assert_eq!(error_code(&reply), "audit_unavailable", "{}", reply.text);
    let tenant = app.store.tenant_by_name(&"late".parse().unwrap()).await;
    assert!(tenant.unwrap().is_none(), "the refused change was made");
    let keys = app.store.list_keys(&store::Caller::admin()).await.unwrap();
    assert_eq!(keys.len(), 1, "a key was minted: {keys:?}");

    // When the log can be written again, the next request records and changes go
    // through.
    rename("audit_entries_away", "audit_entries").await;
    let reply = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .call(Method::POST, "/v1/tenants", Some(&admin), Some(late))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    receipt_of(&reply);
}

#[tokio::test]
async fn receipts_are_signed_and_only_for_their_tenant() {
    let app = audited_app().await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let acme = app.key("acme", "inference").await;
    let other = app.key("other", "inference").await;
    let admin = app.admin_key().await;
    let reply = app.get("/v1/models", &acme).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seq = receipt_of(&reply);

    let receipt = app.get(&format!("/v1/receipts/{seq}"), &acme).await;
    assert_eq!(receipt.status, StatusCode::OK, "{}", receipt.text);
    let statement: SignedStatement = serde_json::from_value(receipt.body.clone()).unwrap();
    let key = app.state.audit().unwrap().signing_key().verifying_key();
    statement.verify(&key).unwrap();
    assert_eq!(statement.payload["tenant"], "acme");
    assert_eq!(statement.payload["status"], 200);
    assert_eq!(
        statement.payload["output_sha256"].as_str(),
        Some(crypto::sha256_hex(reply.text.as_bytes()).as_str())
    );
    let mut altered = statement.clone();
    altered.payload["status"] = json!(500);
    assert!(altered.verify(&key).is_err());

    assert_eq!(
        app.get(&format!("/v1/receipts/{seq}"), &other).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get(&format!("/v1/receipts/{seq}"), &admin).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/v1/receipts/999999", &admin).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_audit_api_is_tenant_scoped_and_proves_inclusion() {
    let app = audited_app().await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let acme = app.key("acme", "audit:read,inference").await;
    let other = app.key("other", "inference").await;
    let admin = app.admin_key().await;
    app.get("/v1/models", &other).await;
    app.get("/v1/models", &acme).await;

    let mine = app.get("/v1/audit", &acme).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    let entries = mine.body["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| e["tenant"] == "acme"), "{entries:?}");

    let all = app.get("/v1/audit?since_seq=0&limit=1000", &admin).await;
    let all = all.body["entries"].as_array().unwrap();
    assert!(all.iter().any(|e| e["tenant"] == "other"));
    let filtered = app
        .get("/v1/audit?action=http%20GET%20/v1/models&limit=1", &admin)
        .await;
    let filtered = filtered.body["entries"].as_array().unwrap();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["action"], "http GET /v1/models");

    assert_eq!(
        app.get("/v1/audit", &other).await.status,
        StatusCode::FORBIDDEN
    );
    // Another tenant's entry looks like no entry.
    assert_eq!(
        app.get("/v1/audit/1/proof", &acme).await.status,
        StatusCode::NOT_FOUND
    );

    app.state.audit().unwrap().checkpoint().await.unwrap();
    let proof = app.get("/v1/audit/2/proof", &acme).await;
    assert_eq!(proof.status, StatusCode::OK, "{}", proof.text);
    let hash = |text: &serde_json::Value| -> [u8; 32] {
        hex::decode(text.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let path: Vec<[u8; 32]> = proof.body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    crypto::merkle::verify_inclusion(
        &crypto::merkle::leaf_hash(&hash(&proof.body["entry_hash"])),
        proof.body["leaf_index"].as_u64().unwrap(),
        proof.body["tree_size"].as_u64().unwrap(),
        &path,
        &hash(&proof.body["root"]),
    )
    .unwrap();
}

/// A verifier keeps the latest checkpoint and later checks that the log only grew,
/// with consistency proofs fetched over HTTP; bad parameters get 4xx in the one shape.
#[tokio::test]
async fn checkpoints_and_consistency_proofs_over_http() {
    let app = audited_app().await;
    app.tenant("acme").await;
    let auditor = app.key("acme", "audit:read").await;
    let caller = app.key("acme", "inference").await;
    let key = app.state.audit().unwrap().signing_key().verifying_key();

    let none = app.get("/v1/audit/checkpoint", &auditor).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.text);
    assert_eq!(error_code(&none), "not_sealed");
    assert_eq!(
        app.get("/v1/audit/checkpoint", &caller).await.status,
        StatusCode::FORBIDDEN
    );

    let seal = || async {
        app.state
            .audit()
            .unwrap()
            .checkpoint()
            .await
            .unwrap()
            .unwrap()
    };
    app.get("/v1/models", &caller).await;
    let first = seal().await;
    let kept = app.get("/v1/audit/checkpoint", &auditor).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    assert_eq!(kept.body["size"], first.size);
    assert_eq!(kept.body["root"], first.root.as_str());
    let kept =
        crypto::merkle::Checkpoint::from_note(kept.body["checkpoint"].as_str().unwrap()).unwrap();
    kept.verify(&key).unwrap();

    for _ in 0..5 {
        app.get("/v1/models", &caller).await;
    }
    let second = seal().await;
    let reply = app
        .get(
            &format!("/v1/audit/consistency?from={}", kept.size),
            &auditor,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let proof: governance::audit::ConsistencyProof = serde_json::from_str(&reply.text).unwrap();
    assert_eq!(
        (proof.from_size, proof.to_size),
        (kept.size, second.size as u64)
    );
    let newer = governance::audit::check_consistency(&kept, &proof, &key).unwrap();
    assert_eq!(newer.size, second.size as u64);

    // `to` names an older checkpoint; from = to gives the empty proof.
    let same = app
        .get(
            &format!("/v1/audit/consistency?from={0}&to={0}", first.size),
            &auditor,
        )
        .await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.text);
    assert_eq!(same.body["proof"], json!([]));
    assert_eq!(same.body["to_root"], first.root.as_str());

    let bad = [
        (
            "/v1/audit/consistency",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/audit/consistency?from=x",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/audit/consistency?from=-1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/audit/consistency?from=1&size=2",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/audit/consistency?from=100000",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "/v1/audit/consistency?from=1&to=2",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/audit/consistency?from=1&to=18446744073709551615",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (path, status, code) in bad {
        let reply = app.get(path, &auditor).await;
        assert_eq!(reply.status, status, "{path}: {}", reply.text);
        assert_eq!(error_code(&reply), code, "{path}");
    }
    assert_eq!(
        app.get("/v1/audit/consistency?from=1", &caller)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // A log that lost an entry a proof needs answers 500, never a proof built from
    // the entries after the gap.
    store::sqlx::query("DELETE FROM audit_entries WHERE seq = 2")
        .execute(app.store.pool())
        .await
        .unwrap();
    let damaged = app.get("/v1/audit/consistency?from=1", &auditor).await;
    assert_eq!(
        damaged.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        damaged.text
    );
    assert_eq!(error_code(&damaged), "audit_log_damaged");
    // Likewise an inclusion proof whose path needs entry 2.
    let admin = app.admin_key().await;
    let damaged = app.get("/v1/audit/1/proof", &admin).await;
    assert_eq!(
        damaged.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        damaged.text
    );
    assert_eq!(error_code(&damaged), "audit_log_damaged");
}

#[tokio::test]
async fn a_body_over_the_limit_is_recorded_as_413() {
    let app = TestApp::with_config(api::ApiConfig {
        max_json_body: 64,
        ..api::ApiConfig::default()
    })
    .await;
    assert!(app
        .state
        .set_audit(AuditLog::open(app.store.clone(), SigningKey::generate())));
    let admin = app.admin_key().await;
    let big = json!({"name": "x".repeat(1000)});
    let reply = app
        .call(Method::POST, "/v1/tenants", Some(&admin), Some(big))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    let record = entry(&app, receipt_of(&reply)).await;
    assert_eq!(record.entry.status, 413);
    assert_eq!(record.entry.action, "http POST /v1/tenants");
    assert_eq!(record.entry.tenant.as_deref(), Some("admin"));
    assert_eq!(
        record.entry.input_sha256, None,
        "the body was not read to its end"
    );
}

/// A client's own `x-request-id` is kept (echoed and recorded) only when it is one UUID.
/// Free text there (a name, a card number, 10 kB of anything) would otherwise be stored
/// in the audit log, where no erasure can reach it; such a request gets an id of its
/// own instead.
#[tokio::test]
async fn only_a_uuid_is_kept_as_the_clients_request_id() {
    let app = audited_app().await;
    let admin = app.admin_key().await;
    let send = |ids: Vec<String>| {
        let mut request = axum::http::Request::builder()
            .method(Method::GET)
            .uri("/v1/tenants")
            .header("authorization", format!("Bearer {admin}"));
        for id in ids {
            request = request.header("x-request-id", id);
        }
        app.send(request.body(axum::body::Body::empty()).unwrap())
    };
    let id_of =
        |reply: &Reply| -> String { reply.headers["x-request-id"].to_str().unwrap().to_owned() };

    let uuid = "0b6e2c1e-8f6e-4c4a-9d55-3f0a2b7c9e11".to_owned();
    let reply = send(vec![uuid.clone()]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(id_of(&reply), uuid);
    let recorded = entry(&app, receipt_of(&reply)).await;
    assert_eq!(recorded.entry.request_id.as_deref(), Some(uuid.as_str()));

    for ids in [
        vec!["john.doe@example.com 4111 1111 1111 1111".to_owned()],
        vec!["a".repeat(10_000)],
        vec!["0b6e2c1e".to_owned()],
        vec![uuid.clone(), "4111 1111 1111 1111".to_owned()],
    ] {
        let reply = send(ids.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let given = id_of(&reply);
        assert!(!ids.contains(&given), "{given}");
        assert!(uuid::Uuid::try_parse(&given).is_ok(), "{given}");
        let recorded = entry(&app, receipt_of(&reply)).await;
        assert_eq!(recorded.entry.request_id.as_deref(), Some(given.as_str()));
    }
    let all = app.store.audit_entries(1, 100_000).await.unwrap();
    assert!(all.iter().all(|r| !format!("{r:?}").contains("4111")));
}
