//! Typed access to one key prefix: keys through [`DbKey`], values through the wire codec.

use super::{Db, DbError, Read, Txn};
use crate::ids::{BatchId, BlockHeight, OutputId, PlanId, SeqId, SessionId};
use crate::messages::SignId;
use crate::messages::{decode, encode};
use bincode::{Decode, Encode};
use core::marker::PhantomData;

/// How a table's key is laid out after the table prefix. Fixed-width big-endian for numbers,
/// so entries iterate in numeric order.
pub trait DbKey: Sized {
    /// The key's bytes after the prefix.
    fn key_bytes(&self) -> Vec<u8>;
    /// The key from its bytes after the prefix; `None` if they are not a key of this type.
    fn from_key_bytes(bytes: &[u8]) -> Option<Self>;
}

impl DbKey for () {
    fn key_bytes(&self) -> Vec<u8> {
        Vec::new()
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.is_empty().then_some(())
    }
}

macro_rules! int_key {
    ($name:ident, $inner:ty) => {
        impl DbKey for $name {
            fn key_bytes(&self) -> Vec<u8> {
                self.to_key_bytes()
            }
            fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
                Some($name(<$inner>::from_be_bytes(bytes.try_into().ok()?)))
            }
        }
    };
}
int_key!(SessionId, u32);
int_key!(SeqId, u64);
int_key!(BlockHeight, u64);
int_key!(BatchId, u32);

/// Fixed 32-byte ids (Burn ids, Monero transaction hashes).
impl DbKey for [u8; 32] {
    fn key_bytes(&self) -> Vec<u8> {
        self.to_vec()
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok()
    }
}

impl DbKey for PlanId {
    fn key_bytes(&self) -> Vec<u8> {
        self.0.to_vec()
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        Some(PlanId(bytes.try_into().ok()?))
    }
}

/// An output's chain-specific id, as the chain module forms it (the last part of a key, so
/// its length needs no prefix).
impl DbKey for OutputId {
    fn key_bytes(&self) -> Vec<u8> {
        self.0.clone()
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        Some(OutputId(bytes.to_vec()))
    }
}

/// A plan under the session that signs it: the session's 4 bytes, then the plan's 32.
impl DbKey for (SessionId, PlanId) {
    fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = self.0.to_key_bytes();
        bytes.extend_from_slice(&self.1 .0);
        bytes
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        let (session, plan) = bytes.split_first_chunk::<4>()?;
        Some((SessionId(u32::from_be_bytes(*session)), PlanId(plan.try_into().ok()?)))
    }
}

/// A signing attempt, in its wire encoding.
impl DbKey for SignId {
    fn key_bytes(&self) -> Vec<u8> {
        encode(self)
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        decode(bytes).ok()
    }
}

/// A typed table: `K` after a fixed prefix, `V` encoded with the wire codec.
pub struct Table<K, V> {
    name: &'static str,
    prefix: &'static [u8],
    _types: PhantomData<fn(K) -> V>,
}

impl<K: DbKey, V: Encode + Decode<()>> Table<K, V> {
    /// A table under `prefix`; declare tables with `db::tables!`, which
    /// registers them.
    pub const fn new(name: &'static str, prefix: &'static [u8]) -> Self {
        Table { name, prefix, _types: PhantomData }
    }

    /// The key prefix.
    pub const fn prefix(&self) -> &'static [u8] {
        self.prefix
    }

    fn full_key(&self, key: &K) -> Vec<u8> {
        let mut full = self.prefix.to_vec();
        full.extend(key.key_bytes());
        full
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, DbError> {
        decode(bytes).map_err(|error| DbError::Corrupt { table: self.name, detail: error.to_string() })
    }

    /// The value under `key`, if any.
    pub fn get(&self, reader: &impl Read, key: &K) -> Result<Option<V>, DbError> {
        reader.get_raw(&self.full_key(key))?.map(|bytes| self.decode_value(&bytes)).transpose()
    }

    /// Writes `value` under `key` (in the transaction).
    pub fn set<D: Db>(&self, txn: &mut Txn<'_, D>, key: &K, value: &V) {
        txn.put(self.full_key(key), encode(value));
    }

    /// Deletes `key` (in the transaction).
    pub fn delete<D: Db>(&self, txn: &mut Txn<'_, D>, key: &K) {
        txn.delete(self.full_key(key));
    }

    /// Reads and deletes.
    pub fn take<D: Db>(&self, txn: &mut Txn<'_, D>, key: &K) -> Result<Option<V>, DbError> {
        let value = self.get(txn, key)?;
        if value.is_some() {
            self.delete(txn, key);
        }
        Ok(value)
    }

    /// Every entry, in key order.
    pub fn entries(&self, reader: &impl Read) -> Result<Vec<(K, V)>, DbError> {
        reader.scan_raw(self.prefix)?.into_iter().map(|(key, value)| self.decode_entry(&key, &value)).collect()
    }

    /// At most `limit` entries in key order, starting after `after` (from the first entry if
    /// `None`): reads a table too large to load whole, one page at a time.
    pub fn page(&self, reader: &impl Read, after: Option<&K>, limit: usize) -> Result<Vec<(K, V)>, DbError> {
        let start = match after {
            // The smallest key greater than `after`'s.
            Some(after) => {
                let mut start = self.full_key(after);
                start.push(0);
                start
            }
            None => self.prefix.to_vec(),
        };
        reader
            .scan_page_raw(self.prefix, &start, limit)?
            .into_iter()
            .map(|(key, value)| self.decode_entry(&key, &value))
            .collect()
    }

    /// [`Table::page`] within one group of keys: the entries whose key bytes begin with
    /// `group` (a partition of the table, such as one key's outputs).
    pub fn page_within(
        &self,
        reader: &impl Read,
        group: &[u8],
        after: Option<&K>,
        limit: usize,
    ) -> Result<Vec<(K, V)>, DbError> {
        let mut prefix = self.prefix.to_vec();
        prefix.extend_from_slice(group);
        let start = match after {
            Some(after) => {
                let mut start = self.full_key(after);
                start.push(0);
                start
            }
            None => prefix.clone(),
        };
        reader
            .scan_page_raw(&prefix, &start, limit)?
            .into_iter()
            .map(|(key, value)| self.decode_entry(&key, &value))
            .collect()
    }

    fn decode_entry(&self, key: &[u8], value: &[u8]) -> Result<(K, V), DbError> {
        let decoded = K::from_key_bytes(&key[self.prefix.len()..])
            .ok_or(DbError::Corrupt { table: self.name, detail: format!("undecodable key {}", hex::encode(key)) })?;
        Ok((decoded, self.decode_value(value)?))
    }
}
