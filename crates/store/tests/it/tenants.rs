//! Tenants: the admin tenant from the migration, create, list, get, delete.

use store::{NewApiKey, Store, StoreError};
use types::Scopes;

use crate::support::tenant;

async fn tenants_lifecycle(store: Store) {
    let admin = store.tenant_by_name(&tenant("admin")).await.unwrap();
    assert!(admin.is_some(), "the migration creates the admin tenant");

    let acme = store.create_tenant(&tenant("acme"), true).await.unwrap();
    assert_eq!(acme.name.as_str(), "acme");
    assert!(acme.commercial);
    assert!(matches!(
        store.create_tenant(&tenant("acme"), false).await,
        Err(StoreError::Conflict(_))
    ));
    store.create_tenant(&tenant("beta"), false).await.unwrap();

    let names: Vec<String> = store
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["acme", "admin", "beta"]);
    assert_eq!(
        store.tenant_by_name(&tenant("acme")).await.unwrap(),
        Some(acme)
    );
    assert_eq!(store.tenant_by_name(&tenant("nope")).await.unwrap(), None);

    // A tenant that owns a key cannot be deleted; an empty one can.
    store
        .create_key(NewApiKey {
            key_id: "k1".into(),
            tenant: tenant("acme"),
            secret_hash: vec![1, 2, 3],
            scopes: Scopes::admin(),
            description: String::new(),
            expires_at: None,
            limits: Default::default(),
        })
        .await
        .unwrap();
    assert!(matches!(
        store.delete_tenant(&tenant("acme")).await,
        Err(StoreError::Conflict(_))
    ));
    store.delete_tenant(&tenant("beta")).await.unwrap();
    assert!(matches!(
        store.delete_tenant(&tenant("beta")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_tenant(&tenant("admin")).await,
        Err(StoreError::Forbidden(_))
    ));
}
crate::both_backends!(lifecycle, super::tenants_lifecycle);

#[tokio::test]
async fn sqlite_file_is_reopened_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store.close().await;
    let store = Store::connect(&url).await.unwrap();
    assert!(store
        .tenant_by_name(&tenant("acme"))
        .await
        .unwrap()
        .is_some());
    let mode: String = store::sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(matches!(
        Store::connect("mysql://x/y").await,
        Err(StoreError::InvalidUrl(_))
    ));
    assert!(Store::connect("").await.is_err());
}
