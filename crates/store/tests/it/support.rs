//! Runs one async test body against both backends.

use store::Store;
use types::{ModelName, TenantName};

/// Whatever must outlive the store (temp dir or PostgreSQL cluster).
pub enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] testkit::postgres::TempPostgres),
}

pub async fn sqlite() -> (Guard, Store) {
    let dir = testkit::tempdir::tempdir("store").unwrap();
    let path = dir.path().join("charter.db");
    let store = Store::connect(path.to_str().unwrap()).await.unwrap();
    (Guard::Sqlite(dir), store)
}

pub async fn postgres() -> (Guard, Store) {
    let pg = tokio::task::spawn_blocking(testkit::postgres::TempPostgres::start)
        .await
        .unwrap()
        .expect("starting PostgreSQL");
    let store = Store::connect(&pg.url()).await.unwrap();
    (Guard::Postgres(pg), store)
}

/// Declares `mod $name { sqlite(); postgres(); }` running `$body(store)` on each.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let (_guard, store) = $crate::support::sqlite().await;
                $body(store.clone()).await;
                store.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let (_guard, store) = $crate::support::postgres().await;
                $body(store.clone()).await;
                store.close().await;
            }
        }
    };
}

pub fn tenant(name: &str) -> TenantName {
    TenantName::try_from(name).unwrap()
}

pub fn model(name: &str) -> ModelName {
    ModelName::try_from(name).unwrap()
}
