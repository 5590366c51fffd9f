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
    /// Accept a Bitcoin block whose proof of work, merkle root or witness commitment fails.
    NoBlockCommitmentCheck = 6,
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
