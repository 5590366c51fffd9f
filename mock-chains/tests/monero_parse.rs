//! `parse_block` / `parse_transaction` on real, random and mutated bytes: round trips, typed
//! errors, never a panic.

use std::sync::LazyLock;

use mock_chains::monero::{
    parse_block, parse_transaction, Depositor, MockMonero, MoneroConfig, ParseError, WalletKeys,
};
use proptest::prelude::*;

/// A block blob holding a deposit, the deposit's blob and a miner transaction's blob.
static SAMPLES: LazyLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = LazyLock::new(|| {
    let mut chain =
        MockMonero::with_config(9, MoneroConfig { coinbase_lock: 10, decoy_premine: 200, ..MoneroConfig::default() });
    let mut depositor = Depositor::new(10);
    for _ in 0..12 {
        chain.mine_to(&depositor.address());
    }
    let tx = depositor.deposit(&chain, &WalletKeys::from_seed(11).address(), 5_000, Some(b"parse me")).unwrap();
    chain.submit(tx.clone()).unwrap();
    chain.mine();
    let tip = chain.tip_height();
    (chain.block_bytes(tip).unwrap(), tx.serialize(), chain.transactions(tip)[0].serialize())
});

#[test]
fn real_blobs_round_trip() {
    let (block, tx, miner) = &*SAMPLES;
    let parsed = parse_block(block).unwrap();
    assert_eq!(&parsed.serialize(), block);
    assert_eq!(parsed.transactions.len(), 1);
    let parsed_tx = parse_transaction(tx).unwrap();
    assert_eq!(parsed.transactions[0], parsed_tx.hash());
    assert_eq!(&parse_transaction(miner).unwrap(), parsed.miner_transaction());

    assert_eq!(parse_block(&[block.as_slice(), &[0]].concat()), Err(ParseError::TrailingBytes(1)));
    assert_eq!(parse_transaction(&[tx.as_slice(), &[1, 2]].concat()), Err(ParseError::TrailingBytes(2)));
    assert!(matches!(parse_block(&[]), Err(ParseError::Decode(_))));
    assert!(matches!(parse_transaction(&[]), Err(ParseError::Decode(_))));
    // A transaction is not a block and vice versa.
    assert!(parse_block(tx).is_err());
    assert!(parse_transaction(block).is_err());
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, mask: u8 },
    Truncate(usize),
    Insert { at: usize, byte: u8 },
    Remove(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(Mutation::Remove),
    ]
}

fn mutate(bytes: &[u8], mutations: &[Mutation]) -> (Vec<u8>, bool) {
    let mut bytes = bytes.to_vec();
    let mut truncated = false;
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip { at, mask } => {
                if let Some(b) = bytes.get_mut(at % len) {
                    *b ^= mask;
                }
            }
            Mutation::Truncate(at) => {
                bytes.truncate(at % len);
                truncated = true;
            }
            Mutation::Insert { at, byte } => bytes.insert(at % (bytes.len() + 1), byte),
            Mutation::Remove(at) => {
                if !bytes.is_empty() {
                    bytes.remove(at % len);
                }
            }
        }
    }
    (bytes, truncated && mutations.len() == 1)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0 .. 2048)) {
        let _ = parse_block(&bytes);
        let _ = parse_transaction(&bytes);
    }

    #[test]
    fn mutated_blobs_never_panic(mutations in proptest::collection::vec(mutation(), 1 ..= 4)) {
        let (block, tx, miner) = &*SAMPLES;
        for (original, is_block) in [(block, true), (tx, false), (miner, false)] {
            let (mutated, only_truncated) = mutate(original, &mutations);
            let reencoded = if is_block {
                parse_block(&mutated).map(|b| b.serialize())
            } else {
                parse_transaction(&mutated).map(|t| t.serialize())
            };
            // Whatever parses is the canonical encoding of what it decodes to.
            if let Ok(reencoded) = &reencoded {
                prop_assert_eq!(reencoded, &mutated);
            }
            // A strict prefix of a canonical encoding never decodes: the format is
            // self-delimiting, so the decoder would have stopped there on the original too.
            if only_truncated && mutated.len() < original.len() {
                prop_assert!(reencoded.is_err());
            }
        }
    }
}
