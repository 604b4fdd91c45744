//! The job queue and datasets on both backends: idempotent insert, atomic claim,
//! heartbeat with cancel, takeover of stale jobs, finish only by the holder.

use store::{Caller, JobStatus, NewDataset, NewJob, Store};

use crate::support::{model, tenant};

fn new_job(id: &str, key: Option<&str>) -> NewJob {
    NewJob {
        id: id.to_owned(),
        tenant: tenant("acme"),
        kind: "train".to_owned(),
        request: serde_json::json!({"kind": "train", "resolved": {"dataset_digest": "d1"}}),
        idempotency_key: key.map(str::to_owned),
    }
}

async fn job_queue(store: Store) {
    store.create_tenant(&tenant("acme"), false).await.unwrap();
    store.create_tenant(&tenant("other"), false).await.unwrap();
    let acme = Caller::tenant(tenant("acme"));
    let other = Caller::tenant(tenant("other"));
    store
        .insert_dataset(NewDataset {
            tenant: tenant("acme"),
            name: model("data"),
            digest: "d0".into(),
            format: "jsonl".into(),
            size: 10,
            n_rows: 2,
            columns: serde_json::json!({"columns": []}),
        })
        .await
        .unwrap();
    assert!(store.find_dataset(&other, &model("data")).await.is_err());

    let (first, created) = store.insert_job(new_job("j1", Some("k"))).await.unwrap();
    assert!(created);
    let (again, created) = store.insert_job(new_job("j2", Some("k"))).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, first.id);
    assert!(store.find_job(&other, "j1").await.is_err());

    let claimed = store.claim_next_job("r1").await.unwrap().unwrap();
    assert_eq!((claimed.status, claimed.attempts), (JobStatus::Running, 1));
    assert!(store.claim_next_job("r2").await.unwrap().is_none());
    let progress = serde_json::json!({"step": 3});
    assert_eq!(
        store
            .job_heartbeat("j1", "r1", &progress, Some("c1"))
            .await
            .unwrap(),
        Some(false)
    );
    assert_eq!(
        store
            .job_heartbeat("j1", "r2", &progress, None)
            .await
            .unwrap(),
        None
    );
    store.cancel_job(&acme, "j1").await.unwrap();
    assert_eq!(
        store
            .job_heartbeat("j1", "r1", &progress, None)
            .await
            .unwrap(),
        Some(true)
    );

    // r1 dies; r2 takes the job over and only r2 may finish it.
    let taken = store
        .take_over_stale_jobs("r2", types::unix_now())
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].checkpoint_digest.as_deref(), Some("c1"));
    assert!(!store
        .finish_job("j1", "r1", JobStatus::Failed, None, Some("x"))
        .await
        .unwrap());
    assert!(store
        .finish_job("j1", "r2", JobStatus::Cancelled, None, None)
        .await
        .unwrap());
    assert_eq!(
        store.find_job(&acme, "j1").await.unwrap().status,
        JobStatus::Cancelled
    );
    let digests = store.referenced_digests().await.unwrap();
    assert!(digests.contains("d0"), "dataset blobs are kept");
    assert_eq!(store.list_jobs(&acme, 10).await.unwrap().len(), 1);
    assert!(store.list_jobs(&other, 10).await.unwrap().is_empty());
}

crate::both_backends!(job_queue_on, super::job_queue);
