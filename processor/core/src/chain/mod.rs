//! The pure part of each external chain: parse a block's bytes, find the outputs paid to the
//! group's keys and their InInstructions. The same code runs in production, in the simulation
//! and in tests; fetching bytes and publishing transactions is the driver's business.

pub mod bitcoin;
pub mod instruction;
pub mod monero;

use crate::ids::{Amount, BlockHeight, BlockId, ExternalChain, OutputId, PlanId, SessionId};
use crate::messages::{ChainPublicKey, InInstruction, OutputKind};
use bincode::{Decode, Encode};
use std::collections::BTreeSet;

/// The IO half of a chain, as the driver around the core sees it: the core asks for blocks by
/// height ([`crate::core::Effect::FetchBlock`]) and is told the tip; the driver gets both from
/// a source like this. In tests and the simulation it is a mock chain in memory; the daemon's
/// sources speak the nodes' RPC.
pub trait ChainSource {
    /// The best chain's height.
    fn tip(&self) -> u64;
    /// The block at `height` on the best chain, in the form [`scan_block`] reads (Bitcoin:
    /// consensus encoding; Monero: [`monero::MoneroBlockData`]).
    fn block_bytes(&self, height: u64) -> Option<Vec<u8>>;
    /// Hands a signed transaction (chain encoding) to the network. An error is reported, not
    /// fatal: the core publishes again until the transaction is final.
    fn publish(&self, transaction: &[u8]) -> Result<(), String>;
    /// Monero: selects the rings of a plan's inputs (see
    /// `transaction::monero::select_decoys`).
    fn select_decoys(&self, _request: &monero::DecoyRequest) -> Result<Vec<Vec<u8>>, String> {
        Err("this chain has no rings".into())
    }
}

/// Why a block from the chain source was refused. Never a panic: these bytes are external.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The bytes do not decode as a block of the chain; the decoder's reason.
    #[error("block does not decode: {0}")]
    Malformed(String),
    /// The block decodes but does not commit to its contents (merkle root, witness commitment,
    /// transactions supplied), or cannot be scanned; what is wrong.
    #[error("block is internally inconsistent: {0}")]
    Inconsistent(String),
    /// The group's key (or a stored Eventuality) cannot be used to scan this chain; why.
    #[error("scanning is not supported for this key: {0}")]
    UnsupportedKey(String),
    /// A Bitcoin-family header without the proof of work the network requires.
    #[error("proof of work: {0}")]
    ProofOfWork(#[from] bitcoin::PowError),
    /// The block commits to another height than the one it was served for, or to none
    /// (Bitcoin: BIP34's coinbase height; Monero: its miner transaction's input).
    #[error("block served for height {asked} commits to height {committed:?}")]
    WrongHeight {
        /// The height it was served for.
        asked: BlockHeight,
        /// The height it commits to, if any.
        committed: Option<BlockHeight>,
    },
    /// The block at `height` names a parent other than the block scanned below it, yet the
    /// node, asked again, still serves that scanned block there: the block is not on the
    /// node's own chain (it is fetched again; nothing halts).
    #[error("block {height} names parent {named}, but the node still serves {kept} at the height below")]
    OffTheNodesChain {
        /// The height of the refused block.
        height: BlockHeight,
        /// The parent it named.
        named: BlockId,
        /// The block scanned below it, which the node still serves.
        kept: BlockId,
    },
}

/// Checks what a block's header proves by itself, before the block is scanned: a
/// Bitcoin-family header's proof of work under `rule`. Monero's proof of work (RandomX) is not
/// checked: verifying it needs a RandomX virtual machine with its 256 MiB cache per epoch.
pub fn check_header(chain: ExternalChain, bytes: &[u8], rule: &bitcoin::ProofOfWork) -> Result<(), ChainError> {
    match chain {
        ExternalChain::Bitcoin if crate::mutation::active(crate::mutation::Mutation::NoBlockCommitmentCheck) => Ok(()),
        ExternalChain::Bitcoin => bitcoin::check_proof_of_work(bytes, rule),
        ExternalChain::Monero => Ok(()),
    }
}

/// A key the group receives to, and the session that generated it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanKey {
    /// The key-generation session that generated the key.
    pub session: SessionId,
    /// The group's chain key, whose addresses are scanned for.
    pub key: ChainPublicKey,
}

/// An output paid to one of the group's keys.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct ReceivedOutput {
    /// Chain-specific id: txid and output index for Bitcoin; txid and index for Monero.
    pub id: OutputId,
    /// The output's value, in the chain's smallest unit (satoshi, piconero).
    pub amount: Amount,
    /// `None` when the transaction carried no valid InInstruction: the output is kept by the
    /// group and not credited on Serai (the README's deposit policy).
    pub instruction: Option<InInstruction>,
    /// The key-generation session whose key received it.
    pub session: SessionId,
    /// Whether it was paid to the deposit address or the group's change address.
    pub kind: OutputKind,
    /// What spending it needs beyond its id, chain-encoded: nothing for Bitcoin; the
    /// monero-wallet `WalletOutput` for Monero.
    pub spend_data: Vec<u8>,
}

/// A Monero plan's Eventuality as stored: the extra a matching transaction must have (a cheap
/// first filter) and the serialized monero-wallet `Eventuality` (parsed only for a transaction
/// with that extra: parsing one rebuilds the whole transaction).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct MoneroEventuality {
    /// The transaction's extra.
    pub extra: Vec<u8>,
    /// monero-wallet's serialized `Eventuality`.
    pub eventuality: Vec<u8>,
}

/// What scanning looks for besides outputs to the group.
#[derive(Clone, Debug, Default)]
pub struct Watched {
    /// Bitcoin: outputs whose spends are reported.
    pub outputs: BTreeSet<OutputId>,
    /// Monero: pending plans' Eventualities; a transaction matching one is reported as a
    /// [`Completion`].
    pub eventualities: Vec<(PlanId, MoneroEventuality)>,
}

/// A watched output of the group spent in a block (Bitcoin), and the transaction that spent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    /// The output spent.
    pub output: OutputId,
    /// The spending transaction's id.
    pub transaction: Vec<u8>,
}

/// A transaction in a block that meets a plan's Eventuality (Monero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The plan.
    pub plan: PlanId,
    /// The transaction's hash.
    pub transaction: Vec<u8>,
}

/// A block reduced to what the processor needs from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedBlock {
    /// The block's hash.
    pub id: BlockId,
    /// The hash of the block it builds on, checked against the block scanned before it.
    pub parent: BlockId,
    /// The height the block commits to, if it commits to one (Bitcoin: BIP34's coinbase
    /// height; Monero: its miner transaction's input), checked against the height it was
    /// fetched for.
    pub height: Option<BlockHeight>,
    /// Outputs to the group's keys, in block order (transaction, then output index).
    pub outputs: Vec<ReceivedOutput>,
    /// Spends of the watched outputs, in block order (Bitcoin).
    pub spends: Vec<Spend>,
    /// Transactions meeting a watched Eventuality, in block order (Monero).
    pub completions: Vec<Completion>,
    /// Monero: the group's own transactions (those paying its change address), by hash, pruned
    /// and serialized, so a plan made later can still recognise its completion.
    pub own_transactions: Vec<([u8; 32], Vec<u8>)>,
}

/// Parses `bytes` as a block of `chain` and scans it for outputs to `keys`.
pub fn scan_block(chain: ExternalChain, bytes: &[u8], keys: &[ScanKey]) -> Result<ScannedBlock, ChainError> {
    scan_block_watching(chain, bytes, keys, &Watched::default())
}

/// [`scan_block`], also reporting what of `watched` the block resolves: how a plan's
/// transaction is recognised on chain.
pub fn scan_block_watching(
    chain: ExternalChain,
    bytes: &[u8],
    keys: &[ScanKey],
    watched: &Watched,
) -> Result<ScannedBlock, ChainError> {
    match chain {
        ExternalChain::Bitcoin => bitcoin::scan_block(bytes, keys, &watched.outputs),
        ExternalChain::Monero => monero::scan_block(bytes, keys, &watched.eventualities),
    }
}
