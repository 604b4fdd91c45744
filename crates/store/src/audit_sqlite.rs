//! The audit log's own SQLite connection: a synchronous connection to the store's
//! database file on which a group-commit batch is one transaction of prepared
//! statements run in a loop, and whose commits are made durable by a separate fsync
//! of the write-ahead log ([`WalSync`]), so the next batch can be written while the
//! previous one is being synced.
//!
//! Why not the pool: every statement through sqlx's SQLite driver is a round trip to
//! that connection's worker thread (two thread wake-ups), and a batch took five of them
//! plus one per entry. Under load (tens of thousands of audited requests a second) the
//! hand-offs cost more than SQLite's work. Here the caller runs a whole batch on one
//! thread (see `governance::audit`), and the transaction and chain head lock are the
//! same as [`Store::append_audit`]'s: `BEGIN IMMEDIATE` takes the database write lock,
//! so appends through this connection and through the pool still form one chain.
//!
//! Durability: this connection runs with `synchronous = NORMAL`, so a commit writes
//! its WAL frames without waiting for the disk; [`WalSync::sync`] then fdatasyncs the
//! WAL file, after which every batch committed before the call is on disk. Frames of a
//! batch being written during the sync may reach the disk partly; WAL recovery ignores
//! frames after the last complete commit, as after any crash. Checkpoints into the
//! database file are synced by SQLite itself at `NORMAL`. The caller must not report a
//! batch as written before a sync that started after its commit has returned.

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, TransactionBehavior};

use crate::audit::{next_links, COLUMNS, INSERT_CHECKPOINT, INSERT_NODE};
use crate::{
    AuditNode, AuditRecord, CheckpointFrontier, CheckpointRecord, NewAuditEntry, Store, StoreError,
};

/// A synchronous connection for appending audit batches; see the module docs.
pub struct SqliteAuditAppender {
    conn: Connection,
    wal_path: PathBuf,
    /// The WAL file as last opened, with its inode number.
    wal: Option<(WalSync, u64)>,
}

/// A handle on the database's write-ahead log that makes committed audit batches
/// durable; see the module docs.
#[derive(Debug, Clone)]
pub struct WalSync {
    file: Arc<File>,
}

impl WalSync {
    /// Blocks until every batch committed before the call is on disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.file
            .sync_data()
            .map_err(|error| StoreError::Sqlite(format!("syncing the audit log: {error}")))
    }

    /// True when both handles sync the same file.
    pub fn same_file(&self, other: &WalSync) -> bool {
        Arc::ptr_eq(&self.file, &other.file)
    }
}

impl std::fmt::Debug for SqliteAuditAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAuditAppender")
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A dedicated synchronous connection for audit appends, when the store is an
    /// SQLite file; `None` for PostgreSQL and in-memory databases, which append
    /// through [`Store::append_audit`].
    pub fn sqlite_audit_appender(&self) -> Result<Option<SqliteAuditAppender>, StoreError> {
        match &self.sqlite_path {
            Some(path) => SqliteAuditAppender::open(path).map(Some),
            None => Ok(None),
        }
    }
}

impl SqliteAuditAppender {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sqlite_error)?;
        // The same durability as the pool's connections (see `Store::connect`).
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(sqlite_error)?;
        // `synchronous = NORMAL`: commits are made durable by `WalSync` instead. The
        // connection only appends, so a small page cache (512 KiB) does.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
             PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON; \
             PRAGMA cache_size = -512;",
        )
        .map_err(sqlite_error)?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        Ok(Self {
            conn,
            wal_path: PathBuf::from(wal_path),
            wal: None,
        })
    }

    /// The WAL file now, reopened when it was replaced since it was last opened.
    fn wal(&mut self) -> Result<WalSync, StoreError> {
        let wal_error =
            |error: std::io::Error| StoreError::Sqlite(format!("the audit log's WAL: {error}"));
        let inode = std::fs::metadata(&self.wal_path).map_err(wal_error)?.ino();
        match &self.wal {
            Some((wal, known)) if *known == inode => Ok(wal.clone()),
            _ => {
                let file = File::open(&self.wal_path).map_err(wal_error)?;
                let inode = file.metadata().map_err(wal_error)?.ino();
                let wal = WalSync {
                    file: Arc::new(file),
                };
                self.wal = Some((wal.clone(), inode));
                Ok(wal)
            }
        }
    }

    /// Appends `entries` in one transaction, in order, exactly as
    /// [`Store::append_audit`] does, and returns them with the [`WalSync`] that makes
    /// them durable: they are committed, but not yet on disk.
    pub fn append<F>(
        &mut self,
        entries: Vec<NewAuditEntry>,
        link: F,
    ) -> Result<(Vec<AuditRecord>, WalSync), StoreError>
    where
        F: FnMut(i64, &str, &NewAuditEntry) -> Result<String, StoreError>,
    {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        let (size, last_hash): (i64, String) = tx
            .prepare_cached("SELECT size, last_hash FROM audit_head WHERE id = 1")
            .and_then(|mut head| head.query_row([], |row| Ok((row.get(0)?, row.get(1)?))))
            .map_err(sqlite_error)?;
        let records = next_links(size, last_hash, entries, link)?;
        let Some(last) = records.last() else {
            drop(tx);
            return Ok((records, self.wal()?));
        };
        {
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO audit_entries ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ))
                .map_err(sqlite_error)?;
            for record in &records {
                let entry = &record.entry;
                insert
                    .execute(params![
                        record.seq,
                        entry.recorded_at,
                        entry.tenant,
                        entry.key_id,
                        entry.action,
                        entry.resource,
                        entry.status,
                        entry.latency_ms,
                        entry.request_id,
                        entry.input_sha256,
                        entry.output_sha256,
                        entry.model_digest,
                        record.prev_hash,
                        record.entry_hash,
                    ])
                    .map_err(sqlite_error)?;
            }
        }
        tx.prepare_cached("UPDATE audit_head SET size = ?1, last_hash = ?2 WHERE id = 1")
            .and_then(|mut head| head.execute(params![last.seq, last.entry_hash]))
            .map_err(sqlite_error)?;
        tx.commit().map_err(sqlite_error)?;
        Ok((records, self.wal()?))
    }

    /// Stores a checkpoint and subtree roots as [`Store::insert_checkpoint`] does,
    /// through this connection: no round trip to the pool's worker and no sync of its
    /// own (the rows reach the disk with the next batch's [`WalSync`]; a checkpoint
    /// lost in a crash is sealed again from the entries, which are durable).
    pub fn insert_checkpoint(
        &mut self,
        checkpoint: &CheckpointRecord,
        frontier: Option<&CheckpointFrontier>,
        nodes: &[AuditNode],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        {
            let mut insert = tx.prepare_cached(INSERT_NODE).map_err(sqlite_error)?;
            for node in nodes {
                insert
                    .execute(params![node.level, node.index, node.hash])
                    .map_err(sqlite_error)?;
            }
        }
        tx.prepare_cached(INSERT_CHECKPOINT)
            .and_then(|mut insert| {
                insert.execute(params![
                    checkpoint.size,
                    checkpoint.root,
                    checkpoint.signed_at,
                    checkpoint.key_id,
                    checkpoint.signature,
                    frontier.map(CheckpointFrontier::peaks_column),
                    frontier.map(|f| f.last_hash.as_str()),
                ])
            })
            .map_err(sqlite_error)?;
        tx.commit().map_err(sqlite_error)
    }
}

/// The SQLite file a `sqlite:` URL names, when it names one (not `:memory:`).
pub(crate) fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    // Percent-escapes would need sqlx's decoding rules: such paths use the pool.
    if path.is_empty()
        || path.contains(":memory:")
        || path.contains('%')
        || url.contains("mode=memory")
    {
        return None;
    }
    Some(PathBuf::from(path))
}

fn sqlite_error(error: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::sqlite_file;
    use std::path::PathBuf;

    #[test]
    fn the_audit_connection_opens_the_file_the_url_names() {
        let file = |url: &str| sqlite_file(url);
        assert_eq!(
            file("sqlite:///var/lib/charter/charter.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/charter/charter.db"))
        );
        assert_eq!(
            file("sqlite://data/charter.db?mode=rwc"),
            Some(PathBuf::from("data/charter.db"))
        );
        assert_eq!(file("sqlite:charter.db"), Some(PathBuf::from("charter.db")));
        // In-memory databases and escaped paths append through the pool.
        assert_eq!(file("sqlite::memory:"), None);
        assert_eq!(file("sqlite://file.db?mode=memory&cache=shared"), None);
        assert_eq!(file("sqlite:///tmp/a%20b.db?mode=rwc"), None);
        assert_eq!(file("postgres://localhost/charter"), None);
    }
}
