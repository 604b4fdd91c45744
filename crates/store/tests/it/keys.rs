//! API keys: create, look up, list per tenant, revoke, isolation between tenants.

use store::{Caller, KeyLimits, NewApiKey, Store, StoreError};
use types::{Scope, Scopes};

use crate::support::tenant;

fn new_key(key_id: &str, tenant_name: &str) -> NewApiKey {
    NewApiKey {
        key_id: key_id.into(),
        tenant: tenant(tenant_name),
        secret_hash: vec![0xde, 0xad, 0xbe, 0xef, 0],
        scopes: Scopes::new(vec![Scope::Inference, Scope::ModelsRead]),
        description: format!("key {key_id}"),
        expires_at: None,
        limits: KeyLimits::default(),
    }
}

async fn keys_lifecycle(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store.create_tenant(&tenant("beta"), false).await.unwrap();

    let mut with_limits = new_key("a1", "acme");
    with_limits.limits = KeyLimits {
        rpm: Some(60),
        tpm: None,
        tpd: Some(1_000_000),
    };
    with_limits.expires_at = Some(4_000_000_000);
    let a1 = store.create_key(with_limits).await.unwrap();
    assert_eq!(a1.tenant.as_str(), "acme");
    assert_eq!(a1.secret_hash, vec![0xde, 0xad, 0xbe, 0xef, 0]);
    assert_eq!(
        a1.scopes,
        Scopes::parse_list("inference,models:read").unwrap()
    );
    assert_eq!(a1.limits.rpm, Some(60));
    assert_eq!(a1.limits.tpm, None);
    assert_eq!(a1.expires_at, Some(4_000_000_000));
    assert!(a1.is_active(types::unix_now()));
    assert!(!a1.is_active(4_000_000_000));

    store.create_key(new_key("a2", "acme")).await.unwrap();
    store.create_key(new_key("b1", "beta")).await.unwrap();
    assert!(matches!(
        store.create_key(new_key("a1", "beta")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_key(new_key("x1", "nope")).await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(store.key_by_id("a1").await.unwrap(), Some(a1.clone()));
    assert_eq!(store.key_by_id("zz").await.unwrap(), None);

    let ids =
        |keys: Vec<store::ApiKeyRecord>| keys.into_iter().map(|k| k.key_id).collect::<Vec<_>>();
    let acme = Caller::tenant(tenant("acme"));
    let beta = Caller::tenant(tenant("beta"));
    assert_eq!(ids(store.list_keys(&acme).await.unwrap()), ["a1", "a2"]);
    assert_eq!(ids(store.list_keys(&beta).await.unwrap()), ["b1"]);
    assert_eq!(
        ids(store.list_keys(&Caller::admin()).await.unwrap()),
        ["a1", "a2", "b1"]
    );

    // Another tenant's key is not found, and stays active.
    assert!(matches!(
        store.revoke_key(&beta, "a1").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store
        .key_by_id("a1")
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());

    let revoked = store.revoke_key(&acme, "a1").await.unwrap();
    let revoked_at = revoked.revoked_at.expect("revoked");
    assert!(!revoked.is_active(types::unix_now()));
    let again = store.revoke_key(&Caller::admin(), "a1").await.unwrap();
    assert_eq!(
        again.revoked_at,
        Some(revoked_at),
        "the first revocation time is kept"
    );
    store.revoke_key(&Caller::admin(), "b1").await.unwrap();
    assert!(matches!(
        store.revoke_key(&acme, "nope").await,
        Err(StoreError::NotFound(_))
    ));
}
crate::both_backends!(lifecycle, super::keys_lifecycle);
