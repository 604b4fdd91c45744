//! Audit log rows: appends serialised through the one-row `audit_head` table, reads
//! for verification and for the audit API, and signed checkpoints.
//!
//! The store knows nothing of hashing: [`Store::append_audit`] asks its caller for
//! each entry's link while holding the head lock, so the chain stays one chain even
//! when several processes append to one PostgreSQL.

use std::sync::LazyLock;

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Backend, Store, StoreError};

/// An entry before it has a place in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct NewAuditEntry {
    pub recorded_at: i64,
    pub tenant: Option<String>,
    pub key_id: Option<String>,
    pub action: String,
    pub resource: String,
    pub status: i64,
    pub latency_ms: i64,
    pub request_id: Option<String>,
    pub input_sha256: Option<String>,
    pub output_sha256: Option<String>,
    pub model_digest: Option<String>,
}

/// A stored entry: its fields, its position and its chain links (hex). Serialises as
/// one flat object with the table's column names (the batch insert reads that).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub seq: i64,
    #[serde(flatten)]
    pub entry: NewAuditEntry,
    pub prev_hash: String,
    pub entry_hash: String,
}

/// A stored signed checkpoint; `root` hex, `signature` base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    pub size: i64,
    pub root: String,
    pub signed_at: i64,
    pub key_id: String,
    pub signature: String,
}

/// The Merkle frontier a checkpoint was sealed over: the peaks of its compact range
/// (hex, largest subtree first) and the chain's last link at its size. Stored beside
/// the checkpoint so a restarted writer resumes from it rather than re-reading and
/// re-hashing the whole chain, which on a large log held every request for seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFrontier {
    pub size: i64,
    pub peaks: Vec<String>,
    pub last_hash: String,
}

impl CheckpointFrontier {
    /// The peaks as stored: comma-separated hex.
    pub(crate) fn peaks_column(&self) -> String {
        self.peaks.join(",")
    }
}

/// The root (hex) of the perfect subtree of the audit Merkle tree over leaves
/// `index·2^level .. (index+1)·2^level`; see migration 0011.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNode {
    pub level: i64,
    pub index: i64,
    pub hash: String,
}

/// Which entries [`Store::list_audit`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant's entries; `None` for all (admins).
    pub tenant: Option<String>,
    /// Entries with `seq` above this.
    pub since_seq: i64,
    pub action: Option<String>,
    pub limit: i64,
}

pub(crate) const COLUMNS: &str =
    "seq, recorded_at, tenant, key_id, action, resource, status, latency_ms, \
     request_id, input_sha256, output_sha256, model_digest, prev_hash, entry_hash";

impl AuditRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            seq: row.try_get("seq")?,
            entry: NewAuditEntry {
                recorded_at: row.try_get("recorded_at")?,
                tenant: row.try_get("tenant")?,
                key_id: row.try_get("key_id")?,
                action: row.try_get("action")?,
                resource: row.try_get("resource")?,
                status: row.try_get("status")?,
                latency_ms: row.try_get("latency_ms")?,
                request_id: row.try_get("request_id")?,
                input_sha256: row.try_get("input_sha256")?,
                output_sha256: row.try_get("output_sha256")?,
                model_digest: row.try_get("model_digest")?,
            },
            prev_hash: row.try_get("prev_hash")?,
            entry_hash: row.try_get("entry_hash")?,
        })
    }
}

impl CheckpointRecord {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            size: row.try_get("size")?,
            root: row.try_get("root")?,
            signed_at: row.try_get("signed_at")?,
            key_id: row.try_get("key_id")?,
            signature: row.try_get("signature")?,
        })
    }
}

impl Store {
    /// Appends `entries` in one transaction, in order. `link(seq, prev_hash, entry)`
    /// returns the entry's hash (hex); it runs while the head row is locked, so no
    /// other append can interleave. Either every entry is committed or none is; an
    /// error from `link` rolls the whole batch back.
    pub async fn append_audit<F>(
        &self,
        entries: Vec<NewAuditEntry>,
        link: F,
    ) -> Result<Vec<AuditRecord>, StoreError>
    where
        F: FnMut(i64, &str, &NewAuditEntry) -> Result<String, StoreError>,
    {
        let mut tx = self.pool.begin().await?;
        let head = lock_head(&mut tx).await?;
        let records = append_in(&mut tx, self.backend, head, entries, link).await?;
        tx.commit().await?;
        Ok(records)
    }

    /// Moves up to `limit` change records from `audit_outbox` (written by the change
    /// triggers, in the changes' own transactions) into the chain, oldest first, and
    /// deletes them, in one transaction. Returns the appended entries.
    pub async fn chain_audit_outbox<F>(
        &self,
        limit: i64,
        link: F,
    ) -> Result<Vec<AuditRecord>, StoreError>
    where
        F: FnMut(i64, &str, &NewAuditEntry) -> Result<String, StoreError>,
    {
        // Usually empty: look before taking the write lock (and a commit) for nothing.
        let waiting = sqlx::query("SELECT id FROM audit_outbox LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        if waiting.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        // The head lock first, so two writers never move the same records.
        let head = lock_head(&mut tx).await?;
        let rows = sqlx::query(
            "SELECT id, recorded_at, tenant, action, resource FROM audit_outbox \
             ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(Vec::new());
        };
        let last_id: i64 = last.try_get("id")?;
        let entries = rows
            .iter()
            .map(|row| {
                Ok(NewAuditEntry {
                    recorded_at: row.try_get("recorded_at")?,
                    tenant: row.try_get("tenant")?,
                    action: row.try_get("action")?,
                    resource: row.try_get("resource")?,
                    status: 200,
                    ..NewAuditEntry::default()
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let records = append_in(&mut tx, self.backend, head, entries, link).await?;
        sqlx::query("DELETE FROM audit_outbox WHERE id <= $1")
            .bind(last_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(records)
    }

    /// How many entries the chain holds (its head), for progress reports.
    pub async fn audit_size(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT size FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("size")?)
    }

    /// Change records not yet moved into the chain.
    pub async fn audit_outbox_len(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_outbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Entries with `from <= seq`, in `seq` order, at most `limit`.
    pub async fn audit_entries(
        &self,
        from: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM audit_entries WHERE seq >= $1 ORDER BY seq LIMIT $2");
        let rows = sqlx::query(&sql)
            .bind(from)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(AuditRecord::from_row).collect()
    }

    /// One entry by its sequence number.
    pub async fn audit_entry(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM audit_entries WHERE seq = $1");
        let row = sqlx::query(&sql)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(AuditRecord::from_row).transpose()
    }

    /// Entries matching `filter`, in `seq` order.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        // Built per filter rather than `$2 IS NULL OR …`, which PostgreSQL cannot type.
        let mut sql = format!("SELECT {COLUMNS} FROM audit_entries WHERE seq > $1");
        let mut n = 1;
        for (column, value) in [("tenant", &filter.tenant), ("action", &filter.action)] {
            if value.is_some() {
                n += 1;
                sql.push_str(&format!(" AND {column} = ${n}"));
            }
        }
        sql.push_str(&format!(" ORDER BY seq LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(filter.since_seq);
        for value in [&filter.tenant, &filter.action].into_iter().flatten() {
            query = query.bind(value.clone());
        }
        let rows = query.bind(filter.limit).fetch_all(&self.pool).await?;
        rows.iter().map(AuditRecord::from_row).collect()
    }

    /// Stores a checkpoint, with the frontier it was sealed over when known, and the
    /// subtree roots completed since the last one, in one transaction. A checkpoint
    /// or node already stored (another replica sealed the same head) is kept.
    pub async fn insert_checkpoint(
        &self,
        checkpoint: &CheckpointRecord,
        frontier: Option<&CheckpointFrontier>,
        nodes: &[AuditNode],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for node in nodes {
            sqlx::query(INSERT_NODE)
                .bind(node.level)
                .bind(node.index)
                .bind(node.hash.clone())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(INSERT_CHECKPOINT)
            .bind(checkpoint.size)
            .bind(checkpoint.root.clone())
            .bind(checkpoint.signed_at)
            .bind(checkpoint.key_id.clone())
            .bind(checkpoint.signature.clone())
            .bind(frontier.map(CheckpointFrontier::peaks_column))
            .bind(frontier.map(|f| f.last_hash.clone()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A stored subtree root, if any.
    pub async fn audit_node(&self, level: i64, index: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT hash FROM audit_nodes WHERE level = $1 AND idx = $2")
            .bind(level)
            .bind(index)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("hash")).transpose()?)
    }

    /// The latest checkpoint that has its frontier stored, with that frontier.
    pub async fn latest_checkpoint_frontier(
        &self,
    ) -> Result<Option<(CheckpointRecord, CheckpointFrontier)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS}, frontier, last_hash FROM audit_checkpoints \
             WHERE frontier IS NOT NULL AND last_hash IS NOT NULL ORDER BY size DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let checkpoint = CheckpointRecord::from_row(&row)?;
        let peaks: String = row.try_get("frontier")?;
        let frontier = CheckpointFrontier {
            size: checkpoint.size,
            peaks: peaks
                .split(',')
                .filter(|peak| !peak.is_empty())
                .map(str::to_owned)
                .collect(),
            last_hash: row.try_get("last_hash")?,
        };
        Ok(Some((checkpoint, frontier)))
    }

    /// All checkpoints, smallest first.
    pub async fn audit_checkpoints(&self) -> Result<Vec<CheckpointRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY size"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(CheckpointRecord::from_row).collect()
    }

    /// The checkpoint of exactly `size` entries, if one was signed.
    pub async fn audit_checkpoint(
        &self,
        size: i64,
    ) -> Result<Option<CheckpointRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE size = $1"
        ))
        .bind(size)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(CheckpointRecord::from_row).transpose()
    }

    /// The checkpoint with the largest size, if any.
    pub async fn latest_checkpoint(&self) -> Result<Option<CheckpointRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(CheckpointRecord::from_row).transpose()
    }
}

/// The columns [`CheckpointRecord::from_row`] reads.
const CHECKPOINT_COLUMNS: &str = "size, root, signed_at, key_id, signature";

/// Inserts a checkpoint row with its frontier (see [`Store::insert_checkpoint`]).
pub(crate) const INSERT_CHECKPOINT: &str =
    "INSERT INTO audit_checkpoints (size, root, signed_at, key_id, signature, frontier, \
     last_hash) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (size) DO NOTHING";

/// Inserts a subtree root (see [`Store::insert_checkpoint`]).
pub(crate) const INSERT_NODE: &str =
    "INSERT INTO audit_nodes (level, idx, hash) VALUES ($1, $2, $3) \
     ON CONFLICT (level, idx) DO NOTHING";

/// Takes the chain head's lock (a row lock on PostgreSQL, the database write lock on
/// SQLite: a deferred transaction that read first could not upgrade) and returns the
/// head: the chain's size and last link.
async fn lock_head(tx: &mut sqlx::AnyConnection) -> Result<(i64, String), StoreError> {
    let row =
        sqlx::query("UPDATE audit_head SET size = size WHERE id = 1 RETURNING size, last_hash")
            .fetch_one(&mut *tx)
            .await?;
    Ok((row.try_get("size")?, row.try_get("last_hash")?))
}

/// The statement that inserts a whole batch from one JSON array of [`AuditRecord`]s.
/// One statement and one bound value per batch, however large: a statement per row
/// costs a round trip to the database (on SQLite, to sqlx's worker thread) each, and a
/// many-row `VALUES` list makes sqlx's SQLite driver scan parameter names for every
/// bind. Both were measured slower.
fn batch_insert(backend: Backend) -> &'static str {
    static SQLITE: LazyLock<String> = LazyLock::new(|| {
        let values = COLUMNS
            .split(", ")
            .map(|column| format!("value ->> '{column}'"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO audit_entries ({COLUMNS}) SELECT {values} FROM json_each($1) \
             ORDER BY key"
        )
    });
    static POSTGRES: LazyLock<String> = LazyLock::new(|| {
        format!(
            "INSERT INTO audit_entries ({COLUMNS}) SELECT {COLUMNS} FROM \
             json_to_recordset($1::json) AS row(seq BIGINT, recorded_at BIGINT, \
             tenant TEXT, key_id TEXT, action TEXT, resource TEXT, status BIGINT, \
             latency_ms BIGINT, request_id TEXT, input_sha256 TEXT, output_sha256 TEXT, \
             model_digest TEXT, prev_hash TEXT, entry_hash TEXT) ORDER BY seq"
        )
    });
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

/// The records `entries` become after a chain head of `size` entries ending in
/// `last_hash`: their positions and links, computed by `link`.
pub(crate) fn next_links<F>(
    mut size: i64,
    mut prev: String,
    entries: Vec<NewAuditEntry>,
    mut link: F,
) -> Result<Vec<AuditRecord>, StoreError>
where
    F: FnMut(i64, &str, &NewAuditEntry) -> Result<String, StoreError>,
{
    let mut records = Vec::with_capacity(entries.len());
    for entry in entries {
        let seq = size + 1;
        let entry_hash = link(seq, &prev, &entry)?;
        records.push(AuditRecord {
            seq,
            entry,
            prev_hash: std::mem::replace(&mut prev, entry_hash.clone()),
            entry_hash,
        });
        size = seq;
    }
    Ok(records)
}

/// Appends `entries` to the chain inside the caller's transaction, after `head` (read
/// by [`lock_head`] in that transaction).
async fn append_in<F>(
    tx: &mut sqlx::AnyConnection,
    backend: Backend,
    (size, last_hash): (i64, String),
    entries: Vec<NewAuditEntry>,
    link: F,
) -> Result<Vec<AuditRecord>, StoreError>
where
    F: FnMut(i64, &str, &NewAuditEntry) -> Result<String, StoreError>,
{
    let records = next_links(size, last_hash, entries, link)?;
    let Some(last) = records.last() else {
        return Ok(records);
    };
    let rows = serde_json::to_string(&records)
        .map_err(|error| StoreError::Corrupt(format!("audit batch: {error}")))?;
    let inserted = sqlx::query(batch_insert(backend))
        .bind(rows)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if inserted != records.len() as u64 {
        return Err(StoreError::Corrupt(format!(
            "audit batch: {inserted} of {} entries inserted",
            records.len()
        )));
    }
    sqlx::query("UPDATE audit_head SET size = $1, last_hash = $2 WHERE id = 1")
        .bind(last.seq)
        .bind(last.entry_hash.clone())
        .execute(&mut *tx)
        .await?;
    Ok(records)
}
