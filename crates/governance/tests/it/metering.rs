//! The usage meter: tallies add up per (tenant, key, model, day), a flush writes them
//! once, and a failed flush keeps its tally for the next one.

use governance::metering::Meter;
use store::{Store, UsageFilter};
use types::TenantName;

async fn open(path: &std::path::Path) -> Store {
    Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

fn rows(records: Vec<store::UsageRecord>) -> Vec<(String, String, i64, i64)> {
    records
        .into_iter()
        .map(|r| (r.key_id, r.model, r.requests, r.tokens))
        .collect()
}

#[tokio::test]
async fn tallies_are_written_once_and_kept_when_a_flush_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("charter.db");
    let store = open(&path).await;
    let acme = TenantName::try_from("acme").unwrap();
    store.create_tenant(&acme, false).await.unwrap();

    let meter = std::sync::Arc::new(Meter::new());
    meter.record(&acme, "k1", "mini", 4);
    meter.record(&acme, "k1", "mini", 6);
    meter.record(&acme, "k2", "mini", 1);
    assert_eq!(meter.flush(&store).await.unwrap(), 2);
    assert_eq!(meter.flush(&store).await.unwrap(), 0, "nothing twice");
    let usage = store.usage(&UsageFilter::default()).await.unwrap();
    assert_eq!(
        rows(usage),
        [
            ("k1".into(), "mini".into(), 2, 10),
            ("k2".into(), "mini".into(), 1, 1)
        ]
    );

    // The store goes away: the flush fails and the tally waits for the next one.
    meter.record(&acme, "k1", "mini", 5);
    store.close().await;
    assert!(meter.flush(&store).await.is_err());
    meter.record(&acme, "k1", "mini", 5);
    let reopened = open(&path).await;
    assert_eq!(meter.flush(&reopened).await.unwrap(), 1);
    let usage = reopened
        .usage(&UsageFilter {
            key_id: Some("k1".into()),
            ..UsageFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows(usage), [("k1".into(), "mini".into(), 4, 20)]);
}
