//! Deterministic simulation of a validator set's processors on madsim.
//!
//! One simulated node per validator's processor (the production core, unchanged; only the IO
//! edge differs), one coordinator node, virtual time, and every random choice drawn from the
//! seed. A fault plan drops, delays, reorders and duplicates messages, crashes and restarts
//! processors (they resume from their committed DB) and the coordinator (it keeps its
//! persisted state and loses what was in flight), partitions the coordinator from processors
//! for a while, and may make one validator Byzantine. Each processor reads its own node, which
//! may fall behind, stall, serve corrupted blocks or stay on a stale fork. Invariants are checked during the run and
//! at its end; a violation names the seed, the invariant and the last events.
//!
//! The simulation itself exists only under `--cfg madsim` (see `scripts/sim.sh`); the scenario
//! and outcome types compile everywhere.

pub mod invariant;
pub mod scenario;
#[cfg(madsim)]
mod world;

pub use invariant::Invariant;
pub use scenario::{Byzantine, FaultCounts, HostileCounts, Outcome, Scenario, Violation};
#[cfg(madsim)]
pub use world::run;

/// The processor's deliberate bugs (madsim builds only), to prove the checks catch them.
#[cfg(madsim)]
pub use processor_core::mutation::{set as set_mutation, Mutation};
