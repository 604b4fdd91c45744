//! The sealed store: addressing by plaintext digest per tenant, idempotence, limits,
//! no plaintext on disk, and integrity failures for tampered, truncated, extended and
//! swapped blobs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use blobstore::{BlobConfig, BlobError, BlobStore, Digest, TenantKey};
use crypto::envelope::{MasterKey, MasterKeyring};
use types::TenantName;

fn keyring() -> MasterKeyring {
    MasterKeyring::new(MasterKey::generate(1))
}

fn open(root: &Path, keyring: MasterKeyring) -> Arc<BlobStore> {
    blobstore::open(
        &BlobConfig::Filesystem {
            root: root.to_owned(),
        },
        keyring,
    )
    .unwrap()
}

fn tenant(name: &str) -> TenantName {
    TenantName::try_from(name).unwrap()
}

fn key(blobs: &BlobStore, name: &str) -> TenantKey {
    blobs.new_data_key(&tenant(name)).0
}

/// The documented layout: `tenants/<tenant>/sha256/<hex[0..2]>/<hex>`.
fn blob_path(root: &Path, tenant: &str, digest: &Digest) -> PathBuf {
    root.join("tenants")
        .join(tenant)
        .join("sha256")
        .join(&digest.as_str()[..2])
        .join(digest.as_str())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn expect_integrity(result: Result<Vec<u8>, BlobError>, digest: &Digest) {
    match result {
        Err(BlobError::Integrity { digest: got }) => assert_eq!(&got, digest),
        other => panic!(
            "expected an integrity error, got {:?}",
            other.map(|b| b.len())
        ),
    }
}

#[test]
fn put_get_round_trip_dedup_and_no_plaintext_on_disk() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    let acme = key(&blobs, "acme");
    let canary = b"CANARY-7f3a9c-blobstore-plaintext".repeat(10);
    let info = blobs.put_bytes(&acme, &canary).unwrap();
    assert_eq!(info.digest, Digest::of_bytes(&canary));
    assert_eq!(info.size, canary.len() as u64);
    let path = blob_path(dir.path(), "acme", &info.digest);
    let on_disk = std::fs::read(&path).unwrap();
    assert!(!contains(&on_disk, b"CANARY-7f3a9c"), "plaintext on disk");
    assert_eq!(
        on_disk.len() as u64,
        crypto::envelope::sealed_len(info.size)
    );
    assert_eq!(blobs.get(&acme, &info.digest, None).unwrap(), canary);
    assert!(blobs.exists(&tenant("acme"), &info.digest).unwrap());
    assert!(!blobs.exists(&tenant("beta"), &info.digest).unwrap());

    // Same content, same address, one file (not re-sealed).
    let again = blobs
        .put_reader(
            &acme,
            &mut std::io::Cursor::new(&canary),
            Some(canary.len() as u64),
        )
        .unwrap();
    assert_eq!(again, info);
    assert_eq!(std::fs::read(&path).unwrap(), on_disk);
    let listed = blobs.list(&tenant("acme")).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, info.digest);
    assert_eq!(blobs.tenants().unwrap(), vec![tenant("acme")]);

    // A large file streams through several segments; copy_to and put_file agree.
    let source = dir.path().join("source.bin");
    let content: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let big = blobs.put_file(&acme, &source, None).unwrap();
    let mut copied = Vec::new();
    assert_eq!(
        blobs.copy_to(&acme, &big.digest, &mut copied).unwrap(),
        700_000
    );
    assert_eq!(copied, content);

    assert!(blobs.delete(&tenant("acme"), &info.digest).unwrap());
    assert!(!blobs.delete(&tenant("acme"), &info.digest).unwrap());
    assert!(matches!(
        blobs.get(&acme, &info.digest, None),
        Err(BlobError::NotFound(_))
    ));
    // No temp files are left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}

#[test]
fn size_cap_stores_nothing() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    let acme = key(&blobs, "acme");
    let result = blobs.put_reader(&acme, &mut std::io::Cursor::new([7u8; 1000]), Some(999));
    assert!(matches!(result, Err(BlobError::TooLarge { limit: 999 })));
    assert!(blobs.list_all().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    let info = blobs
        .put_reader(&acme, &mut std::io::Cursor::new([7u8; 1000]), Some(1000))
        .unwrap();
    assert!(matches!(
        blobs.get(&acme, &info.digest, Some(10)),
        Err(BlobError::TooLarge { limit: 10 })
    ));
}

#[test]
fn flipped_truncated_and_extended_blobs_are_integrity_errors() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    let acme = key(&blobs, "acme");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 241) as u8).collect();
    let info = blobs.put_bytes(&acme, &content).unwrap();
    let path = blob_path(dir.path(), "acme", &info.digest);
    let original = std::fs::read(&path).unwrap();

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for offset in [0, 5, 40, 123_456, original.len() - 1] {
        let mut flipped = original.clone();
        flipped[offset] ^= 0x01;
        cases.push(("flipped bit", flipped));
    }
    cases.push((
        "truncated at a segment end",
        original[..33 + 65_536 + 16].to_vec(),
    ));
    cases.push((
        "truncated by one byte",
        original[..original.len() - 1].to_vec(),
    ));
    cases.push(("header only", original[..33].to_vec()));
    cases.push(("empty", Vec::new()));
    let mut extended = original.clone();
    extended.extend_from_slice(&[0u8; 17]);
    cases.push(("extended", extended));

    for (what, bytes) in cases {
        std::fs::write(&path, &bytes).unwrap();
        let result = blobs.get(&acme, &info.digest, None);
        assert!(
            matches!(&result, Err(BlobError::Integrity { digest }) if digest == &info.digest),
            "{what}: {:?}",
            result.map(|b| b.len())
        );
        let mut sink = Vec::new();
        assert!(
            matches!(
                blobs.copy_to(&acme, &info.digest, &mut sink),
                Err(BlobError::Integrity { .. })
            ),
            "{what}"
        );
    }
    std::fs::write(&path, &original).unwrap();
    assert_eq!(blobs.get(&acme, &info.digest, None).unwrap(), content);
}

#[test]
fn a_blob_copied_into_another_tenant_or_under_another_key_fails() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    let acme = key(&blobs, "acme");
    let beta = key(&blobs, "beta");
    let content = b"tenant A's secret weights".to_vec();
    let info = blobs.put_bytes(&acme, &content).unwrap();

    // Swap: the same digest exists for beta, but the file is acme's.
    let beta_path = blob_path(dir.path(), "beta", &info.digest);
    std::fs::create_dir_all(beta_path.parent().unwrap()).unwrap();
    std::fs::copy(blob_path(dir.path(), "acme", &info.digest), &beta_path).unwrap();
    assert!(blobs.exists(&tenant("beta"), &info.digest).unwrap());
    expect_integrity(blobs.get(&beta, &info.digest, None), &info.digest);

    // Beta's key holds nothing for beta's blob sealed under acme's tenant either: a key
    // made for the right tenant name but a different key (a shredded and re-created
    // tenant) fails as well.
    let acme_again = key(&blobs, "acme");
    expect_integrity(blobs.get(&acme_again, &info.digest, None), &info.digest);

    // A blob renamed to another digest within the tenant fails.
    let other = blobs.put_bytes(&acme, b"other content").unwrap();
    std::fs::copy(
        blob_path(dir.path(), "acme", &info.digest),
        blob_path(dir.path(), "acme", &other.digest),
    )
    .unwrap();
    expect_integrity(blobs.get(&acme, &other.digest, None), &other.digest);

    assert_eq!(blobs.get(&acme, &info.digest, None).unwrap(), content);
}

#[test]
fn wrapped_keys_unwrap_only_with_their_tenant_and_master_key() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    let (acme, wrapped) = blobs.new_data_key(&tenant("acme"));
    let info = blobs.put_bytes(&acme, b"data").unwrap();

    let unwrapped = blobs.unwrap_data_key(&tenant("acme"), &wrapped).unwrap();
    assert_eq!(blobs.get(&unwrapped, &info.digest, None).unwrap(), b"data");
    assert!(format!("{unwrapped:?}").contains("[redacted]"));
    assert!(matches!(
        blobs.unwrap_data_key(&tenant("beta"), &wrapped),
        Err(BlobError::DataKey { .. })
    ));

    // Another master key (same version number) cannot unwrap it.
    let stranger = open(dir.path(), keyring());
    assert!(matches!(
        stranger.unwrap_data_key(&tenant("acme"), &wrapped),
        Err(BlobError::DataKey { .. })
    ));
}

#[test]
fn stray_files_are_not_listed_and_urls_parse() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    std::fs::create_dir_all(dir.path().join("tenants/acme/sha256/zz")).unwrap();
    std::fs::write(dir.path().join("tenants/acme/sha256/zz/not-a-digest"), b"x").unwrap();
    std::fs::create_dir_all(dir.path().join("tenants/.hidden")).unwrap();
    assert!(blobs.list_all().unwrap().is_empty());
    assert_eq!(blobs.tenants().unwrap(), vec![tenant("acme")]);

    assert_eq!(
        BlobConfig::from_url("file:///data/blobs").unwrap(),
        BlobConfig::Filesystem {
            root: "/data/blobs".into()
        }
    );
    assert!(matches!(
        BlobConfig::from_url("s3://bucket/x"),
        Err(BlobError::Unsupported(_))
    ));
}

/// A reader that cannot seek, yielding odd-sized reads, and that can look into the
/// store's temp dir while the spool is being written.
struct Upload {
    data: Vec<u8>,
    position: usize,
    temp_dir: PathBuf,
    spool_seen_without_canary: bool,
}

impl std::io::Read for Upload {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.position > 1_500_000 && !self.spool_seen_without_canary {
            // Mid-stream, the spool holds more than one chunk: none of it is plaintext.
            for entry in std::fs::read_dir(&self.temp_dir).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(!contains(&bytes, b"CANARY-5e2b"), "plaintext in the spool");
                self.spool_seen_without_canary |= bytes.len() > 1_000_000;
            }
        }
        let n = out.len().min(7_919).min(self.data.len() - self.position);
        out[..n].copy_from_slice(&self.data[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

#[test]
fn streams_that_cannot_seek_are_spooled_encrypted() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path(), keyring());
    let acme = key(&blobs, "acme");
    let data: Vec<u8> = b"CANARY-5e2b upload body "
        .iter()
        .copied()
        .cycle()
        .take(2_600_000)
        .collect();
    let mut upload = Upload {
        data: data.clone(),
        position: 0,
        temp_dir: dir.path().join("tmp"),
        spool_seen_without_canary: false,
    };
    let info = blobs.put_stream(&acme, &mut upload, None).unwrap();
    assert!(
        upload.spool_seen_without_canary,
        "the spool was never inspected"
    );
    assert_eq!(info.digest, Digest::of_bytes(&data));
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(blobs.get(&acme, &info.digest, None).unwrap(), data);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );

    let mut small = &b"0123456789"[..];
    assert!(matches!(
        blobs.put_stream(&acme, &mut small, Some(9)),
        Err(BlobError::TooLarge { limit: 9 })
    ));
    let mut empty = &b""[..];
    let info = blobs.put_stream(&acme, &mut empty, None).unwrap();
    assert_eq!(blobs.get(&acme, &info.digest, None).unwrap(), b"");
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}
