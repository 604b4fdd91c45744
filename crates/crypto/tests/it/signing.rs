//! Ed25519 keys in PEM (including OpenSSL-generated ones), canonical JSON, and signed
//! statements that fail on any altered field.

use std::process::Command;

use crypto::signing::{canonical_json, Signature, SignedStatement, SigningKey, VerifyingKey};
use crypto::CryptoError;
use serde_json::json;

#[test]
fn pem_round_trip() {
    let key = SigningKey::generate();
    let pem = key.to_pkcs8_pem().unwrap();
    assert!(pem.expose().starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(format!("{pem:?}"), "[redacted]");
    let loaded = SigningKey::from_pkcs8_pem(pem.expose()).unwrap();
    assert_eq!(loaded.key_id(), key.key_id());
    assert_eq!(loaded.verifying_key(), key.verifying_key());

    let public_pem = key.public_key_pem();
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let public = VerifyingKey::from_public_key_pem(&public_pem).unwrap();
    assert_eq!(public, key.verifying_key());
    assert_eq!(public.to_public_key_pem(), public_pem);

    let signature = loaded.sign(b"message");
    public.verify(b"message", &signature).unwrap();
    assert!(matches!(
        public.verify(b"messagE", &signature),
        Err(CryptoError::BadSignature)
    ));
    assert_eq!(
        Signature::from_base64(&signature.to_base64()).unwrap(),
        signature
    );
    assert!(Signature::from_base64("AAAA").is_err());

    // Debug never shows private key material.
    let debug = format!("{key:?}");
    assert!(debug.contains(&key.key_id()), "{debug}");
    assert!(!debug.contains("PRIVATE"));
}

#[test]
fn key_id_is_first_8_bytes_of_sha256_of_public_key() {
    use sha2::Digest;
    let key = SigningKey::generate();
    let public = key.verifying_key();
    let want = hex::encode(&sha2::Sha256::digest(public.as_bytes())[..8]);
    assert_eq!(public.key_id(), want);
    assert_eq!(public.key_id().len(), 16);
    assert_eq!(VerifyingKey::from_bytes(public.as_bytes()).unwrap(), public);
}

#[test]
fn malformed_pem_is_refused() {
    let key = SigningKey::generate();
    let private = key.to_pkcs8_pem().unwrap();
    let public = key.public_key_pem();
    assert!(matches!(
        SigningKey::from_pkcs8_pem(&public),
        Err(CryptoError::MalformedKey(_))
    ));
    assert!(VerifyingKey::from_public_key_pem(private.expose()).is_err());
    assert!(SigningKey::from_pkcs8_pem("").is_err());
    // The first base64 character after the header encodes the outer SEQUENCE tag.
    let damaged = private.expose().replacen("-----\nM", "-----\nN", 1);
    assert_ne!(damaged.as_str(), private.expose().as_str());
    assert!(SigningKey::from_pkcs8_pem(&damaged).is_err());
    // An RSA or EC key is not an ed25519 key (fixed P-256 key, for the OID check).
    let p256 = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n\
        q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n\
        -----END PUBLIC KEY-----\n";
    assert!(VerifyingKey::from_public_key_pem(p256).is_err());
}

/// Keys written by `openssl genpkey -algorithm ed25519` load, and signatures cross
/// between OpenSSL and this crate in both directions.
#[test]
fn openssl_generated_key_loads() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipping openssl_generated_key_loads: `openssl` is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let private_path = dir.path().join("key.pem");
    let public_path = dir.path().join("pub.pem");
    let message_path = dir.path().join("message");
    let signature_path = dir.path().join("sig");
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    run(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        &path(&private_path),
    ]);
    run(&[
        "pkey",
        "-in",
        &path(&private_path),
        "-pubout",
        "-out",
        &path(&public_path),
    ]);

    let private_pem = std::fs::read_to_string(&private_path).unwrap();
    let public_pem = std::fs::read_to_string(&public_path).unwrap();
    let key = SigningKey::from_pkcs8_pem(&private_pem).unwrap();
    let public = VerifyingKey::from_public_key_pem(&public_pem).unwrap();
    assert_eq!(key.verifying_key(), public);
    assert_eq!(
        key.public_key_pem(),
        public_pem,
        "SPKI PEM identical to OpenSSL's"
    );

    // OpenSSL signs, we verify.
    std::fs::write(&message_path, b"model manifest").unwrap();
    run(&[
        "pkeyutl",
        "-sign",
        "-rawin",
        "-inkey",
        &path(&private_path),
        "-in",
        &path(&message_path),
        "-out",
        &path(&signature_path),
    ]);
    let signature: [u8; 64] = std::fs::read(&signature_path).unwrap().try_into().unwrap();
    public
        .verify(b"model manifest", &Signature::from_bytes(signature))
        .unwrap();
    assert!(public
        .verify(b"model manifesT", &Signature::from_bytes(signature))
        .is_err());

    // We sign, OpenSSL verifies.
    std::fs::write(&signature_path, key.sign(b"model manifest").to_bytes()).unwrap();
    run(&[
        "pkeyutl",
        "-verify",
        "-rawin",
        "-pubin",
        "-inkey",
        &path(&public_path),
        "-in",
        &path(&message_path),
        "-sigfile",
        &path(&signature_path),
    ]);
}

#[test]
fn canonical_json_sorts_keys_and_drops_whitespace() {
    let check = |value: serde_json::Value, want: &str| {
        assert_eq!(String::from_utf8(canonical_json(&value)).unwrap(), want);
    };
    check(
        json!({"b": 1, "a": [{"z": null, "y": "x"}, true], "c": {"e": -5, "d": "é\n\u{1}\""}}),
        r#"{"a":[{"y":"x","z":null},true],"b":1,"c":{"d":"é\n\u0001\"","e":-5}}"#,
    );
    check(json!([]), "[]");
    check(json!({}), "{}");
    check(json!("plain"), r#""plain""#);
    // JCS order is by UTF-16 code units: U+1F600 (D83D DE00) sorts before U+E000,
    // although its UTF-8 bytes sort after.
    check(
        json!({"\u{e000}": 1, "\u{1f600}": 2}),
        "{\"\u{1f600}\":2,\"\u{e000}\":1}",
    );
    // Independent of how the input text was laid out.
    let spaced: serde_json::Value =
        serde_json::from_str("{ \"b\" : [ 1 , 2 ] ,\n \"a\" : 0 }").unwrap();
    check(spaced, r#"{"a":0,"b":[1,2]}"#);
}

fn receipt() -> serde_json::Value {
    json!({
        "model_version_digest": "sha256:1f2e",
        "input_sha256": "aa",
        "output_sha256": "bb",
        "time": 1_764_000_000,
        "tenant": "acme",
        "usage": {"prompt_tokens": 12, "total_tokens": 40},
        "attribution": ["CC-BY-4.0", "example"]
    })
}

/// Every way to change one leaf value of a JSON document, plus adding and removing
/// fields at every level.
fn mutations(value: &serde_json::Value) -> Vec<serde_json::Value> {
    use serde_json::Value;
    let mut out = Vec::new();
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                for changed in mutations(item) {
                    let mut copy = map.clone();
                    copy.insert(key.clone(), changed);
                    out.push(Value::Object(copy));
                }
                let mut removed = map.clone();
                removed.remove(key);
                out.push(Value::Object(removed));
                let mut renamed = map.clone();
                let item = renamed.remove(key).unwrap();
                renamed.insert(format!("{key}_"), item);
                out.push(Value::Object(renamed));
            }
            let mut added = map.clone();
            added.insert("extra".into(), Value::Null);
            out.push(Value::Object(added));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                for changed in mutations(item) {
                    let mut copy = items.clone();
                    copy[i] = changed;
                    out.push(Value::Array(copy));
                }
            }
            let mut reversed = items.clone();
            reversed.reverse();
            out.push(Value::Array(reversed));
            out.push(Value::Array(items[1..].to_vec()));
        }
        Value::String(text) => {
            out.push(Value::String(format!("{text}x")));
            out.push(json!(null));
        }
        Value::Number(number) => {
            out.push(json!(number.as_i64().unwrap() + 1));
            out.push(Value::String(number.to_string()));
        }
        Value::Bool(b) => out.push(Value::Bool(!b)),
        Value::Null => out.push(json!(0)),
    }
    out
}

#[test]
fn signed_statement_fails_on_any_altered_field() {
    let key = SigningKey::generate();
    let public = key.verifying_key();
    let statement = SignedStatement::sign(&key, receipt());
    statement.verify(&public).unwrap();
    assert_eq!(statement.key_id, key.key_id());

    let altered_payloads = mutations(&statement.payload);
    assert!(altered_payloads.len() > 30);
    for payload in altered_payloads {
        let altered = SignedStatement {
            payload: payload.clone(),
            ..statement.clone()
        };
        assert!(
            matches!(altered.verify(&public), Err(CryptoError::BadSignature)),
            "accepted {payload}"
        );
    }
    for i in [0, 31, 32, 63] {
        let mut bytes = statement.signature.to_bytes();
        bytes[i] ^= 1;
        let altered = SignedStatement {
            signature: Signature::from_bytes(bytes),
            ..statement.clone()
        };
        assert!(altered.verify(&public).is_err(), "signature byte {i}");
    }
    let altered = SignedStatement {
        key_id: "0000000000000000".into(),
        ..statement.clone()
    };
    assert!(matches!(
        altered.verify(&public),
        Err(CryptoError::WrongKey { .. })
    ));
    // Errors never echo an attacker-chosen key id.
    let hostile = SignedStatement {
        key_id: "\u{1b}[31m fake log line\n".into(),
        ..statement.clone()
    };
    let message = hostile.verify(&public).unwrap_err().to_string();
    assert!(!message.contains("fake"), "{message}");
    assert!(message.contains(&key.key_id()), "{message}");
    let other = SigningKey::generate();
    assert!(matches!(
        statement.verify(&other.verifying_key()),
        Err(CryptoError::WrongKey { .. })
    ));
    // Claiming the other key's id does not help either.
    let claimed = SignedStatement {
        key_id: other.key_id(),
        ..statement.clone()
    };
    assert!(matches!(
        claimed.verify(&other.verifying_key()),
        Err(CryptoError::BadSignature)
    ));
}

#[test]
fn saved_statement_verifies_offline_and_text_edits_fail() {
    let key = SigningKey::generate();
    let statement = SignedStatement::sign(&key, receipt());
    let saved = serde_json::to_string_pretty(&statement).unwrap();
    let public = VerifyingKey::from_public_key_pem(&key.public_key_pem()).unwrap();
    let loaded: SignedStatement = serde_json::from_str(&saved).unwrap();
    loaded.verify(&public).unwrap();

    for (from, to) in [
        ("acme", "acmf"),
        ("1764000000", "1764000001"),
        ("\"bb\"", "\"bc\""),
    ] {
        assert!(saved.contains(from));
        let edited: SignedStatement = serde_json::from_str(&saved.replacen(from, to, 1)).unwrap();
        assert!(
            edited.verify(&public).is_err(),
            "accepted edit {from} → {to}"
        );
    }
}
