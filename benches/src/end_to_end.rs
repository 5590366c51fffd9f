//! An end-to-end fixture: a synthetic Bitcoin chain, served as a chain source, whose one
//! deposit block pays the group many outputs with InInstructions.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::{transaction, Amount, Block, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use processor_core::chain::ChainSource;
use processor_core::messages::InInstruction;

/// Blocks in a vector shared with the benchmark (which fills it once keys exist); the tip is
/// the last.
#[derive(Clone, Default)]
pub struct SyntheticBitcoin {
    pub blocks: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
}

impl ChainSource for SyntheticBitcoin {
    fn tip(&self) -> u64 {
        (self.blocks.borrow().len() as u64).saturating_sub(1)
    }
    fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        self.blocks.borrow().get(usize::try_from(height).ok()?).cloned()
    }
    fn publish(&self, _transaction: &[u8]) -> Result<(), String> {
        Err("this chain takes no transactions".into())
    }
}

fn transaction(tag: u64, output: Vec<TxOut>, coinbase: bool) -> Transaction {
    let previous_output = if coinbase {
        OutPoint::null()
    } else {
        let mut txid = [0u8; 32];
        txid[..8].copy_from_slice(&tag.to_le_bytes());
        OutPoint { txid: bitcoin::Txid::from_byte_array(txid), vout: 0 }
    };
    let script_sig = if coinbase { ScriptBuf::from_bytes(tag.to_le_bytes().to_vec()) } else { ScriptBuf::new() };
    Transaction {
        version: transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn { previous_output, script_sig, sequence: Sequence::MAX, witness: Witness::new() }],
        output,
    }
}

/// Height 1 pays `outputs` deposits to the group's `internal_key` (transactions of 10 outputs,
/// each with an InInstruction); `confirmations` empty blocks follow, so it is final.
pub fn chain_with_deposits(internal_key: &[u8; 32], outputs: usize, confirmations: u64) -> Vec<Vec<u8>> {
    let group = processor_core::chain::bitcoin::group_script(internal_key).expect("a valid key");
    let mut blocks = Vec::new();
    let mut previous = bitcoin::BlockHash::all_zeros();
    for height in 0..=1 + confirmations {
        let coinbase =
            transaction(height, vec![TxOut { value: Amount::from_sat(50), script_pubkey: ScriptBuf::new() }], true);
        let mut txdata = vec![coinbase];
        if height == 1 {
            for (index, chunk) in (0..outputs).collect::<Vec<_>>().chunks(10).enumerate() {
                let instruction = processor_core::chain::instruction::encode_instruction(&InInstruction {
                    account: [index as u8; 32],
                });
                let push = bitcoin::script::PushBytesBuf::try_from(instruction).expect("a short instruction");
                let mut output: Vec<TxOut> = chunk
                    .iter()
                    .map(|i| TxOut { value: Amount::from_sat(10_000 + *i as u64), script_pubkey: group.clone() })
                    .collect();
                output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::new_op_return(push) });
                txdata.push(transaction(1_000 + index as u64, output, false));
            }
        }
        let mut block = Block {
            header: bitcoin::block::Header {
                version: bitcoin::block::Version::TWO,
                prev_blockhash: previous,
                merkle_root: bitcoin::TxMerkleNode::all_zeros(),
                time: height as u32,
                bits: bitcoin::CompactTarget::from_consensus(0x207fffff),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("the block has transactions");
        previous = block.block_hash();
        blocks.push(bitcoin::consensus::serialize(&block));
    }
    blocks
}
