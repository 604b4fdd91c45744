//! Folders that must be refused, with nothing stored: pickles (by name and by content),
//! broken safetensors, symlinks, unsafe names.

use std::path::Path;

use registry::{ImportError, RegistryError};
use types::{ModelName, ModelRef};

use crate::support::{raw_safetensors, request, write_tiny_model, TestRegistry};

/// Imports `folder` and expects an `ImportError`; also checks that nothing became
/// visible and no blob was stored, since validation comes first.
async fn refused(t: &TestRegistry, folder: &Path) -> ImportError {
    let result = t.registry.import_dir(folder, request("acme", "bad")).await;
    let error = match result {
        Err(RegistryError::Invalid(error)) => error,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert!(t
        .registry
        .list(&registry::Caller::admin())
        .await
        .unwrap()
        .is_empty());
    assert!(
        t.registry.blobs().list_all().unwrap().is_empty(),
        "no blob stored"
    );
    error
}

/// A protocol-2 pickle that, if it were ever unpickled, would run
/// `os.system("touch CANARY")`: PROTO 2, GLOBAL posix.system, BINUNICODE cmd, TUPLE1,
/// REDUCE, STOP.
fn malicious_pickle(canary: &Path) -> Vec<u8> {
    let command = format!("touch {}", canary.display());
    let mut bytes = vec![0x80, 0x02];
    bytes.extend_from_slice(b"cposix\nsystem\n");
    bytes.push(b'X');
    bytes.extend_from_slice(&(command.len() as u32).to_le_bytes());
    bytes.extend_from_slice(command.as_bytes());
    bytes.extend_from_slice(&[0x85, b'R', b'.']);
    bytes
}

#[tokio::test]
async fn renamed_pickle_is_refused_and_never_runs() {
    let t = TestRegistry::sqlite().await;
    let canary = t.dir.path().join("canary-was-created");
    let pickle = malicious_pickle(&canary);

    let folder = t.folder("renamed");
    write_tiny_model(&folder, 1);
    std::fs::write(folder.join("model.safetensors"), &pickle).unwrap();
    let error = refused(&t, &folder).await;
    assert!(
        matches!(&error, ImportError::PickleContent { path } if path == "model.safetensors"),
        "{error}"
    );
    assert!(error.to_string().contains("safetensors"));

    // By name: a .bin next to good weights is refused with advice to convert.
    for name in [
        "pytorch_model.bin",
        "model.pt",
        "weights.pth",
        "last.ckpt",
        "data.pkl",
    ] {
        let folder = t.folder(&format!("named-{name}"));
        write_tiny_model(&folder, 1);
        std::fs::write(folder.join(name), &pickle).unwrap();
        let error = refused(&t, &folder).await;
        assert!(
            matches!(&error, ImportError::PickleCheckpoint { path } if path == name),
            "{error}"
        );
        assert!(
            error.to_string().contains("convert it to safetensors"),
            "{error}"
        );
    }

    // A pickle hidden under another name, and a torch zip archive.
    let folder = t.folder("hidden");
    write_tiny_model(&folder, 1);
    std::fs::write(folder.join("extra_weights.dat"), &pickle).unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::PickleContent { .. }
    ));
    let folder = t.folder("zip");
    write_tiny_model(&folder, 1);
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(b"archive/data.pkl....");
    std::fs::write(folder.join("model.safetensors"), zip).unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::ZipArchive { .. }
    ));

    // A protocol-0 pickle has no magic byte; it still is no safetensors file.
    let folder = t.folder("proto0");
    write_tiny_model(&folder, 1);
    let proto0 = format!("cposix\nsystem\n(S'touch {}'\ntR.", canary.display());
    std::fs::write(folder.join("model.safetensors"), proto0).unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::Safetensors { .. }
    ));

    assert!(!canary.exists(), "the pickle payload must never run");
}

#[tokio::test]
async fn broken_safetensors_are_refused() {
    let t = TestRegistry::sqlite().await;
    let good_header = r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[4],"data_offsets":[16,24]}}"#;
    let valid = raw_safetensors(good_header, 24);

    let mut oversized = (200u64 * 1024 * 1024).to_le_bytes().to_vec();
    oversized.extend_from_slice(&valid[8..]);
    let mut beyond_file = 5000u64.to_le_bytes().to_vec();
    beyond_file.extend_from_slice(&valid[8..]);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated data",
            valid[..valid.len() - 3].to_vec(),
            "truncated",
        ),
        ("truncated header", valid[..20].to_vec(), "truncated"),
        ("shorter than the length", valid[..5].to_vec(), "fewer than"),
        ("oversized header", oversized, "limit"),
        ("header beyond the file", beyond_file, "truncated"),
        (
            "overlapping offsets",
            raw_safetensors(&good_header.replace("[16,24]", "[8,16]"), 24),
            "overlaps",
        ),
        (
            "unknown dtype",
            raw_safetensors(&good_header.replace("F16", "F17"), 24),
            "unknown dtype",
        ),
        (
            "size mismatch",
            raw_safetensors(&good_header.replace("[2,2]", "[2,3]"), 24),
            "needs",
        ),
        (
            "not utf-8",
            {
                let mut bytes = 4u64.to_le_bytes().to_vec();
                bytes.extend_from_slice(&[b'{', 0xff, 0xfe, b'}']);
                bytes
            },
            "UTF-8",
        ),
        ("trailing bytes", raw_safetensors(good_header, 30), "cover"),
    ];
    for (what, bytes, expect) in cases {
        let folder = t.folder(&what.replace(' ', "-"));
        write_tiny_model(&folder, 1);
        std::fs::write(folder.join("model.safetensors"), bytes).unwrap();
        match refused(&t, &folder).await {
            ImportError::Safetensors { path, reason } => {
                assert_eq!(path, "model.safetensors");
                assert!(
                    reason.contains(expect),
                    "{what}: '{reason}' should mention '{expect}'"
                );
            }
            other => panic!("{what}: unexpected {other}"),
        }
    }

    // The good file passes, proving the cases above fail for their own reason.
    let folder = t.folder("valid");
    write_tiny_model(&folder, 1);
    std::fs::write(folder.join("model.safetensors"), valid).unwrap();
    t.registry
        .import_dir(&folder, request("acme", "good"))
        .await
        .unwrap();
}

#[tokio::test]
async fn folder_structure_is_checked() {
    let t = TestRegistry::sqlite().await;

    let folder = t.folder("no-config");
    write_tiny_model(&folder, 1);
    std::fs::remove_file(folder.join("config.json")).unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::MissingConfig
    ));

    let folder = t.folder("bad-config");
    write_tiny_model(&folder, 1);
    std::fs::write(folder.join("config.json"), "{not json").unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::InvalidJson { .. }
    ));
    std::fs::write(folder.join("config.json"), "[1, 2]").unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::ConfigNotObject
    ));

    // Pooling configs are read by the engine too.
    let folder = t.folder("bad-pooling");
    write_tiny_model(&folder, 1);
    std::fs::write(folder.join("1_Pooling/config.json"), "{").unwrap();
    assert!(
        matches!(refused(&t, &folder).await, ImportError::InvalidJson { path, .. } if path == "1_Pooling/config.json")
    );

    let folder = t.folder("no-weights");
    write_tiny_model(&folder, 1);
    std::fs::remove_file(folder.join("model.safetensors")).unwrap();
    assert!(matches!(refused(&t, &folder).await, ImportError::NoWeights));

    // A symlink, even to a harmless file outside, is refused rather than followed.
    let folder = t.folder("symlink");
    write_tiny_model(&folder, 1);
    let outside = t.dir.path().join("outside-secret.txt");
    std::fs::write(&outside, "secret").unwrap();
    std::os::unix::fs::symlink(&outside, folder.join("vocab.txt")).unwrap();
    assert!(
        matches!(refused(&t, &folder).await, ImportError::Symlink { path } if path == "vocab.txt")
    );

    let folder = t.folder("dir-symlink");
    write_tiny_model(&folder, 1);
    std::os::unix::fs::symlink("/etc", folder.join("2_Dense")).unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::Symlink { .. }
    ));

    let folder = t.folder("control-char");
    write_tiny_model(&folder, 1);
    std::fs::write(folder.join("bad\nname.txt"), "x").unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::UnsafePath { .. }
    ));

    let not_a_dir = t.dir.path().join("file.txt");
    std::fs::write(&not_a_dir, "x").unwrap();
    assert!(matches!(
        refused(&t, &not_a_dir).await,
        ImportError::NotADirectory(_)
    ));
}

#[tokio::test]
async fn shard_index_must_match_the_shards() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("sharded");
    write_tiny_model(&folder, 1);
    std::fs::remove_file(folder.join("model.safetensors")).unwrap();
    std::fs::write(
        folder.join("model-00001-of-00002.safetensors"),
        crate::support::safetensors(&[("a.weight", &[2, 2])]),
    )
    .unwrap();
    std::fs::write(
        folder.join("model-00002-of-00002.safetensors"),
        crate::support::safetensors(&[("b.weight", &[3])]),
    )
    .unwrap();
    let index = |a: &str, b: &str| {
        format!(
            r#"{{"metadata":{{"total_size":28}},"weight_map":{{"a.weight":"{a}","b.weight":"{b}"}}}}"#
        )
    };
    let index_path = folder.join("model.safetensors.index.json");

    std::fs::write(
        &index_path,
        index(
            "model-00001-of-00002.safetensors",
            "model-00003-of-00002.safetensors",
        ),
    )
    .unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::ShardIndex(_)
    ));
    std::fs::write(
        &index_path,
        index(
            "model-00002-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ),
    )
    .unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::ShardIndex(_)
    ));
    std::fs::write(
        &index_path,
        index(
            "../model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ),
    )
    .unwrap();
    assert!(matches!(
        refused(&t, &folder).await,
        ImportError::ShardIndex(_)
    ));

    std::fs::write(
        &index_path,
        index(
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ),
    )
    .unwrap();
    let version = t
        .registry
        .import_dir(&folder, request("acme", "sharded"))
        .await
        .unwrap();
    assert_eq!(version.manifest.files.len(), 8);
}

#[test]
fn unsafe_model_names_are_refused() {
    for bad in ["../x", "a/b", "/abs", "%2e%2e", "a\0b", "..", "a\\b", ""] {
        assert!(ModelName::try_from(bad).is_err(), "{bad:?}");
        assert!(bad.parse::<ModelRef>().is_err(), "{bad:?}");
        assert!(format!("{bad}:1").parse::<ModelRef>().is_err(), "{bad:?}:1");
    }
    // Names arriving as JSON (HTTP) are validated during deserialisation.
    assert!(serde_json::from_str::<ModelName>(r#""..\/etc""#).is_err());
}
