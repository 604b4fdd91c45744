//! Rate limits and metering over the real router: OpenAI's `x-ratelimit-*` headers,
//! 429 answers with `Retry-After`, limits shared by a tenant's keys, token limits
//! charged with the real token count, usage that adds up to what was sent, and a
//! flooding tenant that does not starve another.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use store::KeyLimits;
use types::{Scopes, TenantName};

use crate::common::{error_code, Reply, TestApp};

/// "hello world" is [CLS] hello world [SEP] for all-MiniLM-L6-v2.
const HELLO_TOKENS: i64 = 4;

async fn app() -> TestApp {
    app_with(api::ApiConfig::default()).await
}

/// An app over `config` with all-MiniLM-L6-v2 imported as the shared model `minilm`.
async fn app_with(config: api::ApiConfig) -> TestApp {
    let app = TestApp::with_config(config).await;
    crate::embeddings::import_shared_minilm(&app).await;
    app
}

async fn limited_key(app: &TestApp, tenant: &str, limits: KeyLimits) -> String {
    let request = governance::KeyRequest {
        tenant: TenantName::try_from(tenant).unwrap(),
        scopes: Scopes::parse_list("inference").unwrap(),
        description: String::new(),
        expires_at: None,
        limits,
    };
    let (_, text) = governance::mint_key(&app.store, request).await.unwrap();
    text.expose().clone()
}

/// `PUT /v1/tenants/{tenant}/limits` with `body`.
async fn set_tenant_limits(app: &TestApp, admin: &str, tenant: &str, body: Value) -> Reply {
    app.call(
        Method::PUT,
        &format!("/v1/tenants/{tenant}/limits"),
        Some(admin),
        Some(body),
    )
    .await
}

fn rpm(n: i64) -> KeyLimits {
    KeyLimits {
        rpm: Some(n),
        ..KeyLimits::default()
    }
}

fn tpm(n: i64) -> KeyLimits {
    KeyLimits {
        tpm: Some(n),
        ..KeyLimits::default()
    }
}

fn tpd(n: i64) -> KeyLimits {
    KeyLimits {
        tpd: Some(n),
        ..KeyLimits::default()
    }
}

async fn embed(app: &TestApp, key: &str) -> Reply {
    app.call(
        Method::POST,
        "/v1/embeddings",
        Some(key),
        Some(json!({"model": "minilm", "input": "hello world"})),
    )
    .await
}

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", reply.headers))
        .to_str()
        .unwrap()
}

fn assert_rate_limited(reply: &Reply, message_part: &str) -> u64 {
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(error_code(reply), "rate_limit_exceeded");
    assert_eq!(reply.body["error"]["type"], "rate_limit_error");
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{message}");
    let retry_after: u64 = header(reply, "retry-after").parse().unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    retry_after
}

#[tokio::test]
async fn requests_per_minute_headers_and_429() {
    let app = TestApp::new().await;
    app.tenant("acme").await;
    let key = limited_key(&app, "acme", rpm(2)).await;
    for remaining in ["1", "0"] {
        let reply = app.get("/v1/models", &key).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(header(&reply, "x-ratelimit-limit-requests"), "2");
        assert_eq!(header(&reply, "x-ratelimit-remaining-requests"), remaining);
        assert!(header(&reply, "x-ratelimit-reset-requests").ends_with('s'));
        // No token limit, so no token headers.
        assert!(reply.headers.get("x-ratelimit-limit-tokens").is_none());
    }
    let refused = app.get("/v1/models", &key).await;
    let retry_after = assert_rate_limited(&refused, "2 requests per minute");
    // One request refills every 30 s at 2 per minute.
    assert!(retry_after <= 30, "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");

    // Keys without limits get no rate-limit headers at all.
    let free = app.key("acme", "inference").await;
    let reply = app.get("/v1/models", &free).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("x-ratelimit-limit-requests").is_none());
}

#[tokio::test]
async fn token_limits_charge_the_real_token_count() {
    let app = app().await;
    app.tenant("acme").await;
    let key = limited_key(&app, "acme", tpm(2 * HELLO_TOKENS + 1)).await;
    for remaining in [HELLO_TOKENS + 1, 1] {
        let reply = embed(&app, &key).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["usage"]["prompt_tokens"], HELLO_TOKENS);
        assert_eq!(
            header(&reply, "x-ratelimit-limit-tokens"),
            (2 * HELLO_TOKENS + 1).to_string()
        );
        assert_eq!(
            header(&reply, "x-ratelimit-remaining-tokens"),
            remaining.to_string()
        );
    }
    let refused = embed(&app, &key).await;
    assert_rate_limited(&refused, "tokens per minute");

    // A request larger than the whole limit is told so rather than to wait.
    let tiny = limited_key(&app, "acme", tpm(HELLO_TOKENS - 1)).await;
    let refused = embed(&app, &tiny).await;
    assert_rate_limited(&refused, &format!("needs {HELLO_TOKENS} tokens"));

    // The daily quota: the second request would pass it and waits for midnight UTC.
    let daily = limited_key(&app, "acme", tpd(HELLO_TOKENS + 1)).await;
    assert_eq!(embed(&app, &daily).await.status, StatusCode::OK);
    let refused = embed(&app, &daily).await;
    let retry_after = assert_rate_limited(&refused, "tokens per day");
    assert!(retry_after <= 86_400, "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-remaining-tokens"), "1");

    // Only answered requests are metered: 2 + 1 requests of 4 tokens.
    let admin = app.admin_key().await;
    let usage = app.get("/v1/usage?tenant=acme", &admin).await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
    assert_eq!(usage.body["total_requests"], 3);
    assert_eq!(usage.body["total_tokens"], 3 * HELLO_TOKENS);
}

#[tokio::test]
async fn a_tenant_limit_is_shared_by_its_keys() {
    let app = TestApp::new().await;
    app.tenant("acme").await;
    let admin = app.admin_key().await;
    let set = set_tenant_limits(&app, &admin, "acme", json!({"rpm": 3})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    assert_eq!(set.body["rpm"], 3);
    assert_eq!(set.body["tpm"], Value::Null);
    let (a, b) = (
        app.key("acme", "inference").await,
        app.key("acme", "inference").await,
    );
    for key in [&a, &a, &b] {
        assert_eq!(app.get("/v1/models", key).await.status, StatusCode::OK);
    }
    let refused = app.get("/v1/models", &b).await;
    assert_rate_limited(&refused, "this tenant may use 3 requests per minute");
    // Other tenants are untouched.
    app.tenant("beta").await;
    let other = app.key("beta", "inference").await;
    assert_eq!(app.get("/v1/models", &other).await.status, StatusCode::OK);

    // Limits can be lifted, and invalid ones are refused.
    let lifted = set_tenant_limits(&app, &admin, "acme", json!({})).await;
    assert_eq!(lifted.body["rpm"], Value::Null, "{}", lifted.text);
    assert_eq!(app.get("/v1/models", &b).await.status, StatusCode::OK);
    for body in [json!({"rpm": 0}), json!({"tpd": -5}), json!({"rpx": 1})] {
        let reply = set_tenant_limits(&app, &admin, "acme", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    }
    let missing = set_tenant_limits(&app, &admin, "nope", json!({"rpm": 1})).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Tenants can be created with limits too.
    let created = app
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&admin),
            Some(json!({"name": "gamma", "tpm": 100, "tpd": 1000})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        (
            &created.body["rpm"],
            &created.body["tpm"],
            &created.body["tpd"]
        ),
        (&Value::Null, &json!(100), &json!(1000))
    );
}

#[tokio::test]
async fn usage_adds_up_per_key_model_and_day() {
    let app = app().await;
    app.tenant("acme").await;
    app.tenant("beta").await;
    let (k1, k2) = (
        app.key("acme", "inference").await,
        app.key("acme", "inference").await,
    );
    let other = app.key("beta", "inference").await;
    let id = |key: &str| key.split('_').nth(1).unwrap().to_owned();
    let texts = ["hello world", "a somewhat longer sentence to embed"];
    let mut tokens_k1 = 0;
    for _ in 0..3 {
        let reply = app
            .call(
                Method::POST,
                "/v1/embeddings",
                Some(&k1),
                Some(json!({"model": "minilm", "input": texts})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        tokens_k1 += reply.body["usage"]["total_tokens"].as_i64().unwrap();
    }
    assert_eq!(embed(&app, &k2).await.status, StatusCode::OK);
    assert_eq!(embed(&app, &other).await.status, StatusCode::OK);
    // Refused requests are not usage.
    let refused = app
        .call(
            Method::POST,
            "/v1/embeddings",
            Some(&k2),
            Some(json!({"model": "minilm", "input": ""})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);

    let today = types::Day::today().to_string();
    let usage = app.get("/v1/usage", &k2).await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.text);
    let rows = usage.body["data"].as_array().unwrap();
    let mut expected = vec![
        json!({"tenant": "acme", "key_id": id(&k1), "model": "minilm", "day": today,
               "requests": 3, "tokens": tokens_k1}),
        json!({"tenant": "acme", "key_id": id(&k2), "model": "minilm", "day": today,
               "requests": 1, "tokens": HELLO_TOKENS}),
    ];
    expected.sort_by_key(|row| row["key_id"].as_str().unwrap().to_owned());
    assert_eq!(rows, &expected, "a tenant sees only its own usage");
    assert_eq!(usage.body["total_requests"], 4);
    assert_eq!(usage.body["total_tokens"], tokens_k1 + HELLO_TOKENS);

    // Filters: key, model, days.
    let by_key = app.get(&format!("/v1/usage?key={}", id(&k2)), &k1).await;
    assert_eq!(by_key.body["total_requests"], 1, "{}", by_key.text);
    let no_model = app.get("/v1/usage?model=other", &k1).await;
    assert_eq!(no_model.body["data"], json!([]));
    let range = app
        .get(&format!("/v1/usage?from={today}&to={today}"), &k1)
        .await;
    assert_eq!(range.body["total_requests"], 4);
    let past = app.get("/v1/usage?to=2000-01-01", &k1).await;
    assert_eq!(past.body["total_requests"], 0);
    let bad_day = app.get("/v1/usage?from=2026-02-30", &k1).await;
    assert_eq!(bad_day.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad_day), "invalid_query");

    // Another tenant's usage is for admins only.
    let forbidden = app.get("/v1/usage?tenant=beta", &k1).await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let admin = app.admin_key().await;
    let beta = app.get("/v1/usage?tenant=beta", &admin).await;
    assert_eq!(beta.body["total_requests"], 1, "{}", beta.text);
    let all = app.get("/v1/usage", &admin).await;
    assert_eq!(all.body["total_requests"], 5);
}

/// Tenant A floods (many concurrent requests, far over its limit) while tenant B makes
/// its normal requests at the same time: A is refused with 429, every one of B's
/// requests succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flooding_tenant_does_not_starve_another() {
    let app = app().await;
    app.tenant("flood").await;
    app.tenant("calm").await;
    let admin = app.admin_key().await;
    let set = set_tenant_limits(&app, &admin, "flood", json!({"rpm": 5})).await;
    assert_eq!(set.status, StatusCode::OK);
    let flood_keys = [
        app.key("flood", "inference").await,
        app.key("flood", "inference").await,
    ];
    let calm = app.key("calm", "inference").await;

    let floods = (0..60).map(|i| {
        let (app, key) = (&app, &flood_keys[i % 2]);
        async move { embed(app, key).await.status }
    });
    let calms = (0..10).map(|_| {
        let app = &app;
        let calm = &calm;
        async move { embed(app, calm).await }
    });
    let (flood_statuses, calm_replies) = tokio::join!(
        futures::future::join_all(floods),
        futures::future::join_all(calms)
    );
    for reply in &calm_replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let ok = flood_statuses
        .iter()
        .filter(|s| **s == StatusCode::OK)
        .count();
    let limited = flood_statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited), (5, 55), "{flood_statuses:?}");
}

/// Without rate limits, against a small queue: a tenant floods with far more
/// concurrent requests than the queue holds, and the per-tenant cap on requests in
/// flight keeps places free for another tenant, whose requests all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_cannot_fill_the_queue_of_a_model() {
    let config = api::ApiConfig {
        queue_capacity: 4,
        max_in_flight_per_tenant: Some(2),
        ..api::ApiConfig::default()
    };
    let app = app_with(config).await;
    app.tenant("flood").await;
    app.tenant("calm").await;
    let flood = app.key("flood", "inference").await;
    let calm = app.key("calm", "inference").await;
    // Load the model first, so the flood meets a warm worker.
    assert_eq!(embed(&app, &calm).await.status, StatusCode::OK);

    let long: Vec<String> = (0..16)
        .map(|i| format!("sentence {i} {}", "with many words ".repeat(15)))
        .collect();
    let floods = (0..40).map(|_| {
        let (app, flood, input) = (&app, &flood, long.clone());
        async move {
            app.call(
                Method::POST,
                "/v1/embeddings",
                Some(flood),
                Some(json!({"model": "minilm", "input": input})),
            )
            .await
        }
    });
    let calm_sequence = async {
        let mut replies = Vec::new();
        for _ in 0..5 {
            replies.push(embed(&app, &calm).await);
        }
        replies
    };
    let (flood_replies, calm_replies) =
        tokio::join!(futures::future::join_all(floods), calm_sequence);
    for reply in &calm_replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let mut refused = 0;
    for reply in &flood_replies {
        match reply.status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(error_code(reply), "too_many_concurrent_requests");
                assert_eq!(header(reply, "retry-after"), "1");
                refused += 1;
            }
            other => panic!("flood got {other}: {}", reply.text),
        }
    }
    assert!(
        refused > 0,
        "40 concurrent requests never exceeded 2 in flight"
    );
    let slots = app.state.tenant_slots().unwrap();
    assert_eq!(slots.in_flight(&TenantName::try_from("flood").unwrap()), 0);
}

/// Daily quotas start from what the store metered today, so restarting the server (a
/// fresh process, here a fresh app over usage a previous one wrote) does not reset
/// them; for the key's quota and for the tenant's, which all its keys share.
#[tokio::test]
async fn daily_quotas_survive_a_restart() {
    let app = app().await;
    app.tenant("acme").await;
    let key = limited_key(&app, "acme", tpd(2 * HELLO_TOKENS + 1)).await;
    let key_id = key.split('_').nth(1).unwrap().to_owned();
    // What the previous process metered today for this key.
    let earlier = |key_id: &str, tokens: i64| store::UsageRecord {
        tenant: TenantName::try_from("acme").unwrap(),
        key_id: key_id.to_owned(),
        model: "minilm".into(),
        day: types::Day::today(),
        requests: 1,
        tokens,
    };
    app.store
        .add_usage(&[earlier(&key_id, HELLO_TOKENS + 1)])
        .await
        .unwrap();
    let reply = embed(&app, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(header(&reply, "x-ratelimit-remaining-tokens"), "0");
    assert_rate_limited(&embed(&app, &key).await, "tokens per day");

    // The tenant's quota counts every key's usage of the day.
    let admin = app.admin_key().await;
    let set = set_tenant_limits(&app, &admin, "acme", json!({"tpd": 3 * HELLO_TOKENS})).await;
    assert_eq!(set.status, StatusCode::OK);
    app.store
        .add_usage(&[earlier("an-old-key", HELLO_TOKENS)])
        .await
        .unwrap();
    let other = app.key("acme", "inference").await;
    let refused = embed(&app, &other).await;
    assert_rate_limited(&refused, "this tenant may use 12 tokens per day");
}

/// A request over the limit is refused in the authentication layer, before its handler
/// looks anything up, and the refusal is audited with the caller and the status.
#[tokio::test]
async fn refusals_come_first_and_are_audited() {
    let app = crate::audit::audited_app().await;
    app.tenant("acme").await;
    let key = limited_key(&app, "acme", rpm(1)).await;
    assert_eq!(app.get("/v1/models", &key).await.status, StatusCode::OK);
    // A model that does not exist would be 404 from the handler; the limit answers first.
    let refused = app
        .call(
            Method::POST,
            "/v1/embeddings",
            Some(&key),
            Some(json!({"model": "nowhere", "input": "x"})),
        )
        .await;
    assert_rate_limited(&refused, "1 requests per minute");
    let entry = crate::audit::entry(&app, crate::audit::receipt_of(&refused)).await;
    assert_eq!(entry.entry.status, 429);
    assert_eq!(entry.entry.tenant.as_deref(), Some("acme"));
    assert_eq!(
        entry.entry.key_id.as_deref(),
        Some(key.split('_').nth(1).unwrap())
    );
}

/// The server takes at most `max_in_flight` requests at once: with every place held
/// (two requests whose bodies never come), the next one gets 503 `overloaded` with
/// Retry-After at once, with the audit log off and on (and is audited); probes are
/// still answered; once the held requests end, requests are served again (checklist
/// row 22, design rule 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_server_limit_are_shed_at_once() {
    use axum::body::{Body, Bytes};
    use axum::http::Request;
    use tower::ServiceExt as _;

    for audited in [false, true] {
        let config = api::ApiConfig {
            max_in_flight: 2,
            request_timeout_secs: 2,
            ..api::ApiConfig::default()
        };
        let app = TestApp::with_config(config).await;
        if audited {
            assert!(app.state.set_audit(crate::audit::test_log(&app)));
        }
        let admin = app.admin_key().await;
        let stalled = |router: axum::Router, key: String| {
            tokio::spawn(async move {
                let endless = futures::stream::pending::<Result<Bytes, std::io::Error>>();
                let request = Request::builder()
                    .method("POST")
                    .uri("/v1/tenants")
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(Body::from_stream(endless))
                    .unwrap();
                let response = router.oneshot(request).await.unwrap();
                let status = response.status();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap();
                let error: Value = serde_json::from_slice(&body.to_bytes()).unwrap();
                (
                    status,
                    error["error"]["code"].as_str().unwrap_or("").to_owned(),
                )
            })
        };
        // Each takes its place before the next is sent.
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(stalled(app.router.clone(), admin.clone()));
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let shed = app.get("/v1/tenants", &admin).await;
        assert_eq!(
            shed.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "audited {audited}: {}",
            shed.text
        );
        assert_eq!(error_code(&shed), "overloaded", "{}", shed.text);
        assert_eq!(shed.headers["retry-after"], "1");
        if audited {
            let seq = crate::audit::receipt_of(&shed);
            assert_eq!(crate::audit::entry(&app, seq).await.entry.status, 503);
        }
        assert_eq!(app.get("/health", &admin).await.status, StatusCode::OK);
        assert_eq!(
            app.get("/v2/health/live", &admin).await.status,
            StatusCode::OK
        );
        // The held requests end at their deadline, not shed.
        for request in held {
            let (status, code) = request.await.unwrap();
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::SERVICE_UNAVAILABLE, "request_timeout")
            );
        }
        let reply = app.get("/v1/tenants", &admin).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "audited {audited}: {}",
            reply.text
        );
    }
}

/// A request abandoned at its deadline gives back what it held (checklist row 24): its
/// tenant's place (with one place per tenant, the next request would otherwise get 429)
/// and the model's worker, whose remaining batches of the abandoned input are skipped
/// (otherwise the next request would wait behind seconds of them and time out too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gives_back_what_it_held() {
    let config = api::ApiConfig {
        request_timeout_secs: 3,
        max_in_flight_per_tenant: Some(1),
        ..api::ApiConfig::default()
    };
    let app = app_with(config).await;
    app.tenant("slow").await;
    let key = app.key("slow", "inference").await;
    // Loading the model takes longer than the deadline; it goes on after a request
    // that waited for it is abandoned.
    let mut loaded = false;
    for _ in 0..40 {
        let warm = embed(&app, &key).await;
        if warm.status == StatusCode::OK {
            loaded = true;
            break;
        }
        assert_eq!(error_code(&warm), "request_timeout", "{}", warm.text);
    }
    assert!(loaded, "the model never finished loading");

    // Some twenty seconds of work on two cores (about 120 tokens each).
    let long: Vec<String> = (0..2048)
        .map(|i| format!("sentence {i} {}", "with many more words ".repeat(25)))
        .collect();
    let reply = app
        .call(
            Method::POST,
            "/v1/embeddings",
            Some(&key),
            Some(json!({"model": "minilm", "input": long})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(error_code(&reply), "request_timeout");
    let slots = app.state.tenant_slots().unwrap();
    assert_eq!(slots.in_flight(&TenantName::try_from("slow").unwrap()), 0);

    let reply = embed(&app, &key).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
