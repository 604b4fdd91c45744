//! Changes record themselves for the audit log in their own transaction (the triggers
//! of migration 0008), on both backends; a change whose record cannot be written fails.

use store::{Caller, KeyLimits, NewApiKey, NewDataset, NewJob, Store};
use types::{Scope, Scopes};

use crate::support::{model, tenant};

fn key(id: &str) -> NewApiKey {
    NewApiKey {
        key_id: id.into(),
        tenant: tenant("acme"),
        secret_hash: vec![1, 2, 3],
        scopes: Scopes::new(vec![Scope::Inference]),
        description: String::new(),
        expires_at: None,
        limits: KeyLimits::default(),
    }
}

/// A link that only numbers entries: the store does not hash, its caller does.
fn link(seq: i64, prev: &str, _: &store::NewAuditEntry) -> Result<String, store::StoreError> {
    Ok(format!("{seq}<{prev}"))
}

async fn changes_record_themselves(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store.create_key(key("k1")).await.unwrap();
    let caller = Caller::tenant(tenant("acme"));
    store.revoke_key(&caller, "k1").await.unwrap();
    let dataset = NewDataset {
        tenant: tenant("acme"),
        name: model("rows"),
        digest: "d1".into(),
        format: "jsonl".into(),
        size: 10,
        n_rows: 1,
        columns: serde_json::json!({}),
    };
    store.insert_dataset(dataset).await.unwrap();
    store.delete_dataset(&caller, &model("rows")).await.unwrap();
    let job = NewJob {
        id: "j1".into(),
        tenant: tenant("acme"),
        kind: "train".into(),
        request: serde_json::json!({}),
        idempotency_key: None,
    };
    store.insert_job(job).await.unwrap();
    store.cancel_job(&caller, "j1").await.unwrap();
    assert_eq!(store.audit_outbox_len().await.unwrap(), 7);

    let records = store.chain_audit_outbox(1000, link).await.unwrap();
    let seen: Vec<(&str, Option<&str>, &str)> = records
        .iter()
        .map(|r| {
            let e = &r.entry;
            (e.action.as_str(), e.tenant.as_deref(), e.resource.as_str())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("tenant.create", Some("acme"), "tenant/acme"),
            ("key.create", Some("acme"), "key/k1"),
            ("key.revoke", Some("acme"), "key/k1"),
            ("dataset.create", Some("acme"), "dataset/rows@d1"),
            ("dataset.delete", Some("acme"), "dataset/rows"),
            ("job.create", Some("acme"), "job/j1"),
            ("job.cancelled", Some("acme"), "job/j1"),
        ]
    );
    // In the chain, in order, and gone from the outbox.
    assert_eq!(records.last().unwrap().seq, 7);
    assert_eq!(records[1].prev_hash, records[0].entry_hash);
    assert_eq!(store.audit_outbox_len().await.unwrap(), 0);
    assert!(store
        .chain_audit_outbox(1000, link)
        .await
        .unwrap()
        .is_empty());
}
crate::both_backends!(changes_on, super::changes_record_themselves);

/// If the record cannot be written, the change does not happen.
#[tokio::test]
async fn a_change_whose_record_cannot_be_written_is_not_made() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("charter.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER audit_unwritable BEFORE INSERT ON audit_outbox \
         BEGIN SELECT RAISE(ABORT, 'audit log unavailable'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let error = store.create_key(key("k1")).await.unwrap_err();
    assert!(
        error.to_string().contains("audit log unavailable"),
        "{error}"
    );
    assert!(
        store.key_by_id("k1").await.unwrap().is_none(),
        "the key was created anyway"
    );
    assert!(store.delete_tenant(&tenant("acme")).await.is_err());
    let tenants = store.list_tenants().await.unwrap();
    assert!(
        tenants.iter().any(|t| t.name.as_str() == "acme"),
        "the tenant was deleted anyway"
    );
}
