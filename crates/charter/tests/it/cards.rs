//! `charter models card/sign/verify` and `charter tenants set/trust-key`: cards set at
//! import and edited later, and signatures made with a generated key and with a key
//! written by `openssl genpkey -algorithm ed25519` (when openssl is installed).

use std::path::{Path, PathBuf};
use std::process::Command;

use crypto::signing::SigningKey;

use crate::cli::{charter, fails, ok, run};

/// A tiny model folder: config.json and a safetensors file with one F32 tensor.
fn tiny_model(parent: &Path) -> PathBuf {
    let dir = parent.join("tiny-model");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type":"bert"}"#).unwrap();
    let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}  "#;
    let mut weights = (header.len() as u64).to_le_bytes().to_vec();
    weights.extend_from_slice(header);
    weights.extend_from_slice(&[0u8; 8]);
    std::fs::write(dir.join("model.safetensors"), weights).unwrap();
    dir
}

/// (private key file, public key file) pairs: one generated here, one by openssl.
fn key_pairs(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let key = SigningKey::generate();
    let (private, public) = (dir.join("gen.pem"), dir.join("gen.pub.pem"));
    std::fs::write(&private, key.to_pkcs8_pem().unwrap().expose().as_bytes()).unwrap();
    std::fs::write(&public, key.public_key_pem()).unwrap();
    let mut pairs = vec![(private, public)];
    let (private, public) = (dir.join("ossl.pem"), dir.join("ossl.pub.pem"));
    let openssl = |args: &[&std::ffi::OsStr]| {
        Command::new("openssl")
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if openssl(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "ed25519".as_ref(),
        "-out".as_ref(),
        private.as_os_str(),
    ]) && openssl(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ]) {
        pairs.push((private, public));
    } else {
        eprintln!("openssl is not installed: only the generated key is tested");
    }
    pairs
}

#[test]
fn cards_are_set_at_import_and_edited_later() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    let out = ok(charter(dir.path())
        .args(["models", "import"])
        .arg(&model)
        .args([
            "--name",
            "tiny",
            "--license",
            "apache-2.0",
            "--owner",
            "Acme",
            "--permitted-tenants",
            "a,b",
            "--commercial-use",
            "false",
            "--license-expires",
            "2030-01-31",
            "--attribution",
            "Tiny by Acme",
        ]));
    assert_eq!(out.trim(), "tiny:1");
    let card = ok(charter(dir.path()).args(["models", "card", "tiny"]));
    for line in [
        "license:           apache-2.0",
        "owner:             Acme",
        "permitted tenants: a,b",
        "commercial use:    not allowed",
        "license expires:   2030-01-31",
        "attribution:       Tiny by Acme",
    ] {
        assert!(card.contains(line), "{line:?} missing from\n{card}");
    }
    let card = ok(charter(dir.path()).args([
        "models",
        "card",
        "tiny",
        "--permitted-tenants",
        "all",
        "--owner",
        "Beta",
        "--clear",
        "attribution",
    ]));
    for line in [
        "license:           apache-2.0",
        "owner:             Beta",
        "permitted tenants: all",
        "attribution:       -",
    ] {
        assert!(card.contains(line), "{line:?} missing from\n{card}");
    }
    let err = fails(charter(dir.path()).args(["models", "card", "tiny", "--license", "MIT OR"]));
    assert!(err.contains("license"), "{err}");
    let err = fails(
        charter(dir.path())
            .args(["models", "import"])
            .arg(&model)
            .args(["--name", "t2", "--license-expires", "2030-02-30"]),
    );
    assert!(err.contains("YYYY-MM-DD"), "{err}");
}

#[test]
fn models_are_signed_verified_and_trusted_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path());
    ok(charter(dir.path())
        .args(["models", "import"])
        .arg(&model)
        .args(["--name", "tiny"]));
    ok(charter(dir.path()).args(["tenants", "create", "lab"]));
    let unsigned = run(charter(dir.path()).args(["models", "verify", "tiny"]));
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stdout).contains("has no signatures"));

    let stranger = dir.path().join("stranger.pub.pem");
    std::fs::write(&stranger, SigningKey::generate().public_key_pem()).unwrap();
    for (private, public) in key_pairs(dir.path()) {
        ok(charter(dir.path())
            .args(["models", "sign", "tiny:1", "--key"])
            .arg(&private));
        let out = ok(charter(dir.path())
            .args(["models", "verify", "tiny", "--public-key"])
            .arg(&public));
        assert!(out.contains("ok: key"), "{out}");
        let other = run(charter(dir.path())
            .args(["models", "verify", "tiny", "--public-key"])
            .arg(&stranger));
        assert!(!other.status.success(), "a stranger's key verified");

        let trusted_by_lab = |dir: &Path| {
            run(charter(dir).args(["models", "verify", "tiny", "--tenant", "lab"]))
                .status
                .success()
        };
        assert!(!trusted_by_lab(dir.path()));
        let key_id = ok(charter(dir.path())
            .args(["tenants", "trust-key", "lab", "--public-key"])
            .arg(&public));
        assert!(trusted_by_lab(dir.path()));
        let listed = ok(charter(dir.path()).args(["tenants", "trusted-keys", "lab"]));
        assert!(listed.starts_with(key_id.trim()), "{listed}");
        ok(charter(dir.path()).args(["tenants", "distrust-key", "lab", key_id.trim()]));
        assert!(!trusted_by_lab(dir.path()));
    }
    // A private key that is not PKCS#8 ed25519 is refused.
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = fails(
        charter(dir.path())
            .args(["models", "sign", "tiny", "--key"])
            .arg(&bad),
    );
    assert!(err.contains("PKCS#8"), "{err}");
    ok(charter(dir.path()).args(["tenants", "set", "lab", "--require-signed-models", "true"]));
    let output = run(charter(dir.path()).args(["tenants", "trusted-keys", "lab"]));
    assert!(String::from_utf8_lossy(&output.stderr).contains("signed models: required"));
}
