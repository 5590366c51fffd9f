//! Bitcoin: the group receives deposits to the BIP341 key-path output of its x-only internal
//! key with no script tree, and its own change and branch outputs to the key-path output of
//! the same key committed to [`CHANGE_ROOT`] as merkle root: a second address only the group's
//! transactions pay, so change is never mistaken for a deposit. Both are spent by the key path
//! (nobody knows a script under `CHANGE_ROOT`). A deposit's InInstruction is the first
//! OP_RETURN output of its transaction that decodes as one; every output of that transaction
//! paying the group carries it.

use super::instruction::decode_instruction;
use super::{ChainError, ReceivedOutput, ScanKey, ScannedBlock, Spend};
use crate::ids::{Amount, BlockId, OutputId};
use crate::messages::{ChainPublicKey, InInstruction, OutputKind};
use bitcoin::hashes::Hash;
use bitcoin::key::{Secp256k1, XOnlyPublicKey};
use bitcoin::script::Instruction;
use bitcoin::taproot::TapNodeHash;
use bitcoin::{Block, OutPoint, ScriptBuf, Transaction};
use std::collections::BTreeSet;

/// The taproot merkle root of the change address: SHA-256 of
/// "threshold-custody processor: change", not the hash of any known script.
pub const CHANGE_ROOT: [u8; 32] = [
    0x01, 0xb4, 0x84, 0x93, 0x3f, 0xec, 0x97, 0x1a, 0x56, 0x19, 0xa8, 0xa3, 0x3c, 0x2c, 0x0f, 0x10, 0x43, 0xee, 0x03,
    0xa2, 0x2d, 0x28, 0xf0, 0x51, 0x96, 0xa0, 0x13, 0x81, 0x69, 0xf9, 0x28, 0x14,
];

/// The merkle root an output of `kind` commits to.
pub fn merkle_root(kind: OutputKind) -> Option<[u8; 32]> {
    match kind {
        OutputKind::External => None,
        OutputKind::Change => Some(CHANGE_ROOT),
    }
}

/// The scriptPubKey the group's key receives deposits to.
pub fn group_script(internal_key: &[u8; 32]) -> Result<ScriptBuf, ChainError> {
    script_of(internal_key, OutputKind::External)
}

/// The scriptPubKey of the group's outputs of `kind`.
pub fn script_of(internal_key: &[u8; 32], kind: OutputKind) -> Result<ScriptBuf, ChainError> {
    let key = XOnlyPublicKey::from_slice(internal_key)
        .map_err(|e| ChainError::UnsupportedKey(format!("not an x-only key: {e}")))?;
    let root = merkle_root(kind).map(TapNodeHash::from_byte_array);
    Ok(ScriptBuf::new_p2tr(&Secp256k1::verification_only(), key, root))
}

/// An output's id: txid then output index (little endian).
pub fn output_id(outpoint: &OutPoint) -> OutputId {
    let mut id = outpoint.txid.to_byte_array().to_vec();
    id.extend(outpoint.vout.to_le_bytes());
    OutputId(id)
}

/// The outpoint an output id names, if it is one.
pub fn outpoint_of(id: &OutputId) -> Option<OutPoint> {
    let txid: [u8; 32] = id.0.get(..32)?.try_into().ok()?;
    let vout: [u8; 4] = id.0.get(32..)?.try_into().ok()?;
    Some(OutPoint { txid: bitcoin::Txid::from_byte_array(txid), vout: u32::from_le_bytes(vout) })
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

/// A block's id: its block hash, in the hash's internal byte order (not the reversed hex shown
/// by explorers).
pub fn block_id(block: &Block) -> BlockId {
    BlockId(block.block_hash().to_byte_array())
}

pub(super) fn scan_block(
    bytes: &[u8],
    keys: &[ScanKey],
    watched: &BTreeSet<OutputId>,
) -> Result<ScannedBlock, ChainError> {
    let block: Block = bitcoin::consensus::deserialize(bytes).map_err(|e| ChainError::Malformed(e.to_string()))?;
    if !block.check_merkle_root() {
        return Err(ChainError::Inconsistent("merkle root does not commit to the transactions".into()));
    }
    if !block.check_witness_commitment() {
        return Err(ChainError::Inconsistent("witness commitment does not commit to the witnesses".into()));
    }
    let mut scanned = scan_parsed_block(&block, keys)?;
    if !watched.is_empty() {
        scanned.spends = spends_in(&block, watched);
    }
    Ok(scanned)
}

/// Which `watched` outputs the block's transactions spend.
fn spends_in(block: &Block, watched: &BTreeSet<OutputId>) -> Vec<Spend> {
    let mut spends = Vec::new();
    for transaction in block.txdata.iter().skip(1) {
        for input in &transaction.input {
            let id = output_id(&input.previous_output);
            if watched.contains(&id) {
                let txid = transaction.compute_txid().to_byte_array().to_vec();
                spends.push(Spend { output: id, transaction: txid });
            }
        }
    }
    spends
}

/// Scans an already parsed block whose merkle root the caller has checked (or, in benchmarks,
/// deliberately not).
pub fn scan_parsed_block(block: &Block, keys: &[ScanKey]) -> Result<ScannedBlock, ChainError> {
    let mut scripts = Vec::with_capacity(2 * keys.len());
    for key in keys {
        match key.key {
            ChainPublicKey::Bitcoin { internal_key } => {
                for kind in [OutputKind::External, OutputKind::Change] {
                    scripts.push((script_of(&internal_key, kind)?, key.session, kind));
                }
            }
            ChainPublicKey::Monero { .. } => {
                return Err(ChainError::UnsupportedKey("a Monero key cannot receive Bitcoin".into()))
            }
        }
    }

    let mut outputs = Vec::new();
    for transaction in &block.txdata {
        let mut instruction = None;
        let mut instruction_read = false;
        let mut txid = None;
        for (index, output) in transaction.output.iter().enumerate() {
            let Some((_, session, kind)) = scripts.iter().find(|(script, _, _)| *script == output.script_pubkey) else {
                continue;
            };
            if *kind == OutputKind::External && !instruction_read {
                instruction = transaction_instruction(transaction);
                instruction_read = true;
            }
            let txid = *txid.get_or_insert_with(|| transaction.compute_txid());
            outputs.push(ReceivedOutput {
                id: output_id(&OutPoint { txid, vout: index as u32 }),
                amount: Amount(output.value.to_sat()),
                instruction: if *kind == OutputKind::External { instruction.clone() } else { None },
                session: *session,
                kind: *kind,
                spend_data: vec![],
            });
        }
    }
    Ok(ScannedBlock {
        id: block_id(block),
        parent: BlockId(block.header.prev_blockhash.to_byte_array()),
        outputs,
        spends: vec![],
        completions: vec![],
        own_transactions: vec![],
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

    #[test]
    fn change_root_is_the_documented_hash() {
        use sha2::Digest;
        let hash: [u8; 32] = sha2::Sha256::digest(b"threshold-custody processor: change").into();
        assert_eq!(hash, super::CHANGE_ROOT);
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
