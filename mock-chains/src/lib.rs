//! Deterministic, seedable mock chains that produce blocks and transactions in the chains' real
//! encodings, validate what is submitted to them, and fork and reorganise on command.
//!
//! - [`bitcoin`]: blocks and transactions of the `bitcoin` crate, a UTXO set, Taproot key-path
//!   signature checks with libsecp256k1.
//! - [`monero`]: monero-oxide blocks and RingCT transactions, an output set with key images,
//!   decoys served to monero-wallet.
//!
//! Each has a depositor that funds a processor's address with an InInstruction attached, so
//! tests and the simulation can fund the group. No OS randomness, no clock: a seed and the
//! call sequence determine everything.

pub mod bitcoin;
pub mod monero;
