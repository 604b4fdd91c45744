//! The filesystem backend: addressing, idempotence, limits, verification on read, GC
//! listing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use blobstore::{BlobConfig, BlobError, BlobStore, Digest};

fn open(root: &Path) -> Arc<dyn BlobStore> {
    blobstore::open(&BlobConfig::Filesystem {
        root: root.to_owned(),
    })
    .unwrap()
}

/// The documented layout: `sha256/<hex[0..2]>/<hex>`.
fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("sha256")
        .join(&digest.as_str()[..2])
        .join(digest.as_str())
}

#[test]
fn put_get_round_trip_and_dedup() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path());
    let info = blobs.put_bytes(b"hello").unwrap();
    assert_eq!(info.digest, Digest::of_bytes(b"hello"));
    assert_eq!(
        info.digest.as_str(),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(info.size, 5);
    assert!(blob_path(dir.path(), &info.digest).is_file());
    assert_eq!(blobs.get(&info.digest, None).unwrap(), b"hello");
    assert!(blobs.exists(&info.digest).unwrap());

    // Same content, same address, one file.
    let again = blobs.put_reader(&mut &b"hello"[..], Some(5)).unwrap();
    assert_eq!(again, info);
    let listed = blobs.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, info.digest);
    assert_eq!(listed[0].size, 5);

    // put_file and copy_to.
    let source = dir.path().join("source.bin");
    let content: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &content).unwrap();
    let big = blobs.put_file(&source, None).unwrap();
    let mut copied = Vec::new();
    assert_eq!(blobs.copy_to(&big.digest, &mut copied).unwrap(), 700_000);
    assert_eq!(copied, content);

    assert!(blobs.delete(&info.digest).unwrap());
    assert!(!blobs.delete(&info.digest).unwrap());
    assert!(!blobs.exists(&info.digest).unwrap());
    assert!(matches!(
        blobs.get(&info.digest, None),
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
    let blobs = open(dir.path());
    let result = blobs.put_reader(&mut &[7u8; 1000][..], Some(999));
    assert!(matches!(result, Err(BlobError::TooLarge { limit: 999 })));
    assert!(blobs.list().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(blobs.put_reader(&mut &[7u8; 1000][..], Some(1000)).is_ok());
    // Reading back with a smaller cap is refused too.
    let digest = Digest::of_bytes(&[7u8; 1000]);
    assert!(matches!(
        blobs.get(&digest, Some(10)),
        Err(BlobError::TooLarge { limit: 10 })
    ));
}

#[test]
fn a_flipped_byte_is_an_integrity_error() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path());
    let content = vec![42u8; 300_000];
    let info = blobs.put_bytes(&content).unwrap();
    let path = blob_path(dir.path(), &info.digest);
    let mut on_disk = std::fs::read(&path).unwrap();
    on_disk[123_456] ^= 0x01;
    std::fs::write(&path, &on_disk).unwrap();

    match blobs.get(&info.digest, None) {
        Err(BlobError::Integrity { expected, actual }) => {
            assert_eq!(expected, info.digest);
            assert_eq!(actual, Digest::of_bytes(&on_disk));
        }
        other => panic!("expected an integrity error, got {other:?}"),
    }
    let mut sink = Vec::new();
    assert!(matches!(
        blobs.copy_to(&info.digest, &mut sink),
        Err(BlobError::Integrity { .. })
    ));
    // The raw reader fails at its end, and keeps failing.
    let mut reader = blobs.open(&info.digest).unwrap();
    let mut bytes = Vec::new();
    let error = std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap_err();
    assert!(matches!(
        BlobError::from_read_error(error),
        BlobError::Integrity { .. }
    ));
    assert!(std::io::Read::read(&mut reader, &mut [0u8; 8]).is_err());
}

#[test]
fn stray_files_are_not_listed_and_urls_parse() {
    let dir = testkit::tempdir::tempdir("blobs").unwrap();
    let blobs = open(dir.path());
    std::fs::create_dir_all(dir.path().join("sha256/zz")).unwrap();
    std::fs::write(dir.path().join("sha256/zz/not-a-digest"), b"x").unwrap();
    assert!(blobs.list().unwrap().is_empty());

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
