//! Signed versions against the checklist's tampering cases: a file changed, added,
//! deleted or renamed after signing, another model's signature attached, a signature by
//! an untrusted key, and an altered signature. Each is refused with the reason; the
//! untouched version passes.

use crypto::signing::SigningKey;
use registry::{RegistryError, SignatureError, VersionRecord};
use store::{sqlx, Manifest, ManifestFile};

use crate::support::{request, tenant, write_tiny_model, TestRegistry};

async fn set_manifest(registry: &registry::Registry, version: &VersionRecord, manifest: &Manifest) {
    sqlx::query("UPDATE model_versions SET manifest = $1 WHERE model_id = $2 AND version = $3")
        .bind(serde_json::to_string(manifest).unwrap())
        .bind(version.model_id)
        .bind(version.version)
        .execute(registry.store().pool())
        .await
        .unwrap();
}

async fn check(
    registry: &registry::Registry,
    version: &VersionRecord,
) -> Result<(), SignatureError> {
    let (_, now) = registry
        .show(&version.model_ref(), &registry::Caller::admin())
        .await
        .unwrap();
    match registry.check_signed(&now, &tenant("acme")).await {
        Ok(()) => Ok(()),
        Err(RegistryError::Signature(error)) => Err(error),
        Err(other) => panic!("{other}"),
    }
}

fn differs(result: Result<(), SignatureError>, expected_path: &str, detail: &str) {
    match result {
        Err(SignatureError::FileDiffers {
            path, detail: d, ..
        }) => {
            assert_eq!(path, expected_path);
            assert!(d.contains(detail), "{d}");
        }
        other => panic!("expected {expected_path} to differ, got {other:?}"),
    }
}

#[tokio::test]
async fn every_tampering_of_a_signed_version_is_refused() {
    let test = TestRegistry::sqlite().await;
    let registry = &test.registry;
    let folder = test.folder("a");
    write_tiny_model(&folder, 1);
    let version = registry
        .import_dir(&folder, request("acme", "a"))
        .await
        .unwrap();
    let publisher = SigningKey::generate();
    registry.sign(&version, &publisher).await.unwrap();
    assert!(matches!(
        check(registry, &version).await,
        Err(SignatureError::Unsigned { .. })
    ));
    registry
        .store()
        .trust_key(
            &tenant("acme"),
            &publisher.key_id(),
            &publisher.public_key_pem(),
        )
        .await
        .unwrap();
    assert_eq!(check(registry, &version).await, Ok(()));

    let signed = version.manifest.clone();
    let first = signed.files[0].path.clone();
    let mut flipped = signed.clone();
    let digest = &mut flipped.files[0].sha256;
    let last = if digest.ends_with('0') { "1" } else { "0" };
    digest.replace_range(63.., last);
    let mut added = signed.clone();
    added.files.push(ManifestFile {
        path: "extra.json".into(),
        size: 2,
        sha256: "e".repeat(64),
    });
    let mut deleted = signed.clone();
    deleted.files.remove(0);
    let mut renamed = signed.clone();
    renamed.files[0].path = format!("renamed-{first}");
    let cases = [
        (flipped, first.clone(), "signed sha256"),
        (added, "extra.json".to_owned(), "added after signing"),
        (deleted, first.clone(), "missing"),
        (renamed, first.clone(), "missing"),
    ];
    for (manifest, path, detail) in cases {
        set_manifest(registry, &version, &manifest).await;
        differs(check(registry, &version).await, &path, detail);
    }
    set_manifest(registry, &version, &signed).await;
    assert_eq!(check(registry, &version).await, Ok(()));

    // Model b with a's signature attached: refused although a's key is trusted.
    let other = test.folder("b");
    write_tiny_model(&other, 2);
    let b = registry
        .import_dir(&other, request("acme", "b"))
        .await
        .unwrap();
    let mut stolen = registry
        .store()
        .signatures(version.model_id, version.version)
        .await
        .unwrap()
        .remove(0);
    stolen.model_id = b.model_id;
    stolen.version = b.version;
    registry.store().put_signature(&stolen).await.unwrap();
    match check(registry, &b).await {
        Err(SignatureError::Invalid { reason, .. }) => {
            assert!(reason.contains("made for model 'a:1'"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // Signed by a key acme does not trust.
    let c = registry
        .import_dir(&other, request("acme", "c"))
        .await
        .unwrap();
    registry.sign(&c, &SigningKey::generate()).await.unwrap();
    assert!(matches!(
        check(registry, &c).await,
        Err(SignatureError::Unsigned { .. })
    ));

    // The trusted signature itself altered: one payload field changed.
    let mut altered = registry
        .store()
        .signatures(version.model_id, version.version)
        .await
        .unwrap()
        .remove(0);
    altered.statement = altered.statement.replace("\"version\":1", "\"version\":2");
    registry.store().put_signature(&altered).await.unwrap();
    assert!(matches!(
        check(registry, &version).await,
        Err(SignatureError::Invalid { .. })
    ));
    // `models verify` (stored keys) sees the same.
    let statuses = registry.signatures(&version, None).await.unwrap();
    assert!(statuses[0].result.is_err());
}
