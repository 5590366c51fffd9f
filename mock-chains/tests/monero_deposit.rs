//! Deposits end to end (monero-wallet builds, the mock validates and mines, monero-wallet scans),
//! the rejections of `submit`, the interface traits and determinism.

use mock_chains::monero::{
    address_from_keys, block_on, DepositError, Depositor, KeyImageStatus, MockMonero, MoneroConfig, Scanner,
    Transaction, TxRejected, WalletKeys, COINBASE_LOCK, MAX_INSTRUCTION_LEN, MAX_PAYMENTS,
};
use monero_wallet::{
    ed25519::{Commitment, Scalar},
    interface::{ProvidesBlockchain, ProvidesDecoys, ProvidesOutputs, ProvidesScannableBlocks, PublishTransaction},
    ringct::{RctProofs, RctPrunable},
    transaction::Input,
    WalletOutput,
};

const AMOUNT: u64 = 1_234_567_890;

/// A chain with a short coinbase lock and a depositor owning `blocks` coinbase outputs.
fn funded(seed: u64, blocks: usize) -> (MockMonero, Depositor) {
    let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 10, ..MoneroConfig::default() });
    let depositor = Depositor::new(seed ^ 0xd0d0);
    for _ in 0..blocks {
        chain.mine_to(&depositor.address());
    }
    (chain, depositor)
}

fn scan(keys: &WalletKeys, chain: &MockMonero, height: usize) -> Vec<WalletOutput> {
    let mut scanner = Scanner::new(keys.view_pair());
    scanner.scan(chain.scannable_block_at(height).expect("block exists")).expect("scans").not_additionally_locked()
}

fn proofs_mut(tx: &mut Transaction) -> &mut RctProofs {
    match tx {
        Transaction::V2 { proofs: Some(proofs), .. } => proofs,
        _ => panic!("deposits are RingCT"),
    }
}

fn fee(tx: &Transaction) -> u64 {
    match tx {
        Transaction::V2 { proofs: Some(proofs), .. } => proofs.base.fee,
        _ => panic!("deposits are RingCT"),
    }
}

fn key_images(tx: &Transaction) -> Vec<[u8; 32]> {
    tx.prefix()
        .inputs
        .iter()
        .map(|i| match i {
            Input::ToKey { key_image, .. } => key_image.to_bytes(),
            Input::Gen(_) => panic!("not a miner transaction"),
        })
        .collect()
}

#[test]
fn deposit_is_accepted_mined_and_scanned_by_the_recipient() {
    // Default config: monerod's 60-block coinbase lock.
    let mut chain = MockMonero::new(1);
    let mut depositor = Depositor::new(2);
    let group = WalletKeys::from_seed(3);
    for _ in 0..COINBASE_LOCK - 1 {
        chain.mine_to(&depositor.address());
    }
    // Block 1's coinbase unlocks for block 61, i.e. once the tip is 60.
    assert_eq!(chain.tip_height(), 59);
    assert!(matches!(
        depositor.deposit(&chain, &group.address(), AMOUNT, None),
        Err(DepositError::InsufficientFunds { available: 0, .. })
    ));
    chain.mine();
    assert_eq!(depositor.balance(&chain).unwrap(), chain.config().block_reward);

    let instruction = b"serai in-instruction: swap to ETH 0xabcdef".to_vec();
    let tx = depositor.deposit(&chain, &group.address(), AMOUNT, Some(&instruction)).unwrap();
    let hash = chain.submit(tx.clone()).unwrap();
    assert_eq!(hash, tx.hash());
    assert_eq!(chain.mempool_hashes(), vec![hash]);
    for ki in key_images(&tx) {
        assert_eq!(chain.key_image_status(&ki), Some(KeyImageStatus::Mempool { transaction: hash }));
    }
    chain.mine();
    let height = chain.tip_height();
    assert_eq!(chain.tx_height(&hash), Some(height));
    assert!(chain.mempool().is_empty());
    for ki in key_images(&tx) {
        assert_eq!(chain.key_image_status(&ki), Some(KeyImageStatus::OnChain { height }));
    }
    // The block lists it, the miner collected its fee.
    assert_eq!(chain.block(height).unwrap().transactions, vec![hash]);
    assert_eq!(chain.transactions(height)[1], tx);
    let miner_amount = chain.transactions(height)[0].prefix().outputs[0].amount;
    assert_eq!(miner_amount, Some(chain.config().block_reward + fee(&tx)));

    let found = scan(&group, &chain, height);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].transaction(), hash);
    assert_eq!(found[0].commitment().amount, AMOUNT);
    assert_eq!(found[0].arbitrary_data(), &[instruction]);
    // The scanner's global index is the chain's.
    let indexes = chain.tx_output_indexes(&hash).unwrap();
    assert!(indexes.contains(&found[0].index_on_blockchain()));
    let on_chain = chain.output(found[0].index_on_blockchain()).unwrap();
    assert_eq!(on_chain.key, found[0].key().compress());
    assert_eq!(on_chain.commitment, found[0].commitment().commit());

    // The change came back to the depositor: reward - amount - fee.
    depositor.sync(&chain).unwrap();
    let change: Vec<_> = depositor.outputs().into_iter().filter(|o| o.transaction() == hash).collect();
    assert_eq!(change.len(), 1);
    assert_eq!(change[0].commitment().amount, chain.config().block_reward - AMOUNT - fee(&tx));
}

#[test]
fn deposits_without_instruction_and_back_to_back() {
    let (mut chain, mut depositor) = funded(10, 14);
    let group = WalletKeys::from_seed(11);

    // Three deposits built before any is submitted: the depositor reserves their inputs.
    let plain = depositor.deposit(&chain, &group.address(), AMOUNT, None).unwrap();
    let longest = vec![0xa5; MAX_INSTRUCTION_LEN];
    let long = depositor.deposit(&chain, &group.address(), AMOUNT + 1, Some(&longest)).unwrap();
    let empty = depositor.deposit(&chain, &group.address(), AMOUNT + 2, Some(&[])).unwrap();
    assert!(matches!(
        depositor.deposit(&chain, &group.address(), AMOUNT, Some(&[0; MAX_INSTRUCTION_LEN + 1])),
        Err(DepositError::InstructionTooLong { len: 255, max: MAX_INSTRUCTION_LEN })
    ));
    let mut all_key_images = [&plain, &long, &empty].map(key_images).concat();
    all_key_images.sort();
    all_key_images.dedup();
    assert_eq!(all_key_images.len(), 3, "each deposit spends its own output");

    let hashes: Vec<_> = [&plain, &long, &empty].into_iter().map(|tx| chain.submit(tx.clone()).unwrap()).collect();
    chain.mine();
    let height = chain.tip_height();
    // Mined in submission order.
    assert_eq!(chain.block(height).unwrap().transactions, hashes);

    let found = scan(&group, &chain, height);
    let by_amount = |amount| found.iter().find(|o| o.commitment().amount == amount).expect("found");
    assert_eq!(found.len(), 3);
    assert!(by_amount(AMOUNT).arbitrary_data().is_empty());
    assert_eq!(by_amount(AMOUNT + 1).arbitrary_data(), &[longest]);
    assert_eq!(by_amount(AMOUNT + 2).arbitrary_data(), &[Vec::<u8>::new()]);

    // A deposit to the group's (spend key, view key) pair, as the processor derives them.
    let address =
        address_from_keys(group.spend_public().compress().to_bytes(), group.view_public().compress().to_bytes())
            .unwrap();
    assert_eq!(address, group.address());
    assert!(address_from_keys([0xff; 32], group.view_public().compress().to_bytes()).is_err());

    // A deposit needing two inputs (rewards are 0.6 XMR each).
    let big = chain.config().block_reward + AMOUNT;
    let two_inputs = depositor.deposit(&chain, &address, big, Some(b"two")).unwrap();
    assert_eq!(two_inputs.prefix().inputs.len(), 2);
    chain.submit(two_inputs).unwrap();
    chain.mine();
    let found = scan(&group, &chain, chain.tip_height());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].commitment().amount, big);
    assert_eq!(found[0].arbitrary_data(), &[b"two".to_vec()]);
}

/// Asserts `tampered` is rejected with `expected`, while the untampered `tx` passes the same
/// chain, so the rejection is down to the tampering.
fn assert_rejected(chain: &MockMonero, tx: &Transaction, tampered: Transaction, expected: TxRejected) {
    assert_eq!(chain.check_transaction(tx), Ok(tx.hash()));
    assert_eq!(chain.clone().submit(tampered), Err(expected));
}

#[test]
fn double_spends_are_rejected_in_the_mempool_and_against_the_chain() {
    let (mut chain, mut depositor) = funded(20, 12);
    let group = WalletKeys::from_seed(21);
    let first = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"first")).unwrap();
    // Build a second, fully valid transaction spending the same output.
    depositor.forget_pending();
    let second = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"second")).unwrap();
    assert_ne!(first.hash(), second.hash());
    assert_eq!(key_images(&first), key_images(&second));
    assert_eq!(chain.clone().submit(second.clone()), Ok(second.hash()), "valid on its own");

    chain.submit(first.clone()).unwrap();
    assert_eq!(chain.submit(first.clone()), Err(TxRejected::AlreadyInMempool));
    assert_eq!(chain.submit(second.clone()), Err(TxRejected::KeyImageInMempool { input: 0 }));
    assert_eq!(chain.mempool_hashes(), vec![first.hash()]);

    chain.mine();
    let height = chain.tip_height();
    assert_eq!(chain.submit(first.clone()), Err(TxRejected::AlreadyOnChain { height }));
    assert_eq!(chain.submit(second), Err(TxRejected::KeyImageSpent { input: 0, height }));
    // PublishTransaction goes through the same checks.
    assert!(block_on(chain.publish_transaction(&first)).unwrap().is_err());
}

#[test]
fn invalid_transactions_are_rejected() {
    let (mut chain, mut depositor) = funded(30, 14);
    let group = WalletKeys::from_seed(31);
    let tx = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"instruction")).unwrap();
    let other = depositor.deposit(&chain, &group.address(), AMOUNT, None).unwrap();
    let offsets = |tx: &Transaction| match &tx.prefix().inputs[0] {
        Input::ToKey { key_offsets, .. } => key_offsets.clone(),
        Input::Gen(_) => unreachable!(),
    };
    let set_offsets = |tx: &mut Transaction, new: Vec<u64>| match &mut tx.prefix_mut().inputs[0] {
        Input::ToKey { key_offsets, .. } => *key_offsets = new,
        Input::Gen(_) => unreachable!(),
    };
    let positions: Vec<u64> = offsets(&tx)
        .iter()
        .scan(0, |acc, o| {
            *acc += o;
            Some(*acc)
        })
        .collect();
    let second_last = positions[positions.len() - 2];

    // A ring member that does not exist.
    let mut unknown = tx.clone();
    let mut new = offsets(&tx);
    *new.last_mut().unwrap() = chain.output_count() + 5 - second_last;
    set_offsets(&mut unknown, new);
    assert_rejected(&chain, &tx, unknown, TxRejected::RingMemberUnknown { input: 0, index: chain.output_count() + 5 });

    // A ring member still locked: the tip's coinbase output.
    let mut locked = tx.clone();
    let mut new = offsets(&tx);
    *new.last_mut().unwrap() = chain.output_count() - 1 - second_last;
    set_offsets(&mut locked, new);
    assert_rejected(&chain, &tx, locked, TxRejected::RingMemberLocked { input: 0, index: chain.output_count() - 1 });

    // A ring of 15.
    let mut short = tx.clone();
    let mut new = offsets(&tx);
    new.pop();
    set_offsets(&mut short, new);
    assert_rejected(&chain, &tx, short, TxRejected::RingSize { input: 0, len: 15 });

    // A tampered CLSAG response.
    let mut bad_clsag = tx.clone();
    if let RctPrunable::Clsag { clsags, .. } = &mut proofs_mut(&mut bad_clsag).prunable {
        clsags[0].s[3] = Scalar::hash(b"tampered");
    }
    assert!(matches!(chain.clone().submit(bad_clsag), Err(TxRejected::InvalidSignature { input: 0, .. })));

    // A tampered instruction: balanced, range proof intact, but the signed message changed.
    let mut bad_extra = tx.clone();
    *bad_extra.prefix_mut().extra.last_mut().unwrap() ^= 1;
    assert!(matches!(chain.clone().submit(bad_extra), Err(TxRejected::InvalidSignature { input: 0, .. })));

    // A tampered output commitment.
    let mut bad_commitment = tx.clone();
    proofs_mut(&mut bad_commitment).base.commitments[0] = Commitment::new(Scalar::ONE, 5).commit().compress();
    assert_rejected(&chain, &tx, bad_commitment, TxRejected::Unbalanced);

    // A fee that no longer balances (still above the minimum).
    let mut bad_fee = tx.clone();
    proofs_mut(&mut bad_fee).base.fee += 1;
    assert_rejected(&chain, &tx, bad_fee, TxRejected::Unbalanced);

    // Another transaction's Bulletproof+: balanced, but the range proof is for other commitments.
    let mut bad_range = tx.clone();
    let foreign = match &proofs_mut(&mut other.clone()).prunable {
        RctPrunable::Clsag { bulletproof, .. } => bulletproof.clone(),
        _ => unreachable!(),
    };
    if let RctPrunable::Clsag { bulletproof, .. } = &mut proofs_mut(&mut bad_range).prunable {
        *bulletproof = foreign;
    }
    assert_rejected(&chain, &tx, bad_range, TxRejected::InvalidRangeProof);

    // Inputs out of key-image order.
    let two_inputs = depositor.deposit(&chain, &group.address(), chain.config().block_reward + AMOUNT, None).unwrap();
    let mut unsorted = two_inputs.clone();
    unsorted.prefix_mut().inputs.swap(0, 1);
    assert_rejected(&chain, &two_inputs, unsorted, TxRejected::KeyImagesUnsorted);

    // A miner transaction.
    let miner = chain.transactions(chain.tip_height())[0].clone();
    assert_eq!(chain.check_transaction(&miner), Err(TxRejected::AlreadyOnChain { height: chain.tip_height() }));
    let mut fresh_miner = miner;
    fresh_miner.prefix_mut().inputs[0] = Input::Gen(1_000);
    assert_eq!(chain.check_transaction(&fresh_miner), Err(TxRejected::MinerTransaction));

    // The untampered ones still go through.
    chain.submit(tx).unwrap();
    chain.submit(other).unwrap();
    chain.submit(two_inputs).unwrap();
}

#[test]
fn interface_traits_serve_monero_wallet() {
    let (mut chain, mut depositor) = funded(40, 12);
    let group = WalletKeys::from_seed(41);
    let tx = depositor.deposit(&chain, &group.address(), AMOUNT, None).unwrap();
    // Publishing goes through the same validation as submit.
    block_on(chain.publish_transaction(&tx)).unwrap().unwrap();
    assert_eq!(chain.mempool_hashes(), vec![tx.hash()]);
    chain.mine();
    let tip = chain.tip_height();

    // monero-interface's validated views re-check hashes, numbers and linking.
    let blocks = block_on(ProvidesBlockchain::contiguous_blocks(&chain, 0..=tip)).unwrap().unwrap();
    assert_eq!(blocks.len(), tip + 1);
    let by_hash = block_on(ProvidesBlockchain::block(&chain, chain.tip_hash())).unwrap().unwrap();
    assert_eq!(&by_hash, chain.block(tip).unwrap());
    let scannable = block_on(chain.scannable_block_by_number(tip)).unwrap().unwrap();
    assert_eq!(Some(scannable), chain.scannable_block_at(tip));

    let distribution = block_on(chain.ringct_output_distribution(..=tip)).unwrap().unwrap();
    assert_eq!(distribution.len(), tip + 1);
    assert_eq!(*distribution.last().unwrap(), chain.output_count());
    assert_eq!(distribution[0], chain.config().decoy_premine as u64);

    let indexes = block_on(ProvidesOutputs::output_indexes(&chain, tx.hash())).unwrap().unwrap();
    assert_eq!(indexes.len(), 2);
    let outputs = block_on(chain.ringct_outputs(&indexes)).unwrap().unwrap();
    for (info, output) in outputs.iter().zip(&tx.prefix().outputs) {
        assert_eq!(info.key, output.key);
        assert_eq!(info.block_number, tip);
        assert!(!info.unlocked, "10-block lock");
    }
    let unlocked =
        block_on(chain.unlocked_ringct_outputs(&indexes, monero_wallet::interface::EvaluateUnlocked::Normal))
            .unwrap()
            .unwrap();
    assert_eq!(unlocked, vec![None, None]);
    for _ in 0..9 {
        chain.mine();
    }
    let unlocked =
        block_on(chain.unlocked_ringct_outputs(&indexes, monero_wallet::interface::EvaluateUnlocked::Normal))
            .unwrap()
            .unwrap();
    assert!(unlocked.iter().all(Option::is_some));
    assert!(block_on(chain.ringct_outputs(&[chain.output_count()])).unwrap().is_err());
}

fn scenario(seed: u64) -> (Vec<[u8; 32]>, Vec<Vec<u8>>) {
    let (mut chain, mut depositor) = funded(seed, 12);
    let group = WalletKeys::from_seed(seed + 1);
    let tx = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"determinism")).unwrap();
    chain.submit(tx).unwrap();
    chain.set_reorg_rate(500, 3);
    for _ in 0..6 {
        chain.mine();
    }
    let hashes = (0..=chain.tip_height()).map(|h| chain.block_hash(h).unwrap()).collect();
    let blobs = (0..=chain.tip_height()).flat_map(|h| chain.transactions(h)).map(|tx| tx.serialize()).collect();
    (hashes, blobs)
}

#[test]
fn same_seed_same_chain() {
    let a = scenario(50);
    assert_eq!(a, scenario(50));
    let b = scenario(51);
    assert_ne!(a.0[0], b.0[0], "the seed shapes genesis");
    assert_ne!(a.0.last(), b.0.last());
}

/// Monero's burning bug, as a hostile depositor stages it: two hand-built deposits with one
/// transaction key pay the group the same one-time key; the chain accepts both (only the key
/// image, at spending time, tells them apart), the group's scanner finds both with one key, and
/// the depositor still finds its own change of each.
#[test]
fn deposits_reusing_a_transaction_key_pay_one_one_time_key_twice() {
    let (mut chain, mut depositor) = funded(40, 14);
    let group = WalletKeys::from_seed(41);
    let tx_key = Scalar::hash(b"a reused transaction key");
    let first = depositor.deposit_with_key(&chain, &[(group.address(), AMOUNT)], Some(b"first"), tx_key).unwrap();
    // The twin pays the group twice: output 0 repeats the first deposit's key, output 1 is new
    // (its index held the first deposit's change, to another address).
    let payments = [(group.address(), AMOUNT + 1), (group.address(), AMOUNT + 2)];
    let twin = depositor.deposit_with_key(&chain, &payments, None, tx_key).unwrap();
    assert_eq!(first.prefix().outputs[0].key, twin.prefix().outputs[0].key);
    assert_eq!(first.prefix().extra[..33], twin.prefix().extra[..33], "one transaction key");
    chain.submit(first.clone()).unwrap();
    chain.submit(twin.clone()).unwrap();
    chain.mine();

    let found = scan(&group, &chain, chain.tip_height());
    assert_eq!(found.len(), 3);
    assert_eq!(found[0].key(), found[1].key(), "the burning bug: one key, two outputs");
    assert_ne!(found[1].key(), found[2].key());
    let amounts: Vec<u64> = found.iter().map(|o| o.commitment().amount).collect();
    assert_eq!(amounts, vec![AMOUNT, AMOUNT + 1, AMOUNT + 2]);
    assert_eq!(found[0].arbitrary_data(), &[b"first".to_vec()]);
    assert!(found[1].arbitrary_data().is_empty());

    // Both changes came back, under distinct keys, and are spendable once unlocked.
    depositor.sync(&chain).unwrap();
    let changes: Vec<_> = depositor
        .outputs()
        .into_iter()
        .filter(|o| o.transaction() == first.hash() || o.transaction() == twin.hash())
        .collect();
    assert_eq!(changes.len(), 2);
    assert_ne!(changes[0].key(), changes[1].key());
    for _ in 0..10 {
        chain.mine();
    }
    let spend_all = depositor.balance(&chain).unwrap() - 10_000_000_000;
    let sweep = depositor.deposit(&chain, &group.address(), spend_all, None).unwrap();
    chain.submit(sweep).unwrap();
}

#[test]
fn one_deposit_pays_up_to_fifteen_outputs() {
    let (mut chain, mut depositor) = funded(42, 14);
    let group = WalletKeys::from_seed(43);
    let payments: Vec<_> = (0..MAX_PAYMENTS as u64).map(|i| (group.address(), AMOUNT + i)).collect();
    let tx = depositor.deposit_many(&chain, &payments, Some(b"many")).unwrap();
    assert_eq!(tx.prefix().outputs.len(), MAX_PAYMENTS + 1);
    chain.submit(tx).unwrap();
    chain.mine();
    let found = scan(&group, &chain, chain.tip_height());
    assert_eq!(found.len(), MAX_PAYMENTS);
    assert!(found.iter().all(|o| o.arbitrary_data() == [b"many".to_vec()]));
    let too_many: Vec<_> = (0..=MAX_PAYMENTS as u64).map(|i| (group.address(), AMOUNT + i)).collect();
    assert!(matches!(depositor.deposit_many(&chain, &too_many, None), Err(DepositError::Payments { .. })));
    let hand_built = depositor.deposit_with_key(&chain, &payments, None, Scalar::hash(b"fifteen")).unwrap();
    chain.submit(hand_built).unwrap();
}

/// Anyone who knows a wallet's private view key (the group's is public by design) can twin any
/// output paid to it, without the sender's transaction key: from a transaction in the mempool,
/// the copied transaction key gives the same shared secret, so the twin pays the same one-time
/// key under an amount of the twin's choosing.
#[test]
fn anyone_knowing_the_view_key_can_twin_an_output() {
    let (mut chain, mut depositor) = funded(46, 14);
    let mut attacker = Depositor::new(47);
    for _ in 0..4 {
        chain.mine_to(&attacker.address());
    }
    for _ in 0..10 {
        chain.mine();
    }
    let group = WalletKeys::from_seed(48);
    let original = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"victim")).unwrap();
    chain.submit(original.clone()).unwrap();
    // The group's output in the original (monero-wallet shuffles it among the outputs).
    let index = (0..original.prefix().outputs.len())
        .find(|o| {
            let mut probe = chain.clone();
            probe.mine();
            scan(&group, &probe, probe.tip_height()).iter().any(|found| found.index_in_transaction() == *o as u64)
        })
        .unwrap();
    let twin = attacker.twin_of(&chain, &original, index, group.view(), 1).unwrap();
    assert_eq!(twin.prefix().outputs[index].key, original.prefix().outputs[index].key);
    chain.submit(twin.clone()).unwrap();
    chain.mine();
    let found = scan(&group, &chain, chain.tip_height());
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].key(), found[1].key(), "one one-time key, two outputs");
    let by_transaction = |hash: [u8; 32]| found.iter().find(|o| o.transaction() == hash).unwrap().commitment().amount;
    assert_eq!(by_transaction(original.hash()), AMOUNT);
    assert_eq!(by_transaction(twin.hash()), 1, "the twin's amount is its own");
    // The attacker finds its change under its own transaction key.
    attacker.sync(&chain).unwrap();
    assert!(attacker.outputs().iter().any(|o| o.transaction() == twin.hash() && o.commitment().amount > 0));
}

/// A depositor with stand-in range proofs builds real deposits by hand (one-time keys, view
/// tags, amounts, rings and CLSAGs), to a standard address and to a subaddress, with one
/// Bulletproof+ per output count reused: the first verifies anywhere, a reused one only through
/// `submit_with_stand_in_range_proof`, and stays accepted across a reorganisation.
#[test]
fn stand_in_range_proofs_are_taken_as_verified_only_where_declared() {
    let (mut chain, depositor) = funded(50, 14);
    let mut depositor = depositor.with_stand_in_range_proofs();
    assert!(depositor.has_stand_in_range_proofs());
    let group = WalletKeys::from_seed(51);
    let index = monero_wallet::address::SubaddressIndex::new(0, 1).unwrap();
    let subaddress = group.view_pair().subaddress(monero_wallet::address::Network::Mainnet, index);
    let mut scanner = Scanner::new(group.view_pair());
    scanner.register_subaddress(index);

    let first = depositor.deposit(&chain, &group.address(), AMOUNT, Some(b"first")).unwrap();
    chain.submit(first.clone()).unwrap();
    let reused = depositor.deposit(&chain, &subaddress, AMOUNT + 1, Some(b"second")).unwrap();
    assert_eq!(chain.check_transaction(&reused), Err(TxRejected::InvalidRangeProof));
    chain.submit_with_stand_in_range_proof(reused.clone()).unwrap();
    chain.mine();

    let found = scanner.scan(chain.scannable_block_at(chain.tip_height()).unwrap()).unwrap().not_additionally_locked();
    let paid = |hash: [u8; 32]| found.iter().find(|o| o.transaction() == hash).unwrap();
    assert_eq!(paid(first.hash()).commitment().amount, AMOUNT);
    assert_eq!(paid(first.hash()).subaddress(), None);
    assert_eq!(paid(reused.hash()).commitment().amount, AMOUNT + 1);
    assert_eq!(paid(reused.hash()).subaddress(), Some(index));
    assert_eq!(paid(reused.hash()).arbitrary_data(), &[b"second".to_vec()]);
    // The change of both comes back to the depositor, under `aR` for the subaddress payment.
    depositor.sync(&chain).unwrap();
    for tx in [&first, &reused] {
        assert!(depositor.outputs().iter().any(|o| o.transaction() == tx.hash() && o.commitment().amount > 0));
    }

    // Re-queued by a reorganisation, the reused proof is still taken as verified.
    let outcome = chain.reorg(1).unwrap();
    assert!(outcome.requeued.contains(&reused.hash()), "{outcome:?}");
    // Tampering with anything else is still refused: here the ring signatures.
    let mut forged = depositor.deposit(&chain, &group.address(), AMOUNT, None).unwrap();
    if let RctPrunable::Clsag { clsags, .. } = &mut proofs_mut(&mut forged).prunable {
        clsags[0].s[3] = Scalar::hash(b"tampered");
    }
    assert!(matches!(chain.submit_with_stand_in_range_proof(forged), Err(TxRejected::InvalidSignature { .. })));
}
