//! The database of Charter: one connection pool, migrations, and typed record access for
//! tenants, API keys, data keys, models and model versions (with cards and signatures),
//! the audit log, metered usage, and privacy records (PII policies, the pseudonym vault,
//! stored payloads).
//!
//! The same query code runs on SQLite (the embedded default) and PostgreSQL (scale-out):
//! queries go through sqlx's `Any` driver with `$1`-style placeholders, which both
//! backends accept. Only the migrations differ per backend (`migrations/sqlite`,
//! `migrations/postgres`); they are embedded in the binary and run by [`Store::connect`].
//!
//! Every record carries its tenant. Reads that a tenant makes go through a [`Caller`], so
//! visibility (own records, shared models, everything for admins) is decided here once,
//! not in each handler.

mod audit;
mod audit_sqlite;
mod data_keys;
mod datasets;
mod jobs;
mod keys;
mod models;
mod privacy;
mod signatures;
mod tenants;
mod usage;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use types::TenantName;

/// Re-exported so crates adding tables (jobs, audit, usage) use the same sqlx.
pub use sqlx;

pub use audit::{
    AuditFilter, AuditNode, AuditRecord, CheckpointFrontier, CheckpointRecord, NewAuditEntry,
};
pub use audit_sqlite::{SqliteAuditAppender, WalSync};
pub use data_keys::DataKeyRecord;
pub use datasets::{DatasetRecord, NewDataset};
pub use jobs::{JobRecord, JobStatus, NewJob};
pub use keys::{ApiKeyRecord, KeyLimits, NewApiKey};
pub use models::{Manifest, ManifestFile, ModelCard, ModelRecord, NewVersion, VersionRecord};
pub use privacy::{
    Erased, NewPayload, NewVaultEntry, PayloadRecord, PrivacySettingsRecord, VaultRecord,
};
pub use signatures::{ServingPolicy, SignatureRecord, TrustedKeyRecord};
pub use tenants::TenantRecord;
pub use usage::{UsageFilter, UsageRecord};

/// Everything that can go wrong in the store. `NotFound` is also what a tenant gets for
/// another tenant's private records, so names do not leak.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// A name matches several visible models of different tenants.
    #[error("{0}")]
    Ambiguous(String),
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    /// A stored value that does not parse back, e.g. a hand-edited scope list.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the audit log's own SQLite connection (`SqliteAuditAppender`).
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// How long [`Store::connect`]'s callers wait for a connection of the pool.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

impl StoreError {
    /// True when the database could not be reached or stopped answering, rather than
    /// refusing the statement: no connection could be opened in time, one was cut, or
    /// PostgreSQL is shutting down or starting up (SQLSTATE classes 08 and 57P). The
    /// caller answers 503 and the client retries later.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Database(error) => database_unreachable(error),
            _ => false,
        }
    }
}

/// Whether `error`, or any error in its source chain, is a database that could not be
/// reached ([`StoreError::is_unavailable`]): errors that wrap a `StoreError`
/// transparently expose only its source, the `sqlx::Error`, so both are looked for.
pub fn is_unavailable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if current
            .downcast_ref::<StoreError>()
            .is_some_and(StoreError::is_unavailable)
            || current
                .downcast_ref::<sqlx::Error>()
                .is_some_and(database_unreachable)
        {
            return true;
        }
        cause = current.source();
    }
    false
}

fn database_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(error) => error
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Who is asking: reads and deletes are limited to what this caller may see.
///
/// A non-admin caller sees its own tenant's records and models that other tenants shared.
/// An admin caller sees everything; its `tenant` is where it acts by default (name
/// lookups prefer that tenant's models, which is how an admin picks between same-named
/// models of different tenants).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: TenantName,
    pub is_admin: bool,
}

impl Caller {
    /// A caller acting for `tenant` without admin rights.
    pub fn tenant(tenant: TenantName) -> Self {
        Self {
            tenant,
            is_admin: false,
        }
    }

    /// An admin acting from the built-in admin tenant.
    pub fn admin() -> Self {
        Self {
            tenant: TenantName::try_from(types::ADMIN_TENANT)
                .expect("the admin tenant name is valid: this is a bug"),
            is_admin: true,
        }
    }

    /// True when this caller may change records that belong to `tenant`.
    pub fn may_write(&self, tenant: &TenantName) -> bool {
        self.is_admin || &self.tenant == tenant
    }
}

/// The database handle; cheap to clone (it wraps a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database file, for SQLite files (not in-memory databases).
    sqlite_path: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens (creating when needed) the database at `url` and runs pending migrations.
    ///
    /// `postgres://…` / `postgresql://…` selects PostgreSQL; `sqlite://PATH[?…]` or a
    /// plain file path selects SQLite, created when missing (`mode=rwc`), in WAL mode with
    /// `synchronous=FULL` and foreign keys enforced.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Self::connect_with(url, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`Store::connect`], with a caller waiting at most `acquire_timeout` for a
    /// connection (a database that cannot be reached then fails with an error for
    /// which [`StoreError::is_unavailable`] is true). `serve` bounds it by its request
    /// deadline, so an outage is answered 503 before the deadline runs out.
    pub async fn connect_with(url: &str, acquire_timeout: Duration) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, backend) = normalize_url(url)?;
        let options =
            AnyConnectOptions::from_str(&url).map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        let pool_options = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(acquire_timeout);
        let pool_options = match backend {
            Backend::Sqlite => pool_options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // Durability over speed: a committed import must survive a power cut.
                    // busy_timeout lets concurrent writers queue instead of failing.
                    // secure_delete zeroes deleted content (erased keys and payloads)
                    // instead of leaving it in free pages.
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000; \
                         PRAGMA secure_delete = ON;",
                    )
                    .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => pool_options,
        };
        let pool = pool_options.connect_with(options).await?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator.run(&pool).await?;
        tracing::debug!(?backend, "store connected and migrated");
        let sqlite_path = match backend {
            Backend::Sqlite => audit_sqlite::sqlite_file(&url),
            Backend::Postgres => None,
        };
        Ok(Store {
            pool,
            backend,
            sqlite_path,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for crates that add their own tables (jobs, audit, usage) through
    /// migrations in this crate.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// True once [`Store::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }
}

/// Turns what a user typed into a URL sqlx understands, and tells which backend it is.
fn normalize_url(url: &str) -> Result<(String, Backend), StoreError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(StoreError::InvalidUrl("the database url is empty".into()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_owned(), Backend::Postgres));
    }
    if let Some(rest) = url.strip_prefix("sqlite:") {
        if rest.contains("mode=") || rest.contains(":memory:") {
            return Ok((url.to_owned(), Backend::Sqlite));
        }
        let separator = if rest.contains('?') { '&' } else { '?' };
        return Ok((format!("{url}{separator}mode=rwc"), Backend::Sqlite));
    }
    if url.contains("://") {
        return Err(StoreError::InvalidUrl(format!(
            "unsupported database url '{url}'; use sqlite://PATH, a file path or postgres://…"
        )));
    }
    if url.contains('?') || url.contains('#') {
        return Err(StoreError::InvalidUrl(format!(
            "the database path '{url}' must not contain '?' or '#'"
        )));
    }
    Ok((format!("sqlite://{url}?mode=rwc"), Backend::Sqlite))
}

/// Maps constraint violations to errors a person can act on; everything else stays a
/// database error.
fn constraint_error(error: sqlx::Error, unique: &str, foreign_key: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &error {
        if db.is_unique_violation() {
            return StoreError::Conflict(unique.to_owned());
        }
        if db.is_foreign_key_violation() {
            return StoreError::Conflict(foreign_key.to_owned());
        }
    }
    StoreError::Database(error)
}

/// Reads a boolean column: PostgreSQL has `BOOLEAN`, the SQLite schema stores 0/1
/// because the `Any` driver cannot decode SQLite's `BOOLEAN`.
fn get_bool(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, StoreError> {
    use sqlx::Row;
    match row.try_get::<bool, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// Reads a nullable boolean column (see [`get_bool`]).
fn get_optional_bool(row: &sqlx::any::AnyRow, column: &str) -> Result<Option<bool>, StoreError> {
    use sqlx::Row;
    match row.try_get::<Option<bool>, _>(column) {
        Ok(value) => Ok(value),
        Err(_) => Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0)),
    }
}

fn parse_tenant(name: String) -> Result<TenantName, StoreError> {
    TenantName::try_from(name).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        let check = |input: &str, expect: Option<(&str, Backend)>| {
            let got = normalize_url(input).ok();
            assert_eq!(
                got.as_ref().map(|(u, b)| (u.as_str(), *b)),
                expect,
                "{input}"
            );
        };
        check(
            "data/charter.db",
            Some(("sqlite://data/charter.db?mode=rwc", Backend::Sqlite)),
        );
        check(
            "sqlite:///tmp/x.db",
            Some(("sqlite:///tmp/x.db?mode=rwc", Backend::Sqlite)),
        );
        check(
            "sqlite://x.db?mode=ro",
            Some(("sqlite://x.db?mode=ro", Backend::Sqlite)),
        );
        check(
            "postgres://u@h/db",
            Some(("postgres://u@h/db", Backend::Postgres)),
        );
        check("mysql://h/db", None);
        check("", None);
        check("a?b.db", None);
    }

    #[test]
    fn an_unreachable_database_is_told_apart_from_a_refused_statement() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for unreachable in [
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Database(sqlx::Error::Io(refused)),
        ] {
            assert!(unreachable.is_unavailable(), "{unreachable}");
            assert!(is_unavailable(&unreachable), "{unreachable}");
            // Wrapped the way callers wrap it: transparently (only the sqlx error is in
            // the chain) or as a source.
            let sqlx = match unreachable {
                StoreError::Database(error) => error,
                _ => unreachable!(),
            };
            assert!(is_unavailable(&sqlx));
            let wrapped = anyhow::Error::new(StoreError::Database(sqlx)).context("listing models");
            assert!(is_unavailable(wrapped.as_ref()));
        }
        for refused in [
            StoreError::Database(sqlx::Error::RowNotFound),
            StoreError::Conflict("tenant a already exists".into()),
            StoreError::Sqlite("database or disk is full".into()),
        ] {
            assert!(!refused.is_unavailable(), "{refused}");
            assert!(!is_unavailable(&refused), "{refused}");
        }
    }
}
