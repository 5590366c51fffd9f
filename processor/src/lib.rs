//! The threshold-custody processor.
//!
//! One processor runs per validator per external chain. Together, a validator set's
//! processors hold the chain's funds under a t-of-n FROST key, report deposits to Serai as
//! threshold-signed Batches, and pay out Burns with threshold-signed transactions.
//!
//! What this crate owns:
//! - [`messages`]: the coordinator<->processor wire protocol (typed, versioned, signed);
//! - [`db`]: persistence with atomic transactions and typed tables, in memory or RocksDB;
//! - [`core`]: the deterministic state machine (events in, effects out, no IO);
//! - [`keygen`]: the threshold key generation the core runs;
//! - [`chain`] and [`scanner`]: parsing and scanning Bitcoin and Monero blocks, finality, halts;
//! - [`batch`]: threshold-signed Batches of the deposits' InInstructions;
//! - [`scheduler`] and [`payments`]: Burns into planned transactions;
//! - [`transaction`]: plans into threshold-signed Bitcoin and Monero transactions, and their
//!   Eventualities;
//! - [`crypto`] and [`ids`]: key material and the small types everything is written in;
//! - [`link`]: the coordinator link (in-process channels, NATS JetStream);
//! - `daemon` and `rpc` (not in the simulation build): the production daemon around the core,
//!   its configuration, metrics, and the nodes' RPC clients.
//!
//! The `processor` binary is the daemon around this core.

pub mod batch;
pub mod chain;
pub mod core;
pub mod crypto;
#[cfg(not(madsim))]
pub mod daemon;
pub mod db;
pub mod ids;
pub mod keygen;
pub mod link;
pub mod messages;
pub mod mutation;
pub mod payments;
#[cfg(not(madsim))]
pub mod rpc;
pub mod scanner;
pub mod scheduler;
pub mod transaction;
