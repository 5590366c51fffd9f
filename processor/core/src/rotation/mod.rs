//! Key rotation: after a newer key takes over (see [`crate::keygen::stage`]), the retiring
//! key's funds move to it, and the retiring key retires once it holds nothing.
//!
//! At every acknowledged block, for each retiring key:
//! 1. **Forwarding**: its largest outputs go to the active key's change address, at most
//!    [`MAX_FORWARDS_PER_BLOCK`] transactions of at most the signable number of inputs each, at
//!    the validators' agreed fee rate (forwarding waits until one was agreed). Each is an
//!    ordinary plan of the retiring key (`PlanKind::Forward`), signed by its validator set,
//!    with an eventuality. Deposits still arriving at the retiring key are credited (with their
//!    InInstructions, in the Batch of their block) and forwarded in a later round.
//! 2. **Retirement**: once the acknowledged height is `retirement_window` blocks past the
//!    handover, the key holds no output, every plan it signs completed at or below the
//!    acknowledged block, and no final block up to it still waits for a Batch of that key or
//!    holds an output to it not yet in the funds, the key retires: its shares are deleted.
//!
//! Deposits to a retiring key are credited while the block is less than `retirement_window`
//! blocks past the handover (every processor applies the same rule to the same block);
//! later ones are reported by scanning but not credited.

use crate::db::{tables, Db, DbError, Txn};
use crate::ids::{Amount, BlockHeight, ExternalChain, OutputId, SessionId};
use crate::keygen::{self, KeyStage};
use crate::messages::{KeyGenEvent, ProcessorMessage};
use crate::payments::{self, Scheduling};
use crate::scheduler::{self, StoredFunds};

tables! {
    /// The highest acknowledged height rotation decisions were taken at.
    ACKNOWLEDGED_THROUGH: Table<(), BlockHeight> = b"rotation/acknowledged_through/";
    /// Outputs of a retiring key worth less than forwarding them costs: left where they are
    /// (written off), with the key they were paid to.
    ABANDONED: Table<OutputId, (SessionId, Amount)> = b"rotation/abandoned/";
}

/// An output a retiring key left behind: its id, and the key it was paid to with its amount.
pub type Abandoned = (OutputId, (SessionId, Amount));

/// The outputs left behind by retiring keys (worth less than forwarding them costs).
pub fn abandoned(reader: &impl crate::db::Read) -> Result<Vec<Abandoned>, DbError> {
    ABANDONED.entries(reader)
}

/// Forwarding transactions planned per retiring key per acknowledged block: bounds the work
/// one command causes; a key with more outputs forwards over several blocks.
pub const MAX_FORWARDS_PER_BLOCK: usize = 4;

/// Forwards what the retiring keys hold and retires those that hold nothing more, after the
/// block at `height` was acknowledged.
pub fn after_acknowledgement<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    height: BlockHeight,
    window: u64,
) -> Result<Scheduling, DbError> {
    // Decisions are taken at rising heights only: one taken at a height below an earlier one
    // would not see the final blocks between them (a coordinator acknowledging out of order).
    if ACKNOWLEDGED_THROUGH.get(txn, &())?.is_some_and(|through| through > height) {
        return Ok(Scheduling::default());
    }
    ACKNOWLEDGED_THROUGH.set(txn, &(), &height);
    let live = keygen::live_keys(txn)?;
    let Some(active) = live.iter().find(|key| matches!(key.stage, KeyStage::Active { .. })).copied() else {
        return Ok(Scheduling::default());
    };
    let mut scheduling = Scheduling::default();
    for key in live {
        let KeyStage::Retiring { handed_over, .. } = key.stage else { continue };
        let mut forwarded = forward(txn, chain, key.session, active.keys.chain)?;
        scheduling.messages.append(&mut forwarded.messages);
        scheduling.plans.append(&mut forwarded.plans);
        if height.0 >= handed_over.0.saturating_add(window) && holds_nothing(txn, key.session, height)? {
            keygen::retire(txn, key.session, height)?;
            scheduling.messages.push(ProcessorMessage::KeyGen(KeyGenEvent::Retired { session: key.session, height }));
        }
    }
    Ok(scheduling)
}

/// Plans up to [`MAX_FORWARDS_PER_BLOCK`] transactions moving `session`'s outputs to `to`.
fn forward<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    session: SessionId,
    to: crate::messages::ChainPublicKey,
) -> Result<Scheduling, DbError> {
    let fee_rate = scheduler::fee_rate(txn)?;
    if crate::mutation::active(crate::mutation::Mutation::SkipForwarding) {
        return Ok(Scheduling::default());
    }
    if fee_rate == 0 || scheduler::holdings(txn, session)?.outputs == 0 {
        return Ok(Scheduling::default());
    }
    // Bitcoin relays anything at 1 sat/vB, so a last bundle too small for the agreed rate still
    // moves (slowly); Monero's minimum is the node's, so it forwards at the agreed rate only.
    let minimum_fee_rate = match chain {
        ExternalChain::Bitcoin => *payments::fee_rate_bounds(chain).start(),
        ExternalChain::Monero => fee_rate,
    };
    let model = payments::fee_model_for(txn, chain, session)?;
    let mut plans = Vec::new();
    let mut left_behind = Vec::new();
    {
        let mut funds = StoredFunds::open(txn, session)?;
        while plans.len() < MAX_FORWARDS_PER_BLOCK {
            match scheduler::forward(&mut funds, to, fee_rate, minimum_fee_rate, &model)? {
                None => break,
                Some(Ok(plan)) => plans.push(plan),
                Some(Err(abandoned)) => {
                    let amount: u64 = abandoned.iter().map(|utxo| utxo.amount.0).sum();
                    tracing::warn!(
                        %session, outputs = abandoned.len(), amount,
                        "outputs of a retiring key are worth less than forwarding them costs: left behind"
                    );
                    left_behind.extend(abandoned);
                }
            }
        }
    }
    for utxo in left_behind {
        ABANDONED.set(txn, &utxo.id, &(session, utxo.amount));
    }
    if !plans.is_empty() {
        tracing::info!(%session, plans = plans.len(), "forwarding a retiring key's outputs to the active key");
    }
    payments::record_plans(txn, chain, session, fee_rate, plans)
}

/// Whether `session`'s key holds nothing and has nothing pending as of the acknowledged block
/// at `height` (only what every processor agrees on by then is read).
fn holds_nothing<D: Db>(txn: &mut Txn<'_, D>, session: SessionId, height: BlockHeight) -> Result<bool, DbError> {
    if crate::mutation::active(crate::mutation::Mutation::RetireWhileHolding) {
        return Ok(true);
    }
    if scheduler::holdings(txn, session)?.outputs > 0 {
        return Ok(false);
    }
    if crate::plan::has_open_plans(txn, session, height)? {
        return Ok(false);
    }
    let pending =
        crate::scanner::holds_pending(txn, session, height, |at| crate::batch::pending_batch_session(txn, at))?;
    Ok(!pending)
}
