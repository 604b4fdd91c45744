//! Tenant limits (set, cleared, seen through the key lookup) and metered usage
//! (upserts add up, filters by tenant, key, model and day range).

use store::{KeyLimits, NewApiKey, Store, StoreError, UsageFilter, UsageRecord};
use types::{Day, Scopes};

use crate::support::tenant;

async fn tenant_limits(store: Store) {
    let acme = store.create_tenant(&tenant("acme"), false).await.unwrap();
    assert!(acme.limits.is_unlimited());
    let limits = KeyLimits {
        rpm: Some(10),
        tpm: None,
        tpd: Some(5_000),
    };
    let updated = store
        .set_tenant_limits(&tenant("acme"), limits)
        .await
        .unwrap();
    assert_eq!(updated.limits, limits);
    assert_eq!(
        store
            .tenant_by_name(&tenant("acme"))
            .await
            .unwrap()
            .unwrap()
            .limits,
        limits
    );
    assert!(matches!(
        store.set_tenant_limits(&tenant("nope"), limits).await,
        Err(StoreError::NotFound(_))
    ));

    // Authentication reads the tenant's limits with the key, in one query.
    let key = store
        .create_key(NewApiKey {
            key_id: "k1".into(),
            tenant: tenant("acme"),
            secret_hash: vec![1],
            scopes: Scopes::parse_list("inference").unwrap(),
            description: String::new(),
            expires_at: None,
            limits: KeyLimits {
                rpm: Some(3),
                ..KeyLimits::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(key.limits.rpm, Some(3));
    assert_eq!(key.tenant_limits, limits);

    store
        .set_tenant_limits(&tenant("acme"), KeyLimits::default())
        .await
        .unwrap();
    let key = store.key_by_id("k1").await.unwrap().unwrap();
    assert!(key.tenant_limits.is_unlimited());
}
crate::both_backends!(limits_of_tenants, super::tenant_limits);

fn delta(tenant_name: &str, key: &str, model: &str, day: &str, tokens: i64) -> UsageRecord {
    UsageRecord {
        tenant: tenant(tenant_name),
        key_id: key.into(),
        model: model.into(),
        day: day.parse().unwrap(),
        requests: 1,
        tokens,
    }
}

async fn usage_adds_up(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store.create_tenant(&tenant("beta"), false).await.unwrap();
    store
        .add_usage(&[
            delta("acme", "k1", "mini", "2026-01-01", 10),
            delta("acme", "k1", "mini", "2026-01-02", 20),
            delta("acme", "k2", "mini", "2026-01-02", 5),
            delta("beta", "k3", "mlp", "2026-01-02", 7),
            delta("gone", "k9", "mini", "2026-01-02", 7),
        ])
        .await
        .unwrap();
    // A second flush adds to the same rows.
    store
        .add_usage(&[delta("acme", "k1", "mini", "2026-01-02", 22)])
        .await
        .unwrap();
    store.add_usage(&[]).await.unwrap();

    let rows = |filter: UsageFilter| {
        let store = store.clone();
        async move {
            store
                .usage(&filter)
                .await
                .unwrap()
                .into_iter()
                .map(|r| {
                    (
                        r.day.to_string(),
                        r.tenant.to_string(),
                        r.key_id,
                        r.model,
                        r.requests,
                        r.tokens,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let row = |day: &str, tenant: &str, key: &str, model: &str, requests, tokens| {
        (
            day.to_owned(),
            tenant.to_owned(),
            key.to_owned(),
            model.to_owned(),
            requests,
            tokens,
        )
    };
    assert_eq!(
        rows(UsageFilter::default()).await,
        [
            row("2026-01-01", "acme", "k1", "mini", 1, 10),
            row("2026-01-02", "acme", "k1", "mini", 2, 42),
            row("2026-01-02", "acme", "k2", "mini", 1, 5),
            row("2026-01-02", "beta", "k3", "mlp", 1, 7),
        ]
    );
    let day = |text: &str| Some(text.parse::<Day>().unwrap());
    assert_eq!(
        rows(UsageFilter {
            tenant: Some(tenant("acme")),
            from: day("2026-01-02"),
            to: day("2026-01-02"),
            ..UsageFilter::default()
        })
        .await,
        [
            row("2026-01-02", "acme", "k1", "mini", 2, 42),
            row("2026-01-02", "acme", "k2", "mini", 1, 5),
        ]
    );
    assert_eq!(
        rows(UsageFilter {
            key_id: Some("k1".into()),
            to: day("2026-01-01"),
            ..UsageFilter::default()
        })
        .await,
        [row("2026-01-01", "acme", "k1", "mini", 1, 10)]
    );
    let on = |day: &str| day.parse::<Day>().unwrap();
    assert_eq!(
        store
            .tokens_on_day(&tenant("acme"), None, on("2026-01-02"))
            .await
            .unwrap(),
        47
    );
    assert_eq!(
        store
            .tokens_on_day(&tenant("acme"), Some("k1"), on("2026-01-02"))
            .await
            .unwrap(),
        42
    );
    assert_eq!(
        store
            .tokens_on_day(&tenant("acme"), Some("k9"), on("2026-01-02"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .tokens_on_day(&tenant("beta"), None, on("2026-01-03"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        rows(UsageFilter {
            model: Some("mlp".into()),
            ..UsageFilter::default()
        })
        .await,
        [row("2026-01-02", "beta", "k3", "mlp", 1, 7)]
    );
}
crate::both_backends!(usage_rows, super::usage_adds_up);
