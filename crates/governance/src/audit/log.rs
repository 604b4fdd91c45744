//! `AuditLog`: the handle requests and changes record through. One writer per log,
//! on a thread of its own, group-commits entries (everything queued while the previous
//! batch was being written goes into the next transaction) and seals checkpoints. On
//! an SQLite file it writes through a dedicated synchronous connection
//! (`store::SqliteAuditAppender`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crypto::merkle::{leaf_hash, Checkpoint, CompactRange};
use crypto::signing::SigningKey;
use store::{
    AuditNode, AuditRecord, CheckpointFrontier, CheckpointRecord, NewAuditEntry,
    SqliteAuditAppender, Store, StoreError, WalSync,
};
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
    /// How long the writer waits for more entries when several arrived at once.
    pub linger: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            max_batch: 512,
            outbox_interval: Duration::from_secs(1),
            linger: Duration::from_micros(150),
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
    /// Whether the last [`AuditLog::record`] failed; see [`AuditLog::is_failing`].
    failing: AtomicBool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("key", &self.inner.key)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Starts the writer with the default [`AuditConfig`]; needs a tokio runtime, from
    /// a task of which requests are answered.
    pub fn open(store: Store, signing_key: SigningKey) -> Self {
        Self::with_config(store, signing_key, AuditConfig::default())
    }

    pub fn with_config(store: Store, signing_key: SigningKey, config: AuditConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.max_batch.max(1) * 8);
        let key = Arc::new(signing_key);
        let postgres = store.backend() == store::Backend::Postgres;
        let writer = Writer {
            store: store.clone(),
            key: key.clone(),
            config,
            sealer: None,
            appender: None,
            syncer: None,
            dispatch: Dispatch::start(),
        };
        // The writer runs on a thread of its own, with its own single-threaded runtime,
        // so that under load it is not queued behind request tasks on the server's
        // runtime: every request waits for the writer's commit, so each moment the
        // writer spends in a run queue is added to every queued request's latency.
        let started = std::thread::Builder::new()
            .name("charter-audit".into())
            .spawn(move || {
                // Time for the writer's ticks; I/O only for PostgreSQL's connections
                // (SQLite's need none, and a runtime without an I/O driver parks on a
                // futex instead of epoll).
                let mut runtime = tokio::runtime::Builder::new_current_thread();
                runtime.enable_time();
                if postgres {
                    runtime.enable_io();
                }
                match runtime.build() {
                    Ok(runtime) => runtime.block_on(writer.run(receiver)),
                    Err(error) => tracing::error!(%error, "the audit writer could not start"),
                }
            });
        if let Err(error) = started {
            // The receiver is gone, so every record fails: nothing is answered unaudited.
            tracing::error!(%error, "the audit writer thread could not start");
        }
        Self {
            inner: Arc::new(Inner {
                sender,
                store,
                key,
                failing: AtomicBool::new(false),
            }),
        }
    }

    /// Appends `entry` and returns it with its seq and links once it is committed.
    /// An error means the entry is not in the log and the action must not succeed.
    pub async fn record(&self, entry: NewAuditEntry) -> Result<AuditEntry, AuditError> {
        let (reply, answer) = oneshot::channel();
        let recorded = match self
            .inner
            .sender
            .send(Command::Append(Box::new(entry), reply))
            .await
        {
            Ok(()) => answer
                .await
                .map_err(|_| AuditError::WriterStopped)
                .and_then(|written| written.map_err(AuditError::Unavailable)),
            Err(_) => Err(AuditError::WriterStopped),
        };
        let failing = recorded.is_err();
        if self.inner.failing.load(Ordering::Relaxed) != failing {
            self.inner.failing.store(failing, Ordering::Relaxed);
        }
        recorded
    }

    /// [`AuditLog::record`], failing with [`AuditError::Unavailable`] when the entry is
    /// not committed within `limit` (a database that stopped answering): the request
    /// is then refused rather than left waiting. The entry may still be committed
    /// later; the log counts as failing until a record succeeds.
    pub async fn record_within(
        &self,
        entry: NewAuditEntry,
        limit: Duration,
    ) -> Result<AuditEntry, AuditError> {
        match tokio::time::timeout(limit, self.record(entry)).await {
            Ok(recorded) => recorded,
            Err(_) => {
                self.inner.failing.store(true, Ordering::Relaxed);
                Err(AuditError::Unavailable(format!(
                    "the audit log did not commit the entry within {} s",
                    limit.as_secs_f64()
                )))
            }
        }
    }

    /// True when the last [`AuditLog::record`] failed (until one succeeds): callers
    /// about to change something refuse up front rather than act and then find the
    /// action cannot be recorded.
    pub fn is_failing(&self) -> bool {
        self.inner.failing.load(Ordering::Relaxed)
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
    /// See [`Writer::sqlite_appender`].
    appender: Option<SqliteAuditAppender>,
    /// See [`Writer::answer_when_durable`].
    syncer: Option<std::sync::mpsc::Sender<Pending>>,
    dispatch: Dispatch,
}

/// The Merkle frontier over the committed entries, and the chain tip it has checked.
struct Sealer {
    range: CompactRange,
    last_hash: String,
    sealed_size: u64,
    sealed_at: Instant,
    /// Subtree roots completed since the last checkpoint, stored with the next one.
    nodes: Vec<AuditNode>,
}

/// Subtree roots at this level (256 leaves) and above are stored (see
/// `store::AuditNode`): an inclusion proof then reads at most two chunks of 256
/// entries and one node per level above.
pub const STORED_NODE_LEVEL: u32 = 8;

impl Sealer {
    /// Appends the leaf of an entry with hash `entry_hash`, keeping the subtree roots
    /// it completes at [`STORED_NODE_LEVEL`] and above.
    fn push(&mut self, entry_hash: &[u8; 32]) {
        let Self { range, nodes, .. } = self;
        range.append_with(leaf_hash(entry_hash), |level, index, root| {
            if level >= STORED_NODE_LEVEL {
                nodes.push(AuditNode {
                    level: i64::from(level),
                    index: index as i64,
                    hash: hex::encode(root),
                });
            }
        });
    }

    /// Extends the frontier with a batch this writer has just committed, when the batch
    /// continues the chain exactly where the frontier ends; the links were computed
    /// under the head lock, so there is nothing to read back. Otherwise (another process
    /// appended in between) the next seal reads and checks the store as usual.
    fn follow(&mut self, records: &[AuditRecord]) {
        let Some(first) = records.first() else {
            return;
        };
        if first.seq != self.range.size() as i64 + 1 || first.prev_hash != self.last_hash {
            return;
        }
        let mut hashes = Vec::with_capacity(records.len());
        for record in records {
            match parse_hash(&record.entry_hash) {
                Ok(hash) => hashes.push(hash),
                Err(_) => return,
            }
        }
        for hash in hashes {
            self.push(&hash);
        }
        if let Some(last) = records.last() {
            self.last_hash.clone_from(&last.entry_hash);
        }
    }
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
                        self.fill(&mut receiver, &mut batch, &mut seals);
                        // Under concurrent load (more than one entry arrived while the
                        // last batch was written), wait a moment for more: a commit
                        // costs about as much as twenty entries, so larger batches cost
                        // less per request (v2 benchmark: 7 → 18 entries a batch, about
                        // 8 % less server CPU at the same throughput). A lone request
                        // does not wait.
                        if batch.len() > 1
                            && batch.len() < self.config.max_batch
                            && !self.config.linger.is_zero()
                        {
                            std::thread::sleep(self.config.linger);
                            self.fill(&mut receiver, &mut batch, &mut seals);
                        }
                        self.append(batch).await;
                        for reply in seals {
                            let _ = reply.send(self.seal_and_report().await.map_err(|e| e.to_string()));
                        }
                    }
                    Some(Command::Seal(reply)) => {
                        let _ = reply.send(self.seal_and_report().await.map_err(|e| e.to_string()));
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
        // The last handle is gone. When its owner has closed the store (`serve` seals
        // its final checkpoint before that), there is nothing left to do.
        if !self.store.is_closed() {
            if let Err(error) = self.seal(false).await {
                tracing::error!(%error, "sealing the final audit checkpoint failed");
            }
        }
    }

    /// Moves queued commands into `batch` (up to `max_batch`) and `seals`.
    fn fill(
        &self,
        receiver: &mut mpsc::Receiver<Command>,
        batch: &mut Vec<(Box<NewAuditEntry>, Reply<AuditEntry>)>,
        seals: &mut Vec<Reply<Option<CheckpointRecord>>>,
    ) {
        while batch.len() < self.config.max_batch {
            match receiver.try_recv() {
                Ok(Command::Append(entry, reply)) => batch.push((entry, reply)),
                Ok(Command::Seal(reply)) => seals.push(reply),
                Err(_) => break,
            }
        }
    }

    async fn append(&mut self, batch: Vec<(Box<NewAuditEntry>, Reply<AuditEntry>)>) {
        let (entries, replies): (Vec<NewAuditEntry>, Vec<_>) = batch
            .into_iter()
            .map(|(entry, reply)| (*entry, reply))
            .unzip();
        // On SQLite the batch is written synchronously on this thread (the writer's
        // own), through its dedicated connection, and made durable by the syncer.
        let result = match self.sqlite_appender() {
            Ok(Some(appender)) => appender
                .append(entries, link)
                .map(|(records, wal)| (records, Some(wal))),
            Ok(None) => self
                .store
                .append_audit(entries, link)
                .await
                .map(|records| (records, None)),
            Err(error) => Err(error),
        };
        match result {
            Ok((records, wal)) => {
                let size = records.last().map(|r| r.seq).unwrap_or(0) as u64;
                if let Some(sealer) = self.sealer.as_mut() {
                    sealer.follow(&records);
                }
                let answers = replies
                    .into_iter()
                    .zip(records.into_iter().map(AuditEntry::from))
                    .collect();
                match wal {
                    Some(wal) => self.answer_when_durable(Pending { wal, answers }),
                    None => self.dispatch.answer(answers, Ok(())),
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
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }

    /// Hands a committed batch to the syncer thread (started on first use), which
    /// answers its requests once the WAL is synced; syncs here when that thread cannot
    /// run.
    fn answer_when_durable(&mut self, pending: Pending) {
        if self.syncer.is_none() {
            let (sender, receiver) = std::sync::mpsc::channel();
            let dispatch = self.dispatch.clone();
            let started = std::thread::Builder::new()
                .name("charter-audit-sync".into())
                .spawn(move || run_syncer(receiver, &dispatch));
            match started {
                Ok(_) => self.syncer = Some(sender),
                Err(error) => tracing::warn!(%error, "the audit syncer thread could not start"),
            }
        }
        let pending = match &self.syncer {
            Some(syncer) => match syncer.send(pending) {
                Ok(()) => return,
                Err(std::sync::mpsc::SendError(pending)) => {
                    self.syncer = None;
                    pending
                }
            },
            None => pending,
        };
        sync_and_answer(vec![pending], &self.dispatch);
    }

    /// The dedicated SQLite connection appends go through, opened on first use (and
    /// again after a failed open); `None` when the store is not an SQLite file.
    fn sqlite_appender(&mut self) -> Result<Option<&mut SqliteAuditAppender>, StoreError> {
        if self.appender.is_none() {
            self.appender = self.store.sqlite_audit_appender()?;
        }
        Ok(self.appender.as_mut())
    }

    /// Seals when due (or `force`; see [`Writer::seal`]) and returns the latest
    /// checkpoint, for explicit requests.
    async fn seal_and_report(&mut self) -> Result<Option<CheckpointRecord>, AuditError> {
        match self.seal(true).await? {
            Some(sealed) => Ok(Some(sealed)),
            None => Ok(self.store.latest_checkpoint().await?),
        }
    }

    /// Catches the frontier up with the store, checking every new link, and signs a
    /// checkpoint when there are unsealed entries and one is due (or `force`); returns
    /// the checkpoint it signed.
    async fn seal(&mut self, force: bool) -> Result<Option<CheckpointRecord>, AuditError> {
        // Changes committed so far belong in the checkpoint.
        chain_outbox(&self.store).await?;
        if self.sealer.is_none() {
            self.sealer = Some(Sealer::resume(&self.store).await?);
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
                sealer.push(&parse_hash(&record.entry_hash)?);
                sealer.last_hash = record.entry_hash;
            }
        }
        let size = sealer.range.size();
        let due = size > sealer.sealed_size
            && (force
                || size >= sealer.sealed_size + self.config.checkpoint_every
                || sealer.sealed_at.elapsed() >= self.config.checkpoint_interval);
        if !due {
            return Ok(None);
        }
        let signed_at = types::unix_now().max(0) as u64;
        let checkpoint = Checkpoint::sign(&self.key, size, sealer.range.root(), signed_at);
        let record = CheckpointRecord {
            size: size as i64,
            root: hex::encode(checkpoint.root),
            signed_at: signed_at as i64,
            key_id: checkpoint.key_id,
            signature: checkpoint.signature.to_base64(),
        };
        let frontier = CheckpointFrontier {
            size: size as i64,
            peaks: sealer.range.peaks().iter().map(hex::encode).collect(),
            last_hash: sealer.last_hash.clone(),
        };
        // On SQLite through the writer's own connection (see
        // `SqliteAuditAppender::insert_checkpoint`): under load a checkpoint is due
        // many times a second, and each through the pool cost a round trip and a sync.
        let nodes = std::mem::take(&mut sealer.nodes);
        let stored = match self.appender.as_mut() {
            Some(appender) => appender.insert_checkpoint(&record, Some(&frontier), &nodes),
            None => {
                self.store
                    .insert_checkpoint(&record, Some(&frontier), &nodes)
                    .await
            }
        };
        if let Err(error) = stored {
            // Kept for the next seal.
            sealer.nodes = nodes;
            return Err(error.into());
        }
        sealer.sealed_size = size;
        sealer.sealed_at = Instant::now();
        Ok(Some(record))
    }
}

impl Sealer {
    /// The frontier of the latest checkpoint that stored one, checked against the
    /// checkpoint's root and the chain's link at its size; the whole chain otherwise
    /// (an empty log, or checkpoints sealed before frontiers were stored). Entries
    /// after it are read and checked by the next seal.
    async fn resume(store: &Store) -> Result<Self, AuditError> {
        let latest = store.latest_checkpoint().await?;
        let sealed_size = latest.as_ref().map_or(0, |c| c.size as u64);
        let from_scratch = Self {
            range: CompactRange::new(),
            last_hash: hex::encode([0u8; 32]),
            sealed_size,
            sealed_at: Instant::now(),
            nodes: Vec::new(),
        };
        let Some((checkpoint, frontier)) = store.latest_checkpoint_frontier().await? else {
            return Ok(from_scratch);
        };
        let range = frontier
            .peaks
            .iter()
            .map(|peak| parse_hash(peak).ok())
            .collect::<Option<Vec<_>>>()
            .and_then(|peaks| CompactRange::from_parts(frontier.size as u64, peaks).ok())
            .filter(|range| hex::encode(range.root()) == checkpoint.root);
        let linked = store
            .audit_entry(frontier.size)
            .await?
            .is_some_and(|entry| entry.entry_hash == frontier.last_hash);
        let Some(range) = range.filter(|_| linked) else {
            // Not trusted: rebuild from the entries, which the seal checks link by link.
            tracing::warn!(
                size = frontier.size,
                "the stored audit frontier does not match its checkpoint; re-reading the chain"
            );
            return Ok(from_scratch);
        };
        Ok(Self {
            range,
            last_hash: frontier.last_hash,
            sealed_size,
            sealed_at: Instant::now(),
            nodes: Vec::new(),
        })
    }
}

/// A batch committed on the SQLite connection whose requests wait for the WAL sync.
struct Pending {
    wal: WalSync,
    answers: Vec<(Reply<AuditEntry>, AuditEntry)>,
}

/// Requests with what to answer each.
type Answers = Vec<(Reply<AuditEntry>, Result<AuditEntry, String>)>;

/// Answers requests from a task on the caller's runtime (started with the log): a
/// request woken from another thread goes through the runtime's shared queue and may
/// have to wake a parked worker, one system call per request; the answering task
/// wakes them from a worker thread, for one cross-thread wake per batch.
#[derive(Clone)]
struct Dispatch {
    sender: mpsc::UnboundedSender<Answers>,
}

impl Dispatch {
    fn start() -> Self {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Answers>();
        tokio::spawn(async move {
            while let Some(answers) = receiver.recv().await {
                for (reply, result) in answers {
                    let _ = reply.send(result);
                }
            }
        });
        Self { sender }
    }

    /// Answers a batch's requests: with their entries once `synced` is `Ok`, else
    /// with the error (the entries are committed but may not survive a crash, so the
    /// actions fail).
    fn answer(&self, answers: Vec<(Reply<AuditEntry>, AuditEntry)>, synced: Result<(), String>) {
        let answers = answers
            .into_iter()
            .map(|(reply, entry)| (reply, synced.clone().map(|()| entry)))
            .collect();
        if let Err(mpsc::error::SendError(answers)) = self.sender.send(answers) {
            // The runtime is shutting down: answer from here.
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
        }
    }
}

/// The syncer thread: takes every batch committed so far, syncs the WAL once for all
/// of them (they were committed before the sync started), answers them, and repeats,
/// so the writer commits the next batch while this one reaches the disk. Ends when the
/// writer drops its sender.
fn run_syncer(receiver: std::sync::mpsc::Receiver<Pending>, dispatch: &Dispatch) {
    while let Ok(first) = receiver.recv() {
        let mut pending = vec![first];
        pending.extend(receiver.try_iter());
        sync_and_answer(pending, dispatch);
    }
}

/// Syncs the WAL for `batches`, all committed before this call, once per file (there
/// is only one unless SQLite replaced the file), and answers them.
fn sync_and_answer(batches: Vec<Pending>, dispatch: &Dispatch) {
    let mut synced: Option<(WalSync, Result<(), String>)> = None;
    for batch in batches {
        let result = match &synced {
            Some((wal, result)) if wal.same_file(&batch.wal) => result.clone(),
            _ => {
                let result = batch.wal.sync().map_err(|error| error.to_string());
                if let Err(error) = &result {
                    tracing::error!(%error, "syncing the audit log failed");
                }
                synced = Some((batch.wal.clone(), result.clone()));
                result
            }
        };
        dispatch.answer(batch.answers, result);
    }
}

/// The chain link of an entry, for the store's append calls.
fn link(seq: i64, prev: &str, entry: &NewAuditEntry) -> Result<String, StoreError> {
    entry_hash(seq, prev, entry).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Moves every change record waiting in the store's outbox into the chain (see
/// `store::Store::chain_audit_outbox`); returns how many were moved. Needs no signing
/// key, so the CLI can run it too.
pub async fn chain_outbox(store: &Store) -> Result<usize, AuditError> {
    const BATCH: i64 = 1000;
    let mut moved = 0;
    loop {
        let records = store.chain_audit_outbox(BATCH, link).await?;
        moved += records.len();
        if records.len() < BATCH as usize {
            return Ok(moved);
        }
    }
}
