//! Model upload over HTTP: a tar of a model folder, streamed with a size limit, then
//! the same validation as the CLI import.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::common::{error_code, tar_of, tiny_safetensors, TestApp};

fn upload(path: &str, key: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/x-tar")
        .body(Body::from(body))
        .unwrap()
}

/// A protocol-2 pickle that would run `os.system("touch <canary>")` when unpickled.
fn malicious_pickle(canary: &std::path::Path) -> Vec<u8> {
    let command = format!("touch {}", canary.display());
    let mut p = vec![0x80, 0x02];
    p.extend_from_slice(b"cposix\nsystem\n");
    p.push(b'X');
    p.extend_from_slice(&(command.len() as u32).to_le_bytes());
    p.extend_from_slice(command.as_bytes());
    p.extend_from_slice(&[0x85, b'R', b'.']);
    p
}

#[tokio::test]
async fn a_tar_of_a_model_folder_becomes_a_version() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    let key = app.key("alpha", "models:write,models:read").await;
    let weights = tiny_safetensors(4);
    let archive = tar_of(&[
        ("config.json", br#"{"model_type":"bert"}"#),
        ("model.safetensors", &weights),
    ]);
    let reply = app
        .send(upload(
            "/v1/registry/models/tiny/versions?license=mit&owner=me",
            &key,
            archive.clone(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["version"], 1);
    assert_eq!(reply.body["tenant"], "alpha");
    let reply = app
        .send(upload("/v1/registry/models/tiny/versions", &key, archive))
        .await;
    assert_eq!(reply.body["version"], 2, "{}", reply.text);
    let shown = app.get("/v1/registry/models/tiny", &key).await;
    assert_eq!(shown.body["license"], "mit");
    assert_eq!(shown.body["versions"].as_array().unwrap().len(), 2);
    // Nothing is left behind in the staging directory.
    let staged: Vec<_> = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .collect();
    assert!(staged.is_empty(), "staged uploads left behind: {staged:?}");
}

#[tokio::test]
async fn a_pickle_renamed_to_safetensors_is_refused_and_never_run() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let canary = app.dir.path().join("canary-pwned");
    let pickle = malicious_pickle(&canary);
    for (name, file) in [
        ("model.safetensors", "renamed"),
        ("pytorch_model.bin", "bin"),
    ] {
        let archive = tar_of(&[("config.json", b"{}"), (name, &pickle)]);
        let reply = app
            .send(upload(
                &format!("/v1/registry/models/{file}/versions"),
                &key,
                archive,
            ))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{name}: {}",
            reply.text
        );
        assert_eq!(error_code(&reply), "pickle_refused");
        assert!(reply.text.contains("safetensors"), "{}", reply.text);
        let listed = app.get("/v1/registry/models", &key).await;
        assert_eq!(
            listed.body["data"].as_array().unwrap().len(),
            0,
            "{}",
            listed.text
        );
    }
    assert!(!canary.exists(), "the pickle payload ran");
}

#[tokio::test]
async fn unsafe_archives_are_refused_without_writing_outside() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let outside = app.dir.path().join("escaped.txt");
    let weights = tiny_safetensors(2);
    for evil in [
        "../escaped.txt",
        "/tmp/charter-escaped.txt",
        "a/../../escaped.txt",
    ] {
        let archive = tar_of(&[
            ("config.json", b"{}"),
            ("model.safetensors", &weights),
            (evil, b"x"),
        ]);
        let reply = app
            .send(upload("/v1/registry/models/evil/versions", &key, archive))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{evil}: {}",
            reply.text
        );
        assert_eq!(error_code(&reply), "invalid_model");
    }
    assert!(!outside.exists());
    assert!(!std::path::Path::new("/tmp/charter-escaped.txt").exists());
    let reply = app
        .send(upload(
            "/v1/registry/models/evil/versions",
            &key,
            b"not a tar at all".repeat(40),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let reply = app
        .send(upload(
            "/v1/registry/models/evil/versions",
            &key,
            Vec::new(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(error_code(&reply), "empty_upload");
    for bad_name in ["..", "a%2F..", "%2e%2e", "a%00b"] {
        let reply = app
            .send(upload(
                &format!("/v1/registry/models/{bad_name}/versions"),
                &key,
                b"x".to_vec(),
            ))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad_name}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn oversized_uploads_get_413_before_and_while_streaming() {
    let config = api::ApiConfig {
        max_upload: 4096,
        ..api::ApiConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let key = app.admin_key().await;
    // Declared too large: refused on the header alone.
    let request = Request::builder()
        .method("POST")
        .uri("/v1/registry/models/big/versions")
        .header("authorization", format!("Bearer {key}"))
        .header("content-length", "10000000000")
        .body(Body::empty())
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    // Undeclared (streamed) and too large: cut while counting.
    let chunks = futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![0u8; 1024])));
    let request = Request::builder()
        .method("POST")
        .uri("/v1/registry/models/big/versions")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from_stream(chunks))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.text
    );
    assert_eq!(error_code(&reply), "upload_too_large");
    let staged: Vec<_> = std::fs::read_dir(app.dir.path().join("uploads"))
        .unwrap()
        .collect();
    assert!(
        staged.is_empty(),
        "a refused upload left a file: {staged:?}"
    );
}

#[tokio::test]
async fn only_admins_upload_for_another_tenant() {
    let app = TestApp::new().await;
    app.tenant("alpha").await;
    app.tenant("beta").await;
    let key = app.key("alpha", "models:write").await;
    let weights = tiny_safetensors(2);
    let archive = tar_of(&[("config.json", b"{}"), ("model.safetensors", &weights)]);
    let reply = app
        .send(upload(
            "/v1/registry/models/m/versions?tenant=beta",
            &key,
            archive.clone(),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let admin = app.admin_key().await;
    let reply = app
        .send(upload(
            "/v1/registry/models/m/versions?tenant=beta",
            &admin,
            archive,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["tenant"], "beta");
}

/// Uploads have no whole-request deadline, only a bound on the pause between chunks:
/// a slow upload that keeps sending completes; one that stops, or whose client breaks
/// off, is refused; either way nothing is staged or registered (checklist rows 10, 16).
#[tokio::test]
async fn slow_uploads_complete_and_stalled_or_broken_ones_leave_nothing() {
    use futures::StreamExt as _;
    use std::time::Duration;

    let config = api::ApiConfig {
        request_timeout_secs: 1,
        ..api::ApiConfig::default()
    };
    let app = TestApp::with_config(config).await;
    let key = app.admin_key().await;
    let weights = tiny_safetensors(4);
    let archive = tar_of(&[
        ("config.json", br#"{"model_type":"bert"}"#),
        ("model.safetensors", &weights),
    ]);
    let chunks: Vec<Vec<u8>> = archive.chunks(512).map(<[u8]>::to_vec).collect();
    assert!(chunks.len() >= 5, "{} chunks", chunks.len());
    let send = |name: &str, body: Body| {
        let request = Request::builder()
            .method("POST")
            .uri(format!("/v1/registry/models/{name}/versions"))
            .header("authorization", format!("Bearer {key}"))
            .header("content-type", "application/x-tar")
            .body(body)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), app.send(request))
    };

    // 0.4 s between chunks, more than the 1 s deadline in all: accepted.
    let slow = futures::stream::iter(chunks.clone()).then(|chunk| async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let reply = send("slow", Body::from_stream(slow)).await.unwrap();
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);

    // Half the archive, then nothing: abandoned after the pause.
    let half = chunks[..chunks.len() / 2].to_vec();
    let stalled = futures::stream::iter(half.clone())
        .map(Ok::<_, std::io::Error>)
        .chain(futures::stream::pending());
    let reply = send("stalled", Body::from_stream(stalled)).await.unwrap();
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text
    );
    assert_eq!(error_code(&reply), "request_timeout");
    assert_eq!(reply.headers["retry-after"], "1");

    // Half the archive, then the client's stream fails.
    let broken = futures::stream::iter(half)
        .map(Ok::<_, std::io::Error>)
        .chain(futures::stream::once(async {
            Err(std::io::Error::other("connection reset"))
        }));
    let reply = send("broken", Body::from_stream(broken)).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(error_code(&reply), "upload_interrupted");

    let models = app.get("/v1/registry/models", &key).await;
    let names: Vec<_> = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].clone())
        .collect();
    assert_eq!(names, ["slow"], "{}", models.text);
    for dir in ["uploads", "tmp"] {
        let left: Vec<_> = std::fs::read_dir(app.dir.path().join(dir))
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {dir}: {left:?}");
    }
}
