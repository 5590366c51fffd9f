//! Mock Bitcoin chain.
//!
//! This module owns a deterministic, seedable regtest-like Bitcoin chain built from the `bitcoin`
//! crate's real types and consensus encoding:
//!
//! - [`MockBitcoin`]: the best chain and every orphaned block, a UTXO set with per-block undo
//!   data, a mempool that only admits valid Taproot key-path spends (BIP340 signatures checked with
//!   libsecp256k1 against the BIP341 sighash), mining with BIP34 coinbases, witness commitments and
//!   real (regtest-difficulty) proof of work, and reorganisations on command or at a seeded rate.
//! - [`Depositor`]: a seeded wallet holding a Taproot key that funds a group's P2TR address,
//!   attaching an opaque instruction in an `OP_RETURN` output.
//! - Helpers for the processor and tests: [`p2tr_script`], [`key_spend_sighash`],
//!   [`sign_key_spend`], [`spend_key_path`], [`op_return_payload`] and [`parse_block`].
//!
//! Nothing here reads the OS's randomness or the clock: the seed and the sequence of calls
//! determine every block hash.

mod chain;
mod depositor;
mod parse;
#[cfg(not(madsim))]
pub mod rpc;
mod sign;

pub use chain::{
    block_subsidy, MockBitcoin, ReorgError, TxRejected, COINBASE_TAG, DEFAULT_COINBASE_MATURITY, GENESIS_TIME,
    REGTEST_BITS, SUBSIDY_HALVING_INTERVAL,
};
pub use depositor::{funded_chain, DepositError, Depositor, MAX_INSTRUCTION_LEN, P2TR_DUST};
pub use parse::{op_return_payload, parse_block, parse_transaction, ParseError};
pub use sign::{
    key_spend_sighash, output_key, p2tr_script, sign_all_key_spends, sign_key_spend, spend_key_path,
    unsigned_transaction, SignError,
};
