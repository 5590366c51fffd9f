//! Bitcoin: the group receives to the BIP341 key-path output of its x-only internal key (no
//! script tree). A deposit's InInstruction is the first OP_RETURN output of its transaction
//! that decodes as one; every output of that transaction paying the group carries it.

use super::instruction::decode_instruction;
use super::{ChainError, ReceivedOutput, ScanKey, ScannedBlock};
use crate::ids::{Amount, BlockId};
use crate::messages::{ChainPublicKey, InInstruction};
use bitcoin::hashes::Hash;
use bitcoin::key::{Secp256k1, XOnlyPublicKey};
use bitcoin::script::Instruction;
use bitcoin::{Block, ScriptBuf, Transaction};

/// The scriptPubKey the group's key receives to.
pub fn group_script(internal_key: &[u8; 32]) -> Result<ScriptBuf, ChainError> {
    let key = XOnlyPublicKey::from_slice(internal_key)
        .map_err(|e| ChainError::UnsupportedKey(format!("not an x-only key: {e}")))?;
    Ok(ScriptBuf::new_p2tr(&Secp256k1::verification_only(), key, None))
}

/// The InInstruction a transaction carries, if any.
pub fn transaction_instruction(transaction: &Transaction) -> Option<InInstruction> {
    transaction.output.iter().filter(|output| output.script_pubkey.is_op_return()).find_map(|output| {
        // OP_RETURN then exactly one push.
        let mut instructions = output.script_pubkey.instructions().skip(1);
        match (instructions.next(), instructions.next()) {
            (Some(Ok(Instruction::PushBytes(data))), None) => decode_instruction(data.as_bytes()),
            _ => None,
        }
    })
}

pub fn block_id(block: &Block) -> BlockId {
    BlockId(block.block_hash().to_byte_array())
}

pub(super) fn scan_block(bytes: &[u8], keys: &[ScanKey]) -> Result<ScannedBlock, ChainError> {
    let block: Block =
        bitcoin::consensus::deserialize(bytes).map_err(|e| ChainError::Malformed(e.to_string()))?;
    if !block.check_merkle_root() {
        return Err(ChainError::Inconsistent("merkle root does not commit to the transactions".into()));
    }
    if !block.check_witness_commitment() {
        return Err(ChainError::Inconsistent("witness commitment does not commit to the witnesses".into()));
    }
    scan_parsed_block(&block, keys)
}

/// Scans an already parsed block whose merkle root the caller has checked (or, in benchmarks,
/// deliberately not).
pub fn scan_parsed_block(block: &Block, keys: &[ScanKey]) -> Result<ScannedBlock, ChainError> {
    let mut scripts = Vec::with_capacity(keys.len());
    for key in keys {
        match key.key {
            ChainPublicKey::Bitcoin { internal_key } => scripts.push((group_script(&internal_key)?, key.session)),
            ChainPublicKey::Monero { .. } => {
                return Err(ChainError::UnsupportedKey("a Monero key cannot receive Bitcoin".into()))
            }
        }
    }

    let mut outputs = Vec::new();
    for transaction in &block.txdata {
        let mut instruction = None;
        let mut instruction_read = false;
        for (index, output) in transaction.output.iter().enumerate() {
            let Some((_, session)) = scripts.iter().find(|(script, _)| *script == output.script_pubkey) else {
                continue;
            };
            if !instruction_read {
                instruction = transaction_instruction(transaction);
                instruction_read = true;
            }
            let mut id = transaction.compute_txid().to_byte_array().to_vec();
            id.extend((index as u32).to_le_bytes());
            outputs.push(ReceivedOutput {
                id,
                amount: Amount(output.value.to_sat()),
                instruction: instruction.clone(),
                session: *session,
            });
        }
    }
    Ok(ScannedBlock {
        id: block_id(block),
        parent: BlockId(block.header.prev_blockhash.to_byte_array()),
        outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{scan_block, ScanKey};
    use crate::ids::{ExternalChain, SessionId};
    use crate::messages::ChainPublicKey;
    use proptest::prelude::*;

    fn key() -> ScanKey {
        // The x coordinate of secp256k1's generator: a valid x-only key.
        let internal_key = hex_literal_generator();
        ScanKey { session: SessionId(1), key: ChainPublicKey::Bitcoin { internal_key } }
    }

    fn hex_literal_generator() -> [u8; 32] {
        let mut key = [0u8; 32];
        hex::decode_to_slice("79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", &mut key).unwrap();
        key
    }

    proptest! {
        #[test]
        fn garbage_blocks_are_errors_not_panics(bytes in proptest::collection::vec(any::<u8>(), 0 .. 2048)) {
            prop_assert!(scan_block(ExternalChain::Bitcoin, &bytes, &[key()]).is_err());
        }

        #[test]
        fn mutated_blocks_are_errors_or_only_a_different_header(position: usize, xor in 1u8 ..) {
            let mut chain = mock_chains::bitcoin::MockBitcoin::new(3);
            let ours = bitcoin::key::XOnlyPublicKey::from_slice(&hex_literal_generator()).unwrap();
            chain.set_miner_script(mock_chains::bitcoin::p2tr_script(ours));
            chain.mine();
            let original = chain.block_bytes(1).unwrap();
            let expected = scan_block(ExternalChain::Bitcoin, &original, &[key()]).unwrap();
            prop_assert_eq!(expected.outputs.len(), 1);
            let mut bytes = original.clone();
            let at = position % bytes.len();
            bytes[at] ^= xor;
            // Transactions and witnesses are committed to; only the header can change unnoticed
            // here (proof of work and the expected hash are the chain source's checks).
            if let Ok(scanned) = scan_block(ExternalChain::Bitcoin, &bytes, &[key()]) {
                prop_assert!(at < 80, "byte {} of the transactions changed and scanning accepted it", at);
                prop_assert_eq!(scanned.outputs, expected.outputs);
            }
        }
    }
}
