//! Persistence: a key-value store with atomic, durable write transactions, and typed tables.
//!
//! [`Db`] is what a backend implements (in memory for tests and the simulation, RocksDB for the
//! daemon). Everything above it goes through [`Txn`] and [`Table`]: a state change and the
//! messages it sends are written in one `Txn` and become visible together on `commit`, or not
//! at all.
//!
//! Each module declares its own tables next to the code that uses them, with `tables!`, and
//! keeps them private behind intent-named functions: no module reads or writes another's
//! tables. The declarations register themselves in [`registry`], which checks the layout (no
//! prefix shadows another) and stamps the database with its [`registry::SCHEMA_VERSION`].

pub mod conformance;
mod mem;
pub mod registry;
mod table;

pub use mem::MemDb;
pub use registry::{open_schema, SCHEMA_VERSION};
pub use table::{DbKey, Table};

/// Declares a module's tables: each a typed [`Table`] constant, registered (name, module,
/// prefix) in [`registry::TABLES`]. Prefixes end in `/`; none may be a prefix of another
/// (a test checks every registered table).
macro_rules! tables {
    ($($(#[$doc:meta])* $vis:vis $name:ident: Table<$key:ty, $value:ty> = $prefix:literal;)+) => {
        $(
            $(#[$doc])*
            $vis const $name: $crate::db::Table<$key, $value> = $crate::db::Table::new(stringify!($name), $prefix);
        )+
        const _: () = {
            $(
                #[$crate::db::registry::linkme::distributed_slice($crate::db::registry::TABLES)]
                #[linkme(crate = $crate::db::registry::linkme)]
                static $name: $crate::db::registry::TableInfo = $crate::db::registry::TableInfo {
                    name: stringify!($name),
                    module: module_path!(),
                    prefix: $prefix,
                };
            )+
        };
    };
}
pub(crate) use tables;

use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A storage failure. The core treats any of these as fatal: the driver stops and restarts
/// from what was committed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The backend failed (IO, a closed database).
    #[error("storage backend failed: {0}")]
    Backend(String),
    /// A stored value does not decode as its table's type.
    #[error("stored value under {table} is corrupt: {detail}")]
    Corrupt {
        /// The table's name.
        table: &'static str,
        /// What did not decode.
        detail: String,
    },
    /// The database was written in a layout this code does not read.
    #[error("the database has schema {found}, this processor reads schema {supported}: use a processor of that version, or migrate")]
    UnknownSchema {
        /// The version stored in the database.
        found: crate::ids::SchemaVersion,
        /// The version this code reads and writes.
        supported: crate::ids::SchemaVersion,
    },
}

/// Raw entries of a prefix scan: full keys and encoded values, in key order.
pub type RawEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// One atomic set of writes: `None` deletes. Values are zeroized when dropped, since some of
/// them are key shares.
pub type WriteBatch = BTreeMap<Vec<u8>, Option<Zeroizing<Vec<u8>>>>;

/// A storage backend.
pub trait Db: Clone + Send + Sync + 'static {
    /// The committed value stored under exactly `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<RawEntries, DbError>;
    /// At most `limit` entries whose key starts with `prefix` and is at least `start`, in key
    /// order: a page of a table too large to read whole.
    fn scan_page(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError>;
    /// Applies the whole batch atomically and durably (synced before returning).
    fn write(&self, batch: WriteBatch) -> Result<(), DbError>;

    /// A new, empty write transaction on this backend.
    fn txn(&self) -> Txn<'_, Self> {
        Txn { db: self, writes: WriteBatch::new() }
    }
}

/// Read access shared by a backend and a transaction (which reads its own writes).
pub trait Read {
    /// The encoded value under exactly `key`, if any (for a transaction, its own writes first).
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError>;
    /// Every entry whose key starts with `prefix`, in key order (for a transaction, with its
    /// own writes and deletions applied).
    fn scan_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError>;
    /// At most `limit` entries under `prefix` from key `start` on, in key order (for a
    /// transaction, with its own writes and deletions applied).
    fn scan_page_raw(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError>;
}

impl<D: Db> Read for D {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        self.get(key)
    }
    fn scan_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        self.scan_prefix(prefix)
    }
    fn scan_page_raw(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError> {
        self.scan_page(prefix, start, limit)
    }
}

/// A write transaction: buffered writes, read-your-writes, applied only by [`Txn::commit`].
/// Dropping it without committing leaves no trace. The core is single-threaded per processor,
/// so there is no concurrent writer to conflict with.
pub struct Txn<'a, D: Db> {
    db: &'a D,
    writes: WriteBatch,
}

impl<D: Db> Txn<'_, D> {
    /// Buffers writing `value` under `key` (zeroized once the transaction is dropped).
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(Zeroizing::new(value)));
    }
    /// Buffers deleting `key`.
    pub fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
    /// Applies every buffered write in one atomic, durable batch; a transaction without writes
    /// writes nothing.
    pub fn commit(self) -> Result<(), DbError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let written = self.db.write(self.writes);
        if crate::mutation::active(crate::mutation::Mutation::IgnoreFailedCommit) {
            return Ok(());
        }
        written
    }
}

impl<D: Db> Read for Txn<'_, D> {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, DbError> {
        match self.writes.get(key) {
            Some(write) => Ok(write.as_ref().map(|value| value.to_vec())),
            None => self.db.get(key),
        }
    }

    fn scan_raw(&self, prefix: &[u8]) -> Result<RawEntries, DbError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = self.db.scan_prefix(prefix)?.into_iter().collect();
        for (key, write) in self.writes.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match write {
                Some(value) => merged.insert(key.clone(), value.to_vec()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().collect())
    }

    fn scan_page_raw(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<RawEntries, DbError> {
        let start = start.max(prefix).to_vec();
        let pending: Vec<_> =
            self.writes.range(start.clone()..).take_while(|(key, _)| key.starts_with(prefix)).collect();
        // Each buffered deletion hides at most one stored entry, so the first `limit` entries
        // of the merged view are among the store's first `limit + deletions` and the buffer.
        let deletions = pending.iter().filter(|(_, write)| write.is_none()).count();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            self.db.scan_page(prefix, &start, limit.saturating_add(deletions))?.into_iter().collect();
        for (key, write) in pending {
            match write {
                Some(value) => merged.insert(key.clone(), value.to_vec()),
                None => merged.remove(key),
            };
        }
        Ok(merged.into_iter().take(limit).collect())
    }
}
