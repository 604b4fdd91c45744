//! Master key files: created 0600, parsed strictly, never printed.

use std::os::unix::fs::PermissionsExt;

use crypto::envelope::{MasterKey, MasterKeyring};
use crypto::CryptoError;

#[test]
fn generated_file_is_0600_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("master.key");
    let key = MasterKey::generate_file(1, &path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert!(MasterKey::file_is_private(&path).unwrap());
    let loaded = MasterKey::load_file(1, &path).unwrap();
    assert_eq!(loaded.fingerprint(), key.fingerprint());
    assert_eq!(loaded.version(), 1);

    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));

    // Never overwritten.
    let again = MasterKey::generate_file(1, &path);
    assert!(
        matches!(again, Err(CryptoError::Io(ref e)) if e.kind() == std::io::ErrorKind::AlreadyExists)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let reused = MasterKey::load_or_generate_file(1, &path).unwrap();
    assert_eq!(reused.fingerprint(), key.fingerprint());

    let fresh_path = dir.path().join("fresh.key");
    let fresh = MasterKey::load_or_generate_file(2, &fresh_path).unwrap();
    assert_ne!(fresh.fingerprint(), key.fingerprint());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!MasterKey::file_is_private(&path).unwrap());
}

#[test]
fn strict_file_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let accepted: Vec<Vec<u8>> = vec![
        hex64.into(),
        format!("{hex64}\n").into(),
        format!("{hex64}\r\n").into(),
        hex64.to_uppercase().into(),
        vec![0x5a; 32],
    ];
    for (i, contents) in accepted.iter().enumerate() {
        let path = dir.path().join(format!("ok{i}"));
        std::fs::write(&path, contents).unwrap();
        MasterKey::load_file(1, &path).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
    let same_a = MasterKey::load_file(1, &dir.path().join("ok0")).unwrap();
    let same_b = MasterKey::load_file(1, &dir.path().join("ok3")).unwrap();
    assert_eq!(same_a.fingerprint(), same_b.fingerprint());

    let refused: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x5a; 31],
        vec![0x5a; 33],
        [&[0x5a; 32][..], b"\n"].concat(),
        hex64[..63].into(),
        format!("{hex64}0").into(),
        format!("{hex64}\n\n").into(),
        format!(" {hex64}").into(),
        format!("{hex64} \n").into(),
        format!("0x{}", &hex64[2..]).into(),
        hex64.replace('a', "g").into(),
        "0".repeat(64).into(),
        vec![0u8; 32],
        vec![b'a'; 4096],
    ];
    for (i, contents) in refused.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}"));
        std::fs::write(&path, contents).unwrap();
        let result = MasterKey::load_file(1, &path);
        assert!(
            matches!(result, Err(CryptoError::MalformedKey(_))),
            "case {i} accepted or wrong error: {result:?}"
        );
    }
    assert!(matches!(
        MasterKey::load_file(1, &dir.path().join("absent")),
        Err(CryptoError::Io(_))
    ));
}

#[test]
fn env_text_parsing() {
    let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let key = MasterKey::from_env_text(3, &format!("  {hex64}\n")).unwrap();
    assert_eq!(key.version(), 3);
    for bad in ["", "short", &hex64[..62], &format!("{hex64}00")] {
        assert!(
            MasterKey::from_env_text(3, bad).is_err(),
            "accepted {bad:?}"
        );
    }
}

#[test]
fn keys_never_print() {
    let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let key = MasterKey::from_env_text(7, hex64).unwrap();
    let ring = MasterKeyring::new(key.clone());
    for text in [format!("{key:?}"), format!("{ring:?}")] {
        assert!(!text.contains("00112233"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }
    assert!(format!("{key:?}").contains(&key.fingerprint()));
}

#[test]
fn keyring_versions() {
    let mut ring = MasterKeyring::new(MasterKey::generate(1));
    assert_eq!(ring.active().version(), 1);
    ring.add(MasterKey::generate(2)).unwrap();
    assert!(matches!(
        ring.add(MasterKey::generate(2)),
        Err(CryptoError::DuplicateMasterKey(2))
    ));
    assert_eq!(ring.active().version(), 1);
    ring.set_active(2).unwrap();
    assert_eq!(ring.active().version(), 2);
    assert!(matches!(
        ring.set_active(9),
        Err(CryptoError::UnknownMasterKey(9))
    ));
    assert!(ring.remove(2).is_err());
    assert_eq!(ring.remove(1).unwrap().version(), 1);
    assert_eq!(ring.versions().collect::<Vec<_>>(), vec![2]);
}
