//! The processor's deterministic core: events in, effects out, no IO of its own.
//!
//! The driver (the daemon on tokio, a simulated node on madsim, a test calling it directly)
//! feeds [`Event`]s and performs the returned [`Effect`]s. Everything else is injected: the DB,
//! the RNG, and the time (carried by [`Event::Tick`]).
//!
//! Exactly-once effects over an at-least-once link: each inbound `Data` frame is handled in one
//! DB transaction that also records its sequence id as handled and stores the messages it
//! causes in the outbox. A redelivered frame is recognised by its id and only acknowledged
//! again. Outbox messages are re-sent on every tick until the coordinator acknowledges them.

#[cfg(test)]
mod fuzz;

use crate::batch::BatchSigner;
pub use crate::chain::bitcoin::ProofOfWork;
use crate::crypto::Identity;
use crate::db::{tables, Db, DbError, Read, Txn};
use crate::ids::{BlockHeight, ExternalChain, Millis, PeerKey, PlanId, SeqId};
use crate::keygen::{self, KeyGenContext, KeyGenError};
use crate::messages::{
    CoordinatorMessage, Envelope, Frame, PaymentsCommand, ProcessorMessage, ScannerCommand, SignCommand, SignEvent,
    SignTarget,
};
use crate::payments;
use crate::scanner::{self, BlockOutcome};
use crate::sign::SignError;
use crate::transaction::TransactionSigner;
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;

/// Frames further ahead than this of the next expected id are dropped (they will be resent);
/// this bounds the memory a coordinator can make us hold.
pub const REORDER_WINDOW: u64 = 1024;
/// Only the oldest this many unacknowledged messages are ever re-sent (each at most once per
/// [`RESEND_AFTER_MS`]): the coordinator holds what arrives out of order, so what is missing is
/// almost always at the head, and re-sending the whole outbox every interval is a congestion
/// collapse under load (re-sends crowd out the acknowledgements that would end them).
pub const RESEND_WINDOW: usize = 16;
/// An unacknowledged message is re-sent this long after it was last sent.
pub const RESEND_AFTER_MS: u64 = 500;
/// A signed transaction not yet seen final is published again this long after the last time.
pub const REPUBLISH_AFTER_MS: u64 = 10_000;
/// An unanswered ring selection is asked for again this long after the last time.
pub const DECOYS_AGAIN_AFTER_MS: u64 = 2_000;
/// With nothing due, the core still wants a tick this often (tip polling rides on it).
pub const IDLE_TICK_MS: u64 = 1_000;

tables! {
    /// Highest inbound sequence id whose effects are committed.
    INBOUND_HANDLED: Table<(), SeqId> = b"link/in_handled/";
    /// Sequence id the next outbound message will carry.
    OUTBOUND_NEXT: Table<(), SeqId> = b"link/out_next/";
    /// Sealed outbound messages not yet acknowledged, re-sent until they are.
    OUTBOX: Table<SeqId, Vec<u8>> = b"link/outbox/";
    /// A digest of each of the last [`HANDLED_DIGESTS_KEPT`] handled commands, by sequence id: a
    /// frame re-using a handled id with another command means the coordinator lost its state.
    HANDLED_DIGESTS: Table<SeqId, [u8; 32]> = b"link/in_digest/";
}

/// How many handled commands' digests are kept (older redeliveries cannot be told apart from a
/// coordinator that lost its state, and are taken as redeliveries).
pub const HANDLED_DIGESTS_KEPT: u64 = REORDER_WINDOW;

fn command_digest(message: &CoordinatorMessage) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"threshold-custody processor: handled command");
    hasher.update(crate::messages::encode(message));
    hasher.finalize().into()
}

/// The highest inbound sequence id whose effects are committed (0 before the first).
pub fn handled_through(reader: &impl Read) -> Result<SeqId, DbError> {
    Ok(INBOUND_HANDLED.get(reader, &())?.unwrap_or(SeqId(0)))
}

/// The sealed outbound messages not yet acknowledged, oldest first.
pub fn outbox(reader: &impl Read) -> Result<Vec<(SeqId, Vec<u8>)>, DbError> {
    OUTBOX.entries(reader)
}

/// What the driver hands the core.
#[derive(Clone, Debug)]
pub enum Event {
    /// Bytes received from the coordinator link, not yet authenticated.
    Inbound(Vec<u8>),
    /// Time passed; carries the injected clock's current time.
    Tick {
        /// The current time; a time earlier than one already seen is taken as that one.
        now: Millis,
    },
    /// The chain source's current best height.
    ChainTip {
        /// The height of the best chain's tip, on the external chain.
        height: BlockHeight,
    },
    /// A block the core asked for with [`Effect::FetchBlock`], as the chain source returned it.
    Block {
        /// The height it was fetched at.
        height: BlockHeight,
        /// The block as [`crate::chain::scan_block`] reads it (Bitcoin: consensus encoding;
        /// Monero: encoded [`crate::chain::monero::MoneroBlockData`]).
        bytes: Vec<u8>,
    },
    /// The inputs with rings the core asked for with [`Effect::SelectDecoys`] (Monero), each a
    /// serialized monero-wallet `OutputWithDecoys`, in request order.
    Decoys {
        /// The Monero plan whose rings these are.
        plan: PlanId,
        /// One serialized `OutputWithDecoys` per input of the plan.
        inputs: Vec<Vec<u8>>,
    },
}

/// What the core asks the driver to do.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Effect {
    /// Send these sealed bytes to the coordinator.
    Send(Vec<u8>),
    /// Fetch the block at this height from the chain source and hand it back as
    /// [`Event::Block`]. Requests come in height order; a failed fetch may simply be dropped,
    /// it is requested again on a later tick.
    FetchBlock {
        /// The height to fetch, on the external chain.
        height: BlockHeight,
    },
    /// Publish this signed transaction (chain encoding) through the chain source. Repeated
    /// until the transaction is seen in a final block; a failure may simply be dropped.
    Publish {
        /// The signed transaction, in its chain's encoding.
        transaction: Vec<u8>,
    },
    /// Select rings for a Monero plan's inputs
    /// ([`crate::transaction::monero::select_decoys`]) and hand them back as [`Event::Decoys`].
    /// Asked again until answered; a failure may simply be dropped.
    SelectDecoys(crate::transaction::monero::DecoyRequest),
}

/// What handling one [`Event`] did: everything a driver needs to decide what to do next.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Outcome {
    /// The effects to perform, in order.
    pub effects: Vec<Effect>,
    /// For [`Event::Inbound`]: what became of the frame.
    pub inbound: Option<InboundStatus>,
    /// For [`Event::Block`]: what became of the block.
    pub block: Option<BlockStatus>,
    /// When the core next needs an [`Event::Tick`] (on the clock the ticks carry). A driver
    /// may tick more often; ticking later only delays resends and retries.
    pub next_tick: Millis,
}

/// What became of an inbound frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundStatus {
    /// Its effects are committed (or it was an acknowledgement, or a redelivery of a frame
    /// already handled): the link may forget it.
    Committed,
    /// Refused before any effect (malformed, not signed by the coordinator, misaddressed):
    /// the link may forget it.
    Refused,
    /// A command held in memory only (ahead of the next expected id, or waiting for the
    /// chain): a link that de-duplicates resends (a broker) must deliver it again, since a
    /// crash loses what is held in memory.
    Held,
}

/// What became of a block from the chain source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Scanned (its outcome committed).
    Scanned,
    /// Not needed (already scanned, or not yet final).
    Ignored,
    /// Did not parse, was inconsistent, lacked its proof of work, or was off the source's own
    /// chain: the source served something wrong.
    Refused,
    /// Named a parent other than the block scanned below it: that height is fetched again
    /// (an [`Effect::FetchBlock`] of this outcome) before anything is concluded.
    Rechecking,
    /// A final block changed: the chain halted (reported to the coordinator).
    Halted,
}

/// A failure the core cannot handle: the driver must stop and restart from the DB.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The database failed; nothing of the event was committed.
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Counts of what the core saw, for logs, metrics and tests.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Inbound frames received from the link, before any check.
    pub frames_in: u64,
    /// Inbound bytes refused before any effect (malformed, unsigned, misaddressed).
    pub refused_frames: u64,
    /// Redelivered frames recognised by sequence id.
    pub duplicates: u64,
    /// Frames re-using a handled sequence id with another command (the coordinator lost its
    /// state, or is faulty): refused, not acknowledged.
    pub sequence_conflicts: u64,
    /// Authentic commands refused as inconsistent with the state.
    pub refused_commands: u64,
    /// Messages sealed into the outbox and sent (acknowledgements not counted).
    pub messages_out: u64,
    /// Outbox messages sent again because they were not acknowledged in time.
    pub resent: u64,
    /// Participants blamed, in key generation or in signing.
    pub blames: u64,
    /// Final blocks scanned (including those with nothing for the group).
    pub blocks_scanned: u64,
    /// Blocks from the chain source that did not parse, were inconsistent, lacked their proof
    /// of work or were off the source's own chain.
    pub refused_blocks: u64,
    /// Deposits below the chain's minimum, neither credited nor spent.
    pub deposits_below_minimum: u64,
    /// Blocks that named a parent other than the block scanned below them (that height was
    /// fetched again, to confirm a reorganisation before halting).
    pub parent_rechecks: u64,
    /// Batches whose aggregate signature was completed here.
    pub batches_signed: u64,
    /// Plans whose transaction was completely signed here.
    pub transactions_signed: u64,
    /// Times a signed transaction was handed out for publication (republications included).
    pub transactions_published: u64,
}

/// Static configuration of one processor.
#[derive(Clone, Debug)]
pub struct Config {
    /// The external chain this processor serves.
    pub chain: ExternalChain,
    /// The only key commands are accepted from.
    pub coordinator: PeerKey,
    /// Blocks on top of a block before it is final.
    pub confirmations: u64,
    /// What a block's header must prove (Bitcoin-family chains; the network's rule, e.g.
    /// [`ProofOfWork::BITCOIN`], [`ProofOfWork::REGTEST`] for regtest and the mock chain).
    pub proof_of_work: ProofOfWork,
    /// Blocks after a key rotation's handover during which deposits to the retiring key are
    /// still credited; the retiring key retires no earlier (see [`crate::rotation`]).
    pub retirement_window: u64,
}

impl Config {
    /// The retirement window a chain's daemon uses unless configured: about a day of blocks
    /// (Bitcoin 144, Monero 720), for depositors who were given the old address.
    pub const fn default_retirement_window(chain: ExternalChain) -> u64 {
        match chain {
            ExternalChain::Bitcoin => 144,
            ExternalChain::Monero => 720,
        }
    }
}

/// One processor's core over a database `D`, drawing every random byte from the injected `R`.
/// Drivers call [`Processor::handle`] for each event and perform the effects it returns.
pub struct Processor<D: Db, R: RngCore + CryptoRng> {
    db: D,
    identity: Identity,
    config: Config,
    rng: R,
    /// Frames that arrived ahead of the next expected id. In memory only: the coordinator
    /// resends anything unacknowledged, so losing these in a crash loses nothing.
    reorder: BTreeMap<SeqId, CoordinatorMessage>,
    counters: Counters,
    now: Millis,
    tip: Option<BlockHeight>,
    /// When each outbox message was last sent by this incarnation (absent: not yet).
    last_sent: BTreeMap<SeqId, Millis>,
    /// Heights already requested from the chain source and not yet scanned.
    requested_through: Option<BlockHeight>,
    signer: BatchSigner,
    transactions: TransactionSigner,
    /// When each unconfirmed transaction was last published by this incarnation.
    last_published: BTreeMap<PlanId, Millis>,
    /// When each Monero plan's rings were last asked for by this incarnation.
    decoys_asked: BTreeMap<PlanId, Millis>,
    /// Parsed keys, for scanning.
    keys: keygen::KeyCache,
    /// Whether a tick has been handled since opening (until then the outbox is resent at once).
    ticked: bool,
}

/// Takes a database from schema `from` to the next one (see `ARCHITECTURE.md`, "Storage layout").
fn migrate<D: Db>(txn: &mut crate::db::Txn<'_, D>, from: crate::ids::SchemaVersion) -> Result<(), crate::db::DbError> {
    match from.0 {
        // 1 to 2: the scheduler's one value became a row per output and per queued payment.
        1 => crate::scheduler::migrate_from_schema_1(txn),
        // 2 to 3: several keys can be live: the funds are partitioned by key, keys have stages,
        // open plans are indexed by key.
        2 => {
            let session = keygen::active_session(txn)?.unwrap_or_default();
            crate::scheduler::migrate_from_schema_2(txn, session)?;
            keygen::stage::migrate_from_schema_2(txn)?;
            crate::plan::migrate_from_schema_2(txn)
        }
        _ => Err(crate::db::DbError::UnknownSchema { found: from, supported: crate::db::SCHEMA_VERSION }),
    }
}

impl<D: Db, R: RngCore + CryptoRng> Processor<D, R> {
    /// Opens a processor on whatever `db` holds (empty for a new one, the committed state after
    /// a crash). A database written in another layout is refused
    /// ([`DbError::UnknownSchema`]).
    pub fn open(db: D, identity: Identity, config: Config, rng: R) -> Result<Self, CoreError> {
        crate::db::open_schema(&db, migrate)?;
        Ok(Processor {
            db,
            identity,
            config,
            rng,
            reorder: BTreeMap::new(),
            counters: Counters::default(),
            now: Millis(0),
            tip: None,
            last_sent: BTreeMap::new(),
            requested_through: None,
            signer: BatchSigner::default(),
            transactions: TransactionSigner::default(),
            last_published: BTreeMap::new(),
            decoys_asked: BTreeMap::new(),
            keys: keygen::KeyCache::default(),
            ticked: false,
        })
    }

    /// The processor's own link key.
    pub fn peer_key(&self) -> PeerKey {
        self.identity.peer_key()
    }

    /// The database the core commits to (for read-only inspection).
    pub fn db(&self) -> &D {
        &self.db
    }

    /// What the core has counted so far (for logs and metrics; drivers decide nothing on
    /// them: [`Outcome`] says what an event did).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Handles one event: its state change and outbound messages are committed in one DB
    /// transaction before this returns; the outcome lists the effects to perform.
    pub fn handle(&mut self, event: Event) -> Result<Outcome, CoreError> {
        let mut outcome = Outcome::default();
        outcome.effects = match event {
            Event::Inbound(bytes) => {
                let (status, effects) = self.inbound(&bytes)?;
                outcome.inbound = Some(status);
                effects
            }
            Event::Tick { now } => {
                self.now = self.now.max(now);
                self.ticked = true;
                // Anything requested and not delivered is asked for again.
                self.requested_through = None;
                let mut effects = self.resend()?;
                effects.extend(self.fetches()?);
                effects.extend(self.republish()?);
                effects.extend(self.ask_decoys()?);
                effects
            }
            Event::ChainTip { height } => {
                self.tip = Some(height);
                self.fetches()?
            }
            Event::Block { height, bytes } => {
                let (status, effects) = self.block(height, &bytes)?;
                outcome.block = Some(status);
                effects
            }
            Event::Decoys { plan, inputs } => self.decoys(plan, &inputs)?,
        };
        outcome.next_tick = self.next_tick();
        Ok(outcome)
    }

    /// When the core next needs an [`Event::Tick`]: the earliest resend, re-fetch,
    /// republication or ring request due (like quinn-proto's `poll_timeout`); right away
    /// after opening, so whatever the outbox holds goes out again.
    fn next_tick(&self) -> Millis {
        if !self.ticked {
            return self.now;
        }
        let after = |at: &Millis, delay_ms: u64| Millis(at.0.saturating_add(delay_ms));
        let mut next = after(&self.now, IDLE_TICK_MS);
        if self.requested_through.is_some() {
            next = next.min(after(&self.now, RESEND_AFTER_MS));
        }
        let due = self
            .last_sent
            .values()
            .map(|at| after(at, RESEND_AFTER_MS))
            .chain(self.last_published.values().map(|at| after(at, REPUBLISH_AFTER_MS)))
            .chain(self.decoys_asked.values().map(|at| after(at, DECOYS_AGAIN_AFTER_MS)));
        due.fold(next, Millis::min)
    }

    fn fetches(&mut self) -> Result<Vec<Effect>, CoreError> {
        let Some(tip) = self.tip else { return Ok(vec![]) };
        let heights = scanner::heights_to_fetch(&self.db, tip, self.config.confirmations, self.requested_through)?;
        if let Some(last) = heights.last() {
            self.requested_through = Some(*last);
        }
        Ok(heights.into_iter().map(|height| Effect::FetchBlock { height }).collect())
    }

    fn block(&mut self, height: BlockHeight, bytes: &[u8]) -> Result<(BlockStatus, Vec<Effect>), CoreError> {
        let db = self.db.clone();
        let mut txn = db.txn();
        let chain = self.config.chain;
        let view = scanner::ChainView {
            chain,
            confirmations: self.config.confirmations,
            tip: self.tip,
            proof_of_work: self.config.proof_of_work,
        };
        let (status, messages) = match scanner::on_block(&mut txn, view, height, bytes, |txn| {
            crate::transaction::eventuality::watched(txn, chain)
        })? {
            BlockOutcome::Ignored(_) => return Ok((BlockStatus::Ignored, vec![])),
            BlockOutcome::Refused(error) => {
                // Only a settled parent doubt may have been written.
                txn.commit()?;
                self.counters.refused_blocks += 1;
                self.requested_through = None;
                tracing::warn!(%height, %error, "refused a block from the chain source");
                return Ok((BlockStatus::Refused, vec![]));
            }
            BlockOutcome::Rechecking { height: again } => {
                txn.commit()?;
                self.counters.parent_rechecks += 1;
                // What was requested beyond is ignored until the doubt is settled.
                self.requested_through = None;
                let effects = self.fetches()?;
                debug_assert_eq!(effects, vec![Effect::FetchBlock { height: again }]);
                return Ok((BlockStatus::Rechecking, effects));
            }
            BlockOutcome::Halted { messages } => (BlockStatus::Halted, messages),
            BlockOutcome::Scanned { mut messages, block, below_minimum } => {
                self.counters.blocks_scanned += 1;
                self.counters.deposits_below_minimum += below_minimum as u64;
                // The block's spends and outputs may complete the group's plans.
                messages.extend(crate::transaction::eventuality::resolve(&mut txn, chain, height, &block)?);
                (BlockStatus::Scanned, messages)
            }
        };
        let sealed = self.enqueue(&mut txn, messages)?;
        txn.commit()?;
        self.counters.messages_out += sealed.len() as u64;
        let mut effects: Vec<Effect> = sealed.into_iter().map(Effect::Send).collect();
        // A command held back for this block may now go ahead.
        effects.extend(self.drain(None)?);
        Ok((status, effects))
    }

    fn inbound(&mut self, bytes: &[u8]) -> Result<(InboundStatus, Vec<Effect>), CoreError> {
        self.counters.frames_in += 1;
        let coordinator = self.config.coordinator;
        let envelope = match Envelope::<CoordinatorMessage>::open(bytes, &self.peer_key(), |s| *s == coordinator) {
            Ok(envelope) => envelope,
            Err(error) => {
                self.counters.refused_frames += 1;
                tracing::warn!(%error, len = bytes.len(), "refused inbound frame");
                return Ok((InboundStatus::Refused, vec![]));
            }
        };
        match envelope.frame {
            Frame::Ack { up_to } => self.acknowledged(up_to).map(|()| (InboundStatus::Committed, vec![])),
            Frame::Data { seq, message } => {
                let Some(effects) = self.data(seq, message)? else {
                    return Ok((InboundStatus::Refused, vec![]));
                };
                let handled = handled_through(&self.db)?;
                let status = if seq > handled { InboundStatus::Held } else { InboundStatus::Committed };
                Ok((status, effects))
            }
        }
    }

    fn acknowledged(&mut self, up_to: SeqId) -> Result<(), CoreError> {
        let mut txn = self.db.txn();
        for (seq, _) in OUTBOX.entries(&txn)? {
            if seq > up_to {
                break;
            }
            OUTBOX.delete(&mut txn, &seq);
        }
        txn.commit()?;
        self.last_sent.retain(|seq, _| *seq > up_to);
        Ok(())
    }

    /// A data frame: `None` if it re-uses a handled sequence id for another command (refused:
    /// not acknowledged, so a coordinator that lost its state cannot take it as handled).
    fn data(&mut self, seq: SeqId, message: CoordinatorMessage) -> Result<Option<Vec<Effect>>, CoreError> {
        let handled = handled_through(&self.db)?;
        if seq <= handled && !crate::mutation::active(crate::mutation::Mutation::SkipSequenceCheck) {
            if HANDLED_DIGESTS.get(&self.db, &seq)?.is_some_and(|digest| digest != command_digest(&message)) {
                self.counters.sequence_conflicts += 1;
                tracing::error!(
                    %seq, %handled,
                    "the coordinator sent another command under a sequence id already handled: it lost its state \
                     or is faulty; refused, operator action needed"
                );
                return Ok(None);
            }
            self.counters.duplicates += 1;
            return Ok(Some(vec![self.ack(handled)]));
        }
        if seq <= handled {
            // The deliberate bug: handle it again.
            let effects = self.apply(seq, message)?;
            return Ok(Some(effects));
        }
        if seq.0 > handled.0 + 1 {
            if seq.0 - handled.0 <= REORDER_WINDOW {
                self.reorder.insert(seq, message);
            }
            return Ok(Some(vec![]));
        }

        self.drain(Some((seq, message))).map(Some)
    }

    /// Handles `first` (the next frame in order) and then buffered frames in order, stopping
    /// at a command that cannot be acted on yet (it waits in the buffer); acknowledges what
    /// was handled.
    fn drain(&mut self, first: Option<(SeqId, CoordinatorMessage)>) -> Result<Vec<Effect>, CoreError> {
        let handled = handled_through(&self.db)?;
        let next_seq = SeqId(handled.0 + 1);
        let mut next = first.or_else(|| self.reorder.remove(&next_seq).map(|message| (next_seq, message)));
        let mut effects = Vec::new();
        let mut last = handled;
        while let Some((seq, message)) = next {
            if !self.ready(&message)? {
                self.reorder.insert(seq, message);
                break;
            }
            effects.extend(self.apply(seq, message)?);
            last = seq;
            let following = SeqId(seq.0 + 1);
            next = self.reorder.remove(&following).map(|message| (following, message));
        }
        self.reorder.retain(|buffered, _| *buffered > last);
        if last > handled {
            effects.push(self.ack(last));
        }
        Ok(effects)
    }

    /// Whether a command can be acted on now. Commands are acted on strictly in order, so
    /// one about a block not scanned here yet holds back everything after it: every processor
    /// then sees the group's funds change at the same point of the command stream.
    fn ready(&self, message: &CoordinatorMessage) -> Result<bool, CoreError> {
        match message {
            CoordinatorMessage::Scanner(
                ScannerCommand::AcknowledgeBlock { height, .. } | ScannerCommand::AcknowledgeHeight { height },
            ) => Ok(scanner::scanned_or_halted(&self.db, *height)?),
            _ => Ok(true),
        }
    }

    /// Handles the next inbound message in one transaction with its outbound messages.
    fn apply(&mut self, seq: SeqId, message: CoordinatorMessage) -> Result<Vec<Effect>, CoreError> {
        let digest = command_digest(&message);
        let db = self.db.clone();
        let mut txn = db.txn();
        let mut publish: Option<(PlanId, Vec<u8>)> = None;
        // A chain whose final block changed signs and plans nothing more (ARCHITECTURE.md,
        // invariant 8): which funds the group holds is no longer known.
        let halted =
            scanner::halted(&txn)?.is_some() && !crate::mutation::active(crate::mutation::Mutation::SignWhileHalted);
        let replies = match message {
            CoordinatorMessage::Scanner(_) | CoordinatorMessage::Sign(_) | CoordinatorMessage::Payments(_)
                if halted =>
            {
                self.refuse(seq, "the chain is halted: a final block changed; nothing is signed or planned");
                vec![]
            }
            CoordinatorMessage::KeyGen(command) => self.keygen_command(&db, &mut txn, seq, command)?,
            CoordinatorMessage::Scanner(command) => self.scanner_command(&db, &mut txn, seq, command)?,
            CoordinatorMessage::Sign(command) => self.sign_command(&db, &mut txn, seq, command, &mut publish)?,
            CoordinatorMessage::Payments(PaymentsCommand::Burns { chain, burns, fee_rate }) => {
                match payments::burns(&mut txn, self.config.chain, chain, burns, fee_rate)? {
                    Ok(scheduling) => self.planned(&mut txn, seq, scheduling)?,
                    Err(why) => {
                        txn = db.txn();
                        self.refuse(seq, &why);
                        vec![]
                    }
                }
            }
        };
        INBOUND_HANDLED.set(&mut txn, &(), &seq);
        HANDLED_DIGESTS.set(&mut txn, &seq, &digest);
        if let Some(expired) = seq.0.checked_sub(HANDLED_DIGESTS_KEPT) {
            HANDLED_DIGESTS.delete(&mut txn, &SeqId(expired));
        }
        let sealed = self.enqueue(&mut txn, replies)?;
        txn.commit()?;
        self.counters.messages_out += sealed.len() as u64;
        let mut effects: Vec<Effect> = sealed.into_iter().map(Effect::Send).collect();
        if let Some((plan, transaction)) = publish {
            self.last_published.insert(plan, self.now);
            self.counters.transactions_published += 1;
            effects.push(Effect::Publish { transaction });
        }
        Ok(effects)
    }

    /// A key-generation command; a blame or refusal discards what the step wrote.
    fn keygen_command<'a>(
        &mut self,
        db: &'a D,
        txn: &mut Txn<'a, D>,
        seq: SeqId,
        command: crate::messages::KeyGenCommand,
    ) -> Result<Vec<ProcessorMessage>, CoreError> {
        let session = keygen::session_of(&command);
        let activation = match command {
            crate::messages::KeyGenCommand::Confirm { activation, .. } => Some(activation),
            _ => None,
        };
        let context = KeyGenContext {
            chain: self.config.chain,
            identity: &self.identity,
            next_to_scan: scanner::next_height(&*txn)?,
        };
        let events = match keygen::handle(txn, &context, &mut self.rng, command) {
            Ok(events) => {
                // The first keys' activation height is where scanning begins.
                let activated =
                    events.iter().any(|event| matches!(event, crate::messages::KeyGenEvent::Activated { .. }));
                if let (true, Some(activation)) = (activated, activation) {
                    scanner::start_at(txn, activation)?;
                }
                events
            }
            Err(KeyGenError::Blame { accused, reason }) => {
                // Nothing the failed step wrote may stand; only the verdict does.
                *txn = db.txn();
                self.counters.blames += 1;
                keygen::record_blame(txn, session, accused, reason)?
            }
            Err(KeyGenError::Refused(why)) => {
                *txn = db.txn();
                self.refuse(seq, &why);
                vec![]
            }
            Err(KeyGenError::Db(error)) => return Err(error.into()),
        };
        Ok(events.into_iter().map(ProcessorMessage::KeyGen).collect())
    }

    /// A block acknowledged or a Batch published: the group's funds may have grown, so what
    /// waits is planned.
    fn scanner_command<'a>(
        &mut self,
        db: &'a D,
        txn: &mut Txn<'a, D>,
        seq: SeqId,
        command: ScannerCommand,
    ) -> Result<Vec<ProcessorMessage>, CoreError> {
        let chain = self.config.chain;
        let window = self.config.retirement_window;
        let acknowledged = match command {
            ScannerCommand::AcknowledgeBlock { height, .. } | ScannerCommand::AcknowledgeHeight { height } => {
                Some(height)
            }
            ScannerCommand::BatchPublished { .. } => None,
        };
        let result = match command {
            ScannerCommand::AcknowledgeBlock { height, block, batch } => {
                let acknowledgement = crate::batch::Acknowledgement { block, batch };
                self.signer.acknowledged(txn, &mut self.rng, chain, height, acknowledgement, window)
            }
            ScannerCommand::BatchPublished { batch } => self.signer.published(txn, batch, window).map(|()| vec![]),
            // A quiet block at or above a pending key's activation hands over as a block with
            // outputs does.
            ScannerCommand::AcknowledgeHeight { height } => keygen::hand_over(txn, height)
                .map(|handed| {
                    handed
                        .map(|(session, from)| {
                            ProcessorMessage::KeyGen(crate::messages::KeyGenEvent::HandedOver { session, from, height })
                        })
                        .into_iter()
                        .collect()
                })
                .map_err(SignError::Db),
        };
        let refused = result.is_err();
        let mut messages = self.signing_result(db, txn, seq, None, result)?;
        if crate::mutation::active(crate::mutation::Mutation::ScheduleOnlyOnBurns) {
            // The deliberate bug: Burns waiting for funds stay queued when funds arrive.
            return Ok(messages);
        }
        let scheduling = payments::schedule(txn, chain)?;
        messages.extend(self.planned(txn, seq, scheduling)?);
        if let (Some(height), false) = (acknowledged, refused) {
            let rotation = crate::rotation::after_acknowledgement(txn, chain, height, window)?;
            for message in &rotation.messages {
                if let ProcessorMessage::KeyGen(crate::messages::KeyGenEvent::Retired { session, .. }) = message {
                    // Parsed copies of its shares are dropped (and zeroized) now.
                    self.keys.forget(*session);
                    self.signer.forget_keys(*session);
                    self.transactions.forget_keys(*session);
                }
            }
            messages.extend(self.planned(txn, seq, rotation)?);
        }
        Ok(messages)
    }

    /// A signing command for a Batch or a plan; a transaction signed now is also published
    /// (`publish`).
    fn sign_command<'a>(
        &mut self,
        db: &'a D,
        txn: &mut Txn<'a, D>,
        seq: SeqId,
        command: SignCommand,
        publish: &mut Option<(PlanId, Vec<u8>)>,
    ) -> Result<Vec<ProcessorMessage>, CoreError> {
        let (id, result) = match command {
            SignCommand::Preprocesses { id, preprocesses } => match id.target {
                SignTarget::Batch(_) => (id, self.signer.preprocesses(txn, id, &preprocesses)),
                SignTarget::Transaction(_) => (id, self.transactions.preprocesses(txn, id, &preprocesses)),
            },
            SignCommand::Shares { id, shares } => {
                let result = match id.target {
                    SignTarget::Batch(_) => self.signer.shares(txn, id, &shares),
                    SignTarget::Transaction(plan) => {
                        let result = self.transactions.shares(txn, id, &shares);
                        if matches!(result, Ok(ref messages) if !messages.is_empty()) {
                            self.counters.transactions_signed += 1;
                            *publish =
                                crate::transaction::unconfirmed_transaction(&*txn, plan)?.map(|bytes| (plan, bytes));
                        }
                        result
                    }
                };
                if matches!((id.target, &result), (SignTarget::Batch(_), Ok(messages)) if !messages.is_empty()) {
                    self.counters.batches_signed += 1;
                }
                (id, result)
            }
            SignCommand::Reattempt { id } => match id.target {
                SignTarget::Batch(_) => (id, self.signer.reattempt(txn, &mut self.rng, id)),
                SignTarget::Transaction(_) => (id, self.transactions.reattempt(txn, &mut self.rng, id)),
            },
        };
        let messages = self.signing_result(db, txn, seq, Some(id), result)?;
        if messages.is_empty() {
            *publish = None;
        }
        Ok(messages)
    }

    /// A scheduling step's messages, with attempt 0 of each new plan's signing.
    fn planned(
        &mut self,
        txn: &mut Txn<'_, D>,
        seq: SeqId,
        scheduling: payments::Scheduling,
    ) -> Result<Vec<ProcessorMessage>, CoreError> {
        let mut messages = scheduling.messages;
        for plan in scheduling.plans {
            match self.transactions.start(txn, &mut self.rng, plan) {
                Ok(preprocess) => messages.extend(preprocess),
                Err(SignError::Db(error)) => return Err(error.into()),
                // The plan stands; the coordinator's re-attempt will try again.
                Err(error) => {
                    tracing::warn!(%seq, %plan, %error, "could not start signing a plan");
                }
            }
        }
        Ok(messages)
    }

    /// Asks for the rings of Monero plans whose decoy height is final, each at most every
    /// [`DECOYS_AGAIN_AFTER_MS`].
    fn ask_decoys(&mut self) -> Result<Vec<Effect>, CoreError> {
        let Some(tip) = self.tip else { return Ok(vec![]) };
        let requests = crate::transaction::monero::decoy_requests(&self.db)?;
        let now = self.now;
        self.decoys_asked.retain(|plan, _| requests.iter().any(|r| r.plan == *plan));
        let mut effects = Vec::new();
        for request in requests {
            if tip.0 < request.block_number.saturating_add(self.config.confirmations) {
                continue;
            }
            let due = self
                .decoys_asked
                .get(&request.plan)
                .is_none_or(|at| now.0.saturating_sub(at.0) >= DECOYS_AGAIN_AFTER_MS);
            if due {
                self.decoys_asked.insert(request.plan, now);
                effects.push(Effect::SelectDecoys(request));
            }
        }
        Ok(effects)
    }

    /// A Monero plan's rings arrived: its transaction is fixed and signing begins.
    fn decoys(&mut self, plan: PlanId, inputs: &[Vec<u8>]) -> Result<Vec<Effect>, CoreError> {
        let db = self.db.clone();
        let mut txn = db.txn();
        if scanner::halted(&txn)?.is_some() {
            return Ok(vec![]);
        }
        let mut messages = match crate::transaction::monero::decoys_arrived(&mut txn, plan, inputs) {
            Ok(Some(messages)) => messages,
            Ok(None) => return Ok(vec![]),
            Err(SignError::Db(error)) => return Err(error.into()),
            Err(error) => {
                tracing::warn!(%plan, %error, "refused the chain source's rings");
                return Ok(vec![]);
            }
        };
        if messages.is_empty() {
            match self.transactions.start(&mut txn, &mut self.rng, plan) {
                Ok(preprocess) => messages.extend(preprocess),
                Err(SignError::Db(error)) => return Err(error.into()),
                Err(error) => tracing::warn!(%plan, %error, "could not start signing a plan"),
            }
        }
        let sealed = self.enqueue(&mut txn, messages)?;
        txn.commit()?;
        self.decoys_asked.remove(&plan);
        self.counters.messages_out += sealed.len() as u64;
        Ok(sealed.into_iter().map(Effect::Send).collect())
    }

    /// Publishes signed transactions not yet seen final, each at most every
    /// [`REPUBLISH_AFTER_MS`] (all of them after a restart).
    fn republish(&mut self) -> Result<Vec<Effect>, CoreError> {
        let unconfirmed = crate::transaction::unconfirmed(&self.db)?;
        let now = self.now;
        self.last_published.retain(|plan, _| unconfirmed.iter().any(|(pending, _)| pending == plan));
        let mut effects = Vec::new();
        for (plan, transaction) in unconfirmed {
            let due = self.last_published.get(&plan).is_none_or(|at| now.0.saturating_sub(at.0) >= REPUBLISH_AFTER_MS);
            if due {
                self.last_published.insert(plan, now);
                self.counters.transactions_published += 1;
                effects.push(Effect::Publish { transaction });
            }
        }
        Ok(effects)
    }

    /// Maps a signing step's result to the messages it sends; a refusal or blame discards the
    /// step's writes (a blame is reported).
    fn signing_result<'a>(
        &mut self,
        db: &'a D,
        txn: &mut Txn<'a, D>,
        seq: SeqId,
        id: Option<crate::messages::SignId>,
        result: Result<Vec<ProcessorMessage>, SignError>,
    ) -> Result<Vec<ProcessorMessage>, CoreError> {
        match result {
            Ok(messages) => Ok(messages),
            Err(SignError::Db(error)) => Err(error.into()),
            Err(SignError::Refused(why)) => {
                *txn = db.txn();
                self.refuse(seq, &why);
                Ok(vec![])
            }
            Err(SignError::Blame { accused, reason }) => {
                *txn = db.txn();
                self.counters.blames += 1;
                match id {
                    Some(id) => {
                        tracing::warn!(?id, %accused, ?reason, "blaming a signer");
                        Ok(vec![ProcessorMessage::Sign(SignEvent::Blame { id, accused, reason })])
                    }
                    None => Ok(vec![]),
                }
            }
        }
    }

    fn refuse(&mut self, seq: SeqId, why: &str) {
        self.counters.refused_commands += 1;
        tracing::warn!(%seq, why, "refused coordinator command");
    }

    /// Seals messages with fresh outbound sequence ids and stores them in the outbox.
    fn enqueue(&mut self, txn: &mut Txn<'_, D>, messages: Vec<ProcessorMessage>) -> Result<Vec<Vec<u8>>, CoreError> {
        if messages.is_empty() {
            return Ok(vec![]);
        }
        let mut next = OUTBOUND_NEXT.get(txn, &())?.unwrap_or(SeqId(1));
        let mut sealed = Vec::with_capacity(messages.len());
        for message in messages {
            let bytes = Envelope::new(self.peer_key(), self.config.coordinator, Frame::Data { seq: next, message })
                .seal(&self.identity);
            OUTBOX.set(txn, &next, &bytes);
            sealed.push((next, bytes));
            next = SeqId(next.0 + 1);
        }
        OUTBOUND_NEXT.set(txn, &(), &next);
        // Sent now (if the transaction commits; if not, the driver stops anyway).
        for (seq, _) in &sealed {
            self.last_sent.insert(*seq, self.now);
        }
        Ok(sealed.into_iter().map(|(_, bytes)| bytes).collect())
    }

    fn ack(&self, up_to: SeqId) -> Effect {
        let frame: Frame<ProcessorMessage> = Frame::Ack { up_to };
        Effect::Send(Envelope::new(self.peer_key(), self.config.coordinator, frame).seal(&self.identity))
    }

    /// Re-sends those of the oldest [`RESEND_WINDOW`] outbox messages not acknowledged within
    /// [`RESEND_AFTER_MS`] of their last sending (never sent since a restart counts as due). As
    /// acknowledgements move the window, the next ones become due.
    fn resend(&mut self) -> Result<Vec<Effect>, CoreError> {
        let pending = OUTBOX.entries(&self.db)?;
        let now = self.now;
        self.last_sent.retain(|seq, _| pending.iter().any(|(pending, _)| pending == seq));
        let mut effects = Vec::new();
        for (seq, bytes) in pending.into_iter().take(RESEND_WINDOW) {
            let due = self.last_sent.get(&seq).is_none_or(|sent| now.0.saturating_sub(sent.0) >= RESEND_AFTER_MS);
            if due {
                self.last_sent.insert(seq, now);
                effects.push(Effect::Send(bytes));
            }
        }
        self.counters.resent += effects.len() as u64;
        Ok(effects)
    }
}
