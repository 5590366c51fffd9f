//! Mock Bitcoin: decoding untrusted bytes.

use bitcoin::consensus::encode;
use bitcoin::{Amount, ScriptBuf};
use mock_chains::bitcoin::{op_return_payload, p2tr_script, parse_block, parse_transaction, Depositor, MockBitcoin};
use proptest::prelude::*;

const MAINNET_BLOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/block413567.raw");
const MAINNET_HASH: &str = "0000000000000000025aff8be8a55df8f89c77296db6198f272d6577325d4069";

fn mainnet_block() -> Option<Vec<u8>> {
    match std::fs::read(MAINNET_BLOCK) {
        Ok(bytes) => Some(bytes),
        Err(err) => {
            println!("skipping: {MAINNET_BLOCK} unavailable ({err})");
            None
        }
    }
}

#[test]
fn parses_mainnet_block_413567() {
    let Some(bytes) = mainnet_block() else { return };
    assert_eq!(bytes.len(), 999_887);
    let block = parse_block(&bytes).expect("mainnet block parses");
    assert_eq!(block.block_hash().to_string(), MAINNET_HASH);
    // Not asserted: this copy's transactions hash to merkle root 72a6be9a…, not the header's
    // 64a50c64… (checked independently of the `bitcoin` crate), so it is a parsing fixture only.
    assert_eq!(block.txdata.len(), 1_557);
    assert!(block.txdata[0].is_coinbase());
    assert_eq!(encode::serialize(&block), bytes, "re-encodes byte for byte");
    // Truncated or padded encodings are errors, not panics or partial blocks.
    assert!(parse_block(&bytes[..bytes.len() - 1]).is_err());
    assert!(parse_block(&bytes[..80]).is_err());
    let mut padded = bytes.clone();
    padded.push(0);
    assert!(parse_block(&padded).is_err());
}

/// A small chain with deposits, for mutation inputs.
fn sample_block() -> Vec<u8> {
    let mut chain = MockBitcoin::new(5);
    chain.set_coinbase_maturity(1);
    let mut depositor = Depositor::new(5);
    chain.mine_to(depositor.script_pubkey());
    let group = p2tr_script(depositor.internal_key());
    let tx = depositor.deposit(&chain, &group, Amount::ONE_BTC, Some(b"hello")).unwrap();
    chain.submit(tx).unwrap();
    chain.mine();
    chain.block_bytes(2).unwrap()
}

#[test]
fn mock_blocks_round_trip() {
    let bytes = sample_block();
    let block = parse_block(&bytes).unwrap();
    assert_eq!(block.txdata.len(), 2);
    assert_eq!(encode::serialize(&block), bytes);
    let deposit = &block.txdata[1];
    assert_eq!(parse_transaction(&encode::serialize(deposit)).unwrap(), *deposit);
    assert_eq!(op_return_payload(&deposit.output[1].script_pubkey), Some(&b"hello"[..]));
}

#[test]
fn op_return_payload_is_strict() {
    assert_eq!(op_return_payload(&ScriptBuf::new_op_return([1u8, 2, 3])), Some(&[1u8, 2, 3][..]));
    assert_eq!(op_return_payload(&ScriptBuf::new_op_return([0u8; 0])), Some(&[][..]));
    assert_eq!(
        op_return_payload(&ScriptBuf::new_op_return(
            bitcoin::script::PushBytesBuf::try_from(vec![0x42u8; 80]).unwrap()
        )),
        Some(&[0x42u8; 80][..])
    );
    assert_eq!(op_return_payload(&ScriptBuf::from_bytes(vec![0x6a])), None, "no push");
    assert_eq!(op_return_payload(&ScriptBuf::from_bytes(vec![0x6a, 0x01, 7, 0x01, 8])), None);
    assert_eq!(op_return_payload(&ScriptBuf::from_bytes(vec![0x6a, 0x05, 7])), None, "short push");
    assert_eq!(op_return_payload(&ScriptBuf::from_bytes(vec![0x51, 0x01, 7])), None);
    assert_eq!(op_return_payload(&ScriptBuf::new()), None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_block(&bytes);
        let _ = parse_transaction(&bytes);
        let _ = op_return_payload(&ScriptBuf::from_bytes(bytes));
    }

    #[test]
    fn mutated_blocks_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = sample_block();
        for (at, byte, kind) in edits {
            let position = at.index(bytes.len());
            match kind {
                0 => bytes[position] = byte,
                1 => bytes.insert(position, byte),
                _ => { bytes.remove(position); }
            }
        }
        let _ = parse_block(&bytes);
        let _ = parse_block(&bytes[..cut.index(bytes.len() + 1)]);
    }
}

#[test]
fn mutated_mainnet_block_never_panics() {
    let Some(original) = mainnet_block() else {
        return;
    };
    // A deterministic sweep of single-byte changes (length prefixes, script lengths, counts).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut bytes = original.clone();
        let position = (state % bytes.len() as u64) as usize;
        bytes[position] ^= (state >> 32) as u8 | 1;
        let _ = parse_block(&bytes);
    }
    // The transaction count varint set huge must fail cleanly, not allocate without bound.
    let mut bytes = original[..80].to_vec();
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    assert!(parse_block(&bytes).is_err());
}
