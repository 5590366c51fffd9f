//! Burns become planned transactions, identically at every processor: invalid Burns are
//! rejected with a message and change nothing, a Burn too small for its fee is forfeited, a
//! repeated Burn is paid once, and every plan spends only outputs the group received and
//! conserves value. Then the plans are threshold-signed (3-of-4 Taproot key-path spends that
//! the mock chain checks with libsecp256k1) and paid on chain exactly once: with every
//! processor up, with one silent, with one sending bad shares, and with crashes between
//! preprocess and share.

mod common;

use bitcoin::key::XOnlyPublicKey;
use common::*;
use coordinator::local::Faults;
use coordinator::Observation;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::chain::instruction::encode_instruction;
use processor_core::ids::{Amount, ExternalChain, Millis, Participant, PlanId};
use processor_core::inspect::Inspector;
use processor_core::messages::{Burn, ChainPublicKey, GroupKeys, InInstruction, PaymentsEvent};
use processor_core::payments::{BurnStatus, PlanState};
use processor_core::scheduler::Plan;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;
const FEE_RATE: u64 = 5;

fn group_script(keys: &GroupKeys) -> bitcoin::ScriptBuf {
    let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { panic!("not a Bitcoin key") };
    mock_chains::bitcoin::p2tr_script(XOnlyPublicKey::from_slice(&internal_key).unwrap())
}

fn burn(id: u8, destination: Vec<u8>, amount: u64) -> Burn {
    Burn { id: [id; 32], destination, amount: Amount(amount) }
}

fn recipient(seed: u64) -> Vec<u8> {
    Depositor::new(seed).script_pubkey().to_bytes()
}

/// What a processor planned (ids and plans; signing progress differs between processors).
fn plans(network: &coordinator::local::LocalNetwork, index: usize) -> Vec<(PlanId, Plan)> {
    Inspector::new(network.db(index)).plans().unwrap().into_iter().map(|(_, record)| (record.id, record.plan)).collect()
}

#[test]
fn burns_are_planned_identically_everywhere_and_exactly_once() {
    let (chain, mut depositor) = mock_chains::bitcoin::funded_chain(9, 5);
    let chain = Rc::new(RefCell::new(chain));
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        9,
        Faults::crashing(),
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );
    let deposits = [(400_000u64, Some(1u8)), (300_000, None), (250_000, Some(2))];
    deposit_until_first_batch(&mut network, &chain, &mut depositor, &keys, &deposits, CONFIRMATIONS);

    let burns = vec![
        burn(1, recipient(101), 100_000),
        burn(2, recipient(102), 200_000),
        burn(3, vec![0x6a, 0x01, 0x02], 50_000), // OP_RETURN: not payable
        burn(4, recipient(104), 0),              // zero
        burn(5, recipient(105), 400),            // cannot pay its fee share above dust
        burn(6, recipient(106), 300_000),
    ];
    network.burn(ExternalChain::Bitcoin, burns.clone(), FEE_RATE);
    network.burn(ExternalChain::Bitcoin, vec![burns[0].clone()], FEE_RATE); // redelivered by Serai
    run_for(&mut network, 30_000);

    // Every processor planned exactly the same transactions.
    let reference = plans(&network, 0);
    assert!(!reference.is_empty(), "nothing was planned");
    for index in 1..4 {
        assert_eq!(plans(&network, index), reference, "processor {index} planned differently");
    }
    // Each valid Burn is planned exactly once, the invalid ones never.
    let mut planned = BTreeSet::new();
    let deposited: BTreeSet<u64> = deposits.iter().map(|(sats, _)| *sats).collect();
    for (_, plan) in &reference {
        assert!(plan.conserves_value());
        for input in &plan.inputs {
            assert!(
                deposited.contains(&input.amount.0),
                "a plan spends {} which the group never received",
                input.amount
            );
        }
        for payment in &plan.payments {
            assert!(planned.insert(payment.payment.id[0]), "Burn {} planned twice", payment.payment.id[0]);
            assert!(payment.paid < payment.payment.amount, "the fee is carried by the payment");
        }
    }
    assert_eq!(planned, BTreeSet::from([1, 2, 6]));
    for index in 0..4 {
        let status = |id: u8| Inspector::new(network.db(index)).burn(&[id; 32]).unwrap();
        assert_eq!(status(3), Some(BurnStatus::Rejected));
        assert_eq!(status(4), Some(BurnStatus::Rejected));
        assert_eq!(status(5), Some(BurnStatus::Forfeited));
    }
    // The coordinator heard the rejections and the forfeit from every processor.
    let events: Vec<(Participant, PaymentsEvent)> = network
        .coordinator()
        .observations()
        .iter()
        .filter_map(|o| match o {
            Observation::Payments { by, event } => Some((*by, event.clone())),
            _ => None,
        })
        .collect();
    for index in 0..4 {
        let by = Participant::from_position(index);
        let rejected: BTreeSet<u8> = events
            .iter()
            .filter_map(|(who, e)| match e {
                PaymentsEvent::BurnRejected { id, .. } if *who == by => Some(id[0]),
                _ => None,
            })
            .collect();
        assert_eq!(rejected, BTreeSet::from([3, 4]), "processor {index}");
        assert!(events
            .iter()
            .any(|(who, e)| *who == by && matches!(e, PaymentsEvent::BurnForfeited { id, .. } if id[0] == 5)));
    }
    assert!(network.stats().crashes > 0, "the run should include crashes");
}

/// How a payment run is disturbed once keys and funds are in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disturbance {
    None,
    /// Processor 3 goes silent: 3-of-4 must still sign.
    Silent,
    /// Processor 3 sends bad signature shares: blamed, the others still finish.
    BadShares,
    /// Processor 0 is restarted right after it preprocessed a transaction.
    CrashAfterPreprocess,
}

/// Outputs paying `script` anywhere on the best chain: (height, txid, sats).
fn paid_to(chain: &MockBitcoin, script: &bitcoin::Script) -> Vec<(u64, bitcoin::Txid, u64)> {
    let mut found = Vec::new();
    for height in 0..=chain.tip_height() {
        for tx in &chain.block(height).unwrap().txdata {
            for output in tx.output.iter().filter(|o| o.script_pubkey.as_script() == script) {
                found.push((height, tx.compute_txid(), output.value.to_sat()));
            }
        }
    }
    found
}

fn transaction_preprocessed(network: &coordinator::local::LocalNetwork, index: usize) -> bool {
    // Every plan's attempt 0 (the only one a run without re-attempts makes).
    Inspector::new(network.db(index)).plans().unwrap().iter().any(|(plan, record)| {
        let id = processor_core::messages::SignId {
            session: record.session,
            target: processor_core::messages::SignTarget::Transaction(*plan),
            attempt: processor_core::ids::Attempt(0),
        };
        Inspector::new(network.db(index)).preprocessed(id).unwrap()
    })
}

/// Deposits, Batches, then Burns paid on chain; returns the network for further checks.
fn payments_reach_the_chain(seed: u64, disturbance: Disturbance) -> coordinator::local::LocalNetwork {
    let (chain, mut depositor) = mock_chains::bitcoin::funded_chain(seed, 5);
    let chain = Rc::new(RefCell::new(chain));
    let faults = if disturbance == Disturbance::None { Faults::crashing() } else { Faults::unreliable() };
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        seed,
        faults,
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );
    for (sats, account) in [(600_000u64, Some(1u8)), (350_000, None), (450_000, Some(2))] {
        let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
        let tx = depositor
            .deposit(&chain.borrow(), &group_script(&keys), bitcoin::Amount::from_sat(sats), instruction.as_deref())
            .unwrap();
        chain.borrow_mut().submit(tx).unwrap();
    }
    for _ in 0..=CONFIRMATIONS {
        chain.borrow_mut().mine();
    }
    assert!(network.run_until(Millis(network.now().0 + 120_000), |net| net.coordinator().signed_batches().count() == 1));
    run_for(&mut network, 5_000);

    match disturbance {
        Disturbance::Silent => network.set_silent(3, true),
        Disturbance::BadShares => network.make_byzantine_signer(3),
        Disturbance::None | Disturbance::CrashAfterPreprocess => {}
    }
    // Four Burns, more than the largest deposit alone covers: several inputs, change back.
    let burns: Vec<Burn> =
        (1..=4u8).map(|i| burn(i, recipient(200 + u64::from(i)), 150_000 + 40_000 * u64::from(i))).collect();
    network.burn(ExternalChain::Bitcoin, burns.clone(), FEE_RATE);
    if disturbance == Disturbance::CrashAfterPreprocess {
        assert!(network.run_until(Millis(network.now().0 + 30_000), |net| transaction_preprocessed(net, 0)));
        network.restart(0);
    }

    // Mine while the group signs and publishes, until every plan is final everywhere it
    // should be.
    let live: Vec<usize> = if disturbance == Disturbance::Silent { vec![0, 1, 2] } else { vec![0, 1, 2, 3] };
    mine_until_paid(&mut network, &live, 600_000, || {
        chain.borrow_mut().mine();
    });
    // Every Burn is paid exactly once, by its plan's transaction, with what the plan says.
    let reference = Inspector::new(network.db(0)).plans().unwrap();
    let chain = chain.borrow();
    for burn in &burns {
        let (record, paid) = plan_paying(&network, 0, burn);
        let PlanState::Completed { transaction } = &record.state else { unreachable!() };
        let on_chain = paid_to(&chain, bitcoin::Script::from_bytes(&burn.destination));
        assert_eq!(on_chain.len(), 1, "Burn {} paid {} times", burn.id[0], on_chain.len());
        let (height, txid, sats) = on_chain[0];
        assert_eq!(sats, paid);
        assert!(
            paid > burn.amount.0 - 10_000 && paid < burn.amount.0,
            "the fee share is small and carried by the payment"
        );
        assert_eq!(txid.to_byte_array().to_vec(), *transaction);
        assert!(chain.tip_height() - height >= CONFIRMATIONS);
    }
    // The change came back to the group's change address and joined its funds everywhere.
    let change: u64 = reference.iter().filter_map(|(_, r)| r.plan.change.map(|c| c.0)).sum();
    assert!(change > 0, "the plans should return change");
    for index in &live {
        let scheduler = processor_core::scheduler::snapshot(network.db(*index)).unwrap();
        let returned: u64 = scheduler
            .available()
            .iter()
            .filter(|u| u.kind == processor_core::messages::OutputKind::Change)
            .map(|u| u.amount.0)
            .sum();
        assert_eq!(returned, change, "processor {index} did not get the change back");
    }
    assert_eq!(network.coordinator().completed_plans().len(), reference.len());
    network
}

use bitcoin::hashes::Hash;

#[test]
fn burns_are_paid_on_chain_exactly_once() {
    let network = payments_reach_the_chain(21, Disturbance::None);
    assert!(network.stats().crashes > 0, "the run should include crashes");
}

#[test]
fn three_of_four_pay_while_one_is_silent() {
    payments_reach_the_chain(22, Disturbance::Silent);
}

#[test]
fn a_signer_sending_bad_shares_is_blamed_and_the_rest_pay() {
    let network = payments_reach_the_chain(23, Disturbance::BadShares);
    let blamed: Vec<_> = network
        .coordinator()
        .observations()
        .iter()
        .filter_map(|o| match o {
            Observation::SigningBlamed { id, accused, .. }
                if matches!(id.target, processor_core::messages::SignTarget::Transaction(_)) =>
            {
                Some(*accused)
            }
            _ => None,
        })
        .collect();
    assert!(!blamed.is_empty(), "nobody was blamed for the bad transaction shares");
    assert!(
        blamed.iter().all(|accused| *accused == Participant::from_position(3)),
        "an honest signer was blamed: {blamed:?}"
    );
}

#[test]
fn a_crash_between_preprocess_and_share_neither_reuses_nonces_nor_pays_twice() {
    let network = payments_reach_the_chain(24, Disturbance::CrashAfterPreprocess);
    // The restarted processor lost the attempt's nonces: it cannot have shared in it, and
    // every attempt it preprocessed was preprocessed once (the marker is in its DB).
    assert!(network.stats().crashes >= 1);
    assert!(transaction_preprocessed(&network, 0));
}
