//! The in-process app and helpers shared by the API tests.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use store::{Caller, KeyLimits, Store};
use tower::ServiceExt;
use types::{Scopes, TenantName};

pub struct TestApp {
    pub router: Router,
    pub state: api::AppState,
    pub store: Store,
    pub registry: registry::Registry,
    pub dir: tempfile::TempDir,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub headers: axum::http::HeaderMap,
}

impl TestApp {
    pub async fn new() -> TestApp {
        Self::with_config(api::ApiConfig::default()).await
    }

    pub async fn with_config(mut config: api::ApiConfig) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("charter.db").display()
        ))
        .await
        .unwrap();
        let keyring =
            crypto::envelope::MasterKeyring::new(crypto::envelope::MasterKey::generate(1));
        let blobs = blobstore::open(
            &blobstore::BlobConfig::Filesystem {
                root: dir.path().join("blobs"),
            },
            keyring,
        )
        .unwrap();
        let registry =
            registry::Registry::new(store.clone(), blobs).with_scratch_dir(dir.path().join("tmp"));
        config.upload_dir = dir.path().join("uploads");
        // Each app checks models out under its own dir, so tests running side by side
        // can tell their checkouts apart.
        config.checkout_dir = dir.path().join("checkouts");
        let state = api::AppState::new(store.clone(), registry.clone(), config, None);
        state.set_ready(true);
        TestApp {
            router: api::router(state.clone()),
            state,
            store,
            registry,
            dir,
        }
    }

    pub async fn tenant(&self, name: &str) -> TenantName {
        let name = TenantName::try_from(name).unwrap();
        self.store.create_tenant(&name, false).await.unwrap();
        name
    }

    /// Mints a key for `tenant` with `scopes` (comma list) and returns its text.
    pub async fn key(&self, tenant: &str, scopes: &str) -> String {
        let request = governance::KeyRequest {
            tenant: TenantName::try_from(tenant).unwrap(),
            scopes: Scopes::parse_list(scopes).unwrap(),
            description: String::new(),
            expires_at: None,
            limits: KeyLimits::default(),
        };
        let (_, text) = governance::mint_key(&self.store, request).await.unwrap();
        text.expose().clone()
    }

    pub async fn admin_key(&self) -> String {
        self.key(types::ADMIN_TENANT, "admin").await
    }

    pub async fn revoke(&self, key: &str) {
        let id = key.split('_').nth(1).unwrap();
        self.store.revoke_key(&Caller::admin(), id).await.unwrap();
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            body,
            text,
            headers,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        self.send(builder.body(body).unwrap()).await
    }

    pub async fn get(&self, path: &str, key: &str) -> Reply {
        self.call(Method::GET, path, Some(key), None).await
    }

    /// Imports the tiny fixture model for `tenant`.
    pub async fn import(&self, tenant: &str, name: &str, shared: bool) -> store::VersionRecord {
        let folder = tiny_model_dir(self.dir.path(), name);
        let mut request = registry::ImportRequest::new(
            name.parse().unwrap(),
            TenantName::try_from(tenant).unwrap(),
        );
        request.shared = shared;
        self.registry.import_dir(&folder, request).await.unwrap()
    }
}

/// Asserts the one error shape and returns the error's code.
pub fn error_code(reply: &Reply) -> String {
    let error = &reply.body["error"];
    assert!(
        error["message"].is_string(),
        "not the error shape: {}",
        reply.text
    );
    assert!(
        error["type"].is_string(),
        "not the error shape: {}",
        reply.text
    );
    assert!(
        error.get("param").is_some(),
        "not the error shape: {}",
        reply.text
    );
    error["code"].as_str().expect("error code").to_owned()
}

/// A minimal safetensors file holding one F32 tensor of `n` values.
pub fn tiny_safetensors(n: usize) -> Vec<u8> {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        n * 4
    );
    let mut header = header.into_bytes();
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    for i in 0..n {
        bytes.extend_from_slice(&(i as f32).to_le_bytes());
    }
    bytes
}

/// Writes a tiny Hugging Face layout folder and returns its path.
pub fn tiny_model_dir(parent: &std::path::Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(format!("fixture-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type":"bert","hidden_size":4}"#,
    )
    .unwrap();
    std::fs::write(dir.join("model.safetensors"), tiny_safetensors(4)).unwrap();
    dir
}

/// A tar archive of `(path, bytes)` entries, with paths written as given.
pub fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, bytes) in entries {
        let mut header = [0u8; 512];
        header[..path.len()].copy_from_slice(path.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        let size = format!("{:011o}", bytes.len());
        header[124..135].copy_from_slice(size.as_bytes());
        header[136..147].copy_from_slice(b"00000000000");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| b as u32).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(bytes);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
