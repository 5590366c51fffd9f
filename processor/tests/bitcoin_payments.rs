//! Burns become planned transactions, identically at every processor: invalid Burns are
//! rejected with a message and change nothing, a Burn too small for its fee is forfeited, a
//! repeated Burn is paid once, and every plan spends only outputs the group received and
//! conserves value.

mod common;

use bitcoin::key::XOnlyPublicKey;
use common::*;
use coordinator::local::Faults;
use coordinator::Observation;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor::chain::instruction::encode_instruction;
use processor::db::schema;
use processor::ids::{Amount, ExternalChain, Millis, Participant};
use processor::messages::{Burn, ChainPublicKey, GroupKeys, InInstruction, PaymentsEvent};
use processor::payments::{BurnStatus, PlanRecord};
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

fn plans(network: &coordinator::local::LocalNetwork, index: usize) -> Vec<PlanRecord> {
    schema::PLANS.entries(network.db(index)).unwrap().into_iter().map(|(_, record)| record).collect()
}

#[test]
fn burns_are_planned_identically_everywhere_and_exactly_once() {
    let mut chain = MockBitcoin::new(9);
    chain.set_coinbase_maturity(1);
    let mut depositor = Depositor::new(9);
    for _ in 0 .. 5 {
        chain.mine_to(depositor.script_pubkey());
    }
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
    for (sats, account) in deposits {
        let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
        let tx = depositor
            .deposit(&chain.borrow(), &group_script(&keys), bitcoin::Amount::from_sat(sats), instruction.as_deref())
            .unwrap();
        chain.borrow_mut().submit(tx).unwrap();
    }
    for _ in 0 ..= CONFIRMATIONS {
        chain.borrow_mut().mine();
    }
    assert!(network.run_until(Millis(network.now().0 + 120_000), |net| net.coordinator().signed_batches().count() == 1));
    run_for(&mut network, 10_000);

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
    for index in 1 .. 4 {
        assert_eq!(plans(&network, index), reference, "processor {index} planned differently");
    }
    // Each valid Burn is planned exactly once, the invalid ones never.
    let mut planned = BTreeSet::new();
    let deposited: BTreeSet<u64> = deposits.iter().map(|(sats, _)| *sats).collect();
    for record in &reference {
        assert!(record.plan.conserves_value());
        for input in &record.plan.inputs {
            assert!(deposited.contains(&input.amount.0), "a plan spends {} which the group never received", input.amount);
        }
        for payment in &record.plan.payments {
            assert!(planned.insert(payment.payment.id[0]), "Burn {} planned twice", payment.payment.id[0]);
            assert!(payment.paid < payment.payment.amount, "the fee is carried by the payment");
        }
    }
    assert_eq!(planned, BTreeSet::from([1, 2, 6]));
    for index in 0 .. 4 {
        let status = |id: u8| schema::BURNS.get(network.db(index), &vec![id; 32]).unwrap();
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
    for index in 0 .. 4 {
        let by = Participant::from_position(index);
        let rejected: BTreeSet<u8> = events
            .iter()
            .filter_map(|(who, e)| match e {
                PaymentsEvent::BurnRejected { id, .. } if *who == by => Some(id[0]),
                _ => None,
            })
            .collect();
        assert_eq!(rejected, BTreeSet::from([3, 4]), "processor {index}");
        assert!(events.iter().any(|(who, e)| *who == by && matches!(e, PaymentsEvent::BurnForfeited { id, .. } if id[0] == 5)));
    }
    assert!(network.stats().crashes > 0, "the run should include crashes");
}
