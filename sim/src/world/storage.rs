//! Storage faults: a processor's commit fails, as a disk's can. RocksDB applies a write batch
//! atomically (through its write-ahead log), so a failed commit is wholly lost (the write
//! failed) or wholly applied (the batch reached the log, the sync after it failed); either way
//! the daemon exits on the error and is restarted on what is on disk. Nothing half-applied is
//! modelled because the backend cannot produce it.

use super::lock;
use processor_core::db::{Db, DbError, MemDb, RawEntries, WriteBatch};
use std::sync::{Arc, Mutex};

/// How the next commit of a processor fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// The batch never reached the disk.
    Lost,
    /// The batch is on disk, but the write reported an error.
    Applied,
}

/// What the injected errors say, so the node tells them from real failures.
const INJECTED: &str = "simulated storage fault";

/// A processor's view of its store: the shared [`MemDb`], whose next write fails once armed.
#[derive(Clone)]
pub struct FaultyDb {
    db: MemDb,
    armed: Arc<Mutex<Option<StorageFault>>>,
}

impl FaultyDb {
    pub fn new(db: MemDb, armed: Arc<Mutex<Option<StorageFault>>>) -> FaultyDb {
        FaultyDb { db, armed }
    }
}

/// Whether `error` is one a [`FaultyDb`] injected.
pub fn injected(error: &DbError) -> bool {
    matches!(error, DbError::Backend(detail) if detail.starts_with(INJECTED))
}

impl Db for FaultyDb {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.db.get(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        self.db.scan_prefix(prefix)
    }

    fn scan_page(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError> {
        self.db.scan_page(prefix, start, limit)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), DbError> {
        let fault = lock(&self.armed).take();
        match fault {
            None => self.db.write(batch),
            Some(StorageFault::Lost) => Err(DbError::Backend(format!("{INJECTED}: the write failed"))),
            Some(StorageFault::Applied) => {
                self.db.write(batch)?;
                Err(DbError::Backend(format!("{INJECTED}: the sync after the write failed")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> WriteBatch {
        let mut batch = WriteBatch::new();
        batch.insert(b"key".to_vec(), Some(b"value".to_vec().into()));
        batch
    }

    #[test]
    fn an_armed_write_fails_once_lost_or_applied() {
        for (fault, kept) in [(StorageFault::Lost, false), (StorageFault::Applied, true)] {
            let armed = Arc::new(Mutex::new(Some(fault)));
            let db = FaultyDb::new(MemDb::new(), armed.clone());
            let error = db.write(batch()).expect_err("the armed write fails");
            assert!(injected(&error), "{error}");
            assert_eq!(db.get(b"key").unwrap().is_some(), kept, "{fault:?}");
            assert_eq!(*lock(&armed), None, "the fault is spent");
            db.write(batch()).expect("the next write succeeds");
        }
    }
}
