//! The processor's funds in its database: one row per output, one per queued payment, and their
//! totals. The policy reads them a page at a time from the front (largest outputs, oldest
//! payments), so scheduling costs what it plans, not what the group holds.

use super::{Funds, MemFunds, Payment, Scheduled, Utxo};
use crate::db::{tables, Db, DbError, DbKey, Read, Txn};
use crate::ids::{Amount, OutputId};
use bincode::{Decode, Encode};
use std::collections::VecDeque;

/// Rows read from the database at a time.
const PAGE: usize = 512;

tables! {
    /// The group's spendable outputs, in spending order (largest first, ties by id).
    OUTPUTS: Table<SpendingRank, Utxo> = b"schedule/output/";
    /// Queued payments, by position in the queue (oldest first).
    QUEUE: Table<QueuePosition, Payment> = b"schedule/queue/";
    /// Counts and sums of the rows above, and the agreed fee rate.
    TOTALS: Table<(), Totals> = b"schedule/totals/";
    /// Schema 1 kept the whole scheduler in one value; read only to migrate it.
    SCHEMA_1_STATE: Table<(), Schema1Scheduler> = b"schedule/state/";
}

/// An output's key: its amount, descending, then its id, so that key order is spending order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendingRank {
    amount: Amount,
    id: OutputId,
}

impl SpendingRank {
    fn of(utxo: &Utxo) -> SpendingRank {
        SpendingRank { amount: utxo.amount, id: utxo.id.clone() }
    }
}

impl DbKey for SpendingRank {
    fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = (u64::MAX - self.amount.0).to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.id.0);
        bytes
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        let (amount, id) = bytes.split_first_chunk::<8>()?;
        Some(SpendingRank { amount: Amount(u64::MAX - u64::from_be_bytes(*amount)), id: OutputId(id.to_vec()) })
    }
}

/// A payment's place in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuePosition(u64);

impl DbKey for QueuePosition {
    fn key_bytes(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        Some(QueuePosition(u64::from_be_bytes(bytes.try_into().ok()?)))
    }
}

/// What the funds add up to, kept with every change so no decision needs a full read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Totals {
    /// How many outputs are available.
    pub outputs: u64,
    /// Their sum, in the chain's smallest unit.
    pub holdings: u128,
    /// How many payments are queued.
    pub queued: u64,
    /// The position the next queued payment takes.
    pub next_position: u64,
    /// The fee rate last agreed by the validator set (satoshi per vbyte, piconero per weight
    /// unit).
    pub fee_rate: u64,
}

/// The funds' totals (zero for a new database).
pub fn totals(reader: &impl Read) -> Result<Totals, DbError> {
    Ok(TOTALS.get(reader, &())?.unwrap_or_default())
}

/// The fee rate plans are made at, last agreed by the validator set.
pub fn fee_rate(reader: &impl Read) -> Result<u64, DbError> {
    Ok(totals(reader)?.fee_rate)
}

/// Replaces the fee rate plans are made at, with the one a Burns command carries.
pub fn set_fee_rate<D: Db>(txn: &mut Txn<'_, D>, fee_rate: u64) -> Result<(), DbError> {
    let mut totals = totals(txn)?;
    totals.fee_rate = fee_rate;
    TOTALS.set(txn, &(), &totals);
    Ok(())
}

/// Adds an output unless it is already available (a redelivered report must not add twice).
pub fn add_output<D: Db>(txn: &mut Txn<'_, D>, utxo: Utxo) -> Result<(), DbError> {
    let rank = SpendingRank::of(&utxo);
    if OUTPUTS.get(txn, &rank)?.is_some() {
        return Ok(());
    }
    let mut totals = totals(txn)?;
    totals.outputs += 1;
    totals.holdings += utxo.amount.0 as u128;
    OUTPUTS.set(txn, &rank, &utxo);
    TOTALS.set(txn, &(), &totals);
    Ok(())
}

/// Appends a payment to the end of the queue (first in, first out).
pub fn queue_payment<D: Db>(txn: &mut Txn<'_, D>, payment: Payment) -> Result<(), DbError> {
    let mut totals = totals(txn)?;
    QUEUE.set(txn, &QueuePosition(totals.next_position), &payment);
    totals.next_position += 1;
    totals.queued += 1;
    TOTALS.set(txn, &(), &totals);
    Ok(())
}

/// Plans what the stored funds allow at the agreed fee rate, removing what it plans from them
/// (in the transaction).
pub fn schedule_stored<D: Db>(txn: &mut Txn<'_, D>, model: &super::FeeModel) -> Result<Scheduled, DbError> {
    let mut funds = StoredFunds::open(txn)?;
    let fee_rate = funds.totals.fee_rate;
    super::schedule(&mut funds, fee_rate, model)
}

/// Every output and queued payment, read whole: for inspection and tests, not for deciding.
pub fn snapshot(reader: &impl Read) -> Result<MemFunds, DbError> {
    let utxos = OUTPUTS.entries(reader)?.into_iter().map(|(_, utxo)| utxo).collect();
    let queue = QUEUE.entries(reader)?.into_iter().map(|(_, payment)| payment).collect();
    Ok(MemFunds::from_parts(utxos, queue, fee_rate(reader)?))
}

/// The stored funds as the policy reads them: the front of each table, loaded a page at a time
/// and consumed from the front, every removal written to the transaction at once.
pub struct StoredFunds<'t, 'a, D: Db> {
    txn: &'t mut Txn<'a, D>,
    totals: Totals,
    outputs: Front<SpendingRank, Utxo>,
    payments: Front<QueuePosition, Payment>,
}

/// The loaded front of a table, and where the next page starts.
struct Front<K, V> {
    loaded: VecDeque<(K, V)>,
    last_loaded: Option<K>,
    exhausted: bool,
}

impl<K: DbKey + Clone, V: Encode + Decode<()>> Front<K, V> {
    fn new() -> Self {
        Front { loaded: VecDeque::new(), last_loaded: None, exhausted: false }
    }

    /// Loads pages until `count` entries are loaded or the table ends.
    fn load(&mut self, table: &crate::db::Table<K, V>, reader: &impl Read, count: usize) -> Result<(), DbError> {
        while self.loaded.len() < count && !self.exhausted {
            let page = table.page(reader, self.last_loaded.as_ref(), PAGE)?;
            self.exhausted = page.len() < PAGE;
            if let Some((key, _)) = page.last() {
                self.last_loaded = Some(key.clone());
            }
            self.loaded.extend(page);
        }
        Ok(())
    }

    /// The `index`-th entry's value, loading up to it.
    fn get(&mut self, table: &crate::db::Table<K, V>, reader: &impl Read, index: usize) -> Result<Option<V>, DbError>
    where
        V: Clone,
    {
        self.load(table, reader, index + 1)?;
        Ok(self.loaded.get(index).map(|(_, value)| value.clone()))
    }

    /// Removes the first `count` entries (fewer where the table ends), deleting their rows.
    fn take<D: Db>(
        &mut self,
        table: &crate::db::Table<K, V>,
        txn: &mut Txn<'_, D>,
        count: usize,
    ) -> Result<Vec<V>, DbError> {
        self.load(table, txn, count)?;
        let taken: Vec<(K, V)> = self.loaded.drain(..count.min(self.loaded.len())).collect();
        Ok(taken
            .into_iter()
            .map(|(key, value)| {
                table.delete(txn, &key);
                value
            })
            .collect())
    }
}

impl<'t, 'a, D: Db> StoredFunds<'t, 'a, D> {
    /// The funds as stored, nothing loaded yet.
    pub fn open(txn: &'t mut Txn<'a, D>) -> Result<Self, DbError> {
        let totals = totals(txn)?;
        Ok(StoredFunds { txn, totals, outputs: Front::new(), payments: Front::new() })
    }

    fn save_totals(&mut self) {
        TOTALS.set(self.txn, &(), &self.totals);
    }
}

impl<D: Db> Funds for StoredFunds<'_, '_, D> {
    type Error = DbError;

    fn output_count(&self) -> u64 {
        self.totals.outputs
    }

    fn holdings(&self) -> u128 {
        self.totals.holdings
    }

    fn output(&mut self, index: usize) -> Result<Option<Utxo>, DbError> {
        self.outputs.get(&OUTPUTS, self.txn, index)
    }

    fn take_outputs(&mut self, count: usize) -> Result<Vec<Utxo>, DbError> {
        let taken = self.outputs.take(&OUTPUTS, self.txn, count)?;
        for utxo in &taken {
            self.totals.outputs -= 1;
            self.totals.holdings -= utxo.amount.0 as u128;
        }
        self.save_totals();
        Ok(taken)
    }

    fn queue_len(&self) -> u64 {
        self.totals.queued
    }

    fn payment(&mut self, index: usize) -> Result<Option<Payment>, DbError> {
        self.payments.get(&QUEUE, self.txn, index)
    }

    fn remove_payment(&mut self, index: usize) -> Result<Option<Payment>, DbError> {
        self.payments.load(&QUEUE, self.txn, index + 1)?;
        let Some((position, payment)) = self.payments.loaded.remove(index) else {
            return Ok(None);
        };
        QUEUE.delete(self.txn, &position);
        self.totals.queued -= 1;
        self.save_totals();
        Ok(Some(payment))
    }

    fn take_payments(&mut self, count: usize) -> Result<Vec<Payment>, DbError> {
        let taken = self.payments.take(&QUEUE, self.txn, count)?;
        self.totals.queued -= taken.len() as u64;
        self.save_totals();
        Ok(taken)
    }
}

/// Schema 1's single scheduler value.
#[derive(Encode, Decode)]
pub struct Schema1Scheduler {
    utxos: Vec<Utxo>,
    queue: VecDeque<Payment>,
    fee_rate: u64,
}

/// Schema 1 to 2: the one scheduler value becomes a row per output and per queued payment.
pub fn migrate_from_schema_1<D: Db>(txn: &mut Txn<'_, D>) -> Result<(), DbError> {
    let Some(old) = SCHEMA_1_STATE.take(txn, &())? else {
        return Ok(());
    };
    set_fee_rate(txn, old.fee_rate)?;
    for utxo in old.utxos {
        add_output(txn, utxo)?;
    }
    for payment in old.queue {
        queue_payment(txn, payment)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::MemDb;
    use crate::messages::OutputKind;

    fn utxo(id: u64, amount: u64) -> Utxo {
        Utxo { id: OutputId(id.to_be_bytes().to_vec()), amount: Amount(amount), kind: OutputKind::External }
    }

    #[test]
    fn keys_sort_in_spending_order() {
        let mut utxos = vec![utxo(3, 5), utxo(1, 5), utxo(2, 900), utxo(4, u64::MAX), utxo(5, 0)];
        let mut by_key = utxos.clone();
        by_key.sort_by_key(|u| SpendingRank::of(u).key_bytes());
        utxos.sort_by(super::super::spending_order);
        assert_eq!(by_key, utxos);
        for u in &utxos {
            let rank = SpendingRank::of(u);
            assert_eq!(SpendingRank::from_key_bytes(&rank.key_bytes()), Some(rank));
        }
    }

    #[test]
    fn schema_1_state_migrates_to_rows() {
        let db = MemDb::new();
        let payment = Payment { id: [7; 32], destination: vec![1, 2], amount: Amount(40) };
        let old =
            Schema1Scheduler { utxos: vec![utxo(1, 10), utxo(2, 30)], queue: [payment.clone()].into(), fee_rate: 9 };
        let mut txn = db.txn();
        SCHEMA_1_STATE.set(&mut txn, &(), &old);
        migrate_from_schema_1(&mut txn).unwrap();
        txn.commit().unwrap();
        let funds = snapshot(&db).unwrap();
        assert_eq!(funds, MemFunds::from_parts(vec![utxo(2, 30), utxo(1, 10)], vec![payment], 9));
        assert_eq!(totals(&db).unwrap(), Totals { outputs: 2, holdings: 40, queued: 1, next_position: 1, fee_rate: 9 });
        assert_eq!(SCHEMA_1_STATE.get(&db, &()).unwrap().map(|_| ()), None);
    }
}
