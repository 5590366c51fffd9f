//! The chain itself: blocks (best chain and orphans), UTXO set with undo data, mempool, mining
//! and reorganisations.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::consensus::encode;
use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::script::Builder;
use bitcoin::secp256k1::{schnorr, Message};
use bitcoin::sighash::{Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid,
    Weight, Witness,
};
use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::sign::{keypair_from_rng, output_key, p2tr_script, secp, seeded_rng};

/// Regtest's compact target: any hash below `0x7fffff << 232` is valid proof of work, so about
/// every second nonce works.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Blocks a coinbase output must wait before it can be spent, as in Bitcoin.
pub const DEFAULT_COINBASE_MATURITY: u64 = 100;
/// Timestamp of the genesis block; block `h` is stamped `GENESIS_TIME + 600 * h`.
pub const GENESIS_TIME: u32 = 1_700_000_000;
/// Regtest's halving interval, so long simulations see the subsidy change.
pub const SUBSIDY_HALVING_INTERVAL: u64 = 150;
/// Pushed in every coinbase scriptSig after the BIP34 height.
pub const COINBASE_TAG: [u8; 8] = *b"mock-btc";

const BLOCK_INTERVAL_SECS: u64 = 600;
const INITIAL_SUBSIDY_SAT: u64 = 50 * 100_000_000;
/// Bitcoin Core's standardness limit on a transaction's weight.
const MAX_TX_WEIGHT: u64 = 400_000;
/// Bitcoin Core's `-datacarriersize` default: the largest standard OP_RETURN script.
pub const MAX_DATA_CARRIER_BYTES: usize = 83;
/// Bitcoin Core's `-minrelaytxfee` default (1,000 sat/kvB).
pub const MIN_RELAY_SAT_PER_VB: u64 = 1;
/// Weight left for the coinbase when filling a block.
const COINBASE_WEIGHT_RESERVE: u64 = 4_000;
/// BIP141 witness commitment header: OP_RETURN, push 36, 0xaa21a9ed.
const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
/// The coinbase's witness reserved value (BIP141); Bitcoin Core uses zeros.
const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// The block subsidy at `height`: 50 BTC halving every [`SUBSIDY_HALVING_INTERVAL`] blocks.
pub fn block_subsidy(height: u64) -> Amount {
    let halvings = height / SUBSIDY_HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat(INITIAL_SUBSIDY_SAT >> halvings)
}

/// Why the mempool refused a transaction. Input indices refer to the rejected transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxRejected {
    #[error("transaction has no inputs")]
    NoInputs,
    #[error("transaction has no outputs")]
    NoOutputs,
    #[error("output {index} of {value} is dust for its script (Bitcoin Core's minimum is {minimum})")]
    Dust { index: usize, value: Amount, minimum: Amount },
    #[error("output {index}'s script is not a standard one (P2PKH, P2SH, a witness program, OP_RETURN)")]
    NonStandardScript { index: usize },
    #[error("output {index}'s OP_RETURN script is {len} bytes, above Bitcoin Core's {MAX_DATA_CARRIER_BYTES}")]
    DataCarrierTooLarge { index: usize, len: usize },
    #[error("more than one OP_RETURN output")]
    MultipleDataCarriers,
    #[error("fee {fee} is below the minimum relay fee {minimum} ({MIN_RELAY_SAT_PER_VB} sat/vB)")]
    FeeBelowMinimumRelay { fee: Amount, minimum: Amount },
    #[error("input {index} spends the null outpoint (coinbases are only created by mining)")]
    NullPrevout { index: usize },
    #[error("transaction weight {weight} exceeds {MAX_TX_WEIGHT}")]
    TooLarge { weight: u64 },
    #[error("an output value or the output total exceeds the money supply")]
    OutputValueOutOfRange,
    #[error("outpoint {outpoint} is spent twice by this transaction")]
    DuplicateInput { outpoint: OutPoint },
    #[error("lock time {lock_time} is not final in the next block")]
    NotFinal { lock_time: LockTime },
    #[error("transaction {txid} is already in the mempool")]
    AlreadyInMempool { txid: Txid },
    #[error("transaction {txid} is already confirmed")]
    AlreadyConfirmed { txid: Txid },
    #[error("input {index} spends {outpoint}, which does not exist")]
    MissingInput { index: usize, outpoint: OutPoint },
    #[error("input {index} spends {outpoint}, already spent by mempool transaction {by}")]
    SpentInMempool { index: usize, outpoint: OutPoint, by: Txid },
    #[error("input {index} spends {outpoint}, already spent by confirmed transaction {by}")]
    SpentOnChain { index: usize, outpoint: OutPoint, by: Txid },
    #[error(
        "input {index} spends coinbase output {outpoint} with {confirmations} confirmations \
         (next block), {required} required"
    )]
    ImmatureCoinbase { index: usize, outpoint: OutPoint, confirmations: u64, required: u64 },
    #[error("outputs ({outputs}) exceed inputs ({inputs})")]
    ValueCreated { inputs: Amount, outputs: Amount },
    #[error("input {index} spends a non-Taproot output")]
    NonTaprootInput { index: usize },
    #[error("input {index} spends a P2TR output whose key is not on the curve")]
    InvalidOutputKey { index: usize },
    #[error("input {index} has a non-empty scriptSig")]
    NonEmptyScriptSig { index: usize },
    #[error("input {index}'s witness is not a single-element key-path spend")]
    NotKeyPathSpend { index: usize },
    #[error("input {index}'s signature is not a 64-byte or 65-byte (explicit type) BIP340 signature")]
    InvalidSignatureEncoding { index: usize },
    #[error("input {index}'s sighash type cannot be computed for this transaction")]
    SighashUnavailable { index: usize },
    #[error("input {index}'s signature does not verify against the prevout's output key")]
    BadSignature { index: usize },
}

/// Why a reorganisation could not be performed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReorgError {
    #[error("cannot replace {depth} blocks of a chain whose tip is at height {tip_height} (genesis is fixed)")]
    TooDeep { depth: usize, tip_height: u64 },
}

/// An unspent output with what validation needs to know about its creation.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Coin {
    txout: TxOut,
    height: u64,
    coinbase: bool,
}

#[derive(Clone, Debug)]
struct StoredBlock {
    block: Block,
    /// Height the block was built at (it may since have been orphaned).
    height: u64,
}

/// Per transaction of a connected block (in block order), the coins its inputs spent (in input
/// order), so disconnecting restores exactly what was there.
type BlockUndo = Vec<Vec<(OutPoint, Coin)>>;

#[derive(Clone, Debug)]
struct MempoolEntry {
    tx: Transaction,
    fee: Amount,
}

#[derive(Clone, Debug, Default)]
struct Mempool {
    /// In submission order, which is also a valid order to include them in a block.
    entries: Vec<MempoolEntry>,
    index: BTreeMap<Txid, usize>,
    spent: BTreeMap<OutPoint, Txid>,
    created: BTreeMap<OutPoint, TxOut>,
}

impl Mempool {
    fn insert(&mut self, tx: Transaction, txid: Txid, fee: Amount) {
        for input in &tx.input {
            self.spent.insert(input.previous_output, txid);
        }
        for (vout, txout) in (0u32..).zip(&tx.output) {
            if !txout.script_pubkey.is_op_return() {
                self.created.insert(OutPoint::new(txid, vout), txout.clone());
            }
        }
        self.index.insert(txid, self.entries.len());
        self.entries.push(MempoolEntry { tx, fee });
    }

    fn take(&mut self) -> Vec<MempoolEntry> {
        std::mem::take(self).entries
    }
}

/// A deterministic mock Bitcoin chain. See the [module documentation](super).
#[derive(Clone)]
pub struct MockBitcoin {
    seed: u64,
    /// Draws for random reorganisations only, so other calls do not shift them.
    rng: ChaCha20Rng,
    /// Every block ever built, best chain and orphans.
    blocks: BTreeMap<BlockHash, StoredBlock>,
    /// The best chain by height; never empty (genesis cannot be reorganised away).
    best: Vec<BlockHash>,
    /// Undo data of each best-chain block, by height.
    undo: Vec<BlockUndo>,
    utxos: BTreeMap<OutPoint, Coin>,
    /// Which best-chain transaction spent an outpoint, to tell a double spend from a bad outpoint.
    spent_by: BTreeMap<OutPoint, Txid>,
    /// Height of every best-chain transaction.
    confirmed: BTreeMap<Txid, u64>,
    mempool: Mempool,
    miner_script: ScriptBuf,
    coinbase_maturity: u64,
    /// Whether Bitcoin Core's relay policy (standardness, minimum relay fee) applies on top of
    /// consensus; off only to probe consensus rules with non-standard transactions.
    relay_policy: bool,
    /// Incremented by every reorganisation and written into coinbases, so replacement blocks
    /// always differ from the blocks they replace.
    branch: u32,
    reorg_per_mille: u32,
    reorg_max_depth: usize,
}

impl fmt::Debug for MockBitcoin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockBitcoin")
            .field("seed", &self.seed)
            .field("tip_height", &self.tip_height())
            .field("tip_hash", &self.tip_hash())
            .field("mempool", &self.mempool.entries.len())
            .field("utxos", &self.utxos.len())
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

impl MockBitcoin {
    /// Turns Bitcoin Core's relay policy off (as `-acceptnonstdtxn` and `-minrelaytxfee=0`
    /// would) or on again (the default), to test consensus rules with non-standard transactions.
    pub fn set_relay_policy(&mut self, enforced: bool) {
        self.relay_policy = enforced;
    }

    /// A chain holding only its genesis block, which pays a key derived from `seed`.
    pub fn new(seed: u64) -> Self {
        let miner = keypair_from_rng(&mut seeded_rng(b"miner", seed));
        let mut chain = MockBitcoin {
            seed,
            rng: seeded_rng(b"chain", seed),
            blocks: BTreeMap::new(),
            best: Vec::new(),
            undo: Vec::new(),
            utxos: BTreeMap::new(),
            spent_by: BTreeMap::new(),
            confirmed: BTreeMap::new(),
            mempool: Mempool::default(),
            miner_script: p2tr_script(miner.x_only_public_key().0),
            coinbase_maturity: DEFAULT_COINBASE_MATURITY,
            relay_policy: true,
            branch: 0,
            reorg_per_mille: 0,
            reorg_max_depth: 0,
        };
        let genesis = chain.assemble(0, BlockHash::all_zeros(), Vec::new(), Amount::ZERO);
        chain.connect(genesis);
        chain
    }

    /// The seed this chain was built from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    // ---- Read access -------------------------------------------------------------------------

    /// Height of the best chain's tip (genesis is 0).
    pub fn tip_height(&self) -> u64 {
        self.best.len() as u64 - 1
    }

    /// Hash of the best chain's tip.
    pub fn tip_hash(&self) -> BlockHash {
        // `best` always holds at least genesis.
        self.best[self.best.len() - 1]
    }

    /// The best chain's block at `height`.
    pub fn block(&self, height: u64) -> Option<&Block> {
        self.block_by_hash(&self.block_hash(height)?)
    }

    /// The hash of the best chain's block at `height`.
    pub fn block_hash(&self, height: u64) -> Option<BlockHash> {
        self.best.get(usize::try_from(height).ok()?).copied()
    }

    /// Consensus encoding of the best chain's block at `height`.
    pub fn block_bytes(&self, height: u64) -> Option<Vec<u8>> {
        self.block(height).map(encode::serialize)
    }

    /// Any block this chain ever built, including orphaned ones.
    pub fn block_by_hash(&self, hash: &BlockHash) -> Option<&Block> {
        self.blocks.get(hash).map(|stored| &stored.block)
    }

    /// The height a block (best or orphaned) was built at.
    pub fn height_of(&self, hash: &BlockHash) -> Option<u64> {
        self.blocks.get(hash).map(|stored| stored.height)
    }

    /// Whether `hash` is on the best chain.
    pub fn is_in_best_chain(&self, hash: &BlockHash) -> bool {
        self.height_of(hash).and_then(|height| self.block_hash(height)) == Some(*hash)
    }

    /// An unspent output as of the tip (mempool spends and outputs are not reflected).
    pub fn utxo(&self, outpoint: &OutPoint) -> Option<TxOut> {
        self.utxos.get(outpoint).map(|coin| coin.txout.clone())
    }

    /// The whole UTXO set as of the tip, in outpoint order. `OP_RETURN` outputs are never in it,
    /// as in Bitcoin Core.
    pub fn utxos(&self) -> impl ExactSizeIterator<Item = (&OutPoint, &TxOut)> + '_ {
        self.utxos.iter().map(|(outpoint, coin)| (outpoint, &coin.txout))
    }

    /// Outputs paying `script_pubkey` that a transaction submitted now could spend: confirmed
    /// (and, for coinbases, mature) or created in the mempool, and not spent by the mempool.
    pub fn spendable_outputs(&self, script_pubkey: &Script) -> Vec<(OutPoint, TxOut)> {
        let next_height = self.tip_height() + 1;
        let confirmed =
            self.utxos.iter().filter(|(_, coin)| !coin.coinbase || next_height - coin.height >= self.coinbase_maturity);
        let confirmed = confirmed.map(|(outpoint, coin)| (outpoint, &coin.txout));
        confirmed
            .chain(&self.mempool.created)
            .filter(|(outpoint, txout)| {
                txout.script_pubkey.as_script() == script_pubkey && !self.mempool.spent.contains_key(outpoint)
            })
            .map(|(outpoint, txout)| (*outpoint, txout.clone()))
            .collect()
    }

    /// The mempool's transactions in submission order.
    pub fn mempool(&self) -> impl ExactSizeIterator<Item = &Transaction> + '_ {
        self.mempool.entries.iter().map(|entry| &entry.tx)
    }

    /// A transaction on the best chain or in the mempool.
    pub fn transaction(&self, txid: &Txid) -> Option<&Transaction> {
        if let Some(position) = self.mempool.index.get(txid) {
            return self.mempool.entries.get(*position).map(|entry| &entry.tx);
        }
        let block = self.block(self.confirmation_height(txid)?)?;
        block.txdata.iter().find(|tx| tx.compute_txid() == *txid)
    }

    /// The height of the best-chain block that includes `txid`.
    pub fn confirmation_height(&self, txid: &Txid) -> Option<u64> {
        self.confirmed.get(txid).copied()
    }

    /// The fee rate wallets should pay for the next block, 1..=20 sat/vB. Deterministic in the
    /// seed and the tip height, and different from block to block like a real estimator.
    pub fn fee_rate_sat_per_vb(&self) -> u64 {
        1 + splitmix64(self.seed ^ self.tip_height().wrapping_mul(0x9e37_79b9_7f4a_7c15)) % 20
    }

    /// Confirmations (counting the block that would include the spend) a coinbase output needs.
    pub fn coinbase_maturity(&self) -> u64 {
        self.coinbase_maturity
    }

    /// The script coinbases pay when mined with [`MockBitcoin::mine`].
    pub fn miner_script(&self) -> &Script {
        &self.miner_script
    }

    // ---- Configuration -----------------------------------------------------------------------

    /// Changes coinbase maturity; mempool transactions no longer valid under it are dropped.
    pub fn set_coinbase_maturity(&mut self, blocks: u64) {
        self.coinbase_maturity = blocks;
        self.revalidate_mempool();
    }

    /// Sets the script later coinbases pay.
    pub fn set_miner_script(&mut self, script_pubkey: ScriptBuf) {
        self.miner_script = script_pubkey;
    }

    /// Makes [`MockBitcoin::mine`] reorganise before mining with probability `per_mille / 1000`,
    /// replacing 1..=`max_depth` blocks (uniform, capped at the tip height). Zero disables it.
    pub fn set_reorg_rate(&mut self, per_mille: u32, max_depth: usize) {
        self.reorg_per_mille = per_mille.min(1000);
        self.reorg_max_depth = max_depth;
    }

    // ---- Transactions ------------------------------------------------------------------------

    /// Admits `tx` to the mempool if it is valid on top of the tip and the mempool.
    pub fn submit(&mut self, tx: Transaction) -> Result<Txid, TxRejected> {
        let (txid, fee) = self.check(&tx)?;
        self.mempool.insert(tx, txid, fee);
        Ok(txid)
    }

    /// Checks `tx` against the tip and mempool, returning its txid and fee.
    fn check(&self, tx: &Transaction) -> Result<(Txid, Amount), TxRejected> {
        if tx.input.is_empty() {
            return Err(TxRejected::NoInputs);
        }
        if tx.output.is_empty() {
            return Err(TxRejected::NoOutputs);
        }
        let weight = tx.weight().to_wu();
        if weight > MAX_TX_WEIGHT {
            return Err(TxRejected::TooLarge { weight });
        }
        let mut outputs = Amount::ZERO;
        for txout in &tx.output {
            outputs = outputs
                .checked_add(txout.value)
                .filter(|total| *total <= Amount::MAX_MONEY)
                .ok_or(TxRejected::OutputValueOutOfRange)?;
        }
        let mut seen = BTreeSet::new();
        for (index, input) in tx.input.iter().enumerate() {
            if input.previous_output.is_null() {
                return Err(TxRejected::NullPrevout { index });
            }
            if !seen.insert(input.previous_output) {
                return Err(TxRejected::DuplicateInput { outpoint: input.previous_output });
            }
        }
        let next_height = self.tip_height() + 1;
        if !self.is_final(tx, next_height) {
            return Err(TxRejected::NotFinal { lock_time: tx.lock_time });
        }

        let txid = tx.compute_txid();
        if self.mempool.index.contains_key(&txid) {
            return Err(TxRejected::AlreadyInMempool { txid });
        }
        if self.confirmed.contains_key(&txid) {
            return Err(TxRejected::AlreadyConfirmed { txid });
        }

        let mut prevouts = Vec::with_capacity(tx.input.len());
        let mut inputs = Amount::ZERO;
        for (index, input) in tx.input.iter().enumerate() {
            let prevout = self.resolve_input(index, input.previous_output, next_height)?;
            // Every input comes from a UTXO set whose total is bounded by the subsidies paid.
            inputs = inputs.checked_add(prevout.value).ok_or(TxRejected::OutputValueOutOfRange)?;
            prevouts.push(prevout);
        }
        if inputs < outputs {
            return Err(TxRejected::ValueCreated { inputs, outputs });
        }

        let mut cache = SighashCache::new(tx);
        for (index, input) in tx.input.iter().enumerate() {
            verify_key_spend(&mut cache, index, input, &prevouts)?;
        }
        // Policy after consensus (Bitcoin Core checks it first; here the consensus checks keep
        // their own errors), as Bitcoin Core's defaults: standard output scripts only, at most
        // one OP_RETURN of at most 83 bytes, no output below its script's dust limit (what
        // spending it costs at 3 sat/vB; an OP_RETURN output carries nothing to spend), and a
        // fee of at least the minimum relay fee.
        let fee = inputs - outputs;
        if !self.relay_policy {
            return Ok((txid, fee));
        }
        let mut data_carriers = 0;
        for (index, txout) in tx.output.iter().enumerate() {
            let script = &txout.script_pubkey;
            if script.is_op_return() {
                if script.len() > MAX_DATA_CARRIER_BYTES {
                    return Err(TxRejected::DataCarrierTooLarge { index, len: script.len() });
                }
                data_carriers += 1;
                continue;
            }
            if !(script.is_p2pkh() || script.is_p2sh() || script.is_witness_program()) {
                return Err(TxRejected::NonStandardScript { index });
            }
            let minimum = script.minimal_non_dust();
            if txout.value < minimum {
                return Err(TxRejected::Dust { index, value: txout.value, minimum });
            }
        }
        if data_carriers > 1 {
            return Err(TxRejected::MultipleDataCarriers);
        }
        let minimum = Amount::from_sat(tx.vsize() as u64 * MIN_RELAY_SAT_PER_VB);
        if fee < minimum {
            return Err(TxRejected::FeeBelowMinimumRelay { fee, minimum });
        }
        Ok((txid, fee))
    }

    /// The output an input spends, if it may be spent in the next block.
    fn resolve_input(&self, index: usize, outpoint: OutPoint, next_height: u64) -> Result<TxOut, TxRejected> {
        if let Some(by) = self.mempool.spent.get(&outpoint) {
            return Err(TxRejected::SpentInMempool { index, outpoint, by: *by });
        }
        if let Some(coin) = self.utxos.get(&outpoint) {
            let confirmations = next_height - coin.height;
            if coin.coinbase && confirmations < self.coinbase_maturity {
                return Err(TxRejected::ImmatureCoinbase {
                    index,
                    outpoint,
                    confirmations,
                    required: self.coinbase_maturity,
                });
            }
            return Ok(coin.txout.clone());
        }
        if let Some(txout) = self.mempool.created.get(&outpoint) {
            return Ok(txout.clone());
        }
        if let Some(by) = self.spent_by.get(&outpoint) {
            return Err(TxRejected::SpentOnChain { index, outpoint, by: *by });
        }
        Err(TxRejected::MissingInput { index, outpoint })
    }

    /// Bitcoin Core's IsFinalTx for inclusion at `height` (relative lock times are not modelled).
    fn is_final(&self, tx: &Transaction, height: u64) -> bool {
        if !tx.is_lock_time_enabled() {
            return true;
        }
        match tx.lock_time {
            LockTime::Blocks(lock) => u64::from(lock.to_consensus_u32()) < height,
            LockTime::Seconds(lock) => lock.to_consensus_u32() < block_time(height),
        }
    }

    /// Re-admits the mempool's transactions in order, dropping the ones no longer valid.
    fn revalidate_mempool(&mut self) {
        let txs = self.mempool.take().into_iter().map(|entry| entry.tx).collect();
        self.admit(txs);
    }

    /// Admits what it can of `txs`, in order, and hands back the rest (in order).
    fn admit(&mut self, txs: Vec<Transaction>) -> Vec<Transaction> {
        let mut rejected = Vec::new();
        for tx in txs {
            match self.check(&tx) {
                Ok((txid, fee)) => self.mempool.insert(tx, txid, fee),
                Err(_) => rejected.push(tx),
            }
        }
        rejected
    }

    // ---- Mining and reorganisation -----------------------------------------------------------

    /// Mines one block on the tip paying the miner script, holding the mempool (in submission
    /// order, up to the block weight limit). With a reorg rate set, it may first replace the last
    /// 1..=max_depth blocks; the tip is then still one higher than before. Returns the new tip.
    pub fn mine(&mut self) -> BlockHash {
        if let Some(depth) = self.draw_reorg_depth() {
            return self.replace_tip(depth);
        }
        self.mine_block()
    }

    /// [`MockBitcoin::mine`], paying `script_pubkey` (every block mined by this call pays it).
    pub fn mine_to(&mut self, script_pubkey: &Script) -> BlockHash {
        let miner = std::mem::replace(&mut self.miner_script, script_pubkey.to_owned());
        let tip = self.mine();
        self.miner_script = miner;
        tip
    }

    /// Calls [`MockBitcoin::mine`] `count` times, returning each resulting tip.
    pub fn mine_blocks(&mut self, count: usize) -> Vec<BlockHash> {
        (0..count).map(|_| self.mine()).collect()
    }

    /// Replaces the last `depth` best-chain blocks with `depth + 1` new ones (so the chain grows
    /// by one). Transactions of the orphaned blocks and the mempool are re-included, in their
    /// order, in the first new block where they are valid; those never valid again are dropped.
    pub fn reorg(&mut self, depth: usize) -> Result<BlockHash, ReorgError> {
        let tip_height = self.tip_height();
        if depth as u64 > tip_height {
            return Err(ReorgError::TooDeep { depth, tip_height });
        }
        Ok(self.replace_tip(depth))
    }

    fn draw_reorg_depth(&mut self) -> Option<usize> {
        if self.reorg_per_mille == 0 || self.reorg_max_depth == 0 {
            return None;
        }
        if self.rng.next_u32() % 1000 >= self.reorg_per_mille {
            return None;
        }
        let depth = 1 + self.rng.next_u64() % self.reorg_max_depth as u64;
        let depth = depth.min(self.tip_height());
        (depth > 0).then_some(depth as usize)
    }

    /// `reorg` without the depth check (`depth` must not exceed the tip height).
    fn replace_tip(&mut self, depth: usize) -> BlockHash {
        let mut orphaned = Vec::with_capacity(depth);
        for _ in 0..depth {
            if let Some(hash) = self.disconnect_tip() {
                orphaned.push(hash);
            }
        }
        let mut pending: Vec<Transaction> = Vec::new();
        for hash in orphaned.iter().rev() {
            if let Some(stored) = self.blocks.get(hash) {
                pending.extend(stored.block.txdata.iter().skip(1).cloned());
            }
        }
        pending.extend(self.mempool.take().into_iter().map(|entry| entry.tx));

        self.branch = self.branch.wrapping_add(1);
        let mut tip = self.tip_hash();
        for _ in 0..=depth {
            // A transaction may only become valid at a later height (a coinbase maturing), so the
            // rejected ones are retried for every new block.
            pending = self.admit(pending);
            tip = self.mine_block();
        }
        self.admit(pending);
        tip
    }

    fn mine_block(&mut self) -> BlockHash {
        let height = self.tip_height() + 1;
        let mut weight = COINBASE_WEIGHT_RESERVE;
        let mut included = Vec::new();
        let mut fees = Amount::ZERO;
        let mut leftover = Vec::new();
        for entry in self.mempool.take() {
            let tx_weight = entry.tx.weight().to_wu();
            // Stop at the first transaction that does not fit so children never precede parents.
            if leftover.is_empty() && weight + tx_weight <= Weight::MAX_BLOCK.to_wu() {
                weight += tx_weight;
                // Fees are bounded by the value in existence, far below `u64::MAX` satoshis.
                fees += entry.fee;
                included.push(entry.tx);
            } else {
                leftover.push(entry.tx);
            }
        }
        let block = self.assemble(height, self.tip_hash(), included, fees);
        let hash = self.connect(block);
        self.admit(leftover);
        hash
    }

    /// Builds a block at `height` on `prev`: coinbase (BIP34 height, tag, seed, branch; subsidy
    /// plus fees to the miner script; BIP141 witness commitment), `txs`, merkle root, and a nonce
    /// meeting [`REGTEST_BITS`].
    fn assemble(&self, height: u64, prev: BlockHash, txs: Vec<Transaction>, fees: Amount) -> Block {
        let script_sig = Builder::new()
            .push_int(i64::try_from(height).unwrap_or(i64::MAX))
            .push_slice(COINBASE_TAG)
            .push_slice(self.seed.to_le_bytes())
            .push_slice(self.branch.to_le_bytes())
            .into_script();
        let coinbase = Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig,
                sequence: Sequence::MAX,
                witness: Witness::from_slice(&[WITNESS_RESERVED_VALUE]),
            }],
            output: vec![TxOut { value: block_subsidy(height) + fees, script_pubkey: self.miner_script.clone() }],
        };
        let mut txdata = Vec::with_capacity(txs.len() + 1);
        txdata.push(coinbase);
        txdata.extend(txs);

        let mut block = Block {
            header: Header {
                version: BlockVersion::from_consensus(0x2000_0000),
                prev_blockhash: prev,
                merkle_root: TxMerkleNode::all_zeros(),
                time: block_time(height),
                bits: CompactTarget::from_consensus(REGTEST_BITS),
                nonce: 0,
            },
            txdata,
        };
        // The witness root ignores the coinbase, so it can be computed before the commitment is
        // added to the coinbase; Core always commits, even to a block without witnesses.
        if let Some(witness_root) = block.witness_root() {
            let commitment = Block::compute_witness_commitment(&witness_root, &WITNESS_RESERVED_VALUE);
            let mut script = WITNESS_COMMITMENT_HEADER.to_vec();
            script.extend_from_slice(commitment.as_byte_array());
            block.txdata[0].output.push(TxOut { value: Amount::ZERO, script_pubkey: ScriptBuf::from_bytes(script) });
        }
        if let Some(root) = block.compute_merkle_root() {
            block.header.merkle_root = root;
        }
        grind(&mut block.header);
        block
    }

    /// Applies a block to the UTXO set on top of the tip. The block was assembled from a mempool
    /// validated against this tip, so every input is present.
    fn connect(&mut self, block: Block) -> BlockHash {
        let height = self.best.len() as u64;
        let hash = block.block_hash();
        let mut undo: BlockUndo = Vec::with_capacity(block.txdata.len());
        for (position, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            let coinbase = position == 0;
            let mut spent = Vec::new();
            if !coinbase {
                for input in &tx.input {
                    let outpoint = input.previous_output;
                    if let Some(coin) = self.utxos.remove(&outpoint) {
                        self.spent_by.insert(outpoint, txid);
                        spent.push((outpoint, coin));
                    } else {
                        debug_assert!(false, "mined a block spending missing {outpoint}");
                    }
                }
            }
            for (vout, txout) in (0u32..).zip(&tx.output) {
                // Provably unspendable, so never in the set (as in Bitcoin Core).
                if !txout.script_pubkey.is_op_return() {
                    let coin = Coin { txout: txout.clone(), height, coinbase };
                    self.utxos.insert(OutPoint::new(txid, vout), coin);
                }
            }
            self.confirmed.insert(txid, height);
            undo.push(spent);
        }
        self.best.push(hash);
        self.undo.push(undo);
        self.blocks.insert(hash, StoredBlock { block, height });
        hash
    }

    /// Undoes the tip block (never genesis), returning its hash. The block stays stored.
    fn disconnect_tip(&mut self) -> Option<BlockHash> {
        if self.best.len() <= 1 {
            return None;
        }
        let hash = self.best.pop()?;
        let undo = self.undo.pop()?;
        let stored = self.blocks.get(&hash)?;
        for (tx, spent) in stored.block.txdata.iter().zip(undo).rev() {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() {
                self.utxos.remove(&OutPoint::new(txid, vout as u32));
            }
            self.confirmed.remove(&txid);
            for (outpoint, coin) in spent.into_iter().rev() {
                self.spent_by.remove(&outpoint);
                self.utxos.insert(outpoint, coin);
            }
        }
        Some(hash)
    }
}

/// Verifies input `index` as a BIP341 key-path spend of `prevouts[index]`.
fn verify_key_spend(
    cache: &mut SighashCache<&Transaction>,
    index: usize,
    input: &TxIn,
    prevouts: &[TxOut],
) -> Result<(), TxRejected> {
    let script_pubkey = &prevouts[index].script_pubkey;
    if !script_pubkey.is_p2tr() {
        return Err(TxRejected::NonTaprootInput { index });
    }
    let key = output_key(script_pubkey).ok_or(TxRejected::InvalidOutputKey { index })?;
    if !input.script_sig.is_empty() {
        return Err(TxRejected::NonEmptyScriptSig { index });
    }
    // One element: a signature. Two or more would be a script-path spend or carry an annex.
    let signature = match (input.witness.len(), input.witness.nth(0)) {
        (1, Some(signature)) => signature,
        _ => return Err(TxRejected::NotKeyPathSpend { index }),
    };
    let (signature, sighash_type) = match signature {
        [signature @ .., sighash_byte] if signature.len() == 64 => {
            // BIP341: an explicit 0x00 byte is invalid; default must be the 64-byte form.
            if *sighash_byte == 0 {
                return Err(TxRejected::InvalidSignatureEncoding { index });
            }
            let sighash_type = TapSighashType::from_consensus_u8(*sighash_byte)
                .map_err(|_| TxRejected::InvalidSignatureEncoding { index })?;
            (signature, sighash_type)
        }
        signature if signature.len() == 64 => (signature, TapSighashType::Default),
        _ => return Err(TxRejected::InvalidSignatureEncoding { index }),
    };
    let signature =
        schnorr::Signature::from_slice(signature).map_err(|_| TxRejected::InvalidSignatureEncoding { index })?;
    let sighash = cache
        .taproot_key_spend_signature_hash(index, &Prevouts::All(prevouts), sighash_type)
        .map_err(|_| TxRejected::SighashUnavailable { index })?;
    secp()
        .verify_schnorr(&signature, &Message::from_digest(sighash.to_byte_array()), &key)
        .map_err(|_| TxRejected::BadSignature { index })
}

/// Block timestamps follow the height, not a clock.
fn block_time(height: u64) -> u32 {
    let offset = height.saturating_mul(BLOCK_INTERVAL_SECS);
    u32::try_from(u64::from(GENESIS_TIME).saturating_add(offset)).unwrap_or(u32::MAX)
}

/// Tries nonces until the header meets its own target. At regtest difficulty about half of
/// all hashes qualify; the time is bumped in the (theoretical) case no nonce does.
fn grind(header: &mut Header) {
    let target = Target::from_compact(header.bits);
    loop {
        for nonce in 0..=u32::MAX {
            header.nonce = nonce;
            if header.validate_pow(target).is_ok() {
                return;
            }
        }
        header.time = header.time.wrapping_add(1);
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
