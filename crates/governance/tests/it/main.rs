//! The one integration test binary of `governance`; features are modules.

mod audit;
mod metering;
mod pii;
mod privacy;

/// A migrated SQLite store in `dir`.
pub async fn sqlite_store(dir: &std::path::Path) -> store::Store {
    store::Store::connect(&format!("sqlite://{}", dir.join("charter.db").display()))
        .await
        .unwrap()
}
