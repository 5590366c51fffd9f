//! What a simulation run is asked to do, and what it reports.

use std::fmt;

/// How the Byzantine validator (the last one), if any, misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// Sends corrupt key-generation shares: it must be blamed and the rest generate without it.
    KeyGen,
    /// Behaves in key generation, then sends wrong signature shares: it must be blamed and the
    /// rest sign without it.
    Signing,
}

impl core::str::FromStr for Byzantine {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keygen" => Ok(Byzantine::KeyGen),
            "signing" => Ok(Byzantine::Signing),
            other => Err(format!("unknown misbehaviour `{other}` (expected `keygen` or `signing`)")),
        }
    }
}

/// The shape of one run. Rates are per mille.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub validators: usize,
    pub threshold: u16,
    /// Chance that the network loses a message.
    pub loss_per_mille: u32,
    /// Upper bound of a message's latency (the lower bound is 1 ms); spread means reordering.
    pub max_latency_ms: u64,
    /// Chance that the coordinator sends a message twice.
    pub duplicate_per_mille: u32,
    /// Chance per fault-plan step (one per block) of crashing a processor.
    pub processor_crash_per_mille: u32,
    /// Chance per fault-plan step of crashing the coordinator.
    pub coordinator_crash_per_mille: u32,
    /// Chance per fault-plan step of partitioning the coordinator from a processor.
    pub partition_per_mille: u32,
    /// The last validator misbehaves so.
    pub byzantine: Option<Byzantine>,
    /// Once, during the fault phase, the chain reorganises deeper than the confirmations: the
    /// run must end with every processor halted cleanly and nothing reported twice.
    pub deep_reorg: bool,
    /// Simulated ms between blocks.
    pub block_interval_ms: u64,
    /// Chance per block of (another) deposit.
    pub deposit_per_mille: u32,
    /// Chance per block of a hostile depositor's flood of 1 to 3 deposits below the chain's
    /// minimum deposit (half with InInstructions): none may be reported or credited.
    pub dust_per_mille: u32,
    /// Chance per block of Serai issuing Burns (1 to 4, a tenth with invalid destinations).
    pub burn_per_mille: u32,
    /// Chance per block of a reorganisation shallower than the confirmations.
    pub reorg_per_mille: u32,
    /// How long faults are injected (simulated ms); then a quiet phase.
    pub fault_phase_ms: u64,
    /// How long the quiet phase may take before liveness is violated (simulated ms).
    pub liveness_deadline_ms: u64,
    /// Chance per block, per processor whose node is in sync, that the node falls behind: it
    /// reports a tip up to 6 blocks below the best one and serves blocks only up to it, catching
    /// up unevenly, for up to 3 s (0..=1000; moderate: 10..=50).
    pub node_lag_per_mille: u32,
    /// Chance per block, per processor whose node is in sync, that the node stops answering (no
    /// tip, no blocks, no rings, no publication) for up to 2 s (0..=1000; moderate: 5..=20).
    pub node_stall_per_mille: u32,
    /// Chance that a block a node serves is corrupted: truncated, altered transactions, another
    /// height's block, a wrong parent, and for Bitcoin a broken merkle root or too little proof
    /// of work. The processor must refuse it and fetch it again (0..=1000; moderate: 20..=100).
    pub node_garbage_per_mille: u32,
    /// Chance per reorganisation shallower than the confirmations, per processor, that its node
    /// keeps serving the replaced blocks (and the tip they had) for up to 3 s before switching
    /// to the best chain (0..=1000; moderate: 100..=400).
    pub node_stale_per_mille: u32,
}

impl Scenario {
    /// The standard scenario: 4 validators, 3-of-4, all faults on.
    pub fn standard() -> Scenario {
        Scenario {
            validators: 4,
            threshold: 3,
            loss_per_mille: 100,
            max_latency_ms: 300,
            duplicate_per_mille: 100,
            processor_crash_per_mille: 40,
            coordinator_crash_per_mille: 15,
            partition_per_mille: 30,
            byzantine: None,
            deep_reorg: false,
            block_interval_ms: 100,
            deposit_per_mille: 300,
            dust_per_mille: 100,
            burn_per_mille: 100,
            reorg_per_mille: 50,
            fault_phase_ms: 20_000,
            liveness_deadline_ms: 60_000,
            node_lag_per_mille: 20,
            node_stall_per_mille: 10,
            node_garbage_per_mille: 50,
            node_stale_per_mille: 250,
        }
    }

    /// No faults at all.
    pub fn calm(validators: usize, threshold: u16) -> Scenario {
        Scenario {
            validators,
            threshold,
            loss_per_mille: 0,
            max_latency_ms: 20,
            duplicate_per_mille: 0,
            processor_crash_per_mille: 0,
            coordinator_crash_per_mille: 0,
            partition_per_mille: 0,
            byzantine: None,
            deep_reorg: false,
            block_interval_ms: 100,
            deposit_per_mille: 300,
            dust_per_mille: 0,
            burn_per_mille: 100,
            reorg_per_mille: 0,
            fault_phase_ms: 5_000,
            liveness_deadline_ms: 60_000,
            node_lag_per_mille: 0,
            node_stall_per_mille: 0,
            node_garbage_per_mille: 0,
            node_stale_per_mille: 0,
        }
    }

    /// Rejects scenarios the processors would refuse, before running anything.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=processor_core::keygen::MAX_PARTICIPANTS).contains(&self.validators) {
            return Err(format!("validators must be within 2..={}", processor_core::keygen::MAX_PARTICIPANTS));
        }
        if self.threshold < 2 || usize::from(self.threshold) > self.validators {
            return Err(format!("threshold must be within 2..={}", self.validators));
        }
        if self.byzantine.is_some() && self.validators - 1 < usize::from(self.threshold) {
            return Err("with a Byzantine validator, t honest validators must remain".into());
        }
        for (name, rate) in [
            ("loss", self.loss_per_mille),
            ("duplicate", self.duplicate_per_mille),
            ("processor crash", self.processor_crash_per_mille),
            ("coordinator crash", self.coordinator_crash_per_mille),
            ("partition", self.partition_per_mille),
            ("deposit", self.deposit_per_mille),
            ("dust", self.dust_per_mille),
            ("reorganisation", self.reorg_per_mille),
            ("node lag", self.node_lag_per_mille),
            ("node stall", self.node_stall_per_mille),
            ("node garbage", self.node_garbage_per_mille),
            ("stale node", self.node_stale_per_mille),
        ] {
            if rate > 1000 {
                return Err(format!("{name} rate {rate} is over 1000 per mille"));
            }
        }
        if self.loss_per_mille == 1000 {
            return Err("a network that loses every message cannot make progress".into());
        }
        if self.node_garbage_per_mille == 1000 {
            return Err("nodes that corrupt every block cannot make progress".into());
        }
        if self.deposit_per_mille >= 1000 {
            return Err("deposits must stop at some point: keep the deposit rate under 1000".into());
        }
        if self.block_interval_ms == 0 {
            return Err("block interval must be at least 1 ms".into());
        }
        if self.max_latency_ms == 0 {
            return Err("max latency must be at least 1 ms".into());
        }
        Ok(())
    }
}

/// Faults actually injected in a run, by kind.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct FaultCounts {
    pub processor_crashes: u64,
    pub coordinator_crashes: u64,
    pub partitions: u64,
    pub duplicates: u64,
    pub reorgs: u64,
    /// Times a processor's node fell behind the best chain.
    pub node_lags: u64,
    /// Times a processor's node stopped answering.
    pub node_stalls: u64,
    /// Times a processor's node stayed on blocks a reorganisation replaced.
    pub stale_nodes: u64,
    /// Corrupted blocks nodes served.
    pub garbage_blocks: u64,
    /// Blocks processors refused (corrupted ones, and blocks off their node's own chain).
    pub blocks_refused: u64,
    /// Ring selections a processor's node could not answer (stalled, or behind the decoy
    /// height): the processor asks again.
    pub rings_unanswered: u64,
}

/// An invariant that did not hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: crate::Invariant,
    pub detail: String,
    /// The last events before the violation, oldest first.
    pub trace_tail: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invariant violated: {}: {}", self.invariant, self.detail)?;
        writeln!(f, "last events:")?;
        for line in &self.trace_tail {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// What one seed's run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub seed: u64,
    pub simulated_ms: u64,
    /// SHA-256 over every event of the run, in order: equal for equal seeds.
    pub trace_hash: [u8; 32],
    pub events: u64,
    pub sessions_started: u64,
    pub keys_confirmed: u64,
    pub blames: u64,
    pub deposits: u64,
    pub batches: u64,
    pub burns: u64,
    /// Transactions planned (at the first processor).
    pub plans: u64,
    /// Plans whose transaction is in a final block (at the first processor).
    pub paid: u64,
    pub halted: u64,
    pub faults: FaultCounts,
    pub violation: Option<Violation>,
}

#[cfg(test)]
mod tests {
    use super::Scenario;

    #[test]
    fn impossible_scenarios_are_refused_up_front() {
        assert!(Scenario::standard().validate().is_ok());
        assert!(Scenario { threshold: 5, ..Scenario::standard() }.validate().is_err());
        assert!(Scenario { threshold: 1, ..Scenario::standard() }.validate().is_err());
        assert!(Scenario { validators: 1, threshold: 1, ..Scenario::standard() }.validate().is_err());
        assert!(Scenario { byzantine: Some(super::Byzantine::Signing), threshold: 4, ..Scenario::standard() }
            .validate()
            .is_err());
        assert!(Scenario { loss_per_mille: 1000, ..Scenario::standard() }.validate().is_err());
        assert!(Scenario { duplicate_per_mille: 1001, ..Scenario::standard() }.validate().is_err());
        assert!(Scenario { node_garbage_per_mille: 1000, ..Scenario::standard() }.validate().is_err());
        assert!(Scenario { node_stale_per_mille: 1001, ..Scenario::standard() }.validate().is_err());
    }
}
