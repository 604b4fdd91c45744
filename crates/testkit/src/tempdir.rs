//! Temporary directories for tests, removed on drop.

use std::path::Path;

pub use tempfile::TempDir;

/// A fresh empty directory in the system temp dir, named after `prefix` so leftovers
/// of a crashed run can be traced to their test.
pub fn tempdir(prefix: &str) -> anyhow::Result<TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("charter-{prefix}-"))
        .tempdir()?)
}

/// A fresh empty directory inside `parent`.
pub fn tempdir_in(parent: &Path, prefix: &str) -> anyhow::Result<TempDir> {
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?)
}
