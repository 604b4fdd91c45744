//! A process killed (SIGKILL) at arbitrary points of an import leaves the registry and
//! the blob store consistent: every version is complete and verifies, no partial blob is
//! visible under an address, and gc collects what the dead imports left behind.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use blobstore::{BlobConfig, BlobStore};
use crypto::envelope::{MasterKey, MasterKeyring};
use registry::{Caller, Registry};
use store::Store;

use crate::support::write_tiny_model;

const CHILD_ENV: &str = "CHARTER_TEST_CRASH_CHILD_DIR";

/// Parent and child share the master key through a key file in the test dir.
async fn open(dir: &Path) -> (Registry, Arc<BlobStore>) {
    let store = Store::connect(dir.join("charter.db").to_str().unwrap())
        .await
        .unwrap();
    let master = MasterKey::load_or_generate_file(1, &dir.join("master.key")).unwrap();
    let blobs = blobstore::open(
        &BlobConfig::Filesystem {
            root: dir.join("blobs"),
        },
        MasterKeyring::new(master),
    )
    .unwrap();
    (Registry::new(store, blobs.clone()), blobs)
}

/// Not a test of its own: the child process the crash test starts and kills. It imports
/// a model with a few MB of weights over and over until it is killed.
#[tokio::test]
#[ignore = "runs only as the child process of killed_imports_leave_a_consistent_registry"]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (registry, _) = open(&dir).await;
    let mut round = 0u32;
    loop {
        round += 1;
        // Fresh content every round, so every import writes new blobs.
        let folder = dir.join("source").join(round.to_string());
        write_tiny_model(&folder, (round % 250) as u8);
        let weights: Vec<u8> = (0..8_000_000u32)
            .map(|i| (i.wrapping_mul(round) % 251) as u8)
            .collect();
        std::fs::write(
            folder.join("model.safetensors"),
            crate::support::raw_safetensors(
                r#"{"w":{"dtype":"U8","shape":[8000000],"data_offsets":[0,8000000]}}"#,
                0,
            )
            .into_iter()
            .chain(weights)
            .collect::<Vec<u8>>(),
        )
        .unwrap();
        let request = crate::support::request("admin", "crashy");
        registry.import_dir(&folder, request).await.unwrap();
        std::fs::remove_dir_all(&folder).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_imports_leave_a_consistent_registry() {
    let dir = testkit::tempdir::tempdir("crash").unwrap();
    let exe = std::env::current_exe().unwrap();
    for delay_ms in [150u64, 450, 900, 1400, 2100] {
        let mut child = Command::new(&exe)
            .args([
                "crash::crash_child",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child died on its own"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        check_consistent(dir.path()).await;
    }

    // Something was imported, and gc leaves only referenced blobs.
    let (registry, blobs) = open(dir.path()).await;
    let versions = registry
        .versions(&"crashy".parse().unwrap(), &Caller::admin())
        .await
        .unwrap();
    assert!(
        !versions.is_empty(),
        "no import completed; the test proves nothing"
    );
    let report = registry.gc(Duration::ZERO).await.unwrap();
    eprintln!(
        "{} versions committed; gc removed {} blobs left by killed imports",
        versions.len(),
        report.deleted.len()
    );
    let referenced = registry.store().referenced_digests().await.unwrap();
    for entry in blobs.list_all().unwrap() {
        assert!(referenced.contains(entry.digest.as_str()));
    }
}

async fn check_consistent(dir: &Path) {
    let (registry, blobs) = open(dir).await;
    // Every blob under an address hashes to it: no half-written blob is visible.
    for entry in blobs.list_all().unwrap() {
        let key = registry.tenant_key(&entry.tenant).await.unwrap();
        blobs.get(&key, &entry.digest, None).unwrap();
    }
    // Every committed version is complete.
    let admin = Caller::admin();
    let Ok(versions) = registry.versions(&"crashy".parse().unwrap(), &admin).await else {
        return; // killed before the first commit
    };
    for version in versions {
        assert_eq!(version.manifest.files.len(), 6);
        let out = dir.join("checkout");
        registry.checkout(&version, &out).await.unwrap();
        std::fs::remove_dir_all(&out).unwrap();
    }
    registry.store().close().await;
}
