//! Models and versions: numbering, visibility between tenants, resolve, delete.

use std::collections::BTreeSet;
use std::sync::Arc;

use store::{Caller, Manifest, ManifestFile, ModelCard, NewVersion, Store, StoreError};
use types::ModelRef;

use crate::support::{model, tenant};

fn manifest(tag: &str) -> Manifest {
    Manifest {
        files: vec![
            ManifestFile {
                path: "config.json".into(),
                size: 10,
                sha256: format!("{tag:0>64}"),
            },
            ManifestFile {
                path: "1_Pooling/config.json".into(),
                size: 5,
                sha256: "b".repeat(64),
            },
        ],
    }
}

fn new_version(tenant_name: &str, name: &str, shared: bool, tag: &str) -> NewVersion {
    NewVersion {
        tenant: tenant(tenant_name),
        name: model(name),
        shared,
        card: ModelCard {
            owner: Some("sentence-transformers".into()),
            license: Some("apache-2.0".into()),
            ..ModelCard::default()
        },
        manifest: manifest(tag),
    }
}

fn r(text: &str) -> ModelRef {
    text.parse().unwrap()
}

async fn versions_are_numbered_and_resolved(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    let v1 = store
        .insert_version(new_version("acme", "minilm", false, "1"))
        .await
        .unwrap();
    let v2 = store
        .insert_version(new_version("acme", "minilm", false, "2"))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v1.total_size, 15);
    let acme = Caller::tenant(tenant("acme"));

    let (m, latest) = store.resolve(&acme, &r("minilm")).await.unwrap();
    assert_eq!(latest, v2);
    assert_eq!(m.latest_version, Some(2));
    assert_eq!(m.card.license.as_deref(), Some("apache-2.0"));
    assert_eq!(store.resolve(&acme, &r("minilm:1")).await.unwrap().1, v1);
    assert!(matches!(
        store.resolve(&acme, &r("minilm:3")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .insert_version(new_version("nope", "minilm", false, "1"))
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Deleting the latest version does not free its number.
    store
        .delete_version(&acme, &model("minilm"), 2)
        .await
        .unwrap();
    assert_eq!(store.resolve(&acme, &r("minilm")).await.unwrap().1, v1);
    let v3 = store
        .insert_version(new_version("acme", "minilm", false, "3"))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    let numbers: Vec<i64> = store
        .list_versions(&acme, &model("minilm"))
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(numbers, [1, 3]);

    let digests = store.referenced_digests().await.unwrap();
    let expect: BTreeSet<String> = [
        format!("{:0>64}", "1"),
        format!("{:0>64}", "3"),
        "b".repeat(64),
    ]
    .into_iter()
    .collect();
    assert_eq!(digests, expect);

    store
        .delete_version(&acme, &model("minilm"), 1)
        .await
        .unwrap();
    store
        .delete_version(&acme, &model("minilm"), 3)
        .await
        .unwrap();
    assert!(matches!(
        store.resolve(&acme, &r("minilm")).await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_model(&acme, &model("minilm")).await.unwrap();
    assert!(store.list_models(&acme).await.unwrap().is_empty());
    assert!(store.referenced_digests().await.unwrap().is_empty());
}
crate::both_backends!(numbering, super::versions_are_numbered_and_resolved);

async fn tenants_are_isolated(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store.create_tenant(&tenant("beta"), false).await.unwrap();
    store
        .insert_version(new_version("acme", "secret", false, "1"))
        .await
        .unwrap();
    store
        .insert_version(new_version("acme", "public", true, "2"))
        .await
        .unwrap();
    store
        .insert_version(new_version("beta", "own", false, "3"))
        .await
        .unwrap();
    let acme = Caller::tenant(tenant("acme"));
    let beta = Caller::tenant(tenant("beta"));
    let names = |models: Vec<store::ModelRecord>| {
        models
            .into_iter()
            .map(|m| format!("{}/{}", m.tenant, m.name))
            .collect::<Vec<_>>()
    };

    assert_eq!(
        names(store.list_models(&acme).await.unwrap()),
        ["acme/public", "acme/secret"]
    );
    assert_eq!(
        names(store.list_models(&beta).await.unwrap()),
        ["acme/public", "beta/own"]
    );
    assert_eq!(
        names(store.list_models(&Caller::admin()).await.unwrap()),
        ["acme/public", "acme/secret", "beta/own"]
    );

    // beta cannot show, list versions of, or delete acme's private model: not found.
    let secret = model("secret");
    assert!(matches!(
        store.resolve(&beta, &r("secret")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.resolve(&beta, &r("secret:1")).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.list_versions(&beta, &secret).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_model(&beta, &secret).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_version(&beta, &secret, 1).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.resolve(&acme, &r("secret")).await.is_ok());

    // The shared model is readable by beta, but not deletable.
    assert!(store.resolve(&beta, &r("public:1")).await.is_ok());
    assert_eq!(
        store
            .list_versions(&beta, &model("public"))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(matches!(
        store.delete_model(&beta, &model("public")).await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        store.delete_version(&beta, &model("public"), 1).await,
        Err(StoreError::Forbidden(_))
    ));

    // A same-named model: each tenant resolves its own first.
    store
        .insert_version(new_version("beta", "public", false, "4"))
        .await
        .unwrap();
    let (m, _) = store.resolve(&beta, &r("public")).await.unwrap();
    assert_eq!(m.tenant.as_str(), "beta");
    let (m, _) = store.resolve(&acme, &r("public")).await.unwrap();
    assert_eq!(m.tenant.as_str(), "acme");
    // An admin outside both tenants must choose; acting as a tenant picks its model.
    assert!(matches!(
        store.resolve(&Caller::admin(), &r("public")).await,
        Err(StoreError::Ambiguous(_))
    ));
    let admin_as_beta = Caller {
        tenant: tenant("beta"),
        is_admin: true,
    };
    assert_eq!(
        store
            .resolve(&admin_as_beta, &r("public"))
            .await
            .unwrap()
            .0
            .tenant
            .as_str(),
        "beta"
    );

    // The admin may delete anything.
    store.delete_model(&Caller::admin(), &secret).await.unwrap();
    assert!(matches!(
        store.resolve(&acme, &r("secret")).await,
        Err(StoreError::NotFound(_))
    ));
}
crate::both_backends!(isolation, super::tenants_are_isolated);

async fn card_updates_and_sharing(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store
        .insert_version(new_version("acme", "m", false, "1"))
        .await
        .unwrap();
    let mut second = new_version("acme", "m", true, "2");
    second.card = ModelCard {
        owner: None,
        license: Some("mit".into()),
        description: Some("d".into()),
        ..ModelCard::default()
    };
    store.insert_version(second).await.unwrap();
    let m = store
        .find_model(&Caller::admin(), &model("m"))
        .await
        .unwrap();
    assert!(m.shared);
    assert_eq!(
        m.card.owner.as_deref(),
        Some("sentence-transformers"),
        "None keeps the owner"
    );
    assert_eq!(m.card.license.as_deref(), Some("mit"));
    assert_eq!(m.card.description.as_deref(), Some("d"));
    // Importing without --shared does not unshare.
    store
        .insert_version(new_version("acme", "m", false, "3"))
        .await
        .unwrap();
    assert!(
        store
            .find_model(&Caller::admin(), &model("m"))
            .await
            .unwrap()
            .shared
    );
}
crate::both_backends!(cards, super::card_updates_and_sharing);

async fn concurrent_inserts_get_distinct_numbers(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .insert_version(new_version("acme", "racy", false, &i.to_string()))
                .await
                .unwrap()
                .version
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=12).collect::<Vec<i64>>());
    let models = store.list_models(&Caller::admin()).await.unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].latest_version, Some(12));
}
crate::both_backends!(concurrency, super::concurrent_inserts_get_distinct_numbers);
