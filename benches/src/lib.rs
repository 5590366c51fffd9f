//! Fixtures for the criterion benchmarks in `benches/`: blocks to scan, built deterministically.
//! The benchmarks themselves pair each processor path with the bare-library floor it is
//! measured against (see `benches/README.md`).

pub mod end_to_end;
pub mod signing;

use bitcoin::absolute::LockTime;
use bitcoin::key::{Secp256k1, XOnlyPublicKey};
use bitcoin::{transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use processor_core::chain::ScanKey;
use processor_core::ids::SessionId;
use processor_core::messages::ChainPublicKey;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The real mainnet block in the shared test data (Bitcoin Core's deserialisation benchmark).
pub fn mainnet_block() -> Option<Vec<u8>> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/block413567.raw")).ok()
}

fn x_only(rng: &mut ChaCha20Rng) -> XOnlyPublicKey {
    let secp = Secp256k1::new();
    loop {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        if let Ok(key) = bitcoin::secp256k1::SecretKey::from_slice(&secret) {
            return key.x_only_public_key(&secp).0;
        }
    }
}

/// A block of `outputs` Taproot outputs in transactions of 10 outputs each, one in every
/// `ours_every` paying the group's key. Returns the block bytes and the group's scan key.
pub fn synthetic_bitcoin_block(outputs: usize, ours_every: usize, seed: u64) -> (Vec<u8>, ScanKey) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let secp = Secp256k1::new();
    let group = x_only(&mut rng);
    let group_script = ScriptBuf::new_p2tr(&secp, group, None);
    let others: Vec<ScriptBuf> = (0..64).map(|_| ScriptBuf::new_p2tr(&secp, x_only(&mut rng), None)).collect();
    let mut transactions = Vec::new();
    let mut made = 0;
    while made < outputs {
        let mut previous = [0u8; 32];
        rng.fill_bytes(&mut previous);
        let output = (0..10.min(outputs - made))
            .map(|_| {
                made += 1;
                let script =
                    if made % ours_every == 0 { group_script.clone() } else { others[made % others.len()].clone() };
                TxOut { value: Amount::from_sat(10_000 + made as u64), script_pubkey: script }
            })
            .collect();
        transactions.push(Transaction {
            version: transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::from_byte_array(previous)),
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[[0u8; 64].as_slice()]),
            }],
            output,
        });
    }
    let mut block = Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::TWO,
            prev_blockhash: bitcoin::BlockHash::all_zeros_for_bench(),
            merkle_root: bitcoin::TxMerkleNode::all_zeros_for_bench(),
            time: 0,
            bits: bitcoin::CompactTarget::from_consensus(0x207fffff),
            nonce: 0,
        },
        txdata: transactions,
    };
    commit_witnesses(&mut block);
    block.header.merkle_root = block.compute_merkle_root().expect("the block has transactions");
    let key = ScanKey { session: SessionId(1), key: ChainPublicKey::Bitcoin { internal_key: group.serialize() } };
    (bitcoin::consensus::serialize(&block), key)
}

/// Puts a coinbase committing to the block's witnesses (BIP141) in front of its transactions.
fn commit_witnesses(block: &mut Block) {
    let reserved = [0u8; 32];
    let coinbase = Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(vec![1, 1]),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[reserved.as_slice()]),
        }],
        output: vec![],
    };
    block.txdata.insert(0, coinbase);
    // The coinbase's own wtxid counts as zero, so the root can be taken before its output exists.
    let root = block.witness_root().expect("the block has transactions");
    let commitment = Block::compute_witness_commitment(&root, &reserved);
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend(bitcoin::hashes::Hash::as_byte_array(&commitment));
    block.txdata[0].output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(script) });
}

trait AllZeros {
    fn all_zeros_for_bench() -> Self;
}
impl AllZeros for bitcoin::BlockHash {
    fn all_zeros_for_bench() -> Self {
        bitcoin::hashes::Hash::all_zeros()
    }
}
impl AllZeros for bitcoin::TxMerkleNode {
    fn all_zeros_for_bench() -> Self {
        bitcoin::hashes::Hash::all_zeros()
    }
}

/// A mock Monero block holding `transactions` real RingCT deposits, one in every `ours_every`
/// paying the group. Returns the chain-source bytes, the ScannableBlock for monero-wallet's own
/// scanner, and the group's scan key.
pub fn monero_block(
    transactions: usize,
    ours_every: usize,
    seed: u64,
) -> (Vec<u8>, monero_wallet::interface::ScannableBlock, ScanKey) {
    use mock_chains::monero::{Depositor, MockMonero, MoneroConfig, WalletKeys};
    use processor_core::chain::monero::{group_address, MoneroBlockData};
    let mut chain = MockMonero::with_config(seed, MoneroConfig { coinbase_lock: 1, ..MoneroConfig::default() });
    let mut depositor = Depositor::new(seed ^ 1);
    for _ in 0..transactions + 12 {
        chain.mine_to(&depositor.address());
    }
    let group_spend = WalletKeys::from_seed(seed ^ 2).spend_public().compress().to_bytes();
    let group = group_address(&group_spend, monero_wallet::address::Network::Mainnet).expect("a valid key");
    let stranger = WalletKeys::from_seed(seed ^ 3).address();
    let instruction =
        processor_core::chain::instruction::encode_instruction(&processor_core::messages::InInstruction {
            account: [7; 32],
        });
    for index in 0..transactions {
        let to = if index % ours_every == 0 { &group } else { &stranger };
        let transaction =
            depositor.deposit(&chain, to, 1_000_000, Some(&instruction)).expect("the depositor is funded");
        chain.submit(transaction).expect("a valid deposit");
    }
    chain.mine();
    let height = chain.tip_height();
    let scannable = chain.scannable_block_at(height).expect("just mined");
    let transactions = chain.transactions(height);
    let bytes = MoneroBlockData::new(
        chain.block(height).expect("just mined"),
        &transactions[1..],
        scannable.output_index_for_first_ringct_output,
    )
    .encode();
    let key = ScanKey { session: SessionId(1), key: ChainPublicKey::Monero { spend_key: group_spend } };
    (bytes, scannable, key)
}
