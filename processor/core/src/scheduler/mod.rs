//! The scheduler of a UTXO chain: which of the group's outputs pay which queued payments.
//!
//! Policy (the same on every validator, so every honest processor plans the same
//! transactions):
//! - Payments are planned first-in first-out, up to `max_outputs - 1` per transaction (one
//!   output is kept for change back to the group).
//! - Inputs are the largest available outputs first, at most `max_inputs`, until they cover the
//!   payments' amounts.
//! - **Fees of a payment transaction are paid by its payments**, spread evenly (the remainder of
//!   the division on the first payment). A payment that would be left with less than the dust
//!   threshold after its share is **forfeited**: not paid out, its amount stays with the group,
//!   and it is reported so Serai can account for it.
//! - Change below the dust threshold is not created; it goes to the fee.
//! - When the payments cannot be covered with `max_inputs` inputs although the group holds
//!   enough, a **consolidation** transaction first merges the largest outputs into one.
//! - When more payments are queued than one transaction can hold and the group has fewer
//!   outputs than transactions are needed, a **branch** transaction first splits funds into one
//!   output per future payment transaction. Consolidation and branch fees are paid by the group.
//! - Payments the group cannot cover yet wait in the queue.
//!
//! Outputs created by a plan (change, branches, consolidations) come back through
//! [`Scheduler::add_output`] once their transaction is final.

#[cfg(test)]
mod tests;

use crate::db::tables;
use crate::ids::{Amount, OutputId};
use bincode::{Decode, Encode};
use std::collections::VecDeque;

tables! {
    /// The group's spendable outputs and queued payments.
    SCHEDULER: Table<(), Scheduler> = b"schedule/state/";
}

/// How a payment's destination limits the smallest output paying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationDust {
    /// The model's `dust`, whatever the destination (Monero: amounts are hidden).
    Fixed,
    /// Bitcoin Core's dust limit of the destination script (546 sat for P2PKH, 540 for P2SH,
    /// 294 for P2WPKH, 330 for P2WSH and P2TR), and never below the model's `dust`: an output
    /// below it is non-standard, and no node would relay the transaction.
    BitcoinScript,
}

/// A chain's transaction-size model and limits, for fees and for splitting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeModel {
    /// Size units of a transaction with no inputs or outputs.
    pub base_units: u64,
    /// Size units each input adds (vbytes for Bitcoin, fee weight for Monero).
    pub units_per_input: u64,
    /// Size units each output adds (vbytes for Bitcoin, fee weight for Monero).
    pub units_per_output: u64,
    /// Smallest output worth creating (for the group's own outputs; payments also respect
    /// their destination's limit, see [`FeeModel::payment_dust`]).
    pub dust: Amount,
    /// How a payment's destination limits its smallest output.
    pub destination_dust: DestinationDust,
    /// Most inputs one planned transaction may spend.
    pub max_inputs: usize,
    /// Most outputs one planned transaction may have, change included.
    pub max_outputs: usize,
}

impl FeeModel {
    /// The smallest amount a payment to `destination` may be paid.
    pub fn payment_dust(&self, destination: &[u8]) -> Amount {
        match self.destination_dust {
            DestinationDust::Fixed => self.dust,
            DestinationDust::BitcoinScript => {
                let limit = bitcoin::Script::from_bytes(destination).minimal_non_dust().to_sat();
                Amount(limit.max(self.dust.0))
            }
        }
    }

    /// Bitcoin Taproot key-path spends, sizes in vbytes (rounded up).
    pub const BITCOIN: FeeModel = FeeModel {
        base_units: 11,
        units_per_input: 58,
        units_per_output: 43,
        dust: Amount(330),
        destination_dust: DestinationDust::BitcoinScript,
        max_inputs: 400,
        max_outputs: 250,
    };

    /// Monero CLSAG + Bulletproofs+ transactions (16 outputs at most, change included), in
    /// monerod's fee weight units, a linear upper bound of what monero-wallet computes: about
    /// 660 per input (a ring of 16) and, per output, steps where the Bulletproof+ pads to the
    /// next power of two (measured: 1 input and 2/5/9/16 outputs weigh 1,510/3,283/5,645/6,169;
    /// `tests/monero_fees.rs` checks the bound against real transactions).
    pub const MONERO: FeeModel = FeeModel {
        base_units: 1_100,
        units_per_input: 700,
        units_per_output: 500,
        dust: Amount(1_000_000),
        destination_dust: DestinationDust::Fixed,
        max_inputs: 64,
        max_outputs: 16,
    };

    /// The fee of a transaction with this many inputs and outputs at `rate_per_unit` (satoshi
    /// per vbyte, piconero per weight unit), in the chain's smallest unit; saturates on overflow.
    pub fn fee(&self, rate_per_unit: u64, inputs: usize, outputs: usize) -> Amount {
        let units = self.base_units + self.units_per_input * inputs as u64 + self.units_per_output * outputs as u64;
        Amount(units.saturating_mul(rate_per_unit))
    }
}

/// An output the group can spend.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub struct Utxo {
    /// The output's chain-specific id (Bitcoin: txid and index; Monero: transaction hash and index).
    pub id: OutputId,
    /// Its value, in the chain's smallest unit (satoshi, piconero).
    pub amount: Amount,
    /// Which of the group's addresses holds it (how it is signed for).
    pub kind: crate::messages::OutputKind,
}

/// A payment to make (from a Burn).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Payment {
    /// The id of the Burn it pays.
    pub id: [u8; 32],
    /// The Burn's chain-encoded destination (a script for Bitcoin, an address string for Monero).
    pub destination: Vec<u8>,
    /// The Burn's amount, before the payment's share of the fee (satoshi, piconero).
    pub amount: Amount,
}

/// A payment within a plan: what the recipient receives after its fee share.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PlannedPayment {
    /// The payment as queued.
    pub payment: Payment,
    /// The output's amount: the payment's amount less its share of the transaction's fee.
    pub paid: Amount,
}

/// What a plan's transaction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum PlanKind {
    /// Pays queued payments, their fee deducted from them, with change back to the group.
    Payments,
    /// Splits funds into outputs for later payment transactions.
    Branch,
    /// Merges many outputs into one.
    Consolidation,
}

/// One transaction the group will sign.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Plan {
    /// Why the transaction is made.
    pub kind: PlanKind,
    /// The group's outputs it spends, in input order.
    pub inputs: Vec<Utxo>,
    /// The payments it makes, in output order (first in, first out).
    pub payments: Vec<PlannedPayment>,
    /// Outputs back to the group meant to fund later transactions.
    pub branches: Vec<Amount>,
    /// The output back to the group's change address, if the leftover is not dust.
    pub change: Option<Amount>,
    /// The transaction's fee (dust change included), in the chain's smallest unit.
    pub fee: Amount,
}

impl Plan {
    /// The sum of the inputs' amounts, in the chain's smallest unit.
    pub fn input_total(&self) -> u64 {
        self.inputs.iter().map(|input| input.amount.0).sum()
    }

    /// How many outputs the transaction has: payments, branches and change.
    pub fn output_count(&self) -> usize {
        self.payments.len() + self.branches.len() + usize::from(self.change.is_some())
    }

    /// Inputs = payments + branches + change + fee, exactly. Checked when a plan is made and
    /// again before its transaction is built.
    pub fn conserves_value(&self) -> bool {
        let paid: u64 = self.payments.iter().map(|p| p.paid.0).sum();
        let branches: u64 = self.branches.iter().map(|b| b.0).sum();
        let out = paid as u128 + branches as u128 + self.change.map_or(0, |c| c.0) as u128 + self.fee.0 as u128;
        out == self.input_total() as u128
    }
}

/// What one scheduling pass decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduled {
    /// The transactions planned, in the order they were made.
    pub plans: Vec<Plan>,
    /// Payments too small to pay their own fee: not paid, amount kept by the group.
    pub forfeited: Vec<Payment>,
}

/// The group's spendable outputs, its queue of payments, and the agreed fee rate, as stored; see
/// the module docs for the policy that turns them into plans.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct Scheduler {
    /// Available outputs, largest first (ties by id, so the order is canonical).
    utxos: Vec<Utxo>,
    queue: VecDeque<Payment>,
    /// The fee rate last agreed by the validator set.
    fee_rate: u64,
}

impl Scheduler {
    /// The scheduler as stored, or an empty one.
    pub fn load(reader: &impl crate::db::Read) -> Result<Scheduler, crate::db::DbError> {
        Ok(SCHEDULER.get(reader, &())?.unwrap_or_default())
    }

    /// Stores the scheduler (in the transaction).
    pub fn save<D: crate::db::Db>(&self, txn: &mut crate::db::Txn<'_, D>) {
        SCHEDULER.set(txn, &(), self);
    }

    /// Adds an output unless it is already known (a redelivered report must not add twice).
    pub fn add_output(&mut self, utxo: Utxo) {
        let Err(position) =
            self.utxos.binary_search_by(|probe| utxo.amount.cmp(&probe.amount).then_with(|| probe.id.cmp(&utxo.id)))
        else {
            return;
        };
        self.utxos.insert(position, utxo);
    }

    /// The fee rate last agreed by the validator set (satoshi per vbyte, piconero per weight unit).
    pub fn fee_rate(&self) -> u64 {
        self.fee_rate
    }

    /// Replaces the fee rate plans are made at, with the one a Burns command carries.
    pub fn set_fee_rate(&mut self, fee_rate: u64) {
        self.fee_rate = fee_rate;
    }

    /// Appends a payment to the end of the queue (first in, first out).
    pub fn queue_payment(&mut self, payment: Payment) {
        self.queue.push_back(payment);
    }

    /// The spendable outputs, largest first.
    pub fn available(&self) -> &[Utxo] {
        &self.utxos
    }

    /// The payments waiting to be planned, oldest first.
    pub fn queued(&self) -> impl Iterator<Item = &Payment> {
        self.queue.iter()
    }

    fn holdings(&self) -> u128 {
        self.utxos.iter().map(|u| u.amount.0 as u128).sum()
    }

    /// Plans as many queued payments as the available outputs allow.
    pub fn schedule(&mut self, fee_rate: u64, model: &FeeModel) -> Scheduled {
        assert!(model.max_outputs >= 2 && model.max_inputs >= 1, "a fee model must allow a payment and change");
        let mut scheduled = Scheduled::default();
        if self.queue.len() > model.max_outputs - 1
            && self.utxos.len() < self.queue.len().div_ceil(model.max_outputs - 1)
        {
            if let Some(plan) = self.branch(fee_rate, model) {
                scheduled.plans.push(plan);
                return scheduled;
            }
        }
        while !self.queue.is_empty() {
            match self.plan_payments(fee_rate, model, &mut scheduled.forfeited) {
                Some(plan) => scheduled.plans.push(plan),
                None => {
                    if let Some(plan) = self.consolidate(fee_rate, model) {
                        scheduled.plans.push(plan);
                    }
                    break;
                }
            }
        }
        scheduled
    }

    /// Takes the largest outputs, at most `max_inputs`, until they reach `needed`.
    fn select(&self, needed: u128, model: &FeeModel) -> Option<usize> {
        let mut total = 0u128;
        for (count, utxo) in self.utxos.iter().take(model.max_inputs).enumerate() {
            total += utxo.amount.0 as u128;
            if total >= needed {
                return Some(count + 1);
            }
        }
        None
    }

    /// One payment transaction from the head of the queue, or `None` if it cannot be funded.
    fn plan_payments(&mut self, fee_rate: u64, model: &FeeModel, forfeited: &mut Vec<Payment>) -> Option<Plan> {
        let mut take = self.queue.len().min(model.max_outputs - 1);
        loop {
            if take == 0 {
                return None;
            }
            let needed: u128 = self.queue.iter().take(take).map(|p| p.amount.0 as u128).sum();
            let Some(inputs) = self.select(needed, model) else {
                take -= 1;
                continue;
            };
            let input_total: u128 = self.utxos[..inputs].iter().map(|u| u.amount.0 as u128).sum();
            let leftover = input_total - needed;
            let with_change = leftover >= model.dust.0 as u128;
            let outputs = take + usize::from(with_change);
            let fee = model.fee(fee_rate, inputs, outputs).0;
            let share = fee / take as u64;
            let remainder = fee % take as u64;

            // Forfeit the first payment that cannot carry its share, then plan again.
            let batch: Vec<&Payment> = self.queue.iter().take(take).collect();
            let unpayable = batch.iter().enumerate().position(|(i, p)| {
                let owed = share + if i == 0 { remainder } else { 0 };
                p.amount.0 < owed.saturating_add(model.payment_dust(&p.destination).0)
            });
            if let Some(position) = unpayable {
                let payment = self.queue.remove(position).expect("position is within the batch");
                forfeited.push(payment);
                if self.queue.is_empty() {
                    return None;
                }
                take = take.min(self.queue.len());
                continue;
            }

            let inputs: Vec<Utxo> = self.utxos.drain(..inputs).collect();
            let payments: Vec<PlannedPayment> = self
                .queue
                .drain(..take)
                .enumerate()
                .map(|(i, payment)| {
                    let owed = share + if i == 0 { remainder } else { 0 };
                    let paid = Amount(payment.amount.0 - owed);
                    PlannedPayment { payment, paid }
                })
                .collect();
            let change = with_change.then(|| Amount(u64::try_from(leftover).expect("bounded by an input")));
            // Dust change is not created: it goes to the fee.
            let fee = Amount(fee + if with_change { 0 } else { u64::try_from(leftover).expect("below dust") });
            let plan = Plan { kind: PlanKind::Payments, inputs, payments, branches: vec![], change, fee };
            assert!(plan.conserves_value(), "a payment plan must conserve value: {plan:?}");
            return Some(plan);
        }
    }

    /// Merges the largest outputs when the head payment needs more than `max_inputs` of them.
    fn consolidate(&mut self, fee_rate: u64, model: &FeeModel) -> Option<Plan> {
        let head = self.queue.front()?;
        if self.utxos.len() <= model.max_inputs || self.holdings() < head.amount.0 as u128 {
            return None;
        }
        let fee = model.fee(fee_rate, model.max_inputs, 1);
        let inputs: Vec<Utxo> = self.utxos[..model.max_inputs].to_vec();
        let total: u64 = inputs.iter().map(|u| u.amount.0).sum();
        let merged = total.checked_sub(fee.0).filter(|m| *m >= model.dust.0)?;
        self.utxos.drain(..model.max_inputs);
        let plan = Plan {
            kind: PlanKind::Consolidation,
            inputs,
            payments: vec![],
            branches: vec![],
            change: Some(Amount(merged)),
            fee,
        };
        assert!(plan.conserves_value(), "a consolidation must conserve value: {plan:?}");
        Some(plan)
    }

    /// Splits the largest outputs into one output per future payment transaction.
    fn branch(&mut self, fee_rate: u64, model: &FeeModel) -> Option<Plan> {
        let per_transaction = model.max_outputs - 1;
        // At most max_outputs - 1 branches (one output stays for change).
        let groups: Vec<u64> = self
            .queue
            .iter()
            .collect::<Vec<_>>()
            .chunks(per_transaction)
            .take(model.max_outputs - 1)
            .map(|chunk| chunk.iter().map(|p| p.amount.0).sum())
            .collect();
        if groups.len() < 2 {
            return None;
        }
        let branches_total: u128 = groups.iter().map(|g| *g as u128).sum();
        let inputs = self.select(branches_total, model)?;
        // Branching must leave the group with more outputs than before, or it could repeat.
        if inputs >= groups.len() {
            return None;
        }
        let input_total: u128 = self.utxos[..inputs].iter().map(|u| u.amount.0 as u128).sum();
        let fee = model.fee(fee_rate, inputs, groups.len() + 1).0 as u128;
        let leftover = input_total.checked_sub(branches_total + fee)?;
        let with_change = leftover >= model.dust.0 as u128;
        let inputs: Vec<Utxo> = self.utxos.drain(..inputs).collect();
        let fee = Amount(u64::try_from(fee + if with_change { 0 } else { leftover }).ok()?);
        let change = with_change.then(|| Amount(u64::try_from(leftover).expect("bounded by an input")));
        let plan = Plan {
            kind: PlanKind::Branch,
            inputs,
            payments: vec![],
            branches: groups.into_iter().map(Amount).collect(),
            change,
            fee,
        };
        assert!(plan.conserves_value(), "a branch must conserve value: {plan:?}");
        Some(plan)
    }
}
