//! Monero: the group's wallet has the threshold spend key and a private view key every
//! validator derives from it (a hash of the spend key: anyone knowing the group key can see its
//! deposits, a deliberate transparency trade-off shared with Serai's design). Outputs are found
//! with monero-wallet's scanner; a deposit's InInstruction is the first arbitrary-data entry of
//! its transaction's extra that decodes as one. Outputs with an additional timelock are ignored:
//! the group could not spend them on its own schedule.

use super::instruction::decode_instruction;
use super::{ChainError, Completion, MoneroEventuality, ReceivedOutput, ScanKey, ScannedBlock};
use crate::ids::{Amount, BlockHeight, BlockId};
use crate::ids::{OutputId, PlanId};

use crate::messages::{decode, encode, ChainPublicKey, OutputKind};
use bincode::{Decode, Encode};
use monero_wallet::address::SubaddressIndex;
use monero_wallet::address::{AddressType, MoneroAddress, Network};
use monero_wallet::block::Block;
use monero_wallet::ed25519::{CompressedPoint, Point, Scalar};
use monero_wallet::interface::ScannableBlock;
use monero_wallet::transaction::{Pruned, Transaction};
use monero_wallet::{Scanner, ViewPair, WalletOutput};
use zeroize::Zeroizing;

/// What the Monero chain source hands the core for one block: the block, its non-miner
/// transactions in full, and the global index of the block's first RingCT output.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MoneroBlockData {
    /// The block in Monero's encoding (header, miner transaction, transaction hashes).
    pub block: Vec<u8>,
    /// The block's non-miner transactions in Monero's encoding, in the block's order.
    pub transactions: Vec<Vec<u8>>,
    /// The global (chain-wide) index of the block's first RingCT output, as monerod numbers
    /// outputs; `None` if the block has none.
    pub first_ringct_output_index: Option<u64>,
}

impl MoneroBlockData {
    /// Serializes a parsed block and its non-miner transactions (in block order).
    pub fn new(block: &Block, transactions: &[Transaction], first_ringct_output_index: Option<u64>) -> Self {
        MoneroBlockData {
            block: block.serialize(),
            transactions: transactions.iter().map(Transaction::serialize).collect(),
            first_ringct_output_index,
        }
    }

    /// The bytes a chain source hands the core for this block ([`crate::core::Event::Block`]).
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

/// The group's private view key, derived from its spend key by every validator alike.
pub fn view_key(spend_key: &[u8; 32]) -> Zeroizing<Scalar> {
    let mut preimage = b"threshold-custody processor: Monero view key".to_vec();
    preimage.extend(spend_key);
    Zeroizing::new(Scalar::hash(preimage))
}

fn spend_point(spend_key: &[u8; 32]) -> Result<Point, ChainError> {
    CompressedPoint::from(*spend_key)
        .decompress()
        .ok_or_else(|| ChainError::UnsupportedKey("the spend key is not a point".into()))
}

/// The group's view pair (spend key and derived view key), for its addresses and its scanner.
pub fn view_pair(spend_key: &[u8; 32]) -> Result<ViewPair, ChainError> {
    ViewPair::new(spend_point(spend_key)?, view_key(spend_key))
        .map_err(|e| ChainError::UnsupportedKey(format!("not a usable spend key: {e:?}")))
}

/// What the driver must fetch from the chain for a plan: each input with its ring.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DecoyRequest {
    /// The plan whose inputs these are.
    pub plan: PlanId,
    /// Decoys are selected from the chain as of this height (it must be final).
    pub block_number: u64,
    /// The inputs, as monero-wallet `WalletOutput`s, in plan order.
    pub outputs: Vec<Vec<u8>>,
    /// Seeds the deterministic selection (the same at every processor).
    pub seed: [u8; 32],
}

/// The subaddress the group's own transactions send change and branch outputs to; deposits go
/// to the standard address, so change is never mistaken for a deposit.
pub const CHANGE_SUBADDRESS: Option<SubaddressIndex> = SubaddressIndex::new(0, 1);

/// The group's change address.
pub fn change_address(spend_key: &[u8; 32], network: Network) -> Result<MoneroAddress, ChainError> {
    let index = CHANGE_SUBADDRESS.ok_or_else(|| ChainError::UnsupportedKey("no change subaddress".into()))?;
    Ok(view_pair(spend_key)?.subaddress(network, index))
}

/// The group's standard address, where deposits go.
pub fn group_address(spend_key: &[u8; 32], network: Network) -> Result<MoneroAddress, ChainError> {
    let pair = view_pair(spend_key)?;
    Ok(MoneroAddress::new(network, AddressType::Legacy, pair.spend(), pair.view()))
}

/// Blocks with at least this many transactions are scanned on two threads (outside the
/// simulation, whose nodes are single-threaded by design).
pub const PARALLEL_FROM_TRANSACTIONS: usize = 64;

fn scan_part(
    pair: &ViewPair,
    block: &Block,
    transactions: &[Transaction<Pruned>],
    first_ringct_output_index: Option<u64>,
) -> Result<Vec<WalletOutput>, ChainError> {
    let mut scanner = Scanner::new(pair.clone());
    if let Some(change) = CHANGE_SUBADDRESS {
        scanner.register_subaddress(change);
    }
    let scannable = ScannableBlock {
        block: block.clone(),
        transactions: transactions.to_vec(),
        output_index_for_first_ringct_output: first_ringct_output_index,
    };
    let found = scanner.scan(scannable).map_err(|e| ChainError::Inconsistent(format!("scan: {e:?}")))?;
    Ok(found.not_additionally_locked())
}

/// The outputs to `pair` in the block, in block order. Large blocks are split in two halves
/// scanned at once: the second half is scanned as a block of its own transactions (the miner
/// transaction comes along and is dropped from its results) whose first RingCT output index
/// is shifted by the first half's outputs, so the result is exactly the whole block's scan.
fn find_outputs(
    pair: &ViewPair,
    block: &Block,
    transactions: &[Transaction<Pruned>],
    first_ringct_output_index: Option<u64>,
) -> Result<Vec<WalletOutput>, ChainError> {
    let parallel = cfg!(not(madsim)) && transactions.len() >= PARALLEL_FROM_TRANSACTIONS;
    let Some(first) = first_ringct_output_index.filter(|_| parallel) else {
        return scan_part(pair, block, transactions, first_ringct_output_index);
    };
    let middle = transactions.len() / 2;
    let first_half_outputs: u64 = transactions[..middle]
        .iter()
        .filter(|tx| matches!(tx, Transaction::V2 { .. }))
        .map(|tx| tx.prefix().outputs.len() as u64)
        .sum();
    let second_first = first
        .checked_add(first_half_outputs)
        .ok_or_else(|| ChainError::Inconsistent("RingCT output indexes overflow".into()))?;
    let mut first_block = block.clone();
    first_block.transactions.truncate(middle);
    let mut second_block = block.clone();
    second_block.transactions.drain(..middle);
    let miner = block.miner_transaction().hash();
    let (first_found, second_found) = std::thread::scope(|scope| {
        let second = scope.spawn(|| scan_part(pair, &second_block, &transactions[middle..], Some(second_first)));
        let first_found = scan_part(pair, &first_block, &transactions[..middle], Some(first));
        let second_found =
            second.join().unwrap_or_else(|_| Err(ChainError::Inconsistent("the scanning thread panicked".into())));
        (first_found, second_found)
    });
    let mut outputs = first_found?;
    outputs.extend(second_found?.into_iter().filter(|output| output.transaction() != miner));
    Ok(outputs)
}

/// The one-time key of a scanned output (what its key image is derived from), from the
/// `WalletOutput` scanning stored; `None` if the bytes are not one.
pub fn output_key(spend_data: &[u8]) -> Option<[u8; 32]> {
    WalletOutput::read(&mut &*spend_data).ok().map(|output| output.key().compress().to_bytes())
}

pub(super) fn scan_block(
    bytes: &[u8],
    keys: &[ScanKey],
    eventualities: &[(PlanId, MoneroEventuality)],
) -> Result<ScannedBlock, ChainError> {
    let data: MoneroBlockData = decode(bytes).map_err(|e| ChainError::Malformed(e.to_string()))?;
    let block = Block::read(&mut data.block.as_slice()).map_err(|e| ChainError::Malformed(format!("block: {e}")))?;
    if block.transactions.len() != data.transactions.len() {
        return Err(ChainError::Inconsistent(format!(
            "block lists {} transactions, {} were supplied",
            block.transactions.len(),
            data.transactions.len()
        )));
    }
    let mut transactions = Vec::with_capacity(data.transactions.len());
    for (expected, bytes) in block.transactions.iter().zip(&data.transactions) {
        let transaction =
            Transaction::read(&mut bytes.as_slice()).map_err(|e| ChainError::Malformed(format!("transaction: {e}")))?;
        if transaction.version() != 2 || transaction.hash() != *expected {
            return Err(ChainError::Inconsistent("a transaction is not the one the block commits to".into()));
        }
        transactions.push(Transaction::<Pruned>::from(transaction));
    }
    let id = BlockId(block.hash());
    let parent = BlockId(block.header.previous);

    let mut outputs = Vec::new();
    for key in keys {
        let ChainPublicKey::Monero { spend_key } = key.key else {
            return Err(ChainError::UnsupportedKey("a Bitcoin key cannot receive Monero".into()));
        };
        let pair = view_pair(&spend_key)?;
        for output in find_outputs(&pair, &block, &transactions, data.first_ringct_output_index)? {
            let mut output_id = output.transaction().to_vec();
            output_id.extend(output.index_in_transaction().to_le_bytes());
            let kind = if output.subaddress().is_some() && output.subaddress() == CHANGE_SUBADDRESS {
                OutputKind::Change
            } else {
                OutputKind::External
            };
            let instruction = match kind {
                OutputKind::External => output.arbitrary_data().iter().find_map(|data| decode_instruction(data)),
                OutputKind::Change => None,
            };
            outputs.push(ReceivedOutput {
                id: OutputId(output_id),
                amount: Amount(output.commitment().amount),
                instruction,
                session: key.session,
                kind,
                spend_data: output.serialize(),
            });
        }
    }
    let mut completions = Vec::new();
    let mut own_transactions = Vec::new();
    for (transaction, hash) in transactions.iter().zip(&block.transactions) {
        for (plan, watched) in eventualities {
            if watched.extra != transaction.prefix().extra {
                continue;
            }
            let eventuality = monero_wallet::send::Eventuality::read(&mut watched.eventuality.as_slice())
                .map_err(|e| ChainError::UnsupportedKey(format!("a stored eventuality does not parse: {e}")))?;
            if eventuality.matches(transaction) {
                completions.push(Completion { plan: *plan, transaction: hash.to_vec() });
            }
        }
        let change_paid = outputs.iter().any(|o| o.kind == OutputKind::Change && o.id.0.starts_with(hash));
        if change_paid {
            own_transactions.push((*hash, transaction.serialize()));
        }
    }
    let height = Some(BlockHeight(block.number() as u64));
    Ok(ScannedBlock { id, parent, height, outputs, spends: vec![], completions, own_transactions })
}
