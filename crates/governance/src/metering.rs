//! Usage metering: requests and tokens per tenant, key, model and UTC day.
//!
//! [`Meter::record`] adds to an in-memory tally (a mutex and a hash map: no I/O on the
//! request path); [`Meter::flush`] moves the tally into the store in one transaction.
//! The server flushes periodically, before answering a usage query, and on shutdown.
//! A crash loses at most what was recorded since the last flush; a failed flush puts
//! its tally back to be retried.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use store::{Store, StoreError, UsageRecord};
use types::{Day, TenantName};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct UsageKey {
    tenant: TenantName,
    key_id: String,
    model: String,
    day: Day,
}

/// The tally of one server process, not yet in the store.
#[derive(Debug, Default)]
pub struct Meter {
    pending: Mutex<HashMap<UsageKey, (i64, i64)>>,
    /// Serialises flushes so a usage query sees every flush that started before it.
    flushing: tokio::sync::Mutex<()>,
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one request of `n_tokens` by this key on this model, today.
    pub fn record(&self, tenant: &TenantName, key_id: &str, model: &str, n_tokens: u64) {
        let key = UsageKey {
            tenant: tenant.clone(),
            key_id: key_id.to_owned(),
            model: model.to_owned(),
            day: Day::today(),
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (requests, tokens) = pending.entry(key).or_default();
        *requests += 1;
        *tokens = tokens.saturating_add(i64::try_from(n_tokens).unwrap_or(i64::MAX));
    }

    /// Writes the tally to the store; on failure it is kept for the next flush.
    /// Returns how many rows were written.
    ///
    /// The write runs as a task of its own: a caller that goes away mid-write (a usage
    /// request whose client hung up) cannot drop the tally being written.
    pub async fn flush(self: &Arc<Self>, store: &Store) -> Result<usize, StoreError> {
        let (meter, store) = (self.clone(), store.clone());
        match tokio::spawn(async move { meter.write(&store).await }).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // The runtime is shutting down; nothing more can be written.
            Err(_) => Ok(0),
        }
    }

    async fn write(&self, store: &Store) -> Result<usize, StoreError> {
        let _one_at_a_time = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if taken.is_empty() {
            return Ok(0);
        }
        let deltas: Vec<UsageRecord> = taken
            .iter()
            .map(|(key, &(requests, tokens))| UsageRecord {
                tenant: key.tenant.clone(),
                key_id: key.key_id.clone(),
                model: key.model.clone(),
                day: key.day,
                requests,
                tokens,
            })
            .collect();
        if let Err(error) = store.add_usage(&deltas).await {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for (key, (requests, tokens)) in taken {
                let entry = pending.entry(key).or_default();
                entry.0 += requests;
                entry.1 = entry.1.saturating_add(tokens);
            }
            return Err(error);
        }
        Ok(deltas.len())
    }

    /// Flushes every `interval` until the returned task is aborted; errors are logged
    /// and the tally retried at the next tick.
    pub fn spawn_flusher(
        meter: Arc<Meter>,
        store: Store,
        interval: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                ticks.tick().await;
                if let Err(error) = meter.flush(&store).await {
                    tracing::warn!(%error, "writing usage to the store failed; will retry");
                }
            }
        })
    }
}
