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
