//! Deposits on the mock Bitcoin chain become final, are reported, acknowledged, and end in
//! Batches threshold-signed 3-of-4 that ed25519-dalek verifies; reorganisations shallower than
//! the confirmation depth change nothing reported, a deeper one halts.

mod common;

use bitcoin::key::XOnlyPublicKey;
use common::*;
use coordinator::local::Faults;
use coordinator::Observation;
use mock_chains::bitcoin::{Depositor, MockBitcoin};
use processor_core::chain::instruction::encode_instruction;
use processor_core::chain::{self, ScanKey};
use processor_core::ids::{Amount, BatchId, BlockHeight, ExternalChain};
use processor_core::inspect::Inspector;
use processor_core::messages::{ChainPublicKey, GroupKeys, InInstruction};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;

fn group_script(keys: &GroupKeys) -> bitcoin::ScriptBuf {
    let ChainPublicKey::Bitcoin { internal_key } = keys.chain else { panic!("not a Bitcoin key") };
    mock_chains::bitcoin::p2tr_script(XOnlyPublicKey::from_slice(&internal_key).unwrap())
}

fn funded_chain(seed: u64) -> (Rc<RefCell<MockBitcoin>>, Depositor) {
    let mut chain = MockBitcoin::new(seed);
    chain.set_coinbase_maturity(1);
    let depositor = Depositor::new(seed);
    for _ in 0..5 {
        chain.mine_to(depositor.script_pubkey());
    }
    chain.mine();
    (Rc::new(RefCell::new(chain)), depositor)
}

fn account(byte: u8) -> InInstruction {
    InInstruction { account: [byte; 32] }
}

fn deposit(
    chain: &Rc<RefCell<MockBitcoin>>,
    depositor: &mut Depositor,
    keys: &GroupKeys,
    sats: u64,
    instruction: Option<InInstruction>,
) {
    let encoded = instruction.map(|i| encode_instruction(&i));
    let tx = depositor
        .deposit(&chain.borrow(), &group_script(keys), bitcoin::Amount::from_sat(sats), encoded.as_deref())
        .unwrap();
    chain.borrow_mut().submit(tx).unwrap();
}

#[test]
fn deposits_end_in_batches_signed_3_of_4_identically_everywhere() {
    let (chain, mut depositor) = funded_chain(1);
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        1,
        Faults::unreliable(),
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );

    deposit(&chain, &mut depositor, &keys, 50_000, Some(account(1)));
    deposit(&chain, &mut depositor, &keys, 70_000, None);
    deposit(&chain, &mut depositor, &keys, 90_000, Some(account(2)));
    chain.borrow_mut().mine();
    let deposit_height = chain.borrow().tip_height();
    deposit(&chain, &mut depositor, &keys, 11_000, Some(account(3)));
    chain.borrow_mut().mine();
    for _ in 0..CONFIRMATIONS {
        chain.borrow_mut().mine();
    }

    let done = network.run_until(processor_core::ids::Millis(network.now().0 + 120_000), |net| {
        net.coordinator().signed_batches().count() == 2
    });
    assert!(done, "Batches not signed; coordinator saw {:?}", network.coordinator().observations());
    let batches = signed_batches(&network);
    let (first, signature) = &batches[0];
    assert_eq!(first.id, BatchId(0));
    assert_eq!(first.instructions, vec![(account(1), Amount(50_000)), (account(2), Amount(90_000))]);
    assert_eq!(first.block.0, chain.borrow().block_hash(deposit_height).unwrap().to_byte_array_for_test());
    assert_batch_signature(&keys, first, signature);
    let (second, signature) = &batches[1];
    assert_eq!(second.instructions, vec![(account(3), Amount(11_000))]);
    assert_batch_signature(&keys, second, signature);

    // Let the publication reach everyone, then: every processor built the same Batches, and
    // whoever aggregated holds the same signature.
    run_for(&mut network, 20_000);
    for index in 0..4 {
        let records = Inspector::new(network.db(index)).batches().unwrap();
        assert_eq!(records.len(), 2, "processor {index} built {} Batches", records.len());
        for ((id, record), (batch, signature)) in records.iter().zip(&batches) {
            assert_eq!(*id, batch.id);
            assert_eq!(&record.batch, batch, "processor {index} built a different Batch");
            assert!(record.published);
            if let Some(own) = record.signature {
                assert_eq!(&own, signature);
            }
        }
    }
    // Every deposit is now spendable by the group: the attributed ones since their Batch was
    // published, the unattributed one since its block was final.
    for index in 0..4 {
        let scheduler = processor_core::scheduler::snapshot(network.db(index)).unwrap();
        let mut amounts: Vec<u64> = scheduler.available().iter().map(|u| u.amount.0).collect();
        amounts.sort();
        assert_eq!(amounts, vec![11_000, 50_000, 70_000, 90_000], "processor {index}");
    }
    // The deposit without an InInstruction was reported but is in no Batch.
    let reports = reports_by(&network, 0);
    let at_deposit = reports.iter().find(|(h, _, _)| *h == deposit_height).unwrap();
    assert_eq!(at_deposit.2.len(), 3);
    assert_eq!(at_deposit.2.iter().filter(|d| d.instruction.is_none()).count(), 1);
}

trait ByteArray {
    fn to_byte_array_for_test(&self) -> [u8; 32];
}
impl ByteArray for bitcoin::BlockHash {
    fn to_byte_array_for_test(&self) -> [u8; 32] {
        use bitcoin::hashes::Hash;
        self.to_byte_array()
    }
}

#[test]
fn a_reorganisation_deeper_than_the_confirmations_halts_and_reports_nothing_twice() {
    let (chain, mut depositor) = funded_chain(2);
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Bitcoin,
        2,
        Faults::none(),
        Box::new(SharedBitcoin(chain.clone())),
        CONFIRMATIONS,
    );
    deposit(&chain, &mut depositor, &keys, 40_000, Some(account(9)));
    for _ in 0..=CONFIRMATIONS + 2 {
        chain.borrow_mut().mine();
    }
    assert!(network.run_until(processor_core::ids::Millis(network.now().0 + 60_000), |net| net
        .coordinator()
        .signed_batches()
        .count()
        == 1));
    let reported_before: Vec<_> = (0..4).map(|i| reports_by(&network, i)).collect();

    chain.borrow_mut().reorg(usize::try_from(CONFIRMATIONS + 1).unwrap()).unwrap();
    chain.borrow_mut().mine();
    run_for(&mut network, 20_000);

    let halts: Vec<_> =
        network.coordinator().observations().iter().filter(|o| matches!(o, Observation::ChainHalted { .. })).collect();
    assert_eq!(halts.len(), 4, "every processor halts once: {halts:?}");
    for (index, before) in reported_before.iter().enumerate() {
        assert!(Inspector::new(network.db(index)).halted().unwrap().is_some(), "processor {index} did not halt");
        let reports = reports_by(&network, index);
        // Nothing past the halt was reported, and nothing reported before changed.
        assert_eq!(&reports, before, "processor {index} reported again after the deep reorganisation");
    }
    assert_eq!(network.coordinator().signed_batches().count(), 1, "a second Batch was signed");
}

/// What scanning the final part of the best chain directly gives, from `from` on.
fn direct_scan(chain: &MockBitcoin, keys: &GroupKeys, from: u64) -> Vec<(u64, [u8; 32], usize)> {
    let key = [ScanKey { session: SESSION, key: keys.chain }];
    (from..=chain.tip_height() - CONFIRMATIONS)
        .map(|height| {
            let scanned = chain::scan_block(ExternalChain::Bitcoin, &chain.block_bytes(height).unwrap(), &key).unwrap();
            // Deposits below the minimum are not reported.
            let minimum = processor_core::scanner::minimum_deposit(ExternalChain::Bitcoin);
            (height, scanned.id.0, scanned.outputs.iter().filter(|output| output.amount >= minimum).count())
        })
        .collect()
}

#[derive(Clone, Debug)]
enum Step {
    Mine,
    Deposit { sats: u64, with_instruction: bool },
    Reorg { depth: usize },
    Run,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Mine),
        2 => (1_000u64 .. 100_000, any::<bool>()).prop_map(|(sats, with_instruction)| Step::Deposit { sats, with_instruction }),
        1 => (1usize ..= CONFIRMATIONS as usize).prop_map(|depth| Step::Reorg { depth }),
        2 => Just(Step::Run),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Shallow reorganisations interleaved with scanning: every processor reports exactly the
    /// final blocks of the resulting chain, as scanning it directly gives.
    #[test]
    fn shallow_reorganisations_change_nothing_reported(seed in 0u64 .. 1_000, steps in proptest::collection::vec(step(), 5 .. 30)) {
        let (chain, mut depositor) = funded_chain(seed);
        let (mut network, keys) = network_with_keys(2, 2, ExternalChain::Bitcoin, seed, Faults::none(), Box::new(SharedBitcoin(chain.clone())), CONFIRMATIONS);
        let inspector = Inspector::new(network.db(0));
        let activation = inspector.last_scanned().unwrap().map(|tip| tip.height.0)
            .or_else(|| inspector.next_height().unwrap().map(|h: BlockHeight| h.0))
            .unwrap();
        for step in steps {
            match step {
                Step::Mine => { chain.borrow_mut().mine(); }
                Step::Deposit { sats, with_instruction } => {
                    let instruction = with_instruction.then(|| account((sats % 251) as u8));
                    let encoded = instruction.map(|i| encode_instruction(&i));
                    let tx = depositor.deposit(&chain.borrow(), &group_script(&keys), bitcoin::Amount::from_sat(sats), encoded.as_deref());
                    if let Ok(tx) = tx {
                        let _ = chain.borrow_mut().submit(tx);
                    }
                }
                Step::Reorg { depth } => { let _ = chain.borrow_mut().reorg(depth); }
                Step::Run => run_for(&mut network, 500),
            }
        }
        for _ in 0 .. CONFIRMATIONS {
            chain.borrow_mut().mine();
        }
        run_for(&mut network, 5_000);
        let expected = direct_scan(&chain.borrow(), &keys, activation);
        for index in 0 .. 2 {
            prop_assert!(Inspector::new(network.db(index)).halted().unwrap().is_none());
            let reported: Vec<_> = reports_by(&network, index).into_iter().map(|(h, b, d)| (h, b, d.len())).collect();
            prop_assert_eq!(&reported, &expected);
        }
    }
}
