//! The audit log on real SQLite files (and one PostgreSQL): an honest log verifies,
//! and each kind of tampering is found and names the entry.

use std::time::Duration;

use crypto::signing::SigningKey;
use governance::audit::{self, AuditConfig, AuditLog, Finding};
use store::{NewAuditEntry, Store};

struct Log {
    log: AuditLog,
    store: Store,
    pem: String,
    _dir: tempfile::TempDir,
}

fn config() -> AuditConfig {
    AuditConfig {
        checkpoint_every: 4,
        checkpoint_interval: Duration::from_secs(3600),
        max_batch: 64,
        outbox_interval: Duration::from_secs(3600),
        linger: Duration::ZERO,
    }
}

async fn open_log(pem: Option<&str>) -> Log {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::sqlite_store(dir.path()).await;
    let key = match pem {
        Some(pem) => SigningKey::from_pkcs8_pem(pem).unwrap(),
        None => {
            audit::load_or_create_signing_key(&dir.path().join(audit::SIGNING_KEY_FILE)).unwrap()
        }
    };
    let pem = key.to_pkcs8_pem().unwrap().expose().to_string();
    let log = AuditLog::with_config(store.clone(), key, config());
    Log {
        log,
        store,
        pem,
        _dir: dir,
    }
}

/// A hash from its hex.
fn hash(text: &str) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).unwrap();
    hash
}

fn entry(n: i64) -> NewAuditEntry {
    NewAuditEntry {
        recorded_at: 1_700_000_000 + n,
        tenant: Some("acme".into()),
        key_id: Some("k1".into()),
        action: "http POST /v1/embeddings".into(),
        resource: "/v1/embeddings".into(),
        status: 200,
        latency_ms: n,
        request_id: Some(format!("req-{n}")),
        input_sha256: Some(crypto::sha256_hex(format!("input {n}").as_bytes())),
        output_sha256: Some(crypto::sha256_hex(format!("output {n}").as_bytes())),
        model_digest: None,
    }
}

impl Log {
    async fn fill(&self, n: i64) {
        for i in 1..=n {
            let recorded = self.log.record(entry(i)).await.unwrap();
            assert_eq!(recorded.seq, i);
        }
        self.log.checkpoint().await.unwrap();
    }

    /// The findings of the log, read by pages as `charter audit verify` reads it; they
    /// must equal those of the whole log held in memory.
    async fn findings(&self) -> Vec<Finding> {
        let key = self.log.signing_key().verifying_key();
        let mut progress = Vec::new();
        let streamed = audit::verify_store(&self.store, &key, |n| progress.push(n))
            .await
            .unwrap();
        let (entries, checkpoints) = audit::load(&self.store).await.unwrap();
        assert_eq!(streamed.entries, entries.len() as i64);
        assert_eq!(progress.last().copied().unwrap_or(0), streamed.entries);
        assert_eq!(streamed.checkpoints, checkpoints.len());
        assert_eq!(
            streamed.findings,
            audit::verify(&entries, &checkpoints, &key)
        );
        streamed.findings
    }

    async fn sql(&self, sql: &str) {
        store::sqlx::query(sql)
            .execute(self.store.pool())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_honest_log_verifies_and_is_checkpointed() {
    let log = open_log(None).await;
    log.fill(10).await;
    assert_eq!(log.findings().await, vec![]);
    let checkpoints = log.store.audit_checkpoints().await.unwrap();
    assert!(checkpoints.iter().any(|c| c.size == 4), "{checkpoints:?}");
    assert_eq!(checkpoints.last().unwrap().size, 10);
    let proof = audit::inclusion_proof(&log.store, 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((proof.seq, proof.tree_size), (7, 10));
}

#[tokio::test]
async fn an_edited_field_is_found() {
    let log = open_log(None).await;
    log.fill(8).await;
    log.sql("UPDATE audit_entries SET status = 500 WHERE seq = 3")
        .await;
    assert_eq!(
        log.findings().await.first(),
        Some(&Finding::Edited { seq: 3 })
    );
}

#[tokio::test]
async fn a_deleted_row_is_found() {
    let log = open_log(None).await;
    log.fill(8).await;
    log.sql("DELETE FROM audit_entries WHERE seq = 4").await;
    assert_eq!(
        log.findings().await.first(),
        Some(&Finding::Deleted { seq: 4 })
    );
}

#[tokio::test]
async fn swapped_rows_are_found() {
    let log = open_log(None).await;
    log.fill(8).await;
    let a = log.store.audit_entry(5).await.unwrap().unwrap();
    let b = log.store.audit_entry(6).await.unwrap().unwrap();
    for (seq, from) in [(5, &b), (6, &a)] {
        store::sqlx::query(
            "UPDATE audit_entries SET recorded_at = $1, latency_ms = $2, request_id = $3, \
             input_sha256 = $4, output_sha256 = $5, prev_hash = $6, entry_hash = $7 WHERE seq = $8",
        )
        .bind(from.entry.recorded_at)
        .bind(from.entry.latency_ms)
        .bind(from.entry.request_id.clone())
        .bind(from.entry.input_sha256.clone())
        .bind(from.entry.output_sha256.clone())
        .bind(from.prev_hash.clone())
        .bind(from.entry_hash.clone())
        .bind(seq)
        .execute(log.store.pool())
        .await
        .unwrap();
    }
    assert_eq!(
        log.findings().await.first(),
        Some(&Finding::Reordered {
            seq: 5,
            belongs_at: 6
        })
    );
}

#[tokio::test]
async fn a_truncated_tail_is_found() {
    let log = open_log(None).await;
    log.fill(8).await;
    // A careful attacker also rewinds the head, so only the checkpoint remembers.
    log.sql("DELETE FROM audit_entries WHERE seq > 6").await;
    let findings = log.findings().await;
    assert_eq!(
        findings.first(),
        Some(&Finding::Truncated {
            checkpoint_size: 8,
            entries: 6
        }),
        "{findings:?}"
    );
    assert!(findings[0].to_string().contains("entry 7"));
}

#[tokio::test]
async fn a_rewritten_chain_is_caught_by_the_checkpoints() {
    let log = open_log(None).await;
    log.fill(8).await;
    // Rewrite entry 2 and recompute every later link: the chain is whole again, but
    // no longer what the checkpoints signed.
    let (mut entries, checkpoints) = audit::load(&log.store).await.unwrap();
    entries[1].status = 403;
    let mut prev = entries[0].entry_hash.clone();
    for e in entries.iter_mut().skip(1) {
        e.prev_hash = prev.clone();
        e.entry_hash = audit::entry_hash(e.seq, &prev, &e.fields()).unwrap();
        prev = e.entry_hash.clone();
    }
    let findings = audit::verify(
        &entries,
        &checkpoints,
        &log.log.signing_key().verifying_key(),
    );
    assert_eq!(
        findings.first(),
        Some(&Finding::CheckpointMismatch {
            size: 4,
            after_good_size: 0
        }),
        "{findings:?}"
    );
}

#[tokio::test]
async fn a_fork_is_found() {
    let a = open_log(None).await;
    let b = open_log(Some(&a.pem)).await;
    a.fill(3).await;
    b.log.record(entry(1)).await.unwrap();
    let mut other = entry(2);
    other.status = 404;
    b.log.record(other).await.unwrap();
    b.log.record(entry(3)).await.unwrap();
    b.log.checkpoint().await.unwrap();
    let (entries, mut checkpoints) = audit::load(&a.store).await.unwrap();
    checkpoints.extend(b.store.audit_checkpoints().await.unwrap());
    let findings = audit::verify(&entries, &checkpoints, &a.log.signing_key().verifying_key());
    assert!(
        findings.contains(&Finding::Fork {
            old_size: 3,
            new_size: 3
        }),
        "{findings:?}"
    );
    // B's entries against A's checkpoint name entry 2 as the first that differs.
    let (entries_b, _) = audit::load(&b.store).await.unwrap();
    let a_checkpoints = a.store.audit_checkpoints().await.unwrap();
    let findings = audit::verify(
        &entries_b,
        &a_checkpoints,
        &a.log.signing_key().verifying_key(),
    );
    assert!(!findings.is_empty());
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_found() {
    let log = open_log(None).await;
    log.fill(4).await;
    let (entries, checkpoints) = audit::load(&log.store).await.unwrap();
    let other = SigningKey::generate().verifying_key();
    assert_eq!(
        audit::verify(&entries, &checkpoints, &other).first(),
        Some(&Finding::BadSignature { size: 4 })
    );
}

#[tokio::test]
async fn an_export_verifies_offline_and_tampering_in_it_is_found() {
    let log = open_log(None).await;
    log.fill(6).await;
    let mut out = Vec::new();
    let public = log.log.signing_key().public_key_pem();
    assert_eq!(
        audit::export(&log.store, &public, &mut out).await.unwrap(),
        6
    );
    let text = String::from_utf8(out).unwrap();
    let parsed = audit::parse_export(&text).unwrap();
    let pem = parsed.public_key_pem.unwrap();
    let key = crypto::signing::VerifyingKey::from_public_key_pem(&pem).unwrap();
    assert_eq!(
        audit::verify(&parsed.entries, &parsed.checkpoints, &key),
        vec![]
    );

    // Alter the second line only: entry 2.
    let tampered: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            1 => line.replace("\"status\":200", "\"status\":201"),
            _ => line.to_owned(),
        })
        .collect();
    let tampered = tampered.join("\n");
    let parsed = audit::parse_export(&tampered).unwrap();
    assert_eq!(
        audit::verify(&parsed.entries, &parsed.checkpoints, &key).first(),
        Some(&Finding::Edited { seq: 2 })
    );
}

#[tokio::test]
async fn receipts_verify_and_fail_on_any_altered_field() {
    let log = open_log(None).await;
    let recorded = log.log.record(entry(1)).await.unwrap();
    let receipt = audit::receipt(&recorded, log.log.signing_key());
    let key = log.log.signing_key().verifying_key();
    receipt.verify(&key).unwrap();
    let fields: Vec<String> = receipt
        .payload
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(fields.len() >= 10, "{fields:?}");
    for field in fields {
        let mut altered = receipt.clone();
        altered.payload[&field] = serde_json::json!("altered");
        assert!(
            altered.verify(&key).is_err(),
            "altering {field} went unnoticed"
        );
    }
}

#[tokio::test]
async fn a_failed_write_is_an_error() {
    let log = open_log(None).await;
    log.fill(2).await;
    log.sql("DROP TABLE audit_entries").await;
    assert!(log.log.record(entry(3)).await.is_err());
}

#[tokio::test]
async fn a_malformed_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(audit::SIGNING_KEY_FILE);
    let key = audit::load_or_create_signing_key(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = audit::load_or_create_signing_key(&path).unwrap();
    assert_eq!(key.key_id(), again.key_id());
    std::fs::write(&path, "not a key").unwrap();
    assert!(audit::load_or_create_signing_key(&path).is_err());
}

#[tokio::test]
async fn two_logs_on_one_postgres_form_one_chain() {
    let pg = testkit::postgres::TempPostgres::start_async()
        .await
        .unwrap();
    let url = pg.url();
    let key = SigningKey::generate();
    let pem = key.to_pkcs8_pem().unwrap().expose().to_string();
    let mut logs = Vec::new();
    for _ in 0..2 {
        let store = Store::connect(&url).await.unwrap();
        logs.push(AuditLog::with_config(
            store,
            SigningKey::from_pkcs8_pem(&pem).unwrap(),
            config(),
        ));
    }
    let mut tasks = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        for n in 0..150 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.record(entry(i as i64 * 1000 + n)).await.unwrap().seq
            }));
        }
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort();
    assert_eq!(seqs, (1..=300).collect::<Vec<i64>>());
    for log in &logs {
        log.checkpoint().await.unwrap();
    }
    let store = logs[0].store();
    let (entries, checkpoints) = audit::load(store).await.unwrap();
    assert_eq!(entries.len(), 300);
    assert_eq!(
        audit::verify(&entries, &checkpoints, &key.verifying_key()),
        vec![]
    );
    // The root of the first 256 leaves was stored (by either writer), and proofs built
    // with it verify against the signed root.
    assert!(store.audit_node(8, 0).await.unwrap().is_some());
    let proof = audit::inclusion_proof(store, 10).await.unwrap().unwrap();
    let path: Vec<_> = proof.proof.iter().map(|p| hash(p)).collect();
    crypto::merkle::verify_inclusion(
        &crypto::merkle::leaf_hash(&hash(&proof.entry_hash)),
        proof.leaf_index,
        proof.tree_size,
        &path,
        &hash(&proof.root),
    )
    .unwrap();
    assert_eq!(proof.tree_size, 300);
}

#[tokio::test]
async fn the_writer_refuses_to_seal_a_tampered_chain() {
    let log = open_log(None).await;
    for i in 1..=3 {
        log.log.record(entry(i)).await.unwrap();
    }
    log.sql("UPDATE audit_entries SET status = 201 WHERE seq = 2")
        .await;
    // A writer that reads the chain from the store (here: a new process) refuses.
    let key = SigningKey::from_pkcs8_pem(&log.pem).unwrap();
    let public = key.verifying_key();
    let reader = AuditLog::with_config(log.store.clone(), key, config());
    assert!(reader.checkpoint().await.is_err());
    assert!(log.store.audit_checkpoints().await.unwrap().is_empty());
    // The writer that appended the entries seals the links it computed, not what is
    // stored now, so its checkpoint exposes the edit.
    log.log.checkpoint().await.unwrap();
    let (entries, checkpoints) = audit::load(&log.store).await.unwrap();
    assert!(audit::verify(&entries, &checkpoints, &public).contains(&Finding::Edited { seq: 2 }));
}

/// A restarted writer resumes from the frontier stored with the latest checkpoint:
/// its checkpoints cover the whole chain without re-reading what was sealed. A stored
/// frontier that does not match its checkpoint is not trusted: the chain is re-read.
#[tokio::test]
async fn a_restarted_writer_resumes_from_the_stored_frontier() {
    let log = open_log(None).await;
    log.fill(6).await;
    let key = || SigningKey::from_pkcs8_pem(&log.pem).unwrap();
    let restarted = AuditLog::with_config(log.store.clone(), key(), config());
    for i in 7..=8 {
        assert_eq!(restarted.record(entry(i)).await.unwrap().seq, i);
    }
    restarted.checkpoint().await.unwrap();
    assert_eq!(log.findings().await, vec![]);
    let sealed = log.store.audit_checkpoints().await.unwrap();
    assert_eq!(sealed.last().map(|c| c.size), Some(8));

    // An edit before the checkpoint: a writer resuming from the frontier does not read
    // that entry again (verification finds the edit), so it seals the new entries.
    log.sql("UPDATE audit_entries SET status = 500 WHERE seq = 2")
        .await;
    let resumed = AuditLog::with_config(log.store.clone(), key(), config());
    assert_eq!(resumed.record(entry(9)).await.unwrap().seq, 9);
    let checkpoint = resumed.checkpoint().await.unwrap().unwrap();
    assert_eq!(checkpoint.size, 9);
    assert_eq!(
        log.findings().await.first(),
        Some(&Finding::Edited { seq: 2 })
    );

    // A frontier that is not well-formed, or does not match its checkpoint, makes the
    // writer re-read the chain, which finds the edit and refuses to seal.
    let tampered = [
        "UPDATE audit_checkpoints SET frontier = 'not hex'",
        "UPDATE audit_checkpoints SET last_hash = '00' || substr(last_hash, 3)",
    ];
    for (n, tamper) in tampered.into_iter().enumerate() {
        let saved: Vec<(i64, String, String)> =
            store::sqlx::query_as("SELECT size, frontier, last_hash FROM audit_checkpoints")
                .fetch_all(log.store.pool())
                .await
                .unwrap();
        log.sql(tamper).await;
        let rereading = AuditLog::with_config(log.store.clone(), key(), config());
        let seq = 10 + n as i64;
        assert_eq!(rereading.record(entry(seq)).await.unwrap().seq, seq);
        let refused = rereading.checkpoint().await.unwrap_err().to_string();
        assert!(refused.contains("entry 2"), "{tamper}: {refused}");
        for (size, frontier, last_hash) in saved {
            store::sqlx::query(
                "UPDATE audit_checkpoints SET frontier = $1, last_hash = $2 WHERE size = $3",
            )
            .bind(frontier)
            .bind(last_hash)
            .bind(size)
            .execute(log.store.pool())
            .await
            .unwrap();
        }
    }
}

/// Requests append through the writer's own SQLite connection while changes are moved
/// from the outbox through the pool: both paths share the head lock, so the file holds
/// one chain with every entry of both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_and_pool_appends_on_one_sqlite_file_form_one_chain() {
    let log = open_log(None).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        for n in 0..2 {
            let writer = log.log.clone();
            tasks.push(tokio::spawn(async move {
                writer.record(entry(i * 3 + n)).await.unwrap().seq
            }));
        }
        // One append through the writer's connection before each through the pool.
        let seq = log.log.record(entry(i * 3 + 2)).await.unwrap().seq;
        tasks.push(tokio::spawn(async move { seq }));
        let name = types::TenantName::try_from(format!("t{i}").as_str()).unwrap();
        log.store.create_tenant(&name, false).await.unwrap();
        audit::chain_outbox(&log.store).await.unwrap();
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    audit::chain_outbox(&log.store).await.unwrap();
    log.log.checkpoint().await.unwrap();
    let (entries, checkpoints) = audit::load(&log.store).await.unwrap();
    assert_eq!(entries.len(), 80);
    let changes = entries
        .iter()
        .filter(|e| e.action == "tenant.create")
        .count();
    assert_eq!(changes, 20);
    seqs.sort();
    seqs.dedup();
    assert_eq!(seqs.len(), 60);
    assert_eq!(log.findings().await, vec![]);
    assert_eq!(checkpoints.last().map(|c| c.size), Some(80));
}

/// Inclusion proofs are built from the subtree roots the writer stores with each
/// checkpoint and the entries near the one proved, and equal the proofs computed
/// from every leaf. A stored root that was altered is caught by the check against
/// the signed root, and the proof is computed from the entries instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inclusion_proofs_from_stored_subtrees_equal_proofs_from_every_leaf() {
    use crypto::merkle;
    let log = open_log(None).await;
    let mut tasks = Vec::new();
    for i in 1..=700 {
        let writer = log.log.clone();
        tasks.push(tokio::spawn(async move {
            writer.record(entry(i)).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    log.log.checkpoint().await.unwrap();
    // 700 leaves: two complete subtrees of 256 and one of 512.
    let stored: Vec<(i64, i64)> =
        store::sqlx::query_as("SELECT level, idx FROM audit_nodes ORDER BY level, idx")
            .fetch_all(log.store.pool())
            .await
            .unwrap();
    assert_eq!(stored, [(8, 0), (8, 1), (9, 0)]);

    let (entries, _) = audit::load(&log.store).await.unwrap();
    let leaves: Vec<merkle::Hash> = entries
        .iter()
        .map(|e| merkle::leaf_hash(&hash(&e.entry_hash)))
        .collect();
    let expected = |seq: i64| -> Vec<String> {
        merkle::inclusion_proof(&leaves, seq as u64 - 1, 700)
            .unwrap()
            .iter()
            .map(hex::encode)
            .collect()
    };
    for seq in [1, 2, 100, 255, 256, 257, 511, 512, 513, 699, 700] {
        let proof = audit::inclusion_proof(&log.store, seq)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(proof.proof, expected(seq), "entry {seq}");
        assert_eq!(proof.root, hex::encode(merkle::root(&leaves)));
    }

    // Consistency proofs from every kind of kept size: empty, inside the first chunk,
    // on and off the stored subtrees' edges, and the whole tree.
    let key = log.log.signing_key().verifying_key();
    let latest = log.store.latest_checkpoint().await.unwrap().unwrap();
    // The consistency proof from `from` to the latest checkpoint, checked against the
    // proof and start head computed from every leaf.
    let consistency = |from: u64| {
        let (store, latest, leaves) = (log.store.clone(), latest.clone(), &leaves);
        async move {
            let proof = audit::consistency_proof(&store, from, &latest)
                .await
                .unwrap()
                .unwrap();
            let want = merkle::consistency_proof(leaves, from, 700).unwrap();
            let want: Vec<String> = want.iter().map(hex::encode).collect();
            assert_eq!(proof.proof, want, "{from}");
            let head = merkle::root(&leaves[..from as usize]);
            assert_eq!(proof.from_root, hex::encode(head), "{from}");
            proof
        }
    };
    let sizes = [0, 1, 3, 255, 256, 300, 511, 512, 513, 640, 699, 700];
    for from in sizes {
        let proof = consistency(from).await;
        let kept = merkle::Checkpoint::sign(
            log.log.signing_key(),
            from,
            merkle::root(&leaves[..from as usize]),
            1,
        );
        assert_eq!(
            audit::check_consistency(&kept, &proof, &key).unwrap().size,
            700
        );
    }

    // Entry 100's proof uses the root of leaves 256..512: altered, it is caught.
    log.sql("UPDATE audit_nodes SET hash = '00' || substr(hash, 3) WHERE level = 8 AND idx = 1")
        .await;
    let proof = audit::inclusion_proof(&log.store, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proof.proof, expected(100));
    // So is every consistency proof that uses it.
    for from in [1, 255, 300, 511] {
        consistency(from).await;
    }
    // Entry 600's proof reads no entry below 512: a row deleted there (which
    // verification reports) leaves it as signed.
    log.sql("DELETE FROM audit_entries WHERE seq = 50").await;
    let proof = audit::inclusion_proof(&log.store, 600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proof.proof, expected(600));
    // Nor do consistency proofs (and the head at their start) from sizes whose runs
    // of entries avoid it; built from every entry they would fail now.
    for from in [300, 512, 640, 700] {
        consistency(from).await;
    }
}

/// A verifier that kept a checkpoint detects a history rewritten and re-signed with
/// the server's own key: the rewritten log's consistency proof does not take the kept
/// checkpoint to its new head. An honest continuation passes, and a saved inclusion
/// proof fails when any of its fields is altered.
#[tokio::test]
async fn a_kept_checkpoint_exposes_a_rewritten_history() {
    let honest = open_log(None).await;
    honest.fill(10).await;
    let key = honest.log.signing_key().verifying_key();
    let kept = honest.store.latest_checkpoint().await.unwrap().unwrap();
    let kept =
        crypto::merkle::Checkpoint::from_note(&audit::checkpoint_note(&kept).unwrap()).unwrap();
    assert_eq!(kept.size, 10);

    // Honest growth: 10 → 16.
    for i in 11..=16 {
        honest.log.record(entry(i)).await.unwrap();
    }
    honest.log.checkpoint().await.unwrap();
    let latest = honest.store.latest_checkpoint().await.unwrap().unwrap();
    let proof = audit::consistency_proof(&honest.store, 10, &latest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        audit::check_consistency(&kept, &proof, &key).unwrap().size,
        16
    );
    // A kept checkpoint with the right size and root but another key's signature is
    // not this server's: refused.
    let stranger = SigningKey::generate();
    let foreign = crypto::merkle::Checkpoint::sign(&stranger, kept.size, kept.root, kept.timestamp);
    let error = audit::check_consistency(&foreign, &proof, &key)
        .unwrap_err()
        .to_string();
    assert!(error.contains("kept checkpoint is not signed"), "{error}");
    // Asked from another size than the kept one: refused, with the size to ask for.
    let other = audit::consistency_proof(&honest.store, 8, &latest)
        .await
        .unwrap()
        .unwrap();
    let error = audit::check_consistency(&kept, &other, &key)
        .unwrap_err()
        .to_string();
    assert!(error.contains("from=10"), "{error}");

    // The operator rewrites entry 5 and re-signs everything with the same key: every
    // checkpoint of the forked log verifies on its own.
    let forked = open_log(Some(&honest.pem)).await;
    for i in 1..=16 {
        let mut e = entry(i);
        if i == 5 {
            e.status = 403;
        }
        forked.log.record(e).await.unwrap();
    }
    forked.log.checkpoint().await.unwrap();
    assert_eq!(forked.findings().await, vec![]);
    let latest = forked.store.latest_checkpoint().await.unwrap().unwrap();
    let proof = audit::consistency_proof(&forked.store, 10, &latest)
        .await
        .unwrap()
        .unwrap();
    let error = audit::check_consistency(&kept, &proof, &key)
        .unwrap_err()
        .to_string();
    assert!(error.contains("the log forked"), "{error}");
    // Nor can the forked log claim the kept head as its own: the proof's checkpoint
    // is re-checked, so swapping in the honest log's signed head fails too.
    let mut spliced = proof.clone();
    spliced.checkpoint =
        audit::checkpoint_note(&honest.store.latest_checkpoint().await.unwrap().unwrap()).unwrap();
    assert!(audit::check_consistency(&kept, &spliced, &key).is_err());

    // Inclusion proofs: an honest one holds; each altered field makes it fail.
    let proof = audit::inclusion_proof(&honest.store, 7)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit::check_inclusion(&proof, &key).unwrap().size, 16);
    type Alteration = fn(&mut audit::InclusionProof);
    let alterations: [(&str, Alteration); 8] = [
        ("entry_hash", |p| p.entry_hash = flip(&p.entry_hash)),
        ("seq", |p| p.seq = 8),
        ("seq and leaf_index", |p| (p.seq, p.leaf_index) = (8, 7)),
        ("a path hash", |p| p.proof[1] = flip(&p.proof[1])),
        ("a shorter path", |p| drop(p.proof.pop())),
        ("root", |p| p.root = flip(&p.root)),
        ("tree_size", |p| p.tree_size = 15),
        ("the checkpoint's size", |p| {
            p.checkpoint = p.checkpoint.replacen("\n16\n", "\n15\n", 1)
        }),
    ];
    for (what, alter) in alterations {
        let mut altered = proof.clone();
        alter(&mut altered);
        assert!(
            audit::check_inclusion(&altered, &key).is_err(),
            "accepted an altered {what}"
        );
    }
    // Under another key nothing holds.
    assert!(audit::check_inclusion(&proof, &stranger.verifying_key()).is_err());
}

/// `hex` with its first digit changed.
fn flip(hex: &str) -> String {
    let first = if hex.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &hex[1..])
}
