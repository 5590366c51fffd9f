//! The processor daemon: the deterministic core ([`processor_core`]) driven for real.
//!
//! What this crate adds around the core, and the only place that knows about it:
//! - [`daemon`]: `processor run` — configuration, the driver loop, metrics and health;
//! - [`db`]: the RocksDB backend of the core's `Db` trait;
//! - [`inspect`]: `processor inspect` — a read-only view of a data directory;
//! - [`link`]: coordinator links (in-process channels, NATS JetStream);
//! - [`rpc`]: clients of the nodes' RPC interfaces.
//!
//! The `processor` binary is `daemon::cli`.

pub mod daemon;
pub mod db;
pub mod inspect;
pub mod link;
pub mod rpc;
