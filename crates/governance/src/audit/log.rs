//! `AuditLog`: the handle requests and changes record through. One background task
//! per process group-commits entries (everything queued while the previous batch was
//! being written goes into the next transaction) and seals checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto::merkle::{leaf_hash, Checkpoint, CompactRange};
use crypto::signing::SigningKey;
use store::{CheckpointRecord, NewAuditEntry, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::entry::{entry_hash, parse_hash, AuditEntry};
use super::AuditError;

/// When checkpoints are sealed and how large a batch may grow.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Seal after this many new entries.
    pub checkpoint_every: u64,
    /// Seal at least this often while there are unsealed entries.
    pub checkpoint_interval: Duration,
    /// Most entries in one transaction.
    pub max_batch: usize,
    /// How often change records waiting in the store's outbox (written by the changes'
    /// own transactions) are moved into the chain.
    pub outbox_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            max_batch: 512,
            outbox_interval: Duration::from_secs(1),
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

enum Command {
    // Boxed so the channel's slots stay small.
    Append(Box<NewAuditEntry>, Reply<AuditEntry>),
    Seal(Reply<Option<CheckpointRecord>>),
}

/// A cheap-to-clone handle on the audit log of one store. The writer task stops when
/// the last handle is dropped.
#[derive(Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

struct Inner {
    sender: mpsc::Sender<Command>,
    store: Store,
    key: Arc<SigningKey>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer with the default [`AuditConfig`]; needs a tokio runtime.
    pub fn open(store: Store, signing_key: SigningKey) -> Self {
        Self::with_config(store, signing_key, AuditConfig::default())
    }

    pub fn with_config(store: Store, signing_key: SigningKey, config: AuditConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.max_batch.max(1) * 8);
        let key = Arc::new(signing_key);
        let writer = Writer {
            store: store.clone(),
            key: key.clone(),
            config,
            sealer: None,
        };
        tokio::spawn(writer.run(receiver));
        Self {
            inner: Arc::new(Inner { sender, store, key }),
        }
    }

    /// Appends `entry` and returns it with its seq and links once it is committed.
    /// An error means the entry is not in the log and the action must not succeed.
    pub async fn record(&self, entry: NewAuditEntry) -> Result<AuditEntry, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .sender
            .send(Command::Append(Box::new(entry), reply))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        answer
            .await
            .map_err(|_| AuditError::WriterStopped)?
            .map_err(AuditError::Unavailable)
    }

    /// Seals a checkpoint over everything committed so far (when there is anything
    /// new), and returns the latest checkpoint.
    pub async fn checkpoint(&self) -> Result<Option<CheckpointRecord>, AuditError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .sender
            .send(Command::Seal(reply))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
        answer
            .await
            .map_err(|_| AuditError::WriterStopped)?
            .map_err(AuditError::Unavailable)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.inner.key
    }
}

struct Writer {
    store: Store,
    key: Arc<SigningKey>,
    config: AuditConfig,
    /// Built lazily from the store, so a start-up read error is retried later.
    sealer: Option<Sealer>,
}

/// The Merkle frontier over the committed entries, and the chain tip it has checked.
struct Sealer {
    range: CompactRange,
    last_hash: String,
    sealed_size: u64,
    sealed_at: Instant,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.config.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // An interval's first tick completes at once; periodic seals start one interval
        // after start, so when the writer first reads the chain depends only on appends
        // and explicit seals, never on how the scheduler ordered start-up.
        tick.tick().await;
        let mut outbox_tick = tokio::time::interval(self.config.outbox_interval);
        outbox_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Likewise: the first move happens one interval after start (or at a seal).
        outbox_tick.tick().await;
        loop {
            tokio::select! {
                command = receiver.recv() => match command {
                    Some(Command::Append(entry, reply)) => {
                        let mut batch = vec![(entry, reply)];
                        let mut seals = Vec::new();
                        while batch.len() < self.config.max_batch {
                            match receiver.try_recv() {
                                Ok(Command::Append(entry, reply)) => batch.push((entry, reply)),
                                Ok(Command::Seal(reply)) => seals.push(reply),
                                Err(_) => break,
                            }
                        }
                        self.append(batch).await;
                        for reply in seals {
                            let _ = reply.send(self.seal(true).await.map_err(|e| e.to_string()));
                        }
                    }
                    Some(Command::Seal(reply)) => {
                        let _ = reply.send(self.seal(true).await.map_err(|e| e.to_string()));
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    if let Err(error) = self.seal(false).await {
                        tracing::error!(%error, "sealing an audit checkpoint failed");
                    }
                }
                _ = outbox_tick.tick() => {
                    if let Err(error) = chain_outbox(&self.store).await {
                        tracing::error!(%error, "moving change records into the audit chain failed");
                    }
                }
            }
        }
        if let Err(error) = self.seal(false).await {
            tracing::error!(%error, "sealing the final audit checkpoint failed");
        }
    }

    async fn append(&mut self, batch: Vec<(Box<NewAuditEntry>, Reply<AuditEntry>)>) {
        let entries: Vec<NewAuditEntry> =
            batch.iter().map(|(entry, _)| (**entry).clone()).collect();
        let result = self
            .store
            .append_audit(&entries, |seq, prev, entry| {
                entry_hash(seq, prev, entry).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .await;
        match result {
            Ok(records) => {
                let size = records.last().map(|r| r.seq).unwrap_or(0) as u64;
                for ((_, reply), record) in batch.into_iter().zip(records) {
                    let _ = reply.send(Ok(record.into()));
                }
                let due = self
                    .sealer
                    .as_ref()
                    .is_none_or(|s| size >= s.sealed_size + self.config.checkpoint_every);
                if due {
                    if let Err(error) = self.seal(false).await {
                        tracing::error!(%error, "sealing an audit checkpoint failed");
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "audit append failed");
                let message = error.to_string();
                for (_, reply) in batch {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }

    /// Catches the frontier up with the store, checking every new link, and signs a
    /// checkpoint when there are unsealed entries and one is due (or `force`).
    async fn seal(&mut self, force: bool) -> Result<Option<CheckpointRecord>, AuditError> {
        // Changes committed so far belong in the checkpoint.
        chain_outbox(&self.store).await?;
        if self.sealer.is_none() {
            let latest = self.store.latest_checkpoint().await?;
            self.sealer = Some(Sealer {
                range: CompactRange::new(),
                last_hash: hex::encode([0u8; 32]),
                sealed_size: latest.map(|c| c.size as u64).unwrap_or(0),
                sealed_at: Instant::now(),
            });
        }
        let sealer = self.sealer.as_mut().expect("set above: this is a bug");
        loop {
            let next = sealer.range.size() as i64 + 1;
            let records = self.store.audit_entries(next, 1000).await?;
            if records.is_empty() {
                break;
            }
            for record in records {
                let expected = sealer.range.size() as i64 + 1;
                if record.seq != expected {
                    return Err(AuditError::Malformed(format!(
                        "entry {expected} is missing; refusing to seal"
                    )));
                }
                let recomputed = entry_hash(record.seq, &record.prev_hash, &record.entry)?;
                if record.prev_hash != sealer.last_hash || recomputed != record.entry_hash {
                    return Err(AuditError::Malformed(format!(
                        "entry {} does not match the chain; refusing to seal",
                        record.seq
                    )));
                }
                sealer
                    .range
                    .append(leaf_hash(&parse_hash(&record.entry_hash)?));
                sealer.last_hash = record.entry_hash;
            }
        }
        let size = sealer.range.size();
        let due = size > sealer.sealed_size
            && (force
                || size >= sealer.sealed_size + self.config.checkpoint_every
                || sealer.sealed_at.elapsed() >= self.config.checkpoint_interval);
        if due {
            let signed_at = types::unix_now().max(0) as u64;
            let checkpoint = Checkpoint::sign(&self.key, size, sealer.range.root(), signed_at);
            let record = CheckpointRecord {
                size: size as i64,
                root: hex::encode(checkpoint.root),
                signed_at: signed_at as i64,
                key_id: checkpoint.key_id,
                signature: checkpoint.signature.to_base64(),
            };
            self.store.insert_checkpoint(&record).await?;
            sealer.sealed_size = size;
            sealer.sealed_at = Instant::now();
        }
        Ok(self.store.latest_checkpoint().await?)
    }
}

/// Moves every change record waiting in the store's outbox into the chain (see
/// `store::Store::chain_audit_outbox`); returns how many were moved. Needs no signing
/// key, so the CLI can run it too.
pub async fn chain_outbox(store: &Store) -> Result<usize, AuditError> {
    const BATCH: i64 = 1000;
    let mut moved = 0;
    loop {
        let records = store
            .chain_audit_outbox(BATCH, |seq, prev, entry| {
                entry_hash(seq, prev, entry).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .await?;
        moved += records.len();
        if records.len() < BATCH as usize {
            return Ok(moved);
        }
    }
}
