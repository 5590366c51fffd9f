//! The chain: blocks, the RingCT output set, key images, the mempool, mining and reorgs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use monero_wallet::{
    address::MoneroAddress,
    block::{Block, BlockHeader},
    ed25519::{CompressedPoint, Point, Scalar},
    extra::ExtraField,
    interface::ScannableBlock,
    transaction::{Input, Output, Pruned, Timelock, Transaction, TransactionPrefix},
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::{
    crypto::{add, derive_output, miner_uniqueness, mul_base, tx_key, zero_commit, WalletKeys},
    validate::{validate, PoolTx, TxRejected},
    BLOCK_TIME, COINBASE_LOCK, GENESIS_TIMESTAMP, HARDFORK_VERSION, LOCK_WINDOW,
};

/// Amount of each premine output (1 XMR); nobody can spend them, they only serve as decoys.
const PREMINE_AMOUNT: u64 = 1_000_000_000_000;

/// Parameters fixed at genesis.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MoneroConfig {
    /// Blocks a miner output stays locked: block `h`'s miner transaction is timelocked to
    /// `h + coinbase_lock`, so it is spendable from block `h + coinbase_lock` on (monerod: 60).
    pub coinbase_lock: usize,
    /// Piconero each miner transaction pays on top of the included fees.
    pub block_reward: u64,
    /// Unlocked outputs to nobody's keys in the genesis miner transaction, seeding decoy
    /// selection (see the module doc). monero-wallet refuses to pick decoys from fewer than ~76
    /// old outputs, so with a small premine deposits fail until the chain has grown.
    pub decoy_premine: usize,
}

impl Default for MoneroConfig {
    fn default() -> Self {
        MoneroConfig { coinbase_lock: COINBASE_LOCK, block_reward: 600_000_000_000, decoy_premine: 1000 }
    }
}

/// A RingCT output of the best chain, by global index.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ChainOutput {
    /// Global RingCT output index.
    pub index: u64,
    /// One-time output key.
    pub key: CompressedPoint,
    /// Amount commitment (`G + a*H` for cleartext miner amounts).
    pub commitment: Point,
    /// Height of the block that created it.
    pub height: usize,
    /// Hash of the transaction that created it.
    pub transaction: [u8; 32],
    /// Position among that transaction's outputs.
    pub index_in_transaction: usize,
    /// That transaction's additional timelock.
    pub timelock: Timelock,
}

/// Where a key image is spent.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyImageStatus {
    /// By a transaction in the block at this height of the best chain.
    OnChain {
        /// Block height.
        height: usize,
    },
    /// By this mempool transaction.
    Mempool {
        /// Transaction hash.
        transaction: [u8; 32],
    },
}

/// What a reorganisation did.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReorgOutcome {
    /// Hashes of the replaced blocks, lowest first.
    pub orphaned: Vec<[u8; 32]>,
    /// Hashes of the replacement blocks (one more than orphaned), lowest first.
    pub new_blocks: Vec<[u8; 32]>,
    /// Transactions in the mempool afterwards: still-valid orphaned ones (block order), then
    /// still-valid ones that were pending.
    pub requeued: Vec<[u8; 32]>,
    /// Orphaned or pending transactions no longer valid on the new chain, dropped.
    pub dropped: Vec<[u8; 32]>,
}

/// A reorganisation that cannot happen.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ReorgError {
    /// Depth 0 replaces nothing.
    #[error("a reorganisation must replace at least one block")]
    ZeroDepth,
    /// The genesis block is never replaced.
    #[error("cannot replace {depth} blocks of a chain whose tip is at height {tip}")]
    TooDeep {
        /// Requested depth.
        depth: usize,
        /// Current tip height.
        tip: usize,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct OutputRecord {
    pub key: CompressedPoint,
    /// `None` only for a key that does not decompress, which the mock never creates; such an
    /// output could never be a usable decoy.
    pub key_point: Option<Point>,
    pub commitment: Point,
    pub commitment_compressed: CompressedPoint,
    pub height: usize,
    pub transaction: [u8; 32],
    pub index_in_transaction: usize,
    pub timelock: Timelock,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct TxLocation {
    pub height: usize,
    pub first_output: u64,
    pub outputs: usize,
}

/// A block with its undo data: the outputs it appended start at `first_output`, the key images
/// it spent and the transactions it indexed are in `txs`.
#[derive(Clone, Debug)]
pub(crate) struct BlockRecord {
    pub block: Block,
    pub hash: [u8; 32],
    pub miner_hash: [u8; 32],
    pub txs: Vec<PoolTx>,
    pub first_output: u64,
    pub output_count: u64,
}

/// The best chain and everything derived from it.
#[derive(Clone, Debug, Default)]
pub(crate) struct ChainState {
    blocks: Vec<BlockRecord>,
    outputs: Vec<OutputRecord>,
    /// Key image -> height of the block spending it.
    spent: BTreeMap<[u8; 32], usize>,
    /// Transaction hash (miner transactions included) -> location.
    txs: BTreeMap<[u8; 32], TxLocation>,
    by_hash: BTreeMap<[u8; 32], usize>,
}

fn timestamp(height: usize) -> u64 {
    GENESIS_TIMESTAMP.saturating_add(BLOCK_TIME.saturating_mul(height as u64))
}

impl ChainState {
    pub(crate) fn tip(&self) -> usize {
        // Genesis is pushed at construction and never popped.
        self.blocks.len().saturating_sub(1)
    }

    pub(crate) fn record(&self, height: usize) -> Option<&BlockRecord> {
        self.blocks.get(height)
    }

    pub(crate) fn height_of(&self, hash: &[u8; 32]) -> Option<usize> {
        self.by_hash.get(hash).copied()
    }

    pub(crate) fn tx_location(&self, hash: &[u8; 32]) -> Option<TxLocation> {
        self.txs.get(hash).copied()
    }

    pub(crate) fn tx_height(&self, hash: &[u8; 32]) -> Option<usize> {
        self.txs.get(hash).map(|l| l.height)
    }

    pub(crate) fn key_image_height(&self, key_image: &[u8; 32]) -> Option<usize> {
        self.spent.get(key_image).copied()
    }

    pub(crate) fn output(&self, index: u64) -> Option<&OutputRecord> {
        usize::try_from(index).ok().and_then(|i| self.outputs.get(i))
    }

    pub(crate) fn output_count(&self) -> u64 {
        self.outputs.len() as u64
    }

    /// Whether `out` may be spent (or used as a decoy) in the block after `tip`: monerod's
    /// 10-block spendable age plus the creating transaction's timelock. Time-based timelocks are
    /// judged against the tip's timestamp, or always locked when `time_locks` is false (monero-
    /// interface's deterministic evaluation).
    pub(crate) fn unlocked(&self, out: &OutputRecord, tip: usize, time_locks: bool) -> bool {
        let next = tip.saturating_add(1);
        if out.height.saturating_add(LOCK_WINDOW) > next {
            return false;
        }
        match out.timelock {
            Timelock::None => true,
            Timelock::Block(block) => block <= next,
            Timelock::Time(time) => time_locks && time <= timestamp(tip).saturating_add(BLOCK_TIME),
        }
    }

    /// Appends `block` (whose non-miner transactions are `txs`, in order) and indexes it.
    fn apply(&mut self, block: Block, txs: Vec<PoolTx>) -> [u8; 32] {
        let hash = block.hash();
        let height = self.blocks.len();
        let first_output = self.output_count();

        let miner = block.miner_transaction();
        let miner_hash = miner.hash();
        let timelock = miner.prefix().additional_timelock;
        // Premine outputs share one amount: commit once.
        let mut cached: Option<(u64, Point, CompressedPoint)> = None;
        for (i, out) in miner.prefix().outputs.iter().enumerate() {
            let amount = out.amount.unwrap_or(0);
            let (commitment, commitment_compressed) = match cached {
                Some((a, c, cc)) if a == amount => (c, cc),
                _ => {
                    let c = zero_commit(amount);
                    let cc = c.compress();
                    cached = Some((amount, c, cc));
                    (c, cc)
                }
            };
            self.outputs.push(OutputRecord {
                key: out.key,
                key_point: out.key.decompress(),
                commitment,
                commitment_compressed,
                height,
                transaction: miner_hash,
                index_in_transaction: i,
                timelock,
            });
        }
        let miner_outputs = miner.prefix().outputs.len();
        self.txs.insert(miner_hash, TxLocation { height, first_output, outputs: miner_outputs });

        for ptx in &txs {
            let tx_first = self.output_count();
            let prefix = ptx.tx.prefix();
            for (i, ((out, key), commitment)) in
                prefix.outputs.iter().zip(&ptx.output_keys).zip(&ptx.commitments).enumerate()
            {
                self.outputs.push(OutputRecord {
                    key: out.key,
                    key_point: Some(*key),
                    commitment: *commitment,
                    commitment_compressed: commitment.compress(),
                    height,
                    transaction: ptx.hash,
                    index_in_transaction: i,
                    timelock: prefix.additional_timelock,
                });
            }
            for ki in &ptx.key_images {
                self.spent.insert(*ki, height);
            }
            self.txs.insert(ptx.hash, TxLocation { height, first_output: tx_first, outputs: prefix.outputs.len() });
        }

        self.by_hash.insert(hash, height);
        let output_count = self.output_count() - first_output;
        self.blocks.push(BlockRecord { block, hash, miner_hash, txs, first_output, output_count });
        hash
    }

    /// Removes the tip block (never genesis) and undoes its effects.
    fn pop(&mut self) -> Option<BlockRecord> {
        if self.blocks.len() <= 1 {
            return None;
        }
        let record = self.blocks.pop()?;
        for ptx in &record.txs {
            for ki in &ptx.key_images {
                self.spent.remove(ki);
            }
            self.txs.remove(&ptx.hash);
        }
        self.txs.remove(&record.miner_hash);
        self.by_hash.remove(&record.hash);
        self.outputs.truncate(usize::try_from(record.first_output).unwrap_or(usize::MAX));
        Some(record)
    }
}

/// Transactions waiting for a block, in submission order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Mempool {
    txs: Vec<PoolTx>,
    key_images: BTreeMap<[u8; 32], [u8; 32]>,
    hashes: BTreeSet<[u8; 32]>,
    /// Transactions whose range proof and signatures verified, each with the ring members they
    /// were verified against (see `validate::proofs_key`): the same transaction over the same
    /// rings is not verified again (a reorganisation re-adding it). Kept across blocks and
    /// reorganisations, as a node keeps its verification cache.
    pub(crate) proofs_verified: BTreeSet<[u8; 32]>,
    /// Transactions whose range proof is a stand-in taken as verified (see
    /// [`MockMonero::submit_with_stand_in_range_proof`]), by hash; kept as long as the cache.
    pub(crate) stand_in_range_proofs: BTreeSet<[u8; 32]>,
}

impl Mempool {
    pub(crate) fn contains(&self, hash: &[u8; 32]) -> bool {
        self.hashes.contains(hash)
    }

    pub(crate) fn spends(&self, key_image: &[u8; 32]) -> bool {
        self.key_images.contains_key(key_image)
    }

    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<&PoolTx> {
        self.txs.iter().find(|p| &p.hash == hash)
    }

    fn push(&mut self, ptx: PoolTx) {
        for ki in &ptx.key_images {
            self.key_images.insert(*ki, ptx.hash);
        }
        self.hashes.insert(ptx.hash);
        self.txs.push(ptx);
    }

    /// The pending transactions, leaving the pool empty (its verification cache stays).
    fn take(&mut self) -> Vec<PoolTx> {
        self.key_images.clear();
        self.hashes.clear();
        core::mem::take(&mut self.txs)
    }
}

/// A deterministic mock Monero chain. See the module documentation.
pub struct MockMonero {
    config: MoneroConfig,
    /// The chain's only randomness: miner transaction keys, premine keys, reorg rolls.
    rng: ChaCha20Rng,
    state: ChainState,
    /// Behind a mutex only so `PublishTransaction::publish_transaction(&self)` can add to it.
    mempool: Mutex<Mempool>,
    miner: MoneroAddress,
    /// Reorganisation probability per `mine()` in per mille, and its maximum depth.
    reorg_rate: (u16, usize),
    /// Number of reorganisations so far, written in header nonces so replacement blocks never
    /// collide with the blocks they replace.
    forks: u32,
}

impl core::fmt::Debug for MockMonero {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MockMonero")
            .field("tip_height", &self.tip_height())
            .field("tip_hash", &hex::encode(self.tip_hash()))
            .field("outputs", &self.output_count())
            .field("mempool", &self.pool().txs.len())
            .finish_non_exhaustive()
    }
}

impl Clone for MockMonero {
    fn clone(&self) -> Self {
        MockMonero {
            config: self.config.clone(),
            rng: self.rng.clone(),
            state: self.state.clone(),
            mempool: Mutex::new(self.pool().clone()),
            miner: self.miner,
            reorg_rate: self.reorg_rate,
            forks: self.forks,
        }
    }
}

impl MockMonero {
    /// A chain holding only its genesis block, with the default [`MoneroConfig`].
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, MoneroConfig::default())
    }

    /// A chain holding only its genesis block.
    pub fn with_config(seed: u64, config: MoneroConfig) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        // Until `set_miner`, blocks pay keys nobody keeps.
        let miner = WalletKeys::random(&mut rng).address();
        let mut chain = MockMonero {
            config,
            rng,
            state: ChainState::default(),
            mempool: Mutex::new(Mempool::default()),
            miner,
            reorg_rate: (0, 0),
            forks: 0,
        };
        chain.push_genesis();
        chain
    }

    fn push_genesis(&mut self) {
        let r = Scalar::random(&mut self.rng);
        // Premine keys P_i = P_0 + i*Q: one addition each instead of a scalar multiplication,
        // still torsion-free and unrelated to any key anyone holds.
        let mut key = mul_base(Scalar::random(&mut self.rng));
        let step = mul_base(Scalar::random(&mut self.rng));
        let mut outputs = Vec::with_capacity(self.config.decoy_premine);
        for _ in 0..self.config.decoy_premine {
            outputs.push(Output {
                amount: Some(PREMINE_AMOUNT),
                key: key.compress(),
                view_tag: Some(self.rng.next_u32().to_le_bytes()[0]),
            });
            key = add(key, step);
        }
        let miner = Transaction::V2 {
            prefix: TransactionPrefix {
                additional_timelock: Timelock::None,
                inputs: vec![Input::Gen(0)],
                outputs,
                extra: ExtraField::PublicKey(mul_base(r).compress()).serialize(),
            },
            proofs: None,
        };
        self.push_block(miner, Vec::new());
    }

    fn push_block(&mut self, miner: Transaction, txs: Vec<PoolTx>) -> [u8; 32] {
        let height = self.state.blocks.len();
        let previous = self.state.blocks.last().map_or([0; 32], |b| b.hash);
        let header = BlockHeader {
            hardfork_version: HARDFORK_VERSION,
            hardfork_signal: HARDFORK_VERSION,
            timestamp: timestamp(height),
            previous,
            nonce: self.forks,
        };
        let block = Block::new(header, miner, txs.iter().map(|p| p.hash).collect())
            .expect("the miner transaction has exactly one Gen input");
        self.state.apply(block, txs)
    }

    /// Mines the next block paying `to`: a v2 miner transaction (RingCT type 0, cleartext
    /// amount, view tag, coinbase timelock) plus, if asked, the whole mempool in order.
    fn mine_block(&mut self, to: &MoneroAddress, include_mempool: bool) -> [u8; 32] {
        let height = self.state.blocks.len();
        let txs = if include_mempool { self.pool_mut().take() } else { Vec::new() };
        let fees = txs.iter().fold(0u64, |acc, p| acc.saturating_add(p.fee));
        let amount = self.config.block_reward.saturating_add(fees);

        let r = Scalar::random(&mut self.rng);
        let output = derive_output(r, to, 0, miner_uniqueness(height));
        let miner = Transaction::V2 {
            prefix: TransactionPrefix {
                additional_timelock: Timelock::Block(height.saturating_add(self.config.coinbase_lock)),
                inputs: vec![Input::Gen(height)],
                outputs: vec![Output { amount: Some(amount), key: output.key, view_tag: Some(output.view_tag) }],
                extra: ExtraField::PublicKey(tx_key(r, to).compress()).serialize(),
            },
            proofs: None,
        };
        self.push_block(miner, txs)
    }

    fn pool(&self) -> MutexGuard<'_, Mempool> {
        // The mempool is only mutated by code that cannot panic midway; a poisoned lock still
        // holds a consistent value.
        self.mempool.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pool_mut(&mut self) -> &mut Mempool {
        self.mempool.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn state(&self) -> &ChainState {
        &self.state
    }

    /// The parameters fixed at genesis.
    pub fn config(&self) -> &MoneroConfig {
        &self.config
    }

    /// Pays future miner transactions to `to` (e.g. a depositor's address), or to keys nobody
    /// holds with `None`.
    pub fn set_miner(&mut self, to: Option<MoneroAddress>) {
        self.miner = match to {
            Some(to) => to,
            None => WalletKeys::random(&mut self.rng).address(),
        };
    }

    /// Makes [`MockMonero::mine`] first reorganise, with probability `per_mille / 1000` drawn
    /// from the chain's seeded stream, to a depth uniform in `1..=max_depth` (capped at the tip).
    /// `per_mille = 0` or `max_depth = 0` disables it.
    pub fn set_reorg_rate(&mut self, per_mille: u16, max_depth: usize) {
        self.reorg_rate = (per_mille.min(1000), max_depth);
    }

    /// Mines one block paying the configured miner, after a random reorganisation if a reorg rate
    /// is set. Returns the new tip's hash.
    pub fn mine(&mut self) -> [u8; 32] {
        let to = self.miner;
        self.mine_to(&to)
    }

    /// As [`MockMonero::mine`], paying `to` for this block only.
    pub fn mine_to(&mut self, to: &MoneroAddress) -> [u8; 32] {
        self.maybe_reorg();
        self.mine_block(to, true)
    }

    fn maybe_reorg(&mut self) {
        let (per_mille, max_depth) = self.reorg_rate;
        let tip = self.tip_height();
        if per_mille == 0 || max_depth == 0 || tip == 0 {
            return;
        }
        if self.rng.next_u32() % 1000 < u32::from(per_mille) {
            let span = max_depth.min(tip) as u64;
            let depth = 1 + (self.rng.next_u64() % span) as usize;
            // depth is within 1..=tip, so this cannot fail.
            let _ = self.reorg(depth);
        }
    }

    /// Replaces the top `depth` blocks with `depth + 1` new blocks (coinbase only, paying the
    /// configured miner, different hashes), rolling back their outputs, global indexes, key
    /// images and transaction index. Their transactions, then the pending ones, go back to the
    /// mempool when still valid on the new chain; the next `mine()` includes them again.
    pub fn reorg(&mut self, depth: usize) -> Result<ReorgOutcome, ReorgError> {
        let tip = self.tip_height();
        if depth == 0 {
            return Err(ReorgError::ZeroDepth);
        }
        if depth > tip {
            return Err(ReorgError::TooDeep { depth, tip });
        }
        self.forks = self.forks.wrapping_add(1);

        let mut orphaned = Vec::with_capacity(depth);
        let mut orphaned_txs = Vec::with_capacity(depth);
        for _ in 0..depth {
            let Some(record) = self.state.pop() else {
                break;
            };
            orphaned.push(record.hash);
            orphaned_txs.push(record.txs);
        }
        orphaned.reverse();
        orphaned_txs.reverse();
        let pending = self.pool_mut().take();

        let miner = self.miner;
        let new_blocks = (0..=depth).map(|_| self.mine_block(&miner, false)).collect();

        // Revalidate against the new tip: members in replaced blocks now name other outputs (the
        // CLSAG fails), and everything else only unlocked further.
        let mut requeued = Vec::new();
        let mut dropped = Vec::new();
        let mempool = self.mempool.get_mut().unwrap_or_else(PoisonError::into_inner);
        for ptx in orphaned_txs.into_iter().flatten().chain(pending) {
            match validate(&self.state, mempool, &ptx.tx) {
                Ok(valid) => {
                    requeued.push(valid.hash);
                    mempool.push(valid);
                }
                Err(_) => dropped.push(ptx.hash),
            }
        }
        Ok(ReorgOutcome { orphaned, new_blocks, requeued, dropped })
    }

    /// Validates `tx` against the best chain and the mempool and adds it to the mempool.
    pub fn submit(&mut self, tx: Transaction) -> Result<[u8; 32], TxRejected> {
        let mempool = self.mempool.get_mut().unwrap_or_else(PoisonError::into_inner);
        let valid = validate(&self.state, mempool, &tx)?;
        let hash = valid.hash;
        mempool.push(valid);
        Ok(hash)
    }

    /// [`MockMonero::submit`] for a simulation's own deposit whose range proof is a stand-in
    /// (one proof per output count, proven once over other commitments and reused): it is taken
    /// as verified, for this transaction (by hash) from now on, reorganisations included.
    /// Everything else is checked as for any transaction: shapes, fee, key images, rings,
    /// balance and the ring signatures. Nothing under test reads a deposit's range proof (the
    /// processor scans outputs and never verifies proofs; the node does), and proving one costs
    /// more than anything else a deposit takes. The processor's own transactions never come here.
    pub fn submit_with_stand_in_range_proof(&mut self, tx: Transaction) -> Result<[u8; 32], TxRejected> {
        let hash = tx.hash();
        let mempool = self.mempool.get_mut().unwrap_or_else(PoisonError::into_inner);
        let newly = mempool.stand_in_range_proofs.insert(hash);
        match validate(&self.state, mempool, &tx) {
            Ok(valid) => {
                mempool.push(valid);
                Ok(hash)
            }
            Err(rejected) => {
                if newly {
                    mempool.stand_in_range_proofs.remove(&hash);
                }
                Err(rejected)
            }
        }
    }

    /// What [`MockMonero::submit`] would say, without adding anything.
    pub fn check_transaction(&self, tx: &Transaction) -> Result<[u8; 32], TxRejected> {
        validate(&self.state, &mut self.pool(), tx).map(|valid| valid.hash)
    }

    /// `submit` through `&self`, for `PublishTransaction`.
    pub(crate) fn publish(&self, tx: &Transaction) -> Result<[u8; 32], TxRejected> {
        let mut mempool = self.pool();
        let valid = validate(&self.state, &mut mempool, tx)?;
        let hash = valid.hash;
        mempool.push(valid);
        Ok(hash)
    }

    /// Index of the top block (genesis is 0), like monero-wallet's `latest_block_number`.
    pub fn tip_height(&self) -> usize {
        self.state.tip()
    }

    /// Hash of the top block.
    pub fn tip_hash(&self) -> [u8; 32] {
        self.state.blocks.last().map_or([0; 32], |b| b.hash)
    }

    /// The best chain's block at `height`.
    pub fn block(&self, height: usize) -> Option<&Block> {
        self.state.record(height).map(|r| &r.block)
    }

    /// Hash of the best chain's block at `height`.
    pub fn block_hash(&self, height: usize) -> Option<[u8; 32]> {
        self.state.record(height).map(|r| r.hash)
    }

    /// Serialized block at `height` (monerod's block blob).
    pub fn block_bytes(&self, height: usize) -> Option<Vec<u8>> {
        self.block(height).map(Block::serialize)
    }

    /// Height of a best-chain block by hash.
    pub fn height_of(&self, hash: &[u8; 32]) -> Option<usize> {
        self.state.height_of(hash)
    }

    /// Timestamp of the block at `height` (a function of the height alone).
    pub fn timestamp(&self, height: usize) -> u64 {
        timestamp(height)
    }

    /// The transactions of the block at `height`: the miner transaction, then the others in
    /// block order. Empty if there is no such block.
    pub fn transactions(&self, height: usize) -> Vec<Transaction> {
        let Some(record) = self.state.record(height) else {
            return Vec::new();
        };
        core::iter::once(record.block.miner_transaction().clone())
            .chain(record.txs.iter().map(|p| p.tx.clone()))
            .collect()
    }

    /// A transaction of the best chain (miner transactions included) or the mempool, by hash.
    pub fn find_transaction(&self, hash: &[u8; 32]) -> Option<Transaction> {
        if let Some(location) = self.state.tx_location(hash) {
            let record = self.state.record(location.height)?;
            if &record.miner_hash == hash {
                return Some(record.block.miner_transaction().clone());
            }
            return record.txs.iter().find(|p| &p.hash == hash).map(|p| p.tx.clone());
        }
        self.pool().get(hash).map(|p| p.tx.clone())
    }

    /// Whether transaction `hash` is on the best chain or in the mempool.
    pub fn contains_transaction(&self, hash: &[u8; 32]) -> bool {
        self.state.tx_location(hash).is_some() || self.pool().contains(hash)
    }

    /// Height of the best-chain block holding transaction `hash`.
    pub fn tx_height(&self, hash: &[u8; 32]) -> Option<usize> {
        self.state.tx_height(hash)
    }

    /// The mempool, in the order its transactions will be mined.
    pub fn mempool(&self) -> Vec<Transaction> {
        self.pool().txs.iter().map(|p| p.tx.clone()).collect()
    }

    /// Hashes of the mempool's transactions, in order.
    pub fn mempool_hashes(&self) -> Vec<[u8; 32]> {
        self.pool().txs.iter().map(|p| p.hash).collect()
    }

    /// The block at `height` as monero-wallet's `Scanner::scan` takes it.
    pub fn scannable_block_at(&self, height: usize) -> Option<ScannableBlock> {
        let record = self.state.record(height)?;
        Some(ScannableBlock {
            block: record.block.clone(),
            transactions: record.txs.iter().map(|p| Transaction::<Pruned>::from(p.tx.clone())).collect(),
            output_index_for_first_ringct_output: (record.output_count > 0).then_some(record.first_output),
        })
    }

    /// Number of RingCT outputs on the best chain (the next global index).
    pub fn output_count(&self) -> u64 {
        self.state.output_count()
    }

    /// The output with global index `index`.
    pub fn output(&self, index: u64) -> Option<ChainOutput> {
        let out = self.state.output(index)?;
        Some(ChainOutput {
            index,
            key: out.key,
            commitment: out.commitment,
            height: out.height,
            transaction: out.transaction,
            index_in_transaction: out.index_in_transaction,
            timelock: out.timelock,
        })
    }

    /// Global indexes of the outputs of best-chain transaction `hash`.
    pub fn tx_output_indexes(&self, hash: &[u8; 32]) -> Option<Vec<u64>> {
        let location = self.state.tx_location(hash)?;
        Some((location.first_output..location.first_output + location.outputs as u64).collect())
    }

    /// Whether output `index` may be spent in the next block.
    pub fn is_unlocked(&self, index: u64) -> bool {
        self.state.output(index).is_some_and(|out| self.state.unlocked(out, self.tip_height(), true))
    }

    /// Where a key image is spent, if anywhere.
    pub fn key_image_status(&self, key_image: &[u8; 32]) -> Option<KeyImageStatus> {
        if let Some(height) = self.state.key_image_height(key_image) {
            return Some(KeyImageStatus::OnChain { height });
        }
        self.pool().key_images.get(key_image).map(|tx| KeyImageStatus::Mempool { transaction: *tx })
    }

    /// Key images spent on the best chain with the height spending each, sorted by key image.
    pub fn spent_key_images(&self) -> Vec<([u8; 32], usize)> {
        self.state.spent.iter().map(|(ki, h)| (*ki, *h)).collect()
    }
}
