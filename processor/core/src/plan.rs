//! Planned transactions: what the group decided to sign, and where each stands. Payments make
//! plans (`payments::schedule`); signing and completion on chain advance them
//! (`transaction`). Kept apart from both so neither owns the other's state.

use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{Attempt, ExternalChain, PlanId, SessionId};
use crate::scheduler::Plan;
use bincode::{Decode, Encode};

tables! {
    /// Planned transactions, by plan id.
    PLANS: Table<PlanId, PlanRecord> = b"pay/plan/";
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
