//! In-memory backend for tests and the simulation. Cloning shares the store, so a simulated
//! crash (dropping the processor) keeps exactly what was committed, as a disk would.

use super::{Db, DbError, RawEntries, WriteBatch};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A [`Db`] in memory: one sorted map behind a lock, shared by every clone.
#[derive(Clone, Default)]
pub struct MemDb(Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>);

impl MemDb {
    /// An empty store.
    pub fn new() -> MemDb {
        MemDb::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding the lock cannot leave a half-applied batch (writes are applied
        // after all validation), so a poisoned lock still guards consistent data.
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of stored entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing at all is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Db for MemDb {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self.lock().get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        Ok(self
            .lock()
            .range(prefix.to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn scan_page(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError> {
        Ok(self
            .lock()
            .range(start.max(prefix).to_vec()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<(), DbError> {
        let mut store = self.lock();
        for (key, write) in batch {
            match write {
                Some(value) => store.insert(key, value.to_vec()),
                None => store.remove(&key),
            };
        }
        Ok(())
    }
}
