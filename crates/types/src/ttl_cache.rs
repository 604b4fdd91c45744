//! A small map whose entries expire: what the request path uses to avoid asking the
//! database for things that change rarely (verified keys, model admissions, privacy
//! settings, model resolutions). In memory only; no I/O.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept on insert; after a sweep, the next one
/// waits until the map has doubled (so a map of mostly live entries is not scanned on
/// every insert).
const SWEEP_ABOVE: usize = 10_000;

/// Values by key, each trusted for `ttl` after it was put. Cheap to clone (shared).
/// A poisoned lock behaves as an empty cache: callers fall back to the source.
#[derive(Debug, Clone)]
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: Arc<Mutex<Entries<K, V>>>,
}

/// The map and the size at which it is next swept.
#[derive(Debug)]
struct Entries<K, V> {
    map: HashMap<K, (V, Instant)>,
    sweep_above: usize,
}

impl<K, V> Default for Entries<K, V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            sweep_above: SWEEP_ABOVE,
        }
    }
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Arc::default(),
        }
    }

    /// The value put under `key` less than the TTL ago.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.map.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    pub fn put(&self, key: K, value: V) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.map.len() > entries.sweep_above {
                let ttl = self.ttl;
                entries.map.retain(|_, (_, at)| at.elapsed() < ttl);
                entries.sweep_above = SWEEP_ABOVE.max(entries.map.len() * 2);
            }
            entries.map.insert(key, (value, Instant::now()));
        }
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        if let Ok(mut entries) = self.entries.lock() {
            entries.map.remove(key);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_dropped() {
        let cache = TtlCache::new(Duration::from_millis(50));
        cache.put("a".to_owned(), 1);
        cache.put("b".to_owned(), 2);
        assert_eq!(cache.get("a"), Some(1));
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None, "an expired entry was returned");
        cache.put("c".to_owned(), 3);
        cache.clear();
        assert_eq!(cache.get("c"), None);
    }
}
