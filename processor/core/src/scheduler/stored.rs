//! The processor's funds in its database: one row per output, one per queued payment, and their
//! totals. The policy reads them a page at a time from the front (largest outputs, oldest
//! payments), so scheduling costs what it plans, not what the group holds.

use super::{Funds, MemFunds, Payment, Scheduled, Utxo};
use crate::db::{tables, Db, DbError, DbKey, Read, Txn};
use crate::ids::{Amount, OutputId, SessionId};
use bincode::{Decode, Encode};
use std::collections::VecDeque;

/// Rows read from the database at a time.
const PAGE: usize = 512;

tables! {
    /// Each key's spendable outputs, in spending order within the key (largest first, ties by
    /// id): one partition per key-generation session, so no plan mixes keys.
    OUTPUTS: Table<SpendingRank, Utxo> = b"schedule/key_output/";
    /// How many outputs each key holds, and their sum.
    HOLDINGS: Table<SessionId, Holdings> = b"schedule/holdings/";
    /// Queued payments, by position in the queue (oldest first).
    QUEUE: Table<QueuePosition, Payment> = b"schedule/queue/";
    /// The queue's count and next position, and the agreed fee rate.
    QUEUE_TOTALS: Table<(), QueueTotals> = b"schedule/queue_totals/";
    /// Schema 1 kept the whole scheduler in one value; read only to migrate it.
    SCHEMA_1_STATE: Table<(), Schema1Scheduler> = b"schedule/state/";
    /// Schema 2's outputs (one key's, unpartitioned); read only to migrate them.
    SCHEMA_2_OUTPUTS: Table<Schema2Rank, Utxo> = b"schedule/output/";
    /// Schema 2's totals; read only to migrate them.
    SCHEMA_2_TOTALS: Table<(), Totals> = b"schedule/totals/";
}

/// An output's key: its key-generation session, then its amount, descending, then its id, so
/// that key order within a session is spending order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendingRank {
    session: SessionId,
    amount: Amount,
    id: OutputId,
}

impl SpendingRank {
    fn of(session: SessionId, utxo: &Utxo) -> SpendingRank {
        SpendingRank { session, amount: utxo.amount, id: utxo.id.clone() }
    }
}

impl DbKey for SpendingRank {
    fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = self.session.to_key_bytes();
        bytes.extend_from_slice(&(u64::MAX - self.amount.0).to_be_bytes());
        bytes.extend_from_slice(&self.id.0);
        bytes
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        let (session, rest) = bytes.split_first_chunk::<4>()?;
        let (amount, id) = rest.split_first_chunk::<8>()?;
        Some(SpendingRank {
            session: SessionId(u32::from_be_bytes(*session)),
            amount: Amount(u64::MAX - u64::from_be_bytes(*amount)),
            id: OutputId(id.to_vec()),
        })
    }
}

/// Schema 2's output key: amount descending, then id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema2Rank(Amount, OutputId);

impl DbKey for Schema2Rank {
    fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = (u64::MAX - self.0 .0).to_be_bytes().to_vec();
        bytes.extend_from_slice(&self.1 .0);
        bytes
    }
    fn from_key_bytes(bytes: &[u8]) -> Option<Self> {
        let (amount, id) = bytes.split_first_chunk::<8>()?;
        Some(Schema2Rank(Amount(u64::MAX - u64::from_be_bytes(*amount)), OutputId(id.to_vec())))
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

/// What one key holds, kept with every change so no decision needs a full read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Holdings {
    /// How many outputs are available.
    pub outputs: u64,
    /// Their sum, in the chain's smallest unit.
    pub holdings: u128,
}

/// The queue's counters and the agreed fee rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct QueueTotals {
    /// How many payments are queued.
    pub queued: u64,
    /// The position the next queued payment takes.
    pub next_position: u64,
    /// The fee rate last agreed by the validator set (satoshi per vbyte, piconero per weight
    /// unit).
    pub fee_rate: u64,
}

/// What the funds add up to over every key (and schema 2's stored totals).
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

/// The funds' totals over every key (zero for a new database).
pub fn totals(reader: &impl Read) -> Result<Totals, DbError> {
    let queue = queue_totals(reader)?;
    let mut totals = Totals {
        queued: queue.queued,
        next_position: queue.next_position,
        fee_rate: queue.fee_rate,
        ..Totals::default()
    };
    for (_, held) in HOLDINGS.entries(reader)? {
        totals.outputs += held.outputs;
        totals.holdings += held.holdings;
    }
    Ok(totals)
}

/// The queue's counters and the fee rate (zero for a new database).
pub fn queue_totals(reader: &impl Read) -> Result<QueueTotals, DbError> {
    Ok(QUEUE_TOTALS.get(reader, &())?.unwrap_or_default())
}

/// What `session`'s key holds.
pub fn holdings(reader: &impl Read, session: SessionId) -> Result<Holdings, DbError> {
    Ok(HOLDINGS.get(reader, &session)?.unwrap_or_default())
}

/// The fee rate plans are made at, last agreed by the validator set.
pub fn fee_rate(reader: &impl Read) -> Result<u64, DbError> {
    Ok(queue_totals(reader)?.fee_rate)
}

/// Replaces the fee rate plans are made at, with the one a Burns command carries.
pub fn set_fee_rate<D: Db>(txn: &mut Txn<'_, D>, fee_rate: u64) -> Result<(), DbError> {
    let mut totals = queue_totals(txn)?;
    totals.fee_rate = fee_rate;
    QUEUE_TOTALS.set(txn, &(), &totals);
    Ok(())
}

/// Adds an output received by `session`'s key unless it is already available (a redelivered
/// report must not add twice).
pub fn add_output<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, utxo: Utxo) -> Result<(), DbError> {
    let rank = SpendingRank::of(session, &utxo);
    if OUTPUTS.get(txn, &rank)?.is_some() {
        return Ok(());
    }
    let mut held = holdings(txn, session)?;
    held.outputs += 1;
    held.holdings += utxo.amount.0 as u128;
    OUTPUTS.set(txn, &rank, &utxo);
    HOLDINGS.set(txn, &session, &held);
    Ok(())
}

/// Appends a payment to the end of the queue (first in, first out).
pub fn queue_payment<D: Db>(txn: &mut Txn<'_, D>, payment: Payment) -> Result<(), DbError> {
    let mut totals = queue_totals(txn)?;
    QUEUE.set(txn, &QueuePosition(totals.next_position), &payment);
    totals.next_position += 1;
    totals.queued += 1;
    QUEUE_TOTALS.set(txn, &(), &totals);
    Ok(())
}

/// Plans what `session`'s stored funds allow at the agreed fee rate, removing what it plans
/// from them (in the transaction).
pub fn schedule_stored<D: Db>(
    txn: &mut Txn<'_, D>,
    session: SessionId,
    model: &super::FeeModel,
) -> Result<Scheduled, DbError> {
    let mut funds = StoredFunds::open(txn, session)?;
    let fee_rate = funds.queue.fee_rate;
    super::schedule(&mut funds, fee_rate, model)
}

/// Takes up to `count` of `session`'s outputs, largest first, out of its funds (to be spent by
/// a plan the caller makes).
pub fn take_outputs<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, count: usize) -> Result<Vec<Utxo>, DbError> {
    StoredFunds::open(txn, session)?.take_outputs(count)
}

/// Every output of every key and every queued payment, read whole: for inspection and tests,
/// not for deciding.
pub fn snapshot(reader: &impl Read) -> Result<MemFunds, DbError> {
    let utxos = OUTPUTS.entries(reader)?.into_iter().map(|(_, utxo)| utxo).collect();
    let queue = QUEUE.entries(reader)?.into_iter().map(|(_, payment)| payment).collect();
    Ok(MemFunds::from_parts(utxos, queue, fee_rate(reader)?))
}

/// Every output `session`'s key holds, in spending order: for inspection and tests.
pub fn outputs_of(reader: &impl Read, session: SessionId) -> Result<Vec<Utxo>, DbError> {
    let mut outputs = Vec::new();
    let mut after = None;
    loop {
        let page = OUTPUTS.page_within(reader, &session.to_key_bytes(), after.as_ref(), PAGE)?;
        let done = page.len() < PAGE;
        after = page.last().map(|(rank, _)| rank.clone());
        outputs.extend(page.into_iter().map(|(_, utxo)| utxo));
        if done {
            return Ok(outputs);
        }
    }
}

/// The stored funds as the policy reads them: the front of each table, loaded a page at a time
/// and consumed from the front, every removal written to the transaction at once.
pub struct StoredFunds<'t, 'a, D: Db> {
    txn: &'t mut Txn<'a, D>,
    session: SessionId,
    held: Holdings,
    queue: QueueTotals,
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

    /// Loads pages of the entries under `group` until `count` are loaded or the group ends.
    fn load(
        &mut self,
        table: &crate::db::Table<K, V>,
        group: &[u8],
        reader: &impl Read,
        count: usize,
    ) -> Result<(), DbError> {
        while self.loaded.len() < count && !self.exhausted {
            let page = table.page_within(reader, group, self.last_loaded.as_ref(), PAGE)?;
            self.exhausted = page.len() < PAGE;
            if let Some((key, _)) = page.last() {
                self.last_loaded = Some(key.clone());
            }
            self.loaded.extend(page);
        }
        Ok(())
    }

    /// The `index`-th entry's value, loading up to it.
    fn get(
        &mut self,
        table: &crate::db::Table<K, V>,
        group: &[u8],
        reader: &impl Read,
        index: usize,
    ) -> Result<Option<V>, DbError>
    where
        V: Clone,
    {
        self.load(table, group, reader, index + 1)?;
        Ok(self.loaded.get(index).map(|(_, value)| value.clone()))
    }

    /// Removes the first `count` entries (fewer where the table ends), deleting their rows.
    fn take<D: Db>(
        &mut self,
        table: &crate::db::Table<K, V>,
        group: &[u8],
        txn: &mut Txn<'_, D>,
        count: usize,
    ) -> Result<Vec<V>, DbError> {
        self.load(table, group, txn, count)?;
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
    /// `session`'s outputs and the queue as stored, nothing loaded yet.
    pub fn open(txn: &'t mut Txn<'a, D>, session: SessionId) -> Result<Self, DbError> {
        let held = holdings(txn, session)?;
        let queue = queue_totals(txn)?;
        Ok(StoredFunds { txn, session, held, queue, outputs: Front::new(), payments: Front::new() })
    }

    fn save_held(&mut self) {
        HOLDINGS.set(self.txn, &self.session, &self.held);
    }

    fn save_queue(&mut self) {
        QUEUE_TOTALS.set(self.txn, &(), &self.queue);
    }
}

impl<D: Db> Funds for StoredFunds<'_, '_, D> {
    type Error = DbError;

    fn output_count(&self) -> u64 {
        self.held.outputs
    }

    fn holdings(&self) -> u128 {
        self.held.holdings
    }

    fn output(&mut self, index: usize) -> Result<Option<Utxo>, DbError> {
        self.outputs.get(&OUTPUTS, &self.session.to_key_bytes(), self.txn, index)
    }

    fn take_outputs(&mut self, count: usize) -> Result<Vec<Utxo>, DbError> {
        let taken = self.outputs.take(&OUTPUTS, &self.session.to_key_bytes(), self.txn, count)?;
        for utxo in &taken {
            self.held.outputs -= 1;
            self.held.holdings -= utxo.amount.0 as u128;
        }
        self.save_held();
        Ok(taken)
    }

    fn queue_len(&self) -> u64 {
        self.queue.queued
    }

    fn payment(&mut self, index: usize) -> Result<Option<Payment>, DbError> {
        self.payments.get(&QUEUE, &[], self.txn, index)
    }

    fn remove_payment(&mut self, index: usize) -> Result<Option<Payment>, DbError> {
        self.payments.load(&QUEUE, &[], self.txn, index + 1)?;
        let Some((position, payment)) = self.payments.loaded.remove(index) else {
            return Ok(None);
        };
        QUEUE.delete(self.txn, &position);
        self.queue.queued -= 1;
        self.save_queue();
        Ok(Some(payment))
    }

    fn take_payments(&mut self, count: usize) -> Result<Vec<Payment>, DbError> {
        let taken = self.payments.take(&QUEUE, &[], self.txn, count)?;
        self.queue.queued -= taken.len() as u64;
        self.save_queue();
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

/// Schema 1 to 2: the one scheduler value becomes a row per output and per queued payment
/// (written in schema 2's layout, which the next step partitions).
pub fn migrate_from_schema_1<D: Db>(txn: &mut Txn<'_, D>) -> Result<(), DbError> {
    let Some(old) = SCHEMA_1_STATE.take(txn, &())? else {
        return Ok(());
    };
    let mut totals = Totals { fee_rate: old.fee_rate, ..Totals::default() };
    for utxo in old.utxos {
        let rank = Schema2Rank(utxo.amount, utxo.id.clone());
        if SCHEMA_2_OUTPUTS.get(txn, &rank)?.is_none() {
            totals.outputs += 1;
            totals.holdings += utxo.amount.0 as u128;
            SCHEMA_2_OUTPUTS.set(txn, &rank, &utxo);
        }
    }
    for payment in old.queue {
        QUEUE.set(txn, &QueuePosition(totals.next_position), &payment);
        totals.next_position += 1;
        totals.queued += 1;
    }
    SCHEMA_2_TOTALS.set(txn, &(), &totals);
    Ok(())
}

/// Schema 2 to 3: the outputs (all of the one key schema 2 knew, `session`'s) move into that
/// key's partition, and the totals split into the key's holdings and the queue's counters.
pub fn migrate_from_schema_2<D: Db>(txn: &mut Txn<'_, D>, session: SessionId) -> Result<(), DbError> {
    loop {
        // Each page is deleted as it moves, so the next page starts at the front again.
        let page = SCHEMA_2_OUTPUTS.page(txn, None, PAGE)?;
        if page.is_empty() {
            break;
        }
        for (rank, utxo) in page {
            SCHEMA_2_OUTPUTS.delete(txn, &rank);
            OUTPUTS.set(txn, &SpendingRank::of(session, &utxo), &utxo);
        }
    }
    if let Some(old) = SCHEMA_2_TOTALS.take(txn, &())? {
        if old.outputs > 0 {
            HOLDINGS.set(txn, &session, &Holdings { outputs: old.outputs, holdings: old.holdings });
        }
        let queue = QueueTotals { queued: old.queued, next_position: old.next_position, fee_rate: old.fee_rate };
        QUEUE_TOTALS.set(txn, &(), &queue);
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
        by_key.sort_by_key(|u| SpendingRank::of(SessionId(3), u).key_bytes());
        utxos.sort_by(super::super::spending_order);
        assert_eq!(by_key, utxos);
        for u in &utxos {
            let rank = SpendingRank::of(SessionId(3), u);
            assert_eq!(SpendingRank::from_key_bytes(&rank.key_bytes()), Some(rank));
        }
        // Sessions partition the table: every output of a lower session sorts first.
        let low = SpendingRank::of(SessionId(1), &utxo(9, 1)).key_bytes();
        let high = SpendingRank::of(SessionId(2), &utxo(9, u64::MAX)).key_bytes();
        assert!(low < high);
    }

    #[test]
    fn schema_1_state_migrates_to_rows_of_the_active_key() {
        let db = MemDb::new();
        let payment = Payment { id: [7; 32], destination: vec![1, 2], amount: Amount(40) };
        let old =
            Schema1Scheduler { utxos: vec![utxo(1, 10), utxo(2, 30)], queue: [payment.clone()].into(), fee_rate: 9 };
        let mut txn = db.txn();
        SCHEMA_1_STATE.set(&mut txn, &(), &old);
        migrate_from_schema_1(&mut txn).unwrap();
        migrate_from_schema_2(&mut txn, SessionId(4)).unwrap();
        txn.commit().unwrap();
        let funds = snapshot(&db).unwrap();
        assert_eq!(funds, MemFunds::from_parts(vec![utxo(2, 30), utxo(1, 10)], vec![payment], 9));
        assert_eq!(totals(&db).unwrap(), Totals { outputs: 2, holdings: 40, queued: 1, next_position: 1, fee_rate: 9 });
        assert_eq!(holdings(&db, SessionId(4)).unwrap(), Holdings { outputs: 2, holdings: 40 });
        assert_eq!(outputs_of(&db, SessionId(4)).unwrap(), vec![utxo(2, 30), utxo(1, 10)]);
        assert_eq!(SCHEMA_1_STATE.get(&db, &()).unwrap().map(|_| ()), None);
        assert!(SCHEMA_2_OUTPUTS.entries(&db).unwrap().is_empty());
        assert_eq!(SCHEMA_2_TOTALS.get(&db, &()).unwrap(), None);
    }

    /// Each key's funds are its own: a plan for one key never spends another's outputs.
    #[test]
    fn each_key_schedules_only_its_own_outputs() {
        let db = MemDb::new();
        let mut txn = db.txn();
        set_fee_rate(&mut txn, 1).unwrap();
        add_output(&mut txn, SessionId(1), utxo(1, 1_000_000)).unwrap();
        add_output(&mut txn, SessionId(2), utxo(2, 50_000)).unwrap();
        add_output(&mut txn, SessionId(2), utxo(2, 50_000)).unwrap();
        let payment = Payment { id: [7; 32], destination: vec![0x51, 0x20], amount: Amount(200_000) };
        queue_payment(&mut txn, payment).unwrap();
        // Session 2 cannot pay 200,000 with 50,000; session 1's million is not touched.
        let scheduled = schedule_stored(&mut txn, SessionId(2), &crate::scheduler::FeeModel::BITCOIN).unwrap();
        assert!(scheduled.plans.is_empty());
        assert_eq!(holdings(&txn, SessionId(2)).unwrap(), Holdings { outputs: 1, holdings: 50_000 });
        let scheduled = schedule_stored(&mut txn, SessionId(1), &crate::scheduler::FeeModel::BITCOIN).unwrap();
        assert_eq!(scheduled.plans.len(), 1);
        assert_eq!(scheduled.plans[0].inputs, vec![utxo(1, 1_000_000)]);
        assert_eq!(holdings(&txn, SessionId(1)).unwrap(), Holdings::default());
        assert_eq!(outputs_of(&txn, SessionId(2)).unwrap(), vec![utxo(2, 50_000)]);
        assert_eq!(take_outputs(&mut txn, SessionId(2), 5).unwrap(), vec![utxo(2, 50_000)]);
        assert_eq!(totals(&txn).unwrap().outputs, 0);
    }
}
