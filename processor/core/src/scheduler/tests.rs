//! Accounting properties of the scheduler, over random holdings, payments, fee rates and
//! limits, including the outputs plans create coming back and being spent in turn.

use super::*;
use crate::messages::OutputKind;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn model(max_inputs: usize, max_outputs: usize, dust: u64) -> FeeModel {
    FeeModel {
        base_units: 11,
        units_per_input: 58,
        units_per_output: 43,
        dust: Amount(dust),
        destination_dust: super::DestinationDust::Fixed,
        max_inputs,
        max_outputs,
    }
}

fn payment(index: usize, amount: u64) -> Payment {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(index as u64).to_le_bytes());
    Payment { id, destination: vec![index as u8], amount: Amount(amount) }
}

/// Checks every rule a plan must follow.
fn check_plan(plan: &Plan, model: &FeeModel, rate: u64) -> Result<(), TestCaseError> {
    prop_assert!(plan.conserves_value(), "value not conserved: {plan:?}");
    prop_assert!(!plan.inputs.is_empty());
    prop_assert!(plan.inputs.len() <= model.max_inputs);
    prop_assert!(plan.output_count() <= model.max_outputs);
    prop_assert!(plan.output_count() >= 1);
    prop_assert!(plan.fee >= model.fee(rate, plan.inputs.len(), plan.output_count()), "fee below the model: {plan:?}");
    for planned in &plan.payments {
        prop_assert!(planned.paid.0 >= model.dust.0, "dust paid out");
        prop_assert!(planned.paid <= planned.payment.amount);
    }
    if let Some(change) = plan.change {
        prop_assert!(change.0 >= model.dust.0);
    }
    for branch in &plan.branches {
        prop_assert!(branch.0 > 0);
    }
    if plan.kind == PlanKind::Payments {
        // The fee is carried by the payments, except change below dust added to it.
        let shares: u64 = plan.payments.iter().map(|p| p.payment.amount.0 - p.paid.0).sum();
        prop_assert!(shares <= plan.fee.0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Run the scheduler to quiescence, returning each plan's new outputs as they would come
    /// back on chain: every payment is planned exactly once or forfeited or still waiting, no
    /// output is spent twice, and the group's value is conserved across the whole history.
    #[test]
    fn scheduling_conserves_value_and_plans_each_payment_once(
        holdings in proptest::collection::vec(1_000u64 .. 5_000_000, 1 .. 40),
        payments in proptest::collection::vec(100u64 .. 2_000_000, 0 .. 60),
        rate in 1u64 .. 50,
        max_inputs in 1usize .. 12,
        max_outputs in 2usize .. 10,
        dust in 1u64 .. 2_000,
    ) {
        let model = model(max_inputs, max_outputs, dust);
        let mut scheduler = MemFunds::default();
        let mut next_id = 0u64;
        let mut fresh = |amount: Amount| {
            next_id += 1;
            Utxo { id: crate::ids::OutputId(next_id.to_le_bytes().to_vec()), amount, kind: OutputKind::External }
        };
        let initial: u128 = holdings.iter().map(|h| *h as u128).sum();
        for amount in &holdings {
            scheduler.add_output(fresh(Amount(*amount)));
        }
        for (index, amount) in payments.iter().enumerate() {
            scheduler.queue_payment(payment(index, *amount));
        }

        let mut spent = BTreeSet::new();
        let mut paid_ids = BTreeSet::new();
        let mut forfeited_ids = BTreeSet::new();
        let (mut paid_out, mut fees) = (0u128, 0u128);
        for _round in 0 .. 200 {
            let scheduled = scheduler.schedule(rate, &model);
            if scheduled.plans.is_empty() && scheduled.forfeited.is_empty() {
                break;
            }
            for payment in scheduled.forfeited {
                prop_assert!(forfeited_ids.insert(payment.id), "forfeited twice");
                prop_assert!(!paid_ids.contains(&payment.id));
            }
            for plan in scheduled.plans {
                check_plan(&plan, &model, rate)?;
                for input in &plan.inputs {
                    prop_assert!(spent.insert(input.id.clone()), "output spent twice: {:?}", input.id);
                }
                for planned in &plan.payments {
                    prop_assert!(paid_ids.insert(planned.payment.id), "payment planned twice");
                    prop_assert!(!forfeited_ids.contains(&planned.payment.id));
                    paid_out += planned.paid.0 as u128;
                }
                fees += plan.fee.0 as u128;
                // The plan's own outputs come back once its transaction is final.
                for branch in &plan.branches {
                    scheduler.add_output(fresh(*branch));
                }
                if let Some(change) = plan.change {
                    scheduler.add_output(fresh(change));
                }
            }
        }
        // Everything is accounted for: paid, forfeited, or still queued.
        let waiting: BTreeSet<[u8; 32]> = scheduler.queued().map(|p| p.id).collect();
        prop_assert_eq!(paid_ids.len() + forfeited_ids.len() + waiting.len(), payments.len());
        // Value: what the group held = paid out + fees + what it still holds.
        let held: u128 = scheduler.available().iter().map(|u| u.amount.0 as u128).sum();
        prop_assert_eq!(initial, paid_out + fees + held);
        // Available outputs never include a spent one.
        for utxo in scheduler.available() {
            prop_assert!(!spent.contains(&utxo.id));
        }
        // Liveness: the payment at the head of the queue waits only if the group cannot fund
        // it, or holds it only in more outputs than one transaction may spend.
        let head = scheduler.queued().next().cloned();
        if let Some(head) = head {
            prop_assert!(held < head.amount.0 as u128 || scheduler.available().len() > model.max_inputs,
                "payment {:?} waits though the group holds {held} in {} outputs", head, scheduler.available().len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The stored funds (rows read a page at a time, with the transaction's own writes) plan
    /// exactly what the in-memory funds plan, round after round, and end holding the same:
    /// holdings and queues large enough to span several pages, payments forfeited mid-queue,
    /// outputs coming back between rounds, and rounds committed or not.
    #[test]
    fn stored_funds_plan_exactly_what_memory_funds_plan(
        holdings in proptest::collection::vec(1u64 .. 3_000_000, 0 .. 1_500),
        payments in proptest::collection::vec(100u64 .. 2_000_000, 0 .. 700),
        rate in 1u64 .. 50,
        max_inputs in 1usize .. 600,
        max_outputs in 2usize .. 40,
        dust in 1u64 .. 2_000,
        commit_every_round: bool,
    ) {
        let model = model(max_inputs, max_outputs, dust);
        let db = crate::db::MemDb::new();
        let mut memory = MemFunds::default();
        let mut txn = crate::db::Db::txn(&db);
        super::set_fee_rate(&mut txn, rate).unwrap();
        memory.set_fee_rate(rate);
        for (index, amount) in holdings.iter().enumerate() {
            let utxo = Utxo { id: crate::ids::OutputId(vec![index as u8, (index >> 8) as u8]), amount: Amount(*amount), kind: OutputKind::External };
            super::add_output(&mut txn, crate::ids::SessionId(1), utxo.clone()).unwrap();
            memory.add_output(utxo);
        }
        for (index, amount) in payments.iter().enumerate() {
            super::queue_payment(&mut txn, payment(index, *amount)).unwrap();
            memory.queue_payment(payment(index, *amount));
        }
        let mut next_id = 1_000_000u64;
        for _round in 0 .. 20 {
            let stored = super::schedule_stored(&mut txn, crate::ids::SessionId(1), &model).unwrap();
            let expected = memory.schedule(rate, &model);
            prop_assert_eq!(&stored, &expected);
            if stored.plans.is_empty() && stored.forfeited.is_empty() {
                break;
            }
            for plan in &stored.plans {
                for amount in plan.branches.iter().chain(plan.change.iter()) {
                    next_id += 1;
                    let utxo = Utxo { id: crate::ids::OutputId(next_id.to_be_bytes().to_vec()), amount: *amount, kind: OutputKind::Change };
                    super::add_output(&mut txn, crate::ids::SessionId(1), utxo.clone()).unwrap();
                    memory.add_output(utxo);
                }
            }
            if commit_every_round {
                txn.commit().unwrap();
                txn = crate::db::Db::txn(&db);
            }
        }
        prop_assert_eq!(super::snapshot(&txn).unwrap(), memory.clone());
        let totals = super::totals(&txn).unwrap();
        prop_assert_eq!(totals.outputs, memory.available().len() as u64);
        prop_assert_eq!(totals.holdings, memory.available().iter().map(|u| u.amount.0 as u128).sum::<u128>());
        prop_assert_eq!(totals.queued, memory.queued().count() as u64);
    }
}

#[test]
fn payments_are_batched_and_carry_their_fee() {
    let model = model(10, 4, 330);
    let mut scheduler = MemFunds::default();
    scheduler.add_output(Utxo {
        id: crate::ids::OutputId(vec![1]),
        amount: Amount(1_000_000),
        kind: OutputKind::External,
    });
    for index in 0..3 {
        scheduler.queue_payment(payment(index, 100_000));
    }
    let scheduled = scheduler.schedule(10, &model);
    assert_eq!(scheduled.plans.len(), 1);
    let plan = &scheduled.plans[0];
    assert_eq!(plan.payments.len(), 3);
    // One input, three payments and change: 11 + 58 + 4 * 43 = 241 vB at 10 sat/vB.
    assert_eq!(plan.fee, Amount(2_410));
    assert_eq!(
        plan.payments.iter().map(|p| p.paid.0).collect::<Vec<_>>(),
        vec![100_000 - 804, 100_000 - 803, 100_000 - 803]
    );
    assert_eq!(plan.change, Some(Amount(700_000)));
}

#[test]
fn a_payment_that_cannot_pay_its_fee_is_forfeited_and_accounted() {
    let model = model(10, 4, 330);
    let mut scheduler = MemFunds::default();
    scheduler.add_output(Utxo {
        id: crate::ids::OutputId(vec![1]),
        amount: Amount(1_000_000),
        kind: OutputKind::External,
    });
    scheduler.queue_payment(payment(0, 500));
    scheduler.queue_payment(payment(1, 50_000));
    let scheduled = scheduler.schedule(10, &model);
    assert_eq!(scheduled.forfeited, vec![payment(0, 500)]);
    assert_eq!(scheduled.plans.len(), 1);
    assert_eq!(scheduled.plans[0].payments.len(), 1);
}

#[test]
fn too_many_payments_for_one_output_branch_first() {
    let model = model(10, 3, 330);
    let mut scheduler = MemFunds::default();
    scheduler.add_output(Utxo {
        id: crate::ids::OutputId(vec![1]),
        amount: Amount(10_000_000),
        kind: OutputKind::External,
    });
    for index in 0..6 {
        scheduler.queue_payment(payment(index, 100_000));
    }
    let scheduled = scheduler.schedule(1, &model);
    assert_eq!(scheduled.plans.len(), 1);
    let branch = &scheduled.plans[0];
    assert_eq!(branch.kind, PlanKind::Branch);
    assert_eq!(branch.branches, vec![Amount(200_000), Amount(200_000)]);
    assert_eq!(scheduler.queued().count(), 6, "payments wait for the branch outputs");
}

#[test]
fn many_small_outputs_are_consolidated_when_no_selection_fits() {
    let model = model(3, 4, 330);
    let mut scheduler = MemFunds::default();
    for index in 0..10u8 {
        scheduler.add_output(Utxo {
            id: crate::ids::OutputId(vec![index]),
            amount: Amount(10_000),
            kind: OutputKind::External,
        });
    }
    scheduler.queue_payment(payment(0, 50_000));
    let scheduled = scheduler.schedule(1, &model);
    assert_eq!(scheduled.plans.len(), 1);
    assert_eq!(scheduled.plans[0].kind, PlanKind::Consolidation);
    assert_eq!(scheduled.plans[0].inputs.len(), 3);
}

/// Bitcoin dust is per script: a payment to P2PKH left with less than 546 sat after its fee
/// share would make a transaction no node relays (hole 4 of the hostile-inputs review).
#[test]
fn bitcoin_dust_depends_on_the_destination_script() {
    use bitcoin::hashes::Hash;
    let p2pkh = bitcoin::ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([7; 20])).to_bytes();
    let p2wpkh = bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([7; 20])).to_bytes();
    let p2sh = bitcoin::ScriptBuf::new_p2sh(&bitcoin::ScriptHash::from_byte_array([7; 20])).to_bytes();
    let model = FeeModel::BITCOIN;
    assert_eq!(model.payment_dust(&p2pkh), Amount(546));
    assert_eq!(model.payment_dust(&p2sh), Amount(540));
    // Below the group's own 330 nothing is paid, whatever the script allows.
    assert_eq!(model.payment_dust(&p2wpkh), Amount(330));

    // Two payments and change share a fee of 11 + 58 + 3 * 43 = 198 vbytes at 1 sat/vB: 99
    // each. The P2PKH one would be paid 501 (330 <= 501 < 546): forfeited; the P2WPKH one is
    // paid.
    let mut scheduler = MemFunds::default();
    scheduler.add_output(Utxo {
        id: crate::ids::OutputId(vec![1]),
        amount: Amount(1_000_000),
        kind: OutputKind::External,
    });
    let to_p2pkh = Payment { id: [1; 32], destination: p2pkh, amount: Amount(600) };
    let to_p2wpkh = Payment { id: [2; 32], destination: p2wpkh, amount: Amount(600) };
    scheduler.queue_payment(to_p2pkh.clone());
    scheduler.queue_payment(to_p2wpkh.clone());
    let scheduled = scheduler.schedule(1, &model);
    assert_eq!(scheduled.forfeited, vec![to_p2pkh]);
    assert_eq!(scheduled.plans.len(), 1);
    assert_eq!(scheduled.plans[0].payments.len(), 1);
    assert_eq!(scheduled.plans[0].payments[0].payment, to_p2wpkh);
}
