//! Model cards (every field round-trips, import keeps unstated fields, replace clears),
//! signatures (replaced per key, gone with their version) and tenants' trusted keys and
//! serving flags, on both backends.

use store::{
    Caller, Manifest, ManifestFile, ModelCard, NewVersion, ServingPolicy, SignatureRecord, Store,
    StoreError,
};
use types::Day;

use crate::support::{model, tenant};

fn new_version(card: ModelCard) -> NewVersion {
    NewVersion {
        tenant: tenant("acme"),
        name: model("m"),
        shared: false,
        card,
        manifest: Manifest {
            files: vec![ManifestFile {
                path: "config.json".into(),
                size: 2,
                sha256: "c".repeat(64),
            }],
        },
    }
}

fn full_card() -> ModelCard {
    ModelCard {
        owner: Some("Acme".into()),
        license: Some("MIT OR Apache-2.0".into()),
        description: Some("d".into()),
        intended_use: Some("search".into()),
        out_of_scope_use: Some("medical advice".into()),
        permitted_tenants: Some(vec![tenant("a"), tenant("b")]),
        commercial_use: Some(false),
        license_expires: Some("2030-01-31".parse::<Day>().unwrap()),
        attribution: Some("© Acme".into()),
    }
}

crate::both_backends!(cards_round_trip, super::cards_round_trip);

async fn cards_round_trip(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store
        .insert_version(new_version(full_card()))
        .await
        .unwrap();
    let admin = Caller::admin();
    let found = store.find_model(&admin, &model("m")).await.unwrap();
    assert_eq!(found.card, full_card());
    // A later import that states only the licence keeps the rest.
    let licence_only = ModelCard {
        license: Some("cc-by-4.0".into()),
        commercial_use: Some(true),
        ..ModelCard::default()
    };
    store
        .insert_version(new_version(licence_only))
        .await
        .unwrap();
    let found = store.find_model(&admin, &model("m")).await.unwrap();
    assert_eq!(found.card.license.as_deref(), Some("cc-by-4.0"));
    assert_eq!(found.card.commercial_use, Some(true));
    assert_eq!(found.card.permitted_tenants, full_card().permitted_tenants);
    // Replacing the card clears what the new one does not state.
    let replaced = ModelCard {
        attribution: Some("x".into()),
        ..ModelCard::default()
    };
    store
        .set_card(&admin, &model("m"), &replaced)
        .await
        .unwrap();
    let found = store.find_model(&admin, &model("m")).await.unwrap();
    assert_eq!(found.card, replaced);
    // Another tenant cannot see (so cannot change) a private model's card.
    store.create_tenant(&tenant("other"), false).await.unwrap();
    let other = Caller::tenant(tenant("other"));
    assert!(matches!(
        store.set_card(&other, &model("m"), &full_card()).await,
        Err(StoreError::NotFound(_))
    ));
}

crate::both_backends!(signatures_and_trust, super::signatures_and_trust);

async fn signatures_and_trust(store: Store) {
    let acme = tenant("acme");
    store.create_tenant(&acme, true).await.unwrap();
    assert_eq!(
        store.serving_policy(&acme).await.unwrap(),
        ServingPolicy {
            commercial: true,
            require_signed_models: false
        }
    );
    store.set_require_signed_models(&acme, true).await.unwrap();
    store.set_commercial(&acme, false).await.unwrap();
    assert_eq!(
        store.serving_policy(&acme).await.unwrap(),
        ServingPolicy {
            commercial: false,
            require_signed_models: true
        }
    );
    assert!(matches!(
        store.serving_policy(&tenant("nobody")).await,
        Err(StoreError::NotFound(_))
    ));

    let version = store
        .insert_version(new_version(ModelCard::default()))
        .await
        .unwrap();
    let signature = |key_id: &str, statement: &str| SignatureRecord {
        model_id: version.model_id,
        version: version.version,
        key_id: key_id.into(),
        public_key: "pem".into(),
        manifest_sha256: "d".repeat(64),
        statement: statement.into(),
        signed_at: 1,
    };
    store
        .put_signature(&signature("k1", "first"))
        .await
        .unwrap();
    store
        .put_signature(&signature("k1", "again"))
        .await
        .unwrap();
    store
        .put_signature(&signature("k2", "other"))
        .await
        .unwrap();
    let stored = store
        .signatures(version.model_id, version.version)
        .await
        .unwrap();
    let statements: Vec<&str> = stored.iter().map(|s| s.statement.as_str()).collect();
    assert_eq!(statements, ["again", "other"]);
    store
        .delete_version(&Caller::admin(), &model("m"), version.version)
        .await
        .unwrap();
    assert!(store
        .signatures(version.model_id, version.version)
        .await
        .unwrap()
        .is_empty());

    store.trust_key(&acme, "k1", "pem-1").await.unwrap();
    store.trust_key(&acme, "k1", "pem-1b").await.unwrap();
    store.trust_key(&acme, "k2", "pem-2").await.unwrap();
    let keys = store.trusted_keys(&acme).await.unwrap();
    let keys: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.public_key.as_str()))
        .collect();
    assert_eq!(keys, [("k1", "pem-1b"), ("k2", "pem-2")]);
    store.distrust_key(&acme, "k1").await.unwrap();
    assert!(matches!(
        store.distrust_key(&acme, "k1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.trust_key(&tenant("nobody"), "k", "pem").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.trusted_keys(&acme).await.unwrap().len(), 1);
}

crate::both_backends!(changes_are_audited, super::changes_are_audited);

fn link(seq: i64, prev: &str, _: &store::NewAuditEntry) -> Result<String, StoreError> {
    Ok(format!("{seq}<{prev}"))
}

/// Card, flag, signature and trust changes record themselves (migration 0009); an
/// import that restates the card and an unchanged card record nothing of their own.
async fn changes_are_audited(store: Store) {
    let acme = tenant("acme");
    store.create_tenant(&acme, false).await.unwrap();
    let version = store
        .insert_version(new_version(full_card()))
        .await
        .unwrap();
    store
        .insert_version(new_version(full_card()))
        .await
        .unwrap();
    let admin = Caller::admin();
    store
        .set_card(&admin, &model("m"), &full_card())
        .await
        .unwrap();
    store
        .set_card(&admin, &model("m"), &ModelCard::default())
        .await
        .unwrap();
    store.set_require_signed_models(&acme, true).await.unwrap();
    store.set_require_signed_models(&acme, true).await.unwrap();
    store
        .put_signature(&SignatureRecord {
            model_id: version.model_id,
            version: version.version,
            key_id: "k1".into(),
            public_key: "pem".into(),
            manifest_sha256: "d".repeat(64),
            statement: "{}".into(),
            signed_at: 1,
        })
        .await
        .unwrap();
    store.trust_key(&acme, "k1", "pem").await.unwrap();
    store.distrust_key(&acme, "k1").await.unwrap();
    let records = store.chain_audit_outbox(1000, link).await.unwrap();
    let seen: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.entry.action.as_str(), r.entry.resource.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("tenant.create", "tenant/acme"),
            ("model.version.create", "model/m:1"),
            ("model.version.create", "model/m:2"),
            ("model.card.update", "model/m"),
            ("tenant.policy.update", "tenant/acme"),
            ("model.version.sign", "model/m:1/signature/k1"),
            ("tenant.key.trust", "trusted-key/k1"),
            ("tenant.key.distrust", "trusted-key/k1"),
        ]
    );
    assert!(records
        .iter()
        .all(|r| r.entry.tenant.as_deref() == Some("acme")));
}
