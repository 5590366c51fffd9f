//! The threshold-custody processor's deterministic core.
//!
//! One processor runs per validator per external chain. Together, a validator set's
//! processors hold the chain's funds under a t-of-n FROST key, report deposits to Serai as
//! threshold-signed Batches, and pay out Burns with threshold-signed transactions.
//!
//! This crate is everything that decides: events in, effects out, no IO of its own (no
//! runtime, storage engine, broker or HTTP crate is among its dependencies). The daemon
//! (`processor`), the simulation (`sim`) and tests drive the same [`core::Processor`].
//! `ARCHITECTURE.md` at the repository root is the map; in short:
//! - [`messages`]: the coordinator<->processor wire protocol (typed, versioned, signed);
//! - [`db`]: the storage trait with atomic transactions and typed tables, and an in-memory
//!   backend;
//! - [`core`]: the state machine;
//! - [`keygen`]: the threshold key generation the core runs;
//! - [`chain`] and [`scanner`]: parsing and scanning Bitcoin and Monero blocks, finality, halts;
//! - [`batch`]: threshold-signed Batches of the deposits' InInstructions;
//! - [`scheduler`] and [`payments`]: Burns into planned transactions, recorded in [`plan`];
//! - [`transaction`]: plans into threshold-signed Bitcoin and Monero transactions, and their
//!   Eventualities;
//! - [`sign`]: the signing-attempt bookkeeping Batches and transactions share;
//! - [`inspect`]: a read-only view of the state, for tests, the simulation, metrics, operators;
//! - [`crypto`] and [`ids`]: key material and the small types everything is written in;
//! - [`link`]: the traits a coordinator link implements;
//! - [`mutation`]: deliberate bugs the simulation must catch (only with the `mutations` feature).

#![deny(missing_docs)]

pub mod batch;
pub mod chain;
pub mod core;
pub mod crypto;
pub mod db;
pub mod ids;
pub mod inspect;
pub mod keygen;
pub mod link;
pub mod messages;
pub mod mutation;
pub mod payments;
pub mod plan;
pub mod rotation;
pub mod scanner;
pub mod scheduler;
pub mod sign;
pub mod transaction;
