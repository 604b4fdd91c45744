//! Tar uploads: a good archive imports; escaping paths, links and devices are refused
//! with nothing written outside the private temp dir; the size cap holds.

use std::path::Path;

use registry::{ImportError, RegistryError};

use crate::support::{request, write_tiny_model, TestRegistry};

/// A tar of the folder's files, optionally under a top-level directory.
fn tar_of(folder: &Path, top: Option<&str>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(top.unwrap_or("."), folder).unwrap();
    builder.into_inner().unwrap()
}

/// One raw entry with `name` written into the header as is (the tar crate's own setters
/// refuse `..`, which is exactly what an attacker's tool would not do).
fn raw_entry(name: &str, entry_type: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    let bytes = name.as_bytes();
    header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
    if let Some(link) = link {
        let link = link.as_bytes();
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(entry_type);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A good archive with one bad entry appended.
fn with_bad_entry(folder: &Path, bad: Vec<u8>) -> Vec<u8> {
    let mut archive = tar_of(folder, None);
    // Drop the two zero blocks that end the archive, append, end again.
    archive.truncate(archive.len() - 1024);
    while archive.len() >= 512 && archive[archive.len() - 512..].iter().all(|&b| b == 0) {
        archive.truncate(archive.len() - 512);
    }
    archive.extend(bad);
    archive.extend([0u8; 1024]);
    archive
}

/// Imports `archive` as acme's model `name`, with a 10 MiB cap.
async fn import(
    t: &TestRegistry,
    archive: Vec<u8>,
    name: &str,
) -> Result<store::VersionRecord, RegistryError> {
    t.registry
        .import_tar(
            std::io::Cursor::new(archive),
            request("acme", name),
            10 << 20,
        )
        .await
}

#[tokio::test]
async fn good_archives_import() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let flat = tar_of(&folder, None);
    let v1 = t
        .registry
        .import_tar(std::io::Cursor::new(flat), request("acme", "up"), 10 << 20)
        .await
        .unwrap();
    let nested = tar_of(&folder, Some("all-tiny"));
    let v2 = t
        .registry
        .import_tar(
            std::io::Cursor::new(nested),
            request("acme", "up"),
            10 << 20,
        )
        .await
        .unwrap();
    assert_eq!(v1.manifest, v2.manifest);
    assert_eq!(v1.manifest.files.len(), 6);
    assert!(v1.manifest.file("1_Pooling/config.json").is_some());
    // The unpack dir is gone.
    let scratch = t.dir.path().join("scratch").join("uploads");
    assert_eq!(std::fs::read_dir(scratch).unwrap().count(), 0);
}

#[tokio::test]
async fn hostile_archives_are_refused_without_writing_outside() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let scratch = t.dir.path().join("scratch");
    let absolute_target = t.dir.path().join("absolute-escape.txt");
    let absolute_name = absolute_target.to_str().unwrap().to_owned();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            raw_entry("../escape.txt", tar::EntryType::Regular, None, b"owned"),
        ),
        (
            "dotdot deep",
            raw_entry(
                "a/../../../escape.txt",
                tar::EntryType::Regular,
                None,
                b"owned",
            ),
        ),
        (
            "absolute",
            raw_entry(&absolute_name, tar::EntryType::Regular, None, b"owned"),
        ),
        (
            "symlink",
            raw_entry(
                "vocab.txt",
                tar::EntryType::Symlink,
                Some("/etc/passwd"),
                b"",
            ),
        ),
        (
            "symlink dir",
            raw_entry("evil", tar::EntryType::Symlink, Some("../../.."), b""),
        ),
        (
            "hardlink",
            raw_entry("hard.txt", tar::EntryType::Link, Some("/etc/passwd"), b""),
        ),
        (
            "char device",
            raw_entry("null", tar::EntryType::Char, None, b""),
        ),
        ("fifo", raw_entry("pipe", tar::EntryType::Fifo, None, b"")),
    ];
    for (what, bad) in cases {
        let archive = with_bad_entry(&folder, bad);
        let result = import(&t, archive, "evil").await;
        let error = match result {
            Err(RegistryError::Invalid(error)) => error,
            other => panic!("{what}: expected a refusal, got {other:?}"),
        };
        assert!(
            matches!(
                error,
                ImportError::UnsafePath { .. }
                    | ImportError::Symlink { .. }
                    | ImportError::UnsupportedEntry { .. }
            ),
            "{what}: {error}"
        );
        for escaped in [
            scratch.join("escape.txt"),
            scratch.join("uploads").join("escape.txt"),
            t.dir.path().join("escape.txt"),
            absolute_target.clone(),
        ] {
            assert!(
                !escaped.exists(),
                "{what}: {} was written",
                escaped.display()
            );
        }
        assert_eq!(
            std::fs::read_dir(scratch.join("uploads")).unwrap().count(),
            0,
            "{what}: the unpack dir is removed"
        );
    }
    assert!(t
        .registry
        .list(&registry::Caller::admin())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn size_cap_and_garbage_are_refused() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let archive = tar_of(&folder, None);
    let result = t
        .registry
        .import_tar(
            std::io::Cursor::new(archive.clone()),
            request("acme", "big"),
            4096,
        )
        .await;
    assert!(
        matches!(result, Err(RegistryError::TooLarge { limit: 4096 })),
        "{result:?}"
    );

    let garbage = vec![0x42u8; 2048];
    let result = t
        .registry
        .import_tar(
            std::io::Cursor::new(garbage),
            request("acme", "junk"),
            1 << 20,
        )
        .await;
    assert!(
        matches!(result, Err(RegistryError::Invalid(_))),
        "{result:?}"
    );

    // The same archive under a sufficient cap imports.
    t.registry
        .import_tar(
            std::io::Cursor::new(archive),
            request("acme", "ok"),
            1 << 20,
        )
        .await
        .unwrap();
}

/// Entries that clash with earlier ones (a file, then a path beneath it; a file, then a
/// directory of the same name) are the uploader's error: refused as such, naming the
/// entry, not failed as a server error.
#[tokio::test]
async fn entries_that_clash_with_earlier_ones_are_refused() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "config.json/inner.txt",
            raw_entry("config.json/inner.txt", tar::EntryType::Regular, None, b"x"),
        ),
        (
            "a file, then a path beneath it",
            [
                raw_entry("notes", tar::EntryType::Regular, None, b"x"),
                raw_entry("notes/deeper/file.txt", tar::EntryType::Regular, None, b"y"),
            ]
            .concat(),
        ),
        (
            "a file, then a directory of the same name",
            [
                raw_entry("extra", tar::EntryType::Regular, None, b"x"),
                raw_entry("extra/", tar::EntryType::Directory, None, b""),
            ]
            .concat(),
        ),
    ];
    for (what, bad) in cases {
        let archive = with_bad_entry(&folder, bad);
        let result = import(&t, archive, "clash").await;
        match result {
            Err(RegistryError::Invalid(ImportError::ConflictingEntry { path })) => {
                assert!(!path.starts_with('/'), "{what}: {path}");
            }
            other => panic!("{what}: expected a refusal naming the entry, got {other:?}"),
        }
    }
}

/// Names too long for the file system (GNU long-name entries make them possible) are
/// refused as unsafe paths, not failed as a server error.
#[tokio::test]
async fn overlong_names_are_refused() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let long_name = format!("{}/x.txt", "n".repeat(300));
    // Eleven directories of 100 bytes: 1,116 bytes in all, each name short enough.
    let deep_path = format!("{}x.txt", format!("{}/", "d".repeat(100)).repeat(11));
    for name in [long_name, deep_path] {
        let mut builder = tar::Builder::new(Vec::new());
        builder.append_dir_all(".", &folder).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, &name, &b"x"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        let result = import(&t, archive, "long").await;
        match result {
            Err(RegistryError::Invalid(ImportError::UnsafePath { reason, .. })) => {
                assert!(reason.contains("longer than"), "{reason}");
            }
            other => panic!(
                "{} bytes: expected an unsafe path, got {other:?}",
                name.len()
            ),
        }
    }
}
