//! Mock Bitcoin: block structure, deposits, mempool validation and determinism.

use bitcoin::hashes::Hash;
use bitcoin::key::TapTweak;
use bitcoin::pow::Target;
use bitcoin::script::Instruction;
use bitcoin::secp256k1::{Keypair, Message, Secp256k1};
use bitcoin::sighash::TapSighashType;
use bitcoin::{absolute, Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxOut, Txid, Witness};
use mock_chains::bitcoin::{
    block_subsidy, key_spend_sighash, op_return_payload, p2tr_script, sign_key_spend, spend_key_path,
    unsigned_transaction, DepositError, Depositor, MockBitcoin, TxRejected, COINBASE_TAG, DEFAULT_COINBASE_MATURITY,
    GENESIS_TIME, REGTEST_BITS,
};

const AUX: [u8; 32] = [7; 32];

fn key(byte: u8) -> Keypair {
    Keypair::from_seckey_slice(&Secp256k1::new(), &[byte; 32]).expect("valid scalar")
}

fn group() -> (Keypair, ScriptBuf) {
    let keypair = key(0x42);
    let script = p2tr_script(keypair.x_only_public_key().0);
    (keypair, script)
}

/// Every best-chain block is linked, valid proof of work at regtest difficulty, with correct
/// merkle root and witness commitment, the BIP34 height first in the coinbase, and a timestamp
/// following the height.
fn assert_well_formed(chain: &MockBitcoin) {
    let target = Target::from_compact(bitcoin::CompactTarget::from_consensus(REGTEST_BITS));
    for height in 0..=chain.tip_height() {
        let block = chain.block(height).expect("best chain block");
        let hash = chain.block_hash(height).expect("hash");
        assert_eq!(block.block_hash(), hash);
        assert_eq!(block.header.validate_pow(target).expect("proof of work"), hash);
        assert!(block.check_merkle_root(), "merkle root at {height}");
        assert!(block.check_witness_commitment(), "witness commitment at {height}");
        assert_eq!(block.header.time, GENESIS_TIME + 600 * height as u32);
        if height > 0 {
            assert_eq!(block.header.prev_blockhash, chain.block_hash(height - 1).unwrap());
        }
        let coinbase = &block.txdata[0];
        assert!(coinbase.is_coinbase());
        assert!(block.txdata[1..].iter().all(|tx| !tx.is_coinbase()));
        // Bitcoin Core writes heights 1..=16 as OP_1..OP_16, which `bip34_block_height` does not
        // read, so compare against the encoding directly.
        let expected = bitcoin::script::Builder::new().push_int(height as i64).into_script();
        let script_sig = coinbase.input[0].script_sig.as_bytes();
        assert!(script_sig.starts_with(expected.as_bytes()), "BIP34 height at {height}");
        if height > 16 {
            assert_eq!(block.bip34_block_height().expect("BIP34"), height);
        }
        let pushes: Vec<_> = coinbase.input[0].script_sig.instructions().collect();
        assert!(pushes.iter().any(|push| matches!(
            push,
            Ok(Instruction::PushBytes(bytes)) if bytes.as_bytes() == COINBASE_TAG
        )));
        // Round trip through the consensus encoding.
        let bytes = chain.block_bytes(height).expect("bytes");
        assert_eq!(&mock_chains::bitcoin::parse_block(&bytes).expect("parses"), block);
    }
}

/// A chain where `group` owns a mature coinbase (maturity lowered to 10).
fn funded_group(seed: u64) -> (MockBitcoin, Keypair, ScriptBuf, OutPoint, TxOut) {
    let (keypair, script) = group();
    let mut chain = MockBitcoin::new(seed);
    chain.set_coinbase_maturity(10);
    chain.mine_to(&script);
    let coinbase = &chain.block(1).unwrap().txdata[0];
    let outpoint = OutPoint::new(coinbase.compute_txid(), 0);
    let txout = coinbase.output[0].clone();
    chain.mine_blocks(10);
    (chain, keypair, script, outpoint, txout)
}

fn pay(value: Amount) -> Vec<TxOut> {
    vec![TxOut { value, script_pubkey: p2tr_script(key(9).x_only_public_key().0) }]
}

#[test]
fn genesis_and_mining_are_well_formed() {
    let mut chain = MockBitcoin::new(3);
    assert_eq!(chain.tip_height(), 0);
    assert_eq!(chain.coinbase_maturity(), DEFAULT_COINBASE_MATURITY);
    let genesis = chain.block(0).expect("genesis");
    assert_eq!(genesis.header.prev_blockhash, bitcoin::BlockHash::all_zeros());
    let hashes = chain.mine_blocks(20);
    assert_eq!(chain.tip_height(), 20);
    assert_eq!(chain.tip_hash(), hashes[19]);
    assert_eq!(chain.block_hash(21), None);
    assert!(chain.block(21).is_none());
    assert_eq!(chain.block_bytes(u64::MAX), None);
    assert_well_formed(&chain);
    // Coinbase txids differ block to block, and each pays the subsidy to the miner script.
    let mut txids: Vec<Txid> = (0..=20).map(|h| chain.block(h).unwrap().txdata[0].compute_txid()).collect();
    txids.sort();
    txids.dedup();
    assert_eq!(txids.len(), 21);
    let miner = chain.miner_script().to_owned();
    for height in 0..=20 {
        let coinbase = &chain.block(height).unwrap().txdata[0];
        assert_eq!(coinbase.output[0].value, block_subsidy(height));
        assert_eq!(coinbase.output[0].script_pubkey, miner);
        let outpoint = OutPoint::new(coinbase.compute_txid(), 0);
        assert_eq!(chain.utxo(&outpoint), Some(coinbase.output[0].clone()));
        // The witness commitment output is OP_RETURN, never in the UTXO set.
        assert!(coinbase.output[1].script_pubkey.is_op_return());
        assert_eq!(chain.utxo(&OutPoint::new(coinbase.compute_txid(), 1)), None);
    }
    assert_eq!(chain.utxos().len(), 21);
}

#[test]
fn subsidy_halves() {
    assert_eq!(block_subsidy(0), Amount::from_btc(50.0).unwrap());
    assert_eq!(block_subsidy(149), Amount::from_btc(50.0).unwrap());
    assert_eq!(block_subsidy(150), Amount::from_btc(25.0).unwrap());
    assert_eq!(block_subsidy(150 * 64), Amount::ZERO);
}

#[test]
fn fee_rate_is_deterministic_and_varies() {
    let mut a = MockBitcoin::new(5);
    let mut b = MockBitcoin::new(5);
    let mut rates = Vec::new();
    for _ in 0..30 {
        assert_eq!(a.fee_rate_sat_per_vb(), b.fee_rate_sat_per_vb());
        let rate = a.fee_rate_sat_per_vb();
        assert!((1..=20).contains(&rate));
        rates.push(rate);
        a.mine();
        b.mine();
    }
    rates.sort();
    rates.dedup();
    assert!(rates.len() > 3, "fee rate should vary with height: {rates:?}");
}

#[test]
fn deposits_with_and_without_instructions() {
    let (_, group_script) = group();
    let mut chain = MockBitcoin::new(11);
    let mut depositor = Depositor::new(1);
    assert_eq!(depositor.script_pubkey(), p2tr_script(depositor.internal_key()).as_script());

    // Three coinbases to the depositor, then enough blocks for them to mature.
    for _ in 0..3 {
        chain.mine_to(depositor.script_pubkey());
    }
    assert_eq!(depositor.balance(&chain), Amount::ZERO, "coinbases are immature");
    assert!(matches!(
        depositor.deposit(&chain, &group_script, Amount::from_sat(1000), None),
        Err(DepositError::InsufficientFunds { .. })
    ));
    chain.mine_blocks(DEFAULT_COINBASE_MATURITY as usize);
    let funded = depositor.balance(&chain);
    assert_eq!(funded, Amount::from_btc(150.0).unwrap());

    let too_long = [1u8; 81];
    assert!(matches!(
        depositor.deposit(&chain, &group_script, Amount::from_sat(1000), Some(&too_long)),
        Err(DepositError::InstructionTooLong { len: 81 })
    ));
    assert!(matches!(
        depositor.deposit(&chain, &ScriptBuf::new_op_return([1u8; 4]), Amount::ONE_BTC, None),
        Err(DepositError::DestinationNotTaproot)
    ));
    assert!(matches!(
        depositor.deposit(&chain, &group_script, Amount::from_btc(150.0).unwrap(), None),
        Err(DepositError::InsufficientFunds { available, .. }) if available == funded
    ));
    // A built deposit locks its inputs (one 50 BTC coinbase) until submitted or released.
    let unsent = depositor.deposit(&chain, &group_script, Amount::ONE_BTC, None).unwrap();
    assert_eq!(unsent.input.len(), 1);
    assert_eq!(depositor.balance(&chain), funded - Amount::from_btc(50.0).unwrap());
    depositor.release(&unsent);
    assert_eq!(depositor.balance(&chain), funded);

    let max = [0xabu8; 80];
    let cases: Vec<(Amount, Option<&[u8]>)> = vec![
        (Amount::from_btc(1.5).unwrap(), Some(b"swap to ETH, address 0x1234")),
        (Amount::from_sat(50_000), None),
        (Amount::from_sat(12_345), Some(&max)),
        (Amount::from_btc(60.0).unwrap(), Some(&[])),
        (Amount::from_sat(777), Some(&[5])),
    ];
    let rate = chain.fee_rate_sat_per_vb();
    let mut deposits = Vec::new();
    // Build two before submitting either (locked inputs keep them disjoint), the rest one by one
    // (spending mempool change).
    let first = depositor.deposit(&chain, &group_script, cases[0].0, cases[0].1).unwrap();
    let second = depositor.deposit(&chain, &group_script, cases[1].0, cases[1].1).unwrap();
    for tx in [first, second] {
        let fee = fee_of(&chain, &tx);
        chain.submit(tx.clone()).expect("valid deposit");
        deposits.push((tx, fee));
    }
    for (amount, instruction) in &cases[2..] {
        let tx = depositor.deposit(&chain, &group_script, *amount, *instruction).unwrap();
        let fee = fee_of(&chain, &tx);
        chain.submit(tx.clone()).expect("valid deposit");
        deposits.push((tx, fee));
    }
    assert_eq!(chain.mempool().len(), cases.len());
    let height = chain.tip_height() + 1;
    chain.mine();
    let block = chain.block(height).unwrap();
    assert_eq!(block.txdata.len(), 1 + cases.len());

    let mut total_fees = Amount::ZERO;
    let mut total_sent = Amount::ZERO;
    for ((tx, fee), ((amount, instruction), in_block)) in deposits.iter().zip(cases.iter().zip(&block.txdata[1..])) {
        assert_eq!(tx, in_block, "submission order is block order");
        assert_eq!(chain.confirmation_height(&tx.compute_txid()), Some(height));
        assert_eq!(tx.output[0].value, *amount);
        assert_eq!(tx.output[0].script_pubkey, group_script);
        assert_eq!(
            chain.utxo(&OutPoint::new(tx.compute_txid(), 0)),
            Some(TxOut { value: *amount, script_pubkey: group_script.clone() })
        );
        let payload = tx.output.iter().find_map(|out| op_return_payload(&out.script_pubkey));
        assert_eq!(payload, *instruction);
        if let Some(instruction) = instruction {
            assert_eq!(tx.output[1].value, Amount::ZERO);
            assert_eq!(op_return_payload(&tx.output[1].script_pubkey), Some(*instruction));
        }
        let change = tx.output.last().unwrap();
        assert_eq!(change.script_pubkey.as_script(), depositor.script_pubkey());
        // Fee is exactly the rate times the virtual size (64-byte signatures).
        assert_eq!(*fee, Amount::from_sat(tx.vsize() as u64 * rate));
        total_fees += *fee;
        total_sent += *amount;
    }
    assert_eq!(block.txdata[0].output[0].value, block_subsidy(height) + total_fees);
    assert_eq!(depositor.balance(&chain), funded - total_sent - total_fees);
    assert_well_formed(&chain);
}

/// Inputs minus outputs, the inputs looked up in the chain (mempool or confirmed).
fn fee_of(chain: &MockBitcoin, tx: &Transaction) -> Amount {
    let inputs: Amount = tx
        .input
        .iter()
        .map(|input| {
            let prev = chain.transaction(&input.previous_output.txid).expect("parent known");
            prev.output[input.previous_output.vout as usize].value
        })
        .sum();
    let outputs: Amount = tx.output.iter().map(|out| out.value).sum();
    inputs - outputs
}

#[test]
fn valid_key_path_spends_are_accepted() {
    let (mut chain, keypair, _, outpoint, txout) = funded_group(1);
    // SIGHASH_DEFAULT via the helper.
    let value = txout.value - Amount::from_sat(1_000);
    let tx = spend_key_path(&[(outpoint, txout.clone())], pay(value), &keypair, &AUX).unwrap();
    assert_eq!(tx.input[0].witness.nth(0).unwrap().len(), 64);
    let txid = chain.submit(tx.clone()).expect("valid");
    assert_eq!(txid, tx.compute_txid());
    assert_eq!(chain.mempool().next(), Some(&tx));
    assert_eq!(chain.transaction(&txid), Some(&tx));
    // Its output can be spent in the mempool with an explicit SIGHASH_ALL (65-byte) signature.
    let spend_out = TxOut { value, script_pubkey: tx.output[0].script_pubkey.clone() };
    let mut child = unsigned_transaction(&[OutPoint::new(txid, 0)], pay(value - Amount::from_sat(1_000)));
    sign_key_spend(&mut child, 0, &[spend_out], &key(9), TapSighashType::All, &AUX).unwrap();
    assert_eq!(child.input[0].witness.nth(0).unwrap().len(), 65);
    chain.submit(child.clone()).expect("valid child");
    chain.mine();
    assert_eq!(chain.block(chain.tip_height()).unwrap().txdata[1..], [tx, child]);
}

#[test]
fn rejects_wrong_key_and_tweak_confusion() {
    let (mut chain, keypair, _, outpoint, txout) = funded_group(2);
    // Consensus rules, probed with transactions relay policy would refuse first.
    chain.set_relay_policy(false);
    let value = txout.value - Amount::from_sat(1_000);
    let prevouts = [txout.clone()];

    // Another key entirely.
    let wrong = spend_key_path(&[(outpoint, txout.clone())], pay(value), &key(0x43), &AUX);
    assert_eq!(chain.submit(wrong.unwrap()), Err(TxRejected::BadSignature { index: 0 }));

    // The right key, untweaked: the output key is the BIP341 tweak of the internal key.
    let mut untweaked = unsigned_transaction(&[outpoint], pay(value));
    let sighash = key_spend_sighash(&untweaked, 0, &prevouts, TapSighashType::Default).unwrap();
    let message = Message::from_digest(sighash.to_byte_array());
    let signature = Secp256k1::new().sign_schnorr_no_aux_rand(&message, &keypair);
    untweaked.input[0].witness =
        Witness::p2tr_key_spend(&bitcoin::taproot::Signature { signature, sighash_type: TapSighashType::Default });
    assert_eq!(chain.submit(untweaked), Err(TxRejected::BadSignature { index: 0 }));

    // Signed by the tweaked key by hand: accepted (positive control of the above).
    let mut tweaked = unsigned_transaction(&[outpoint], pay(value));
    let tweaked_keypair = keypair.tap_tweak(&Secp256k1::new(), None).to_keypair();
    let signature = Secp256k1::new().sign_schnorr_no_aux_rand(&message, &tweaked_keypair);
    tweaked.input[0].witness =
        Witness::p2tr_key_spend(&bitcoin::taproot::Signature { signature, sighash_type: TapSighashType::Default });
    chain.submit(tweaked).expect("tweaked key signs for the output key");

    // The converse: an output whose key is the *untweaked* key (not BIP341), signed with the tweak.
    let (mut chain, keypair, _, outpoint, txout) = funded_group(3);
    chain.set_relay_policy(false);
    let raw_script = ScriptBuf::new_p2tr_tweaked(keypair.x_only_public_key().0.dangerous_assume_tweaked());
    assert_ne!(raw_script, p2tr_script(keypair.x_only_public_key().0));
    let value = txout.value - Amount::from_sat(1_000);
    let out = TxOut { value, script_pubkey: raw_script.clone() };
    let fund = spend_key_path(&[(outpoint, txout)], vec![out.clone()], &keypair, &AUX).unwrap();
    let fund_txid = chain.submit(fund).unwrap();
    let confused = spend_key_path(&[(OutPoint::new(fund_txid, 0), out.clone())], pay(value), &keypair, &AUX);
    assert_eq!(chain.submit(confused.unwrap()), Err(TxRejected::BadSignature { index: 0 }));
    let mut direct = unsigned_transaction(&[OutPoint::new(fund_txid, 0)], pay(value));
    let sighash = key_spend_sighash(&direct, 0, &[out], TapSighashType::Default).unwrap();
    let signature = Secp256k1::new().sign_schnorr_no_aux_rand(&Message::from_digest(sighash.to_byte_array()), &keypair);
    direct.input[0].witness = Witness::from_slice(&[signature.as_ref()]);
    chain.submit(direct).expect("untweaked key signs for an untweaked output key");
}

#[test]
fn rejects_double_spends_and_replays() {
    let (mut chain, keypair, _, outpoint, txout) = funded_group(4);
    let input = [(outpoint, txout.clone())];
    let first = spend_key_path(&input, pay(txout.value - Amount::from_sat(1_000)), &keypair, &AUX).unwrap();
    let second = spend_key_path(&input, pay(txout.value - Amount::from_sat(2_000)), &keypair, &AUX).unwrap();
    let first_txid = chain.submit(first.clone()).unwrap();
    assert_eq!(chain.submit(first.clone()), Err(TxRejected::AlreadyInMempool { txid: first_txid }));
    assert_eq!(chain.submit(second.clone()), Err(TxRejected::SpentInMempool { index: 0, outpoint, by: first_txid }));
    assert_eq!(chain.mempool().len(), 1, "rejections leave the mempool alone");
    chain.mine();
    assert_eq!(chain.utxo(&outpoint), None);
    assert_eq!(chain.submit(second), Err(TxRejected::SpentOnChain { index: 0, outpoint, by: first_txid }));
    assert_eq!(chain.submit(first), Err(TxRejected::AlreadyConfirmed { txid: first_txid }));
    assert_eq!(chain.mempool().len(), 0);
}

#[test]
fn rejects_missing_input_and_value_creation() {
    let (mut chain, keypair, _, outpoint, txout) = funded_group(5);
    // Consensus rules, probed with transactions relay policy would refuse first.
    chain.set_relay_policy(false);
    let missing = OutPoint::new(Txid::from_byte_array([0x11; 32]), 0);
    let tx = spend_key_path(&[(missing, txout.clone())], pay(Amount::ONE_SAT), &keypair, &AUX).unwrap();
    assert_eq!(chain.submit(tx), Err(TxRejected::MissingInput { index: 0, outpoint: missing }));

    let created = txout.value + Amount::ONE_SAT;
    let tx = spend_key_path(&[(outpoint, txout.clone())], pay(created), &keypair, &AUX).unwrap();
    assert_eq!(chain.submit(tx), Err(TxRejected::ValueCreated { inputs: txout.value, outputs: created }));
    // Exactly the input value (zero fee) is fine.
    let tx = spend_key_path(&[(outpoint, txout.clone())], pay(txout.value), &keypair, &AUX).unwrap();
    chain.submit(tx).expect("no value created");
}

#[test]
fn rejects_immature_coinbase_until_mature() {
    let (keypair, script) = group();
    let mut chain = MockBitcoin::new(6);
    chain.set_coinbase_maturity(10);
    chain.mine_to(&script);
    let coinbase = chain.block(1).unwrap().txdata[0].clone();
    let outpoint = OutPoint::new(coinbase.compute_txid(), 0);
    let input = [(outpoint, coinbase.output[0].clone())];
    let tx = spend_key_path(&input, pay(Amount::ONE_BTC), &keypair, &AUX).unwrap();
    // Spendable in the block at height 1 + 10; tips 1..=9 are too early.
    for confirmations in 1..10 {
        assert_eq!(
            chain.submit(tx.clone()),
            Err(TxRejected::ImmatureCoinbase { index: 0, outpoint, confirmations, required: 10 })
        );
        chain.mine();
    }
    assert_eq!(chain.tip_height(), 10);
    chain.submit(tx.clone()).expect("mature");
    // Raising maturity drops it from the mempool again.
    chain.set_coinbase_maturity(11);
    assert_eq!(chain.mempool().len(), 0);
    chain.set_coinbase_maturity(10);
    chain.submit(tx).expect("mature again");
}

#[test]
fn rejects_non_taproot_and_unspendable_inputs() {
    let (mut chain, keypair, _, outpoint, txout) = funded_group(7);
    // Consensus rules, probed with transactions relay policy would refuse first.
    chain.set_relay_policy(false);
    let op_true = ScriptBuf::from_bytes(vec![0x51]);
    let bad_key = ScriptBuf::from_bytes([&[0x51, 0x20][..], &[0xff; 32]].concat());
    assert!(bad_key.is_p2tr());
    let outputs = vec![
        TxOut { value: Amount::ONE_BTC, script_pubkey: op_true.clone() },
        TxOut { value: Amount::ONE_BTC, script_pubkey: ScriptBuf::new_op_return([9u8; 3]) },
        TxOut { value: Amount::ONE_BTC, script_pubkey: bad_key.clone() },
    ];
    let fund = spend_key_path(&[(outpoint, txout)], outputs.clone(), &keypair, &AUX).unwrap();
    let txid = chain.submit(fund).expect("non-Taproot outputs may be created");
    chain.mine();
    assert_eq!(chain.utxo(&OutPoint::new(txid, 0)), Some(outputs[0].clone()));
    assert_eq!(chain.utxo(&OutPoint::new(txid, 1)), None, "OP_RETURN is burned");

    let spend = |vout: u32| {
        let prev = outputs[vout as usize].clone();
        spend_key_path(&[(OutPoint::new(txid, vout), prev)], pay(Amount::ONE_SAT), &keypair, &AUX).unwrap()
    };
    assert_eq!(chain.submit(spend(0)), Err(TxRejected::NonTaprootInput { index: 0 }));
    assert_eq!(chain.submit(spend(1)), Err(TxRejected::MissingInput { index: 0, outpoint: OutPoint::new(txid, 1) }));
    assert_eq!(chain.submit(spend(2)), Err(TxRejected::InvalidOutputKey { index: 0 }));
}

#[test]
fn rejects_malformed_transactions() {
    let (mut chain, keypair, _, outpoint, txout) = funded_group(8);
    let value = txout.value - Amount::from_sat(1_000);
    let prevouts = [txout.clone()];
    let signed = |outputs: Vec<TxOut>| spend_key_path(&[(outpoint, txout.clone())], outputs, &keypair, &AUX).unwrap();

    let mut tx = signed(pay(value));
    tx.input.clear();
    assert_eq!(chain.submit(tx), Err(TxRejected::NoInputs));
    assert_eq!(chain.submit(signed(vec![])), Err(TxRejected::NoOutputs));

    let mut tx = signed(pay(value));
    tx.input.push(tx.input[0].clone());
    assert_eq!(chain.submit(tx), Err(TxRejected::DuplicateInput { outpoint }));

    let mut tx = signed(pay(value));
    tx.input[0].previous_output = OutPoint::null();
    tx.input.push(signed(pay(value)).input[0].clone());
    assert_eq!(chain.submit(tx), Err(TxRejected::NullPrevout { index: 0 }));

    let too_much = Amount::MAX_MONEY + Amount::ONE_SAT;
    assert_eq!(chain.submit(signed(pay(too_much))), Err(TxRejected::OutputValueOutOfRange));
    let mut outputs = pay(Amount::MAX_MONEY);
    outputs.extend(pay(Amount::MAX_MONEY));
    assert_eq!(chain.submit(signed(outputs)), Err(TxRejected::OutputValueOutOfRange));

    let huge = vec![TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0x6a; 100_001]) }];
    assert!(matches!(chain.submit(signed(huge)), Err(TxRejected::TooLarge { .. })));

    // Standardness: an output below its script's dust limit is refused, as Bitcoin Core's relay
    // policy refuses it (P2PKH 546 sat, P2WPKH 294 sat); OP_RETURN carries nothing to spend.
    use bitcoin::hashes::Hash;
    let p2pkh = ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([3; 20]));
    let p2wpkh = ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([3; 20]));
    let change = |paid: Amount| TxOut { value: value - paid, script_pubkey: txout.script_pubkey.clone() };
    let dusty =
        vec![TxOut { value: Amount::from_sat(545), script_pubkey: p2pkh.clone() }, change(Amount::from_sat(545))];
    assert_eq!(
        chain.submit(signed(dusty)),
        Err(TxRejected::Dust { index: 0, value: Amount::from_sat(545), minimum: Amount::from_sat(546) })
    );
    let dusty = vec![TxOut { value: Amount::from_sat(293), script_pubkey: p2wpkh }, change(Amount::from_sat(293))];
    assert!(matches!(chain.submit(signed(dusty)), Err(TxRejected::Dust { index: 0, .. })));
    // Only standard scripts, one OP_RETURN of at most 83 bytes, and the minimum relay fee.
    let bare = vec![TxOut { value: Amount::from_sat(10_000), script_pubkey: ScriptBuf::from_bytes(vec![0x51]) }];
    assert_eq!(chain.submit(signed(bare)), Err(TxRejected::NonStandardScript { index: 0 }));
    let data = |len: usize| TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(vec![0x6a; len]) };
    let fee = Amount::from_sat(1_000);
    assert_eq!(
        chain.submit(signed(vec![change(fee), data(84)])),
        Err(TxRejected::DataCarrierTooLarge { index: 1, len: 84 })
    );
    assert_eq!(chain.submit(signed(vec![change(fee), data(10), data(10)])), Err(TxRejected::MultipleDataCarriers));
    let cheap = Amount::from_sat(50);
    let free = signed(vec![TxOut { value: txout.value - cheap, script_pubkey: txout.script_pubkey.clone() }]);
    let minimum = Amount::from_sat(free.vsize() as u64);
    assert_eq!(chain.submit(free), Err(TxRejected::FeeBelowMinimumRelay { fee: cheap, minimum }));

    // Witness shapes.
    let mut tx = signed(pay(value));
    tx.input[0].witness = Witness::new();
    assert_eq!(chain.submit(tx), Err(TxRejected::NotKeyPathSpend { index: 0 }));
    let mut tx = signed(pay(value));
    tx.input[0].witness.push([0x50, 1, 2]); // an annex
    assert_eq!(chain.submit(tx), Err(TxRejected::NotKeyPathSpend { index: 0 }));
    let mut tx = signed(pay(value));
    tx.input[0].script_sig = ScriptBuf::from_bytes(vec![0x51]);
    assert_eq!(chain.submit(tx), Err(TxRejected::NonEmptyScriptSig { index: 0 }));
    for bytes in [
        vec![1u8; 63],
        vec![1u8; 66],
        {
            // 65 bytes with an explicit 0x00 (only the 64-byte form may mean SIGHASH_DEFAULT).
            let mut sig = signed(pay(value)).input[0].witness.nth(0).unwrap().to_vec();
            sig.push(0);
            sig
        },
        {
            let mut sig = vec![1u8; 64];
            sig.push(0x04); // not a sighash type
            sig
        },
    ] {
        let mut tx = signed(pay(value));
        tx.input[0].witness = Witness::from_slice(&[bytes]);
        assert_eq!(chain.submit(tx), Err(TxRejected::InvalidSignatureEncoding { index: 0 }));
    }

    // A signature over different outputs.
    let mut tx = signed(pay(value));
    tx.output[0].value = value - Amount::ONE_SAT;
    assert_eq!(chain.submit(tx), Err(TxRejected::BadSignature { index: 0 }));
    assert_eq!(chain.mempool().len(), 0);

    // Lock time at the next height is not final; one below is.
    let next = chain.tip_height() as u32 + 1;
    for (lock, result) in [(next, false), (next - 1, true)] {
        let mut tx = unsigned_transaction(&[outpoint], pay(value));
        tx.lock_time = absolute::LockTime::from_height(lock).unwrap();
        tx.input[0].sequence = Sequence::ENABLE_LOCKTIME_NO_RBF;
        sign_key_spend(&mut tx, 0, &prevouts, &keypair, TapSighashType::Default, &AUX).unwrap();
        let lock_time = tx.lock_time;
        match result {
            false => assert_eq!(chain.submit(tx), Err(TxRejected::NotFinal { lock_time })),
            true => assert!(chain.submit(tx.clone()).is_ok() && chain.mempool().len() == 1),
        }
    }
}

#[test]
fn rejects_sighash_single_without_output() {
    // Two coins owned by the group, one output: input 1 signed SIGHASH_SINGLE has no output 1.
    let (keypair, script) = group();
    let mut chain = MockBitcoin::new(9);
    chain.set_coinbase_maturity(1);
    chain.mine_to(&script);
    chain.mine_to(&script);
    let coins: Vec<(OutPoint, TxOut)> = (1..=2)
        .map(|h| {
            let cb = &chain.block(h).unwrap().txdata[0];
            (OutPoint::new(cb.compute_txid(), 0), cb.output[0].clone())
        })
        .collect();
    let prevouts: Vec<TxOut> = coins.iter().map(|(_, out)| out.clone()).collect();
    let outpoints: Vec<OutPoint> = coins.iter().map(|(op, _)| *op).collect();
    let mut tx = unsigned_transaction(&outpoints, pay(Amount::ONE_BTC));
    sign_key_spend(&mut tx, 0, &prevouts, &keypair, TapSighashType::Default, &AUX).unwrap();
    assert!(sign_key_spend(&mut tx, 1, &prevouts, &keypair, TapSighashType::Single, &AUX).is_err());
    let mut sig = vec![1u8; 64];
    sig.push(TapSighashType::Single as u8);
    tx.input[1].witness = Witness::from_slice(&[sig]);
    assert_eq!(chain.submit(tx.clone()), Err(TxRejected::SighashUnavailable { index: 1 }));
    // Signing input 1 with SIGHASH_ALL instead makes it valid.
    sign_key_spend(&mut tx, 1, &prevouts, &keypair, TapSighashType::All, &AUX).unwrap();
    chain.submit(tx).expect("valid");
}

/// The same seed and calls give the same chain, byte for byte; another seed another chain.
fn scripted_run(seed: u64) -> Vec<Vec<u8>> {
    let (_, group_script) = group();
    let mut chain = MockBitcoin::new(seed);
    chain.set_coinbase_maturity(2);
    chain.set_reorg_rate(300, 2);
    let mut depositor = Depositor::new(seed);
    for _ in 0..3 {
        chain.mine_to(depositor.script_pubkey());
    }
    for round in 0..8u8 {
        if let Ok(tx) =
            depositor.deposit(&chain, &group_script, Amount::from_sat(10_000 * u64::from(round + 1)), Some(&[round]))
        {
            chain.submit(tx).expect("valid deposit");
        }
        chain.mine();
        if round == 4 {
            chain.reorg(2).unwrap();
        }
    }
    (0..=chain.tip_height()).map(|h| chain.block_bytes(h).unwrap()).collect()
}

#[test]
fn deterministic_in_seed_and_calls() {
    let a = scripted_run(42);
    let b = scripted_run(42);
    assert_eq!(a, b);
    assert!(a.len() > 12);
    // The runs did deposit something.
    let blocks: Vec<_> = a.iter().map(|bytes| mock_chains::bitcoin::parse_block(bytes).unwrap()).collect();
    assert!(blocks.iter().map(|b| b.txdata.len() - 1).sum::<usize>() >= 5);
    let c = scripted_run(43);
    for (height, (a, c)) in a.iter().zip(&c).enumerate() {
        assert_ne!(a, c, "height {height}");
    }
    assert_ne!(MockBitcoin::new(1).tip_hash(), MockBitcoin::new(2).tip_hash());
    assert_eq!(MockBitcoin::new(1).tip_hash(), MockBitcoin::new(1).tip_hash());
    assert_ne!(Depositor::new(1).internal_key(), Depositor::new(2).internal_key());
}

#[test]
fn deposit_of_whole_balance_pays_dust_change_to_the_miner() {
    let (_, group_script) = group();
    let mut chain = MockBitcoin::new(12);
    chain.set_coinbase_maturity(1);
    let mut depositor = Depositor::new(12);
    chain.mine_to(depositor.script_pubkey());
    let balance = depositor.balance(&chain);
    assert_eq!(balance, block_subsidy(1));
    let rate = chain.fee_rate_sat_per_vb();
    // One P2TR key-path input and one P2TR output: 444 weight units, 111 vB.
    let fee_without_change = Amount::from_sat(111 * rate);
    let too_much = balance - fee_without_change + Amount::ONE_SAT;
    assert!(matches!(
        depositor.deposit(&chain, &group_script, too_much, None),
        Err(DepositError::InsufficientFunds { .. })
    ));
    for surplus in [0, 329] {
        let amount = balance - fee_without_change - Amount::from_sat(surplus);
        let tx = depositor.deposit(&chain, &group_script, amount, None).unwrap();
        assert_eq!(tx.vsize(), 111);
        assert_eq!(tx.output.len(), 1, "dust change is not created");
        assert_eq!(fee_of(&chain, &tx), fee_without_change + Amount::from_sat(surplus));
        depositor.release(&tx);
    }
    // With enough left for a change output (43 vB more) above dust, change is made.
    let amount = balance - fee_without_change - Amount::from_sat(43 * rate + 330);
    let tx = depositor.deposit(&chain, &group_script, amount, None).unwrap();
    assert_eq!(tx.output.len(), 2);
    assert_eq!(tx.output[1].value, Amount::from_sat(330));
    assert_eq!(fee_of(&chain, &tx), Amount::from_sat(tx.vsize() as u64 * rate));
    chain.submit(tx).expect("valid");
}

/// A hostile depositor's transactions: a thousand outputs to the group at once, and OP_RETURN
/// data that is no instruction (the chain relays both; only the group's scanner may refuse the
/// data as an instruction).
#[test]
fn a_depositor_pays_many_outputs_and_arbitrary_data() {
    let (_, group) = group();
    let mut chain = MockBitcoin::new(44);
    chain.set_coinbase_maturity(1);
    let mut depositor = Depositor::new(45);
    chain.mine_to(depositor.script_pubkey());
    chain.mine_to(depositor.script_pubkey());
    let mut outputs: Vec<TxOut> =
        (0..1_000).map(|i| TxOut { value: Amount::from_sat(5_000 + i), script_pubkey: group.clone() }).collect();
    let two_pushes = bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::all::OP_RETURN)
        .push_slice([1u8; 10])
        .push_slice([2u8; 10])
        .into_script();
    outputs.push(TxOut { value: Amount::ZERO, script_pubkey: two_pushes });
    let tx = depositor.pay(&chain, outputs).unwrap();
    assert_eq!(tx.output.len(), 1_002, "the payments, the data, the change");
    let txid = chain.submit(tx).unwrap();
    chain.mine();
    assert_eq!(chain.confirmation_height(&txid), Some(chain.tip_height()));
    assert_eq!(chain.spendable_outputs(&group).len(), 1_000);
}
