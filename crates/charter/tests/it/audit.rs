//! `charter audit` and `charter receipts` against a real data dir: an honest log and
//! its export verify, tampering in either fails with the entry named, and a saved
//! receipt or proof checks offline until any field changes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use governance::audit::{self, AuditLog};
use store::{NewAuditEntry, Store};

fn charter(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command
        .env_remove("CHARTER_DATABASE_URL")
        .env_remove("CHARTER_CONFIG")
        .env("CHARTER_DATA_DIR", data_dir)
        .env("CHARTER_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(command: &mut Command) -> (bool, String) {
    let output: Output = command.output().expect("charter runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Writes `n` entries and a checkpoint through the server's own key.
async fn fill(data_dir: &Path, n: i64) -> Vec<audit::AuditEntry> {
    let store = Store::connect(&format!(
        "sqlite://{}",
        data_dir.join("charter.db").display()
    ))
    .await
    .unwrap();
    let key = audit::load_or_create_signing_key(&data_dir.join(audit::SIGNING_KEY_FILE)).unwrap();
    let log = AuditLog::open(store.clone(), key);
    let mut entries = Vec::new();
    for i in 1..=n {
        let entry = NewAuditEntry {
            recorded_at: 1_700_000_000 + i,
            tenant: Some("acme".into()),
            key_id: Some("key1".into()),
            action: "http POST /v1/embeddings".into(),
            resource: "/v1/embeddings".into(),
            status: 200,
            latency_ms: 3,
            request_id: Some(format!("req-{i}")),
            input_sha256: Some(crypto::sha256_hex(b"in")),
            output_sha256: Some(crypto::sha256_hex(b"out")),
            model_digest: Some(crypto::sha256_hex(b"manifest")),
        };
        entries.push(log.record(entry).await.unwrap());
    }
    log.checkpoint().await.unwrap();
    store.close().await;
    entries
}

#[tokio::test]
async fn verify_export_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (ok, public_key) = run(charter(data).args(["audit", "public-key"]));
    assert!(ok, "{public_key}");
    assert!(public_key.starts_with("-----BEGIN PUBLIC KEY-----"));
    fill(data, 6).await;

    let (ok, text) = run(charter(data).args(["audit", "verify"]));
    assert!(ok, "{text}");
    assert!(text.contains("ok: 6 entries"), "{text}");

    let export = data.join("audit.jsonl");
    let (ok, text) = run(charter(data)
        .args(["audit", "export", "--out"])
        .arg(&export));
    assert!(ok, "{text}");
    let (ok, text) = run(charter(data)
        .args(["audit", "verify", "--from-export"])
        .arg(&export));
    assert!(ok, "{text}");

    // An edited line in the export.
    let original = std::fs::read_to_string(&export).unwrap();
    let edited: Vec<String> = original
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            3 => line.replace("\"status\":200", "\"status\":201"),
            _ => line.to_owned(),
        })
        .collect();
    let edited_path = data.join("edited.jsonl");
    std::fs::write(&edited_path, edited.join("\n")).unwrap();
    let (ok, text) = run(charter(data)
        .args(["audit", "verify", "--from-export"])
        .arg(&edited_path));
    assert!(!ok, "{text}");
    assert!(text.contains("entry 4 was edited"), "{text}");

    // A deleted row in the database.
    let store = Store::connect(&format!("sqlite://{}", data.join("charter.db").display()))
        .await
        .unwrap();
    store::sqlx::query("DELETE FROM audit_entries WHERE seq = 2")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let (ok, text) = run(charter(data).args(["audit", "verify"]));
    assert!(!ok, "{text}");
    assert!(text.contains("entry 2 was deleted"), "{text}");
}

#[tokio::test]
async fn receipts_verify_offline_and_fail_when_altered() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let entries = fill(data, 2).await;
    let key = audit::load_or_create_signing_key(&data.join(audit::SIGNING_KEY_FILE)).unwrap();
    let public_key = data.join("server.pub");
    std::fs::write(&public_key, key.public_key_pem()).unwrap();
    let receipt = serde_json::to_value(audit::receipt(&entries[1], &key)).unwrap();
    let file = data.join("receipt.json");
    std::fs::write(&file, receipt.to_string()).unwrap();

    let verify = |path: &Path| {
        run(charter(data)
            .args(["receipts", "verify"])
            .arg(path)
            .arg("--public-key")
            .arg(&public_key))
    };
    let (ok, text) = verify(&file);
    assert!(ok, "{text}");
    assert!(text.contains("ok: receipt signed"), "{text}");

    for field in [
        "output_sha256",
        "input_sha256",
        "model_digest",
        "tenant",
        "status",
        "recorded_at",
        "seq",
    ] {
        let mut altered = receipt.clone();
        altered["payload"][field] = serde_json::json!("x");
        let path = data.join(format!("altered-{field}.json"));
        std::fs::write(&path, altered.to_string()).unwrap();
        let (ok, text) = verify(&path);
        assert!(!ok, "altering {field} passed: {text}");
    }
    // Another server's key does not verify it either.
    let other = data.join("other.pub");
    std::fs::write(
        &other,
        crypto::signing::SigningKey::generate().public_key_pem(),
    )
    .unwrap();
    let (ok, _) = run(charter(data)
        .args(["receipts", "verify"])
        .arg(&file)
        .arg("--public-key")
        .arg(&other));
    assert!(!ok);
}

/// Saved proofs check offline: `audit check-proof` accepts an honest inclusion proof
/// and refuses an altered one; `audit check-consistency` accepts an honest log's growth
/// from a kept checkpoint and refuses a history rewritten and re-signed with the
/// server's own key.
#[tokio::test]
async fn saved_proofs_check_offline_and_a_rewritten_history_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (honest, forked) = (dir.path().join("honest"), dir.path().join("forked"));
    for data in [&honest, &forked] {
        std::fs::create_dir_all(data).unwrap();
    }
    fill(&honest, 6).await;
    std::fs::copy(
        honest.join(audit::SIGNING_KEY_FILE),
        forked.join(audit::SIGNING_KEY_FILE),
    )
    .unwrap();
    let (ok, public_key) = run(charter(&honest).args(["audit", "public-key"]));
    assert!(ok, "{public_key}");
    let open = |data: &Path| {
        let url = format!("sqlite://{}", data.join("charter.db").display());
        async move { Store::connect(&url).await.unwrap() }
    };
    let store = open(&honest).await;
    let kept = store.latest_checkpoint().await.unwrap().unwrap();
    let kept_file = dir.path().join("kept.json");
    let kept_json = serde_json::json!({"size": kept.size, "checkpoint": audit::checkpoint_note(&kept).unwrap()});
    std::fs::write(&kept_file, kept_json.to_string()).unwrap();
    store.close().await;

    // The honest log grows to 10; the forked one differs from entry 4 on.
    fill(&honest, 4).await;
    fill(&forked, 3).await;
    fill(&forked, 7).await;
    let save = |name: &str, value: serde_json::Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    };
    let mut proofs = Vec::new();
    for data in [&honest, &forked] {
        let store = open(data).await;
        let latest = store.latest_checkpoint().await.unwrap().unwrap();
        let consistency = audit::consistency_proof(&store, 6, &latest)
            .await
            .unwrap()
            .unwrap();
        let inclusion = audit::inclusion_proof(&store, 3).await.unwrap().unwrap();
        proofs.push((consistency, inclusion));
        store.close().await;
    }
    let check = |command: &str, file: &Path| {
        run(charter(dir.path())
            .args(["audit", command])
            .arg(file)
            .args(["--kept"])
            .arg(&kept_file)
            .args(["--public-key", &public_key]))
    };
    let honest_proof = save("honest.json", serde_json::to_value(&proofs[0].0).unwrap());
    let (ok, text) = check("check-consistency", &honest_proof);
    assert!(ok, "{text}");
    assert!(
        text.contains("ok: the kept checkpoint of 6 entries is a prefix"),
        "{text}"
    );
    let forked_proof = save("forked.json", serde_json::to_value(&proofs[1].0).unwrap());
    let (ok, text) = check("check-consistency", &forked_proof);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL: the log forked"), "{text}");
    // The kept checkpoint as a bare note works the same.
    std::fs::write(&kept_file, audit::checkpoint_note(&kept).unwrap()).unwrap();
    assert!(check("check-consistency", &honest_proof).0);

    let check_proof = |file: &Path| {
        run(charter(dir.path())
            .args(["audit", "check-proof"])
            .arg(file)
            .args(["--public-key", &public_key]))
    };
    let inclusion = serde_json::to_value(&proofs[0].1).unwrap();
    let (ok, text) = check_proof(&save("inclusion.json", inclusion.clone()));
    assert!(ok, "{text}");
    assert!(
        text.contains("ok: entry 3 is in the signed tree of 10 entries"),
        "{text}"
    );
    let mut altered = inclusion.clone();
    let hash = &proofs[0].1.entry_hash;
    let flipped = if hash.starts_with('0') { '1' } else { '0' };
    altered["entry_hash"] = format!("{flipped}{}", &hash[1..]).into();
    let (ok, text) = check_proof(&save("altered.json", altered));
    assert!(!ok, "{text}");
    assert!(
        text.starts_with("FAIL: entry 3 is not in the signed tree"),
        "{text}"
    );
    let (ok, text) = check_proof(&kept_file);
    assert!(!ok, "{text}");
    assert!(text.contains("is not a saved proof"), "{text}");
}

/// Changes made with the CLI are in the audit log: each wrote its record in its own
/// transaction, and `audit verify` / `export` chain them and check them.
#[tokio::test]
async fn cli_changes_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // The server's key (created on first use), for verifying.
    let (ok, text) = run(charter(data).args(["audit", "public-key"]));
    assert!(ok, "{text}");
    let (ok, text) = run(charter(data).args(["tenants", "create", "acme"]));
    assert!(ok, "{text}");
    let (ok, text) = run(charter(data).args([
        "keys",
        "create",
        "--tenant",
        "acme",
        "--scopes",
        "inference",
    ]));
    assert!(ok, "{text}");
    let (ok, text) = run(charter(data).args(["audit", "verify"]));
    assert!(ok, "{text}");
    assert!(text.contains("ok: 2 entries"), "{text}");
    let (ok, export) = run(charter(data).args(["audit", "export"]));
    assert!(ok, "{export}");
    for action in ["\"tenant.create\"", "\"key.create\""] {
        assert!(export.contains(action), "{action} missing from {export}");
    }
}

/// `serve` killed (SIGKILL) under load: every request that was answered, and so
/// carries a receipt, is in the log with its request id; the restarted server resumes
/// the chain from its last checkpoint and seals the rest; the whole log verifies.
#[test]
fn answered_requests_survive_a_kill_and_the_restart_seals_them() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use crate::cli::{http_with_head, ok, serve, stop};

    let dir = tempfile::tempdir().unwrap();
    let key = ok(charter(dir.path()).args(["keys", "create", "--admin"]));
    let key = Arc::new(key.trim().to_owned());
    let mut server = serve(dir.path(), &[]);
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, key, done) = (server.addr.clone(), key.clone(), done.clone());
            std::thread::spawn(move || {
                let mut answered = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let Some((200, head, _)) =
                        http_with_head(&addr, "GET", "/v1/models", Some(&key), None)
                    else {
                        continue;
                    };
                    let header = |name: &str| {
                        head.lines().find_map(|line| {
                            let (field, value) = line.split_once(':')?;
                            field
                                .eq_ignore_ascii_case(name)
                                .then(|| value.trim().to_owned())
                        })
                    };
                    let seq: i64 = header("x-charter-receipt").unwrap().parse().unwrap();
                    answered.push((seq, header("x-request-id").unwrap()));
                }
                answered
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    done.store(true, Ordering::Relaxed);
    let answered: Vec<(i64, String)> = clients
        .into_iter()
        .flat_map(|client| client.join().unwrap())
        .collect();
    assert!(answered.len() >= 20, "only {} answered", answered.len());

    let mut restarted = serve(dir.path(), &[]);
    stop(&mut restarted);
    let verified = ok(charter(dir.path()).args(["audit", "verify"]));
    assert!(verified.starts_with("ok:"), "{verified}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("charter.db").display()
        ))
        .await
        .unwrap();
        for (seq, request_id) in &answered {
            let entry = store.audit_entry(*seq).await.unwrap();
            let entry = entry.unwrap_or_else(|| panic!("answered entry {seq} is missing"));
            assert_eq!(entry.entry.request_id.as_deref(), Some(request_id.as_str()));
        }
        let sealed = store.latest_checkpoint().await.unwrap().unwrap();
        let last = store.audit_entries(1, i64::MAX).await.unwrap().len() as i64;
        assert_eq!(sealed.size, last, "the restart sealed every entry");
        store.close().await;
    });
}
