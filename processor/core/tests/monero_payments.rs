//! Monero Burns end as threshold-signed RingCT transactions (CLSAG over monero-wallet's
//! multisig, 3-of-4, rings selected deterministically from the chain) that the mock chain
//! verifies and mines, each Burn paid exactly once; also with one signer silent and with one
//! sending bad shares.

mod common;

use common::*;
use coordinator::local::{Faults, LocalNetwork};
use coordinator::Observation;
use mock_chains::monero::{Depositor, MockMonero, MoneroConfig, WalletKeys};
use monero_wallet::address::{MoneroAddress, Network};
use processor_core::chain::instruction::encode_instruction;
use processor_core::chain::monero::group_address;
use processor_core::ids::{Amount, ExternalChain, Millis, Participant};
use processor_core::messages::{Burn, ChainPublicKey, InInstruction, OutputKind};
use processor_core::payments::PlanState;
use std::cell::RefCell;
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;
/// Piconero per byte-equivalent weight, as monerod's lowest tier (the mock's minimum).
const FEE_RATE: u64 = 20_000;
const XMR: u64 = 1_000_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disturbance {
    None,
    Silent,
    BadShares,
}

/// A wallet that receives Burns, and how much it has received on chain.
fn received(chain: &MockMonero, keys: &WalletKeys) -> u64 {
    let mut scanner = monero_wallet::Scanner::new(keys.view_pair());
    (0..=chain.tip_height())
        .filter_map(|height| chain.scannable_block_at(height))
        .filter_map(|block| scanner.scan(block).ok())
        .flat_map(|found| found.not_additionally_locked())
        .map(|output| output.commitment().amount)
        .sum()
}

/// A 3-of-4 group with Monero keys on a mock chain where `depositor` mined 12 blocks, and the
/// group's deposit address.
fn group_on_chain(
    seed: u64,
    depositor: &Depositor,
    faults: Faults,
) -> (LocalNetwork, Rc<RefCell<MockMonero>>, MoneroAddress) {
    let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
    for _ in 0..12 {
        chain.mine_to(&depositor.address());
    }
    let chain = Rc::new(RefCell::new(chain));
    let (network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Monero,
        seed,
        faults,
        Box::new(SharedMonero(chain.clone())),
        CONFIRMATIONS,
    );
    let ChainPublicKey::Monero { spend_key } = keys.chain else { panic!("not a Monero key") };
    (network, chain, group_address(&spend_key, Network::Mainnet).unwrap())
}

fn payments_reach_the_chain(seed: u64, disturbance: Disturbance) -> LocalNetwork {
    let mut depositor = Depositor::new(seed ^ 0xd0d0);
    let faults = if disturbance == Disturbance::None { Faults::crashing() } else { Faults::unreliable() };
    let (mut network, chain, address) = group_on_chain(seed, &depositor, faults);
    for (amount, account) in [(6 * XMR / 10, Some(1u8)), (4 * XMR / 10, None)] {
        let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
        let transaction = depositor.deposit(&chain.borrow(), &address, amount, instruction.as_deref()).unwrap();
        chain.borrow_mut().submit(transaction).unwrap();
        chain.borrow_mut().mine();
    }
    for _ in 0..CONFIRMATIONS {
        chain.borrow_mut().mine();
    }
    assert!(network.run_until(Millis(network.now().0 + 120_000), |net| net.coordinator().signed_batches().count() == 1));
    run_for(&mut network, 5_000);

    match disturbance {
        Disturbance::Silent => network.set_silent(3, true),
        Disturbance::BadShares => network.make_byzantine_signer(3),
        Disturbance::None => {}
    }
    let recipients: Vec<WalletKeys> = (0..3).map(|i| WalletKeys::from_seed(seed * 10 + i)).collect();
    let burns: Vec<Burn> = recipients
        .iter()
        .enumerate()
        .map(|(i, wallet)| Burn {
            id: [i as u8 + 1; 32],
            destination: wallet.address().to_string().into_bytes(),
            amount: Amount((i as u64 + 1) * XMR / 10),
        })
        .collect();
    network.burn(ExternalChain::Monero, burns.clone(), FEE_RATE);

    let live: Vec<usize> = if disturbance == Disturbance::Silent { vec![0, 1, 2] } else { vec![0, 1, 2, 3] };
    mine_until_paid(&mut network, &live, 900_000, || {
        chain.borrow_mut().mine();
    });
    let chain = chain.borrow();
    for (burn, wallet) in burns.iter().zip(&recipients) {
        let (record, paid) = plan_paying(&network, 0, burn);
        assert_eq!(received(&chain, wallet), paid, "Burn {} was not paid exactly once", burn.id[0]);
        assert!(
            paid < burn.amount.0 && paid > burn.amount.0 - XMR / 100,
            "the fee share is small and carried by the payment"
        );
        let PlanState::Completed { transaction } = &record.state else { unreachable!() };
        let hash: [u8; 32] = transaction.as_slice().try_into().unwrap();
        assert!(chain.tx_height(&hash).is_some(), "the plan's transaction is not on chain");
    }
    // Change came back to the change subaddress and joined the funds at every live processor.
    for index in &live {
        let scheduler = processor_core::scheduler::snapshot(network.db(*index)).unwrap();
        assert!(
            scheduler.available().iter().any(|u| u.kind == OutputKind::Change),
            "processor {index} has no change output"
        );
    }
    drop(chain);
    network
}

#[test]
fn monero_burns_are_paid_on_chain_exactly_once() {
    let network = payments_reach_the_chain(31, Disturbance::None);
    assert!(network.stats().crashes > 0);
}

#[test]
fn monero_three_of_four_pay_while_one_is_silent() {
    payments_reach_the_chain(32, Disturbance::Silent);
}

#[test]
fn monero_bad_shares_are_blamed_and_the_rest_pay() {
    let network = payments_reach_the_chain(33, Disturbance::BadShares);
    let blamed: Vec<Participant> = network
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
    assert!(!blamed.is_empty(), "nobody was blamed");
    assert!(
        blamed.iter().all(|accused| *accused == Participant::from_position(3)),
        "an honest signer was blamed: {blamed:?}"
    );
}

/// A Burn the 64 largest outputs cannot cover makes the scheduler consolidate first: a plan
/// without payments, which monero-wallet builds only with an output besides its change (it
/// failed as `NoOutputs`, its inputs stranded and the Burn never paid, until the merged amount
/// became an explicit output to the change address). Then the Burn is paid, once.
#[test]
fn monero_a_consolidation_is_signed_and_mined_and_the_burn_then_paid() {
    const DEPOSIT: u64 = XMR / 50;
    const OUTPUTS: u64 = 75;
    let seed = 34;
    // Stand-in range proofs: 75 deposits' proofs are not what this test is about.
    let mut depositor = Depositor::new(seed ^ 0xd0d0).with_stand_in_range_proofs();
    let (mut network, chain, address) = group_on_chain(seed, &depositor, Faults::none());
    let instruction = encode_instruction(&InInstruction { account: [1; 32] });
    let per_transaction = mock_chains::monero::MAX_PAYMENTS as u64;
    for _ in 0..OUTPUTS / per_transaction {
        let payments: Vec<_> = (0..per_transaction).map(|_| (address, DEPOSIT)).collect();
        let transaction = depositor.deposit_many(&chain.borrow(), &payments, Some(&instruction)).unwrap();
        chain.borrow_mut().submit_with_stand_in_range_proof(transaction).unwrap();
        chain.borrow_mut().mine();
    }
    for _ in 0..CONFIRMATIONS {
        chain.borrow_mut().mine();
    }
    let batches = OUTPUTS / per_transaction;
    assert!(network.run_until(Millis(network.now().0 + 300_000), |net| {
        net.coordinator().signed_batches().count() as u64 == batches
    }));
    run_for(&mut network, 5_000);

    let recipient = WalletKeys::from_seed(340);
    let burn =
        Burn { id: [9; 32], destination: recipient.address().to_string().into_bytes(), amount: Amount(70 * DEPOSIT) };
    network.burn(ExternalChain::Monero, vec![burn.clone()], FEE_RATE);
    let deadline = network.now().0 + 900_000;
    let paid_everywhere = |network: &LocalNetwork| {
        (0..4).all(|index| {
            let inspector = processor_core::inspect::Inspector::new(network.db(index));
            let Some(processor_core::payments::BurnStatus::Planned(plan)) = inspector.burn(&burn.id).unwrap() else {
                return false;
            };
            matches!(inspector.plan(plan).unwrap().map(|r| r.state), Some(PlanState::Completed { .. }))
        })
    };
    while !paid_everywhere(&network) {
        assert!(network.now().0 < deadline, "the Burn was not paid");
        run_for(&mut network, 2_000);
        chain.borrow_mut().mine();
    }
    let plans = processor_core::inspect::Inspector::new(network.db(0)).plans().unwrap();
    let consolidation = plans
        .iter()
        .find(|(_, record)| record.plan.kind == processor_core::scheduler::PlanKind::Consolidation)
        .expect("the scheduler consolidated first");
    assert!(matches!(consolidation.1.state, PlanState::Completed { .. }), "{:?}", consolidation.1.state);
    assert_eq!(consolidation.1.plan.inputs.len(), 64);
    let (_, paid) = plan_paying(&network, 0, &burn);
    assert_eq!(received(&chain.borrow(), &recipient), paid, "the Burn was not paid exactly once");
}
