//! Request hardening at the HTTP edge: JSON nesting is bounded before deserialisation,
//! a request whose body never finishes is abandoned at the deadline with an answer in
//! the one error shape, a panicking handler is answered and audited, and requests
//! dropped at random points leave no half-made change.

use std::time::Duration;

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
    // With the audit log on, small bodies of declared length are read by the audit
    // layer before the handler (and before authentication): the deadline covers that
    // read too, for callers with and without a key.
    for audited in [false, true] {
        let config = api::ApiConfig {
            request_timeout_secs: 1,
            ..api::ApiConfig::default()
        };
        let app = TestApp::with_config(config).await;
        if audited {
            assert!(app.state.set_audit(crate::audit::test_log(&app)));
        }
        let admin = app.admin_key().await;
        for (key, length) in [
            (Some(&admin), None),
            (Some(&admin), Some(100)),
            (None, Some(100)),
        ] {
            let case = format!(
                "audited {audited}, key {}, length {length:?}",
                key.is_some()
            );
            let mut request = Request::builder()
                .method("POST")
                .uri("/v1/tenants")
                .header("content-type", "application/json");
            if let Some(key) = key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            if let Some(length) = length {
                request = request.header("content-length", length);
            }
            let endless = futures::stream::pending::<Result<Bytes, std::io::Error>>();
            let request = request.body(Body::from_stream(endless)).unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(20), app.send(request))
                .await
                .unwrap_or_else(|_| panic!("{case}: no answer within 20 s"));
            if key.is_none() && !audited {
                // Refused before the body is read.
                assert_eq!(
                    reply.status,
                    StatusCode::UNAUTHORIZED,
                    "{case}: {}",
                    reply.text
                );
                continue;
            }
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{case}: {}",
                reply.text
            );
            assert_eq!(error_code(&reply), "request_timeout", "{case}");
            assert_eq!(reply.headers["retry-after"], "1", "{case}");
            // An abandoned request is audited like any other.
            if audited {
                let seq = crate::audit::receipt_of(&reply);
                let entry = crate::audit::entry(&app, seq).await.entry;
                assert_eq!(entry.status, 503, "{case}");
                assert_eq!(entry.action, "http POST /v1/tenants", "{case}");
            }
        }
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
}

/// The fuzz target's entry on stable: hostile bodies and seeded mutations of valid ones
/// all end in a value or a 4xx error, never a panic.
#[test]
fn request_parsing_survives_hostile_bodies() {
    let mut hostile: Vec<Vec<u8>> = [
        "",
        "{",
        "\"",
        "[".repeat(200_000).as_str(),
        "{\"a\":".repeat(50_000).as_str(),
        r#"{"model": "m", "input": [[-1, 2], [4294967296]]}"#,
        r#"{"model": "m", "input": [1e999, NaN]}"#,
        r#"{"model": "m", "input": "\ud800"}"#,
        r#"{"model": "m", "input": ["", "x"]}"#,
        r#"{"model": "m", "input": [[]]}"#,
        r#"{"model": "m", "model": "n", "input": "x"}"#,
        r#"{"inputs": [{"name": "x", "shape": [18446744073709551615], "datatype": "FP32", "data": []}]}"#,
        r#"{"tenant": "../../etc", "scopes": ["admin", "root"], "rpm": -9223372036854775808}"#,
        r#"{"name": "a\u0000b", "rpm": 1.5}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    hostile.push(vec![0xff, 0xfe, b'{', 0x80]);
    for body in &hostile {
        api::fuzzing::parse_requests(body);
    }

    // Byte flips, insertions and cuts of valid bodies, from a fixed seed (xorshift).
    let seeds = [
        r#"{"model": "minilm", "input": ["first text", "second"], "encoding_format": "base64"}"#,
        r#"{"model": "m", "input": [[101, 7592, 102]], "dimensions": 384, "user": "u"}"#,
        r#"{"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}], "id": "r"}"#,
        r#"{"tenant": "acme", "scopes": ["inference"], "rpm": 5, "tpm": 100, "tpd": 1000}"#,
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..4000 {
        let mut body = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % body.len().max(1);
            match next() % 4 {
                0 => body[at] = next() as u8,
                1 => body.insert(at, b"[{\"]}:,\\0-e9"[(next() % 12) as usize]),
                2 => body.truncate(at),
                _ => {
                    let start = at.min(body.len());
                    let piece = body[start..].to_vec();
                    body.extend_from_slice(&piece);
                }
            }
            if body.is_empty() {
                break;
            }
        }
        api::fuzzing::parse_requests(&body);
    }
}

/// A handler that panics (a bug, whatever the request) answers 500 `internal_error` in
/// the one error shape, without its message, is audited as a 500, and the server
/// keeps serving; before, the connection was dropped with no answer and no entry.
#[tokio::test]
async fn a_panicking_handler_answers_500_and_is_audited() {
    use tower::ServiceExt as _;

    let app = TestApp::new().await;
    assert!(app.state.set_audit(crate::audit::test_log(&app)));
    let boom = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            let canary = "panic-canary-5521";
            if std::hint::black_box(true) {
                panic!("a bug met {canary}");
            }
            "unreachable"
        }),
    );
    let router = api::router_with(app.state.clone(), boom);
    let send = |path: &'static str| {
        let router = router.clone();
        async move {
            let request = Request::builder().uri(path).body(Body::empty()).unwrap();
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let receipt = response.headers().get("x-charter-receipt").cloned();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, receipt, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, receipt, body) = send("/boom").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "internal_error", "{body}");
    assert!(!body.contains("panic-canary"), "{body}");
    let seq: i64 = receipt.unwrap().to_str().unwrap().parse().unwrap();
    let entry = crate::audit::entry(&app, seq).await.entry;
    assert_eq!(
        (entry.status, entry.action.as_str()),
        (500, "http GET /boom")
    );
    let (status, _, _) = send("/health").await;
    assert_eq!(status, StatusCode::OK);
}

/// Requests dropped at random points (checklist row 25: a client that disconnects
/// drops its request wherever it is, mid-query or mid-commit) leave no half-made
/// change and no broken database connection. Six streams of 50 `POST /v1/tenants` and
/// 50 `POST /v1/keys` each, every request dropped after a pseudo-random 0–3 ms, with
/// the audit log on. Afterwards: the tenants and keys that exist are exactly those with
/// a change record in the log (a change and its record commit together or not at all);
/// 64 concurrent reads all answer 200 (the pool's connections survived); and the chain
/// verifies without findings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_requests_leave_no_half_made_change() {
    use std::collections::BTreeSet;
    let app = crate::audit::audited_app().await;
    let admin = app.admin_key().await;
    let (app, admin) = (&app, &admin);
    let streams = (0..6u64).map(|stream| async move {
        // xorshift: reproducible delays without a dependency.
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (stream + 1);
        let mut next_delay = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Duration::from_micros(state % 3_000)
        };
        let (mut answered, mut dropped) = (0, 0);
        for i in 0..50 {
            let tenant = serde_json::json!({ "name": format!("t{stream}x{i}") });
            let key = serde_json::json!({ "tenant": "admin", "scopes": ["inference"] });
            for (path, body) in [("/v1/tenants", tenant), ("/v1/keys", key)] {
                let call = app.call(axum::http::Method::POST, path, Some(admin), Some(body));
                match tokio::time::timeout(next_delay(), call).await {
                    Ok(reply) => {
                        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
                        answered += 1;
                    }
                    Err(_) => dropped += 1,
                }
            }
        }
        (answered, dropped)
    });
    let counts = futures::future::join_all(streams).await;
    let answered: usize = counts.iter().map(|c| c.0).sum();
    let dropped: usize = counts.iter().map(|c| c.1).sum();
    assert!(
        answered > 0 && dropped > 0,
        "the delays must both cut requests off and let some finish: {answered} answered, {dropped} dropped"
    );
    // Work a dropped request left running in the database may still be finishing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let reads = (0..64).map(|_| app.get("/v1/tenants", admin));
    for reply in futures::future::join_all(reads).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    let log = app.state.audit().unwrap();
    log.checkpoint().await.unwrap();
    let records = app.store.audit_entries(1, 1_000_000).await.unwrap();
    let recorded = |action: &str, prefix: &str| -> BTreeSet<String> {
        records
            .iter()
            .filter(|r| r.entry.action == action)
            .filter_map(|r| r.entry.resource.strip_prefix(prefix).map(str::to_owned))
            .collect()
    };
    let tenants: BTreeSet<String> = app
        .store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .filter(|name| name.starts_with('t'))
        .collect();
    let created = recorded("tenant.create", "tenant/");
    assert_eq!(
        tenants,
        created.into_iter().filter(|n| n.starts_with('t')).collect()
    );
    let keys: BTreeSet<String> = app
        .store
        .list_keys(&store::Caller::admin())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(keys, recorded("key.create", "key/"));
    assert!(
        tenants.len() < 300 && keys.len() > 1,
        "{} tenants and {} keys: the drops must hit some changes and spare others",
        tenants.len(),
        keys.len()
    );

    let verified =
        governance::audit::verify_store(&app.store, &log.signing_key().verifying_key(), |_| {})
            .await
            .unwrap();
    assert!(verified.findings.is_empty(), "{:?}", verified.findings);
}
