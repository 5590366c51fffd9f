//! Deposits on the mock Monero chain (real RingCT transactions with the InInstruction in the
//! extra) become final, are reported, acknowledged, and end in Batches threshold-signed 3-of-4
//! that ed25519-dalek verifies, identical across all four processors; a deep reorganisation
//! halts.

mod common;

use common::*;
use coordinator::local::Faults;
use coordinator::Observation;
use mock_chains::monero::{Depositor, MockMonero, MoneroConfig};
use processor_core::chain::instruction::encode_instruction;
use processor_core::chain::monero::group_address;
use processor_core::ids::{Amount, ExternalChain, Millis};
use processor_core::inspect::Inspector;
use processor_core::messages::{ChainPublicKey, GroupKeys, InInstruction};
use std::cell::RefCell;
use std::rc::Rc;

const CONFIRMATIONS: u64 = 3;

fn funded_chain(seed: u64) -> (Rc<RefCell<MockMonero>>, Depositor) {
    let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 2, ..MoneroConfig::default() });
    let depositor = Depositor::new(seed ^ 0xd0d0);
    for _ in 0..12 {
        chain.mine_to(&depositor.address());
    }
    (Rc::new(RefCell::new(chain)), depositor)
}

fn deposit(
    chain: &Rc<RefCell<MockMonero>>,
    depositor: &mut Depositor,
    keys: &GroupKeys,
    amount: u64,
    account: Option<u8>,
) {
    let ChainPublicKey::Monero { spend_key } = keys.chain else { panic!("not a Monero key") };
    let address = group_address(&spend_key, monero_wallet::address::Network::Mainnet).unwrap();
    let instruction = account.map(|a| encode_instruction(&InInstruction { account: [a; 32] }));
    let transaction = depositor.deposit(&chain.borrow(), &address, amount, instruction.as_deref()).unwrap();
    chain.borrow_mut().submit(transaction).unwrap();
}

#[test]
fn monero_deposits_end_in_batches_signed_3_of_4() {
    let (chain, mut depositor) = funded_chain(3);
    let (mut network, keys) = network_with_keys(
        4,
        3,
        ExternalChain::Monero,
        3,
        Faults::unreliable(),
        Box::new(SharedMonero(chain.clone())),
        CONFIRMATIONS,
    );

    deposit(&chain, &mut depositor, &keys, 1_000_000_000, Some(1));
    deposit(&chain, &mut depositor, &keys, 2_000_000_000, None);
    chain.borrow_mut().mine();
    deposit(&chain, &mut depositor, &keys, 3_000_000_000, Some(2));
    chain.borrow_mut().mine();
    for _ in 0..CONFIRMATIONS {
        chain.borrow_mut().mine();
    }

    let done =
        network.run_until(Millis(network.now().0 + 120_000), |net| net.coordinator().signed_batches().count() == 2);
    assert!(done, "Batches not signed; coordinator saw {:?}", network.coordinator().observations());
    let batches = signed_batches(&network);
    assert_eq!(batches[0].0.instructions, vec![(InInstruction { account: [1; 32] }, Amount(1_000_000_000))]);
    assert_eq!(batches[1].0.instructions, vec![(InInstruction { account: [2; 32] }, Amount(3_000_000_000))]);
    for (batch, signature) in &batches {
        assert_eq!(batch.chain, ExternalChain::Monero);
        assert_batch_signature(&keys, batch, signature);
    }
    run_for(&mut network, 20_000);
    for index in 0..4 {
        let records = Inspector::new(network.db(index)).batches().unwrap();
        assert_eq!(records.len(), 2);
        for ((_, record), (batch, signature)) in records.iter().zip(&batches) {
            assert_eq!(&record.batch, batch, "processor {index} built a different Batch");
            assert!(record.published);
            if let Some(own) = record.signature {
                assert_eq!(&own, signature);
            }
        }
    }
    // The deposit without an InInstruction was reported with the first block's deposits.
    let reports = reports_by(&network, 0);
    assert!(reports
        .iter()
        .any(|(_, _, deposits)| deposits.len() == 2 && deposits.iter().any(|d| d.instruction.is_none())));

    // A reorganisation deeper than the confirmations halts every processor, and no Batch follows.
    chain.borrow_mut().reorg(usize::try_from(CONFIRMATIONS + 1).unwrap()).unwrap();
    chain.borrow_mut().mine();
    run_for(&mut network, 20_000);
    let halts =
        network.coordinator().observations().iter().filter(|o| matches!(o, Observation::ChainHalted { .. })).count();
    assert_eq!(halts, 4);
    assert_eq!(network.coordinator().signed_batches().count(), 2);
}

#[test]
fn malformed_monero_blocks_are_refused_not_panicked_on() {
    use processor_core::chain::{scan_block, ScanKey};
    use processor_core::ids::SessionId;
    let (chain, _) = funded_chain(4);
    let key = [ScanKey { session: SessionId(1), key: ChainPublicKey::Monero { spend_key: *curve_point_bytes() } }];
    let good = monero_block_data(&chain.borrow(), 5).unwrap();
    assert!(scan_block(ExternalChain::Monero, &good, &key).is_ok());
    for cut in [0, 1, good.len() / 3, good.len() - 1] {
        assert!(scan_block(ExternalChain::Monero, &good[..cut], &key).is_err());
    }
    for position in (0..good.len()).step_by(7) {
        let mut mutated = good.clone();
        mutated[position] ^= 0x41;
        let _ = scan_block(ExternalChain::Monero, &mutated, &key);
    }
}

/// The Ed25519 basepoint, compressed: a valid spend key nobody in the test holds.
fn curve_point_bytes() -> &'static [u8; 32] {
    &[
        0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
        0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
    ]
}

/// A block large enough to be scanned on two threads finds exactly what monero-wallet's
/// scanner finds scanning it whole, in the same order, with the same global output indexes.
#[test]
fn a_large_block_scanned_in_halves_equals_a_whole_scan() {
    use mock_chains::monero::WalletKeys;
    use processor_core::chain::monero::{view_pair, PARALLEL_FROM_TRANSACTIONS};
    use processor_core::chain::{scan_block, ScanKey};
    use processor_core::ids::SessionId;
    let mut chain = MockMonero::with_config(8, MoneroConfig { coinbase_lock: 1, ..MoneroConfig::default() });
    let mut depositor = Depositor::new(8);
    let transactions = PARALLEL_FROM_TRANSACTIONS + 6;
    for _ in 0..transactions + 12 {
        chain.mine_to(&depositor.address());
    }
    let spend_key = WalletKeys::from_seed(99).spend_public().compress().to_bytes();
    let group = group_address(&spend_key, monero_wallet::address::Network::Mainnet).unwrap();
    let stranger = WalletKeys::from_seed(98).address();
    for index in 0..transactions {
        let to = if index % 3 == 0 { &group } else { &stranger };
        let instruction = encode_instruction(&InInstruction { account: [index as u8; 32] });
        let transaction = depositor.deposit(&chain, to, 1_000_000_000 + index as u64, Some(&instruction)).unwrap();
        chain.submit(transaction).unwrap();
    }
    chain.mine();
    let height = chain.tip_height();
    assert_eq!(chain.transactions(height).len(), transactions + 1);

    let key = [ScanKey { session: SessionId(1), key: ChainPublicKey::Monero { spend_key } }];
    let bytes = monero_block_data(&chain, height).unwrap();
    let found = scan_block(ExternalChain::Monero, &bytes, &key).unwrap().outputs;

    let mut reference = monero_wallet::Scanner::new(view_pair(&spend_key).unwrap());
    let whole = reference.scan(chain.scannable_block_at(height).unwrap()).unwrap().not_additionally_locked();
    assert_eq!(found.len(), transactions.div_ceil(3));
    assert_eq!(found.len(), whole.len());
    for (ours, theirs) in found.iter().zip(&whole) {
        assert_eq!(&ours.id.0[..32], theirs.transaction().as_slice());
        assert_eq!(ours.amount.0, theirs.commitment().amount);
        let parsed = monero_wallet::WalletOutput::read(&mut ours.spend_data.as_slice()).unwrap();
        assert_eq!(parsed.index_on_blockchain(), theirs.index_on_blockchain(), "global output index differs");
    }
}
