//! Mock Monero chain: monero-oxide blocks and RingCT transactions, an output set with key
//! images, decoys served to monero-wallet, forks and reorganisations on command.
//!
//! # What this module owns
//!
//! - [`MockMonero`]: a best chain of real [`Block`]s (hard fork 16) whose miner transactions are
//!   v2 with RingCT type 0 (explicit amounts, view tags, a `Block(height + coinbase_lock)`
//!   timelock), a mempool kept in submission order, the RingCT output set (every output, coinbase
//!   included, gets a global index in block order, as monerod assigns them), the spent key
//!   images, and per-block undo data so [`MockMonero::reorg`] can roll all of it back.
//! - The monero-interface traits monero-wallet needs (blockchain meta, blocks, transactions,
//!   outputs, decoys, scannable blocks, fee rates, publishing), with ready futures, so
//!   `OutputWithDecoys::new`, `Scanner::scan` and friends run against the mock unchanged.
//! - [`Depositor`]: a wallet with its own keys, funded by mining to its address, that scans the
//!   chain with monero-wallet's `Scanner` and builds real CLSAG + Bulletproofs+ deposits (ring
//!   16) carrying an optional instruction as arbitrary data in the transaction extra.
//! - [`parse_block`] / [`parse_transaction`]: total, panic-free decoders for untrusted bytes.
//!
//! # What [`MockMonero::submit`] verifies, and what it cannot
//!
//! In this order: not already on chain or in the mempool; version 2 with CLSAG + Bulletproofs+
//! proofs (the only RingCT type monerod accepts today), no miner (`Gen`) input, no cleartext
//! input amount; 2..=16 outputs, each without a cleartext amount, with a view tag and a key that
//! decodes to a point (monerod's `check_key`; torsion is allowed there too); extra within the
//! 1060-byte relay limit; proof vectors matching the inputs and outputs; a fee of at least the
//! mock's fixed rate times the weight; key images strictly descending (so unique, and sorted as
//! monerod requires), spent neither on chain nor in the mempool; rings of exactly 16 strictly
//! increasing global indexes that exist and are unlocked for the next block (10-block window
//! plus the creating transaction's timelock, so coinbase maturity too); balance, sum of
//! pseudo-outs = sum of output commitments + fee*H; the Bulletproof+ over the output commitments
//! (monero-bulletproofs' `Bulletproof::verify`); every CLSAG over its ring's keys and
//! commitments, its pseudo-out and the transaction's signature hash (monero-clsag's
//! `Clsag::verify`, which also rejects identity and torsioned key images).
//!
//! monero-oxide exposes verifiers for everything a transaction proves, so no cryptographic check
//! is missing. What the mock does not model: proof-of-work and difficulty, block weight limits
//! with the median/penalty machinery, the dynamic fee (a fixed minimum rate stands in, see
//! [`fee_rate`]), the 1 MB transaction size cap, miner-transaction rules (the mock writes its own
//! and nobody else can submit one) and an emission curve (each block pays a fixed reward plus
//! fees). Encrypted amounts are, as on Monero, only checkable by the recipient.
//!
//! # Deviations from Monero, on purpose
//!
//! The genesis miner transaction carries a premine of [`MoneroConfig::decoy_premine`] unlocked
//! outputs to keys nobody holds. monero-wallet's decoy selection samples output ages from a gamma
//! distribution fit to mainnet and refuses chains with fewer than ~76 old outputs; the premine
//! gives a young mock chain an old, deep output pool so ring-16 selection succeeds reliably a few
//! blocks after genesis. Time-based timelocks are judged against the tip's timestamp, which is
//! `GENESIS_TIMESTAMP + 120 * height` (no clock).
//!
//! Everything is deterministic in the seed and the call sequence: one ChaCha20 stream per chain
//! and per depositor, no OS randomness, no wall clock, BTreeMaps where order could leak.

mod chain;
mod crypto;
mod depositor;
mod interface;
mod parse;
mod validate;

pub use chain::{ChainOutput, KeyImageStatus, MockMonero, MoneroConfig, ReorgError, ReorgOutcome};
pub use crypto::{address_from_keys, KeyError, WalletKeys};
pub use depositor::{DepositError, Depositor, MAX_PAYMENTS};
pub use interface::fee_rate;
pub use parse::{parse_block, parse_transaction, ParseError};
pub use validate::TxRejected;

pub use monero_wallet::{
    address::MoneroAddress, block::Block, interface::ScannableBlock, transaction::Transaction, Scanner, ViewPair,
};

/// Ring size of every input (Bulletproofs+ era consensus).
pub const RING_LEN: u8 = 16;
/// Blocks every output waits before it may be spent or used as a decoy (monerod's
/// `CRYPTONOTE_DEFAULT_TX_SPENDABLE_AGE`); monero-wallet's decoy selection assumes this value.
pub const LOCK_WINDOW: usize = monero_wallet::DEFAULT_LOCK_WINDOW;
/// monerod's coinbase lock (`CRYPTONOTE_MINED_MONEY_UNLOCK_WINDOW`), the default of
/// [`MoneroConfig::coinbase_lock`].
pub const COINBASE_LOCK: usize = monero_wallet::COINBASE_LOCK_WINDOW;
/// Longest instruction a deposit can carry: one arbitrary-data chunk of monero-wallet (a
/// 255-byte extra nonce minus its marker byte).
pub const MAX_INSTRUCTION_LEN: usize = monero_wallet::extra::MAX_ARBITRARY_DATA_SIZE;
/// Hard fork version written in every header (the newest monero-wallet scans).
pub const HARDFORK_VERSION: u8 = 16;
/// Timestamp of the genesis block; block `h` is stamped `GENESIS_TIMESTAMP + 120 * h`.
pub const GENESIS_TIMESTAMP: u64 = 1_700_000_000;
/// Seconds between blocks.
pub const BLOCK_TIME: u64 = 120;

/// Polls a future that is expected to be ready at once (every future of the mock's interface is,
/// and so are monero-wallet's futures over it), with a no-op waker. Returns `None` if it is still
/// pending after a few polls. Lets synchronous code call monero-wallet's async API on the mock.
pub fn block_on<F: core::future::Future>(fut: F) -> Option<F::Output> {
    use core::task::{Context, Poll};
    let mut fut = core::pin::pin!(fut);
    let mut cx = Context::from_waker(core::task::Waker::noop());
    // monero-wallet's futures only await the mock's ready futures, so one poll suffices; a few
    // more cost nothing and tolerate an internal yield.
    for _ in 0..8 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}
