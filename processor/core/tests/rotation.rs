//! Key rotation on the mock Bitcoin chain: a second session's keys take over, deposits to the
//! old key inside the window are credited once and forwarded, Burns issued across the rotation
//! are paid once, the old key's address ends empty on chain, and its shares are deleted.

mod common;

use common::*;
use coordinator::local::{Faults, LocalNetwork};
use coordinator::Observation;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::chain::bitcoin::script_of;
use processor_core::chain::instruction::encode_instruction;
use processor_core::ids::{Amount, ExternalChain, Millis, SessionId};
use processor_core::inspect::Inspector;
use processor_core::keygen::{self, KeyStage};
use processor_core::messages::{Burn, ChainPublicKey, GroupKeys, InInstruction, OutputKind};
use processor_core::payments::BurnStatus;
use processor_core::scheduler::PlanKind;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;
const FEE_RATE: u64 = 5;
const NEW: SessionId = SessionId(2);

fn internal_key(keys: &GroupKeys) -> [u8; 32] {
    let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { panic!("not a Bitcoin key") };
    internal_key
}

/// What the chain holds at a key's deposit and change addresses.
fn held_by(chain: &MockBitcoin, keys: &GroupKeys) -> (usize, u64) {
    let mut outputs = 0;
    let mut sats = 0;
    for kind in [OutputKind::External, OutputKind::Change] {
        let script = script_of(&internal_key(keys), kind).unwrap();
        for (_, output) in chain.utxos().filter(|(_, output)| output.script_pubkey == script) {
            outputs += 1;
            sats += output.value.to_sat();
        }
    }
    (outputs, sats)
}

fn deposit(chain: &Rc<RefCell<MockBitcoin>>, depositor: &mut Depositor, keys: &GroupKeys, sats: u64, account: u8) {
    let instruction = encode_instruction(&InInstruction { account: [account; 32] });
    let script = bitcoin_group_script(keys);
    let tx = depositor.deposit(&chain.borrow(), &script, bitcoin::Amount::from_sat(sats), Some(&instruction)).unwrap();
    chain.borrow_mut().submit(tx).unwrap();
}

fn burn(id: u8, amount: u64) -> Burn {
    Burn {
        id: [id; 32],
        destination: Depositor::new(u64::from(id) + 500).script_pubkey().to_bytes(),
        amount: Amount(amount),
    }
}

/// Mines a block (`mine`) every 2 s while the network runs, until `done` (panics after
/// `within_ms`).
fn mine_blocks_until(
    network: &mut LocalNetwork,
    mut mine: impl FnMut(),
    within_ms: u64,
    what: &str,
    mut done: impl FnMut(&LocalNetwork) -> bool,
) {
    let deadline = network.now().0 + within_ms;
    while !done(network) {
        assert!(network.now().0 < deadline, "{what} did not happen");
        network.run_until(Millis(network.now().0 + 2_000), |_| false);
        mine();
    }
}

/// A mock chain shared with the network, which a test mines one block of at a time.
trait MinesBlocks {
    fn mine_block(&self);
}

impl MinesBlocks for Rc<RefCell<MockBitcoin>> {
    fn mine_block(&self) {
        self.borrow_mut().mine();
    }
}

impl MinesBlocks for Rc<RefCell<mock_chains::monero::MockMonero>> {
    fn mine_block(&self) {
        self.borrow_mut().mine();
    }
}

fn mine_until(
    network: &mut LocalNetwork,
    chain: &impl MinesBlocks,
    within_ms: u64,
    what: &str,
    done: impl FnMut(&LocalNetwork) -> bool,
) {
    mine_blocks_until(network, || chain.mine_block(), within_ms, what, done);
}

/// Every InInstruction credited in a signed Batch, by account, with its amounts.
fn credited(network: &LocalNetwork) -> BTreeMap<u8, Vec<u64>> {
    let mut credited: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
    for (batch, _) in network.coordinator().signed_batches() {
        for (instruction, amount) in &batch.instructions {
            credited.entry(instruction.account[0]).or_default().push(amount.0);
        }
    }
    credited
}

#[test]
fn a_rotation_moves_the_funds_credits_once_and_retires_the_old_key() {
    let (chain, mut depositor) = mock_chains::bitcoin::funded_chain(31, 8);
    let chain = Rc::new(RefCell::new(chain));
    let (mut network, old) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        31,
        Faults::none(),
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );
    let all: Vec<usize> = (0..4).collect();

    // Funds under the first key, and a Burn paid by it (which also agrees the fee rate).
    for (sats, account) in [(400_000, 1), (300_000, 2), (250_000, 3)] {
        deposit(&chain, &mut depositor, &old, sats, account);
    }
    mine_until(&mut network, &chain, 120_000, "the first Batch", |net| net.coordinator().signed_batches().count() == 1);
    network.burn(ExternalChain::Bitcoin, vec![burn(10, 100_000)], FEE_RATE);
    mine_until(&mut network, &chain, 120_000, "the first payment", |net| plans_completed(net, &all));

    // A second session: same validators, a higher threshold.
    let ordered_at = network.now().0;
    network.start_keygen(NEW, 4, None);
    mine_until(&mut network, &chain, 600_000, "the new keys' confirmation", |net| {
        all.iter().all(|i| matches!(keygen::stage::stage(net.db(*i), NEW).unwrap(), Some(KeyStage::Pending { .. })))
    });
    let new = keygen::generated_keys(network.db(0), NEW).unwrap().unwrap().group_keys();
    assert_ne!(new, old);
    let activation = network.coordinator().activation(NEW).unwrap();

    // Deposits to both keys around the handover: the old key's are in its window.
    while chain.borrow().tip_height() < activation.0 {
        chain.borrow_mut().mine();
    }
    deposit(&chain, &mut depositor, &old, 200_000, 4);
    deposit(&chain, &mut depositor, &new, 150_000, 5);
    chain.borrow_mut().mine();
    mine_until(&mut network, &chain, 120_000, "the handover", |net| {
        all.iter().all(|i| keygen::active_session(net.db(*i)).unwrap() == Some(NEW))
    });
    // A Burn issued during the rotation, and a late deposit to the old key, still in its window.
    network.burn(ExternalChain::Bitcoin, vec![burn(11, 120_000)], FEE_RATE);
    deposit(&chain, &mut depositor, &old, 180_000, 6);
    chain.borrow_mut().mine();

    mine_until(&mut network, &chain, 600_000, "the old key's retirement", |net| {
        all.iter().all(|i| keygen::stage::stage(net.db(*i), SESSION).unwrap().is_none())
    });
    mine_until(&mut network, &chain, 120_000, "the Burn's payment", |net| {
        all.iter().all(|i| {
            matches!(Inspector::new(net.db(*i)).burn(&[11; 32]).unwrap(), Some(BurnStatus::Planned(_)))
                && plans_completed(net, &[*i])
        })
    });
    network.run_until(Millis(network.now().0 + 10_000), |_| false);

    // The old key's address holds nothing on chain; the new key holds the funds.
    assert_eq!(held_by(&chain.borrow(), &old), (0, 0), "the retired key still holds outputs");
    let (_, new_holds) = held_by(&chain.borrow(), &new);
    assert!(new_holds > 0);

    // Every deposit credited exactly once, with its InInstruction, whichever key received it.
    let credited = credited(&network);
    let expected: BTreeMap<u8, Vec<u64>> =
        [(1, 400_000), (2, 300_000), (3, 250_000), (4, 200_000), (5, 150_000), (6, 180_000)]
            .into_iter()
            .map(|(account, sats)| (account, vec![sats]))
            .collect();
    assert_eq!(credited, expected);

    for index in all.iter().copied() {
        let db = network.db(index);
        // The old key's shares are gone; the session records its retirement.
        assert!(keygen::generated_keys(db, SESSION).unwrap().is_none(), "processor {index} kept the old shares");
        let phase = keygen::sessions(db).unwrap().into_iter().find(|(s, _)| *s == SESSION).unwrap().1.phase;
        assert!(matches!(phase, keygen::Phase::Retired { .. }), "processor {index}: {phase:?}");
        // Both Burns paid once each: the first by the old key, the one issued during the
        // rotation by the new key; the old key's funds were forwarded, never spent on a payment.
        let inspector = Inspector::new(db);
        let mut paid = BTreeMap::new();
        let mut forwards = 0;
        for (_, record) in inspector.plans().unwrap() {
            assert!(record.plan.conserves_value());
            match record.plan.kind {
                PlanKind::Forward { to } => {
                    assert_eq!(record.session, SESSION);
                    assert_eq!(to, new.chain);
                    forwards += 1;
                }
                _ => {
                    for payment in &record.plan.payments {
                        assert!(paid.insert(payment.payment.id[0], record.session).is_none(), "a Burn paid twice");
                    }
                }
            }
        }
        assert!(forwards >= 1, "processor {index} forwarded nothing");
        if index == 0 {
            let forwarding: Vec<_> = inspector
                .plans()
                .unwrap()
                .into_iter()
                .filter(|(_, r)| matches!(r.plan.kind, PlanKind::Forward { .. }))
                .map(|(_, r)| (r.plan.inputs.len(), r.plan.fee.0))
                .collect();
            let Some(keygen::Phase::Retired { handed_over, retired, .. }) =
                keygen::sessions(db).unwrap().into_iter().find(|(s, _)| *s == SESSION).map(|(_, state)| state.phase)
            else {
                unreachable!()
            };
            println!(
                "Bitcoin rotation: {} forwarding transactions (inputs, fee in sat: {forwarding:?}); handed over at \
                 block {handed_over}, retired at {retired}; {} ms of network time from ordering the new keys to the end of the test",
                forwarding.len(),
                network.now().0 - ordered_at
            );
        }
        assert_eq!(paid, BTreeMap::from([(10, SESSION), (11, NEW)]), "processor {index}");
        assert_eq!(processor_core::scheduler::holdings(db, SESSION).unwrap().outputs, 0);
    }
    // Every processor reported the handover and the retirement.
    let observed =
        |f: &dyn Fn(&Observation) -> bool| network.coordinator().observations().iter().filter(|o| f(o)).count();
    assert_eq!(observed(&|o| matches!(o, Observation::HandedOver { session, .. } if *session == NEW)), 4);
    assert_eq!(observed(&|o| matches!(o, Observation::Retired { session, .. } if *session == SESSION)), 4);
}

mod monero {
    use super::*;
    use mock_chains::monero::{Depositor, MockMonero, MoneroConfig, WalletKeys};
    use monero_wallet::address::Network;
    use processor_core::chain::monero::{group_address, view_pair, CHANGE_SUBADDRESS};
    use processor_core::ids::OutputId;
    use processor_core::payments::PlanState;
    use std::collections::BTreeSet;

    const XMR: u64 = 1_000_000_000_000;
    const FEE_RATE: u64 = 20_000;

    fn spend_key(keys: &GroupKeys) -> [u8; 32] {
        let ChainPublicKey::Monero { spend_key } = keys.chain else { panic!("not a Monero key") };
        spend_key
    }

    /// Every output paid to a key's deposit or change address on chain, by output id.
    fn received_by(chain: &MockMonero, keys: &GroupKeys) -> BTreeMap<OutputId, u64> {
        let mut scanner = monero_wallet::Scanner::new(view_pair(&spend_key(keys)).unwrap());
        scanner.register_subaddress(CHANGE_SUBADDRESS.unwrap());
        let mut received = BTreeMap::new();
        for height in 0..=chain.tip_height() {
            let Some(block) = chain.scannable_block_at(height) else { continue };
            for output in scanner.scan(block).unwrap().not_additionally_locked() {
                let mut id = output.transaction().to_vec();
                id.extend(output.index_in_transaction().to_le_bytes());
                received.insert(OutputId(id), output.commitment().amount);
            }
        }
        received
    }

    fn deposit(chain: &Rc<RefCell<MockMonero>>, depositor: &mut Depositor, keys: &GroupKeys, amount: u64, account: u8) {
        let address = group_address(&spend_key(keys), Network::Mainnet).unwrap();
        let instruction = encode_instruction(&InInstruction { account: [account; 32] });
        let transaction = depositor.deposit(&chain.borrow(), &address, amount, Some(&instruction)).unwrap();
        chain.borrow_mut().submit(transaction).unwrap();
    }

    /// The same rotation on Monero: the old key's outputs are forwarded in real RingCT
    /// transactions the mock chain verifies, to the new key's change address.
    #[test]
    fn a_monero_rotation_forwards_every_output_and_retires_the_old_key() {
        let seed = 41;
        let mut depositor = Depositor::new(seed ^ 0xd0d0);
        let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
        for _ in 0..12 {
            chain.mine_to(&depositor.address());
        }
        let chain = Rc::new(RefCell::new(chain));
        let (mut network, old) = network_with_keys(
            4,
            3,
            ExternalChain::Monero,
            seed,
            Faults::none(),
            Box::new(SharedMonero(chain.clone())),
            CONFIRMATIONS,
        );
        let all: Vec<usize> = (0..4).collect();
        deposit(&chain, &mut depositor, &old, 6 * XMR / 10, 1);
        chain.borrow_mut().mine();
        deposit(&chain, &mut depositor, &old, 4 * XMR / 10, 2);
        mine_until(&mut network, &chain, 120_000, "the first Batches", |net| {
            net.coordinator().signed_batches().count() == 2
        });
        let recipient = WalletKeys::from_seed(seed * 10);
        let destination = recipient.address().to_string().into_bytes();
        let early = Burn { id: [10; 32], destination: destination.clone(), amount: Amount(XMR / 10) };
        network.burn(ExternalChain::Monero, vec![early], FEE_RATE);
        mine_until(&mut network, &chain, 600_000, "the first payment", |net| plans_completed(net, &all));

        network.start_keygen(NEW, 3, None);
        mine_until(&mut network, &chain, 600_000, "the new keys' confirmation", |net| {
            all.iter().all(|i| matches!(keygen::stage::stage(net.db(*i), NEW).unwrap(), Some(KeyStage::Pending { .. })))
        });
        let new = keygen::generated_keys(network.db(0), NEW).unwrap().unwrap().group_keys();
        let activation = network.coordinator().activation(NEW).unwrap();
        while (chain.borrow().tip_height() as u64) < activation.0 {
            chain.borrow_mut().mine();
        }
        deposit(&chain, &mut depositor, &old, 3 * XMR / 10, 3);
        deposit(&chain, &mut depositor, &new, 2 * XMR / 10, 4);
        chain.borrow_mut().mine();
        mine_until(&mut network, &chain, 300_000, "the handover", |net| {
            all.iter().all(|i| keygen::active_session(net.db(*i)).unwrap() == Some(NEW))
        });
        let late = Burn { id: [11; 32], destination, amount: Amount(XMR / 10) };
        network.burn(ExternalChain::Monero, vec![late], FEE_RATE);
        mine_until(&mut network, &chain, 900_000, "the old key's retirement", |net| {
            all.iter().all(|i| keygen::stage::stage(net.db(*i), SESSION).unwrap().is_none())
        });
        mine_until(&mut network, &chain, 600_000, "the late Burn's payment", |net| {
            all.iter().all(|i| {
                matches!(Inspector::new(net.db(*i)).burn(&[11; 32]).unwrap(), Some(BurnStatus::Planned(_)))
                    && plans_completed(net, &[*i])
            })
        });

        // Every output the old key ever received on chain was spent by one of its completed
        // plans: its address holds nothing.
        let received = received_by(&chain.borrow(), &old);
        assert!(received.len() >= 4, "{received:?}");
        let inspector = Inspector::new(network.db(0));
        let mut spent = BTreeSet::new();
        let mut forwarded = 0u64;
        for (_, record) in inspector.plans().unwrap() {
            assert!(matches!(record.state, PlanState::Completed { .. }));
            if record.session == SESSION {
                spent.extend(record.plan.inputs.iter().map(|input| input.id.clone()));
            }
            if let PlanKind::Forward { to } = record.plan.kind {
                assert_eq!(to, new.chain);
                forwarded += record.plan.change.unwrap().0;
            }
        }
        for id in received.keys() {
            assert!(spent.contains(id), "the old key's output {id} is still unspent on chain");
        }
        // The forwarded value arrived at the new key (its change address).
        let at_new: u64 = received_by(&chain.borrow(), &new).values().sum();
        assert!(forwarded > 0 && at_new >= forwarded, "forwarded {forwarded}, the new key received {at_new}");
        let credited = credited(&network);
        let expected: BTreeMap<u8, Vec<u64>> =
            [(1, 6 * XMR / 10), (2, 4 * XMR / 10), (3, 3 * XMR / 10), (4, 2 * XMR / 10)]
                .into_iter()
                .map(|(account, amount)| (account, vec![amount]))
                .collect();
        assert_eq!(credited, expected);
        for index in all {
            assert!(keygen::generated_keys(network.db(index), SESSION).unwrap().is_none());
        }
    }
}
