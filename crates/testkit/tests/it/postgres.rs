//! `TempPostgres`: starts, serves the store, creates databases, stops and cleans up.

use std::net::TcpStream;

use testkit::postgres::TempPostgres;
use types::TenantName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temp_postgres_serves_and_cleans_up() {
    let pg = TempPostgres::start_async().await.unwrap();
    assert!(pg.url().starts_with("postgres://postgres@127.0.0.1:"));
    let store = store::Store::connect(&pg.url()).await.unwrap();
    let admin = TenantName::try_from(types::ADMIN_TENANT).unwrap();
    assert!(store.tenant_by_name(&admin).await.unwrap().is_some());

    // A second database on the same cluster is independent.
    let other_url = pg.create_database("second").unwrap();
    let other = store::Store::connect(&other_url).await.unwrap();
    let acme = TenantName::try_from("acme").unwrap();
    other.create_tenant(&acme, false).await.unwrap();
    assert!(store.tenant_by_name(&acme).await.unwrap().is_none());
    store.close().await;
    other.close().await;

    let port = pg.port();
    let dir = pg.dir().to_owned();
    assert!(dir.join("data").join("PG_VERSION").is_file());
    drop(pg);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the server stopped"
    );
    assert!(!dir.exists(), "the cluster directory is removed");
}

#[test]
fn two_clusters_run_side_by_side() {
    let a = TempPostgres::start().unwrap();
    let b = TempPostgres::start().unwrap();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.dir(), b.dir());
}
