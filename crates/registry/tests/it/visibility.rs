//! Tenant isolation through the registry: list, show, versions, remove.

use registry::{Caller, RegistryError};
use types::ModelName;

use crate::support::{caller, request, tenant, write_tiny_model, TestRegistry};

#[tokio::test]
async fn tenants_only_see_their_own_and_shared_models() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    t.registry
        .import_dir(&folder, request("acme", "private"))
        .await
        .unwrap();
    let mut shared = request("acme", "shared");
    shared.shared = true;
    t.registry.import_dir(&folder, shared).await.unwrap();

    let acme = caller("acme");
    let beta = caller("beta");
    let names = |models: Vec<registry::ModelRecord>| {
        models
            .into_iter()
            .map(|m| m.name.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(t.registry.list(&acme).await.unwrap()),
        ["private", "shared"]
    );
    assert_eq!(names(t.registry.list(&beta).await.unwrap()), ["shared"]);
    assert_eq!(
        names(t.registry.list(&Caller::admin()).await.unwrap()),
        ["private", "shared"]
    );

    for text in ["private", "private:1"] {
        let model_ref = text.parse().unwrap();
        assert!(
            matches!(
                t.registry.show(&model_ref, &beta).await,
                Err(RegistryError::NotFound(_))
            ),
            "{text}"
        );
        assert!(
            matches!(
                t.registry.remove(&model_ref, &beta).await,
                Err(RegistryError::NotFound(_))
            ),
            "{text}"
        );
    }
    let private = ModelName::try_from("private").unwrap();
    assert!(matches!(
        t.registry.model(&private, &beta).await,
        Err(RegistryError::NotFound(_))
    ));
    assert_eq!(
        t.registry.model(&private, &acme).await.unwrap().tenant,
        tenant("acme")
    );
    assert!(matches!(
        t.registry.versions(&private, &beta).await,
        Err(RegistryError::NotFound(_))
    ));
    // The messages of "exists elsewhere" and "does not exist" are the same.
    let hidden = t
        .registry
        .show(&"private".parse().unwrap(), &beta)
        .await
        .unwrap_err();
    let missing = t
        .registry
        .show(&"private2".parse().unwrap(), &beta)
        .await
        .unwrap_err();
    assert_eq!(
        hidden.to_string().replace("private", "X"),
        missing.to_string().replace("private2", "X")
    );

    // Shared: readable, not removable by others.
    let (model, _) = t
        .registry
        .show(&"shared:1".parse().unwrap(), &beta)
        .await
        .unwrap();
    assert_eq!(model.tenant, tenant("acme"));
    assert!(matches!(
        t.registry.remove(&"shared".parse().unwrap(), &beta).await,
        Err(RegistryError::Forbidden(_))
    ));

    // The owner and the admin may remove.
    t.registry
        .remove(&"private:1".parse().unwrap(), &acme)
        .await
        .unwrap();
    assert_eq!(t.registry.versions(&private, &acme).await.unwrap().len(), 0);
    t.registry
        .remove(&"shared".parse().unwrap(), &Caller::admin())
        .await
        .unwrap();
    assert_eq!(
        names(t.registry.list(&beta).await.unwrap()),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn importing_for_a_missing_tenant_fails() {
    let t = TestRegistry::sqlite().await;
    let folder = t.folder("tiny");
    write_tiny_model(&folder, 1);
    let result = t.registry.import_dir(&folder, request("nobody", "m")).await;
    assert!(
        matches!(result, Err(RegistryError::NotFound(_))),
        "{result:?}"
    );
}
