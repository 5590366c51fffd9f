//! Forks and reorganisations: hashes, rollback of outputs and key images, orphaned transactions
//! mined again or dropped, and a property test against a replay of the best chain.

use std::collections::BTreeMap;

use mock_chains::monero::{
    DepositError, Depositor, KeyImageStatus, MockMonero, MoneroConfig, ReorgError, Scanner, Transaction, WalletKeys,
};
use monero_wallet::{
    ed25519::{Commitment, Scalar},
    transaction::Input,
};
use proptest::prelude::*;

const AMOUNT: u64 = 987_654_321;

fn funded(seed: u64, blocks: usize) -> (MockMonero, Depositor) {
    let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 10, ..MoneroConfig::default() });
    let depositor = Depositor::new(seed ^ 0xbeef);
    for _ in 0..blocks {
        chain.mine_to(&depositor.address());
    }
    (chain, depositor)
}

fn hashes(chain: &MockMonero) -> Vec<[u8; 32]> {
    (0..=chain.tip_height()).map(|h| chain.block_hash(h).unwrap()).collect()
}

fn key_images(tx: &Transaction) -> Vec<[u8; 32]> {
    tx.prefix()
        .inputs
        .iter()
        .filter_map(|i| match i {
            Input::ToKey { key_image, .. } => Some(key_image.to_bytes()),
            Input::Gen(_) => None,
        })
        .collect()
}

/// Rebuilds the output set and the spent key images from the best chain's blocks alone and
/// checks the chain's indexes agree, along with block linking and the mempool's key images.
fn assert_consistent_with_replay(chain: &MockMonero) {
    let mut next_index = 0u64;
    let mut spent = BTreeMap::new();
    let mut previous = [0; 32];
    for height in 0..=chain.tip_height() {
        let block = chain.block(height).unwrap();
        assert_eq!(block.number(), height);
        assert_eq!(block.header.previous, previous);
        assert_eq!(block.hash(), chain.block_hash(height).unwrap());
        assert_eq!(chain.height_of(&block.hash()), Some(height));
        previous = block.hash();

        let txs = chain.transactions(height);
        assert_eq!(&txs[0], block.miner_transaction());
        assert_eq!(txs[1..].iter().map(Transaction::hash).collect::<Vec<_>>(), block.transactions);
        for tx in &txs {
            let hash = tx.hash();
            assert_eq!(chain.tx_height(&hash), Some(height));
            let n = tx.prefix().outputs.len() as u64;
            assert_eq!(chain.tx_output_indexes(&hash), Some((next_index..next_index + n).collect()));
            for (i, output) in tx.prefix().outputs.iter().enumerate() {
                let recorded = chain.output(next_index).expect("output indexed");
                let commitment = match (output.amount, tx) {
                    (Some(amount), _) => Commitment::new(Scalar::ONE, amount).commit(),
                    (None, Transaction::V2 { proofs: Some(proofs), .. }) => {
                        proofs.base.commitments[i].decompress().unwrap()
                    }
                    _ => panic!("RingCT output without proofs"),
                };
                assert_eq!(recorded.index, next_index);
                assert_eq!(recorded.key, output.key);
                assert_eq!(recorded.commitment, commitment);
                assert_eq!(recorded.height, height);
                assert_eq!(recorded.transaction, hash);
                assert_eq!(recorded.index_in_transaction, i);
                assert_eq!(recorded.timelock, tx.prefix().additional_timelock);
                next_index += 1;
            }
            for ki in key_images(tx) {
                assert!(spent.insert(ki, height).is_none(), "a key image spent twice on the best chain");
            }
        }
    }
    assert_eq!(chain.output_count(), next_index);
    assert_eq!(chain.output(next_index), None);
    assert_eq!(chain.spent_key_images(), spent.into_iter().collect::<Vec<_>>());
    for tx in chain.mempool() {
        assert_eq!(chain.tx_height(&tx.hash()), None);
        for ki in key_images(&tx) {
            assert_eq!(chain.key_image_status(&ki), Some(KeyImageStatus::Mempool { transaction: tx.hash() }));
        }
    }
}

#[test]
fn reorg_replaces_only_the_top_blocks() {
    let (mut chain, _) = funded(1, 20);
    let before = hashes(&chain);
    let outcome = chain.reorg(4).unwrap();
    let after = hashes(&chain);
    assert_eq!(after.len(), before.len() + 1, "depth + 1 new blocks");
    assert_eq!(after[..=16], before[..=16], "heights up to tip - depth keep their hashes");
    for height in 17..=20 {
        assert_ne!(after[height], before[height]);
    }
    assert_eq!(outcome.orphaned, before[17..].to_vec());
    assert_eq!(outcome.new_blocks, after[17..].to_vec());
    for orphan in &outcome.orphaned {
        assert_eq!(chain.height_of(orphan), None);
    }
    assert_consistent_with_replay(&chain);

    assert_eq!(chain.reorg(0), Err(ReorgError::ZeroDepth));
    assert_eq!(chain.reorg(22), Err(ReorgError::TooDeep { depth: 22, tip: 21 }));
    // Everything but genesis can go.
    chain.reorg(21).unwrap();
    assert_eq!(chain.block_hash(0), Some(before[0]));
    assert_consistent_with_replay(&chain);
}

#[test]
fn orphaned_deposit_rolls_back_and_is_mined_again() {
    let (mut chain, mut depositor) = funded(2, 12);
    let group = WalletKeys::from_seed(3);
    let tx = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"reorged")).unwrap();
    let hash = chain.submit(tx.clone()).unwrap();
    let outputs_before_block = chain.output_count();
    chain.mine();
    chain.mine();
    let mined_at = chain.tx_height(&hash).unwrap();
    assert_eq!(mined_at, 13);
    let indexes = chain.tx_output_indexes(&hash).unwrap();
    let deposit_output = chain.output(indexes[0]).unwrap();
    for ki in key_images(&tx) {
        assert_eq!(chain.key_image_status(&ki), Some(KeyImageStatus::OnChain { height: 13 }));
    }

    // Replace blocks 13 and 14.
    let outcome = chain.reorg(2).unwrap();
    assert_eq!(outcome.requeued, vec![hash]);
    assert!(outcome.dropped.is_empty());
    assert_eq!(chain.tx_height(&hash), None);
    assert_eq!(chain.tx_output_indexes(&hash), None);
    assert_eq!(chain.mempool_hashes(), vec![hash]);
    for ki in key_images(&tx) {
        assert_eq!(chain.key_image_status(&ki), Some(KeyImageStatus::Mempool { transaction: hash }));
    }
    // The deposit's global indexes now name other (coinbase) outputs.
    assert_eq!(chain.output_count(), outputs_before_block + 3);
    assert_ne!(chain.output(indexes[0]).unwrap().key, deposit_output.key);
    assert_consistent_with_replay(&chain);

    // Mined again at a new height, with new global indexes, and scanned there.
    chain.mine();
    let remined_at = chain.tx_height(&hash).unwrap();
    assert_eq!(remined_at, 16);
    for ki in key_images(&tx) {
        assert_eq!(chain.key_image_status(&ki), Some(KeyImageStatus::OnChain { height: 16 }));
    }
    let mut scanner = Scanner::new(group.view_pair());
    let found = scanner.scan(chain.scannable_block_at(16).unwrap()).unwrap().not_additionally_locked();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].commitment().amount, AMOUNT);
    assert_eq!(found[0].arbitrary_data(), &[b"reorged".to_vec()]);
    assert!(chain.tx_output_indexes(&hash).unwrap().contains(&found[0].index_on_blockchain()));
    assert_consistent_with_replay(&chain);
}

#[test]
fn orphaned_transaction_spending_an_orphaned_output_is_dropped() {
    let (mut chain, mut depositor) = funded(4, 12);
    let group = WalletKeys::from_seed(5);
    // The depositor spends its oldest coinbase (block 1); a reorg down to genesis removes it.
    let tx = depositor.deposit(&chain, &group.address(), AMOUNT, None).unwrap();
    let hash = chain.submit(tx.clone()).unwrap();
    chain.mine();
    assert_eq!(chain.tx_height(&hash), Some(13));
    let outcome = chain.reorg(chain.tip_height()).unwrap();
    assert_eq!(outcome.dropped, vec![hash]);
    assert!(outcome.requeued.is_empty());
    assert!(chain.mempool().is_empty());
    for ki in key_images(&tx) {
        assert_eq!(chain.key_image_status(&ki), None);
    }
    assert_consistent_with_replay(&chain);
    // The replacement blocks paid someone else: the depositor's funds went with the old branch.
    assert_eq!(depositor.balance(&chain).unwrap(), 0);
    assert!(depositor.outputs().is_empty());
    assert!(matches!(
        depositor.deposit(&chain, &group.address(), AMOUNT, None),
        Err(DepositError::InsufficientFunds { available: 0, .. })
    ));
}

#[test]
fn reorg_rate_reorganises_from_the_seed() {
    let run = |seed| {
        let (mut chain, _) = funded(seed, 5);
        chain.set_reorg_rate(1000, 3);
        let mut reorganised = 0;
        for _ in 0..10 {
            let before = hashes(&chain);
            chain.mine();
            let after = hashes(&chain);
            // Each mine() reorganised first: depth + 1 replacement blocks, then the new one.
            assert!(after.len() >= before.len() + 2);
            let kept = before.iter().zip(&after).take_while(|(a, b)| a == b).count();
            assert!(kept >= before.len() - 3 && kept < before.len());
            reorganised += before.len() - kept;
        }
        assert_consistent_with_replay(&chain);
        (hashes(&chain), reorganised)
    };
    let (a, reorganised) = run(6);
    assert!(reorganised >= 10);
    assert_eq!(run(6).0, a);

    // A zero rate never reorganises.
    let (mut chain, _) = funded(7, 5);
    chain.set_reorg_rate(0, 3);
    let before = hashes(&chain);
    chain.mine();
    assert_eq!(hashes(&chain)[..before.len()], before[..]);
}

#[derive(Clone, Debug)]
enum Op {
    Mine,
    Deposit { amount: u64, instruction: Option<Vec<u8>> },
    Reorg(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Mine),
        4 => (1u64 .. 800_000_000_000, proptest::option::of(proptest::collection::vec(any::<u8>(), 0 .. 40)))
            .prop_map(|(amount, instruction)| Op::Deposit { amount, instruction }),
        2 => (1usize ..= 16).prop_map(Op::Reorg),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn output_set_matches_a_replay(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1 ..= 10)) {
        let (mut chain, mut depositor) = funded(seed, 15);
        let group = WalletKeys::from_seed(seed.wrapping_add(1));
        let mut deposits = Vec::new();
        for op in ops {
            match op {
                Op::Mine => {
                    chain.mine();
                }
                Op::Deposit { amount, instruction } => {
                    match depositor.deposit(&chain, &group.address(), amount, instruction.as_deref()) {
                        // Whatever the depositor builds from the current chain must be accepted.
                        Ok(tx) => deposits.push(chain.submit(tx).unwrap()),
                        Err(DepositError::InsufficientFunds { .. }) => {}
                        Err(e) => panic!("deposit failed: {e}"),
                    }
                }
                Op::Reorg(depth) => {
                    let outcome = chain.reorg(depth.min(chain.tip_height())).unwrap();
                    // Nothing orphaned both comes back and is dropped.
                    prop_assert!(outcome.requeued.iter().all(|h| !outcome.dropped.contains(h)));
                }
            }
            assert_consistent_with_replay(&chain);
            // The depositor's view follows the best chain.
            depositor.sync(&chain).unwrap();
            for output in depositor.outputs() {
                let on_chain = chain.output(output.index_on_blockchain()).unwrap();
                prop_assert_eq!(on_chain.key, output.key().compress());
                prop_assert_eq!(on_chain.transaction, output.transaction());
            }
        }
        // Every deposit is on chain, in the mempool, or was dropped by a reorg that removed what
        // it spent; mining once more includes everything pending.
        chain.set_reorg_rate(0, 0);
        chain.mine();
        prop_assert!(chain.mempool().is_empty());
        assert_consistent_with_replay(&chain);
        for hash in deposits {
            if let Some(height) = chain.tx_height(&hash) {
                let mut scanner = Scanner::new(group.view_pair());
                let found = scanner.scan(chain.scannable_block_at(height).unwrap()).unwrap().not_additionally_locked();
                prop_assert!(found.iter().any(|o| o.transaction() == hash));
            }
        }
    }
}
