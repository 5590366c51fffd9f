//! A read-only view of a processor's database: what tests, the simulation, the daemon's metrics
//! and operators read, without knowing any table. Every method reads committed state (or a
//! transaction's, through the same [`Read`] trait) and changes nothing.

use crate::batch::{self, BatchRecord};
use crate::db::{registry, DbError, Read};
use crate::ids::{BatchId, BlockHeight, PlanId, SchemaVersion, SeqId, SessionId};
use crate::keygen::{self, SessionState, ThresholdKeyPair};
use crate::messages::SignId;
use crate::payments::{self, BurnStatus};
use crate::plan::{self, PlanRecord};
use crate::scanner::{self, Halt, ParentDoubt, ScannedTip};
use crate::scheduler::{self, MemFunds, Totals};

/// Read-only access to one processor's state.
pub struct Inspector<'r, R: Read>(&'r R);

impl<'r, R: Read> Inspector<'r, R> {
    /// A view of `reader` (a database, or a transaction in progress).
    pub fn new(reader: &'r R) -> Self {
        Inspector(reader)
    }

    /// The layout version the database is stamped with.
    pub fn schema_version(&self) -> Result<Option<SchemaVersion>, DbError> {
        registry::stored_schema_version(self.0)
    }

    /// The highest inbound sequence id whose effects are committed.
    pub fn handled_through(&self) -> Result<SeqId, DbError> {
        crate::core::handled_through(self.0)
    }

    /// Outbound messages not yet acknowledged by the coordinator.
    pub fn outbox_len(&self) -> Result<usize, DbError> {
        Ok(crate::core::outbox(self.0)?.len())
    }

    /// Key-generation sessions with their state.
    pub fn sessions(&self) -> Result<Vec<(SessionId, SessionState)>, DbError> {
        keygen::sessions(self.0)
    }

    /// The active session, if any.
    pub fn active_session(&self) -> Result<Option<SessionId>, DbError> {
        keygen::active_session(self.0)
    }

    /// Where a session's confirmed keys stand, while they are live.
    pub fn key_stage(&self, session: SessionId) -> Result<Option<keygen::KeyStage>, DbError> {
        keygen::stage::stage(self.0, session)
    }

    /// Outputs retiring keys left behind, worth less than forwarding them costs.
    pub fn abandoned(&self) -> Result<Vec<crate::rotation::Abandoned>, DbError> {
        crate::rotation::abandoned(self.0)
    }

    /// What a session's key holds.
    pub fn holdings(&self, session: SessionId) -> Result<crate::scheduler::Holdings, DbError> {
        crate::scheduler::holdings(self.0, session)
    }

    /// The active keys, if any.
    pub fn active_keys(&self) -> Result<Option<ThresholdKeyPair>, DbError> {
        keygen::active_keys(self.0)
    }

    /// The next height to scan, once scanning began.
    pub fn next_height(&self) -> Result<Option<BlockHeight>, DbError> {
        scanner::next_height(self.0)
    }

    /// The last block scanned.
    pub fn last_scanned(&self) -> Result<Option<ScannedTip>, DbError> {
        scanner::last_scanned(self.0)
    }

    /// Why scanning halted, if it did.
    pub fn halted(&self) -> Result<Option<Halt>, DbError> {
        scanner::halted(self.0)
    }

    /// The last scanned block, while it is fetched again because its successor named another
    /// parent.
    pub fn parent_doubt(&self) -> Result<Option<ParentDoubt>, DbError> {
        scanner::parent_doubt(self.0)
    }

    /// Every height acknowledged here, with the block and Batch id acknowledged.
    pub fn acknowledgements(&self) -> Result<Vec<(BlockHeight, batch::Acknowledgement)>, DbError> {
        batch::acknowledgements(self.0)
    }

    /// Every Batch built here.
    pub fn batches(&self) -> Result<Vec<(BatchId, BatchRecord)>, DbError> {
        batch::batches(self.0)
    }

    /// One Batch built here.
    pub fn batch(&self, id: BatchId) -> Result<Option<BatchRecord>, DbError> {
        batch::batch(self.0, id)
    }

    /// Every plan made here.
    pub fn plans(&self) -> Result<Vec<(PlanId, PlanRecord)>, DbError> {
        plan::plans(self.0)
    }

    /// One plan made here.
    pub fn plan(&self, id: PlanId) -> Result<Option<PlanRecord>, DbError> {
        plan::plan(self.0, id)
    }

    /// What became of a Burn.
    pub fn burn(&self, id: &[u8; 32]) -> Result<Option<BurnStatus>, DbError> {
        payments::burn_status(self.0, id)
    }

    /// Every Burn received, with what became of it.
    pub fn burns(&self) -> Result<Vec<([u8; 32], BurnStatus)>, DbError> {
        payments::burns_received(self.0)
    }

    /// The group's spendable outputs and queued payments, read whole (they can be millions:
    /// prefer [`Inspector::funds_totals`] where totals do).
    pub fn funds(&self) -> Result<MemFunds, DbError> {
        scheduler::snapshot(self.0)
    }

    /// How many outputs the group holds, their sum, how many payments are queued, the fee rate.
    pub fn funds_totals(&self) -> Result<Totals, DbError> {
        scheduler::totals(self.0)
    }

    /// Whether a signing attempt was preprocessed here.
    pub fn preprocessed(&self, id: SignId) -> Result<bool, DbError> {
        crate::sign::was_preprocessed(self.0, id)
    }

    /// Signed transactions not yet seen final.
    pub fn unconfirmed(&self) -> Result<Vec<(PlanId, Vec<u8>)>, DbError> {
        crate::transaction::unconfirmed(self.0)
    }
}
