//! Encryption at rest through the registry: no plaintext of an imported model anywhere
//! under the data dir, blobs swapped between tenants fail, master key rotation rewraps
//! without rewriting blobs, and deleting a tenant shreds its blobs, backups included.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use blobstore::{BlobConfig, BlobError, BlobStore};
use crypto::envelope::{MasterKey, MasterKeyring};
use registry::{Caller, Registry, RegistryError};
use store::Store;

use crate::support::{request, safetensors, tenant, write_tiny_model, TestRegistry};

const CANARY: &[u8] = b"CANARY-9d41e7b2-registry-at-rest";

/// Every regular file under `root`, recursively.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Files under `root` (skipping `skip`) whose bytes contain `needle`.
fn files_containing(root: &Path, skip: &Path, needle: &[u8]) -> Vec<PathBuf> {
    walk(root)
        .into_iter()
        .filter(|path| !path.starts_with(skip))
        .filter(|path| contains(&std::fs::read(path).unwrap(), needle))
        .collect()
}

/// A model folder whose weights, config and tokenizer all carry the canary.
fn write_canary_model(dir: &Path) {
    write_tiny_model(dir, 7);
    let mut weights = safetensors(&[("embeddings.weight", &[64, 4])]);
    let len = weights.len();
    weights[len - CANARY.len()..].copy_from_slice(CANARY);
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    let canary = String::from_utf8(CANARY.to_vec()).unwrap();
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"model_type":"bert","hidden_size":4,"note":"{canary}"}}"#),
    )
    .unwrap();
    std::fs::write(
        dir.join("tokenizer.json"),
        format!(r#"{{"version":"1.0","model":{{"type":"WordPiece","vocab":{{"{canary}":0}}}}}}"#),
    )
    .unwrap();
}

#[tokio::test]
async fn no_plaintext_of_an_imported_model_under_the_data_dir() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("canary");
    write_canary_model(&folder);
    let version = t
        .registry
        .import_dir(&folder, request("acme", "canary"))
        .await
        .unwrap();
    // The same content uploaded as a tar goes through the scratch dir.
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_dir_all(".", &folder).unwrap();
    let archive = builder.into_inner().unwrap();
    t.registry
        .import_tar(
            std::io::Cursor::new(archive),
            request("beta", "canary"),
            10 << 20,
        )
        .await
        .unwrap();

    // The import really holds the canary: reading it back through the registry finds it.
    let config = t
        .registry
        .file_bytes(&version, "config.json")
        .await
        .unwrap();
    assert!(contains(&config, CANARY));
    let dest = t.dir.path().join("checkout");
    t.registry.checkout(&version, &dest).await.unwrap();
    let weights = std::fs::read(dest.join("model.safetensors")).unwrap();
    assert!(contains(&weights, CANARY));
    std::fs::remove_dir_all(&dest).unwrap();

    // The data dir (database, WAL, blobs, scratch) holds it nowhere; the test's source
    // folders are the only place it is in plaintext.
    let sources = t.dir.path().join("folders");
    let scanned: Vec<PathBuf> = walk(t.dir.path())
        .into_iter()
        .filter(|path| !path.starts_with(&sources))
        .collect();
    assert!(scanned.iter().any(|p| p.ends_with("charter.db")));
    assert!(scanned.iter().any(|p| p.starts_with(t.blob_root())));
    let found = files_containing(t.dir.path(), &sources, CANARY);
    assert!(found.is_empty(), "plaintext canary found in {found:?}");
    assert!(!files_containing(&sources, Path::new("/nonexistent"), CANARY).is_empty());
}

#[tokio::test]
async fn a_blob_copied_from_another_tenant_fails_on_checkout() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 3);
    let acme = t
        .registry
        .import_dir(&folder, request("acme", "tiny"))
        .await
        .unwrap();
    let beta = t
        .registry
        .import_dir(&folder, request("beta", "tiny"))
        .await
        .unwrap();
    assert_eq!(acme.manifest, beta.manifest, "same content, same digests");
    let digest = &acme.manifest.file("model.safetensors").unwrap().sha256;
    let (acme_blob, beta_blob) = (t.blob_path("acme", digest), t.blob_path("beta", digest));
    assert_ne!(
        std::fs::read(&acme_blob).unwrap(),
        std::fs::read(&beta_blob).unwrap(),
        "each tenant seals its own copy"
    );
    std::fs::copy(&acme_blob, &beta_blob).unwrap();
    assert!(matches!(
        t.registry.file_bytes(&beta, "model.safetensors").await,
        Err(RegistryError::Blob(BlobError::Integrity { .. }))
    ));
    let dest = t.dir.path().join("beta-checkout");
    assert!(matches!(
        t.registry.checkout(&beta, &dest).await,
        Err(RegistryError::Blob(BlobError::Integrity { .. }))
    ));
    // Acme's own copy is fine.
    t.registry
        .checkout(&acme, &t.dir.path().join("acme-checkout"))
        .await
        .unwrap();
}

fn registry_with(store: &Store, root: &Path, keys: &[&MasterKey]) -> (Registry, Arc<BlobStore>) {
    let mut keyring = MasterKeyring::new(keys[0].clone());
    for key in &keys[1..] {
        keyring.add((*key).clone()).unwrap();
    }
    let blobs = blobstore::open(
        &BlobConfig::Filesystem {
            root: root.to_owned(),
        },
        keyring,
    )
    .unwrap();
    (Registry::new(store.clone(), blobs.clone()), blobs)
}

#[tokio::test]
async fn master_rotation_rewraps_keys_and_keeps_blobs_readable() {
    let t = TestRegistry::sqlite().await;
    let store = t.registry.store().clone();
    let root = t.dir.path().join("rotated-blobs");
    let v1 = MasterKey::generate(1);
    let v2 = MasterKey::generate(2);
    let (registry, _) = registry_with(&store, &root, &[&v1]);
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 4);
    let mut versions = Vec::new();
    for name in ["acme", "beta"] {
        versions.push(
            registry
                .import_dir(&folder, request(name, "tiny"))
                .await
                .unwrap(),
        );
    }
    let blob_files = |root: &Path| -> Vec<(PathBuf, Vec<u8>)> {
        let mut files: Vec<_> = walk(&root.join("tenants"))
            .into_iter()
            .map(|p| {
                let bytes = std::fs::read(&p).unwrap();
                (p, bytes)
            })
            .collect();
        files.sort();
        files
    };
    let before = blob_files(&root);

    // v2 active, v1 still present to unwrap: rotation rewraps both tenants' keys.
    let (rotating, _) = registry_with(&store, &root, &[&v2, &v1]);
    let report = rotating.rewrap_data_keys().await.unwrap();
    assert_eq!((report.rewrapped, report.already_current), (2, 0));
    let again = rotating.rewrap_data_keys().await.unwrap();
    assert_eq!((again.rewrapped, again.already_current), (0, 2));
    for record in store.live_data_keys().await.unwrap() {
        assert_eq!(record.master_version, 2);
    }
    assert_eq!(blob_files(&root), before, "no blob was rewritten");

    // With only v2, old blobs read fine.
    let (after, _) = registry_with(&store, &root, &[&v2]);
    for version in &versions {
        let config = after.file_bytes(version, "config.json").await.unwrap();
        assert_eq!(config, std::fs::read(folder.join("config.json")).unwrap());
    }
    // The retired v1 can no longer unwrap any data key.
    let (retired, _) = registry_with(&store, &root, &[&v1]);
    for version in &versions {
        let result = retired.file_bytes(version, "config.json").await;
        assert!(
            matches!(
                result,
                Err(RegistryError::Blob(BlobError::DataKey {
                    source: crypto::CryptoError::UnknownMasterKey(2),
                    ..
                }))
            ),
            "{result:?}"
        );
    }
    // Nor does another key that claims to be version 2.
    let (impostor, _) = registry_with(&store, &root, &[&MasterKey::generate(2)]);
    assert!(matches!(
        impostor.file_bytes(&versions[0], "config.json").await,
        Err(RegistryError::Blob(BlobError::DataKey { .. }))
    ));
}

#[tokio::test]
async fn deleting_a_tenant_shreds_its_blobs_even_from_a_backup() {
    let t = TestRegistry::sqlite().await;
    let store = t.registry.store().clone();
    let gone = tenant("gone");
    store.create_tenant(&gone, false).await.unwrap();
    let folder = t.folder("tiny");
    write_canary_model(&folder);
    let version = t
        .registry
        .import_dir(&folder, request("gone", "secret"))
        .await
        .unwrap();
    // acme holds the same content under its own key.
    t.registry
        .import_dir(&folder, request("acme", "secret"))
        .await
        .unwrap();
    let wrapped = store.live_data_key(&gone).await.unwrap().unwrap().wrapped;
    let digest = version
        .manifest
        .file("model.safetensors")
        .unwrap()
        .sha256
        .clone();

    // The operator's backup of the blob directory, taken before the deletion.
    let backup = t.dir.path().join("backup");
    let gone_dir = t.blob_root().join("tenants/gone");
    for file in walk(&gone_dir) {
        let target = backup.join(file.strip_prefix(&gone_dir).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
    let backed_up = walk(&backup);
    assert_eq!(backed_up.len(), version.manifest.files.len());

    t.registry
        .remove(&"secret".parse().unwrap(), &Caller::tenant(gone.clone()))
        .await
        .unwrap();
    store.delete_tenant(&gone).await.unwrap();

    // The key is gone from the database, WAL included, and from the registry.
    assert!(store.live_data_key(&gone).await.unwrap().is_none());
    for file in walk(t.dir.path()) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("charter.db") {
            assert!(
                !contains(&std::fs::read(&file).unwrap(), &wrapped),
                "wrapped key still in {name}"
            );
        }
    }
    assert!(matches!(
        t.registry.file_bytes(&version, "config.json").await,
        Err(RegistryError::NotFound(_))
    ));

    // Every remaining key fails on the backed-up blobs: the other tenant's key (the
    // blob copied into its directory), and a tenant re-created under the same name.
    store.create_tenant(&gone, false).await.unwrap();
    let new_key = t.registry.tenant_key(&gone).await.unwrap();
    let acme_key = t.registry.tenant_key(&tenant("acme")).await.unwrap();
    let backup_blob = backed_up
        .iter()
        .find(|p| p.ends_with(&digest))
        .unwrap()
        .clone();
    for (name, key) in [("gone", &new_key), ("acme", &acme_key)] {
        let path = t.blob_path(name, &digest);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(&backup_blob, &path).unwrap();
        let result = t.registry.blobs().get(key, &digest.parse().unwrap(), None);
        assert!(
            matches!(result, Err(BlobError::Integrity { .. })),
            "{name}: {:?}",
            result.map(|b| b.len())
        );
    }
    // And nothing in the backup is plaintext.
    for file in &backed_up {
        assert!(!contains(&std::fs::read(file).unwrap(), CANARY));
    }
}

#[tokio::test]
async fn gc_reclaims_the_blobs_of_a_deleted_tenant() {
    let t = TestRegistry::sqlite().await;
    let store = t.registry.store().clone();
    let gone = tenant("gone");
    store.create_tenant(&gone, false).await.unwrap();
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 5);
    t.registry
        .import_dir(&folder, request("gone", "m"))
        .await
        .unwrap();
    let kept = t
        .registry
        .import_dir(&folder, request("acme", "m"))
        .await
        .unwrap();
    t.registry
        .remove(&"m".parse().unwrap(), &Caller::tenant(gone.clone()))
        .await
        .unwrap();
    store.delete_tenant(&gone).await.unwrap();
    let report = t.registry.gc(std::time::Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted.len(), kept.manifest.files.len());
    assert!(report.deleted.iter().all(|(tenant, _)| tenant == &gone));
    assert!(!t.blob_root().join("tenants/gone").exists());
    assert_eq!(t.registry.blobs().tenants().unwrap(), vec![tenant("acme")]);
    t.registry
        .checkout(&kept, &t.dir.path().join("kept"))
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_are_created_rotated_and_shredded_on_postgres() {
    let t = TestRegistry::postgres().await;
    let store = t.registry.store().clone();
    let gone = tenant("gone");
    store.create_tenant(&gone, false).await.unwrap();
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 6);
    let version = t
        .registry
        .import_dir(&folder, request("gone", "m"))
        .await
        .unwrap();
    let record = store.live_data_key(&gone).await.unwrap().unwrap();
    assert_eq!(record.master_version, 1);
    let report = t.registry.rewrap_data_keys().await.unwrap();
    assert_eq!((report.rewrapped, report.already_current), (0, 1));
    assert!(t.registry.file_bytes(&version, "config.json").await.is_ok());

    t.registry
        .remove(&"m".parse().unwrap(), &Caller::tenant(gone.clone()))
        .await
        .unwrap();
    store.delete_tenant(&gone).await.unwrap();
    assert!(store.live_data_key(&gone).await.unwrap().is_none());
    assert!(store.live_data_keys().await.unwrap().is_empty());
    assert!(matches!(
        t.registry.file_bytes(&version, "config.json").await,
        Err(RegistryError::NotFound(_))
    ));
    // A re-created tenant gets a fresh key, not the destroyed one.
    store.create_tenant(&gone, false).await.unwrap();
    t.registry.tenant_key(&gone).await.unwrap();
    let fresh = store.live_data_key(&gone).await.unwrap().unwrap();
    assert_ne!(fresh.id, record.id);
    assert_ne!(fresh.wrapped, record.wrapped);
}
