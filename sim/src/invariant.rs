//! Every invariant the simulation checks, one name each, with the `ARCHITECTURE.md` invariant it
//! stands for (its number in "Invariants"), so a violation says which promise broke.

use core::fmt;

/// A checked invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// The in-memory storage never fails (a failure would be a bug of the harness).
    Storage,
    /// Agreement: active keys are the confirmed keys of a session that did not fail.
    ActiveKeysConfirmed,
    /// No halt unless a final block this processor reported was replaced.
    HaltOnlyOnReplacedFinalBlock,
    /// A processor builds at most one Batch per height.
    OneBatchPerHeight,
    /// No block is in two signed Batches.
    OneBatchPerBlock,
    /// Agreement: every honest processor builds the same Batch for an id.
    BatchesAgree,
    /// Agreement: the signed Batch is the one the processors built.
    SignedBatchIsBuilt,
    /// Each signed Batch is exactly its final block's InInstructions.
    BatchIsItsFinalBlock,
    /// Every plan conserves value.
    PlanConservesValue,
    /// No output is in two plans.
    OutputInOnePlan,
    /// No Burn is in two plans.
    BurnInOnePlan,
    /// Agreement: a plan id names the same transaction everywhere.
    PlanIdsAgree,
    /// Every published transaction decodes.
    PublishedTransactionDecodes,
    /// No output is spent by two different signed transactions.
    OutputInOneSignedTransaction,
    /// No two attempts share a preprocess (a nonce).
    PreprocessUnique,
    /// No attempt is preprocessed twice.
    AttemptPreprocessedOnce,
    /// A redelivered frame changes no state.
    RedeliveryChangesNothing,
    /// A redelivered frame sends no message but its acknowledgement.
    RedeliverySendsNothing,
    /// Liveness: after faults stop, keys are active, every final deposit is in a signed Batch
    /// and every plan is paid on chain.
    Liveness,
    /// A block the processor's node corrupted is refused (or its parent rechecked): nothing is
    /// scanned, reported or credited from it, and it halts nothing.
    CorruptedBlockRefused,
    /// Whatever its node shows it (behind, or on a stale fork), a processor reports only blocks
    /// of the best chain with the confirmations on top.
    ReportedBlockIsFinal,
}

impl Invariant {
    /// What must hold.
    pub fn statement(self) -> &'static str {
        match self {
            Invariant::Storage => "the simulation's storage never fails",
            Invariant::ActiveKeysConfirmed => "active keys are the confirmed keys of a session that did not fail",
            Invariant::HaltOnlyOnReplacedFinalBlock => {
                "no halt unless a final block this processor reported was replaced"
            }
            Invariant::OneBatchPerHeight => "a processor builds at most one Batch per height",
            Invariant::OneBatchPerBlock => "no block is in two signed Batches",
            Invariant::BatchesAgree => "every honest processor builds the same Batch",
            Invariant::SignedBatchIsBuilt => "the signed Batch is the one processors built",
            Invariant::BatchIsItsFinalBlock => "each signed Batch is exactly its final block's InInstructions",
            Invariant::PlanConservesValue => "every plan conserves value",
            Invariant::OutputInOnePlan => "no output is in two plans",
            Invariant::BurnInOnePlan => "no Burn is in two plans",
            Invariant::PlanIdsAgree => "a plan id names the same transaction everywhere",
            Invariant::PublishedTransactionDecodes => "every published transaction is well formed",
            Invariant::OutputInOneSignedTransaction => "no output is spent by two different signed transactions",
            Invariant::PreprocessUnique => "no two signing attempts share a nonce",
            Invariant::AttemptPreprocessedOnce => "no signing attempt is preprocessed twice",
            Invariant::RedeliveryChangesNothing => "a redelivered frame changes no state",
            Invariant::RedeliverySendsNothing => "a redelivered frame sends nothing but its acknowledgement",
            Invariant::Liveness => {
                "after faults stop, keys are active, every final deposit is in a signed Batch and every plan is paid"
            }
            Invariant::CorruptedBlockRefused => {
                "a block the node corrupted is refused: nothing is scanned or credited from it, and it halts nothing"
            }
            Invariant::ReportedBlockIsFinal => {
                "a processor reports only blocks of the best chain with the confirmations on top"
            }
        }
    }

    /// The numbers of `ARCHITECTURE.md`'s invariants this one checks.
    pub fn architecture(self) -> &'static [u8] {
        match self {
            Invariant::Storage | Invariant::PublishedTransactionDecodes | Invariant::Liveness => &[],
            Invariant::ActiveKeysConfirmed => &[11],
            Invariant::HaltOnlyOnReplacedFinalBlock | Invariant::BatchIsItsFinalBlock => &[8],
            Invariant::CorruptedBlockRefused => &[8, 10],
            Invariant::ReportedBlockIsFinal => &[8],
            Invariant::OneBatchPerHeight | Invariant::OneBatchPerBlock => &[3, 8],
            Invariant::BatchesAgree | Invariant::SignedBatchIsBuilt => &[4, 5],
            Invariant::PlanConservesValue | Invariant::PlanIdsAgree => &[5, 6],
            Invariant::OutputInOnePlan | Invariant::BurnInOnePlan | Invariant::OutputInOneSignedTransaction => &[6],
            Invariant::PreprocessUnique | Invariant::AttemptPreprocessedOnce => &[7],
            Invariant::RedeliveryChangesNothing | Invariant::RedeliverySendsNothing => &[2, 3],
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self, self.statement())?;
        match self.architecture() {
            [] => Ok(()),
            numbers => {
                let numbers: Vec<String> = numbers.iter().map(u8::to_string).collect();
                write!(f, " (ARCHITECTURE.md invariant {})", numbers.join(", "))
            }
        }
    }
}
