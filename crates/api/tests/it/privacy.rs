//! Privacy over the real router: the redaction endpoint, reveal with its scope and audit
//! entry, tenants' settings, the PII policy applied to embeddings inputs (the model sees
//! the redacted text), payload retention, erasure of a subject, and error bodies free of
//! personal data.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::audit::{audited_app, entry, receipt_of};
use crate::common::{error_code, Reply, TestApp};

fn files_containing(dir: &std::path::Path, needles: &[&str]) -> Vec<(String, std::path::PathBuf)> {
    testkit::canary::files_containing(dir, needles).unwrap()
}

const EMAIL: &str = "canary.alice@example.com";
const CARD: &str = "4111 1111 1111 1111";

async fn put_settings(app: &TestApp, tenant: &str, settings: Value) -> Reply {
    let admin = app.admin_key().await;
    app.call(
        Method::PUT,
        &format!("/v1/tenants/{tenant}/privacy"),
        Some(&admin),
        Some(settings),
    )
    .await
}

async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> Reply {
    app.call(Method::POST, path, Some(key), Some(body)).await
}

async fn upload_dataset(
    app: &TestApp,
    tenant: &str,
    name: &str,
    rows: &str,
) -> store::DatasetRecord {
    upload_dataset_as(app, tenant, name, rows, None).await
}

/// Uploads `rows` as JSONL, or as CSV with `csv_columns`.
async fn upload_dataset_as(
    app: &TestApp,
    tenant: &str,
    name: &str,
    rows: &str,
    csv_columns: Option<jobs::datasets::CsvColumns>,
) -> store::DatasetRecord {
    let format = match csv_columns {
        Some(_) => jobs::DatasetFormat::Csv,
        None => jobs::DatasetFormat::Jsonl,
    };
    // Staged outside the data dir, which is searched for canaries.
    let staging = tempfile::tempdir().unwrap();
    let path = staging.path().join(format!("{name}.{}", format.as_str()));
    std::fs::write(&path, rows).unwrap();
    jobs::Datasets::new(app.registry.clone())
        .upload(jobs::DatasetUpload {
            tenant: tenant.parse().unwrap(),
            name: name.parse().unwrap(),
            format,
            csv_columns,
            path,
            max_bytes: 1 << 20,
        })
        .await
        .unwrap()
}

/// The decrypted content of a stored dataset.
async fn dataset_content(app: &TestApp, tenant: &types::TenantName, digest: &str) -> String {
    let key = app.registry.tenant_key(tenant).await.unwrap();
    let digest = blobstore::Digest::parse(digest).unwrap();
    String::from_utf8(app.registry.blobs().get(&key, &digest, None).unwrap()).unwrap()
}

async fn erase(app: &TestApp, path: &str, key: &str) -> Reply {
    app.call(Method::DELETE, path, Some(key), None).await
}

async fn embed(app: &TestApp, key: &str, body: Value, subject: Option<&str>) -> Reply {
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/v1/embeddings")
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    if let Some(subject) = subject {
        builder = builder.header("x-charter-subject", subject);
    }
    app.send(builder.body(Body::from(body.to_string())).unwrap())
        .await
}

fn vector(reply: &Reply, index: usize) -> Vec<f32> {
    serde_json::from_value(reply.body["data"][index]["embedding"].clone())
        .unwrap_or_else(|_| panic!("no embedding {index}: {}", reply.text))
}

#[tokio::test]
async fn redact_returns_text_and_code_point_offsets() {
    let app = TestApp::new().await;
    app.tenant("acme").await;
    let key = app.key("acme", "inference").await;
    let text = format!("邮箱 {EMAIL}，卡 {CARD}");
    let reply = post(&app, "/v1/privacy/redact", &key, json!({ "text": text })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    // The default input policy allows everything; the endpoint still redacts.
    assert_eq!(reply.body["text"], "邮箱 [EMAIL]，卡 [CARD]");
    assert_eq!(reply.body["vault_id"], Value::Null);
    let chars: Vec<char> = text.chars().collect();
    let spans: Vec<(String, String)> = reply.body["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entity| {
            let (start, end) = (
                entity["start"].as_u64().unwrap() as usize,
                entity["end"].as_u64().unwrap() as usize,
            );
            (
                entity["type"].as_str().unwrap().to_owned(),
                chars[start..end].iter().collect(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            ("email".to_owned(), EMAIL.to_owned()),
            ("card".to_owned(), CARD.to_owned())
        ]
    );

    // A tenant policy that blocks cards refuses the text, naming the kind only.
    let set = put_settings(
        &app,
        "acme",
        json!({"input": {"default": "redact", "actions": {"card": "block"}}}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let blocked = post(&app, "/v1/privacy/redact", &key, json!({ "text": text })).await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&blocked), "pii_blocked");
    assert!(blocked.text.contains("card"), "{}", blocked.text);
    assert!(!blocked.text.contains("4111"), "{}", blocked.text);
}

#[tokio::test]
async fn pseudonyms_are_revealed_only_with_the_scope_and_every_reveal_is_audited() {
    let app = audited_app().await;
    app.tenant("acme").await;
    app.tenant("beta").await;
    let inference = app.key("acme", "inference").await;
    let revealer = app.key("acme", "pii:reveal").await;
    let other = app.key("beta", "pii:reveal").await;
    let reply = post(
        &app,
        "/v1/privacy/redact",
        &inference,
        json!({"text": format!("from {EMAIL} to b@example.org, cc {EMAIL}"), "mode": "pseudonymize"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body["text"],
        "from <EMAIL_1> to <EMAIL_2>, cc <EMAIL_1>"
    );
    let vault_id = reply.body["vault_id"].as_str().unwrap().to_owned();
    assert!(reply.body["vault_expires_at"].as_i64().unwrap() > types::unix_now());
    let ask = json!({"vault_id": vault_id, "text": "<EMAIL_2> wrote to <EMAIL_1>"});

    let denied = post(&app, "/v1/privacy/reveal", &inference, ask.clone()).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let foreign = post(&app, "/v1/privacy/reveal", &other, ask.clone()).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);

    let revealed = post(&app, "/v1/privacy/reveal", &revealer, ask).await;
    assert_eq!(revealed.status, StatusCode::OK, "{}", revealed.text);
    assert_eq!(
        revealed.body["text"],
        format!("b@example.org wrote to {EMAIL}")
    );
    let audited = entry(&app, receipt_of(&revealed)).await;
    assert_eq!(audited.entry.action, "http POST /v1/privacy/reveal");
    assert_eq!(
        audited.entry.resource,
        format!("/v1/privacy/reveal/{vault_id}")
    );
    assert_eq!(audited.entry.status, 200);
    let refused = entry(&app, receipt_of(&denied)).await;
    assert_eq!(refused.entry.status, 403);
}

#[tokio::test]
async fn settings_are_admin_only_validated_and_shown() {
    let app = TestApp::new().await;
    app.tenant("acme").await;
    let admin = app.admin_key().await;
    let shown = app.get("/v1/tenants/acme/privacy", &admin).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
    assert_eq!(shown.body["input"]["default"], "allow");
    assert_eq!(shown.body["logs"]["default"], "redact");
    assert_eq!(shown.body["retention_secs"], Value::Null);

    let leaky = put_settings(&app, "acme", json!({"logs": {"default": "allow"}})).await;
    assert_eq!(leaky.status, StatusCode::BAD_REQUEST);
    let unknown = put_settings(&app, "acme", json!({"retention": 5})).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    let ghost = put_settings(&app, "ghost", json!({})).await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND);

    let set = put_settings(
        &app,
        "acme",
        json!({"output": {"default": "redact"}, "retention_secs": 86400, "vault_ttl_secs": 60}),
    )
    .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text);
    let shown = app.get("/v1/tenants/acme/privacy", &admin).await;
    assert_eq!(shown.body["output"]["default"], "redact");
    assert_eq!(shown.body["input"]["default"], "allow");
    assert_eq!(shown.body["retention_secs"], 86400);
    assert_eq!(shown.body["vault_ttl_secs"], 60);
}

#[tokio::test]
async fn the_model_embeds_what_the_input_policy_left() {
    let app = TestApp::new().await;
    crate::embeddings::import_shared_minilm(&app).await;
    app.tenant("acme").await;
    let key = app.key("acme", "inference").await;
    let raw = format!("please write to {EMAIL} about the invoice");
    let redacted = "please write to [EMAIL] about the invoice";
    let body = json!({"model": "minilm", "input": [raw, redacted]});

    // Default: the model sees the text as sent, so the two inputs differ.
    let plain = embed(&app, &key, body.clone(), None).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    assert_ne!(vector(&plain, 0), vector(&plain, 1));

    put_settings(&app, "acme", json!({"input": {"default": "redact"}})).await;
    let reply = embed(&app, &key, body, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(vector(&reply, 0), vector(&reply, 1));

    // Token ids cannot be checked against a policy that changes anything.
    let tokens = embed(
        &app,
        &key,
        json!({"model": "minilm", "input": [[101, 7592, 102]]}),
        None,
    )
    .await;
    assert_eq!(tokens.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&tokens), "pii_unchecked_input");

    put_settings(
        &app,
        "acme",
        json!({"input": {"default": "allow", "actions": {"card": "block", "secret": "block"}}}),
    )
    .await;
    let blocked = embed(
        &app,
        &key,
        json!({"model": "minilm", "input": ["fine", format!("card {CARD}")]}),
        None,
    )
    .await;
    assert_eq!(blocked.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&blocked), "pii_blocked");
    assert!(!blocked.text.contains("4111"), "{}", blocked.text);
}

#[tokio::test]
async fn payloads_are_stored_only_when_retained_and_erasure_leaves_nothing_of_the_subject() {
    let app = audited_app().await;
    crate::embeddings::import_shared_minilm(&app).await;
    app.tenant("acme").await;
    let key = app.key("acme", "inference,data").await;
    let acme: types::TenantName = "acme".parse().unwrap();
    let subject = "subject-canary-0042";

    // Off by default: nothing is stored.
    let greeting = json!({"model": "minilm", "input": format!("hi {EMAIL}"), "user": subject});
    let reply = embed(&app, &key, greeting.clone(), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(app
        .state
        .privacy()
        .payloads(&acme)
        .await
        .unwrap()
        .is_empty());

    put_settings(
        &app,
        "acme",
        json!({"input": {"default": "pseudonymize"}, "retention_secs": 3600}),
    )
    .await;
    // The subject through the `user` field, the header, and another subject.
    let by_field = embed(&app, &key, greeting, None).await;
    assert_eq!(by_field.status, StatusCode::OK, "{}", by_field.text);
    assert!(by_field.headers.contains_key("x-charter-vault-id"));
    let by_header = embed(
        &app,
        &key,
        json!({"model": "minilm", "input": [format!("card {CARD}"), "plain"]}),
        Some(subject),
    )
    .await;
    assert_eq!(by_header.status, StatusCode::OK, "{}", by_header.text);
    let someone_else = embed(
        &app,
        &key,
        json!({"model": "minilm", "input": "other person", "user": "subject-other"}),
        None,
    )
    .await;
    assert_eq!(someone_else.status, StatusCode::OK);
    let conflict = embed(
        &app,
        &key,
        json!({"model": "minilm", "input": "x", "user": "a"}),
        Some("b"),
    )
    .await;
    assert_eq!(error_code(&conflict), "subject_conflict");

    let payloads = app.state.privacy().payloads(&acme).await.unwrap();
    assert_eq!(payloads.len(), 3);
    assert_eq!(payloads[0]["input"], json!(["hi <EMAIL_1>"]));
    assert_eq!(payloads[1]["input"], json!(["card <CARD_1>", "plain"]));
    assert_eq!(payloads[0]["embeddings"].as_array().unwrap().len(), 1);
    let found = files_containing(app.dir.path(), &[EMAIL, CARD, subject, "other person"]);
    assert!(found.is_empty(), "stored in the clear: {found:?}");

    // A training dataset whose rows name their subjects.
    let rows = format!(
        "{{\"x\":[1],\"y\":[2],\"subject\":\"{subject}\"}}\n{{\"x\":[3],\"y\":[4],\"subject\":\"subject-other\"}}\n{{\"x\":[5],\"y\":[6],\"subject\":\"{subject}\"}}\n"
    );
    let before = upload_dataset(&app, "acme", "tagged", &rows).await;
    assert_eq!(before.n_rows, 3);

    let erased = erase(&app, &format!("/v1/subjects/{subject}"), &key).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    assert_eq!(erased.body["payloads"], 2);
    assert_eq!(erased.body["vault_entries"], 2);
    assert_eq!(erased.body["dataset_rows"], 2);
    assert_eq!(erased.body["datasets"], json!(["tagged"]));
    let after = app
        .store
        .find_dataset(
            &store::Caller::tenant(acme.clone()),
            &"tagged".parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(after.n_rows, 1);
    let blobs = app.registry.blobs();
    let old_digest = blobstore::Digest::parse(&before.digest).unwrap();
    assert!(
        !blobs.exists(&acme, &old_digest).unwrap(),
        "the old content is deleted"
    );
    let tenant_key = app.registry.tenant_key(&acme).await.unwrap();
    let content = blobs
        .get(
            &tenant_key,
            &blobstore::Digest::parse(&after.digest).unwrap(),
            None,
        )
        .unwrap();
    let content = String::from_utf8(content).unwrap();
    assert!(!content.contains(subject), "{content}");
    assert!(content.contains("subject-other"), "{content}");
    let left = app.state.privacy().payloads(&acme).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["input"], json!(["other person"]));
    // Nothing of the subject is left: not in the database, nor in the audit entry of
    // the erasure itself (it records a keyed tag instead of the id).
    let audited = entry(&app, receipt_of(&erased)).await;
    assert!(audited.entry.resource.starts_with("/v1/subjects/tag:"));
    assert!(!audited.entry.resource.contains(subject));
    assert!(files_containing(app.dir.path(), &[subject]).is_empty());
    let again = erase(&app, &format!("/v1/subjects/{subject}"), &key).await;
    assert_eq!(again.body["payloads"], 0);

    // Only admins erase in another tenant.
    let beta = erase(&app, "/v1/subjects/x?tenant=admin", &key).await;
    assert_eq!(beta.status, StatusCode::FORBIDDEN);
    let admin = app.admin_key().await;
    let as_admin = erase(&app, "/v1/subjects/subject-other?tenant=acme", &admin).await;
    assert_eq!(as_admin.status, StatusCode::OK, "{}", as_admin.text);
    assert_eq!(as_admin.body["payloads"], 1);
}

/// A CSV dataset's `subject` column tags its rows: erasure rewrites the dataset without
/// the subject's rows (removing one left empty) and leaves other subjects' rows and
/// untagged datasets as they were.
#[tokio::test]
async fn erasure_removes_the_subjects_rows_from_csv_datasets() {
    let app = TestApp::new().await;
    let acme = app.tenant("acme").await;
    let key = app.key("acme", "data").await;
    let subject = "subject-canary-csv-0043";
    let columns = || {
        Some(jobs::datasets::CsvColumns {
            features: vec!["x".into()],
            targets: vec!["y".into()],
        })
    };
    let rows = format!("x,subject,y\n1,{subject},2\n3,subject-other,4\n5,\"{subject}\",6\n7,,8\n");
    let tagged = upload_dataset_as(&app, "acme", "tagged-csv", &rows, columns()).await;
    assert_eq!(tagged.n_rows, 4);
    assert_eq!(tagged.columns["subject_rows"], 3);
    let only = format!("subject,x,y\n{subject},1,2\n");
    upload_dataset_as(&app, "acme", "only-subject", &only, columns()).await;
    let plain = upload_dataset_as(&app, "acme", "plain-csv", "x,y\n1,2\n", columns()).await;
    assert_eq!(plain.columns["subject_rows"], 0);
    assert!(files_containing(app.dir.path(), &[subject]).is_empty());

    let erased = erase(&app, &format!("/v1/subjects/{subject}"), &key).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    assert_eq!(erased.body["dataset_rows"], 3);
    let mut datasets: Vec<String> =
        serde_json::from_value(erased.body["datasets"].clone()).unwrap();
    datasets.sort();
    assert_eq!(datasets, ["only-subject", "tagged-csv"]);

    let find = |name: &'static str| {
        let (store, caller) = (&app.store, store::Caller::tenant(acme.clone()));
        async move { store.find_dataset(&caller, &name.parse().unwrap()).await }
    };
    let after = find("tagged-csv").await.unwrap();
    assert_eq!(after.n_rows, 2);
    assert_eq!(after.columns["subject_rows"], 1);
    assert_eq!(after.columns["features"], json!(["x"]));
    let old_digest = blobstore::Digest::parse(&tagged.digest).unwrap();
    assert!(!app.registry.blobs().exists(&acme, &old_digest).unwrap());
    let content = dataset_content(&app, &acme, &after.digest).await;
    assert_eq!(content, "x,subject,y\n3,subject-other,4\n7,,8\n");
    assert!(find("only-subject").await.is_err(), "left empty, removed");
    assert_eq!(find("plain-csv").await.unwrap().digest, plain.digest);
    assert!(files_containing(app.dir.path(), &[subject]).is_empty());

    let again = erase(&app, &format!("/v1/subjects/{subject}"), &key).await;
    assert_eq!(again.body["dataset_rows"], 0);
    let other = erase(&app, "/v1/subjects/subject-other", &key).await;
    assert_eq!(other.body["dataset_rows"], 1);
    let last = find("tagged-csv").await.unwrap();
    let content = dataset_content(&app, &acme, &last.digest).await;
    assert_eq!(content, "x,subject,y\n7,,8\n");
    assert_eq!(last.columns["subject_rows"], 0);
}

#[tokio::test]
async fn error_bodies_do_not_echo_personal_data() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let reply = post(
        &app,
        "/v1/embeddings",
        &admin,
        json!({"model": EMAIL, "input": "x"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(!reply.text.contains(EMAIL), "{}", reply.text);
    assert!(reply.text.contains("[EMAIL]"), "{}", reply.text);
    // serde quotes the offending value in its message; it reaches the client redacted.
    let body = json!({"model": "m", "input": "x", "dimensions": CARD});
    let reply = post(&app, "/v1/embeddings", &admin, body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!reply.text.contains("4111"), "{}", reply.text);
    assert!(reply.text.contains("[CARD]"), "{}", reply.text);
}
