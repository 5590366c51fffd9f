//! Mock Bitcoin: forks and reorganisations, checked against a from-scratch replay of the best
//! chain.

use std::collections::BTreeMap;

use bitcoin::secp256k1::{Keypair, Secp256k1};
use bitcoin::{Amount, BlockHash, OutPoint, ScriptBuf, Transaction, TxOut, Txid};
use mock_chains::bitcoin::{block_subsidy, p2tr_script, spend_key_path, Depositor, MockBitcoin, ReorgError};
use proptest::prelude::*;

fn group() -> (Keypair, ScriptBuf) {
    let keypair = Keypair::from_seckey_slice(&Secp256k1::new(), &[0x42; 32]).expect("scalar");
    let script = p2tr_script(keypair.x_only_public_key().0);
    (keypair, script)
}

/// The UTXO set and per-block fees obtained by applying the best chain's blocks from genesis,
/// independently of the chain's own bookkeeping. Panics if a block spends a missing output or
/// creates value.
fn replay(chain: &MockBitcoin) -> (BTreeMap<OutPoint, TxOut>, Vec<Amount>) {
    let mut set = BTreeMap::<OutPoint, TxOut>::new();
    let mut fees = Vec::new();
    for height in 0..=chain.tip_height() {
        let block = chain.block(height).expect("best chain block");
        let mut block_fees = Amount::ZERO;
        for (position, tx) in block.txdata.iter().enumerate() {
            assert_eq!(tx.is_coinbase(), position == 0);
            if position > 0 {
                let mut inputs = Amount::ZERO;
                for input in &tx.input {
                    let spent = set.remove(&input.previous_output);
                    inputs += spent.expect("block spends an existing output").value;
                }
                let outputs: Amount = tx.output.iter().map(|out| out.value).sum();
                block_fees += inputs.checked_sub(outputs).expect("no value created");
            }
            let txid = tx.compute_txid();
            for (vout, out) in tx.output.iter().enumerate() {
                if !out.script_pubkey.is_op_return() {
                    set.insert(OutPoint::new(txid, vout as u32), out.clone());
                }
            }
        }
        fees.push(block_fees);
    }
    (set, fees)
}

/// The chain's UTXO set equals the replay; coinbases pay exactly subsidy plus fees; all value in
/// existence is the subsidies paid (nothing burned: deposits' OP_RETURNs carry zero); every
/// transaction is confirmed once; blocks link up.
fn assert_consistent(chain: &MockBitcoin) {
    let (replayed, fees) = replay(chain);
    let ours: BTreeMap<OutPoint, TxOut> = chain.utxos().map(|(outpoint, txout)| (*outpoint, txout.clone())).collect();
    assert_eq!(ours, replayed, "UTXO set differs from a replay of the best chain");
    let mut subsidies = Amount::ZERO;
    let mut txids = BTreeMap::<Txid, u64>::new();
    for height in 0..=chain.tip_height() {
        let block = chain.block(height).unwrap();
        assert_eq!(block.block_hash(), chain.block_hash(height).unwrap());
        assert!(chain.is_in_best_chain(&block.block_hash()));
        assert_eq!(chain.height_of(&block.block_hash()), Some(height));
        if height > 0 {
            assert_eq!(block.header.prev_blockhash, chain.block_hash(height - 1).unwrap());
        }
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        let paid: Amount = block.txdata[0].output.iter().map(|out| out.value).sum();
        assert_eq!(paid, block_subsidy(height) + fees[height as usize], "coinbase at {height}");
        subsidies += block_subsidy(height);
        for tx in &block.txdata {
            assert_eq!(txids.insert(tx.compute_txid(), height), None, "txid confirmed twice");
            assert_eq!(chain.confirmation_height(&tx.compute_txid()), Some(height));
        }
    }
    let total: Amount = replayed.values().map(|out| out.value).sum();
    assert_eq!(total, subsidies, "value in the UTXO set is the subsidies paid");
    // Mempool transactions are unconfirmed.
    for tx in chain.mempool() {
        assert_eq!(chain.confirmation_height(&tx.compute_txid()), None);
    }
}

fn hashes(chain: &MockBitcoin) -> Vec<BlockHash> {
    (0..=chain.tip_height()).map(|h| chain.block_hash(h).unwrap()).collect()
}

#[test]
fn reorg_replaces_the_tail_and_keeps_the_prefix() {
    let mut chain = MockBitcoin::new(1);
    chain.mine_blocks(10);
    let before = hashes(&chain);
    let utxos_before = chain.utxos().len();
    let new_tip = chain.reorg(3).unwrap();
    assert_eq!(chain.tip_height(), 11);
    assert_eq!(chain.tip_hash(), new_tip);
    let after = hashes(&chain);
    assert_eq!(after[..8], before[..8], "heights below tip - depth keep their hashes");
    for height in 8..=10 {
        assert_ne!(after[height], before[height], "height {height} was replaced");
        // Orphans stay retrievable by hash, at the height they were built.
        let orphan = chain.block_by_hash(&before[height]).expect("orphan kept");
        assert_eq!(orphan.block_hash(), before[height]);
        assert_eq!(chain.height_of(&before[height]), Some(height as u64));
        assert!(!chain.is_in_best_chain(&before[height]));
    }
    // Orphaned coinbases are gone, replacements (one more block) are in.
    assert_eq!(chain.utxos().len(), utxos_before + 1);
    for hash in &before[8..] {
        let coinbase = &chain.block_by_hash(hash).unwrap().txdata[0];
        assert_eq!(chain.utxo(&OutPoint::new(coinbase.compute_txid(), 0)), None);
    }
    assert_consistent(&chain);

    assert_eq!(chain.reorg(12), Err(ReorgError::TooDeep { depth: 12, tip_height: 11 }));
    chain.reorg(11).expect("everything but genesis can be replaced");
    assert_eq!(chain.block_hash(0), Some(before[0]));
    assert_eq!(chain.tip_height(), 12);
    chain.reorg(0).expect("depth 0 just mines");
    assert_eq!(chain.tip_height(), 13);
    assert_consistent(&chain);
}

#[test]
fn orphaned_transactions_are_confirmed_again() {
    let (_, group_script) = group();
    let mut chain = MockBitcoin::new(2);
    chain.set_coinbase_maturity(3);
    let mut depositor = Depositor::new(2);
    // One coin, so the second deposit must spend the first's change.
    chain.mine_to(depositor.script_pubkey());
    chain.mine_blocks(3);
    let deposit = depositor.deposit(&chain, &group_script, Amount::ONE_BTC, Some(b"instruction")).unwrap();
    let txid = chain.submit(deposit.clone()).unwrap();
    let included_at = chain.tip_height() + 1;
    let orphan_hash = chain.mine();
    chain.mine_blocks(2);
    // A second deposit waiting in the mempool, spending the first's change, survives too.
    let follow_up = depositor.deposit(&chain, &group_script, Amount::from_sat(5_000), None).unwrap();
    assert!(follow_up.input.iter().any(|input| input.previous_output.txid == txid));
    let follow_txid = chain.submit(follow_up).unwrap();
    assert_eq!(chain.confirmation_height(&txid), Some(included_at));

    chain.reorg(3).unwrap();
    assert!(!chain.is_in_best_chain(&orphan_hash));
    let orphan = chain.block_by_hash(&orphan_hash).unwrap();
    assert!(orphan.txdata.iter().any(|tx| tx.compute_txid() == txid));
    // Re-included in the first replacement block, at the same height, followed by the mempool.
    assert_eq!(chain.confirmation_height(&txid), Some(included_at));
    assert_eq!(chain.confirmation_height(&follow_txid), Some(included_at));
    let replacement = chain.block(included_at).unwrap();
    assert_ne!(replacement.block_hash(), orphan_hash);
    assert_eq!(replacement.txdata[1], deposit);
    assert_eq!(chain.utxo(&OutPoint::new(txid, 0)).unwrap().value, Amount::ONE_BTC);
    assert_eq!(chain.mempool().len(), 0);
    assert_consistent(&chain);
}

#[test]
fn transactions_spending_orphaned_coinbases_are_dropped() {
    let (keypair, group_script) = group();
    let mut chain = MockBitcoin::new(3);
    chain.set_coinbase_maturity(1);
    chain.mine_blocks(2);
    chain.mine_to(&group_script);
    let coinbase = chain.block(3).unwrap().txdata[0].clone();
    let outpoint = OutPoint::new(coinbase.compute_txid(), 0);
    let pay = vec![TxOut { value: Amount::ONE_BTC, script_pubkey: group_script.clone() }];
    let spend = spend_key_path(&[(outpoint, coinbase.output[0].clone())], pay, &keypair, &[1; 32]).unwrap();
    let txid = chain.submit(spend).unwrap();
    chain.mine();
    assert_eq!(chain.confirmation_height(&txid), Some(4));
    // Replace block 3 (its coinbase) and 4: the spend has no input any more.
    chain.reorg(2).unwrap();
    assert_eq!(chain.confirmation_height(&txid), None);
    assert_eq!(chain.transaction(&txid), None);
    assert_eq!(chain.mempool().len(), 0);
    assert_consistent(&chain);
}

#[test]
fn reorged_spend_waits_for_maturity() {
    // A coinbase spent as soon as mature; replacing the blocks from the spend down to just above
    // the coinbase must not drop the spend, even though it is immature at the fork point.
    let (keypair, group_script) = group();
    let mut chain = MockBitcoin::new(4);
    chain.set_coinbase_maturity(5);
    chain.mine_to(&group_script);
    chain.mine_blocks(4);
    let coinbase = chain.block(1).unwrap().txdata[0].clone();
    let outpoint = OutPoint::new(coinbase.compute_txid(), 0);
    let pay = vec![TxOut { value: Amount::ONE_BTC, script_pubkey: group_script.clone() }];
    let spend = spend_key_path(&[(outpoint, coinbase.output[0].clone())], pay, &keypair, &[1; 32]).unwrap();
    let txid = chain.submit(spend).unwrap();
    chain.mine();
    assert_eq!(chain.confirmation_height(&txid), Some(6));
    chain.reorg(4).unwrap();
    assert_eq!(chain.confirmation_height(&txid), Some(6));
    assert_consistent(&chain);
}

#[test]
fn random_reorgs_are_seeded() {
    let run = |seed: u64| {
        let mut chain = MockBitcoin::new(seed);
        chain.set_reorg_rate(500, 3);
        let mut replaced = 0;
        for _ in 0..40 {
            let before = hashes(&chain);
            chain.mine();
            assert_eq!(chain.tip_height() as usize, before.len(), "mine always adds one height");
            replaced += before.iter().zip(hashes(&chain)).filter(|(a, b)| *a != b).count();
        }
        assert_consistent(&chain);
        (hashes(&chain), replaced)
    };
    let (a, replaced) = run(9);
    assert!(replaced > 5, "reorgs happened: {replaced}");
    assert_eq!(run(9).0, a);
    assert_ne!(run(10).0[1..], a[1..]);

    let mut calm = MockBitcoin::new(9);
    calm.set_reorg_rate(0, 3);
    let before = hashes(&{
        let mut chain = calm.clone();
        chain.mine_blocks(10);
        chain
    });
    calm.mine_blocks(30);
    assert_eq!(hashes(&calm)[..11], before[..], "rate 0 never reorgs");
}

#[derive(Clone, Debug)]
enum Op {
    Mine,
    MineToDepositor,
    Deposit { per_mille: u16, instruction: Option<Vec<u8>> },
    SpendGroup,
    Reorg(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Mine),
        2 => Just(Op::MineToDepositor),
        4 => (1u16..1000, proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=80)))
            .prop_map(|(per_mille, instruction)| Op::Deposit { per_mille, instruction }),
        1 => Just(Op::SpendGroup),
        2 => (0usize..5).prop_map(Op::Reorg),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn utxo_set_matches_replay(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..40)) {
        let (group_key, group_script) = group();
        let mut chain = MockBitcoin::new(seed);
        chain.set_coinbase_maturity(2);
        // Half the cases also reorganise at random inside `mine`.
        if seed % 2 == 0 {
            chain.set_reorg_rate(250, 3);
        }
        let mut depositor = Depositor::new(seed);
        let mut submitted: Vec<Transaction> = Vec::new();
        for op in ops {
            match op {
                Op::Mine => { chain.mine(); }
                Op::MineToDepositor => { chain.mine_to(depositor.script_pubkey()); }
                Op::Deposit { per_mille, instruction } => {
                    let balance = depositor.balance(&chain);
                    let amount = Amount::from_sat(balance.to_sat() / 1000 * u64::from(per_mille));
                    if let Ok(tx) = depositor.deposit(&chain, &group_script, amount, instruction.as_deref()) {
                        chain.submit(tx.clone()).expect("depositor builds valid transactions");
                        submitted.push(tx);
                    }
                }
                Op::SpendGroup => {
                    if let Some((outpoint, txout)) = chain.spendable_outputs(&group_script).into_iter().next() {
                        let value = txout.value.checked_sub(Amount::from_sat(500)).unwrap_or(Amount::ZERO);
                        let pay = vec![TxOut { value, script_pubkey: depositor.script_pubkey().to_owned() }];
                        let tx = spend_key_path(&[(outpoint, txout)], pay, &group_key, &[3; 32]).unwrap();
                        chain.submit(tx.clone()).expect("group spend is valid");
                        submitted.push(tx);
                    }
                }
                Op::Reorg(depth) => {
                    let depth = depth.min(chain.tip_height() as usize);
                    let before = hashes(&chain);
                    chain.reorg(depth).unwrap();
                    let after = hashes(&chain);
                    let fork = before.len() - depth;
                    prop_assert_eq!(&after[..fork], &before[..fork]);
                    for height in fork..before.len() {
                        prop_assert_ne!(after[height], before[height]);
                    }
                }
            }
            assert_consistent(&chain);
        }
        // Deposits and group spends only spend depositor coinbases, mature at least two blocks
        // before they were spent; their inputs survive any reorg of depth < 5 unless the coinbase
        // itself was orphaned. Whatever survived is confirmed or waiting, never lost silently
        // while its inputs still exist.
        chain.mine();
        for tx in &submitted {
            let txid = tx.compute_txid();
            let known = chain.confirmation_height(&txid).is_some() || chain.mempool().any(|m| m.compute_txid() == txid);
            if !known {
                // Dropped: some input must no longer exist (orphaned coinbase or an ancestor's).
                let lost = tx.input.iter().any(|input| {
                    chain.utxo(&input.previous_output).is_none()
                });
                prop_assert!(lost, "valid transaction {} vanished", txid);
            }
        }
        assert_consistent(&chain);
    }
}
