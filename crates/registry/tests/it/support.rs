//! A registry on temp storage, and model folders written by the tests.

use std::path::{Path, PathBuf};

use blobstore::BlobConfig;
use crypto::envelope::{MasterKey, MasterKeyring};
use registry::{Caller, ImportRequest, Registry};
use store::Store;
use tempfile::TempDir;
use types::{ModelName, TenantName};

/// A registry on a SQLite file and a blob dir, with tenants `acme` and `beta`.
pub struct TestRegistry {
    pub registry: Registry,
    pub dir: TempDir,
    #[allow(dead_code)]
    pg: Option<testkit::postgres::TempPostgres>,
}

impl TestRegistry {
    pub async fn sqlite() -> TestRegistry {
        let dir = testkit::tempdir::tempdir("registry").unwrap();
        let store = Store::connect(dir.path().join("charter.db").to_str().unwrap())
            .await
            .unwrap();
        Self::finish(dir, store, None).await
    }

    pub async fn postgres() -> TestRegistry {
        let dir = testkit::tempdir::tempdir("registry").unwrap();
        let pg = tokio::task::spawn_blocking(testkit::postgres::TempPostgres::start)
            .await
            .unwrap()
            .unwrap();
        let store = Store::connect(&pg.url()).await.unwrap();
        Self::finish(dir, store, Some(pg)).await
    }

    async fn finish(
        dir: TempDir,
        store: Store,
        pg: Option<testkit::postgres::TempPostgres>,
    ) -> TestRegistry {
        for name in ["acme", "beta"] {
            store.create_tenant(&tenant(name), false).await.unwrap();
        }
        let blobs = blobstore::open(
            &BlobConfig::Filesystem {
                root: dir.path().join("blobs"),
            },
            keyring(),
        )
        .unwrap();
        let registry = Registry::new(store, blobs)
            .with_scratch_dir(dir.path().join("scratch").join("uploads"));
        TestRegistry { registry, dir, pg }
    }

    pub fn blob_root(&self) -> PathBuf {
        self.dir.path().join("blobs")
    }

    /// Where `tenant`'s blob with this SHA-256 (hex) is stored.
    pub fn blob_path(&self, tenant: &str, sha256: &str) -> PathBuf {
        self.blob_root()
            .join("tenants")
            .join(tenant)
            .join("sha256")
            .join(&sha256[..2])
            .join(sha256)
    }

    /// A fresh folder under the test dir.
    pub fn folder(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("folders").join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }
}

/// A keyring with one fresh master key, version 1.
pub fn keyring() -> MasterKeyring {
    MasterKeyring::new(MasterKey::generate(1))
}

pub fn tenant(name: &str) -> TenantName {
    TenantName::try_from(name).unwrap()
}

pub fn caller(name: &str) -> Caller {
    Caller::tenant(tenant(name))
}

pub fn request(tenant_name: &str, model: &str) -> ImportRequest {
    let mut request = ImportRequest::new(ModelName::try_from(model).unwrap(), tenant(tenant_name));
    request.card.license = Some("apache-2.0".into());
    request.card.owner = Some("tests".into());
    request
}

/// A valid safetensors file of F32 tensors named and shaped as given.
pub fn safetensors(tensors: &[(&str, &[u64])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for (name, shape) in tensors {
        let bytes = shape.iter().product::<u64>() * 4;
        header.insert(
            (*name).into(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    raw_safetensors(
        &serde_json::Value::Object(header).to_string(),
        offset as usize,
    )
}

/// A safetensors file with this exact header text and `data_len` data bytes.
pub fn raw_safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend((0..data_len).map(|i| (i % 253) as u8));
    bytes
}

/// A small sentence-transformers style folder: config, weights, tokenizer, pooling.
pub fn write_tiny_model(dir: &Path, seed: u8) {
    let write = |relative: &str, bytes: &[u8]| {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write(
        "config.json",
        format!(r#"{{"model_type":"bert","hidden_size":4,"seed":{seed}}}"#).as_bytes(),
    );
    write(
        "model.safetensors",
        &safetensors(&[("embeddings.weight", &[3, 4]), ("pooler.bias", &[4])]),
    );
    write(
        "tokenizer.json",
        br#"{"version":"1.0","model":{"type":"WordPiece"}}"#,
    );
    write(
        "modules.json",
        br#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}]"#,
    );
    write(
        "1_Pooling/config.json",
        br#"{"word_embedding_dimension":4,"pooling_mode_mean_tokens":true}"#,
    );
    write("README.md", format!("# tiny {seed}\n").as_bytes());
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
