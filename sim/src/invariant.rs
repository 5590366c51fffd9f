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
    /// A processor acknowledges only the final block it scanned at a height.
    AcknowledgedBlockIsFinal,
    /// The funds a processor holds, plus its plans' inputs, are exactly the group's credited
    /// outputs in the blocks acknowledged there (those awaiting their Batch's publication
    /// aside): each credited once, none from elsewhere, with the chain's amounts.
    FundsMatchChain,
    /// No processor sends two different signature shares for one attempt (one nonce, one
    /// message).
    OneSharePerAttempt,
    /// A processor whose chain halted preprocesses and signs nothing more.
    NothingSignedWhileHalted,
    /// After faults stop, every valid Burn is paid, or forfeited for its fee; none is left
    /// queued while the group holds the funds for it.
    BurnsSettled,
    /// Every transaction the group signs passes the chain's relay policy (Bitcoin Core's
    /// defaults: standard scripts, dust per script, one small OP_RETURN, the minimum relay fee,
    /// the weight limit; Monero's extra limit and minimum fee), checked as it is published: the
    /// adversary model's "Dust" decision, a payment no node relays being a payment never made.
    SignedTransactionRelays,
    /// Liveness: after faults stop, keys are active, every final deposit is in a signed Batch
    /// and every plan is paid on chain.
    Liveness,
    /// A block the processor's node corrupted is refused (or its parent rechecked): nothing is
    /// scanned, reported or credited from it, and it halts nothing.
    CorruptedBlockRefused,
    /// Whatever its node shows it (behind, or on a stale fork), a processor reports only blocks
    /// of the best chain with the confirmations on top.
    ReportedBlockIsFinal,
    /// A retired key holds nothing: no output in the funds, no open plan, no shares.
    RetiredKeyEmpty,
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
            Invariant::SignedTransactionRelays => "every transaction the group signs passes the chain's relay policy",
            Invariant::OutputInOneSignedTransaction => "no output is spent by two different signed transactions",
            Invariant::PreprocessUnique => "no two signing attempts share a nonce",
            Invariant::AttemptPreprocessedOnce => "no signing attempt is preprocessed twice",
            Invariant::RedeliveryChangesNothing => "a redelivered frame changes no state",
            Invariant::RedeliverySendsNothing => "a redelivered frame sends nothing but its acknowledgement",
            Invariant::AcknowledgedBlockIsFinal => "a processor acknowledges only the final block it scanned",
            Invariant::FundsMatchChain => {
                "funds held plus planned inputs are exactly the group's credited outputs in the acknowledged blocks"
            }
            Invariant::OneSharePerAttempt => "no processor sends two different signature shares for one attempt",
            Invariant::NothingSignedWhileHalted => "a halted chain preprocesses and signs nothing more",
            Invariant::BurnsSettled => {
                "after faults stop, every valid Burn is paid or forfeited, none queued while funds suffice"
            }
            Invariant::Liveness => {
                "after faults stop, keys are active, every final deposit is in a signed Batch and every plan is paid"
            }
            Invariant::CorruptedBlockRefused => {
                "a block the node corrupted is refused: nothing is scanned or credited from it, and it halts nothing"
            }
            Invariant::ReportedBlockIsFinal => {
                "a processor reports only blocks of the best chain with the confirmations on top"
            }
            Invariant::RetiredKeyEmpty => "a retired key holds no output, no open plan and no shares",
        }
    }

    /// The numbers of `ARCHITECTURE.md`'s invariants this one checks.
    pub fn architecture(self) -> &'static [u8] {
        match self {
            Invariant::Storage
            | Invariant::PublishedTransactionDecodes
            | Invariant::SignedTransactionRelays
            | Invariant::Liveness => &[],
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
            Invariant::AcknowledgedBlockIsFinal => &[4, 8],
            Invariant::FundsMatchChain => &[5, 13],
            Invariant::OneSharePerAttempt => &[7],
            Invariant::NothingSignedWhileHalted => &[8],
            Invariant::BurnsSettled => &[14],
            Invariant::RetiredKeyEmpty => &[15],
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
