//! Burns become payments, and payments become planned transactions.
//!
//! A Burn is validated (destination parses as a payable address of the chain, amount is
//! positive and within the chain's supply) and queued, or rejected with a message to the
//! coordinator and nothing else changed. Each Burn id is handled once, ever. Scheduling runs
//! only at points of the coordinator's command stream (a Burns command, a block acknowledged,
//! a Batch published), from state those commands built, so every processor plans the same
//! transactions with the same plan ids.

use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{Amount, Attempt, ExternalChain, PlanId, SessionId};
use crate::messages::{encode, Burn, PaymentsEvent, ProcessorMessage};
use crate::scheduler::{self, FeeModel, Payment, Plan};
use bincode::{Decode, Encode};
use sha2::{Digest, Sha256};

/// Bitcoin's supply cap in satoshi; no single payment may exceed it.
const MAX_BITCOIN_SATS: u64 = 21_000_000 * 100_000_000;
/// Burns handled per command (bounds the work a command can cause).
pub const MAX_BURNS_PER_COMMAND: usize = 4096;

/// The fee rates a Burns command may carry, per chain (satoshi per vbyte; piconero per weight
/// unit). Below the minimum no node relays the transaction; above the maximum the fee would
/// swallow the payments (and forfeit every queued Burn), so a command outside them is refused
/// whole rather than obeyed. Bitcoin's 1,000 sat/vB is several times the highest rate paid in
/// its history; Monero's 10,000,000 piconero/weight is 500 times mainnet's usual rate and above
/// what monerod's regtest asks (4,700,000).
pub fn fee_rate_bounds(chain: ExternalChain) -> core::ops::RangeInclusive<u64> {
    match chain {
        ExternalChain::Bitcoin => 1..=1_000,
        ExternalChain::Monero => 1..=10_000_000,
    }
}

pub use crate::plan::{plan, plans, save_plan, PlanRecord, PlanState};

tables! {
    /// Every Burn ever received, by id, so one is never paid twice.
    BURNS: Table<[u8; 32], BurnStatus> = b"pay/burn/";
}

/// What became of the Burn with this id, if it was ever received.
pub fn burn_status(reader: &impl Read, id: &[u8; 32]) -> Result<Option<BurnStatus>, DbError> {
    BURNS.get(reader, id)
}

/// Every Burn received, with what became of it.
pub fn burns_received(reader: &impl Read) -> Result<Vec<([u8; 32], BurnStatus)>, DbError> {
    BURNS.entries(reader)
}

/// What became of a Burn.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum BurnStatus {
    /// Invalid (see [`validate_burn`]); reported with `PaymentsEvent::BurnRejected`, never paid.
    Rejected,
    /// Valid and waiting in the scheduler's queue for funds.
    Queued,
    /// Paid by the plan with this id.
    Planned(PlanId),
    /// Too small to carry its share of the fee: not paid, its amount kept by the group.
    Forfeited,
}

/// The fee model of a chain.
pub fn fee_model(chain: ExternalChain) -> &'static FeeModel {
    match chain {
        ExternalChain::Bitcoin => &FeeModel::BITCOIN,
        ExternalChain::Monero => &FeeModel::MONERO,
    }
}

/// A plan's id: a hash of everything it does, so equal plans have equal ids everywhere.
pub fn plan_id(chain: ExternalChain, plan: &Plan) -> PlanId {
    let mut hasher = Sha256::new();
    hasher.update(b"threshold-custody processor: plan v1");
    hasher.update(encode(&(chain, plan)));
    PlanId(hasher.finalize().into())
}

/// Why a Burn cannot be paid, if it cannot.
pub fn validate_burn(chain: ExternalChain, burn: &Burn) -> Result<(), String> {
    if burn.amount.0 == 0 {
        return Err("the amount is zero".into());
    }
    match chain {
        ExternalChain::Bitcoin => {
            if burn.amount.0 > MAX_BITCOIN_SATS {
                return Err("the amount exceeds Bitcoin's supply".into());
            }
            let script = bitcoin::Script::from_bytes(&burn.destination);
            let payable =
                script.is_p2tr() || script.is_p2wpkh() || script.is_p2wsh() || script.is_p2pkh() || script.is_p2sh();
            if !payable {
                return Err("the destination is not a standard output script (P2TR, P2WPKH, P2WSH, P2PKH, P2SH)".into());
            }
            let dust = FeeModel::BITCOIN.payment_dust(&burn.destination);
            if burn.amount < dust {
                return Err(format!("the amount is below the destination script's dust limit ({dust} sat)"));
            }
        }
        ExternalChain::Monero => {
            let text =
                core::str::from_utf8(&burn.destination).map_err(|_| "the destination is not text".to_string())?;
            monero_wallet::address::MoneroAddress::from_str(monero_wallet::address::Network::Mainnet, text)
                .map_err(|e| format!("the destination is not a mainnet Monero address: {e:?}"))?;
        }
    }
    Ok(())
}

/// What a scheduling step produced: messages to the coordinator, and the plans it made (whose
/// signing begins now).
#[derive(Debug, Default)]
pub struct Scheduling {
    /// Reports for the coordinator: rejected, forfeited and planned Burns, plans completed at once.
    pub messages: Vec<ProcessorMessage>,
    /// The plans whose signing the caller starts, in the order they were made.
    pub plans: Vec<PlanId>,
}

/// Handles a Burns command: validate, queue, schedule.
pub fn burns<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    command_chain: ExternalChain,
    burns: Vec<Burn>,
    fee_rate: u64,
) -> Result<Result<Scheduling, String>, DbError> {
    if command_chain != chain {
        return Ok(Err(format!("Burns for {command_chain} sent to the {chain} processor")));
    }
    if burns.len() > MAX_BURNS_PER_COMMAND {
        return Ok(Err(format!("{} Burns in one command exceed {MAX_BURNS_PER_COMMAND}", burns.len())));
    }
    let bounds = fee_rate_bounds(chain);
    if !bounds.contains(&fee_rate) {
        return Ok(Err(format!("fee rate {fee_rate} is outside {}..={} for {chain}", bounds.start(), bounds.end())));
    }
    scheduler::set_fee_rate(txn, fee_rate)?;
    let mut messages = Vec::new();
    for burn in burns {
        if BURNS.get(txn, &burn.id)?.is_some()
            && !crate::mutation::active(crate::mutation::Mutation::NoBurnDeduplication)
        {
            continue;
        }
        match validate_burn(chain, &burn) {
            Ok(()) => {
                BURNS.set(txn, &burn.id, &BurnStatus::Queued);
                let payment = Payment { id: burn.id, destination: burn.destination, amount: burn.amount };
                scheduler::queue_payment(txn, payment)?;
            }
            Err(reason) => {
                tracing::warn!(id = %hex::encode(burn.id), reason, "Burn rejected");
                BURNS.set(txn, &burn.id, &BurnStatus::Rejected);
                messages.push(ProcessorMessage::Payments(PaymentsEvent::BurnRejected { id: burn.id, reason }));
            }
        }
    }
    let mut scheduling = schedule(txn, chain)?;
    messages.append(&mut scheduling.messages);
    scheduling.messages = messages;
    Ok(Ok(scheduling))
}

/// Plans what the group's funds allow now, recording plans (with their eventualities) and
/// forfeits.
pub fn schedule<D: Db>(txn: &mut Txn<'_, D>, chain: ExternalChain) -> Result<Scheduling, DbError> {
    let totals = scheduler::totals(txn)?;
    if totals.queued == 0 {
        return Ok(Scheduling::default());
    }
    let Some(session) = crate::keygen::active_session(txn)? else {
        return Ok(Scheduling::default());
    };
    let model = fee_model_for(txn, chain, session)?;
    let scheduled = scheduler::schedule_stored(txn, session, &model)?;
    let mut messages = Vec::new();
    for payment in scheduled.forfeited {
        BURNS.set(txn, &payment.id, &BurnStatus::Forfeited);
        messages
            .push(ProcessorMessage::Payments(PaymentsEvent::BurnForfeited { id: payment.id, amount: payment.amount }));
    }
    let mut scheduling = record_plans(txn, chain, session, totals.fee_rate, scheduled.plans)?;
    messages.append(&mut scheduling.messages);
    scheduling.messages = messages;
    Ok(scheduling)
}

/// Records plans `session`'s key will sign (with their eventualities, and their Burns as
/// planned), returning the reports and the plans whose signing is to start.
pub fn record_plans<D: Db>(
    txn: &mut Txn<'_, D>,
    chain: ExternalChain,
    session: SessionId,
    fee_rate: u64,
    planned: Vec<Plan>,
) -> Result<Scheduling, DbError> {
    let mut messages = Vec::new();
    let mut plans = Vec::new();
    for plan in planned {
        let id = plan_id(chain, &plan);
        let burns: Vec<[u8; 32]> = plan.payments.iter().map(|p| p.payment.id).collect();
        for burn in &burns {
            BURNS.set(txn, burn, &BurnStatus::Planned(id));
        }
        tracing::info!(plan = %id, %session, kind = ?plan.kind, inputs = plan.inputs.len(), payments = burns.len(), fee = %plan.fee, "planned a transaction");
        let mut record =
            PlanRecord { id, chain, session, plan, state: PlanState::Planned, attempt: Attempt(0), fee_rate };
        crate::plan::save_plan(txn, &record);
        messages.push(ProcessorMessage::Payments(PaymentsEvent::Planned { plan: id, burns }));
        match crate::transaction::eventuality::watch(txn, &record) {
            Ok(None) => plans.push(id),
            Ok(Some((transaction, at))) => {
                crate::transaction::complete(txn, &mut record, transaction.clone(), at);
                messages.push(ProcessorMessage::Sign(crate::messages::SignEvent::Completed { plan: id, transaction }));
            }
            Err(crate::sign::SignError::Db(error)) => return Err(error),
            // Only a plan that cannot be built gets here; it is kept, unsigned, for inspection.
            Err(error) => tracing::error!(plan = %id, %error, "a plan's transaction cannot be built"),
        }
    }
    Ok(Scheduling { messages, plans })
}

/// How many inputs one plan of `session`'s key may have on `chain`: the chain's model, and
/// every signer's preprocess fitting one message (the largest set where the session's
/// threshold is not recorded).
pub fn fee_model_for(reader: &impl Read, chain: ExternalChain, session: SessionId) -> Result<FeeModel, DbError> {
    let signers = crate::keygen::threshold(reader, session)?.map_or(crate::keygen::MAX_PARTICIPANTS, usize::from);
    let mut model = *fee_model(chain);
    model.max_inputs = model.max_inputs.min(crate::transaction::max_signable_inputs(chain, signers));
    Ok(model)
}

/// The amount a plan pays out, for reports.
pub fn paid_out(plan: &Plan) -> Amount {
    Amount(plan.payments.iter().map(|p| p.paid.0).sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn burn(destination: bitcoin::ScriptBuf, amount: u64) -> Burn {
        Burn { id: [1; 32], destination: destination.to_bytes(), amount: Amount(amount) }
    }

    /// A Burn below its destination's dust limit is rejected when it arrives (hole 4).
    #[test]
    fn burns_below_their_destination_dust_limit_are_rejected() {
        let p2pkh = bitcoin::ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([7; 20]));
        let p2sh = bitcoin::ScriptBuf::new_p2sh(&bitcoin::ScriptHash::from_byte_array([7; 20]));
        let p2wpkh = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([7; 20]));
        let chain = ExternalChain::Bitcoin;
        assert!(validate_burn(chain, &burn(p2pkh.clone(), 545)).is_err());
        assert!(validate_burn(chain, &burn(p2pkh, 546)).is_ok());
        assert!(validate_burn(chain, &burn(p2sh.clone(), 539)).is_err());
        assert!(validate_burn(chain, &burn(p2sh, 540)).is_ok());
        assert!(validate_burn(chain, &burn(p2wpkh.clone(), 329)).is_err());
        assert!(validate_burn(chain, &burn(p2wpkh, 330)).is_ok());
    }

    #[test]
    fn fee_rate_bounds_exclude_zero_and_absurd_rates() {
        for chain in [ExternalChain::Bitcoin, ExternalChain::Monero] {
            let bounds = fee_rate_bounds(chain);
            assert!(!bounds.contains(&0) && bounds.contains(&1));
            assert!(!bounds.contains(&1_000_000_000_000_000));
        }
        // What monerod's regtest asks must pass.
        assert!(fee_rate_bounds(ExternalChain::Monero).contains(&4_700_000));
    }
}
