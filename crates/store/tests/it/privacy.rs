//! Privacy records: settings upsert, vault and payload rows with expiry, purge and
//! erasure by subject tag, isolation between tenants.

use store::{Erased, NewPayload, NewVaultEntry, Store, StoreError};

use crate::support::tenant;

fn vault(id: &str, tenant_name: &str, subject: Option<&str>, expires_at: i64) -> NewVaultEntry {
    NewVaultEntry {
        id: id.into(),
        tenant: tenant(tenant_name),
        subject_tag: subject.map(str::to_owned),
        sealed: vec![1, 2, 3],
        expires_at,
    }
}

fn payload(tenant_name: &str, subject: Option<&str>, expires_at: i64) -> NewPayload {
    NewPayload {
        tenant: tenant(tenant_name),
        request_id: "req-1".into(),
        route: "/v1/embeddings".into(),
        subject_tag: subject.map(str::to_owned),
        sealed: vec![9; 40],
        expires_at,
    }
}

async fn privacy_records(store: Store) {
    let (acme, beta) = (tenant("acme"), tenant("beta"));
    store.create_tenant(&acme, false).await.unwrap();
    store.create_tenant(&beta, false).await.unwrap();

    assert_eq!(store.privacy_settings(&acme).await.unwrap(), None);
    let policies = serde_json::json!({"input": {"default": "redact"}});
    store
        .put_privacy_settings(&acme, &policies, Some(3600), 60)
        .await
        .unwrap();
    let replaced = store
        .put_privacy_settings(&acme, &policies, None, 120)
        .await
        .unwrap();
    let stored = store.privacy_settings(&acme).await.unwrap().unwrap();
    assert_eq!(stored, replaced);
    assert_eq!((stored.retention_secs, stored.vault_ttl_secs), (None, 120));
    assert_eq!(stored.policies, policies);
    assert!(matches!(
        store
            .put_privacy_settings(&tenant("ghost"), &policies, None, 1)
            .await,
        Err(StoreError::NotFound(_))
    ));

    let now = types::unix_now();
    store
        .insert_vault_entry(vault("v-live", "acme", Some("s1"), now + 100))
        .await
        .unwrap();
    store
        .insert_vault_entry(vault("v-old", "acme", None, now - 1))
        .await
        .unwrap();
    store
        .insert_vault_entry(vault("v-beta", "beta", Some("s1"), now + 100))
        .await
        .unwrap();
    let live = store.vault_entry(&acme, "v-live", now).await.unwrap();
    assert_eq!(live.unwrap().sealed, vec![1, 2, 3]);
    // Expired entries are gone for readers before any purge; others' are invisible.
    assert_eq!(store.vault_entry(&acme, "v-old", now).await.unwrap(), None);
    assert_eq!(store.vault_entry(&acme, "v-beta", now).await.unwrap(), None);

    store
        .insert_payload(payload("acme", Some("s1"), now + 100))
        .await
        .unwrap();
    store
        .insert_payload(payload("acme", Some("s2"), now + 100))
        .await
        .unwrap();
    store
        .insert_payload(payload("acme", None, now - 1))
        .await
        .unwrap();
    store
        .insert_payload(payload("beta", Some("s1"), now + 100))
        .await
        .unwrap();
    assert_eq!(store.list_payloads(&acme, now).await.unwrap().len(), 2);

    let purged = store.purge_expired(now).await.unwrap();
    assert_eq!(
        purged,
        Erased {
            payloads: 1,
            vault_entries: 1
        }
    );
    let erased = store.erase_subject_records(&acme, "s1").await.unwrap();
    assert_eq!(
        erased,
        Erased {
            payloads: 1,
            vault_entries: 1
        }
    );
    assert_eq!(store.list_payloads(&acme, now).await.unwrap().len(), 1);
    // The same tag in another tenant is another subject.
    assert_eq!(store.list_payloads(&beta, now).await.unwrap().len(), 1);
    assert!(store
        .vault_entry(&beta, "v-beta", now)
        .await
        .unwrap()
        .is_some());
}

crate::both_backends!(records, super::privacy_records);
