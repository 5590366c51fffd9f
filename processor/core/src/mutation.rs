//! Deliberately broken variants of the processor, selectable at run time only in builds with
//! the `mutations` feature (the simulation's). They exist to prove the simulation catches the
//! bugs they stand for; production builds compile every check unconditionally.

/// A deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Mutation {
    /// No bug: the processor behaves as production builds do.
    None = 0,
    /// Handle a redelivered inbound frame again instead of only acknowledging it.
    SkipSequenceCheck = 1,
    /// Reuse one attempt's nonces for the next attempt of the same Batch.
    ReuseNonce = 2,
    /// Treat a block as final one confirmation early.
    ReportBeforeFinal = 3,
    /// Credit a Monero output whose one-time key was credited before (the burning bug).
    NoOutputKeyCheck = 4,
    /// Credit deposits below the chain's minimum deposit.
    CreditBelowMinimum = 5,
    /// Queue a Burn whose id was received before (a coordinator re-sending Burns).
    NoBurnDeduplication = 6,
    /// Accept a second, different acknowledgement of a height already acknowledged.
    NoDoubleAcknowledgementGuard = 7,
    /// Accept an acknowledgement naming another block than the one scanned at its height.
    NoAcknowledgedBlockCheck = 8,
    /// Go on signing and planning after a final block changed (the chain halted).
    SignWhileHalted = 9,
    /// Keep an attempt's Batch nonces after signing with them, so a second signing set for
    /// the same attempt gets a second share from the same nonces.
    KeepNoncesAfterSigning = 10,
    /// Schedule payments only when Burns arrive, not when outputs join the funds: a Burn that
    /// waited for funds stays queued once they are there.
    ScheduleOnlyOnBurns = 11,
    /// One dust limit for every Bitcoin destination script (the group's P2TR 330 sat): Burns to
    /// P2PKH (546) and P2SH (540) below their own limit are accepted and paid, in transactions
    /// no node relays.
    OneDustLimit = 12,
    /// Accept a Bitcoin block whose proof of work, merkle root or witness commitment fails.
    NoBlockCommitmentCheck = 13,
    /// Go on after a failed commit as if it had succeeded: the processor's memory and what it
    /// sends run ahead of its store, which a restart then reads.
    IgnoreFailedCommit = 14,
    /// Never forward a retiring key's outputs to the active key: the old key never empties.
    SkipForwarding = 15,
    /// Retire a key that still holds outputs (their shares deleted with them).
    RetireWhileHolding = 16,
    /// Credit no deposit to a retiring key, even inside its window.
    NoLateCredit = 17,
}

impl Mutation {
    /// Every deliberate bug (not `None`).
    pub const ALL: [Mutation; 17] = [
        Mutation::SkipSequenceCheck,
        Mutation::ReuseNonce,
        Mutation::ReportBeforeFinal,
        Mutation::NoOutputKeyCheck,
        Mutation::CreditBelowMinimum,
        Mutation::NoBurnDeduplication,
        Mutation::NoDoubleAcknowledgementGuard,
        Mutation::NoAcknowledgedBlockCheck,
        Mutation::SignWhileHalted,
        Mutation::KeepNoncesAfterSigning,
        Mutation::ScheduleOnlyOnBurns,
        Mutation::OneDustLimit,
        Mutation::NoBlockCommitmentCheck,
        Mutation::IgnoreFailedCommit,
        Mutation::SkipForwarding,
        Mutation::RetireWhileHolding,
        Mutation::NoLateCredit,
    ];
}

#[cfg(feature = "mutations")]
mod switch {
    use super::Mutation;
    use std::sync::atomic::{AtomicU8, Ordering};

    static ACTIVE: AtomicU8 = AtomicU8::new(Mutation::None as u8);

    /// Switches `mutation` on for the whole process (`Mutation::None` switches every one off).
    pub fn set(mutation: Mutation) {
        ACTIVE.store(mutation as u8, Ordering::SeqCst);
    }

    pub fn active(mutation: Mutation) -> bool {
        ACTIVE.load(Ordering::SeqCst) == mutation as u8
    }
}

#[cfg(feature = "mutations")]
pub use switch::set;

/// Whether `mutation` is switched on (never, without the `mutations` feature).
#[inline(always)]
pub fn active(mutation: Mutation) -> bool {
    #[cfg(feature = "mutations")]
    {
        switch::active(mutation)
    }
    #[cfg(not(feature = "mutations"))]
    {
        let _ = mutation;
        false
    }
}
