//! Every table the processor stores, with its key prefix: the one place that owns key layout.
//! Prefixes end in `/` and none is a prefix of another (a test checks).

use super::Table;
use crate::ids::{BatchId, BlockHeight, BlockId, SeqId, SessionId};
use crate::keygen::{KeyShares, SessionState};
use crate::scanner::{FinalBlock, Halt};
use crate::batch::BatchRecord;
use crate::payments::{BurnStatus, PlanRecord};
use crate::scheduler::Scheduler;
use crate::transaction::Eventuality;

/// Highest inbound sequence id whose effects are committed.
pub const INBOUND_HANDLED: Table<(), SeqId> = Table::new("inbound_handled", b"link/in_handled/");
/// Sequence id the next outbound message will carry.
pub const OUTBOUND_NEXT: Table<(), SeqId> = Table::new("outbound_next", b"link/out_next/");
/// Sealed outbound messages not yet acknowledged, re-sent until they are.
pub const OUTBOX: Table<SeqId, Vec<u8>> = Table::new("outbox", b"link/outbox/");

/// Key-generation sessions and their progress.
pub const KEYGEN_SESSIONS: Table<SessionId, SessionState> = Table::new("keygen_sessions", b"keygen/session/");
/// Generated key shares, by session. Secret.
pub const KEY_SHARES: Table<SessionId, KeyShares> = Table::new("key_shares", b"keygen/shares/");
/// The session whose keys are active (confirmed by the coordinator), if any.
pub const ACTIVE_SESSION: Table<(), SessionId> = Table::new("active_session", b"keygen/active/");

/// The next block height to scan (set when the first keys become active).
pub const SCANNER_NEXT: Table<(), BlockHeight> = Table::new("scanner_next", b"scan/next/");
/// The last scanned final block, to check the next one builds on it.
pub const LAST_SCANNED: Table<(), (BlockHeight, BlockId)> = Table::new("last_scanned", b"scan/last/");
/// Final blocks with outputs to the group, as reported, until their outputs joined the funds.
pub const FINAL_BLOCKS: Table<BlockHeight, FinalBlock> = Table::new("final_blocks", b"scan/final/");
/// Set when a final block changed: scanning stops for good.
pub const HALTED: Table<(), Halt> = Table::new("halted", b"scan/halted/");

/// Batches this processor built, and their signatures once known.
pub const BATCHES: Table<BatchId, BatchRecord> = Table::new("batches", b"batch/record/");
/// Signing attempts this processor sent a preprocess for. Never preprocessed twice: the
/// nonces of an attempt live only in memory, so after a restart the attempt is abandoned.
pub const PREPROCESSED: Table<Vec<u8>, ()> = Table::new("preprocessed", b"sign/preprocessed/");

/// The group's spendable outputs and queued payments.
pub const SCHEDULER: Table<(), Scheduler> = Table::new("scheduler", b"schedule/state/");

/// Every Burn ever received, by id, so one is never paid twice.
pub const BURNS: Table<Vec<u8>, BurnStatus> = Table::new("burns", b"pay/burn/");
/// Planned transactions, by plan id.
pub const PLANS: Table<Vec<u8>, PlanRecord> = Table::new("plans", b"pay/plan/");

/// Watched outputs: a plan's first input and the transaction that must spend it.
pub const EVENTUALITIES: Table<Vec<u8>, Eventuality> = Table::new("eventualities", b"pay/eventuality/");
/// Outputs to the group seen final and not yet seen spent (their spends are looked for).
pub const GROUP_OUTPUTS: Table<Vec<u8>, ()> = Table::new("group_outputs", b"pay/output/");
/// Group outputs seen spent before any plan here awaited the spend, with the spender's id.
pub const SPENT: Table<Vec<u8>, Vec<u8>> = Table::new("spent", b"pay/spent/");
/// Monero outputs to the group: the height they were final at and the `WalletOutput` needed
/// to spend them.
pub const MONERO_OUTPUTS: Table<Vec<u8>, (BlockHeight, Vec<u8>)> = Table::new("monero_outputs", b"pay/monero_output/");
/// Monero plans waiting for their inputs' rings from the chain source.
pub const AWAITING_DECOYS: Table<Vec<u8>, ()> = Table::new("awaiting_decoys", b"pay/awaiting_decoys/");
/// Monero plans' inputs with their rings (`OutputWithDecoys`), once selected.
pub const MONERO_INPUTS: Table<Vec<u8>, Vec<Vec<u8>>> = Table::new("monero_inputs", b"pay/monero_inputs/");
/// Monero plans' Eventualities until resolved: the transaction's extra (a cheap first filter)
/// and the serialized Eventuality.
pub const MONERO_EVENTUALITIES: Table<Vec<u8>, (Vec<u8>, Vec<u8>)> = Table::new("monero_eventualities", b"pay/monero_eventuality/");
/// The group's own Monero transactions seen final that no pending plan matched yet.
pub const OWN_TRANSACTIONS: Table<Vec<u8>, Vec<u8>> = Table::new("own_transactions", b"pay/own_transaction/");
/// Signed transactions not yet seen final, by plan id: published until they are.
pub const UNCONFIRMED: Table<Vec<u8>, Vec<u8>> = Table::new("unconfirmed", b"pay/unconfirmed/");

/// All prefixes, for the layout test.
pub const ALL_PREFIXES: &[&[u8]] = &[
    INBOUND_HANDLED.prefix(),
    OUTBOUND_NEXT.prefix(),
    OUTBOX.prefix(),
    KEYGEN_SESSIONS.prefix(),
    KEY_SHARES.prefix(),
    ACTIVE_SESSION.prefix(),
    SCANNER_NEXT.prefix(),
    LAST_SCANNED.prefix(),
    FINAL_BLOCKS.prefix(),
    HALTED.prefix(),
    BATCHES.prefix(),
    PREPROCESSED.prefix(),
    SCHEDULER.prefix(),
    BURNS.prefix(),
    PLANS.prefix(),
    EVENTUALITIES.prefix(),
    UNCONFIRMED.prefix(),
    GROUP_OUTPUTS.prefix(),
    SPENT.prefix(),
    MONERO_OUTPUTS.prefix(),
    AWAITING_DECOYS.prefix(),
    MONERO_INPUTS.prefix(),
    MONERO_EVENTUALITIES.prefix(),
    OWN_TRANSACTIONS.prefix(),
];

#[cfg(test)]
mod tests {
    use super::ALL_PREFIXES;

    #[test]
    fn no_prefix_is_a_prefix_of_another() {
        for (i, a) in ALL_PREFIXES.iter().enumerate() {
            assert!(a.ends_with(b"/"));
            for (j, b) in ALL_PREFIXES.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{:?} shadows {:?}", String::from_utf8_lossy(a), String::from_utf8_lossy(b));
                }
            }
        }
    }
}
