//! Import mechanics: concurrent version numbers, verification on read, garbage
//! collection, PostgreSQL.

use std::collections::BTreeSet;
use std::time::Duration;

use blobstore::{BlobError, Digest};
use registry::{Caller, RegistryError, Removed};

use crate::support::{request, tenant, write_tiny_model, TestRegistry};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_imports_get_distinct_versions() {
    let t = TestRegistry::sqlite().await;
    let mut tasks = Vec::new();
    for i in 0..6u8 {
        let folder = t.folder(&format!("m{i}"));
        write_tiny_model(&folder, i);
        let registry = t.registry.clone();
        tasks.push(tokio::spawn(async move {
            registry
                .import_dir(&folder, request("acme", "racy"))
                .await
                .unwrap()
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap().version);
    }
    numbers.sort();
    assert_eq!(numbers, [1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn auxiliary_json_is_opaque_data() {
    // Python's json writes NaN and Infinity into training logs; they are not read by the
    // engine, so they do not block an import.
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("with-log");
    write_tiny_model(&folder, 1);
    std::fs::write(
        folder.join("trainer_state.json"),
        r#"{"best_metric": NaN, "x": Infinity}"#,
    )
    .unwrap();
    let version = t
        .registry
        .import_dir(&folder, request("acme", "logged"))
        .await
        .unwrap();
    assert!(version.manifest.file("trainer_state.json").is_some());
}

#[tokio::test]
async fn tampered_blob_is_caught_on_checkout_and_read() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let version = t
        .registry
        .import_dir(&folder, request("acme", "tiny"))
        .await
        .unwrap();
    let weights = version.manifest.file("model.safetensors").unwrap();
    let blob = t.blob_path("acme", &weights.sha256);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let dest = t.dir.path().join("checkout");
    let result = t.registry.checkout(&version, &dest).await;
    assert!(
        matches!(
            result,
            Err(RegistryError::Blob(BlobError::Integrity { .. }))
        ),
        "{result:?}"
    );
    assert!(
        !dest.join("model.safetensors").exists(),
        "an unverified file never appears"
    );
    assert!(matches!(
        t.registry.file_bytes(&version, "model.safetensors").await,
        Err(RegistryError::Blob(BlobError::Integrity { .. }))
    ));
    // Untouched files still read fine.
    assert!(t.registry.file_bytes(&version, "config.json").await.is_ok());
}

#[tokio::test]
async fn gc_removes_only_unreferenced_old_blobs() {
    let t = TestRegistry::sqlite().await;
    let first = t.folder("first");
    write_tiny_model(&first, 1);
    let v1 = t
        .registry
        .import_dir(&first, request("acme", "m"))
        .await
        .unwrap();
    let second = t.folder("second");
    write_tiny_model(&second, 2); // differs in config.json and README.md only
    let v2 = t
        .registry
        .import_dir(&second, request("acme", "m"))
        .await
        .unwrap();
    let acme_key = t.registry.tenant_key(&tenant("acme")).await.unwrap();
    let orphan = t
        .registry
        .blobs()
        .put_bytes(&acme_key, b"left by a crashed import")
        .unwrap();

    let digests = |v: &registry::VersionRecord| -> BTreeSet<String> {
        v.manifest.files.iter().map(|f| f.sha256.clone()).collect()
    };
    let only_v1: BTreeSet<String> = digests(&v1).difference(&digests(&v2)).cloned().collect();
    assert_eq!(only_v1.len(), 2);

    // Young blobs are spared.
    let report = t.registry.gc(Duration::from_secs(3600)).await.unwrap();
    assert!(report.deleted.is_empty());
    assert_eq!(report.spared_young, 1);

    let admin = Caller::admin();
    let removed = t
        .registry
        .remove(&"m:1".parse().unwrap(), &admin)
        .await
        .unwrap();
    assert!(matches!(removed, Removed::Version(v) if v.version == 1));
    let report = t.registry.gc(Duration::ZERO).await.unwrap();
    let deleted: BTreeSet<String> = report
        .deleted
        .iter()
        .map(|(_, digest)| Digest::to_string(digest))
        .collect();
    let mut expect = only_v1.clone();
    expect.insert(orphan.digest.to_string());
    assert_eq!(deleted, expect);
    assert!(report.freed_bytes > 0);

    // v2 is intact.
    let dest = t.dir.path().join("v2");
    t.registry.checkout(&v2, &dest).await.unwrap();
    assert_eq!(
        std::fs::read(dest.join("README.md")).unwrap(),
        std::fs::read(second.join("README.md")).unwrap()
    );
    // Removing the model frees the rest.
    t.registry
        .remove(&"m".parse().unwrap(), &admin)
        .await
        .unwrap();
    t.registry.gc(Duration::ZERO).await.unwrap();
    assert!(t.registry.blobs().list_all().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_checkout_on_postgres() {
    let t = TestRegistry::postgres().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 3);
    let v1 = t
        .registry
        .import_dir(&folder, request("beta", "tiny"))
        .await
        .unwrap();
    let v2 = t
        .registry
        .import_dir(&folder, request("beta", "tiny"))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    let (_, latest) = t
        .registry
        .show(&"tiny".parse().unwrap(), &crate::support::caller("beta"))
        .await
        .unwrap();
    assert_eq!(latest, v2);
    let dest = t.dir.path().join("out");
    t.registry.checkout(&latest, &dest).await.unwrap();
    assert_eq!(
        std::fs::read(dest.join("1_Pooling/config.json")).unwrap(),
        std::fs::read(folder.join("1_Pooling/config.json")).unwrap()
    );
}
