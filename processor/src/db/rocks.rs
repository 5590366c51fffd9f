//! RocksDB backend for the daemon: every commit is one `WriteBatch` written with `sync`, so a
//! committed transaction survives a crash or power loss, and a torn one never appears.

use processor_core::db::{Db, DbError, RawEntries, WriteBatch};
use rocksdb::{IteratorMode, Options, WriteOptions, DB};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone)]
pub struct RocksDb(Arc<DB>);

impl RocksDb {
    pub fn open(path: &Path) -> Result<RocksDb, DbError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        // Explicit: the DB is small and written on every message; sync writes are the point.
        options.set_use_fsync(false);
        let db = DB::open(&options, path)
            .map_err(|error| DbError::Backend(format!("opening {}: {error}", path.display())))?;
        Ok(RocksDb(Arc::new(db)))
    }

    /// Opens an existing store for reading only. RocksDB takes no lock for this, so it works
    /// while a daemon has the store open, and sees the state as of opening. Every write fails.
    pub fn open_read_only(path: &Path) -> Result<RocksDb, DbError> {
        let db = DB::open_for_read_only(&Options::default(), path, false)
            .map_err(|error| DbError::Backend(format!("opening {} read-only: {error}", path.display())))?;
        Ok(RocksDb(Arc::new(db)))
    }
}

fn backend(error: rocksdb::Error) -> DbError {
    DbError::Backend(error.to_string())
}

impl Db for RocksDb {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.0.get(key).map_err(backend)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        let mut entries = Vec::new();
        for item in self.0.iterator(IteratorMode::From(prefix, rocksdb::Direction::Forward)) {
            let (key, value) = item.map_err(backend)?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    fn scan_page(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError> {
        let mut entries = Vec::new();
        let start = start.max(prefix);
        for item in self.0.iterator(IteratorMode::From(start, rocksdb::Direction::Forward)) {
            let (key, value) = item.map_err(backend)?;
            if !key.starts_with(prefix) || entries.len() >= limit {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    fn write(&self, batch: WriteBatch) -> Result<(), DbError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for (key, write) in &batch {
            match write {
                Some(value) => rocks_batch.put(key, value.as_slice()),
                None => rocks_batch.delete(key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.0.write_opt(rocks_batch, &options).map_err(backend)
    }
}
