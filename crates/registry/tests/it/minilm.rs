//! The real all-MiniLM-L6-v2 folder (fetched by `scripts/fetch-model.sh`): import,
//! manifest, checkout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use registry::Caller;

use crate::support::{request, sha256_hex, TestRegistry};

fn minilm_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "the MiniLM model is missing at {}; run scripts/fetch-model.sh",
        dir.display()
    );
    dir
}

/// Every regular file under `dir` (skipping hidden directories, as imports do) with its
/// SHA-256.
fn files_with_digests(dir: &Path) -> BTreeMap<String, (u64, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u64, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let name = entry.file_name().into_string().unwrap();
            if entry.file_type().unwrap().is_dir() {
                if !name.starts_with('.') {
                    walk(root, &path, out);
                }
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            out.insert(relative, (bytes.len() as u64, sha256_hex(&bytes)));
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_imports_and_checks_out() {
    let source = minilm_dir();
    let expected = files_with_digests(&source);
    assert!(expected.contains_key("1_Pooling/config.json"));
    assert!(expected.contains_key("tokenizer.json"));

    let t = TestRegistry::sqlite().await;
    let version = t
        .registry
        .import_dir(&source, request("acme", "minilm"))
        .await
        .unwrap();
    assert_eq!(version.version, 1);
    let manifest: BTreeMap<String, (u64, String)> = version
        .manifest
        .files
        .iter()
        .map(|f| (f.path.clone(), (f.size, f.sha256.clone())))
        .collect();
    assert_eq!(
        manifest, expected,
        "the manifest lists every file with its digest"
    );
    let total: u64 = expected.values().map(|(size, _)| size).sum();
    assert_eq!(version.total_size as u64, total);

    // What the store returns later is the same manifest.
    let (model, shown) = t
        .registry
        .show(&"minilm".parse().unwrap(), &Caller::admin())
        .await
        .unwrap();
    assert_eq!(shown, version);
    assert_eq!(model.card.license.as_deref(), Some("apache-2.0"));

    let dest = t.dir.path().join("checkout");
    t.registry.checkout(&version, &dest).await.unwrap();
    assert_eq!(
        files_with_digests(&dest),
        expected,
        "checkout round-trips every file"
    );

    let config = t
        .registry
        .file_bytes(&version, "config.json")
        .await
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["model_type"], "bert");
    assert!(matches!(
        t.registry.file_bytes(&version, "nope.json").await,
        Err(registry::RegistryError::NotFound(_))
    ));

    // Importing the same folder again is a new version sharing the same blobs.
    let n_blobs = t.registry.blobs().list_all().unwrap().len();
    let again = t
        .registry
        .import_dir(&source, request("acme", "minilm"))
        .await
        .unwrap();
    assert_eq!(again.version, 2);
    assert_eq!(again.manifest, version.manifest);
    assert_eq!(t.registry.blobs().list_all().unwrap().len(), n_blobs);
}
