//! In-memory backend for tests and the simulation. Cloning shares the store, so a simulated
//! crash (dropping the processor) keeps exactly what was committed, as a disk would.

use super::{Db, DbError, RawEntries, WriteBatch};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A [`Db`] in memory: one sorted map behind a lock, shared by every clone.
#[derive(Clone, Default)]
pub struct MemDb(Arc<Mutex<Store>>);

#[derive(Default)]
struct Store {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// While changes are watched: every key written since the watch began, with the value it
    /// had then.
    watched: Option<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl MemDb {
    /// An empty store.
    pub fn new() -> MemDb {
        MemDb::default()
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave a half-applied batch (writes are applied
        // after all validation), so a poisoned lock still guards consistent data.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of stored entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing at all is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts watching for changes (restarting any watch): [`MemDb::changed_since_watch`] then
    /// says whether the store differs from now, as comparing two full copies would, without
    /// copying it.
    pub fn watch_changes(&self) {
        self.lock().watched = Some(BTreeMap::new());
    }

    /// Ends the watch: whether any entry differs (in value or presence) from when it began;
    /// `false` if nothing was watched.
    pub fn changed_since_watch(&self) -> bool {
        let mut store = self.lock();
        let Some(watched) = store.watched.take() else { return false };
        watched.iter().any(|(key, before)| store.entries.get(key) != before.as_ref())
    }
}

impl Db for MemDb {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        Ok(self
            .lock()
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn scan_page(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError> {
        Ok(self
            .lock()
            .entries
            .range(start.max(prefix).to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), DbError> {
        let mut store = self.lock();
        let Store { entries, watched } = &mut *store;
        for (key, write) in batch {
            let Some(watched) = watched else {
                match write {
                    Some(value) => entries.insert(key, value.to_vec()),
                    None => entries.remove(&key),
                };
                continue;
            };
            let before = match write {
                Some(value) => entries.insert(key.clone(), value.to_vec()),
                None => entries.remove(&key),
            };
            watched.entry(key).or_insert(before);
        }
        Ok(())
    }
}
