//! Planned transactions: what the group decided to sign, and where each stands. Payments make
//! plans (`payments::schedule`); signing and completion on chain advance them
//! (`transaction`). Kept apart from both so neither owns the other's state.

use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{Attempt, BlockHeight, ExternalChain, PlanId, SessionId};
use crate::scheduler::Plan;
use bincode::{Decode, Encode};

tables! {
    /// Planned transactions, by plan id.
    PLANS: Table<PlanId, PlanRecord> = b"pay/plan/";
    /// The plans of each session not known to be settled below an acknowledged height: `None`
    /// while open, the height of the block that completed it once complete (a key retires
    /// only once every plan of it completed at or below the acknowledged block).
    OPEN_PLANS: Table<(SessionId, PlanId), Option<BlockHeight>> = b"pay/open_plan/";
}

/// Whether `session`'s key has a plan still open, or completed above `through` (its outputs
/// not yet acknowledged); forgets the plans completed at or below it.
pub fn has_open_plans<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, through: BlockHeight) -> Result<bool, DbError> {
    let mut after = None;
    loop {
        let page = OPEN_PLANS.page_within(txn, &session.to_key_bytes(), after.as_ref(), 256)?;
        let done = page.len() < 256;
        for (key, completed) in &page {
            match completed {
                Some(height) if *height <= through => OPEN_PLANS.delete(txn, key),
                _ => return Ok(true),
            }
        }
        after = page.last().map(|(key, _)| *key);
        if done {
            return Ok(false);
        }
    }
}

/// Records that a plan's transaction is in the final block at `height`.
pub fn completed_at<D: Db>(txn: &mut Txn<'_, D>, record: &PlanRecord, height: BlockHeight) {
    OPEN_PLANS.set(txn, &(record.session, record.id), &Some(height));
}

/// Schema 2 to 3: the open plans' index, from every plan not completed or failed.
pub fn migrate_from_schema_2<D: Db>(txn: &mut Txn<'_, D>) -> Result<(), DbError> {
    for (_, record) in PLANS.entries(txn)? {
        save_plan(txn, &record);
    }
    Ok(())
}

/// The plan with this id, if it was made here.
pub fn plan(reader: &impl Read, id: PlanId) -> Result<Option<PlanRecord>, DbError> {
    PLANS.get(reader, &id)
}

/// Every plan made here, by id.
pub fn plans(reader: &impl Read) -> Result<Vec<(PlanId, PlanRecord)>, DbError> {
    PLANS.entries(reader)
}

/// Stores a plan's record: made, its state advanced by signing or completion (benchmarks and
/// tests store plans made elsewhere).
pub fn save_plan<D: Db>(txn: &mut Txn<'_, D>, record: &PlanRecord) {
    PLANS.set(txn, &record.id, record);
    let key = (record.session, record.id);
    match record.state {
        PlanState::Planned | PlanState::Signed { .. } => OPEN_PLANS.set(txn, &key, &None),
        // Where it completed is recorded by `completed_at`.
        PlanState::Completed { .. } => {}
        PlanState::Failed { .. } => OPEN_PLANS.delete(txn, &key),
    }
}

/// Where a planned transaction stands.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum PlanState {
    /// Being signed.
    Planned,
    /// Signed here; published until seen in a final block.
    Signed {
        /// The signed transaction in its chain's encoding, as published.
        transaction: Vec<u8>,
    },
    /// Its transaction (this chain id) is in a final block.
    Completed {
        /// The transaction's id on its chain (Bitcoin's txid, Monero's transaction hash).
        transaction: Vec<u8>,
    },
    /// Its transaction cannot be built (see `PaymentsEvent::PlanFailed`).
    Failed {
        /// The chain's transaction builder's refusal.
        reason: String,
    },
}

/// A plan made here, as stored: the plan, who signs it, and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PlanRecord {
    /// The plan's id ([`plan_id`]): equal on every processor that made the same plan.
    pub id: PlanId,
    /// The external chain the transaction is for.
    pub chain: ExternalChain,
    /// The key-generation session whose key signs it (the one active when it was made).
    pub session: SessionId,
    /// What the transaction spends and pays.
    pub plan: Plan,
    /// Where its signing and completion stand.
    pub state: PlanState,
    /// The latest signing attempt this processor took part in.
    pub attempt: Attempt,
    /// The fee rate the plan was made at (what a chain whose transaction builder sets the fee
    /// itself, Monero, builds with).
    pub fee_rate: u64,
}
