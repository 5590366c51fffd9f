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
//! [`add_output`] once their transaction is final.
//!
//! The policy ([`schedule`]) reads the funds through [`Funds`]: the largest outputs and the head
//! of the queue, a bounded window however many outputs and payments there are. The processor's
//! funds are [`StoredFunds`], one DB row per output and per queued payment read a page at a time
//! (so a million dust deposits cost rows, not one value no command can decode any more);
//! [`MemFunds`] holds the same in memory, for tests, benchmarks and inspection.

mod memory;
mod stored;
#[cfg(test)]
mod tests;

pub use memory::MemFunds;
pub use stored::{
    add_output, fee_rate, holdings, migrate_from_schema_1, migrate_from_schema_2, outputs_of, queue_payment,
    queue_totals, schedule_stored, set_fee_rate, snapshot, take_outputs, totals, Holdings, QueueTotals, StoredFunds,
    Totals,
};

use crate::ids::{Amount, OutputId};
use crate::messages::ChainPublicKey;
use bincode::{Decode, Encode};

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
        if crate::mutation::active(crate::mutation::Mutation::OneDustLimit) {
            return self.dust;
        }
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
    /// Moves a retiring key's outputs to the active key: its one output (`change`) goes to
    /// the change address of `to`, not of the key that signs.
    Forward {
        /// The active key, which receives the forwarded amount.
        to: ChainPublicKey,
    },
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

/// The group's spendable outputs (largest first, ties by id) and its queue of payments (oldest
/// first), as the policy reads and consumes them. Every read is by position from the front, so
/// an implementation only ever loads the front of each.
pub trait Funds {
    /// Why reading the funds failed.
    type Error;
    /// How many outputs are available.
    fn output_count(&self) -> u64;
    /// The sum of every available output.
    fn holdings(&self) -> u128;
    /// The `index`-th largest available output.
    fn output(&mut self, index: usize) -> Result<Option<Utxo>, Self::Error>;
    /// Removes and returns the `count` largest outputs (spent by a plan).
    fn take_outputs(&mut self, count: usize) -> Result<Vec<Utxo>, Self::Error>;
    /// How many payments are queued.
    fn queue_len(&self) -> u64;
    /// The `index`-th queued payment, oldest first.
    fn payment(&mut self, index: usize) -> Result<Option<Payment>, Self::Error>;
    /// Removes and returns the `index`-th queued payment (forfeited), if there is one.
    fn remove_payment(&mut self, index: usize) -> Result<Option<Payment>, Self::Error>;
    /// Removes and returns the `count` oldest payments (planned).
    fn take_payments(&mut self, count: usize) -> Result<Vec<Payment>, Self::Error>;
}

/// Plans as many queued payments as the available outputs allow, consuming what it plans from
/// `funds`.
pub fn schedule<F: Funds>(funds: &mut F, fee_rate: u64, model: &FeeModel) -> Result<Scheduled, F::Error> {
    assert!(model.max_outputs >= 2 && model.max_inputs >= 1, "a fee model must allow a payment and change");
    let per_transaction = (model.max_outputs - 1) as u64;
    let mut scheduled = Scheduled::default();
    let queued = funds.queue_len();
    if queued > per_transaction && funds.output_count() < queued.div_ceil(per_transaction) {
        if let Some(plan) = branch(funds, fee_rate, model)? {
            scheduled.plans.push(plan);
            return Ok(scheduled);
        }
    }
    while funds.queue_len() > 0 {
        match plan_payments(funds, fee_rate, model, &mut scheduled.forfeited)? {
            Some(plan) => scheduled.plans.push(plan),
            None => {
                if let Some(plan) = consolidate(funds, fee_rate, model)? {
                    scheduled.plans.push(plan);
                }
                break;
            }
        }
    }
    Ok(scheduled)
}

/// The first `count` items `at` yields by position (fewer where they end), read without taking
/// them.
fn front<T, E>(count: usize, mut at: impl FnMut(usize) -> Result<Option<T>, E>) -> Result<Vec<T>, E> {
    let mut items = Vec::with_capacity(count.min(1024));
    for index in 0..count {
        match at(index)? {
            Some(item) => items.push(item),
            None => break,
        }
    }
    Ok(items)
}

/// The `count` largest outputs.
fn largest<F: Funds>(funds: &mut F, count: usize) -> Result<Vec<Utxo>, F::Error> {
    front(count, |index| funds.output(index))
}

/// The `count` oldest payments.
fn oldest<F: Funds>(funds: &mut F, count: usize) -> Result<Vec<Payment>, F::Error> {
    front(count, |index| funds.payment(index))
}

/// How many of `candidates` (largest first, at most `max_inputs`) reach `needed`.
fn select(candidates: &[Utxo], needed: u128) -> Option<usize> {
    let mut total = 0u128;
    for (count, utxo) in candidates.iter().enumerate() {
        total += utxo.amount.0 as u128;
        if total >= needed {
            return Some(count + 1);
        }
    }
    None
}

fn total(outputs: &[Utxo]) -> u128 {
    outputs.iter().map(|u| u.amount.0 as u128).sum()
}

/// One payment transaction from the head of the queue, or `None` if it cannot be funded.
fn plan_payments<F: Funds>(
    funds: &mut F,
    fee_rate: u64,
    model: &FeeModel,
    forfeited: &mut Vec<Payment>,
) -> Result<Option<Plan>, F::Error> {
    let candidates = largest(funds, model.max_inputs)?;
    let mut batch = oldest(funds, model.max_outputs - 1)?;
    loop {
        if batch.is_empty() {
            return Ok(None);
        }
        let needed: u128 = batch.iter().map(|p| p.amount.0 as u128).sum();
        let Some(inputs) = select(&candidates, needed) else {
            batch.pop();
            continue;
        };
        let leftover = total(&candidates[..inputs]) - needed;
        let with_change = leftover >= model.dust.0 as u128;
        let take = batch.len();
        let outputs = take + usize::from(with_change);
        let fee = model.fee(fee_rate, inputs, outputs).0;
        let share = fee / take as u64;
        let remainder = fee % take as u64;

        // Forfeit the first payment that cannot carry its share, then plan again.
        let unpayable = batch.iter().enumerate().position(|(i, p)| {
            let owed = share + if i == 0 { remainder } else { 0 };
            p.amount.0 < owed.saturating_add(model.payment_dust(&p.destination).0)
        });
        if let Some(position) = unpayable {
            if let Some(payment) = funds.remove_payment(position)? {
                forfeited.push(payment);
            }
            let keep = take.min(funds.queue_len() as usize);
            batch = oldest(funds, keep)?;
            continue;
        }

        let inputs = funds.take_outputs(inputs)?;
        let payments: Vec<PlannedPayment> = funds
            .take_payments(take)?
            .into_iter()
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
        return Ok(Some(plan));
    }
}

/// Merges the largest outputs when the head payment needs more than `max_inputs` of them.
fn consolidate<F: Funds>(funds: &mut F, fee_rate: u64, model: &FeeModel) -> Result<Option<Plan>, F::Error> {
    let Some(head) = funds.payment(0)? else {
        return Ok(None);
    };
    if funds.output_count() <= model.max_inputs as u64 || funds.holdings() < head.amount.0 as u128 {
        return Ok(None);
    }
    let fee = model.fee(fee_rate, model.max_inputs, 1);
    let candidates = largest(funds, model.max_inputs)?;
    let sum: u128 = total(&candidates);
    let Some(merged) = u64::try_from(sum).ok().and_then(|sum| sum.checked_sub(fee.0)).filter(|m| *m >= model.dust.0)
    else {
        return Ok(None);
    };
    let inputs = funds.take_outputs(model.max_inputs)?;
    let plan = Plan {
        kind: PlanKind::Consolidation,
        inputs,
        payments: vec![],
        branches: vec![],
        change: Some(Amount(merged)),
        fee,
    };
    assert!(plan.conserves_value(), "a consolidation must conserve value: {plan:?}");
    Ok(Some(plan))
}

/// Plans one transaction forwarding the largest of a retiring key's outputs (at most
/// `max_inputs`) to the active key `to`, taking them out of `funds`; `None` once nothing is
/// left. Its fee is paid by what it forwards, at the agreed rate; a bundle that cannot pay
/// that (the last few small outputs while fees are high) goes at `minimum_fee_rate` instead,
/// so it is forwarded, later, rather than left behind. A bundle that cannot pay even that is
/// taken out and returned as abandoned (what it would cost to move exceeds what it holds).
pub fn forward<F: Funds>(
    funds: &mut F,
    to: ChainPublicKey,
    fee_rate: u64,
    minimum_fee_rate: u64,
    model: &FeeModel,
) -> Result<Option<Result<Plan, Vec<Utxo>>>, F::Error> {
    let candidates = largest(funds, model.max_inputs)?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let sum = u64::try_from(total(&candidates)).unwrap_or(u64::MAX);
    let inputs = funds.take_outputs(candidates.len())?;
    let left = |rate: u64| {
        let fee = model.fee(rate, inputs.len(), 1);
        sum.checked_sub(fee.0).filter(|left| *left >= model.dust.0).map(|left| (Amount(left), fee))
    };
    let Some((forwarded, fee)) = left(fee_rate).or_else(|| left(minimum_fee_rate.min(fee_rate))) else {
        return Ok(Some(Err(inputs)));
    };
    let plan = Plan {
        kind: PlanKind::Forward { to },
        inputs,
        payments: vec![],
        branches: vec![],
        change: Some(forwarded),
        fee,
    };
    assert!(plan.conserves_value(), "a forwarding must conserve value: {plan:?}");
    Ok(Some(Ok(plan)))
}

/// Splits the largest outputs into one output per future payment transaction.
fn branch<F: Funds>(funds: &mut F, fee_rate: u64, model: &FeeModel) -> Result<Option<Plan>, F::Error> {
    let per_transaction = model.max_outputs - 1;
    // At most max_outputs - 1 branches (one output stays for change).
    let head = oldest(funds, per_transaction * (model.max_outputs - 1))?;
    let groups: Vec<u64> = head.chunks(per_transaction).map(|chunk| chunk.iter().map(|p| p.amount.0).sum()).collect();
    if groups.len() < 2 {
        return Ok(None);
    }
    let branches_total: u128 = groups.iter().map(|g| *g as u128).sum();
    let candidates = largest(funds, model.max_inputs)?;
    let Some(inputs) = select(&candidates, branches_total) else {
        return Ok(None);
    };
    // Branching must leave the group with more outputs than before, or it could repeat.
    if inputs >= groups.len() {
        return Ok(None);
    }
    let input_total = total(&candidates[..inputs]);
    let fee = model.fee(fee_rate, inputs, groups.len() + 1).0 as u128;
    let Some(leftover) = input_total.checked_sub(branches_total + fee) else {
        return Ok(None);
    };
    let with_change = leftover >= model.dust.0 as u128;
    let Ok(fee) = u64::try_from(fee + if with_change { 0 } else { leftover }) else {
        return Ok(None);
    };
    let inputs = funds.take_outputs(inputs)?;
    let change = with_change.then(|| Amount(u64::try_from(leftover).expect("bounded by an input")));
    let plan = Plan {
        kind: PlanKind::Branch,
        inputs,
        payments: vec![],
        branches: groups.into_iter().map(Amount).collect(),
        change,
        fee: Amount(fee),
    };
    assert!(plan.conserves_value(), "a branch must conserve value: {plan:?}");
    Ok(Some(plan))
}

/// The order outputs are spent in: largest first, ties by id (so the order is canonical).
fn spending_order(a: &Utxo, b: &Utxo) -> std::cmp::Ordering {
    b.amount.cmp(&a.amount).then_with(|| a.id.cmp(&b.id))
}
